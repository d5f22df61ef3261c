//! raida-core: the sans-IO heart of raida-net.
//!
//! Everything that decides anything about the RAIDA wire protocol lives here: body
//! opening and response writing, the crypto the protocol uses, the key store, the
//! command registry, the configuration and (in `engine`) the state machine that owns
//! every connection, with its header-time checks. The protocol's words (header
//! layouts, status codes, coin references, time) are `raida-wire`'s, re-exported here
//! at the paths they have always had. Nothing here touches a socket, a thread,
//! a clock or an OS random number generator: time ([`Timestamp`]) and random bytes
//! come in as arguments, so the same code runs under epoll, in the simulator and under
//! the fuzzers. The contract for every byte is `shared/PROTOCOL.md`; section numbers in
//! the doc comments refer to it.
#![forbid(unsafe_code)]

// The engine and what it is made of: private; their API is the `pub use` list below.
mod cidr;
mod command;
mod crypto;
mod engine;
mod frame;

/// The wire format (PROTOCOL.md sections 1 to 6): header lengths, the header-time
/// checks and the one-call answer to a datagram. Public because client authors,
/// the simulator's oracle and the fuzzers read and check frames with exactly these
/// rules; the body and response internals stay private.
pub mod codec;
/// The typed configuration and its validation (PROTOCOL.md section 10a). Public
/// because every driver and embedder builds one; core knows no file format: a driver
/// reads `config.toml` into it.
pub mod config;
/// Where the keys of encrypted requests come from: the key store seam the engine
/// and the commands call, and the in-memory store (the deployed `Data/` store is
/// `raida-store`'s). Public because a server is built with a store of its embedder's
/// choosing.
pub mod keys;
/// The engine's counters as a snapshot and their Prometheus rendering. Public
/// because drivers serve them however they like.
pub mod metrics;
/// The planted bugs of the simulator's mutant runner: their one list, public to that
/// runner, which runs each in the swarm that must catch it; their switch (and the
/// bugs themselves) exist only in its `--cfg raida_mutants` build. Not for embedders.
#[doc(hidden)]
pub mod mutants;
/// Peer calls: what a command asks of other RAIDA servers before it answers (the
/// plan) and what comes back (the answers). Public because commands build and read
/// them.
pub mod peer;

pub use cidr::Cidr;
pub use command::{
    Command, CommandRegistry, Echo, KeyId, RegisterError, Reply, RequestContext, Runs, Version,
    MAX_COMMAND_GROUP, VERSION_BYTES,
};
pub use engine::{
    Accept, AcceptStop, Accepting, Completion, ConnId, ConnSocket, Engine, EngineConfig, Fallback,
    Io, Job, Listener, Origin, Output, PeerConnId, Rate, Serviced, ShutdownStatus,
    RANDOM_LOW_WATER, RANDOM_RESERVOIR,
};
pub use keys::KeyStore;
pub use metrics::Counters;
pub use peer::{PeerAnswer, PeerCall, PeerFailure, PeerPlan};
pub use raida_wire::{CoinId, Encryption, Status, StatusByte, Timestamp, Transport};
