/* Threads grow mapped blocks with realloc (mremap, which often moves them and hands the
 * old range back to the kernel at once) while other threads map new blocks, which the
 * kernel places in just such ranges. Every block must stay one the allocator knows: a
 * free or realloc of it reported as an invalid pointer means a new block was forgotten
 * in the place of the one that moved away.
 * Usage: mremap_race THREADS ROUNDS */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define KEPT 8

static long rounds;

static void *grow_and_free(void *arg)
{
    unsigned long seed = 0x9e3779b9u * (unsigned long)(uintptr_t)arg + 1;
    unsigned char *kept[KEPT] = {0};
    size_t sizes[KEPT] = {0};
    long wrong = 0;
    for (long r = 0; r < rounds; r++) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        int k = (int)((seed >> 33) % KEPT);
        size_t size = 4096 + (size_t)((seed >> 40) % 61440);
        if (kept[k]) {
            wrong += kept[k][0] != (unsigned char)k || kept[k][sizes[k] - 1] != (unsigned char)k;
            /* Grow, which moves the mapping when the range above it is taken. */
            unsigned char *p = realloc(kept[k], sizes[k] * 2);
            if (!p)
                setup_failed("realloc returned NULL");
            wrong += p[0] != (unsigned char)k || p[sizes[k] - 1] != (unsigned char)k;
            free(p);
        }
        kept[k] = malloc(size);
        if (!kept[k])
            setup_failed("malloc returned NULL");
        sizes[k] = size;
        kept[k][0] = kept[k][size - 1] = (unsigned char)k;
    }
    for (int k = 0; k < KEPT; k++)
        free(kept[k]);
    return (void *)wrong;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s THREADS ROUNDS", argv[0]);
    int threads = atoi(argv[1]);
    rounds = atol(argv[2]);
    /* Every block of a page or more gets a mapping of its own. */
    if (!mallopt(M_MMAP_THRESHOLD, 4096))
        setup_failed("mallopt(M_MMAP_THRESHOLD) failed");
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, grow_and_free, (void *)(uintptr_t)i))
            setup_failed("pthread_create");
    long wrong = 0;
    for (int i = 0; i < threads; i++) {
        void *w;
        pthread_join(t[i], &w);
        wrong += (long)w;
    }
    fact("wrong_bytes", "%ld", wrong);
    return 0;
}
