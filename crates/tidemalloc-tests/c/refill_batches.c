/* How many chunks each refill of one thread-cache list takes from the arena: 200-byte
 * requests (a size asked for nowhere else) are made and kept, and after each one
 * mallinfo2's in-use bytes show whether the arena handed out chunks, and how many. The
 * sizes of the first REFILLS jumps are printed, in chunks, as `refill_N`. */
#include <malloc.h>
#include "observe.h"

#define REQUEST 200
#define CHUNK 208
#define REFILLS 6
#define MAX_BLOCKS 1000

int main(void)
{
    static char *blocks[MAX_BLOCKS];
    int seen = 0;
    /* The process's first allocation sets the allocator and this thread up (which may
     * itself allocate); that is not what is measured. */
    free(malloc(50));
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < MAX_BLOCKS && seen < REFILLS; i++) {
        blocks[i] = malloc(REQUEST);
        if (!blocks[i])
            setup_failed("malloc returned NULL");
        size_t now = mallinfo2().uordblks;
        if (now != before) {
            if ((now - before) % CHUNK != 0)
                setup_failed("in-use bytes grew by %zu, not whole chunks", now - before);
            char key[32];
            snprintf(key, sizeof key, "refill_%d", seen);
            fact(key, "%zu", (now - before) / CHUNK);
            seen++;
            before = now;
        }
    }
    return 0;
}
