/* S3.1, S3.2: a second thread's blocks come from a heap of its own arena, not from the break:
 * an anonymous 64 MiB-aligned reservation, read-write only as far as used (`rw-p` then
 * `---p`), whose read-write part grows as the thread allocates. The main thread's blocks stay
 * in [heap]. The threads take turns (join, barrier) because observe.h's buffers are shared. */
#include <pthread.h>
#include "observe.h"

#define GROWTH_BLOCKS 40
#define GROWTH_BLOCK_SIZE (100 * 1024) /* below the mmap threshold: served by the arena */
#define MAIN_BLOCKS 100

static pthread_barrier_t grown, main_checked;

static int main_blocks_in_brk_heap(void)
{
    void *blocks[MAIN_BLOCKS];
    int in_brk_heap = 0;
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        blocks[i] = malloc((size_t)(16 << (i % 13)));
        if (!blocks[i])
            setup_failed("main-thread malloc returned NULL");
        in_brk_heap += in_heap(blocks[i]);
    }
    for (int i = 0; i < MAIN_BLOCKS; i++)
        free(blocks[i]);
    return in_brk_heap;
}

static void *thread_allocates(void *arg)
{
    (void)arg;
    char *first = malloc(64);
    if (!first)
        setup_failed("thread malloc returned NULL");
    uintptr_t base = heap_base(first);
    struct mapping m;
    if (!mapping_of((uintptr_t)first, &m))
        setup_failed("the thread's block is not mapped");
    fact("thread_block_in_brk_heap", "%d", in_heap(first));
    fact("thread_block_anonymous", "%d", in_anonymous_mapping(first));
    fact("thread_mapping_start_aligned", "%d", m.start % THREAD_HEAP_SIZE == 0);
    size_t rw_before = 0, rw_after = 0;
    fact("thread_heap_before", "%d", thread_heap_at(base, &rw_before));
    fact("rw_before", "%zu", rw_before);

    char *blocks[GROWTH_BLOCKS];
    int in_same_heap = 0;
    for (int i = 0; i < GROWTH_BLOCKS; i++) {
        blocks[i] = malloc(GROWTH_BLOCK_SIZE);
        if (!blocks[i])
            setup_failed("thread malloc(%d) returned NULL", GROWTH_BLOCK_SIZE);
        fill(blocks[i], GROWTH_BLOCK_SIZE, (unsigned)i);
        in_same_heap += heap_base(blocks[i]) == base && !in_heap(blocks[i]);
    }
    fact("growth_blocks_in_same_heap", "%d", in_same_heap);
    fact("thread_heap_after", "%d", thread_heap_at(base, &rw_after));
    fact("rw_after", "%zu", rw_after);

    /* While this thread holds its blocks, the main thread allocates. */
    pthread_barrier_wait(&grown);
    pthread_barrier_wait(&main_checked);

    int intact_blocks = 0;
    for (int i = 0; i < GROWTH_BLOCKS; i++) {
        intact_blocks += intact(blocks[i], GROWTH_BLOCK_SIZE, (unsigned)i);
        free(blocks[i]);
    }
    fact("growth_blocks_intact", "%d", intact_blocks);
    free(first);
    return NULL;
}

int main(void)
{
    /* The first thread to allocate gets the main arena: make sure that is this one. */
    fact("main_blocks_in_brk_heap_before", "%d", main_blocks_in_brk_heap());
    if (pthread_barrier_init(&grown, NULL, 2) != 0 || pthread_barrier_init(&main_checked, NULL, 2) != 0)
        setup_failed("pthread_barrier_init failed");
    pthread_t t;
    if (pthread_create(&t, NULL, thread_allocates, NULL) != 0)
        setup_failed("pthread_create failed");
    pthread_barrier_wait(&grown);
    fact("main_blocks_in_brk_heap_during", "%d", main_blocks_in_brk_heap());
    pthread_barrier_wait(&main_checked);
    pthread_join(t, NULL);
    fact("main_blocks_in_brk_heap_after", "%d", main_blocks_in_brk_heap());
    fact("main_blocks", "%d", MAIN_BLOCKS);
    fact("growth_blocks", "%d", GROWTH_BLOCKS);
    fact("growth_bytes", "%d", GROWTH_BLOCKS * GROWTH_BLOCK_SIZE);
    return 0;
}
