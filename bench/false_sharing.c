/* False sharing, after Hoard's cache-scratch and cache-thrash: threads allocate small
 * objects and write them hard. An allocator that places objects of different threads in
 * one cache line makes the cores fight over it.
 *   scratch: the main thread allocates one object per thread side by side and hands them
 *            out; each thread frees its object, then allocates and writes its own.
 *   thrash:  each thread allocates, writes and frees its own objects from the start. */
#include "common.h"

#define OBJECT_SIZE 8
#define WRITES 400
#define TOTAL_OBJECTS 1200000L

struct worker {
    unsigned char *handed;
    long objects;
    uint64_t sum;
};

static uint64_t write_hard(volatile unsigned char *p)
{
    for (int i = 0; i < OBJECT_SIZE; i++)
        p[i] = 0;
    for (int r = 0; r < WRITES; r++)
        for (int i = 0; i < OBJECT_SIZE; i++)
            p[i]++;
    uint64_t sum = 0;
    for (int i = 0; i < OBJECT_SIZE; i++) {
        if (p[i] != (unsigned char)WRITES)
            wrong_data("object changed under its writer", p[i]);
        sum += p[i];
    }
    return sum;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    free(w->handed);
    uint64_t sum = 0;
    for (long i = 0; i < w->objects; i++) {
        unsigned char *p = xmalloc(OBJECT_SIZE);
        sum += write_hard(p);
        free(p);
    }
    w->sum = sum;
    return NULL;
}

static uint64_t phase(int threads, long objects, int scratch)
{
    pthread_t tid[threads];
    struct worker workers[threads];
    for (int i = 0; i < threads; i++)
        workers[i] = (struct worker){ .handed = scratch ? xmalloc(OBJECT_SIZE) : NULL,
                                      .objects = objects };
    for (int i = 0; i < threads; i++)
        start_thread(&tid[i], run, &workers[i]);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        sum += workers[i].sum;
    }
    return sum;
}

int main(int argc, char **argv)
{
    int threads = arg_threads(argc, argv);
    long objects = TOTAL_OBJECTS * arg_scale(argc, argv) / threads / 2;
    uint64_t sum = phase(threads, objects, 1);
    sum += phase(threads, objects, 0);
    print_checksum(sum);
    return 0;
}
