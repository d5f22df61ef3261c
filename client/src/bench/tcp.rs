//! The bench over TCP: one connection per request, as the protocol says. Connect
//! (non-blocking), write the request, read until the server closes, close.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use polling::{Event, PollMode, Poller};
use socket2::{Domain, Protocol, Socket, Type};

use super::worker::{key, Link, Step};
use super::BenchConfig;
use crate::error::{ErrorKind, ResponseError};
use crate::request::BuiltRequest;

/// The largest response a slot accepts (header + the 3-byte size field's maximum).
const MAX_RESPONSE: usize = 48 + (1 << 24);
/// A slot's first response buffer; it doubles when a response needs more.
const FIRST_BUFFER: usize = 512;

/// One slot's connection and the progress of its request.
struct Conn {
    /// The connection of the request under way; `None` between requests.
    stream: Option<TcpStream>,
    /// Counts the slot's connections, so an event for an earlier one is recognised.
    generation: u32,
    /// Request bytes written so far.
    sent: usize,
    /// Response bytes read so far, into `buf`.
    got: usize,
    buf: Vec<u8>,
}

/// Every slot's connection, on one poller.
pub(super) struct TcpLink {
    addr: SocketAddr,
    verify: bool,
    poller: Poller,
    conns: Vec<Conn>,
    /// Decrypted bodies land here (reused).
    body: Vec<u8>,
}

impl Link for TcpLink {
    fn open(config: &BenchConfig, slots: usize) -> io::Result<TcpLink> {
        Ok(TcpLink {
            addr: config.addr,
            verify: config.verify,
            poller: Poller::new()?,
            conns: (0..slots)
                .map(|_| Conn {
                    stream: None,
                    generation: 0,
                    sent: 0,
                    got: 0,
                    buf: vec![0; FIRST_BUFFER],
                })
                .collect(),
            body: Vec::with_capacity(256),
        })
    }

    fn poller(&self) -> &Poller {
        &self.poller
    }

    fn start(&mut self, idx: usize, request: &BuiltRequest) -> Result<Step, ErrorKind> {
        let conn = &mut self.conns[idx];
        conn.sent = 0;
        conn.got = 0;
        self.connect(idx)?;
        // Try at once: on loopback the connect has often completed.
        Ok(self.drive(idx, request))
    }

    fn ready(&mut self, idx: usize, generation: u32, in_flight: Option<&BuiltRequest>) -> Step {
        match (self.conns.get(idx), in_flight) {
            (Some(conn), Some(request)) if conn.generation == generation => {
                self.drive(idx, request)
            }
            // An event for an earlier connection, or with no request under way.
            _ => Step::Wait,
        }
    }

    fn end(&mut self, idx: usize) {
        if let Some(stream) = self.conns.get_mut(idx).and_then(|c| c.stream.take()) {
            let _ = self.poller.delete(&stream);
        }
    }
}

impl TcpLink {
    /// Opens slot `idx`'s connection for its next request (non-blocking: the connect
    /// completes later) and registers it under a new generation.
    fn connect(&mut self, idx: usize) -> Result<(), ErrorKind> {
        let addr = self.addr;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|_| ErrorKind::Connect)?;
        socket
            .set_nonblocking(true)
            .map_err(|_| ErrorKind::Connect)?;
        socket.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(_) => return Err(ErrorKind::Connect),
        }
        let stream = TcpStream::from(socket);
        let conn = &mut self.conns[idx];
        conn.generation = conn.generation.wrapping_add(1);
        // SAFETY: the stream is deleted from the poller in `end` (or `drop`) before it
        // is dropped, so the poller never refers to a closed descriptor.
        unsafe {
            self.poller
                .add_with_mode(
                    &stream,
                    Event::all(key(idx, conn.generation)),
                    PollMode::Edge,
                )
                .map_err(|_| ErrorKind::Connect)?;
        }
        conn.stream = Some(stream);
        Ok(())
    }

    /// Drives slot `idx` as far as it goes: send the rest of `request`, read until
    /// would-block or end of stream. Readiness is edge-triggered and stays registered,
    /// so stopping at would-block is all it takes to hear of the next change.
    fn drive(&mut self, idx: usize, request: &BuiltRequest) -> Step {
        let req_bytes = request.bytes();
        let conn = &mut self.conns[idx];
        let Some(stream) = &mut conn.stream else {
            return Step::Wait;
        };
        while conn.sent < req_bytes.len() {
            match stream.write(&req_bytes[conn.sent..]) {
                Ok(n) => conn.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                // The connect is still under way.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = if conn.sent == 0 && is_connect_error(&e) {
                        ErrorKind::Connect
                    } else {
                        ErrorKind::Write
                    };
                    return Step::Done(Err(kind));
                }
            }
        }
        loop {
            if conn.got == conn.buf.len() {
                if conn.buf.len() >= MAX_RESPONSE {
                    return Step::Done(Err(ErrorKind::InvalidResponse));
                }
                let n = (conn.buf.len() * 2).min(MAX_RESPONSE);
                conn.buf.resize(n, 0);
            }
            match stream.read(&mut conn.buf[conn.got..]) {
                Ok(0) => return Step::Done(self.response(idx, request)),
                Ok(n) => conn.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A reset after the whole response still delivered the response.
                    if conn.got > 0 {
                        return Step::Done(self.response(idx, request));
                    }
                    let kind = if is_connect_error(&e) {
                        ErrorKind::Connect
                    } else {
                        ErrorKind::Read
                    };
                    return Step::Done(Err(kind));
                }
            }
        }
    }

    /// What the bytes slot `idx` read before the server closed come to.
    fn response(&mut self, idx: usize, request: &BuiltRequest) -> Result<u8, ErrorKind> {
        let conn = &self.conns[idx];
        let bytes = &conn.buf[..conn.got];
        if !self.verify {
            // Any response counts, with its status byte.
            return match bytes.get(2) {
                Some(&status) if bytes.len() >= 32 => Ok(status),
                _ => Err(ErrorKind::Closed),
            };
        }
        match request.expect().check_into(bytes, &mut self.body) {
            Ok(h) => Ok(h.status.0),
            // The server closed before the whole response: as `exchange_tcp` names it.
            Err(ResponseError::Short { .. }) => Err(ErrorKind::Closed),
            Err(_) => Err(ErrorKind::InvalidResponse),
        }
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        for conn in &mut self.conns {
            if let Some(stream) = conn.stream.take() {
                let _ = self.poller.delete(&stream);
            }
        }
    }
}

/// Whether a failed write or read means the connection never came up.
fn is_connect_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::TimedOut
    )
}
