//! The state of the heap at one moment, as a C program sees it from outside the allocator:
//! the program break, the mappings, and mallinfo2. Taking one does not allocate.

use super::maps::Maps;
use core::fmt;

/// The fields of mallinfo2 the walkthrough reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// Bytes the main heap (and thread heaps) got from the kernel, mmapped chunks aside.
    pub arena: usize,
    /// Free chunks, the top chunk included.
    pub ordblks: usize,
    /// Chunks in their own mapping and their bytes.
    pub hblks: usize,
    pub hblkhd: usize,
    /// Bytes in use and free in the heaps.
    pub uordblks: usize,
    pub fordblks: usize,
    /// The top chunk: what a trim could give back.
    pub keepcost: usize,
}

impl Info {
    pub fn now() -> Info {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
        let m = unsafe { libc::mallinfo2() };
        Info {
            arena: m.arena,
            ordblks: m.ordblks,
            hblks: m.hblks,
            hblkhd: m.hblkhd,
            uordblks: m.uordblks,
            fordblks: m.fordblks,
            keepcost: m.keepcost,
        }
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arena={} ordblks={} uordblks={} fordblks={} keepcost={} hblks={} hblkhd={}",
            self.arena,
            self.ordblks,
            self.uordblks,
            self.fordblks,
            self.keepcost,
            self.hblks,
            self.hblkhd
        )
    }
}

/// Break, mappings and mallinfo2 together.
#[derive(Clone)]
pub struct Snapshot {
    pub brk: usize,
    pub maps: Maps,
    pub info: Info,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let info = Info::now();
        // SAFETY: sbrk(0) only reports the current break.
        let brk = unsafe { libc::sbrk(0) } as usize;
        Snapshot {
            brk,
            maps: Maps::of_self(),
            info,
        }
    }
}
