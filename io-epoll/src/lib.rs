//! raida-io-epoll: the Linux driver around `raida-core`'s engine.
//!
//! Will hold the edge-triggered epoll event loop (through `polling`), eventfd wake-ups
//! (`Poller::notify`), sockets through `socket2`, the worker pool on `crossbeam-channel`,
//! signal handling and configuration loading, and the `raida-server` binary. It only
//! does syscalls: every decision is the engine's.
