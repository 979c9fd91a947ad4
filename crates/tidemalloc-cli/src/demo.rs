//! The built-in demonstration of S1 and S2: seed 000's walkthrough of the main heap
//! (A = malloc(30K), B = 40K, C = 200K, D = 100K, then free C, B, D), printing at each step
//! the program break, the mappings, mallinfo2, and what the allocator did.
//!
//! `demo` runs this executable again as `demo-child` with the library preloaded; the child
//! calls `malloc` and `free` through libc, which the preload sends to tidemalloc (run it by
//! hand, without a preload, to see glibc do the same).

mod explain;
mod maps;
mod out;
mod snapshot;

use crate::bytes::{Bytes, Delta};
use crate::run;
use core::fmt::Write;
use explain::{Block, Change, Thresholds};
use out::Out;
use snapshot::Snapshot;
use std::ffi::{c_char, c_void, CStr};
use std::process::{Command, ExitCode};

/// One step of the seed's walkthrough.
enum Step {
    Malloc(char, usize),
    Free(char),
}

const STEPS: [Step; 7] = [
    Step::Malloc('A', 30 << 10),
    Step::Malloc('B', 40 << 10),
    Step::Malloc('C', 200 << 10),
    Step::Malloc('D', 100 << 10),
    Step::Free('C'),
    Step::Free('B'),
    Step::Free('D'),
];

/// `tidemalloc demo`, and `tidemalloc run` with no program: the walkthrough on the library,
/// followed by run's summary of it.
pub fn main() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("tidemalloc: cannot find this executable to run the walkthrough: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = Command::new(exe);
    cmd.arg("demo-child");
    run::supervised(cmd, "the walkthrough (tidemalloc demo-child)")
}

/// `tidemalloc demo-child`: the walkthrough itself, in this process's own heap. From the
/// first snapshot on it neither allocates nor prints through std, so that the heap it shows
/// holds only the seed's blocks next to what was there before.
pub fn child() -> ExitCode {
    let mut out = Out::new();
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let _ = writeln!(
        out,
        "Seed 000's walkthrough of ptmalloc2's main heap (SPEC S1, S2)\n\
         malloc here comes from {}\n\
         Each step shows the program break (sbrk(0)), where the block lies, what changed in \
         /proc/self/maps and mallinfo2,\nand what the allocator did, worked out from those changes.\n",
        Provider
    );
    out.flush();

    let start = Snapshot::take();
    let _ = writeln!(out, "0. before the first step: break {:#x}", start.brk);
    match start.maps.heap() {
        Some(h) => writeln!(
            out,
            "   {h}, there already: the Rust runtime and the argument parser allocated before the walkthrough began"
        ),
        None => writeln!(out, "   no [heap] yet"),
    }
    .and_then(|_| writeln!(out, "   mallinfo2 {}\n", start.info))
    .ok();
    out.flush();

    // Fixed room rather than a Vec, which would allocate between the steps.
    let mut blocks = [Block::UNUSED; STEPS.len()];
    let mut count = 0;
    let mut thresholds = Thresholds::default();
    let mut last = start;
    for (i, step) in STEPS.iter().enumerate() {
        let before = Snapshot::take();
        if before.info != last.info || before.brk != last.brk {
            let _ = writeln!(
                out,
                "   (the heap changed between the steps: mallinfo2 {})",
                before.info
            );
        }
        let after = match *step {
            Step::Malloc(name, size) => {
                // SAFETY: malloc with a plain size; a later step frees the block.
                let ptr = unsafe { libc::malloc(size) } as usize;
                let after = Snapshot::take();
                let _ = writeln!(
                    out,
                    "{}. {name} = malloc({}) = {ptr:#x}",
                    i + 1,
                    Bytes(size as u64)
                );
                header(&mut out, &before, &after);
                if let Ok(block) = explain::malloc(
                    &mut out,
                    name,
                    size,
                    ptr,
                    &Change {
                        before: &before,
                        after: &after,
                        blocks: &blocks[..count],
                    },
                    page,
                ) {
                    blocks[count] = block;
                    count += 1;
                }
                after
            }
            Step::Free(name) => {
                let Some(block) = blocks[..count].iter_mut().find(|b| b.name == name) else {
                    continue;
                };
                // SAFETY: the pointer came from malloc in an earlier step and is freed once.
                unsafe { libc::free(block.ptr as *mut c_void) };
                block.live = false;
                let freed = *block;
                let after = Snapshot::take();
                let _ = writeln!(out, "{}. free({name})   ({name} = {:#x})", i + 1, freed.ptr);
                header(&mut out, &before, &after);
                let _ = explain::free(
                    &mut out,
                    &freed,
                    &Change {
                        before: &before,
                        after: &after,
                        blocks: &blocks[..count],
                    },
                    &mut thresholds,
                );
                after
            }
        };
        let _ = writeln!(out);
        out.flush();
        last = after;
    }
    if last.maps.truncated {
        let _ = writeln!(
            out,
            "(/proc/self/maps outgrew the demo's buffer: some mappings are missing above)"
        );
        out.flush();
    }
    ExitCode::SUCCESS
}

/// The lines every step prints before its explanation.
fn header(out: &mut Out, before: &Snapshot, after: &Snapshot) {
    let _ = if after.brk == before.brk {
        writeln!(out, "   break     {:#x} (unchanged)", after.brk)
    } else {
        writeln!(
            out,
            "   break     {:#x} ({})",
            after.brk,
            Delta(after.brk as i64 - before.brk as i64)
        )
    };
    let _ = explain::map_changes(out, &before.maps, &after.maps);
    let _ = writeln!(out, "   mallinfo2 {}", after.info);
}

/// Which library `malloc` resolves to in this process, found as a C program would find it:
/// dlsym(RTLD_DEFAULT, "malloc"), then dladdr.
struct Provider;

impl Provider {
    /// The file that defines `symbol` in this process.
    fn file_of(symbol: &CStr) -> Option<&'static CStr> {
        // SAFETY: RTLD_DEFAULT and a NUL-terminated name are what dlsym takes.
        let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr()) };
        if addr.is_null() {
            return None;
        }
        // SAFETY: Dl_info is plain data; dladdr fills it in for an address in a loaded object.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: `addr` came from dlsym and `info` is a valid Dl_info to fill.
        if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        // SAFETY: dli_fname names a loaded object; it stays valid while the object is loaded,
        // and this program never unloads one.
        Some(unsafe { CStr::from_ptr(info.dli_fname) })
    }
}

impl core::fmt::Display for Provider {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Some(file) = Provider::file_of(c"malloc") else {
            return write!(f, "an object dladdr cannot name");
        };
        let path = file.to_str().unwrap_or("a path that is not UTF-8");
        if Provider::file_of(c"tidemalloc_version") == Some(file) {
            // SAFETY: the library exports tidemalloc_version as `const char *(void)`.
            let version: extern "C" fn() -> *const c_char = unsafe {
                std::mem::transmute(libc::dlsym(
                    libc::RTLD_DEFAULT,
                    c"tidemalloc_version".as_ptr(),
                ))
            };
            // SAFETY: it returns a static NUL-terminated string.
            let v = unsafe { CStr::from_ptr(version()) };
            let v = v.to_str().unwrap_or("?");
            let name = if v.starts_with("tidemalloc") {
                ""
            } else {
                "tidemalloc "
            };
            write!(f, "{path} ({name}{v})")
        } else if path.contains("/libc.so") {
            // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
            let v = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) };
            write!(f, "{path} (glibc {})", v.to_str().unwrap_or("?"))
        } else {
            write!(f, "{path}")
        }
    }
}
