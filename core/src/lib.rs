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

pub mod codec;
pub mod command;
pub mod config;
pub mod crypto;
pub mod engine;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod keys;
pub mod metrics;
pub mod status;
mod time;

pub use codec::Encryption;
pub use command::{Command, CommandRegistry};
pub use engine::{Accept, Completion, ConnId, Engine, EngineConfig, Job, Origin, Output};
pub use status::{Status, StatusByte};
pub use time::Timestamp;
