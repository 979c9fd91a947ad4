//! The fatal-error path: a detected heap inconsistency prints one line in glibc's words on
//! stderr and aborts (S6.2). Nothing here allocates or takes a lock.

use crate::os;

/// A detected inconsistency, each with glibc's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// free() of a pointer that cannot be a chunk.
    FreeInvalidPointer,
    /// free() of a chunk whose size cannot be right.
    FreeInvalidSize,
    /// The fast-bin top already is this chunk.
    DoubleFreeFastTop,
    /// A fast-bin chunk's next chunk has an impossible size.
    FreeInvalidNextSizeFast,
    /// free() of the top chunk.
    DoubleFreeTop,
    /// The next chunk lies past the arena's top.
    DoubleFreeOut,
    /// The chunk is already marked free.
    DoubleFreePrev,
    /// The next chunk's size is impossible.
    FreeInvalidNextSizeNormal,
    /// A free neighbour's size disagrees with its boundary tag while merging.
    PrevSizeWhileConsolidating,
    /// The unsorted list is broken where free() inserts.
    FreeCorruptedUnsorted,
    /// A listed chunk's size disagrees with its boundary tag.
    SizeVsPrevSize,
    /// A doubly linked list's links do not point back.
    DoubleLinkedList,
    /// A small bin's last chunk does not point back.
    SmallBinLinks,
    /// A large bin's links are broken where a chunk is sorted in.
    LargeBinLinks,
    /// An unsorted chunk has an impossible size.
    UnsortedInvalidSize,
    /// An unsorted chunk's next chunk has an impossible size.
    UnsortedInvalidNextSize,
    /// An unsorted chunk's boundary tag disagrees.
    UnsortedPrevSize,
    /// The unsorted list's links do not point back.
    UnsortedLinks,
    /// An unsorted chunk is marked in use.
    UnsortedPrevInuse,
    /// The unsorted list is broken where malloc() inserts a remainder.
    MallocCorruptedUnsorted,
    /// A fast-bin chunk has the wrong size for its bin.
    FastBinWrongSize,
    /// A fast-bin link reveals to a misaligned address.
    FastBinUnaligned,
    /// A fast-bin chunk's size is wrong when merging them.
    ConsolidateInvalidSize,
    /// The top chunk's size is larger than the arena.
    CorruptedTopSize,
    /// realloc() of a pointer that cannot be a chunk.
    ReallocInvalidPointer,
    /// realloc() of a chunk whose size cannot be right.
    ReallocInvalidOldSize,
    /// realloc() of a chunk whose next chunk's size is impossible.
    ReallocInvalidNextSize,
    /// An mmapped chunk's mapping is not page aligned.
    MunmapInvalidPointer,
    /// An mmapped chunk's mapping is not page aligned when remapping.
    MremapInvalidPointer,
    /// Someone moved the program break down into the heap.
    BreakAdjusted,
    /// A chunk freed twice was found in the thread cache.
    TcacheDoubleFree,
    /// A thread-cache list is longer than its limit.
    TcacheTooMany,
    /// A thread-cache list holds a misaligned entry (seen while freeing).
    TcacheUnalignedFree,
    /// A thread-cache link reveals to a misaligned address.
    TcacheUnaligned,
    /// A chunk taken from a thread-cache range list does not have a size of that list.
    TcacheInvalidSize,
    /// A chunk on its way back to its arena (freed by a thread of another arena) was
    /// written over before its arena took it back: no chunk of that arena any more, its
    /// mark gone, or the count of the addresses it carries out of bounds.
    InTransitCorrupted,
}

impl Corruption {
    /// glibc's message for this inconsistency.
    pub const fn message(self) -> &'static str {
        use Corruption::*;
        match self {
            FreeInvalidPointer => "free(): invalid pointer",
            FreeInvalidSize => "free(): invalid size",
            DoubleFreeFastTop => "double free or corruption (fasttop)",
            FreeInvalidNextSizeFast => "free(): invalid next size (fast)",
            DoubleFreeTop => "double free or corruption (top)",
            DoubleFreeOut => "double free or corruption (out)",
            DoubleFreePrev => "double free or corruption (!prev)",
            FreeInvalidNextSizeNormal => "free(): invalid next size (normal)",
            PrevSizeWhileConsolidating => "corrupted size vs. prev_size while consolidating",
            FreeCorruptedUnsorted => "free(): corrupted unsorted chunks",
            SizeVsPrevSize => "corrupted size vs. prev_size",
            DoubleLinkedList => "corrupted double-linked list",
            SmallBinLinks => "malloc(): smallbin double linked list corrupted",
            LargeBinLinks => "malloc(): largebin double linked list corrupted (bk)",
            UnsortedInvalidSize => "malloc(): invalid size (unsorted)",
            UnsortedInvalidNextSize => "malloc(): invalid next size (unsorted)",
            UnsortedPrevSize => "malloc(): mismatching next->prev_size (unsorted)",
            UnsortedLinks => "malloc(): unsorted double linked list corrupted",
            UnsortedPrevInuse => "malloc(): invalid next->prev_inuse (unsorted)",
            MallocCorruptedUnsorted => "malloc(): corrupted unsorted chunks",
            FastBinWrongSize => "malloc(): memory corruption (fast)",
            FastBinUnaligned => "malloc(): unaligned fastbin chunk detected",
            ConsolidateInvalidSize => "malloc_consolidate(): invalid chunk size",
            CorruptedTopSize => "malloc(): corrupted top size",
            ReallocInvalidPointer => "realloc(): invalid pointer",
            ReallocInvalidOldSize => "realloc(): invalid old size",
            ReallocInvalidNextSize => "realloc(): invalid next size",
            MunmapInvalidPointer => "munmap_chunk(): invalid pointer",
            MremapInvalidPointer => "mremap_chunk(): invalid pointer",
            BreakAdjusted => "break adjusted to free malloc space",
            TcacheDoubleFree => "free(): double free detected in tcache 2",
            TcacheTooMany => "free(): too many chunks detected in tcache",
            TcacheUnalignedFree => "free(): unaligned chunk detected in tcache 2",
            TcacheUnaligned => "malloc(): unaligned tcache chunk detected",
            TcacheInvalidSize => "malloc(): invalid size (tcache)",
            InTransitCorrupted => "free(): corrupted chunk on its way back to its arena",
        }
    }
}

/// Whether the checks that cost on every call are built in (see the `unchecked` feature).
pub const HARDENED: bool = !cfg!(feature = "unchecked");

/// A call caught with a bad pointer before it changed anything: reported and, as
/// M_CHECK_ACTION says, the process aborted (bit 1, set by default) or the call ignored
/// (the caller then does nothing). Bits 0 and 2 ask for the message.
#[cold]
#[inline(never)]
pub fn reject(kind: Corruption, at: usize) {
    let action = crate::options::PARAMS
        .check_action
        .load(core::sync::atomic::Ordering::Relaxed);
    let aborting = action & 2 != 0;
    if action & 5 != 0 {
        // glibc's own line when the process ends here; the address when it goes on.
        report(kind, (!aborting).then_some(at));
    }
    if aborting {
        os::abort();
    }
}

fn report(kind: Corruption, at: Option<usize>) {
    let mut line = [0u8; 128];
    let msg = kind.message().as_bytes();
    let mut n = msg.len().min(96);
    line[..n].copy_from_slice(&msg[..n]);
    if let Some(addr) = at {
        line[n..n + 4].copy_from_slice(b": 0x");
        n += 4;
        let digits = (usize::BITS - addr.leading_zeros()).div_ceil(4).max(1) as usize;
        for i in (0..digits).rev() {
            line[n] = b"0123456789abcdef"[(addr >> (4 * i)) & 0xf];
            n += 1;
        }
    }
    line[n] = b'\n';
    os::write_all(2, &line[..=n]);
}

/// Reports `kind` on stderr and aborts. Reached only when the heap is already inconsistent,
/// so it touches nothing but fd 2.
#[cold]
#[inline(never)]
pub fn corruption(kind: Corruption) -> ! {
    report(kind, None);
    os::abort()
}
