//! The one connection service loop every driver runs, and the one accept loop.
//!
//! A driver owns sockets; the engine owns every decision. Between them sit two small
//! traits: [`ConnSocket`] (one non-blocking read or write on one connection) and
//! [`Listener`] (one non-blocking accept). [`Engine::service`] drives a connection's
//! reads and writes over a `ConnSocket` until both would block or the engine wants
//! nothing more, lending exactly the bytes the request still needs and at most
//! `reads_per_service` reads per call; [`Engine::accept_from`] accepts over a
//! `Listener` until it would block, at most `turn_budget` connections per call, and
//! backs off when the process is out of descriptors.
//!
//! io-epoll, the simulator's in-memory world, the turmoil driver, the fuzz harness and
//! core's own test support all call these two functions, so what the simulator and
//! the fuzzers test is the loop production runs, not a model of it.

use std::net::SocketAddr;

use super::{Accept, ConnId, Engine, Output};
use raida_wire::Timestamp;

/// What one non-blocking socket call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// This many bytes moved (more than 0).
    Done(usize),
    /// A read found the peer's end of stream (a read of 0 bytes).
    Eof,
    /// The socket would block: readiness will be reported again by the next edge.
    WouldBlock,
    /// A signal interrupted the call; it may be tried again at once.
    Interrupted,
    /// A socket error (reset, broken pipe, ...): the connection is dead.
    Failed,
}

impl Io {
    /// The outcome of a `read(2)`-like call: `Ok(0)` is the end of stream.
    pub fn of_read(result: std::io::Result<usize>) -> Io {
        match result {
            Ok(0) => Io::Eof,
            Ok(n) => Io::Done(n),
            Err(e) => Io::of_error(&e),
        }
    }

    /// The outcome of a `write(2)`-like call of a non-empty buffer: `Ok(0)` means the
    /// socket took nothing and never will (`WriteZero`), a failure.
    pub fn of_write(result: std::io::Result<usize>) -> Io {
        match result {
            Ok(0) => Io::Failed,
            Ok(n) => Io::Done(n),
            Err(e) => Io::of_error(&e),
        }
    }

    fn of_error(e: &std::io::Error) -> Io {
        match e.kind() {
            std::io::ErrorKind::WouldBlock => Io::WouldBlock,
            std::io::ErrorKind::Interrupted => Io::Interrupted,
            _ => Io::Failed,
        }
    }
}

/// One connection's non-blocking socket, as [`Engine::service`] drives it.
pub trait ConnSocket {
    /// Reads into `buf` (never empty): [`Io::Done`], [`Io::Eof`], [`Io::WouldBlock`],
    /// [`Io::Interrupted`] or [`Io::Failed`].
    fn read(&mut self, buf: &mut [u8]) -> Io;

    /// Writes from `bytes` (never empty): [`Io::Done`], [`Io::WouldBlock`],
    /// [`Io::Interrupted`] or [`Io::Failed`].
    fn write(&mut self, bytes: &[u8]) -> Io;

    /// Shuts down the write side (the response is complete: the peer sees its end of
    /// stream). Best effort: a failure shows up on the next read.
    fn shutdown_write(&mut self);
}

/// Why [`Engine::service`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Serviced {
    /// Both directions would block or want nothing: wait for the next readiness edge.
    Idle,
    /// `reads_per_service` reads were made and the connection may have more: the
    /// engine queued an [`Output::Wake`] for it, so it is serviced again after the
    /// others (a peer that keeps sending cannot hold the loop).
    Budget,
    /// The connection is closed (an [`Output::Close`] is queued) or was never alive.
    Closed,
}

/// One non-blocking accept on a listening socket.
#[derive(Debug)]
pub enum Accepting<S> {
    /// A connection from this peer.
    Conn(S, SocketAddr),
    /// The backlog is empty: readiness will be reported again by the next edge.
    WouldBlock,
    /// This one connection failed (it died in the backlog, or a signal interrupted
    /// the call): go on with the next.
    Skip,
    /// The process or the system is out of descriptors or memory (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM): the connection stays in the kernel's backlog.
    Exhausted,
}

/// A listening socket, as [`Engine::accept_from`] drives it.
pub trait Listener {
    /// The accepted connection's socket.
    type Socket;

    /// Accepts one connection without blocking.
    fn accept(&mut self) -> Accepting<Self::Socket>;
}

/// Why [`Engine::accept_from`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum AcceptStop {
    /// The backlog is empty.
    Drained,
    /// `turn_budget` connections were accepted: serve everything else (open
    /// connections, completions, timers) and call again after a wait that does not
    /// block.
    Budget,
    /// Out of descriptors: accepting pauses for `accept_backoff` (the engine's
    /// [`poll_timeout`](Engine::poll_timeout) includes the pause's end, and an
    /// [`Output::ResumeAccepting`] follows it); the backlog waits in the kernel.
    /// `warn` is true at most once per `accept_backoff * 10`, for the driver's log.
    Paused {
        /// Log it: the first pause in a while.
        warn: bool,
    },
    /// Not accepting now: paused, or the server is shutting down.
    NotAccepting,
}

impl Engine {
    /// Services connection `id` over `socket` as the calling contract says: while the
    /// engine lends a read buffer, read into it (stop at would-block, end of stream or
    /// error); while it has bytes to write, write them (stop at would-block or error),
    /// and shut down the write side once the response is out; repeat until neither
    /// makes progress, the connection closes, or `reads_per_service` reads have been
    /// made.
    ///
    /// This is the only way bytes move on a connection: the engine lends its read
    /// buffer for exactly the bytes the request still needs, so a read never crosses
    /// the end of a request.
    ///
    /// Every input is applied with `now`; outputs queue up as usual and the driver
    /// drains them after the call (an [`Output::Wake`] for the connection being
    /// serviced is not emitted meanwhile: this loop goes on anyway).
    pub fn service(
        &mut self,
        id: ConnId,
        socket: &mut impl ConnSocket,
        now: Timestamp,
    ) -> Serviced {
        let outer = self.servicing.replace(id);
        let result = self.service_loop(id, socket, now);
        self.servicing = outer;
        if result == Serviced::Budget {
            self.outputs.push_back(Output::Wake(id));
        }
        result
    }

    fn service_loop(
        &mut self,
        id: ConnId,
        socket: &mut impl ConnSocket,
        now: Timestamp,
    ) -> Serviced {
        let mut reads = 0usize;
        let mut read_blocked = false;
        let mut write_blocked = false;
        loop {
            if !self.is_live(id) {
                return Serviced::Closed;
            }
            let mut progressed = false;
            if !read_blocked {
                if reads >= self.config.reads_per_service && self.wants_read(id) {
                    return Serviced::Budget;
                }
                if let Some(buf) = self.recv_buf(id).filter(|b| !b.is_empty()) {
                    reads += 1;
                    match socket.read(buf) {
                        Io::Done(n) => {
                            self.handle_received(id, n, now);
                            progressed = true;
                        }
                        Io::Eof => {
                            self.handle_eof(id, now);
                            read_blocked = true;
                            progressed = true;
                        }
                        Io::WouldBlock => read_blocked = true,
                        Io::Interrupted => progressed = true,
                        Io::Failed => {
                            self.handle_error(id, now);
                            return Serviced::Closed;
                        }
                    }
                }
            }
            if !write_blocked {
                if let Some(bytes) = self.send_buf(id).filter(|b| !b.is_empty()) {
                    match socket.write(bytes) {
                        Io::Done(n) => {
                            if self.handle_sent(id, n, now) {
                                // The response is out: FIN now, then read and discard
                                // until the peer's end of stream or the linger deadline.
                                socket.shutdown_write();
                            }
                            progressed = true;
                        }
                        Io::WouldBlock => write_blocked = true,
                        Io::Interrupted => progressed = true,
                        // A write never sees an end of stream; treat one as a failure.
                        Io::Eof | Io::Failed => {
                            self.handle_error(id, now);
                            return Serviced::Closed;
                        }
                    }
                }
            }
            if !progressed {
                return if self.is_live(id) {
                    Serviced::Idle
                } else {
                    Serviced::Closed
                };
            }
        }
    }

    /// Accepts from `listener` until it would block, at most `turn_budget`
    /// connections, handing each to `on_accept` with the engine's answer: for
    /// [`Accept::Accepted`] the driver registers the socket and services it at once
    /// (its first bytes may be there already, and edge-triggered readiness will not
    /// report them); for [`Accept::Refused`] it writes the 160, shuts down, discards
    /// and closes, as [`Accept`] says.
    pub fn accept_from<L: Listener>(
        &mut self,
        listener: &mut L,
        now: Timestamp,
        mut on_accept: impl FnMut(&mut Engine, L::Socket, Accept),
    ) -> AcceptStop {
        if !self.accepting(now) {
            return AcceptStop::NotAccepting;
        }
        let mut accepted = 0usize;
        loop {
            if accepted >= self.config.turn_budget {
                return AcceptStop::Budget;
            }
            match listener.accept() {
                Accepting::Conn(socket, peer) => {
                    accepted += 1;
                    let answer = self.handle_accept(peer, now);
                    on_accept(self, socket, answer);
                    // Planted bug for the simulator's mutant runner (never in a normal
                    // build): one accept per readiness edge, as the deployed server does.
                    #[cfg(raida_mutants)]
                    if crate::mutants::active(crate::mutants::Mutant::AcceptOnce) {
                        return AcceptStop::Drained;
                    }
                }
                Accepting::WouldBlock => return AcceptStop::Drained,
                Accepting::Skip => {}
                Accepting::Exhausted => {
                    let warn = self.pause_accepting(now);
                    return AcceptStop::Paused { warn };
                }
            }
        }
    }
}
