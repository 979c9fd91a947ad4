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
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include "observe.h"

#define MAX_FORKS 2000
#define MAPPED_SIZE (256 * 1024)
#define PARENT_DEADLINE_MS 20000

static int forks_wanted;
static pid_t children[MAX_FORKS];
static volatile sig_atomic_t forks_started, fork_errors;
static atomic_int stop, parent_done;

/* A block of MAPPED_SIZE, written and read back: 0, or how it failed. */
static int big_block(void)
{
    char *p = malloc(MAPPED_SIZE);
    if (!p)
        return 10;
    fill(p, MAPPED_SIZE, 5);
    int ok = intact(p, MAPPED_SIZE, 5);
    free(p);
    return ok ? 0 : 11;
}

static void *child_thread(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)big_block();
}

/* Runs in the child, still inside the signal handler: a big block here, then in a new
 * thread. */
static int child_in_handler(void)
{
    int failure = big_block();
    if (failure)
        return failure;
    pthread_t t;
    void *result;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &result) != 0)
        return 12;
    return (int)(uintptr_t)result;
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved_errno = errno;
    if (forks_started < forks_wanted) {
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

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A fork that never returns in the parent leaves nothing to read: say how far it got. */
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
    /* A fixed threshold: every block of MAPPED_SIZE is mapped, never carved from a heap. */
    if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1)
        setup_failed("mallopt(M_MMAP_THRESHOLD) refused");
    char *mapped = malloc(MAPPED_SIZE);
    if (!mapped)
        setup_failed("malloc(%d) returned NULL", MAPPED_SIZE);

    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
    pthread_t other, guard;
    if (pthread_create(&other, NULL, map_and_free, NULL) != 0 ||
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
    size_t usable = 0;
    while (forks_started < forks_wanted)
        usable |= malloc_usable_size(mapped);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    pthread_join(other, NULL);
    atomic_store(&parent_done, 1);
    pthread_join(guard, NULL);

    int ok = 0, failed = 0;
    for (int i = 0; i < forks_started; i++) {
        int status;
        if (waitpid(children[i], &status, 0) == children[i] && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0)
            ok++;
        else
            failed++;
    }
    fact("forks", "%d", (int)forks_started);
    fact("fork_errors", "%d", (int)fork_errors);
    fact("children_ok", "%d", ok);
    fact("children_failed", "%d", failed);
    fact("usable_seen", "%d", usable >= MAPPED_SIZE);
    free(mapped);
    return 0;
}
