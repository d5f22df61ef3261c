//! raida-io-epoll: the Linux driver around `raida-core`'s engine, the builder that
//! makes a RAIDA server of it, and the `raida-server` binary.
//!
//! Build your own RAIDA on raida-net with [`ServerBuilder`]: a configuration, the
//! commands to register (each a [`raida_core::Command`], which sees the whole request
//! through its [`raida_core::RequestContext`]), and the key store. [`Server`] reports
//! its bound addresses and serves; a [`ShutdownHandle`] stops it gracefully from any
//! thread. A configuration is core's typed `raida_core::config::Config`, built in Rust
//! or read from `config.toml` by [`config_file`]; the builder validates it before it
//! opens anything.
//!
//! Inside: one event-loop thread per `io_threads` waits on edge-triggered epoll (the
//! `polling` crate) for its TCP listener, its UDP socket and every connection; workers
//! run jobs and wake it with `Poller::notify`; sockets are set up through `socket2`. It
//! only does syscalls: every decision is the engine's.

mod binary;
mod builder;
pub mod cli;
pub mod config_file;
mod event_loop;
mod metrics;
mod mmsg;
mod poll;
mod server;
mod signals;
mod sockets;
mod udp;
mod workers;

pub use binary::{init_logging, main, print_listening, run};
pub use builder::{BuildError, ServerBuilder};
pub use server::{ServeError, Served, Server, ShutdownHandle};
