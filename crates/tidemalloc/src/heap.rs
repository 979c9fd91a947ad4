//! Heaps of thread arenas (S3.2): 64 MiB reservations aligned to 64 MiB and mapped PROT_NONE,
//! made read-write only as far as the arena uses them (`rw-p` then `---p` in
//! /proc/self/maps). The alignment lets a chunk find its heap, hence its arena, from its
//! address. A full heap is followed by a new one; heaps shrink when their top grows past the
//! trim threshold, and a heap holding nothing but top is unmapped.

use crate::arena::{Arena, State};
use crate::arenas;
use crate::chunk::{Chunk, ALIGNMENT, ALIGN_MASK, MIN_CHUNK, NON_MAIN_ARENA, PREV_INUSE};
use crate::options::PARAMS;
use crate::os;
use crate::segment::{Kind, Segment, FENCEPOST, SEGMENT_HEADER};
use crate::starts;
use core::sync::atomic::Ordering::Relaxed;

/// Size and alignment of a heap: twice the largest dynamic mmap threshold, as in glibc.
pub const HEAP_MAX: usize = 2 * crate::options::MMAP_THRESHOLD_MAX;

/// Reserves a heap and makes its first `size` bytes (rounded to pages) read-write.
/// Returns the heap's start and the end of its usable part.
fn reserve(size: usize) -> Option<(usize, usize)> {
    let size = os::page_align_up(size)?;
    if size > HEAP_MAX {
        return None;
    }
    let start = os::reserve_aligned(HEAP_MAX)?;
    if !os::commit(start, size) {
        // SAFETY: the reservation is ours and unused.
        unsafe { os::unmap(start, HEAP_MAX) };
        return None;
    }
    crate::starts::cover(start, start + HEAP_MAX);
    Some((start, start + size))
}

/// Makes a new thread arena: a heap whose first bytes hold the heap header, then the arena,
/// then the arena's top chunk.
pub fn new_arena() -> Option<&'static Arena> {
    let arena_at = (SEGMENT_HEADER + 63) & !63;
    let first = (arena_at + core::mem::size_of::<Arena>() + ALIGN_MASK) & !ALIGN_MASK;
    let pad = PARAMS.top_pad.load(Relaxed);
    let (start, end) = reserve(first + MIN_CHUNK + pad).or_else(|| reserve(first + MIN_CHUNK))?;
    let arena_addr = start + arena_at;
    // SAFETY: the heap is fresh, read-write and large enough for header, arena and a chunk.
    unsafe {
        (arena_addr as *mut Arena).write(Arena::new());
        Segment::create(start, start + first, end, Kind::Heap, arena_addr, 0);
        let a = arenas::at(arena_addr);
        let mut st = a.lock();
        st.flags = NON_MAIN_ARENA;
        st.system_mem = end - start;
        st.start_segment(start, start + first, end);
        drop(st);
        Some(a)
    }
}

/// Makes heap `seg` (whose header is at `header`) read-write up to `end`, and `top_pad`
/// bytes further where the heap has them, as a new heap is made read-write with `top_pad`
/// bytes to spare. A thread arena grows its heap by what each request lacks, a page at a
/// time for small requests (glibc's too), and each mprotect call takes the process's
/// address-space lock, which the page faults of every other thread wait on: the bench's
/// thread-churn made 525 calls, 45 this way, and took 2 % less time. The pages cost no
/// memory until touched.
fn commit(seg: &mut Segment, header: usize, end: usize) -> bool {
    let heap_end = header + HEAP_MAX;
    let ahead = os::page_align_up(PARAMS.top_pad.load(Relaxed))
        .and_then(|pad| end.checked_add(pad))
        .map_or(heap_end, |e| e.min(heap_end));
    // Where the kernel refuses the spare bytes (strict overcommit), `end` alone may pass.
    let done = [ahead, end]
        .into_iter()
        .find(|&e| os::commit(seg.committed, e - seg.committed));
    if let Some(e) = done {
        seg.committed = e;
    }
    done.is_some()
}

impl State {
    /// Grows a thread arena for a request of `nb` chunk bytes: the newest heap if it has
    /// room, else a new heap. `false` when the kernel refuses.
    ///
    /// # Safety
    /// The lock is held and this is a thread arena.
    pub unsafe fn grow_heap(&mut self, nb: usize) -> bool {
        let header = self.segments;
        // SAFETY: the newest segment's header is live.
        let seg = unsafe { Segment::at(header) };
        let need = (nb + MIN_CHUNK).saturating_sub(self.top_size());
        if let Some(new_end) = os::page_align_up(need).map(|n| seg.end + n) {
            if new_end <= header + HEAP_MAX
                && (new_end <= seg.committed || commit(seg, header, new_end))
            {
                self.system_mem += new_end - seg.end;
                self.max_system_mem = self.max_system_mem.max(self.system_mem);
                seg.end = new_end;
                let top = self.top;
                // SAFETY: top now spans up to the new end of its heap.
                unsafe { top.set_head(((new_end - top.0) & !ALIGN_MASK) | PREV_INUSE) };
                return true;
            }
        }
        let first = SEGMENT_HEADER;
        let pad = PARAMS.top_pad.load(Relaxed);
        let wanted = nb + MIN_CHUNK + first + ALIGNMENT;
        let Some((start, end)) = reserve(wanted + pad).or_else(|| reserve(wanted)) else {
            return false;
        };
        // SAFETY: the new heap is fresh and ours.
        unsafe {
            Segment::create(start, start + first, end, Kind::Heap, self.arena, header);
            self.system_mem += end - start;
            self.start_segment(start, start + first, end);
        }
        true
    }

    /// Gives memory of a thread arena back: heaps that hold nothing but top are unmapped, and
    /// the newest heap shrinks to `pad` spare bytes once its top passes the trim threshold
    /// (at once when `now`, for malloc_trim).
    ///
    /// # Safety
    /// The lock is held and this is a thread arena.
    pub unsafe fn trim_heaps(&mut self, pad: usize, now: bool) -> bool {
        let mut released = false;
        // SAFETY: the segment chain and the chunks in it belong to this arena.
        unsafe {
            loop {
                let header = self.segments;
                let seg = Segment::at(header);
                if seg.prev == 0 || self.top.0 != seg.first {
                    break;
                }
                self.drop_newest_heap(header);
                released = true;
            }
            let top_size = self.top_size();
            if !now && top_size < PARAMS.trim_threshold.load(Relaxed) {
                return released;
            }
            released | self.shrink_newest_heap(pad)
        }
    }

    /// Shrinks the newest heap's top to `pad` spare bytes; the pages given back read as zero.
    ///
    /// # Safety
    /// The lock is held and this is a thread arena.
    pub unsafe fn shrink_newest_heap(&mut self, pad: usize) -> bool {
        let top_size = self.top_size();
        let extra = self.releasable_top(pad);
        if extra == 0 {
            return false;
        }
        // SAFETY: the newest segment's header is live; the pages past the new end are free.
        unsafe {
            let seg = Segment::at(self.segments);
            let new_end = seg.end - extra;
            if !os::discard(new_end, extra) {
                return false;
            }
            seg.end = new_end;
            self.system_mem -= extra;
            self.top.set_head((top_size - extra) | PREV_INUSE);
            self.fresh = self.fresh.min(new_end);
        }
        true
    }

    /// Unmaps the newest heap, whose only chunk is top, and makes the end of the previous
    /// heap (its fenceposts and the free chunk before them, if any) the top again.
    unsafe fn drop_newest_heap(&mut self, header: usize) {
        // SAFETY: the caller checked the heap holds only top; the previous heap ends with the
        // two fenceposts `retire` wrote.
        unsafe {
            let seg = Segment::at(header);
            let prev = Segment::at(seg.prev);
            let top_end = prev.first + ((prev.end - prev.first) & !ALIGN_MASK);
            let mut top = Chunk(top_end - 2 * FENCEPOST);
            debug_assert_eq!(top.size(), FENCEPOST);
            starts::erase(top.plus(FENCEPOST));
            if !top.prev_inuse() {
                let before = top.minus(top.prev_size());
                self.bins.unlink(before);
                starts::erase(top);
                top = before;
            }
            top.set_head((top_end - top.0) | PREV_INUSE);
            self.system_mem -= seg.end - header;
            self.segments = seg.prev;
            self.top = top;
            self.fresh = top_end;
            self.last_remainder = Chunk::NULL;
            starts::wipe(header);
            os::unmap(header, HEAP_MAX);
        }
    }
}
