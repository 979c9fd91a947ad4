//! Where free chunks wait (S2.2): fast bins (small, unmerged, LIFO, singly linked), the
//! unsorted bin (bin 1), 62 small bins of one size each (bins 2..=63), 63 large bins of size
//! ranges kept sorted largest first (bins 64..=126), and a bitmap of possibly non-empty bins.

use crate::check::{corruption, Corruption};
use crate::chunk::{
    aligned as aligned_chunk, Chunk, ALIGNMENT, FREE_TAG, HEADER, MIN_CHUNK, SIZE_SZ,
};

/// Number of regular bins, bin 0 unused.
pub const NBINS: usize = 128;
/// The unsorted bin.
pub const UNSORTED: usize = 1;
/// The first chunk size that goes to a large bin.
pub const MIN_LARGE_SIZE: usize = 64 * ALIGNMENT;
/// Largest fast-bin chunk M_MXFAST may ask for (request 160 + header, rounded).
pub const MAX_FAST_LIMIT: usize = 80 * SIZE_SZ / 4;
/// Number of fast bins.
pub const NFASTBINS: usize = fast_index(match crate::chunk::request_to_size(MAX_FAST_LIMIT) {
    Some(size) => size,
    None => MIN_CHUNK,
}) + 1;
/// Default M_MXFAST request size on 64-bit.
pub const DEFAULT_MXFAST: usize = 64 * SIZE_SZ / 4;
const BINMAP_BITS: usize = 32;
const BINMAP_WORDS: usize = NBINS / BINMAP_BITS;

/// The fast bin for a chunk of `size` bytes.
#[inline]
pub const fn fast_index(size: usize) -> usize {
    (size >> 4) - 2
}

/// Whether a chunk of `size` bytes belongs to a small bin.
#[inline]
pub const fn is_small(size: usize) -> bool {
    size < MIN_LARGE_SIZE
}

/// The small bin for `size` (`size < MIN_LARGE_SIZE`).
#[inline]
pub const fn small_index(size: usize) -> usize {
    size >> 4
}

/// The large bin for `size`: bins cover ranges that widen geometrically, eight ways per
/// doubling at first (64-byte steps), then 512 B, 4 KiB, 32 KiB, 256 KiB, and one for the rest.
#[inline]
pub const fn large_index(size: usize) -> usize {
    if size >> 6 <= 48 {
        48 + (size >> 6)
    } else if size >> 9 <= 20 {
        91 + (size >> 9)
    } else if size >> 12 <= 10 {
        110 + (size >> 12)
    } else if size >> 15 <= 4 {
        119 + (size >> 15)
    } else if size >> 18 <= 2 {
        124 + (size >> 18)
    } else {
        126
    }
}

/// The regular bin a free chunk of `size` bytes is sorted into.
#[inline]
pub const fn bin_index(size: usize) -> usize {
    if is_small(size) {
        small_index(size)
    } else {
        large_index(size)
    }
}

/// Safe-linking: a stored link is mixed with the address it is stored at, so a link
/// overwritten with a plain pointer reveals as garbage and fails the alignment check.
#[inline]
pub fn protect(slot: usize, link: usize) -> usize {
    (slot >> 12) ^ link
}

/// Undoes `protect`.
#[inline]
pub fn reveal(slot: usize, stored: usize) -> usize {
    (slot >> 12) ^ stored
}

/// The bins of one arena. The list heads live inside this struct, which therefore must not
/// move once `init` has run (arenas are statics or live in their own mappings).
pub struct Bins {
    /// Fast-bin heads (chunk addresses, plain); the links inside chunks are protected.
    pub fast: [usize; NFASTBINS],
    /// Pairs (fd, bk) per regular bin; bin `i` uses slots `2(i-1)` and `2(i-1)+1`.
    links: [usize; 2 * (NBINS - 1)],
    map: [u32; BINMAP_WORDS],
}

impl Bins {
    /// Empty bins, to be `init`ed in place.
    pub const fn new() -> Self {
        Bins {
            fast: [0; NFASTBINS],
            links: [0; 2 * (NBINS - 1)],
            map: [0; BINMAP_WORDS],
        }
    }

    /// Points every regular bin at itself (the empty circular list).
    pub fn init(&mut self) {
        for i in 1..NBINS {
            let b = self.bin(i);
            self.links[2 * (i - 1)] = b.0;
            // As `Chunk::set_bk` stores it.
            self.links[2 * (i - 1) + 1] = b.0 ^ FREE_TAG;
        }
        self.fast = [0; NFASTBINS];
        self.map = [0; BINMAP_WORDS];
    }

    /// The header of bin `i`: a fake chunk whose `fd`/`bk` words are this bin's slots.
    #[inline]
    pub fn bin(&self, i: usize) -> Chunk {
        Chunk(&self.links[2 * (i - 1)] as *const usize as usize - HEADER)
    }

    /// Records that bin `i` may hold chunks.
    #[inline]
    pub fn mark(&mut self, i: usize) {
        self.map[i / BINMAP_BITS] |= 1 << (i % BINMAP_BITS);
    }

    /// Records that bin `i` is empty.
    #[inline]
    pub fn unmark(&mut self, i: usize) {
        self.map[i / BINMAP_BITS] &= !(1 << (i % BINMAP_BITS));
    }

    /// The first bin at or after `from` whose bit is set.
    #[inline]
    pub fn next_marked(&self, from: usize) -> Option<usize> {
        let mut word = from / BINMAP_BITS;
        if word >= BINMAP_WORDS {
            return None;
        }
        let mut bits = self.map[word] & (!0u32 << (from % BINMAP_BITS));
        loop {
            if bits != 0 {
                return Some(word * BINMAP_BITS + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word == BINMAP_WORDS {
                return None;
            }
            bits = self.map[word];
        }
    }

    /// Whether a link read from a chunk may be followed: it names one of these bin headers
    /// or a chunk start of the allocator's. A link overwritten by a use after
    /// free fails this and is reported instead of being followed into unmapped memory.
    #[inline]
    pub fn link_ok(&self, c: Chunk, from: Chunk) -> bool {
        if !crate::check::HARDENED {
            return true;
        }
        let links = self.links.as_ptr() as usize;
        let offset = c.0.wrapping_sub(links.wrapping_sub(HEADER));
        if offset < core::mem::size_of_val(&self.links) {
            return offset.is_multiple_of(2 * SIZE_SZ);
        }
        // Neighbours in a list almost always share a 64 MiB region with the chunk whose
        // link names them; garbage almost never does, and anything else is looked up.
        aligned_chunk(c.0)
            && ((c.0 ^ from.0) >> crate::starts::REGION_SHIFT == 0 || crate::starts::is_start(c.0))
    }

    /// Whether bin `i` holds no chunk.
    ///
    /// # Safety
    /// The bins must be initialised.
    #[inline]
    pub unsafe fn is_empty(&self, i: usize) -> bool {
        let b = self.bin(i);
        // SAFETY: the bin header's link words are inside `self`.
        unsafe { b.bk() == b }
    }

    /// Puts free chunk `p` at the front of the unsorted bin.
    ///
    /// # Safety
    /// `p` must be a free chunk of this arena, in no list; the bins must be initialised.
    #[inline]
    pub unsafe fn push_unsorted(&mut self, p: Chunk, on_corruption: Corruption) {
        let head = self.bin(UNSORTED);
        // SAFETY: the caller guarantees `p` is ours and free; list members are live chunks.
        unsafe {
            let first = head.fd();
            if !self.link_ok(first, head) || first.bk() != head {
                corruption(on_corruption);
            }
            p.set_fd(first);
            p.set_bk(head);
            first.set_bk(p);
            head.set_fd(p);
        }
    }

    /// Sorts free chunk `p` of `size` bytes into its regular bin.
    ///
    /// # Safety
    /// As for `push_unsorted`.
    pub unsafe fn place(&mut self, p: Chunk, size: usize) {
        let index = bin_index(size);
        let head = self.bin(index);
        // SAFETY: list members are live free chunks of this arena.
        unsafe {
            // Large bins keep their chunks largest first, so a best fit is a short walk from
            // the back; small bins hold one size and take new chunks at the front.
            let mut fwd = head.fd();
            if !is_small(size) {
                while fwd != head && fwd.size() > size {
                    let next = fwd.fd();
                    if !self.link_ok(next, fwd) {
                        corruption(Corruption::LargeBinLinks);
                    }
                    fwd = next;
                }
            }
            let bck = fwd.bk();
            if !self.link_ok(bck, fwd) || bck.fd() != fwd {
                corruption(Corruption::LargeBinLinks);
            }
            p.set_fd(fwd);
            p.set_bk(bck);
            fwd.set_bk(p);
            bck.set_fd(p);
        }
        self.mark(index);
    }

    /// Takes free chunk `p` out of whatever doubly linked bin holds it.
    ///
    /// # Safety
    /// `p` must be a free chunk in one of these bins.
    #[inline]
    pub unsafe fn unlink(&mut self, p: Chunk) {
        // SAFETY: the caller guarantees `p` is a listed free chunk; its neighbours are checked
        // before they are written.
        unsafe {
            if p.size() != p.next().prev_size() {
                corruption(Corruption::SizeVsPrevSize);
            }
            let fd = p.fd();
            let bk = p.bk();
            if !self.link_ok(fd, p) || !self.link_ok(bk, p) || fd.bk() != p || bk.fd() != p {
                corruption(Corruption::DoubleLinkedList);
            }
            fd.set_bk(bk);
            bk.set_fd(fd);
        }
    }
}

impl Default for Bins {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_two_small_bins_then_sixty_three_large() {
        assert_eq!(small_index(32), 2);
        assert_eq!(small_index(MIN_LARGE_SIZE - ALIGNMENT), 63);
        assert_eq!(large_index(MIN_LARGE_SIZE), 64);
        assert_eq!(large_index(usize::MAX >> 1), 126);
        let mut last = 0;
        let mut distinct = 0;
        let mut size = MIN_LARGE_SIZE;
        while size < 1 << 30 {
            let i = large_index(size);
            assert!(i >= last, "large bins ascend with size");
            if i != last {
                distinct += 1;
                last = i;
            }
            size += ALIGNMENT;
        }
        assert_eq!(distinct, 63);
    }

    #[test]
    fn fast_bins_cover_mxfast() {
        assert_eq!(NFASTBINS, 10);
        assert_eq!(fast_index(32), 0);
        assert_eq!(fast_index(176), 9);
    }

    #[test]
    fn safe_linking_round_trips() {
        let slot = 0x5555_5555_6000usize;
        let link = 0x5555_5555_7010usize;
        let stored = protect(slot, link);
        assert_ne!(stored, link);
        assert_eq!(reveal(slot, stored), link);
    }

    #[test]
    fn binmap_finds_next_marked() {
        let mut b = Bins::new();
        assert_eq!(b.next_marked(0), None);
        b.mark(5);
        b.mark(70);
        b.mark(127);
        assert_eq!(b.next_marked(0), Some(5));
        assert_eq!(b.next_marked(6), Some(70));
        assert_eq!(b.next_marked(71), Some(127));
        b.unmark(70);
        assert_eq!(b.next_marked(6), Some(127));
        assert_eq!(b.next_marked(128), None);
    }

    #[test]
    fn bins_start_empty_and_sort_large_chunks() {
        let mut b = Box::new(Bins::new());
        b.init();
        for i in 1..NBINS {
            // SAFETY: the bins were just initialised.
            assert!(unsafe { b.is_empty(i) });
        }
        // Three free chunks of different sizes in one large bin come out largest first.
        let mut memory = vec![0usize; 3 * 1024];
        let base = memory.as_mut_ptr() as usize;
        // Links are followed only to chunk starts the allocator knows.
        crate::starts::cover(base, base + memory.len() * SIZE_SZ);
        let sizes = [1040usize, 1024, 1072];
        let chunks: Vec<Chunk> = (0..3).map(|k| Chunk(base + k * 8192)).collect();
        for (c, s) in chunks.iter().zip(sizes) {
            // SAFETY: each chunk's header and footer lie inside `memory`.
            unsafe {
                c.set_head(s | crate::chunk::PREV_INUSE);
                c.set_foot(s);
                crate::starts::set(*c);
                b.place(*c, s);
            }
        }
        let head = b.bin(64);
        // SAFETY: the chunks are listed in bin 64.
        unsafe {
            let order: Vec<usize> = [head.fd(), head.fd().fd(), head.fd().fd().fd()]
                .iter()
                .map(|c| c.size())
                .collect();
            assert_eq!(order, vec![1072, 1040, 1024]);
            b.unlink(chunks[2]);
            assert_eq!(head.fd().fd().size(), 1024);
        }
    }
}
