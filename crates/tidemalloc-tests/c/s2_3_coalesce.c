/* S2.3, seed 000's walkthrough: A=30K, B=40K and D=100K come from the heap, C=200K from
 * mmap; free C, then B, then D. B and D are neighbours in the heap and merge into one
 * free chunk of about 140K.
 * Usage: s2_3_coalesce guarded|seed
 *   guarded: a live block after D keeps the merged chunk away from top, so it stays one
 *            free chunk: mallinfo2 counts one chunk more, and malloc(140K) returns B.
 *   seed:    as in the seed, D borders top; B, D and top merge, the free top exceeds the
 *            trim threshold and the break moves down; malloc(40K) then returns B. */
#include <malloc.h>
#include "observe.h"

#define K 1024

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s guarded|seed", argv[0]);
    int guarded = strcmp(argv[1], "guarded") == 0;
    /* The seed's numbers hold with the classic static thresholds (128 KiB each). */
    fact("mallopt_result", "%d", mallopt(M_MMAP_THRESHOLD, 128 * K));

    char *a = malloc(30 * K);
    char *b = malloc(40 * K);
    char *c = malloc(200 * K);
    char *d = malloc(100 * K);
    char *guard = guarded ? malloc(16) : NULL;
    if (!a || !b || !c || !d || (guarded && !guard))
        setup_failed("malloc returned NULL");
    fact("a_in_heap", "%d", in_heap(a));
    fact("b_in_heap", "%d", in_heap(b));
    fact("c_in_heap", "%d", in_heap(c));
    fact("d_in_heap", "%d", in_heap(d));
    fact("b_minus_a", "%ld", (long)(b - a));
    fact("d_minus_b", "%ld", (long)(d - b));
    fact("c_page_offset", "%lu", (unsigned long)((uintptr_t)c % page_size()));
    fill(a, 30 * K, 1);

    free(c);
    fact("c_mapped_after_free", "%d", is_mapped(c));

    struct mallinfo2 before = mallinfo2();
    uintptr_t brk_before = brk_now();
    free(b);
    struct mallinfo2 after_b = mallinfo2();
    fact("free_b_brk_moved", "%ld", (long)(brk_now() - brk_before));
    fact("free_b_ordblks_delta", "%ld", (long)(after_b.ordblks - before.ordblks));
    fact("free_b_fordblks_delta", "%ld", (long)(after_b.fordblks - before.fordblks));

    free(d);
    struct mallinfo2 after_d = mallinfo2();
    fact("free_bd_ordblks_delta", "%ld", (long)(after_d.ordblks - before.ordblks));
    fact("free_bd_fordblks_delta", "%ld", (long)(after_d.fordblks - before.fordblks));
    fact("free_d_brk_drop", "%ld", (long)(brk_before - brk_now()));

    char *again = malloc(guarded ? 140 * K : 40 * K);
    fact("again_is_b", "%d", again == b);
    fact("a_intact", "%d", intact(a, 30 * K, 1));
    free(again);
    free(guard);
    free(a);
    return 0;
}
