#![no_main]
//! cargo-fuzz target `header`: the body is `raida_core::fuzzing::header` (documented there),
//! which `cargo test -p raida-tests --test fuzz_replay` also replays on stable.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| raida_core::fuzzing::header(data));
