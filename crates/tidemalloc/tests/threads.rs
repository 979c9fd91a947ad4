//! Threads on tidemalloc (S3): blocks cross threads with their contents checked, thousands of
//! short threads allocate and free what others made, and the heap stays whole.

use std::sync::{Arc, Mutex};
use tidemalloc::api;

struct Block(*mut u8, usize, u8);
// SAFETY: a block is plain memory handed from one thread to another, owned by one at a time.
unsafe impl Send for Block {}

fn make(len: usize, seed: u8) -> Block {
    let p = api::malloc(len);
    assert!(!p.is_null());
    for i in 0..len {
        // SAFETY: the block has `len` bytes.
        unsafe { *p.add(i) = seed ^ i as u8 };
    }
    Block(p, len, seed)
}

fn check_and_free(b: Block) {
    for i in 0..b.1 {
        // SAFETY: the block has `b.1` bytes.
        assert_eq!(
            unsafe { *b.0.add(i) },
            b.2 ^ i as u8,
            "block contents changed"
        );
    }
    // SAFETY: the block is live and freed once.
    unsafe { api::free(b.0) };
}

fn sizes(x: &mut u64) -> usize {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    match *x % 16 {
        0..=10 => 16 + (*x >> 8) as usize % 112,
        11..=14 => 128 + (*x >> 8) as usize % 4000,
        _ => 4096 + (*x >> 8) as usize % 200_000,
    }
}

#[test]
fn blocks_cross_threads_intact() {
    const THREADS: usize = 6;
    let queues: Arc<Vec<Mutex<Vec<Block>>>> =
        Arc::new((0..THREADS).map(|_| Mutex::new(Vec::new())).collect());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let queues = Arc::clone(&queues);
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
                let mut mine = Vec::new();
                for round in 0..30_000 {
                    let b = make(sizes(&mut x), (round + t) as u8);
                    if round % 2 == 0 {
                        queues[(t + 1) % THREADS].lock().unwrap().push(b);
                    } else {
                        mine.push(b);
                    }
                    if mine.len() > 64 {
                        check_and_free(mine.swap_remove((x % 64) as usize));
                    }
                    if round % 16 == 0 {
                        let taken = std::mem::take(&mut *queues[t].lock().unwrap());
                        taken.into_iter().for_each(check_and_free);
                    }
                }
                mine.into_iter().for_each(check_and_free);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for q in queues.iter() {
        std::mem::take(&mut *q.lock().unwrap())
            .into_iter()
            .for_each(check_and_free);
    }
    let report = tidemalloc::verify_heap().expect("heap intact after cross-thread frees");
    assert!(report.arenas > 1, "threads got arenas of their own");
}

#[test]
fn thread_exit_storm_reuses_arenas() {
    let pool: Arc<Mutex<Vec<Block>>> = Arc::new(Mutex::new(Vec::new()));
    for wave in 0..150 {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let mut x = (wave * 16 + t + 1) as u64;
                    let inherited: Vec<Block> = {
                        let mut p = pool.lock().unwrap();
                        let n = p.len().min(8);
                        p.drain(..n).collect()
                    };
                    inherited.into_iter().for_each(check_and_free);
                    let made: Vec<Block> = (0..24).map(|i| make(sizes(&mut x), i as u8)).collect();
                    pool.lock().unwrap().extend(made.into_iter().take(12));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    std::mem::take(&mut *pool.lock().unwrap())
        .into_iter()
        .for_each(check_and_free);
    let report = tidemalloc::verify_heap().expect("heap intact after 2400 threads");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        report.arenas <= (8 * cores).max(9),
        "{} arenas for 2400 threads: exited threads' arenas were not reused",
        report.arenas
    );
}
