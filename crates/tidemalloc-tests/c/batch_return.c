/* A thread of another arena frees 32 blocks of the main thread, 31 of 40 bytes and one of
 * LAST bytes: a whole batch, which goes back to the main arena in one hand-over (when one
 * of its blocks has room, it carries the addresses of the others). Every block must come
 * back to the main thread's next requests of its size, none lost on the way.
 * Usage: batch_return LAST */
#include <pthread.h>
#include "observe.h"

#define SMALL 40
#define BLOCKS 32
#define TRIES 400

static char *blocks[BLOCKS];

static void *freer(void *arg)
{
    (void)arg;
    free(malloc(64)); /* gives this thread an arena of its own */
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    return NULL;
}

/* How many of blocks[from..to) the next TRIES requests of `size` bytes hand back. */
static int returned(size_t size, int from, int to)
{
    static char *got[TRIES];
    int found = 0;
    for (int n = 0; n < TRIES; n++) {
        got[n] = malloc(size);
        if (!got[n])
            setup_failed("malloc(%zu) returned NULL", size);
        for (int i = from; i < to; i++)
            found += got[n] == blocks[i];
    }
    for (int n = 0; n < TRIES; n++)
        free(got[n]);
    return found;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s LAST", argv[0]);
    size_t last = (size_t)atol(argv[1]);
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(i == BLOCKS - 1 ? last : SMALL);
        if (!blocks[i])
            setup_failed("malloc returned NULL");
        fill(blocks[i], SMALL, i);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, freer, NULL) || pthread_join(t, NULL))
        setup_failed("thread");
    fact("small_returned", "%d", returned(SMALL, 0, BLOCKS - 1));
    fact("last_returned", "%d", returned(last, BLOCKS - 1, BLOCKS));
    return 0;
}
