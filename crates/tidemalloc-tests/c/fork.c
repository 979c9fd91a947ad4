/* S4.1: fork while other threads are inside the allocator; the child must be able to
 * allocate at once, from its main thread and from a new thread. A child that deadlocks is
 * killed by its alarm and counted as failed.
 * Usage: fork WORKERS FORKS */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include "observe.h"

static atomic_int stop;

static void *churn(void *arg)
{
    unsigned long state = (uintptr_t)arg * 0x9e3779b97f4a7c15UL;
    void *held[64] = {0};
    while (!atomic_load(&stop)) {
        state = state * 6364136223846793005UL + 1442695040888963407UL;
        int slot = (int)((state >> 33) % 64);
        free(held[slot]);
        size_t len = (state >> 40) % 100 == 0 ? 200 * 1024 : (state >> 45) % 2048;
        held[slot] = malloc(len);
        if (held[slot])
            memset(held[slot], 0x33, len);
    }
    for (int i = 0; i < 64; i++)
        free(held[i]);
    return NULL;
}

static void *child_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        char *p = malloc((size_t)(i * 97 + 1));
        if (!p)
            return (void *)1;
        fill(p, (size_t)(i * 97 + 1), (unsigned)i);
        if (!intact(p, (size_t)(i * 97 + 1), (unsigned)i))
            return (void *)1;
        free(p);
    }
    return NULL;
}

static int child(void)
{
    alarm(10);
    char *blocks[32];
    for (int i = 0; i < 32; i++) {
        size_t len = i % 8 == 0 ? 300 * 1024 : (size_t)(i * 500 + 16);
        blocks[i] = malloc(len);
        if (!blocks[i])
            return 1;
        fill(blocks[i], len, (unsigned)i);
    }
    pthread_t t;
    void *thread_result;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &thread_result) != 0)
        return 1;
    for (int i = 0; i < 32; i++) {
        size_t len = i % 8 == 0 ? 300 * 1024 : (size_t)(i * 500 + 16);
        if (!intact(blocks[i], len, (unsigned)i))
            return 1;
        free(blocks[i]);
    }
    return thread_result == NULL ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s WORKERS FORKS", argv[0]);
    int workers = atoi(argv[1]), forks = atoi(argv[2]);
    pthread_t ids[32];
    if (workers < 1 || workers > 32)
        setup_failed("WORKERS must be 1..32");
    for (int i = 0; i < workers; i++)
        if (pthread_create(&ids[i], NULL, churn, (void *)(uintptr_t)(i + 1)) != 0)
            setup_failed("pthread_create failed");
    int ok = 0, failed = 0, hung = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0)
            setup_failed("fork: %s", strerror(errno));
        if (pid == 0)
            _exit(child());
        int status;
        if (waitpid(pid, &status, 0) != pid)
            setup_failed("waitpid: %s", strerror(errno));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
            hung++;
        else
            failed++;
        /* The parent keeps allocating between forks, through the locks fork took. */
        free(malloc((size_t)(i % 50) * 1000 + 1));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < workers; i++)
        pthread_join(ids[i], NULL);
    fact("forks", "%d", forks);
    fact("children_ok", "%d", ok);
    fact("children_failed", "%d", failed);
    fact("children_hung", "%d", hung);
    return 0;
}
