//! SPEC S1: how the allocator gets memory from the kernel, seen from a C program running on
//! the preloaded library: the break, `/proc/self/maps`, mallinfo2 and page faults.

mod common;

use common::{CProgram, KIB, MIB};

/// S1.1: the first `malloc(100)` moves the break by the 128 KiB top pad plus the request
/// rounded to a page (glibc: 132 KiB), and the block lies in `[heap]`.
#[test]
fn s1_1_first_malloc_grows_the_break_by_the_top_pad() {
    let out = CProgram::build("s1_1_first_malloc").run(&[]);
    let facts = out.facts();
    let growth = facts.int("brk_growth");
    let page = facts.int("page_size");
    assert!(
        (128 * KIB..=128 * KIB + 2 * page).contains(&growth),
        "the first malloc(100) grew the break by {growth} bytes, expected 128 KiB + a page:\n{out}"
    );
    facts.expect(&[("in_heap", 1), ("below_break", 1)]);
}

/// S1.2: at and above the 128 KiB threshold a block gets an anonymous mapping of its own,
/// 16 bytes into a page, counted by hblks/hblkhd, and unmapped by free.
#[test]
fn s1_2_large_blocks_get_their_own_mapping() {
    let out = CProgram::build("s1_2_mmapped_chunk").run(&[]);
    let facts = out.facts();
    let page = facts.int("page_size");
    for (name, size) in [("at_threshold", 128 * KIB), ("one_mib", MIB)] {
        let key = |suffix: &str| format!("{name}_{suffix}");
        facts.expect(&[
            (&key("in_heap"), 0),
            (&key("anonymous"), 1),
            (&key("page_offset"), 16),
            (&key("hblks_delta"), 1),
            (&key("intact"), 1),
            (&key("mapped_after_free"), 0),
            (&key("hblks_after_free"), 0),
            (&key("hblkhd_after_free"), 0),
        ]);
        // The mapping holds the 16-byte header and the request, rounded up to pages.
        let mapped = (size + 16 + page - 1) / page * page;
        facts.expect(&[(&key("hblkhd_delta"), mapped)]);
    }
}

/// S1.3: after a 1 MiB mmapped block is freed, the next 1 MiB request comes from the heap
/// and the raised trim threshold keeps a 1 MiB free top instead of trimming it.
#[test]
fn s1_3_freeing_a_mapped_block_raises_the_threshold() {
    let out = CProgram::build("s1_3_dynamic_threshold").run(&["dynamic"]);
    out.facts().expect(&[
        ("first_in_heap", 0),
        ("first_anonymous", 1),
        ("second_in_heap", 1),
        ("second_anonymous", 0),
        ("second_hblks_delta", 0),
        ("grown_intact", 1),
        ("top_in_heap", 1),
        ("brk_drop_after_top_free", 0),
    ]);
}

/// S1.3: a threshold set with mallopt stays put: after the same free/malloc/realloc cycle
/// every 1 MiB block is still mmapped.
#[test]
fn s1_3_mallopt_threshold_turns_the_adjustment_off() {
    let out = CProgram::build("s1_3_dynamic_threshold").run(&["fixed"]);
    out.facts().expect(&[
        ("mallopt_result", 1),
        ("first_anonymous", 1),
        ("second_in_heap", 0),
        ("second_anonymous", 1),
        ("second_hblks_delta", 1),
        ("grown_intact", 1),
        ("grown_in_heap", 0),
        ("grown_anonymous", 1),
        ("top_in_heap", 0),
    ]);
}

/// S1.4: with a mapping right above the break, the heap cannot grow with brk; 4 MiB of
/// small blocks still succeed (from mmap), intact, and never touch that mapping.
#[test]
fn s1_4_blocked_break_falls_back_to_mmap() {
    let out = CProgram::build("s1_4_brk_blocked").run(&["blocked"]);
    let facts = out.facts();
    facts.expect(&[
        ("failed", 0),
        ("overlapping", 0),
        ("damaged", 0),
        ("brk_moved", 0),
        ("region_untouched", 1),
        ("region_after_free_untouched", 1),
    ]);
    // Only what fitted in the first ~132 KiB of heap can be there; the rest was mmapped.
    let in_heap = facts.int("blocks_in_heap");
    assert!(
        in_heap * 64 * KIB <= 256 * KIB,
        "{in_heap} of the 64 KiB blocks are in [heap], whose break could not move:\n{out}"
    );
}

/// S1.4: a page someone else took with sbrk between two mallocs is never handed out, and
/// the allocator keeps working around it.
#[test]
fn s1_4_foreign_sbrk_is_left_alone() {
    let out = CProgram::build("s1_4_brk_blocked").run(&["foreign"]);
    out.facts().expect(&[
        ("failed", 0),
        ("overlapping", 0),
        ("damaged", 0),
        ("region_untouched", 1),
        ("region_after_free_untouched", 1),
    ]);
}

/// S1.5: 1 GiB costs no page faults until touched, then about one per touched page;
/// sizes no address space can hold give NULL with ENOMEM.
#[test]
fn s1_5_memory_is_virtual_until_touched() {
    let out = CProgram::build("s1_5_lazy_memory").run(&[]);
    let facts = out.facts();
    let touched = facts.int("touched_pages");
    let malloc_faults = facts.int("malloc_faults");
    let touch_faults = facts.int("touch_faults");
    let resident = facts.int("resident_pages");
    assert!(
        malloc_faults < 16,
        "malloc(1 GiB) itself cost {malloc_faults} page faults:\n{out}"
    );
    assert!(
        touch_faults >= touched * 9 / 10 && touch_faults <= touched * 11 / 10 + 16,
        "touching {touched} pages cost {touch_faults} faults:\n{out}"
    );
    assert!(
        resident >= touched && resident <= touched + 16,
        "{resident} pages of the 1 GiB block are resident after touching {touched}:\n{out}"
    );
    for size in ["half_address_space", "past_ptrdiff_max", "size_max"] {
        facts.expect(&[(&format!("{size}_null"), 1), (&format!("{size}_enomem"), 1)]);
    }
}
