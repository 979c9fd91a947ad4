/* S3.1, S3.3: more threads than the arena limit allow (8 x cores + 8, all alive together,
 * each holding one block) make arenas only up to the limit, the main arena included; past it
 * threads share. With the limit set to 1 (MALLOC_ARENA_MAX=1 in the environment, or
 * `mallopt` as the argument for mallopt(M_ARENA_MAX, 1)) no thread heap appears at all.
 * Usage: s3_arena_limit [mallopt] */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define EXTRA_THREADS 8
#define BLOCK_SIZE 48

static pthread_barrier_t allocated, checked;
static unsigned char **blocks;

static void *hold_a_block(void *arg)
{
    size_t i = (uintptr_t)arg;
    blocks[i] = malloc(BLOCK_SIZE);
    if (!blocks[i])
        setup_failed("thread malloc returned NULL");
    fill(blocks[i], BLOCK_SIZE, (unsigned)i);
    pthread_barrier_wait(&allocated);
    pthread_barrier_wait(&checked);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "mallopt") != 0))
        setup_failed("usage: %s [mallopt]", argv[0]);
    if (argc == 2 && mallopt(M_ARENA_MAX, 1) != 1)
        setup_failed("mallopt(M_ARENA_MAX, 1) failed");
    /* The first thread to allocate gets the main arena: make sure that is this one. */
    free(malloc(1));

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        setup_failed("sysconf(_SC_NPROCESSORS_ONLN) = %ld", cores);
    size_t threads = (size_t)(8 * cores + EXTRA_THREADS);
    blocks = calloc(threads, sizeof *blocks);
    pthread_t *ids = calloc(threads, sizeof *ids);
    uintptr_t *heaps = calloc(threads, sizeof *heaps);
    if (!blocks || !ids || !heaps)
        setup_failed("calloc returned NULL");
    if (pthread_barrier_init(&allocated, NULL, (unsigned)threads + 1) != 0 ||
        pthread_barrier_init(&checked, NULL, (unsigned)threads + 1) != 0)
        setup_failed("pthread_barrier_init failed");
    pthread_attr_t small_stack;
    pthread_attr_init(&small_stack);
    pthread_attr_setstacksize(&small_stack, 256 * 1024);
    for (size_t i = 0; i < threads; i++)
        if (pthread_create(&ids[i], &small_stack, hold_a_block, (void *)(uintptr_t)i) != 0)
            setup_failed("pthread_create failed for thread %zu", i);
    pthread_barrier_wait(&allocated);

    int in_brk_heap = 0, in_thread_heap = 0, heaps_holding_blocks = 0;
    for (size_t i = 0; i < threads; i++) {
        if (in_heap(blocks[i])) {
            in_brk_heap++;
            continue;
        }
        uintptr_t base = heap_base(blocks[i]);
        if (!thread_heap_at(base, NULL))
            continue;
        in_thread_heap++;
        int seen = 0;
        for (int h = 0; h < heaps_holding_blocks; h++)
            seen |= heaps[h] == base;
        if (!seen)
            heaps[heaps_holding_blocks++] = base;
    }
    int heaps_in_maps = count_thread_heaps();

    pthread_barrier_wait(&checked);
    int corrupted = 0;
    for (size_t i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        corrupted += !intact(blocks[i], BLOCK_SIZE, (unsigned)i);
        free(blocks[i]);
    }
    fact("cores", "%ld", cores);
    fact("threads", "%zu", threads);
    fact("blocks_in_brk_heap", "%d", in_brk_heap);
    fact("blocks_in_thread_heaps", "%d", in_thread_heap);
    fact("heaps_holding_blocks", "%d", heaps_holding_blocks);
    fact("thread_heaps_in_maps", "%d", heaps_in_maps);
    fact("corrupted_blocks", "%d", corrupted);
    free(heaps);
    free(ids);
    free(blocks);
    return 0;
}
