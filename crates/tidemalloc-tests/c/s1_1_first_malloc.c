/* S1.1: the first malloc grows the main heap with brk by far more than asked. */
#include "observe.h"

int main(void)
{
    uintptr_t before = brk_now();
    char *p = malloc(100);
    uintptr_t after = brk_now();
    if (!p)
        setup_failed("malloc(100) returned NULL");
    fact("page_size", "%zu", page_size());
    fact("brk_growth", "%lu", (unsigned long)(after - before));
    fact("in_heap", "%d", in_heap(p));
    fact("below_break", "%d", (uintptr_t)p + 100 <= after);
    free(p);
    return 0;
}
