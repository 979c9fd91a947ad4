/* What the programs that fork from a signal handler share (s4_fork_in_signal.c,
 * s4_fork_in_registry.c): a SIGALRM every millisecond that only the main thread takes, the
 * forks its handler makes, a watchdog for a parent whose fork never returns, and the
 * reaping of the children. The includer defines MAX_FORKS and calls `fork_child` from its
 * handler. */
#ifndef TIDEMALLOC_TESTS_FORK_IN_SIGNAL_H
#define TIDEMALLOC_TESTS_FORK_IN_SIGNAL_H

#include "observe.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

/* How long the parent may take over its forks, and the children over their work. */
#define PARENT_DEADLINE_MS 15000
#define CHILD_DEADLINE_MS 20000

/* How a child failed, as its exit status. */
enum {
    CHILD_MALLOC_FAILED = 10,
    CHILD_BLOCK_CORRUPT = 11,
    CHILD_THREAD_FAILED = 12,
};

static int forks_wanted;
static pid_t children[MAX_FORKS];
static volatile sig_atomic_t forks_started, fork_errors;
/* `stop` ends the busy thread's loop; `parent_done` the watchdog's. */
static atomic_int stop, parent_done;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* From the handler: one more fork, if more are wanted. The child runs `in_child`, still
 * inside the handler, and exits with what it returns. */
static void fork_child(int (*in_child)(void))
{
    if (forks_started >= forks_wanted)
        return;
    pid_t pid = fork();
    if (pid == 0)
        _exit(in_child());
    if (pid > 0)
        children[forks_started++] = pid;
    else
        fork_errors++;
}

/* What a child's work in a new thread runs. */
static int (*thread_work)(unsigned long);

static void *work_thread(void *arg)
{
    return (void *)(uintptr_t)thread_work((uintptr_t)arg);
}

/* In a child: `work(here)` in the handler, then `work(there)` in a new thread; 0, or the
 * first failure's exit status. */
static int in_handler_and_thread(int (*work)(unsigned long), unsigned long here, unsigned long there)
{
    int failure = work(here);
    if (failure)
        return failure;
    thread_work = work;
    pthread_t t;
    void *result;
    if (pthread_create(&t, NULL, work_thread, (void *)(uintptr_t)there) != 0 ||
        pthread_join(t, &result) != 0)
        return CHILD_THREAD_FAILED;
    return (int)(uintptr_t)result;
}

/* A fork that never returns in the parent (a lock the handler's own thread holds, or one
 * its holder cannot let go before fork returns) would leave nothing to read: say how far it
 * got instead, and take the children along. */
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

/* Reads FORKS, the program's one argument. */
static void read_forks(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s FORKS", argv[0]);
    forks_wanted = atoi(argv[1]);
    if (forks_wanted < 1 || forks_wanted > MAX_FORKS)
        setup_failed("FORKS must be 1..%d", MAX_FORKS);
}

/* Starts `busy` and the watchdog in threads that do not take SIGALRM, then a SIGALRM every
 * millisecond, which `on_alarm` handles on the main thread. */
static void start_forking(void (*on_alarm)(int), void *(*busy)(void *), pthread_t *busy_thread,
                          pthread_t *guard)
{
    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
    if (pthread_create(busy_thread, NULL, busy, NULL) != 0 ||
        pthread_create(guard, NULL, watchdog, NULL) != 0)
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
}

/* Stops the alarm, then the busy thread and the watchdog. */
static void stop_forking(pthread_t busy_thread, pthread_t guard)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    pthread_join(busy_thread, NULL);
    atomic_store(&parent_done, 1);
    pthread_join(guard, NULL);
}

/* Waits for every child (one still running at the deadline is killed and counted hung)
 * and reports the forks and how the children ended. */
static void reap_children(void)
{
    int ok = 0, failed = 0, hung = 0, first_failure = 0;
    long deadline = now_ms() + CHILD_DEADLINE_MS;
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
    fact("children_ok", "%d", ok);
    fact("children_failed", "%d", failed);
    fact("children_hung", "%d", hung);
    fact("first_failure_wait_status", "%d", first_failure);
}

#endif
