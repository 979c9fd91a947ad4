//! The per-thread cache in front of the arenas (S3.5): for each chunk size up to
//! `tcache_max`, a short singly linked list of freed chunks. Its fast path is a TLS access
//! and a list pop or push: no lock, no atomic read-modify-write. An empty list is refilled,
//! and a full one half flushed, in one batch under one arena lock.
//!
//! Every thread starts on a zeroed cache whose size limit is 0, so the fast path needs no
//! "initialised?" test: the first call of each thread falls to the slow path, which sets
//! the cache up. At thread exit the cache is flushed and switched off for good; later calls
//! from that thread (other TLS destructors) go straight to the arenas.

use crate::arena::{Arena, Guard, State};
use crate::arenas;
use crate::bins::{protect, reveal};
use crate::check::{self, corruption, Corruption};
use crate::chunk::{
    aligned, request_to_size, Chunk, ALIGNMENT, ALIGN_MASK, FLAG_BITS, HEADER, IS_MMAPPED,
    MIN_CHUNK, SIZE_SZ,
};
use crate::options::PARAMS;
use crate::os;
use crate::starts;
use crate::tls;
use crate::MAIN;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};

/// Size classes the cache can hold: chunk sizes 32, 48, ... 1040 (requests up to 1032 B).
pub const BINS: usize = 64;
/// The largest chunk size the cache can hold.
pub const MAX_CHUNK: usize = MIN_CHUNK + (BINS - 1) * ALIGNMENT;
/// Default entries per size class (glibc 2.43's figure; tunable with
/// `GLIBC_TUNABLES=glibc.malloc.tcache_count=N`).
pub const DEFAULT_COUNT: usize = 64;
/// Foreign chunks a thread collects before it hands them back to their arenas.
const FOREIGN_BATCH: usize = 32;
/// Most chunks one refill carves under one lock.
const MAX_BATCH: usize = 64;
/// The default largest cached request (`glibc.malloc.tcache_max`).
pub const DEFAULT_MAX_BYTES: usize = MAX_CHUNK - SIZE_SZ;

const NEW: u8 = 0;
const ACTIVE: u8 = 1;
const DONE: u8 = 2;

/// Marks a cached chunk in its second word, so that a double free is spotted cheaply.
static KEY: AtomicUsize = AtomicUsize::new(0);
/// Told apart from `KEY` by one bit: the mark of a chunk in an arena's fast bin.
const FAST_TAG: usize = 1 << 62;

/// The mark of a chunk in a fast bin.
#[inline]
pub fn fast_key() -> usize {
    KEY.load(Relaxed) ^ FAST_TAG
}
/// The pthread key whose destructor flushes a thread's cache at exit (`u32::MAX` until made).
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// One thread's cache. Lives in TLS, zero-initialised.
#[repr(C)]
pub struct Tcache {
    heads: [usize; BINS],
    counts: [u16; BINS],
    /// Largest chunk size served from the cache; 0 sends every call to the slow path.
    max_chunk: usize,
    /// `max_chunk - MIN_CHUNK + ALIGNMENT`, or 0 while the cache is off: a chunk of `size`
    /// bytes is cacheable when `size - MIN_CHUNK < span` (one unsigned compare).
    span: usize,
    /// One past the largest request served from the cache, or 0 while it is off.
    request_limit: usize,
    /// The double-free key (a copy of `KEY`, so that the fast paths read only this cache).
    key: usize,
    limit: u16,
    state: u8,
    arena: usize,
    /// Chunks of other arenas this thread freed, linked through their first word, waiting
    /// to go back to their owners in one batch; never handed out here, so that a thread
    /// does not end up writing next to another thread's objects (Hoard's cache-scratch).
    foreign: usize,
    foreign_count: usize,
    /// This thread's number for lock words (0 until first needed).
    number: u32,
}

#[inline(always)]
fn index(size: usize) -> usize {
    (size - MIN_CHUNK) / ALIGNMENT
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
    KEY.store(os::random_word(), Relaxed);
    if let Some(key) = os::thread_exit_key(thread_exit) {
        EXIT_KEY.store(key, Relaxed);
    }
}

/// Pops a cached chunk for a request of `bytes` bytes, if any: malloc's fast path.
#[inline(always)]
pub fn pop_request(bytes: usize) -> Option<*mut u8> {
    // SAFETY: the cache is this thread's own; nothing else touches it.
    let tc = unsafe { &mut *tls::tcache() };
    if bytes >= tc.request_limit {
        return None;
    }
    take(tc, request_index(bytes))
}

/// The list of a request's chunk size, computed from the request (no larger than
/// `MAX_CHUNK - SIZE_SZ`) without going through `request_to_size`.
#[inline(always)]
fn request_index(bytes: usize) -> usize {
    // Requests of 0 to 24 bytes all take the smallest chunk.
    ((bytes + SIZE_SZ + ALIGN_MASK) / ALIGNMENT).saturating_sub(MIN_CHUNK / ALIGNMENT)
}

/// Pops a cached chunk of exactly `nb` bytes, if any.
#[inline(always)]
pub fn pop(nb: usize) -> Option<*mut u8> {
    // SAFETY: the cache is this thread's own; nothing else touches it.
    let tc = unsafe { &mut *tls::tcache() };
    if nb.wrapping_sub(MIN_CHUNK) >= tc.span {
        return None;
    }
    take(tc, index(nb))
}

/// Takes the first entry of list `i` (`i` within the cache's span).
#[inline(always)]
fn take(tc: &mut Tcache, i: usize) -> Option<*mut u8> {
    // SAFETY: callers checked that list `i` is within the span, so `i < BINS`.
    let head = unsafe { tc.heads.get_unchecked_mut(i) };
    let entry = *head;
    if entry == 0 {
        return None;
    }
    // SAFETY: cached entries are chunks this thread freed; their first two words are ours.
    unsafe {
        let next = reveal(entry, *(entry as *const usize));
        // A link into another 64 MiB region than its own entry (or the list's end) is rare
        // and checked in full; garbage revealed from an overwritten link almost never stays
        // in the region, and never stays aligned by chance for long.
        let far = match check::HARDENED {
            true => (next ^ entry) >> starts::REGION_SHIFT,
            false => 0,
        };
        if (next & ALIGN_MASK) | far != 0 {
            return Some(take_far(tc, i, entry, next));
        }
        Some(unlink_first(tc, i, entry, next))
    }
}

/// Makes `next` the head of list `i` in place of its first entry `entry`, and hands
/// `entry` out with its key cleared.
///
/// # Safety
/// `i < BINS`; `entry` is list `i`'s first entry and `next` its checked link.
#[inline(always)]
unsafe fn unlink_first(tc: &mut Tcache, i: usize, entry: usize, next: usize) -> *mut u8 {
    // SAFETY: forwarded; the entry's second word is ours.
    unsafe {
        *tc.heads.get_unchecked_mut(i) = next;
        *tc.counts.get_unchecked_mut(i) -= 1;
        *((entry + SIZE_SZ) as *mut usize) = 0;
    }
    entry as *mut u8
}

/// `take` for an entry whose link is unaligned or leaves the entry's region: the list's
/// end, a chunk in another heap of the arena, or damage, which aborts.
#[cold]
#[inline(never)]
fn take_far(tc: &mut Tcache, i: usize, entry: usize, next: usize) -> *mut u8 {
    if next != 0 && (!aligned(next) || (check::HARDENED && !starts::is_start(next - HEADER))) {
        corruption(Corruption::TcacheUnaligned);
    }
    // SAFETY: forwarded from `take`; the link is checked.
    unsafe { unlink_first(tc, i, entry, next) }
}

/// free's fast path: caches `mem` if it is, beyond doubt, an in-use chunk of this thread's
/// arena whose list has room, as `push` would; `false` leaves every other case (and its
/// report) to the full path. Reads, in order: the start map for `mem`'s chunk, its header,
/// the start map where its size ends, this cache, then what `push` reads.
///
/// # Safety
/// `mem` must be non-null; anything else about it is checked here.
#[inline(always)]
pub unsafe fn free_fast(mem: usize) -> bool {
    let p = mem.wrapping_sub(HEADER);
    if mem & ALIGN_MASK != 0 {
        return false;
    }
    let Some(head) = starts::quick_head(Chunk(p)) else {
        return false;
    };
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    let size = head & !FLAG_BITS;
    if head & (IS_MMAPPED | SIZE_SZ) != 0 || size.wrapping_sub(MIN_CHUNK) >= tc.span {
        return false;
    }
    // SAFETY: a chunk starts at `p` (the start map says so, or the unchecked build takes the
    // caller's word) and it is not mapped.
    unsafe { cache_own(tc, Chunk(p), size) }
}

/// Caches freed chunk `p` of `size` bytes if its list has room; `false` sends it to the
/// slow path.
///
/// # Safety
/// `p` must be an in-use arena chunk the caller is freeing.
#[inline(always)]
pub unsafe fn push(p: Chunk, size: usize) -> bool {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    if size > tc.max_chunk {
        return false;
    }
    // SAFETY: forwarded.
    unsafe { cache_own(tc, p, size) }
}

/// The step every caching free shares: caches in-use chunk `p` of `size` (no larger than
/// `max_chunk`) if it belongs to this thread's arena, carries no key and has room.
///
/// # Safety
/// `p` must be an in-use arena chunk (not mapped) the caller is freeing, with its successor's
/// header inside its segment.
#[inline(always)]
unsafe fn cache_own(tc: &mut Tcache, p: Chunk, size: usize) -> bool {
    // SAFETY: forwarded.
    if unsafe { arenas::owner_addr(p) } != tc.arena {
        return false;
    }
    let entry = p.mem() as usize;
    let key = tc.key;
    // SAFETY: the chunk is being freed by its owner, so its user words are ours to read;
    // its successor's header lies inside the segment (the caller's word).
    unsafe {
        let mark = *((entry + SIZE_SZ) as *const usize);
        if (mark ^ key) & !FAST_TAG == 0 {
            return mark == key && push_after_key_match(tc, index(size), entry, key);
        }
        // Already free in its arena (or merged into top): the arena path reports it.
        if !p.in_use() {
            return false;
        }
    }
    // SAFETY: `size <= max_chunk <= MAX_CHUNK`, so the index is in range; the entry is ours.
    unsafe { link(tc, index(size), entry, key) }
}

/// Puts `entry` at the front of list `i` if it has room.
///
/// # Safety
/// `i < BINS`; `entry` is a chunk being freed by this thread.
#[inline(always)]
unsafe fn link(tc: &mut Tcache, i: usize, entry: usize, key: usize) -> bool {
    // SAFETY: the caller guarantees the index and the entry.
    unsafe {
        let count = tc.counts.get_unchecked_mut(i);
        if *count >= tc.limit {
            return false;
        }
        *count += 1;
        let head = tc.heads.get_unchecked_mut(i);
        *(entry as *mut usize) = protect(entry, *head);
        *((entry + SIZE_SZ) as *mut usize) = key;
        *head = entry;
    }
    true
}

/// The chunk carries the cache's key: either it is already cached (a double free, which
/// aborts) or the key is stale user data; look through its list to tell.
#[cold]
#[inline(never)]
fn push_after_key_match(tc: &mut Tcache, i: usize, entry: usize, key: usize) -> bool {
    let mut e = tc.heads[i];
    let mut steps = 0;
    while e != 0 {
        if e == entry {
            corruption(Corruption::TcacheDoubleFree);
        }
        steps += 1;
        if steps > tc.limit as usize {
            corruption(Corruption::TcacheTooMany);
        }
        if !aligned(e) {
            corruption(Corruption::TcacheUnalignedFree);
        }
        // SAFETY: list members are cached chunks of this thread.
        e = reveal(e, unsafe { *(e as *const usize) });
    }
    // SAFETY: `i` came from a size within the cache's range; the entry is being freed.
    unsafe { link(tc, i, entry, key) }
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
    tc.key = KEY.load(Relaxed);
    tc.arena = arenas::attach() as *const Arena as usize;
    let count = PARAMS.tcache_count.load(Relaxed).min(u16::MAX as usize);
    let max = PARAMS.tcache_max.load(Relaxed);
    if count > 0 {
        tc.limit = count as u16;
        set_max_chunk(tc, request_to_size(max).map_or(0, |s| s.min(MAX_CHUNK)));
    }
    let key = EXIT_KEY.load(Relaxed);
    if key != u32::MAX {
        // May allocate: the cache is already active, so that allocation finds it ready.
        os::set_thread_value(key, tc as *mut Tcache as usize);
    }
}

/// Sets the largest cached chunk size (0: none) and the bounds the fast paths derive from it.
fn set_max_chunk(tc: &mut Tcache, max_chunk: usize) {
    tc.max_chunk = max_chunk;
    (tc.span, tc.request_limit) = match max_chunk >= MIN_CHUNK {
        true => (max_chunk - MIN_CHUNK + ALIGNMENT, max_chunk - SIZE_SZ + 1),
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
pub fn with_arena<R>(mut f: impl FnMut(&mut State) -> Option<R>) -> Option<R> {
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

/// The slow path of malloc for a chunk of `nb` bytes: from the arena, refilling the cache in
/// the same locked batch when `nb` is cacheable.
#[cold]
pub fn malloc_slow(nb: usize) -> Option<Chunk> {
    let tc = current();
    // SAFETY: the closure runs with the lock held; chunks taken are in use and handed to the
    // cache or the caller.
    with_arena(|g| unsafe {
        let first = g.malloc(nb)?;
        if nb <= tc.max_chunk && !first.is_mmapped() {
            // Carve the batch first, then cache it highest address first, so that it is
            // handed out in address order, as single splits of top would be.
            let i = index(nb);
            let want = (tc.limit as usize).div_ceil(2).min(MAX_BATCH);
            let mut batch = [0usize; MAX_BATCH];
            let mut n = 0;
            while n + (tc.counts[i] as usize) < want {
                let Some(c) = g.malloc(nb) else { break };
                batch[n] = c.mem() as usize;
                n += 1;
            }
            let key = tc.key;
            for &entry in batch[..n].iter().rev() {
                *(entry as *mut usize) = protect(entry, tc.heads[i]);
                *((entry + SIZE_SZ) as *mut usize) = key;
                tc.heads[i] = entry;
                tc.counts[i] += 1;
            }
        }
        Some(first)
    })
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
            let entry = p.mem() as usize;
            let key = tc.key;
            // SAFETY: the chunk is being freed; its first two words are ours.
            unsafe {
                if *((entry + SIZE_SZ) as *const usize) == key && in_chain(tc.foreign, entry) {
                    corruption(Corruption::TcacheDoubleFree);
                }
                *((entry + SIZE_SZ) as *mut usize) = key;
                *(entry as *mut usize) = tc.foreign;
            }
            tc.foreign = entry;
            tc.foreign_count += 1;
            if tc.foreign_count >= FOREIGN_BATCH {
                flush_foreign(tc);
            }
            return;
        }
        let i = index(size);
        flush(tc, i, (tc.counts[i] as usize).div_ceil(2));
        // SAFETY: forwarded; the list now has room.
        if unsafe { push(p, size) } {
            return;
        }
    }
    // SAFETY: forwarded.
    unsafe { free_to_arena(p) };
}

/// Frees `p` to its arena: under the lock if it can be had at once (or is this thread's own
/// arena), else handed to the owner's remote list, so that a free never waits on another
/// thread's arena.
///
/// # Safety
/// As for `free_slow`.
pub unsafe fn free_to_arena(p: Chunk) {
    // SAFETY: forwarded.
    let owner = unsafe { arenas::owner(p) };
    let mem = p.mem() as usize;
    // SAFETY: forwarded.
    unsafe { release_run(owner, mem, mem) };
}

/// Frees a chain of chunks of one arena, linked through their first word, `first` to `last`:
/// into this thread's own arena under its lock; another arena's chain goes onto that arena's
/// remote list with one CAS, for its owner to take straight into its thread cache.
unsafe fn release_run(owner: &'static Arena, first: usize, last: usize) {
    // SAFETY: the chain holds in-use chunks of `owner` that their holder is freeing.
    unsafe {
        *(last as *mut usize) = 0;
        let mine = tls_arena() == owner as *const Arena as usize;
        let guard = match mine && !owner.lock_held_by_me() {
            true => Some(owner.lock()),
            false => None,
        };
        match guard {
            Some(mut g) => {
                let mut e = first;
                while e != 0 {
                    let next = *(e as *const usize);
                    g.free(Chunk::from_mem(e as *mut u8));
                    e = next;
                }
            }
            None => owner.push_remote(first, last),
        }
    }
}

fn tls_arena() -> usize {
    // SAFETY: the cache is this thread's own.
    unsafe { (*tls::tcache()).arena }
}

/// Chunks on their way back to their arenas, gathered into runs of one arena each so that
/// each run costs one lock (or one hand-over to the owner's remote list).
struct Runs {
    run: Option<(&'static Arena, usize, usize)>,
}

impl Runs {
    /// Adds in-use chunk `entry` (a user pointer being freed).
    ///
    /// # Safety
    /// `entry` must be an in-use arena chunk its holder is freeing, in no list.
    unsafe fn add(&mut self, entry: usize) {
        // SAFETY: forwarded; a run's last entry's first word is free for the link.
        unsafe {
            let owner = arenas::owner(Chunk::from_mem(entry as *mut u8));
            self.run = match self.run {
                Some((a, first, last)) if core::ptr::eq(a, owner) => {
                    *(last as *mut usize) = entry;
                    Some((a, first, entry))
                }
                Some((a, first, last)) => {
                    release_run(a, first, last);
                    Some((owner, entry, entry))
                }
                None => Some((owner, entry, entry)),
            };
        }
    }

    fn finish(self) {
        if let Some((a, first, last)) = self.run {
            // SAFETY: the run holds chunks added above.
            unsafe { release_run(a, first, last) };
        }
    }
}

/// Takes `n` chunks off list `i` and frees them to their arenas.
fn flush(tc: &mut Tcache, i: usize, n: usize) {
    let mut runs = Runs { run: None };
    for _ in 0..n {
        let entry = tc.heads[i];
        if entry == 0 {
            break;
        }
        // SAFETY: cached entries are in-use chunks this thread freed.
        unsafe {
            let next = reveal(entry, *(entry as *const usize));
            if !aligned(next) {
                corruption(Corruption::TcacheUnaligned);
            }
            tc.heads[i] = next;
            tc.counts[i] -= 1;
            *((entry + SIZE_SZ) as *mut usize) = 0;
            runs.add(entry);
        }
    }
    runs.finish();
}

/// Whether `entry` is in the plainly linked chain from `head`.
#[cold]
fn in_chain(mut e: usize, entry: usize) -> bool {
    while e != 0 {
        if e == entry {
            return true;
        }
        // SAFETY: chain members are chunks this thread freed.
        e = unsafe { *(e as *const usize) };
    }
    false
}

/// Hands the foreign chunks back to their arenas.
fn flush_foreign(tc: &mut Tcache) {
    let mut e = core::mem::take(&mut tc.foreign);
    tc.foreign_count = 0;
    let mut runs = Runs { run: None };
    while e != 0 {
        // SAFETY: foreign entries are in-use chunks this thread freed, linked plainly.
        unsafe {
            let next = *(e as *const usize);
            *((e + SIZE_SZ) as *mut usize) = 0;
            runs.add(e);
            e = next;
        }
    }
    runs.finish();
}

/// Flushes every list of the calling thread's cache (malloc_trim, thread exit).
pub fn flush_all() {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    for i in 0..BINS {
        flush(tc, i, usize::MAX);
    }
    flush_foreign(tc);
}

/// Chunks and bytes in the calling thread's cache and foreign batch. A refill may cache a
/// chunk a little
/// larger than its list's size (when splitting it would leave less than a chunk), so each
/// entry's own size is read.
pub fn cached() -> (usize, usize) {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &*tls::tcache() };
    let (mut count, mut bytes) = (0, 0);
    for &head in &tc.heads {
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
    tc.limit = 0;
    tc.state = DONE;
    flush_all();
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
    // SAFETY: `size <= max_chunk`, so the index is in range; the entry is ours.
    unsafe { link(tc, index(size), entry, tc.key) }
}

/// The arena of the calling thread (for fork's child handler).
pub fn my_arena() -> usize {
    tls_arena()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_index_matches_the_chunk_size_of_every_cacheable_request() {
        for bytes in 0..=MAX_CHUNK - SIZE_SZ {
            let nb = request_to_size(bytes).unwrap();
            assert_eq!(request_index(bytes), index(nb), "request of {bytes} bytes");
        }
        assert_eq!(
            request_to_size(MAX_CHUNK - SIZE_SZ + 1),
            Some(MAX_CHUNK + ALIGNMENT)
        );
    }
}
