//! Which addresses belong to the allocator (S6.2). `free` and `realloc` ask here before
//! they read a chunk header, so that a wild pointer, a stack address or an already unmapped
//! block is reported instead of crashing inside the allocator:
//! - the main arena's segments: a small table of address ranges, newest last;
//! - thread heaps: one bit per 64 MiB of address space (a heap is 64 MiB-aligned), then the
//!   heap's own header for its used extent;
//! - mmapped chunks: a hash set of their chunk addresses, under a lock (a mapped chunk costs a
//!   system call anyway).
//!
//! Writers hold the lock of the arena concerned (or the set's lock); readers need none: a
//! block being freed was handed out after its range was recorded, and that ordering carries
//! over to the thread freeing it.

use crate::chunk::{Chunk, HEADER};
use crate::heap::HEAP_MAX;
use crate::lock::Mutex;
use crate::os;
use crate::segment::Segment;
use core::cell::UnsafeCell;
use core::sync::atomic::{
    AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// Main-arena segments the table can name exactly. Past that (a process whose break was
/// moved by others hundreds of times) a segment is only marked by the 64 MiB regions it
/// touches, and a pointer there is taken as ours with the region's end as the bound.
const MAIN_SLOTS: usize = 256;
/// log2 of the heap size: one bit of `HEAPS` per 64 MiB.
const HEAP_SHIFT: u32 = HEAP_MAX.trailing_zeros();
/// Bits enough for a 48-bit address space.
const HEAP_WORDS: usize = (1usize << (48 - HEAP_SHIFT)) / 64;

static MAIN_FIRST: [AtomicUsize; MAIN_SLOTS] = [const { AtomicUsize::new(0) }; MAIN_SLOTS];
static MAIN_END: [AtomicUsize; MAIN_SLOTS] = [const { AtomicUsize::new(0) }; MAIN_SLOTS];
static MAIN_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The newest main-arena segment, where almost every main-arena pointer lies: checked first,
/// inline.
static HOT_FIRST: AtomicUsize = AtomicUsize::new(usize::MAX);
static HOT_END: AtomicUsize = AtomicUsize::new(0);
static HEAPS: [AtomicU64; HEAP_WORDS] = [const { AtomicU64::new(0) }; HEAP_WORDS];
static MAIN_REGIONS: [AtomicU64; HEAP_WORDS] = [const { AtomicU64::new(0) }; HEAP_WORDS];

/// Where a pointer handed to `free` lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A main-arena segment or a thread heap, whose usable memory ends at `end`.
    Arena {
        /// One past the segment's last usable byte.
        end: usize,
    },
    /// An mmapped chunk.
    Mapped,
}

/// Records a new main-arena segment whose chunks run from `first` to `end`.
/// Called with the main arena's lock held.
pub fn add_main_segment(first: usize, end: usize) {
    // The end is cleared first: a reader that sees the same end before and after reading
    // the start knows the two belong together.
    HOT_END.store(0, Release);
    HOT_FIRST.store(first, Release);
    HOT_END.store(end, Release);
    let n = MAIN_COUNT.load(Relaxed);
    if n < MAIN_SLOTS {
        MAIN_FIRST[n].store(first, Relaxed);
        MAIN_END[n].store(end, Relaxed);
        MAIN_COUNT.store(n + 1, Release);
    } else {
        // The segment may still grow: mark its region and the next, as far as brk goes.
        let last = end.saturating_add(HEAP_MAX) >> HEAP_SHIFT;
        for region in (first >> HEAP_SHIFT)..=last.min((1 << (48 - HEAP_SHIFT)) - 1) {
            set_bit(&MAIN_REGIONS, region);
        }
    }
}

/// The main-arena segment starting at `first` now ends at `end` (it grew or was trimmed).
/// Called with the main arena's lock held.
pub fn set_main_end(first: usize, end: usize) {
    if HOT_FIRST.load(Relaxed) == first {
        HOT_END.store(end, Release);
    }
    let n = MAIN_COUNT.load(Relaxed);
    if let Some(i) = (0..n).rev().find(|&i| MAIN_FIRST[i].load(Relaxed) == first) {
        MAIN_END[i].store(end, Release);
    }
}

/// Records (or forgets) the heap starting at `start`.
pub fn mark_heap(start: usize, live: bool) {
    let bit = start >> HEAP_SHIFT;
    if live {
        set_bit(&HEAPS, bit);
    } else {
        HEAPS[bit / 64].fetch_and(!(1u64 << (bit % 64)), Release);
    }
}

fn set_bit(map: &[AtomicU64; HEAP_WORDS], bit: usize) {
    map[bit / 64].fetch_or(1u64 << (bit % 64), Release);
}

#[inline(always)]
fn bit_set(map: &[AtomicU64; HEAP_WORDS], bit: usize) -> bool {
    bit / 64 < HEAP_WORDS && map[bit / 64].load(Acquire) & (1 << (bit % 64)) != 0
}

/// Where `mem`, a pointer someone hands back, lives: `None` if it is none of ours (or is an
/// mmapped chunk already freed). Reads only memory known to be mapped.
#[inline(always)]
pub fn place(mem: usize) -> Option<Place> {
    let chunk = mem.wrapping_sub(HEADER);
    let end = HOT_END.load(Acquire);
    // The second read of the end proves the start belongs with it (see add_main_segment).
    if chunk >= HOT_FIRST.load(Acquire) && mem < end && HOT_END.load(Acquire) == end {
        return Some(Place::Arena { end });
    }
    let bit = mem >> HEAP_SHIFT;
    if bit_set(&HEAPS, bit) {
        // SAFETY: a marked region starts with a live heap header.
        let seg = unsafe { Segment::at(mem & !(HEAP_MAX - 1)) };
        return (chunk >= seg.first && mem < seg.end).then_some(Place::Arena { end: seg.end });
    }
    place_elsewhere(mem)
}

/// `place` for pointers outside the newest main segment and the thread heaps.
#[inline(never)]
fn place_elsewhere(mem: usize) -> Option<Place> {
    let chunk = mem.wrapping_sub(HEADER);
    let n = MAIN_COUNT.load(Acquire);
    for i in (0..n).rev() {
        let first = MAIN_FIRST[i].load(Relaxed);
        let end = MAIN_END[i].load(Acquire);
        if chunk >= first && mem < end {
            return Some(Place::Arena { end });
        }
    }
    if MAPPED.contains(chunk) {
        return Some(Place::Mapped);
    }
    let bit = mem >> HEAP_SHIFT;
    if bit_set(&MAIN_REGIONS, bit) {
        return Some(Place::Arena {
            end: (mem | (HEAP_MAX - 1)) + 1,
        });
    }
    None
}

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
            let (i, present) = t.find(c.0);
            if !present {
                // SAFETY: `i < capacity`.
                let was = unsafe { core::mem::replace(&mut *t.slot(i), c.0) };
                if was == EMPTY {
                    t.used += 1;
                }
            }
            true
        })
    }

    /// Forgets mmapped chunk `c`; whether it was there.
    pub fn remove(&self, c: Chunk) -> bool {
        self.with(|t| {
            if t.capacity == 0 {
                return false;
            }
            let (i, present) = t.find(c.0);
            if present {
                // SAFETY: `i < capacity`.
                unsafe { *t.slot(i) = DELETED };
            }
            present
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

    #[test]
    fn main_segments_past_the_table_are_still_found() {
        // Fake segments far from anything real: `place` reads only the table and the bits
        // for main-arena pointers.
        let base = 0x6000_0000_0000usize;
        for i in 0..MAIN_SLOTS + 40 {
            let first = base + i * HEAP_MAX * 2;
            add_main_segment(first, first + 4096);
        }
        let in_table = base + 16;
        assert!(
            matches!(place(in_table + HEADER), Some(Place::Arena { end }) if end == base + 4096)
        );
        let past = base + (MAIN_SLOTS + 30) * HEAP_MAX * 2;
        assert_eq!(
            place(past + 64),
            Some(Place::Arena {
                end: past + HEAP_MAX
            })
        );
        assert_eq!(place(base + 2 * HEAP_MAX * (MAIN_SLOTS + 80)), None);
    }

    #[test]
    fn heap_bits_cover_their_region() {
        let start = 0x7e00_0000_0000usize;
        mark_heap(start, true);
        let bit = start >> HEAP_SHIFT;
        assert_ne!(HEAPS[bit / 64].load(Relaxed) & (1 << (bit % 64)), 0);
        mark_heap(start, false);
        assert_eq!(HEAPS[bit / 64].load(Relaxed) & (1 << (bit % 64)), 0);
    }
}
