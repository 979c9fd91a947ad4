//! Outside-in tests of `libtidemalloc.so`: everything lives under `tests/` (the Rust side)
//! and `c/` (the programs run with the library preloaded). This crate has no library code;
//! it exists so the tests build and run with the rest of the workspace.
