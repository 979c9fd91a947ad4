//! GLIBC_TUNABLES `glibc.malloc.*` reach the allocator (S5.1; issue 4's tunable thread
//! cache): the count and the largest size the thread cache holds, and the fast-bin limit,
//! observed through where 20 freed chunks end up in mallinfo2. A small size (40-byte
//! requests, 48-byte chunks) and a medium one (100-byte requests, 112-byte chunks) are
//! freed, each in a process of its own.

mod common;

use common::{CProgram, Output};

const SMALL: &str = "40";
const MEDIUM: &str = "100";

/// Runs test program `name` with `args`, under `GLIBC_TUNABLES=tunables` (unset when
/// empty), and checks that it succeeded.
fn run_tuned(name: &str, args: &[&str], tunables: &str) -> Output {
    let program = CProgram::build(name);
    let mut cmd = program.command(args);
    if !tunables.is_empty() {
        cmd.env("GLIBC_TUNABLES", tunables);
    }
    let out = common::run(&mut cmd, common::DEFAULT_TIMEOUT);
    out.assert_success(&format!(
        "{name} {} with GLIBC_TUNABLES={tunables}",
        args.join(" ")
    ));
    out
}

/// (fast-bin chunks, other free chunks, chunks held by the thread cache) after 20 frees.
fn freed(size: &str, tunables: &str) -> (i64, i64, i64) {
    let out = run_tuned("tunables", &[size], tunables);
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
    // 128 per size (fewer of the larger sizes, 16 KiB of each).
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

/// (freed bytes counted free, reused the freed block's address, its usable size now) when
/// a `size`-byte block is freed and `request` bytes asked for (see range_cache.c).
fn range_reuse(size: usize, request: usize, env: &[(&str, &str)]) -> (i64, i64, i64) {
    let program = CProgram::build("range_cache");
    let mut cmd = program.command(&[&size.to_string(), &request.to_string()]);
    cmd.envs(env.iter().copied());
    let out = common::run(&mut cmd, common::DEFAULT_TIMEOUT);
    out.assert_success(&format!("range_cache {size} {request} with {env:?}"));
    let facts = out.facts();
    facts.expect(&[("intact", 1), ("reused", 1)]);
    (
        facts.int("freed_counted_free"),
        facts.int("reused"),
        facts.int("usable"),
    )
}

/// The usable size of a chunk from the arena split to fit `request`, and from the cache
/// whole (the freed block's own).
fn split(request: usize) -> i64 {
    common::chunk_size(request as u64) as i64 - 8
}
fn whole(size: usize) -> i64 {
    common::chunk_size(size as u64) as i64 - 8
}
fn counted_free(size: usize) -> i64 {
    common::chunk_size(size as u64) as i64
}

#[test]
fn range_lists_serve_a_smaller_request_with_a_cached_block_by_default() {
    // 5000 and 4500 bytes: within tidemalloc's default 32 KiB, past glibc's 1032 bytes.
    assert_eq!(range_reuse(5000, 4500, &[]), (0, 1, whole(5000)));
    let glibc = [("GLIBC_TUNABLES", "glibc.malloc.tcache_max=1032")];
    assert_eq!(
        range_reuse(5000, 4500, &glibc),
        (counted_free(5000), 1, split(4500))
    );
}

#[test]
fn tcache_max_above_the_default_caches_larger_blocks() {
    // 100000 bytes: past the default, so split in the arena; within a 128 KiB tcache_max.
    assert_eq!(
        range_reuse(100_000, 95_000, &[]),
        (counted_free(100_000), 1, split(95_000))
    );
    let raised = [("GLIBC_TUNABLES", "glibc.malloc.tcache_max=131072")];
    assert_eq!(
        range_reuse(100_000, 95_000, &raised),
        (0, 1, whole(100_000))
    );
}

#[test]
fn tcache_max_goes_up_to_four_mib_and_no_further() {
    // 1000000 bytes, kept in the heap by a 4 MiB mmap threshold.
    let with = |tcache_max: &str| {
        let tunables = format!("glibc.malloc.tcache_max={tcache_max}");
        range_reuse(
            1_000_000,
            950_000,
            &[
                ("MALLOC_MMAP_THRESHOLD_", "4194304"),
                ("GLIBC_TUNABLES", &tunables),
            ],
        )
    };
    assert_eq!(with("4194304"), (0, 1, whole(1_000_000)));
    assert_eq!(
        with("4194305"),
        (counted_free(1_000_000), 1, split(950_000))
    );
}

#[test]
fn range_lists_hold_a_share_of_bytes_per_list() {
    // Twenty 5000-byte frees: a range list holds what fits in 16 KiB of its sizes (at
    // least one), the rest go to the bins; with tcache_count=0 none is cached.
    let (fast, ordinary, cached) = freed("5000", "");
    assert_eq!(fast, 0);
    assert!((1..20).contains(&cached), "{cached} of 20 cached");
    assert_eq!(ordinary + cached, 20);
    assert_eq!(freed("5000", "glibc.malloc.tcache_count=0"), (0, 20, 0));
}

#[test]
fn range_lists_below_32_kib_hold_four_blocks() {
    // Twenty frees of one size: a full list hands half its chunks to the bins and caches
    // the new one, so it ends holding all its places. 16 KiB holds two 6000-byte chunks
    // and less than one 20000-byte chunk, yet a list below 32 KiB keeps four, so that sizes
    // freed and asked for in turn do not go to the arena at every other call; tcache_count
    // still bounds it. Past 32 KiB (with tcache_max raised) a list keeps one.
    assert_eq!(freed("6000", ""), (0, 16, 4));
    assert_eq!(freed("20000", ""), (0, 16, 4));
    assert_eq!(freed("20000", "glibc.malloc.tcache_count=2"), (0, 18, 2));
    assert_eq!(freed("40000", "glibc.malloc.tcache_max=65536"), (0, 19, 1));
}

/// The largest chunk of the range list that holds chunks of `size` bytes: range lists
/// split each doubling of the size into eight.
fn range_list_top(size: u64) -> u64 {
    let step = 1u64 << (63 - size.leading_zeros() - 3);
    (size / step + 1) * step - 16
}

/// The usable sizes range_classes.c reports: (fresh, after repeated sizes, after varied
/// sizes, in a new thread after that), with the contents of every block checked.
fn range_classes(tunables: &str) -> (i64, i64, i64, i64) {
    let out = run_tuned("range_classes", &[], tunables);
    let facts = out.facts();
    facts.expect(&[("intact", 1)]);
    (
        facts.int("fresh_usable"),
        facts.int("repeat_usable"),
        facts.int("vary_usable"),
        facts.int("thread_usable"),
    )
}

#[test]
fn range_chunks_are_carved_at_their_lists_largest_size_once_its_sizes_vary() {
    // A 6000-byte request takes a 6016-byte chunk, as in glibc, while the thread's range
    // requests find their sizes in its cache; once requests of its list keep finding the
    // list's cached chunk too small (random sizes of 1-32 KiB), the arena carves the
    // largest size of the list, 6128 bytes, which any later request of the list fits.
    // Each thread keeps its own count: a new thread starts on exact sizes.
    let exact = common::chunk_size(6000) as i64 - 8;
    let top = range_list_top(common::chunk_size(6000)) as i64 - 8;
    assert_eq!((exact, top), (6008, 6120));
    assert_eq!(range_classes(""), (exact, exact, top, exact));
    // Without range lists (glibc's tcache_max), every chunk is carved at its exact size.
    assert_eq!(
        range_classes("glibc.malloc.tcache_max=1032"),
        (exact, exact, exact, exact)
    );
}

/// The chunks each of the first six refills of one list takes from the arena.
fn refills(tunables: &str) -> Vec<i64> {
    let out = run_tuned("refill_batches", &[], tunables);
    let facts = out.facts();
    (0..6).map(|n| facts.int(&format!("refill_{n}"))).collect()
}

#[test]
fn refill_batches_start_small_and_double_up_to_half_a_list() {
    // A refill hands one chunk out and caches a batch: 4 the first time, then 8, 16 and
    // 32, and then 39, half of the 78 places a list of 208-byte chunks has (16 KiB of
    // them, fewer than the default 128).
    assert_eq!(refills(""), [5, 9, 17, 33, 40, 40]);
    assert_eq!(refills("glibc.malloc.tcache_count=16"), [5, 9, 9, 9, 9, 9]);
    // No cache: the arena hands out one chunk per request.
    assert_eq!(refills("glibc.malloc.tcache_count=0"), [1, 1, 1, 1, 1, 1]);
}
