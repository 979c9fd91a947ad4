/* A thread arena whose first heap is full starts a second one for a request its top cannot
 * serve, while that top is large (a 100000-byte block just freed into it): freeing the old
 * top as the new heap starts must not take the new heap back, or the request would start
 * it again for ever. The program reports that the request was served, from a new heap. */
#include <pthread.h>
#include "observe.h"

#define HEAP (64UL << 20)
#define STEP 120000
#define LAST 100000

static uintptr_t chunk_end(char *p, size_t request)
{
    return (uintptr_t)p - 16 + ((request + 8 + 15) & ~(size_t)15);
}

static void *fill_heap(void *unused)
{
    (void)unused;
    char *p = malloc(STEP);
    if (!p)
        setup_failed("malloc returned NULL");
    uintptr_t base = (uintptr_t)p & ~(HEAP - 1);
    uintptr_t end = chunk_end(p, STEP);
    size_t last_chunk = (LAST + 8 + 15) & ~(size_t)15;
    size_t slack = 8 << 10;
    /* Blocks of STEP, then smaller fillers, until what the heap can still take is the last
     * block and `slack` bytes. */
    while (base + HEAP - end > last_chunk + slack) {
        size_t room = base + HEAP - end - last_chunk - slack;
        size_t request = room > STEP + 16 ? STEP : room - 8;
        p = malloc(request);
        if (!p || (uintptr_t)p < base || (uintptr_t)p >= base + HEAP)
            setup_failed("filler of %zu bytes outside the first heap", request);
        end = chunk_end(p, request);
    }
    char *last = malloc(LAST);
    if (!last || (uintptr_t)last >= base + HEAP)
        setup_failed("the last block did not fit the first heap");
    free(last);
    char *next = malloc(STEP);
    fact("served", "%d", next != NULL);
    fact("new_heap", "%d", ((uintptr_t)next & ~(HEAP - 1)) != base);
    return NULL;
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fill_heap, NULL) || pthread_join(t, NULL))
        setup_failed("thread");
    return 0;
}
