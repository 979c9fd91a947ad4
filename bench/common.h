/* What every C workload of `tidemalloc bench` shares: its arguments, a seeded random
 * generator, block patterns that catch an allocator handing out memory that is still in
 * use, and the output the runner reads back (a checksum line, exit status 3 on wrong data).
 * Checksums are sums of per-block values, so they do not depend on thread scheduling and
 * every allocator must print the same one. */
#ifndef TIDEMALLOC_BENCH_COMMON_H
#define TIDEMALLOC_BENCH_COMMON_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The runner reads exit status 3 as "wrong data", as opposed to a crash or a failure. */
#define WRONG_DATA_EXIT 3

static inline void wrong_data(const char *what, uint64_t detail)
{
    fprintf(stderr, "wrong data: %s (%llu)\n", what, (unsigned long long)detail);
    exit(WRONG_DATA_EXIT);
}

static inline void out_of_memory(size_t size)
{
    fprintf(stderr, "allocation of %zu bytes failed\n", size);
    exit(1);
}

/* argv[1]: the thread count, argv[2]: a multiplier of the work (default 1). */
static inline int arg_threads(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    return n > 0 ? n : 1;
}

static inline long arg_scale(int argc, char **argv)
{
    long s = argc > 2 ? atol(argv[2]) : 1;
    return s > 0 ? s : 1;
}

/* splitmix64: one word of state per thread, so threads never share a generator. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(uint64_t *state, uint64_t bound)
{
    return rng_next(state) % bound;
}

static inline uint64_t pattern_word(uint64_t tag, size_t index)
{
    return tag ^ ((uint64_t)index * 0x9e3779b97f4a7c15ULL);
}

/* Fills all of a block, word by word, from its tag. */
static inline void fill_block(void *p, size_t size, uint64_t tag)
{
    unsigned char *b = p;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pattern_word(tag, i);
        memcpy(b + i * 8, &w, 8);
    }
    for (size_t i = words * 8; i < size; i++)
        b[i] = (unsigned char)(tag >> (i % 8 * 8));
}

/* Checks a block filled by fill_block; returns the tag so callers can sum it. */
static inline uint64_t check_block(const void *p, size_t size, uint64_t tag)
{
    const unsigned char *b = p;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, b + i * 8, 8);
        if (w != pattern_word(tag, i))
            wrong_data("block pattern overwritten", size);
    }
    for (size_t i = words * 8; i < size; i++)
        if (b[i] != (unsigned char)(tag >> (i % 8 * 8)))
            wrong_data("block tail overwritten", size);
    return tag;
}

/* Large blocks: touching every page is what a program does to them, but writing every byte
 * would time memset instead of the allocator. One word per page, plus both ends. */
#define SPARSE_STEP 4096

static inline void fill_sparse(void *p, size_t size, uint64_t tag)
{
    unsigned char *b = p;
    for (size_t off = 0; off + 8 <= size; off += SPARSE_STEP) {
        uint64_t w = pattern_word(tag, off);
        memcpy(b + off, &w, 8);
    }
    uint64_t last = pattern_word(tag, size);
    memcpy(b + size - 8, &last, 8);
}

static inline uint64_t check_sparse(const void *p, size_t size, uint64_t tag)
{
    const unsigned char *b = p;
    uint64_t w;
    for (size_t off = 0; off + 8 <= size - 8; off += SPARSE_STEP) {
        memcpy(&w, b + off, 8);
        if (w != pattern_word(tag, off))
            wrong_data("large block page overwritten", size);
    }
    memcpy(&w, b + size - 8, 8);
    if (w != pattern_word(tag, size))
        wrong_data("large block end overwritten", size);
    return tag;
}

/* Objects up to 1 KiB are written whole, as a program writes its structs; larger ones sparsely. */
#define WHOLE_FILL_LIMIT 1024

static inline void fill_object(void *p, size_t size, uint64_t tag)
{
    if (size <= WHOLE_FILL_LIMIT)
        fill_block(p, size, tag);
    else
        fill_sparse(p, size, tag);
}

static inline uint64_t check_object(const void *p, size_t size, uint64_t tag)
{
    return size <= WHOLE_FILL_LIMIT ? check_block(p, size, tag) : check_sparse(p, size, tag);
}

/* Objects of at least 16 bytes touched at both ends only: their first and last words. */
static inline void fill_ends(void *p, size_t size, uint64_t tag)
{
    uint64_t first = pattern_word(tag, 0), last = pattern_word(tag, size);
    memcpy(p, &first, 8);
    memcpy((unsigned char *)p + size - 8, &last, 8);
}

static inline uint64_t check_ends(const void *p, size_t size, uint64_t tag)
{
    uint64_t first, last;
    memcpy(&first, p, 8);
    memcpy(&last, (const unsigned char *)p + size - 8, 8);
    if (first != pattern_word(tag, 0) || last != pattern_word(tag, size))
        wrong_data("object end overwritten", size);
    return tag;
}

static inline void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (!p)
        out_of_memory(size);
    return p;
}

static inline void start_thread(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(tid, NULL, fn, arg);
    if (err) {
        fprintf(stderr, "pthread_create failed: %s\n", strerror(err));
        exit(1);
    }
}

/* One thread's share of a workload: its index, how many operations it does, and the
 * checksum of what it saw. */
struct share {
    int index;
    long ops;
    uint64_t sum;
};

/* Runs `fn` on `threads` threads, each given `ops` operations, and adds up their sums. */
static inline uint64_t run_workers(int threads, long ops, void *(*fn)(void *))
{
    pthread_t tid[threads];
    struct share workers[threads];
    for (int i = 0; i < threads; i++) {
        workers[i] = (struct share){ .index = i, .ops = ops };
        start_thread(&tid[i], fn, &workers[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        sum += workers[i].sum;
    }
    return sum;
}

static inline void print_checksum(uint64_t sum)
{
    printf("checksum=%016llx\n", (unsigned long long)sum);
}

#endif
