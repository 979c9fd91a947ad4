//! The suite: one classic allocation pattern per workload, each a program of bench/ or a
//! real program, each checking its own results.

use serde::Serialize;

/// What a workload's memory column measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Memory {
    /// The peak resident set, from wait4's rusage.
    PeakRss,
    /// The resident set the workload read from /proc/self/status after its idle second and
    /// printed as `rss_after_idle_kib=N`.
    RssAfterIdle,
}

/// How a workload is built and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// A C file of bench/, compiled with `cc -O2 -pthread`; arguments: the thread count.
    C(&'static str),
    /// A Rust file of bench/, compiled with `rustc -O`; arguments: the thread count.
    Rust(&'static str),
    /// A Python file of bench/, run by the system python3 with PYTHONMALLOC=malloc.
    Python(&'static str),
    /// An SQL file of bench/, fed to the sqlite3 shell on an in-memory database.
    Sqlite(&'static str),
    /// gcc -O2 on a generated C file; the compiled program's output is the result.
    Gcc,
}

impl Program {
    /// Our own programs exit with status 3 when they find wrong data.
    pub fn reports_wrong_data_by_exit_status(self) -> bool {
        matches!(self, Program::C(_) | Program::Rust(_) | Program::Python(_))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub title: &'static str,
    pub program: Program,
    pub memory: Memory,
}

/// The exit status with which our programs say they found wrong data.
pub const WRONG_DATA_EXIT: i32 = 3;

/// The line with which the surge workload reports its figure.
pub const RSS_AFTER_IDLE_KEY: &str = "rss_after_idle_kib=";

const fn workload(name: &'static str, title: &'static str, program: Program) -> Workload {
    Workload {
        name,
        title,
        program,
        memory: Memory::PeakRss,
    }
}

pub const ALL: [Workload; 12] = [
    workload(
        "churn",
        "thread-local churn: random slots replaced, 16 B-32 KiB, objects touched at both ends",
        Program::C("churn.c"),
    ),
    workload(
        "churn-fill",
        "the same churn, every object written whole and read back",
        Program::C("churn_fill.c"),
    ),
    workload(
        "prodcons",
        "producer/consumer: allocated in one thread, freed in another",
        Program::C("prodcons.c"),
    ),
    workload(
        "false-sharing",
        "small objects written hard by many threads (cache-scratch, cache-thrash)",
        Program::C("false_sharing.c"),
    ),
    workload(
        "thread-churn",
        "thousands of short-lived threads freeing what others made",
        Program::C("thread_churn.c"),
    ),
    workload(
        "big-blocks",
        "blocks of 64 KiB-4 MiB replaced at random",
        Program::C("big_blocks.c"),
    ),
    workload(
        "realloc",
        "realloc growth of string and vector builders",
        Program::C("realloc_growth.c"),
    ),
    Workload {
        name: "surge",
        title: "seed 002's surge: burst, most freed, a few kept, idle 1 s",
        program: Program::C("surge.c"),
        memory: Memory::RssAfterIdle,
    },
    workload(
        "rust-collections",
        "a Rust program heavy on std collections",
        Program::Rust("collections.rs"),
    ),
    workload(
        "python",
        "python3 (PYTHONMALLOC=malloc) on a pure-Python benchmark",
        Program::Python("pybench.py"),
    ),
    workload(
        "sqlite",
        "sqlite3: bulk insert, index, queries in memory",
        Program::Sqlite("sqlite_bulk.sql"),
    ),
    workload("gcc", "gcc -O2 compiling a generated C file", Program::Gcc),
];

/// The workloads whose name contains one of `filters` (all of them for no filter).
pub fn select(filters: &[String]) -> Vec<Workload> {
    ALL.iter()
        .filter(|w| filters.is_empty() || filters.iter().any(|f| w.name.contains(f.as_str())))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn every_source_file_exists_in_bench() {
        let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench");
        for w in ALL {
            let file = match w.program {
                Program::C(f) | Program::Rust(f) | Program::Python(f) | Program::Sqlite(f) => f,
                Program::Gcc => continue,
            };
            assert!(bench.join(file).is_file(), "{} needs bench/{file}", w.name);
        }
    }

    #[test]
    fn filter_picks_by_substring_and_empty_takes_all() {
        assert_eq!(select(&[]).len(), ALL.len());
        let picked: Vec<_> = select(&["churn".into()]).iter().map(|w| w.name).collect();
        assert_eq!(picked, ["churn", "churn-fill", "thread-churn"]);
        assert!(select(&["no-such-workload".into()]).is_empty());
    }
}
