/* Realloc growth: string builders that grow by exactly what they append and vector
 * builders that double their capacity, many at once per thread so that a block can not
 * always grow in place. Each builder is checked byte by byte when it is done. */
#include "common.h"

#define BUILDERS 32
#define TOTAL_APPENDS 20000000L
#define MAX_TARGET (256 * 1024)

struct builder {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t target;
    uint64_t tag;
    int doubling;
};

static unsigned char content(uint64_t tag, size_t i)
{
    return (unsigned char)(tag + i * 131 + (i >> 8));
}

static void start(struct builder *b, uint64_t *rng)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->tag = rng_next(rng);
    b->doubling = (int)rng_below(rng, 2);
    b->target = 256 + rng_below(rng, rng_below(rng, 4) == 0 ? MAX_TARGET : 8192);
}

static uint64_t finish(struct builder *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] != content(b->tag, i))
            wrong_data("builder content changed by realloc", i);
    free(b->data);
    return b->tag + b->len;
}

static void grow(struct builder *b, size_t need)
{
    size_t cap = b->doubling ? (b->cap ? b->cap : 16) : need;
    while (cap < need)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        out_of_memory(cap);
    b->data = p;
    b->cap = cap;
}

static void *run(void *arg)
{
    struct share *w = arg;
    uint64_t rng = 0x5000 + (uint64_t)w->index;
    struct builder builders[BUILDERS];
    uint64_t sum = 0;
    for (int i = 0; i < BUILDERS; i++)
        start(&builders[i], &rng);
    for (long n = 0; n < w->ops; n++) {
        struct builder *b = &builders[rng_below(&rng, BUILDERS)];
        size_t add = 1 + rng_below(&rng, 64);
        if (b->len + add > b->cap)
            grow(b, b->len + add);
        for (size_t i = b->len; i < b->len + add; i++)
            b->data[i] = content(b->tag, i);
        b->len += add;
        if (b->len >= b->target) {
            sum += finish(b);
            start(b, &rng);
        }
    }
    for (int i = 0; i < BUILDERS; i++)
        sum += finish(&builders[i]);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = arg_threads(argc, argv);
    long appends = TOTAL_APPENDS * arg_scale(argc, argv) / threads;
    print_checksum(run_workers(threads, appends, run));
    return 0;
}
