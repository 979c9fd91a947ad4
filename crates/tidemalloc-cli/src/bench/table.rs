//! The report as Markdown tables, readable in a terminal and pasteable into a README: one
//! for time, one for memory, workloads down and allocators across, each cell with its
//! ratio to the baseline, and a geometric-mean row.

use super::report::{CellEntry, MeanEntry, Report};
use super::workloads::Memory;
use std::fmt::Write;

pub fn render(r: &Report) -> String {
    let s = &r.setup;
    let mut out = format!(
        "tidemalloc bench, {}: {} ({} cores, Linux {}), {} round{}, {} thread{}\n\n",
        s.date,
        s.host.cpu,
        s.host.cores,
        s.host.kernel,
        s.rounds,
        plural(s.rounds),
        s.threads,
        plural(s.threads),
    );
    let _ = writeln!(
        out,
        "Time: median seconds (ratio to {}; lower is better)\n",
        r.baseline
    );
    out.push_str(&table(r, time_cell, |m| m.time_ratio));
    let _ = writeln!(
        out,
        "\nMemory: peak RSS, for surge the RSS after its idle second (ratio to {})\n",
        r.baseline
    );
    out.push_str(&table(r, memory_cell, |m| m.memory_ratio));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn table(
    r: &Report,
    cell: fn(&CellEntry) -> String,
    mean: fn(&MeanEntry) -> Option<f64>,
) -> String {
    let mut rows = vec![std::iter::once("workload".to_string())
        .chain(r.allocators.iter().map(|a| a.name.clone()))
        .collect::<Vec<_>>()];
    for w in &r.workloads {
        let name = match w.memory {
            Memory::PeakRss => w.name.clone(),
            Memory::RssAfterIdle => format!("{} (after idle)", w.name),
        };
        rows.push(
            std::iter::once(name)
                .chain(w.results.iter().map(cell))
                .collect(),
        );
    }
    let total = r.workloads.len();
    rows.push(
        std::iter::once("geometric mean".to_string())
            .chain(r.geometric_mean.iter().map(|m| match mean(m) {
                Some(v) if m.workloads == total => format!("{v:.2}"),
                Some(v) => format!("{v:.2} ({}/{total})", m.workloads),
                None => "-".to_string(),
            }))
            .collect(),
    );
    markdown(&rows)
}

fn time_cell(c: &CellEntry) -> String {
    match (c.median_seconds, c.time_ratio) {
        (Some(s), Some(r)) => format!("{s:.3} s ({r:.2})"),
        (Some(s), None) => format!("{s:.3} s"),
        _ => c.status.clone(),
    }
}

fn memory_cell(c: &CellEntry) -> String {
    match (c.memory_kib, c.memory_ratio) {
        (Some(k), Some(r)) => format!("{} ({r:.2})", size(k)),
        (Some(k), None) => size(k),
        _ => c.status.clone(),
    }
}

/// A size in KiB, in the unit that keeps it readable.
pub fn size(kib: u64) -> String {
    let k = kib as f64;
    if k >= 1024.0 * 1024.0 {
        format!("{:.2} GiB", k / (1024.0 * 1024.0))
    } else if k >= 10.0 * 1024.0 {
        format!("{:.0} MiB", k / 1024.0)
    } else if k >= 1024.0 {
        format!("{:.1} MiB", k / 1024.0)
    } else {
        format!("{kib} KiB")
    }
}

/// Rows as a Markdown table, columns padded to line up; the first row is the header, the
/// first column left-aligned and the others right-aligned.
fn markdown(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(3)
        })
        .collect();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let pad = |row: &Vec<String>| {
        (0..columns)
            .map(|c| {
                let text = row.get(c).map_or("", String::as_str);
                if c == 0 {
                    format!("{text:<w$}", w = width[c])
                } else {
                    format!("{text:>w$}", w = width[c])
                }
            })
            .collect()
    };
    let mut out = String::new();
    if let Some((header, body)) = rows.split_first() {
        out.push_str(&line(pad(header)));
        out.push_str(&line(
            width
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    if c == 0 {
                        "-".repeat(w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect(),
        ));
        for row in body {
            out.push_str(&line(pad(row)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::sample_report;

    /// The rows of the time table and of the memory table.
    fn tables(text: &str) -> (Vec<&str>, Vec<&str>) {
        let (time, memory) = text.split_once("Memory:").unwrap();
        (
            time.lines().filter(|l| l.starts_with('|')).collect(),
            memory.lines().filter(|l| l.starts_with('|')).collect(),
        )
    }

    #[test]
    fn time_table_has_a_row_per_workload_and_the_mean() {
        let text = render(&sample_report());
        let (rows, _) = tables(&text);
        assert_eq!(rows.len(), 2 + 2 + 1, "{text}");
        assert!(
            rows[0].contains("glibc") && rows[0].contains("fast") && rows[0].contains("tidemalloc")
        );
        assert!(rows[1].starts_with("| ---") && rows[1].trim_end().ends_with(": |"));
        assert!(rows[2].contains("2.000 s (1.00)"), "{}", rows[2]);
        assert!(rows[2].contains("0.500 s (0.25)"));
        assert!(rows[2].contains("crashed (SIGSEGV)"));
        assert!(rows[3].contains("surge (after idle)") && rows[3].contains("missing"));
        assert!(rows[4].starts_with("| geometric mean"));
        assert!(rows[4].contains("0.71"), "{}", rows[4]);
        assert!(rows[4].trim_end().ends_with("- |"));
    }

    #[test]
    fn memory_table_shows_sizes_and_ratios() {
        let text = render(&sample_report());
        let (_, rows) = tables(&text);
        assert!(rows[2].contains("1000 KiB (1.00)") && rows[2].contains("500 KiB (0.50)"));
        assert!(rows[3].contains("7.8 MiB (4.00)"), "{}", rows[3]);
        assert!(rows[4].contains("1.41"));
    }

    #[test]
    fn columns_line_up() {
        let text = render(&sample_report());
        let (time, memory) = tables(&text);
        for rows in [time, memory] {
            let widths: Vec<usize> = rows.iter().map(|l| l.chars().count()).collect();
            assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
        }
    }

    #[test]
    fn the_heading_names_the_date_and_the_setup() {
        let text = render(&sample_report());
        assert!(text.starts_with("tidemalloc bench, 2025-01-02T03:04:05+00:00: Test CPU (2 cores"));
        assert!(text.contains("3 rounds, 2 threads"));
    }

    #[test]
    fn a_partial_mean_says_over_how_many_workloads() {
        let mut r = sample_report();
        r.geometric_mean[1].workloads = 1;
        assert!(render(&r).contains("(1/2)"));
    }

    #[test]
    fn sizes_pick_a_readable_unit() {
        assert_eq!(size(512), "512 KiB");
        assert_eq!(size(1536), "1.5 MiB");
        assert_eq!(size(200 * 1024), "200 MiB");
        assert_eq!(size(3 * 1024 * 1024), "3.00 GiB");
    }
}
