#![no_main]
//! See `duplex_fuzz::run` and the harness module for the input layout and
//! the checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| duplex_fuzz::run("engine_deflate", data));
