//! Threads and fork under load (S3 with one arena, S4.1), on the preloaded library.

mod common;

use common::CProgram;

/// Four threads, 100k random malloc/calloc/memalign/realloc/free each, blocks handed
/// between threads to be freed there; every byte of every block is checked.
#[test]
fn threads_share_the_allocator_without_corruption() {
    let out = CProgram::build("threads").run(&["4", "100000"]);
    out.facts().expect(&[
        ("ops", 400_000),
        ("corrupted_blocks", 0),
        ("failed_allocations", 0),
    ]);
}

/// S4.1: 200 forks while three threads allocate; every child allocates at once, from its
/// main thread and a new one, and exits 0 (a child stuck on a lock dies by its alarm).
#[test]
fn fork_while_threads_allocate() {
    let out = CProgram::build("fork").run(&["3", "200"]);
    out.facts().expect(&[
        ("forks", 200),
        ("children_ok", 200),
        ("children_failed", 0),
        ("children_hung", 0),
    ]);
}

/// Four threads grow mapped blocks with realloc while they map new ones: a block that
/// mremap moves gives its old range back to the kernel at once, and a new block mapped
/// there by another thread must still be known to the allocator when it is freed (it was
/// forgotten in the moved block's place, and its free reported as an invalid pointer).
#[test]
fn blocks_mapped_where_a_moved_block_was_stay_known() {
    let out = CProgram::build("mremap_race").run(&["4", "4000"]);
    out.facts().expect(&[("wrong_bytes", 0)]);
}
