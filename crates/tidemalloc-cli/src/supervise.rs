//! Running a program on the library and watching it until it exits: the preload, the pipe
//! the library reports on, wait4's resource usage, and `/proc/PID/smaps` samples meanwhile.

use crate::report::Reports;
use crate::smaps::{self, Breakdown};
use nix::sys::signal::{self, SigHandler, Signal};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The report descriptor is moved this high, far above the low numbers that files take, so
/// that a descendant which closed it and then opened a file is unlikely to get its number.
const REPORT_FD_FLOOR: RawFd = 512;

/// Samples come close together at first, so that short programs are seen too, then spread
/// out to this interval.
const FIRST_SAMPLE: Duration = Duration::from_millis(2);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What the kernel counted for the program (its reaped children included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub max_rss_bytes: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub user: Duration,
    pub system: Duration,
}

/// Everything known about a run once the program has exited.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub wall: Duration,
    pub usage: Usage,
    pub reports: Reports,
    /// The last readable smaps sample and how many were taken.
    pub smaps: Option<Breakdown>,
    pub samples: usize,
}

/// `LD_PRELOAD` with the library first, so that its malloc wins over one that another
/// preloaded library may export; what was there already is kept after it.
pub fn preload_list(library: &Path, existing: Option<OsString>) -> OsString {
    let mut list = OsString::from(library);
    if let Some(old) = existing.filter(|o| !o.is_empty()) {
        list.push(":");
        list.push(old);
    }
    list
}

/// Starts `cmd` on the library and watches it to its end.
pub fn run(mut cmd: Command, library: &Path) -> io::Result<Outcome> {
    cmd.env(
        "LD_PRELOAD",
        preload_list(library, std::env::var_os("LD_PRELOAD")),
    );
    watched(cmd)
}

/// Starts `cmd` with the report descriptor open in it and watches it to its end.
fn watched(mut cmd: Command) -> io::Result<Outcome> {
    let (report, report_writer) = report_pipe()?;
    let fd = report_writer.as_raw_fd();
    cmd.env("TIDEMALLOC_REPORT_FD", fd.to_string());
    // SAFETY: the closure runs in the forked child before exec and calls only fcntl, which
    // is async-signal-safe; `fd` is open there, inherited from this process.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let child = cmd.spawn()?;
    drop(report_writer);
    let _interrupts = InterruptsToChild::now();
    watch(child.id() as libc::pid_t, start, &report)
}

fn watch(pid: libc::pid_t, start: Instant, report: &OwnedFd) -> io::Result<Outcome> {
    let exited = pidfd_open(pid);
    let mut text = Vec::new();
    let mut last = None;
    let mut samples = 0;
    let mut next_sample = start + FIRST_SAMPLE;
    loop {
        if let Some((status, usage)) = reap(pid, libc::WNOHANG)? {
            let wall = start.elapsed();
            drain(report, &mut text);
            return Ok(Outcome {
                status,
                wall,
                usage,
                reports: Reports::collect(&String::from_utf8_lossy(&text), pid as u32),
                smaps: last,
                samples,
            });
        }
        let now = Instant::now();
        if now >= next_sample {
            if let Some(b) = smaps::sample(pid, now - start) {
                last = Some(b);
                samples += 1;
            }
            next_sample = now + ((now - start) / 4).clamp(FIRST_SAMPLE, SAMPLE_EVERY);
            continue;
        }
        // Descendants report on the same pipe while the program runs: keep it drained so
        // that none of them blocks at exit on a full pipe.
        wait_for(exited.as_ref(), report, next_sample - now)?;
        drain(report, &mut text);
    }
}

/// Sleeps until the program exits, a report arrives, or `timeout` passes.
fn wait_for(exited: Option<&OwnedFd>, report: &OwnedFd, timeout: Duration) -> io::Result<()> {
    let mut fds =
        [report.as_raw_fd(), exited.map_or(-1, |f| f.as_raw_fd())].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of pollfd of the length passed; a negative fd is ignored.
    if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) } == -1 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// The read end (non-blocking, kept here) and the write end (close-on-exec until the child
/// clears it) of the pipe the library reports on.
fn report_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl on a descriptor we own; a new descriptor it returns is ours.
    let high = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_DUPFD_CLOEXEC, REPORT_FD_FLOOR) };
    let write = if high == -1 {
        // A descriptor limit below the floor: keep the low number.
        write
    } else {
        // SAFETY: `high` was just returned by fcntl and is owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(high) }
    };
    Ok((read, write))
}

/// Reads whatever is waiting on the non-blocking report pipe.
fn drain(report: &OwnedFd, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a buffer of the length passed, from a descriptor we own.
        let n = unsafe { libc::read(report.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        into.extend_from_slice(&buf[..n as usize]);
    }
}

/// A descriptor that becomes readable when `pid` exits; `None` on kernels before 5.3, where
/// the exit is noticed at the next sample instead.
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a new descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// wait4: the exit status and the resource usage, once `pid` has exited.
fn reap(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<(ExitStatus, Usage)>> {
    let mut status = 0;
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r == pid {
            return Ok(Some((ExitStatus::from_raw(status), usage(&ru))));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn usage(ru: &libc::rusage) -> Usage {
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        // Linux counts ru_maxrss in KiB.
        max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        minor_faults: ru.ru_minflt as u64,
        major_faults: ru.ru_majflt as u64,
        user: time(ru.ru_utime),
        system: time(ru.ru_stime),
    }
}

/// While the program runs, Ctrl-C and Ctrl-\ are the program's to act on: this process
/// ignores them (as time(1) does) so it can still report when the program dies of them.
struct InterruptsToChild {
    old: [(Signal, SigHandler); 2],
}

impl InterruptsToChild {
    fn now() -> Self {
        let old = [Signal::SIGINT, Signal::SIGQUIT].map(|s| {
            // SAFETY: installing SIG_IGN runs no code of ours in a signal context.
            let previous = unsafe { signal::signal(s, SigHandler::SigIgn) };
            (s, previous.unwrap_or(SigHandler::SigDfl))
        });
        InterruptsToChild { old }
    }
}

impl Drop for InterruptsToChild {
    fn drop(&mut self) {
        for (s, handler) in self.old {
            // SAFETY: restores the disposition that was in place before `now`.
            unsafe {
                let _ = signal::signal(s, handler);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_goes_first_and_earlier_preloads_stay() {
        let lib = Path::new("/x/libtidemalloc.so");
        assert_eq!(preload_list(lib, None), "/x/libtidemalloc.so");
        assert_eq!(preload_list(lib, Some("".into())), "/x/libtidemalloc.so");
        assert_eq!(
            preload_list(lib, Some("/y/a.so".into())),
            "/x/libtidemalloc.so:/y/a.so"
        );
    }

    const REPORT: &str = "tidemalloc system_bytes=1 in_use_bytes=2 mmapped_bytes=3 \
                          mmapped_chunks=4 max_arena_bytes=5 max_mmapped_bytes=6";

    /// bash, not sh: dash cannot redirect to a descriptor above 9.
    fn shell(script: &str) -> Outcome {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script);
        watched(cmd).unwrap()
    }

    #[test]
    fn the_report_descriptor_reaches_the_program_and_its_children() {
        // The shell writes report lines on $TIDEMALLOC_REPORT_FD as the library does at exit,
        // once itself and once from a child, which must also have the descriptor.
        let out = shell(&format!(
            "bash -c 'echo \"{REPORT} pid=1\" >&$TIDEMALLOC_REPORT_FD'; \
             echo \"{REPORT} pid=$$\" >&$TIDEMALLOC_REPORT_FD; exit 3"
        ));
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.reports.count, 2);
        assert_eq!(out.reports.program.unwrap().mmapped_chunks, 4);
        assert!(out.usage.max_rss_bytes > 0);
        assert!(out.usage.minor_faults > 0);
    }

    #[test]
    fn a_signal_death_and_a_silent_program_are_told_as_such() {
        let out = shell("kill -SEGV $$");
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
        assert_eq!(out.reports.count, 0);
        assert!(out.reports.program.is_none());
    }

    #[test]
    fn a_longer_run_is_sampled_and_timed() {
        let out = shell("sleep 0.3");
        assert!(out.samples >= 5, "{} samples", out.samples);
        let last = out.smaps.expect("a sample of sh");
        assert!(last.at <= out.wall);
        assert!(out.wall >= Duration::from_millis(300));
        assert!(out.wall < Duration::from_millis(1300), "{:?}", out.wall);
    }
}
