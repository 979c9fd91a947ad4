//! Shared by the integration tests: find the library, compile the C programs of `c/`,
//! run programs with the library preloaded, and read the `key=value` facts they print.
//!
//! `TIDEMALLOC_LIB` names the library to test (default: `<target>/release/libtidemalloc.so`).
//! `TIDEMALLOC_TESTS_NO_PRELOAD=1` runs everything on plain glibc instead, to check that a
//! test observes real ptmalloc2 behaviour; checks that the library is really the one
//! serving malloc are then expected to fail.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::Duration;
use tempfile::TempDir;
use wait_timeout::ChildExt;

/// How long a program may run before the test calls it hung and kills it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The shared library to preload, or `None` when the tests run on plain glibc.
pub fn library() -> Option<PathBuf> {
    if std::env::var_os("TIDEMALLOC_TESTS_NO_PRELOAD").is_some_and(|v| v == "1") {
        return None;
    }
    let path = match std::env::var_os("TIDEMALLOC_LIB") {
        Some(p) => PathBuf::from(p),
        // CARGO_TARGET_TMPDIR is <target>/tmp, wherever the target directory is.
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent")
            .join("release/libtidemalloc.so"),
    };
    match path.canonicalize() {
        Ok(p) if p.is_file() => Some(p),
        _ => panic!(
            "{} not found: build it first with `cargo build --release --workspace`, or name \
             the library with TIDEMALLOC_LIB (TIDEMALLOC_TESTS_NO_PRELOAD=1 runs on glibc)",
            path.display()
        ),
    }
}

/// Puts the library in front of libc for `cmd` (and everything it starts).
pub fn preload(cmd: &mut Command) -> &mut Command {
    if let Some(lib) = library() {
        cmd.env("LD_PRELOAD", lib);
    }
    cmd
}

/// A C program from `c/`, compiled for this test into a directory of its own.
pub struct CProgram {
    name: String,
    binary: PathBuf,
    _dir: TempDir,
}

impl CProgram {
    /// Compiles `c/<name>.c` with `cc`; panics with the compiler's output if that fails.
    pub fn build(name: &str) -> CProgram {
        let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
        let source = source_dir.join(format!("{name}.c"));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory under CARGO_TARGET_TMPDIR");
        let binary = dir.path().join(name);
        compile(&source, &binary, &source_dir);
        CProgram {
            name: name.to_string(),
            binary,
            _dir: dir,
        }
    }

    /// A command for the program with the library preloaded.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args);
        preload(&mut cmd);
        cmd
    }

    /// Runs the program with the library preloaded and insists that it exits with 0.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = run(&mut self.command(args), DEFAULT_TIMEOUT);
        out.assert_success(&format!("{} {}", self.name, args.join(" ")));
        out
    }
}

/// `cc` with every warning an error, so the C side stays as clean as the Rust side.
/// `-fno-builtin` keeps the compiler from folding or removing malloc/free calls, which
/// are exactly what the programs observe.
pub fn compile(source: &Path, binary: &Path, include: &Path) {
    let out = Command::new("cc")
        .args([
            "-std=gnu11",
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fno-builtin",
        ])
        .arg("-pthread")
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(binary)
        .arg(source)
        .arg("-ldl")
        .output()
        .expect("`cc` must be installed to build the test programs");
    assert!(
        out.status.success(),
        "cc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a finished program left behind.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    /// Panics, with everything the program printed, unless it exited with status 0.
    pub fn assert_success(&self, what: &str) {
        assert!(
            !self.timed_out && self.status.success(),
            "{what} did not succeed ({}):\n{self}",
            if self.timed_out {
                "killed after the timeout".to_string()
            } else {
                self.status.to_string()
            }
        );
    }

    pub fn facts(&self) -> Facts<'_> {
        Facts::parse(self)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

fn tail(text: &str) -> &str {
    const KEEP: usize = 8000;
    if text.len() <= KEEP {
        return text;
    }
    let mut start = text.len() - KEEP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `cmd` to completion, capturing its output; kills it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let (status, timed_out) = match child.wait_timeout(timeout).expect("waiting for the child") {
        Some(status) => (status, false),
        None => {
            child.kill().expect("killing a hung child");
            (child.wait().expect("reaping the killed child"), true)
        }
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        timed_out,
    }
}

/// Reads a pipe on a thread of its own, so a chatty child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The `key=value` lines a program printed on stdout.
pub struct Facts<'a> {
    values: HashMap<String, String>,
    output: &'a Output,
}

impl<'a> Facts<'a> {
    fn parse(output: &'a Output) -> Facts<'a> {
        let values = output
            .stdout
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter(|(key, _)| {
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Facts { values, output }
    }

    pub fn str(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("the program did not report `{key}`:\n{}", self.output))
    }

    pub fn get<T: FromStr>(&self, key: &str) -> T {
        let raw = self.str(key);
        raw.parse().unwrap_or_else(|_| {
            panic!(
                "`{key}={raw}` is not a {}:\n{}",
                std::any::type_name::<T>(),
                self.output
            )
        })
    }

    pub fn int(&self, key: &str) -> i64 {
        self.get(key)
    }

    /// A 0/1 fact.
    pub fn flag(&self, key: &str) -> bool {
        match self.str(key) {
            "1" => true,
            "0" => false,
            other => panic!("`{key}={other}` is not 0 or 1:\n{}", self.output),
        }
    }

    /// Asserts that each key has the expected value, all mismatches reported at once.
    pub fn expect(&self, expected: &[(&str, i64)]) {
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(key, want)| self.int(key) != *want)
            .map(|(key, want)| format!("{key}={} (expected {want})", self.str(key)))
            .collect();
        assert!(
            wrong.is_empty(),
            "unexpected: {}\n{}",
            wrong.join(", "),
            self.output
        );
    }

    /// Everything the program printed, for assertion messages.
    pub fn output(&self) -> &Output {
        self.output
    }
}

/// glibc's chunk size for a request of `n` bytes on 64-bit: the request plus the 8-byte
/// size word, rounded up to 16, at least 32.
pub fn chunk_size(n: u64) -> u64 {
    ((n + 8 + 15) & !15).max(32)
}

pub const KIB: i64 = 1024;
pub const MIB: i64 = 1024 * KIB;
