//! Chunks with a mapping of their own (S1.2) and glibc's dynamic mmap threshold (S1.3).
//!
//! Such a chunk starts at its mapping (`prev_size` holds the distance from the mapping start,
//! non-zero only after memalign moved the chunk up), carries IS_MMAPPED, and its user pointer
//! is page + 16.

use crate::check::{corruption, Corruption};
use crate::chunk::{Chunk, IS_MMAPPED, SIZE_SZ};
use crate::options::{MMAP_THRESHOLD_MAX, PARAMS};
use crate::os;
use crate::registry::MAPPED;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Live mmapped chunks.
pub static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bytes in live mmapped chunks.
pub static BYTES: AtomicUsize = AtomicUsize::new(0);
/// Most mmapped chunks alive at once.
pub static MAX_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Most bytes mmapped at once.
pub static MAX_BYTES: AtomicUsize = AtomicUsize::new(0);

fn account(added: usize) {
    let count = COUNT.fetch_add(1, Relaxed) + 1;
    MAX_COUNT.fetch_max(count, Relaxed);
    let bytes = BYTES.fetch_add(added, Relaxed) + added;
    MAX_BYTES.fetch_max(bytes, Relaxed);
}

/// Whether a chunk of `nb` bytes should get its own mapping.
pub fn wanted(nb: usize) -> bool {
    nb >= PARAMS.mmap_threshold.load(Relaxed) && COUNT.load(Relaxed) < PARAMS.mmap_max.load(Relaxed)
}

/// Maps a chunk for a request needing `nb` chunk bytes.
pub fn map(nb: usize) -> Option<Chunk> {
    if !MAPPED.can_record() {
        return None;
    }
    let size = os::page_align_up(nb.checked_add(SIZE_SZ)?)?;
    let addr = os::map(size)?;
    let c = Chunk(addr);
    // SAFETY: the mapping is fresh, read-write and at least a page long.
    unsafe {
        c.set_prev_size(0);
        c.set_head(size | IS_MMAPPED);
    }
    if !MAPPED.insert(c) {
        // SAFETY: the mapping was just made and is unused.
        unsafe { os::unmap(addr, size) };
        return None;
    }
    account(size);
    Some(c)
}

/// The mapping of chunk `p`: its start and length, checked to be page aligned.
///
/// # Safety
/// `p` must carry IS_MMAPPED and have a readable header.
unsafe fn mapping(p: Chunk, on_error: Corruption) -> (usize, usize) {
    // SAFETY: forwarded.
    let (offset, size) = unsafe { (p.prev_size(), p.size()) };
    let start = p.0.wrapping_sub(offset);
    let len = offset.wrapping_add(size);
    if (start | len) & (os::page_size() - 1) != 0 || len == 0 {
        corruption(on_error);
    }
    (start, len)
}

/// A chunk that memalign moved `lead` bytes up its mapping is now named `moved`.
pub fn rename(old: Chunk, moved: Chunk) {
    MAPPED.remove(old);
    MAPPED.insert(moved);
}

/// Unmaps chunk `p` and moves the dynamic threshold as glibc does: a freed mmapped chunk
/// larger than the threshold raises it to that size (at most 32 MiB), and the trim threshold
/// to twice that, so a program that repeatedly allocates such blocks stops paying for mmap.
///
/// # Safety
/// `p` must be a live mmapped chunk that nobody uses any more.
pub unsafe fn free(p: Chunk) {
    // SAFETY: forwarded.
    let (start, len) = unsafe { mapping(p, Corruption::MunmapInvalidPointer) };
    // SAFETY: as above.
    let size = unsafe { p.size() };
    if !PARAMS.no_dyn_threshold.load(Relaxed)
        && size > PARAMS.mmap_threshold.load(Relaxed)
        && size <= MMAP_THRESHOLD_MAX
    {
        PARAMS.mmap_threshold.store(size, Relaxed);
        PARAMS.trim_threshold.store(2 * size, Relaxed);
    }
    MAPPED.remove(p);
    COUNT.fetch_sub(1, Relaxed);
    BYTES.fetch_sub(len, Relaxed);
    // SAFETY: the chunk's whole mapping is ours and dead.
    unsafe { os::unmap(start, len) };
}

/// Resizes mmapped chunk `p` to serve `nb` chunk bytes with mremap; `None` if the kernel refuses.
///
/// # Safety
/// `p` must be a live mmapped chunk.
pub unsafe fn remap(p: Chunk, nb: usize) -> Option<Chunk> {
    // SAFETY: forwarded.
    let (start, len) = unsafe { mapping(p, Corruption::MremapInvalidPointer) };
    let offset = len
        - unsafe {
            // SAFETY: as above.
            p.size()
        };
    let new_len = os::page_align_up(nb.checked_add(offset + SIZE_SZ)?)?;
    if new_len == len {
        return Some(p);
    }
    let c = MAPPED.moving(p, || {
        // SAFETY: the whole mapping is this chunk's.
        let moved = unsafe { os::remap(start, len, new_len)? };
        let c = Chunk(moved + offset);
        // SAFETY: the remapped range holds the chunk's header at the same offset.
        unsafe { c.set_head((new_len - offset) | IS_MMAPPED) };
        Some(c)
    })?;
    BYTES.fetch_sub(len, Relaxed);
    let bytes = BYTES.fetch_add(new_len, Relaxed) + new_len;
    MAX_BYTES.fetch_max(bytes, Relaxed);
    Some(c)
}
