//! Heap misuse (SPEC S6.2): every kind ends the process with SIGABRT and a one-line message
//! on stderr that names the function and the problem, in glibc's words where glibc has them.
//! Nothing may end in a segfault inside the allocator, nor carry on with a damaged heap.

mod common;

use common::CProgram;
use std::os::unix::process::ExitStatusExt;

/// Runs `misuse MODE` (with `tunables` in GLIBC_TUNABLES if not empty) and insists that it
/// dies of SIGABRT with exactly one line on stderr, one of `messages`.
fn aborts(mode: &str, tunables: &str, messages: &[&str]) {
    let program = CProgram::build("misuse");
    let mut cmd = program.command(&[mode]);
    if !tunables.is_empty() {
        cmd.env("GLIBC_TUNABLES", tunables);
    }
    let out = common::run(&mut cmd, common::DEFAULT_TIMEOUT);
    let what = format!(
        "misuse {mode}: status {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status, out.stdout, out.stderr
    );
    assert_eq!(out.status.signal(), Some(libc_sigabrt()), "{what}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {what}");
    assert!(messages.contains(&lines[0]), "unexpected message: {what}");
}

fn libc_sigabrt() -> i32 {
    6
}

const DOUBLE_FREE_TCACHE: &str = "free(): double free detected in tcache 2";
const IN_TRANSIT: &str = "free(): corrupted chunk on its way back to its arena";
/// glibc's thread-cache limit (requests up to 1032 bytes), where tidemalloc's default
/// caches up to 32 KiB: under it, 3000-byte blocks go straight to the arena's bins.
const GLIBC_CACHE: &str = "glibc.malloc.tcache_max=1032";

#[test]
fn double_free_of_a_small_block() {
    aborts("double-free-small", "", &[DOUBLE_FREE_TCACHE]);
}

#[test]
fn double_free_when_the_cache_is_full() {
    aborts(
        "double-free-small-cache-full",
        "",
        &[DOUBLE_FREE_TCACHE, "double free or corruption (fasttop)"],
    );
}

#[test]
fn double_free_of_a_fast_block_without_cache() {
    aborts(
        "double-free-small",
        "glibc.malloc.tcache_count=0",
        &["double free or corruption (fasttop)"],
    );
}

#[test]
fn double_free_of_a_medium_block() {
    aborts("double-free-medium", "", &[DOUBLE_FREE_TCACHE]);
    aborts(
        "double-free-medium",
        GLIBC_CACHE,
        &["double free or corruption (!prev)"],
    );
}

#[test]
fn double_free_of_a_block_waiting_in_a_bin() {
    aborts(
        "double-free-binned",
        "glibc.malloc.tcache_count=1",
        &["double free or corruption (!prev)"],
    );
}

#[test]
fn double_free_of_a_block_merged_into_top() {
    aborts("double-free-into-top", "", &[DOUBLE_FREE_TCACHE]);
    aborts(
        "double-free-into-top",
        GLIBC_CACHE,
        &["double free or corruption (top)"],
    );
}

#[test]
fn double_free_of_an_mmapped_block() {
    aborts("double-free-mmapped", "", &["free(): invalid pointer"]);
}

/// realloc frees the block it moved as free would, into the thread cache (as glibc does), or
/// with no cache into a fast bin; a second free is caught in either.
#[test]
fn free_of_a_block_realloc_moved() {
    aborts("double-free-after-realloc", "", &[DOUBLE_FREE_TCACHE]);
    aborts(
        "double-free-after-realloc",
        "glibc.malloc.tcache_count=0",
        &["double free or corruption (fasttop)"],
    );
}

#[test]
fn double_free_by_a_thread_of_another_arena() {
    aborts("double-free-other-thread-arena", "", &[DOUBLE_FREE_TCACHE]);
}

#[test]
fn free_of_an_interior_pointer() {
    aborts(
        "interior",
        "",
        &["free(): invalid pointer", "free(): invalid size"],
    );
}

#[test]
fn free_of_a_stale_pointer_into_merged_memory() {
    aborts("stale-merged-pointer", "", &["free(): invalid pointer"]);
}

#[test]
fn double_free_by_another_thread_after_it_handed_the_block_back() {
    aborts("double-free-after-hand-back", "", &[DOUBLE_FREE_TCACHE]);
    aborts(
        "double-free-range-after-hand-back",
        "",
        &[DOUBLE_FREE_TCACHE],
    );
}

#[test]
fn the_owner_frees_a_block_another_thread_handed_back() {
    aborts("owner-frees-a-handed-back-block", "", &[DOUBLE_FREE_TCACHE]);
}

/// Blocks another thread freed go back to their arena with their addresses in the blocks
/// themselves (links, and a count and addresses in a carrier). A write into them before the
/// owner takes them back must be reported, not followed: glibc's own lists segfault there.
#[test]
fn a_write_into_blocks_on_their_way_back_to_their_arena() {
    aborts("write-after-hand-back", "", &[IN_TRANSIT]);
    aborts("count-after-hand-back", "", &[IN_TRANSIT]);
    aborts("write-in-foreign-batch", "", &[IN_TRANSIT]);
}

#[test]
fn free_behind_a_copied_header() {
    aborts("copied-header", "", &["free(): invalid pointer"]);
}

#[test]
fn free_of_a_misaligned_pointer() {
    aborts("misaligned", "", &["free(): invalid pointer"]);
}

#[test]
fn free_of_a_stack_address() {
    aborts("stack", "", &["free(): invalid pointer"]);
}

#[test]
fn free_of_a_wild_address() {
    aborts("wild", "", &["free(): invalid pointer"]);
}

#[test]
fn free_of_the_lowest_pointer_as_a_new_threads_first_call() {
    aborts("wild-fresh-thread", "", &["free(): invalid pointer"]);
}

#[test]
fn realloc_of_a_stack_address() {
    aborts("wild-realloc", "", &["realloc(): invalid pointer"]);
}

#[test]
fn overflow_into_the_next_header() {
    aborts(
        "overflow-into-next-header",
        "",
        &[
            "free(): invalid pointer",
            "free(): invalid next size (fast)",
        ],
    );
}

#[test]
fn a_nul_byte_over_the_next_header() {
    aborts(
        "nul-byte-into-next-header",
        "",
        &["free(): invalid pointer"],
    );
}

#[test]
fn corrupted_top_size() {
    aborts("corrupted-top", "", &["malloc(): corrupted top size"]);
}

#[test]
fn corrupted_thread_cache_link() {
    aborts(
        "corrupted-cache-link",
        "",
        &["malloc(): unaligned tcache chunk detected"],
    );
}

#[test]
fn corrupted_fast_bin_link() {
    aborts(
        "corrupted-fast-link",
        "glibc.malloc.tcache_count=0",
        &["malloc(): unaligned fastbin chunk detected"],
    );
}

#[test]
fn corrupted_bin_links() {
    aborts(
        "corrupted-bin-links",
        GLIBC_CACHE,
        &["malloc(): unsorted double linked list corrupted"],
    );
}

#[test]
fn corrupted_size_of_a_cached_range_chunk() {
    aborts(
        "corrupted-cache-size",
        "",
        &["malloc(): invalid size (tcache)"],
    );
}
