/* The memory surge of seed 002: a burst of small allocations in several threads, most of
 * them freed, a scattered few kept alive, then the process goes idle for a second with its
 * threads still alive, as a server does after a peak. The figure is the resident memory
 * after that idle second (VmRSS of this process), printed as rss_after_idle_kib. With
 * ptmalloc2 the kept blocks pin the heap, and the free memory around them stays resident. */
#include "common.h"
#include <unistd.h>

#define TOTAL_BURST (192L << 20)
#define KEEP_ONE_IN 512
#define IDLE_SECONDS 1

struct kept {
    struct kept *next;
    size_t size;
    uint64_t tag;
};

struct worker {
    int index;
    long bytes;
    struct kept *kept;
};

static pthread_barrier_t burst_done, idle_done;

static void *run(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x6000 + (uint64_t)w->index;
    struct kept *burst = NULL;
    for (long made = 0; made < w->bytes;) {
        size_t size = sizeof(struct kept) + 16 + rng_below(&rng, 2048);
        struct kept *k = xmalloc(size);
        k->size = size;
        k->tag = rng_next(&rng);
        fill_object(k + 1, size - sizeof *k, k->tag);
        k->next = burst;
        burst = k;
        made += (long)size;
    }
    for (struct kept *k = burst, *next; k; k = next) {
        next = k->next;
        if (k->tag % KEEP_ONE_IN == 0) {
            k->next = w->kept;
            w->kept = k;
        } else {
            check_object(k + 1, k->size - sizeof *k, k->tag);
            free(k);
        }
    }
    pthread_barrier_wait(&burst_done);
    pthread_barrier_wait(&idle_done);
    return NULL;
}

static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    int threads = arg_threads(argc, argv);
    long bytes = TOTAL_BURST * arg_scale(argc, argv) / threads;
    pthread_t tid[threads];
    struct worker workers[threads];
    pthread_barrier_init(&burst_done, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&idle_done, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        workers[i] = (struct worker){ .index = i, .bytes = bytes };
        start_thread(&tid[i], run, &workers[i]);
    }
    pthread_barrier_wait(&burst_done);
    sleep(IDLE_SECONDS);
    long rss = vm_rss_kib();
    pthread_barrier_wait(&idle_done);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        for (struct kept *k = workers[i].kept, *next; k; k = next) {
            next = k->next;
            sum += check_object(k + 1, k->size - sizeof *k, k->tag);
            free(k);
        }
    }
    print_checksum(sum);
    printf("rss_after_idle_kib=%ld\n", rss);
    return 0;
}
