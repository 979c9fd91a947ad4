//! One arena (glibc's `malloc_state`): its bins, top chunk and last remainder, and malloc,
//! free, realloc and memalign inside it (S2). Every `State` method expects the arena's lock
//! to be held; `Arena::lock` is the only way to reach a `State`.

use crate::bins::{
    fast_index, is_small, large_index, protect, reveal, small_index, Bins, UNSORTED,
};
use crate::check::{corruption, Corruption};
use crate::chunk::{aligned, Chunk, ALIGN_MASK, HEADER, MIN_CHUNK, PREV_INUSE};
use crate::lock::Mutex;
use crate::mmapped;
use crate::options::{self, PARAMS};
use crate::starts;
use crate::tcache::{carried, check_in_transit};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// Freeing a chunk at least this large merges the fast bins and considers trimming.
const CONSOLIDATION_THRESHOLD: usize = 64 * 1024;
/// Unsorted chunks sorted per malloc call at most, so one call cannot stall on a long list.
const MAX_UNSORTED_ITERATIONS: usize = 10_000;

/// The mutable state of an arena.
pub struct State {
    /// Fast, unsorted, small and large bins.
    pub bins: Bins,
    /// Whether any fast bin may hold a chunk.
    pub have_fast: bool,
    /// The chunk bordering the end of the newest segment.
    pub top: Chunk,
    /// The remainder of the last split that served a small request.
    pub last_remainder: Chunk,
    /// Bytes obtained from the kernel for this arena's segments.
    pub system_mem: usize,
    /// Highest `system_mem` seen.
    pub max_system_mem: usize,
    /// Newest segment (its header address), or 0 before the first growth.
    pub segments: usize,
    /// Memory in the top chunk from here up has never been handed out, so reads as zero.
    pub fresh: usize,
    /// Whether the last chunk `malloc` returned came from never-used memory.
    pub last_was_fresh: bool,
    /// NON_MAIN_ARENA for thread arenas, 0 for the main arena: marked on every chunk handed out.
    pub flags: usize,
    /// The address of the `Arena` holding this state.
    pub arena: usize,
    ready: bool,
}

impl State {
    const fn new() -> Self {
        State {
            bins: Bins::new(),
            have_fast: false,
            top: Chunk::NULL,
            last_remainder: Chunk::NULL,
            system_mem: 0,
            max_system_mem: 0,
            segments: 0,
            fresh: 0,
            last_was_fresh: false,
            flags: 0,
            arena: 0,
            ready: false,
        }
    }

    /// Whether this is the main arena (brk and mmap segments, no heaps).
    #[inline]
    pub fn is_main(&self) -> bool {
        self.flags == 0
    }

    /// Size of the top chunk (0 before the first growth).
    #[inline]
    pub fn top_size(&self) -> usize {
        if self.top.is_null() {
            0
        } else {
            // SAFETY: a non-null top is a live chunk of this arena.
            unsafe { self.top.size() }
        }
    }

    /// Splits `nb` bytes off the front of free chunk `victim` of `size` bytes; the rest (if a
    /// whole chunk) goes to the unsorted bin and is returned.
    ///
    /// # Safety
    /// `victim` must be a free chunk of this arena, already out of every list.
    #[inline]
    unsafe fn split_free(&mut self, victim: Chunk, size: usize, nb: usize) -> Option<Chunk> {
        let rest = size - nb;
        // SAFETY: victim and its neighbours are chunks of this arena.
        unsafe {
            if rest < MIN_CHUNK {
                victim.set_inuse_at(size);
                None
            } else {
                let remainder = victim.plus(nb);
                self.bins
                    .push_unsorted(remainder, Corruption::MallocCorruptedUnsorted);
                victim.set_head(nb | PREV_INUSE);
                remainder.set_head(rest | PREV_INUSE);
                remainder.set_foot(rest);
                starts::set(remainder);
                Some(remainder)
            }
        }
    }

    /// Finds or makes a chunk of `nb` bytes (`nb` from `request_to_size`), marked in use and
    /// marked with this arena's flag.
    ///
    /// # Safety
    /// The lock is held and the arena is ready.
    #[inline]
    pub unsafe fn malloc(&mut self, nb: usize) -> Option<Chunk> {
        // SAFETY: forwarded.
        unsafe { self.malloc_reclaiming(nb, |_, _| false) }
    }

    /// `malloc`, with `reclaim` called when no free chunk fits: with `false` before top is
    /// split, with `true` before the arena grows. It may free chunks held elsewhere (a
    /// thread cache) into this arena and say so, and the search then starts over, so that
    /// memory already taken from the kernel is reused first, as it would be had it not
    /// been held back.
    ///
    /// # Safety
    /// As for `malloc`; `reclaim` frees only in-use chunks of this arena.
    pub unsafe fn malloc_reclaiming(
        &mut self,
        nb: usize,
        reclaim: impl FnMut(&mut Self, bool) -> bool,
    ) -> Option<Chunk> {
        // SAFETY: forwarded; the chunk returned is ours to mark.
        unsafe {
            let c = self.malloc_unmarked(nb, reclaim)?;
            if self.flags != 0 && !c.is_mmapped() {
                c.set_head(c.head() | self.flags);
            }
            // A chunk from a bin, or from memory that was one, may still hold a tagged link
            // there, which would send its first free down the full path.
            c.set_mark(0);
            Some(c)
        }
    }

    unsafe fn malloc_unmarked(
        &mut self,
        nb: usize,
        mut reclaim: impl FnMut(&mut Self, bool) -> bool,
    ) -> Option<Chunk> {
        self.last_was_fresh = false;
        // SAFETY: every chunk reached below is listed in this arena's bins or is its top.
        unsafe {
            if nb <= PARAMS.max_fast.load(Relaxed) {
                if let Some(c) = self.take_fast(nb) {
                    return Some(c);
                }
            }
            if is_small(nb) {
                let bin = self.bins.bin(small_index(nb));
                let victim = bin.bk();
                if victim != bin {
                    let bck = victim.bk();
                    if !self.bins.link_ok(bck, victim) || bck.fd() != victim {
                        corruption(Corruption::SmallBinLinks);
                    }
                    victim.set_inuse_at(nb);
                    bin.set_bk(bck);
                    bck.set_fd(bin);
                    return Some(victim);
                }
            } else if self.have_fast {
                // A large request is a good moment to merge fast chunks: it may need them.
                self.consolidate();
            }
            let mut may_map = true;
            loop {
                if let Some(c) = self.sort_unsorted(nb) {
                    return Some(c);
                }
                if let Some(c) = self.best_fit(nb) {
                    return Some(c);
                }
                if reclaim(self, false) {
                    continue;
                }
                // S1.2: a large request no free chunk fits gets a mapping of its own before
                // top is carved (glibc would carve a large enough top first): its memory
                // goes back to the kernel the moment it is freed.
                if core::mem::take(&mut may_map) && mmapped::wanted(nb) {
                    if let Some(c) = mmapped::map(nb) {
                        self.last_was_fresh = true;
                        return Some(c);
                    }
                }
                let top_size = self.top_size();
                if top_size > self.system_mem {
                    corruption(Corruption::CorruptedTopSize);
                }
                if top_size >= nb + MIN_CHUNK {
                    return Some(self.split_top(nb));
                }
                if self.have_fast {
                    self.consolidate();
                    continue;
                }
                if reclaim(self, true) {
                    continue;
                }
                return self.sysmalloc(nb);
            }
        }
    }

    /// Pops a fast-bin chunk of exactly `nb` bytes.
    unsafe fn take_fast(&mut self, nb: usize) -> Option<Chunk> {
        let index = fast_index(nb);
        let head = self.bins.fast[index];
        if head == 0 {
            return None;
        }
        let victim = Chunk(head);
        // SAFETY: fast-bin members are in-use-marked chunks of this arena; the link is
        // revealed and checked before it is followed.
        unsafe {
            let next = reveal(victim.fd_slot(), victim.fd().0);
            if !aligned(next) || (next != 0 && !self.bins.link_ok(Chunk(next), victim)) {
                corruption(Corruption::FastBinUnaligned);
            }
            if fast_index(victim.size()) != index {
                corruption(Corruption::FastBinWrongSize);
            }
            self.bins.fast[index] = next;
            victim.set_mark(0);
        }
        Some(victim)
    }

    /// Whether chunk `p` is in fast bin `index` (its key said it might be: a double free).
    #[cold]
    #[inline(never)]
    unsafe fn in_fast_bin(&self, index: usize, p: Chunk) -> bool {
        let mut c = self.bins.fast[index];
        while c != 0 {
            if c == p.0 {
                return true;
            }
            // SAFETY: fast-bin members are chunks of this arena; links are revealed and
            // checked before they are followed.
            let next = unsafe { reveal(Chunk(c).fd_slot(), Chunk(c).fd().0) };
            if !aligned(next) || (next != 0 && !self.bins.link_ok(Chunk(next), Chunk(c))) {
                corruption(Corruption::FastBinUnaligned);
            }
            c = next;
        }
        false
    }

    /// Empties the unsorted bin into the regular bins, returning an exact fit for `nb` as
    /// soon as one turns up (or a split of the last remainder for a small request).
    unsafe fn sort_unsorted(&mut self, nb: usize) -> Option<Chunk> {
        let unsorted = self.bins.bin(UNSORTED);
        let mut iterations = 0;
        // glibc bounds the sorting by tcache_unsorted_limit once a cached chunk could serve;
        // here, where refills happen after the search, it bounds each search.
        let limit = match PARAMS.unsorted_limit.load(Relaxed) {
            0 => MAX_UNSORTED_ITERATIONS,
            n => n.min(MAX_UNSORTED_ITERATIONS),
        };
        // SAFETY: unsorted members are free chunks of this arena; each is checked against its
        // neighbours before it is relinked.
        unsafe {
            loop {
                let victim = unsorted.bk();
                if victim == unsorted {
                    return None;
                }
                let size = self.checked_unsorted(victim, unsorted);
                let bck = victim.bk();
                // A run of small requests keeps carving the same remainder, so that objects
                // allocated together lie together.
                if is_small(nb)
                    && bck == unsorted
                    && victim == self.last_remainder
                    && size > nb + MIN_CHUNK
                {
                    self.shrink_remainder(victim.plus(nb), size - nb);
                    victim.set_head(nb | PREV_INUSE);
                    return Some(victim);
                }
                unsorted.set_bk(bck);
                bck.set_fd(unsorted);
                if size == nb {
                    victim.set_inuse_at(size);
                    return Some(victim);
                }
                self.bins.place(victim, size);
                iterations += 1;
                if iterations >= limit {
                    return None;
                }
            }
        }
    }

    /// Makes the last `rest` bytes of the last remainder, from `remainder` on, the new last
    /// remainder, in its place as the unsorted bin's only chunk: what is left once chunks
    /// are cut off its front.
    ///
    /// # Safety
    /// The last remainder is the unsorted bin's only chunk, and `remainder` lies inside it,
    /// `rest` bytes (at least MIN_CHUNK) before its end.
    pub unsafe fn shrink_remainder(&mut self, remainder: Chunk, rest: usize) {
        let unsorted = self.bins.bin(UNSORTED);
        // SAFETY: the caller's; the bin header's links are inside `self`.
        unsafe {
            unsorted.set_fd(remainder);
            unsorted.set_bk(remainder);
            remainder.set_fd(unsorted);
            remainder.set_bk(unsorted);
            self.last_remainder = remainder;
            remainder.set_head(rest | PREV_INUSE);
            remainder.set_foot(rest);
        }
        starts::set(remainder);
    }

    /// The size of `victim`, the last chunk of the unsorted bin `unsorted`, once checked as
    /// the scan checks a chunk before it relinks it: its size and its successor's are sane,
    /// its boundary tag agrees, its links hold and its successor sees it free.
    ///
    /// # Safety
    /// `victim` is the unsorted bin's last member.
    pub unsafe fn checked_unsorted(&self, victim: Chunk, unsorted: Chunk) -> usize {
        // SAFETY: the caller's; each word is read only once the one before it checked out.
        unsafe {
            let size = victim.size();
            if victim.head() <= HEADER || size > self.system_mem {
                corruption(Corruption::UnsortedInvalidSize);
            }
            let next = victim.plus(size);
            // A fencepost after a free chunk reads exactly HEADER: allowed.
            if next.head() < HEADER || next.size() > self.system_mem {
                corruption(Corruption::UnsortedInvalidNextSize);
            }
            if next.prev_size() != size {
                corruption(Corruption::UnsortedPrevSize);
            }
            let bck = victim.bk();
            if !self.bins.link_ok(bck, victim) || bck.fd() != victim || victim.fd() != unsorted {
                corruption(Corruption::UnsortedLinks);
            }
            if next.prev_inuse() {
                corruption(Corruption::UnsortedPrevInuse);
            }
            size
        }
    }

    /// The smallest listed chunk that fits `nb`: first in `nb`'s own large bin, then in the
    /// next non-empty bin the binmap shows.
    unsafe fn best_fit(&mut self, nb: usize) -> Option<Chunk> {
        // SAFETY: bin members are free chunks of this arena.
        unsafe {
            let mut index = if is_small(nb) {
                small_index(nb) + 1
            } else {
                let index = large_index(nb);
                let bin = self.bins.bin(index);
                if bin.fd() != bin && bin.fd().size() >= nb {
                    // Largest first: walk back from the smallest to the first that fits.
                    let mut victim = bin.bk();
                    while victim.size() < nb {
                        let back = victim.bk();
                        if !self.bins.link_ok(back, victim) {
                            corruption(Corruption::DoubleLinkedList);
                        }
                        victim = back;
                        if victim == bin {
                            corruption(Corruption::DoubleLinkedList);
                        }
                    }
                    let size = victim.size();
                    self.bins.unlink(victim);
                    self.split_free(victim, size, nb);
                    return Some(victim);
                }
                index + 1
            };
            while let Some(i) = self.bins.next_marked(index) {
                let bin = self.bins.bin(i);
                let victim = bin.bk();
                if victim == bin {
                    self.bins.unmark(i);
                    index = i + 1;
                    continue;
                }
                let size = victim.size();
                self.bins.unlink(victim);
                if let Some(remainder) = self.split_free(victim, size, nb) {
                    if is_small(nb) {
                        self.last_remainder = remainder;
                    }
                }
                return Some(victim);
            }
            None
        }
    }

    /// Carves `nb` bytes off the front of the top chunk, which must hold `nb + MIN_CHUNK`.
    unsafe fn split_top(&mut self, nb: usize) -> Chunk {
        let victim = self.top;
        // SAFETY: top is a live chunk at least `nb + MIN_CHUNK` long.
        unsafe {
            let size = victim.size();
            let rest = victim.plus(nb);
            rest.set_head((size - nb) | PREV_INUSE);
            victim.set_size_keep_flags(nb);
            self.top = rest;
            starts::set(rest);
        }
        self.last_was_fresh = victim.0 >= self.fresh;
        if self.fresh < rest_start(victim, nb) {
            self.fresh = rest_start(victim, nb);
        }
        victim
    }

    /// Serves `nb` from the kernel by growing top (large requests were offered a mapping of
    /// their own already).
    unsafe fn sysmalloc(&mut self, nb: usize) -> Option<Chunk> {
        // SAFETY: growth only adds memory this arena owns.
        unsafe {
            while self.top_size() < nb + MIN_CHUNK {
                let grown = if self.is_main() {
                    self.grow(nb)
                } else {
                    self.grow_heap(nb)
                };
                if !grown {
                    // A thread arena out of heaps still has the kernel's mmap to ask.
                    if !self.is_main() && !mmapped::wanted(nb) {
                        if let Some(c) = mmapped::map(nb) {
                            self.last_was_fresh = true;
                            return Some(c);
                        }
                    }
                    return None;
                }
            }
            Some(self.split_top(nb))
        }
    }

    /// Frees arena chunk `p` (not mmapped).
    ///
    /// # Safety
    /// `p` must be the start of a chunk of this arena that the caller owns (checked as far as
    /// glibc checks).
    pub unsafe fn free(&mut self, p: Chunk) {
        // SAFETY: forwarded.
        if unsafe { self.free_kept(p) } {
            let pad = PARAMS.top_pad.load(Relaxed);
            // SAFETY: the caller holds the lock, so the fast bins and heaps are ours.
            unsafe {
                if self.have_fast {
                    self.consolidate();
                }
                if !self.is_main() {
                    self.trim_heaps(pad, false);
                } else if self.top_size() >= PARAMS.trim_threshold.load(Relaxed) {
                    self.trim_top(pad);
                }
            }
        }
    }

    /// `free` short of giving memory back afterwards; `true` when the chunk was large
    /// enough for `free` to do that.
    ///
    /// # Safety
    /// As for `free`.
    pub unsafe fn free_kept(&mut self, p: Chunk) -> bool {
        // SAFETY: the header was read by the caller; every further chunk reached is checked.
        unsafe {
            let size = p.size();
            if p.0.wrapping_neg() < size || !aligned(p.0) {
                corruption(Corruption::FreeInvalidPointer);
            }
            if size < MIN_CHUNK || size & ALIGN_MASK != 0 {
                corruption(Corruption::FreeInvalidSize);
            }
            if size <= PARAMS.max_fast.load(Relaxed) {
                let next = p.plus(size);
                if next.head() <= HEADER || next.size() >= self.system_mem {
                    corruption(Corruption::FreeInvalidNextSizeFast);
                }
                let index = fast_index(size);
                let old = self.bins.fast[index];
                let key = crate::tcache::fast_key();
                if old == p.0 || (p.mark() == key && self.in_fast_bin(index, p)) {
                    corruption(Corruption::DoubleFreeFastTop);
                }
                p.set_mark(key);
                p.set_fd(Chunk(protect(p.fd_slot(), old)));
                self.bins.fast[index] = p.0;
                self.have_fast = true;
                return false;
            }
            self.merge_and_bin(p, size);
            size >= CONSOLIDATION_THRESHOLD
        }
    }

    /// Merges free chunk `p` of `size` bytes with free neighbours and lists the result in the
    /// unsorted bin, or makes it part of top.
    unsafe fn merge_and_bin(&mut self, mut p: Chunk, mut size: usize) {
        // SAFETY: `p` was checked by `free`; neighbours are checked before use.
        unsafe {
            let next = p.plus(size);
            // Freeing top, or a chunk that already went back into it.
            if p.0 >= self.top.0 && p.0 < self.top.0 + self.top_size() {
                corruption(Corruption::DoubleFreeTop);
            }
            if p.0 < self.top.0 && next.0 > self.top.0 {
                corruption(Corruption::DoubleFreeOut);
            }
            if !next.prev_inuse() {
                corruption(Corruption::DoubleFreePrev);
            }
            let next_size = next.size();
            if next.head() <= HEADER || next_size >= self.system_mem {
                corruption(Corruption::FreeInvalidNextSizeNormal);
            }
            if !p.prev_inuse() {
                let prev_size = p.prev_size();
                size += prev_size;
                starts::erase(p);
                p = p.minus(prev_size);
                if p.size() != prev_size {
                    corruption(Corruption::PrevSizeWhileConsolidating);
                }
                self.bins.unlink(p);
            }
            self.absorb_next(p, size, next, next_size, Corruption::FreeCorruptedUnsorted);
        }
    }

    /// Joins free chunk `p` (`size` bytes, already merged backwards) with `next` if that is
    /// free or top, then lists it.
    unsafe fn absorb_next(
        &mut self,
        p: Chunk,
        mut size: usize,
        next: Chunk,
        next_size: usize,
        on_corruption: Corruption,
    ) {
        // SAFETY: the caller checked `p` and `next`.
        unsafe {
            if next == self.top {
                size += next_size;
                p.set_head(size | PREV_INUSE);
                self.top = p;
                starts::erase(next);
                // Memory below the old top was handed out, so it is not zero any more.
                self.fresh = self.fresh.max(next.0);
                return;
            }
            if !next.in_use() {
                self.bins.unlink(next);
                size += next_size;
                starts::erase(next);
            } else {
                p.clear_inuse_at(size);
            }
            self.bins.push_unsorted(p, on_corruption);
            p.set_head(size | PREV_INUSE);
            p.set_foot(size);
        }
    }

    /// Merges every fast-bin chunk with its free neighbours into the unsorted bin or top.
    ///
    /// # Safety
    /// The lock is held.
    pub unsafe fn consolidate(&mut self) {
        self.have_fast = false;
        for index in 0..self.bins.fast.len() {
            let mut head = core::mem::take(&mut self.bins.fast[index]);
            while head != 0 {
                let mut p = Chunk(head);
                // SAFETY: fast-bin members are chunks of this arena; links are revealed and
                // checked, sizes checked against the bin.
                unsafe {
                    head = reveal(p.fd_slot(), p.fd().0);
                    if !aligned(head) || (head != 0 && !self.bins.link_ok(Chunk(head), p)) {
                        corruption(Corruption::FastBinUnaligned);
                    }
                    p.set_mark(0);
                    let mut size = p.size();
                    if fast_index(size) != index {
                        corruption(Corruption::ConsolidateInvalidSize);
                    }
                    let next = p.plus(size);
                    let next_size = next.size();
                    if !p.prev_inuse() {
                        let prev_size = p.prev_size();
                        size += prev_size;
                        starts::erase(p);
                        p = p.minus(prev_size);
                        if p.size() != prev_size {
                            corruption(Corruption::PrevSizeWhileConsolidating);
                        }
                        self.bins.unlink(p);
                    }
                    self.absorb_next(p, size, next, next_size, Corruption::FreeCorruptedUnsorted);
                }
            }
        }
    }
}

/// The address just past a chunk of `nb` bytes at `c`: where the rest of top begins.
#[inline]
fn rest_start(c: Chunk, nb: usize) -> usize {
    c.0 + nb
}

/// Set once the main arena, the options and the process-wide hooks are set up.
static GLOBAL_READY: AtomicBool = AtomicBool::new(false);

/// Whether the process-wide set-up is done (a new thread then need not touch the main
/// arena's lock, which in a fork child may belong to a frame that never resumes).
pub fn global_ready() -> bool {
    GLOBAL_READY.load(Acquire)
}

/// The bit of a remote-list link that names a carrier (see `Arena::remote`); chunks are
/// aligned, so it is free.
pub const CARRIER: usize = 1;

/// An arena: its state behind its lock, and a lock-free list where other threads leave
/// chunks they freed while the lock was busy.
pub struct Arena {
    lock: Mutex,
    state: UnsafeCell<State>,
    /// Chunks freed by other threads, linked through their first user word; drained by
    /// whoever takes the lock next. A link with `CARRIER` set names a carrier, a chunk whose
    /// third word counts, and whose next words list, more chunks of its batch: the drain
    /// then has their addresses at once, where following a chain would wait for each
    /// chunk's line to come over from the freeing thread's cache before the next.
    remote: AtomicUsize,
    /// Threads using this arena (changed under the arena list's lock).
    pub attached: AtomicUsize,
    /// The next arena in the list of all arenas (0 ends it).
    pub next: AtomicUsize,
    /// The next arena in the free list.
    pub next_free: AtomicUsize,
}

// SAFETY: the state is only reached through `lock`, which serialises access; the other
// fields are atomics.
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena with empty bins and no memory yet.
    pub const fn new() -> Self {
        Arena {
            lock: Mutex::new(),
            state: UnsafeCell::new(State::new()),
            remote: AtomicUsize::new(0),
            attached: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            next_free: AtomicUsize::new(0),
        }
    }

    /// Takes the lock and returns the state, initialising it on first use and freeing the
    /// chunks other threads left on the remote list.
    #[inline]
    pub fn lock(&self) -> Guard<'_> {
        self.lock.lock();
        self.guard()
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<Guard<'_>> {
        self.lock.try_lock().then(|| self.guard())
    }

    #[inline]
    fn guard(&self) -> Guard<'_> {
        // SAFETY: the lock is held, so nobody else touches the state.
        let state = unsafe { &mut *self.state.get() };
        if !state.ready {
            self.make_ready(state);
        }
        let mut g = Guard { arena: self, state };
        if self.remote.load(Relaxed) != 0 {
            g.drain_remote();
        }
        g
    }

    #[cold]
    fn make_ready(&self, state: &mut State) {
        state.bins.init();
        state.arena = self as *const Arena as usize;
        state.ready = true;
        if core::ptr::eq(self, &crate::MAIN) {
            options::load_environment();
            crate::chunk::seed_seal(crate::os::random_word());
            crate::tcache::global_init();
            crate::fork::arm();
            GLOBAL_READY.store(true, Release);
        }
    }

    /// Leaves a chain of this arena's chunks (user pointers linked through their first word,
    /// `first` to `last`; `first` with `CARRIER` set if it is a carrier) for the lock holder
    /// to free. Never waits.
    ///
    /// # Safety
    /// The chunks must be in-use chunks of this arena being freed by their holder, and a
    /// carrier's list as `Arena::remote` says.
    pub unsafe fn push_remote(&self, first: usize, last: usize) {
        let mut head = self.remote.load(Relaxed);
        loop {
            // SAFETY: `last` is a chunk being freed; its first word is ours.
            unsafe { *(last as *mut usize) = head };
            match self
                .remote
                .compare_exchange_weak(head, first, Release, Relaxed)
            {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        // An arena nobody uses would keep them forever: free them now.
        if self.attached.load(Relaxed) == 0 {
            drop(self.lock());
        }
    }

    /// Whether the calling thread holds this arena's lock.
    #[inline]
    pub fn lock_held_by_me(&self) -> bool {
        self.lock.held_by_me()
    }

    /// fork, before: see `Mutex::lock_for_fork`.
    pub fn lock_for_fork(&self) {
        self.lock.lock_for_fork();
    }

    /// fork, before, from a signal handler that interrupted this thread inside the registry
    /// of mapped blocks: see `Mutex::lock_for_fork_unless`, where `stuck` names a holder
    /// waiting for that registry. Such a holder holds this arena whole: the arena records a
    /// mapped chunk only between changes to its bins and top.
    pub fn lock_for_fork_unless(&self, stuck: impl Fn(u32) -> bool) {
        self.lock.lock_for_fork_unless(stuck);
    }

    /// fork, in the parent.
    pub fn unlock_after_fork(&self) {
        self.lock.unlock_after_fork();
    }

    /// fork, in the child.
    pub fn reset_after_fork(&self) {
        self.lock.reset_after_fork();
    }

    /// Whether the lock is held (in a fork child after `reset_after_fork`: by the frame the
    /// signal that called fork interrupted).
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

/// The state of an arena whose lock this guard holds.
pub struct Guard<'a> {
    arena: &'a Arena,
    state: &'a mut State,
}

impl Guard<'_> {
    /// The arena this guard locks.
    pub fn arena_ref(&self) -> &Arena {
        self.arena
    }

    /// Frees what other threads left on the remote list; the arena's own thread takes what
    /// fits into its cache directly, so a producer gets its blocks back without the bins.
    fn drain_remote(&mut self) {
        let mine = crate::tcache::my_arena() == self.arena as *const Arena as usize;
        let arena = Some(self.arena as *const Arena as usize);
        let mut link = self.arena.remote.swap(0, Acquire);
        while link != 0 {
            let e = link & !CARRIER;
            // SAFETY: remote entries are in-use chunks of this arena, handed over by the
            // threads that freed them, and a carrier's words are as `remote` says (each
            // checked before it is followed: a write into freed memory may have changed
            // them); the lock is held. A carrier is taken last, once its words are read.
            unsafe {
                check_in_transit(e, arena);
                let words = e as *const usize;
                if link & CARRIER != 0 {
                    for k in 0..carried(e) {
                        let c = *words.add(3 + k);
                        check_in_transit(c, arena);
                        self.take_remote(c, mine);
                    }
                }
                link = *words;
                self.take_remote(e, mine);
            }
        }
    }

    /// Takes chunk `e` off the remote list: into this thread's cache if the arena is its own
    /// (`mine`) and the list has room, else into the bins.
    ///
    /// # Safety
    /// `e` must be an in-use chunk of this arena that another thread freed.
    unsafe fn take_remote(&mut self, e: usize, mine: bool) {
        if !(mine && crate::tcache::adopt(e)) {
            // SAFETY: forwarded; the lock is held.
            unsafe {
                crate::tcache::clear_mark(e);
                self.state.free(Chunk::from_mem(e as *mut u8));
            }
        }
    }
}

impl Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.state
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        crate::tcache::note_unlock(self.state);
        self.arena.lock.unlock();
        crate::fork::register_if_armed();
    }
}
