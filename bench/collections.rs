//! A Rust program heavy on std collections: strings, hash maps, B-trees, deques, boxed trees
//! and sorting. It uses the default global allocator, which is the C library's malloc, so an
//! LD_PRELOADed allocator serves it. Each thread does its share and checks what it built;
//! the checksum is a sum over threads, independent of scheduling.
//!
//! Usage: collections THREADS [SCALE]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::process::exit;

const ROUNDS: u64 = 160;
const WORDS_PER_ROUND: u64 = 20_000;
const TREE_DEPTH: u32 = 14;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn wrong_data(what: &str) -> ! {
    eprintln!("wrong data: {what}");
    exit(3);
}

fn word(rng: &mut Rng) -> String {
    let len = 2 + rng.next() % 14;
    (0..len)
        .map(|_| char::from(b'a' + (rng.next() % 8) as u8))
        .collect()
}

/// Word counts and positions: many small strings and vectors that grow.
fn index_words(rng: &mut Rng) -> u64 {
    let words: Vec<String> = (0..WORDS_PER_ROUND).map(|_| word(rng)).collect();
    let mut index: HashMap<String, Vec<u32>> = HashMap::new();
    for (pos, w) in words.iter().enumerate() {
        index.entry(w.clone()).or_default().push(pos as u32);
    }
    let total: usize = index.values().map(Vec::len).sum();
    if total != words.len() {
        wrong_data("word index lost positions");
    }
    for (w, positions) in &index {
        if positions.iter().any(|&p| &words[p as usize] != w) {
            wrong_data("word index points at the wrong word");
        }
    }
    let mut sorted = words;
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != index.len() {
        wrong_data("distinct words differ between sort and map");
    }
    sorted.iter().map(|w| w.len() as u64).sum::<u64>() + index.len() as u64
}

/// An ordered map that is filled, queried by range and thinned out.
fn ordered_map(rng: &mut Rng) -> u64 {
    let mut map = BTreeMap::new();
    for _ in 0..WORDS_PER_ROUND / 2 {
        let key = rng.next() % 1_000_000;
        map.insert(key, format!("value-{key}"));
    }
    let in_range: u64 = map.range(250_000..750_000).map(|(k, _)| k % 97).sum();
    map.retain(|k, _| k % 3 != 0);
    for (k, v) in &map {
        if *v != format!("value-{k}") {
            wrong_data("B-tree value does not match its key");
        }
    }
    in_range + map.len() as u64
}

/// A sliding window of boxed records, as a queue of pending work.
fn window(rng: &mut Rng) -> u64 {
    let mut queue: VecDeque<Box<[u64]>> = VecDeque::new();
    let mut sum = 0u64;
    for i in 0..WORDS_PER_ROUND {
        let len = 1 + (rng.next() % 32) as usize;
        queue.push_back(vec![i; len].into_boxed_slice());
        if queue.len() > 256 {
            let old = queue.pop_front().unwrap_or_else(|| wrong_data("queue empty"));
            if old.iter().any(|&x| x != old[0]) {
                wrong_data("queued record changed");
            }
            sum = sum.wrapping_add(old[0] * old.len() as u64);
        }
    }
    sum
}

enum Tree {
    Leaf,
    Node(Box<Tree>, Box<Tree>),
}

fn build(depth: u32) -> Tree {
    if depth == 0 {
        Tree::Leaf
    } else {
        Tree::Node(Box::new(build(depth - 1)), Box::new(build(depth - 1)))
    }
}

fn count(tree: &Tree) -> u64 {
    match tree {
        Tree::Leaf => 1,
        Tree::Node(l, r) => 1 + count(l) + count(r),
    }
}

/// Binary trees built and dropped whole: a burst of same-sized boxes.
fn trees() -> u64 {
    let n = count(&build(TREE_DEPTH));
    if n != (1 << (TREE_DEPTH + 1)) - 1 {
        wrong_data("tree lost nodes");
    }
    n
}

fn worker(index: u64, rounds: u64) -> u64 {
    let mut rng = Rng(0x7000 + index);
    let mut sum = 0u64;
    for _ in 0..rounds {
        sum = sum
            .wrapping_add(index_words(&mut rng))
            .wrapping_add(ordered_map(&mut rng))
            .wrapping_add(window(&mut rng))
            .wrapping_add(trees());
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2).max(1);
    let scale: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let rounds = (ROUNDS * scale / threads).max(1);
    let sum = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| s.spawn(move || worker(i, rounds)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| wrong_data("worker panicked")))
            .fold(0u64, u64::wrapping_add)
    });
    println!("checksum={sum:016x}");
}
