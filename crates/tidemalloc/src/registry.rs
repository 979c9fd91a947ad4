//! The mmapped chunks the allocator handed out (S6.2). `free` and `realloc` find arena
//! chunks through the chunk-start map (`starts.rs`); a pointer that is no chunk start there
//! must be one of these, or it is reported: a wild pointer, a stack address or a mapped
//! block already freed is never followed. A hash set of chunk addresses under a lock is
//! enough: a mapped chunk costs a system call anyway.

use crate::chunk::Chunk;
use crate::lock::Mutex;
use crate::os;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// The live mmapped chunks: an open-addressing hash set of chunk addresses in a mapping of
/// its own, grown by doubling.
pub static MAPPED: MappedSet = MappedSet::new();

/// See `MAPPED`.
pub struct MappedSet {
    lock: Mutex,
    /// Numbers of the threads waiting for `lock` (0: a free slot). A thread may wait here
    /// while it holds an arena's lock (a mapped chunk is recorded under it), so a fork from
    /// a signal handler that interrupted the lock's holder looks here to tell such an
    /// arena lock, which its holder cannot let go before fork returns, from a busy one.
    waiting: [AtomicU32; WAITER_SLOTS],
    /// Set in a fork child whose forking thread held `lock` in the frame a signal
    /// interrupted: the lock stays with that frame until it resumes, if ever. Until then no
    /// new mapping is recorded (`can_record`), so that malloc, in the handler or in any
    /// thread of the child, carves from the heap rather than waits.
    frozen: AtomicBool,
    table: UnsafeCell<Table>,
}

/// Waiters `MappedSet::waiting` can name: threads that hold an arena's lock, so 8 per core
/// of the largest machines this runs on, and a few more; a waiter past them waits unnamed.
const WAITER_SLOTS: usize = 1024;

// SAFETY: the table is only touched with `lock` held.
unsafe impl Sync for MappedSet {}

struct Table {
    /// Address of `capacity` words; 0 is an empty slot, 1 a deleted one.
    slots: usize,
    capacity: usize,
    /// Live entries plus deleted slots.
    used: usize,
}

const EMPTY: usize = 0;
const DELETED: usize = 1;
const FIRST_CAPACITY: usize = 512;

impl Table {
    fn slot(&self, i: usize) -> *mut usize {
        (self.slots + i * core::mem::size_of::<usize>()) as *mut usize
    }

    fn start(&self, key: usize) -> usize {
        // Chunk addresses are page-aligned or nearly: mix the high bits down.
        (key >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.capacity.trailing_zeros())
    }

    /// The slot holding `key`, or the first free one on its probe path.
    fn find(&self, key: usize) -> (usize, bool) {
        let mask = self.capacity - 1;
        let mut i = self.start(key);
        let mut free = None;
        loop {
            // SAFETY: `i < capacity`, within the table's mapping.
            let v = unsafe { *self.slot(i) };
            if v == key {
                return (i, true);
            }
            if v == EMPTY {
                return (free.unwrap_or(i), false);
            }
            if v == DELETED && free.is_none() {
                free = Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `key` (the caller has made room).
    fn put(&mut self, key: usize) {
        let (i, present) = self.find(key);
        if !present {
            // SAFETY: `i < capacity`.
            let was = unsafe { core::mem::replace(&mut *self.slot(i), key) };
            if was == EMPTY {
                self.used += 1;
            }
        }
    }

    /// Removes `key`; whether it was there.
    fn take(&mut self, key: usize) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let (i, present) = self.find(key);
        if present {
            // SAFETY: `i < capacity`.
            unsafe { *self.slot(i) = DELETED };
        }
        present
    }

    fn grow(&mut self) -> bool {
        let capacity = (self.capacity * 2).max(FIRST_CAPACITY);
        let Some(slots) = os::map(capacity * core::mem::size_of::<usize>()) else {
            return false;
        };
        let old = core::mem::replace(
            self,
            Table {
                slots,
                capacity,
                used: 0,
            },
        );
        for i in 0..old.capacity {
            // SAFETY: `i < old.capacity`.
            let v = unsafe { *old.slot(i) };
            if v > DELETED {
                let (j, _) = self.find(v);
                // SAFETY: `j < capacity`.
                unsafe { *self.slot(j) = v };
                self.used += 1;
            }
        }
        if old.capacity > 0 {
            // SAFETY: the old table is no longer referenced.
            unsafe { os::unmap(old.slots, old.capacity * core::mem::size_of::<usize>()) };
        }
        true
    }
}

impl MappedSet {
    const fn new() -> Self {
        MappedSet {
            lock: Mutex::new(),
            waiting: [const { AtomicU32::new(0) }; WAITER_SLOTS],
            frozen: AtomicBool::new(false),
            table: UnsafeCell::new(Table {
                slots: 0,
                capacity: 0,
                used: 0,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        if !self.lock.try_lock() {
            let me = crate::tcache::thread_number();
            let slot = self
                .waiting
                .iter()
                .find(|s| s.compare_exchange(0, me, Relaxed, Relaxed).is_ok());
            self.lock.lock();
            if let Some(s) = slot {
                s.store(0, Relaxed);
            }
        }
        // SAFETY: the lock is held.
        let r = f(unsafe { &mut *self.table.get() });
        if self.frozen.load(Relaxed) {
            self.frozen.store(false, Relaxed);
        }
        self.lock.unlock();
        r
    }

    /// Whether a new mapped chunk can be recorded now without waiting on a lock that may
    /// never be let go: not from a signal handler that interrupted this thread inside the
    /// set, nor in a fork child of such a handler (see `frozen`).
    pub fn can_record(&self) -> bool {
        !self.frozen.load(Relaxed) && !self.lock.held_by_me()
    }

    /// Records mmapped chunk `c`; `false` if the set could not grow (the caller then gives
    /// the mapping back).
    pub fn insert(&self, c: Chunk) -> bool {
        self.with(|t| {
            if (t.used + 1) * 2 > t.capacity && !t.grow() {
                return false;
            }
            t.put(c.0);
            true
        })
    }

    /// Forgets mmapped chunk `c`; whether it was there.
    pub fn remove(&self, c: Chunk) -> bool {
        self.with(|t| t.take(c.0))
    }

    /// Runs `resize`, which may move mmapped chunk `old` to another address (mremap), and
    /// records the chunk it returns in place of `old`, all under the lock. A move hands
    /// `old`'s range back to the kernel at once, so another thread may map a chunk there
    /// before `old` is forgotten: with the lock let go in between, that chunk would be
    /// recorded first (a no-op, as `old` was still there) and then forgotten in `old`'s
    /// place, and its free reported as an invalid pointer.
    pub fn moving(&self, old: Chunk, resize: impl FnOnce() -> Option<Chunk>) -> Option<Chunk> {
        self.with(|t| {
            let new = resize()?;
            if new != old {
                t.take(old.0);
                // The slot `old` freed keeps the table within its load: no growth needed.
                t.put(new.0);
            }
            Some(new)
        })
    }

    /// Whether `chunk` is a live mmapped chunk.
    pub fn contains(&self, chunk: usize) -> bool {
        chunk > DELETED && self.with(|t| t.capacity > 0 && t.find(chunk).1)
    }

    /// Whether this thread holds the set's lock (a signal handler interrupted it there).
    pub fn held_by_me(&self) -> bool {
        self.lock.held_by_me()
    }

    /// Wakes a thread sleeping on the set's lock, if any (it looks at the lock again).
    pub fn wake_waiter(&self) {
        self.lock.wake_one();
    }

    /// Whether thread `number` is waiting for the set's lock.
    pub fn is_waiting(&self, number: u32) -> bool {
        self.waiting.iter().any(|s| s.load(Relaxed) == number)
    }

    /// fork, before: no thread may hold the set mid-change.
    pub fn lock_for_fork(&self) {
        self.lock.lock_for_fork();
    }

    /// fork, in the parent.
    pub fn unlock_after_fork(&self) {
        self.lock.unlock_after_fork();
    }

    /// fork, in the child.
    pub fn reset_after_fork(&self) {
        if self.lock.held_by_me() {
            self.frozen.store(true, Relaxed);
        }
        self.lock.reset_after_fork();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_set_inserts_finds_removes_and_grows() {
        let set = MappedSet::new();
        let keys: std::vec::Vec<usize> = (1..3000)
            .map(|i| 0x7f00_0000_0000 + i * 4096 + 16)
            .collect();
        for &k in &keys {
            assert!(set.insert(Chunk(k)));
        }
        assert!(keys.iter().all(|&k| set.contains(k)));
        assert!(!set.contains(0x7f00_0000_0000 + 10_000 * 4096));
        for &k in keys.iter().step_by(2) {
            assert!(set.remove(Chunk(k)));
            assert!(!set.remove(Chunk(k)), "removing twice finds nothing");
        }
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(set.contains(k), i % 2 == 1);
        }
    }
}
