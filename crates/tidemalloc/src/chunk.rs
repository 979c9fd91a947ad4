//! Chunks: the unit of memory inside an arena, with its header and boundary tags (S2.1).
//!
//! A chunk at address `c` looks like glibc's `malloc_chunk` on 64-bit:
//! `c+0` holds the previous chunk's size when that chunk is free (the boundary tag, "footer"),
//! `c+8` holds this chunk's size with three flag bits, and the user's memory starts at `c+16`.
//! A free chunk keeps its list links in the first user words: `fd` at `c+16`, `bk` at `c+24`.
//! The next chunk's `prev_size` word is usable by this chunk while it is in use, so a chunk of
//! size `s` gives `s - 8` usable bytes.

/// Bytes in a size word.
pub const SIZE_SZ: usize = core::mem::size_of::<usize>();
/// Alignment of every user pointer.
pub const ALIGNMENT: usize = 2 * SIZE_SZ;
/// Mask of the bits below `ALIGNMENT`.
pub const ALIGN_MASK: usize = ALIGNMENT - 1;
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

    /// The size word, flags included.
    ///
    /// # Safety
    /// The chunk's header must be mapped memory of this allocator.
    #[inline]
    pub unsafe fn head(self) -> usize {
        // SAFETY: the caller guarantees the header word is mapped.
        unsafe { *self.word(1) }
    }

    /// Writes the size word, flags included.
    ///
    /// # Safety
    /// As for `head`, and the write must not break a neighbour's invariants.
    #[inline]
    pub unsafe fn set_head(self, value: usize) {
        // SAFETY: the caller guarantees the header word is ours to write.
        unsafe { *self.word(1) = value }
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
}
