//! Segments: the stretches of memory an arena got from the kernel (S1.1, S1.4, S3.2).
//!
//! The main arena's memory usually is one stretch of the program break; when brk fails, or
//! someone else moved the break, a new segment begins (from brk or mmap) and the old top is
//! closed off with two fencepost headers. A thread arena's segments are its 64 MiB heaps.
//! Each segment starts with this header (for a heap it is glibc's `heap_info`), so the list
//! costs no allocation and can be walked to check the heap or to find a chunk's arena.

use crate::chunk::{Chunk, ALIGNMENT};

/// Bytes reserved at the start of each segment for its header (keeps chunks 16-aligned).
pub const SEGMENT_HEADER: usize = 3 * ALIGNMENT;
/// Size of each of the two fencepost headers that end a closed segment.
pub const FENCEPOST: usize = ALIGNMENT;

/// Where a segment's memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Kind {
    /// The program break (main arena).
    Brk,
    /// An anonymous mapping taken when brk could not grow (main arena).
    Mapped,
    /// A 64 MiB-aligned heap reservation of a thread arena, read-write up to `end`.
    Heap,
}

/// The header at the start of a segment.
#[repr(C)]
pub struct Segment {
    /// The previous (older) segment's header, or 0.
    pub prev: usize,
    /// One past the last usable byte (the break, the mapping's end, the heap's used end).
    pub end: usize,
    /// Where the memory came from.
    pub kind: Kind,
    /// The owning arena (its address).
    pub arena: usize,
    /// For heaps: one past the last byte made read-write (>= `end`).
    pub committed: usize,
    /// The segment's first chunk.
    pub first: usize,
}

impl Segment {
    /// The segment header at `addr`.
    ///
    /// # Safety
    /// `addr` must be a live segment header, touched only under its arena's lock.
    #[inline]
    pub unsafe fn at<'a>(addr: usize) -> &'a mut Segment {
        // SAFETY: the caller guarantees a live header.
        unsafe { &mut *(addr as *mut Segment) }
    }

    /// Writes a header at `start` (16-aligned) for a segment whose chunks run from `first`
    /// to `end`.
    ///
    /// # Safety
    /// `[start, end)` must be fresh memory owned by the arena.
    pub unsafe fn create(
        start: usize,
        first: usize,
        end: usize,
        kind: Kind,
        arena: usize,
        prev: usize,
    ) {
        debug_assert!(start.is_multiple_of(ALIGNMENT) && first >= start + SEGMENT_HEADER);
        // SAFETY: the caller guarantees the memory is ours and large enough.
        unsafe {
            (start as *mut Segment).write(Segment {
                prev,
                end,
                kind,
                arena,
                committed: end,
                first,
            })
        };
    }

    /// The segment's first chunk.
    #[inline]
    pub fn first_chunk(&self) -> Chunk {
        Chunk(self.first)
    }
}

/// Iterates over an arena's segments, newest first, as (header address, segment).
pub struct Segments {
    next: usize,
}

impl Segments {
    /// The segments reachable from the newest one at `newest` (0 for none).
    ///
    /// # Safety
    /// The chain from `newest` must be live headers, unchanged while iterating.
    pub unsafe fn from(newest: usize) -> Self {
        Segments { next: newest }
    }
}

impl Iterator for Segments {
    type Item = (usize, &'static Segment);
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == 0 {
            return None;
        }
        let addr = self.next;
        // SAFETY: `from` guarantees the chain is live.
        let seg: &'static Segment = unsafe { Segment::at(addr) };
        self.next = seg.prev;
        Some((addr, seg))
    }
}
