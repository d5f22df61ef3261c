//! An in-memory listening socket: a backlog of connections waiting to be accepted.

use std::collections::VecDeque;
use std::net::SocketAddr;

use raida_core::{Accepting, Listener};

use crate::conn::MemConn;

/// A listening socket whose backlog the test fills; [`Engine::accept_from`] accepts
/// from it until it would block.
///
/// [`Engine::accept_from`]: raida_core::Engine::accept_from
#[derive(Debug, Default)]
pub struct MemListener {
    backlog: VecDeque<(MemConn, SocketAddr)>,
    /// Accepts that report the process out of descriptors before the backlog is
    /// served again ([`Accepting::Exhausted`]).
    exhausted: usize,
}

impl MemListener {
    /// A connection from `peer` arrives in the backlog.
    pub fn push(&mut self, conn: MemConn, peer: SocketAddr) {
        self.backlog.push_back((conn, peer));
    }

    /// Connections waiting in the backlog.
    pub fn pending(&self) -> usize {
        self.backlog.len()
    }

    /// The next `n` accepts find the process out of descriptors.
    pub fn exhaust(&mut self, n: usize) {
        self.exhausted = n;
    }
}

impl Listener for MemListener {
    type Socket = MemConn;

    fn accept(&mut self) -> Accepting<MemConn> {
        if self.exhausted > 0 && !self.backlog.is_empty() {
            self.exhausted -= 1;
            return Accepting::Exhausted;
        }
        match self.backlog.pop_front() {
            Some((conn, peer)) => Accepting::Conn(conn, peer),
            None => Accepting::WouldBlock,
        }
    }
}
