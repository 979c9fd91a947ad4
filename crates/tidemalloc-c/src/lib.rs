//! libtidemalloc.so / libtidemalloc.a: tidemalloc behind glibc's malloc symbols, for
//! `LD_PRELOAD` or linking ahead of libc. Every function forwards to `tidemalloc::api`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod report;

use core::ffi::{c_char, c_int, c_void};
use tm::api;

/// glibc's `struct mallinfo`: the same fields as `mallinfo2`, as `int`.
#[repr(C)]
pub struct Mallinfo {
    arena: c_int,
    ordblks: c_int,
    smblks: c_int,
    hblks: c_int,
    hblkhd: c_int,
    usmblks: c_int,
    fsmblks: c_int,
    uordblks: c_int,
    fordblks: c_int,
    keepcost: c_int,
}

/// `malloc(3)`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    api::malloc(size).cast()
}

/// `free(3)`.
///
/// # Safety
/// `ptr` is NULL or a live block from this library.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: the C caller's contract.
    unsafe { api::free(ptr.cast()) }
}

/// `cfree`: the historic alias of free.
///
/// # Safety
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn cfree(ptr: *mut c_void) {
    // SAFETY: the C caller's contract.
    unsafe { api::free(ptr.cast()) }
}

/// `calloc(3)`.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    api::calloc(count, size).cast()
}

/// `realloc(3)`.
///
/// # Safety
/// `ptr` is NULL or a live block from this library.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the C caller's contract.
    unsafe { api::realloc(ptr.cast(), size).cast() }
}

/// `reallocarray(3)`.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    // SAFETY: the C caller's contract.
    unsafe { api::reallocarray(ptr.cast(), count, size).cast() }
}

/// `memalign(3)`.
#[no_mangle]
pub extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    api::memalign(alignment, size).cast()
}

/// `posix_memalign(3)`.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: the C caller's contract.
    unsafe { api::posix_memalign(out.cast(), alignment, size) }
}

/// `aligned_alloc(3)`.
#[no_mangle]
pub extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    api::aligned_alloc(alignment, size).cast()
}

/// `valloc(3)`.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    api::valloc(size).cast()
}

/// `pvalloc(3)`.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    api::pvalloc(size).cast()
}

/// `malloc_usable_size(3)`.
///
/// # Safety
/// `ptr` is NULL or a block from this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    // SAFETY: the C caller's contract.
    unsafe { api::malloc_usable_size(ptr.cast()) }
}

/// `mallopt(3)`.
#[no_mangle]
pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    api::mallopt(param, value)
}

/// `malloc_trim(3)`.
#[no_mangle]
pub extern "C" fn malloc_trim(pad: usize) -> c_int {
    api::malloc_trim(pad)
}

/// `mallinfo2(3)`.
#[no_mangle]
pub extern "C" fn mallinfo2() -> tm::Mallinfo2 {
    tm::mallinfo2()
}

/// `mallinfo(3)`: mallinfo2 truncated to int, as glibc does.
#[no_mangle]
pub extern "C" fn mallinfo() -> Mallinfo {
    let m = tm::mallinfo2();
    Mallinfo {
        arena: m.arena as c_int,
        ordblks: m.ordblks as c_int,
        smblks: m.smblks as c_int,
        hblks: m.hblks as c_int,
        hblkhd: m.hblkhd as c_int,
        usmblks: m.usmblks as c_int,
        fsmblks: m.fsmblks as c_int,
        uordblks: m.uordblks as c_int,
        fordblks: m.fordblks as c_int,
        keepcost: m.keepcost as c_int,
    }
}

/// `malloc_stats(3)`.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    tm::stats::malloc_stats()
}

/// `malloc_info(3)`.
///
/// # Safety
/// `fp` must be an open stdio stream.
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    // SAFETY: the C caller's contract.
    unsafe { tm::stats::malloc_info(options, fp) }
}

/// `__libc_malloc`: the name glibc's own objects use; defining it keeps static links from
/// pulling in glibc's malloc.
#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

/// `__libc_free`.
///
/// # Safety
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn __libc_free(ptr: *mut c_void) {
    // SAFETY: the C caller's contract.
    unsafe { free(ptr) }
}

/// `__libc_calloc`.
#[no_mangle]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

/// `__libc_realloc`.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the C caller's contract.
    unsafe { realloc(ptr, size) }
}

/// `__libc_memalign`.
#[no_mangle]
pub extern "C" fn __libc_memalign(alignment: usize, size: usize) -> *mut c_void {
    memalign(alignment, size)
}

/// `__libc_valloc`.
#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

/// `__libc_pvalloc`.
#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

/// `__posix_memalign`.
///
/// # Safety
/// As for `posix_memalign`.
#[no_mangle]
pub unsafe extern "C" fn __posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: the C caller's contract.
    unsafe { posix_memalign(out, alignment, size) }
}

/// Marks this library in a process: tests look it up to prove malloc is interposed.
#[no_mangle]
pub extern "C" fn tidemalloc_version() -> *const c_char {
    concat!("tidemalloc ", env!("CARGO_PKG_VERSION"), "\0")
        .as_ptr()
        .cast()
}
