//! The bench over UDP: each slot owns a connected socket and sends one datagram at a
//! time. A reply that comes after its request timed out is told apart by its echo
//! bytes and counted as stale.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use polling::{Event, PollMode, Poller};

use super::worker::{key, Link, Step};
use super::BenchConfig;
use crate::error::{ErrorKind, ResponseError};
use crate::request::BuiltRequest;

/// The receive buffer: the whole UDP payload range.
const MAX_DATAGRAM: usize = 65_536;

/// Every slot's socket, on one poller.
pub(super) struct UdpLink {
    verify: bool,
    poller: Poller,
    sockets: Vec<UdpSocket>,
    /// The receive buffer, shared by the thread's slots.
    dgram: Vec<u8>,
    /// Decrypted bodies land here (reused).
    body: Vec<u8>,
}

impl Link for UdpLink {
    fn open(config: &BenchConfig, slots: usize) -> io::Result<UdpLink> {
        let mut link = UdpLink {
            verify: config.verify,
            poller: Poller::new()?,
            sockets: Vec::with_capacity(slots),
            dgram: vec![0; MAX_DATAGRAM],
            body: Vec::with_capacity(256),
        };
        let local: SocketAddr = if config.addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        for idx in 0..slots {
            let sock = UdpSocket::bind(local)?;
            sock.connect(config.addr)?;
            sock.set_nonblocking(true)?;
            // SAFETY: the socket stays registered only while the link owns it: it is
            // deleted from the poller in `drop` before it is closed. (Pushed after
            // registering, so a failed registration leaves no stray socket behind.)
            unsafe {
                link.poller
                    .add_with_mode(&sock, Event::readable(key(idx, 0)), PollMode::Edge)?;
            }
            link.sockets.push(sock);
        }
        Ok(link)
    }

    fn poller(&self) -> &Poller {
        &self.poller
    }

    fn start(&mut self, idx: usize, request: &BuiltRequest) -> Result<Step, ErrorKind> {
        let Some(sock) = self.sockets.get(idx) else {
            return Ok(Step::Wait);
        };
        match sock.send(request.bytes()) {
            Ok(_) => Ok(Step::Wait),
            // A full send buffer is like a lost datagram: the timeout handles it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Wait),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(ErrorKind::Connect),
            Err(_) => Err(ErrorKind::Write),
        }
    }

    fn ready(&mut self, idx: usize, _generation: u32, in_flight: Option<&BuiltRequest>) -> Step {
        let Some(sock) = self.sockets.get(idx) else {
            return Step::Wait;
        };
        loop {
            let n = match sock.recv(&mut self.dgram) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return match in_flight {
                        Some(_) if e.kind() == io::ErrorKind::ConnectionRefused => {
                            Step::Done(Err(ErrorKind::Connect))
                        }
                        Some(_) => Step::Done(Err(ErrorKind::Read)),
                        None => Step::Wait,
                    };
                }
            };
            let Some(request) = in_flight else {
                return Step::Stale;
            };
            if !self.verify {
                return match self.dgram.get(2) {
                    Some(&status) if n >= 32 => Step::Done(Ok(status)),
                    _ => Step::Done(Err(ErrorKind::InvalidResponse)),
                };
            }
            return match request
                .expect()
                .check_into(&self.dgram[..n], &mut self.body)
            {
                Ok(h) => Step::Done(Ok(h.status.0)),
                Err(ResponseError::Echo { .. }) => Step::Stale,
                Err(_) => Step::Done(Err(ErrorKind::InvalidResponse)),
            };
        }
    }

    /// Nothing to close: the socket serves the slot's next request too.
    fn end(&mut self, _idx: usize) {}
}

impl Drop for UdpLink {
    fn drop(&mut self) {
        for sock in &self.sockets {
            let _ = self.poller.delete(sock);
        }
    }
}
