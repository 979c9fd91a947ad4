/* S1.5: malloc hands out virtual memory; pages cost a fault when first touched. Sizes no
 * address space can hold fail with NULL and ENOMEM. */
#include "observe.h"

#define GIB (1024UL * 1024 * 1024)
#define TOUCHED 2000

static void impossible(const char *name, size_t size)
{
    char key[64];
    errno = 0;
    void *p = malloc(opaque(size));
    int err = errno;
    snprintf(key, sizeof key, "%s_null", name);
    fact(key, "%d", p == NULL);
    snprintf(key, sizeof key, "%s_enomem", name);
    fact(key, "%d", err == ENOMEM);
    free(p);
}

int main(void)
{
    size_t page = page_size();
    free(malloc(100));

    long faults_before = minor_faults();
    char *p = malloc(GIB);
    long faults_after_malloc = minor_faults();
    if (!p)
        setup_failed("malloc(1 GiB) returned NULL");
    /* Transparent huge pages would turn N touches into N/512 faults; this test counts
     * 4 KiB pages, so it asks for small pages on the part it touches. */
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    madvise((void *)start, TOUCHED * page, MADV_NOHUGEPAGE);
    long faults_before_touch = minor_faults();
    for (size_t i = 0; i < TOUCHED; i++)
        ((volatile char *)start)[i * page] = 1;
    long faults_after_touch = minor_faults();
    fact("malloc_faults", "%ld", faults_after_malloc - faults_before);
    fact("touched_pages", "%d", TOUCHED);
    fact("touch_faults", "%ld", faults_after_touch - faults_before_touch);
    fact("resident_pages", "%zu", resident_pages(p, GIB));
    free(p);

    impossible("half_address_space", SIZE_MAX / 2);
    impossible("past_ptrdiff_max", (size_t)PTRDIFF_MAX + 1);
    impossible("size_max", SIZE_MAX);
    return 0;
}
