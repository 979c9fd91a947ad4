/* GLIBC_TUNABLES reach the allocator: 20 freed blocks of the size given on the command line,
 * each followed by a live guard (so nothing merges), and mallinfo2 shows where they went.
 * Chunks held by a thread cache count as in use; fast-bin chunks show in smblks, other free
 * chunks in ordblks. The test runs this under several settings of tcache_count, tcache_max
 * and mxfast, one size per process so that no earlier free chunk is split for these. */
#include <malloc.h>
#include "observe.h"

#define COUNT 20

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s SIZE", argv[0]);
    size_t size = (size_t)atol(argv[1]);
    char *blocks[COUNT], *guards[COUNT];
    for (int i = 0; i < COUNT; i++) {
        blocks[i] = malloc(size);
        guards[i] = malloc(2000);
        if (!blocks[i] || !guards[i])
            setup_failed("malloc returned NULL");
    }
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < COUNT; i++)
        free(blocks[i]);
    struct mallinfo2 after = mallinfo2();
    long fast = (long)(after.smblks - before.smblks);
    long ordinary = (long)(after.ordblks - before.ordblks);
    fact("smblks", "%ld", fast);
    fact("ordblks", "%ld", ordinary);
    fact("cached", "%ld", COUNT - fast - ordinary);
    for (int i = 0; i < COUNT; i++)
        free(guards[i]);
    return 0;
}
