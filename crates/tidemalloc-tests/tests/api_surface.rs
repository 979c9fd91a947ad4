//! glibc's malloc API as a drop-in must present it: bad input, the edge cases, the
//! introspection calls (S5.1), and the interposition itself.

mod common;

use common::{chunk_size, library, CProgram, MIB};

const EINVAL: i64 = 22;

/// Overflowing sizes give NULL and ENOMEM and leave the old block as it was.
#[test]
fn overflowing_sizes_fail_cleanly() {
    let out = CProgram::build("bad_input").run(&[]);
    out.facts().expect(&[
        ("calloc_overflow_null", 1),
        ("calloc_overflow_enomem", 1),
        ("reallocarray_overflow_null", 1),
        ("reallocarray_overflow_enomem", 1),
        ("realloc_huge_null", 1),
        ("realloc_huge_enomem", 1),
        ("old_block_intact", 1),
        ("old_block_usable_unchanged", 1),
        ("old_block_still_reallocs", 1),
    ]);
}

/// posix_memalign refuses alignments that are not a power of two times sizeof(void*) with
/// EINVAL and leaves `*p` alone; memalign honours every power of two from 16 to 1 MiB.
#[test]
fn alignments_are_checked_and_honoured() {
    let out = CProgram::build("bad_input").run(&[]);
    let facts = out.facts();
    facts.expect(&[
        ("posix_memalign_3", EINVAL),
        ("posix_memalign_3_untouched", 1),
        ("posix_memalign_4", EINVAL),
        ("posix_memalign_4_untouched", 1),
        ("posix_memalign_24", EINVAL),
        ("posix_memalign_0", EINVAL),
        ("posix_memalign_0_untouched", 1),
        ("posix_memalign_64", 0),
        ("posix_memalign_64_aligned", 1),
        ("memalign_failed", 0),
        ("memalign_misaligned", 0),
        ("memalign_damaged", 0),
        ("memalign_largest", MIB),
    ]);
}

/// aligned_alloc(3, 10): glibc 2.36 rounds the alignment up to 4 (it is memalign there);
/// 2.38+ returns NULL with EINVAL. Either is a faithful drop-in; nothing else is.
#[test]
fn aligned_alloc_with_a_bad_alignment_rounds_or_refuses() {
    let out = CProgram::build("bad_input").run(&[]);
    let facts = out.facts();
    let refused = facts.flag("aligned_alloc_3_null") && facts.flag("aligned_alloc_3_einval");
    let rounded = facts.flag("aligned_alloc_3_aligned_4");
    assert!(
        refused ^ rounded,
        "aligned_alloc(3, 10) neither refused with EINVAL nor rounded to 4:\n{out}"
    );
}

/// realloc(p, 0) frees p and returns NULL; free(NULL) does nothing; free keeps errno;
/// malloc_usable_size(NULL) is 0; malloc(0) is unique; valloc and pvalloc page-align.
#[test]
fn edge_cases_behave_as_glibc() {
    let out = CProgram::build("bad_input").run(&[]);
    out.facts().expect(&[
        ("realloc_zero_null", 1),
        ("realloc_zero_hblks_delta", -1),
        ("realloc_zero_unmapped", 1),
        ("realloc_null_is_malloc", 1),
        ("free_null_keeps_errno", 1),
        ("free_null_first_in_thread_keeps_errno", 1),
        ("free_keeps_errno_small", 1),
        ("free_keeps_errno_mmapped", 1),
        ("usable_size_null", 0),
        ("malloc_zero_unique", 1),
        ("pvalloc_0_page_aligned", 1),
        ("pvalloc_1_page_aligned", 1),
        ("pvalloc_1_whole_page", 1),
        ("valloc_1_page_aligned", 1),
        ("valloc_5000_page_aligned", 1),
        ("realloc_to_mmapped_keeps_data", 1),
        ("realloc_shrink_keeps_data", 1),
        ("realloc_within_usable_in_place", 1),
        ("realloc_small_shrink_in_place", 1),
        ("realloc_shrink_splits_in_place", 1),
    ]);
}

/// realloc that cannot grow a block in place (its neighbour is in use) moves it with its
/// contents and frees the old block as free() would: into the front of the thread cache, as
/// glibc's realloc does, so the next request of its size gets it back before the blocks
/// freed earlier.
#[test]
fn a_block_realloc_moves_is_freed_into_the_thread_cache() {
    let out = CProgram::build("realloc_move").run(&["same-thread"]);
    out.facts().expect(&[
        ("moved", 1),
        ("contents_kept", 1),
        ("old_block_reused_first", 1),
        ("all_intact", 1),
    ]);
}

/// S5.1: mallopt returns 1 for every parameter glibc 2.36 accepts (an unknown one
/// included), 0 for M_MXFAST above 160, and the settings take effect.
#[test]
fn mallopt_answers_as_glibc() {
    let out = CProgram::build("introspection").run(&["mallopt"]);
    out.facts().expect(&[
        ("unknown_param", 1),
        ("mxfast_160", 1),
        ("mxfast_161", 0),
        ("mxfast_0", 1),
        ("mmap_threshold_64mib", 1),
        ("trim_threshold_1gib", 1),
        ("top_pad", 1),
        ("mmap_max_0", 1),
        ("perturb", 1),
        ("check_action", 1),
        ("arena_max", 1),
        ("arena_test", 1),
        ("mmap_max_0_hblks_delta", 0),
        ("mmap_max_0_in_heap", 1),
        ("perturb_fill", 1),
    ]);
}

/// mallinfo2 follows the program: a 1 MiB block adds one mmapped chunk of 1 MiB and a page
/// to hblks/hblkhd, ten 10000-byte blocks add their chunks to uordblks, and the fields
/// agree with each other (arena = in use + free, top <= free) and with mallinfo.
#[test]
fn mallinfo2_counts_what_was_allocated() {
    let out = CProgram::build("introspection").run(&["mallinfo"]);
    let facts = out.facts();
    let field = |at: &str, name: &str| facts.int(&format!("{at}_{name}"));
    assert_eq!(field("big", "hblks") - field("start", "hblks"), 1, "{out}");
    assert_eq!(
        field("big", "hblkhd") - field("start", "hblkhd"),
        MIB + facts.int("page_size"),
        "hblkhd did not grow by the 1 MiB block's mapping:\n{out}"
    );
    let small = field("small", "uordblks") - field("big", "uordblks");
    let chunks = 10 * chunk_size(10000) as i64;
    assert_eq!(small, chunks, "uordblks after ten malloc(10000):\n{out}");
    for at in ["start", "big", "small"] {
        assert_eq!(
            field(at, "arena"),
            field(at, "uordblks") + field(at, "fordblks"),
            "{at}: arena is not uordblks + fordblks:\n{out}"
        );
        assert!(
            field(at, "keepcost") <= field(at, "fordblks"),
            "{at}:\n{out}"
        );
        assert!(
            field(at, "ordblks") >= 1,
            "{at}: the top counts as a free chunk:\n{out}"
        );
        assert_eq!(field(at, "usmblks"), 0, "{at}:\n{out}");
    }
    assert_eq!(
        facts.int("old_uordblks"),
        field("small", "uordblks"),
        "{out}"
    );
    assert_eq!(facts.int("old_hblkhd"), field("small", "hblkhd"), "{out}");
}

/// malloc_stats prints glibc's report on stderr, with the same numbers as mallinfo2.
#[test]
fn malloc_stats_prints_glibcs_report() {
    let out = CProgram::build("introspection").run(&["stats"]);
    let facts = out.facts();
    let stat = |label: &str, nth: usize| -> i64 {
        out.stderr
            .lines()
            .filter(|l| l.starts_with(label))
            .nth(nth)
            .and_then(|l| l.split('=').nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} line #{nth} in malloc_stats:\n{out}"))
    };
    let lines: Vec<&str> = out.stderr.lines().collect();
    for expected in ["Arena 0:", "Total (incl. mmap):"] {
        assert!(lines.contains(&expected), "no {expected:?} line:\n{out}");
    }
    assert_eq!(stat("system bytes", 0), facts.int("now_arena"), "{out}");
    assert_eq!(stat("in use bytes", 0), facts.int("now_uordblks"), "{out}");
    let total_system = stat("system bytes", 1);
    let total_in_use = stat("in use bytes", 1);
    assert_eq!(
        total_system,
        facts.int("now_arena") + facts.int("now_hblkhd"),
        "{out}"
    );
    assert_eq!(
        total_in_use,
        facts.int("now_uordblks") + facts.int("now_hblkhd"),
        "{out}"
    );
    assert!(stat("max mmap regions", 0) >= 1, "{out}");
    assert!(stat("max mmap bytes", 0) >= MIB, "{out}");
}

/// malloc_info(0, f) writes glibc's XML: `<malloc version="1">`, heap 0, and totals that
/// count the mmapped 1 MiB block; malloc_info(1, f) fails, returning EINVAL as glibc does.
#[test]
fn malloc_info_writes_glibcs_xml() {
    let out = CProgram::build("introspection").run(&["info"]);
    let facts = out.facts();
    facts.expect(&[("malloc_info_1_result", EINVAL)]);
    let start = out
        .stdout
        .find("<malloc ")
        .unwrap_or_else(|| panic!("no <malloc> element:\n{out}"));
    let end = out
        .stdout
        .find("</malloc>")
        .unwrap_or_else(|| panic!("no </malloc>:\n{out}"))
        + "</malloc>".len();
    let xml = &out.stdout[start..end];
    let doc = roxmltree::Document::parse(xml)
        .unwrap_or_else(|e| panic!("malloc_info's XML does not parse: {e}\n{out}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "malloc");
    assert_eq!(root.attribute("version"), Some("1"));
    let heap0 = root
        .children()
        .find(|n| n.has_tag_name("heap") && n.attribute("nr") == Some("0"))
        .unwrap_or_else(|| panic!("no <heap nr=\"0\">:\n{xml}"));
    let typed = |parent: roxmltree::Node, tag: &str, kind: &str, attr: &str| -> i64 {
        parent
            .children()
            .find(|n| n.has_tag_name(tag) && n.attribute("type") == Some(kind))
            .and_then(|n| n.attribute(attr))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no <{tag} type=\"{kind}\" {attr}=…>:\n{xml}"))
    };
    assert_eq!(
        typed(heap0, "system", "current", "size"),
        facts.int("now_arena"),
        "{xml}"
    );
    assert_eq!(typed(root, "total", "mmap", "count"), 1, "{xml}");
    assert_eq!(
        typed(root, "total", "mmap", "size"),
        facts.int("now_hblkhd"),
        "{xml}"
    );
    assert!(typed(root, "system", "current", "size") >= facts.int("now_arena"));
}

/// Every malloc function resolves, for the whole process, to libtidemalloc.so, and the
/// marker `tidemalloc_version` is exported and answers.
#[test]
fn malloc_resolves_to_the_preloaded_library() {
    let out = CProgram::build("interposition").run(&[]);
    let facts = out.facts();
    let lib = library().expect("this test needs the library preloaded");
    let lib_name = lib.file_name().and_then(|n| n.to_str()).unwrap();
    assert!(facts.flag("marker_found"), "no tidemalloc_version:\n{out}");
    let symbols = [
        "malloc",
        "free",
        "calloc",
        "realloc",
        "reallocarray",
        "memalign",
        "posix_memalign",
        "aligned_alloc",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "mallopt",
        "malloc_trim",
        "mallinfo",
        "mallinfo2",
        "malloc_stats",
        "malloc_info",
        "__libc_malloc",
        "__libc_free",
        "__libc_calloc",
        "__libc_realloc",
        "__libc_memalign",
    ];
    let keys = symbols
        .iter()
        .map(|s| format!("owner_{s}"))
        .chain(["direct_call_owner".to_string(), "marker_owner".to_string()]);
    let wrong: Vec<String> = keys
        .filter(|key| !facts.str(key).ends_with(lib_name))
        .map(|key| format!("{key}={}", facts.str(&key)))
        .collect();
    assert!(
        wrong.is_empty(),
        "not served by {lib_name}: {}\n{out}",
        wrong.join(", ")
    );
    assert!(!facts.str("version").is_empty(), "{out}");
}

/// Loaded with dlopen (not preloaded), the library fits in the static TLS glibc keeps for
/// such libraries, and its own malloc and free work there.
#[test]
fn the_library_loads_with_dlopen() {
    let lib = library().expect("the library under test");
    let program = CProgram::build("dlopen");
    let mut cmd = program.command(&[lib.to_str().expect("a UTF-8 path")]);
    cmd.env_remove("LD_PRELOAD");
    let out = common::run(&mut cmd, common::DEFAULT_TIMEOUT);
    out.assert_success("dlopen");
    out.facts().expect(&[("loaded", 1), ("works", 1)]);
}
