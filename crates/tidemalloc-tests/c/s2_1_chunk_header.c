/* S2.1: every chunk carries an 8-byte size word before the user memory and is a multiple
 * of 16 bytes, so the usable size of malloc(n) follows from n alone; mmapped chunks use a
 * 16-byte header at the start of their pages. Prints one `usable_<n>=<usable>` and
 * `aligned_<n>` pair per request size. */
#include <malloc.h>
#include "observe.h"

static const size_t sizes[] = {0,   1,    8,    16,   23,   24,    25,    32,     40,     41,    56,
                               57,  100,  127,  128,  1000,  1024, 4096, 10000, 65536, 131071,
                               200000, 1048576};

int main(void)
{
    char key[64];
    fact("page_size", "%zu", page_size());
    void *blocks[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i])
            setup_failed("malloc(%zu) returned NULL", sizes[i]);
        size_t usable = malloc_usable_size(blocks[i]);
        /* The whole usable size is the caller's to write. */
        memset(blocks[i], 0xab, usable);
        snprintf(key, sizeof key, "usable_%zu", sizes[i]);
        fact(key, "%zu", usable);
        snprintf(key, sizeof key, "aligned_%zu", sizes[i]);
        fact(key, "%d", (uintptr_t)blocks[i] % 16 == 0);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free(blocks[i]);
    return 0;
}
