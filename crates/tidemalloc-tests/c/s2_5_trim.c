/* S2.5: a free top chunk above M_TRIM_THRESHOLD is given back by moving the break down;
 * malloc_trim(0) also gives back the whole free pages in the middle of the heap.
 * Usage: s2_5_trim top|no_trim|middle */
#include <malloc.h>
#include "observe.h"

#define MIB (1024 * 1024)

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s top|no_trim|middle", argv[0]);
    /* Keep 4 MiB blocks in the heap rather than in mappings of their own. */
    fact("mallopt_mmap_threshold", "%d", mallopt(M_MMAP_THRESHOLD, 8 * MIB));
    if (strcmp(argv[1], "no_trim") == 0)
        fact("mallopt_trim_threshold", "%d", mallopt(M_TRIM_THRESHOLD, 1024 * MIB));
    char *first = malloc(100);
    if (!first)
        setup_failed("malloc(100) returned NULL");

    if (strcmp(argv[1], "middle") != 0) {
        uintptr_t brk_start = brk_now();
        char *block = malloc(4 * MIB);
        if (!block)
            setup_failed("malloc(4 MiB) returned NULL");
        fact("block_in_heap", "%d", in_heap(block));
        uintptr_t brk_grown = brk_now();
        fact("brk_growth", "%ld", (long)(brk_grown - brk_start));
        free(block);
        fact("brk_drop", "%ld", (long)(brk_grown - brk_now()));
        free(first);
        return 0;
    }

    char *below = malloc(MIB);
    char *middle = malloc(4 * MIB);
    char *above = malloc(MIB);
    if (!below || !middle || !above)
        setup_failed("malloc returned NULL");
    fact("middle_in_heap", "%d", in_heap(middle));
    memset(middle, 1, 4 * MIB);
    fill(below, MIB, 1);
    fill(above, MIB, 2);
    size_t middle_pages = resident_pages(middle, 4 * MIB);
    free(middle);
    uintptr_t brk_before = brk_now();
    long rss_before = status_kb("RssAnon");
    size_t resident_before = resident_pages(middle, 4 * MIB);
    int trimmed = malloc_trim(0);
    long rss_after = status_kb("RssAnon");
    size_t resident_after = resident_pages(middle, 4 * MIB);
    fact("middle_pages", "%zu", middle_pages);
    fact("resident_after_free", "%zu", resident_before);
    fact("malloc_trim_result", "%d", trimmed);
    fact("resident_after_trim", "%zu", resident_after);
    fact("rss_anon_drop_kb", "%ld", rss_before - rss_after);
    fact("brk_moved", "%ld", (long)(brk_now() - brk_before));
    fact("neighbours_intact", "%d", intact(below, MIB, 1) && intact(above, MIB, 2));
    free(below);
    free(above);
    free(first);
    return 0;
}
