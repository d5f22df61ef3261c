//! raida-io-epoll: the Linux driver around `raida-core`'s engine.
//!
//! [`Driver::bind`] takes a [`DriverConfig`] (how many event loops, workers and
//! long-running threads, each engine's bounds: the caller's decisions, or core's
//! through [`DriverConfig::from_config`]), a command registry and a key store; binds
//! the sockets, starts the workers and reports the bound addresses. [`Driver::run`]
//! serves until a [`ShutdownHandle`] stops it; [`Snapshots`] reads the engines'
//! counters meanwhile. What a server is made of (which commands, which store, signals,
//! limits, a metrics endpoint) is `raida-server`'s business, not the driver's.
//!
//! Inside: one event-loop thread per engine waits on edge-triggered epoll (the
//! `polling` crate) for its TCP listener, its UDP socket and every connection; workers
//! run jobs and wake it with `Poller::notify`; one committer thread runs the store's
//! group commit when an engine asks; sockets are set up through `socket2`. It
//! only does syscalls: every decision is the engine's.

mod clock;
mod committer;
mod driver;
mod event_loop;
mod mmsg;
mod poll;
mod snapshots;
mod sockets;
mod udp;
mod workers;

pub use driver::{
    BindError, Driver, DriverConfig, Exit, Ran, ServeError, ShutdownHandle, Snapshots,
};
pub use sockets::raise_fd_limit;
