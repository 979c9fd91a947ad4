//! glibc's malloc family with glibc's contracts (errno, NULL, EINVAL), under Rust names.
//! `tidemalloc-c` exports these as the C symbols; `TideMalloc` uses the same paths.

use crate::check::Corruption;
use crate::chunk::{
    request_to_size, Chunk, ALIGNMENT, ALIGN_MASK, FLAG_BITS, HEADER, IS_MMAPPED, MIN_CHUNK,
    SIZE_SZ,
};
use crate::options::PARAMS;
use crate::os;
use crate::registry;
use crate::starts;
use crate::tcache::Freed;
use crate::{arenas, check, mmapped, tcache, MAIN};
use core::sync::atomic::Ordering::Relaxed;

/// Allocates a chunk for `bytes`, without touching errno: the thread cache first, then the
/// thread's arena.
#[inline(always)]
pub(crate) fn allocate(bytes: usize) -> *mut u8 {
    if let Some(p) = tcache::pop_request(bytes) {
        return p;
    }
    allocate_slow(bytes)
}

/// `allocate` past its fast path: a cached chunk (a range list's, as no small list serves
/// the request or its list is empty), else one from the arena (refilling the cache on the
/// way), filled with the complement of the M_PERTURB byte when one is set, as glibc fills
/// what `_int_malloc` returns (where glibc's cache stops short of range sizes).
#[cold]
#[inline(never)]
fn allocate_slow(bytes: usize) -> *mut u8 {
    let Some(nb) = request_to_size(bytes) else {
        return core::ptr::null_mut();
    };
    let cached = tcache::pop(nb).map(Chunk::from_mem);
    let Some(c) = cached.or_else(|| tcache::malloc_slow(nb)) else {
        return core::ptr::null_mut();
    };
    let perturb = PARAMS.perturb.load(Relaxed);
    if perturb != 0 {
        // SAFETY: the chunk is ours and has `usable` writable bytes.
        unsafe { core::ptr::write_bytes(c.mem(), (perturb ^ 0xff) as u8, c.usable()) };
    }
    c.mem()
}

/// A block handed back to free or realloc, once checked.
enum Checked {
    /// An in-use arena chunk of `size` bytes.
    Arena(Chunk, usize),
    /// A live mmapped chunk.
    Mapped(Chunk),
}

/// Checks that `mem` is one of ours before its header is read, and the header against the
/// memory around it: a chunk must start at `mem`'s chunk and the next one where its size
/// says (a header whose seal holds on a chunk of the thread's own newest segment shows both at once;
/// else the start map must show them); otherwise it must be a live mapped chunk. On failure
/// the error is reported as M_CHECK_ACTION says and `None` returned (the call is then
/// ignored, where the process goes on at all).
#[inline(always)]
fn check_block(mem: *mut u8, invalid_pointer: Corruption) -> Option<Checked> {
    let p = Chunk::from_mem(mem);
    if !crate::chunk::aligned(p.0) {
        return mapped_or_rejected(p, invalid_pointer);
    }
    let head = if check::HARDENED {
        match tcache::checked_head(p) {
            Some(head) => head,
            None => return not_a_checked_chunk(p, invalid_pointer),
        }
    } else {
        // SAFETY: the unchecked build takes the caller's word that this is a chunk of ours.
        unsafe { p.head() }
    };
    let size = head & !FLAG_BITS;
    if head & IS_MMAPPED != 0 || size < MIN_CHUNK || size & ALIGN_MASK != 0 {
        return odd_header(p, head, invalid_pointer);
    }
    Some(Checked::Arena(p, size))
}

/// The start map refused `p`: a mapped chunk, top freed again, or not ours at all.
#[cold]
#[inline(never)]
fn not_a_checked_chunk(p: Chunk, invalid_pointer: Corruption) -> Option<Checked> {
    if !starts::is_start(p.0) {
        return mapped_or_rejected(p, invalid_pointer);
    }
    rejected(successor_missing(p, invalid_pointer), p)
}

/// A chunk whose header is not an ordinary arena chunk's: a mapped chunk (which the
/// unchecked build finds only this way), or damage.
#[cold]
#[inline(never)]
fn odd_header(p: Chunk, head: usize, invalid_pointer: Corruption) -> Option<Checked> {
    if head & IS_MMAPPED != 0 {
        return match check::HARDENED {
            true => rejected(invalid_pointer, p),
            false => Some(Checked::Mapped(p)),
        };
    }
    rejected(Corruption::FreeInvalidSize, p)
}

/// No arena chunk starts at `p`: it must be a live mapped chunk.
#[cold]
#[inline(never)]
fn mapped_or_rejected(p: Chunk, invalid_pointer: Corruption) -> Option<Checked> {
    if crate::chunk::aligned(p.0) && registry::MAPPED.contains(p.0) {
        Some(Checked::Mapped(p))
    } else {
        rejected(invalid_pointer, p)
    }
}

/// A chunk starts at `p` but none where its size ends: `p` is an arena's top (a block freed
/// again after it went back into top), or its size was overwritten.
#[cold]
#[inline(never)]
fn successor_missing(p: Chunk, invalid_pointer: Corruption) -> Corruption {
    let is_top = arenas::all().any(|a| a.try_lock().is_some_and(|g| g.top == p));
    if is_top {
        Corruption::DoubleFreeTop
    } else {
        invalid_pointer
    }
}

#[cold]
fn rejected(kind: Corruption, p: Chunk) -> Option<Checked> {
    check::reject(kind, p.0);
    None
}

/// Frees `mem`: into the thread cache if its list has room, else to the chunk's own arena.
/// errno is preserved (only the slow paths can touch it). NULL does nothing.
///
/// # Safety
/// `mem` must come from this allocator and not have been freed; what the checks catch when
/// it did not is reported. The unchecked build also needs it non-null.
#[inline(always)]
pub(crate) unsafe fn release(mem: *mut u8) {
    // SAFETY: forwarded; the fast path checks everything it relies on.
    match unsafe { tcache::free_fast(mem as usize) } {
        Freed::Cached => {}
        // SAFETY: the fast path took the chunk out of the parking place for its list.
        Freed::Full { entry, list } => unsafe { tcache::cache_flushing(entry, list) },
        // SAFETY: forwarded, with what the fast path found.
        Freed::Tagged { list, size } => unsafe { release_tagged(mem, list, size) },
        // SAFETY: forwarded, with the header the fast path read.
        Freed::Range(head) => unsafe { release_range(mem, head) },
        // SAFETY: forwarded.
        Freed::Refused => unsafe { release_checked(mem) },
    }
}

/// free of a chunk past the small lists, whose header `head` free's fast path has read:
/// into its range list when `cache_range` takes it, else the full path.
///
/// # Safety
/// As for `release`.
#[inline(never)]
unsafe fn release_range(mem: *mut u8, head: usize) {
    // SAFETY: forwarded.
    if !unsafe { tcache::cache_range(Chunk::from_mem(mem), head) } {
        // SAFETY: forwarded.
        unsafe { release_checked(mem) };
    }
}

/// free of a small chunk that carries the free tag (`Freed::Tagged`): into its list when
/// `cache_tagged_small` takes it, else the full path.
///
/// # Safety
/// As for `release`.
#[cold]
#[inline(never)]
unsafe fn release_tagged(mem: *mut u8, list: usize, size: usize) {
    // SAFETY: forwarded.
    if !unsafe { tcache::cache_tagged_small(mem as usize, list, size) } {
        // SAFETY: forwarded.
        unsafe { release_checked(mem) };
    }
}

/// free past its fast path: every check, every report, chunks of any size and kind.
///
/// # Safety
/// As for `release`.
#[inline(never)]
unsafe fn release_checked(mem: *mut u8) {
    if mem.is_null() {
        return;
    }
    match check_block(mem, Corruption::FreeInvalidPointer) {
        // SAFETY: checked to be an in-use arena chunk of ours.
        Some(Checked::Arena(p, size)) => unsafe {
            if !tcache::push(p, size) {
                release_slow(p, size);
            }
        },
        // SAFETY: the set names a live mapped chunk.
        Some(Checked::Mapped(p)) => unsafe { release_mapped(p) },
        None => {}
    }
}

/// Unmaps a mapped chunk, keeping errno.
#[cold]
#[inline(never)]
unsafe fn release_mapped(p: Chunk) {
    let saved = os::errno();
    // SAFETY: forwarded from `release`.
    unsafe { mmapped::free(p) };
    os::set_errno(saved);
}

/// Frees an arena chunk past the thread cache, keeping errno.
#[cold]
#[inline(never)]
unsafe fn release_slow(p: Chunk, size: usize) {
    let saved = os::errno();
    let perturb = PARAMS.perturb.load(Relaxed);
    if perturb != 0 {
        // SAFETY: the chunk is being freed; its user bytes end where the next chunk begins.
        unsafe { core::ptr::write_bytes(p.mem(), perturb as u8, size - HEADER) };
    }
    // SAFETY: forwarded from `release`.
    unsafe { tcache::free_slow(p, size) };
    os::set_errno(saved);
}

/// Allocates `bytes` zeroed bytes, skipping the clearing for memory fresh from the kernel.
pub(crate) fn allocate_zeroed(bytes: usize) -> *mut u8 {
    let Some(nb) = request_to_size(bytes) else {
        return core::ptr::null_mut();
    };
    let from_arena = || {
        tcache::with_arena(|st| {
            // SAFETY: `with_arena` runs this with the arena's lock held.
            let c = unsafe { st.malloc(nb) }?;
            Some((c, st.last_was_fresh))
        })
    };
    let found = match tcache::pop(nb) {
        Some(p) => Some((Chunk::from_mem(p), false)),
        None => from_arena(),
    };
    let Some((c, fresh)) = found else {
        return core::ptr::null_mut();
    };
    if !fresh {
        // SAFETY: the chunk is ours and has `usable` writable bytes from its user pointer.
        unsafe { core::ptr::write_bytes(c.mem(), 0, c.usable()) };
    }
    c.mem()
}

/// Resizes `mem` to `bytes` (both non-zero/non-null); NULL leaves the block untouched.
///
/// # Safety
/// `mem` must be a live block of this allocator.
pub(crate) unsafe fn resize(mem: *mut u8, bytes: usize) -> *mut u8 {
    let Some(nb) = request_to_size(bytes) else {
        return core::ptr::null_mut();
    };
    let Some(block) = check_block(mem, Corruption::ReallocInvalidPointer) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the block was checked to be a live chunk of ours.
    unsafe {
        let old = match block {
            Checked::Mapped(old) => {
                if let Some(c) = mmapped::remap(old, nb) {
                    return c.mem();
                }
                if old.size() - SIZE_SZ >= nb {
                    return mem;
                }
                old
            }
            Checked::Arena(old, size) => {
                // Large enough already, with too little to spare for a chunk of its own: the
                // arena would change nothing, so its lock is not taken.
                if nb <= size && size - nb < MIN_CHUNK {
                    return mem;
                }
                // A thread that already holds the owner's lock is a signal handler that
                // interrupted malloc: it moves the block.
                let owner = arenas::owner(old);
                if !owner.lock_held_by_me() {
                    if let Some(c) = owner.lock().resize_in_place(old, nb) {
                        return c.mem();
                    }
                }
                old
            }
        };
        // It cannot change in place: it moves through the ordinary paths, outside any lock,
        // and the old chunk goes to the front of its thread cache list, where glibc's
        // realloc frees it too, rather than through the owner's bins; not to free's
        // parking place, which would leave it behind the list's other chunks.
        let new = allocate(bytes);
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(mem, new, old.usable().min(bytes));
            release_checked(mem);
        }
        new
    }
}

/// Allocates `bytes` at a multiple of `alignment` (a power of two), without touching errno.
pub(crate) fn allocate_aligned(alignment: usize, bytes: usize) -> *mut u8 {
    if alignment <= ALIGNMENT {
        return allocate(bytes);
    }
    let Some(nb) = request_to_size(bytes) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the closure runs with the arena's lock held.
    tcache::with_arena(|st| unsafe { st.memalign(alignment, nb) })
        .map_or(core::ptr::null_mut(), Chunk::mem)
}

#[cold]
fn fail_nomem() -> *mut u8 {
    os::set_errno(libc::ENOMEM);
    core::ptr::null_mut()
}

#[inline(always)]
fn or_nomem(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        fail_nomem()
    } else {
        p
    }
}

/// `malloc`: at least `bytes` bytes, 16-aligned; NULL with ENOMEM when impossible.
#[inline]
pub fn malloc(bytes: usize) -> *mut u8 {
    if let Some(p) = tcache::pop_request(bytes) {
        return p;
    }
    malloc_slow(bytes)
}

/// malloc past the thread cache; a separate function so that the fast path saves no
/// registers and ends in a jump here.
#[cold]
#[inline(never)]
fn malloc_slow(bytes: usize) -> *mut u8 {
    or_nomem(allocate_slow(bytes))
}

/// `free`: gives `mem` back; NULL is ignored and errno is preserved.
///
/// # Safety
/// `mem` must be NULL or a live block of this allocator.
#[inline]
pub unsafe fn free(mem: *mut u8) {
    // The hardened fast path turns NULL away with its bounds (the chunk would lie below
    // address 0), so NULL is tested on the slow path, off every other free's way.
    if !check::HARDENED && mem.is_null() {
        return;
    }
    // SAFETY: forwarded.
    unsafe { release(mem) };
}

/// `calloc`: `count * size` zeroed bytes; NULL with ENOMEM on overflow.
pub fn calloc(count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        Some(bytes) => or_nomem(allocate_zeroed(bytes)),
        None => fail_nomem(),
    }
}

/// `realloc`: glibc's rules: NULL acts as malloc, size 0 frees and returns NULL, failure
/// returns NULL with ENOMEM and leaves the block as it was.
///
/// # Safety
/// `mem` must be NULL or a live block of this allocator.
pub unsafe fn realloc(mem: *mut u8, bytes: usize) -> *mut u8 {
    if mem.is_null() {
        return malloc(bytes);
    }
    if bytes == 0 {
        // SAFETY: forwarded.
        unsafe { free(mem) };
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded.
    or_nomem(unsafe { resize(mem, bytes) })
}

/// `reallocarray`: realloc to `count * size` bytes, ENOMEM on overflow.
///
/// # Safety
/// As for `realloc`.
pub unsafe fn reallocarray(mem: *mut u8, count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        // SAFETY: forwarded.
        Some(bytes) => unsafe { realloc(mem, bytes) },
        None => fail_nomem(),
    }
}

/// `memalign`: alignments that are not a power of two are rounded up, as glibc does;
/// alignments above half the address space give EINVAL.
pub fn memalign(alignment: usize, bytes: usize) -> *mut u8 {
    if alignment > usize::MAX / 2 + 1 {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    let alignment = alignment.max(1).next_power_of_two();
    or_nomem(allocate_aligned(alignment, bytes))
}

/// `posix_memalign`: EINVAL unless `alignment` is a power of two multiple of the pointer
/// size; ENOMEM on failure; `*out` is written only on success and errno never.
///
/// # Safety
/// `out` must be writable.
pub unsafe fn posix_memalign(out: *mut *mut u8, alignment: usize, bytes: usize) -> i32 {
    if !alignment.is_multiple_of(core::mem::size_of::<usize>()) || !alignment.is_power_of_two() {
        return libc::EINVAL;
    }
    let saved = os::errno();
    let p = allocate_aligned(alignment, bytes);
    os::set_errno(saved);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { *out = p };
    0
}

/// `aligned_alloc`: as C17 and glibc 2.38 ask, EINVAL for an alignment that is not a power
/// of two; the size need not be a multiple of it.
pub fn aligned_alloc(alignment: usize, bytes: usize) -> *mut u8 {
    if !alignment.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    or_nomem(allocate_aligned(alignment, bytes))
}

/// `valloc`: page aligned.
pub fn valloc(bytes: usize) -> *mut u8 {
    or_nomem(allocate_aligned(os::page_size(), bytes))
}

/// `pvalloc`: page aligned and rounded up to whole pages (0 stays 0: a minimum chunk).
pub fn pvalloc(bytes: usize) -> *mut u8 {
    match os::page_align_up(bytes) {
        Some(rounded) => or_nomem(allocate_aligned(os::page_size(), rounded)),
        None => fail_nomem(),
    }
}

/// `malloc_usable_size`: bytes usable in `mem`; 0 for NULL, a chunk that is not in use, or
/// a pointer that is none of ours.
///
/// # Safety
/// `mem` must be NULL or a block of this allocator.
pub unsafe fn malloc_usable_size(mem: *mut u8) -> usize {
    let p = Chunk::from_mem(mem);
    if mem.is_null()
        || !crate::chunk::aligned(p.0)
        || !(starts::is_start(p.0) || registry::MAPPED.contains(p.0))
    {
        return 0;
    }
    // SAFETY: a chunk of ours starts at `p`; its header and successor are readable.
    unsafe {
        if p.is_mmapped() || p.in_use() {
            p.usable()
        } else {
            0
        }
    }
}

/// `mallopt`: glibc's parameters and answers (see `options`).
pub fn mallopt(param: i32, value: i32) -> i32 {
    let mut arena = MAIN.lock();
    // SAFETY: the guard holds the lock.
    unsafe { arena.consolidate() };
    crate::options::set(param, value)
}

/// `malloc_trim`: empties the calling thread's cache, then in every arena gives back every
/// whole free page inside free chunks and the top above `pad`; 1 if any memory was released.
pub fn malloc_trim(pad: usize) -> i32 {
    tcache::flush_all();
    let mut released = false;
    for a in arenas::all() {
        // SAFETY: the guard holds the lock.
        released |= unsafe { a.lock().trim_all(pad) };
    }
    i32::from(released)
}
