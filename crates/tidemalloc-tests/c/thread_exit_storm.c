/* S3.4 under churn: thousands of short-lived threads, a few alive at a time. Each frees
 * blocks that earlier threads (now gone) left in a shared pool and leaves new ones, so
 * arenas are handed from exited threads to new ones while holding their blocks. At the end
 * the pool is emptied and the introspection calls must still see every arena.
 * Usage: thread_exit_storm THREADS ALIVE */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define POOL 2048
#define SWAPS_PER_THREAD 16
#define MAX_ALIVE 64

struct block {
    unsigned char *p;
    size_t len;
    unsigned seed;
};

static struct block pool[POOL];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* Thread-cache sizes, arena sizes, and now and then one above the mmap threshold. */
static size_t random_len(uint64_t *state)
{
    uint64_t r = next_random(state);
    if (r % 50 == 0)
        return 128 * 1024 + r % (128 * 1024);
    if (r % 5 < 2)
        return 1024 + r % (32 * 1024);
    return 16 + r % 1017;
}

static struct block make_block(uint64_t *state)
{
    struct block b = {NULL, random_len(state), (unsigned)next_random(state)};
    b.p = malloc(b.len);
    if (!b.p)
        setup_failed("malloc(%zu) returned NULL", b.len);
    fill(b.p, b.len, b.seed);
    return b;
}

/* Frees a block after checking it; returns 1 if it was damaged. */
static long check_and_free(struct block b)
{
    long bad = b.p && !intact(b.p, b.len, b.seed);
    free(b.p);
    return bad;
}

static void *short_life(void *arg)
{
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ ((uintptr_t)arg * 0x2545f4914f6cdd1dULL);
    long bad = 0;
    for (int i = 0; i < SWAPS_PER_THREAD; i++) {
        struct block mine = make_block(&state);
        size_t slot = next_random(&state) % POOL;
        pthread_mutex_lock(&pool_lock);
        struct block theirs = pool[slot];
        pool[slot] = mine;
        pthread_mutex_unlock(&pool_lock);
        bad += check_and_free(theirs);
    }
    return (void *)bad;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s THREADS ALIVE", argv[0]);
    long threads = atol(argv[1]), alive = atol(argv[2]);
    if (threads < 1 || alive < 1 || alive > MAX_ALIVE)
        setup_failed("THREADS must be >= 1 and ALIVE 1..%d", MAX_ALIVE);
    /* The first thread to allocate gets the main arena: make sure that is this one. */
    free(malloc(1));

    pthread_t ids[MAX_ALIVE];
    long corrupted = 0;
    for (long i = 0; i < threads; i++) {
        /* Thread i replaces thread i - alive, so at most `alive` run at once. */
        if (i >= alive) {
            void *bad;
            pthread_join(ids[i % alive], &bad);
            corrupted += (long)bad;
        }
        if (pthread_create(&ids[i % alive], NULL, short_life, (void *)(uintptr_t)(i + 1)) != 0)
            setup_failed("pthread_create failed for thread %ld", i);
    }
    for (long i = threads > alive ? threads - alive : 0; i < threads; i++) {
        void *bad;
        pthread_join(ids[i % alive], &bad);
        corrupted += (long)bad;
    }

    size_t live_bytes = 0;
    for (int i = 0; i < POOL; i++)
        live_bytes += pool[i].p ? pool[i].len : 0;
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < POOL; i++)
        corrupted += check_and_free(pool[i]);
    struct mallinfo2 after = mallinfo2();
    malloc_stats();

    fact("threads", "%ld", threads);
    fact("cores", "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    fact("corrupted_blocks", "%ld", corrupted);
    fact("live_bytes_before_free", "%zu", live_bytes);
    fact("in_use_before_free", "%zu", before.uordblks + before.hblkhd);
    fact("in_use_after_free", "%zu", after.uordblks + after.hblkhd);
    fact("mmapped_after_free", "%zu", after.hblkhd);
    fact("thread_heaps_in_maps", "%d", count_thread_heaps());
    return 0;
}
