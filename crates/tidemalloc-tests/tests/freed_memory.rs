//! SPEC S2: how the allocator keeps freed memory: chunk headers, bins, coalescing, the top
//! chunk, trimming and reuse, observed from C programs on the preloaded library.

mod common;

use common::{chunk_size, CProgram, KIB, MIB};

/// S2.1: usable sizes follow glibc's chunk arithmetic (8-byte header, 16-byte granules,
/// 32-byte minimum; mmapped chunks: a 16-byte header at the start of whole pages) and
/// every block is 16-aligned.
#[test]
fn s2_1_usable_size_follows_the_chunk_header() {
    let out = CProgram::build("s2_1_chunk_header").run(&[]);
    let facts = out.facts();
    let page = facts.int("page_size") as u64;
    for n in [
        0u64, 1, 8, 16, 23, 24, 25, 32, 40, 41, 56, 57, 100, 127, 128, 1000, 1024, 4096, 10000,
        65536, 131071, 200000, 1048576,
    ] {
        let expected = if chunk_size(n) >= 128 * 1024 {
            (chunk_size(n) + 8).div_ceil(page) * page - 16
        } else {
            chunk_size(n) - 8
        };
        facts.expect(&[
            (&format!("usable_{n}"), expected as i64),
            (&format!("aligned_{n}"), 1),
        ]);
    }
    // The values the seeds and glibc quote.
    facts.expect(&[("usable_0", 24), ("usable_24", 24), ("usable_25", 40)]);
}

/// S2.2: a freed 40 KiB chunk (past what the thread cache holds by default) stays with the
/// allocator: the break does not move, mallinfo2 counts one more free chunk of its size,
/// and the same request gets it back.
#[test]
fn s2_2_freed_chunks_are_kept_in_bins() {
    let out = CProgram::build("s2_2_freed_kept").run(&[]);
    let facts = out.facts();
    let chunk = chunk_size(40 * 1024) as i64;
    facts.expect(&[
        ("forty_kib_brk_moved", 0),
        ("forty_kib_fordblks_delta", chunk),
        ("forty_kib_ordblks_delta", 1),
        ("forty_kib_uordblks_delta", -chunk),
        ("forty_kib_reused", 1),
        ("forty_kib_brk_moved_on_reuse", 0),
    ]);
}

/// S2.2: freed 1 KiB and 4 KiB chunks are kept too. The thread cache holds chunks these
/// sizes (glibc's up to 1 KiB, tidemalloc's up to 32 KiB) and counts them as in use; a bin
/// counts them as free. Either way the bytes are not lost: the break stays and requests of
/// that size get the same chunk back (the next one, or, for the small chunk tidemalloc's
/// free parks, one of the next few; see s2_2_freed_kept.c).
#[test]
fn s2_2_freed_cacheable_chunk_is_kept_and_reused() {
    let out = CProgram::build("s2_2_freed_kept").run(&[]);
    let facts = out.facts();
    for (name, size) in [("kib", 1024), ("four_kib", 4096)] {
        let chunk = chunk_size(size) as i64;
        facts.expect(&[
            (&format!("{name}_brk_moved"), 0),
            (&format!("{name}_reused"), 1),
            (&format!("{name}_brk_moved_on_reuse"), 0),
        ]);
        let fordblks = facts.int(&format!("{name}_fordblks_delta"));
        let counted_free = (fordblks, facts.int(&format!("{name}_ordblks_delta"))) == (chunk, 1);
        let cached_in_use = (fordblks, facts.int(&format!("{name}_uordblks_delta"))) == (0, 0);
        assert!(
            counted_free || cached_in_use,
            "a freed {name} chunk is neither one more free chunk of {chunk} bytes nor held as \
             in use by a cache:\n{}",
            facts.output()
        );
    }
}

/// S2.2: a freed block whose data looks like the mark tidemalloc's free chunks carry in
/// their second word is in use all the same: the thread cache keeps it as any other block of
/// its size (so mallinfo2 counts it as in use, not free) and hands it back for the next
/// request. Sent to the arena's bins, it would count as a free chunk there.
#[test]
fn a_block_whose_data_looks_free_is_cached_as_any_other() {
    let out = CProgram::build("s2_2_freed_kept").run(&[]);
    out.facts().expect(&[
        ("tagged_fordblks_delta", 0),
        ("tagged_uordblks_delta", 0),
        ("tagged_reused", 1),
    ]);
}

/// S2.2: small chunks go to the fast bins (after any thread cache fills): mallinfo2's
/// smblks/fsmblks count them, and all of them come back for requests of their size
/// (among twice as many requests, so that a thread cache holding others of the size
/// is used up first).
#[test]
fn s2_2_small_chunks_go_to_fast_bins() {
    let out = CProgram::build("s2_2_freed_kept").run(&[]);
    let facts = out.facts();
    let count = facts.int("small_count");
    let fast = facts.int("small_smblks_delta");
    assert!(
        fast >= 1 && fast <= count,
        "{fast} of {count} freed 64-byte chunks are in the fast bins:\n{out}"
    );
    facts.expect(&[
        ("small_fsmblks_delta", fast * chunk_size(64) as i64),
        ("small_reused", count),
        ("small_brk_moved", 0),
    ]);
}

/// S2.3, seed 000: with B=40K and D=100K neighbours in the heap and a live block after D,
/// freeing B then D leaves one free chunk of 140K (ordblks +1), which malloc(140K) returns.
#[test]
fn s2_3_neighbouring_free_chunks_coalesce() {
    let out = CProgram::build("s2_3_coalesce").run(&["guarded"]);
    let facts = out.facts();
    let b = chunk_size(40 * 1024) as i64;
    let d = chunk_size(100 * 1024) as i64;
    facts.expect(&[
        ("mallopt_result", 1),
        ("a_in_heap", 1),
        ("b_in_heap", 1),
        ("c_in_heap", 0),
        ("d_in_heap", 1),
        ("c_page_offset", 16),
        ("b_minus_a", chunk_size(30 * 1024) as i64),
        ("d_minus_b", b),
        ("c_mapped_after_free", 0),
        ("free_b_brk_moved", 0),
        ("free_b_ordblks_delta", 1),
        ("free_b_fordblks_delta", b),
        ("free_bd_ordblks_delta", 1),
        ("free_bd_fordblks_delta", b + d),
        ("again_is_b", 1),
        ("a_intact", 1),
    ]);
}

/// S2.3 and S2.5, seed 000 step by step: D borders top, so freeing it merges B, D and top;
/// the free top passes the 128 KiB trim threshold and the break moves down; B's address
/// is then the start of top and serves the next 40K request.
#[test]
fn s2_3_seed_walkthrough_merges_into_top_and_trims() {
    let out = CProgram::build("s2_3_coalesce").run(&["seed"]);
    let facts = out.facts();
    facts.expect(&[
        ("a_in_heap", 1),
        ("b_in_heap", 1),
        ("c_in_heap", 0),
        ("d_in_heap", 1),
        ("d_minus_b", chunk_size(40 * 1024) as i64),
        ("c_mapped_after_free", 0),
        ("free_b_brk_moved", 0),
        ("free_b_ordblks_delta", 1),
        ("again_is_b", 1),
        ("a_intact", 1),
    ]);
    let drop = facts.int("free_d_brk_drop");
    assert!(
        drop >= 100 * KIB,
        "freeing D (merging about 140K into top) moved the break down by {drop} bytes:\n{out}"
    );
}

/// S2.4: requests served by the top chunk come out one after the other, upwards, and
/// mallinfo2's keepcost (the top's size) shrinks by exactly their chunks; a freed 8000-byte
/// chunk split for a run of small requests hands them out side by side from its start.
#[test]
fn s2_4_top_chunk_and_last_remainder_are_split_in_order() {
    let out = CProgram::build("s2_4_top_remainder").run(&[]);
    let facts = out.facts();
    let step = chunk_size(1100) as i64;
    facts.expect(&[
        ("top_step", step),
        ("top_equal_steps", 1),
        ("top_keepcost_drop", 10 * step),
        ("remainder_first_is_big", 1),
        ("remainder_step", chunk_size(200) as i64),
        ("remainder_equal_steps", 1),
    ]);
}

/// S2.5: freeing a 4 MiB block at the top of the heap (mmap threshold raised so it lives
/// there) trims the heap: the break goes back down by about 4 MiB.
#[test]
fn s2_5_free_top_above_the_threshold_is_trimmed() {
    let out = CProgram::build("s2_5_trim").run(&["top"]);
    let facts = out.facts();
    facts.expect(&[("mallopt_mmap_threshold", 1), ("block_in_heap", 1)]);
    let growth = facts.int("brk_growth");
    let drop = facts.int("brk_drop");
    assert!(
        growth >= 4 * MIB,
        "malloc(4 MiB) grew the break by {growth}:\n{out}"
    );
    assert!(
        drop >= 4 * MIB - 128 * KIB && drop <= growth,
        "freeing the 4 MiB top block moved the break down by {drop} (it grew by {growth}):\n{out}"
    );
}

/// S2.5: with M_TRIM_THRESHOLD set above the free top, the break stays where it is.
#[test]
fn s2_5_trim_threshold_keeps_the_top() {
    let out = CProgram::build("s2_5_trim").run(&["no_trim"]);
    out.facts().expect(&[
        ("mallopt_mmap_threshold", 1),
        ("mallopt_trim_threshold", 1),
        ("block_in_heap", 1),
        ("brk_drop", 0),
    ]);
}

/// S2.5: a freed 4 MiB block between two live ones stays resident until malloc_trim(0),
/// which returns 1, gives its pages back (mincore, RssAnon) and leaves the neighbours be.
#[test]
fn s2_5_malloc_trim_releases_free_pages_in_the_middle() {
    let out = CProgram::build("s2_5_trim").run(&["middle"]);
    let facts = out.facts();
    facts.expect(&[
        ("middle_in_heap", 1),
        ("malloc_trim_result", 1),
        ("neighbours_intact", 1),
    ]);
    let pages = facts.int("middle_pages");
    let after_free = facts.int("resident_after_free");
    let after_trim = facts.int("resident_after_trim");
    let rss_drop = facts.int("rss_anon_drop_kb");
    assert!(
        pages >= 1023,
        "only {pages} pages of the touched 4 MiB were resident:\n{out}"
    );
    assert!(
        after_free >= pages - 1,
        "free alone released pages of the middle block ({after_free} of {pages} left):\n{out}"
    );
    assert!(
        after_trim <= 2,
        "{after_trim} pages of the free middle block are resident after malloc_trim(0):\n{out}"
    );
    assert!(
        rss_drop >= 3 * 1024,
        "RssAnon dropped by only {rss_drop} kB after malloc_trim(0):\n{out}"
    );
}

/// S2.6: a chunk freed between two live ones serves the next request of its size, and of
/// a smaller size, without the heap growing.
#[test]
fn s2_6_freed_middle_chunk_is_reused() {
    let out = CProgram::build("s2_6_reuse").run(&[]);
    out.facts().expect(&[
        ("same_size_reused", 1),
        ("smaller_reused", 1),
        ("all_intact", 1),
        ("brk_moved", 0),
    ]);
}
