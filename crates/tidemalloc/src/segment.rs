//! Segments: the stretches of memory an arena got from the kernel (S1.1, S1.4). The main
//! arena's memory usually is one stretch of the program break; when brk fails, or someone else
//! moved the break, a new segment begins (from brk or mmap) and the old top is closed off with
//! two fencepost headers. Each segment starts with a small header, so the list costs no
//! allocation and can be walked to check the heap or to tell whether an address is ours.

use crate::chunk::{Chunk, ALIGNMENT, MIN_CHUNK};

/// Bytes reserved at the start of each segment for its header (keeps chunks 16-aligned).
pub const SEGMENT_HEADER: usize = 2 * ALIGNMENT;
/// Size of each of the two fencepost headers that end a closed segment.
pub const FENCEPOST: usize = ALIGNMENT;

/// The header at the start of a segment.
#[repr(C)]
pub struct Segment {
    /// The previous (older) segment's header, or 0.
    pub prev: usize,
    /// One past the last byte of the segment (the break, or the mapping's end).
    pub end: usize,
    /// Whether the segment lies in the program break (else it is a mapping).
    pub from_brk: bool,
}

impl Segment {
    /// The segment header at `addr`.
    ///
    /// # Safety
    /// `addr` must be a live segment header.
    #[inline]
    pub unsafe fn at<'a>(addr: usize) -> &'a mut Segment {
        // SAFETY: the caller guarantees a live header, which only the arena (under its lock)
        // touches.
        unsafe { &mut *(addr as *mut Segment) }
    }

    /// Writes a header at `start` (16-aligned) for a segment ending at `end`.
    ///
    /// # Safety
    /// `[start, end)` must be fresh memory owned by the arena, at least `SEGMENT_HEADER +
    /// MIN_CHUNK` long.
    pub unsafe fn create(start: usize, end: usize, from_brk: bool, prev: usize) {
        debug_assert!(start.is_multiple_of(ALIGNMENT) && end >= start + SEGMENT_HEADER + MIN_CHUNK);
        // SAFETY: the caller guarantees the memory is ours and large enough.
        unsafe {
            (start as *mut Segment).write(Segment {
                prev,
                end,
                from_brk,
            })
        };
    }

    /// The first chunk of the segment whose header is at `addr`.
    #[inline]
    pub fn first_chunk(addr: usize) -> Chunk {
        Chunk(addr + SEGMENT_HEADER)
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
