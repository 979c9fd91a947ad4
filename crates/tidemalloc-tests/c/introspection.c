/* S5.1 tuning and introspection: mallopt answers as glibc's does, mallinfo2 follows what
 * the program allocated, malloc_stats prints glibc's report to stderr, malloc_info writes
 * glibc's XML.
 * Usage: introspection mallopt|mallinfo|stats|info */
#include <malloc.h>
#include "observe.h"

#define MIB (1024 * 1024)
#define SMALL_COUNT 10
#define SMALL_SIZE 10000

static void print_mallinfo(const char *prefix, struct mallinfo2 m)
{
    char key[64];
#define FIELD(name)                                               \
    snprintf(key, sizeof key, "%s_" #name, prefix);               \
    fact(key, "%zu", m.name);
    FIELD(arena)
    FIELD(ordblks)
    FIELD(smblks)
    FIELD(hblks)
    FIELD(hblkhd)
    FIELD(usmblks)
    FIELD(fsmblks)
    FIELD(uordblks)
    FIELD(fordblks)
    FIELD(keepcost)
#undef FIELD
}

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s mallopt|mallinfo|stats|info", argv[0]);
    if (strcmp(argv[1], "mallopt") == 0) {
        fact("unknown_param", "%d", mallopt(999, 1));
        fact("mxfast_160", "%d", mallopt(M_MXFAST, 160));
        fact("mxfast_161", "%d", mallopt(M_MXFAST, 161));
        fact("mxfast_0", "%d", mallopt(M_MXFAST, 0));
        fact("mmap_threshold_64mib", "%d", mallopt(M_MMAP_THRESHOLD, 64 * MIB));
        fact("trim_threshold_1gib", "%d", mallopt(M_TRIM_THRESHOLD, 1024 * MIB));
        fact("top_pad", "%d", mallopt(M_TOP_PAD, 64 * 1024));
        fact("mmap_max_0", "%d", mallopt(M_MMAP_MAX, 0));
        fact("perturb", "%d", mallopt(M_PERTURB, 0x55));
        fact("check_action", "%d", mallopt(M_CHECK_ACTION, 3));
        fact("arena_max", "%d", mallopt(M_ARENA_MAX, 2));
        fact("arena_test", "%d", mallopt(M_ARENA_TEST, 4));
        /* With M_MMAP_MAX 0 nothing is mmapped, however large. */
        struct mallinfo2 before = mallinfo2();
        char *big = malloc(4 * MIB);
        fact("mmap_max_0_hblks_delta", "%ld", (long)(mallinfo2().hblks - before.hblks));
        fact("mmap_max_0_in_heap", "%d", big != NULL && in_heap(big));
        /* M_PERTURB fills fresh blocks with the complement of its byte. */
        unsigned char *perturbed = malloc(64);
        int all = 1;
        for (int i = 0; perturbed && i < 64; i++)
            all &= perturbed[i] == (unsigned char)~0x55;
        fact("perturb_fill", "%d", perturbed != NULL && all);
        free(perturbed);
        free(big);
        return 0;
    }
    free(malloc(100));
    struct mallinfo2 start = mallinfo2();
    char *big = malloc(MIB);
    struct mallinfo2 with_big = mallinfo2();
    char *small[SMALL_COUNT];
    for (int i = 0; i < SMALL_COUNT; i++)
        small[i] = malloc(SMALL_SIZE);
    struct mallinfo2 with_small = mallinfo2();
    if (!big)
        setup_failed("malloc(1 MiB) returned NULL");

    if (strcmp(argv[1], "mallinfo") == 0) {
        fact("page_size", "%zu", page_size());
        print_mallinfo("start", start);
        print_mallinfo("big", with_big);
        print_mallinfo("small", with_small);
        /* Deprecated, but still exported and still used by old programs. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
        fact("old_uordblks", "%d", old.uordblks);
        fact("old_hblkhd", "%d", old.hblkhd);
    } else if (strcmp(argv[1], "stats") == 0) {
        print_mallinfo("now", with_small);
        malloc_stats();
    } else {
        print_mallinfo("now", with_small);
        /* The XML goes to stdout after the facts, starting at the marker line. */
        fact("xml", "follows");
        fflush(stdout);
        if (malloc_info(0, stdout) != 0)
            setup_failed("malloc_info(0, stdout) failed: %s", strerror(errno));
        fflush(stdout);
        fact("malloc_info_1_result", "%d", malloc_info(1, stderr));
    }
    for (int i = 0; i < SMALL_COUNT; i++)
        free(small[i]);
    free(big);
    return 0;
}
