/* How the arena sizes the chunks it carves for range requests (past 1 KiB, up to
 * tcache_max) once requests of a range list keep finding its cached chunk too small.
 * Three phases in the main thread, then a probe in a new thread:
 *   1. fresh: the usable size of a 6000-byte block (glibc's: the request rounded up to 16,
 *      plus 8);
 *   2. repeat: 5000 rounds of two sizes asked for, freed and asked for again, then the
 *      usable size of a 6000-byte block again;
 *   3. vary: 5000 rounds replacing one of 64 live blocks of a random size from 1025 to
 *      32768 bytes, each filled and checked before it is freed; then, with the 64 blocks
 *      still live, twenty 6000-byte blocks, the last of which the cache cannot serve (its
 *      lists hold a few chunks each), and that block's usable size;
 *   4. fresh thread: the usable size of a 6000-byte block in a thread started after that.
 * Reports the four usable sizes and whether every block kept its contents. */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define LIVE 64
#define ROUNDS 5000
#define PROBE 6000
#define PROBES 20

static size_t probe(void)
{
    char *p = malloc(PROBE);
    if (!p)
        setup_failed("malloc(%d) returned NULL", PROBE);
    size_t usable = malloc_usable_size(p);
    free(p);
    return usable;
}

static void *probe_thread(void *out)
{
    *(size_t *)out = probe();
    return NULL;
}

int main(void)
{
    fact("fresh_usable", "%zu", probe());

    int ok = 1;
    for (int r = 0; r < ROUNDS; r++) {
        char *a = malloc(5000);
        char *b = malloc(7000);
        if (!a || !b)
            setup_failed("malloc returned NULL");
        fill(a, 5000, r);
        fill(b, 7000, r + 1);
        ok &= intact(a, 5000, r) && intact(b, 7000, r + 1);
        free(a);
        free(b);
    }
    fact("repeat_usable", "%zu", probe());

    uint64_t rng = 0x2545f4914f6cdd1dULL;
    char *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        int i = (int)(next_random(&rng) % LIVE);
        if (live[i]) {
            ok &= intact(live[i], sizes[i], i);
            free(live[i]);
        }
        sizes[i] = 1025 + (size_t)(next_random(&rng) % (32 * 1024 - 1024));
        live[i] = malloc(sizes[i]);
        if (!live[i])
            setup_failed("malloc(%zu) returned NULL", sizes[i]);
        fill(live[i], sizes[i], i);
    }
    char *probes[PROBES];
    for (int n = 0; n < PROBES; n++) {
        probes[n] = malloc(PROBE);
        if (!probes[n])
            setup_failed("malloc(%d) returned NULL", PROBE);
        fill(probes[n], PROBE, n);
    }
    fact("vary_usable", "%zu", malloc_usable_size(probes[PROBES - 1]));
    for (int n = 0; n < PROBES; n++) {
        ok &= intact(probes[n], PROBE, n);
        free(probes[n]);
    }
    for (int i = 0; i < LIVE; i++) {
        if (live[i]) {
            ok &= intact(live[i], sizes[i], i);
            free(live[i]);
        }
    }
    size_t thread_usable = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, probe_thread, &thread_usable) != 0 || pthread_join(t, NULL) != 0)
        setup_failed("pthread_create or pthread_join failed");
    fact("thread_usable", "%zu", thread_usable);
    fact("intact", "%d", ok);
    return 0;
}
