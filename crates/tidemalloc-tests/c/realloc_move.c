/* realloc that cannot grow a block in place (its successor is in use) moves it.
 *
 * same-thread: three blocks of SIZE are freed into the thread cache first, then a block of
 * SIZE is grown by realloc past its in-use neighbour. A move frees the old block as free()
 * would, into the front of the cache (glibc's realloc does the same), so the next
 * malloc(SIZE) returns the old block rather than one of the three.
 *
 * other-thread: the main thread's block (in [heap]) is grown by a second thread. The block
 * moves to where that thread allocates (its own 64 MiB heap), not into the main arena.
 *
 * Both check that the contents survive the move. Usage: realloc_move same-thread|other-thread */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

#define SIZE 100
#define GROWN 4000

static char *spare[16];

/* Two blocks of SIZE where the second starts right after the first ends, so that the first
 * can not grow in place. The other blocks tried stay allocated until `free_spare`, so that
 * they fill no cache list (glibc's hold 7). */
static char *pinned_block(char **neighbour)
{
    char *blocks[16];
    char *found = NULL;
    for (int i = 0; i < 16; i++) {
        blocks[i] = malloc(SIZE);
        if (!blocks[i])
            setup_failed("malloc(%d) returned NULL", SIZE);
    }
    for (int i = 0; i + 1 < 16 && !found; i++) {
        if (blocks[i + 1] == blocks[i] + malloc_usable_size(blocks[i]) + 8) {
            found = blocks[i];
            *neighbour = blocks[i + 1];
        }
    }
    if (!found)
        setup_failed("no two adjacent blocks of %d bytes", SIZE);
    for (int i = 0; i < 16; i++)
        spare[i] = blocks[i] != found && blocks[i] != *neighbour ? blocks[i] : NULL;
    return found;
}

static void free_spare(void)
{
    for (int i = 0; i < 16; i++)
        free(spare[i]);
}

static void same_thread(void)
{
    char *neighbour;
    char *block = pinned_block(&neighbour);
    fill(block, SIZE, 3);
    fill(neighbour, SIZE, 4);
    char *cached[3];
    for (int i = 0; i < 3; i++)
        if (!(cached[i] = malloc(SIZE)))
            setup_failed("malloc(%d) returned NULL", SIZE);
    for (int i = 0; i < 3; i++)
        free(cached[i]);
    char *grown = realloc(block, GROWN);
    if (!grown)
        setup_failed("realloc to %d returned NULL", GROWN);
    fact("moved", "%d", grown != block);
    fact("contents_kept", "%d", intact(grown, SIZE, 3) && intact(neighbour, SIZE, 4));
    char *again = malloc(SIZE);
    fact("old_block_reused_first", "%d", again == block);
    fill(again, SIZE, 5);
    fill(grown + SIZE, GROWN - SIZE, 6);
    fact("all_intact", "%d",
         intact(again, SIZE, 5) && intact(grown, SIZE, 3) && intact(grown + SIZE, GROWN - SIZE, 6)
             && intact(neighbour, SIZE, 4));
    free(again);
    free(grown);
    free(neighbour);
    free_spare();
}

struct handoff {
    char *block;
    char *grown;
    char *own;
};

static void *grow_elsewhere(void *arg)
{
    struct handoff *h = arg;
    h->own = malloc(SIZE);
    h->grown = realloc(h->block, GROWN);
    return NULL;
}

static void other_thread(void)
{
    char *neighbour;
    struct handoff h = { .block = pinned_block(&neighbour) };
    fill(h.block, SIZE, 3);
    pthread_t t;
    if (pthread_create(&t, NULL, grow_elsewhere, &h) != 0 || pthread_join(t, NULL) != 0)
        setup_failed("thread failed");
    if (!h.grown || !h.own)
        setup_failed("the thread's malloc or realloc returned NULL");
    fact("block_in_brk_heap", "%d", in_heap(h.block));
    fact("moved", "%d", h.grown != h.block);
    fact("contents_kept", "%d", intact(h.grown, SIZE, 3));
    fact("in_threads_heap", "%d", !in_heap(h.grown) && heap_base(h.grown) == heap_base(h.own));
    free(h.grown);
    free(h.own);
    free(neighbour);
    free_spare();
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "same-thread") == 0)
        same_thread();
    else if (argc == 2 && strcmp(argv[1], "other-thread") == 0)
        other_thread();
    else
        setup_failed("usage: %s same-thread|other-thread", argv[0]);
    return 0;
}
