//! The only module that talks to the kernel (and to the few libc entry points that are thin
//! wrappers around system calls). Everything here is allocation-free.

use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size, read once from `sysconf` and cached.
#[inline]
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions and does not allocate.
    let read = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if read > 0 { read as usize } else { 4096 };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Rounds `n` up to a whole number of pages; `None` on overflow.
#[inline]
pub fn page_align_up(n: usize) -> Option<usize> {
    let mask = page_size() - 1;
    n.checked_add(mask).map(|v| v & !mask)
}

/// Rounds `n` down to a page boundary.
#[inline]
pub fn page_align_down(n: usize) -> usize {
    n & !(page_size() - 1)
}

/// A fresh private anonymous read-write mapping of `len` bytes, or `None`.
pub fn map(len: usize) -> Option<usize> {
    // SAFETY: an anonymous mapping with a null hint touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Unmaps `[addr, addr + len)`.
///
/// # Safety
/// The range must be a mapping (or part of one) that this allocator owns and nobody uses.
pub unsafe fn unmap(addr: usize, len: usize) {
    // SAFETY: the caller guarantees the range is ours and dead.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
}

/// Moves a mapping to `new_len` bytes, possibly to a new address.
///
/// # Safety
/// `[addr, addr + old_len)` must be a whole mapping owned by the caller.
pub unsafe fn remap(addr: usize, old_len: usize, new_len: usize) -> Option<usize> {
    // SAFETY: the caller owns the whole mapping; MREMAP_MAYMOVE keeps its contents.
    let p = unsafe {
        libc::mremap(
            addr as *mut libc::c_void,
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Tells the kernel the pages of `[addr, addr + len)` may be dropped; they read back as zeros.
///
/// # Safety
/// The range must be page aligned, mapped, and hold nothing anyone needs.
pub unsafe fn discard(addr: usize, len: usize) -> bool {
    // SAFETY: the caller guarantees the pages hold no live data.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// Moves the program break by `delta` bytes and returns the old break, or `None`.
/// glibc's `sbrk` is used (not the raw system call) so that glibc's cached break stays true
/// when glibc's own malloc shares the process with us.
pub fn sbrk(delta: isize) -> Option<usize> {
    // SAFETY: sbrk only moves the break; callers only ever give back memory they own.
    let p = unsafe { libc::sbrk(delta) };
    (p as isize != -1).then_some(p as usize)
}

/// The current program break.
pub fn current_break() -> usize {
    sbrk(0).unwrap_or(0)
}

/// Reads the calling thread's errno.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's valid errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
#[inline]
pub fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// Writes all of `bytes` to file descriptor `fd`, retrying short writes.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length come from a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Ends the process with SIGABRT.
pub fn abort() -> ! {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Sleeps while `*word == expected`, until woken.
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the futex word is a live, aligned u32 for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        )
    };
}

/// Wakes one thread sleeping on `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
}

/// Reads environment variable `name` (NUL terminated) without allocating.
pub fn getenv(name: &'static [u8]) -> Option<&'static [u8]> {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: `name` is NUL terminated; getenv returns a pointer into the environment block,
    // which lives as long as the process unless someone calls setenv concurrently.
    let p = unsafe { libc::getenv(name.as_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null getenv result is a NUL-terminated string.
    let len = unsafe { libc::strlen(p) };
    // SAFETY: `len` bytes from `p` are readable, as strlen just walked them.
    Some(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// Registers fork handlers with pthread_atfork.
pub fn register_atfork(
    prepare: unsafe extern "C" fn(),
    parent: unsafe extern "C" fn(),
    child: unsafe extern "C" fn(),
) {
    // SAFETY: the handlers are plain functions that live for the whole process.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Reserves `size` bytes of address space aligned to `size` (a power of two), mapped
/// PROT_NONE so it costs no memory until committed.
pub fn reserve_aligned(size: usize) -> Option<usize> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: an anonymous PROT_NONE mapping with a null hint touches no existing memory.
    let p = unsafe { libc::mmap(ptr::null_mut(), 2 * size, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return None;
    }
    let raw = p as usize;
    let start = (raw + size - 1) & !(size - 1);
    // SAFETY: both trimmed ends belong to the mapping just made and hold nothing.
    unsafe {
        if start > raw {
            unmap(raw, start - raw);
        }
        let tail = raw + 2 * size - (start + size);
        if tail > 0 {
            unmap(start + size, tail);
        }
    }
    Some(start)
}

/// Makes `[addr, addr + len)` of a reservation read-write.
pub fn commit(addr: usize, len: usize) -> bool {
    // SAFETY: the range lies in a reservation owned by the caller.
    unsafe {
        libc::mprotect(
            addr as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
        ) == 0
    }
}

/// Online processors (glibc's `__get_nprocs`), at least 1.
pub fn cpu_count() -> usize {
    static CACHED: AtomicUsize = AtomicUsize::new(0);
    let cached = CACHED.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; glibc reads /sys without allocating here.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    CACHED.store(n, Ordering::Relaxed);
    n
}

/// A random word from the kernel (for the tcache key), or a weaker one from addresses and
/// the clock when getrandom is unavailable.
pub fn random_word() -> usize {
    let mut word = 0usize;
    // SAFETY: the buffer is a live local of the given size.
    let got = unsafe {
        libc::getrandom(
            (&mut word as *mut usize).cast(),
            core::mem::size_of::<usize>(),
            libc::GRND_NONBLOCK,
        )
    };
    if got != core::mem::size_of::<usize>() as isize {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a live local.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        word = (&word as *const usize as usize).rotate_left(17) ^ ts.tv_nsec as usize;
    }
    word | 1
}

/// A thread-specific-data key whose destructor runs at each thread's exit, or `None`.
pub fn thread_exit_key(destructor: unsafe extern "C" fn(*mut libc::c_void)) -> Option<u32> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a live local; the destructor lives for the whole process.
    (unsafe { libc::pthread_key_create(&mut key, Some(destructor)) } == 0).then_some(key)
}

/// Sets this thread's value for `key`, so that its destructor runs at thread exit.
pub fn set_thread_value(key: u32, value: usize) {
    // SAFETY: the key was created by `thread_exit_key`; the value is an opaque word.
    unsafe { libc::pthread_setspecific(key, value as *const libc::c_void) };
}

/// This process's id.
pub fn pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// An untouched read-write mapping of `len` bytes that reserves no swap: its pages cost
/// nothing until written (used for the chunk-start bitmaps).
pub fn map_unreserved(len: usize) -> Option<usize> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: an anonymous mapping with a null hint touches no existing memory.
    let p = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
    (p != libc::MAP_FAILED).then_some(p as usize)
}
