//! Growing and shrinking the main arena (S1.1, S1.4, S2.5): brk first, extended in place while
//! the break is where we left it; a new segment when someone else moved it; mmap when brk
//! fails. Trimming gives the top back with a negative sbrk only when the break is still ours.

use crate::arena::State;
use crate::check::{corruption, Corruption};
use crate::chunk::{Chunk, ALIGNMENT, ALIGN_MASK, MIN_CHUNK, PREV_INUSE};
use crate::options::PARAMS;
use crate::os;
use crate::segment::{Kind, Segment, FENCEPOST, SEGMENT_HEADER};
use core::sync::atomic::Ordering::Relaxed;

/// The least a mapping asked for in place of brk, so that fallbacks stay rare.
const MMAP_AS_MORECORE_SIZE: usize = 1024 * 1024;

impl State {
    /// Gets more memory for a request of `nb` chunk bytes; `false` when the kernel refuses.
    ///
    /// # Safety
    /// The lock is held.
    pub unsafe fn grow(&mut self, nb: usize) -> bool {
        let pad = PARAMS.top_pad.load(Relaxed);
        let want = nb
            .checked_add(pad)
            .and_then(|v| v.checked_add(MIN_CHUNK + SEGMENT_HEADER + ALIGNMENT));
        if self.segments != 0 {
            // SAFETY: the newest segment's header is live.
            let seg = unsafe { Segment::at(self.segments) };
            if seg.kind == Kind::Brk && os::current_break() == seg.end {
                let extra = want
                    .map(|w| w.saturating_sub(self.top_size()))
                    .and_then(os::page_align_up);
                if let Some(brk) = extra.and_then(|e| sbrk_up(e).map(|b| (b, e))) {
                    let (start, len) = brk;
                    if start == seg.end {
                        // SAFETY: the break moved up right behind our top.
                        unsafe { self.extend_top(start + len) };
                        return true;
                    }
                    if start < seg.end {
                        corruption(Corruption::BreakAdjusted);
                    }
                    // Another sbrk slipped in between: the new memory stands alone.
                    // SAFETY: [start, start + len) is fresh break memory.
                    unsafe { self.add_segment(start, start + len, Kind::Brk) };
                    return true;
                }
            }
        }
        if let Some(len) = want.and_then(os::page_align_up) {
            if let Some(start) = sbrk_up(len) {
                if self.segments != 0 {
                    // SAFETY: the newest segment's header is live.
                    let seg = unsafe { Segment::at(self.segments) };
                    if seg.kind == Kind::Brk && start < seg.end && start >= self.segments {
                        corruption(Corruption::BreakAdjusted);
                    }
                }
                // SAFETY: [start, start + len) is fresh break memory.
                unsafe { self.add_segment(start, start + len, Kind::Brk) };
                return true;
            }
        }
        let len = nb
            .checked_add(MIN_CHUNK + SEGMENT_HEADER + ALIGNMENT)
            .and_then(os::page_align_up)
            .map(|l| l.max(MMAP_AS_MORECORE_SIZE));
        match len.and_then(|l| os::map(l).map(|a| (a, l))) {
            Some((start, len)) => {
                // SAFETY: the mapping is fresh and ours.
                unsafe { self.add_segment(start, start + len, Kind::Mapped) };
                true
            }
            None => false,
        }
    }

    /// The break moved from the newest segment's end to `new_end`: top takes it all.
    unsafe fn extend_top(&mut self, new_end: usize) {
        // SAFETY: the newest segment's header is live.
        let seg = unsafe { Segment::at(self.segments) };
        let added = new_end - seg.end;
        crate::starts::cover(seg.end, new_end);
        seg.end = new_end;
        self.system_mem += added;
        self.max_system_mem = self.max_system_mem.max(self.system_mem);
        let top = self.top;
        let size = (new_end - top.0) & !ALIGN_MASK;
        // SAFETY: top now spans up to the new break.
        unsafe { top.set_head(size | PREV_INUSE) };
    }

    /// Starts a new segment on `[start, end)` and makes its memory the top; the old top is
    /// fenced off and freed.
    unsafe fn add_segment(&mut self, start: usize, end: usize, kind: Kind) {
        let header = (start + ALIGN_MASK) & !ALIGN_MASK;
        let first = header + SEGMENT_HEADER;
        // SAFETY: the memory is fresh and at least a page long.
        unsafe { Segment::create(header, first, end, kind, self.arena, self.segments) };
        crate::starts::cover(first, end);
        self.system_mem += end - start;
        // SAFETY: as above.
        unsafe { self.start_segment(header, first, end) };
    }

    /// Makes `[first, end)` of the new segment at `header` the top; the old top is fenced off
    /// and freed.
    ///
    /// # Safety
    /// The segment header must be written and its memory fresh.
    pub unsafe fn start_segment(&mut self, header: usize, first: usize, end: usize) {
        self.segments = header;
        self.max_system_mem = self.max_system_mem.max(self.system_mem);
        let new_top = Chunk(first);
        crate::starts::set(new_top);
        // SAFETY: the new top lies inside the new segment.
        unsafe { new_top.set_head(((end - new_top.0) & !ALIGN_MASK) | PREV_INUSE) };
        let old_top = core::mem::replace(&mut self.top, new_top);
        self.fresh = new_top.0;
        if !old_top.is_null() {
            // SAFETY: the old top is a live chunk of this arena.
            unsafe { self.retire(old_top) };
        }
    }

    /// Closes the segment that `old_top` ends with two fenceposts and frees what is left of it.
    pub unsafe fn retire(&mut self, old_top: Chunk) {
        // SAFETY: top chunks are always at least MIN_CHUNK long, room for both fenceposts.
        unsafe {
            let keep = old_top.size() - 2 * FENCEPOST;
            old_top.set_size_keep_flags(keep);
            old_top.plus(keep).set_head(FENCEPOST | PREV_INUSE);
            crate::starts::set(old_top.plus(keep));
            crate::starts::set(old_top.plus(keep + FENCEPOST));
            old_top
                .plus(keep + FENCEPOST)
                .set_head(FENCEPOST | PREV_INUSE);
            // Not `free`: trimming now could take back the segment just started (a heap
            // that holds only top goes), and the request that started it would start it
            // again, for ever.
            if keep >= MIN_CHUNK {
                self.free_kept(old_top);
            }
        }
    }

    /// Whole pages at the end of top that can go back to the kernel, keeping `pad` bytes
    /// and a minimum chunk (0 if none).
    pub fn releasable_top(&self, pad: usize) -> usize {
        match self.top_size().checked_sub(MIN_CHUNK + 1) {
            Some(area) if area > pad => os::page_align_down(area - pad),
            _ => 0,
        }
    }

    /// Gives the top back to the kernel down to `pad` spare bytes, when the break is ours.
    /// Returns whether anything was released.
    ///
    /// # Safety
    /// The lock is held.
    pub unsafe fn trim_top(&mut self, pad: usize) -> bool {
        let top_size = self.top_size();
        let extra = self.releasable_top(pad);
        if extra == 0 || self.segments == 0 {
            return false;
        }
        // SAFETY: the newest segment's header is live.
        let seg = unsafe { Segment::at(self.segments) };
        if seg.kind != Kind::Brk || os::current_break() != seg.end {
            return false;
        }
        if os::sbrk(-(extra as isize)).is_none() {
            return false;
        }
        let now = os::current_break();
        let released = seg.end.saturating_sub(now);
        if released == 0 {
            return false;
        }
        seg.end = now;
        self.system_mem -= released;
        // SAFETY: top shrinks to what is still below the break.
        unsafe { self.top.set_head((top_size - released) | PREV_INUSE) };
        // Pages handed back read as zero when the break grows again; the partial page below
        // the new break keeps its old bytes.
        let kept = os::page_align_up(now).unwrap_or(now);
        self.fresh = self.fresh.min(kept);
        true
    }
}

/// Moves the break up by `len` bytes; the old break, if the kernel agreed.
fn sbrk_up(len: usize) -> Option<usize> {
    let delta = isize::try_from(len).ok()?;
    os::sbrk(delta)
}

/// Bytes at the start of a free chunk that must survive a page discard: header and links.
const FREE_CHUNK_KEEP: usize = 6 * crate::chunk::SIZE_SZ;

impl State {
    /// `malloc_trim`: merges fast chunks, discards every whole page inside free chunks, and
    /// gives back the top above `pad` (or discards its pages when the break is not ours).
    ///
    /// # Safety
    /// The lock is held.
    pub unsafe fn trim_all(&mut self, pad: usize) -> bool {
        let mut released = false;
        // SAFETY: the lock is held; bin members are free chunks whose pages past their links
        // hold nothing.
        unsafe {
            self.consolidate();
            for i in 1..crate::bins::NBINS {
                let bin = self.bins.bin(i);
                let mut c = bin.fd();
                while c != bin {
                    released |= discard_inside(c.0 + FREE_CHUNK_KEEP, c.0 + c.size());
                    c = c.fd();
                }
            }
            if !self.is_main() {
                return self.trim_heaps(pad, true) | released;
            }
            if self.trim_top(pad) {
                return true;
            }
            if !self.top.is_null() {
                let start = self.top.0 + FREE_CHUNK_KEEP + pad;
                let end = self.top.0 + self.top_size();
                if discard_inside(start, end) {
                    self.fresh = self.fresh.min(os::page_align_up(start).unwrap_or(end));
                    released = true;
                }
            }
        }
        released
    }
}

/// Discards the whole pages of `[start, end)`; whether there were any.
///
/// # Safety
/// The range must be free memory of an arena whose lock is held.
unsafe fn discard_inside(start: usize, end: usize) -> bool {
    let Some(from) = os::page_align_up(start) else {
        return false;
    };
    let to = os::page_align_down(end);
    // SAFETY: the caller guarantees the pages hold nothing.
    to > from && unsafe { os::discard(from, to - from) }
}
