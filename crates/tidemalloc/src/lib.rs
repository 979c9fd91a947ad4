//! tidemalloc: glibc's ptmalloc2 in Rust.
//!
//! The main arena grows with brk and falls back to mmap (S1); freed chunks wait in fast,
//! unsorted, small and large bins, merge with their neighbours, and go back to the kernel
//! from the top (S2). Use it as a Rust global allocator:
//!
//! ```
//! #[global_allocator]
//! static A: tidemalloc::TideMalloc = tidemalloc::TideMalloc;
//! ```
//!
//! or as `libtidemalloc.so` (the `tidemalloc-c` crate), which exports glibc's symbols.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod api;
mod arena;
mod arenas;
mod bins;
mod carve;
mod check;
mod chunk;
mod fork;
mod heap;
mod lock;
mod mmapped;
mod morecore;
pub mod options;
mod os;
mod registry;
mod resize;
mod segment;
mod starts;
pub mod stats;
mod tcache;
mod tls;
mod verify;

use arena::Arena;
use core::alloc::{GlobalAlloc, Layout};

pub use stats::{Mallinfo2, Totals};
pub use verify::{verify_heap, HeapError, HeapReport};

/// The main arena: grows with brk; thread arenas live in their own heaps.
pub(crate) static MAIN: Arena = Arena::new();

/// tidemalloc as a Rust global allocator. It exports no C symbols, so glibc's malloc keeps
/// serving C code in the same process; both share the program break safely.
pub struct TideMalloc;

// SAFETY: every method returns memory that is either null or a live, suitably aligned block
// of at least the requested size, and frees only blocks that came from it.
unsafe impl GlobalAlloc for TideMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= chunk::ALIGNMENT {
            api::allocate(layout.size())
        } else {
            api::allocate_aligned(layout.align(), layout.size())
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator and is live.
        unsafe { api::release(ptr) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= chunk::ALIGNMENT {
            api::allocate_zeroed(layout.size())
        } else {
            let p = api::allocate_aligned(layout.align(), layout.size());
            if !p.is_null() {
                // SAFETY: `p` is a fresh block of at least `layout.size()` bytes.
                unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
            }
            p
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= chunk::ALIGNMENT {
            // SAFETY: GlobalAlloc's contract: `ptr` is live and ours; new_size is non-zero.
            return unsafe { api::resize(ptr, new_size) };
        }
        let new = api::allocate_aligned(layout.align(), new_size);
        if !new.is_null() {
            // SAFETY: both blocks are live and at least min(old, new) bytes long.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                api::release(ptr);
            }
        }
        new
    }
}

/// The allocator's totals: bytes from the kernel, in use, mmapped.
pub fn stats() -> Totals {
    stats::totals()
}

/// Gives free memory back to the kernel now, keeping `pad` bytes at the top of the heap
/// (`malloc_trim`). Returns whether anything was released.
pub fn trim(pad: usize) -> bool {
    api::malloc_trim(pad) == 1
}

/// glibc's `mallinfo2()` figures.
pub fn mallinfo2() -> Mallinfo2 {
    stats::mallinfo2()
}
