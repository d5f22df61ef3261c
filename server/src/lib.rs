//! raida-server: a RAIDA server on raida-net. The builder that makes one of
//! `raida-io-epoll`'s driver, the key store and the commands; the metrics endpoint;
//! and the `raida-server` binary (flags and `config.toml`, signals, logging).
//!
//! Build your own RAIDA with [`ServerBuilder`]: a [`Config`] (its pub fields set in
//! Rust, or parsed from a file), the commands to register (a closure
//! `Fn(&RequestContext<'_>) -> R` with `R: Into<`[`Reply`]`>`, or any [`Command`],
//! which sees the whole request through its [`RequestContext`]), and the key store.
//! [`Server`] reports its bound addresses and serves; a [`ShutdownHandle`] stops it
//! gracefully from any thread. This crate re-exports what that takes, so it is the one
//! dependency an embedder needs:
//!
//! ```no_run
//! use raida_server::{Config, Reply, RequestContext, ServerBuilder, Status};
//!
//! let mut config = Config::default();
//! config.server.port = Some(50_100);
//! let server = ServerBuilder::new(config)
//!     .command(15, 0, |req: &RequestContext<'_>| match req.payload {
//!         [] => Reply::status(Status::InvalidPacketLength),
//!         payload => Reply::success(payload),
//!     })
//!     .handle_signals(true)
//!     .bind()?;
//! server.serve()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod binary;
mod builder;
pub mod cli;
pub mod config_file;
mod metrics;
mod peers;
mod server;
mod signals;

pub use binary::{init_logging, main, print_listening, run};
pub use builder::{BuildError, ServerBuilder};
pub use peers::{resolve_raida_servers, RaidaServers};
pub use server::{Served, Server};

pub use raida_io_epoll::{ServeError, ShutdownHandle};

pub use raida_core::config::{Config, ConfigError, NetworkConfig, ServerConfig};
pub use raida_core::keys::{An, MemoryKeyStore};
pub use raida_core::{
    CoinId, Command, Encryption, KeyId, KeyStore, Reply, RequestContext, Runs, Status, StatusByte,
    Timestamp, Transport,
};
/// The on-disk key store (`Data/` under a data root) and the demo store.
pub use raida_store as store;
pub use raida_store::{DiskStore, StoreConfig};
