//! Real programs on the preloaded library: python3 running part of its own test suite with
//! PYTHONMALLOC=malloc, git, gcc and sqlite3. Each test also checks that the library really
//! served their allocations: its exit report (TIDEMALLOC_REPORT_FD) must come from at least
//! one process with memory of its own, and the malloc python calls must be the library's.

mod common;

use common::{library, preload, run as run_command, Output, DEFAULT_TIMEOUT};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// Python's regression tests the allocator must pass (a few minutes at most).
const PYTHON_TESTS: [&str; 7] = [
    "test_dict",
    "test_list",
    "test_set",
    "test_unicode",
    "test_re",
    "test_json",
    "test_gc",
];

/// A working directory for a real program, and beside it the files the library's exit
/// reports go to (outside the working directory, so git does not see them).
struct Scratch {
    dir: TempDir,
    runs: std::cell::Cell<usize>,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("real-program-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory under CARGO_TARGET_TMPDIR");
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Scratch {
            dir,
            runs: std::cell::Cell::new(0),
        }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Runs `program args` in the working directory on the library. The exit reports go to
    /// fd 3, which a shell opens on a file of its own before it execs the program: stderr
    /// belongs to the program (python's tests compare it), and std opens every file
    /// close-on-exec.
    fn run(&self, program: impl AsRef<OsStr>, args: &[&str], env: &[(&str, &str)]) -> Reported {
        let run = self.runs.get();
        self.runs.set(run + 1);
        let report = self.dir.path().join(format!("report-{run}"));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"exec 3>>"$0" && exec "$@""#)
            .arg(&report)
            .arg(program)
            .args(args)
            .current_dir(self.work())
            .env("TIDEMALLOC_REPORT_FD", "3")
            .envs(env.iter().copied());
        preload(&mut cmd);
        let output = run_command(&mut cmd, Duration::from_secs(600));
        let reports = std::fs::read_to_string(&report).unwrap_or_default();
        Reported { output, reports }
    }
}

struct Reported {
    output: Output,
    reports: String,
}

impl Reported {
    /// Insists on exit status 0, and that at least one process of the run reported memory
    /// it got from the kernel through the library (nothing to check on plain glibc).
    fn assert_success_on_tidemalloc(&self, what: &str) -> &Output {
        let out = &self.output;
        out.assert_success(what);
        if library().is_none() {
            return out;
        }
        let lines: Vec<HashMap<&str, u64>> = self
            .reports
            .lines()
            .filter_map(|l| l.strip_prefix("tidemalloc "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                    .collect()
            })
            .collect();
        let served = lines.iter().any(|r| {
            r.get("max_arena_bytes").copied().unwrap_or(0)
                + r.get("max_mmapped_bytes").copied().unwrap_or(0)
                > 0
        });
        assert!(
            served,
            "{what}: no process reported memory from libtidemalloc.so; reports:\n{}\n{out}",
            self.reports
        );
        out
    }
}

/// The first python3 that has the regression tests `suites`: $TIDEMALLOC_TEST_PYTHON,
/// `python3` on PATH, /usr/bin/python3 (Debian ships the tests in libpython3.11-testsuite).
/// Returns the interpreter itself, not a wrapper such as a pyenv shim.
fn python_with_tests(suites: &[&str]) -> PathBuf {
    let candidates: Vec<String> = std::env::var("TIDEMALLOC_TEST_PYTHON")
        .into_iter()
        .chain(["python3".to_string(), "/usr/bin/python3".to_string()])
        .collect();
    let probe: String = suites
        .iter()
        .map(|suite| format!("import test.{suite}\n"))
        .chain(["import sys\nprint(sys.executable)\n".to_string()])
        .collect();
    for candidate in &candidates {
        let found = Command::new(candidate).args(["-c", &probe]).output();
        if let Ok(out) = found {
            let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !exe.is_empty() {
                return PathBuf::from(exe);
            }
        }
    }
    panic!(
        "none of {candidates:?} has Python's tests {suites:?}; on Debian install \
         libpython3.11-testsuite, or name an interpreter with TIDEMALLOC_TEST_PYTHON"
    );
}

/// The malloc python calls (through its own PLT when the interpreter is not PIE, so
/// dladdr would name the interpreter) is the library's: a 64 MiB block it returns shows up
/// in the library's own mallinfo2, and the marker is in the process's global scope.
#[test]
fn python_allocates_through_the_library() {
    let python = python_with_tests(&PYTHON_TESTS);
    let lib = library().expect("this test needs the library preloaded");
    let script = r#"
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
library = ctypes.CDLL(sys.argv[1])
library.mallinfo2.restype = MallInfo2
process = ctypes.CDLL(None)
process.malloc.restype = ctypes.c_void_p
process.free.argtypes = [ctypes.c_void_p]
before = library.mallinfo2().hblkhd
block = process.malloc(64 << 20)
after = library.mallinfo2().hblkhd
process.free(block)
print("hblkhd_growth=%d" % (after - before))
print("marker_in_process=%d" % hasattr(process, "tidemalloc_version"))
"#;
    let run = Scratch::new().run(
        &python,
        &["-c", script, lib.to_str().unwrap()],
        &[("PYTHONMALLOC", "malloc")],
    );
    let out = run.assert_success_on_tidemalloc("python3 malloc through ctypes");
    let facts = out.facts();
    facts.expect(&[("marker_in_process", 1)]);
    let growth = facts.int("hblkhd_growth");
    assert!(
        growth >= 64 * 1024 * 1024,
        "python's malloc(64 MiB) did not reach the library's mmapped chunks ({growth}):\n{out}"
    );
}

/// Runs Python's test runner as `python3 -m test` does, with Python's own SIGINT handler. A
/// shell without job control starts a background job with SIGINT ignored, and python keeps
/// it ignored, as do the runner's workers it starts: test_threading's `interrupt_main`
/// tests then get no KeyboardInterrupt, whatever the allocator. Installed here, the handler
/// is reset to the default at each worker's exec, where python installs its own again.
const RUN_PYTHON_TESTS: &str = "import runpy, signal
signal.signal(signal.SIGINT, signal.default_int_handler)
runpy.run_module('test', run_name='__main__', alter_sys=True)
";

/// python3 -m test on dicts, lists, sets, str, re, json and gc, every object on malloc.
#[test]
fn python_regression_tests_pass() {
    let python = python_with_tests(&PYTHON_TESTS);
    // -W: a failing test's own output is shown, so that a failure can be told apart from
    // the host's timing.
    let args: Vec<&str> = ["-c", RUN_PYTHON_TESTS, "-W"]
        .into_iter()
        .chain(PYTHON_TESTS)
        .collect();
    let run = Scratch::new().run(&python, &args, &[("PYTHONMALLOC", "malloc")]);
    let out = run.assert_success_on_tidemalloc("python3 -m test");
    assert_python_tests_succeeded(out);
}

/// python3 -m test on threads, locks, queues and executors (thread pools, and process pools
/// that fork while their threads run), every object on malloc. Run two suites at a time.
/// Left out: the executors' pools that start fresh interpreters (forkserver, spawn), which
/// add nothing on threads or fork; `test_timeout` and `test_map_timeout`, which wait out
/// 6-second timeouts and allocate next to nothing; and `test_import_from_another_thread`,
/// which fails on plain glibc too wherever site-packages imports `threading` at startup
/// (a .pth file in this machine's pyenv python does).
#[test]
fn python_thread_tests_pass() {
    let suites = ["test_concurrent_futures", "test_threading", "test_queue"];
    let python = python_with_tests(&suites);
    let args: Vec<&str> = ["-c", RUN_PYTHON_TESTS, "-j2", "-W"]
        .into_iter()
        .chain(suites)
        .chain(["-m", "test_threading", "-m", "test_queue"])
        .chain(["-m", "ThreadPool*", "-m", "ProcessPoolFork[!s]*"])
        .chain(["-i", "test_timeout", "-i", "test_map_timeout"])
        .chain(["-i", "test_import_from_another_thread"])
        .collect();
    let run = Scratch::new().run(&python, &args, &[("PYTHONMALLOC", "malloc")]);
    let out = run.assert_success_on_tidemalloc("python3 -m test (threads)");
    assert_python_tests_succeeded(out);
}

/// Python's test runner reported success ("Result: SUCCESS" in 3.11.7, "Tests result:
/// SUCCESS" in Debian's 3.11.2).
fn assert_python_tests_succeeded(out: &Output) {
    assert!(
        out.stdout
            .lines()
            .any(|l| l.to_ascii_lowercase().contains("result: success")),
        "python's test runner did not report SUCCESS:\n{out}"
    );
}

/// git init, add and commit of a few hundred files, a second commit, a repack and fsck,
/// every git process on the library.
#[test]
fn git_commits_and_checks_a_repository() {
    let scratch = Scratch::new();
    let repo = scratch.work();
    let home = repo.to_str().unwrap().to_string();
    let git = |args: &[&str]| -> Output {
        let env = [
            ("HOME", home.as_str()),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_AUTHOR_NAME", "tidemalloc"),
            ("GIT_AUTHOR_EMAIL", "tests@tidemalloc.invalid"),
            ("GIT_COMMITTER_NAME", "tidemalloc"),
            ("GIT_COMMITTER_EMAIL", "tests@tidemalloc.invalid"),
        ];
        let run = scratch.run("git", args, &env);
        run.assert_success_on_tidemalloc(&format!("git {}", args.join(" ")));
        run.output
    };
    git(&["init", "-q", "-b", "main"]);
    let write_files = |generation: usize| {
        for i in 0..300 {
            let body: String = (0..50)
                .map(|line| format!("file {i} line {line} generation {generation}\n"))
                .collect();
            std::fs::write(repo.join(format!("file-{i:03}.txt")), body).unwrap();
        }
    };
    write_files(1);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "first"]);
    write_files(2);
    git(&["commit", "-q", "-a", "-m", "second"]);
    git(&["repack", "-q", "-a", "-d"]);
    git(&["fsck", "--strict", "--no-progress"]);
    let log = git(&["log", "--format=%s"]);
    assert_eq!(log.stdout.lines().collect::<Vec<_>>(), ["second", "first"]);
    let diff = git(&["diff", "--shortstat", "HEAD~1", "HEAD"]);
    assert!(
        diff.stdout
            .contains("300 files changed, 15000 insertions(+), 15000 deletions(-)"),
        "{diff}"
    );
    assert!(git(&["status", "--porcelain"]).stdout.trim().is_empty());
}

/// gcc (driver, cc1, as, ld all on the library) compiles the thread stress program, and
/// the program it built runs correctly.
#[test]
fn gcc_compiles_a_working_program() {
    let scratch = Scratch::new();
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    let source = source_dir.join("threads.c");
    let binary = scratch.work().join("threads");
    let args = [
        "-O2",
        "-g",
        "-Wall",
        "-pthread",
        "-I",
        source_dir.to_str().unwrap(),
        "-o",
        binary.to_str().unwrap(),
        source.to_str().unwrap(),
    ];
    scratch
        .run("gcc", &args, &[])
        .assert_success_on_tidemalloc("gcc");
    let built = run_command(Command::new(&binary).args(["2", "20000"]), DEFAULT_TIMEOUT);
    built.assert_success("the program gcc built");
    built.facts().expect(&[
        ("ops", 40_000),
        ("corrupted_blocks", 0),
        ("failed_allocations", 0),
    ]);
}

/// sqlite3 inserts 100k rows with an index and adds them up.
#[test]
fn sqlite3_inserts_and_sums_100k_rows() {
    let sql = "CREATE TABLE t(x INTEGER PRIMARY KEY, s TEXT);
        CREATE INDEX t_s ON t(s);
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000)
        INSERT INTO t SELECT x, printf('row-%06d', x) FROM n;
        SELECT count(*), sum(x), count(DISTINCT s), sum(length(s)) FROM t;";
    let run = Scratch::new().run("sqlite3", &["-batch", "rows.db", sql], &[]);
    let out = run.assert_success_on_tidemalloc("sqlite3");
    assert_eq!(
        out.stdout.trim(),
        "100000|5000050000|100000|1000000",
        "{out}"
    );
}
