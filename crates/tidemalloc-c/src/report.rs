//! The exit report for `tidemalloc run` (see `tidemalloc::stats::write_exit_report`).

/// Runs from the ELF finaliser list of libtidemalloc.so, after `exit` ran atexit handlers.
extern "C" fn write_report() {
    tm::stats::write_exit_report();
}

#[used]
#[link_section = ".fini_array"]
static WRITE_REPORT: extern "C" fn() = write_report;
