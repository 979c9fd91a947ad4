/* Bad input never corrupts: overflowing sizes give NULL and ENOMEM and leave the old block
 * alone, bad alignments give EINVAL, and the edge cases of the API behave as glibc's. */
#include <malloc.h>
#include <pthread.h>
#include "observe.h"

/* After a failed realloc the old block is still the caller's: using it is the point. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

#define MIB (1024 * 1024)
#define HUGE (40 * MIB)

static void overflow(void)
{
    char *old = malloc(1000);
    if (!old)
        setup_failed("malloc(1000) returned NULL");
    fill(old, 1000, 4);
    size_t usable = malloc_usable_size(old);

    errno = 0;
    void *p = calloc(opaque(SIZE_MAX / 2), 3);
    fact("calloc_overflow_null", "%d", p == NULL);
    fact("calloc_overflow_enomem", "%d", errno == ENOMEM);

    errno = 0;
    p = reallocarray(old, opaque(SIZE_MAX / 2), 3);
    fact("reallocarray_overflow_null", "%d", p == NULL);
    fact("reallocarray_overflow_enomem", "%d", errno == ENOMEM);

    errno = 0;
    p = realloc(old, opaque((size_t)PTRDIFF_MAX + 1));
    fact("realloc_huge_null", "%d", p == NULL);
    fact("realloc_huge_enomem", "%d", errno == ENOMEM);

    fact("old_block_intact", "%d", intact(old, 1000, 4));
    fact("old_block_usable_unchanged", "%d", malloc_usable_size(old) == usable);
    char *moved = realloc(old, 100000);
    fact("old_block_still_reallocs", "%d", moved != NULL && intact(moved, 1000, 4));
    free(moved);
}

static void alignment(void)
{
    void *untouched = (void *)0x1234;
    void *p = untouched;
    fact("posix_memalign_3", "%d", posix_memalign(&p, 3, 10));
    fact("posix_memalign_3_untouched", "%d", p == untouched);
    fact("posix_memalign_4", "%d", posix_memalign(&p, 4, 10));
    fact("posix_memalign_4_untouched", "%d", p == untouched);
    fact("posix_memalign_24", "%d", posix_memalign(&p, 24, 10));
    fact("posix_memalign_0", "%d", posix_memalign(&p, 0, 10));
    fact("posix_memalign_0_untouched", "%d", p == untouched);
    int rc = posix_memalign(&p, 64, 10);
    fact("posix_memalign_64", "%d", rc);
    fact("posix_memalign_64_aligned", "%d", rc == 0 && (uintptr_t)p % 64 == 0);
    if (rc == 0)
        free(p);

    /* glibc 2.36 treats aligned_alloc as memalign and rounds 3 up to 4; 2.38+ refuses it
     * with EINVAL (C17). A drop-in for "2.36+" may do either, never anything else. */
    errno = 0;
    p = aligned_alloc(3, 10);
    int err = errno;
    fact("aligned_alloc_3_null", "%d", p == NULL);
    fact("aligned_alloc_3_einval", "%d", err == EINVAL);
    fact("aligned_alloc_3_aligned_4", "%d", p != NULL && (uintptr_t)p % 4 == 0);
    free(p);

    /* Alignments from 16 bytes to 1 MiB, small and mmapped sizes, all live at once. */
    enum { ALIGNS = 17, SIZES = 2 };
    static const size_t sizes[SIZES] = {1000, 300000};
    void *blocks[ALIGNS][SIZES];
    int misaligned = 0, failed = 0, damaged = 0;
    for (int i = 0; i < ALIGNS; i++)
        for (int j = 0; j < SIZES; j++) {
            size_t align = (size_t)16 << i;
            blocks[i][j] = memalign(align, sizes[j]);
            if (!blocks[i][j]) {
                failed++;
                continue;
            }
            misaligned += (uintptr_t)blocks[i][j] % align != 0;
            fill(blocks[i][j], sizes[j], (unsigned)(i * SIZES + j));
        }
    for (int i = 0; i < ALIGNS; i++)
        for (int j = 0; j < SIZES; j++)
            if (blocks[i][j]) {
                damaged += !intact(blocks[i][j], sizes[j], (unsigned)(i * SIZES + j));
                free(blocks[i][j]);
            }
    fact("memalign_failed", "%d", failed);
    fact("memalign_misaligned", "%d", misaligned);
    fact("memalign_damaged", "%d", damaged);
    fact("memalign_largest", "%zu", (size_t)16 << (ALIGNS - 1));
}

/* free(NULL) as a new thread's first call, before its cache is set up. */
static void *free_null_first(void *unused)
{
    (void)unused;
    errno = EBADF;
    free(NULL);
    return (void *)(long)(errno == EBADF);
}

static void edges(void)
{
    size_t page = page_size();

    /* realloc(p, 0) frees p: an mmapped block makes the free visible. Above 32 MiB a
     * block is mmapped whatever the dynamic threshold has become. */
    char *big = malloc(HUGE);
    struct mallinfo2 before = mallinfo2();
    errno = 0;
    void *r = realloc(big, 0);
    struct mallinfo2 after = mallinfo2();
    fact("realloc_zero_null", "%d", r == NULL);
    fact("realloc_zero_hblks_delta", "%ld", (long)(after.hblks - before.hblks));
    fact("realloc_zero_unmapped", "%d", !is_mapped(big));

    char *fresh = realloc(NULL, 100);
    fact("realloc_null_is_malloc", "%d", fresh != NULL && malloc_usable_size(fresh) >= 100);
    free(fresh);

    errno = EBADF;
    free(NULL);
    fact("free_null_keeps_errno", "%d", errno == EBADF);
    pthread_t t;
    void *kept = NULL;
    if (pthread_create(&t, NULL, free_null_first, NULL) || pthread_join(t, &kept))
        setup_failed("thread");
    fact("free_null_first_in_thread_keeps_errno", "%d", kept != NULL);

    char *small = malloc(100);
    big = malloc(HUGE);
    errno = EBADF;
    free(small);
    int after_small = errno;
    errno = EBADF;
    free(big);
    fact("free_keeps_errno_small", "%d", after_small == EBADF);
    fact("free_keeps_errno_mmapped", "%d", errno == EBADF);

    fact("usable_size_null", "%zu", malloc_usable_size(NULL));

    void *zero_a = malloc(0), *zero_b = malloc(0);
    fact("malloc_zero_unique", "%d", zero_a && zero_b && zero_a != zero_b);
    free(zero_a);
    free(zero_b);

    void *pv = pvalloc(0);
    fact("pvalloc_0_page_aligned", "%d", pv != NULL && (uintptr_t)pv % page == 0);
    free(pv);
    pv = pvalloc(1);
    fact("pvalloc_1_page_aligned", "%d", pv != NULL && (uintptr_t)pv % page == 0);
    fact("pvalloc_1_whole_page", "%d", pv != NULL && malloc_usable_size(pv) >= page);
    free(pv);
    void *v = valloc(1);
    fact("valloc_1_page_aligned", "%d", v != NULL && (uintptr_t)v % page == 0);
    free(v);
    v = valloc(5000);
    fact("valloc_5000_page_aligned", "%d", v != NULL && (uintptr_t)v % page == 0);
    free(v);

    char *grow = malloc(100);
    fill(grow, 100, 5);
    grow = realloc(grow, HUGE);
    fact("realloc_to_mmapped_keeps_data", "%d", grow != NULL && intact(grow, 100, 5));
    fill(grow, HUGE, 6);
    grow = realloc(grow, 50);
    fact("realloc_shrink_keeps_data", "%d", grow != NULL && intact(grow, 50, 6));
    free(grow);

    /* In place: a request within the usable size (104 for 100 bytes) keeps the block, and
     * so does one that leaves less than a chunk to spare (90: a 96-byte chunk in 112);
     * 40 bytes leave 64 to spare, which go back to the arena. */
    char *block = malloc(100);
    char *guard = malloc(16);
    if (!block || !guard)
        setup_failed("malloc returned NULL");
    uintptr_t at = (uintptr_t)block;
    fill(block, 100, 7);
    block = realloc(block, 104);
    fact("realloc_within_usable_in_place", "%d", (uintptr_t)block == at && intact(block, 100, 7));
    block = realloc(block, 90);
    fact("realloc_small_shrink_in_place", "%d",
         (uintptr_t)block == at && malloc_usable_size(block) == 104 && intact(block, 90, 7));
    block = realloc(block, 40);
    fact("realloc_shrink_splits_in_place", "%d",
         (uintptr_t)block == at && malloc_usable_size(block) == 40 && intact(block, 40, 7));
    free(block);
    free(guard);
}

int main(void)
{
    overflow();
    alignment();
    edges();
    return 0;
}
