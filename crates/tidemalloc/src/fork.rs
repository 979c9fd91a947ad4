//! fork safety (S4.1): prepare takes every arena lock so no chunk list is half-written at the
//! fork; the parent releases them; the child, whose other threads are gone, resets them.
//! The handlers are registered just after the first allocation finishes, outside any lock,
//! because pthread_atfork may itself call malloc.

use crate::os;
use crate::MAIN;
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
    MAIN.lock_raw();
}

unsafe extern "C" fn parent() {
    MAIN.unlock_raw();
}

unsafe extern "C" fn child() {
    MAIN.reset_lock();
}
