//! Model-based test: random sequences of malloc, calloc, realloc, memalign and free against a
//! model of the live blocks. Every block is filled with its own pattern and checked after each
//! step, and the whole heap is walked (`verify_heap`) after each step: sizes add up, no two
//! free chunks touch, every free chunk is in its bin, top is last, and the in-use bytes the
//! walk finds are exactly those of the live blocks. Now and then the program break is moved
//! from outside, as a second allocator in the process would.
//!
//! This is the only test in its binary, so nothing else allocates from tidemalloc meanwhile
//! (the test harness itself runs on glibc's malloc).

use proptest::prelude::*;
use tidemalloc::api;

#[derive(Clone, Debug)]
enum Op {
    Malloc(usize),
    Calloc(usize, usize),
    Realloc(usize, usize),
    Memalign(u32, usize),
    Free(usize),
    Trim,
    ForeignBreak(isize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..160,
        3 => 160usize..2048,
        2 => 2048usize..70_000,
        1 => 100_000usize..600_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => size().prop_map(Op::Malloc),
        1 => (1usize..64, 1usize..300).prop_map(|(n, s)| Op::Calloc(n, s)),
        3 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        1 => (5u32..14, size()).prop_map(|(a, s)| Op::Memalign(a, s)),
        5 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::Trim),
        1 => (1isize..9000).prop_map(Op::ForeignBreak),
    ]
}

struct Block {
    ptr: *mut u8,
    len: usize,
    seed: u8,
}

fn fill(b: &Block) {
    for i in 0..b.len {
        // SAFETY: the block has at least `len` bytes.
        unsafe { *b.ptr.add(i) = b.seed.wrapping_add(i as u8) };
    }
}

fn intact(b: &Block, len: usize) -> bool {
    // SAFETY: the block has at least `len` bytes.
    (0..len).all(|i| unsafe { *b.ptr.add(i) } == b.seed.wrapping_add(i as u8))
}

fn check_heap(live: &[Block]) -> Result<(), TestCaseError> {
    let report = tidemalloc::verify_heap()
        .map_err(|e| TestCaseError::fail(format!("heap walk: {} at {:#x}", e.what, e.at)))?;
    let (mut arena_bytes, mut arena_blocks, mut mapped_blocks) = (0, 0, 0);
    for b in live {
        prop_assert!(intact(b, b.len), "block contents changed");
        // SAFETY: the block is live.
        let usable = unsafe { api::malloc_usable_size(b.ptr) };
        prop_assert!(usable >= b.len);
        prop_assert_eq!(b.ptr as usize % 16, 0);
        // Arena chunks give size - 8 usable bytes, mmapped ones size - 16; sizes are multiples
        // of 16, so the remainder tells them apart.
        if usable % 16 == 8 {
            arena_bytes += usable + 8;
            arena_blocks += 1;
        } else {
            mapped_blocks += 1;
        }
    }
    prop_assert_eq!(report.in_use_bytes, arena_bytes);
    prop_assert_eq!(report.in_use_chunks, arena_blocks);
    prop_assert_eq!(tidemalloc::mallinfo2().hblks, mapped_blocks);
    Ok(())
}

fn run(ops: Vec<Op>, seed: u8) -> Result<(), TestCaseError> {
    let mut live: Vec<Block> = Vec::new();
    let mut next_seed = seed;
    let mut result = Ok(());
    for op in ops {
        next_seed = next_seed.wrapping_add(37);
        match op {
            Op::Malloc(n) => {
                let ptr = api::malloc(n);
                prop_assert!(!ptr.is_null());
                let b = Block {
                    ptr,
                    len: n,
                    seed: next_seed,
                };
                fill(&b);
                live.push(b);
            }
            Op::Calloc(n, s) => {
                let ptr = api::calloc(n, s);
                prop_assert!(!ptr.is_null());
                // SAFETY: calloc returned n * s bytes.
                let zero = (0..n * s).all(|i| unsafe { *ptr.add(i) } == 0);
                prop_assert!(zero, "calloc memory is not zeroed");
                let b = Block {
                    ptr,
                    len: n * s,
                    seed: next_seed,
                };
                fill(&b);
                live.push(b);
            }
            Op::Realloc(i, n) if !live.is_empty() => {
                let i = i % live.len();
                let old = &live[i];
                let keep = old.len.min(n);
                // SAFETY: the block is live; n == 0 frees it.
                let ptr = unsafe { api::realloc(old.ptr, n) };
                if n == 0 {
                    prop_assert!(ptr.is_null());
                    live.swap_remove(i);
                } else {
                    prop_assert!(!ptr.is_null());
                    let moved = Block {
                        ptr,
                        len: keep,
                        seed: old.seed,
                    };
                    prop_assert!(intact(&moved, keep), "realloc lost contents");
                    let b = Block {
                        ptr,
                        len: n,
                        seed: next_seed,
                    };
                    fill(&b);
                    live[i] = b;
                }
            }
            Op::Memalign(log, n) => {
                let align = 1usize << log;
                let ptr = api::memalign(align, n);
                prop_assert!(!ptr.is_null());
                prop_assert_eq!(ptr as usize % align, 0);
                let b = Block {
                    ptr,
                    len: n,
                    seed: next_seed,
                };
                fill(&b);
                live.push(b);
            }
            Op::Free(i) if !live.is_empty() => {
                let b = live.swap_remove(i % live.len());
                // SAFETY: the block is live and forgotten by the model.
                unsafe { api::free(b.ptr) };
            }
            Op::Trim => {
                api::malloc_trim(0);
            }
            Op::ForeignBreak(n) => {
                // Someone else moves the break (by an odd amount, too); the next growth must
                // start a new segment rather than assume the break is still ours.
                // SAFETY: moving the break up only adds memory nobody uses.
                unsafe { libc::sbrk(n) };
            }
            Op::Realloc(..) | Op::Free(_) => {}
        }
        result = check_heap(&live);
        if result.is_err() {
            break;
        }
    }
    for b in live {
        // SAFETY: each block is live exactly once.
        unsafe { api::free(b.ptr) };
    }
    result?;
    check_heap(&[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_keep_the_heap_whole(
        ops in proptest::collection::vec(op(), 1..250),
        seed in any::<u8>(),
    ) {
        run(ops, seed)?;
    }
}
