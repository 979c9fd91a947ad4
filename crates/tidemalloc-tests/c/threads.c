/* Several threads run random malloc/free/realloc/calloc/memalign on blocks filled with a
 * pattern, hand blocks to each other to free, and check every byte before letting go.
 * Usage: threads THREADS OPS_PER_THREAD */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define SLOTS 512
#define EXCHANGE 64

struct block {
    unsigned char *p;
    size_t len;
    unsigned seed;
};

static struct block exchange[EXCHANGE];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static long ops_per_thread;

/* Mostly small, sometimes medium, rarely above the mmap threshold. */
static size_t random_size(uint64_t *state)
{
    uint64_t r = next_random(state);
    switch (r % 100) {
    case 0:
        return 128 * 1024 + r % (512 * 1024);
    case 1 ... 9:
        return 1024 + r % (64 * 1024);
    default:
        return r % 512;
    }
}

static long check_and_free(struct block *b)
{
    long bad = b->p && !intact(b->p, b->len, b->seed);
    free(b->p);
    b->p = NULL;
    return bad;
}

static void *worker(void *arg)
{
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(uintptr_t)arg * 0x2545f4914f6cdd1dULL);
    struct block slots[SLOTS] = {0};
    long bad = 0, failures = 0;
    for (long op = 0; op < ops_per_thread; op++) {
        struct block *b = &slots[next_random(&state) % SLOTS];
        unsigned seed = (unsigned)next_random(&state);
        uint64_t kind = next_random(&state) % 10;
        if (b->p && kind < 4) {
            bad += check_and_free(b);
        } else if (b->p && kind < 7) {
            size_t len = random_size(&state);
            size_t kept = len < b->len ? len : b->len;
            unsigned char *q = realloc(b->p, len);
            if (!q && len) {
                failures++;
                continue;
            }
            bad += !intact(q, kept, b->seed);
            b->p = q;
            b->len = len;
            fill(b->p, len, b->seed);
        } else if (b->p) {
            /* Hand the block to whichever thread takes this exchange slot next. */
            pthread_mutex_lock(&exchange_lock);
            struct block *x = &exchange[seed % EXCHANGE];
            struct block theirs = *x;
            *x = *b;
            pthread_mutex_unlock(&exchange_lock);
            *b = theirs;
        } else {
            size_t len = random_size(&state);
            if (kind == 7) {
                b->p = calloc(1, len);
                for (size_t i = 0; b->p && i < len; i++)
                    bad += b->p[i] != 0;
            } else if (kind == 8) {
                b->p = memalign((size_t)16 << (seed % 8), len);
            } else {
                b->p = malloc(len);
            }
            if (!b->p) {
                failures++;
                continue;
            }
            b->len = len;
            b->seed = seed;
            fill(b->p, len, seed);
        }
    }
    for (int i = 0; i < SLOTS; i++)
        bad += check_and_free(&slots[i]);
    long *result = malloc(2 * sizeof(long));
    if (!result)
        setup_failed("malloc for the result returned NULL");
    result[0] = bad;
    result[1] = failures;
    return result;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s THREADS OPS_PER_THREAD", argv[0]);
    int threads = atoi(argv[1]);
    ops_per_thread = atol(argv[2]);
    pthread_t ids[64];
    if (threads < 1 || threads > 64)
        setup_failed("THREADS must be 1..64");
    for (int i = 0; i < threads; i++)
        if (pthread_create(&ids[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0)
            setup_failed("pthread_create failed");
    long bad = 0, failures = 0;
    for (int i = 0; i < threads; i++) {
        long *result;
        pthread_join(ids[i], (void **)&result);
        bad += result[0];
        failures += result[1];
        free(result);
    }
    for (int i = 0; i < EXCHANGE; i++)
        bad += check_and_free(&exchange[i]);
    fact("ops", "%ld", ops_per_thread * threads);
    fact("corrupted_blocks", "%ld", bad);
    fact("failed_allocations", "%ld", failures);
    return 0;
}
