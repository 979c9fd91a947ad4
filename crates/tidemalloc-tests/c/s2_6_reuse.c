/* S2.6: a chunk freed in the middle of the heap serves a later request that fits. */
#include "observe.h"

int main(void)
{
    char *before = malloc(5000);
    char *middle = malloc(5000);
    char *after = malloc(5000);
    if (!before || !middle || !after)
        setup_failed("malloc returned NULL");
    uintptr_t brk_start = brk_now();

    free(middle);
    char *same = malloc(5000);
    fact("same_size_reused", "%d", same == middle);
    free(same);
    char *smaller = malloc(4000);
    fact("smaller_reused", "%d", smaller == middle);
    fill(smaller, 4000, 9);
    fill(before, 5000, 1);
    fill(after, 5000, 2);
    fact("all_intact", "%d", intact(smaller, 4000, 9) && intact(before, 5000, 1) && intact(after, 5000, 2));
    fact("brk_moved", "%ld", (long)(brk_now() - brk_start));
    free(smaller);
    free(before);
    free(after);
    return 0;
}
