/* Thread churn: thousands of short-lived threads, a few alive at a time. Each allocates a
 * handful of blocks, trades them for blocks that earlier threads left in a shared
 * exchange, and frees what it got: memory made by one thread is freed by another that
 * starts after the first has exited. */
#include "common.h"

#define TOTAL_THREADS 12000L
#define BLOCKS_PER_THREAD 200
#define EXCHANGE 4096

struct block {
    uint64_t tag;
    size_t size;
};

static struct block *exchange[EXCHANGE];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;

struct worker {
    long index;
    uint64_t sum;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x3000 + (uint64_t)w->index;
    struct block *mine[BLOCKS_PER_THREAD];
    for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
        size_t size = sizeof(struct block) + 8 + rng_below(&rng, i % 16 == 0 ? 8192 : 384);
        struct block *b = xmalloc(size);
        b->tag = rng_next(&rng);
        b->size = size;
        fill_object(b + 1, size - sizeof *b, b->tag);
        mine[i] = b;
    }
    pthread_mutex_lock(&exchange_lock);
    for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
        size_t slot = rng_below(&rng, EXCHANGE);
        struct block *theirs = exchange[slot];
        exchange[slot] = mine[i];
        mine[i] = theirs;
    }
    pthread_mutex_unlock(&exchange_lock);
    uint64_t sum = 0;
    for (int i = 0; i < BLOCKS_PER_THREAD; i++) {
        struct block *b = mine[i];
        if (b) {
            sum += check_object(b + 1, b->size - sizeof *b, b->tag);
            free(b);
        }
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int live = arg_threads(argc, argv);
    long total = TOTAL_THREADS * arg_scale(argc, argv);
    pthread_t tid[live];
    struct worker *workers = calloc((size_t)total, sizeof *workers);
    if (!workers)
        out_of_memory((size_t)total * sizeof *workers);
    for (long i = 0; i < total; i++) {
        if (i >= live)
            pthread_join(tid[i % live], NULL);
        workers[i].index = i;
        start_thread(&tid[i % live], run, &workers[i]);
    }
    for (long i = total > live ? total - live : 0; i < total; i++)
        pthread_join(tid[i % live], NULL);
    uint64_t sum = 0;
    for (long i = 0; i < total; i++)
        sum += workers[i].sum;
    for (int i = 0; i < EXCHANGE; i++) {
        struct block *b = exchange[i];
        if (b) {
            sum += check_object(b + 1, b->size - sizeof *b, b->tag);
            free(b);
        }
    }
    free(workers);
    print_checksum(sum);
    return 0;
}
