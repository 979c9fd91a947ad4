//! Turning a workload into a command line: compiling our C and Rust programs into
//! target/bench/bin/ (again only when a source changed), generating gcc's input, and
//! finding the real programs.

use super::gcc_source;
use super::runner::Invocation;
use super::workloads::{Program, Workload};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the sources are and where the builds and scratch files go.
pub struct Dirs {
    /// The workspace's bench/ directory.
    pub sources: PathBuf,
    /// target/bench/bin: the compiled workloads.
    pub bin: PathBuf,
    /// target/bench/work: generated inputs and the programs gcc compiles.
    pub work: PathBuf,
}

/// A workload ready to run.
pub struct Prepared {
    pub invocation: Invocation,
    /// A program the run produces, whose output (run without any preload) is the result:
    /// gcc's output. The runner deletes it before each run so a stale one is never judged.
    pub produces: Option<PathBuf>,
}

pub fn prepare(w: &Workload, dirs: &Dirs, threads: usize) -> Result<Prepared, String> {
    let threads_arg = || vec![OsString::from(threads.to_string())];
    let (invocation, produces) = match w.program {
        Program::C(file) => {
            let bin = dirs.bin.join(stem(file));
            let src = dirs.sources.join(file);
            let headers = c_headers(&dirs.sources);
            let mut inputs: Vec<&Path> = headers.iter().map(PathBuf::as_path).collect();
            inputs.push(&src);
            if stale(&bin, &inputs) {
                build(
                    Command::new("cc")
                        .args(["-O2", "-pthread", "-o"])
                        .arg(&bin)
                        .arg(&src),
                )?;
            }
            (plain(bin, threads_arg()), None)
        }
        Program::Rust(file) => {
            let bin = dirs.bin.join(stem(file));
            let src = dirs.sources.join(file);
            if stale(&bin, &[&src]) {
                build(
                    Command::new("rustc")
                        .args(["-O", "--edition", "2021", "-o"])
                        .arg(&bin)
                        .arg(&src),
                )?;
            }
            (plain(bin, threads_arg()), None)
        }
        Program::Python(file) => {
            let python = system_program("python3")?;
            let mut inv = plain(python, vec![dirs.sources.join(file).into()]);
            inv.env.push(("PYTHONMALLOC".into(), "malloc".into()));
            (inv, None)
        }
        Program::Sqlite(file) => {
            let mut inv = plain(system_program("sqlite3")?, vec![":memory:".into()]);
            inv.stdin = Some(dirs.sources.join(file));
            (inv, None)
        }
        Program::Gcc => {
            let input = dirs.work.join("gcc_input.c");
            write_if_changed(&input, &gcc_source::generate(gcc_source::FUNCTIONS))?;
            let output = dirs.work.join("gcc_output");
            let args = vec![
                "-O2".into(),
                "-o".into(),
                output.clone().into(),
                input.into(),
            ];
            (plain(system_program("gcc")?, args), Some(output))
        }
    };
    Ok(Prepared {
        invocation,
        produces,
    })
}

/// Runs a program a workload produced, with no preload, and returns its standard output.
pub fn output_of(program: &Path) -> Result<String, String> {
    let out = Command::new(program)
        .env_remove("LD_PRELOAD")
        .output()
        .map_err(|e| format!("{} did not run: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!("{} ended with {}", program.display(), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn plain(program: PathBuf, args: Vec<OsString>) -> Invocation {
    Invocation {
        program,
        args,
        env: Vec::new(),
        stdin: None,
    }
}

fn stem(file: &str) -> &str {
    file.rsplit_once('.').map_or(file, |(stem, _)| stem)
}

/// True when `target` is absent or older than any of `sources`.
/// The C headers of bench/: every C workload is rebuilt when one of them changes.
fn c_headers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "h"))
                .collect()
        })
        .unwrap_or_default()
}

fn stale(target: &Path, sources: &[&Path]) -> bool {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    match modified(target) {
        None => true,
        Some(built) => sources
            .iter()
            .any(|s| !matches!(modified(s), Some(m) if m <= built)),
    }
}

fn build(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .env_remove("LD_PRELOAD")
        .output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first_error = stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or("")
        .trim();
    Err(format!(
        "build failed ({}): {shown} {first_error}",
        out.status
    ))
}

/// The system's program: /usr/bin first, so a python3 of pyenv or a virtualenv does not
/// stand in for the distribution's, then the PATH.
fn system_program(name: &str) -> Result<PathBuf, String> {
    let usr_bin = Path::new("/usr/bin").join(name);
    if usr_bin.is_file() {
        return Ok(usr_bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found"))
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tidemalloc-prepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn touch(path: &Path, age_secs: u64) {
        std::fs::write(path, "x").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn a_build_older_than_its_source_is_stale() {
        let (src, bin) = (temp("a.c"), temp("a"));
        touch(&src, 10);
        touch(&bin, 100);
        assert!(stale(&bin, &[&src]));
        touch(&bin, 1);
        assert!(!stale(&bin, &[&src]));
    }

    #[test]
    fn a_missing_build_or_source_is_stale() {
        let src = temp("b.c");
        touch(&src, 10);
        assert!(stale(&temp("never-built"), &[&src]));
        let bin = temp("b");
        touch(&bin, 1);
        assert!(stale(&bin, &[&temp("no-such-source.c")]));
    }

    #[test]
    fn stem_drops_the_extension() {
        assert_eq!(stem("false_sharing.c"), "false_sharing");
        assert_eq!(stem("collections.rs"), "collections");
        assert_eq!(stem("plain"), "plain");
    }
}
