//! The mmapped chunks the allocator handed out (S6.2). `free` and `realloc` find arena
//! chunks through the chunk-start map (`starts.rs`); a pointer that is no chunk start there
//! must be one of these, or it is reported: a wild pointer, a stack address or a mapped
//! block already freed is never followed. A hash set of chunk addresses under a lock is
//! enough: a mapped chunk costs a system call anyway.

use crate::chunk::Chunk;
use crate::lock::Mutex;
use crate::os;
use core::cell::UnsafeCell;

/// The live mmapped chunks: an open-addressing hash set of chunk addresses in a mapping of
/// its own, grown by doubling.
pub static MAPPED: MappedSet = MappedSet {
    lock: Mutex::new(),
    table: UnsafeCell::new(Table {
        slots: 0,
        capacity: 0,
        used: 0,
    }),
};

/// See `MAPPED`.
pub struct MappedSet {
    lock: Mutex,
    table: UnsafeCell<Table>,
}

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
    fn with<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        self.lock.lock();
        // SAFETY: the lock is held.
        let r = f(unsafe { &mut *self.table.get() });
        self.lock.unlock();
        r
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
        self.lock.reset_after_fork();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_set_inserts_finds_removes_and_grows() {
        let set = MappedSet {
            lock: Mutex::new(),
            table: UnsafeCell::new(Table {
                slots: 0,
                capacity: 0,
                used: 0,
            }),
        };
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
