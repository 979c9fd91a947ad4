//! The list of arenas (S3.1, S3.3, S3.4): which arena a thread uses, how many may exist, and
//! reuse of arenas whose threads have exited. The main arena is a static; every other arena
//! lives at the start of its first 64 MiB heap. Arenas are never destroyed, so the list can
//! be read without its lock.

use crate::arena::{Arena, Guard};
use crate::chunk::{Chunk, NON_MAIN_ARENA};
use crate::heap::{self, HEAP_MAX};
use crate::lock::Mutex;
use crate::options::PARAMS;
use crate::os;
use crate::segment::Segment;
use crate::MAIN;
use core::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// Guards arena creation, the free list and the attached-thread counts.
static LIST_LOCK: Mutex = Mutex::new();
/// Arenas in existence, the main one included.
static COUNT: AtomicUsize = AtomicUsize::new(1);
/// Arenas whose threads have all exited, linked through `Arena::next_free`.
static FREE_LIST: AtomicUsize = AtomicUsize::new(0);
/// Where the next search for an arena to share starts (glibc's `next_to_use`).
static NEXT_TO_USE: AtomicUsize = AtomicUsize::new(0);
/// Whether the main arena has been handed to a thread yet.
static MAIN_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// glibc's NARENAS_FROM_NCORES on 64-bit.
const ARENAS_PER_CORE: usize = 8;

/// The arena at `addr`.
///
/// # Safety
/// `addr` must be the address of a live arena (they are never freed).
#[inline]
pub unsafe fn at(addr: usize) -> &'static Arena {
    // SAFETY: the caller guarantees a live arena; arenas live for the whole process.
    unsafe { &*(addr as *const Arena) }
}

/// The arena that owns in-use chunk `p`: thread arenas mark their chunks, and a marked chunk
/// lies in a 64 MiB-aligned heap whose header names its arena.
///
/// # Safety
/// `p` must be an in-use arena chunk (not mmapped) with a readable header.
#[inline]
pub unsafe fn owner(p: Chunk) -> &'static Arena {
    // SAFETY: forwarded; the address named is a live arena.
    unsafe { at(owner_addr(p)) }
}

/// The address of the arena that owns in-use chunk `p`.
///
/// # Safety
/// As for `owner`.
#[inline(always)]
pub unsafe fn owner_addr(p: Chunk) -> usize {
    // SAFETY: forwarded.
    unsafe {
        if p.head() & NON_MAIN_ARENA == 0 {
            &MAIN as *const Arena as usize
        } else {
            Segment::at(p.0 & !(HEAP_MAX - 1)).arena
        }
    }
}

/// Iterates over every arena, the main one first.
#[derive(Clone)]
pub struct All {
    next: usize,
}

impl Iterator for All {
    type Item = &'static Arena;
    fn next(&mut self) -> Option<&'static Arena> {
        if self.next == 0 {
            return None;
        }
        // SAFETY: list members are live arenas.
        let a = unsafe { at(self.next) };
        self.next = a.next.load(Acquire);
        Some(a)
    }
}

/// Every arena, the main one first.
pub fn all() -> All {
    All {
        next: &MAIN as *const Arena as usize,
    }
}

/// How many arenas may exist: M_ARENA_MAX if set; else unlimited while no more than
/// M_ARENA_TEST exist, then 8 per core.
fn limit(existing: usize) -> usize {
    let max = PARAMS.arena_max.load(Relaxed);
    if max != 0 {
        return max;
    }
    if existing <= PARAMS.arena_test.load(Relaxed) {
        return usize::MAX;
    }
    ARENAS_PER_CORE * os::cpu_count()
}

/// Picks the arena for a thread's first allocation: the main arena for the first thread,
/// else an arena whose threads have exited, else a new one while under the limit, else one
/// shared with other threads (the first whose lock is free, trying each in turn).
pub fn attach() -> &'static Arena {
    LIST_LOCK.lock();
    let chosen = if MAIN_TAKEN.swap(1, Relaxed) == 0 {
        &MAIN
    } else if let Some(a) = pop_free() {
        a
    } else if COUNT.load(Relaxed) < limit(COUNT.load(Relaxed)) {
        create().unwrap_or_else(share)
    } else {
        share()
    };
    chosen.attached.fetch_add(1, Relaxed);
    LIST_LOCK.unlock();
    chosen
}

/// A thread has stopped using `a`; with no threads left it goes to the free list.
pub fn detach(a: &'static Arena) {
    LIST_LOCK.lock();
    if a.attached.fetch_sub(1, Relaxed) == 1 {
        a.next_free.store(FREE_LIST.load(Relaxed), Relaxed);
        FREE_LIST.store(a as *const Arena as usize, Relaxed);
    }
    LIST_LOCK.unlock();
}

fn pop_free() -> Option<&'static Arena> {
    let head = FREE_LIST.load(Relaxed);
    if head == 0 {
        return None;
    }
    // SAFETY: free-list members are live arenas.
    let a = unsafe { at(head) };
    FREE_LIST.store(a.next_free.load(Relaxed), Relaxed);
    Some(a)
}

/// Removes `a` from the free list if it is there (it is being shared again).
fn unlist_free(a: &Arena) {
    let target = a as *const Arena as usize;
    let mut link = &FREE_LIST;
    loop {
        let cur = link.load(Relaxed);
        if cur == 0 {
            return;
        }
        // SAFETY: free-list members are live arenas.
        let arena = unsafe { at(cur) };
        if cur == target {
            link.store(arena.next_free.load(Relaxed), Relaxed);
            return;
        }
        link = &arena.next_free;
    }
}

/// Makes a new thread arena in a fresh heap and links it into the list.
fn create() -> Option<&'static Arena> {
    let a = heap::new_arena()?;
    a.next.store(MAIN.next.load(Relaxed), Relaxed);
    MAIN.next.store(a as *const Arena as usize, Release);
    COUNT.fetch_add(1, Relaxed);
    Some(a)
}

/// Past the limit: try-lock the arenas in turn from where the last search stopped and take
/// the first that is free; if all are busy, take the next one anyway (its lock will wait).
fn share() -> &'static Arena {
    let count = COUNT.load(Relaxed);
    let start = NEXT_TO_USE.load(Relaxed) % count;
    let chosen = all()
        .cycle()
        .skip(start)
        .take(count)
        .enumerate()
        .find(|(_, a)| a.try_lock().map(drop).is_some())
        .unwrap_or_else(|| (0, all().nth(start).unwrap_or(&MAIN)));
    NEXT_TO_USE.store(start + chosen.0 + 1, Relaxed);
    unlist_free(chosen.1);
    chosen.1
}

/// Locks an arena other than `busy` for a thread whose own arena it already holds (a signal
/// handler that interrupted malloc): any free one, else a new one, else the main arena.
#[cold]
pub fn lock_other(busy: &Arena) -> Guard<'static> {
    for a in all() {
        if !core::ptr::eq(a, busy) {
            if let Some(g) = a.try_lock() {
                return g;
            }
        }
    }
    if !core::ptr::eq(busy, &MAIN) {
        return MAIN.lock();
    }
    LIST_LOCK.lock();
    let fresh = create();
    LIST_LOCK.unlock();
    fresh.unwrap_or(&MAIN).lock()
}

/// fork, before: takes the list lock and every arena's lock (except those this thread already
/// holds because fork was called from a signal handler that interrupted malloc).
pub fn lock_all_for_fork() {
    let registry = &crate::registry::MAPPED;
    LIST_LOCK.lock_for_fork();
    // The registry's lock is a leaf (its holder waits for no other lock) but is taken
    // under arena locks, so an arena's holder may be waiting for it. If this thread holds
    // it, a signal handler interrupted it there, and that holder cannot go on before this
    // fork returns: its arena is left to it. If this thread was interrupted just after
    // letting the registry go, before waking a waiter, a waiter is woken here (each one
    // woken wakes the next as it lets go).
    let registry_mine = registry.held_by_me();
    if !registry_mine {
        registry.wake_waiter();
    }
    for a in all() {
        match registry_mine {
            true => a.lock_for_fork_unless(|holder| registry.is_waiting(holder)),
            false => a.lock_for_fork(),
        }
    }
    registry.lock_for_fork();
}

/// fork, in the parent: releases what `lock_all_for_fork` took.
pub fn unlock_all_after_fork() {
    crate::registry::MAPPED.unlock_after_fork();
    for a in all() {
        a.unlock_after_fork();
    }
    LIST_LOCK.unlock_after_fork();
}

/// fork, in the child: only this thread exists. Locks are reset, not unlocked; every arena
/// but this thread's goes to the free list with no threads attached.
pub fn reset_all_in_child(mine: usize) {
    crate::registry::MAPPED.reset_after_fork();
    FREE_LIST.store(0, Relaxed);
    for a in all() {
        a.reset_after_fork();
        let addr = a as *const Arena as usize;
        if addr == mine || a.is_locked() {
            // This thread's arena, or one whose lock stays with the interrupted frame of a
            // fork from a signal handler: not for new threads.
            a.attached.store(1, Relaxed);
        } else {
            a.attached.store(0, Relaxed);
            a.next_free.store(FREE_LIST.load(Relaxed), Relaxed);
            FREE_LIST.store(addr, Relaxed);
        }
    }
    LIST_LOCK.reset_after_fork();
}
