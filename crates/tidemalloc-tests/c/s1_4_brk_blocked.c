/* S1.4: when the break cannot move (a mapping sits right above it) or is not where the
 * allocator left it (someone else called sbrk), the main arena goes on with mmap and
 * never hands out memory it does not own.
 * Usage: s1_4_brk_blocked blocked|foreign */
#include "observe.h"

#define BLOCKS 64
#define BLOCK_SIZE (64 * 1024)
#define SENTINEL 0x5a

static int overlaps(const char *p, size_t len, const char *region, size_t region_len)
{
    return p < region + region_len && region < p + len;
}

static void check_region(const char *region, size_t len, const char *what)
{
    int untouched = 1;
    for (size_t i = 0; i < len; i++)
        untouched &= region[i] == SENTINEL;
    char key[64];
    snprintf(key, sizeof key, "%s_untouched", what);
    fact(key, "%d", untouched);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s blocked|foreign", argv[0]);
    size_t page = page_size();
    char *first = malloc(100);
    if (!first)
        setup_failed("malloc(100) returned NULL");

    char *region;
    size_t region_len;
    if (strcmp(argv[1], "blocked") == 0) {
        uintptr_t at = (brk_now() + page - 1) & ~(page - 1);
        region_len = 16 * page;
        region = mmap((void *)at, region_len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (region == MAP_FAILED || (uintptr_t)region != at)
            setup_failed("could not map a page right above the break at %#lx", (unsigned long)at);
    } else {
        region_len = page;
        region = sbrk((intptr_t)region_len);
        if (region == (void *)-1)
            setup_failed("sbrk(%zu): %s", region_len, strerror(errno));
    }
    memset(region, SENTINEL, region_len);
    uintptr_t brk_start = brk_now();

    /* 4 MiB in blocks under the mmap threshold: far more than the first heap growth, so
     * the arena must get more memory while the break is blocked or foreign. */
    char *blocks[BLOCKS];
    int failed = 0, overlapping = 0, in_heap_count = 0;
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (!blocks[i]) {
            failed++;
            continue;
        }
        overlapping += overlaps(blocks[i], BLOCK_SIZE, region, region_len);
        in_heap_count += in_heap(blocks[i]);
        fill(blocks[i], BLOCK_SIZE, (unsigned)i);
    }
    int damaged = 0;
    for (int i = 0; i < BLOCKS; i++)
        if (blocks[i] && !intact(blocks[i], BLOCK_SIZE, (unsigned)i))
            damaged++;
    fact("failed", "%d", failed);
    fact("overlapping", "%d", overlapping);
    fact("damaged", "%d", damaged);
    fact("blocks_in_heap", "%d", in_heap_count);
    fact("brk_moved", "%ld", (long)(brk_now() - brk_start));
    check_region(region, region_len, "region");
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    free(first);
    check_region(region, region_len, "region_after_free");
    return 0;
}
