//! Judging one run: a crash, a timeout, a failure or wrong data is reported as such and
//! never timed; a good run gives a sample of time and memory.

use super::runner::{Exit, Finished};
use super::workloads::{Memory, Workload, RSS_AFTER_IDLE_KEY, WRONG_DATA_EXIT};
use std::fmt;

/// One good run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub seconds: f64,
    /// The workload's memory figure in KiB: peak RSS, or RSS after idle for the surge.
    pub memory_kib: u64,
}

/// Why a workload has no time under an allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The allocator is not on this machine.
    Missing(String),
    /// The workload could not be built or its program is not installed.
    Unavailable(String),
    /// Killed by a signal, named like SIGSEGV.
    Crashed(String),
    Failed {
        code: i32,
        detail: String,
    },
    WrongData(String),
    TimedOut {
        seconds: u64,
    },
    /// ld.so refused the library and ran the program on glibc's malloc instead.
    NotPreloaded(String),
}

impl Problem {
    /// A few words for the table.
    pub fn short(&self) -> String {
        match self {
            Problem::Missing(_) => "missing".into(),
            Problem::Unavailable(_) => "unavailable".into(),
            Problem::Crashed(signal) => format!("crashed ({signal})"),
            Problem::Failed { code, .. } => format!("failed (exit {code})"),
            Problem::WrongData(_) => "wrong data".into(),
            Problem::TimedOut { seconds } => format!("timed out ({seconds} s)"),
            Problem::NotPreloaded(_) => "not preloaded".into(),
        }
    }

    /// What went wrong in the program's own words, where it said something.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Problem::Missing(d)
            | Problem::Unavailable(d)
            | Problem::WrongData(d)
            | Problem::NotPreloaded(d)
            | Problem::Failed { detail: d, .. } => Some(d),
            Problem::Crashed(_) | Problem::TimedOut { .. } => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(d) if !d.is_empty() => write!(f, "{}: {d}", self.short()),
            _ => f.write_str(&self.short()),
        }
    }
}

/// The part of a workload's output that must be the same under every allocator: all of
/// it but the memory figure line.
pub fn result_text(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| !l.starts_with(RSS_AFTER_IDLE_KEY))
        .collect::<Vec<_>>()
        .join("\n")
}

fn figure(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(RSS_AFTER_IDLE_KEY))
        .and_then(|v| v.trim().parse().ok())
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

/// Judges a finished run. `result` is the text to compare, `result_text(stdout)` for most
/// workloads and the compiled program's output for gcc; `reference` is the first good
/// result of this workload (glibc's, which runs first) and is set by the first good run.
pub fn judge(
    w: &Workload,
    run: &Finished,
    result: Result<String, String>,
    timeout_secs: u64,
    reference: &mut Option<String>,
) -> Result<Sample, Problem> {
    match run.exit {
        Exit::TimedOut => {
            return Err(Problem::TimedOut {
                seconds: timeout_secs,
            })
        }
        Exit::Signal(sig) => return Err(Problem::Crashed(signal_name(sig))),
        Exit::Code(_) => {}
    }
    if let Some(line) = run
        .stderr
        .lines()
        .find(|l| l.contains("cannot be preloaded"))
    {
        return Err(Problem::NotPreloaded(line.trim().to_string()));
    }
    match run.exit {
        Exit::Code(WRONG_DATA_EXIT) if w.program.reports_wrong_data_by_exit_status() => {
            let said = last_line(&run.stderr);
            let detail = said.strip_prefix("wrong data: ").unwrap_or(&said);
            return Err(Problem::WrongData(detail.to_string()));
        }
        Exit::Code(0) => {}
        Exit::Code(code) => {
            return Err(Problem::Failed {
                code,
                detail: last_line(&run.stderr),
            })
        }
        Exit::Signal(_) | Exit::TimedOut => unreachable!("handled above"),
    }
    let result = result.map_err(Problem::WrongData)?;
    if result.trim().is_empty() {
        return Err(Problem::WrongData("no output".into()));
    }
    match reference {
        Some(expected) if *expected != result => {
            return Err(Problem::WrongData(format!(
                "output differs from the first good run: {}",
                last_line(&result)
            )))
        }
        Some(_) => {}
        None => *reference = Some(result),
    }
    let memory_kib = match w.memory {
        Memory::PeakRss => run.peak_rss_kib,
        Memory::RssAfterIdle => figure(&run.stdout).ok_or_else(|| {
            Problem::WrongData(format!("no {RSS_AFTER_IDLE_KEY} line in the output"))
        })?,
    };
    Ok(Sample {
        seconds: run.seconds,
        memory_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workloads::ALL;

    fn workload(name: &str) -> Workload {
        *ALL.iter().find(|w| w.name == name).unwrap()
    }

    fn finished(exit: Exit, stdout: &str, stderr: &str) -> Finished {
        Finished {
            exit,
            seconds: 0.5,
            peak_rss_kib: 2048,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    fn judge_output(
        w: &Workload,
        run: &Finished,
        reference: &mut Option<String>,
    ) -> Result<Sample, Problem> {
        judge(w, run, Ok(result_text(&run.stdout)), 60, reference)
    }

    #[test]
    fn a_good_run_sets_the_reference_and_gives_a_sample() {
        let mut reference = None;
        let run = finished(Exit::Code(0), "checksum=00ff\n", "");
        let sample = judge_output(&workload("churn"), &run, &mut reference).unwrap();
        assert_eq!(
            sample,
            Sample {
                seconds: 0.5,
                memory_kib: 2048
            }
        );
        assert_eq!(reference.as_deref(), Some("checksum=00ff"));
    }

    #[test]
    fn a_different_checksum_is_wrong_data() {
        let mut reference = Some("checksum=00ff".to_string());
        let run = finished(Exit::Code(0), "checksum=0100\n", "");
        let problem = judge_output(&workload("churn"), &run, &mut reference).unwrap_err();
        assert_eq!(problem.short(), "wrong data");
        assert_eq!(reference.as_deref(), Some("checksum=00ff"));
    }

    #[test]
    fn a_signal_is_a_crash_named_by_its_signal() {
        let run = finished(Exit::Signal(libc::SIGSEGV), "", "");
        let problem = judge_output(&workload("churn"), &run, &mut None).unwrap_err();
        assert_eq!(problem.short(), "crashed (SIGSEGV)");
    }

    #[test]
    fn exit_three_is_wrong_data_for_our_programs_only() {
        let run = finished(
            Exit::Code(3),
            "",
            "wrong data: block pattern overwritten (64)\n",
        );
        let ours = judge_output(&workload("churn"), &run, &mut None).unwrap_err();
        assert_eq!(
            ours,
            Problem::WrongData("block pattern overwritten (64)".into())
        );
        let sqlite = judge_output(&workload("sqlite"), &run, &mut None).unwrap_err();
        assert_eq!(sqlite.short(), "failed (exit 3)");
    }

    #[test]
    fn a_refused_preload_is_not_timed_as_the_allocator() {
        let stderr =
            "ERROR: ld.so: object '/x/lib.so' from LD_PRELOAD cannot be preloaded: ignored.\n";
        let run = finished(Exit::Code(0), "checksum=1\n", stderr);
        let problem = judge_output(&workload("churn"), &run, &mut None).unwrap_err();
        assert_eq!(problem.short(), "not preloaded");
    }

    #[test]
    fn the_surge_reports_its_own_figure_and_ignores_it_in_the_checksum() {
        let mut reference = Some("checksum=7".to_string());
        let run = finished(Exit::Code(0), "checksum=7\nrss_after_idle_kib=12345\n", "");
        let sample = judge_output(&workload("surge"), &run, &mut reference).unwrap();
        assert_eq!(sample.memory_kib, 12345);
        let silent = finished(Exit::Code(0), "checksum=7\n", "");
        assert!(judge_output(&workload("surge"), &silent, &mut reference).is_err());
    }

    #[test]
    fn timeouts_empty_output_and_a_failed_product_are_problems() {
        let hung = finished(Exit::TimedOut, "", "");
        assert_eq!(
            judge_output(&workload("churn"), &hung, &mut None).unwrap_err(),
            Problem::TimedOut { seconds: 60 }
        );
        let empty = finished(Exit::Code(0), "\n", "");
        assert!(judge_output(&workload("churn"), &empty, &mut None).is_err());
        let ok = finished(Exit::Code(0), "", "");
        let gcc = judge(
            &workload("gcc"),
            &ok,
            Err("gcc_output ended with 1".into()),
            60,
            &mut None,
        );
        assert_eq!(gcc.unwrap_err().short(), "wrong data");
    }

    #[test]
    fn problems_print_their_detail() {
        let p = Problem::Failed {
            code: 1,
            detail: "out of memory".into(),
        };
        assert_eq!(p.to_string(), "failed (exit 1): out of memory");
        assert_eq!(
            Problem::Crashed("SIGABRT".into()).to_string(),
            "crashed (SIGABRT)"
        );
    }
}
