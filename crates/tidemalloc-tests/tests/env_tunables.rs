//! The `MALLOC_*_` environment variables and `GLIBC_TUNABLES` `glibc.malloc.*` items each
//! have their effect (S5.1), and bad values are ignored, as glibc ignores them.

mod common;

use common::{CProgram, Output};

fn run_env(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let program = CProgram::build("env_tunables");
    let mut cmd = program.command(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    common::run(&mut cmd, common::DEFAULT_TIMEOUT)
}

fn facts_with(vars: &[(&str, &str)]) -> Output {
    let out = run_env(vars, &[]);
    out.assert_success(&format!("env_tunables with {vars:?}"));
    out
}

#[test]
fn top_pad_sets_the_first_growth() {
    for vars in [
        [("MALLOC_TOP_PAD_", "1048576")],
        [("GLIBC_TUNABLES", "glibc.malloc.top_pad=1048576")],
    ] {
        let out = facts_with(&vars);
        let growth = out.facts().int("first_growth_kib");
        assert!(
            (1024..1100).contains(&growth),
            "{vars:?}: grew {growth} KiB\n{out}"
        );
    }
    let out = facts_with(&[]);
    let growth = out.facts().int("first_growth_kib");
    assert!(
        (128..200).contains(&growth),
        "default: grew {growth} KiB\n{out}"
    );
}

#[test]
fn mmap_threshold_and_max_decide_where_big_blocks_live() {
    let out = facts_with(&[]);
    assert_eq!(out.facts().int("big_in_heap"), 0, "{out}");
    for vars in [
        [("MALLOC_MMAP_THRESHOLD_", "1048576")],
        [("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")],
        [("MALLOC_MMAP_MAX_", "0")],
        [("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")],
    ] {
        let out = facts_with(&vars);
        assert_eq!(out.facts().int("big_in_heap"), 1, "{vars:?}\n{out}");
    }
}

#[test]
fn trim_threshold_decides_when_the_break_moves_down() {
    let low = [
        ("MALLOC_MMAP_THRESHOLD_", "4194304"),
        ("MALLOC_TRIM_THRESHOLD_", "131072"),
    ];
    let out = facts_with(&low);
    assert!(
        out.facts().int("trim_kib") >= 512,
        "trimmed too little\n{out}"
    );
    for vars in [
        [
            ("MALLOC_MMAP_THRESHOLD_", "4194304"),
            ("MALLOC_TRIM_THRESHOLD_", "67108864"),
        ],
        [
            ("MALLOC_MMAP_THRESHOLD_", "4194304"),
            ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=67108864"),
        ],
    ] {
        let out = facts_with(&vars);
        assert_eq!(out.facts().int("trim_kib"), 0, "{vars:?}\n{out}");
    }
}

#[test]
fn perturb_fills_fresh_and_freed_memory() {
    for vars in [
        [("MALLOC_PERTURB_", "85")],
        [("GLIBC_TUNABLES", "glibc.malloc.perturb=85")],
    ] {
        let out = facts_with(&vars);
        let facts = out.facts();
        assert_eq!(facts.int("fresh_byte"), 0xff ^ 85, "{vars:?}\n{out}");
        assert_eq!(facts.int("freed_byte"), 85, "{vars:?}\n{out}");
        assert_eq!(facts.int("reused_byte"), 0xff ^ 85, "{vars:?}\n{out}");
    }
}

#[test]
fn check_action_decides_what_a_bad_free_does() {
    // Default (3): the message and abort.
    let out = run_env(&[], &["bad-free"]);
    assert!(out.stderr.contains("free(): invalid pointer"), "{out}");
    assert!(!out.status.success(), "{out}");
    // 1: the message, and the call is ignored.
    let out = run_env(&[("MALLOC_CHECK_", "1")], &["bad-free"]);
    out.assert_success("MALLOC_CHECK_=1");
    assert!(out.stderr.contains("free(): invalid pointer: 0x"), "{out}");
    assert_eq!(out.facts().int("survived_bad_free"), 1);
    // 0: silence.
    let out = run_env(&[("MALLOC_CHECK_", "0")], &["bad-free"]);
    out.assert_success("MALLOC_CHECK_=0");
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn bad_values_are_ignored() {
    let out = facts_with(&[
        ("MALLOC_TOP_PAD_", "lots"),
        ("MALLOC_MMAP_THRESHOLD_", "-"),
        ("MALLOC_PERTURB_", "0x"),
        (
            "GLIBC_TUNABLES",
            "glibc.malloc.perturb=300:glibc.malloc.check=9:glibc.malloc.arena_max=0:\
             glibc.malloc.tcache_unsorted_limit=x:=:glibc.malloc.=3",
        ),
    ]);
    let facts = out.facts();
    let growth = facts.int("first_growth_kib");
    assert!((128..200).contains(&growth), "grew {growth} KiB\n{out}");
    assert_eq!(facts.int("big_in_heap"), 0, "{out}");
    assert_ne!(facts.int("fresh_byte"), 0xff ^ 300 & 0xff, "{out}");
}
