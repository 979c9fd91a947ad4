//! One list of the thread cache, wherever it is kept: its first entry and the room left in
//! it, and the pops and pushes on it, with safe-linking and the checks that go with them.

use crate::bins::{protect, reveal};
use crate::check::{self, corruption, Corruption};
use crate::chunk::{aligned, steps, ALIGN_MASK, ALIGN_SHIFT, HEADER, SIZE_SZ};
use crate::starts;

/// A list of the cache: its head and its room, borrowed from where they are kept.
pub struct List<'a> {
    pub head: &'a mut usize,
    /// Places left; 0 while the cache is off.
    pub room: &'a mut u16,
}

impl List<'_> {
    /// Takes the first entry, if any, with its key cleared.
    #[inline(always)]
    pub fn take(self) -> Option<*mut u8> {
        let entry = *self.head;
        if entry == 0 {
            return None;
        }
        // SAFETY: cached entries are chunks this thread freed; their first two words are ours.
        let next = reveal(entry, unsafe { *(entry as *const usize) });
        // A link into another 64 MiB region than its own entry (or the list's end) is rare
        // and checked in full; garbage revealed from an overwritten link almost never stays
        // in the region, and never stays aligned by chance for long. The entry is aligned,
        // so `steps` of the difference is out of range when the link is not.
        let odd = match check::HARDENED {
            true => steps(next ^ entry) >> (starts::REGION_SHIFT - ALIGN_SHIFT),
            false => next & ALIGN_MASK,
        };
        if odd != 0 {
            return Some(self.take_far(entry, next));
        }
        Some(self.unlink_first(entry, next))
    }

    /// Makes `next` the head in place of the first entry `entry`, and hands `entry` out
    /// with its key cleared.
    #[inline(always)]
    fn unlink_first(self, entry: usize, next: usize) -> *mut u8 {
        *self.head = next;
        *self.room += 1;
        // SAFETY: the entry's second word is ours (it is this list's first entry).
        unsafe { *((entry + SIZE_SZ) as *mut usize) = 0 };
        entry as *mut u8
    }

    /// `take` for an entry whose link is unaligned or leaves the entry's region: the list's
    /// end, a chunk in another heap of the arena, or damage, which aborts.
    #[cold]
    #[inline(never)]
    fn take_far(self, entry: usize, next: usize) -> *mut u8 {
        if next != 0 && (!aligned(next) || (check::HARDENED && !starts::is_start(next - HEADER))) {
            corruption(Corruption::TcacheUnaligned);
        }
        self.unlink_first(entry, next)
    }

    /// Puts `entry` in front, marked with `key`, if there is room.
    ///
    /// # Safety
    /// `entry` is an in-use chunk this thread is freeing, in no list.
    #[inline(always)]
    pub unsafe fn link(self, entry: usize, key: usize) -> bool {
        // SAFETY: forwarded.
        let linked = unsafe { self.link_marked(entry) };
        if linked {
            // SAFETY: the entry's second word is the cache's now.
            unsafe { *((entry + SIZE_SZ) as *mut usize) = key };
        }
        linked
    }

    /// Puts `entry`, which already carries the cache's mark, in front if there is room.
    ///
    /// # Safety
    /// `entry` is an in-use chunk this thread is freeing, in no list.
    #[inline(always)]
    pub unsafe fn link_marked(self, entry: usize) -> bool {
        // Written so that the count drops in place and the borrow is tested after (one
        // instruction and a branch); a full list gets its 0 back.
        let (left, full) = self.room.overflowing_sub(1);
        *self.room = left;
        if full {
            *self.room = 0;
            return false;
        }
        // SAFETY: the caller gives the entry's first word to the cache.
        unsafe { *(entry as *mut usize) = protect(entry, *self.head) };
        *self.head = entry;
        true
    }

    /// `link` for an entry that carries the key: either it is already in this list (a double
    /// free, which aborts) or the key is stale user data; the list (of at most `limit`
    /// entries) is looked through to tell.
    ///
    /// # Safety
    /// As for `link`.
    #[cold]
    #[inline(never)]
    pub unsafe fn link_after_key_match(self, entry: usize, key: usize, limit: u16) -> bool {
        let mut e = *self.head;
        let mut steps = 0;
        while e != 0 {
            if e == entry {
                corruption(Corruption::TcacheDoubleFree);
            }
            steps += 1;
            if steps > limit as usize {
                corruption(Corruption::TcacheTooMany);
            }
            if !aligned(e) {
                corruption(Corruption::TcacheUnalignedFree);
            }
            // SAFETY: list members are cached chunks of this thread.
            e = reveal(e, unsafe { *(e as *const usize) });
        }
        // SAFETY: forwarded.
        unsafe { self.link(entry, key) }
    }
}
