/* S2.4: requests nothing in the bins can serve are split off the top chunk, one after the
 * other upwards; a free chunk split for a run of small requests (the last remainder)
 * hands them out side by side. The run from top uses 1100-byte requests, a size no thread
 * cache holds, so each one is a split of top at the moment it is asked for. */
#include <malloc.h>
#include "observe.h"

#define RUN 10
#define TOP_SIZE 1100

int main(void)
{
    char *from_top[RUN], *from_remainder[RUN];
    /* Kept live: a freed warm-up chunk would sit in a bin and serve the first request. */
    char *first = malloc(TOP_SIZE);

    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < RUN; i++)
        from_top[i] = malloc(TOP_SIZE);
    struct mallinfo2 after = mallinfo2();
    int ascending = 1;
    long step = from_top[1] - from_top[0];
    for (int i = 1; i < RUN; i++)
        ascending &= from_top[i] - from_top[i - 1] == step;
    fact("top_step", "%ld", step);
    fact("top_equal_steps", "%d", ascending);
    fact("top_keepcost_drop", "%ld", (long)(before.keepcost - after.keepcost));

    char *big = malloc(8000);
    char *guard = malloc(16);
    if (!big || !guard)
        setup_failed("malloc returned NULL");
    free(big);
    for (int i = 0; i < RUN; i++)
        from_remainder[i] = malloc(200);
    int adjacent = 1;
    step = from_remainder[1] - from_remainder[0];
    for (int i = 1; i < RUN; i++)
        adjacent &= from_remainder[i] - from_remainder[i - 1] == step;
    fact("remainder_first_is_big", "%d", from_remainder[0] == big);
    fact("remainder_step", "%ld", step);
    fact("remainder_equal_steps", "%d", adjacent);
    for (int i = 0; i < RUN; i++) {
        free(from_top[i]);
        free(from_remainder[i]);
    }
    free(guard);
    free(first);
    return 0;
}
