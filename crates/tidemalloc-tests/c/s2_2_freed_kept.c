/* S2.2: freed chunks stay with the allocator, in its bins, rather than going back to the
 * kernel: the break does not move, mallinfo2 counts them as free, and requests of the same
 * size get them back before any new memory is used. */
#include <malloc.h>
#include "observe.h"

#define SMALL_COUNT 150
#define SMALL_SIZE 64
#define GUARD_SIZE 2000
/* Requests of a freed block's size, at most, until it comes back: glibc and tidemalloc's
 * range lists hand it out at once; the small chunk that tidemalloc's free parks comes back
 * once its list is used up, after the few chunks the list's first refill cached. */
#define REUSE_WITHIN 16

/* Blocks stay live to the end: a freed one could serve (or be split for) the next guard,
 * which would then sit before the next block instead of after it. */
static char *live[3 * (1 + REUSE_WITHIN)];
static int live_count;

/* One block of `size` with a live guard after it, so freeing it cannot merge into top.
 * The guard's size is one no thread cache refills in batches (above 1032 bytes), so it is
 * split off the top right after the block rather than taken from a batch cached earlier. */
static void kept(const char *name, size_t size)
{
    char key[64];
    char *block = malloc(size);
    char *guard = live[live_count++] = malloc(GUARD_SIZE);
    if (!block || !guard)
        setup_failed("malloc returned NULL");
    if (guard < block)
        setup_failed("the guard for %s lies below its block", name);
    struct mallinfo2 before = mallinfo2();
    uintptr_t brk_before = brk_now();
    free(block);
    struct mallinfo2 after = mallinfo2();
    snprintf(key, sizeof key, "%s_brk_moved", name);
    fact(key, "%ld", (long)(brk_now() - brk_before));
    snprintf(key, sizeof key, "%s_fordblks_delta", name);
    fact(key, "%ld", (long)(after.fordblks - before.fordblks));
    snprintf(key, sizeof key, "%s_ordblks_delta", name);
    fact(key, "%ld", (long)(after.ordblks - before.ordblks));
    snprintf(key, sizeof key, "%s_uordblks_delta", name);
    fact(key, "%ld", (long)(after.uordblks - before.uordblks));
    int reused = 0;
    for (int i = 0; i < REUSE_WITHIN && !reused; i++) {
        char *again = live[live_count++] = malloc(size);
        if (!again)
            setup_failed("malloc returned NULL");
        reused = again == block;
    }
    snprintf(key, sizeof key, "%s_reused", name);
    fact(key, "%d", reused);
    snprintf(key, sizeof key, "%s_brk_moved_on_reuse", name);
    fact(key, "%ld", (long)(brk_now() - brk_before));
}

int main(void)
{
    free(malloc(100));
    kept("kib", 1024);
    kept("four_kib", 4096);
    kept("forty_kib", 40 * 1024);

    /* Small chunks, more of them than a thread cache holds of one size (128 by default,
     * and the one free parked): at most a cache's worth stay out of the fast bins, the
     * rest show up in smblks/fsmblks; all of them come back for the same requests. */
    char *small[SMALL_COUNT], *small_guards[SMALL_COUNT];
    for (int i = 0; i < SMALL_COUNT; i++) {
        small[i] = malloc(SMALL_SIZE);
        small_guards[i] = malloc(200);
        if (!small[i] || !small_guards[i])
            setup_failed("malloc returned NULL");
    }
    struct mallinfo2 before = mallinfo2();
    uintptr_t brk_before = brk_now();
    for (int i = 0; i < SMALL_COUNT; i++)
        free(small[i]);
    struct mallinfo2 after = mallinfo2();
    fact("small_smblks_delta", "%ld", (long)(after.smblks - before.smblks));
    fact("small_fsmblks_delta", "%ld", (long)(after.fsmblks - before.fsmblks));
    /* A thread cache may also hold other free chunks of this size (up to its limit, which
     * is below SMALL_COUNT), handed out first: twice as many requests as freed chunks use
     * up every free chunk of the size before any new memory would be. */
    int reused = 0;
    char *again[2 * SMALL_COUNT];
    for (int i = 0; i < 2 * SMALL_COUNT; i++) {
        again[i] = malloc(SMALL_SIZE);
        for (int j = 0; j < SMALL_COUNT; j++)
            reused += again[i] == small[j];
    }
    fact("small_count", "%d", SMALL_COUNT);
    fact("small_reused", "%d", reused);
    fact("small_brk_moved", "%ld", (long)(brk_now() - brk_before));
    for (int i = 0; i < 2 * SMALL_COUNT; i++)
        free(again[i]);
    for (int i = 0; i < SMALL_COUNT; i++)
        free(small_guards[i]);
    for (int i = 0; i < live_count; i++)
        free(live[i]);

    /* A block whose bytes are all 0xb2 holds, in its second word, what tidemalloc's free
     * chunks carry there (top byte 0xb2): it is still an in-use block, and a free of it is
     * kept as any other of its size (a thread cache holds 200-byte blocks by default). */
    char *tagged = malloc(200);
    char *tagged_guard = malloc(200);
    if (!tagged || !tagged_guard)
        setup_failed("malloc returned NULL");
    memset(tagged, 0xb2, 200);
    struct mallinfo2 tagged_before = mallinfo2();
    free(tagged);
    struct mallinfo2 tagged_after = mallinfo2();
    fact("tagged_fordblks_delta", "%ld", (long)(tagged_after.fordblks - tagged_before.fordblks));
    fact("tagged_uordblks_delta", "%ld", (long)(tagged_after.uordblks - tagged_before.uordblks));
    char *tagged_again = malloc(200);
    fact("tagged_reused", "%d", tagged_again == tagged);
    free(tagged_again);
    free(tagged_guard);
    return 0;
}
