//! fork safety (S4.1): prepare takes the arena list's lock and every arena lock so that no
//! chunk list is half-written at the fork; the parent releases them; the child, whose other
//! threads are gone, resets them and puts every arena but its own on the free list. A lock
//! the forking thread already held (fork from a signal handler that interrupted malloc) is
//! left to the interrupted code. The handlers are registered just after the first
//! allocation, outside any lock, because pthread_atfork may itself call malloc.

use crate::arenas;
use crate::os;
use core::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const REGISTERED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(IDLE);

/// Asks for registration at the next unlock (called under the lock, at initialisation).
pub fn arm() {
    STATE.store(ARMED, Ordering::Relaxed);
}

/// Registers the handlers if `arm` asked for it; a no-op afterwards.
#[inline]
pub fn register_if_armed() {
    if STATE.load(Ordering::Relaxed) == ARMED
        && STATE
            .compare_exchange(ARMED, REGISTERED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    {
        os::register_atfork(prepare, parent, child);
    }
}

unsafe extern "C" fn prepare() {
    arenas::lock_all_for_fork();
}

unsafe extern "C" fn parent() {
    arenas::unlock_all_after_fork();
}

unsafe extern "C" fn child() {
    arenas::reset_all_in_child(crate::tcache::my_arena());
}
