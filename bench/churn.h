/* Thread-local churn: each thread keeps a table of live objects and replaces random slots,
 * the way a server allocates and drops request objects. Sizes are mostly 16-128 B, some
 * up to 1 KiB and a few up to 32 KiB. Nothing crosses threads.
 *
 * Shared by churn.c and churn_fill.c, which say how much of each object the program writes
 * and reads back: CHURN_FILL(p, size, tag) and CHURN_CHECK(p, size, tag). */
#ifndef TIDEMALLOC_BENCH_CHURN_H
#define TIDEMALLOC_BENCH_CHURN_H

#include "common.h"

#define SLOTS 2000
#define TOTAL_OPS 20000000L

struct slot {
    void *p;
    size_t size;
    uint64_t tag;
};

static size_t request_size(uint64_t *rng)
{
    uint64_t pick = rng_below(rng, 100);
    if (pick < 90)
        return 16 + rng_below(rng, 113);
    if (pick < 98)
        return 129 + rng_below(rng, 896);
    return 1025 + rng_below(rng, 32 * 1024 - 1024);
}

static void *run(void *arg)
{
    struct share *w = arg;
    uint64_t rng = 0x1000 + (uint64_t)w->index;
    struct slot *slots = calloc(SLOTS, sizeof *slots);
    if (!slots)
        out_of_memory(SLOTS * sizeof *slots);
    uint64_t sum = 0;
    for (long op = 0; op < w->ops; op++) {
        struct slot *s = &slots[rng_below(&rng, SLOTS)];
        if (s->p) {
            sum += CHURN_CHECK(s->p, s->size, s->tag);
            free(s->p);
        }
        s->size = request_size(&rng);
        s->tag = rng_next(&rng);
        s->p = xmalloc(s->size);
        CHURN_FILL(s->p, s->size, s->tag);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            sum += CHURN_CHECK(slots[i].p, slots[i].size, slots[i].tag);
            free(slots[i].p);
        }
    }
    free(slots);
    w->sum = sum;
    return NULL;
}

static int churn_main(int argc, char **argv)
{
    int threads = arg_threads(argc, argv);
    long ops = TOTAL_OPS * arg_scale(argc, argv) / threads;
    print_checksum(run_workers(threads, ops, run));
    return 0;
}

#endif
