//! Which of a process's mappings are the allocator's (S5.2), from `/proc/PID/smaps`: the
//! main heap is `[heap]`; thread heaps are anonymous 64 MiB-aligned reservations; mmapped
//! chunks are other anonymous mappings, which from outside cannot be told apart from thread
//! stacks or the program's own `mmap`, so the report names them together.

use procfs::process::{MMapPath, MemoryMap, MemoryMaps};
use std::time::Duration;

/// ptmalloc2's thread heaps are reserved at this size and alignment (HEAP_MAX_SIZE, 64-bit).
const THREAD_HEAP_SPAN: u64 = 64 << 20;

/// The groups a mapping falls into, in the order the report prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    MainHeap,
    ThreadHeaps,
    OtherAnonymous,
    Stack,
    Files,
    Kernel,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::MainHeap,
        Group::ThreadHeaps,
        Group::OtherAnonymous,
        Group::Stack,
        Group::Files,
        Group::Kernel,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Group::MainHeap => "main heap [heap] (brk)",
            Group::ThreadHeaps => "thread heaps (64 MiB-aligned anon)",
            Group::OtherAnonymous => "other anon: mmapped chunks, stacks, program mmap",
            Group::Stack => "main stack [stack]",
            Group::Files => "files: program, libraries",
            Group::Kernel => "kernel: [vdso] [vvar] ...",
        }
    }
}

/// What one group's mappings add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub mappings: usize,
    pub size: u64,
    pub rss: u64,
    pub private_dirty: u64,
}

/// One reading of `/proc/PID/smaps`, grouped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakdown {
    /// When it was read, from the program's start.
    pub at: Duration,
    pub groups: [(Group, Totals); 6],
}

impl Breakdown {
    pub fn of(maps: &MemoryMaps, at: Duration) -> Self {
        let mut groups = Group::ALL.map(|g| (g, Totals::default()));
        let maps: Vec<&MemoryMap> = maps.iter().collect();
        for m in &maps {
            let group = group_of(m, &maps);
            // Group::ALL lists the groups in declaration order.
            let t = &mut groups[group as usize].1;
            let field = |key: &str| m.extension.map.get(key).copied().unwrap_or(0);
            t.mappings += 1;
            t.size += m.address.1 - m.address.0;
            t.rss += field("Rss");
            t.private_dirty += field("Private_Dirty");
        }
        Breakdown { at, groups }
    }

    pub fn total(&self) -> Totals {
        self.groups
            .iter()
            .fold(Totals::default(), |a, (_, t)| Totals {
                mappings: a.mappings + t.mappings,
                size: a.size + t.size,
                rss: a.rss + t.rss,
                private_dirty: a.private_dirty + t.private_dirty,
            })
    }
}

/// Reads and groups `/proc/PID/smaps` now; `None` when it cannot be read or the process
/// had begun to exit, when its mappings may be half torn down.
pub fn sample(pid: i32, at: Duration) -> Option<Breakdown> {
    let process = procfs::process::Process::new(pid).ok()?;
    let maps = process.smaps().ok()?;
    // PF_EXITING is set before the kernel starts unmapping and never cleared, so a stat read
    // after smaps shows whether the read may have raced with the teardown.
    const PF_EXITING: u32 = 0x4;
    let stat = process.stat().ok()?;
    let whole = stat.flags & PF_EXITING == 0 && !matches!(stat.state, 'Z' | 'X');
    (whole && maps.len() > 0).then(|| Breakdown::of(&maps, at))
}

fn group_of(m: &MemoryMap, all: &[&MemoryMap]) -> Group {
    match &m.pathname {
        MMapPath::Heap => Group::MainHeap,
        MMapPath::Stack => Group::Stack,
        MMapPath::Path(_) => Group::Files,
        MMapPath::Anonymous if in_thread_heap(m, all) => Group::ThreadHeaps,
        MMapPath::Anonymous | MMapPath::TStack(_) => Group::OtherAnonymous,
        _ => Group::Kernel,
    }
}

/// A thread heap starts on a 64 MiB boundary with its header and stays inside that span;
/// its unused part shows as a separate `---p` mapping further on in the same span.
fn in_thread_heap(m: &MemoryMap, all: &[&MemoryMap]) -> bool {
    let base = m.address.0 & !(THREAD_HEAP_SPAN - 1);
    let fits = m.address.1 <= base + THREAD_HEAP_SPAN;
    fits && all
        .iter()
        .any(|h| h.address.0 == base && matches!(h.pathname, MMapPath::Anonymous))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromBufRead;

    fn entry(range: &str, perms: &str, path: &str, rss_kb: u64, dirty_kb: u64) -> String {
        format!(
            "{range} {perms} 00000000 00:00 0 {path}\nSize: 4 kB\nRss: {rss_kb} kB\n\
             Private_Clean: 0 kB\nPrivate_Dirty: {dirty_kb} kB\nVmFlags: rd wr mr mw me ac\n"
        )
    }

    fn sample_text() -> String {
        [
            entry("555555554000-555555556000", "r-xp", "/usr/bin/prog", 8, 0),
            entry("555555556000-555555577000", "rw-p", "[heap]", 132, 120),
            // A thread heap: 132 KiB used, the rest of its 64 MiB reserved.
            entry("7ffff0000000-7ffff0021000", "rw-p", "", 100, 100),
            entry("7ffff0021000-7ffff4000000", "---p", "", 0, 0),
            // A 204 KiB mmapped chunk somewhere unaligned.
            entry("7ffff7a00000-7ffff7a33000", "rw-p", "", 204, 204),
            entry("7ffff7fc1000-7ffff7fc5000", "r--p", "[vvar]", 0, 0),
            entry("7ffffffde000-7ffffffff000", "rw-p", "[stack]", 12, 12),
        ]
        .concat()
    }

    fn totals(b: &Breakdown, g: Group) -> Totals {
        b.groups.iter().find(|(x, _)| *x == g).unwrap().1
    }

    #[test]
    fn groups_mappings_by_who_made_them() {
        let maps = MemoryMaps::from_buf_read(sample_text().as_bytes()).unwrap();
        let b = Breakdown::of(&maps, Duration::from_millis(5));
        let heap = totals(&b, Group::MainHeap);
        assert_eq!(
            (heap.mappings, heap.rss, heap.private_dirty),
            (1, 132 << 10, 120 << 10)
        );
        assert_eq!(heap.size, 0x21000);
        let threads = totals(&b, Group::ThreadHeaps);
        assert_eq!((threads.mappings, threads.size), (2, THREAD_HEAP_SPAN));
        assert_eq!(threads.rss, 100 << 10);
        let anon = totals(&b, Group::OtherAnonymous);
        assert_eq!((anon.mappings, anon.rss), (1, 204 << 10));
        assert_eq!(totals(&b, Group::Files).mappings, 1);
        assert_eq!(totals(&b, Group::Kernel).mappings, 1);
        assert_eq!(totals(&b, Group::Stack).rss, 12 << 10);
        let all = b.total();
        assert_eq!(all.mappings, 7);
        assert_eq!(all.rss, (8 + 132 + 100 + 204 + 12) << 10);
    }

    #[test]
    fn an_aligned_span_without_an_anonymous_start_is_no_thread_heap() {
        let text = [
            entry("7ffff0000000-7ffff0001000", "r--p", "/lib/x.so", 4, 0),
            entry("7ffff0001000-7ffff0002000", "rw-p", "", 4, 4),
        ]
        .concat();
        let maps = MemoryMaps::from_buf_read(text.as_bytes()).unwrap();
        let b = Breakdown::of(&maps, Duration::ZERO);
        assert_eq!(totals(&b, Group::ThreadHeaps).mappings, 0);
        assert_eq!(totals(&b, Group::OtherAnonymous).mappings, 1);
    }

    #[test]
    fn samples_this_process() {
        let b = sample(std::process::id() as i32, Duration::ZERO).expect("own smaps");
        assert!(totals(&b, Group::Files).rss > 0);
        assert!(b.total().rss >= totals(&b, Group::Files).rss);
    }
}
