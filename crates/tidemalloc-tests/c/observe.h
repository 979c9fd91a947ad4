/* What the test programs look at from outside the allocator: the break, /proc/self/maps,
 * page faults, residency and RSS. Nothing here calls malloc (no stdio streams, no fopen),
 * so observing the heap does not change it. Programs report what they saw as `key=value`
 * lines on stdout; the Rust side parses them and asserts. */
#ifndef TIDEMALLOC_TESTS_OBSERVE_H
#define TIDEMALLOC_TESTS_OBSERVE_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Print one `key=value` line with write(2) from a static buffer. */
__attribute__((format(printf, 2, 3))) static inline void fact(const char *key, const char *fmt, ...)
{
    static char line[4096];
    int n = snprintf(line, sizeof line, "%s=", key);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(1, line + off, (size_t)(n - off));
        if (w <= 0)
            _exit(3);
        off += (int)w;
    }
}

/* Setup went wrong in a way that says nothing about the allocator: exit 2 with a reason. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void setup_failed(const char *fmt, ...)
{
    static char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(2, "setup failed: ", 14) < 0 || write(2, line, (size_t)n) < 0)
        _exit(2);
    _exit(2);
}

/* A size the compiler cannot see, so it neither warns about nor folds requests that are
 * meant to fail. */
static inline size_t opaque(size_t v)
{
    __asm__ volatile("" : "+r"(v));
    return v;
}

static inline uintptr_t brk_now(void) { return (uintptr_t)sbrk(0); }

static inline size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Read a whole /proc file into a static buffer (one buffer per call site is not needed:
 * every caller parses the text before the next read). */
static inline const char *read_proc(const char *path)
{
    static char text[1 << 20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        setup_failed("open %s: %s", path, strerror(errno));
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, text + len, sizeof text - 1 - len);
        if (r < 0)
            setup_failed("read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == sizeof text - 1)
            setup_failed("%s is larger than the buffer", path);
    }
    close(fd);
    text[len] = '\0';
    return text;
}

struct mapping {
    uintptr_t start, end;
    char perms[5];
    char name[256];
};

/* The /proc/self/maps line whose range holds addr; 0 when addr is not mapped. */
static inline int mapping_of(uintptr_t addr, struct mapping *out)
{
    const char *line = read_proc("/proc/self/maps");
    while (*line) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        unsigned long start, end;
        char perms[5];
        int name_at = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &name_at) >= 3 &&
            addr >= start && addr < end) {
            out->start = start;
            out->end = end;
            memcpy(out->perms, perms, sizeof out->perms);
            size_t name_len = 0;
            if (name_at > 0 && line + name_at < eol)
                name_len = (size_t)(eol - (line + name_at));
            if (name_len >= sizeof out->name)
                name_len = sizeof out->name - 1;
            memcpy(out->name, line + name_at, name_len);
            out->name[name_len] = '\0';
            return 1;
        }
        line = *eol ? eol + 1 : eol;
    }
    return 0;
}

static inline int is_mapped(const void *p)
{
    struct mapping m;
    return mapping_of((uintptr_t)p, &m);
}

static inline int in_heap(const void *p)
{
    struct mapping m;
    return mapping_of((uintptr_t)p, &m) && strcmp(m.name, "[heap]") == 0;
}

/* An anonymous mapping of its own: mapped, no file, not the [heap] or a stack. */
static inline int in_anonymous_mapping(const void *p)
{
    struct mapping m;
    return mapping_of((uintptr_t)p, &m) && m.name[0] == '\0';
}

static inline long minor_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        setup_failed("getrusage: %s", strerror(errno));
    return ru.ru_minflt;
}

/* A field of /proc/self/status in kB (VmRSS, RssAnon, ...). */
static inline long status_kb(const char *field)
{
    const char *text = read_proc("/proc/self/status");
    size_t len = strlen(field);
    for (const char *line = text; *line;) {
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            return strtol(line + len + 1, NULL, 10);
        const char *eol = strchr(line, '\n');
        if (!eol)
            break;
        line = eol + 1;
    }
    setup_failed("no %s in /proc/self/status", field);
}

/* How many of the whole pages inside [p, p+len) are resident. */
static inline size_t resident_pages(const void *p, size_t len)
{
    static unsigned char vec[1 << 20];
    size_t page = page_size();
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(page - 1);
    if (end <= start)
        return 0;
    size_t pages = (end - start) / page;
    if (pages > sizeof vec)
        setup_failed("mincore range of %zu pages is too large", pages);
    if (mincore((void *)start, end - start, vec) != 0)
        setup_failed("mincore: %s", strerror(errno));
    size_t resident = 0;
    for (size_t i = 0; i < pages; i++)
        resident += vec[i] & 1;
    return resident;
}

/* A xorshift step: cheap, repeatable random numbers for the programs' sizes and slots. */
static inline uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Fill and check blocks with a pattern that depends on the block's identity, so a block
 * that overlaps another, or is handed out twice, shows up as a mismatch. */
static inline void fill(void *p, size_t len, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

static inline int intact(const void *p, size_t len, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != (unsigned char)(seed * 131u + i * 7u + (i >> 8)))
            return 0;
    return 1;
}

/* S3.2: a thread arena's heap is a 64 MiB reservation aligned to 64 MiB. */
#define THREAD_HEAP_SIZE ((uintptr_t)64 << 20)

static inline uintptr_t heap_base(const void *p) { return (uintptr_t)p & ~(THREAD_HEAP_SIZE - 1); }

/* Whether the /proc/self/maps text at `line` describes a growing thread heap: an anonymous
 * `rw-p` mapping that covers a 64 MiB-aligned base, directly followed by a `---p` mapping
 * that ends where the 64 MiB range from that base does. (The `rw-p` part may start below
 * the base: the kernel joins it with an anonymous mapping of the same kind just below.)
 * Sets *base and *rw_bytes (the read-write part's length from the base). */
static inline int parse_thread_heap(const char *line, uintptr_t *base, size_t *rw_bytes)
{
    unsigned long start, end, next_start, next_end;
    char perms[5], next_perms[5];
    int name_at = 0;
    if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &name_at) < 3)
        return 0;
    const char *eol = strchr(line, '\n');
    if (!eol || strcmp(perms, "rw-p") != 0 || (name_at > 0 && line + name_at < eol))
        return 0;
    if (sscanf(eol + 1, "%lx-%lx %4s", &next_start, &next_end, next_perms) != 3 ||
        next_start != end || strcmp(next_perms, "---p") != 0 || next_end % THREAD_HEAP_SIZE != 0)
        return 0;
    uintptr_t heap = next_end - THREAD_HEAP_SIZE;
    if (heap < start || heap >= end)
        return 0;
    if (base)
        *base = heap;
    if (rw_bytes)
        *rw_bytes = end - heap;
    return 1;
}

/* Whether a growing thread heap starts at `base`; *rw_bytes as for parse_thread_heap. */
static inline int thread_heap_at(uintptr_t base, size_t *rw_bytes)
{
    const char *maps = read_proc("/proc/self/maps");
    for (const char *line = maps; *line;) {
        uintptr_t found;
        if (parse_thread_heap(line, &found, rw_bytes) && found == base)
            return 1;
        const char *eol = strchr(line, '\n');
        if (!eol)
            break;
        line = eol + 1;
    }
    return 0;
}

/* How many growing thread heaps /proc/self/maps shows. */
static inline int count_thread_heaps(void)
{
    int heaps = 0;
    const char *maps = read_proc("/proc/self/maps");
    for (const char *line = maps; *line;) {
        heaps += parse_thread_heap(line, NULL, NULL);
        const char *eol = strchr(line, '\n');
        if (!eol)
            break;
        line = eol + 1;
    }
    return heaps;
}

#endif
