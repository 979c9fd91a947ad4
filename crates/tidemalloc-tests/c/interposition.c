/* The preloaded library really serves the malloc family: every symbol the drop-in
 * promises resolves (as the dynamic linker sees it for the whole process) to a function
 * inside libtidemalloc.so, and its marker `tidemalloc_version` is there. */
#include "observe.h"
#include <dlfcn.h>

static const char *const symbols[] = {
    "malloc",         "free",          "calloc",           "realloc",       "reallocarray",
    "memalign",       "posix_memalign", "aligned_alloc",   "valloc",        "pvalloc",
    "malloc_usable_size", "mallopt",   "malloc_trim",      "mallinfo",      "mallinfo2",
    "malloc_stats",   "malloc_info",   "__libc_malloc",    "__libc_free",   "__libc_calloc",
    "__libc_realloc", "__libc_memalign",
};

static const char *owner(void *fn)
{
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || !info.dli_fname)
        return "(unresolved)";
    return info.dli_fname;
}

int main(void)
{
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "owner_%s", symbols[i]);
        fact(key, "%s", owner(dlsym(RTLD_DEFAULT, symbols[i])));
    }
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "tidemalloc_version");
    fact("marker_found", "%d", version != NULL);
    if (version) {
        fact("marker_owner", "%s", owner((void *)version));
        fact("version", "%s", version());
    }
    /* The program's own call goes the same way as dlsym's answer. */
    fact("direct_call_owner", "%s", owner((void *)&malloc));
    return 0;
}
