//! What the allocator did at one step, worked out from what changed (break, mappings,
//! mallinfo2) rather than asserted: the same words under glibc or tidemalloc when they
//! behave alike, and different words where they do not.

use super::maps::{Kind, Maps};
use super::snapshot::Snapshot;
use crate::bytes::{Bytes, Delta};
use core::fmt::{self, Write};

/// glibc's default M_MMAP_THRESHOLD, M_TRIM_THRESHOLD and M_TOP_PAD.
const DEFAULT_THRESHOLD: usize = 128 * 1024;
const TOP_PAD: usize = 128 * 1024;

/// A block the walkthrough allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub name: char,
    pub ptr: usize,
    pub size: usize,
    /// The chunk's size: what uordblks grew by, or hblkhd for a chunk of its own.
    pub chunk: usize,
    pub mmapped: bool,
    pub live: bool,
}

impl Block {
    /// Room not yet holding a block.
    pub const UNUSED: Block = Block {
        name: ' ',
        ptr: 0,
        size: 0,
        chunk: 0,
        mmapped: false,
        live: false,
    };
}

/// One step seen from outside: the state before and after it, and the blocks so far.
#[derive(Clone, Copy)]
pub struct Change<'a> {
    pub before: &'a Snapshot,
    pub after: &'a Snapshot,
    pub blocks: &'a [Block],
}

/// The thresholds glibc's rules predict (S1.3), to tell why a large free top stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub mmap: usize,
    pub trim: usize,
    /// The block whose free raised them.
    pub raised_by: Option<char>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            mmap: DEFAULT_THRESHOLD,
            trim: DEFAULT_THRESHOLD,
            raised_by: None,
        }
    }
}

fn b(n: usize) -> Bytes {
    Bytes(n as u64)
}

fn delta(after: usize, before: usize) -> Delta {
    Delta(after as i64 - before as i64)
}

/// The mappings that appeared and disappeared between two moments; a `[heap]` that grew or
/// shrank is told as one change.
pub fn map_changes(w: &mut impl Write, before: &Maps, after: &Maps) -> fmt::Result {
    let mut any = false;
    match (before.heap(), after.heap()) {
        (Some(h0), Some(h1)) if h0.start == h1.start && h0.end != h1.end => {
            writeln!(
                w,
                "   maps      [heap] {:x}-{:x} now ends at {:x} ({})",
                h0.start,
                h0.end,
                h1.end,
                delta(h1.end, h0.end)
            )?;
            any = true;
        }
        _ => {}
    }
    let resized_heap = |m: &super::maps::Mapping| {
        m.kind == Kind::Heap && before.heap().map(|h| h.start) == after.heap().map(|h| h.start)
    };
    for m in before.iter().filter(|m| !after.has(m) && !resized_heap(m)) {
        writeln!(w, "   maps      - {m}")?;
        any = true;
    }
    for m in after.iter().filter(|m| !before.has(m) && !resized_heap(m)) {
        writeln!(w, "   maps      + {m}")?;
        any = true;
    }
    if !any {
        writeln!(w, "   maps      no change")?;
    }
    Ok(())
}

/// Explains `ptr = malloc(size)` and returns the block as the walkthrough tracks it.
pub fn malloc(
    w: &mut impl Write,
    name: char,
    size: usize,
    ptr: usize,
    step: &Change,
    page: usize,
) -> Result<Block, fmt::Error> {
    let Change {
        before,
        after,
        blocks,
    } = *step;
    let (i0, i1) = (&before.info, &after.info);
    let mut block = Block {
        name,
        ptr,
        size,
        chunk: i1.uordblks.saturating_sub(i0.uordblks),
        mmapped: false,
        live: ptr != 0,
    };
    let Some(m) = after.maps.containing(ptr) else {
        writeln!(w, "   ⇒ malloc returned {ptr:#x}, which lies in no mapping")?;
        return Ok(block);
    };
    match m.kind {
        Kind::Heap => {
            writeln!(w, "   lies in   {m}")?;
            let (top0, top1) = (i0.keepcost, i1.keepcost);
            if after.brk > before.brk {
                write!(
                    w,
                    "   ⇒ the top chunk had only {} free, less than the {} chunk {name} needs: \
                     the break moved up {}, and {} is left over in the top chunk",
                    b(top0),
                    b(block.chunk),
                    b(after.brk - before.brk),
                    b(top1)
                )?;
                if (TOP_PAD..TOP_PAD + page).contains(&top1) {
                    write!(
                        w,
                        " (M_TOP_PAD: it asks the kernel for 128 KiB more than it needs)"
                    )?;
                }
                writeln!(w)?;
            } else if top0 >= top1 + block.chunk && after.brk == before.brk {
                writeln!(
                    w,
                    "   ⇒ carved from the top chunk ({} → {}); the break stays",
                    b(top0),
                    b(top1)
                )?;
            } else if top1 < top0 && i0.fordblks == i1.fordblks + block.chunk {
                writeln!(
                    w,
                    "   ⇒ carved from the top chunk, which first took in {} of free chunks lying \
                     next to it (ptmalloc2 consolidates the fast bins before serving a large \
                     request): the top went {} → {}, ordblks {} → {}; the break stays",
                    b(top1 + block.chunk - top0),
                    b(top0),
                    b(top1),
                    i0.ordblks,
                    i1.ordblks
                )?;
            } else if top0 == top1 && i0.fordblks >= i1.fordblks + block.chunk {
                writeln!(
                    w,
                    "   ⇒ a free chunk in the bins fits: reused, with neither the break nor the top chunk moving"
                )?;
            } else {
                writeln!(w, "   ⇒ taken from the main heap; the break stays")?;
            }
            if let Some(prev) = blocks
                .iter()
                .find(|p| p.live && !p.mmapped && p.ptr + p.chunk == ptr)
            {
                writeln!(
                    w,
                    "     {name}'s chunk starts where {}'s ends: {name} = {} + {} ({} chunk)",
                    prev.name,
                    prev.name,
                    prev.chunk,
                    b(prev.chunk)
                )?;
            }
        }
        Kind::Anonymous if i1.hblks == i0.hblks + 1 => {
            block.mmapped = true;
            block.chunk = i1.hblkhd.saturating_sub(i0.hblkhd);
            let start = ptr - ptr % page;
            writeln!(
                w,
                "   lies in   its own mmap {start:x}-{:x} ({}); the pointer is page + {}",
                start + block.chunk,
                b(block.chunk),
                ptr % page
            )?;
            if m.len() > block.chunk {
                writeln!(
                    w,
                    "             which the kernel joined to the anonymous mapping beside it: {m}"
                )?;
            }
            write!(
                w,
                "   ⇒ {} is at least M_MMAP_THRESHOLD (128 KiB unless raised): not from the heap \
                 but an mmap of its own, {}",
                b(size),
                b(block.chunk)
            )?;
            let header = block.chunk.saturating_sub(size);
            if block.chunk.is_multiple_of(page) && (16..16 + page).contains(&header) {
                write!(
                    w,
                    ": the request and its chunk header rounded up to whole pages"
                )?;
            }
            writeln!(w, "; the break stays")?;
        }
        _ => {
            writeln!(w, "   lies in   {m}, not [heap]")?;
            writeln!(
                w,
                "   ⇒ the main arena is not on the brk heap here (S1.4: where brk fails it uses mmap)"
            )?;
        }
    }
    Ok(block)
}

/// Explains `free(block.ptr)`; `thresholds` follows the dynamic threshold (S1.3).
pub fn free(
    w: &mut impl Write,
    block: &Block,
    step: &Change,
    thresholds: &mut Thresholds,
) -> fmt::Result {
    let Change {
        before,
        after,
        blocks,
    } = *step;
    let (i0, i1) = (&before.info, &after.info);
    let name = block.name;
    if block.mmapped {
        if after.maps.containing(block.ptr).is_none() && i1.hblks + 1 == i0.hblks {
            writeln!(
                w,
                "   ⇒ {name}'s own mapping is unmapped at once: hblkhd {}, its range is gone \
                 from /proc/self/maps",
                delta(i1.hblkhd, i0.hblkhd)
            )?;
        } else {
            writeln!(
                w,
                "   ⇒ {name}'s mapping is still there: hblks {} → {}",
                i0.hblks, i1.hblks
            )?;
        }
        if block.chunk > thresholds.mmap && block.chunk <= 32 << 20 {
            *thresholds = Thresholds {
                mmap: block.chunk,
                trim: 2 * block.chunk,
                raised_by: Some(name),
            };
            writeln!(
                w,
                "     and, by glibc's dynamic threshold (S1.3), M_MMAP_THRESHOLD rises to this \
                 chunk's {} and M_TRIM_THRESHOLD to twice that, {}",
                b(block.chunk),
                b(2 * block.chunk)
            )?;
        }
        return Ok(());
    }
    let trimmed = before.brk.saturating_sub(after.brk);
    // The top as it was after merging, before any trim gave part of it back.
    let top = i1.keepcost + trimmed;
    let into_top = top.saturating_sub(i0.keepcost);
    if into_top < block.chunk {
        write!(
            w,
            "   ⇒ {name}'s {} chunk stays in the heap as a free chunk: fordblks {}, ordblks {} → {}",
            b(block.chunk),
            delta(i1.fordblks, i0.fordblks),
            i0.ordblks,
            i1.ordblks
        )?;
        if i1.ordblks == i0.ordblks + 1 {
            write!(w, " (glibc files it in the unsorted bin first)")?;
        }
        writeln!(w, "; nothing goes back to the kernel")?;
        let above = blocks
            .iter()
            .find(|a| a.live && !a.mmapped && block.ptr + block.chunk == a.ptr);
        match (after.brk == before.brk, above) {
            (true, Some(a)) => writeln!(
                w,
                "     the break stays: {}, just above {name}, is still in use",
                a.name
            )?,
            (true, None) => writeln!(w, "     the break stays")?,
            (false, _) => writeln!(w, "     the break moved {}", delta(after.brk, before.brk))?,
        }
        return Ok(());
    }
    let below = into_top - block.chunk;
    let freed_below = blocks
        .iter()
        .find(|f| !f.live && !f.mmapped && f.ptr + f.chunk == block.ptr && f.chunk == below);
    match freed_below {
        _ if below == 0 => writeln!(
            w,
            "   ⇒ {name}'s chunk borders the top chunk and merges into it: the top is now {}",
            b(top)
        )?,
        Some(f) => writeln!(
            w,
            "   ⇒ {name} merges with the free {} just below it into one {} chunk ({} + {}), \
             which borders the top chunk and merges into it: the top is now {}",
            f.name,
            b(f.chunk + block.chunk),
            b(f.chunk),
            b(block.chunk),
            b(top)
        )?,
        None => writeln!(
            w,
            "   ⇒ {name} merges with {} of free memory below it and with the top chunk: the top is now {}",
            b(below),
            b(top)
        )?,
    }
    if trimmed > 0 {
        writeln!(
            w,
            "     the top passed M_TRIM_THRESHOLD ({}): trimmed, the break moved down {} and the top keeps {}",
            b(thresholds.trim),
            b(trimmed),
            b(i1.keepcost)
        )?;
    } else if top <= thresholds.trim {
        match thresholds.raised_by {
            Some(r) if top > DEFAULT_THRESHOLD => writeln!(
                w,
                "     the break stays although the top ({}) is above the default M_TRIM_THRESHOLD \
                 (128 KiB): freeing {r} raised it to {}",
                b(top),
                b(thresholds.trim)
            )?,
            _ => writeln!(
                w,
                "     the top ({}) is within M_TRIM_THRESHOLD ({}): the break stays",
                b(top),
                b(thresholds.trim)
            )?,
        }
    } else {
        writeln!(
            w,
            "     the break stays although the top ({}) is above M_TRIM_THRESHOLD ({}): \
             glibc would trim here",
            b(top),
            b(thresholds.trim)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::Info;
    use super::*;

    const PAGE: usize = 4096;
    const HEAP_START: usize = 0x5555_5555_0000;

    /// A process with a [heap] ending at `brk` and, if given, one anonymous mapping.
    fn snapshot(brk: usize, anon: Option<(usize, usize)>, info: Info) -> Snapshot {
        let mut text = String::new();
        text += &format!("{HEAP_START:x}-{brk:x} rw-p 00000000 00:00 0 [heap]\n");
        if let Some((s, e)) = anon {
            text += &format!("{s:x}-{e:x} rw-p 00000000 00:00 0\n");
        }
        Snapshot {
            brk,
            maps: Maps::parse(text.as_bytes()),
            info,
        }
    }

    fn info(uord: usize, ford: usize, top: usize, ord: usize, hblks: usize, hblkhd: usize) -> Info {
        Info {
            arena: uord + ford,
            ordblks: ord,
            hblks,
            hblkhd,
            uordblks: uord,
            fordblks: ford,
            keepcost: top,
        }
    }

    #[test]
    fn a_small_request_is_carved_from_the_top() {
        let brk = HEAP_START + 0x21000;
        let before = snapshot(brk, None, info(1000, 134_168, 134_168, 1, 0, 0));
        let after = snapshot(brk, None, info(1000 + 30_736, 103_432, 103_432, 1, 0, 0));
        let mut text = String::new();
        let a = malloc(
            &mut text,
            'A',
            30 << 10,
            HEAP_START + 1000 + 16,
            &Change {
                before: &before,
                after: &after,
                blocks: &[],
            },
            PAGE,
        )
        .unwrap();
        assert_eq!((a.chunk, a.mmapped, a.live), (30_736, false, true));
        assert!(
            text.contains("lies in   555555550000-555555571000 rw-p 132 KiB [heap]"),
            "{text}"
        );
        assert!(text.contains("carved from the top chunk"), "{text}");
        assert!(!text.contains("break moved"), "{text}");
        let mut text = String::new();
        let b2 = malloc(
            &mut text,
            'B',
            40 << 10,
            a.ptr + a.chunk,
            &Change {
                before: &after,
                after: &after_b(&after),
                blocks: &[a],
            },
            PAGE,
        )
        .unwrap();
        assert!(
            text.contains("B's chunk starts where A's ends: B = A + 30736"),
            "{text}"
        );
        assert_eq!(b2.chunk, 40_976);
    }

    #[test]
    fn free_chunks_beside_the_top_join_it_before_a_large_request() {
        let brk = HEAP_START + 0x21000;
        let before = snapshot(brk, None, info(624, 134_544, 124_432, 9, 0, 0));
        let after = snapshot(brk, None, info(31_360, 103_808, 103_232, 3, 0, 0));
        let mut text = String::new();
        malloc(
            &mut text,
            'A',
            30 << 10,
            HEAP_START + 0x4c0,
            &Change {
                before: &before,
                after: &after,
                blocks: &[],
            },
            PAGE,
        )
        .unwrap();
        assert!(
            text.contains("first took in 9.3 KiB of free chunks"),
            "{text}"
        );
        assert!(text.contains("ordblks 9 → 3; the break stays"), "{text}");
    }

    fn after_b(s: &Snapshot) -> Snapshot {
        let i = s.info;
        snapshot(
            s.brk,
            None,
            info(
                i.uordblks + 40_976,
                i.fordblks - 40_976,
                i.keepcost - 40_976,
                1,
                0,
                0,
            ),
        )
    }

    #[test]
    fn growing_the_break_names_the_top_pad() {
        let before = snapshot(
            HEAP_START + 0x21000,
            None,
            info(71_000, 20_000, 20_000, 1, 0, 0),
        );
        // 100 KiB + 16 needs 80.0 KiB more than the top has; with M_TOP_PAD and rounding to
        // pages the break moves 212 KiB.
        let after_brk = HEAP_START + 0x21000 + 0x35000;
        let top = 20_000 + 0x35000 - 102_416;
        let after = snapshot(after_brk, None, info(71_000 + 102_416, top, top, 1, 0, 0));
        let mut text = String::new();
        malloc(
            &mut text,
            'D',
            100 << 10,
            HEAP_START + 71_000,
            &Change {
                before: &before,
                after: &after,
                blocks: &[],
            },
            PAGE,
        )
        .unwrap();
        assert!(
            text.contains("the break moved up 212 KiB, and 131.5 KiB is left over"),
            "{text}"
        );
        assert!(text.contains("M_TOP_PAD"), "{text}");
        let mut changes = String::new();
        map_changes(&mut changes, &before.maps, &after.maps).unwrap();
        assert_eq!(
            changes,
            "   maps      [heap] 555555550000-555555571000 now ends at 5555555a6000 (+212 KiB)\n"
        );
    }

    #[test]
    fn a_large_request_gets_its_own_mapping_and_loses_it_at_free() {
        let brk = HEAP_START + 0x21000;
        let map = (0x7fff_f7a0_0000, 0x7fff_f7a3_3000);
        let before = snapshot(brk, None, info(71_000, 64_000, 64_000, 1, 0, 0));
        let after = snapshot(brk, Some(map), info(71_000, 64_000, 64_000, 1, 1, 0x33000));
        let mut text = String::new();
        let c = malloc(
            &mut text,
            'C',
            200 << 10,
            map.0 + 16,
            &Change {
                before: &before,
                after: &after,
                blocks: &[],
            },
            PAGE,
        )
        .unwrap();
        assert!(c.mmapped && c.chunk == 0x33000);
        assert!(
            text.contains(
                "its own mmap 7ffff7a00000-7ffff7a33000 (204 KiB); the pointer is page + 16"
            ),
            "{text}"
        );
        assert!(!text.contains("joined"), "{text}");
        assert!(
            text.contains("an mmap of its own, 204 KiB: the request and its chunk header"),
            "{text}"
        );
        let mut changes = String::new();
        map_changes(&mut changes, &before.maps, &after.maps).unwrap();
        assert_eq!(
            changes,
            "   maps      + 7ffff7a00000-7ffff7a33000 rw-p 204 KiB anonymous\n"
        );

        let mut text = String::new();
        let mut th = Thresholds::default();
        free(
            &mut text,
            &c,
            &Change {
                before: &after,
                after: &before,
                blocks: &[c],
            },
            &mut th,
        )
        .unwrap();
        assert!(text.contains("unmapped at once: hblkhd -204 KiB"), "{text}");
        assert_eq!(
            (th.mmap, th.trim, th.raised_by),
            (0x33000, 0x66000, Some('C'))
        );
    }

    #[test]
    fn a_free_below_a_live_block_stays_in_a_bin() {
        let brk = HEAP_START + 0x47000;
        let bb = Block {
            name: 'B',
            ptr: HEAP_START + 0x8000,
            size: 40 << 10,
            chunk: 40_976,
            mmapped: false,
            live: true,
        };
        let d = Block {
            name: 'D',
            ptr: bb.ptr + bb.chunk,
            size: 100 << 10,
            chunk: 102_416,
            mmapped: false,
            live: true,
        };
        let before = snapshot(brk, None, info(200_000, 30_000, 30_000, 1, 0, 0));
        let after = snapshot(brk, None, info(200_000 - 40_976, 70_976, 30_000, 2, 0, 0));
        let mut text = String::new();
        free(
            &mut text,
            &bb,
            &Change {
                before: &before,
                after: &after,
                blocks: &[bb, d],
            },
            &mut Thresholds::default(),
        )
        .unwrap();
        assert!(
            text.contains("stays in the heap as a free chunk: fordblks +40.0 KiB, ordblks 1 → 2"),
            "{text}"
        );
        assert!(
            text.contains("the break stays: D, just above B, is still in use"),
            "{text}"
        );
    }

    #[test]
    fn freeing_next_to_a_free_block_and_the_top_merges_all_three() {
        let brk = HEAP_START + 0x47000;
        let freed_b = Block {
            name: 'B',
            ptr: HEAP_START + 0x8000,
            size: 40 << 10,
            chunk: 40_976,
            mmapped: false,
            live: false,
        };
        let d = Block {
            name: 'D',
            ptr: freed_b.ptr + freed_b.chunk,
            size: 100 << 10,
            chunk: 102_416,
            mmapped: false,
            live: true,
        };
        let before = snapshot(brk, None, info(160_000, 70_976, 30_000, 2, 0, 0));
        let top = 30_000 + 40_976 + 102_416;
        let after = snapshot(brk, None, info(160_000 - 102_416, top, top, 1, 0, 0));
        let raised = Thresholds {
            mmap: 0x33000,
            trim: 0x66000,
            raised_by: Some('C'),
        };
        let mut text = String::new();
        free(
            &mut text,
            &d,
            &Change {
                before: &before,
                after: &after,
                blocks: &[freed_b, d],
            },
            &mut raised.clone(),
        )
        .unwrap();
        assert!(
            text.contains("D merges with the free B just below it into one 140.0 KiB chunk"),
            "{text}"
        );
        assert!(text.contains("freeing C raised it to 408 KiB"), "{text}");

        // With the default threshold the same top is trimmed; here the break went down.
        let trimmed = snapshot(
            brk - 0x20000,
            None,
            info(160_000 - 102_416, top - 0x20000, top - 0x20000, 1, 0, 0),
        );
        let mut text = String::new();
        free(
            &mut text,
            &d,
            &Change {
                before: &before,
                after: &trimmed,
                blocks: &[freed_b, d],
            },
            &mut Thresholds::default(),
        )
        .unwrap();
        assert!(
            text.contains("trimmed, the break moved down 128 KiB"),
            "{text}"
        );

        // A top above the threshold that stays is called out, not explained away.
        let mut text = String::new();
        free(
            &mut text,
            &d,
            &Change {
                before: &before,
                after: &after,
                blocks: &[freed_b, d],
            },
            &mut Thresholds::default(),
        )
        .unwrap();
        assert!(text.contains("glibc would trim here"), "{text}");
    }
}
