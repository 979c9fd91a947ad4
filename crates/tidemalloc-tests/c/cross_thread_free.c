/* Blocks freed by a thread other than the one that allocated them, so into another
 * thread's arena: producers allocate blocks of 16 bytes to 300 KiB and fill them; each
 * producer's consumer checks every byte and frees them.
 * Usage: cross_thread_free PAIRS BLOCKS_PER_PAIR */
#include <pthread.h>
#include "observe.h"

#define MAX_PAIRS 16
#define QUEUE 1024

struct block {
    uint64_t *p;
    size_t len; /* in bytes, a multiple of 8 */
    uint64_t seed;
};

struct pair {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct block queue[QUEUE];
    size_t head, tail; /* head - tail blocks waiting */
    long blocks, consumed, corrupted;
};

static struct pair pairs[MAX_PAIRS];

/* The pattern is word by word (a per-block seed mixed with the position), so checking
 * 300 KiB blocks by the hundred thousand stays cheap. */
static uint64_t pattern(uint64_t seed, size_t i) { return (seed ^ (i * 0x9e3779b97f4a7c15ULL)) + i; }

/* 16 B to 300 KiB, each doubling of the size about 1.4 times rarer than the one before:
 * mostly small blocks, yet a few thousand above the mmap threshold per run. */
static size_t random_len(uint64_t *state)
{
    uint64_t r = next_random(state);
    int doublings = 2 * __builtin_ctzll(r | (1ULL << 20)) + (int)((r >> 40) & 1);
    if (doublings > 14)
        doublings = 14;
    size_t low = (size_t)16 << doublings; /* 16 B .. 256 KiB */
    size_t len = low + (size_t)((r >> 44) % low);
    if (len > 300 * 1024)
        len = 300 * 1024;
    return len & ~(size_t)7;
}

static void *produce(void *arg)
{
    struct pair *pr = arg;
    uint64_t state = 0x2545f4914f6cdd1dULL * (uint64_t)(pr - pairs + 1);
    for (long n = 0; n < pr->blocks; n++) {
        struct block b = {NULL, random_len(&state), next_random(&state)};
        b.p = malloc(b.len);
        if (!b.p)
            setup_failed("malloc(%zu) returned NULL", b.len);
        for (size_t i = 0; i < b.len / 8; i++)
            b.p[i] = pattern(b.seed, i);
        pthread_mutex_lock(&pr->lock);
        while (pr->head - pr->tail == QUEUE)
            pthread_cond_wait(&pr->not_full, &pr->lock);
        pr->queue[pr->head++ % QUEUE] = b;
        pthread_cond_signal(&pr->not_empty);
        pthread_mutex_unlock(&pr->lock);
    }
    return NULL;
}

static void *consume(void *arg)
{
    struct pair *pr = arg;
    for (long n = 0; n < pr->blocks; n++) {
        pthread_mutex_lock(&pr->lock);
        while (pr->head == pr->tail)
            pthread_cond_wait(&pr->not_empty, &pr->lock);
        struct block b = pr->queue[pr->tail++ % QUEUE];
        pthread_cond_signal(&pr->not_full);
        pthread_mutex_unlock(&pr->lock);
        int ok = 1;
        for (size_t i = 0; i < b.len / 8; i++)
            ok &= b.p[i] == pattern(b.seed, i);
        pr->corrupted += !ok;
        pr->consumed++;
        free(b.p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s PAIRS BLOCKS_PER_PAIR", argv[0]);
    int count = atoi(argv[1]);
    long blocks = atol(argv[2]);
    if (count < 1 || count > MAX_PAIRS || blocks < 1)
        setup_failed("PAIRS must be 1..%d and BLOCKS_PER_PAIR >= 1", MAX_PAIRS);
    pthread_t producers[MAX_PAIRS], consumers[MAX_PAIRS];
    for (int i = 0; i < count; i++) {
        pairs[i].blocks = blocks;
        pthread_mutex_init(&pairs[i].lock, NULL);
        pthread_cond_init(&pairs[i].not_empty, NULL);
        pthread_cond_init(&pairs[i].not_full, NULL);
        if (pthread_create(&producers[i], NULL, produce, &pairs[i]) != 0 ||
            pthread_create(&consumers[i], NULL, consume, &pairs[i]) != 0)
            setup_failed("pthread_create failed");
    }
    long consumed = 0, corrupted = 0;
    for (int i = 0; i < count; i++) {
        pthread_join(producers[i], NULL);
        pthread_join(consumers[i], NULL);
        consumed += pairs[i].consumed;
        corrupted += pairs[i].corrupted;
    }
    fact("blocks", "%ld", blocks * count);
    fact("blocks_checked", "%ld", consumed);
    fact("corrupted_blocks", "%ld", corrupted);
    return 0;
}
