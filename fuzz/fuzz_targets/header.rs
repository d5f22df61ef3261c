#![no_main]
//! cargo-fuzz target `header`: the body is `raida_fuzz_harness::header` (fuzz/harness,
//! documented there), which `cargo test -p raida-tests --test fuzz_replay` also replays on stable.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| raida_fuzz_harness::header(data));
