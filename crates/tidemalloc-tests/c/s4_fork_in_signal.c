/* S4.1, fork from a signal handler that interrupted malloc or free: the main thread runs a
 * malloc/free loop while a second thread does the same; a SIGALRM every millisecond forks
 * from the handler. Inside the handler the child allocates in the forking thread itself,
 * then in a new thread, and exits. No child may hang, in the parent the interrupted call
 * must carry on, and no block may be damaged.
 *
 * POSIX makes neither malloc nor (since POSIX.1-2024) fork async-signal-safe, and glibc's
 * allocator can deadlock here; tidemalloc promises that this works, so it is tested.
 * Usage: s4_fork_in_signal FORKS */
#define MAX_FORKS 1000
#include "fork_in_signal.h"

#define CHILD_ROUNDS 100

static volatile sig_atomic_t forks_inside_allocator;
/* Per thread: the handler runs on the main thread and asks about the main thread's call. */
static _Thread_local volatile sig_atomic_t inside_allocator;
static atomic_long loop_corrupted;

/* Sizes from the thread cache, from the arena (under its lock) and from mmap. */
static size_t size_for(unsigned long i)
{
    unsigned long r = (i * 2654435761UL) >> 7;
    if (r % 20 == 0)
        return 140 * 1024 + r % 4096;
    if (r % 3 == 0)
        return 1100 + r % 6000;
    return 1 + r % 1000;
}

/* Allocates, checks and frees CHILD_ROUNDS blocks; returns 0 or the failure's exit status. */
static int allocate_and_check(unsigned long from)
{
    for (int i = 0; i < CHILD_ROUNDS; i++) {
        size_t len = size_for(from + (unsigned long)i);
        unsigned char *p = malloc(len);
        if (!p)
            return CHILD_MALLOC_FAILED;
        fill(p, len, (unsigned)i);
        int ok = intact(p, len, (unsigned)i);
        free(p);
        if (!ok)
            return CHILD_BLOCK_CORRUPT;
    }
    return 0;
}

static int child_in_handler(void)
{
    return in_handler_and_thread(allocate_and_check, 7, (unsigned long)forks_started);
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved_errno = errno;
    if (forks_started < forks_wanted)
        forks_inside_allocator += inside_allocator;
    fork_child(child_in_handler);
    errno = saved_errno;
}

/* The loop the signal interrupts: the flag tells the handler whether it came inside a call. */
static void allocation_loop(unsigned long seed, int check_stop)
{
    for (unsigned long i = seed; check_stop ? !atomic_load(&stop) : forks_started < forks_wanted; i++) {
        size_t len = size_for(i);
        inside_allocator = 1;
        unsigned char *p = malloc(len);
        inside_allocator = 0;
        if (!p)
            setup_failed("malloc(%zu) returned NULL in the parent", len);
        p[0] = (unsigned char)i;
        p[len - 1] = (unsigned char)(i >> 8);
        if (p[0] != (unsigned char)i || p[len - 1] != (unsigned char)(i >> 8))
            atomic_fetch_add(&loop_corrupted, 1);
        inside_allocator = 1;
        free(p);
        inside_allocator = 0;
    }
}

static void *other_thread(void *arg)
{
    (void)arg;
    allocation_loop(1000003, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    read_forks(argc, argv);
    /* Only the main thread takes the signal: the other one keeps its arena busy. */
    pthread_t other, guard;
    start_forking(on_alarm, other_thread, &other, &guard);
    allocation_loop(1, 0);
    stop_forking(other, guard);
    reap_children();
    fact("forks_inside_allocator", "%d", (int)forks_inside_allocator);
    fact("parent_corrupted_blocks", "%ld", atomic_load(&loop_corrupted));
    return 0;
}
