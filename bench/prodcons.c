/* Producer/consumer: blocks are allocated and filled in one thread and checked and freed in
 * another, so every free is a remote free. Threads pair up, one lock-free ring per pair.
 * The two threads of a pair are pinned to different cores: left to the scheduler on a busy
 * machine they often end up taking turns on one core, and then no free is concurrent with
 * a malloc, which is the case this workload is for. */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#define RING 1024
#define TOTAL_BLOCKS 1000000L

struct block {
    uint64_t tag;
    size_t size;
};

struct ring {
    _Atomic size_t head;
    char pad1[64];
    _Atomic size_t tail;
    char pad2[64];
    struct block *slots[RING];
};

static long cores = 1;

/* Best effort: where affinity is not allowed the pair simply runs unpinned. */
static void pin(long cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(cpu % cores), &set);
    sched_setaffinity(0, sizeof set, &set);
}

struct pair {
    struct ring ring;
    int index;
    long blocks;
    uint64_t sum;
};

static void *produce(void *arg)
{
    struct pair *pr = arg;
    pin(2L * pr->index);
    uint64_t rng = 0x2000 + (uint64_t)pr->index;
    for (long i = 0; i < pr->blocks; i++) {
        size_t size = sizeof(struct block) + rng_below(&rng, rng_below(&rng, 8) == 0 ? 4096 : 256);
        struct block *b = xmalloc(size);
        b->tag = rng_next(&rng);
        b->size = size;
        fill_object(b + 1, size - sizeof *b, b->tag);
        size_t head = atomic_load_explicit(&pr->ring.head, memory_order_relaxed);
        while (head - atomic_load_explicit(&pr->ring.tail, memory_order_acquire) == RING)
            sched_yield();
        pr->ring.slots[head % RING] = b;
        atomic_store_explicit(&pr->ring.head, head + 1, memory_order_release);
    }
    return NULL;
}

static void *consume(void *arg)
{
    struct pair *pr = arg;
    pin(2L * pr->index + 1);
    uint64_t sum = 0;
    for (long i = 0; i < pr->blocks; i++) {
        size_t tail = atomic_load_explicit(&pr->ring.tail, memory_order_relaxed);
        while (atomic_load_explicit(&pr->ring.head, memory_order_acquire) == tail)
            sched_yield();
        struct block *b = pr->ring.slots[tail % RING];
        atomic_store_explicit(&pr->ring.tail, tail + 1, memory_order_release);
        sum += check_object(b + 1, b->size - sizeof *b, b->tag);
        free(b);
    }
    pr->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    int pairs = arg_threads(argc, argv) / 2;
    if (pairs < 1)
        pairs = 1;
    long blocks = TOTAL_BLOCKS * arg_scale(argc, argv) / pairs;
    struct pair *all = calloc((size_t)pairs, sizeof *all);
    if (!all)
        out_of_memory((size_t)pairs * sizeof *all);
    pthread_t tid[2 * pairs];
    for (int i = 0; i < pairs; i++) {
        all[i].index = i;
        all[i].blocks = blocks;
        start_thread(&tid[2 * i], consume, &all[i]);
        start_thread(&tid[2 * i + 1], produce, &all[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < pairs; i++)
        sum += all[i].sum;
    free(all);
    print_checksum(sum);
    return 0;
}
