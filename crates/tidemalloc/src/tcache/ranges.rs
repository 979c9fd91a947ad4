//! A thread's range lists (chunks past 1040 bytes, see `classes`). They are kept in a chunk
//! of the thread's arena, made when its cache is set up and given back at its exit, as
//! glibc keeps its whole thread cache: in TLS they would take a kilobyte of static TLS,
//! which a library loaded with dlopen does not get.

use super::classes::{
    capacity, list_of, range_list, range_list_above, range_list_top, RangeBits, SMALL_LISTS,
    SMALL_MAX_CHUNK,
};
use super::list::List;
use crate::arena::State;
use crate::check::{self, corruption, Corruption};
use crate::chunk::{request_to_size, Chunk, FLAG_BITS, IS_MMAPPED};
use crate::options::PARAMS;
use core::sync::atomic::Ordering::Relaxed;

/// Range lists, as many as `classes` has past the small ones.
const LISTS: usize = super::classes::LISTS - SMALL_LISTS;

#[repr(C)]
pub struct Ranges {
    heads: [usize; LISTS],
    room: [u16; LISTS],
    /// A bit for each list that may hold chunks (set when one is cached, cleared when the
    /// list is seen empty), so that `reclaim` finds the smallest one without a scan.
    used: RangeBits,
    /// For each list, how many requests of the list found its first chunk too small, up to
    /// `VARIED_AFTER` (see `carve_size`).
    fit_misses: [u8; LISTS],
}

/// Requests of a list that find its first chunk too small, after which the arena carves
/// the list's chunks at its largest size. One or two can be chance (a block freed, then a
/// slightly larger one asked for); a few more mean the list's sizes vary, and each such
/// request is a trip to the arena for a chunk of a size the list holds but a little too
/// small. The bench's churn (random sizes) gets there in every list early on. The sqlite
/// bench, whose two most common range sizes (4104 and 4368 bytes) share a list, gets there
/// in that list (over 2,000 such requests, were its sizes kept exact), at the cost of 2 %
/// more peak memory and no change in time.
const VARIED_AFTER: u8 = 4;

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
                fit_misses: [0; LISTS],
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

    /// The chunk size the arena carves for a request of `nb` bytes that no list could
    /// serve, where `max_chunk` is the largest size cached: `nb` itself, as glibc carves it,
    /// for a request no range list takes, and until `nb`'s list has shown that its sizes
    /// vary; then the list's largest size, which every later request of the list fits, at
    /// most an eighth more than asked for. So a program whose sizes repeat keeps glibc's
    /// layout and finds its own size again in its list, and one whose sizes vary stops going
    /// to the arena for a chunk its list holds but is a little too small. The size stays
    /// below the mapping threshold, so the chunk comes from where `nb`'s would.
    pub fn carve_size(&self, nb: usize, max_chunk: usize) -> usize {
        if nb <= SMALL_MAX_CHUNK
            || nb > max_chunk
            || self.fit_misses[range_list(nb) - SMALL_LISTS] < VARIED_AFTER
        {
            return nb;
        }
        let top = range_list_top(nb).min(max_chunk);
        match top < PARAMS.mmap_threshold.load(Relaxed) {
            true => top,
            false => nb,
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
    /// which always is. Each first entry's header is read once, checked.
    pub fn take(&mut self, nb: usize) -> Option<*mut u8> {
        let own = range_list(nb);
        match self.first_size(own) {
            Some(size) if size >= nb => return Some(self.pop(own)),
            Some(_) => {
                let misses = &mut self.fit_misses[own - SMALL_LISTS];
                *misses = (*misses + 1).min(VARIED_AFTER);
            }
            None => {}
        }
        let above = range_list_above(nb);
        self.first_size(above)?;
        Some(self.pop(above))
    }

    /// The size of list `i`'s first entry, which must be an arena chunk of that list (a
    /// damaged header aborts); `None` when the list is empty.
    fn first_size(&mut self, i: usize) -> Option<usize> {
        let first = self.heads[i - SMALL_LISTS];
        if first == 0 {
            self.used &= !bit(i);
            return None;
        }
        let c = Chunk::from_mem(first as *mut u8);
        let head = match check::HARDENED {
            true => super::checked_head(c),
            // SAFETY: the unchecked build trusts the entries it cached.
            false => Some(unsafe { c.head() }),
        };
        match head {
            Some(h) if h & IS_MMAPPED == 0 && list_of(h & !FLAG_BITS) == i => Some(h & !FLAG_BITS),
            _ => corruption(Corruption::TcacheInvalidSize),
        }
    }

    /// Takes the first entry of list `i`, which `first_size` has just checked.
    fn pop(&mut self, i: usize) -> *mut u8 {
        match self.list(i).take() {
            Some(mem) => mem,
            None => unreachable!("list {i} was just seen to hold a chunk"),
        }
    }

    /// Called when no free chunk of the arena (this thread's own, locked in `st`) fits `nb`
    /// bytes: before top is split, frees into it the smallest cached chunk that can serve
    /// `nb`; before the arena grows (`all`), every cached chunk, which may merge with its
    /// neighbours into one that fits. So memory the cache holds back is used before the
    /// heap grows (S2.6). `false` when there was nothing to free.
    pub fn reclaim(&mut self, st: &mut State, nb: usize, all: bool) -> bool {
        let from = match all {
            false if nb > SMALL_MAX_CHUNK => range_list_above(nb),
            _ => SMALL_LISTS,
        };
        // Every chunk of a list at or above `from` serves `nb`.
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
            if self.first_size(i).is_some() {
                let mem = self.pop(i);
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
