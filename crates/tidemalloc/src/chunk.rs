//! Chunks: the unit of memory inside an arena, with its header and boundary tags (S2.1).
//!
//! A chunk at address `c` looks like glibc's `malloc_chunk` on 64-bit:
//! `c+0` holds the previous chunk's size when that chunk is free (the boundary tag, "footer"),
//! `c+8` holds this chunk's size with three flag bits, and the user's memory starts at `c+16`.
//! A free chunk keeps its list links in the first user words: `fd` at `c+16`, `bk` at `c+24`.
//! The next chunk's `prev_size` word is usable by this chunk while it is in use, so a chunk of
//! size `s` gives `s - 8` usable bytes.
//!
//! In the hardened build the size word is stored sealed: multiplied by an odd key drawn at
//! start-up, then XORed with the chunk's address (as scudo checksums its headers, but with
//! no separate checksum field). Unsealing XORs the address back and multiplies by the key's
//! inverse. A multiplication carries a change upwards, so a size word moved to another
//! address, copied from another chunk, overwritten in any of its bytes by an overflow (a
//! stray NUL byte included) or wiped by a merge (`erase_head`) unseals to a size with
//! random high bits, which no check that bounds the size lets through. Bit 0, PREV_INUSE,
//! comes through both steps unchanged, so a neighbour's in-use bit is read without the key.
//! free's fast path takes a chunk whose unsealed size picks one of its lists, which needs
//! no memory but the chunk's own header, and sends every other chunk to the full check of
//! the start map (`starts`). A seal is a filter, never a verdict: a mismatch costs only the
//! full check. `head` and `size` unseal.

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

/// Where a chunk's second user word (`bk`, the mark word) keeps `FREE_TAG`: its top byte.
pub const FREE_TAG_SHIFT: u32 = 56;
/// The top byte that the second user word of every free chunk carries: the thread cache's
/// marks (`tcache::KEY` and its variants) and a binned chunk's `bk` link, which is stored
/// XORed with it. User-space addresses stay below 2^56 (five-level paging included), so a
/// stored link keeps the tag whole, and free's fast path tells a chunk that is free
/// anywhere from an in-use one by comparing that one byte, whose line it reads anyway,
/// without a dependent load of the next chunk's header. A whole byte makes that one compare
/// of memory with a constant, where a tag of fewer bits takes the key, an XOR and a shift
/// (1-2 % of the bench's churn). In-use chunks rarely carry it by chance: pointers,
/// small and negative integers and ASCII text never do, and one that does has the next
/// chunk's in-use bit read as well.
pub const FREE_TAG: usize = 0xb2 << FREE_TAG_SHIFT;

/// The seal key: odd, set once at start-up from the kernel's randomness.
static SEAL_KEY: AtomicUsize = AtomicUsize::new(1);
/// The seal key's inverse modulo 2^64, with which a size word is unsealed.
static UNSEAL_KEY: AtomicUsize = AtomicUsize::new(1);

/// Sets the seal key; called once, before the first chunk is made.
pub fn seed_seal(seed: usize) {
    let key = seed | 1;
    SEAL_KEY.store(key, Relaxed);
    UNSEAL_KEY.store(inverse(key), Relaxed);
}

/// The inverse of odd `key` modulo 2^64. Newton's iteration doubles the correct low bits of
/// an odd number's inverse each step, from the 3 that `key` itself gets right (an odd square
/// is 1 modulo 8): 5 steps make 96.
const fn inverse(key: usize) -> usize {
    let mut inverse = key;
    let mut step = 0;
    while step < 5 {
        inverse = inverse.wrapping_mul(2usize.wrapping_sub(key.wrapping_mul(inverse)));
        step += 1;
    }
    inverse
}

/// The key that unseals, for a fast path that keeps a copy of it. The unchecked build,
/// which seals nothing, reads no key: its loads would be left in every header read.
pub fn unseal_key() -> usize {
    match HARDENED {
        true => UNSEAL_KEY.load(Relaxed),
        false => 1,
    }
}

/// The key that seals, as `unseal_key`.
fn seal_key() -> usize {
    match HARDENED {
        true => SEAL_KEY.load(Relaxed),
        false => 1,
    }
}

/// Size word `value` of a chunk at `addr`, sealed; unchanged in the unchecked build.
#[inline(always)]
fn seal(value: usize, addr: usize, key: usize) -> usize {
    match HARDENED {
        true => value.wrapping_mul(key) ^ addr,
        false => value,
    }
}

/// Stored word `word` of a chunk at `addr`, unsealed with `unseal` (`unseal_key`).
#[inline(always)]
fn unseal(word: usize, addr: usize, unseal: usize) -> usize {
    match HARDENED {
        true => (word ^ addr).wrapping_mul(unseal),
        false => word,
    }
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

    /// The size word, flags included, unsealed.
    ///
    /// # Safety
    /// The chunk's header must be mapped memory of this allocator.
    #[inline]
    pub unsafe fn head(self) -> usize {
        // SAFETY: forwarded.
        unsafe { self.head_with(unseal_key()) }
    }

    /// The size word unsealed with `key` (a copy of `unseal_key`). A word that is not this
    /// chunk's sealed header comes out as garbage, almost surely with high bits set: the
    /// caller bounds the size before it follows it.
    ///
    /// # Safety
    /// As for `head`.
    #[inline(always)]
    pub unsafe fn head_with(self, key: usize) -> usize {
        // SAFETY: the caller guarantees the header word is mapped.
        unseal(unsafe { *self.word(1) }, self.0, key)
    }

    /// Writes the size word, flags included, sealed.
    ///
    /// # Safety
    /// As for `head`, and the write must not break a neighbour's invariants.
    #[inline]
    pub unsafe fn set_head(self, value: usize) {
        let word = seal(value, self.0, seal_key());
        // SAFETY: the caller guarantees the header word is ours to write.
        unsafe { *self.word(1) = word }
    }

    /// Wipes the size word of a chunk that no longer starts here (it was merged into the
    /// one before it, or into top), so that a stale pointer to it never passes on its old
    /// seal: a zero word unseals to the address times the inverse key.
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
        // SAFETY: forwarded. The bit is the stored word's own: the address's bit 0 is clear
        // and odd keys keep a product's bit 0.
        unsafe { *self.word(1) & PREV_INUSE != 0 }
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

    /// The backward list link of a free chunk (stored with `FREE_TAG`).
    ///
    /// # Safety
    /// As for `fd`.
    #[inline]
    pub unsafe fn bk(self) -> Chunk {
        // SAFETY: forwarded.
        Chunk(unsafe { *self.word(3) } ^ FREE_TAG)
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

    /// Sets the backward link (stored with `FREE_TAG`).
    ///
    /// # Safety
    /// As for `fd`.
    #[inline]
    pub unsafe fn set_bk(self, c: Chunk) {
        // SAFETY: forwarded.
        unsafe { *self.word(3) = c.0 ^ FREE_TAG }
    }

    /// The second user word as stored: a mark of the thread cache or the fast bins, a
    /// tagged `bk` link, or user data.
    ///
    /// # Safety
    /// The chunk's first two user words must be mapped memory of this allocator.
    #[inline]
    pub unsafe fn mark(self) -> usize {
        // SAFETY: forwarded.
        unsafe { *self.word(3) }
    }

    /// Whether the second user word carries `FREE_TAG` (its top byte, read alone).
    ///
    /// # Safety
    /// As for `mark`.
    #[inline(always)]
    pub unsafe fn carries_free_tag(self) -> bool {
        let top = (FREE_TAG >> FREE_TAG_SHIFT) as u8;
        let at = match cfg!(target_endian = "little") {
            true => SIZE_SZ - 1,
            false => 0,
        };
        // SAFETY: forwarded; the byte is the mark word's most significant.
        unsafe { *(self.word(3) as *const u8).add(at) == top }
    }

    /// Writes the second user word as it is (0 clears any mark).
    ///
    /// # Safety
    /// As for `mark`, and the word must be the caller's to write.
    #[inline]
    pub unsafe fn set_mark(self, mark: usize) {
        // SAFETY: forwarded.
        unsafe { *self.word(3) = mark }
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
    fn a_stored_back_link_carries_the_free_tag_and_reads_back_whole() {
        let mut block = [0usize; 8];
        let c = Chunk(block.as_mut_ptr() as usize);
        for link in [c.0, 0x7fff_ffff_fff0, (1 << FREE_TAG_SHIFT) - 16] {
            // SAFETY: the chunk's words lie inside `block`.
            unsafe {
                c.set_bk(Chunk(link));
                assert_eq!(c.bk(), Chunk(link));
                assert_eq!(c.mark() >> FREE_TAG_SHIFT, FREE_TAG >> FREE_TAG_SHIFT);
                c.set_mark(0);
                assert_eq!(c.mark(), 0);
            }
        }
    }

    /// Whether an unsealed size word shows a size any bound lets through (below 64 MiB).
    fn plausible(head: usize) -> bool {
        head & !FLAG_BITS < 1 << 26
    }

    const KEY: usize = 0x5bd1_e995_0000_1234 | 1;

    #[test]
    #[cfg_attr(feature = "unchecked", ignore = "the unchecked build seals nothing")]
    fn a_sealed_size_word_unseals_only_at_its_own_address_and_whole() {
        let unseal_key = inverse(KEY);
        assert_eq!(KEY.wrapping_mul(unseal_key), 1);
        let mut x: usize = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = x & 0x7fff_ffff_fff0;
            let value = (x >> 20) & 0xff_fff7;
            let word = seal(value, addr, KEY);
            assert_eq!(unseal(word, addr, unseal_key), value, "at {addr:#x}");
            assert_eq!(
                word & PREV_INUSE,
                value & PREV_INUSE,
                "in-use bit in the clear"
            );
            // Moved by one step, by a small chunk, by 2 KiB, and by a heap.
            for moved in [ALIGNMENT, 7 * ALIGNMENT, 2048, 64 << 20] {
                let elsewhere = (addr + moved) & 0x7fff_ffff_fff0;
                assert!(
                    !plausible(unseal(word, elsewhere, unseal_key)),
                    "{value:#x} sealed at {addr:#x} unseals at {elsewhere:#x}"
                );
            }
            // Any one byte overwritten (NUL, 0xff), or the in-use bit flipped on its own.
            for byte in 0..8 {
                for fill in [0, 0xff] {
                    let hit = word & !(0xff << (8 * byte)) | fill << (8 * byte);
                    assert!(
                        hit == word || !plausible(unseal(hit, addr, unseal_key)),
                        "{value:#x} at {addr:#x} with byte {byte} set to {fill:#x}"
                    );
                }
            }
            assert!(!plausible(unseal(word ^ PREV_INUSE, addr, unseal_key)));
            assert!(
                !plausible(unseal(0, addr, unseal_key)),
                "wiped at {addr:#x}"
            );
        }
    }

    #[test]
    fn sealed_headers_bind_the_size_to_the_address() {
        let mut block = [0usize; 16];
        let c = Chunk(block.as_mut_ptr() as usize);
        let d = c.plus(ALIGNMENT);
        // A key of this test's own: the global one seals the chunks of tests running beside.
        let unseal_key = inverse(KEY);
        // SAFETY: both headers lie inside `block`.
        unsafe {
            *c.word(1) = seal(64 | PREV_INUSE, c.0, KEY);
            assert_eq!(c.head_with(unseal_key), 64 | PREV_INUSE);
            assert!(c.prev_inuse());
            // The same word copied to another address, or with a size bit flipped, unseals
            // to garbage when headers are sealed.
            *d.word(1) = *c.word(1);
            assert_eq!(!plausible(d.head_with(unseal_key)), HARDENED);
            *c.word(1) ^= 1 << 4;
            assert_eq!(!plausible(c.head_with(unseal_key)), HARDENED);
            *c.word(1) = seal(64, c.0, KEY);
            assert!(!c.prev_inuse());
            c.erase_head();
            assert_eq!(!plausible(c.head_with(unseal_key)), HARDENED);
        }
    }
}
