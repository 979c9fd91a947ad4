//! Introspection (S5.1): mallinfo2, malloc_stats and malloc_info in glibc's formats, and the
//! totals the `tidemalloc` command reports. Figures are gathered under the lock into a
//! snapshot; printing happens after the lock is released, since stdio may call malloc.

use crate::arena::State;
use crate::arenas;
use crate::bins::{fast_index, reveal, NBINS, NFASTBINS, UNSORTED};
use crate::chunk::Chunk;
use crate::mmapped;
use crate::os;
use crate::segment::Segments;
use core::fmt::{self, Write};
use core::sync::atomic::Ordering::Relaxed;

/// glibc's `struct mallinfo2`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mallinfo2 {
    /// Bytes obtained from the kernel for arenas (not counting mmapped chunks).
    pub arena: usize,
    /// Free chunks in regular bins, plus one for each top.
    pub ordblks: usize,
    /// Free chunks in fast bins.
    pub smblks: usize,
    /// Live mmapped chunks.
    pub hblks: usize,
    /// Bytes in live mmapped chunks.
    pub hblkhd: usize,
    /// Always 0.
    pub usmblks: usize,
    /// Bytes in fast-bin chunks.
    pub fsmblks: usize,
    /// Bytes in use in arenas.
    pub uordblks: usize,
    /// Free bytes in arenas (bins, fast bins and top).
    pub fordblks: usize,
    /// The main arena's top size: what malloc_trim could give back.
    pub keepcost: usize,
}

/// One bin's free chunks.
#[derive(Clone, Copy, Debug, Default)]
pub struct BinFigures {
    /// Number of chunks.
    pub count: usize,
    /// Their bytes.
    pub total: usize,
    /// The smallest chunk.
    pub min: usize,
    /// The largest chunk.
    pub max: usize,
}

impl BinFigures {
    fn add(&mut self, size: usize) {
        if self.count == 0 || size < self.min {
            self.min = size;
        }
        self.max = self.max.max(size);
        self.count += 1;
        self.total += size;
    }
}

/// Everything the introspection functions print about one arena.
pub struct ArenaFigures {
    /// Bytes from the kernel.
    pub system: usize,
    /// Most bytes from the kernel at once.
    pub max_system: usize,
    /// Fast bins by index.
    pub fast: [BinFigures; NFASTBINS],
    /// Regular bins by index (0 unused, 1 unsorted).
    pub bins: [BinFigures; NBINS],
    /// The top chunk's size.
    pub top: usize,
    /// Heaps (segments) of the arena.
    pub heaps: usize,
    /// Whether this is the main arena.
    pub main: bool,
}

impl ArenaFigures {
    /// Bytes in fast bins and their count.
    pub fn fast_totals(&self) -> (usize, usize) {
        self.fast
            .iter()
            .fold((0, 0), |(n, b), f| (n + f.count, b + f.total))
    }

    /// Bytes in regular bins and their count, top included (counted as one chunk).
    pub fn rest_totals(&self) -> (usize, usize) {
        self.bins
            .iter()
            .fold((1, self.top), |(n, b), f| (n + f.count, b + f.total))
    }

    /// Free bytes of every kind.
    pub fn free_bytes(&self) -> usize {
        self.fast_totals().1 + self.rest_totals().1
    }
}

/// Gathers the figures of the arena whose state is `st`.
///
/// # Safety
/// The arena's lock must be held.
pub unsafe fn figures(st: &State) -> ArenaFigures {
    let mut f = ArenaFigures {
        system: st.system_mem,
        max_system: st.max_system_mem,
        fast: [BinFigures::default(); NFASTBINS],
        bins: [BinFigures::default(); NBINS],
        top: st.top_size(),
        // SAFETY: the lock is held, so the segment chain is live and still.
        heaps: unsafe { Segments::from(st.segments) }.count(),
        main: st.is_main(),
    };
    for (index, slot) in f.fast.iter_mut().enumerate() {
        let mut c = st.bins.fast[index];
        while c != 0 {
            let chunk = Chunk(c);
            // SAFETY: fast-bin members are live chunks; the lock keeps them still.
            unsafe {
                slot.add(chunk.size());
                debug_assert_eq!(fast_index(chunk.size()), index);
                c = reveal(chunk.fd_slot(), chunk.fd().0);
            }
        }
    }
    for (index, slot) in f.bins.iter_mut().enumerate().skip(UNSORTED) {
        let bin = st.bins.bin(index);
        // SAFETY: bin members are live free chunks; the lock keeps them still.
        unsafe {
            let mut c = bin.fd();
            while c != bin {
                slot.add(c.size());
                c = c.fd();
            }
        }
    }
    f
}

/// Calls `f` with the figures of each arena in turn (main first), each taken under its lock
/// and handed over after the lock is released.
pub fn each_arena(mut f: impl FnMut(usize, &ArenaFigures)) {
    for (n, a) in arenas::all().enumerate() {
        let g = a.lock();
        // SAFETY: the guard holds the lock.
        let figures = unsafe { figures(&g) };
        drop(g);
        f(n, &figures);
    }
}

/// `mallinfo2()`: every arena added up; `keepcost` is the main arena's top.
pub fn mallinfo2() -> Mallinfo2 {
    let mut m = Mallinfo2 {
        hblks: mmapped::COUNT.load(Relaxed),
        hblkhd: mmapped::BYTES.load(Relaxed),
        ..Mallinfo2::default()
    };
    each_arena(|_, f| {
        let (fast_count, fast_bytes) = f.fast_totals();
        let (rest_count, rest_bytes) = f.rest_totals();
        let free = fast_bytes + rest_bytes;
        m.arena += f.system;
        m.ordblks += rest_count;
        m.smblks += fast_count;
        m.fsmblks += fast_bytes;
        m.uordblks += f.system - free;
        m.fordblks += free;
        if f.main {
            m.keepcost = f.top;
        }
    });
    m
}

/// The process-wide totals the `tidemalloc` command reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes from the kernel: arenas plus mmapped chunks.
    pub system_bytes: usize,
    /// Bytes in use: arena chunks in use plus mmapped chunks.
    pub in_use_bytes: usize,
    /// Bytes in mmapped chunks.
    pub mmapped_bytes: usize,
    /// Live mmapped chunks.
    pub mmapped_chunks: usize,
    /// Most bytes the arenas held from the kernel at once, added over arenas.
    pub max_arena_bytes: usize,
    /// Most mmapped bytes at once.
    pub max_mmapped_bytes: usize,
    /// Arenas in existence.
    pub arenas: usize,
}

/// Current totals.
pub fn totals() -> Totals {
    let mmapped_bytes = mmapped::BYTES.load(Relaxed);
    let mut t = Totals {
        system_bytes: mmapped_bytes,
        in_use_bytes: mmapped_bytes,
        mmapped_bytes,
        mmapped_chunks: mmapped::COUNT.load(Relaxed),
        max_mmapped_bytes: mmapped::MAX_BYTES.load(Relaxed),
        ..Totals::default()
    };
    each_arena(|_, f| {
        t.system_bytes += f.system;
        t.in_use_bytes += f.system - f.free_bytes();
        t.max_arena_bytes += f.max_system;
        t.arenas += 1;
    });
    t
}

/// A line buffer on the stack that hands each finished piece to a sink, so that printing
/// never allocates.
pub struct LineWriter<F: FnMut(&[u8])> {
    buf: [u8; 256],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8])> LineWriter<F> {
    /// A writer passing its bytes to `sink`.
    pub fn new(sink: F) -> Self {
        LineWriter {
            buf: [0; 256],
            len: 0,
            sink,
        }
    }

    /// Hands what is buffered to the sink.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl<F: FnMut(&[u8])> Write for LineWriter<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

impl<F: FnMut(&[u8])> Drop for LineWriter<F> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `malloc_stats()`: glibc's report on stderr (numbers as `%10u`, truncated like glibc's).
pub fn malloc_stats() {
    let mut w = LineWriter::new(|b| os::write_all(2, b));
    let (mut system, mut in_use) = (0, 0);
    each_arena(|n, f| {
        let used = f.system - f.free_bytes();
        system += f.system;
        in_use += used;
        let _ = write_arena_stats(&mut w, n, f.system, used);
    });
    let _ = write_total_stats(&mut w, system, in_use, mmapped::BYTES.load(Relaxed));
}

fn write_arena_stats(w: &mut impl Write, n: usize, system: usize, in_use: usize) -> fmt::Result {
    writeln!(w, "Arena {n}:")?;
    writeln!(w, "system bytes     = {:>10}", system as u32)?;
    writeln!(w, "in use bytes     = {:>10}", in_use as u32)
}

fn write_total_stats(
    w: &mut impl Write,
    system: usize,
    in_use: usize,
    mmapped_bytes: usize,
) -> fmt::Result {
    writeln!(w, "Total (incl. mmap):")?;
    writeln!(
        w,
        "system bytes     = {:>10}",
        (system + mmapped_bytes) as u32
    )?;
    writeln!(
        w,
        "in use bytes     = {:>10}",
        (in_use + mmapped_bytes) as u32
    )?;
    writeln!(
        w,
        "max mmap regions = {:>10}",
        mmapped::MAX_COUNT.load(Relaxed) as u32
    )?;
    writeln!(
        w,
        "max mmap bytes   = {:>10}",
        mmapped::MAX_BYTES.load(Relaxed)
    )
}

/// The process-wide sums that close `malloc_info`'s XML.
#[derive(Default)]
struct InfoTotals {
    fast: (usize, usize),
    rest: (usize, usize),
    system: usize,
    max_system: usize,
}

/// Writes one `<heap>` element of glibc's `malloc_info` XML (version 1) and adds the arena
/// to `totals`.
fn write_info_heap(
    w: &mut impl Write,
    nr: usize,
    f: &ArenaFigures,
    totals: &mut InfoTotals,
) -> fmt::Result {
    writeln!(w, "<heap nr=\"{nr}\">\n<sizes>")?;
    for bin in f.fast.iter().filter(|b| b.count > 0) {
        writeln!(
            w,
            "  <size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
            bin.max - (crate::chunk::ALIGNMENT - 1),
            bin.max,
            bin.total,
            bin.count
        )?;
    }
    for (index, bin) in f.bins.iter().enumerate().filter(|(_, b)| b.count > 0) {
        let tag = if index == UNSORTED {
            "unsorted"
        } else {
            "size"
        };
        writeln!(
            w,
            "  <{tag} from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>",
            bin.min, bin.max, bin.total, bin.count
        )?;
    }
    let (fast_count, fast_bytes) = f.fast_totals();
    let (rest_count, rest_bytes) = f.rest_totals();
    writeln!(w, "</sizes>")?;
    write_sums(w, (fast_count, fast_bytes), (rest_count, rest_bytes))?;
    write_system(w, f.system, f.max_system)?;
    if !f.main {
        writeln!(w, "<aspace type=\"subheaps\" size=\"{}\"/>", f.heaps)?;
    }
    writeln!(w, "</heap>")?;
    totals.fast.0 += fast_count;
    totals.fast.1 += fast_bytes;
    totals.rest.0 += rest_count;
    totals.rest.1 += rest_bytes;
    totals.system += f.system;
    totals.max_system += f.max_system;
    Ok(())
}

fn write_sums(w: &mut impl Write, fast: (usize, usize), rest: (usize, usize)) -> fmt::Result {
    writeln!(
        w,
        "<total type=\"fast\" count=\"{}\" size=\"{}\"/>",
        fast.0, fast.1
    )?;
    writeln!(
        w,
        "<total type=\"rest\" count=\"{}\" size=\"{}\"/>",
        rest.0, rest.1
    )
}

fn write_system(w: &mut impl Write, current: usize, max: usize) -> fmt::Result {
    writeln!(w, "<system type=\"current\" size=\"{current}\"/>")?;
    writeln!(w, "<system type=\"max\" size=\"{max}\"/>")?;
    writeln!(w, "<aspace type=\"total\" size=\"{current}\"/>")?;
    writeln!(w, "<aspace type=\"mprotect\" size=\"{current}\"/>")
}

fn write_info_end(w: &mut impl Write, t: &InfoTotals) -> fmt::Result {
    write_sums(w, t.fast, t.rest)?;
    writeln!(
        w,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        mmapped::COUNT.load(Relaxed),
        mmapped::BYTES.load(Relaxed)
    )?;
    write_system(w, t.system, t.max_system)?;
    writeln!(w, "</malloc>")
}

/// `malloc_info(options, fp)`: EINVAL (returned, as glibc does) for non-zero options.
///
/// # Safety
/// `fp` must be an open stdio stream.
pub unsafe fn malloc_info(options: i32, fp: *mut libc::FILE) -> i32 {
    if options != 0 {
        return libc::EINVAL;
    }
    let mut w = LineWriter::new(|b: &[u8]| {
        // SAFETY: the caller guarantees an open stream; the bytes come from a live slice.
        unsafe { libc::fwrite(b.as_ptr().cast(), 1, b.len(), fp) };
    });
    let mut totals = InfoTotals::default();
    let _ = writeln!(w, "<malloc version=\"1\">");
    each_arena(|nr, f| {
        let _ = write_info_heap(&mut w, nr, f, &mut totals);
    });
    let _ = write_info_end(&mut w, &totals);
    0
}

/// With `TIDEMALLOC_REPORT_FD=N` in the environment, writes one line of totals to fd N
/// (for `tidemalloc run`, at process exit).
pub fn write_exit_report() {
    let Some(fd) = os::getenv(b"TIDEMALLOC_REPORT_FD\0")
        .and_then(crate::options::parse_number)
        .and_then(|fd| i32::try_from(fd).ok())
    else {
        return;
    };
    let t = totals();
    let mut w = LineWriter::new(|b| os::write_all(fd, b));
    let _ = writeln!(
        w,
        "tidemalloc system_bytes={} in_use_bytes={} mmapped_bytes={} mmapped_chunks={} \
         max_arena_bytes={} max_mmapped_bytes={} arenas={} pid={}",
        t.system_bytes,
        t.in_use_bytes,
        t.mmapped_bytes,
        t.mmapped_chunks,
        t.max_arena_bytes,
        t.max_mmapped_bytes,
        t.arenas,
        os::pid()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ArenaFigures {
        let mut f = ArenaFigures {
            system: 135168,
            max_system: 135168,
            fast: [BinFigures::default(); NFASTBINS],
            bins: [BinFigures::default(); NBINS],
            top: 100000,
            heaps: 1,
            main: true,
        };
        f.fast[5].add(112);
        f.bins[UNSORTED].add(400);
        f.bins[UNSORTED].add(2000);
        f.bins[70].add(1500);
        f
    }

    #[test]
    fn info_xml_has_glibcs_shape() {
        let mut out = std::string::String::new();
        let mut totals = InfoTotals::default();
        write_info_heap(&mut out, 0, &sample(), &mut totals).unwrap();
        let mut thread = sample();
        thread.main = false;
        thread.heaps = 2;
        write_info_heap(&mut out, 1, &thread, &mut totals).unwrap();
        write_info_end(&mut out, &totals).unwrap();
        assert!(out.starts_with("<heap nr=\"0\">\n<sizes>\n"));
        assert!(out.contains("</heap>\n<heap nr=\"1\">\n<sizes>\n"));
        assert_eq!(
            out.matches("<aspace type=\"subheaps\" size=\"2\"/>")
                .count(),
            1
        );
        assert!(out.contains("<system type=\"current\" size=\"270336\"/>\n"));
        assert!(out.contains("  <size from=\"97\" to=\"112\" total=\"112\" count=\"1\"/>\n"));
        assert!(out.contains("  <unsorted from=\"400\" to=\"2000\" total=\"2400\" count=\"2\"/>\n"));
        assert!(out.contains("  <size from=\"1500\" to=\"1500\" total=\"1500\" count=\"1\"/>\n"));
        assert!(out.contains("<total type=\"fast\" count=\"1\" size=\"112\"/>"));
        assert!(out.contains("<total type=\"rest\" count=\"4\" size=\"103900\"/>"));
        assert!(out.ends_with("</malloc>\n"));
    }

    #[test]
    fn stats_text_matches_glibc_layout() {
        let mut out = std::string::String::new();
        write_arena_stats(&mut out, 0, 135168, 25552).unwrap();
        write_total_stats(&mut out, 135168, 25552, 0).unwrap();
        let lines: std::vec::Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Arena 0:");
        assert_eq!(lines[1], "system bytes     =     135168");
        assert_eq!(lines[2], "in use bytes     =      25552");
        assert_eq!(lines[3], "Total (incl. mmap):");
    }

    #[test]
    fn line_writer_passes_long_text_through_whole() {
        let mut seen = std::vec::Vec::new();
        {
            let mut w = LineWriter::new(|b: &[u8]| seen.extend_from_slice(b));
            let long = "x".repeat(1000);
            write!(w, "{long}|{}", 42).unwrap();
        }
        assert_eq!(seen.len(), 1003);
        assert!(seen.ends_with(b"|42"));
    }
}
