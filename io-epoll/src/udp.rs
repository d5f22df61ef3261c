//! The event loop's UDP half: reading datagrams in batches (`recvmmsg`) while the
//! engine has room, and sending its responses in batches (`sendmmsg`), holding them
//! (bounded) while the socket's send buffer is full.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};

use raida_core::Engine;

pub(crate) use crate::mmsg::BATCH;
use crate::mmsg::{RecvBatch, SendBatch};

/// Response datagrams held while the UDP socket's send buffer is full.
const MAX_PENDING_DATAGRAMS: usize = 4096;

/// One event loop's UDP socket and its batches.
#[derive(Debug)]
pub(crate) struct UdpPath {
    socket: UdpSocket,
    recv: RecvBatch,
    send: SendBatch,
    /// Response datagrams not yet sent: collected while a batch is read, sent with
    /// `sendmmsg`; held while the send buffer is full (bounded).
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The send buffer was full; wait for writability.
    blocked: bool,
    /// Responses dropped because `out` was full.
    dropped: u64,
}

impl UdpPath {
    /// `buffer`: the receive buffer per datagram (`udp_payload_threshold`).
    pub(crate) fn new(socket: UdpSocket, buffer: usize) -> UdpPath {
        UdpPath {
            socket,
            recv: RecvBatch::new(buffer.max(1)),
            send: SendBatch::default(),
            out: VecDeque::new(),
            blocked: false,
            dropped: 0,
        }
    }

    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Response datagrams dropped so far because the send buffer stayed full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Nothing is waiting to be sent.
    pub(crate) fn is_flushed(&self) -> bool {
        self.out.is_empty()
    }

    /// Reads up to `max` datagrams (at most [`BATCH`]) without blocking; returns how
    /// many ([`UdpPath::get`] has them). `Err(WouldBlock)` when none is waiting.
    pub(crate) fn recv(&mut self, max: usize) -> io::Result<usize> {
        self.recv.recv(&self.socket, max)
    }

    /// Datagram `i` of the last [`UdpPath::recv`]: its sender and its bytes.
    pub(crate) fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        self.recv.get(i)
    }

    /// Queues a response datagram (dropped, and counted, when too many wait).
    pub(crate) fn queue(&mut self, engine: &mut Engine, peer: SocketAddr, bytes: Vec<u8>) {
        if self.out.len() >= MAX_PENDING_DATAGRAMS {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "UDP send buffer full: response datagrams dropped"
                );
            }
            engine.recycle(bytes);
            return;
        }
        self.out.push_back((peer, bytes));
    }

    /// The socket is writable again.
    pub(crate) fn writable(&mut self, engine: &mut Engine) {
        self.blocked = false;
        self.flush(engine);
    }

    /// Sends the queued response datagrams until done or the send buffer is full.
    pub(crate) fn flush(&mut self, engine: &mut Engine) {
        if self.out.is_empty() || self.blocked {
            return;
        }
        match self
            .send
            .send(&self.socket, &mut self.out, |b| engine.recycle(b))
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.blocked = true,
            Err(e) => tracing::debug!("udp send: {e}"),
        }
        if !self.out.is_empty() {
            // Stopped short: the buffer is full; the writable edge resumes us.
            self.blocked = true;
        }
    }
}
