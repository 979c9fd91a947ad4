//! The chunk-start map (S6.2): one bit per 16 bytes of arena memory, set where a chunk
//! begins. `free` and `realloc` accept a pointer only if its chunk starts where a bit says
//! one does and the next chunk starts where its size says, so an interior pointer, a stale
//! pointer into merged memory or a size overwritten by a neighbour's overflow is reported
//! even when the bytes it points at look like a header.
//!
//! The map is the full check. free's fast path (`tcache::owned_head`) looks at no bitmap:
//! it takes a chunk of the thread's own newest segment on its header's seal (see `chunk`),
//! and a merge wipes the header of the chunk that stops being one (`erase`), so no stale
//! seal is left to match. Whatever fails there comes here.
//!
//! Each 64 MiB of address space that holds arena memory gets a 512 KiB bitmap of its own,
//! reserved untouched (`MAP_NORESERVE`), so only the pages for memory in use cost anything
//! (1/128 of it). Two arenas never share a 64 MiB region (thread heaps are 64 MiB-aligned
//! reservations), so a bitmap word has one writer at a time, under its arena's lock; readers
//! need no lock. The `unchecked` build keeps no map at all.

use crate::check::HARDENED;
use crate::chunk::{Chunk, ALIGNMENT, FLAG_BITS};
use crate::os;
use core::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// log2 of the address space one bitmap covers (64 MiB).
pub const REGION_SHIFT: u32 = 26;
const REGIONS: usize = 1 << (48 - REGION_SHIFT);
const BITS_PER_REGION: usize = (1 << REGION_SHIFT) / ALIGNMENT;
const BYTES_PER_MAP: usize = BITS_PER_REGION / 8;

/// The bitmap of each 64 MiB region, or 0.
static MAPS: [AtomicUsize; REGIONS] = [const { AtomicUsize::new(0) }; REGIONS];
/// Cleared for good if a bitmap could not be mapped, and never set in the unchecked build,
/// which keeps no map: the checks then accept every start.
static TRACKED: AtomicBool = AtomicBool::new(HARDENED);

#[inline(always)]
fn locate(addr: usize) -> (usize, usize) {
    let region = (addr >> REGION_SHIFT) & (REGIONS - 1);
    let bit = (addr & ((1 << REGION_SHIFT) - 1)) / ALIGNMENT;
    (region, bit)
}

#[inline(always)]
fn word(map: usize, bit: usize) -> &'static AtomicU64 {
    // SAFETY: `map` is a live bitmap of BYTES_PER_MAP bytes and `bit / 64` is within it.
    unsafe { &*((map + bit / 64 * 8) as *const AtomicU64) }
}

/// Makes sure every region that `[first, end)` touches has a bitmap. Called with the lock
/// of the arena that owns the range held.
pub fn cover(first: usize, end: usize) {
    if !HARDENED {
        return;
    }
    let mut region = first >> REGION_SHIFT;
    while region <= (end - 1) >> REGION_SHIFT {
        let slot = &MAPS[region & (REGIONS - 1)];
        if slot.load(Acquire) == 0 {
            match os::map_unreserved(BYTES_PER_MAP) {
                Some(map) => slot.store(map, Release),
                None => TRACKED.store(false, Relaxed),
            }
        }
        region += 1;
    }
}

/// Records that a chunk starts at `c`.
#[inline]
pub fn set(c: Chunk) {
    mark(c, true);
}

/// Records that no chunk starts at `c` any more.
#[inline]
pub fn clear(c: Chunk) {
    mark(c, false);
}

/// Records that no chunk starts at `c` any more (it was merged into the one before it, or
/// into top) and wipes its old header, seal and all.
///
/// # Safety
/// `c`'s header must be mapped free memory of an arena whose lock is held.
#[inline]
pub unsafe fn erase(c: Chunk) {
    clear(c);
    // SAFETY: forwarded.
    unsafe { c.erase_head() };
}

#[inline]
fn mark(c: Chunk, start: bool) {
    if !HARDENED {
        return;
    }
    let (region, bit) = locate(c.0);
    let map = MAPS[region].load(Relaxed);
    if map != 0 {
        let w = word(map, bit);
        let mask = 1 << (bit % 64);
        let old = w.load(Relaxed);
        w.store(if start { old | mask } else { old & !mask }, Release);
    }
}

/// Whether a chunk starts at `addr`.
#[inline(always)]
pub fn is_start(addr: usize) -> bool {
    let (region, bit) = locate(addr);
    let map = MAPS[region].load(Acquire);
    if map == 0 {
        return !TRACKED.load(Relaxed);
    }
    word(map, bit).load(Acquire) & (1 << (bit % 64)) != 0 || !TRACKED.load(Relaxed)
}

/// The first chunk start strictly inside `(lo, hi)`, if any (for the heap walk). Reads a
/// word at a time.
pub fn first_start_inside(lo: usize, hi: usize) -> Option<usize> {
    let mut addr = lo + ALIGNMENT;
    while addr < hi {
        let (region, bit) = locate(addr);
        let map = MAPS[region].load(Acquire);
        let region_end = (addr | ((1 << REGION_SHIFT) - 1)) + 1;
        let stop = hi.min(region_end);
        if map == 0 {
            addr = stop;
            continue;
        }
        let last_bit = bit + (stop - addr) / ALIGNMENT;
        let mut b = bit;
        while b < last_bit {
            let bits = word(map, b).load(Acquire) >> (b % 64);
            let span = (64 - b % 64).min(last_bit - b);
            let masked = if span == 64 {
                bits
            } else {
                bits & ((1 << span) - 1)
            };
            if masked != 0 {
                return Some(addr + (b - bit + masked.trailing_zeros() as usize) * ALIGNMENT);
            }
            b += span;
        }
        addr = stop;
    }
    None
}

/// The header word of the chunk at `c` if a chunk starts there and, per its size, another
/// where it ends; `None` otherwise. The header is read only once its start is known. This is
/// `free`'s check, so it looks up the region's bitmap once for both bits when they share it.
#[inline(always)]
pub fn checked_head(c: Chunk) -> Option<usize> {
    let (region, bit) = locate(c.0);
    let map = MAPS[region].load(Acquire);
    if map == 0 || word(map, bit).load(Acquire) & (1 << (bit % 64)) == 0 {
        return untracked_head(c);
    }
    // SAFETY: a chunk starts at `c`, so its header is arena memory.
    let head = unsafe { c.head() };
    // A damaged size may wrap around the address space; the next chunk's bit is found from
    // where it lands.
    let next = c.0.wrapping_add(head & !FLAG_BITS);
    let found = if (next ^ c.0) >> REGION_SHIFT == 0 {
        let next_bit = locate(next).1;
        word(map, next_bit).load(Acquire) & (1 << (next_bit % 64)) != 0
    } else {
        is_start(next)
    };
    (found || !TRACKED.load(Relaxed)).then_some(head)
}

#[cold]
fn untracked_head(c: Chunk) -> Option<usize> {
    // SAFETY: with no map to go by (a bitmap could not be made, or the unchecked build keeps
    // none), the caller's word is taken.
    (!TRACKED.load(Relaxed)).then(|| unsafe { c.head() })
}

/// Forgets every start in the 64 MiB region at `start` (a heap being unmapped).
pub fn wipe(start: usize) {
    let map = MAPS[(start >> REGION_SHIFT) & (REGIONS - 1)].load(Relaxed);
    if map != 0 {
        // SAFETY: the bitmap is ours; zero pages read back as "no chunk starts here".
        unsafe { os::discard(map, BYTES_PER_MAP) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        feature = "unchecked",
        ignore = "the unchecked build keeps no start map"
    )]
    fn bits_follow_set_and_clear() {
        let base = 0x5100_0000_0000usize;
        cover(base, base + (1 << 20));
        assert!(!is_start(base + 64));
        set(Chunk(base + 64));
        set(Chunk(base + 96));
        assert!(is_start(base + 64) && is_start(base + 96));
        assert!(!is_start(base + 80));
        assert_eq!(first_start_inside(base, base + 4096), Some(base + 64));
        assert_eq!(first_start_inside(base + 64, base + 96), None);
        assert_eq!(first_start_inside(base + 64, base + 112), Some(base + 96));
        set(Chunk(base + 16 * 200));
        assert_eq!(
            first_start_inside(base + 96, base + 8192),
            Some(base + 16 * 200)
        );
        clear(Chunk(base + 64));
        assert!(!is_start(base + 64) && is_start(base + 96));
        wipe(base);
        assert!(!is_start(base + 96));
    }
}
