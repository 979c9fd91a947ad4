/* The thread cache's range lists (chunks past 1 KiB, up to tcache_max): a freed block of
 * SIZE bytes, with a live guard after it, then a request of REQUEST bytes (a little less).
 * From a range list the block comes back whole, so its usable size stays SIZE's; from the
 * arena's bins it is split to fit REQUEST. mallinfo2 shows whether the freed block was held
 * as in use (cached) or counted free (in a bin). Usage: range_cache SIZE REQUEST */
#include <malloc.h>
#include "observe.h"

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s SIZE REQUEST", argv[0]);
    size_t size = (size_t)atol(argv[1]);
    size_t request = (size_t)atol(argv[2]);
    char *block = malloc(size);
    char *guard = malloc(16);
    if (!block || !guard)
        setup_failed("malloc returned NULL");
    fill(guard, 16, 7);
    struct mallinfo2 before = mallinfo2();
    free(block);
    struct mallinfo2 after = mallinfo2();
    fact("freed_counted_free", "%ld", (long)(after.fordblks - before.fordblks));
    char *again = malloc(request);
    if (!again)
        setup_failed("malloc(%zu) returned NULL", request);
    fact("reused", "%d", again == block);
    fact("usable", "%zu", malloc_usable_size(again));
    fill(again, request, 9);
    fact("intact", "%d", intact(again, request, 9) && intact(guard, 16, 7));
    free(again);
    free(guard);
    return 0;
}
