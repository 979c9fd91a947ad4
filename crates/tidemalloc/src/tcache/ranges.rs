//! A thread's range lists (chunks past 1040 bytes, see `classes`). They are kept in a chunk
//! of the thread's arena, made when its cache is set up and given back at its exit, as
//! glibc keeps its whole thread cache: in TLS they would take a kilobyte of static TLS,
//! which a library loaded with dlopen does not get.

use super::classes::{capacity, list_of, range_list, range_list_above, RangeBits, SMALL_LISTS};
use super::list::List;
use crate::arena::State;
use crate::check::{self, corruption, Corruption};
use crate::chunk::{request_to_size, Chunk, FLAG_BITS, IS_MMAPPED};

/// Range lists, as many as `classes` has past the small ones.
const LISTS: usize = super::classes::LISTS - SMALL_LISTS;

#[repr(C)]
pub struct Ranges {
    heads: [usize; LISTS],
    room: [u16; LISTS],
    /// A bit for each list that may hold chunks (set when one is cached, cleared when the
    /// list is seen empty), so that `reclaim` finds the smallest one without a scan.
    used: RangeBits,
}

impl Ranges {
    /// Range lists for `count` chunks per size, in a chunk from `alloc`; `None` if it gives
    /// none (the thread then caches no range chunks).
    pub fn make(count: u16, alloc: impl FnOnce(usize) -> Option<Chunk>) -> Option<*mut Ranges> {
        let nb = request_to_size(core::mem::size_of::<Ranges>())?;
        let r = alloc(nb)?.mem() as *mut Ranges;
        let mut room = [0; LISTS];
        for (j, room) in room.iter_mut().enumerate() {
            *room = capacity(SMALL_LISTS + j, count);
        }
        let heads = [0; LISTS];
        // SAFETY: the chunk is fresh, 16-aligned and at least as large as `Ranges`.
        unsafe {
            r.write(Ranges {
                heads,
                room,
                used: 0,
            })
        };
        Some(r)
    }

    /// Range list `i` (a list index of `classes`, at least SMALL_LISTS).
    pub fn list(&mut self, i: usize) -> List<'_> {
        let j = i - SMALL_LISTS;
        List {
            head: &mut self.heads[j],
            room: &mut self.room[j],
        }
    }

    /// Records that list `i` got a chunk.
    pub fn note_used(&mut self, i: usize) {
        self.used |= bit(i);
    }

    /// Chunks held, for `cached`.
    pub fn heads(&self) -> &[usize] {
        &self.heads
    }

    /// Pops a cached chunk of at least `nb` bytes (above the small lists): the first entry
    /// of `nb`'s own list if it is large enough, else the first entry of the list above,
    /// which always is.
    pub fn take(&mut self, nb: usize) -> Option<*mut u8> {
        let own = range_list(nb);
        let first = self.heads[own - SMALL_LISTS];
        // SAFETY: a cached entry is an in-use chunk this thread freed; its header is ours.
        let fits = first != 0 && unsafe { Chunk::from_mem(first as *mut u8).size() } >= nb;
        let i = if fits { own } else { range_list_above(nb) };
        self.take_checked(i, nb)
    }

    /// Takes the first entry of list `i`, which must be a chunk of that list of at least
    /// `nb` bytes (a damaged header aborts).
    fn take_checked(&mut self, i: usize, nb: usize) -> Option<*mut u8> {
        let Some(mem) = self.list(i).take() else {
            self.used &= !bit(i);
            return None;
        };
        let c = Chunk::from_mem(mem);
        let head = match check::HARDENED {
            true => super::checked_head(c),
            // SAFETY: the unchecked build trusts the entries it cached.
            false => Some(unsafe { c.head() }),
        };
        let fine = head.is_some_and(|h| {
            let size = h & !FLAG_BITS;
            h & IS_MMAPPED == 0 && size >= nb && list_of(size) == i
        });
        if !fine {
            corruption(Corruption::TcacheInvalidSize);
        }
        Some(mem)
    }

    /// Called when no free chunk of the arena (this thread's own, locked in `st`) fits `nb`
    /// bytes: before top is split, frees into it the smallest cached chunk that can serve
    /// `nb`; before the arena grows (`all`), every cached chunk, which may merge with its
    /// neighbours into one that fits. So memory the cache holds back is used before the
    /// heap grows (S2.6). `false` when there was nothing to free.
    pub fn reclaim(&mut self, st: &mut State, nb: usize, all: bool) -> bool {
        let from = match all {
            false if nb > super::classes::SMALL_MAX_CHUNK => range_list_above(nb),
            _ => SMALL_LISTS,
        };
        // Every chunk of a list at or above `from` serves `nb` when not `all`.
        let least = match all {
            true => 0,
            false => nb,
        };
        let mut freed = false;
        loop {
            let used = self
                .used
                .checked_shr((from - SMALL_LISTS) as u32)
                .unwrap_or(0);
            if used == 0 {
                return freed;
            }
            let i = from + used.trailing_zeros() as usize;
            if let Some(mem) = self.take_checked(i, least) {
                // SAFETY: cached range chunks are in-use chunks of this thread's arena, which
                // `st` is, taken out of the cache.
                unsafe { st.free(Chunk::from_mem(mem)) };
                freed = true;
                if !all {
                    return true;
                }
            }
        }
    }
}

/// List `i`'s bit in `used`.
fn bit(i: usize) -> RangeBits {
    1 << (i - SMALL_LISTS)
}
