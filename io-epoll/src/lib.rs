//! raida-io-epoll: the Linux driver around `raida-core`'s engine, and the
//! `raida-server` binary.
//!
//! One event-loop thread waits on edge-triggered epoll (the `polling` crate, see [`poll`]) for the TCP
//! listener, the UDP socket and every connection; workers run jobs and wake it with
//! `Poller::notify`; sockets are set up through `socket2`. It only does syscalls: every
//! decision is the engine's.
//!
//! Modules: [`event_loop`] (the loop), [`workers`] (the pool), [`sockets`] (socket
//! setup), [`signals`] (SIGINT/SIGTERM), [`metrics`] (the metrics and health HTTP
//! endpoint), [`cli`] (flags and configuration), [`server`] (the binary's `main`).

pub mod cli;
pub mod event_loop;
pub mod metrics;
pub mod mmsg;
pub mod poll;
pub mod server;
pub mod shared_keys;
pub mod signals;
pub mod sockets;
mod udp;
pub mod workers;
