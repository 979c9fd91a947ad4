//! `verify_heap` on a heap with a chunk header overwritten: it reports the damage and does
//! not follow the size it reads.
//!
//! This is the only test in its binary: the damaged heap is left as it is, and nothing else
//! allocates from tidemalloc meanwhile (the test harness itself runs on glibc's malloc).

use tidemalloc::api;

#[test]
fn an_overwritten_header_is_reported_by_the_heap_walk() {
    let a = api::malloc(24);
    let b = api::malloc(24);
    let guard = api::malloc(24);
    assert!(!a.is_null() && !b.is_null() && !guard.is_null());
    assert!(
        tidemalloc::verify_heap().is_ok(),
        "the heap is whole before"
    );
    assert_eq!(b as usize - a as usize, 32, "b follows a");
    // SAFETY: b's size word lies 8 bytes before it, in memory of this allocator; the heap is
    // not used again after the walk.
    unsafe { *(b.sub(8) as *mut usize) ^= 0x100 };
    let report = tidemalloc::verify_heap();
    assert!(
        report.is_err(),
        "a header with its size changed passed: {report:?}"
    );
}
