/* What the environment asked for, seen from outside: how far the first allocation moved the
 * break (top pad), whether a 200 KiB block is mapped (mmap threshold, mmap max), whether
 * freeing a large block at the top moves the break down (trim threshold), what a fresh block
 * and a freed one hold (perturb), and whether freeing a stack address ends the process (the
 * check action). The test runs it under MALLOC_*_ variables and GLIBC_TUNABLES. */
#include <malloc.h>
#include "observe.h"

int main(int argc, char **argv)
{
    uintptr_t brk0 = brk_now();
    char *first = malloc(100);
    fact("first_growth_kib", "%ld", (long)((brk_now() - brk0) / 1024));

    char *big = malloc(200 * 1024);
    fact("big_in_heap", "%d", in_heap(big));
    free(big);

    /* 600 KiB below the mmap threshold that tests set, then freed at the top. */
    char *top = malloc(600 * 1024);
    uintptr_t before = brk_now();
    free(top);
    fact("trim_kib", "%ld", (long)((before - brk_now()) / 1024));

    /* 40 KiB: past the thread cache, whose frees glibc does not perturb either. */
    char *fresh = malloc(40 * 1024);
    fact("fresh_byte", "%d", (unsigned char)fresh[100]);
    char *kept = malloc(16);
    free(fresh);
    fact("freed_byte", "%d", (unsigned char)fresh[100]);
    free(kept);

    /* 5000 bytes, written, freed and asked for again: glibc takes it from its bins and
     * fills it; tidemalloc hands it back from a range list and fills it too. */
    char *again = malloc(5000);
    char *guard = malloc(16);
    memset(again, 'x', 5000);
    free(again);
    again = malloc(5000);
    fact("reused_byte", "%d", (unsigned char)again[100]);
    free(again);
    free(guard);

    if (argc > 1 && !strcmp(argv[1], "bad-free")) {
        char local[64];
        memset(local, 'A', sizeof local);
        free(local + 16);
        fact("survived_bad_free", "1");
    }
    free(first);
    return 0;
}
