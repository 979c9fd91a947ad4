//! The few lines `tidemalloc run` prints when the program has exited (S5.2): how it ended,
//! what it cost, what the allocator held, and which mappings were the allocator's.

use crate::bytes::Bytes;
use crate::smaps::Breakdown;
use crate::supervise::Outcome;
use nix::sys::signal::Signal;
use std::fmt::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

/// The exit code this command ends with: the program's, or 128 + the signal that ended
/// it, as a shell reports it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        (None, None) => 1,
    }
}

/// How the program ended, in words: `exited with status 0`, `killed by SIGSEGV (core dumped)`.
pub fn ending(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().into());
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            format!("killed by {name}{core}: exit code {}", exit_code(status))
        }
        (None, None) => format!("ended oddly ({status})"),
    }
}

/// The whole summary, one line per fact.
pub fn render(program: &str, library: &Path, out: &Outcome) -> String {
    let mut s = String::new();
    let u = &out.usage;
    let _ = writeln!(s, "── tidemalloc: {program} {} ──", ending(out.status));
    let _ = writeln!(s, "  library        {}", library.display());
    let _ = writeln!(s, "  wall time      {:.3} s", out.wall.as_secs_f64());
    let _ = writeln!(
        s,
        "  cpu time       {:.3} s user, {:.3} s system",
        u.user.as_secs_f64(),
        u.system.as_secs_f64()
    );
    let _ = writeln!(s, "  peak RSS       {} (ru_maxrss)", Bytes(u.max_rss_bytes));
    let _ = writeln!(
        s,
        "  page faults    {} minor, {} major",
        u.minor_faults, u.major_faults
    );
    match &out.reports.program {
        Some(r) => {
            let _ = writeln!(
                s,
                "  allocator      system {}, in use {}, mmapped {} in {} chunk{}",
                Bytes(r.system_bytes),
                Bytes(r.in_use_bytes),
                Bytes(r.mmapped_bytes),
                r.mmapped_chunks,
                if r.mmapped_chunks == 1 { "" } else { "s" }
            );
            let _ = writeln!(
                s,
                "                 at most: arenas {}, mmapped {}",
                Bytes(r.max_arena_bytes),
                Bytes(r.max_mmapped_bytes)
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  allocator      no report: the program did not run on tidemalloc \
                 (static binary or exec'd away?)"
            );
        }
    }
    let others = out.reports.count - usize::from(out.reports.program.is_some());
    if others > 0 {
        let _ = writeln!(
            s,
            "                 ({others} more report{} from processes it started, not shown)",
            if others == 1 { "" } else { "s" }
        );
    }
    match &out.smaps {
        Some(b) => mappings(&mut s, b, out.samples),
        None => {
            let _ = writeln!(
                s,
                "  mappings       no /proc/PID/smaps sample: the program ended before the first one"
            );
        }
    }
    s
}

fn mappings(s: &mut String, b: &Breakdown, samples: usize) {
    let which = if samples == 1 {
        "the only sample".to_string()
    } else {
        format!("the last of {samples} samples")
    };
    let _ = writeln!(
        s,
        "  mappings       /proc/PID/smaps at {:.3} s, {which}:",
        b.at.as_secs_f64()
    );
    let row =
        |s: &mut String, label: &str, count: String, size: String, rss: String, dirty: String| {
            let _ = writeln!(
                s,
                "    {label:<50} {count:>5} {size:>10} {rss:>10} {dirty:>14}"
            );
        };
    row(
        s,
        "",
        "maps".into(),
        "Size".into(),
        "Rss".into(),
        "Private_Dirty".into(),
    );
    let bytes = |n: u64| Bytes(n).to_string();
    for (group, t) in b.groups.iter().filter(|(_, t)| t.mappings > 0) {
        row(
            s,
            group.label(),
            t.mappings.to_string(),
            bytes(t.size),
            bytes(t.rss),
            bytes(t.private_dirty),
        );
    }
    let t = b.total();
    row(
        s,
        "all",
        t.mappings.to_string(),
        bytes(t.size),
        bytes(t.rss),
        bytes(t.private_dirty),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AllocatorReport, Reports};
    use crate::smaps::{Group, Totals};
    use crate::supervise::Usage;
    use std::time::Duration;

    fn outcome(raw_status: i32, report: Option<AllocatorReport>) -> Outcome {
        let count = usize::from(report.is_some()) + 2;
        let totals = |mappings, rss| Totals {
            mappings,
            size: rss * 2,
            rss,
            private_dirty: rss / 2,
        };
        let mut groups = Group::ALL.map(|g| (g, Totals::default()));
        groups[Group::MainHeap as usize].1 = totals(1, 135_168);
        groups[Group::Files as usize].1 = totals(20, 4 << 20);
        Outcome {
            status: ExitStatus::from_raw(raw_status),
            wall: Duration::from_millis(41),
            usage: Usage {
                max_rss_bytes: 9 << 20,
                minor_faults: 1234,
                major_faults: 0,
                user: Duration::from_millis(30),
                system: Duration::from_millis(10),
            },
            reports: Reports {
                program: report,
                count,
                unreadable: 0,
            },
            smaps: Some(Breakdown {
                at: Duration::from_millis(38),
                groups,
            }),
            samples: 7,
        }
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGSEGV)), 128 + 11);
        assert_eq!(ending(ExitStatus::from_raw(0)), "exited with status 0");
        assert_eq!(
            ending(ExitStatus::from_raw(libc::SIGKILL)),
            "killed by SIGKILL: exit code 137"
        );
        assert_eq!(
            ending(ExitStatus::from_raw(libc::SIGABRT | 0x80)),
            "killed by SIGABRT (core dumped): exit code 134"
        );
    }

    #[test]
    fn a_summary_names_cost_allocator_and_mappings() {
        let report = AllocatorReport {
            system_bytes: 135_168,
            in_use_bytes: 30 * 1024,
            mmapped_bytes: 208_896,
            mmapped_chunks: 1,
            max_arena_bytes: 270_336,
            max_mmapped_bytes: 417_792,
            pid: None,
        };
        let text = render(
            "python3",
            Path::new("/t/libtidemalloc.so"),
            &outcome(0, Some(report)),
        );
        assert!(text.contains("python3 exited with status 0"), "{text}");
        assert!(
            text.contains("library        /t/libtidemalloc.so\n"),
            "{text}"
        );
        assert!(text.contains("wall time      0.041 s"), "{text}");
        assert!(text.contains("peak RSS       9 MiB"), "{text}");
        assert!(text.contains("1234 minor, 0 major"), "{text}");
        assert!(
            text.contains("system 132 KiB, in use 30 KiB, mmapped 204 KiB in 1 chunk\n"),
            "{text}"
        );
        assert!(
            text.contains("at most: arenas 264 KiB, mmapped 408 KiB"),
            "{text}"
        );
        assert!(
            text.contains("2 more reports from processes it started"),
            "{text}"
        );
        assert!(text.contains("at 0.038 s, the last of 7 samples"), "{text}");
        let heap = text.lines().find(|l| l.contains("[heap]")).unwrap();
        assert!(
            heap.contains("264 KiB") && heap.contains("132 KiB") && heap.contains("66 KiB"),
            "{heap}"
        );
        assert!(
            !text.contains("thread heaps"),
            "empty groups are left out: {text}"
        );
        let all = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some("all"))
            .unwrap();
        assert!(all.contains(" 21 "), "{all}");
    }

    #[test]
    fn a_program_off_tidemalloc_is_told_so() {
        let text = render(
            "static-prog",
            Path::new("/t/libtidemalloc.so"),
            &outcome(libc::SIGKILL, None),
        );
        assert!(text.contains("static-prog killed by SIGKILL"), "{text}");
        assert!(
            text.contains("no report: the program did not run on tidemalloc"),
            "{text}"
        );
    }
}
