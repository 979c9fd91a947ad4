/* Big blocks: each thread keeps a few blocks of 64 KiB to 4 MiB and replaces them at
 * random, touching every page, as a program holding buffers and images does. Around
 * glibc's mmap threshold this tests mmap/munmap costs and the reuse of large free chunks. */
#include "common.h"

#define SLOTS 8
#define TOTAL_OPS 40000L
#define MIN_SHIFT 16
#define MAX_SHIFT 22

/* Log-uniform between 64 KiB and 4 MiB: as many blocks near 64 KiB as near 4 MiB. */
static size_t big_size(uint64_t *rng)
{
    int shift = MIN_SHIFT + (int)rng_below(rng, MAX_SHIFT - MIN_SHIFT);
    size_t base = (size_t)1 << shift;
    return base + rng_below(rng, base);
}

static void *run(void *arg)
{
    struct share *w = arg;
    uint64_t rng = 0x4000 + (uint64_t)w->index;
    void *p[SLOTS] = { 0 };
    size_t size[SLOTS] = { 0 };
    uint64_t tag[SLOTS] = { 0 };
    uint64_t sum = 0;
    for (long op = 0; op < w->ops; op++) {
        int s = (int)rng_below(&rng, SLOTS);
        if (p[s]) {
            sum += check_sparse(p[s], size[s], tag[s]);
            free(p[s]);
        }
        size[s] = big_size(&rng);
        tag[s] = rng_next(&rng);
        p[s] = xmalloc(size[s]);
        fill_sparse(p[s], size[s], tag[s]);
    }
    for (int s = 0; s < SLOTS; s++) {
        if (p[s]) {
            sum += check_sparse(p[s], size[s], tag[s]);
            free(p[s]);
        }
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = arg_threads(argc, argv);
    long ops = TOTAL_OPS * arg_scale(argc, argv) / threads;
    print_checksum(run_workers(threads, ops, run));
    return 0;
}
