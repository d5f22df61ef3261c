#![no_main]
//! cargo-fuzz target `udp_datagram`: the body is `raida_fuzz_harness::udp_datagram` (fuzz/harness,
//! documented there), which `cargo test -p raida-tests --test fuzz_replay` also replays on stable.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| raida_fuzz_harness::udp_datagram(data));
