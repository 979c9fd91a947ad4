//! The per-thread cache in front of the arenas (S3.5): short singly linked lists of freed
//! chunks, one per chunk size up to 1040 bytes and one per size range above that, up to
//! `tcache_max` (see `classes`). Its fast path is a TLS access and a list pop or push: no lock,
//! no atomic read-modify-write. An empty small list is refilled, and a full list half
//! flushed, in one batch under one arena lock.
//!
//! free's fast path does not link the small chunk it frees: it parks it, marked as cached,
//! and links the chunk parked before, whose list it learnt one free earlier. So every
//! address that free writes is known from the cache alone, not only once the freed
//! chunk's header has been read and unsealed, and a malloc right after it does not load a
//! list head that a store of unknown address may be about to write. On the bench's churn
//! that is 4 % of the CPU time on average over 61 layouts of the program, and about 15 %
//! in the two where it was slowest before. The cost: a chunk freed is reused one free
//! later (or by a malloc of its size that finds its list empty), not by the very next
//! malloc, and a thread's cache holds one chunk more than its lists.
//!
//! Every thread starts on a zeroed cache whose size limit is 0, so the fast path needs no
//! "initialised?" test: the first call of each thread falls to the slow path, which sets
//! the cache up. At thread exit the cache is flushed and switched off for good; later calls
//! from that thread (other TLS destructors) go straight to the arenas.

mod classes;
mod drain;
mod list;
mod ranges;

use crate::arena::{Arena, Guard, State};
use crate::arenas;
use crate::bins::reveal;
use crate::check::{corruption, Corruption, HARDENED};
use crate::chunk::{
    request_to_size, steps, Chunk, ALIGNMENT, ALIGN_MASK, ALIGN_SHIFT, FLAG_BITS, FREE_TAG,
    FREE_TAG_SHIFT, HEADER, IS_MMAPPED, MIN_CHUNK, NON_MAIN_ARENA, PREV_INUSE, SIZE_SZ,
};
use crate::options::PARAMS;
use crate::os;
use crate::segment::Segment;
use crate::tls;
use crate::MAIN;
pub use classes::LARGEST_MAX_BYTES;
use classes::{
    capacity, list_of, range_list, request_step, small_list, REQUEST_LISTS, REQUEST_STEPS,
    SMALL_LISTS, SMALL_MAX_CHUNK,
};
use core::sync::atomic::{
    compiler_fence, AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
pub use drain::{carried, check_in_transit, clear_mark, flush_all, free_to_arena};
use list::List;
use ranges::Ranges;

/// Default chunks per size list (glibc 2.43 keeps 16; tunable with
/// `GLIBC_TUNABLES=glibc.malloc.tcache_count=N`).
pub const DEFAULT_COUNT: usize = 128;
/// The default largest cached request (`glibc.malloc.tcache_max`): 32 KiB, as jemalloc's
/// default, where glibc caches up to 1032 bytes unless told more.
pub const DEFAULT_MAX_BYTES: usize = 32 << 10;
/// Foreign chunks a thread collects before it hands them back to their arenas.
const FOREIGN_BATCH: usize = 32;
/// Most chunks one refill carves under one lock.
const MAX_BATCH: usize = 64;
/// Chunks a list's first refill caches (besides the one it hands out); each later refill of
/// the list caches twice as many, up to half the list, so that a short-lived thread does
/// not carve (and at its exit free again) dozens of chunks of every size it asked for once.
const FIRST_BATCH: usize = 4;
/// Refills after which a list's batch stops growing (FIRST_BATCH << 4 = MAX_BATCH).
const MAX_DOUBLINGS: u8 = 4;

const NEW: u8 = 0;
const ACTIVE: u8 = 1;
const DONE: u8 = 2;

/// Marks a cached chunk in its second word, so that a double free is spotted cheaply. Its
/// two low bits are set; the marks of a chunk in a fast bin and of a chunk on its way back
/// to its arena (`remote_mark`) differ from it in one of them. Its top byte is
/// `FREE_TAG`, which a binned chunk's link carries there too, so one compare of that byte
/// catches a chunk that is free anywhere.
static KEY: AtomicUsize = AtomicUsize::new(0);
/// The bits of `KEY` below `FREE_TAG`.
const KEY_BITS: usize = (1 << FREE_TAG_SHIFT) - 1;
/// The bit that tells `KEY` and the fast-bin mark apart.
const FAST_TAG: usize = 1;
/// The bit that tells `KEY` and the remote mark apart.
const REMOTE_TAG: usize = 2;
/// The low bits of `KEY`.
const MARK_TAGS: usize = FAST_TAG | REMOTE_TAG;

/// The mark of a chunk in a fast bin.
#[inline]
pub fn fast_key() -> usize {
    KEY.load(Relaxed) ^ FAST_TAG
}

/// The mark of a chunk on its way back to another arena (in the foreign batch or on the
/// owner's remote list) until the owner takes it: a second free of it meanwhile is a double
/// free that no list of the freeing thread would show.
fn remote_mark(key: usize) -> usize {
    key ^ REMOTE_TAG
}

/// Reports a double free if chunk `entry`, which its holder is freeing, is already on its
/// way back to its arena.
///
/// # Safety
/// `entry` must be an arena chunk whose second word is readable.
unsafe fn check_not_remote(entry: usize, key: usize) {
    // SAFETY: forwarded.
    if unsafe { *((entry + SIZE_SZ) as *const usize) } == remote_mark(key) {
        corruption(Corruption::TcacheDoubleFree);
    }
}

/// Marks chunk `entry` as on its way back to its arena, reporting a double free if it
/// already was.
///
/// # Safety
/// `entry` must be an in-use chunk that its holder is freeing.
unsafe fn mark_remote(entry: usize, key: usize) {
    // SAFETY: the chunk is being freed; its second word is ours.
    unsafe {
        check_not_remote(entry, key);
        *((entry + SIZE_SZ) as *mut usize) = remote_mark(key);
    }
}

/// The pthread key whose destructor flushes a thread's cache at exit (`u32::MAX` until made).
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// One thread's cache. Lives in TLS, zero-initialised.
#[repr(C)]
pub struct Tcache {
    heads: [usize; SMALL_LISTS],
    /// Places left in each small list; all 0 while the cache is off.
    room: [u16; SMALL_LISTS],
    /// The newest segment of this thread's arena as last seen under its lock: a chunk fewer
    /// than `limit` steps of ALIGNMENT past `lo` has room for the largest small chunk and
    /// its successor's header before the segment ends, so free's fast path need not look at
    /// its size for that (`owned_head` adds SMALL_MAX_CHUNK back for larger chunks). Both
    /// are 0, which lets no chunk pass, until then, after the cache is switched off, and
    /// while the segment is smaller than that.
    lo: usize,
    limit: usize,
    /// The key that unseals chunk headers (a copy of `chunk::unseal_key`).
    unseal_key: usize,
    /// Small lists served: a chunk of `size` bytes goes to small list
    /// `(size - MIN_CHUNK) / ALIGNMENT` when that is below `lists`; 0 while the cache is off.
    lists: usize,
    /// The double-free key (a copy of `KEY`, so that the fast paths read only this cache).
    key: usize,
    arena: usize,
    /// Chunks per size list (`tcache_count`).
    count: u16,
    state: u8,
    /// One past the largest request served from a small list, or 0 while the cache is off.
    /// It and the fields above, all that free's and malloc's fast paths read besides the
    /// lists and the parked chunk, share one cache line.
    request_limit: usize,
    /// The chunk free's fast path parked last (a user pointer, marked with `key`, in no
    /// list), or 0; and the small list it goes to.
    parked: usize,
    parked_list: usize,
    /// Largest chunk size served from the cache; 0 sends every call to the slow path.
    max_chunk: usize,
    /// The range lists, in a chunk of this thread's arena; null until the cache is set up,
    /// and for good if that chunk could not be had (`max_chunk` then stays small).
    ranges: *mut Ranges,
    /// Chunks of other arenas this thread freed, linked through their first word, waiting
    /// to go back to their owners in one batch; never handed out here, so that a thread
    /// does not end up writing next to another thread's objects (Hoard's cache-scratch).
    foreign: usize,
    foreign_count: usize,
    /// This thread's number for lock words (0 until first needed).
    number: u32,
    /// How many times each small list's refill batch has doubled.
    refills: [u8; SMALL_LISTS],
    /// A copy of `classes::REQUEST_LISTS`, where malloc's fast path reads it with the
    /// cache's own base register; zeroed until set up, when `request_limit` is 0.
    request_lists: [u8; REQUEST_STEPS],
}

impl Tcache {
    /// Small list `i`.
    ///
    /// # Safety
    /// `i < SMALL_LISTS`.
    #[inline(always)]
    unsafe fn small(&mut self, i: usize) -> List<'_> {
        // SAFETY: the caller guarantees the index.
        unsafe {
            List {
                head: self.heads.get_unchecked_mut(i),
                room: self.room.get_unchecked_mut(i),
            }
        }
    }

    /// The range lists, if this thread has them.
    fn ranges(&mut self) -> Option<&'static mut Ranges> {
        // SAFETY: a non-null pointer names this thread's own range lists, which live until
        // its exit.
        unsafe { self.ranges.as_mut() }
    }

    /// Runs `cache` on list `i` (if this thread has it) and, when it cached a chunk in a
    /// range list, records that the list holds one.
    fn cache_into(&mut self, i: usize, cache: impl FnOnce(List<'_>) -> bool) -> bool {
        if i < SMALL_LISTS {
            // SAFETY: checked just above.
            return cache(unsafe { self.small(i) });
        }
        let Some(r) = self.ranges() else {
            return false;
        };
        let cached = cache(r.list(i));
        if cached {
            r.note_used(i);
        }
        cached
    }

    /// The unsealed header of chunk `c` if `c` lies on the alignment grid fewer than
    /// `limit` steps past the first chunk of this thread's newest segment, as last seen (see
    /// `lo`). It is garbage, almost surely with high bits set, if no chunk starts at `c`.
    #[inline(always)]
    fn head_within(&self, c: Chunk, limit: usize) -> Option<usize> {
        if steps(c.0.wrapping_sub(self.lo)) >= limit {
            return None;
        }
        // SAFETY: the header lies in the segment, which is mapped while the arena has it.
        Some(unsafe { c.head_with(self.unseal_key) })
    }

    /// Bytes from chunk `c` to the last header of this thread's newest segment, as last
    /// seen: a chunk there of fewer bytes ends inside the segment with its successor's
    /// header. `c` must lie fewer than `limit + SMALL_MAX_CHUNK / ALIGNMENT` steps past `lo`
    /// (so this does not wrap).
    #[inline(always)]
    fn room_from(&self, c: Chunk) -> usize {
        (self.limit * ALIGNMENT + SMALL_MAX_CHUNK) - (c.0 - self.lo)
    }

    /// Takes the parked chunk, with its mark cleared, if there is one and it belongs to
    /// small list `i`.
    fn unpark(&mut self, i: usize) -> Option<usize> {
        if self.parked == 0 || self.parked_list != i {
            return None;
        }
        let entry = core::mem::take(&mut self.parked);
        // SAFETY: the parked chunk is cached, its second word the cache's.
        unsafe { clear_mark(entry) };
        Some(entry)
    }

    /// List `i` of `classes`, if this thread has it.
    fn list(&mut self, i: usize) -> Option<List<'_>> {
        if i < SMALL_LISTS {
            // SAFETY: checked just above.
            return Some(unsafe { self.small(i) });
        }
        self.ranges().map(|r| r.list(i))
    }
}

/// Hands out thread numbers; they are 31 bits wide and never 0.
static NEXT_NUMBER: AtomicU32 = AtomicU32::new(1);

/// The calling thread's number (see `lock.rs`), handed out at its first lock.
#[inline]
pub fn thread_number() -> u32 {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    if tc.number == 0 {
        tc.number = next_number();
    }
    tc.number
}

#[cold]
fn next_number() -> u32 {
    loop {
        let n = NEXT_NUMBER.fetch_add(1, Relaxed) & 0x7fff_ffff;
        if n != 0 {
            return n;
        }
    }
}

/// Process-wide set-up done once, by the first thread: the double-free key and the
/// thread-exit hook.
pub fn global_init() {
    KEY.store(os::random_word() & KEY_BITS | FREE_TAG | MARK_TAGS, Relaxed);
    if let Some(key) = os::thread_exit_key(thread_exit) {
        EXIT_KEY.store(key, Relaxed);
    }
}

/// Pops a cached chunk for a request of `bytes` bytes, if a small list has one: malloc's
/// fast path.
#[inline(always)]
pub fn pop_request(bytes: usize) -> Option<*mut u8> {
    // SAFETY: the cache is this thread's own; nothing else touches it.
    let tc = unsafe { &mut *tls::tcache() };
    if bytes >= tc.request_limit {
        return None;
    }
    // SAFETY: requests below the limit have small lists.
    unsafe {
        let i = *tc.request_lists.get_unchecked(request_step(bytes));
        tc.small(i as usize)
    }
    .take()
}

/// Pops a cached chunk of at least `nb` bytes (exactly `nb` from a small list), if any.
#[inline(always)]
pub fn pop(nb: usize) -> Option<*mut u8> {
    // SAFETY: the cache is this thread's own; nothing else touches it.
    let tc = unsafe { &mut *tls::tcache() };
    if nb.wrapping_sub(MIN_CHUNK) / ALIGNMENT < tc.lists {
        let i = small_list(nb);
        // SAFETY: the cache serves this size from a small list.
        let cached = unsafe { tc.small(i) }.take();
        return cached.or_else(|| tc.unpark(i).map(|entry| entry as *mut u8));
    }
    if nb <= tc.max_chunk {
        return tc.ranges()?.take(nb);
    }
    None
}

/// What free's fast path did with a block.
pub enum Freed {
    /// Cached in a small list, or parked.
    Cached,
    /// Parked; the chunk parked before, `entry`, goes to small list `list`, which is full:
    /// for `cache_flushing`.
    Full { entry: usize, list: usize },
    /// A chunk of `size` bytes, of small list `list`, that carries `FREE_TAG`: for
    /// `cache_tagged_small`.
    Tagged { list: usize, size: usize },
    /// A chunk past the small lists whose header, read (and unsealed) here, is this: for
    /// `cache_range`.
    Range(usize),
    /// Left, with every report, to the full path.
    Refused,
}

/// free's fast path: parks `mem` if it is, beyond doubt, an in-use chunk of this thread's
/// arena of a small list's size (see the module's text), and links the chunk parked before
/// into its list. Reads, in order: this cache's copy of its arena's newest segment, the
/// chunk's header, then the parked chunk and its list (the unchecked build, which has no
/// segment bounds, reads the heap header that names the chunk's owner after the header).
/// Each outcome other than `Cached` ends in one call, which the caller makes in tail
/// position, so that this path saves no registers.
///
/// # Safety
/// In the unchecked build `mem` must be a chunk of ours; in the hardened build anything,
/// NULL included, is checked here.
#[inline(always)]
pub unsafe fn free_fast(mem: usize) -> Freed {
    let p = mem.wrapping_sub(HEADER);
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    let head = match HARDENED {
        true => match tc.head_within(Chunk(p), tc.limit) {
            Some(head) => head,
            None => return Freed::Refused,
        },
        false if mem & ALIGN_MASK != 0 => return Freed::Refused,
        // SAFETY: the unchecked build takes the caller's word that this is a chunk of ours.
        false => unsafe { Chunk(p).head() },
    };
    // The small list of the chunk's size; a small size ends within the segment, as `limit`
    // leaves room for it. In the hardened build a header that is not a chunk's own unseals
    // to high bits, out of range, so a chunk starts at `p`; the flags shift out, as no
    // chunk in an arena segment is mapped (a header that says so unseals whole only if it
    // was sealed there). The unchecked build rejects the mmapped flag, or bit 3 (never set
    // in a size of ours), by leaving the size off the grid.
    let i = match HARDENED {
        true => head.wrapping_sub(MIN_CHUNK) >> ALIGN_SHIFT,
        false => steps((head & !(PREV_INUSE | NON_MAIN_ARENA)).wrapping_sub(MIN_CHUNK)),
    };
    if i >= tc.lists {
        return Freed::Range(head);
    }
    // A chunk inside this arena's newest segment is this arena's, so the hardened build
    // asks no owner. Only a segment that another thread sharing the arena has given back
    // since this thread last saw it, and that a third arena has mapped again, could hold
    // another arena's chunk here: it is then cached as glibc caches any arena's chunk, and
    // a flush hands it to the owner its heap header names.
    // SAFETY: the unchecked build takes the caller's word that a chunk starts at `p`, and
    // it is not mapped.
    if !HARDENED && unsafe { arenas::owner_addr(Chunk(p)) } != tc.arena {
        return Freed::Refused;
    }
    let (key, parked) = (tc.key, tc.parked);
    // SAFETY: a chunk starts at `p` (as above) that its holder is freeing: its user words
    // are the caller's to read.
    if unsafe { Chunk(p).carries_free_tag() } {
        return Freed::Tagged {
            list: i,
            size: head & !ALIGN_MASK,
        };
    }
    // A signal handler that interrupts this and calls free must never find the old chunk
    // with the new list (it would link the chunk into a list of another size), nor the old
    // chunk still parked once it is linked, nor the new one parked before it is marked:
    // the parking place is emptied first, and the fences keep the compiler to this order.
    // An interruption costs at worst the handler's parked chunk, overwritten here, which
    // then stays in use.
    let list = tc.parked_list;
    tc.parked = 0;
    compiler_fence(SeqCst);
    tc.parked_list = i;
    // SAFETY: the chunk is being freed; its second word is the cache's from now on.
    unsafe { *((mem + SIZE_SZ) as *mut usize) = key };
    compiler_fence(SeqCst);
    tc.parked = mem;
    if parked == 0 {
        return Freed::Cached;
    }
    // SAFETY: the chunk parked before passed the checks above in its turn; `list` is its
    // small list.
    match unsafe { tc.small(list).link_marked(parked) } {
        true => Freed::Cached,
        false => Freed::Full {
            entry: parked,
            list,
        },
    }
}

/// free of a chunk that free's fast path found to carry `FREE_TAG` (`Freed::Tagged`):
/// caches it in small list `i` after `cache_tagged`'s checks; `false` leaves it to the full
/// path.
///
/// # Safety
/// As for `free_fast`, with `i` and `size` found there for the chunk at `mem`.
#[inline]
pub unsafe fn cache_tagged_small(mem: usize, i: usize, size: usize) -> bool {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    let (key, count) = (tc.key, tc.count);
    // SAFETY: forwarded; `i` is a small list.
    unsafe {
        cache_tagged(
            tc.small(i),
            Chunk::from_mem(mem as *mut u8),
            size,
            key,
            count,
        )
    }
}

/// Caches `entry`, the chunk that free's fast path took out of the parking place, in its
/// small list `i`, which is full: half of the list goes back to the arena first, as
/// `free_slow` makes room.
///
/// # Safety
/// `entry` must be a chunk of small list `i` that the cache held parked.
#[cold]
#[inline(never)]
pub unsafe fn cache_flushing(entry: usize, i: usize) {
    // SAFETY: the cache is this thread's own; it is set up, as it parked a chunk.
    let tc = unsafe { &mut *tls::tcache() };
    flush_half(tc, i);
    // SAFETY: forwarded (a parked chunk carries the mark); the list has room now, as every
    // list has a place at least.
    let linked = unsafe { tc.small(i).link_marked(entry) };
    debug_assert!(linked);
}

/// free's way for a chunk past the small lists, whose header `head` its fast path has read
/// (`Freed::Range`; unsealed, in the hardened build, for a chunk fewer than `limit` steps
/// past `lo`): caches it in its range list if it is an arena chunk of this thread's arena
/// that ends before its segment does, as `push` would after the full check; `false` leaves
/// it to that.
///
/// # Safety
/// As for `free_fast`, with `head` read there for the chunk at `p`.
#[inline(always)]
pub unsafe fn cache_range(p: Chunk, head: usize) -> bool {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    let size = head & !FLAG_BITS;
    // A garbage header unseals to a size far past `max_chunk`; a small one has a list of
    // its own (or, below `lists`, is not cached).
    if head & IS_MMAPPED != 0 || size > tc.max_chunk || size <= SMALL_MAX_CHUNK {
        return false;
    }
    if HARDENED && size >= tc.room_from(p) {
        return false;
    }
    // The segment's bounds say whose chunk this is only as of this thread's last unlock;
    // range lists hand their chunks to this arena's bins (`Ranges::reclaim`), so the owner
    // is asked.
    // SAFETY: a chunk of ours starts at `p` (its seal, or the unchecked build's trust).
    if unsafe { arenas::owner_addr(p) } != tc.arena {
        return false;
    }
    let (key, count) = (tc.key, tc.count);
    // SAFETY: forwarded; the chunk ends inside the segment, with its successor's header.
    tc.cache_into(range_list(size), |list| unsafe {
        cache_in(list, p, size, key, count)
    })
}

/// The unsealed header of chunk `c` if `c` lies in the newest segment of this thread's
/// arena and its size ends there with room for its successor's header: free's check that
/// reads nothing but this cache and `c`'s header. `None` sends the caller to the start map.
/// Such a header is a chunk's (see `chunk`: any other word unseals to a size far past the
/// segment); one that ends a header short of the segment's end can be neither top nor past
/// it, so its successor's header is there to read. The copy of the segment's bounds is
/// this thread's last view of it: when threads share the arena, another may have shrunk or
/// unmapped the segment since, and then only a pointer that is no chunk at all could lead
/// this read past mapped memory.
#[inline(always)]
pub fn owned_head(c: Chunk) -> Option<usize> {
    if !HARDENED {
        // SAFETY: the unchecked build takes the caller's word that this is a chunk of ours.
        return Some(unsafe { c.head() });
    }
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &*tls::tcache() };
    if tc.limit == 0 {
        return None;
    }
    let head = tc.head_within(c, tc.limit + SMALL_MAX_CHUNK / ALIGNMENT)?;
    (head & !FLAG_BITS < tc.room_from(c)).then_some(head)
}

/// The header of chunk `c` when it is a chunk beyond doubt: by its seal (`owned_head`),
/// else by the start map (`starts::checked_head`); `None` when neither shows it.
pub fn checked_head(c: Chunk) -> Option<usize> {
    owned_head(c).or_else(|| crate::starts::checked_head(c))
}

/// Called as this thread unlocks the arena whose state is `st`: if that is this thread's
/// own arena, remembers its newest segment for `owned_head`.
pub fn note_unlock(st: &State) {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    if tc.state != ACTIVE || st.arena != tc.arena {
        return;
    }
    let (first, end) = match st.segments {
        0 => (0, 0),
        header => {
            // SAFETY: the lock is held, and the newest segment's header is live.
            let seg = unsafe { Segment::at(header) };
            (seg.first, seg.end)
        }
    };
    // `reach` bytes past `first` is the last start that leaves room for the largest small
    // chunk and its successor's header; `limit` counts the steps up to it and one more.
    (tc.lo, tc.limit) = match (end - first).checked_sub(HEADER + SMALL_MAX_CHUNK) {
        Some(reach) if reach > 0 => (first, reach / ALIGNMENT + 1),
        _ => (0, 0),
    };
}

/// Caches freed chunk `p` of `size` bytes if its list has room; `false` sends it to the
/// slow path.
///
/// # Safety
/// `p` must be an in-use arena chunk of `size` bytes the caller is freeing.
#[inline(always)]
pub unsafe fn push(p: Chunk, size: usize) -> bool {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    // SAFETY: forwarded.
    if size > tc.max_chunk || unsafe { arenas::owner_addr(p) } != tc.arena {
        return false;
    }
    let (key, count) = (tc.key, tc.count);
    // SAFETY: forwarded.
    tc.cache_into(list_of(size), |list| unsafe {
        cache_in(list, p, size, key, count)
    })
}

/// The step every caching free shares: caches in-use chunk `p` of `size` bytes in `list`
/// (its size's, of at most `limit` entries: `tcache_count`, which bounds every list) if it
/// carries no mark and the list has room.
///
/// A chunk that is free anywhere carries `FREE_TAG` in its second word: a cached, fast-bin
/// or remote chunk its mark, a binned one its tagged link (a chunk merged into a neighbour
/// or top lost its header, which the caller's seal check rejects). So the successor's
/// in-use bit is read only for a chunk that carries the tag. The unchecked build, which
/// keeps no seals, does not catch a second free of a merged chunk whose old mark has been
/// overwritten since, as glibc's thread cache, which checks only its key, does not.
///
/// # Safety
/// `p` must be an in-use arena chunk (not mapped) of `size` bytes that the caller is
/// freeing, with its successor's header inside its segment; a range list's must be of this
/// thread's arena (`Ranges::reclaim` frees them into it).
#[inline(always)]
unsafe fn cache_in(list: List<'_>, p: Chunk, size: usize, key: usize, limit: u16) -> bool {
    // SAFETY: the chunk is being freed by its owner, so its user words are ours to read;
    // its successor's header lies inside the segment (the caller's word).
    unsafe {
        if p.carries_free_tag() {
            return cache_tagged(list, p, size, key, limit);
        }
        list.link(p.mem() as usize, key)
    }
}

/// `cache_in` for a chunk that carries `FREE_TAG`: the cache's mark (the list is looked
/// through, see `link_after_key_match`), the remote one (a double free, reported), the
/// fast bins' mark or a binned chunk's link (left to the arena path, which reports it), or
/// user data that carries the tag by chance, cached as any chunk once its successor shows
/// it in use. The parked chunk carries the cache's mark in no list, so it is looked for
/// before the list. (Like glibc, the cache does not see a second free of a chunk whose
/// mark the program has written over: free's fast path would spend a compare on every
/// call, 1-2 % of churn's time, on the chunk parked last alone.)
///
/// # Safety
/// As for `cache_in`.
#[cold]
#[inline(never)]
unsafe fn cache_tagged(list: List<'_>, p: Chunk, size: usize, key: usize, limit: u16) -> bool {
    let entry = p.mem() as usize;
    // SAFETY: forwarded: the chunk's user words are the caller's to read.
    let mark = unsafe { p.mark() };
    // SAFETY: the cache is this thread's own.
    if mark == remote_mark(key) || (mark == key && entry == unsafe { (*tls::tcache()).parked }) {
        corruption(Corruption::TcacheDoubleFree);
    }
    // SAFETY: forwarded.
    unsafe {
        if mark == key {
            return list.link_after_key_match(entry, key, limit);
        }
        // Free in its arena, in a bin or a fast bin: the arena path reports it.
        if mark == fast_key() || !p.plus(size).prev_inuse() {
            return false;
        }
        list.link(entry, key)
    }
}

/// This thread's cache, set up if it is new.
#[inline]
fn current() -> &'static mut Tcache {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    if tc.state == NEW {
        setup(tc);
    }
    tc
}

#[cold]
fn setup(tc: &mut Tcache) {
    // The first allocation of the process initialises the main arena and the globals.
    if !crate::arena::global_ready() {
        drop(MAIN.lock());
    }
    tc.state = ACTIVE;
    tc.request_lists = REQUEST_LISTS;
    tc.key = KEY.load(Relaxed);
    tc.unseal_key = crate::chunk::unseal_key();
    tc.arena = arenas::attach() as *const Arena as usize;
    let count = PARAMS.tcache_count.load(Relaxed).min(u16::MAX as usize);
    let max = PARAMS.tcache_max.load(Relaxed);
    if count > 0 {
        tc.count = count as u16;
        for (i, room) in tc.room.iter_mut().enumerate() {
            *room = capacity(i, tc.count);
        }
        let max_chunk = request_to_size(max).unwrap_or(0);
        if max_chunk > SMALL_MAX_CHUNK {
            // SAFETY: `with_arena` runs the closure with the arena's lock held.
            let alloc = |nb| with_arena(|g| unsafe { g.malloc(nb) });
            tc.ranges = Ranges::make(tc.count, alloc).unwrap_or(core::ptr::null_mut());
        }
        set_max_chunk(tc, max_chunk);
    }
    let key = EXIT_KEY.load(Relaxed);
    if key != u32::MAX {
        // May allocate: the cache is already active, so that allocation finds it ready.
        os::set_thread_value(key, tc as *mut Tcache as usize);
    }
}

/// Sets the largest cached chunk size (0: none; no more than the small lists' without range
/// lists) and the bounds the fast paths derive from it.
fn set_max_chunk(tc: &mut Tcache, max_chunk: usize) {
    tc.max_chunk = match tc.ranges.is_null() {
        true => max_chunk.min(SMALL_MAX_CHUNK),
        false => max_chunk,
    };
    let small = max_chunk.min(SMALL_MAX_CHUNK);
    (tc.lists, tc.request_limit) = match small >= MIN_CHUNK {
        true => (small_list(small) + 1, small - SIZE_SZ + 1),
        false => (0, 0),
    };
}

/// Locks the arena this thread uses (another one if this thread already holds it, which
/// happens only when a signal handler interrupted malloc).
pub fn lock_arena() -> Guard<'static> {
    let tc = current();
    // SAFETY: the cache's arena is a live arena.
    let a = unsafe { arenas::at(tc.arena) };
    if a.lock_held_by_me() {
        return arenas::lock_other(a);
    }
    a.lock()
}

/// Runs `f` on this thread's arena under its lock; if it finds nothing there and that was a
/// thread arena, once more on the main arena, as glibc retries.
pub fn with_arena<R>(mut f: impl FnMut(&mut Guard<'static>) -> Option<R>) -> Option<R> {
    let mut g = lock_arena();
    if let Some(r) = f(&mut g) {
        return Some(r);
    }
    if core::ptr::eq(g.arena_ref(), &MAIN) {
        return None;
    }
    drop(g);
    f(&mut MAIN.lock())
}

/// The slow path of malloc for a chunk of `nb` bytes, past the cache's lists (`pop_request`
/// and `pop` looked there): from the arena, refilling a small list in the same locked
/// batch. A range request may be carved larger, at its list's largest size (see
/// `Ranges::carve_size`).
#[cold]
pub fn malloc_slow(nb: usize) -> Option<Chunk> {
    let tc = current();
    let max_chunk = tc.max_chunk;
    let nb = tc.ranges().map_or(nb, |r| r.carve_size(nb, max_chunk));
    // SAFETY: the closure runs with the lock held; chunks taken are in use and handed to the
    // cache or the caller.
    with_arena(|g| unsafe {
        let first = match g.arena_ref() as *const Arena as usize == tc.arena {
            true => g.malloc_reclaiming(nb, |st, all| reclaim(tc, st, nb, all))?,
            false => g.malloc(nb)?,
        };
        if nb <= tc.max_chunk.min(SMALL_MAX_CHUNK) && !first.is_mmapped() {
            // Carve the batch first, then cache it highest address first, so that it is
            // handed out in address order, as single splits of top would be.
            let i = small_list(nb);
            let doublings = &mut tc.refills[i];
            let places = capacity(i, tc.count);
            let want = (FIRST_BATCH << *doublings)
                .min((places as usize).div_ceil(2))
                .min(MAX_BATCH);
            *doublings = (*doublings + 1).min(MAX_DOUBLINGS);
            let held = (places - tc.room[i]) as usize;
            let mut batch = [0usize; MAX_BATCH];
            let mut n = 0;
            let mut last = first;
            while n + held < want {
                n += g.carve_after(last, nb, &mut batch[n..want - held]);
                if n + held >= want {
                    break;
                }
                let Some(c) = g.malloc(nb) else { break };
                batch[n] = c.mem() as usize;
                n += 1;
                last = c;
            }
            let key = tc.key;
            for &entry in batch[..n].iter().rev() {
                // Room for the whole batch: it fills the list to `want`, at most half of it.
                let linked = tc.small(i).link(entry, key);
                debug_assert!(linked);
            }
        }
        Some(first)
    })
}

/// Before this thread's arena splits its top or grows for `nb` bytes: see `Ranges::reclaim`.
fn reclaim(tc: &mut Tcache, st: &mut State, nb: usize, all: bool) -> bool {
    tc.ranges().is_some_and(|r| r.reclaim(st, nb, all))
}

/// The slow path of free for arena chunk `p` of `size` bytes: half-flush a full list and
/// cache `p`, or free it to its arena.
///
/// # Safety
/// `p` must be an in-use arena chunk the caller is freeing.
#[cold]
pub unsafe fn free_slow(p: Chunk, size: usize) {
    let tc = current();
    if tc.state == ACTIVE && size <= tc.max_chunk {
        // SAFETY: forwarded.
        if unsafe { arenas::owner_addr(p) } != tc.arena {
            // A chunk of another arena joins the foreign batch if it is small; a batch of
            // range chunks could hold a megabyte back from their owners, so those go back
            // at once.
            if size <= SMALL_MAX_CHUNK {
                // SAFETY: forwarded.
                unsafe { add_foreign(tc, p) };
                return;
            }
        } else {
            flush_half(tc, list_of(size));
            // SAFETY: forwarded; the list now has room.
            if unsafe { push(p, size) } {
                return;
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { free_to_arena(p) };
}

/// Makes room in list `i` (a full one, for the callers): half the chunks it holds go back to
/// their arenas.
fn flush_half(tc: &mut Tcache, i: usize) {
    let limit = capacity(i, tc.count);
    let held = tc.list(i).map_or(0, |l| limit - *l.room);
    drain::flush(tc, i, (held as usize).div_ceil(2));
}

/// Adds chunk `p` of another arena to the foreign batch, handing the batch back when full.
///
/// # Safety
/// As for `free_slow`.
unsafe fn add_foreign(tc: &mut Tcache, p: Chunk) {
    let entry = p.mem() as usize;
    // SAFETY: the chunk is being freed; its first two words are ours.
    unsafe {
        mark_remote(entry, tc.key);
        *(entry as *mut usize) = tc.foreign;
    }
    tc.foreign = entry;
    tc.foreign_count += 1;
    if tc.foreign_count >= FOREIGN_BATCH {
        drain::flush_foreign(tc);
    }
}

/// Chunks and bytes the calling thread's cache holds: cached entries, the parked chunk, the
/// foreign batch and the chunk its range lists live in. A cached chunk may be a little
/// larger than its list's size (a refill keeps a chunk whole when splitting it would leave
/// less than a chunk), so each entry's own size is read.
pub fn cached() -> (usize, usize) {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    let (mut count, mut bytes) = (0, 0);
    if !tc.ranges.is_null() {
        count += 1;
        // SAFETY: the range lists live in an in-use chunk of this thread's arena.
        bytes += unsafe { Chunk::from_mem(tc.ranges.cast()).size() };
    }
    let range_heads = tc.ranges().map_or(&[][..], |r| r.heads());
    for &head in tc.heads.iter().chain(range_heads) {
        let mut e = head;
        while e != 0 {
            // SAFETY: cached entries are in-use chunks of this thread.
            unsafe {
                count += 1;
                bytes += Chunk::from_mem(e as *mut u8).size();
                e = reveal(e, *(e as *const usize));
            }
        }
    }
    if tc.parked != 0 {
        count += 1;
        // SAFETY: the parked chunk is an in-use chunk of this thread.
        bytes += unsafe { Chunk::from_mem(tc.parked as *mut u8).size() };
    }
    let mut e = tc.foreign;
    while e != 0 {
        // SAFETY: foreign entries are in-use chunks this thread freed, linked plainly.
        unsafe {
            count += 1;
            bytes += Chunk::from_mem(e as *mut u8).size();
            e = *(e as *const usize);
        }
    }
    (count, bytes)
}

/// The pthread key destructor: flush, switch the cache off, and let the arena go.
unsafe extern "C" fn thread_exit(_: *mut libc::c_void) {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    if tc.state != ACTIVE {
        return;
    }
    // Off first, so that nothing is adopted into the cache while it is being emptied.
    set_max_chunk(tc, 0);
    tc.state = DONE;
    (tc.lo, tc.limit) = (0, 0);
    flush_all();
    if !tc.ranges.is_null() {
        let lists =
            Chunk::from_mem(core::mem::replace(&mut tc.ranges, core::ptr::null_mut()).cast());
        // SAFETY: the range lists' chunk is an in-use chunk of an arena, now empty.
        unsafe { free_to_arena(lists) };
    }
    // SAFETY: the cache's arena is a live arena.
    let arena = unsafe { arenas::at(tc.arena) };
    tc.arena = &MAIN as *const Arena as usize;
    arenas::detach(arena);
}

/// Takes `entry`, an in-use chunk of this thread's arena that another thread freed, into
/// this thread's cache if its list has room (the caller holds the arena's lock).
pub fn adopt(entry: usize) -> bool {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    // SAFETY: the entry is an in-use chunk of this thread's arena, now ours to free.
    let size = unsafe { Chunk::from_mem(entry as *mut u8).size() };
    if tc.state != ACTIVE || size > tc.max_chunk {
        return false;
    }
    let key = tc.key;
    // SAFETY: the entry is ours.
    tc.cache_into(list_of(size), |list| unsafe { list.link(entry, key) })
}

/// The arena of the calling thread (for fork's child handler).
pub fn my_arena() -> usize {
    // SAFETY: the cache is this thread's own.
    unsafe { (*tls::tcache()).arena }
}
