//! Changing an in-use chunk's size or alignment inside its arena: realloc in place when the
//! chunk itself, its free successor or top allow (a move goes through the thread cache, see
//! `api::resize`); memalign by carving an aligned chunk out of a larger one and freeing the
//! ends (S2).

use crate::arena::State;
use crate::check::{corruption, Corruption};
use crate::chunk::{Chunk, HEADER, MIN_CHUNK, PREV_INUSE};
use crate::{mmapped, starts};

impl State {
    /// Resizes in-use chunk `old` to serve `nb` bytes in place, when the chunk itself, its
    /// free successor or top allow. `None` when it would have to move, with `old` untouched.
    ///
    /// # Safety
    /// `old` must be an in-use arena chunk owned by the caller.
    pub unsafe fn resize_in_place(&mut self, old: Chunk, nb: usize) -> Option<Chunk> {
        // SAFETY: `old` is the caller's; neighbours are checked before use.
        unsafe {
            let old_size = old.size();
            if old.head() <= HEADER || old_size >= self.system_mem {
                corruption(Corruption::ReallocInvalidOldSize);
            }
            let next = old.plus(old_size);
            let next_size = next.size();
            if next.head() <= HEADER || next_size >= self.system_mem {
                corruption(Corruption::ReallocInvalidNextSize);
            }
            let (chunk, size) = if old_size >= nb {
                (old, old_size)
            } else if next == self.top && old_size + next_size >= nb + MIN_CHUNK {
                let rest = old.plus(nb);
                rest.set_head((old_size + next_size - nb) | PREV_INUSE);
                old.set_size_keep_flags(nb);
                self.top = rest;
                starts::erase(next);
                starts::set(rest);
                // The grown block will be written up to the new top.
                self.fresh = self.fresh.max(rest.0);
                return Some(old);
            } else if next != self.top && !next.in_use() && old_size + next_size >= nb {
                self.bins.unlink(next);
                starts::erase(next);
                (old, old_size + next_size)
            } else {
                return None;
            };
            self.shrink_to(chunk, size, nb);
            Some(chunk)
        }
    }

    /// Makes in-use chunk `c` (now spanning `size` bytes) exactly `nb` long when the rest is a
    /// whole chunk, freeing the rest.
    unsafe fn shrink_to(&mut self, c: Chunk, size: usize, nb: usize) {
        // SAFETY: `c` spans `size` bytes of this arena and is the caller's.
        unsafe {
            if size - nb < MIN_CHUNK {
                c.set_size_keep_flags(size);
                c.set_inuse_at(size);
            } else {
                let rest = c.plus(nb);
                c.set_size_keep_flags(nb);
                rest.set_head((size - nb) | PREV_INUSE);
                starts::set(rest);
                rest.set_inuse_at(size - nb);
                self.free(rest);
            }
        }
    }

    /// A chunk of `nb` bytes whose user pointer is a multiple of `alignment` (a power of two
    /// above the natural alignment).
    ///
    /// # Safety
    /// The lock is held and the arena is ready.
    pub unsafe fn memalign(&mut self, alignment: usize, nb: usize) -> Option<Chunk> {
        let padded = nb.checked_add(alignment)?.checked_add(MIN_CHUNK)?;
        let request = crate::chunk::request_to_size(padded)?;
        // SAFETY: the chunk is fresh from `malloc`; the pieces cut off are whole chunks.
        unsafe {
            let mut p = self.malloc(request)?;
            let mem = p.mem() as usize;
            if !mem.is_multiple_of(alignment) {
                let mut start =
                    Chunk::from_mem(((mem + alignment - 1) & !(alignment - 1)) as *mut u8);
                if start.0 - p.0 < MIN_CHUNK {
                    start = start.plus(alignment);
                }
                let lead = start.0 - p.0;
                let size = p.size() - lead;
                if p.is_mmapped() {
                    start.set_prev_size(p.prev_size() + lead);
                    start.set_head(size | crate::chunk::IS_MMAPPED);
                    mmapped::rename(p, start);
                    return Some(start);
                }
                start.set_head(size | PREV_INUSE | self.flags);
                start.set_inuse_at(size);
                // See `malloc_reclaiming`: the word may hold a tagged link from the past.
                start.set_mark(0);
                starts::set(start);
                p.set_size_keep_flags(lead);
                self.free(p);
                p = start;
            }
            if !p.is_mmapped() {
                let size = p.size();
                if size > nb + MIN_CHUNK {
                    self.shrink_to(p, size, nb);
                }
            }
            Some(p)
        }
    }
}
