//! Finding the built `libtidemalloc.so` that `run`, `demo` and `bench` preload, and building
//! it from the workspace when it is missing, so `cargo run --release -- run ...` works on a
//! fresh clone (`cargo run` builds only the command, never the cdylib beside it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FILE_NAME: &str = "libtidemalloc.so";

/// The shared library to preload: `$TIDEMALLOC_LIB` if set, else the one beside this
/// executable (target/<profile>/), else the workspace's release build, built now if this
/// command was compiled from a workspace that is still on disk.
pub fn find() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TIDEMALLOC_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("TIDEMALLOC_LIB={} is not a file", p.display()))
        };
    }
    let workspace = workspace();
    if let Some(found) = built(workspace.as_deref()) {
        return Ok(found);
    }
    let Some(workspace) = workspace else {
        return Err(format!(
            "{FILE_NAME} not found: build it with `cargo build --release` in the tidemalloc \
             workspace, or name it with TIDEMALLOC_LIB"
        ));
    };
    build(&workspace)?;
    built(Some(&workspace)).ok_or_else(|| {
        format!(
            "cargo built tidemalloc-c but no {FILE_NAME} appeared in {}",
            release_dir(&workspace).display()
        )
    })
}

/// The first existing library among the places a build leaves it.
fn built(workspace: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        candidates.push(dir.join(FILE_NAME));
    }
    if let Some(ws) = workspace {
        candidates.push(release_dir(ws).join(FILE_NAME));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The workspace this command was compiled from, if its sources are still there.
fn workspace() -> Option<PathBuf> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ws = ws.canonicalize().ok()?;
    let complete =
        ws.join("Cargo.toml").is_file() && ws.join("crates/tidemalloc-c/Cargo.toml").is_file();
    complete.then_some(ws)
}

/// Where `cargo build --release` in `workspace` puts its output, `CARGO_TARGET_DIR` included.
fn release_dir(workspace: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    workspace.join(target).join("release")
}

/// Builds the library with cargo, its progress shown on stderr so that the program's
/// standard output stays the program's.
fn build(workspace: &Path) -> Result<(), String> {
    // `cargo run` tells the program which cargo started it; use that one.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    eprintln!(
        "tidemalloc: {FILE_NAME} is not built yet; building it: cargo build --release -p tidemalloc-c (in {})",
        workspace.display()
    );
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "tidemalloc-c"])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot start {}: {e}", Path::new(&cargo).display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build --release -p tidemalloc-c failed ({status}); see its output above"
        ))
    }
}
