//! GLIBC_TUNABLES `glibc.malloc.*` reach the allocator (S5.1; issue 4's tunable thread
//! cache): the count and the largest size the thread cache holds, and the fast-bin limit,
//! observed through where 20 freed chunks end up in mallinfo2. A small size (40-byte
//! requests, 48-byte chunks) and a medium one (100-byte requests, 112-byte chunks) are
//! freed, each in a process of its own.

mod common;

use common::CProgram;

const SMALL: &str = "40";
const MEDIUM: &str = "100";

/// (fast-bin chunks, other free chunks, chunks held by the thread cache) after 20 frees.
fn freed(size: &str, tunables: &str) -> (i64, i64, i64) {
    let program = CProgram::build("tunables");
    let mut cmd = program.command(&[size]);
    if !tunables.is_empty() {
        cmd.env("GLIBC_TUNABLES", tunables);
    }
    let out = common::run(&mut cmd, common::DEFAULT_TIMEOUT);
    out.assert_success(&format!("tunables {size} with GLIBC_TUNABLES={tunables}"));
    let facts = out.facts();
    (
        facts.int("smblks"),
        facts.int("ordblks"),
        facts.int("cached"),
    )
}

#[test]
fn default_thread_cache_holds_small_frees() {
    // glibc caches 7 per size and sends the rest to the fast bins; tidemalloc caches up to
    // 64 per size.
    for size in [SMALL, MEDIUM] {
        let (fast, ordinary, cached) = freed(size, "");
        assert!(cached >= 7, "size {size}: {cached} of 20 frees cached");
        assert_eq!((fast + cached, ordinary), (20, 0), "size {size}");
    }
}

#[test]
fn tcache_count_zero_sends_frees_to_the_fast_bins() {
    for size in [SMALL, MEDIUM] {
        assert_eq!(
            freed(size, "glibc.malloc.tcache_count=0"),
            (20, 0, 0),
            "size {size}"
        );
    }
}

#[test]
fn mxfast_zero_turns_fast_bins_off() {
    let tunables = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0";
    for size in [SMALL, MEDIUM] {
        assert_eq!(freed(size, tunables), (0, 20, 0), "size {size}");
    }
}

#[test]
fn mxfast_limits_the_fast_bin_sizes() {
    // mxfast=64: 48-byte chunks are fast, 112-byte ones are not.
    let tunables = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=64";
    assert_eq!(freed(SMALL, tunables), (20, 0, 0));
    assert_eq!(freed(MEDIUM, tunables), (0, 20, 0));
}

#[test]
fn tcache_max_limits_the_cached_sizes() {
    // Requests up to 64 bytes are cached; 100-byte ones go past the cache.
    let tunables = "glibc.malloc.tcache_max=64";
    let (_, ordinary, cached) = freed(SMALL, tunables);
    assert!(cached >= 7 && ordinary == 0, "{cached} small frees cached");
    assert_eq!(freed(MEDIUM, tunables), (20, 0, 0));
}

#[test]
fn out_of_range_values_are_ignored() {
    // mxfast above 160 is ignored: the fast bins keep their default limit (128).
    let tunables = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=4096";
    for size in [SMALL, MEDIUM] {
        assert_eq!(freed(size, tunables), (20, 0, 0), "size {size}");
    }
    // A tcache_count above 65535 is ignored: the cache keeps its default.
    let (_, _, cached) = freed(SMALL, "glibc.malloc.tcache_count=70000");
    assert!(cached >= 7, "{cached} frees cached");
}
