/* Everything a thread cache holds goes back to its arena at malloc_trim(0) and at thread
 * exit: its lists, and the block that free parked last (tidemalloc links that one into its
 * list only at the next free). mallinfo2 counts cached blocks as in use, so it must show
 * as much in use afterwards as before the blocks were made.
 * Usage: cache_flush trim|exit */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define SIZE 200

static size_t in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

static void run_thread(void *(*body)(void *))
{
    pthread_t t;
    if (pthread_create(&t, NULL, body, NULL) || pthread_join(t, NULL))
        setup_failed("thread");
}

static void *make_and_free(void *unused)
{
    (void)unused;
    char *p = malloc(SIZE);
    if (!p)
        setup_failed("malloc(%d) returned NULL", SIZE);
    fill(p, SIZE, 1);
    free(p);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s trim|exit", argv[0]);
    /* Sets this thread's cache up, and (for exit) runs the thread once first: what it
     * leaves, its arena (handed to the next thread) and its stack and TLS (which glibc
     * keeps for the next thread), stays the same after the second run. The trim empties
     * this thread's cache again; a block of another size than SIZE is freed here, so that
     * it could not serve the request below, were it left in the cache. */
    free(malloc(SIZE / 2));
    if (!strcmp(argv[1], "exit"))
        run_thread(make_and_free);
    malloc_trim(0);
    size_t before = in_use();
    if (!strcmp(argv[1], "trim")) {
        make_and_free(NULL);
        malloc_trim(0);
    } else if (!strcmp(argv[1], "exit")) {
        run_thread(make_and_free);
        /* What starting and joining the thread left in this thread's own cache. */
        malloc_trim(0);
    } else {
        setup_failed("unknown mode %s", argv[1]);
    }
    size_t after = in_use();
    fact("in_use_before", "%zu", before);
    fact("in_use_after", "%zu", after);
    return 0;
}
