//! A futex mutex that never allocates, usable before `main` and inside fork handlers.

use crate::os;
use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The lock word: 0 when free; else the holder's thread number shifted left by one, with
/// bit 0 set once a thread may be sleeping on it. Taking the lock and naming its holder is
/// one compare-and-swap, so a signal handler can always tell whether its own thread holds
/// the lock, even if the signal arrived right after the lock was taken.
const UNLOCKED: u32 = 0;
const WAITERS: u32 = 1;

/// Spins this many times before sleeping: arena critical sections are short.
const SPINS: u32 = 100;

/// A mutual-exclusion lock on one futex word that knows its holder.
pub struct Mutex {
    state: AtomicU32,
    held_at_fork: AtomicBool,
    /// Left with a holder that could not let it go before fork returned (see
    /// `lock_for_fork_unless`).
    left_at_fork: AtomicBool,
}

#[inline]
fn me() -> u32 {
    crate::tcache::thread_number() << 1
}

impl Mutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            held_at_fork: AtomicBool::new(false),
            left_at_fork: AtomicBool::new(false),
        }
    }

    /// Takes the lock, sleeping while another thread holds it.
    #[inline]
    pub fn lock(&self) {
        let me = me();
        if self
            .state
            .compare_exchange(UNLOCKED, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(me);
        }
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, me(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the calling thread holds the lock (for instance, a signal arrived while it
    /// was inside malloc).
    #[inline]
    pub fn held_by_me(&self) -> bool {
        self.state.load(Ordering::Relaxed) & !WAITERS == me()
    }

    /// Whether anyone holds the lock.
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    #[cold]
    fn lock_contended(&self, me: u32) {
        for _ in 0..SPINS {
            spin_loop();
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s == UNLOCKED {
                // Others may still sleep: keep the mark so that our unlock wakes one.
                if self
                    .state
                    .compare_exchange(UNLOCKED, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            os::futex_wait(&self.state, s | WAITERS);
        }
    }

    /// Releases the lock.
    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) & WAITERS != 0 {
            os::futex_wake_one(&self.state);
        }
    }

    /// Wakes one thread sleeping on the lock, if any; it looks at the lock again (for a
    /// fork whose thread was interrupted between letting the lock go and waking it).
    pub fn wake_one(&self) {
        os::futex_wake_one(&self.state);
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

    /// `lock_for_fork` where this one's holder may be waiting for a lock that a signal
    /// handler interrupted this thread inside of, and so cannot get before fork returns.
    /// Takes the lock once its holder lets it go, unless `stuck` says the holder (by thread
    /// number) is such a one; the holder then keeps this lock in the parent, and the child,
    /// where the holder is gone, frees it.
    pub fn lock_for_fork_unless(&self, stuck: impl Fn(u32) -> bool) {
        if self.held_by_me() {
            self.held_at_fork.store(true, Ordering::Relaxed);
            return;
        }
        loop {
            if self.try_lock() {
                return;
            }
            let holder = self.state.load(Ordering::Relaxed) >> 1;
            if holder != 0 && stuck(holder) {
                self.left_at_fork.store(true, Ordering::Relaxed);
                return;
            }
            spin_loop();
        }
    }

    /// fork, in the parent: undoes `lock_for_fork`.
    pub fn unlock_after_fork(&self) {
        if self.left_at_fork.swap(false, Ordering::Relaxed) {
            return;
        }
        if !self.held_at_fork.swap(false, Ordering::Relaxed) {
            self.unlock();
        }
    }

    /// fork, in the child: frees the lock (its waiters are gone), unless the interrupted
    /// code of this thread still holds it.
    pub fn reset_after_fork(&self) {
        self.left_at_fork.store(false, Ordering::Relaxed);
        if !self.held_at_fork.swap(false, Ordering::Relaxed) {
            self.reset();
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
        assert!(m.try_lock());
        assert!(m.held_by_me());
        assert!(!m.try_lock());
        let other = std::thread::scope(|s| s.spawn(|| m.held_by_me()).join().unwrap());
        assert!(!other, "another thread does not hold it");
        m.reset();
        assert!(!m.is_locked());
        m.lock();
        m.unlock();
    }
}
