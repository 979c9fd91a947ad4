/* S1.3: freeing an mmapped chunk raises the mmap threshold to its size (and the trim
 * threshold to twice that), so the same request next time comes from the heap; a
 * threshold set with mallopt turns the adjustment off.
 * Usage: s1_3_dynamic_threshold dynamic|fixed */
#include <malloc.h>
#include "observe.h"

#define MIB (1024 * 1024)

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s dynamic|fixed", argv[0]);
    int fixed = strcmp(argv[1], "fixed") == 0;
    free(malloc(100));
    if (fixed)
        fact("mallopt_result", "%d", mallopt(M_MMAP_THRESHOLD, 128 * 1024));

    char *first = malloc(MIB);
    if (!first)
        setup_failed("malloc(1 MiB) returned NULL");
    fact("first_in_heap", "%d", in_heap(first));
    fact("first_anonymous", "%d", in_anonymous_mapping(first));
    free(first);

    struct mallinfo2 before = mallinfo2();
    char *second = malloc(MIB);
    struct mallinfo2 after = mallinfo2();
    if (!second)
        setup_failed("second malloc(1 MiB) returned NULL");
    fact("second_in_heap", "%d", in_heap(second));
    fact("second_anonymous", "%d", in_anonymous_mapping(second));
    fact("second_hblks_delta", "%ld", (long)(after.hblks - before.hblks));

    /* A realloc that moves the block must keep it where the threshold says. */
    fill(second, MIB, 3);
    char *grown = realloc(second, 2 * MIB);
    if (!grown)
        setup_failed("realloc to 2 MiB returned NULL");
    fact("grown_intact", "%d", intact(grown, MIB, 3));
    fact("grown_anonymous", "%d", in_anonymous_mapping(grown));
    fact("grown_in_heap", "%d", in_heap(grown));

    /* With the raised trim threshold (2 x 1 MiB and a page), a 1 MiB free at the top of
     * the heap is kept; with the fixed 128 KiB one the break moves back. */
    char *top = malloc(MIB);
    if (!top)
        setup_failed("malloc(1 MiB) for the trim check returned NULL");
    fact("top_in_heap", "%d", in_heap(top));
    uintptr_t brk_before_free = brk_now();
    free(top);
    fact("brk_drop_after_top_free", "%ld", (long)(brk_before_free - brk_now()));
    free(grown);
    return 0;
}
