//! The simulated network of the RAIDA world ([`crate::raida_world`]): TCP connections
//! between hosts (wallets and servers), each a [`Link`] with a one-way latency, and
//! the two socket seams the engines drive them through: [`Inbound`] (a server's
//! accepted connection) and [`Outbound`] (a server's own connection to a peer, the
//! outbound peer call io-epoll performs for real on [`Output::Connect`]).
//!
//! Bytes a side writes travel as events (the world schedules one per write, `latency`
//! later, in order), then wait in the reader's buffer. What arrives at a server end is
//! served by its engine, never read (the server hangs), or answered by the world
//! itself (a peer that answers garbage or lies, [`Far`]).
//!
//! [`Output::Connect`]: raida_core::Output::Connect

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use raida_core::{ConnId, ConnSocket, Io, PeerConnId};

use crate::rng::Rng;

/// The port every server listens on.
pub const SERVER_PORT: u16 = 50_000;
/// The first port a host connects from (each connection takes the next).
const CLIENT_PORT_BASE: u16 = 30_000;

/// The address of RAIDA `i` (10.0.1.i).
pub fn server_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, i as u8)
}

/// Where RAIDA `i` listens.
pub fn server_addr(i: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(server_ip(i), SERVER_PORT))
}

/// The address wallet `w` connects from (10.0.2.w).
pub fn wallet_ip(w: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, w as u8)
}

/// The RAIDA index listening at `addr`, if one is addressed there.
pub fn server_at(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(v4) if v4.port() == SERVER_PORT => {
            let [a, b, c, d] = v4.ip().octets();
            (a == 10 && b == 0 && c == 1 && usize::from(d) < 25).then_some(usize::from(d))
        }
        _ => None,
    }
}

/// The source address of a host's `n`-th connection.
pub fn client_addr(ip: Ipv4Addr, n: u64) -> SocketAddr {
    let port = CLIENT_PORT_BASE + (n % 20_000) as u16;
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    /// Wallet request number `req` (the world's list of requests).
    Wallet {
        /// The request.
        req: usize,
    },
    /// Server `server`'s peer call `id`.
    Peer {
        /// The calling server.
        server: usize,
        /// The engine's name for it.
        id: PeerConnId,
    },
}

/// How a peer that is not honest answers a claim (a server's fault, drawn by epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fake {
    /// Answers bytes that must give no vote: random bytes, a cut body, a body size
    /// out of bounds, a list without its trailer.
    Garbage,
    /// Answers 250 for every ticket, listing every coin of the world, each `repeats`
    /// times (claiming every ticket valid).
    Lying {
        /// How often each coin is listed.
        repeats: usize,
    },
}

/// What is at the server end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Far {
    /// Not decided yet (the SYN is on its way).
    Pending,
    /// The server's engine.
    Engine,
    /// A server that accepted in the kernel and never reads (hung).
    Hang,
    /// The world, answering a claim as a dishonest peer.
    Fake(Fake),
    /// Nobody: the connection was refused.
    Refused,
    /// Nothing: the SYN was lost (a partition); the connect never completes.
    Lost,
}

/// One TCP connection and what the world saw on it.
#[derive(Debug)]
pub struct Link {
    /// Who opened it.
    pub opener: Opener,
    /// The RAIDA index it was opened to.
    pub server: usize,
    /// Its source address.
    pub from: SocketAddr,
    /// One-way latency, microseconds.
    pub latency: u64,
    /// What answers at the server end.
    pub far: Far,
    /// The server engine's name for it, once accepted.
    pub conn: Option<ConnId>,
    /// Bytes arrived at the server end, not yet read.
    pub c2s: VecDeque<u8>,
    /// The opener's end of stream arrived at the server end.
    pub c2s_fin: bool,
    /// Bytes arrived at the opener, not yet read.
    pub s2c: VecDeque<u8>,
    /// The server end's end of stream arrived at the opener.
    pub s2c_fin: bool,
    /// The opener closed its socket.
    pub opener_closed: bool,
    /// The server end closed its socket.
    pub server_closed: bool,
    /// The server end shut down its write side (its answer is out).
    pub server_shut: bool,
    /// The opener established the connection.
    pub established: bool,
    /// Everything the opener wrote.
    pub sent: Vec<u8>,
    /// Everything the server end wrote.
    pub answer: Vec<u8>,
    /// Bytes the server end read.
    pub server_read: usize,
    /// Bytes the opener read.
    pub opener_read: usize,
    /// A wallet request's length, once the wallet wrote it.
    pub request_len: Option<usize>,
    /// When the server end read a wallet request's last byte.
    pub request_done_at: Option<u64>,
    /// When the server's engine accepted it.
    pub accepted_at: Option<u64>,
    /// A restart of its server cut it (the process died with it open).
    pub cut_by_restart: bool,
}

impl Link {
    /// A link opened by `opener` from `from` to RAIDA `server`, `latency` each way.
    pub fn new(opener: Opener, server: usize, from: SocketAddr, latency: u64) -> Link {
        Link {
            opener,
            server,
            from,
            latency,
            far: Far::Pending,
            conn: None,
            c2s: VecDeque::new(),
            c2s_fin: false,
            s2c: VecDeque::new(),
            s2c_fin: false,
            opener_closed: false,
            server_closed: false,
            server_shut: false,
            established: false,
            sent: Vec::new(),
            answer: Vec::new(),
            server_read: 0,
            opener_read: 0,
            request_len: None,
            request_done_at: None,
            accepted_at: None,
            cut_by_restart: false,
        }
    }
}

/// Bytes one side wrote during a socket call: the world schedules their arrival at
/// the other end (`fin`: the end of stream follows them).
#[derive(Debug, Default)]
pub struct Sends {
    /// (bytes, fin), in order.
    pub out: Vec<(Vec<u8>, bool)>,
}

/// Reads at most this many bytes per call (partial reads).
fn chunk(rng: &mut Rng, max: usize) -> usize {
    rng.range_usize(1, max.max(1))
}

/// A server's accepted connection, as its engine's service loop sees it.
#[derive(Debug)]
pub struct Inbound<'a> {
    /// The connection.
    pub link: &'a mut Link,
    /// The world's generator (read and write sizes).
    pub rng: &'a mut Rng,
    /// The largest read or write.
    pub chunk_max: usize,
    /// Simulated time.
    pub now: u64,
    /// What the server wrote.
    pub sends: &'a mut Sends,
}

impl ConnSocket for Inbound<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let l = &mut *self.link;
        let n = buf
            .len()
            .min(l.c2s.len())
            .min(chunk(self.rng, self.chunk_max));
        if n > 0 {
            for (b, x) in buf.iter_mut().zip(l.c2s.drain(..n)) {
                *b = x;
            }
            l.server_read += n;
            if l.request_done_at.is_none() && l.request_len.is_some_and(|r| l.server_read >= r) {
                l.request_done_at = Some(self.now);
            }
            Io::Done(n)
        } else if l.c2s_fin {
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        let n = bytes.len().min(chunk(self.rng, self.chunk_max));
        if n == 0 {
            return Io::WouldBlock;
        }
        self.link.answer.extend_from_slice(&bytes[..n]);
        self.sends.out.push((bytes[..n].to_vec(), false));
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        if !self.link.server_shut {
            self.link.server_shut = true;
            self.sends.out.push((Vec::new(), true));
        }
    }
}

/// A server's own connection to a peer (a peer call), as its engine's
/// `service_peer` sees it.
#[derive(Debug)]
pub struct Outbound<'a> {
    /// The connection.
    pub link: &'a mut Link,
    /// The world's generator (read and write sizes).
    pub rng: &'a mut Rng,
    /// The largest read or write.
    pub chunk_max: usize,
    /// What the server wrote.
    pub sends: &'a mut Sends,
}

impl ConnSocket for Outbound<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let l = &mut *self.link;
        let n = buf
            .len()
            .min(l.s2c.len())
            .min(chunk(self.rng, self.chunk_max));
        if n > 0 {
            for (b, x) in buf.iter_mut().zip(l.s2c.drain(..n)) {
                *b = x;
            }
            l.opener_read += n;
            Io::Done(n)
        } else if l.s2c_fin {
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        let n = bytes.len().min(chunk(self.rng, self.chunk_max));
        if n == 0 {
            return Io::WouldBlock;
        }
        self.link.sent.extend_from_slice(&bytes[..n]);
        self.sends.out.push((bytes[..n].to_vec(), false));
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        self.sends.out.push((Vec::new(), true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_their_servers() {
        assert_eq!(server_at(server_addr(0)), Some(0));
        assert_eq!(server_at(server_addr(24)), Some(24));
        assert_eq!(server_at(client_addr(server_ip(3), 1)), None);
        assert_eq!(
            server_at(SocketAddr::from(([10, 0, 2, 3], SERVER_PORT))),
            None
        );
    }
}
