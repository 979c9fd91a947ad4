//! S3: per-thread arenas, seen from outside: where thread blocks land in /proc/self/maps,
//! how many arenas threads get, their reuse after threads exit, and blocks freed by a thread
//! other than the one that allocated them.

mod common;

use common::{run, CProgram, Output, DEFAULT_TIMEOUT, KIB};

/// Runs `program` with the arena tunables removed from the environment, then `env` added.
fn run_with_env(program: &CProgram, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = program.command(args);
    cmd.env_remove("MALLOC_ARENA_MAX")
        .env_remove("MALLOC_ARENA_TEST")
        .envs(env.iter().copied());
    let out = run(&mut cmd, DEFAULT_TIMEOUT);
    out.assert_success(&format!("{args:?} with {env:?}"));
    out
}

/// S3.1, S3.2: a thread's block lies in an anonymous 64 MiB-aligned heap that is `rw-p` as
/// far as used and `---p` after; 4 MB more from the thread grow the `rw-p` part; the main
/// thread's blocks stay in [heap] before, during and after.
#[test]
fn a_thread_allocates_from_a_heap_of_its_own() {
    let out = CProgram::build("s3_thread_heaps").run(&[]);
    let facts = out.facts();
    facts.expect(&[
        ("thread_block_in_brk_heap", 0),
        ("thread_block_anonymous", 1),
        ("thread_mapping_start_aligned", 1),
        ("thread_heap_before", 1),
        ("thread_heap_after", 1),
        ("growth_blocks_in_same_heap", facts.int("growth_blocks")),
        ("growth_blocks_intact", facts.int("growth_blocks")),
        ("main_blocks_in_brk_heap_before", facts.int("main_blocks")),
        ("main_blocks_in_brk_heap_during", facts.int("main_blocks")),
        ("main_blocks_in_brk_heap_after", facts.int("main_blocks")),
    ]);
    let (before, after) = (facts.int("rw_before"), facts.int("rw_after"));
    assert!(
        before > 0 && before < 1024 * KIB,
        "a new heap should be read-write only at its start ({before} bytes):\n{out}"
    );
    // The blocks all lie in the read-write part, which started out smaller than them.
    assert!(
        after >= facts.int("growth_bytes") && after > before,
        "the read-write part went from {before} to {after} bytes for {} bytes of blocks:\n{out}",
        facts.int("growth_bytes")
    );
}

/// S3.2: a heap that grows a page at a time is made read-write `top_pad` bytes ahead, so
/// 1 MB of 4000-byte blocks changes its read-write size a handful of times (an mprotect call
/// each, where glibc makes one per page), never by more than the pad and a page past what
/// the blocks need; with `MALLOC_TOP_PAD_=0` it grows a page at a time, as glibc's heaps do.
#[test]
fn a_growing_thread_heap_is_made_read_write_a_top_pad_ahead() {
    let program = CProgram::build("s3_heap_growth");
    let grow = |env: &[(&str, &str)]| {
        let out = run_with_env(&program, &[], env);
        let facts = out.facts();
        facts.expect(&[
            ("blocks_past_rw", 0),
            ("blocks_intact", facts.int("blocks")),
        ]);
        let grown = facts.int("rw_end") - facts.int("rw_start");
        (
            facts.int("rw_changes"),
            grown,
            facts.int("grown_bytes"),
            out,
        )
    };
    let (changes, grown, needed, out) = grow(&[]);
    let pad = 128 * KIB;
    assert!(
        changes >= 1 && changes <= needed / pad + 2,
        "{changes} changes of the read-write size for {grown} bytes:\n{out}"
    );
    assert!(
        grown >= needed - pad && grown <= needed + pad + 4 * KIB,
        "the read-write part grew by {grown} bytes for {needed} bytes of blocks:\n{out}"
    );
    let (changes, grown, needed, out) = grow(&[("MALLOC_TOP_PAD_", "0")]);
    assert!(
        changes >= (needed / (4 * KIB)) * 3 / 4 && grown <= needed + 4 * KIB,
        "with no top pad: {changes} changes, {grown} bytes for {needed} bytes of blocks:\n{out}"
    );
}

/// S3.1, S3.3: 8 x cores + 8 threads alive together get arenas up to the limit of 8 x cores
/// (main arena included) and share beyond it; every block lies in [heap] or a thread heap,
/// and every thread heap holds a block of the thread that made it.
#[test]
fn arenas_stop_at_eight_per_core() {
    let out = run_with_env(&CProgram::build("s3_arena_limit"), &[], &[]);
    let facts = out.facts();
    let limit = 8 * facts.int("cores");
    let heaps = facts.int("thread_heaps_in_maps");
    facts.expect(&[
        ("corrupted_blocks", 0),
        ("heaps_holding_blocks", heaps),
        (
            "blocks_in_thread_heaps",
            facts.int("threads") - facts.int("blocks_in_brk_heap"),
        ),
    ]);
    // Below the limit every new thread makes an arena, and there are more threads than
    // that: the arenas reach the limit exactly, never more.
    assert_eq!(
        heaps + 1,
        limit,
        "{heaps} thread heaps + the main arena for a limit of {limit} arenas:\n{out}"
    );
}

/// S3.1: with MALLOC_ARENA_MAX=1, or mallopt(M_ARENA_MAX, 1) before the threads start, every
/// thread shares the main arena: no thread heap, every block in [heap].
#[test]
fn arena_max_one_keeps_every_thread_in_the_main_arena() {
    let program = CProgram::build("s3_arena_limit");
    for (args, env) in [
        (&[][..], &[("MALLOC_ARENA_MAX", "1")][..]),
        (&["mallopt"][..], &[][..]),
    ] {
        let out = run_with_env(&program, args, env);
        let facts = out.facts();
        facts.expect(&[
            ("thread_heaps_in_maps", 0),
            ("blocks_in_thread_heaps", 0),
            ("blocks_in_brk_heap", facts.int("threads")),
            ("corrupted_blocks", 0),
        ]);
    }
}

/// S3.4: a thread started after another has exited lands in the exited thread's heap (20
/// times over); three threads alive together make two more heaps, and three later ones
/// reuse those three heaps without a fourth.
#[test]
fn exited_threads_hand_their_arenas_on() {
    let out = CProgram::build("s3_arena_reuse").run(&[]);
    let facts = out.facts();
    let together = facts.int("together");
    facts.expect(&[
        ("first_in_thread_heap", 1),
        ("heaps_after_first", 1),
        ("sequential_in_first_heap", facts.int("sequential_rounds")),
        ("heaps_after_sequential", 1),
        ("together_in_first_heap", 1),
        ("together_distinct_heaps", together),
        ("heaps_after_together", together),
        ("again_in_known_heaps", together),
        ("again_distinct_heaps", together),
        ("heaps_after_again", together),
    ]);
}

/// S3.4 under churn: 3000 short threads, at most 16 alive, each freeing blocks of earlier
/// threads and leaving new ones. No block is damaged; mallinfo2 sees the blocks left in
/// thread arenas and sees them go; malloc_stats lists one arena per thread heap plus the
/// main one and agrees with mallinfo2; the heaps stay within 8 x cores.
#[test]
fn thousands_of_short_threads_reuse_arenas() {
    let out = CProgram::build("thread_exit_storm").run(&["3000", "16"]);
    let facts = out.facts();
    facts.expect(&[
        ("threads", 3000),
        ("corrupted_blocks", 0),
        ("mmapped_after_free", 0),
    ]);
    let live = facts.int("live_bytes_before_free");
    let (before, after) = (
        facts.int("in_use_before_free"),
        facts.int("in_use_after_free"),
    );
    assert!(
        before >= live && after < live / 4,
        "mallinfo2 in use went from {before} to {after} bytes around freeing {live}:\n{out}"
    );
    let limit = 8 * facts.int("cores");
    let heaps = facts.int("thread_heaps_in_maps");
    assert!(
        (1..limit).contains(&heaps),
        "{heaps} thread heaps for a limit of {limit} arenas:\n{out}"
    );
    let stats = MallocStats::parse(&out);
    assert!(
        stats.arenas >= 2 && stats.arenas <= (heaps + 1).min(limit) as usize,
        "malloc_stats lists {} arenas for {heaps} thread heaps:\n{out}",
        stats.arenas
    );
    assert_eq!(
        stats.total_in_use, after,
        "malloc_stats and mallinfo2 disagree on the bytes in use:\n{out}"
    );
}

/// What malloc_stats printed on stderr: how many `Arena N:` sections, and the in-use bytes
/// of the `Total (incl. mmap):` section.
struct MallocStats {
    arenas: usize,
    total_in_use: i64,
}

impl MallocStats {
    fn parse(out: &Output) -> MallocStats {
        let lines: Vec<&str> = out.stderr.lines().collect();
        let arenas = lines
            .iter()
            .filter(|l| {
                l.strip_prefix("Arena ")
                    .and_then(|rest| rest.strip_suffix(':'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        let total_in_use = lines
            .iter()
            .skip_while(|l| **l != "Total (incl. mmap):")
            .find_map(|l| l.strip_prefix("in use bytes"))
            .and_then(|rest| rest.trim_start_matches([' ', '=']).trim().parse().ok())
            .unwrap_or_else(|| panic!("no total in use bytes from malloc_stats:\n{out}"));
        MallocStats {
            arenas,
            total_in_use,
        }
    }
}

/// Four producer/consumer pairs pass 200k blocks each (16 B to 300 KiB, filled in the
/// producer) to be checked word by word and freed in the consumer, into another thread's
/// arena.
#[test]
fn blocks_freed_by_another_thread_stay_intact() {
    let out = CProgram::build("cross_thread_free").run(&["4", "200000"]);
    out.facts().expect(&[
        ("blocks", 800_000),
        ("blocks_checked", 800_000),
        ("corrupted_blocks", 0),
    ]);
}

/// S3.2: a thread arena whose first heap is full starts a second one for a request its
/// large top cannot serve. Freeing that old top as the new heap starts once handed the new
/// heap straight back (it held nothing but top), and the request started it again for
/// ever: the program hung.
#[test]
fn a_full_heap_with_a_large_top_grows_into_a_new_heap() {
    let out = CProgram::build("heap_full").run(&[]);
    out.facts().expect(&[("served", 1), ("new_heap", 1)]);
}

/// A whole batch of blocks freed by a thread of another arena comes back to their owner:
/// with a 1000-byte block among them, which carries the others' addresses, and with a
/// 200-byte one, too small for them, when they go back as a chain.
#[test]
fn a_batch_freed_in_another_arena_comes_back_whole() {
    let program = CProgram::build("batch_return");
    for last in ["1000", "200"] {
        let out = program.run(&[last]);
        let facts = out.facts();
        assert_eq!(
            facts.int("small_returned"),
            31,
            "last block of {last}:\n{out}"
        );
        assert_eq!(
            facts.int("last_returned"),
            1,
            "last block of {last}:\n{out}"
        );
    }
}

/// A block past the thread cache's small lists, freed by a thread of another arena, goes
/// back to its arena at once rather than into the freeing thread's batch of foreign chunks
/// (which would hold up to 32 of them): its owner gets it back while that thread lives.
#[test]
fn large_blocks_freed_in_another_arena_go_back_at_once() {
    let program = CProgram::build("foreign_return");
    let out = run_with_env(&program, &[], &[]);
    out.facts().expect(&[("returned", 1)]);
}

/// A thread that grows another thread's block past its in-use neighbour gets the block
/// moved to where it allocates itself (its own heap), with its contents, rather than into
/// the arena of the thread that made it; the old block goes back to that arena.
#[test]
fn realloc_from_another_thread_moves_the_block_to_that_threads_heap() {
    let out = run_with_env(&CProgram::build("realloc_move"), &["other-thread"], &[]);
    out.facts().expect(&[
        ("block_in_brk_heap", 1),
        ("moved", 1),
        ("contents_kept", 1),
        ("in_threads_heap", 1),
    ]);
}

/// S3.5: malloc_trim(0) empties the calling thread's cache, and a thread's exit its own,
/// down to the block free parked last: afterwards mallinfo2 shows as much in use as before
/// the block was made (glibc's malloc_trim leaves its cache as it is).
#[test]
fn trim_and_thread_exit_give_back_all_the_cache_holds() {
    let program = CProgram::build("cache_flush");
    for mode in ["trim", "exit"] {
        let out = program.run(&[mode]);
        let facts = out.facts();
        assert_eq!(
            facts.int("in_use_after"),
            facts.int("in_use_before"),
            "{mode}:\n{out}"
        );
    }
}
