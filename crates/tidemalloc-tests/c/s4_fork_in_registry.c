/* S4.1, fork from a signal handler that interrupted the allocator while it held the lock of
 * its registry of mapped blocks. The main thread asks malloc_usable_size about a mapped
 * block in a loop (a look-up in the registry); a second thread maps and frees blocks in a
 * loop (malloc records each block in the registry under its arena's lock). A SIGALRM every
 * millisecond forks from the handler; each child allocates a block that size in the
 * handler and in a new thread, and exits. fork must return in the parent every time (the
 * second thread may hold its arena's lock while it waits for the registry that the
 * interrupted main thread holds), and no child may hang on the registry its interrupted
 * frame holds.
 * Usage: s4_fork_in_registry FORKS */
#define MAX_FORKS 2000
#include <malloc.h>
#include "fork_in_signal.h"

#define MAPPED_SIZE (256 * 1024)

/* A block of MAPPED_SIZE, written and read back: 0, or the failure's exit status. */
static int big_block(unsigned long seed)
{
    char *p = malloc(MAPPED_SIZE);
    if (!p)
        return CHILD_MALLOC_FAILED;
    fill(p, MAPPED_SIZE, (unsigned)seed);
    int ok = intact(p, MAPPED_SIZE, (unsigned)seed);
    free(p);
    return ok ? 0 : CHILD_BLOCK_CORRUPT;
}

static int child_in_handler(void)
{
    return in_handler_and_thread(big_block, 5, 6);
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved_errno = errno;
    fork_child(child_in_handler);
    errno = saved_errno;
}

static void *map_and_free(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        char *p = malloc(MAPPED_SIZE);
        if (!p)
            setup_failed("malloc(%d) returned NULL", MAPPED_SIZE);
        p[0] = 1;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    read_forks(argc, argv);
    /* A fixed threshold: every block of MAPPED_SIZE is mapped, never carved from a heap. */
    if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1)
        setup_failed("mallopt(M_MMAP_THRESHOLD) refused");
    char *mapped = malloc(MAPPED_SIZE);
    if (!mapped)
        setup_failed("malloc(%d) returned NULL", MAPPED_SIZE);
    pthread_t other, guard;
    start_forking(on_alarm, map_and_free, &other, &guard);
    size_t usable = 0;
    while (forks_started < forks_wanted)
        usable |= malloc_usable_size(mapped);
    stop_forking(other, guard);
    reap_children();
    fact("usable_seen", "%d", usable >= MAPPED_SIZE);
    free(mapped);
    return 0;
}
