/* Heap misuse, one kind per mode (SPEC S6.2): each must end the process with SIGABRT and a
 * one-line message naming the function and the problem, never with a crash inside the
 * allocator and never by carrying on with a damaged heap. The program prints "survived"
 * and exits 0 if nothing stopped it, which the test reports as a miss.
 * Usage: misuse MODE */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

/* Keeps the compiler from seeing through the misuse. */
static void *volatile sink;

static void *must(size_t size)
{
    void *p = malloc(size);
    if (!p)
        setup_failed("malloc(%zu) returned NULL", size);
    memset(p, 'A', size);
    return p;
}

static void *free_twice(void *p)
{
    free(p);
    free(p);
    return NULL;
}

/* Blocks of the main thread that another thread frees: the first is freed twice, with
 * enough others between to send the first back towards its arena. */
#define HANDED_BACK 40
static void *handed_back[HANDED_BACK];

static void *free_all_then_first_again(void *unused)
{
    (void)unused;
    for (int i = 0; i < HANDED_BACK; i++)
        free(handed_back[i]);
    free(handed_back[0]);
    return NULL;
}

static void *free_all(void *unused)
{
    (void)unused;
    for (int i = 0; i < HANDED_BACK; i++)
        free(handed_back[i]);
    return NULL;
}

/* A thread frees a few blocks of the main thread, which wait in its batch of foreign
 * blocks, then writes over them (use after free) before its exit sends the batch home. */
static void *free_some_then_write(void *unused)
{
    (void)unused;
    for (int i = 0; i < 8; i++)
        free(handed_back[i]);
    for (int i = 0; i < 8; i++)
        memset(handed_back[i], 'B', 400);
    return NULL;
}

static void hand_back(size_t size, void *(*freer)(void *))
{
    for (int i = 0; i < HANDED_BACK; i++)
        handed_back[i] = must(size);
    pthread_t t;
    if (pthread_create(&t, NULL, freer, NULL) || pthread_join(t, NULL))
        setup_failed("thread");
}

static void *free_lowest(void *unused)
{
    (void)unused;
    free((void *)(uintptr_t)16);
    return NULL;
}

static void double_free(size_t size)
{
    char *p = must(size);
    char *guard = must(16);
    sink = guard;
    free(p);
    free(p);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s MODE", argv[0]);
    const char *mode = argv[1];
    if (!strcmp(mode, "double-free-small")) {
        double_free(40);
    } else if (!strcmp(mode, "double-free-small-cache-full")) {
        /* Fill the thread cache for the size first (glibc then sends the block to a fast
         * bin; tidemalloc makes room by flushing half the list). */
        enum { N = 300 };
        char *blocks[N];
        for (int i = 0; i < N; i++)
            blocks[i] = must(40);
        char *victim = must(40);
        char *guard = must(16);
        sink = guard;
        for (int i = 0; i < N; i++)
            free(blocks[i]);
        free(victim);
        free(victim);
    } else if (!strcmp(mode, "double-free-medium")) {
        double_free(3000);
    } else if (!strcmp(mode, "double-free-binned")) {
        /* Run with tcache_count=1: a block past the fast bins that a full cache list sent
         * back to its arena's bins, freed again. Its neighbours stay in use, so it waits
         * in a bin whole, looking like any in-use block to its own header. (tidemalloc's
         * free parks the block it frees and links the one parked before, so the list is
         * full, and makes room by sending the victim back, only at the third free.) */
        char *before = must(16);
        char *victim = must(200);
        char *between = must(16);
        char *other = must(200);
        char *between_too = must(16);
        char *third = must(200);
        char *after = must(16);
        sink = before;
        sink = between;
        sink = between_too;
        sink = after;
        free(victim);
        free(other);
        free(third);
        free(victim);
    } else if (!strcmp(mode, "double-free-into-top")) {
        /* Past the thread cache (tcache_max=1032), the block merges into top when freed;
         * freeing it again must still be seen. In the cache, the cache's key sees it. */
        char *p = must(3000);
        free(p);
        free(p);
    } else if (!strcmp(mode, "double-free-mmapped")) {
        double_free(1 << 20);
    } else if (!strcmp(mode, "double-free-after-realloc")) {
        char *p = must(32);
        char *guard = must(16);
        sink = guard;
        char *q = realloc(p, 5000);
        if (q == p)
            setup_failed("realloc did not move the block");
        sink = q;
        free(p);
    } else if (!strcmp(mode, "double-free-other-thread-arena")) {
        /* Freed twice by a thread that does not own the block's arena. */
        char *p = must(40);
        sink = p;
        pthread_t t;
        if (pthread_create(&t, NULL, free_twice, p))
            setup_failed("pthread_create failed");
        pthread_join(t, NULL);
    } else if (!strcmp(mode, "double-free-after-hand-back")) {
        /* The second free comes after the freeing thread has handed the block back
         * towards its owner's arena, where no cache list shows it. */
        hand_back(40, free_all_then_first_again);
    } else if (!strcmp(mode, "double-free-range-after-hand-back")) {
        hand_back(5000, free_all_then_first_again);
    } else if (!strcmp(mode, "owner-frees-a-handed-back-block")) {
        /* Another thread frees the block and hands it back; its owner then frees it too. */
        hand_back(40, free_all);
        free(handed_back[0]);
    } else if (!strcmp(mode, "write-after-hand-back")) {
        /* Another thread frees the blocks, which go back towards their owner's arena; the
         * program writes over them before the owner takes them back (use after free). */
        hand_back(400, free_all);
        for (int i = 0; i < HANDED_BACK; i++)
            memset(handed_back[i], 'B', 400);
        sink = malloc(5000);
    } else if (!strcmp(mode, "count-after-hand-back")) {
        /* As above, but only the third word of each block changes: where a block that
         * carries the others' addresses keeps their count. */
        hand_back(400, free_all);
        for (int i = 0; i < HANDED_BACK; i++)
            ((size_t *)handed_back[i])[2] = 1000;
        sink = malloc(5000);
    } else if (!strcmp(mode, "write-in-foreign-batch")) {
        hand_back(400, free_some_then_write);
    } else if (!strcmp(mode, "interior")) {
        char *p = must(200);
        free(p + 64);
    } else if (!strcmp(mode, "misaligned")) {
        char *p = must(100);
        free(p + 1);
    } else if (!strcmp(mode, "stack")) {
        char local[64];
        memset(local, 'A', sizeof local);
        free(local + 16);
    } else if (!strcmp(mode, "wild")) {
        free((void *)(uintptr_t)0x10000010);
    } else if (!strcmp(mode, "wild-fresh-thread")) {
        /* The first call of a new thread, whose cache knows no heap yet, frees the lowest
         * aligned pointer: the chunk it names would start at address 0. */
        pthread_t t;
        if (pthread_create(&t, NULL, free_lowest, NULL) || pthread_join(t, NULL))
            setup_failed("thread");
    } else if (!strcmp(mode, "wild-realloc")) {
        char local[64];
        sink = realloc(local + 16, 100);
    } else if (!strcmp(mode, "stale-merged-pointer")) {
        /* b merges into the free a before it; the merged chunk goes out again whole, and
         * b's old header is left inside it, untouched by the program. Freeing b again must
         * not take that header for b's: it would free memory inside c. */
        char *a = must(40000);
        char *b = must(40000);
        char *guard = must(16);
        sink = guard;
        free(a);
        free(b);
        char *c = malloc(80000);
        if (c != a)
            setup_failed("the merged chunk went elsewhere (%p, not %p)", (void *)c, (void *)a);
        sink = c;
        free(b);
    } else if (!strcmp(mode, "copied-header")) {
        /* A real header copied into the middle of another block, with words after it that
         * look like an in-use successor: free of the pointer behind it must not take it. */
        char *p = must(100);
        char *q = must(400);
        memset(q, 0x11, 400);
        memcpy(q + 64, p - 16, 16);
        free(q + 80);
    } else if (!strcmp(mode, "overflow-into-next-header")) {
        char *a = must(24);
        char *b = must(24);
        char *guard = must(16);
        sink = guard;
        memset(a, 'B', 24 + 16); /* runs over b's size field */
        free(a);
        free(b);
    } else if (!strcmp(mode, "nul-byte-into-next-header")) {
        /* One byte too many, a string's NUL: it lands on the low byte of b's size word,
         * which turns 272 with the in-use bit into a plausible 256 without it (the "poison
         * null byte"). glibc caches b under the smaller size; the sealed header must not
         * let free's fast path do the same. */
        char *a = must(264);
        char *b = must(264);
        char *guard = must(16);
        sink = guard;
        if (b != a + 272)
            setup_failed("b does not follow a (%p, %p)", (void *)a, (void *)b);
        a[264] = 0;
        free(b);
    } else if (!strcmp(mode, "corrupted-top")) {
        /* A size no thread cache holds, so the block is split off top and borders it. */
        char *a = must(2000);
        memset(a, 0xff, 2000 + 16); /* runs over the top chunk's size */
        sink = malloc(5000);
    } else if (!strcmp(mode, "corrupted-cache-link")) {
        char *p = must(40);
        char *guard = must(16);
        char *next = must(40);
        sink = guard;
        free(p);
        free(next); /* links p, which free parked, into its list */
        memset(p, 'C', 8); /* use after free: scribbles over the cache's link */
        sink = malloc(40);
        sink = malloc(40);
        sink = malloc(40); /* glibc's cache hands out next and p first */
    } else if (!strcmp(mode, "corrupted-fast-link")) {
        /* Run with the thread cache off (GLIBC_TUNABLES=glibc.malloc.tcache_count=0). */
        char *p = must(40);
        char *guard = must(16);
        sink = guard;
        free(p);
        memset(p, 'C', 8);
        sink = malloc(40);
        sink = malloc(40);
    } else if (!strcmp(mode, "corrupted-cache-size")) {
        /* A chunk in a range list of the thread cache gets a larger size written over its
         * header: handing it out for its old size would give away its neighbour. */
        char *p = must(5000);
        char *guard = must(16);
        sink = guard;
        free(p);
        ((size_t *)p)[-1] = 8208 | 1;
        sink = malloc(5000);
    } else if (!strcmp(mode, "corrupted-bin-links")) {
        char *p = must(3000);
        char *guard = must(16);
        sink = guard;
        free(p);
        memset(p, 'D', 16); /* fd and bk of a free chunk in the unsorted bin */
        sink = malloc(5000);
    } else {
        setup_failed("unknown mode %s", mode);
    }
    fact("survived", "1");
    return 0;
}
