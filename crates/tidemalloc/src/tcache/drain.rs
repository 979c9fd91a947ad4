//! Chunks leaving the thread cache for their arenas: half a full list, the foreign batch,
//! everything at thread exit or malloc_trim. Chunks of one arena go back as one run, under
//! one lock for this thread's own arena, or with one CAS onto another arena's remote list.

use super::classes::LISTS;
use super::list::List;
use super::{check_not_remote, remote_mark, Tcache, FOREIGN_BATCH, KEY};
use crate::arena::{Arena, CARRIER};
use crate::arenas;
use crate::check::{corruption, Corruption, HARDENED};
use crate::chunk::{Chunk, ALIGN_MASK, SIZE_SZ};
use crate::starts;
use crate::tls;
use core::sync::atomic::Ordering::Relaxed;

/// Frees `p` to its arena: under the lock if it can be had at once (or is this thread's own
/// arena), else handed to the owner's remote list, so that a free never waits on another
/// thread's arena. A chunk that carries the remote mark is on such a list already: freeing
/// it again is reported as a double free. Any other mark is left for the arena's own checks.
///
/// # Safety
/// `p` must be an in-use arena chunk the caller is freeing.
pub unsafe fn free_to_arena(p: Chunk) {
    // SAFETY: forwarded.
    let owner = unsafe { arenas::owner(p) };
    let mem = p.mem() as usize;
    // SAFETY: forwarded.
    unsafe {
        check_not_remote(mem, (*tls::tcache()).key);
        release_run(owner, mem, mem);
    }
}

/// Frees a chain of chunks of one arena, linked through their first word, `first` to `last`:
/// into this thread's own arena under its lock; another arena's chain goes onto that arena's
/// remote list with one CAS, each chunk with the remote mark, for its owner to take
/// straight into its thread cache.
unsafe fn release_run(owner: &'static Arena, first: usize, last: usize) {
    // SAFETY: the chain holds in-use chunks of `owner` that their holder is freeing.
    unsafe {
        *(last as *mut usize) = 0;
        let mine = (*tls::tcache()).arena == owner as *const Arena as usize;
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
            None => {
                let mark = remote_mark((*tls::tcache()).key);
                let mut run = [0usize; FOREIGN_BATCH];
                let mut n = 0;
                let mut e = first;
                while e != 0 {
                    *((e + SIZE_SZ) as *mut usize) = mark;
                    if let Some(slot) = run.get_mut(n) {
                        *slot = e;
                    }
                    n += 1;
                    e = *(e as *const usize);
                }
                match run.get(..n).and_then(|run| load_carrier(run)) {
                    Some(carrier) => owner.push_remote(carrier | CARRIER, carrier),
                    None => owner.push_remote(first, last),
                }
            }
        }
    }
}

/// Stops the process unless `entry`, a chunk on its way back to its arena (in a thread's
/// foreign batch, or on the remote list of arena `owner`), is still what the thread that
/// freed it left there: a chunk that starts where the start map says one does, of
/// `owner` if given, with the remote mark in its second word. Only a write into freed
/// memory changes that, and its links and the addresses a carrier holds would otherwise be
/// followed wherever they point. The unchecked build keeps no start map and checks nothing.
///
/// # Safety
/// `entry` may be any value; it is read only once the start map shows a chunk there.
pub unsafe fn check_in_transit(entry: usize, owner: Option<usize>) {
    if !HARDENED {
        return;
    }
    let c = Chunk::from_mem(entry as *mut u8);
    if entry & ALIGN_MASK != 0 || starts::checked_head(c).is_none() {
        corruption(Corruption::InTransitCorrupted);
    }
    // SAFETY: a chunk starts at `c` (the start map says so), so its header and first user
    // words are arena memory; a chunk of an arena names its owner.
    unsafe {
        if owner.is_some_and(|a| arenas::owner_addr(c) != a)
            || *((entry + SIZE_SZ) as *const usize) != remote_mark(KEY.load(Relaxed))
        {
            corruption(Corruption::InTransitCorrupted);
        }
    }
}

/// How many other chunks' addresses carrier `entry` (checked with `check_in_transit`)
/// holds, if that many can be: fewer than a batch, and all within its own bytes.
///
/// # Safety
/// `entry` must be a carrier on a remote list.
pub unsafe fn carried(entry: usize) -> usize {
    // SAFETY: forwarded: the carrier's header and third word are its own.
    unsafe {
        let count = *(entry as *const usize).add(2);
        if HARDENED
            && (count >= FOREIGN_BATCH
                || count + 3 > Chunk::from_mem(entry as *mut u8).usable() / SIZE_SZ)
        {
            corruption(Corruption::InTransitCorrupted);
        }
        count
    }
}

/// Makes a chunk of `run` (at least two chunks of one arena on their way back to it) its
/// carrier (see `Arena::remote`): the first with room for the count and the others'
/// addresses after its link and mark. `None` when none has room, or there is only one.
///
/// # Safety
/// The chunks must be in-use arena chunks their holder is freeing.
unsafe fn load_carrier(run: &[usize]) -> Option<usize> {
    if run.len() < 2 {
        return None;
    }
    let words = run.len() + 2;
    // SAFETY: forwarded; their headers are theirs to read.
    let carrier = *run
        .iter()
        .find(|&&c| unsafe { Chunk::from_mem(c as *mut u8).usable() } >= words * SIZE_SZ)?;
    let slots = carrier as *mut usize;
    // SAFETY: the carrier's user words are ours, and `words` of them fit.
    unsafe {
        *slots.add(2) = run.len() - 1;
        for (k, &c) in run.iter().filter(|&&c| c != carrier).enumerate() {
            *slots.add(3 + k) = c;
        }
    }
    Some(carrier)
}

/// Wipes the remote mark of chunk `entry` as its arena takes it off the remote list into its
/// bins: merged into a neighbour or top it would stay in memory that may become another
/// chunk at the same address, whose free would then look like a double free.
///
/// # Safety
/// `entry` must be a chunk being freed to its arena, its second word ours.
pub unsafe fn clear_mark(entry: usize) {
    // SAFETY: forwarded.
    unsafe { *((entry + SIZE_SZ) as *mut usize) = 0 };
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

/// Takes up to `n` chunks off list `i` and frees them to their arenas.
pub fn flush(tc: &mut Tcache, i: usize, n: usize) {
    let mut runs = Runs { run: None };
    for _ in 0..n {
        let Some(entry) = tc.list(i).and_then(List::take) else {
            break;
        };
        // SAFETY: cached entries are in-use chunks this thread freed, now out of the cache.
        unsafe { runs.add(entry as usize) };
    }
    runs.finish();
}

/// Hands the foreign chunks back to their arenas.
pub fn flush_foreign(tc: &mut Tcache) {
    let mut e = core::mem::take(&mut tc.foreign);
    tc.foreign_count = 0;
    let mut runs = Runs { run: None };
    while e != 0 {
        // SAFETY: foreign entries are in-use chunks this thread freed, linked plainly, each
        // checked before its link is read.
        unsafe {
            check_in_transit(e, None);
            let next = *(e as *const usize);
            runs.add(e);
            e = next;
        }
    }
    runs.finish();
}

/// Flushes every list of the calling thread's cache and its parked chunk (malloc_trim,
/// thread exit).
pub fn flush_all() {
    // SAFETY: the cache is this thread's own.
    let tc = unsafe { &mut *tls::tcache() };
    if let Some(entry) = tc.unpark(tc.parked_list) {
        let mut runs = Runs { run: None };
        // SAFETY: the parked chunk is an in-use chunk this thread freed, now out of the cache.
        unsafe { runs.add(entry) };
        runs.finish();
    }
    for i in 0..LISTS {
        flush(tc, i, usize::MAX);
    }
    flush_foreign(tc);
}
