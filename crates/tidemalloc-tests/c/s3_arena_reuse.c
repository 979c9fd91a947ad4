/* S3.4: an arena whose threads have all exited is handed to the next new thread. One thread
 * allocates and exits; each later thread, one at a time, lands in the same heap. Then three
 * threads alive together make two more arenas, and after they exit three new ones, alive
 * together, reuse those three heaps without making another. */
#include <pthread.h>
#include "observe.h"

#define SEQUENTIAL_ROUNDS 20
#define TOGETHER 3

static pthread_barrier_t allocated, inspected;

static void *allocate_and_exit(void *arg)
{
    uintptr_t *where = arg;
    char *p = malloc(64);
    if (!p)
        setup_failed("thread malloc returned NULL");
    *where = in_heap(p) ? 0 : heap_base(p);
    free(p);
    return NULL;
}

/* Holds a block until every thread of the group has one and the main thread has looked. */
static void *allocate_together(void *arg)
{
    void **block = arg;
    *block = malloc(64);
    if (!*block)
        setup_failed("thread malloc returned NULL");
    pthread_barrier_wait(&allocated);
    pthread_barrier_wait(&inspected);
    free(*block);
    return NULL;
}

static void run_thread(uintptr_t *where)
{
    pthread_t t;
    if (pthread_create(&t, NULL, allocate_and_exit, where) != 0 || pthread_join(t, NULL) != 0)
        setup_failed("pthread_create or pthread_join failed");
}

/* Runs TOGETHER threads alive at once and records the heap of each one's block (0 for
 * [heap]); returns how many of those heaps are in `known`. */
static int run_together(uintptr_t where[TOGETHER], const uintptr_t *known, int known_count)
{
    pthread_t ids[TOGETHER];
    void *blocks[TOGETHER];
    for (int i = 0; i < TOGETHER; i++)
        if (pthread_create(&ids[i], NULL, allocate_together, &blocks[i]) != 0)
            setup_failed("pthread_create failed");
    pthread_barrier_wait(&allocated);
    for (int i = 0; i < TOGETHER; i++)
        where[i] = in_heap(blocks[i]) ? 0 : heap_base(blocks[i]);
    pthread_barrier_wait(&inspected);
    for (int i = 0; i < TOGETHER; i++)
        pthread_join(ids[i], NULL);
    int found = 0;
    for (int i = 0; i < TOGETHER; i++)
        for (int k = 0; k < known_count; k++)
            found += where[i] != 0 && where[i] == known[k];
    return found;
}

static int distinct(const uintptr_t *heaps, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        int seen = heaps[i] == 0;
        for (int j = 0; j < i; j++)
            seen |= heaps[j] == heaps[i];
        count += !seen;
    }
    return count;
}

int main(void)
{
    /* The first thread to allocate gets the main arena: make sure that is this one. */
    free(malloc(1));

    uintptr_t first = 0;
    run_thread(&first);
    fact("first_in_thread_heap", "%d", first != 0 && thread_heap_at(first, NULL));
    fact("heaps_after_first", "%d", count_thread_heaps());

    int same_heap = 0;
    for (int i = 0; i < SEQUENTIAL_ROUNDS; i++) {
        uintptr_t later = 0;
        run_thread(&later);
        same_heap += later == first;
    }
    fact("sequential_rounds", "%d", SEQUENTIAL_ROUNDS);
    fact("sequential_in_first_heap", "%d", same_heap);
    fact("heaps_after_sequential", "%d", count_thread_heaps());

    if (pthread_barrier_init(&allocated, NULL, TOGETHER + 1) != 0 ||
        pthread_barrier_init(&inspected, NULL, TOGETHER + 1) != 0)
        setup_failed("pthread_barrier_init failed");
    uintptr_t together[TOGETHER], again[TOGETHER];
    fact("together_in_first_heap", "%d", run_together(together, &first, 1));
    fact("together_distinct_heaps", "%d", distinct(together, TOGETHER));
    fact("heaps_after_together", "%d", count_thread_heaps());
    fact("again_in_known_heaps", "%d", run_together(again, together, TOGETHER));
    fact("again_distinct_heaps", "%d", distinct(again, TOGETHER));
    fact("heaps_after_again", "%d", count_thread_heaps());
    fact("together", "%d", TOGETHER);
    return 0;
}
