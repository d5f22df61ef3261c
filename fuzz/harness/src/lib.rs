//! raida-fuzz-harness: the bodies of raida-net's fuzz targets, over raida-core's public
//! API only.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` are one-line wrappers around the four
//! harness functions re-exported here, and `raida-tests` replays every committed corpus
//! and regression file through the same functions on the stable toolchain
//! (`cargo test -p raida-tests --test fuzz_replay`). Like quinn-proto's, the harness
//! lives outside the crate it fuzzes: core exposes nothing for it, so what the
//! fuzzers drive is exactly what production drivers and clients use (`Engine`'s
//! inputs and outputs, `Engine::service` over a `ConnSocket`, the public codec).
//!
//! Each harness panics (an assertion) when the code under test breaks a rule of
//! PROTOCOL.md or of the engine's calling contract. The oracles are independent of
//! the code under test where that is cheap: [`model`] is written from PROTOCOL.md
//! (header rules, body checks, a response reader), its crypto is the client's
//! (`raida_client::crypto`, over RustCrypto), and requests are built by the client's
//! builder ([`request`](mod@request)). The engine targets are also compared with the single-call
//! codec `raida_core::codec::answer_datagram`.
//!
//! Modules: [`world`] (the fixed server every target runs: ids, coins, locker,
//! commands), [`model`], [`request`](mod@request) (the faulty-request builder), [`targets`] (one
//! module per harness) and [`seeds`](mod@seeds) (the seed corpora).
//!
//! # Input layouts
//!
//! What the seed corpora under `fuzz/corpus/<target>/` contain; each harness documents
//! its own in full.
//!
//! - [`header`]: the start of a request: its header (17 bytes decide its length, 32
//!   or 48), anything after it ignored.
//! - [`request`](fn@request): a [`request::RequestCase`] decoded by `arbitrary`, its
//!   fields in order: four selector bytes (encryption type `% 6`, [`request::Fault`]
//!   `% 16`, command `% 3`, key coins), the nonce (24 bytes), echo (2), challenge (12),
//!   the response's microseconds (`u32`) and random bytes (22), the payload (each byte
//!   preceded by a byte with bit 0 set, a byte with bit 0 clear ends it), then the
//!   [`request::Mutation`]s to the rest of the input.
//! - [`udp_datagram`]: one mode byte (queue size, held jobs, order, random bytes at
//!   hand), then datagrams, each a 2-byte big-endian length and that many bytes.
//! - [`tcp_stream`]: a 2-byte big-endian stream length, the stream, then operations of
//!   two bytes (`kind`, `arg`): bytes arrive, time passes, write room, timers, end of
//!   stream, reset, random bytes.
//!
//! Changing a layout makes the committed seeds stale (`the_committed_seeds_are_current`
//! in `raida-tests`); `cargo test -p raida-tests --test fuzz_replay -- --ignored
//! write_seed_corpora` rewrites them from [`seeds()`].
#![forbid(unsafe_code)]

pub mod model;
pub mod request;
pub mod seeds;
pub mod targets;
pub mod world;

pub use seeds::seeds;
pub use targets::header::header;
pub use targets::request::request;
pub use targets::tcp_stream::tcp_stream;
pub use targets::udp_datagram::udp_datagram;
