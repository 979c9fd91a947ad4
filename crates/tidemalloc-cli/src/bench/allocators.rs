//! The allocators a bench compares: glibc as the baseline, the Debian-packaged peers,
//! tidemalloc itself and any library named on the command line.

use std::path::{Path, PathBuf};

/// One column of the report.
#[derive(Debug, Clone)]
pub struct Allocator {
    pub name: String,
    /// The library to LD_PRELOAD; `None` runs the C library's own malloc.
    pub preload: Option<PathBuf>,
    /// Why it can not run here; its workloads are then reported, not run.
    pub missing: Option<String>,
}

impl Allocator {
    pub fn is_present(&self) -> bool {
        self.missing.is_none()
    }

    fn found(name: &str, preload: PathBuf) -> Self {
        Allocator {
            name: name.to_string(),
            preload: Some(preload),
            missing: None,
        }
    }

    fn missing(name: &str, why: String) -> Self {
        Allocator {
            name: name.to_string(),
            preload: None,
            missing: Some(why),
        }
    }
}

/// The name of the baseline every ratio is taken against.
pub const BASELINE: &str = "glibc";

/// The peers, by the Debian package that installs them and the library it puts in the
/// multiarch directory.
const PEERS: [(&str, &str, &str); 3] = [
    ("jemalloc", "libjemalloc2", "libjemalloc.so.2"),
    (
        "tcmalloc",
        "libtcmalloc-minimal4",
        "libtcmalloc_minimal.so.4",
    ),
    ("mimalloc", "libmimalloc2.0", "libmimalloc.so.2"),
];

/// Every allocator in report order: glibc first, then the peers, tidemalloc and the extra
/// libraries. `tidemalloc` is the result of `library::find()`.
pub fn discover(
    tidemalloc: Result<PathBuf, String>,
    extra: &[(String, PathBuf)],
) -> Vec<Allocator> {
    let mut all = vec![Allocator {
        name: BASELINE.to_string(),
        preload: None,
        missing: None,
    }];
    for (name, package, file) in PEERS {
        all.push(match find_system_library(file) {
            Some(path) => Allocator::found(name, path),
            None => Allocator::missing(
                name,
                format!("{file} not found (apt-get install {package})"),
            ),
        });
    }
    all.push(match tidemalloc {
        Ok(path) => Allocator::found("tidemalloc", path),
        Err(why) => Allocator::missing("tidemalloc", why),
    });
    for (name, path) in extra {
        all.push(if path.is_file() {
            Allocator::found(name, path.clone())
        } else {
            Allocator::missing(name, format!("{} is not a file", path.display()))
        });
    }
    all
}

fn find_system_library(file: &str) -> Option<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    [
        multiarch.as_str(),
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(file))
    .find(|p| p.is_file())
}

/// Parses `--lib NAME=PATH`.
pub fn parse_extra(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got `{arg}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_comes_first_and_is_never_preloaded() {
        let all = discover(Err("not built".into()), &[]);
        assert_eq!(all[0].name, BASELINE);
        assert!(all[0].preload.is_none() && all[0].is_present());
    }

    #[test]
    fn a_missing_tidemalloc_is_named_with_the_reason() {
        let all = discover(Err("not built".into()), &[]);
        let tide = all.iter().find(|a| a.name == "tidemalloc").unwrap();
        assert_eq!(tide.missing.as_deref(), Some("not built"));
    }

    #[test]
    fn extra_libraries_follow_and_a_bad_path_is_missing() {
        let extra = [("nope".to_string(), PathBuf::from("/nonexistent/libnope.so"))];
        let all = discover(Ok(PathBuf::from("/x/libtidemalloc.so")), &extra);
        let last = all.last().unwrap();
        assert_eq!(last.name, "nope");
        assert!(!last.is_present());
        assert_eq!(all[all.len() - 2].name, "tidemalloc");
        assert!(all[all.len() - 2].is_present());
    }

    #[test]
    fn lib_argument_needs_a_name_and_a_path() {
        assert_eq!(
            parse_extra("mine=/tmp/libmine.so").unwrap(),
            ("mine".to_string(), PathBuf::from("/tmp/libmine.so"))
        );
        assert!(parse_extra("/tmp/libmine.so").is_err());
        assert!(parse_extra("=x").is_err());
        assert!(parse_extra("x=").is_err());
    }
}
