//! An in-memory TCP connection, the server's side of it, as the engine's service loop
//! sees it: bytes the client sent, the client's end of stream, bytes the server wrote,
//! a write capacity, and the faults a test scripts.

use std::collections::VecDeque;

use raida_core::{ConnSocket, Io, Timestamp};

/// One read buffer the engine lent while the write side was open: `len` bytes
/// starting at byte `at` of the stream the client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lend {
    /// Bytes read before this read.
    pub at: usize,
    /// The buffer's length.
    pub len: usize,
}

/// The server's side of one in-memory TCP connection.
///
/// Reads return what the client sent, at most [`read_chunk`](Self::set_read_chunk)
/// bytes at a time, then end of stream once the client [hung up](Self::hang_up) and
/// everything was read, else would-block. Writes take at most the
/// [write room](Self::set_write_room) left. [`fail_io`](Self::fail_io) makes every
/// later call fail, as a reset seen by a read or a write does.
#[derive(Debug)]
pub struct MemConn {
    inbound: VecDeque<u8>,
    client_eof: bool,
    outbound: Vec<u8>,
    write_room: Option<usize>,
    read_chunk: usize,
    failed: bool,
    read_total: usize,
    read_before_shutdown: usize,
    shutdown: bool,
    closed: bool,
    eof_delivered: bool,
    lends: Vec<Lend>,
    /// The response as first offered, and when.
    response: Option<(Vec<u8>, Timestamp)>,
    /// The driver's clock at the current service call.
    pub(crate) now: Timestamp,
}

impl Default for MemConn {
    fn default() -> Self {
        MemConn::new()
    }
}

impl MemConn {
    /// A connection with nothing sent yet, unlimited write room and unlimited reads.
    pub fn new() -> MemConn {
        MemConn {
            inbound: VecDeque::new(),
            client_eof: false,
            outbound: Vec::new(),
            write_room: None,
            read_chunk: usize::MAX,
            failed: false,
            read_total: 0,
            read_before_shutdown: 0,
            shutdown: false,
            closed: false,
            eof_delivered: false,
            lends: Vec::new(),
            response: None,
            now: Timestamp::ZERO,
        }
    }

    /// The client sends `bytes` (they wait in the socket until the server reads them).
    pub fn push_inbound(&mut self, bytes: &[u8]) {
        self.inbound.extend(bytes.iter().copied());
    }

    /// The client shuts down its write side: after what it sent, end of stream.
    pub fn hang_up(&mut self) {
        self.client_eof = true;
    }

    /// The socket takes at most `room` more bytes of writes (`None`: unlimited).
    pub fn set_write_room(&mut self, room: Option<usize>) {
        self.write_room = room;
    }

    /// Adds `n` bytes to the write room (from unlimited nothing changes).
    pub fn add_write_room(&mut self, n: usize) {
        if let Some(room) = self.write_room.as_mut() {
            *room = room.saturating_add(n);
        }
    }

    /// Reads return at most `chunk` bytes each (at least 1).
    pub fn set_read_chunk(&mut self, chunk: usize) {
        self.read_chunk = chunk.max(1);
    }

    /// Every later read and write fails (a reset the socket reports).
    pub fn fail_io(&mut self) {
        self.failed = true;
    }

    /// Bytes the server wrote.
    pub fn outbound(&self) -> &[u8] {
        &self.outbound
    }

    /// Bytes the client sent that the server has not read.
    pub fn unread(&self) -> usize {
        self.inbound.len()
    }

    /// Whether the client hung up.
    pub fn client_eof(&self) -> bool {
        self.client_eof
    }

    /// Bytes the server read.
    pub fn read_total(&self) -> usize {
        self.read_total
    }

    /// Bytes the server had read when it shut down its write side.
    pub fn read_before_shutdown(&self) -> usize {
        self.read_before_shutdown
    }

    /// Whether the server shut down its write side.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown
    }

    /// Whether the engine closed the connection ([`raida_core::Output::Close`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether a read returned end of stream.
    pub fn eof_delivered(&self) -> bool {
        self.eof_delivered
    }

    /// Every read buffer lent while the write side was open, in order.
    pub fn lends(&self) -> &[Lend] {
        &self.lends
    }

    /// Whether a buffer lent while the write side was open reached past byte `limit`
    /// of the stream (a request of `limit` bytes read past its end).
    pub fn lent_past(&self, limit: usize) -> bool {
        self.lends.iter().any(|l| l.at + l.len > limit)
    }

    /// The response as the engine first offered it, and the driver's time then.
    pub fn response(&self) -> Option<(&[u8], Timestamp)> {
        self.response.as_ref().map(|(r, at)| (r.as_slice(), *at))
    }

    pub(crate) fn mark_closed(&mut self) {
        assert!(!self.closed, "connection closed twice");
        self.closed = true;
    }
}

impl ConnSocket for MemConn {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        assert!(!buf.is_empty(), "an empty read buffer");
        if self.failed {
            return Io::Failed;
        }
        if !self.shutdown {
            self.lends.push(Lend {
                at: self.read_total,
                len: buf.len(),
            });
        }
        let n = buf.len().min(self.inbound.len()).min(self.read_chunk);
        if n > 0 {
            for (dst, src) in buf.iter_mut().zip(self.inbound.drain(..n)) {
                *dst = src;
            }
            self.read_total += n;
            Io::Done(n)
        } else if self.client_eof {
            self.eof_delivered = true;
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        assert!(!bytes.is_empty(), "an empty write");
        assert!(!self.shutdown, "bytes to send after shutdown");
        match &self.response {
            None => {
                assert!(self.outbound.is_empty());
                self.response = Some((bytes.to_vec(), self.now));
            }
            Some((response, _)) => assert_eq!(
                bytes,
                &response[self.outbound.len()..],
                "the bytes to send are the rest of the one response"
            ),
        }
        if self.failed {
            return Io::Failed;
        }
        let n = bytes.len().min(self.write_room.unwrap_or(usize::MAX));
        if n == 0 {
            return Io::WouldBlock;
        }
        self.outbound.extend_from_slice(&bytes[..n]);
        if let Some(room) = self.write_room.as_mut() {
            *room -= n;
        }
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        assert!(!self.shutdown, "write side shut down twice");
        let Some((response, _)) = &self.response else {
            panic!("shut down without a response");
        };
        assert_eq!(
            &self.outbound, response,
            "shut down before the whole response"
        );
        self.shutdown = true;
        self.read_before_shutdown = self.read_total;
    }
}
