//! An in-memory UDP socket: datagrams that arrived and wait to be read, and the
//! responses sent.

use std::collections::VecDeque;
use std::net::SocketAddr;

/// The server's UDP socket. The driver reads [`inbound`](Self::push) datagrams only
/// while the engine wants them, at most [`datagram_room`] at a time, as a real driver
/// does; the rest wait in the socket (the kernel's buffer).
///
/// [`datagram_room`]: raida_core::Engine::datagram_room
#[derive(Debug, Default)]
pub struct MemUdp {
    pub(crate) inbound: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Responses sent, in order: (peer, bytes).
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl MemUdp {
    /// A datagram from `peer` arrives in the socket.
    pub fn push(&mut self, peer: SocketAddr, bytes: &[u8]) {
        self.inbound.push_back((peer, bytes.to_vec()));
    }

    /// Datagrams waiting to be read.
    pub fn unread(&self) -> usize {
        self.inbound.len()
    }
}
