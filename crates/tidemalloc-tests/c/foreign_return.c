/* A block past the small lists (20000 bytes) freed by a thread of another arena goes back
 * to its own arena at once, not into a batch the freeing thread holds until 32 have piled
 * up: the main thread gets it back for its next requests of that size while the freeing
 * thread is still alive. */
#include <pthread.h>
#include "observe.h"

#define SIZE 20000

static char *block;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int freed, done;

static void *freer(void *arg)
{
    (void)arg;
    free(malloc(64)); /* gives this thread an arena of its own */
    free(block);
    pthread_mutex_lock(&lock);
    freed = 1;
    pthread_cond_broadcast(&changed);
    while (!done)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    block = malloc(SIZE);
    char *guard = malloc(16);
    if (!block || !guard)
        setup_failed("malloc returned NULL");
    pthread_t t;
    if (pthread_create(&t, NULL, freer, NULL))
        setup_failed("pthread_create failed");
    pthread_mutex_lock(&lock);
    while (!freed)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    char *a = malloc(SIZE);
    char *b = malloc(SIZE);
    if (!a || !b)
        setup_failed("malloc returned NULL");
    fact("returned", "%d", a == block || b == block);
    pthread_mutex_lock(&lock);
    done = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    pthread_join(t, NULL);
    free(a);
    free(b);
    free(guard);
    return 0;
}
