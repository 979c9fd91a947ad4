//! tidemalloc as the Rust global allocator while glibc's malloc serves C code in the same
//! process: both move the program break, and neither may corrupt the other (DESIGN.md,
//! "brk is shared"). glibc's blocks are allocated between ours so that each allocator finds
//! the break moved by the other; every block's contents are checked throughout.
//!
//! It runs without the test harness: glibc serves other threads from thread arenas in
//! mappings, and only its main thread uses the break.

use std::collections::BTreeMap;

#[global_allocator]
static GLOBAL: tidemalloc::TideMalloc = tidemalloc::TideMalloc;

extern "C" {
    fn sbrk(increment: isize) -> *mut u8;
}

fn brk() -> usize {
    // SAFETY: sbrk(0) only reads the break.
    unsafe { sbrk(0) as usize }
}

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: the caller owns `len` bytes at `p`.
        unsafe { *p.add(i) = seed ^ (i as u8) };
    }
}

fn intact(p: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: the caller owns `len` bytes at `p`.
    (0..len).all(|i| unsafe { *p.add(i) } == seed ^ (i as u8))
}

fn main() {
    // Keep both allocators on brk for these sizes.
    let mut ours: Vec<Vec<u8>> = Vec::new();
    let mut theirs: BTreeMap<usize, (usize, u8)> = BTreeMap::new();
    let mut foreign_moves = 0;
    for round in 0..200u32 {
        let before = brk();
        let len = 20_000 + (round as usize * 7919) % 90_000;
        // SAFETY: glibc's malloc (this process's C allocator, not interposed here).
        let p = unsafe { libc::malloc(len) } as *mut u8;
        assert!(!p.is_null());
        fill(p, len, round as u8);
        theirs.insert(p as usize, (len, round as u8));
        if brk() != before {
            foreign_moves += 1;
        }
        let v: Vec<u8> = (0..len)
            .map(|i| (i as u8) ^ (round as u8).wrapping_mul(3))
            .collect();
        ours.push(v);
        if round % 3 == 0 {
            let (&addr, &(l, s)) = theirs.iter().next().unwrap();
            assert!(intact(addr as *const u8, l, s), "glibc block damaged");
            // SAFETY: the block came from glibc's malloc and is freed once.
            unsafe { libc::free(addr as *mut libc::c_void) };
            theirs.remove(&addr);
            let gone = ours.remove(ours.len() / 2);
            drop(gone);
        }
        let report = tidemalloc::verify_heap().expect("tidemalloc heap intact");
        assert!(report.system_bytes > 0);
    }
    assert!(
        foreign_moves > 10,
        "glibc never moved the break: the test proves nothing"
    );
    let report = tidemalloc::verify_heap().unwrap();
    assert!(report.segments > 1, "tidemalloc never met a foreign break");
    for v in &ours {
        let key = v[0];
        assert!(
            v.iter().enumerate().all(|(i, &b)| b == (i as u8) ^ key),
            "our block damaged"
        );
    }
    for (&addr, &(l, s)) in &theirs {
        assert!(intact(addr as *const u8, l, s), "glibc block damaged");
        // SAFETY: each block came from glibc's malloc and is freed once.
        unsafe { libc::free(addr as *mut libc::c_void) };
    }
    drop(ours);
    tidemalloc::trim(0);
    tidemalloc::verify_heap().unwrap();
    println!(
        "shared_brk: glibc moved the break {foreign_moves} times; tidemalloc used {} segments",
        report.segments
    );
    println!("1 passed, 0 failed");
}
