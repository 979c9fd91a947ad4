//! S4.1: fork while other threads allocate, and fork from a signal handler that interrupted
//! malloc; every child must be able to allocate at once, in any thread, and exit.

mod common;

use common::CProgram;

/// 300 forks while three threads allocate, check and free without pause. Each child checks
/// and frees what it inherited from every thread's arena, allocates from its main thread
/// and from a new thread, and exits 0 within its deadline.
#[test]
fn fork_storm_under_allocating_threads() {
    let out = CProgram::build("s4_fork_storm").run(&["3", "300"]);
    out.facts().expect(&[
        ("forks", 300),
        ("children_ok", 300),
        ("children_failed", 0),
        ("children_hung", 0),
        ("first_failure_wait_status", 0),
        ("parent_corrupted_blocks", 0),
        ("worker_corrupted_blocks", 0),
        ("worker_failed_allocations", 0),
    ]);
}

/// 100 forks from a SIGALRM handler that interrupts the main thread's malloc/free loop while
/// another thread allocates too. The parent's fork must return and its interrupted call
/// carry on; each child allocates in the handler and in a new thread, and exits 0.
/// glibc's own allocator does not promise this (it deadlocks in fork); tidemalloc does.
#[test]
fn fork_from_a_signal_handler_that_interrupted_malloc() {
    let out = CProgram::build("s4_fork_in_signal").run(&["100"]);
    let facts = out.facts();
    facts.expect(&[
        ("forks", 100),
        ("fork_errors", 0),
        ("children_ok", 100),
        ("children_failed", 0),
        ("children_hung", 0),
        ("first_failure_wait_status", 0),
        ("parent_corrupted_blocks", 0),
    ]);
    assert!(
        facts.int("forks_inside_allocator") > 0,
        "no fork came from inside malloc or free, so the case was not exercised:\n{out}"
    );
}

/// 500 forks from a SIGALRM handler that interrupts the main thread while it looks up a
/// mapped block in the registry of mapped blocks (malloc_usable_size), while another thread
/// maps and frees blocks (recording each in the registry under its arena's lock, so it may
/// hold that lock while it waits for the registry). fork must return every time, and each
/// child must get a block of the mapped size in the handler and in a new thread.
#[test]
fn fork_from_a_signal_handler_that_interrupted_the_registry_of_mapped_blocks() {
    let out = CProgram::build("s4_fork_in_registry").run(&["500"]);
    out.facts().expect(&[
        ("forks", 500),
        ("fork_errors", 0),
        ("children_ok", 500),
        ("children_failed", 0),
        ("children_hung", 0),
        ("first_failure_wait_status", 0),
        ("usable_seen", 1),
    ]);
}
