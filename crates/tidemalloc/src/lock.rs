//! A futex mutex that never allocates, usable before `main` and inside fork handlers.

use crate::os;
use core::hint::spin_loop;
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// Spins this many times before sleeping: arena critical sections are short.
const SPINS: u32 = 100;

/// A mutual-exclusion lock on one futex word.
pub struct Mutex {
    state: AtomicU32,
}

impl Mutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    /// Takes the lock, sleeping while another thread holds it.
    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            spin_loop();
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            os::futex_wait(&self.state, CONTENDED);
        }
    }

    /// Releases the lock.
    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            os::futex_wake_one(&self.state);
        }
    }

    /// Makes the lock free again without waking anyone: for a fork child, where the threads
    /// that held or waited on it do not exist.
    pub fn reset(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }
}

impl Default for Mutex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_other_threads() {
        struct Shared(Mutex, core::cell::UnsafeCell<u64>);
        // SAFETY: the u64 is only touched with the mutex held.
        unsafe impl Sync for Shared {}
        let shared = Arc::new(Shared(Mutex::new(), core::cell::UnsafeCell::new(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        s.0.lock();
                        // SAFETY: the lock is held.
                        unsafe { *s.1.get() += 1 };
                        s.0.unlock();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: all writers have joined.
        assert_eq!(unsafe { *shared.1.get() }, 200_000);
    }

    #[test]
    fn reset_frees_a_held_lock() {
        let m = Mutex::new();
        m.lock();
        m.reset();
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
        m.lock();
        m.unlock();
    }
}
