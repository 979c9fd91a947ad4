//! Runs of equal chunks cut in one go for a thread cache's refill. A refill asks its arena
//! for dozens of chunks of one size; when the first came off the front of the last remainder
//! or of top, every further call would cut the next one from the same place (nothing else in
//! the bins fits, or the first call would have used it), each through the whole malloc path.
//! Cutting them here gives the same chunks, headers, start marks and remainder as those
//! calls would, for a header write per chunk.

use crate::arena::State;
use crate::bins::{fast_index, is_small, small_index, UNSORTED};
use crate::check::{corruption, Corruption};
use crate::chunk::{Chunk, MIN_CHUNK, PREV_INUSE};
use crate::options::PARAMS;
use crate::starts;
use core::sync::atomic::Ordering::Relaxed;

impl State {
    /// After `c`, an in-use chunk of `nb` bytes (a small size) that this arena's `malloc`
    /// has just returned, cuts up to `out.len()` more chunks of `nb` bytes right behind it
    /// when that many further calls would: when `c` ends where the last remainder or top
    /// begins and the places those calls look first (the fast and small bins of `nb`, the
    /// unsorted bin, larger bins for top) hold nothing. Writes their user addresses to `out`
    /// in address order and returns how many it cut.
    ///
    /// # Safety
    /// The lock is held; `c` is an in-use chunk of this arena of `nb` bytes.
    pub unsafe fn carve_after(&mut self, c: Chunk, nb: usize, out: &mut [usize]) -> usize {
        if !is_small(nb) {
            return 0;
        }
        let behind = c.plus(nb);
        // SAFETY: the bins are initialised (the arena served `c`); the chunk behind `c` is
        // the arena's own last remainder or top.
        unsafe {
            let fast_empty =
                nb > PARAMS.max_fast.load(Relaxed) || self.bins.fast[fast_index(nb)] == 0;
            if !fast_empty || !self.bins.is_empty(small_index(nb)) {
                return 0;
            }
            if behind == self.last_remainder {
                self.carve_remainder(nb, out)
            } else if behind == self.top && self.bins.next_marked(small_index(nb) + 1).is_none() {
                self.carve_top(nb, out)
            } else {
                0
            }
        }
    }

    /// `carve_after` from the last remainder, which the next call's unsorted scan would
    /// split while it is the only unsorted chunk and longer than `nb + MIN_CHUNK`.
    unsafe fn carve_remainder(&mut self, nb: usize, out: &mut [usize]) -> usize {
        let unsorted = self.bins.bin(UNSORTED);
        let first = self.last_remainder;
        // SAFETY: the last remainder is a free chunk of this arena, checked as the scan
        // checks it; the run is cut from its front and what is left stays listed as the only
        // unsorted chunk, as the scan's own split leaves it.
        unsafe {
            if unsorted.bk() != first || first.bk() != unsorted {
                return 0;
            }
            let size = self.checked_unsorted(first, unsorted);
            // The scan splits the remainder only while it is longer than `nb + MIN_CHUNK`.
            let n = run_length(size, nb, MIN_CHUNK + 1, out.len());
            if n == 0 {
                return 0;
            }
            self.shrink_remainder(first.plus(n * nb), size - n * nb);
            self.cut_run(first, nb, &mut out[..n]);
            n
        }
    }

    /// `carve_after` from top, which the next calls would split while it holds `nb +
    /// MIN_CHUNK`, once they found the unsorted bin empty.
    unsafe fn carve_top(&mut self, nb: usize, out: &mut [usize]) -> usize {
        let unsorted = self.bins.bin(UNSORTED);
        // SAFETY: top is a live chunk of this arena; the run is cut from its front as
        // `split_top` cuts one chunk.
        unsafe {
            if unsorted.bk() != unsorted {
                return 0;
            }
            let first = self.top;
            let size = first.size();
            if size > self.system_mem {
                corruption(Corruption::CorruptedTopSize);
            }
            // `split_top` needs `nb + MIN_CHUNK` in top.
            let n = run_length(size, nb, MIN_CHUNK, out.len());
            if n == 0 {
                return 0;
            }
            let rest = first.plus(n * nb);
            rest.set_head((size - n * nb) | PREV_INUSE);
            self.top = rest;
            starts::set(rest);
            self.fresh = self.fresh.max(rest.0);
            self.cut_run(first, nb, &mut out[..n]);
            n
        }
    }

    /// Makes the `out.len()` chunks of `nb` bytes from `first` on in-use chunks of this
    /// arena, as `malloc` hands them out, and writes their user addresses to `out`.
    unsafe fn cut_run(&mut self, first: Chunk, nb: usize, out: &mut [usize]) {
        let mut c = first;
        for slot in out.iter_mut() {
            // SAFETY: the caller took these bytes out of a free chunk of this arena; each
            // chunk's predecessor is the previous one, or the chunk `malloc` just handed out.
            unsafe {
                c.set_head(nb | PREV_INUSE | self.flags);
                c.set_mark(0);
            }
            if c != first {
                starts::set(c);
            }
            *slot = c.mem() as usize;
            c = c.plus(nb);
        }
    }
}

/// How many chunks of `nb` bytes single splits cut off the front of a free chunk of `size`
/// bytes, at most `max`, when each split must leave at least `keep` bytes behind it.
fn run_length(size: usize, nb: usize, keep: usize, max: usize) -> usize {
    max.min(size.saturating_sub(keep) / nb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ALIGNMENT;

    /// What `max` single splits, each needing `nb + keep` bytes before it, cut.
    fn one_by_one(mut size: usize, nb: usize, keep: usize, max: usize) -> usize {
        let mut n = 0;
        while n < max && size >= nb + keep {
            size -= nb;
            n += 1;
        }
        n
    }

    #[test]
    fn a_run_stops_where_single_splits_would() {
        for keep in [MIN_CHUNK, MIN_CHUNK + 1] {
            for nb in (MIN_CHUNK..=1040).step_by(ALIGNMENT) {
                for size in (0..=8 * nb + 4 * MIN_CHUNK).step_by(ALIGNMENT) {
                    for max in [0, 1, 4, 64] {
                        assert_eq!(
                            run_length(size, nb, keep, max),
                            one_by_one(size, nb, keep, max),
                            "{size} bytes, chunks of {nb}, keeping {keep}, at most {max}"
                        );
                    }
                }
            }
        }
    }
}
