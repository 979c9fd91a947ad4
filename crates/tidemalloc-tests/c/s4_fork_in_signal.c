/* S4.1, fork from a signal handler that interrupted malloc or free: the main thread runs a
 * malloc/free loop while a second thread does the same; a SIGALRM every millisecond forks
 * from the handler. Inside the handler the child allocates in the forking thread itself,
 * then in a new thread, and exits. No child may hang, in the parent the interrupted call
 * must carry on, and no block may be damaged.
 *
 * POSIX makes neither malloc nor (since POSIX.1-2024) fork async-signal-safe, and glibc's
 * allocator can deadlock here; tidemalloc promises that this works, so it is tested.
 * Usage: s4_fork_in_signal FORKS */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include "observe.h"

#define MAX_FORKS 1000
#define CHILD_ROUNDS 100
#define DEADLINE_MS 20000
#define PARENT_DEADLINE_MS 15000

/* How a child failed, as its exit status. */
enum {
    CHILD_MALLOC_FAILED = 10,
    CHILD_BLOCK_CORRUPT = 11,
    CHILD_THREAD_FAILED = 12,
};

static int forks_wanted;
static pid_t children[MAX_FORKS];
static volatile sig_atomic_t forks_started, fork_errors, forks_inside_allocator;
/* Per thread: the handler runs on the main thread and asks about the main thread's call. */
static _Thread_local volatile sig_atomic_t inside_allocator;
static atomic_int stop, parent_done;
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

/* Allocates, checks and frees; returns 0 or the failure's exit status. */
static int allocate_and_check(unsigned long from, int rounds)
{
    for (int i = 0; i < rounds; i++) {
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

static void *child_thread(void *arg)
{
    return (void *)(uintptr_t)allocate_and_check((uintptr_t)arg, CHILD_ROUNDS);
}

/* Runs in the child, still inside the signal handler. */
static int child_in_handler(void)
{
    int failure = allocate_and_check(7, CHILD_ROUNDS);
    if (failure)
        return failure;
    pthread_t t;
    void *result;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)forks_started) != 0 ||
        pthread_join(t, &result) != 0)
        return CHILD_THREAD_FAILED;
    return (int)(uintptr_t)result;
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved_errno = errno;
    if (forks_started < forks_wanted) {
        forks_inside_allocator += inside_allocator;
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_in_handler());
        if (pid > 0)
            children[forks_started++] = pid;
        else
            fork_errors++;
    }
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

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A fork that never returns in the parent (a lock the handler's own thread holds) would
 * leave nothing to read: say how far it got instead, and take the children along. */
static void *watchdog(void *arg)
{
    (void)arg;
    long deadline = now_ms() + PARENT_DEADLINE_MS;
    const struct timespec pause = {0, 10 * 1000 * 1000};
    while (!atomic_load(&parent_done)) {
        if (now_ms() > deadline) {
            fact("parent_hung_after_forks", "%d", (int)forks_started);
            for (int i = 0; i < forks_started; i++)
                kill(children[i], SIGKILL);
            _exit(4);
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s FORKS", argv[0]);
    forks_wanted = atoi(argv[1]);
    if (forks_wanted < 1 || forks_wanted > MAX_FORKS)
        setup_failed("FORKS must be 1..%d", MAX_FORKS);

    /* Only the main thread takes the signal: the other one keeps its arena busy. */
    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
    pthread_t other, guard;
    if (pthread_create(&other, NULL, other_thread, NULL) != 0 ||
        pthread_create(&guard, NULL, watchdog, NULL) != 0)
        setup_failed("pthread_create failed");
    pthread_sigmask(SIG_UNBLOCK, &alarm_only, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        setup_failed("sigaction: %s", strerror(errno));
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    if (setitimer(ITIMER_REAL, &every_ms, NULL) != 0)
        setup_failed("setitimer: %s", strerror(errno));
    allocation_loop(1, 0);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    pthread_join(other, NULL);
    atomic_store(&parent_done, 1);
    pthread_join(guard, NULL);

    int ok = 0, failed = 0, hung = 0, first_failure = 0;
    long deadline = now_ms() + DEADLINE_MS;
    const struct timespec pause = {0, 1000 * 1000};
    for (int i = 0; i < forks_started; i++) {
        int status;
        pid_t got;
        while ((got = waitpid(children[i], &status, WNOHANG)) == 0 && now_ms() < deadline)
            nanosleep(&pause, NULL);
        if (got < 0)
            setup_failed("waitpid: %s", strerror(errno));
        if (got == 0) {
            hung++;
            kill(children[i], SIGKILL);
            waitpid(children[i], &status, 0);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            ok++;
        } else {
            failed++;
            if (!first_failure)
                first_failure = status;
        }
    }
    fact("forks", "%d", (int)forks_started);
    fact("fork_errors", "%d", (int)fork_errors);
    fact("forks_inside_allocator", "%d", (int)forks_inside_allocator);
    fact("children_ok", "%d", ok);
    fact("children_failed", "%d", failed);
    fact("children_hung", "%d", hung);
    fact("first_failure_wait_status", "%d", first_failure);
    fact("parent_corrupted_blocks", "%ld", atomic_load(&loop_corrupted));
    return 0;
}
