//! A full walk of the main arena that checks every invariant the algorithms rely on: chunk
//! sizes add up to the segments, boundary tags agree, no two free chunks touch, every free
//! chunk sits in exactly the right bin, fast-bin chunks have their bin's size (a header
//! sealed for another address unseals to a size that breaks these), and top is the last
//! chunk of the newest segment. Tests run it after every step; it is also public for users who suspect heap
//! damage.

use crate::arena::State;
use crate::bins::{bin_index, fast_index, reveal, NBINS, UNSORTED};
use crate::chunk::{aligned, Chunk, ALIGNMENT, MIN_CHUNK};
use crate::segment::{Segments, FENCEPOST};
use crate::{arenas, starts, tcache};

/// Bounds every list walk, so that a cycle is reported rather than looped on.
const MAX_LIST: usize = 1 << 26;

/// What the walk found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapReport {
    /// Segments of the arena.
    pub segments: usize,
    /// In-use chunks (fast-bin chunks excluded).
    pub in_use_chunks: usize,
    /// Bytes of in-use chunks (fast-bin chunks excluded).
    pub in_use_bytes: usize,
    /// Free chunks in regular bins.
    pub free_chunks: usize,
    /// Bytes of free chunks in regular bins.
    pub free_bytes: usize,
    /// Chunks in fast bins.
    pub fast_chunks: usize,
    /// Bytes in fast bins.
    pub fast_bytes: usize,
    /// Size of top.
    pub top_bytes: usize,
    /// Bytes the arenas hold from the kernel.
    pub system_bytes: usize,
    /// Arenas walked.
    pub arenas: usize,
}

/// An invariant that does not hold, and the chunk where it broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapError {
    /// What is wrong.
    pub what: &'static str,
    /// The chunk (or bin header) concerned.
    pub at: usize,
}

fn fail<T>(what: &'static str, at: usize) -> Result<T, HeapError> {
    Err(HeapError { what, at })
}

/// Walks every arena, each under its lock, and adds up what it found. Chunks in the calling
/// thread's cache are in use for the arenas but free for the program: they are counted out
/// of `in_use_*` (other threads' caches cannot be seen).
pub fn verify_heap() -> Result<HeapReport, HeapError> {
    let mut total = HeapReport::default();
    for a in arenas::all() {
        let g = a.lock();
        // SAFETY: the guard holds the lock, so the arena cannot change during the walk.
        let r = unsafe { walk(&g)? };
        total.segments += r.segments;
        total.in_use_chunks += r.in_use_chunks;
        total.in_use_bytes += r.in_use_bytes;
        total.free_chunks += r.free_chunks;
        total.free_bytes += r.free_bytes;
        total.fast_chunks += r.fast_chunks;
        total.fast_bytes += r.fast_bytes;
        total.top_bytes += r.top_bytes;
        total.system_bytes += r.system_bytes;
        total.arenas += 1;
    }
    let (cached_chunks, cached_bytes) = tcache::cached();
    total.in_use_chunks -= cached_chunks;
    total.in_use_bytes -= cached_bytes;
    Ok(total)
}

/// Checks the bin lists; returns (chunks, bytes) listed in regular bins.
unsafe fn check_bins(st: &State) -> Result<(usize, usize), HeapError> {
    let (mut count, mut bytes) = (0, 0);
    for index in UNSORTED..NBINS {
        let bin = st.bins.bin(index);
        let mut prev = bin;
        // SAFETY: bin lists hold live free chunks; each link is checked before the next step.
        unsafe {
            let mut c = bin.fd();
            let mut steps = 0;
            while c != bin {
                steps += 1;
                if steps > MAX_LIST || !aligned(c.0) {
                    return fail("bin list is cyclic or misaligned", bin.0);
                }
                if c.bk() != prev {
                    return fail("bin list back link is wrong", c.0);
                }
                let size = c.size();
                if index != UNSORTED && bin_index(size) != index {
                    return fail("free chunk is in the wrong bin", c.0);
                }
                if index > 63 && prev != bin && prev.size() < size {
                    return fail("large bin is not sorted largest first", c.0);
                }
                if c.in_use() {
                    return fail("listed chunk is marked in use", c.0);
                }
                count += 1;
                bytes += size;
                prev = c;
                c = c.fd();
            }
            if bin.bk() != prev {
                return fail("bin header back link is wrong", bin.0);
            }
        }
    }
    Ok((count, bytes))
}

/// Checks the fast bins; returns (chunks, bytes).
unsafe fn check_fast(st: &State) -> Result<(usize, usize), HeapError> {
    let (mut count, mut bytes) = (0, 0);
    for (index, &head) in st.bins.fast.iter().enumerate() {
        let mut c = head;
        let mut steps = 0;
        while c != 0 {
            steps += 1;
            if steps > MAX_LIST || !aligned(c) {
                return fail("fast bin list is cyclic or misaligned", c);
            }
            let chunk = Chunk(c);
            // SAFETY: fast-bin members are live chunks.
            unsafe {
                if fast_index(chunk.size()) != index {
                    return fail("fast chunk has the wrong size for its bin", c);
                }
                if !chunk.in_use() {
                    return fail("fast chunk is not marked in use", c);
                }
                count += 1;
                bytes += chunk.size();
                c = reveal(chunk.fd_slot(), chunk.fd().0);
            }
        }
    }
    Ok((count, bytes))
}

unsafe fn walk(st: &State) -> Result<HeapReport, HeapError> {
    let mut r = HeapReport {
        system_bytes: st.system_mem,
        top_bytes: st.top_size(),
        ..HeapReport::default()
    };
    // SAFETY: forwarded from the caller (the lock is held).
    let (binned, binned_bytes) = unsafe { check_bins(st)? };
    // SAFETY: as above.
    (r.fast_chunks, r.fast_bytes) = unsafe { check_fast(st)? };
    let mut spanned = 0;
    let mut headers = 0;
    // SAFETY: the segment chain is live while the lock is held.
    for (header, seg) in unsafe { Segments::from(st.segments) } {
        r.segments += 1;
        spanned += seg.end - header;
        headers += seg.first - header;
        let newest = header == st.segments;
        let mut c = seg.first_chunk();
        let mut prev_free = false;
        if newest && (st.top.0 < c.0 || st.top.0 >= seg.end) {
            return fail("top is not in the newest segment", st.top.0);
        }
        loop {
            if c.0 + MIN_CHUNK > seg.end {
                return fail("chunk runs past its segment", c.0);
            }
            if newest && c == st.top && !starts::is_start(c.0) {
                return fail("top's start missing from the start map", c.0);
            }
            if newest && c == st.top {
                // SAFETY: top is a live chunk.
                let (size, prev_inuse) = unsafe { (c.size(), c.prev_inuse()) };
                if size > seg.end - c.0 || seg.end - (c.0 + size) >= ALIGNMENT {
                    return fail("top does not end its segment", c.0);
                }
                if !prev_inuse || prev_free {
                    return fail("free chunk before top", c.0);
                }
                break;
            }
            // SAFETY: the chunk lies inside the segment, as checked above.
            let (size, prev_inuse) = unsafe { (c.size(), c.prev_inuse()) };
            if size == FENCEPOST {
                if newest || seg.end - (c.0 + 2 * FENCEPOST) >= ALIGNMENT {
                    return fail("fencepost in the middle of a segment", c.0);
                }
                break;
            }
            // Compared so that a damaged size (an unsealed garbage word may come out near
            // 2^64) cannot wrap around.
            if size < MIN_CHUNK || size % ALIGNMENT != 0 || size > seg.end - c.0 {
                return fail("impossible chunk size", c.0);
            }
            if !starts::is_start(c.0) {
                return fail("chunk start missing from the start map", c.0);
            }
            if let Some(inner) = starts::first_start_inside(c.0, c.0 + size) {
                return fail("start map marks the inside of a chunk", inner);
            }
            if prev_inuse == prev_free {
                return fail("prev-in-use bit disagrees with the previous chunk", c.0);
            }
            let next = c.plus(size);
            // SAFETY: `next` lies inside the segment (a chunk, fencepost or top).
            let free = unsafe { !next.prev_inuse() };
            if free {
                if prev_free {
                    return fail("two free chunks touch", c.0);
                }
                // SAFETY: as above.
                if unsafe { next.prev_size() } != size {
                    return fail("boundary tag disagrees with the size", c.0);
                }
                r.free_chunks += 1;
                r.free_bytes += size;
            } else {
                r.in_use_chunks += 1;
                r.in_use_bytes += size;
            }
            prev_free = free;
            c = next;
        }
    }
    if r.free_chunks != binned || r.free_bytes != binned_bytes {
        return fail("free chunks in the heap and in the bins differ", 0);
    }
    r.in_use_chunks -= r.fast_chunks;
    r.in_use_bytes -= r.fast_bytes;
    let waste = r.segments * ALIGNMENT;
    if spanned > st.system_mem || st.system_mem - spanned > waste {
        return fail("segments do not add up to the system bytes", st.segments);
    }
    let accounted = r.in_use_bytes + r.free_bytes + r.fast_bytes + r.top_bytes + headers;
    if accounted > spanned || spanned - accounted > r.segments * (2 * FENCEPOST + ALIGNMENT) {
        return fail("chunk sizes do not add up to the segments", st.segments);
    }
    Ok(r)
}
