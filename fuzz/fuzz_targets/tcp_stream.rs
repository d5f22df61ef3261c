#![no_main]
//! cargo-fuzz target `tcp_stream`: the body is `raida_core::fuzzing::tcp_stream` (documented there),
//! which `cargo test -p raida-tests --test fuzz_replay` also replays on stable.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| raida_core::fuzzing::tcp_stream(data));
