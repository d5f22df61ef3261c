//! raida-core: the sans-IO heart of raida-net.
//!
//! Everything that decides anything about the RAIDA wire protocol lives here: the
//! codec (request headers, bodies, responses, status codes), the crypto the protocol
//! uses, the key store, the command registry, the configuration and (in `engine`) the
//! state machine that owns every connection. Nothing here touches a socket, a thread,
//! a clock or an OS random number generator: time ([`Timestamp`]) and random bytes
//! come in as arguments, so the same code runs under epoll, in the simulator and under
//! the fuzzers. The contract for every byte is `shared/PROTOCOL.md`; section numbers in
//! the doc comments refer to it.
#![forbid(unsafe_code)]

// The engine and what it is made of: private; their API is the `pub use` list below.
mod command;
mod crypto;
mod engine;
mod status;
mod time;

pub mod codec;
pub mod config;
pub mod keys;
pub mod metrics;
#[cfg(raida_mutants)]
pub mod mutants;

pub use codec::Encryption;
pub use command::{
    Command, CommandRegistry, Echo, KeyId, RegisterError, RequestContext, Runs, Version,
    MAX_COMMAND_GROUP, VERSION_BYTES,
};
pub use engine::{
    Accept, AcceptStop, Accepting, Cidr, Completion, ConnId, ConnSocket, Counters, Engine,
    EngineConfig, Fallback, Io, Job, Listener, Origin, Output, Rate, Serviced, ShutdownStatus,
    RANDOM_LOW_WATER, RANDOM_RESERVOIR,
};
pub use keys::{CoinId, KeyStore};
pub use metrics::Transport;
pub use status::{Status, StatusByte};
pub use time::Timestamp;
