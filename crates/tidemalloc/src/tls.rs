//! The thread's cache slot in initial-exec TLS, as glibc asks of a replacement malloc: one
//! `fs`-relative load, never a call into the dynamic linker (which may itself call malloc).
//! Stable Rust gives a shared library only global-dynamic TLS, so the variable is declared in
//! assembly and reached through its GOT TP-offset entry. The block starts zeroed in every
//! thread, which the cache reads as "empty, not set up".

use crate::tcache::Tcache;

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 6",
    ".globl __tidemalloc_tcache",
    ".hidden __tidemalloc_tcache",
    ".type __tidemalloc_tcache, @object",
    ".size __tidemalloc_tcache, {size}",
    "__tidemalloc_tcache:",
    ".zero {size}",
    ".popsection",
    size = const core::mem::size_of::<Tcache>(),
);

/// This thread's cache.
#[inline(always)]
pub fn tcache() -> *mut Tcache {
    let addr: usize;
    // SAFETY: reads the thread pointer and the variable's TP offset; both are valid in every
    // thread of a process that loaded this code (static TLS).
    unsafe {
        core::arch::asm!(
            "mov {addr}, qword ptr fs:[0]",
            "add {addr}, qword ptr [rip + __tidemalloc_tcache@GOTTPOFF]",
            addr = out(reg) addr,
            options(pure, readonly, nostack)
        );
    }
    addr as *mut Tcache
}
