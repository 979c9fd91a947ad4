/* S4.1 under load: worker threads allocate, verify and free without pause while the main
 * thread forks again and again. Each child checks and frees the blocks it inherited from
 * every worker's arena and from the main thread, allocates from its main thread and from a
 * new thread, and exits. The parent gives each child a deadline: a child stuck on a lock
 * inherited from the fork is killed and counted as hung.
 * Usage: s4_fork_storm WORKERS FORKS */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include "observe.h"

#define MAX_WORKERS 8
#define SLOTS 64
#define PARENT_HELD 16
#define CHILD_BLOCKS 32
#define CHILD_THREAD_ROUNDS 200
#define CHILD_DEADLINE_MS 10000

/* How a child failed, as its exit status. */
enum {
    INHERITED_CORRUPT = 10,
    CHILD_MALLOC_FAILED = 11,
    CHILD_BLOCK_CORRUPT = 12,
    CHILD_THREAD_FAILED = 13,
};

/* A block carries its own length and seed, so whoever inherits it can check it. */
struct block_header {
    size_t len;
    unsigned seed;
};

/* Published only once filled, taken back before being checked and freed: a child sees
 * either a complete block or nothing. */
static _Atomic(unsigned char *) held[MAX_WORKERS][SLOTS];
static unsigned char *parent_held[PARENT_HELD];
static atomic_int stop;
static atomic_long worker_corrupted, worker_failed;

static unsigned long next_lcg(unsigned long *state)
{
    *state = *state * 6364136223846793005UL + 1442695040888963407UL;
    return *state >> 17;
}

/* Mostly small, sometimes a few KiB, now and then above the mmap threshold. */
static size_t random_len(unsigned long *state)
{
    unsigned long r = next_lcg(state);
    if (r % 100 == 0)
        return 160 * 1024 + r % (64 * 1024);
    if (r % 10 == 0)
        return 2048 + r % 8192;
    return sizeof(struct block_header) + r % 1024;
}

static unsigned char *make_block(size_t len, unsigned seed)
{
    unsigned char *p = malloc(len);
    if (!p)
        return NULL;
    struct block_header h = {len, seed};
    memcpy(p, &h, sizeof h);
    fill(p + sizeof h, len - sizeof h, seed);
    return p;
}

static int block_intact(const unsigned char *p)
{
    struct block_header h;
    memcpy(&h, p, sizeof h);
    return h.len >= sizeof h && intact(p + sizeof h, h.len - sizeof h, h.seed);
}

static void *churn(void *arg)
{
    int w = (int)(uintptr_t)arg;
    unsigned long state = 0x9e3779b97f4a7c15UL * (unsigned long)(w + 1);
    while (!atomic_load(&stop)) {
        int slot = (int)(next_lcg(&state) % SLOTS);
        unsigned char *old = atomic_exchange(&held[w][slot], NULL);
        if (old) {
            if (!block_intact(old))
                atomic_fetch_add(&worker_corrupted, 1);
            free(old);
        }
        unsigned char *p = make_block(random_len(&state), (unsigned)next_lcg(&state));
        if (!p)
            atomic_fetch_add(&worker_failed, 1);
        atomic_store(&held[w][slot], p);
    }
    for (int slot = 0; slot < SLOTS; slot++) {
        unsigned char *p = atomic_exchange(&held[w][slot], NULL);
        if (p && !block_intact(p))
            atomic_fetch_add(&worker_corrupted, 1);
        free(p);
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    unsigned long state = (uintptr_t)arg;
    for (int i = 0; i < CHILD_THREAD_ROUNDS; i++) {
        unsigned char *p = make_block(random_len(&state), (unsigned)i);
        if (!p)
            return (void *)(uintptr_t)CHILD_MALLOC_FAILED;
        if (!block_intact(p))
            return (void *)(uintptr_t)CHILD_BLOCK_CORRUPT;
        free(p);
    }
    return NULL;
}

static int child(int workers, unsigned long seed)
{
    for (int w = 0; w < workers; w++)
        for (int slot = 0; slot < SLOTS; slot++) {
            unsigned char *p = atomic_load(&held[w][slot]);
            if (p && !block_intact(p))
                return INHERITED_CORRUPT;
            free(p);
        }
    for (int i = 0; i < PARENT_HELD; i++) {
        if (!block_intact(parent_held[i]))
            return INHERITED_CORRUPT;
        free(parent_held[i]);
    }
    unsigned char *blocks[CHILD_BLOCKS];
    for (int i = 0; i < CHILD_BLOCKS; i++)
        if (!(blocks[i] = make_block(random_len(&seed), (unsigned)i)))
            return CHILD_MALLOC_FAILED;
    pthread_t t;
    void *thread_result;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)seed) != 0 ||
        pthread_join(t, &thread_result) != 0)
        return CHILD_THREAD_FAILED;
    for (int i = 0; i < CHILD_BLOCKS; i++) {
        if (!block_intact(blocks[i]))
            return CHILD_BLOCK_CORRUPT;
        free(blocks[i]);
    }
    return (int)(uintptr_t)thread_result;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits for `pid` until the deadline; kills it if it is still running then. Returns its
 * wait status, and sets *hung when it had to be killed. */
static int wait_with_deadline(pid_t pid, int *hung)
{
    long deadline = now_ms() + CHILD_DEADLINE_MS;
    const struct timespec pause = {0, 200 * 1000};
    int status;
    *hung = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return status;
        if (got < 0)
            setup_failed("waitpid: %s", strerror(errno));
        if (now_ms() > deadline)
            break;
        nanosleep(&pause, NULL);
    }
    *hung = 1;
    kill(pid, SIGKILL);
    if (waitpid(pid, &status, 0) != pid)
        setup_failed("waitpid after kill: %s", strerror(errno));
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        setup_failed("usage: %s WORKERS FORKS", argv[0]);
    int workers = atoi(argv[1]), forks = atoi(argv[2]);
    if (workers < 1 || workers > MAX_WORKERS)
        setup_failed("WORKERS must be 1..%d", MAX_WORKERS);
    pthread_t ids[MAX_WORKERS];
    for (int i = 0; i < workers; i++)
        if (pthread_create(&ids[i], NULL, churn, (void *)(uintptr_t)i) != 0)
            setup_failed("pthread_create failed");
    unsigned long state = 12345;
    for (int i = 0; i < PARENT_HELD; i++)
        if (!(parent_held[i] = make_block(random_len(&state), (unsigned)i)))
            setup_failed("malloc returned NULL");

    int ok = 0, failed = 0, hung = 0, first_failure = 0, parent_corrupted = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0)
            setup_failed("fork: %s", strerror(errno));
        if (pid == 0)
            _exit(child(workers, state + (unsigned long)i));
        int was_hung;
        int status = wait_with_deadline(pid, &was_hung);
        if (was_hung) {
            hung++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            ok++;
        } else {
            failed++;
            if (!first_failure)
                first_failure = status;
        }
        /* The parent keeps allocating between forks, through the locks fork took. */
        int slot = i % PARENT_HELD;
        parent_corrupted += !block_intact(parent_held[slot]);
        free(parent_held[slot]);
        if (!(parent_held[slot] = make_block(random_len(&state), (unsigned)i)))
            setup_failed("malloc returned NULL");
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < workers; i++)
        pthread_join(ids[i], NULL);
    for (int i = 0; i < PARENT_HELD; i++)
        free(parent_held[i]);
    fact("forks", "%d", forks);
    fact("children_ok", "%d", ok);
    fact("children_failed", "%d", failed);
    fact("children_hung", "%d", hung);
    fact("first_failure_wait_status", "%d", first_failure);
    fact("parent_corrupted_blocks", "%d", parent_corrupted);
    fact("worker_corrupted_blocks", "%ld", atomic_load(&worker_corrupted));
    fact("worker_failed_allocations", "%ld", atomic_load(&worker_failed));
    return 0;
}
