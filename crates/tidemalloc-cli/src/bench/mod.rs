//! `tidemalloc bench`: a suite of workloads run on every allocator of this machine in one
//! go, each workload as its own process per allocator, the allocators taking turns round
//! after round; median times and memory as ratios to glibc, as a table, JSON and an SVG
//! chart.

mod allocators;
mod check;
mod gcc_source;
mod host;
mod prepare;
mod report;
mod runner;
mod stats;
mod svg;
mod table;
mod workloads;

use allocators::Allocator;
use check::{Problem, Sample};
use indicatif::{ProgressBar, ProgressStyle};
use prepare::{Dirs, Prepared};
use report::{Outcome, Report, Setup};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use workloads::Workload;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// One round per workload and allocator instead of three.
    #[arg(long)]
    quick: bool,
    /// Rounds per workload and allocator; the median time is reported.
    #[arg(long, value_name = "N", conflicts_with = "quick")]
    rounds: Option<usize>,
    /// Threads in the threaded workloads [default: the number of cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Run only the workloads whose name contains one of these (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    filter: Vec<String>,
    /// Also compare the allocator in this shared library, preloaded (repeatable).
    #[arg(long = "lib", value_name = "NAME=PATH", value_parser = allocators::parse_extra)]
    libs: Vec<(String, PathBuf)>,
    /// Where to write the JSON results [default: target/bench/bench-DATE.json].
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Where to write the SVG chart [default: the JSON file's path, ending in .svg].
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Seconds after which a run is killed and reported as timed out.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// List the workloads and allocators, and run nothing.
    #[arg(long)]
    list: bool,
}

pub fn main(args: BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidemalloc bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn bench(args: BenchArgs) -> Result<(), String> {
    let rounds = if args.quick {
        1
    } else {
        args.rounds.unwrap_or(3).max(1)
    };
    let threads = args.threads.unwrap_or_else(host::cores).max(1);
    let workloads = workloads::select(&args.filter);
    if workloads.is_empty() {
        return Err(format!(
            "no workload matches {:?}; the workloads are: {}",
            args.filter,
            workloads::ALL.map(|w| w.name).join(", ")
        ));
    }
    let allocators = allocators::discover(crate::library::find(), &args.libs);
    if args.list {
        list(&workloads, &allocators);
        return Ok(());
    }
    for a in allocators.iter().filter(|a| !a.is_present()) {
        eprintln!(
            "{}: missing, skipped ({})",
            a.name,
            a.missing.as_deref().unwrap_or("")
        );
    }
    let root = workspace();
    let out_dir = root.join("target/bench");
    let dirs = Dirs {
        sources: root.join("bench"),
        bin: out_dir.join("bin"),
        work: out_dir.join("work"),
    };
    let scratch = out_dir.join("run");
    for dir in [&dirs.bin, &dirs.work, &scratch] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let date = chrono::Local::now();
    let setup = Setup {
        date: date.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        host: host::detect(),
        rounds,
        threads,
    };
    let progress = progress_bar(&workloads, &allocators, rounds);
    let session = Session {
        allocators: &allocators,
        rounds,
        timeout: Duration::from_secs(args.timeout),
        scratch: &scratch,
        progress: &progress,
    };
    let outcomes: Vec<Vec<Outcome>> = workloads
        .iter()
        .map(|w| {
            progress.set_message(format!("building {}", w.name));
            let prepared = prepare::prepare(w, &dirs, threads);
            session.run_workload(w, prepared)
        })
        .collect();
    progress.finish_and_clear();
    let report = Report::build(setup, &allocators, &workloads, &outcomes);
    println!("{}", table::render(&report));
    print_problems(&report);
    let json = args
        .json
        .unwrap_or_else(|| out_dir.join(format!("bench-{}.json", date.format("%Y%m%d-%H%M%S"))));
    let svg = args.svg.unwrap_or_else(|| json.with_extension("svg"));
    std::fs::write(&json, report.to_json())
        .map_err(|e| format!("writing {}: {e}", json.display()))?;
    svg::render(&report, &svg)?;
    println!("results: {}\nchart:   {}", json.display(), svg.display());
    Ok(())
}

fn list(workloads: &[Workload], allocators: &[Allocator]) {
    println!("workloads:");
    for w in workloads {
        println!("  {:<18} {}", w.name, w.title);
    }
    println!("allocators:");
    for a in allocators {
        let place = match (&a.preload, &a.missing) {
            (_, Some(why)) => format!("missing: {why}"),
            (Some(lib), None) => lib.display().to_string(),
            (None, None) => "the C library's own malloc".to_string(),
        };
        println!("  {:<18} {place}", a.name);
    }
}

fn progress_bar(workloads: &[Workload], allocators: &[Allocator], rounds: usize) -> ProgressBar {
    let present = allocators.iter().filter(|a| a.is_present()).count();
    let bar = ProgressBar::new((workloads.len() * present * rounds) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Problems are shown in the table in a few words; their details are worth a line each.
fn print_problems(report: &Report) {
    for w in &report.workloads {
        for c in w.results.iter().filter(|c| c.status != "ok") {
            if let Some(detail) = c.detail.as_deref().filter(|d| !d.is_empty()) {
                if c.status != "missing" {
                    println!("{} on {}: {}: {detail}", w.name, c.allocator, c.status);
                }
            }
        }
    }
}

struct Session<'a> {
    allocators: &'a [Allocator],
    rounds: usize,
    timeout: Duration,
    scratch: &'a Path,
    progress: &'a ProgressBar,
}

impl Session<'_> {
    /// All rounds of one workload: in each round every allocator once, in turn, so that
    /// a drift of the machine (heat, other load) touches all of them alike. An allocator
    /// that fails a round is not run again on this workload.
    fn run_workload(&self, w: &Workload, prepared: Result<Prepared, String>) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = self
            .allocators
            .iter()
            .map(|a| match (&a.missing, &prepared) {
                (Some(why), _) => Err(Problem::Missing(why.clone())),
                (None, Err(why)) => Err(Problem::Unavailable(why.clone())),
                (None, Ok(_)) => Ok(Vec::new()),
            })
            .collect();
        let Ok(prepared) = prepared else {
            self.progress.inc((self.rounds * self.present()) as u64);
            return outcomes;
        };
        let mut reference = None;
        for round in 1..=self.rounds {
            for (alloc, outcome) in self.allocators.iter().zip(outcomes.iter_mut()) {
                if alloc.missing.is_some() {
                    continue;
                }
                if let Ok(samples) = outcome {
                    self.progress.set_message(format!(
                        "{} on {} (round {round}/{})",
                        w.name, alloc.name, self.rounds
                    ));
                    match self.run_once(w, &prepared, alloc, &mut reference) {
                        Ok(sample) => samples.push(sample),
                        Err(problem) => *outcome = Err(problem),
                    }
                }
                self.progress.inc(1);
            }
        }
        outcomes
    }

    fn present(&self) -> usize {
        self.allocators.iter().filter(|a| a.is_present()).count()
    }

    fn run_once(
        &self,
        w: &Workload,
        prepared: &Prepared,
        alloc: &Allocator,
        reference: &mut Option<String>,
    ) -> Result<Sample, Problem> {
        if let Some(product) = &prepared.produces {
            let _ = std::fs::remove_file(product);
        }
        let finished = runner::run(
            &prepared.invocation,
            alloc.preload.as_deref(),
            self.timeout,
            self.scratch,
        )
        .map_err(|e| Problem::Unavailable(format!("could not start: {e}")))?;
        let result = match &prepared.produces {
            Some(product) => prepare::output_of(product),
            None => Ok(check::result_text(&finished.stdout)),
        };
        check::judge(w, &finished, result, self.timeout.as_secs(), reference)
    }
}
