//! The report as a picture: for time and for memory, one group of bars per workload (and
//! one for the geometric mean), one bar per allocator, each the ratio to the baseline on a
//! log scale, so that twice as slow and twice as fast look alike. A run that did not give
//! a result is marked with a cross on the baseline.

use super::report::{CellEntry, MeanEntry, Report};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 960;
const GROUP_FILL: f64 = 0.8;

/// Colours by allocator name, so a chart reads the same from one run to the next. The
/// baseline has none: it is the line at 1.
fn colour(name: &str, index: usize) -> RGBColor {
    match name {
        "jemalloc" => RGBColor(31, 119, 180),
        "tcmalloc" => RGBColor(255, 127, 14),
        "mimalloc" => RGBColor(44, 160, 44),
        "tidemalloc" => RGBColor(214, 39, 40),
        _ => {
            let (r, g, b) = Palette99::pick(index).to_rgba().rgb();
            RGBColor(r, g, b)
        }
    }
}

struct Panel<'a> {
    caption: String,
    cell: fn(&CellEntry) -> Option<f64>,
    mean: fn(&MeanEntry) -> Option<f64>,
    report: &'a Report,
}

impl Panel<'_> {
    /// Ratios by group (workloads, then the geometric mean) and allocator.
    fn values(&self) -> Vec<Vec<Option<f64>>> {
        let r = self.report;
        r.workloads
            .iter()
            .map(|w| w.results.iter().map(self.cell).collect())
            .chain(std::iter::once(
                r.geometric_mean.iter().map(self.mean).collect(),
            ))
            .collect()
    }
}

pub fn render(report: &Report, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    draw(report, &root).map_err(|e| format!("drawing {}: {e}", path.display()))?;
    root.present()
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn draw<DB: DrawingBackend>(
    report: &Report,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(56);
    let s = &report.setup;
    title.draw(&Text::new(
        format!(
            "tidemalloc bench: ratio to {} (log scale, lower is better)",
            report.baseline
        ),
        (20, 8),
        ("sans-serif", 24).into_font(),
    ))?;
    title.draw(&Text::new(
        format!(
            "{} · {} · {} threads · {} round(s), median",
            s.date, s.host.cpu, s.threads, s.rounds
        ),
        (20, 36),
        ("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    draw_legend(report, &title)?;
    let panels = body.split_evenly((2, 1));
    let specs = [
        Panel {
            caption: "time (median seconds)".into(),
            cell: |c| c.time_ratio,
            mean: |m| m.time_ratio,
            report,
        },
        Panel {
            caption: "memory (peak RSS; surge: RSS after idle)".into(),
            cell: |c| c.memory_ratio,
            mean: |m| m.memory_ratio,
            report,
        },
    ];
    for (area, spec) in panels.iter().zip(&specs) {
        draw_panel(area, spec)?;
    }
    Ok(())
}

/// One swatch per allocator, right-aligned in the heading; the baseline is the line at 1.
fn draw_legend<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 14).into_font();
    let entries: Vec<(String, RGBColor)> = report
        .allocators
        .iter()
        .enumerate()
        .skip(1)
        .map(|(a, alloc)| {
            let name = match &alloc.missing {
                Some(_) => format!("{} (missing)", alloc.name),
                None => alloc.name.clone(),
            };
            (name, colour(&alloc.name, a))
        })
        .collect();
    let width: i32 = entries
        .iter()
        .map(|(n, _)| 30 + 8 * n.chars().count() as i32)
        .sum();
    let mut x = WIDTH as i32 - width - 20;
    for (name, c) in entries {
        area.draw(&Rectangle::new([(x, 12), (x + 14, 26)], c.filled()))?;
        area.draw(&Text::new(name.clone(), (x + 20, 12), font.clone()))?;
        x += 30 + 8 * name.chars().count() as i32;
    }
    area.draw(&Text::new(
        format!("line: {} = 1;  × = no result", report.baseline),
        (WIDTH as i32 - 260, 36),
        ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
    ))
}

/// Labels for 1, 2 and 5 times a power of ten; the other grid lines stay unlabelled.
fn tick_label(v: &f64) -> String {
    let decade = 10f64.powf(v.log10().floor());
    let leading = v / decade;
    if [1.0, 2.0, 5.0].iter().any(|d| (leading - d).abs() < 0.01) {
        format!("{}", (leading.round() * decade * 1000.0).round() / 1000.0)
    } else {
        String::new()
    }
}

/// The y range: every ratio, the baseline, and at least a factor of two either way, widened
/// to 1, 2 or 5 times a power of ten so that both ends carry a label.
fn y_range(values: &[Vec<Option<f64>>]) -> (f64, f64) {
    let all = values.iter().flatten().flatten().copied();
    let (lo, hi) = all.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (
        nice(lo.min(0.5), |steps, v| steps.rev().find(|s| *s <= v)),
        nice(hi.max(2.0), |mut steps, v| steps.find(|s| *s >= v)),
    )
}

/// The 1-2-5 step of `v`'s decade that `pick` chooses among those around `v`.
fn nice(v: f64, pick: fn(std::vec::IntoIter<f64>, f64) -> Option<f64>) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let steps: Vec<f64> = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * decade).collect();
    pick(steps.into_iter(), v).unwrap_or(v)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let report = panel.report;
    let values = panel.values();
    let groups: Vec<String> = report
        .workloads
        .iter()
        .map(|w| w.name.clone())
        .chain(std::iter::once("geometric mean".to_string()))
        .collect();
    let (lo, hi) = y_range(&values);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..groups.len() as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(40)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .y_desc("ratio")
        .y_label_formatter(&tick_label)
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (groups.len() as f64, 1.0)],
        BLACK.stroke_width(1),
    )))?;
    // The baseline is the line at 1; every other allocator gets a bar in each group.
    let n = report.allocators.len().saturating_sub(1).max(1) as f64;
    let bar = GROUP_FILL / n;
    for (a, alloc) in report.allocators.iter().enumerate().skip(1) {
        let style = colour(&alloc.name, a).filled();
        let x0 = |g: usize| g as f64 + (1.0 - GROUP_FILL) / 2.0 + (a - 1) as f64 * bar;
        let bars = values.iter().enumerate().filter_map(|(g, row)| {
            row[a].map(|v| Rectangle::new([(x0(g), 1.0), (x0(g) + bar * 0.9, v)], style))
        });
        chart.draw_series(bars)?;
        let crosses = values
            .iter()
            .enumerate()
            .filter(|(_, row)| row[a].is_none())
            .map(|(g, _)| {
                Text::new(
                    "×",
                    (x0(g) + bar * 0.2, 1.0),
                    ("sans-serif", 14)
                        .into_font()
                        .color(&colour(&alloc.name, a)),
                )
            });
        chart.draw_series(crosses)?;
    }
    let label_style = ("sans-serif", 13).into_font();
    for (g, name) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, lo));
        // Neighbouring names would overlap on one line: every other one goes lower.
        let dy = if g % 2 == 0 { 6 } else { 22 };
        let width = name.chars().count() as i32 * 7;
        area.draw(&Text::new(
            name.clone(),
            (
                x - width / 2 - area.get_base_pixel().0,
                y + dy - area.get_base_pixel().1,
            ),
            label_style.clone(),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::sample_report;

    #[test]
    fn the_chart_names_every_workload_and_allocator() {
        let path =
            std::env::temp_dir().join(format!("tidemalloc-bench-{}.svg", std::process::id()));
        render(&sample_report(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "churn",
            "surge",
            "geometric mean",
            "glibc",
            "fast",
            "tidemalloc (missing)",
        ] {
            assert!(svg.contains(text), "no {text} in the chart");
        }
    }

    #[test]
    fn bars_are_drawn_only_for_ratios() {
        let r = sample_report();
        let path =
            std::env::temp_dir().join(format!("tidemalloc-bench-bars-{}.svg", std::process::id()));
        render(&r, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // tidemalloc has no result anywhere: a cross for each group in each panel.
        assert_eq!(svg.lines().filter(|l| l.trim() == "×").count(), 2 * 3);
    }

    #[test]
    fn ticks_are_labelled_at_one_two_and_five() {
        assert_eq!(tick_label(&1.0), "1");
        assert_eq!(tick_label(&0.2), "0.2");
        assert_eq!(tick_label(&5.000001), "5");
        assert_eq!(tick_label(&20.0), "20");
        assert_eq!(tick_label(&0.3), "");
        assert_eq!(tick_label(&7.0), "");
    }

    #[test]
    fn y_range_spans_the_ratios_and_a_factor_of_two_at_labelled_steps() {
        let (lo, hi) = y_range(&[vec![Some(1.0)]]);
        assert!(
            (lo - 0.5).abs() < 1e-9 && (hi - 2.0).abs() < 1e-9,
            "{lo} {hi}"
        );
        let (lo, hi) = y_range(&[vec![Some(0.08), None], vec![Some(7.0)]]);
        assert!(
            (lo - 0.05).abs() < 1e-9 && (hi - 10.0).abs() < 1e-9,
            "{lo} {hi}"
        );
    }
}
