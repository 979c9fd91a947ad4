/* S3.2: a thread heap's read-write part grows as the thread allocates. A thread asks for
 * BLOCKS blocks of BLOCK_SIZE bytes, each about a page more of its heap, and reads the
 * heap's read-write size in /proc/self/maps after each: how often it changed tells how
 * many times the heap was made read-write further (an mprotect call each), and by how
 * much. */
#include <pthread.h>
#include "observe.h"

#define BLOCKS 256
#define BLOCK_SIZE 4000

static void *thread_grows(void *arg)
{
    (void)arg;
    char *first = malloc(64);
    if (!first)
        setup_failed("thread malloc returned NULL");
    uintptr_t base = heap_base(first);
    size_t rw_start = 0, rw = 0;
    if (!thread_heap_at(base, &rw_start))
        setup_failed("the thread's heap is not in /proc/self/maps");
    size_t last = rw_start;
    int changes = 0, outside = 0;
    char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (!blocks[i])
            setup_failed("thread malloc(%d) returned NULL", BLOCK_SIZE);
        fill(blocks[i], BLOCK_SIZE, (unsigned)i);
        if (!thread_heap_at(base, &rw))
            setup_failed("the thread's heap left /proc/self/maps");
        outside += (uintptr_t)blocks[i] + BLOCK_SIZE > base + rw;
        changes += rw != last;
        last = rw;
    }
    int intact_blocks = 0;
    for (int i = 0; i < BLOCKS; i++) {
        intact_blocks += intact(blocks[i], BLOCK_SIZE, (unsigned)i);
        free(blocks[i]);
    }
    free(first);
    fact("rw_start", "%zu", rw_start);
    fact("rw_end", "%zu", last);
    fact("rw_changes", "%d", changes);
    fact("blocks_past_rw", "%d", outside);
    fact("blocks_intact", "%d", intact_blocks);
    fact("blocks", "%d", BLOCKS);
    fact("grown_bytes", "%d", BLOCKS * BLOCK_SIZE);
    return NULL;
}

int main(void)
{
    /* The first thread to allocate gets the main arena: make sure that is this one. */
    free(malloc(16));
    pthread_t t;
    if (pthread_create(&t, NULL, thread_grows, NULL) != 0)
        setup_failed("pthread_create failed");
    pthread_join(t, NULL);
    return 0;
}
