//! A futex mutex that never allocates, usable before `main` and inside fork handlers.

use crate::os;
use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// Spins this many times before sleeping: arena critical sections are short.
const SPINS: u32 = 100;

/// A mutual-exclusion lock on one futex word, remembering its holder so that fork handlers
/// and signal handlers can tell "held by this very thread" from "held by another".
pub struct Mutex {
    state: AtomicU32,
    owner: AtomicUsize,
    held_at_fork: AtomicBool,
}

impl Mutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            owner: AtomicUsize::new(0),
            held_at_fork: AtomicBool::new(false),
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
        self.owner.store(crate::tls::thread_id(), Ordering::Relaxed);
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> bool {
        let taken = self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if taken {
            self.owner.store(crate::tls::thread_id(), Ordering::Relaxed);
        }
        taken
    }

    /// Whether the calling thread holds the lock (for instance, a signal arrived while it
    /// was inside malloc).
    #[inline]
    pub fn held_by_me(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
            && self.owner.load(Ordering::Relaxed) == crate::tls::thread_id()
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
        self.owner.store(0, Ordering::Relaxed);
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            os::futex_wake_one(&self.state);
        }
    }

    /// fork's prepare step: takes the lock, unless this thread already holds it because fork
    /// was called from a signal handler that interrupted a locked section; then the
    /// interrupted code keeps it, in the parent and in the child.
    pub fn lock_for_fork(&self) {
        if self.held_by_me() {
            self.held_at_fork.store(true, Ordering::Relaxed);
        } else {
            self.lock();
        }
    }

    /// fork, in the parent: undoes `lock_for_fork`.
    pub fn unlock_after_fork(&self) {
        if !self.held_at_fork.swap(false, Ordering::Relaxed) {
            self.unlock();
        }
    }

    /// fork, in the child: frees the lock (its waiters are gone), unless the interrupted
    /// code of this thread still holds it.
    pub fn reset_after_fork(&self) {
        if !self.held_at_fork.swap(false, Ordering::Relaxed) {
            self.reset();
        }
    }

    /// Makes the lock free again without waking anyone: for a fork child, where the threads
    /// that held or waited on it do not exist.
    pub fn reset(&self) {
        self.owner.store(0, Ordering::Relaxed);
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
        assert!(m.try_lock());
        assert!(m.held_by_me());
        assert!(!m.try_lock());
        let other = std::thread::scope(|s| s.spawn(|| m.held_by_me()).join().unwrap());
        assert!(!other, "another thread does not hold it");
        m.reset();
        assert_eq!(m.state.load(Ordering::Relaxed), UNLOCKED);
        m.lock();
        m.unlock();
    }
}
