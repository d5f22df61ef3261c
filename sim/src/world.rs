//! The in-memory seeded world around the unmodified engine: a simulated kernel (a
//! listener with an accept queue, connections with send and receive buffers, a UDP
//! socket), simulated clients, simulated workers and a virtual clock, and the driver
//! loop between the kernel and the engine (the shape of `io-epoll`: edge-triggered
//! readiness, read and write until would-block, drain every output after every input).
//!
//! Invariants (DESIGN.md) are checked after every step; the first violation stops
//! the run. A run ends with a heal-and-drain phase (faults stop, clients finish or give
//! up, time runs past every deadline) after which the engine must be idle.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use raida_core::codec::RequestHeader;
use raida_core::{
    Accept, AcceptStop, Accepting, CommandRegistry, ConnId, ConnSocket, Engine, EngineConfig, Io,
    Job, Listener, Origin, Output, Timestamp,
};

use crate::knobs::Knobs;
use crate::request::{self, Req};
use crate::rng::{Fnv64, Rng};

/// Steps (engine inputs and simulated events) after which a run counts as livelocked.
const MAX_STEPS: u64 = 2_000_000;

/// The first broken invariant of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Simulated time, microseconds.
    pub at: u64,
    /// What broke.
    pub what: String,
}

/// What a run did, for the summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections the engine accepted.
    pub accepted: u64,
    /// Connections the engine refused (160).
    pub refused: u64,
    /// Whole TCP responses written and shut down.
    pub tcp_responses: u64,
    /// Response datagrams matched to their request.
    pub udp_responses: u64,
    /// Jobs run by the simulated workers.
    pub jobs: u64,
    /// Completions for connections already closed.
    pub late_completions: u64,
    /// Closes by reason.
    pub closes: BTreeMap<&'static str, u64>,
    /// Steps taken.
    pub steps: u64,
    /// Simulated time at the end, microseconds.
    pub end_us: u64,
}

impl Stats {
    /// Adds another run's numbers (for swarm totals).
    pub fn add(&mut self, o: &Stats) {
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.tcp_responses += o.tcp_responses;
        self.udp_responses += o.udp_responses;
        self.jobs += o.jobs;
        self.late_completions += o.late_completions;
        for (k, v) in &o.closes {
            *self.closes.entry(k).or_default() += v;
        }
        self.steps += o.steps;
        self.end_us = self.end_us.max(o.end_us);
    }
}

#[derive(Clone, Debug)]
enum Ev {
    Connect(u32),
    Send(u32),
    Read(u32),
    Fin(u32),
    Reset(u32),
    Udp(u32),
    ListenerRetry,
    Ready(usize),
    Worker(u64),
    ClockJump,
    Heal,
}

/// How a TCP client behaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
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

#[derive(Debug)]
struct Client {
    /// TCP: the stream it means to send (request and any garbage after it); UDP: the
    /// datagram as sent (after in-flight truncation).
    stream: Vec<u8>,
    behaviour: Behaviour,
    next_chunk: usize,
    sent: usize,
    sid: Option<usize>,
    received: Vec<u8>,
    read_pending: bool,
    fin_sent: bool,
    reset: bool,
    saw_eof: bool,
    refused_by_kernel: bool,
    udp_copies: u32,
    span: Option<tracing::Span>,
}

/// Why the engine closed a connection, as the world judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseReason {
    PeerReset,
    Abandoned,
    AfterEof,
    Linger,
    ReadTimeout,
    WriteTimeout,
}

impl CloseReason {
    fn name(self) -> &'static str {
        match self {
            CloseReason::PeerReset => "peer reset",
            CloseReason::Abandoned => "abandoned",
            CloseReason::AfterEof => "after eof",
            CloseReason::Linger => "linger",
            CloseReason::ReadTimeout => "read timeout",
            CloseReason::WriteTimeout => "write timeout",
        }
    }
}

/// One simulated TCP connection in the kernel, and what the world knows about it.
#[derive(Debug, Default)]
struct Pipe {
    cid: u32,
    c2s: VecDeque<u8>,
    c2s_fin: bool,
    client_rst: bool,
    s2c: VecDeque<u8>,
    s2c_fin: bool,
    storm_until: u64,
    conn: Option<ConnId>,
    server_closed: bool,
    refused: bool,
    aborted: bool,
    /// The request's length as the engine must read it (None: shorter than a header).
    req_len: Option<usize>,
    accepted_at: u64,
    read_total: usize,
    done_at: Option<u64>,
    job_run_at: Option<u64>,
    ready_at: Option<u64>,
    written: Vec<u8>,
    expected: Option<Vec<u8>>,
    shutdown_at: Option<u64>,
    eof_delivered: bool,
    error_delivered: bool,
    close: Option<CloseReason>,
    rst_destroyed: bool,
}

/// The world of one seed.
#[derive(Debug)]
pub struct World {
    /// The knobs it was built from.
    pub knobs: Knobs,
    engine: Engine,
    rng: Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    clients: Vec<Client>,
    pipes: Vec<Pipe>,
    by_conn: BTreeMap<ConnId, usize>,
    backlog: VecDeque<usize>,
    accept_blocked_until: u64,
    udp_queue: VecDeque<(SocketAddr, Vec<u8>)>,
    udp_pending: BTreeMap<SocketAddr, Vec<(Vec<u8>, u64)>>,
    udp_wake: bool,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    wakes: VecDeque<usize>,
    open: usize,
    healed: bool,
    violation: Option<Violation>,
    tracing: bool,
    hash: Fnv64,
    scratch: Vec<u8>,
    /// What the run did.
    pub stats: Stats,
}

/// The simulated clock starts here (so that nothing is at time zero).
pub const START_US: u64 = 1_000_000;

fn tcp_peer(cid: u32) -> SocketAddr {
    let [_, a, b, c] = cid.to_be_bytes();
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, a, b, c), 40_000))
}

fn udp_peer(cid: u32) -> SocketAddr {
    let [_, a, b, c] = cid.to_be_bytes();
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, a, b, c), 50_000))
}

fn udp_cid(peer: SocketAddr) -> Option<u32> {
    match peer {
        SocketAddr::V4(v4) if v4.port() == 50_000 => {
            let [_, a, b, c] = v4.ip().octets();
            Some(u32::from_be_bytes([0, a, b, c]))
        }
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

impl World {
    /// An empty world with these knobs: no clients yet (see [`World::swarm`]).
    pub fn new(knobs: Knobs, tracing: bool) -> World {
        let mut config = EngineConfig::default();
        config.raida_id = request::RAIDA_ID;
        config.coin_id = request::COIN_ID;
        config.max_connections = knobs.max_connections;
        config.max_body_size = knobs.max_body_size;
        config.socket_timeout = Duration::from_micros(knobs.socket_timeout_us);
        config.mod_queue_size = knobs.mod_queue_size;
        config.udp_payload_threshold = knobs.udp_payload_threshold;
        config.linger = Duration::from_micros(knobs.linger_us);
        config.buffer_pool = knobs.buffer_pool;
        config.max_pooled_capacity = knobs.max_pooled_capacity;
        // The simulated driver feeds no random bytes, so encrypted requests always
        // go to its workers, whose random bytes the oracle knows.
        let engine = Engine::new(
            config,
            CommandRegistry::with_builtins(),
            std::sync::Arc::new(request::key_store()),
        );
        World {
            rng: Rng::new(knobs.seed).fork(0x0057_4F52_4C44),
            knobs,
            engine,
            now: START_US,
            seq: 0,
            events: BTreeMap::new(),
            clients: Vec::new(),
            pipes: Vec::new(),
            by_conn: BTreeMap::new(),
            backlog: VecDeque::new(),
            accept_blocked_until: 0,
            udp_queue: VecDeque::new(),
            udp_pending: BTreeMap::new(),
            udp_wake: false,
            jobs: BTreeMap::new(),
            next_job: 0,
            wakes: VecDeque::new(),
            open: 0,
            healed: false,
            violation: None,
            tracing,
            hash: Fnv64::default(),
            scratch: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The world of `knobs.seed` with its clients, faults and heal time scheduled.
    pub fn swarm(knobs: Knobs, tracing: bool) -> World {
        let mut w = World::new(knobs, tracing);
        let k = w.knobs.clone();
        let mut r = Rng::new(k.seed).fork(0x434C_4945_4E54);
        let timeout = k.socket_timeout_us;
        for _ in 0..k.tcp_clients {
            let at = START_US + r.range(0, k.arrival_window_us);
            let req = Req::generate(&mut r, k.invalid_pm, k.max_payload).bytes();
            let mut stream = req;
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
            let cid = w.add_client(true, stream, b);
            w.schedule(at, Ev::Connect(cid));
        }
        for _ in 0..k.udp_clients {
            let at = START_US + r.range(0, k.arrival_window_us);
            let mut bytes = Req::generate(&mut r, k.invalid_pm, k.max_payload).bytes();
            if r.chance(k.udp_trunc_pm) {
                bytes.truncate(r.range_usize(0, bytes.len()));
            }
            let cid = w.add_client(false, bytes, Behaviour::default());
            let copies = if r.chance(k.udp_drop_pm) {
                0
            } else if r.chance(k.udp_dup_pm) {
                r.range(2, 3) as u32
            } else {
                1
            };
            w.clients[cid as usize].udp_copies = copies;
            for _ in 0..copies {
                let t = at + r.range(0, 50_000);
                w.schedule(t, Ev::Udp(cid));
            }
        }
        for _ in 0..k.clock_jumps {
            let t = START_US + r.range(0, k.arrival_window_us + timeout);
            w.schedule(t, Ev::ClockJump);
        }
        let heal = START_US + k.arrival_window_us + r.range(0, timeout * 2);
        w.schedule(heal, Ev::Heal);
        w
    }

    fn add_client(&mut self, tcp: bool, stream: Vec<u8>, behaviour: Behaviour) -> u32 {
        let cid = self.clients.len() as u32;
        let span = self.tracing.then(|| {
            if tcp {
                tracing::info_span!("peer", client = cid, proto = "tcp")
            } else {
                tracing::info_span!("peer", client = cid, proto = "udp")
            }
        });
        self.clients.push(Client {
            stream,
            behaviour,
            next_chunk: 0,
            sent: 0,
            sid: None,
            received: Vec::new(),
            read_pending: false,
            fin_sent: false,
            reset: false,
            saw_eof: false,
            refused_by_kernel: false,
            udp_copies: 0,
            span,
        });
        cid
    }

    // ----- the trace ------------------------------------------------------------------

    fn log(&mut self, cid: Option<u32>, msg: impl FnOnce() -> String) {
        if !self.tracing {
            return;
        }
        let line = format!("t={} {}", self.now, msg());
        self.hash.update(line.as_bytes());
        self.hash.update(b"\n");
        let span = cid.and_then(|c| self.clients.get(c as usize)?.span.clone());
        match span {
            Some(span) => {
                let _e = span.enter();
                tracing::info!("{line}");
            }
            None => tracing::info!("{line}"),
        }
    }

    /// The hash of the whole trace so far (replay only).
    pub fn trace_hash(&self) -> u64 {
        self.hash.finish()
    }

    fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.log(None, || format!("VIOLATION {what}"));
            self.violation = Some(Violation { at: self.now, what });
        }
    }

    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    fn ts(&self) -> Timestamp {
        Timestamp::from_micros(self.now)
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    // ----- running --------------------------------------------------------------------

    /// Runs events and engine timers due at or before `until` (all of them: `None`).
    fn run(&mut self, until: Option<u64>) {
        while self.violation.is_none() {
            self.stats.steps += 1;
            if self.stats.steps > MAX_STEPS {
                self.violate(format!("livelock: more than {MAX_STEPS} steps"));
                return;
            }
            let ev_t = self.events.first_key_value().map(|(k, _)| k.0);
            let timer = self.engine.poll_timeout().map(Timestamp::as_micros);
            let next = match (ev_t, timer) {
                (None, None) => return,
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (Some(a), Some(b)) => a.min(b),
            };
            if let Some(u) = until {
                if next > u.max(self.now) {
                    return;
                }
            }
            if timer.is_some_and(|t| ev_t.map_or(true, |e| t <= e)) {
                self.now = self.now.max(next);
                self.log(None, || "engine timeout".into());
                self.engine.handle_timeout(self.ts());
                self.settle();
                self.check();
                continue;
            }
            let Some(((t, _), ev)) = self.events.pop_first() else {
                return;
            };
            self.now = self.now.max(t);
            self.event(ev);
            self.check();
        }
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Connect(cid) => self.connect(cid),
            Ev::Send(cid) => {
                let n = self.clients[cid as usize]
                    .behaviour
                    .chunks
                    .get(self.clients[cid as usize].next_chunk)
                    .copied();
                if let Some(n) = n {
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
            }
            Ev::Read(cid) => {
                let max = self.rng.range_usize(1, self.knobs.client_read_max);
                self.client_read(cid, max);
            }
            Ev::Fin(cid) => self.fin(cid),
            Ev::Reset(cid) => self.reset(cid),
            Ev::Udp(cid) => {
                let bytes = self.clients[cid as usize].stream.clone();
                self.udp_send(cid, bytes);
            }
            Ev::ListenerRetry => {
                self.log(None, || "listener: accept the rest".into());
                self.accept_loop();
                self.settle();
            }
            Ev::Ready(sid) => {
                self.wakes.push_back(sid);
                self.settle();
            }
            Ev::Worker(jid) => self.complete(jid),
            Ev::ClockJump => {
                if !self.healed {
                    let d = self.rng.range(1_000, self.knobs.clock_jump_max_us);
                    self.now += d;
                    self.log(None, || format!("clock jumps {d}us"));
                }
            }
            Ev::Heal => {
                self.healed = true;
                self.log(None, || "heal: faults stop".into());
            }
        }
    }

    /// The safety checks after every step.
    fn check(&mut self) {
        let e = &self.engine;
        let (in_flight, conns) = (e.in_flight(), e.connection_count());
        if in_flight > self.knobs.mod_queue_size {
            self.violate(format!(
                "in-flight bound: {in_flight} jobs in flight, mod_queue_size {}",
                self.knobs.mod_queue_size
            ));
        } else if in_flight != self.jobs.len() {
            self.violate(format!(
                "the engine counts {in_flight} jobs in flight, the workers hold {}",
                self.jobs.len()
            ));
        } else if conns > self.knobs.max_connections {
            self.violate(format!(
                "{conns} connections open, max_connections {}",
                self.knobs.max_connections
            ));
        } else if conns != self.open {
            self.violate(format!(
                "the engine holds {conns} connections, the kernel has {} open",
                self.open
            ));
        }
    }

    /// Heal and drain: faults stop, held jobs complete, time runs past every deadline;
    /// then the liveness checks. Returns the first violation.
    pub fn finish(&mut self) -> Result<(), Violation> {
        self.healed = true;
        for _ in 0..10_000 {
            self.run(None);
            if self.violation.is_some() || self.jobs.is_empty() {
                break;
            }
            // Held jobs (proptest): complete them, oldest first.
            let jids: Vec<u64> = self.jobs.keys().copied().collect();
            for jid in jids {
                self.complete(jid);
            }
        }
        if self.violation.is_none() {
            self.final_checks();
        }
        self.stats.end_us = self.now;
        if self.tracing {
            let end = format!("end: {:?}", self.stats);
            self.log(None, || end);
        }
        match self.violation.clone() {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    /// Runs the whole swarm world to the end.
    pub fn run_all(&mut self) -> Result<(), Violation> {
        self.run(None);
        self.finish()
    }

    fn final_checks(&mut self) {
        if !self.engine.is_idle() {
            let e = &self.engine;
            let what = format!(
                "liveness: engine not idle after the drain: {} connections, {} in flight, \
                 {} waiting, next deadline {:?}",
                e.connection_count(),
                e.in_flight(),
                e.waiting(),
                e.poll_timeout()
            );
            return self.violate(what);
        }
        if !self.backlog.is_empty() {
            let n = self.backlog.len();
            return self.violate(format!(
                "liveness: {n} connections never accepted from the listener's queue"
            ));
        }
        if !self.udp_queue.is_empty() {
            let n = self.udp_queue.len();
            return self.violate(format!("liveness: {n} datagrams never read"));
        }
        if let Some((peer, list)) = self.udp_pending.iter().find(|(_, l)| !l.is_empty()) {
            let what = format!(
                "liveness: {} datagram(s) from {peer} never answered (first: {})",
                list.len(),
                hex(&list[0].0)
            );
            return self.violate(what);
        }
        for (sid, p) in self.pipes.iter().enumerate() {
            let c = &self.clients[p.cid as usize];
            if p.conn.is_some() && !p.server_closed {
                let what = format!(
                    "liveness: connection of client {} (socket {sid}) never closed",
                    p.cid
                );
                return self.violate(what);
            }
            if c.behaviour.reads
                && !c.reset
                && p.shutdown_at.is_some()
                && !p.rst_destroyed
                && c.received != p.written
            {
                let what = format!(
                    "client {} read {} of the {} response bytes written",
                    p.cid,
                    c.received.len(),
                    p.written.len()
                );
                return self.violate(what);
            }
        }
    }

    /// Drains the engine's outputs and services woken sockets until nothing moves.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if self.violation.is_some() {
                return;
            }
            if let Some(o) = self.engine.poll_output() {
                self.apply(o);
                continue;
            }
            if let Some(sid) = self.wakes.pop_front() {
                self.service(sid);
                continue;
            }
            if self.udp_wake {
                self.udp_wake = false;
                self.read_udp();
                continue;
            }
            return;
        }
        self.violate("livelock: the driver never settled".into());
    }

    fn drain(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            self.apply(o);
        }
    }

    fn apply(&mut self, o: Output) {
        match o {
            Output::Job(job) => {
                let jid = self.next_job;
                self.next_job += 1;
                let origin = job.origin();
                self.jobs.insert(jid, job);
                if self.engine.in_flight() > self.knobs.mod_queue_size {
                    let n = self.engine.in_flight();
                    self.violate(format!(
                        "in-flight bound: a job started with {n} in flight, mod_queue_size {}",
                        self.knobs.mod_queue_size
                    ));
                }
                if !self.knobs.hold_jobs {
                    let mut d = self.rng.range(0, self.knobs.worker_delay_max_us);
                    if !self.healed && self.rng.chance(self.knobs.worker_stall_pm) {
                        d += self.rng.range(500_000, 8_000_000);
                    }
                    self.schedule(self.now + d, Ev::Worker(jid));
                    let cid = self.origin_client(origin);
                    self.log(cid, || format!("job {jid} out, done in {d}us"));
                }
            }
            Output::Wake(id) => match self.by_conn.get(&id) {
                Some(&sid) if !self.pipes[sid].server_closed => {
                    let p = &mut self.pipes[sid];
                    if p.done_at.is_some() && p.ready_at.is_none() {
                        // The response is ready (its write deadline starts now), even if
                        // an EAGAIN storm keeps the driver from writing it yet.
                        p.ready_at = Some(self.now);
                    }
                    self.wakes.push_back(sid)
                }
                Some(_) => {}
                None => self.violate(format!("wake for {id:?}, never accepted")),
            },
            Output::Close(id) => self.close(id),
            Output::Datagram { peer, bytes } => self.datagram_out(peer, bytes),
            Output::ResumeDatagrams => {
                self.log(None, || "udp: resume".into());
                self.udp_wake = true;
            }
            Output::ResumeAccepting => {
                self.log(None, || "listener: accept again".into());
                self.accept_loop();
            }
            Output::StopListening => self.violate("StopListening with no shutdown asked".into()),
        }
    }

    fn origin_client(&self, origin: Origin) -> Option<u32> {
        match origin {
            Origin::Tcp(id) => self.by_conn.get(&id).map(|&sid| self.pipes[sid].cid),
            Origin::Udp(peer) => udp_cid(peer),
            _ => None,
        }
    }

    // ----- the listener -----------------------------------------------------------------

    fn connect(&mut self, cid: u32) {
        if self.backlog.len() >= self.knobs.backlog {
            self.clients[cid as usize].refused_by_kernel = true;
            self.log(Some(cid), || {
                "connect: refused by the kernel (backlog full)".into()
            });
            return;
        }
        let stream = &self.clients[cid as usize].stream;
        let sid = self.pipes.len();
        self.pipes.push(Pipe {
            cid,
            req_len: request::request_len(stream, self.knobs.max_body_size),
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
        let was_empty = self.backlog.is_empty();
        self.backlog.push_back(sid);
        // Edge-triggered: the listener is reported only when its queue becomes non-empty.
        if was_empty {
            self.accept_loop();
            self.settle();
        }
    }

    /// The driver's accept loop on listener readiness: the engine's own accept loop
    /// over the simulated listener (faults: EMFILE for a while, a connection aborted in
    /// the queue), then each accepted connection is serviced.
    fn accept_loop(&mut self) {
        if self.violation.is_some() {
            return;
        }
        let now = self.ts();
        let mut listener = Backlog {
            backlog: &mut self.backlog,
            pipes: &mut self.pipes,
            rng: &mut self.rng,
            knobs: &self.knobs,
            healed: self.healed,
            now: self.now,
            blocked_until: &mut self.accept_blocked_until,
            seen: Vec::new(),
        };
        let mut answers = Vec::new();
        let stop = self
            .engine
            .accept_from(&mut listener, now, |engine, sid, answer| {
                answers.push((sid, answer, engine.connection_count()));
            });
        let seen = std::mem::take(&mut listener.seen);
        for line in seen {
            match line {
                Queue::Emfile(until) => self.log(None, || format!("accept: EMFILE until {until}")),
                Queue::Aborted(cid) => self.log(Some(cid), || {
                    "accept: connection aborted in the queue".into()
                }),
            }
        }
        if let AcceptStop::Paused { .. } = stop {
            self.log(None, || "accept: paused".into());
        }
        for (sid, answer, open_then) in answers {
            self.accepted(sid, answer, open_then);
        }
        if stop == AcceptStop::Budget {
            // The driver accepts again after serving everything else.
            self.schedule(self.now, Ev::ListenerRetry);
        }
    }

    /// The engine's answer to the connection of socket `sid`.
    fn accepted(&mut self, sid: usize, answer: Accept, open_then: usize) {
        let cid = self.pipes[sid].cid;
        match answer {
            Accept::Accepted(id) => {
                if self.by_conn.insert(id, sid).is_some() {
                    self.violate(format!("{id:?} given to two connections"));
                }
                self.stats.accepted += 1;
                self.open += 1;
                let p = &mut self.pipes[sid];
                p.conn = Some(id);
                p.accepted_at = self.now;
                self.log(Some(cid), || {
                    format!("accepted as {}:{}", id.index(), id.generation())
                });
                // Try the read right after accepting: bytes that arrived while the
                // connection sat in the queue raise no new edge.
                self.wakes.push_back(sid);
            }
            Accept::Refused(bytes) => {
                self.stats.refused += 1;
                if open_then < self.knobs.max_connections {
                    self.violate(format!("refused with only {open_then} connections open"));
                }
                if bytes != request::refusal() {
                    self.violate(format!("refusal bytes {}", hex(&bytes)));
                }
                let p = &mut self.pipes[sid];
                p.refused = true;
                let n = bytes.len().min(self.knobs.send_window);
                p.s2c.extend(&bytes[..n]);
                p.written.extend_from_slice(&bytes[..n]);
                p.s2c_fin = true;
                p.server_closed = true;
                self.log(Some(cid), || "refused (160)".into());
                self.schedule_read(cid);
            }
        }
    }

    // ----- clients ----------------------------------------------------------------------

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
        let p = &mut self.pipes[sid];
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
        self.pipes[sid].c2s_fin = true;
        self.log(Some(cid), || "fin".into());
        self.ready(sid);
    }

    /// Client `cid` resets its connection.
    pub fn reset(&mut self, cid: u32) {
        let Some(sid) = self.live_sid(cid) else {
            return;
        };
        self.clients[cid as usize].reset = true;
        let p = &mut self.pipes[sid];
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
        let p = &mut self.pipes[sid];
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

    fn schedule_read(&mut self, cid: u32) {
        let c = &self.clients[cid as usize];
        if !c.behaviour.reads || c.read_pending {
            return;
        }
        let d = self.rng.range(0, c.behaviour.delay_max_us);
        self.clients[cid as usize].read_pending = true;
        self.schedule(self.now + d, Ev::Read(cid));
    }

    /// A readiness edge on socket `sid` (if the engine has it).
    fn ready(&mut self, sid: usize) {
        let p = &self.pipes[sid];
        if p.conn.is_some() && !p.server_closed {
            self.wakes.push_back(sid);
            self.settle();
        }
    }

    // ----- the driver's socket service ---------------------------------------------------

    /// Services one connection like a driver on readiness: the socket's faults (an
    /// error, an EAGAIN storm) are the kernel's, then the engine's own service loop
    /// runs over the simulated socket, and what the socket saw is checked and applied.
    fn service(&mut self, sid: usize) {
        if self.violation.is_some() {
            return;
        }
        let p = &self.pipes[sid];
        let (Some(id), false) = (p.conn, p.server_closed) else {
            return;
        };
        let cid = p.cid;
        if p.client_rst {
            // EPOLLERR is reported whatever the interest.
            if !p.error_delivered {
                self.pipes[sid].error_delivered = true;
                self.log(Some(cid), || "server: ECONNRESET".into());
                self.engine.handle_error(id, self.ts());
                self.drain();
            }
            return;
        }
        if self.pipes[sid].storm_until > self.now {
            return;
        }
        if !self.healed && self.rng.chance(self.knobs.eagain_pm) {
            let d = self.rng.range(1, self.knobs.eagain_max_us);
            self.pipes[sid].storm_until = self.now + d;
            self.schedule(self.now + d, Ev::Ready(sid));
            self.log(Some(cid), || format!("server: EAGAIN storm for {d}us"));
            return;
        }
        let now = self.ts();
        let mut io = PipeIo {
            pipe: &mut self.pipes[sid],
            stream: &self.clients[cid as usize].stream,
            rng: &mut self.rng,
            knobs: &self.knobs,
            now: self.now,
            cid,
            seen: Vec::new(),
            bad: None,
        };
        let _ = self.engine.service(id, &mut io, now);
        let (seen, bad) = (io.seen, io.bad);
        if let Some(b) = bad {
            return self.violate(b);
        }
        for event in seen {
            match event {
                Seen::Read(n) => self.log(Some(cid), || format!("server: read {n}")),
                Seen::Eof => self.log(Some(cid), || "server: read eof".into()),
                Seen::Wrote(n) => {
                    self.log(Some(cid), || format!("server: wrote {n}"));
                    self.check_written(sid);
                    self.schedule_read(cid);
                }
                Seen::Shutdown => self.shutdown_write(sid),
            }
        }
        self.drain();
    }

    /// The response written so far must be a prefix of the codec's answer.
    fn check_written(&mut self, sid: usize) {
        if self.pipes[sid].expected.is_none() {
            let p = &self.pipes[sid];
            let cid = p.cid;
            let (Some(done), Some(len)) = (p.done_at, p.req_len) else {
                let what = format!(
                    "client {cid}: response written before the request was complete \
                     ({} bytes read)",
                    p.read_total
                );
                return self.violate(what);
            };
            let built = p.job_run_at.unwrap_or(done);
            let elapsed = request::elapsed(p.accepted_at, built);
            let random = request::job_random(self.knobs.seed, cid);
            let stream = &self.clients[cid as usize].stream;
            let expected = request::expected_answer(
                &stream[..len],
                self.knobs.max_body_size,
                elapsed,
                &random,
            );
            self.pipes[sid].expected = Some(expected.unwrap_or_default());
        }
        let p = &self.pipes[sid];
        let expected = p.expected.as_deref().unwrap_or(&[]);
        if !expected.starts_with(&p.written) {
            let what = format!(
                "client {}: response differs from the codec's answer\n  request  {}\n  \
                 written  {}\n  expected {}",
                p.cid,
                hex(&self.clients[p.cid as usize].stream[..p.req_len.unwrap_or(0)]),
                hex(&p.written),
                hex(expected)
            );
            self.violate(what);
        }
    }

    /// The engine shut down the write side of socket `sid` (its response is out).
    fn shutdown_write(&mut self, sid: usize) {
        let p = &self.pipes[sid];
        let cid = p.cid;
        if p.server_closed {
            return self.violate(format!("client {cid}: shutdown after close"));
        }
        if p.shutdown_at.is_some() {
            return self.violate(format!("client {cid}: write side shut down twice"));
        }
        if p.expected.as_deref() != Some(&p.written[..]) {
            let what = format!(
                "client {cid}: shut down after {} bytes, the response has {}",
                p.written.len(),
                p.expected.as_ref().map_or(0, Vec::len)
            );
            return self.violate(what);
        }
        let p = &mut self.pipes[sid];
        p.shutdown_at = Some(self.now);
        p.s2c_fin = true;
        self.stats.tcp_responses += 1;
        self.log(Some(cid), || "server: shutdown(write)".into());
        self.schedule_read(cid);
    }

    fn close(&mut self, id: ConnId) {
        let Some(&sid) = self.by_conn.get(&id) else {
            return self.violate(format!("close of {id:?}, never accepted"));
        };
        let timeout = self.knobs.socket_timeout_us;
        let p = &self.pipes[sid];
        let cid = p.cid;
        if p.server_closed {
            return self.violate(format!("client {cid}: connection closed twice"));
        }
        let now = self.now;
        let reason = if p.error_delivered {
            Ok(CloseReason::PeerReset)
        } else if let Some(shut) = p.shutdown_at {
            if p.eof_delivered {
                Ok(CloseReason::AfterEof)
            } else if now >= shut + self.knobs.linger_us {
                Ok(CloseReason::Linger)
            } else {
                Err("closed while lingering, before the peer's eof or the linger deadline")
            }
        } else if p.done_at.is_none() {
            if p.eof_delivered {
                Ok(CloseReason::Abandoned)
            } else if now >= p.accepted_at + timeout {
                Ok(CloseReason::ReadTimeout)
            } else {
                Err("closed before the socket timeout while reading the request")
            }
        } else if let Some(ready) = p.ready_at {
            if now >= ready + timeout {
                Ok(CloseReason::WriteTimeout)
            } else {
                Err("closed before the whole response was written or the write timeout")
            }
        } else {
            Err("closed a complete request before its response (the job's time is not the peer's)")
        };
        let reason = match reason {
            Ok(r) => r,
            Err(what) => {
                let p = &self.pipes[sid];
                let what = format!(
                    "client {cid}: {what} (accepted at {}, read {} of {:?}, done {:?}, \
                     ready {:?}, eof {}, timeout {timeout})",
                    p.accepted_at, p.read_total, p.req_len, p.done_at, p.ready_at, p.eof_delivered
                );
                return self.violate(what);
            }
        };
        *self.stats.closes.entry(reason.name()).or_default() += 1;
        self.open -= 1;
        let p = &mut self.pipes[sid];
        p.server_closed = true;
        p.close = Some(reason);
        if !p.c2s.is_empty() && !p.client_rst {
            // Closing with unread bytes sends a reset, which destroys what the client
            // has not read yet.
            p.rst_destroyed = !p.s2c.is_empty();
            p.s2c.clear();
        }
        p.s2c_fin = true;
        self.log(Some(cid), || format!("server: close ({})", reason.name()));
        self.schedule_read(cid);
    }

    // ----- workers -----------------------------------------------------------------------

    /// Completes held job number `k` (in order of their start), if there is one.
    pub fn complete_nth(&mut self, k: usize) {
        if self.jobs.is_empty() {
            return;
        }
        let jid = self.jobs.keys().nth(k % self.jobs.len()).copied();
        if let Some(jid) = jid {
            self.complete(jid);
            self.check();
        }
    }

    /// Jobs held by the workers.
    pub fn jobs_held(&self) -> usize {
        self.jobs.len()
    }

    fn complete(&mut self, jid: u64) {
        let Some(job) = self.jobs.remove(&jid) else {
            return;
        };
        self.stats.jobs += 1;
        let origin = job.origin();
        let (cid, late) = match origin {
            Origin::Tcp(id) => match self.by_conn.get(&id) {
                Some(&sid) => {
                    let p = &mut self.pipes[sid];
                    p.job_run_at = Some(self.now);
                    (p.cid, p.server_closed)
                }
                None => return self.violate(format!("job for {id:?}, never accepted")),
            },
            Origin::Udp(peer) => match udp_cid(peer) {
                Some(cid) => (cid, false),
                None => return self.violate(format!("job for unknown peer {peer}")),
            },
            other => return self.violate(format!("a job of origin {other:?}")),
        };
        let random = request::job_random(self.knobs.seed, cid);
        let completion = job.run(self.ts(), &random, &mut self.scratch);
        let before = self.engine.counters().late_completions_dropped;
        self.log(Some(cid), || {
            format!("job {jid} done{}", if late { " (late)" } else { "" })
        });
        self.engine.handle_completion(completion, self.ts());
        let after = self.engine.counters().late_completions_dropped;
        if late {
            self.stats.late_completions += 1;
            if after == before {
                return self.violate(format!(
                    "client {cid}: a completion for a closed connection was not dropped"
                ));
            }
        }
        self.settle();
    }

    // ----- UDP ---------------------------------------------------------------------------

    /// Client `cid` sends one datagram (it arrives in the UDP socket's queue).
    pub fn udp_send(&mut self, cid: u32, bytes: Vec<u8>) {
        let peer = udp_peer(cid);
        if self.udp_queue.len() >= self.knobs.udp_queue_cap {
            self.log(Some(cid), || {
                "udp: dropped by the kernel (queue full)".into()
            });
            return;
        }
        self.log(Some(cid), || format!("udp: send {} bytes", bytes.len()));
        let was_empty = self.udp_queue.is_empty();
        self.udp_queue.push_back((peer, bytes));
        if was_empty {
            self.read_udp();
            self.settle();
        }
    }

    /// A UDP client with these bytes (for scripted runs).
    pub fn add_udp_client(&mut self, bytes: Vec<u8>) -> u32 {
        self.add_client(false, bytes, Behaviour::default())
    }

    /// The driver reads the UDP socket while the engine wants datagrams.
    fn read_udp(&mut self) {
        while self.engine.wants_datagrams() && self.violation.is_none() {
            let Some((peer, bytes)) = self.udp_queue.pop_front() else {
                return;
            };
            let kept = &bytes[..bytes.len().min(self.knobs.udp_payload_threshold)];
            if RequestHeader::parse(kept).is_some() {
                self.udp_pending
                    .entry(peer)
                    .or_default()
                    .push((kept.to_vec(), self.now));
            }
            let cid = udp_cid(peer);
            self.log(cid, || format!("udp: server reads {} bytes", bytes.len()));
            self.engine.handle_datagram(peer, &bytes, self.ts());
            self.drain();
        }
    }

    fn datagram_out(&mut self, peer: SocketAddr, bytes: Vec<u8>) {
        let Some(cid) = udp_cid(peer) else {
            return self.violate(format!("datagram to unknown peer {peer}"));
        };
        let random = request::job_random(self.knobs.seed, cid);
        let pending = self.udp_pending.get(&peer).cloned().unwrap_or_default();
        let found = pending.iter().position(|(kept, at)| {
            let elapsed = request::elapsed(*at, self.now);
            request::expected_answer(kept, self.knobs.max_body_size, elapsed, &random).as_ref()
                == Some(&bytes)
        });
        match found {
            Some(i) => {
                if let Some(list) = self.udp_pending.get_mut(&peer) {
                    list.remove(i);
                }
                self.stats.udp_responses += 1;
                self.log(Some(cid), || format!("udp: response {} bytes", bytes.len()));
            }
            None => {
                let what = format!(
                    "client {cid}: datagram response matches no request of its peer \
                     ({} pending)\n  response {}\n  first request {}",
                    pending.len(),
                    hex(&bytes),
                    pending.first().map_or(String::new(), |(k, _)| hex(k))
                );
                self.violate(what);
            }
        }
    }

    // ----- scripted runs (proptest) -------------------------------------------------------

    /// Adds a TCP client that will send `stream`, reads everything, and connects now.
    pub fn connect_scripted(&mut self, stream: Vec<u8>) -> u32 {
        let behaviour = Behaviour {
            reads: true,
            ..Behaviour::default()
        };
        let cid = self.add_client(true, stream, behaviour);
        self.connect(cid);
        self.check();
        cid
    }

    /// Clients so far.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Moves the clock forward by `us` and runs what falls due.
    pub fn advance(&mut self, us: u64) {
        let until = self.now + us;
        self.run(Some(until));
        self.now = self.now.max(until);
        self.run(Some(self.now));
    }

    /// Runs what is due now (after a scripted input).
    pub fn step(&mut self) {
        self.run(Some(self.now));
        self.check();
    }

    /// The engine, for its counters.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Simulated time, microseconds.
    pub fn now(&self) -> u64 {
        self.now
    }
}

/// What the simulated socket saw during one service call, for the trace and the
/// checks that follow it.
#[derive(Debug)]
enum Seen {
    Read(usize),
    Eof,
    Wrote(usize),
    Shutdown,
}

/// One simulated connection as the engine's service loop sees it: reads of random
/// sizes from what the client sent, writes into a bounded send window, and the check
/// that the engine never lends a read past the request.
struct PipeIo<'a> {
    pipe: &'a mut Pipe,
    stream: &'a [u8],
    rng: &'a mut Rng,
    knobs: &'a Knobs,
    now: u64,
    cid: u32,
    seen: Vec<Seen>,
    bad: Option<String>,
}

impl ConnSocket for PipeIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let p = &mut *self.pipe;
        let lent = buf.len();
        let shut = p.shutdown_at.is_some() || self.seen.iter().any(|e| matches!(e, Seen::Shutdown));
        if !shut && self.bad.is_none() {
            let bound = request::read_bound(self.stream, p.read_total, self.knobs.max_body_size);
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
            for (dst, src) in buf.iter_mut().zip(p.c2s.drain(..n)) {
                *dst = src;
            }
            p.read_total += n;
            if p.done_at.is_none() && p.req_len.is_some_and(|l| p.read_total >= l) {
                p.done_at = Some(self.now);
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
        self.seen.push(Seen::Shutdown);
    }
}

/// What the simulated listener did during one accept loop, for the trace.
#[derive(Debug)]
enum Queue {
    Emfile(u64),
    Aborted(u32),
}

/// The listener's accept queue as the engine's accept loop sees it.
struct Backlog<'a> {
    backlog: &'a mut VecDeque<usize>,
    pipes: &'a mut [Pipe],
    rng: &'a mut Rng,
    knobs: &'a Knobs,
    healed: bool,
    now: u64,
    /// EMFILE until then.
    blocked_until: &'a mut u64,
    seen: Vec<Queue>,
}

impl Listener for Backlog<'_> {
    type Socket = usize;

    fn accept(&mut self) -> Accepting<usize> {
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
            p.aborted = true;
            p.server_closed = true;
            p.s2c.clear();
            self.seen.push(Queue::Aborted(p.cid));
            return Accepting::Skip;
        }
        Accepting::Conn(sid, tcp_peer(p.cid))
    }
}
