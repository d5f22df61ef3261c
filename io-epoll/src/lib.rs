//! raida-io-epoll: the Linux driver around `raida-core`'s engine.
//!
//! Inside: one event-loop thread per `io_threads` waits on edge-triggered epoll (the
//! `polling` crate) for its TCP listener, its UDP socket and every connection; workers
//! run jobs and wake it with `Poller::notify`; sockets are set up through `socket2`. It
//! only does syscalls: every decision is the engine's.

pub mod event_loop;
mod mmsg;
pub mod poll;
pub mod snapshots;
pub mod sockets;
mod udp;
pub mod workers;
