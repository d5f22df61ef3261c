//! raida-server: the builder that makes a RAIDA server of `raida-io-epoll`'s driver,
//! and the `raida-server` binary.
//!
//! Build your own RAIDA on raida-net with [`ServerBuilder`]: a configuration, the
//! commands to register (each a [`raida_core::Command`], which sees the whole request
//! through its [`raida_core::RequestContext`]), and the key store. [`Server`] reports
//! its bound addresses and serves; a [`ShutdownHandle`] stops it gracefully from any
//! thread.

mod binary;
mod builder;
pub mod cli;
mod metrics;
mod server;
mod signals;

pub use binary::{init_logging, main, print_listening, run};
pub use builder::{BuildError, ServerBuilder};
pub use server::{ServeError, Served, Server, ShutdownHandle};
