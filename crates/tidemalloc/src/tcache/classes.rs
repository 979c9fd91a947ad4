//! Which list of the thread cache a chunk belongs to, and how many chunks each list holds.
//!
//! Chunks up to 1040 bytes have one list per size, as glibc's 64 thread-cache bins. Larger
//! chunks go to range lists, as in glibc 2.42's large thread-cache bins: eight per doubling
//! of the size, each holding the chunks from its floor up to the next list's floor. A
//! request for `nb` bytes looks at two heads only: its own size's list, whose first entry
//! may or may not be large enough, and the list above, whose entries all are. So a program
//! that frees and allocates one size again finds it in its own list, and any other request
//! gets a chunk less than a quarter larger than it asked for, without a search.

use crate::chunk::{request_to_size, ALIGNMENT, ALIGN_MASK, MIN_CHUNK, SIZE_SZ};

/// Lists of one chunk size each: 32, 48, ... 1040 bytes (requests up to 1032 bytes).
pub const SMALL_LISTS: usize = 64;
/// The largest chunk size with a list of its own.
pub const SMALL_MAX_CHUNK: usize = MIN_CHUNK + (SMALL_LISTS - 1) * ALIGNMENT;
/// The largest `glibc.malloc.tcache_max` glibc 2.42 accepts.
pub const LARGEST_MAX_BYTES: usize = 4 << 20;
/// Range lists per doubling of the chunk size, as a power of two.
const STEPS_LOG2: u32 = 3;
/// The first range list's floor: the power of two at or below the first size past the
/// small lists.
const BASE_LOG2: u32 = 10;
const _: () = assert!(1 << BASE_LOG2 <= SMALL_MAX_CHUNK && SMALL_MAX_CHUNK < 2 << BASE_LOG2);
/// The largest chunk a cache may hold.
const LARGEST_MAX_CHUNK: usize = match request_to_size(LARGEST_MAX_BYTES) {
    Some(size) => size,
    None => panic!("tcache_max's bound is a valid request"),
};
/// All lists: the largest chunk's own list and the one above it are the last two.
pub const LISTS: usize = range_list(LARGEST_MAX_CHUNK) + 2;
/// One bit per range list (see `Ranges::used`).
pub type RangeBits = u128;
const _: () = assert!(LISTS - SMALL_LISTS <= RangeBits::BITS as usize);
/// What a list may hold, in bytes of its floor size (always room for one chunk, and
/// `LEAST_PLACES` below `LEAST_PLACES_BELOW`): so the smallest sizes, the most used, get
/// hundreds of places and a list of 1 KiB chunks 15, and a thread's cache holds at most
/// 1 MiB in small chunks and about 1.7 MiB in range chunks at the default `tcache_max`,
/// whatever `tcache_count` says. Twice this for range lists held 0.9 MiB more at peak in the
/// bench's realloc workload for no speed.
const LIST_BYTES: usize = 16 << 10;
/// Places a range list with a floor below `LEAST_PLACES_BELOW` keeps even where fewer fill
/// LIST_BYTES. A list of one place is full or empty at every other call when its sizes are
/// freed and asked for in turn, and each such call is a trip to the arena: a full list
/// hands a chunk back, and an empty one gets a chunk carved again. Two places halved those
/// trips on the bench's churn; four, against two, cut the lists' flushes from 46,000 to
/// 7,000 per 20 million requests, 2-3 % of its CPU time, for 2-3 % more peak memory on
/// churn, realloc and thread-churn (and 0.6 MiB more that a thread's range lists may hold
/// at most). Three gained half as much, eight nothing more.
const LEAST_PLACES: usize = 4;
const LEAST_PLACES_BELOW: usize = 32 << 10;

/// The list of a chunk of `size` bytes (a multiple of ALIGNMENT, at least MIN_CHUNK).
#[inline(always)]
pub const fn list_of(size: usize) -> usize {
    if size <= SMALL_MAX_CHUNK {
        small_list(size)
    } else {
        range_list(size)
    }
}

/// The list of a chunk of `size` bytes, at most SMALL_MAX_CHUNK.
#[inline(always)]
pub const fn small_list(size: usize) -> usize {
    (size - MIN_CHUNK) / ALIGNMENT
}

/// The small list of a request of `bytes` bytes (no larger than `SMALL_MAX_CHUNK - SIZE_SZ`),
/// computed from the request without going through `request_to_size`.
#[inline(always)]
pub const fn request_list(bytes: usize) -> usize {
    // Requests of 0 to 24 bytes all take the smallest chunk.
    ((bytes + SIZE_SZ + ALIGN_MASK) / ALIGNMENT).saturating_sub(MIN_CHUNK / ALIGNMENT)
}

/// Entries of `REQUEST_LISTS`: one per `request_step` of a request served by a small list.
pub const REQUEST_STEPS: usize = request_step(SMALL_MAX_CHUNK - SIZE_SZ) + 1;

/// Where a request of `bytes` bytes looks in `REQUEST_LISTS`. Every request of one step
/// takes the same chunk size (a chunk ends 8 bytes into a 16-byte step), so one table read
/// replaces the clamp to the smallest chunk that `request_list` needs.
#[inline(always)]
pub const fn request_step(bytes: usize) -> usize {
    (bytes + ALIGNMENT - SIZE_SZ - 1) / ALIGNMENT
}

/// The small list of each request step; malloc's fast path reads a copy in the thread
/// cache, next to the lists.
pub const REQUEST_LISTS: [u8; REQUEST_STEPS] = {
    let mut lists = [0; REQUEST_STEPS];
    let mut step = 0;
    while step < REQUEST_STEPS {
        lists[step] = request_list(step * ALIGNMENT) as u8;
        step += 1;
    }
    lists
};
const _: () = assert!(SMALL_LISTS <= u8::MAX as usize + 1);

/// The range list of a chunk of `size` bytes, above SMALL_MAX_CHUNK.
#[inline]
pub const fn range_list(size: usize) -> usize {
    let log = usize::BITS - 1 - size.leading_zeros();
    let step = (size >> (log - STEPS_LOG2)) & ((1 << STEPS_LOG2) - 1);
    SMALL_LISTS + (((log - BASE_LOG2) << STEPS_LOG2) as usize) + step
}

/// The smallest chunk range list `i` holds.
#[inline]
pub const fn range_floor(i: usize) -> usize {
    let j = i - SMALL_LISTS;
    let steps = 1 << STEPS_LOG2;
    (steps + j % steps) << (j / steps + (BASE_LOG2 - STEPS_LOG2) as usize)
}

/// The largest chunk of the range list of a chunk of `size` bytes.
#[inline]
pub const fn range_list_top(size: usize) -> usize {
    range_floor(range_list(size) + 1) - ALIGNMENT
}

/// The range list every chunk of which is at least `nb` bytes (above SMALL_MAX_CHUNK), with
/// the smallest such chunks.
#[inline]
pub const fn range_list_above(nb: usize) -> usize {
    range_list(nb - 1) + 1
}

/// The smallest chunk list `i` holds.
#[inline]
pub const fn floor(i: usize) -> usize {
    match i < SMALL_LISTS {
        true => MIN_CHUNK + i * ALIGNMENT,
        false => range_floor(i),
    }
}

/// How many chunks list `i` holds when `tcache_count` is `count`: as many as fit in
/// LIST_BYTES, at least one (`LEAST_PLACES` below LEAST_PLACES_BELOW) and at most `count`.
#[inline]
pub fn capacity(i: usize, count: u16) -> u16 {
    let least = match floor(i) < LEAST_PLACES_BELOW {
        true => LEAST_PLACES,
        false => 1,
    };
    let fit = (LIST_BYTES / floor(i)).max(least);
    count.min(fit as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_list_matches_the_chunk_size_of_every_small_request() {
        for bytes in 0..=SMALL_MAX_CHUNK - SIZE_SZ {
            let nb = request_to_size(bytes).unwrap();
            assert_eq!(
                request_list(bytes),
                small_list(nb),
                "request of {bytes} bytes"
            );
        }
        assert_eq!(
            request_to_size(SMALL_MAX_CHUNK - SIZE_SZ + 1),
            Some(SMALL_MAX_CHUNK + ALIGNMENT)
        );
    }

    #[test]
    fn the_request_table_gives_every_small_request_its_list() {
        for bytes in 0..=SMALL_MAX_CHUNK - SIZE_SZ {
            assert_eq!(
                REQUEST_LISTS[request_step(bytes)] as usize,
                request_list(bytes),
                "request of {bytes} bytes"
            );
        }
        assert_eq!(request_step(SMALL_MAX_CHUNK - SIZE_SZ), REQUEST_STEPS - 1);
    }

    #[test]
    fn every_chunk_size_lies_between_its_list_floor_and_the_next() {
        assert_eq!(list_of(SMALL_MAX_CHUNK), SMALL_LISTS - 1);
        assert_eq!(list_of(SMALL_MAX_CHUNK + ALIGNMENT), SMALL_LISTS);
        let mut size = SMALL_MAX_CHUNK + ALIGNMENT;
        while size <= LARGEST_MAX_CHUNK {
            let i = list_of(size);
            assert!(i + 1 < LISTS, "{size}");
            assert!(
                range_floor(i) <= size && size < range_floor(i + 1),
                "{size}"
            );
            size += ALIGNMENT;
        }
    }

    #[test]
    fn a_range_lists_top_is_its_largest_chunk_and_at_most_an_eighth_past_any_of_them() {
        let mut size = SMALL_MAX_CHUNK + ALIGNMENT;
        while size <= LARGEST_MAX_CHUNK {
            let top = range_list_top(size);
            assert_eq!(list_of(top), list_of(size), "{size}");
            assert_eq!(list_of(top + ALIGNMENT), list_of(size) + 1, "{size}");
            assert!(top - size < size / 8, "{size}: top {top}");
            size += ALIGNMENT;
        }
    }

    #[test]
    fn the_list_above_a_request_holds_only_chunks_that_fit_with_less_than_a_quarter_to_spare() {
        let mut nb = SMALL_MAX_CHUNK + ALIGNMENT;
        while nb <= LARGEST_MAX_CHUNK {
            let above = range_list_above(nb);
            assert!(above < LISTS, "{nb}");
            assert!(range_floor(above) >= nb, "{nb}");
            // The largest chunk of that list, against the request.
            let largest = range_floor(above + 1) - ALIGNMENT;
            assert!(largest - nb < nb / 4, "{nb}: up to {largest}");
            assert!(above == list_of(nb) || above == list_of(nb) + 1, "{nb}");
            nb += ALIGNMENT;
        }
    }

    #[test]
    fn lists_hold_a_bounded_number_of_bytes() {
        let count = u16::MAX;
        // The largest chunk each list may hold, times its places.
        let held = |lists: core::ops::Range<usize>| -> usize {
            lists
                .map(|i| capacity(i, count) as usize * (floor(i + 1) - ALIGNMENT))
                .sum()
        };
        assert!(held(0..SMALL_LISTS) <= 1 << 20, "{}", held(0..SMALL_LISTS));
        let default_max = request_to_size(super::super::DEFAULT_MAX_BYTES).unwrap();
        let ranges = held(SMALL_LISTS..list_of(default_max) + 1);
        assert!(ranges <= 1700 << 10, "{ranges} bytes");
        assert_eq!(capacity(0, count), 512);
        assert_eq!(capacity(SMALL_LISTS - 1, count), 15);
        assert_eq!(capacity(list_of(6 << 10), count), 4);
        assert_eq!(capacity(list_of(24 << 10), count), 4);
        assert_eq!(capacity(list_of(LEAST_PLACES_BELOW), count), 1);
        assert_eq!(capacity(list_of(LARGEST_MAX_CHUNK), count), 1);
        assert_eq!(capacity(0, 3), 3);
        assert_eq!(capacity(SMALL_LISTS, 3), 3);
    }
}
