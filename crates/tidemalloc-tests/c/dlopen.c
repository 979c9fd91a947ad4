/* The library loaded with dlopen rather than preloaded, as a plugin that links it would
 * load it: it must find room for its thread-local data in the static TLS that glibc keeps
 * for such libraries (a few hundred bytes), and its own malloc and free must work there.
 * Usage: dlopen LIBRARY */
#include <dlfcn.h>
#include "observe.h"

int main(int argc, char **argv)
{
    if (argc != 2)
        setup_failed("usage: %s LIBRARY", argv[0]);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    fact("loaded", "%d", lib != NULL);
    if (!lib) {
        fact("why", "%s", dlerror());
        return 0;
    }
    void *(*lib_malloc)(size_t) = (void *(*)(size_t))dlsym(lib, "malloc");
    void (*lib_free)(void *) = (void (*)(void *))dlsym(lib, "free");
    if (!lib_malloc || !lib_free)
        setup_failed("malloc or free not found in %s", argv[1]);
    int ok = 1;
    char *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = lib_malloc(16 + (size_t)i * 97);
        ok &= blocks[i] != NULL;
        if (blocks[i])
            fill(blocks[i], 16 + (size_t)i * 97, (unsigned)i);
    }
    for (int i = 0; i < 100; i++) {
        ok &= blocks[i] != NULL && intact(blocks[i], 16 + (size_t)i * 97, (unsigned)i);
        lib_free(blocks[i]);
    }
    fact("works", "%d", ok);
    return 0;
}
