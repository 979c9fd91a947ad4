//! Running one workload process under one allocator: LD_PRELOAD set for it alone, its
//! wall time, its peak resident memory from wait4's rusage, and a watchdog so that an
//! allocator that deadlocks costs a timeout rather than the whole bench.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A command line to run, the same for every allocator.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub stdin: Option<PathBuf>,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

/// What one run left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    pub exit: Exit,
    pub seconds: f64,
    /// The largest resident set of the process and of the children it waited for (KiB).
    pub peak_rss_kib: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `inv` with `preload` (or nothing) in LD_PRELOAD; stdout and stderr go through
/// files in `scratch` so that a chatty program can never block on a full pipe.
pub fn run(
    inv: &Invocation,
    preload: Option<&Path>,
    timeout: Duration,
    scratch: &Path,
) -> std::io::Result<Finished> {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .env_remove("LD_PRELOAD")
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .stdin(match &inv.stdin {
            Some(path) => Stdio::from(File::open(path)?),
            None => Stdio::null(),
        })
        // Its own process group, so a timeout also ends the programs it started (gcc's cc1).
        .process_group(0);
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let (done, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let expired = watch.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout);
        if expired {
            // SAFETY: the group is still ours: its leader is a zombie at worst, not reaped
            // until this thread has been joined.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        expired
    });
    wait_exited_without_reaping(pid)?;
    let seconds = start.elapsed().as_secs_f64();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let (status, rusage) = reap(pid)?;
    drop(child);
    let exit = if timed_out {
        Exit::TimedOut
    } else if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    Ok(Finished {
        exit,
        seconds,
        peak_rss_kib: u64::try_from(rusage.ru_maxrss).unwrap_or(0),
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
    })
}

/// Waits for the exit but leaves the zombie in place, so that the pid can not be reused
/// while the watchdog may still signal it.
fn wait_exited_without_reaping(pid: libc::pid_t) -> std::io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data, valid when zeroed; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn reap(pid: libc::pid_t) -> std::io::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are valid and writable for the duration of the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if rc == pid {
            return Ok((status, rusage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![("BENCH_TEST_VALUE".into(), "42".into())],
            stdin: None,
        }
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tidemalloc-runner-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn captures_output_exit_code_and_environment() {
        let f = run(
            &sh("echo out $BENCH_TEST_VALUE; echo err >&2; exit 7"),
            None,
            Duration::from_secs(30),
            &scratch(),
        )
        .unwrap();
        assert_eq!(f.exit, Exit::Code(7));
        assert_eq!(f.stdout, "out 42\n");
        assert_eq!(f.stderr, "err\n");
    }

    #[test]
    fn reports_the_signal_that_killed_it() {
        let f = run(
            &sh("kill -SEGV $$"),
            None,
            Duration::from_secs(30),
            &scratch(),
        )
        .unwrap();
        assert_eq!(f.exit, Exit::Signal(libc::SIGSEGV));
    }

    #[test]
    fn a_hung_process_is_killed_at_the_timeout() {
        let f = run(
            &sh("sleep 30"),
            None,
            Duration::from_millis(200),
            &scratch(),
        )
        .unwrap();
        assert_eq!(f.exit, Exit::TimedOut);
        assert!(f.seconds < 10.0, "took {} s", f.seconds);
    }

    #[test]
    fn peak_rss_counts_what_the_child_touched() {
        let big = run(
            &sh("dd if=/dev/zero of=/dev/null bs=64M count=1 iflag=fullblock 2>/dev/null"),
            None,
            Duration::from_secs(30),
            &scratch(),
        )
        .unwrap();
        assert_eq!(big.exit, Exit::Code(0));
        assert!(big.peak_rss_kib >= 60 * 1024, "{} KiB", big.peak_rss_kib);
        let small = run(&sh("true"), None, Duration::from_secs(30), &scratch()).unwrap();
        assert!(small.peak_rss_kib < 16 * 1024, "{} KiB", small.peak_rss_kib);
    }

    #[test]
    fn preload_is_set_for_the_child_alone() {
        let lib = Path::new("/nonexistent/libbench-test.so");
        let with = run(
            &sh("echo \"[$LD_PRELOAD]\""),
            Some(lib),
            Duration::from_secs(30),
            &scratch(),
        );
        assert_eq!(with.unwrap().stdout, "[/nonexistent/libbench-test.so]\n");
        let without = run(
            &sh("echo \"[$LD_PRELOAD]\""),
            None,
            Duration::from_secs(30),
            &scratch(),
        );
        assert_eq!(without.unwrap().stdout, "[]\n");
    }
}
