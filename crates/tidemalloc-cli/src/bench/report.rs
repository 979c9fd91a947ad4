//! The results of a bench as one document: each workload under each allocator with its
//! median time, memory and ratios to the baseline, and the geometric means of the ratios.
//! The table, the JSON file and the chart are all drawn from it.

use super::allocators::Allocator;
use super::check::{Problem, Sample};
use super::stats::{geometric_mean, median, ratio};
use super::workloads::{Memory, Workload};
use serde::Serialize;

/// What the runs of one workload under one allocator came to.
pub type Outcome = Result<Vec<Sample>, Problem>;

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
}

/// How the bench was run.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Local date and time of the run, RFC 3339.
    pub date: String,
    pub host: Host,
    pub rounds: usize,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub setup: Setup,
    pub baseline: String,
    pub allocators: Vec<AllocatorEntry>,
    pub workloads: Vec<WorkloadEntry>,
    pub geometric_mean: Vec<MeanEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllocatorEntry {
    pub name: String,
    /// The preloaded library; none for the baseline.
    pub library: Option<String>,
    pub missing: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadEntry {
    pub name: String,
    pub title: String,
    pub memory: Memory,
    pub results: Vec<CellEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellEntry {
    pub allocator: String,
    /// "ok", or what went wrong in a few words ("crashed (SIGSEGV)", "missing", ...).
    pub status: String,
    pub detail: Option<String>,
    /// Every round's time, in run order.
    pub seconds: Vec<f64>,
    pub median_seconds: Option<f64>,
    /// The median of the rounds' memory figures.
    pub memory_kib: Option<u64>,
    pub time_ratio: Option<f64>,
    pub memory_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeanEntry {
    pub allocator: String,
    pub time_ratio: Option<f64>,
    pub memory_ratio: Option<f64>,
    /// How many workloads the means are over: those that ran well here and on the baseline.
    pub workloads: usize,
}

impl Report {
    /// `outcomes[w][a]` is workload `w` under allocator `a`; the first allocator is the
    /// baseline that ratios are taken against.
    pub fn build(
        setup: Setup,
        allocators: &[Allocator],
        workloads: &[Workload],
        outcomes: &[Vec<Outcome>],
    ) -> Report {
        let workloads: Vec<WorkloadEntry> = workloads
            .iter()
            .zip(outcomes)
            .map(|(w, row)| workload_entry(w, allocators, row))
            .collect();
        let geometric_mean = allocators
            .iter()
            .enumerate()
            .map(|(a, alloc)| mean_entry(&alloc.name, workloads.iter().map(|w| &w.results[a])))
            .collect();
        Report {
            setup,
            baseline: allocators
                .first()
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            allocators: allocators
                .iter()
                .map(|a| AllocatorEntry {
                    name: a.name.clone(),
                    library: a.preload.as_ref().map(|p| p.display().to_string()),
                    missing: a.missing.clone(),
                })
                .collect(),
            workloads,
            geometric_mean,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data")
    }
}

fn workload_entry(w: &Workload, allocators: &[Allocator], row: &[Outcome]) -> WorkloadEntry {
    let mut results: Vec<CellEntry> = allocators
        .iter()
        .zip(row)
        .map(|(a, outcome)| cell_entry(&a.name, outcome))
        .collect();
    let (base_time, base_memory) = results
        .first()
        .map(|b| (b.median_seconds, b.memory_kib))
        .unwrap_or_default();
    for cell in &mut results {
        cell.time_ratio = cell
            .median_seconds
            .zip(base_time)
            .and_then(|(v, b)| ratio(v, b));
        cell.memory_ratio = cell
            .memory_kib
            .zip(base_memory)
            .and_then(|(v, b)| ratio(v as f64, b as f64));
    }
    WorkloadEntry {
        name: w.name.to_string(),
        title: w.title.to_string(),
        memory: w.memory,
        results,
    }
}

fn cell_entry(allocator: &str, outcome: &Outcome) -> CellEntry {
    let (status, detail, samples) = match outcome {
        Ok(samples) => ("ok".to_string(), None, samples.as_slice()),
        Err(p) => (p.short(), p.detail().map(str::to_string), &[][..]),
    };
    let seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
    let memory: Vec<f64> = samples.iter().map(|s| s.memory_kib as f64).collect();
    CellEntry {
        allocator: allocator.to_string(),
        status,
        detail,
        median_seconds: median(&seconds),
        seconds,
        memory_kib: median(&memory).map(|m| m.round() as u64),
        time_ratio: None,
        memory_ratio: None,
    }
}

fn mean_entry<'a>(allocator: &str, cells: impl Iterator<Item = &'a CellEntry>) -> MeanEntry {
    let (time, memory): (Vec<f64>, Vec<f64>) = cells
        .filter_map(|c| c.time_ratio.zip(c.memory_ratio))
        .unzip();
    MeanEntry {
        allocator: allocator.to_string(),
        time_ratio: geometric_mean(&time),
        memory_ratio: geometric_mean(&memory),
        workloads: time.len(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::workloads::ALL;
    use std::path::PathBuf;

    pub fn setup() -> Setup {
        Setup {
            date: "2025-01-02T03:04:05+00:00".into(),
            host: Host {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.1.0".into(),
            },
            rounds: 3,
            threads: 2,
        }
    }

    fn alloc(name: &str, missing: bool) -> Allocator {
        Allocator {
            name: name.into(),
            preload: (name != "glibc").then(|| PathBuf::from(format!("/lib/lib{name}.so"))),
            missing: missing.then(|| "not built".to_string()),
        }
    }

    fn samples(secs: &[f64], kib: u64) -> Outcome {
        Ok(secs
            .iter()
            .map(|&seconds| Sample {
                seconds,
                memory_kib: kib,
            })
            .collect())
    }

    /// glibc, a faster and leaner peer, and a crashing tidemalloc, on churn and surge.
    pub fn sample_report() -> Report {
        let allocators = [
            alloc("glibc", false),
            alloc("fast", false),
            alloc("tidemalloc", true),
        ];
        let by_name = |name: &str| *ALL.iter().find(|w| w.name == name).unwrap();
        let workloads = [by_name("churn"), by_name("surge")];
        let outcomes = vec![
            vec![
                samples(&[1.0, 3.0, 2.0], 1000),
                samples(&[0.5, 0.4, 0.6], 500),
                Err(Problem::Crashed("SIGSEGV".into())),
            ],
            vec![
                samples(&[1.0], 2000),
                samples(&[2.0], 8000),
                Err(Problem::Missing("not built".into())),
            ],
        ];
        Report::build(setup(), &allocators, &workloads, &outcomes)
    }

    #[test]
    fn medians_and_ratios_are_against_the_first_allocator() {
        let r = sample_report();
        let churn = &r.workloads[0].results;
        assert_eq!(churn[0].median_seconds, Some(2.0));
        assert_eq!(churn[0].time_ratio, Some(1.0));
        assert_eq!(churn[1].median_seconds, Some(0.5));
        assert_eq!(churn[1].time_ratio, Some(0.25));
        assert_eq!(churn[1].memory_ratio, Some(0.5));
        assert_eq!(churn[1].seconds, vec![0.5, 0.4, 0.6]);
    }

    #[test]
    fn a_problem_has_no_time_and_no_ratio() {
        let r = sample_report();
        let crashed = &r.workloads[0].results[2];
        assert_eq!(crashed.status, "crashed (SIGSEGV)");
        assert!(crashed.median_seconds.is_none() && crashed.time_ratio.is_none());
        assert!(crashed.seconds.is_empty());
    }

    #[test]
    fn geometric_mean_is_over_the_workloads_that_ran() {
        let r = sample_report();
        let fast = &r.geometric_mean[1];
        assert_eq!(fast.workloads, 2);
        assert!((fast.time_ratio.unwrap() - (0.25f64 * 2.0).sqrt()).abs() < 1e-12);
        assert!((fast.memory_ratio.unwrap() - (0.5f64 * 4.0).sqrt()).abs() < 1e-12);
        let tide = &r.geometric_mean[2];
        assert_eq!(tide.workloads, 0);
        assert!(tide.time_ratio.is_none());
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v: serde_json::Value = serde_json::from_str(&sample_report().to_json()).unwrap();
        assert_eq!(v["date"], "2025-01-02T03:04:05+00:00");
        assert_eq!(v["host"]["cores"], 2);
        assert_eq!(v["rounds"], 3);
        assert_eq!(v["threads"], 2);
        assert_eq!(v["baseline"], "glibc");
        assert_eq!(v["allocators"][0]["library"], serde_json::Value::Null);
        assert_eq!(v["allocators"][1]["library"], "/lib/libfast.so");
        assert_eq!(v["allocators"][2]["missing"], "not built");
        let surge = &v["workloads"][1];
        assert_eq!(surge["name"], "surge");
        assert_eq!(surge["memory"], "rss_after_idle");
        assert_eq!(surge["results"][1]["memory_kib"], 8000);
        assert_eq!(surge["results"][1]["memory_ratio"], 4.0);
        assert_eq!(surge["results"][2]["status"], "missing");
        assert_eq!(v["workloads"][0]["memory"], "peak_rss");
        assert_eq!(v["workloads"][0]["results"][0]["median_seconds"], 2.0);
        assert_eq!(v["geometric_mean"][1]["allocator"], "fast");
        assert_eq!(v["geometric_mean"][1]["workloads"], 2);
    }
}
