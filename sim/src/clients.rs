//! The simulated clients: how each behaves (drawn from the seed: what it sends, in how
//! many chunks, whether it reads, half-closes, resets, hangs up, stays silent or
//! dribbles its bytes past the socket timeout), and what it does to the kernel when
//! its events fire: connect, send, FIN, reset, read.

use std::net::SocketAddr;

use raida_client::Request;

use crate::auth::{self, Op};
use crate::kernel::{client_peer, Pipe, MAX_CLIENTS};
use crate::knobs::Knobs;
use crate::request::{self, ClientRequest};
use crate::rng::Rng;
use crate::world::{Ev, World, START_US};

/// How a TCP client behaves.
#[derive(Clone, Debug, Default)]
pub(crate) struct Behaviour {
    /// It reads what the server writes.
    pub reads: bool,
    /// It half-closes (FIN) once it has sent its bytes.
    pub fin_after_send: bool,
    /// It closes its side after reading the response to the end.
    pub fin_after_response: bool,
    /// It resets at this (absolute) time.
    pub reset_at: Option<u64>,
    /// Sizes of the chunks it sends (their sum: the bytes it sends at all).
    pub chunks: Vec<usize>,
    /// Longest pause between chunks.
    pub delay_max_us: u64,
}

/// One simulated client (TCP or UDP) and what it has done so far.
#[derive(Debug)]
pub(crate) struct Client {
    /// Its request, as the client library built it.
    pub request: ClientRequest,
    /// TCP: the stream it means to send (request and any garbage after it); UDP: the
    /// datagram as sent (after in-flight truncation).
    pub stream: Vec<u8>,
    /// The stream carries the whole request as built (UDP: not truncated in flight).
    pub intact: bool,
    /// The address it connects or sends from.
    pub peer: SocketAddr,
    /// How it behaves (TCP).
    pub behaviour: Behaviour,
    /// The next chunk it sends.
    pub next_chunk: usize,
    /// Bytes of `stream` sent so far.
    pub sent: usize,
    /// Its connection's socket, once connected.
    pub sid: Option<usize>,
    /// Every byte it read.
    pub received: Vec<u8>,
    /// A read is scheduled.
    pub read_pending: bool,
    /// It half-closed.
    pub fin_sent: bool,
    /// It reset its connection.
    pub reset: bool,
    /// It read the server's end of stream.
    pub saw_eof: bool,
    /// Its trace span (replay only).
    pub span: Option<tracing::Span>,
    /// What it asks, when it sends an authentication command.
    pub auth: Option<Op>,
}

impl World {
    /// Draws the swarm's clients from the seed and schedules their arrivals, the clock
    /// jumps and the heal.
    pub(crate) fn populate(&mut self) {
        let k = self.knobs.clone();
        let mut r = Rng::new(k.seed).fork(0x434C_4945_4E54);
        let timeout = k.socket_timeout_us;
        let workload = std::mem::take(&mut self.workload);
        let draw = |r: &mut Rng, at: u64| {
            if workload.coins.is_empty() || !r.chance(k.auth_pm) {
                return (request::generate(r, k.invalid_pm, k.max_payload), None);
            }
            let progress = (at - START_US) * 1000 / (k.arrival_window_us + 1);
            let (req, op) = auth::generate(r, &workload, &k, progress);
            (req, Some(op))
        };
        for _ in 0..k.tcp_clients {
            let at = START_US + r.range(0, k.arrival_window_us);
            let (req, op) = draw(&mut r, at);
            let (req, stream, b) = tcp_client(&mut r, &k, at, req);
            let cid = self.add_client(true, req, stream, b);
            self.clients[cid as usize].auth = op;
            self.schedule(at, Ev::Connect(cid));
        }
        for _ in 0..k.udp_clients {
            let at = START_US + r.range(0, k.arrival_window_us);
            let (req, op) = draw(&mut r, at);
            let req = ClientRequest::new(req);
            let mut bytes = req.bytes().to_vec();
            if r.chance(k.udp_trunc_pm) {
                bytes.truncate(r.range_usize(0, bytes.len()));
            }
            let cid = self.add_client(false, req, bytes, Behaviour::default());
            self.clients[cid as usize].auth = op;
            let copies = if r.chance(k.udp_drop_pm) {
                0
            } else if r.chance(k.udp_dup_pm) {
                r.range(2, 3)
            } else {
                1
            };
            for _ in 0..copies {
                let t = at + r.range(0, 50_000);
                self.schedule(t, Ev::Udp(cid));
            }
        }
        for _ in 0..k.clock_jumps {
            let t = START_US + r.range(0, k.arrival_window_us + timeout);
            self.schedule(t, Ev::ClockJump);
        }
        self.workload = workload;
        let heal = START_US + k.arrival_window_us + r.range(0, timeout * 2);
        self.schedule(heal, Ev::Heal);
        if let Some(at) = k.shutdown_at_us {
            self.schedule(START_US + at, Ev::Shutdown);
        }
    }

    /// A client that sends `request` as `stream` (TCP: the request and any garbage
    /// after it; UDP: the datagram, perhaps truncated).
    pub(crate) fn add_client(
        &mut self,
        tcp: bool,
        request: ClientRequest,
        stream: Vec<u8>,
        behaviour: Behaviour,
    ) -> u32 {
        let cid = self.clients.len() as u32;
        assert!(
            cid < MAX_CLIENTS,
            "a world has at most {MAX_CLIENTS} clients"
        );
        let host = match self.knobs.hosts {
            0 => cid,
            hosts => cid % hosts,
        };
        let peer = client_peer(host, cid, tcp);
        let span = self.tracing.then(|| {
            if tcp {
                tracing::info_span!("peer", client = cid, proto = "tcp")
            } else {
                tracing::info_span!("peer", client = cid, proto = "udp")
            }
        });
        let intact = if tcp {
            stream.starts_with(request.bytes())
        } else {
            stream == request.bytes()
        };
        self.clients.push(Client {
            request,
            stream,
            intact,
            peer,
            behaviour,
            next_chunk: 0,
            sent: 0,
            sid: None,
            received: Vec::new(),
            read_pending: false,
            fin_sent: false,
            reset: false,
            saw_eof: false,
            span,
            auth: None,
        });
        cid
    }

    /// Client `cid` connects: its socket joins the listener's queue (or the kernel
    /// refuses it when the queue is full), and its first events are scheduled.
    pub(crate) fn connect(&mut self, cid: u32) {
        if !self.listening {
            // No listener (the server shut down): the kernel answers with a reset.
            self.stats.kernel_resets += 1;
            self.log(Some(cid), || {
                "connect: refused by the kernel (no listener)".into()
            });
            return;
        }
        if self.kernel.backlog.len() >= self.knobs.backlog {
            self.log(Some(cid), || {
                "connect: refused by the kernel (backlog full)".into()
            });
            return;
        }
        let stream = &self.clients[cid as usize].stream;
        let sid = self.kernel.pipes.len();
        let peer = self.clients[cid as usize].peer;
        self.kernel.pipes.push(Pipe {
            cid,
            peer: Some(peer),
            extent: self.oracle.extent(stream),
            ..Pipe::default()
        });
        self.clients[cid as usize].sid = Some(sid);
        self.log(Some(cid), || format!("connect: socket {sid} queued"));
        let b = &self.clients[cid as usize].behaviour;
        let first = b.chunks.first().copied();
        let reset_at = b.reset_at;
        let d = self.rng.range(0, b.delay_max_us);
        if first.is_some_and(|n| n > 0) || b.chunks.len() > 1 {
            self.schedule(self.now + d, Ev::Send(cid));
        } else if b.fin_after_send {
            self.schedule(self.now + d, Ev::Fin(cid));
        }
        if let Some(t) = reset_at {
            self.schedule(t.max(self.now), Ev::Reset(cid));
        }
        let was_empty = self.kernel.backlog.is_empty();
        self.kernel.backlog.push_back(sid);
        // Edge-triggered: the listener is reported only when its queue becomes non-empty.
        if was_empty {
            self.accept_loop();
            self.settle();
        }
    }

    /// Client `cid` sends its next chunk and schedules what follows it.
    pub(crate) fn send_next_chunk(&mut self, cid: u32) {
        let c = &self.clients[cid as usize];
        let Some(n) = c.behaviour.chunks.get(c.next_chunk).copied() else {
            return;
        };
        self.clients[cid as usize].next_chunk += 1;
        self.send(cid, n);
        let c = &self.clients[cid as usize];
        let more = c.next_chunk < c.behaviour.chunks.len();
        let fin = c.behaviour.fin_after_send;
        let d = self.rng.range(0, c.behaviour.delay_max_us);
        if more {
            self.schedule(self.now + d, Ev::Send(cid));
        } else if fin {
            self.schedule(self.now + d, Ev::Fin(cid));
        }
    }

    fn live_sid(&self, cid: u32) -> Option<usize> {
        let c = &self.clients[cid as usize];
        if c.reset {
            return None;
        }
        c.sid
    }

    /// Client `cid` sends its next `n` bytes.
    pub fn send(&mut self, cid: u32, n: usize) {
        let Some(sid) = self.live_sid(cid) else {
            return;
        };
        let c = &mut self.clients[cid as usize];
        if c.fin_sent {
            return;
        }
        let end = (c.sent + n).min(c.stream.len());
        let chunk = c.stream[c.sent..end].to_vec();
        c.sent = end;
        let p = &mut self.kernel.pipes[sid];
        if p.server_closed {
            // Data to a closed socket: the kernel answers with a reset.
            if !p.s2c.is_empty() {
                p.rst_destroyed = true;
                p.s2c.clear();
            }
            self.log(Some(cid), || {
                format!("send {} bytes: socket closed", chunk.len())
            });
            return;
        }
        p.c2s.extend(&chunk);
        self.log(Some(cid), || format!("send {} bytes", chunk.len()));
        self.ready(sid);
    }

    /// Client `cid` half-closes (FIN).
    pub fn fin(&mut self, cid: u32) {
        let Some(sid) = self.live_sid(cid) else {
            return;
        };
        if self.clients[cid as usize].fin_sent {
            return;
        }
        self.clients[cid as usize].fin_sent = true;
        self.kernel.pipes[sid].c2s_fin = true;
        self.log(Some(cid), || "fin".into());
        self.ready(sid);
    }

    /// Client `cid` resets its connection.
    pub fn reset(&mut self, cid: u32) {
        let Some(sid) = self.live_sid(cid) else {
            return;
        };
        self.clients[cid as usize].reset = true;
        let p = &mut self.kernel.pipes[sid];
        p.client_rst = true;
        p.c2s.clear();
        p.s2c.clear();
        self.log(Some(cid), || "reset".into());
        self.ready(sid);
    }

    /// Client `cid` reads up to `max` bytes of what the server wrote.
    pub fn client_read(&mut self, cid: u32, max: usize) {
        self.clients[cid as usize].read_pending = false;
        let Some(sid) = self.live_sid(cid) else {
            return;
        };
        let p = &mut self.kernel.pipes[sid];
        let n = p.s2c.len().min(max);
        let c = &mut self.clients[cid as usize];
        c.received.extend(p.s2c.drain(..n));
        let more = !p.s2c.is_empty();
        let eof = p.s2c.is_empty() && p.s2c_fin && !c.saw_eof;
        if eof {
            c.saw_eof = true;
        }
        let fin = eof && c.behaviour.fin_after_response && !c.fin_sent;
        let delay = c.behaviour.delay_max_us;
        self.log(Some(cid), || {
            format!("read {n} bytes{}", if eof { ", eof" } else { "" })
        });
        if more {
            self.schedule_read(cid);
        }
        if fin {
            let d = self.rng.range(0, delay);
            self.schedule(self.now + d, Ev::Fin(cid));
        }
        if n > 0 {
            // Room in the send buffer again: a writable edge.
            self.ready(sid);
        }
    }

    /// Client `cid` will read soon (if it reads at all and no read is scheduled).
    pub(crate) fn schedule_read(&mut self, cid: u32) {
        let c = &self.clients[cid as usize];
        if !c.behaviour.reads || c.read_pending {
            return;
        }
        let d = self.rng.range(0, c.behaviour.delay_max_us);
        self.clients[cid as usize].read_pending = true;
        self.schedule(self.now + d, Ev::Read(cid));
    }
}

/// A TCP client of the swarm arriving at `at`: the stream it means to send and how it
/// behaves.
fn tcp_client(
    r: &mut Rng,
    k: &Knobs,
    at: u64,
    req: Request,
) -> (ClientRequest, Vec<u8>, Behaviour) {
    let timeout = k.socket_timeout_us;
    let req = ClientRequest::new(req);
    let mut stream = req.bytes().to_vec();
    if r.chance(k.garbage_pm) {
        let mut g = vec![0u8; r.range_usize(1, 100)];
        r.fill(&mut g);
        stream.extend_from_slice(&g);
    }
    let mut b = Behaviour {
        reads: !r.chance(k.nonreader_pm),
        fin_after_send: r.chance(k.early_fin_pm),
        fin_after_response: !r.chance(k.nofin_pm),
        reset_at: None,
        chunks: Vec::new(),
        delay_max_us: k.client_delay_max_us,
    };
    let mut send = stream.len();
    if r.chance(k.silent_pm) {
        send = 0;
    } else if r.chance(k.hangup_pm) {
        send = r.range_usize(0, stream.len());
        b.fin_after_send = true;
    }
    if r.chance(k.slow_pm) {
        b.delay_max_us = r.range(timeout / 4, timeout * 2);
    }
    if r.chance(k.reset_pm) {
        b.reset_at = Some(at + r.range(0, timeout * 3));
    }
    let pieces = r.range_usize(1, k.chunks_max).min(send.max(1));
    let mut left = send;
    for i in 0..pieces {
        let n = if i + 1 == pieces {
            left
        } else {
            r.range_usize(0, left)
        };
        b.chunks.push(n);
        left -= n;
    }
    (req, stream, b)
}
