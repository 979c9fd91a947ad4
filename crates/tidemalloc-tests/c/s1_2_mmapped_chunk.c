/* S1.2: a request at or above the mmap threshold gets an anonymous mapping of its own,
 * the user pointer sits 16 bytes into a page, and free unmaps it at once. */
#include <malloc.h>
#include "observe.h"

static void report(const char *name, size_t size)
{
    char key[64];
    struct mallinfo2 before = mallinfo2();
    char *p = malloc(size);
    struct mallinfo2 during = mallinfo2();
    if (!p)
        setup_failed("malloc(%zu) returned NULL", size);
    fill(p, size, 7);
    snprintf(key, sizeof key, "%s_in_heap", name);
    fact(key, "%d", in_heap(p));
    snprintf(key, sizeof key, "%s_anonymous", name);
    fact(key, "%d", in_anonymous_mapping(p));
    snprintf(key, sizeof key, "%s_page_offset", name);
    fact(key, "%lu", (unsigned long)((uintptr_t)p % page_size()));
    snprintf(key, sizeof key, "%s_hblks_delta", name);
    fact(key, "%ld", (long)(during.hblks - before.hblks));
    snprintf(key, sizeof key, "%s_hblkhd_delta", name);
    fact(key, "%ld", (long)(during.hblkhd - before.hblkhd));
    snprintf(key, sizeof key, "%s_intact", name);
    fact(key, "%d", intact(p, size, 7));
    free(p);
    struct mallinfo2 after = mallinfo2();
    snprintf(key, sizeof key, "%s_mapped_after_free", name);
    fact(key, "%d", is_mapped(p) || is_mapped(p + size - 1));
    snprintf(key, sizeof key, "%s_hblks_after_free", name);
    fact(key, "%ld", (long)(after.hblks - before.hblks));
    snprintf(key, sizeof key, "%s_hblkhd_after_free", name);
    fact(key, "%ld", (long)(after.hblkhd - before.hblkhd));
}

int main(void)
{
    /* Small first: the main heap exists, so a big block has somewhere else it could go. */
    fact("page_size", "%zu", page_size());
    /* A request is mmapped when no free chunk and not the top can serve it, so first
     * shrink the top (mallinfo2's keepcost) below the threshold. */
    free(malloc(100));
    size_t top = mallinfo2().keepcost;
    char *filler = top > 64 * 1024 ? malloc(top - 64 * 1024) : NULL;
    if (top >= 192 * 1024 || (top > 64 * 1024 && !filler))
        setup_failed("cannot bring a top of %zu bytes below 128 KiB", top);
    /* 128 KiB exactly is at the default threshold. Freeing it raises the dynamic threshold
     * only to its own chunk size, so the 1 MiB request after it is still mmapped. */
    report("at_threshold", 128 * 1024);
    report("one_mib", 1024 * 1024);
    free(filler);
    return 0;
}
