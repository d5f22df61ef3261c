//! The simulated kernel: TCP connections as pairs of byte queues (a [`Pipe`] each),
//! the listener's accept queue, the UDP socket's receive queue, the addresses of the
//! simulated hosts, and the two seams the engine drives them through: [`PipeIo`] (the
//! engine's [`ConnSocket`]: reads of random sizes, writes into a bounded send window)
//! and [`Backlog`] (the engine's [`Listener`]: EMFILE for a while, connections aborted
//! in the queue). Faults are drawn from the world's generator, so a seed decides them.

use std::collections::{BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use raida_core::{Accepting, ConnId, ConnSocket, Io, Listener};

use crate::knobs::Knobs;
use crate::oracle::Extent;
use crate::rng::Rng;

/// TCP client `cid` connects from port `TCP_PORT_BASE + cid`.
const TCP_PORT_BASE: u16 = 20_000;
/// UDP client `cid` sends from port `UDP_PORT_BASE + cid`.
const UDP_PORT_BASE: u16 = 40_000;
/// The most clients a world has (each has a port of its own on its host).
pub(crate) const MAX_CLIENTS: u32 = 20_000;

/// The address of simulated host `host`: 10.0.0.0/8 holds them all.
pub(crate) fn host_ip(host: u32) -> Ipv4Addr {
    let [_, a, b, c] = host.to_be_bytes();
    Ipv4Addr::new(10, a, b, c)
}

/// The address client `cid` on host `host` uses (TCP or UDP): its host's address and
/// a port of its own, so clients that share a host stay apart.
pub(crate) fn client_peer(host: u32, cid: u32, tcp: bool) -> SocketAddr {
    let base = if tcp { TCP_PORT_BASE } else { UDP_PORT_BASE };
    let port = base + (cid % MAX_CLIENTS) as u16;
    SocketAddr::V4(SocketAddrV4::new(host_ip(host), port))
}

/// The UDP client that sends from `peer`, if it is one.
pub(crate) fn udp_cid(peer: SocketAddr) -> Option<u32> {
    let port = u32::from(peer.port());
    let base = u32::from(UDP_PORT_BASE);
    (base..base + MAX_CLIENTS)
        .contains(&port)
        .then(|| port - base)
}

/// The kernel's state: every TCP connection ever made, the listener's queue, the UDP
/// socket's queue.
#[derive(Debug, Default)]
pub(crate) struct Kernel {
    /// Every connection, by socket number (never reused).
    pub pipes: Vec<Pipe>,
    /// The listener's accept queue: sockets connected and not yet accepted.
    pub backlog: VecDeque<usize>,
    /// Accepts fail with EMFILE until then.
    pub accept_blocked_until: u64,
    /// The UDP socket's receive queue: (sender, datagram).
    pub udp_queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Connections the server holds open (accepted, not yet closed).
    pub open: usize,
    /// Their sockets.
    pub open_sids: BTreeSet<usize>,
    /// Times the listener reported the process out of descriptors.
    pub exhaustions: u64,
}

/// One simulated TCP connection: the kernel's buffers and flags, and what the world
/// saw happen on it (for the invariants).
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    /// The client at the other end.
    pub cid: u32,
    /// Its address.
    pub peer: Option<SocketAddr>,
    // ----- the kernel's buffers and flags -----
    /// Bytes the client sent, not yet read by the server.
    pub c2s: VecDeque<u8>,
    /// The client half-closed.
    pub c2s_fin: bool,
    /// The client reset the connection.
    pub client_rst: bool,
    /// Bytes the server wrote, not yet read by the client.
    pub s2c: VecDeque<u8>,
    /// The server's side is shut down or closed: the client reads an end of stream.
    pub s2c_fin: bool,
    /// The socket would block until then (an EAGAIN storm).
    pub storm_until: u64,
    /// The engine's name for it, once accepted.
    pub conn: Option<ConnId>,
    /// The server closed it (or it never got past the listener).
    pub server_closed: bool,
    // ----- what the world saw -----
    /// How far the engine may read of what its client sends.
    pub extent: Extent,
    /// When the engine accepted it.
    pub accepted_at: u64,
    /// Bytes the server read.
    pub read_total: usize,
    /// When the server read the request's last byte.
    pub done_at: Option<u64>,
    /// When a worker ran its job.
    pub job_run_at: Option<u64>,
    /// When its response was ready to write.
    pub ready_at: Option<u64>,
    /// Every byte the server wrote.
    pub written: Vec<u8>,
    /// The codec's answer to its request, once computed.
    pub expected: Option<Vec<u8>>,
    /// When the server shut down its write side.
    pub shutdown_at: Option<u64>,
    /// The server read the client's end of stream.
    pub eof_delivered: bool,
    /// The server was told of the client's reset.
    pub error_delivered: bool,
    /// A reset destroyed response bytes the client had not read.
    pub rst_destroyed: bool,
    /// The kernel reset it in the listener's queue when the listener closed.
    pub kernel_reset: bool,
    /// The server's exit closed it (its drain timed out).
    pub closed_by_exit: bool,
    /// It counts against its client's connection limit (until its response is out
    /// or it closes).
    pub counted: bool,
    /// Its request's execution, for the authentication model (`World::execs`).
    pub exec: Option<usize>,
    /// What its whole response says the command found, once read.
    pub said: Option<Option<Vec<bool>>>,
}

/// What the simulated socket saw during one service call, for the trace and the
/// checks that follow it.
#[derive(Debug)]
pub(crate) enum Seen {
    /// The server read this many bytes.
    Read(usize),
    /// The server read the end of stream.
    Eof,
    /// The server wrote this many bytes.
    Wrote(usize),
    /// The server shut down its write side.
    Shutdown,
    /// The server read the request's last byte.
    Done,
}

/// One simulated connection as the engine's service loop sees it: reads of random
/// sizes from what the client sent, writes into a bounded send window, and the check
/// that the engine never lends a read past the request.
pub(crate) struct PipeIo<'a> {
    /// The connection.
    pub pipe: &'a mut Pipe,
    /// The world's generator (read and write sizes).
    pub rng: &'a mut Rng,
    /// The world's knobs.
    pub knobs: &'a Knobs,
    /// Simulated time.
    pub now: u64,
    /// The client, for messages.
    pub cid: u32,
    /// What happened, in order (the world's buffer, empty at the start).
    pub seen: &'a mut Vec<Seen>,
    /// The first read lent past the request, if any.
    pub bad: Option<String>,
    /// The engine shut down the write side during this call (reads after it are the
    /// discard, which may lend any size).
    pub shut: bool,
}

impl ConnSocket for PipeIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let p = &mut *self.pipe;
        let lent = buf.len();
        let shut = p.shutdown_at.is_some() || self.shut;
        if !shut && self.bad.is_none() {
            let bound = p.extent.bound(p.read_total);
            if p.read_total + lent > bound {
                self.bad = Some(format!(
                    "client {}: the engine lent {lent} bytes at offset {}, past the request's {bound}",
                    self.cid, p.read_total
                ));
            } else if lent > self.knobs.max_body_size.max(48) {
                self.bad = Some(format!(
                    "client {}: lent {lent} bytes, over max_body_size",
                    self.cid
                ));
            }
        }
        let chunk = self.rng.range_usize(1, self.knobs.read_chunk_max);
        let n = lent.min(p.c2s.len()).min(chunk);
        if n > 0 {
            let (front, back) = p.c2s.as_slices();
            let k = front.len().min(n);
            buf[..k].copy_from_slice(&front[..k]);
            buf[k..n].copy_from_slice(&back[..n - k]);
            p.c2s.drain(..n);
            p.read_total += n;
            if p.done_at.is_none() && p.extent.request.is_some_and(|l| p.read_total >= l) {
                p.done_at = Some(self.now);
                self.seen.push(Seen::Done);
            }
            self.seen.push(Seen::Read(n));
            Io::Done(n)
        } else if p.c2s.is_empty() && p.c2s_fin {
            p.eof_delivered = true;
            self.seen.push(Seen::Eof);
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        let p = &mut *self.pipe;
        if p.ready_at.is_none() {
            p.ready_at = Some(self.now);
        }
        let chunk = self.rng.range_usize(1, self.knobs.write_chunk_max);
        let room = self.knobs.send_window.saturating_sub(p.s2c.len());
        let n = bytes.len().min(room).min(chunk);
        if n == 0 {
            return Io::WouldBlock;
        }
        p.s2c.extend(&bytes[..n]);
        p.written.extend_from_slice(&bytes[..n]);
        self.seen.push(Seen::Wrote(n));
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        self.shut = true;
        self.seen.push(Seen::Shutdown);
    }
}

/// What the simulated listener did during one accept loop, for the trace.
#[derive(Debug)]
pub(crate) enum Queue {
    /// Accepts fail with EMFILE until then.
    Emfile(u64),
    /// Client `cid`'s connection was aborted in the queue.
    Aborted(u32),
}

/// What one accept on the simulated listener returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// A connection.
    Conn,
    /// The queue is empty.
    WouldBlock,
    /// A connection aborted in the queue.
    Skip,
    /// EMFILE.
    Exhausted,
}

/// The listener's accept queue as the engine's accept loop sees it.
pub(crate) struct Backlog<'a> {
    /// The queue.
    pub backlog: &'a mut VecDeque<usize>,
    /// The connections it names.
    pub pipes: &'a mut [Pipe],
    /// The world's generator (faults).
    pub rng: &'a mut Rng,
    /// The world's knobs.
    pub knobs: &'a Knobs,
    /// Faults have stopped.
    pub healed: bool,
    /// Simulated time.
    pub now: u64,
    /// EMFILE until then.
    pub blocked_until: &'a mut u64,
    /// What happened, in order.
    pub seen: Vec<Queue>,
    /// Accepts the engine made (calls of [`Listener::accept`]).
    pub calls: usize,
    /// Connections handed to the engine.
    pub conns: usize,
    /// What the last accept returned.
    pub last: Option<Accepted>,
    /// The kernel's count of EMFILE reports.
    pub exhaustions: &'a mut u64,
}

impl Backlog<'_> {
    fn accept_one(&mut self) -> Accepting<usize> {
        let Some(&sid) = self.backlog.front() else {
            return Accepting::WouldBlock;
        };
        if self.now < *self.blocked_until {
            return Accepting::Exhausted;
        }
        if !self.healed && self.rng.chance(self.knobs.accept_fail_pm) {
            let d = self.rng.range(1, self.knobs.accept_fail_max_us);
            *self.blocked_until = self.now + d;
            self.seen.push(Queue::Emfile(self.now + d));
            return Accepting::Exhausted;
        }
        self.backlog.pop_front();
        let p = &mut self.pipes[sid];
        if !self.healed && self.rng.chance(self.knobs.accept_abort_pm) {
            p.server_closed = true;
            p.s2c.clear();
            self.seen.push(Queue::Aborted(p.cid));
            return Accepting::Skip;
        }
        let peer = p.peer.unwrap_or_else(|| client_peer(p.cid, p.cid, true));
        Accepting::Conn(sid, peer)
    }
}

impl Listener for Backlog<'_> {
    type Socket = usize;

    fn accept(&mut self) -> Accepting<usize> {
        let a = self.accept_one();
        self.calls += 1;
        self.last = Some(match a {
            Accepting::Conn(..) => {
                self.conns += 1;
                Accepted::Conn
            }
            Accepting::WouldBlock => Accepted::WouldBlock,
            Accepting::Skip => Accepted::Skip,
            Accepting::Exhausted => {
                *self.exhaustions += 1;
                Accepted::Exhausted
            }
        });
        a
    }
}
