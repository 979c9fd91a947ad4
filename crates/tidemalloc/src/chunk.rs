//! Chunks: the unit of memory inside an arena, with its header and boundary tags (S2.1).
//!
//! A chunk at address `c` looks like glibc's `malloc_chunk` on 64-bit:
//! `c+0` holds the previous chunk's size when that chunk is free (the boundary tag, "footer"),
//! `c+8` holds this chunk's size with three flag bits, and the user's memory starts at `c+16`.
//! A free chunk keeps its list links in the first user words: `fd` at `c+16`, `bk` at `c+24`.
//! The next chunk's `prev_size` word is usable by this chunk while it is in use, so a chunk of
//! size `s` gives `s - 8` usable bytes.
//!
//! In the hardened build the size word's top 16 bits hold a tag that binds the rest of the
//! word (size and flags) to the chunk's address under a key (sizes stay below 2^47, the user
//! address space). free's fast path takes a chunk on its tag, which needs no memory but the
//! chunk's own header, and sends every chunk whose tag does not match (a pointer into a
//! chunk, a copied or stale header, a size overwritten by an overflow) to the full check of
//! the start map (`starts`). A tag is a filter, never a verdict: a mismatch costs only the
//! full check. `head` and `size` never show the tag.

use crate::check::HARDENED;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Bytes in a size word.
pub const SIZE_SZ: usize = core::mem::size_of::<usize>();
/// Alignment of every user pointer.
pub const ALIGNMENT: usize = 2 * SIZE_SZ;
/// Mask of the bits below `ALIGNMENT`.
pub const ALIGN_MASK: usize = ALIGNMENT - 1;
/// log2 of `ALIGNMENT`.
pub const ALIGN_SHIFT: u32 = ALIGNMENT.trailing_zeros();
/// Bytes from a chunk's start to its user memory.
pub const HEADER: usize = 2 * SIZE_SZ;
/// The smallest chunk: header plus two list links.
pub const MIN_CHUNK: usize = 4 * SIZE_SZ;

/// The previous chunk is in use (so `prev_size` is not valid).
pub const PREV_INUSE: usize = 0x1;
/// The chunk has its own mapping.
pub const IS_MMAPPED: usize = 0x2;
/// The chunk belongs to an arena other than the main one.
pub const NON_MAIN_ARENA: usize = 0x4;
/// The three flag bits of a size word.
pub const FLAG_BITS: usize = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA;

/// How far the tag is shifted up in the size word.
const TAG_SHIFT: u32 = 48;
/// The bits of a size word that hold its tag.
const TAG_MASK: usize = !0 << TAG_SHIFT;
/// The tag key: odd, set once at start-up from the kernel's randomness.
static TAG_KEY: AtomicUsize = AtomicUsize::new(1);
/// The key's inverse modulo 2^16, with which a header's tag is made.
static TAG_INVERSE: AtomicUsize = AtomicUsize::new(1);

/// Sets the tag key; called once, before the first chunk is made.
pub fn seed_tags(seed: usize) {
    let key = seed | 1;
    // Newton's iteration doubles the correct low bits of an odd number's inverse each step,
    // from the 3 that `key` itself gets right (an odd square is 1 modulo 8).
    let mut inverse = key;
    for _ in 0..3 {
        inverse = inverse.wrapping_mul(2usize.wrapping_sub(key.wrapping_mul(inverse)));
    }
    TAG_KEY.store(key, Relaxed);
    TAG_INVERSE.store(inverse & 0xffff, Relaxed);
}

/// The tag key, for a fast path that keeps a copy of it.
pub fn tag_key() -> usize {
    TAG_KEY.load(Relaxed)
}

/// Whether size word `word` (tag included) carries the tag of a chunk at `addr` under
/// `key`: the top 16 bits of `(word ^ addr) * key` are zero. One multiplication, and no
/// mask: the tag is made to cancel the rest of the product there (see `tagged`).
#[inline(always)]
fn tag_fits(word: usize, addr: usize, key: usize) -> bool {
    (word ^ addr).wrapping_mul(key) >> TAG_SHIFT == 0
}

/// `value` (below 2^48) with the tag of a chunk at `addr` in its top 16 bits. Those bits of
/// `(tag << 48 | value ^ addr) * key` are the tag times the key plus the top bits of
/// `(value ^ addr) * key`, modulo 2^16; the tag that makes them zero is minus the latter
/// times the key's inverse. So the tag depends on the address, the size and the flags.
#[inline]
fn tagged(value: usize, addr: usize) -> usize {
    let rest = (value ^ addr).wrapping_mul(tag_key()) >> TAG_SHIFT;
    let tag = rest.wrapping_neg().wrapping_mul(TAG_INVERSE.load(Relaxed)) & 0xffff;
    value | tag << TAG_SHIFT
}

/// The largest request accepted: glibc refuses anything above PTRDIFF_MAX.
pub const MAX_REQUEST: usize = isize::MAX as usize - MIN_CHUNK;

/// The chunk size that serves a request of `bytes`, or `None` if the request is impossible.
#[inline]
pub const fn request_to_size(bytes: usize) -> Option<usize> {
    if bytes > MAX_REQUEST {
        return None;
    }
    let padded = (bytes + SIZE_SZ + ALIGN_MASK) & !ALIGN_MASK;
    Some(if padded < MIN_CHUNK {
        MIN_CHUNK
    } else {
        padded
    })
}

/// A chunk, named by its address. Copying it copies the name, not the memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Chunk(pub usize);

impl Chunk {
    /// The null chunk (no chunk).
    pub const NULL: Chunk = Chunk(0);

    /// The chunk whose user memory starts at `mem`.
    #[inline]
    pub fn from_mem(mem: *mut u8) -> Chunk {
        Chunk((mem as usize).wrapping_sub(HEADER))
    }

    /// The user pointer of this chunk.
    #[inline]
    pub fn mem(self) -> *mut u8 {
        (self.0 + HEADER) as *mut u8
    }

    /// Whether this names no chunk.
    #[inline]
    pub fn is_null(self) -> bool {
        self.0 == 0
    }

    /// The chunk `bytes` further on.
    #[inline]
    pub fn plus(self, bytes: usize) -> Chunk {
        Chunk(self.0.wrapping_add(bytes))
    }

    /// The chunk `bytes` before this one.
    #[inline]
    pub fn minus(self, bytes: usize) -> Chunk {
        Chunk(self.0.wrapping_sub(bytes))
    }

    #[inline]
    fn word(self, index: usize) -> *mut usize {
        (self.0 + index * SIZE_SZ) as *mut usize
    }

    /// The size word, flags included, tag left out.
    ///
    /// # Safety
    /// The chunk's header must be mapped memory of this allocator.
    #[inline]
    pub unsafe fn head(self) -> usize {
        // SAFETY: the caller guarantees the header word is mapped.
        let word = unsafe { *self.word(1) };
        match HARDENED {
            true => word & !TAG_MASK,
            false => word,
        }
    }

    /// The size word (tag left out) if its tag is this chunk's under `key` (`tag_key`);
    /// always in the unchecked build, which writes no tags.
    ///
    /// # Safety
    /// As for `head`.
    #[inline(always)]
    pub unsafe fn tagged_head(self, key: usize) -> Option<usize> {
        // SAFETY: forwarded.
        let word = unsafe { *self.word(1) };
        if !HARDENED {
            return Some(word);
        }
        tag_fits(word, self.0, key).then_some(word & !TAG_MASK)
    }

    /// Writes the size word, flags included, with this chunk's tag.
    ///
    /// # Safety
    /// As for `head`, and the write must not break a neighbour's invariants.
    #[inline]
    pub unsafe fn set_head(self, value: usize) {
        let word = match HARDENED {
            true => tagged(value & !TAG_MASK, self.0),
            false => value,
        };
        // SAFETY: the caller guarantees the header word is ours to write.
        unsafe { *self.word(1) = word }
    }

    /// Wipes the size word of a chunk that no longer starts here (it was merged into the
    /// one before it, or into top), so that a stale pointer to it never passes on its old
    /// tag.
    ///
    /// # Safety
    /// The header word must be mapped free memory of an arena whose lock is held.
    #[inline]
    pub unsafe fn erase_head(self) {
        if HARDENED {
            // SAFETY: forwarded.
            unsafe { *self.word(1) = 0 }
        }
    }

    /// Sets the size, keeping the flag bits.
    ///
    /// # Safety
    /// As for `set_head`.
    #[inline]
    pub unsafe fn set_size_keep_flags(self, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.set_head((self.head() & FLAG_BITS) | size) }
    }

    /// The size in bytes, flags stripped.
    ///
    /// # Safety
    /// As for `head`.
    #[inline]
    pub unsafe fn size(self) -> usize {
        // SAFETY: forwarded.
        unsafe { self.head() & !FLAG_BITS }
    }

    /// The previous chunk's size, valid only while that chunk is free.
    ///
    /// # Safety
    /// As for `head`.
    #[inline]
    pub unsafe fn prev_size(self) -> usize {
        // SAFETY: forwarded.
        unsafe { *self.word(0) }
    }

    /// Writes the boundary tag at the start of this chunk.
    ///
    /// # Safety
    /// As for `set_head`.
    #[inline]
    pub unsafe fn set_prev_size(self, value: usize) {
        // SAFETY: forwarded.
        unsafe { *self.word(0) = value }
    }

    /// Whether the chunk just before this one is in use.
    ///
    /// # Safety
    /// As for `head`.
    #[inline]
    pub unsafe fn prev_inuse(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.head() & PREV_INUSE != 0 }
    }

    /// Whether this chunk has a mapping of its own.
    ///
    /// # Safety
    /// As for `head`.
    #[inline]
    pub unsafe fn is_mmapped(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.head() & IS_MMAPPED != 0 }
    }

    /// The chunk after this one.
    ///
    /// # Safety
    /// As for `head`.
    #[inline]
    pub unsafe fn next(self) -> Chunk {
        // SAFETY: forwarded.
        self.plus(unsafe { self.size() })
    }

    /// Whether this chunk is in use, as recorded in the next chunk's header.
    ///
    /// # Safety
    /// This chunk and the next one must be arena chunks.
    #[inline]
    pub unsafe fn in_use(self) -> bool {
        // SAFETY: forwarded.
        unsafe { self.next().prev_inuse() }
    }

    /// Marks the chunk `offset` bytes on as having an in-use predecessor.
    ///
    /// # Safety
    /// The chunk at `offset` must be an arena chunk.
    #[inline]
    pub unsafe fn set_inuse_at(self, offset: usize) {
        let next = self.plus(offset);
        // SAFETY: forwarded.
        unsafe { next.set_head(next.head() | PREV_INUSE) }
    }

    /// Marks the chunk `offset` bytes on as having a free predecessor.
    ///
    /// # Safety
    /// As for `set_inuse_at`.
    #[inline]
    pub unsafe fn clear_inuse_at(self, offset: usize) {
        let next = self.plus(offset);
        // SAFETY: forwarded.
        unsafe { next.set_head(next.head() & !PREV_INUSE) }
    }

    /// Writes this free chunk's size as the next chunk's boundary tag.
    ///
    /// # Safety
    /// As for `set_inuse_at`.
    #[inline]
    pub unsafe fn set_foot(self, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.plus(size).set_prev_size(size) }
    }

    /// The forward list link of a free chunk.
    ///
    /// # Safety
    /// The chunk must be free (or a bin header) and mapped.
    #[inline]
    pub unsafe fn fd(self) -> Chunk {
        // SAFETY: forwarded.
        Chunk(unsafe { *self.word(2) })
    }

    /// The backward list link of a free chunk.
    ///
    /// # Safety
    /// As for `fd`.
    #[inline]
    pub unsafe fn bk(self) -> Chunk {
        // SAFETY: forwarded.
        Chunk(unsafe { *self.word(3) })
    }

    /// Sets the forward link.
    ///
    /// # Safety
    /// As for `fd`.
    #[inline]
    pub unsafe fn set_fd(self, c: Chunk) {
        // SAFETY: forwarded.
        unsafe { *self.word(2) = c.0 }
    }

    /// Sets the backward link.
    ///
    /// # Safety
    /// As for `fd`.
    #[inline]
    pub unsafe fn set_bk(self, c: Chunk) {
        // SAFETY: forwarded.
        unsafe { *self.word(3) = c.0 }
    }

    /// The address of the forward-link word, which safe-linking mixes into the stored value.
    #[inline]
    pub fn fd_slot(self) -> usize {
        self.0 + 2 * SIZE_SZ
    }

    /// Usable bytes of an in-use chunk of this size.
    ///
    /// # Safety
    /// As for `head`.
    #[inline]
    pub unsafe fn usable(self) -> usize {
        // SAFETY: forwarded.
        unsafe {
            if self.is_mmapped() {
                self.size() - HEADER
            } else {
                self.size() - SIZE_SZ
            }
        }
    }
}

/// `offset / ALIGNMENT` when `offset` is a multiple of ALIGNMENT, and at least 2^60 when
/// it is not: one rotation, so that a single bounds compare on the result also rejects an
/// address off the alignment grid.
#[inline(always)]
pub const fn steps(offset: usize) -> usize {
    offset.rotate_right(ALIGN_SHIFT)
}

/// Whether `mem` is a properly aligned user pointer.
#[inline]
pub fn aligned(addr: usize) -> bool {
    addr & ALIGN_MASK == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sizes_match_glibc() {
        // glibc on x86_64: usable(malloc(1)) = 24, usable(malloc(24)) = 24, usable(malloc(25)) = 40.
        assert_eq!(request_to_size(0), Some(32));
        assert_eq!(request_to_size(1), Some(32));
        assert_eq!(request_to_size(24), Some(32));
        assert_eq!(request_to_size(25), Some(48));
        assert_eq!(request_to_size(100), Some(112));
        assert_eq!(request_to_size(1000), Some(1008));
        assert_eq!(request_to_size(MAX_REQUEST + 1), None);
        assert_eq!(request_to_size(usize::MAX), None);
        for bytes in 0..4096 {
            let size = request_to_size(bytes).unwrap();
            assert_eq!(size % ALIGNMENT, 0);
            assert!(size - SIZE_SZ >= bytes);
            assert!(size - SIZE_SZ < bytes + ALIGNMENT || size == MIN_CHUNK);
        }
    }

    #[test]
    fn header_words_round_trip() {
        let mut block = [0usize; 16];
        let c = Chunk(block.as_mut_ptr() as usize);
        // SAFETY: the chunk lies inside `block`, which is 128 bytes long.
        unsafe {
            c.set_head(64 | PREV_INUSE);
            assert_eq!(c.size(), 64);
            assert!(c.prev_inuse());
            assert!(!c.is_mmapped());
            c.set_size_keep_flags(48);
            assert_eq!(c.head(), 48 | PREV_INUSE);
            c.next().set_head(32);
            assert!(!c.in_use());
            c.set_inuse_at(48);
            assert!(c.in_use());
            c.set_foot(48);
            assert_eq!(c.next().prev_size(), 48);
            assert_eq!(c.usable(), 40);
            assert_eq!(Chunk::from_mem(c.mem()), c);
        }
    }

    #[test]
    fn every_tag_made_fits_its_address_and_no_other() {
        // The seed the other tag test uses, as tests run in parallel on one global key.
        seed_tags(0x5bd1_e995_0000_1234);
        let key = tag_key();
        let mut misfits = 0;
        let mut x: usize = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = x & 0x7fff_ffff_fff0;
            let value = (x >> 20) & 0xff_fff7;
            assert!(
                tag_fits(tagged(value, addr), addr, key),
                "{value:#x} at {addr:#x}"
            );
            misfits += usize::from(!tag_fits(tagged(value, addr), addr + ALIGNMENT, key));
        }
        assert!(
            misfits > 9_990,
            "{misfits} of 10000 moved headers were caught"
        );
    }

    #[test]
    fn tags_bind_a_header_to_its_address_and_size() {
        seed_tags(0x5bd1_e995_0000_1234);
        let mut block = [0usize; 16];
        let c = Chunk(block.as_mut_ptr() as usize);
        let d = c.plus(ALIGNMENT);
        // SAFETY: both headers lie inside `block`.
        unsafe {
            c.set_head(64 | PREV_INUSE);
            let key = tag_key();
            assert_eq!(c.tagged_head(key), Some(64 | PREV_INUSE));
            // The same header copied to another address, or with another size, fails when
            // headers carry tags.
            *d.word(1) = *c.word(1);
            assert_eq!(d.tagged_head(key).is_none(), HARDENED);
            *c.word(1) ^= 1 << 4;
            assert_eq!(c.tagged_head(key).is_none(), HARDENED);
            assert_eq!(c.size(), 80);
            // So do its flags.
            c.set_head(64 | PREV_INUSE);
            *c.word(1) ^= PREV_INUSE;
            assert_eq!(c.tagged_head(key).is_none(), HARDENED);
            c.set_head(64);
            c.erase_head();
            assert_eq!(c.tagged_head(key).is_none(), HARDENED);
        }
    }
}
