//! mallopt parameters and the `MALLOC_*_` environment variables (S5.1), with glibc's
//! defaults and glibc's answers.

use crate::bins::{DEFAULT_MXFAST, MAX_FAST_LIMIT};
use crate::chunk::{ALIGN_MASK, SIZE_SZ};
use crate::os;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// mallopt: largest request served from fast bins.
pub const M_MXFAST: i32 = 1;
/// mallopt: free top size that makes free() give memory back.
pub const M_TRIM_THRESHOLD: i32 = -1;
/// mallopt: extra bytes asked of the kernel on each growth, kept on each trim.
pub const M_TOP_PAD: i32 = -2;
/// mallopt: requests at or above this size get their own mapping.
pub const M_MMAP_THRESHOLD: i32 = -3;
/// mallopt: most mapped chunks at once.
pub const M_MMAP_MAX: i32 = -4;
/// mallopt: what to do on a detected error (accepted, as in glibc proper).
pub const M_CHECK_ACTION: i32 = -5;
/// mallopt: fill byte for allocated and freed memory.
pub const M_PERTURB: i32 = -6;
/// mallopt: arenas created before the limit is checked.
pub const M_ARENA_TEST: i32 = -7;
/// mallopt: most arenas.
pub const M_ARENA_MAX: i32 = -8;

/// Default trim threshold (dynamic until set).
pub const DEFAULT_TRIM_THRESHOLD: usize = 128 * 1024;
/// Default top pad (glibc's malloc-machine.h value).
pub const DEFAULT_TOP_PAD: usize = 128 * 1024;
/// Default mmap threshold (dynamic until set).
pub const DEFAULT_MMAP_THRESHOLD: usize = 128 * 1024;
/// Ceiling of the dynamic mmap threshold and of M_MMAP_THRESHOLD: 4 MiB per word byte.
pub const MMAP_THRESHOLD_MAX: usize = 4 * 1024 * 1024 * SIZE_SZ;
/// Default M_MMAP_MAX.
pub const DEFAULT_MMAP_MAX: usize = 65536;
/// glibc's default M_ARENA_TEST on 64-bit.
pub const DEFAULT_ARENA_TEST: usize = 8;

/// The process-wide tunables (glibc's `mp_` and `global_max_fast`).
pub struct Params {
    /// Trim when the free top reaches this size.
    pub trim_threshold: AtomicUsize,
    /// Extra bytes per growth.
    pub top_pad: AtomicUsize,
    /// Requests at or above this size are mmapped when no free chunk serves them.
    pub mmap_threshold: AtomicUsize,
    /// Most simultaneous mmapped chunks.
    pub mmap_max: AtomicUsize,
    /// Set once any threshold was fixed by hand: the dynamic threshold stops moving.
    pub no_dyn_threshold: AtomicBool,
    /// Largest chunk size kept in fast bins (0 serves none).
    pub max_fast: AtomicUsize,
    /// M_ARENA_MAX (0: automatic).
    pub arena_max: AtomicUsize,
    /// M_ARENA_TEST.
    pub arena_test: AtomicUsize,
    /// M_PERTURB fill byte (0: off).
    pub perturb: AtomicUsize,
    /// M_CHECK_ACTION.
    pub check_action: AtomicUsize,
    /// Entries per thread-cache size class (`glibc.malloc.tcache_count`; 0 turns it off).
    pub tcache_count: AtomicUsize,
    /// Largest request served from the thread cache (`glibc.malloc.tcache_max`).
    pub tcache_max: AtomicUsize,
    /// Unsorted chunks one allocation sorts at most, 0 for no bound
    /// (`glibc.malloc.tcache_unsorted_limit`).
    pub unsorted_limit: AtomicUsize,
}

/// The tunables, with glibc's defaults.
pub static PARAMS: Params = Params {
    trim_threshold: AtomicUsize::new(DEFAULT_TRIM_THRESHOLD),
    top_pad: AtomicUsize::new(DEFAULT_TOP_PAD),
    mmap_threshold: AtomicUsize::new(DEFAULT_MMAP_THRESHOLD),
    mmap_max: AtomicUsize::new(DEFAULT_MMAP_MAX),
    no_dyn_threshold: AtomicBool::new(false),
    max_fast: AtomicUsize::new(fast_limit(DEFAULT_MXFAST)),
    arena_max: AtomicUsize::new(0),
    arena_test: AtomicUsize::new(DEFAULT_ARENA_TEST),
    perturb: AtomicUsize::new(0),
    check_action: AtomicUsize::new(3),
    tcache_count: AtomicUsize::new(crate::tcache::DEFAULT_COUNT),
    tcache_max: AtomicUsize::new(crate::tcache::DEFAULT_MAX_BYTES),
    unsorted_limit: AtomicUsize::new(0),
};

/// The chunk-size limit for a M_MXFAST request size (0 turns fast bins off).
const fn fast_limit(request: usize) -> usize {
    if request == 0 {
        // Smaller than any chunk, so nothing is fast.
        SIZE_SZ
    } else {
        (request + SIZE_SZ) & !ALIGN_MASK
    }
}

/// Applies one mallopt parameter; returns glibc's answer (1 done, 0 refused).
/// The caller holds the main arena's lock and has merged its fast bins, as glibc does.
pub fn set(param: i32, value: i32) -> i32 {
    let p = &PARAMS;
    match param {
        M_MXFAST => {
            if value < 0 || value as usize > MAX_FAST_LIMIT {
                return 0;
            }
            p.max_fast.store(fast_limit(value as usize), Relaxed);
        }
        M_TRIM_THRESHOLD => {
            p.trim_threshold.store(value as isize as usize, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        M_TOP_PAD => {
            p.top_pad.store(value as isize as usize, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        M_MMAP_THRESHOLD => {
            // glibc 2.36 takes any value here (observed: 64 MiB, 1 GiB and -1 all return 1);
            // the 32 MiB ceiling binds only the dynamic threshold.
            p.mmap_threshold.store(value as isize as usize, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        M_MMAP_MAX => {
            p.mmap_max.store(value as isize as usize, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        M_CHECK_ACTION => p.check_action.store(value as usize, Relaxed),
        M_PERTURB => p.perturb.store(value as usize & 0xff, Relaxed),
        M_ARENA_TEST if value > 0 => p.arena_test.store(value as usize, Relaxed),
        M_ARENA_MAX if value > 0 => p.arena_max.store(value as usize, Relaxed),
        _ => {}
    }
    1
}

/// Parses a decimal or `0x` hexadecimal number, as glibc's tunables accept.
pub fn parse_number(text: &[u8]) -> Option<usize> {
    let (digits, radix) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (text, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: usize = 0;
    for &d in digits {
        let digit = (d as char).to_digit(radix)? as usize;
        value = value.checked_mul(radix as usize)?.checked_add(digit)?;
    }
    Some(value)
}

/// Applies one `glibc.malloc.*` tunable; values out of glibc's range are ignored, as glibc
/// ignores them.
fn set_tunable(name: &[u8], value: usize) {
    let p = &PARAMS;
    match name {
        b"check" if value <= 3 => p.check_action.store(value, Relaxed),
        b"top_pad" => {
            p.top_pad.store(value, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        b"perturb" if value <= 0xff => p.perturb.store(value, Relaxed),
        b"mmap_threshold" => {
            p.mmap_threshold.store(value, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        b"trim_threshold" => {
            p.trim_threshold.store(value, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        b"mmap_max" => {
            p.mmap_max.store(value, Relaxed);
            p.no_dyn_threshold.store(true, Relaxed);
        }
        b"arena_max" if value > 0 => p.arena_max.store(value, Relaxed),
        b"arena_test" if value > 0 => p.arena_test.store(value, Relaxed),
        b"tcache_max" if value <= crate::tcache::LARGEST_MAX_BYTES => {
            p.tcache_max.store(value, Relaxed)
        }
        b"tcache_count" if value <= u16::MAX as usize => p.tcache_count.store(value, Relaxed),
        b"tcache_unsorted_limit" => p.unsorted_limit.store(value, Relaxed),
        b"mxfast" if value <= MAX_FAST_LIMIT => p.max_fast.store(fast_limit(value), Relaxed),
        _ => {}
    }
}

/// Reads `GLIBC_TUNABLES` (`glibc.malloc.NAME=VALUE` items separated by `:`); other
/// namespaces and malformed items are skipped.
fn load_tunables(text: &[u8]) {
    for item in text.split(|&b| b == b':') {
        let Some(eq) = item.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&item[..eq], &item[eq + 1..]);
        if let (Some(name), Some(value)) =
            (name.strip_prefix(b"glibc.malloc."), parse_number(value))
        {
            set_tunable(name, value);
        }
    }
}

/// Reads the `MALLOC_*_` variables and `GLIBC_TUNABLES` once, at the first allocation; a
/// tunable wins over the older variable for the same parameter.
pub fn load_environment() {
    let p = &PARAMS;
    let read = |name: &'static [u8]| os::getenv(name).and_then(parse_number);
    if let Some(v) = read(b"MALLOC_TRIM_THRESHOLD_\0") {
        p.trim_threshold.store(v, Relaxed);
        p.no_dyn_threshold.store(true, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_TOP_PAD_\0") {
        p.top_pad.store(v, Relaxed);
        p.no_dyn_threshold.store(true, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_MMAP_THRESHOLD_\0") {
        p.mmap_threshold.store(v, Relaxed);
        p.no_dyn_threshold.store(true, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_MMAP_MAX_\0") {
        p.mmap_max.store(v, Relaxed);
        p.no_dyn_threshold.store(true, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_ARENA_MAX\0").filter(|&v| v > 0) {
        p.arena_max.store(v, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_ARENA_TEST\0").filter(|&v| v > 0) {
        p.arena_test.store(v, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_CHECK_\0").filter(|&v| v <= 7) {
        p.check_action.store(v, Relaxed);
    }
    if let Some(v) = read(b"MALLOC_PERTURB_\0") {
        p.perturb.store(v & 0xff, Relaxed);
    }
    if let Some(text) = os::getenv(b"GLIBC_TUNABLES\0") {
        load_tunables(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_tunables() {
        assert_eq!(parse_number(b"131072"), Some(131072));
        assert_eq!(parse_number(b"0x20000"), Some(131072));
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"12k"), None);
        assert_eq!(parse_number(b"99999999999999999999999"), None);
    }

    #[test]
    fn tunables_set_known_names_and_skip_the_rest() {
        load_tunables(b"glibc.malloc.tcache_count=5:glibc.rtld.nns=2:junk:glibc.malloc.mxfast=999");
        assert_eq!(PARAMS.tcache_count.load(Relaxed), 5);
        assert_eq!(PARAMS.max_fast.load(Relaxed), fast_limit(DEFAULT_MXFAST));
        // Past glibc 2.42's bound of 4 MiB: ignored.
        load_tunables(b"glibc.malloc.tcache_max=4194305:glibc.malloc.arena_max=0");
        assert_eq!(
            PARAMS.tcache_max.load(Relaxed),
            crate::tcache::DEFAULT_MAX_BYTES
        );
        assert_eq!(PARAMS.arena_max.load(Relaxed), 0);
        load_tunables(b"glibc.malloc.tcache_count=16:glibc.malloc.tcache_max=0x100");
        assert_eq!(PARAMS.tcache_count.load(Relaxed), 16);
        assert_eq!(PARAMS.tcache_max.load(Relaxed), 256);
        load_tunables(b"glibc.malloc.tcache_max=4194304");
        assert_eq!(PARAMS.tcache_max.load(Relaxed), 4 << 20);
        load_tunables(b"glibc.malloc.tcache_unsorted_limit=12");
        assert_eq!(PARAMS.unsorted_limit.load(Relaxed), 12);
        load_tunables(b"glibc.malloc.tcache_max=32768:glibc.malloc.tcache_count=64");
        load_tunables(b"glibc.malloc.tcache_unsorted_limit=0");
    }

    #[test]
    fn mxfast_limits() {
        assert_eq!(fast_limit(DEFAULT_MXFAST), 128);
        assert_eq!(fast_limit(MAX_FAST_LIMIT), 160);
        assert!(fast_limit(0) < crate::chunk::MIN_CHUNK);
    }
}
