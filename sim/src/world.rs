//! The world of one seed and its event loop: the unmodified engine, the simulated
//! kernel ([`crate::kernel`]) and clients ([`crate::clients`]), simulated workers and
//! a virtual clock, tied together by the driver loop of `io-epoll` (edge-triggered
//! readiness, the engine's own accept loop and service loop, every output drained
//! after every input).
//!
//! The invariants ([`crate::invariants`]) are checked after every step; the first
//! violation stops the run. A run ends with a heal-and-drain phase (faults stop,
//! clients finish or give up, time runs past every deadline) after which the engine
//! must be idle.
//!
//! In a share of seeds the world shuts the server down while clients still arrive
//! (`Knobs::shutdown_at_us`): it calls `Engine::handle_shutdown`, the driver closes its
//! listener when the engine says so (the kernel resets the connections still queued
//! and refuses later ones, as Linux does) and stops reading datagrams, and it stops
//! driving the engine when the engine reports `Drained` or `TimedOut` (after a time
//! out the process exits and the kernel closes what it held). The clients go on
//! meanwhile, so what they read is still checked.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use raida_core::codec::RequestHeader;
use raida_core::keys::MemoryKeyStore;
use raida_core::{
    Accept, AcceptStop, ConnId, Engine, Job, KeyStore, Origin, Output, ShutdownStatus, Timestamp,
};

use crate::auth::{Exec, Workload};
use crate::clients::{Behaviour, Client};
use crate::invariants::Violation;
use crate::kernel::{udp_cid, Backlog, Kernel, PipeIo, Queue, Seen};
use crate::knobs::Knobs;
use crate::limits::{self, Limits};
use crate::oracle::{BodyBudget, Oracle};
use crate::request::ClientRequest;
use crate::rng::{Fnv64, Rng};
use crate::server;

/// Steps (engine inputs and simulated events) after which a run counts as livelocked.
const MAX_STEPS: u64 = 2_000_000;

/// The simulated clock starts here (so that nothing is at time zero).
pub const START_US: u64 = 1_000_000;

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
    /// Witness responses whose handler's context was checked against its request.
    pub contexts_checked: u64,
    /// Closes by reason.
    pub closes: BTreeMap<&'static str, u64>,
    /// Shutdowns asked.
    pub shutdowns: u64,
    /// Shutdowns that drained.
    pub drained: u64,
    /// Shutdowns whose drain timed out.
    pub drain_timeouts: u64,
    /// Queued connections the kernel reset when the listener closed, and connects it
    /// refused after.
    pub kernel_resets: u64,
    /// Datagrams handed to the engine after the shutdown (it must drop them).
    pub late_datagrams: u64,
    /// Connections refused at `max_connections_per_client`.
    pub refused_per_client: u64,
    /// Connections refused over their client's rate.
    pub refused_rate: u64,
    /// Datagrams over their client's rate.
    pub udp_rate_limited: u64,
    /// Of those, answered 160.
    pub udp_refusals: u64,
    /// Connections that waited for room in the buffered-bytes budget.
    pub budget_waits: u64,
    /// Connections closed at the discard limit.
    pub discard_limit_closes: u64,
    /// Executions of authentication requests (each arrived whole at the server).
    pub auth_execs: u64,
    /// Of those, never answered (their outcome unknown to the model).
    pub auth_unknown: u64,
    /// Pown and pown_sum entries that passed.
    pub powns_passed: u64,
    /// Detect and detect_sum entries that passed.
    pub detects_passed: u64,
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
        self.contexts_checked += o.contexts_checked;
        for (k, v) in &o.closes {
            *self.closes.entry(k).or_default() += v;
        }
        self.shutdowns += o.shutdowns;
        self.drained += o.drained;
        self.drain_timeouts += o.drain_timeouts;
        self.kernel_resets += o.kernel_resets;
        self.late_datagrams += o.late_datagrams;
        self.refused_per_client += o.refused_per_client;
        self.refused_rate += o.refused_rate;
        self.udp_rate_limited += o.udp_rate_limited;
        self.udp_refusals += o.udp_refusals;
        self.budget_waits += o.budget_waits;
        self.discard_limit_closes += o.discard_limit_closes;
        self.auth_execs += o.auth_execs;
        self.auth_unknown += o.auth_unknown;
        self.powns_passed += o.powns_passed;
        self.detects_passed += o.detects_passed;
        self.steps += o.steps;
        self.end_us = self.end_us.max(o.end_us);
    }
}

/// A simulated event, due at a time.
#[derive(Clone, Debug)]
pub(crate) enum Ev {
    /// Client `cid` connects.
    Connect(u32),
    /// Client `cid` sends its next chunk.
    Send(u32),
    /// Client `cid` reads.
    Read(u32),
    /// Client `cid` half-closes.
    Fin(u32),
    /// Client `cid` resets.
    Reset(u32),
    /// UDP client `cid` sends its datagram (once per copy).
    Udp(u32),
    /// The accept loop stopped at its turn budget: the driver accepts the rest after
    /// serving everything else.
    ListenerRetry,
    /// Socket `sid`'s EAGAIN storm is over: a readiness edge.
    Ready(usize),
    /// Worker job `jid` is done.
    Worker(u64),
    /// The clock jumps forward.
    ClockJump,
    /// Faults stop.
    Heal,
    /// The server is asked to shut down.
    Shutdown,
}

impl Ev {
    /// Whether the event is the server's (its driver, workers or sockets): once the
    /// driver has stopped, only the clients' and the kernel's events go on.
    fn is_server_side(&self) -> bool {
        matches!(
            self,
            Ev::ListenerRetry | Ev::Ready(_) | Ev::Worker(_) | Ev::Shutdown
        )
    }
}

/// A datagram the engine read whose answer is due.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    /// What the engine kept of it.
    pub kept: Vec<u8>,
    /// When it was read.
    pub at: u64,
    /// It was over its client's rate: its answer is the 160.
    pub busy: bool,
    /// Its execution, for the authentication model (`World::execs`).
    pub exec: Option<usize>,
}

/// The shutdown of a run, once asked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shutdown {
    /// When `handle_shutdown` was called.
    pub at: u64,
    /// When the drain must be over: `at` + `drain_timeout`.
    pub deadline: u64,
}

/// The world of one seed.
#[derive(Debug)]
pub struct World {
    /// The knobs it was built from.
    pub knobs: Knobs,
    pub(crate) engine: Engine,
    /// The independent expected answers.
    pub(crate) oracle: Oracle,
    pub(crate) rng: Rng,
    pub(crate) now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    pub(crate) clients: Vec<Client>,
    pub(crate) kernel: Kernel,
    /// The driver's registry: which socket each live connection id names.
    by_conn: BTreeMap<ConnId, usize>,
    /// Datagrams the engine read whose answer is due, by peer.
    pub(crate) udp_pending: BTreeMap<SocketAddr, Vec<Pending>>,
    /// The per-client limits the engine must keep.
    pub(crate) limits: Limits,
    /// The authentication workload's coins.
    pub(crate) workload: Workload,
    /// The engine's store (to read the coins' records at the end).
    pub(crate) store: Arc<MemoryKeyStore>,
    /// Every execution of an authentication request, in arrival order.
    pub(crate) execs: Vec<Exec>,
    /// The order of arrivals and answers of executions (a counter).
    tick: u64,
    /// The engine asked for the UDP socket to be read again.
    udp_wake: bool,
    /// Jobs the simulated workers hold, by number.
    pub(crate) jobs: BTreeMap<u64, Job>,
    next_job: u64,
    /// Sockets to service, in order.
    wakes: VecDeque<usize>,
    /// An [`Ev::ListenerRetry`] is scheduled.
    listener_retry: bool,
    pub(crate) healed: bool,
    /// The shutdown, once asked.
    pub(crate) shutdown: Option<Shutdown>,
    /// The listener (TCP) and the UDP socket are open: until the engine says
    /// [`Output::StopListening`].
    pub(crate) listening: bool,
    /// The driver stopped after the shutdown, with this status (`Drained` or
    /// `TimedOut`): the engine is driven no more.
    pub(crate) stopped: Option<ShutdownStatus>,
    pub(crate) violation: Option<Violation>,
    pub(crate) tracing: bool,
    hash: Fnv64,
    /// The workers' buffer for command output.
    scratch: Vec<u8>,
    /// The socket's record of one service call, reused.
    seen: Vec<Seen>,
    /// What the run did.
    pub stats: Stats,
}

impl World {
    /// An empty world with these knobs: no clients yet (see [`World::swarm`]).
    pub fn new(knobs: Knobs, tracing: bool) -> World {
        // The simulated driver feeds no random bytes, so encrypted requests always
        // go to its workers, whose random bytes the oracle knows.
        let workload = Workload::from_knobs(&knobs);
        let keys = server::store(&workload);
        let commands = server::commands();
        let store = Arc::new(keys.clone());
        let engine = Engine::new(
            server::config(&knobs),
            commands.clone(),
            Arc::clone(&store) as Arc<dyn KeyStore>,
        );
        World {
            oracle: Oracle::of(
                knobs.max_body_size,
                BodyBudget {
                    limit: knobs.max_buffered_bytes,
                    small_reserve: knobs.small_reserve,
                    small_body: knobs.small_body,
                },
                commands,
                keys,
            ),
            limits: server::limits(&knobs),
            workload,
            store,
            execs: Vec::new(),
            tick: 0,
            rng: Rng::new(knobs.seed).fork(0x0057_4F52_4C44),
            knobs,
            engine,
            now: START_US,
            seq: 0,
            events: BTreeMap::new(),
            clients: Vec::new(),
            kernel: Kernel::default(),
            by_conn: BTreeMap::new(),
            udp_pending: BTreeMap::new(),
            udp_wake: false,
            jobs: BTreeMap::new(),
            next_job: 0,
            wakes: VecDeque::new(),
            listener_retry: false,
            healed: false,
            shutdown: None,
            listening: true,
            stopped: None,
            violation: None,
            tracing,
            hash: Fnv64::default(),
            scratch: Vec::new(),
            seen: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The world of `knobs.seed` with its clients, faults and heal time scheduled.
    pub fn swarm(knobs: Knobs, tracing: bool) -> World {
        let mut w = World::new(knobs, tracing);
        w.populate();
        w
    }

    // ----- the trace ------------------------------------------------------------------

    pub(crate) fn log(&mut self, cid: Option<u32>, msg: impl FnOnce() -> String) {
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

    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    pub(crate) fn ts(&self) -> Timestamp {
        Timestamp::from_micros(self.now)
    }

    pub(crate) fn schedule(&mut self, at: u64, ev: Ev) {
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
            let timer = match self.stopped {
                None => self.engine.poll_timeout().map(Timestamp::as_micros),
                // The driver has stopped: it no longer asks the engine for deadlines.
                Some(_) => None,
            };
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
        if self.stopped.is_some() && ev.is_server_side() {
            return;
        }
        match ev {
            Ev::Connect(cid) => self.connect(cid),
            Ev::Send(cid) => self.send_next_chunk(cid),
            Ev::Read(cid) => {
                let max = self.rng.range_usize(1, self.knobs.client_read_max);
                self.client_read(cid, max);
            }
            Ev::Fin(cid) => self.fin(cid),
            Ev::Reset(cid) => self.reset(cid),
            Ev::Udp(cid) => self.udp_send(cid),
            Ev::ListenerRetry => {
                self.listener_retry = false;
                self.log(None, || "listener: accept the rest".into());
                self.accept_loop();
                self.settle();
            }
            Ev::Ready(sid) => {
                // The storm is over (even if a clock jump passed its end already).
                self.kernel.pipes[sid].storm_until = 0;
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
            Ev::Shutdown => self.shutdown_now(),
        }
    }

    // ----- shutdown ----------------------------------------------------------------------

    /// The server is asked to shut down. The driver's batch of readiness events may
    /// still hold a listener edge and a datagram it read before it drained the
    /// engine's outputs (the race every real driver has): it hands both in, and the
    /// engine must accept nothing and drop the datagram.
    fn shutdown_now(&mut self) {
        let at = self.now;
        self.shutdown = Some(Shutdown {
            at,
            deadline: at + self.knobs.drain_timeout_us,
        });
        self.stats.shutdowns += 1;
        self.log(None, || "shutdown: asked".into());
        self.engine.handle_shutdown(self.ts());
        self.accept_loop();
        if let Some((peer, bytes)) = self.kernel.udp_queue.pop_front() {
            self.stats.late_datagrams += 1;
            let cid = udp_cid(peer);
            self.log(cid, || {
                format!("udp: read {} bytes after the shutdown", bytes.len())
            });
            self.engine.handle_datagram(peer, &bytes, self.ts());
        }
        self.settle();
    }

    /// [`Output::StopListening`]: the driver closes the listener and the UDP socket.
    /// Closing a listening socket resets the connections still in its accept queue
    /// (Linux); the datagrams in the UDP socket's queue go with it.
    fn stop_listening(&mut self) {
        if self.shutdown.is_none() {
            return self.violate("StopListening with no shutdown asked".into());
        }
        if !self.listening {
            return self.violate("StopListening twice".into());
        }
        self.listening = false;
        self.log(None, || "shutdown: listener and UDP socket closed".into());
        let queued: Vec<usize> = self.kernel.backlog.drain(..).collect();
        for sid in queued {
            let p = &mut self.kernel.pipes[sid];
            p.server_closed = true;
            p.kernel_reset = true;
            p.s2c.clear();
            p.s2c_fin = true;
            let cid = p.cid;
            self.stats.kernel_resets += 1;
            self.log(Some(cid), || "reset by the kernel (listener closed)".into());
        }
        let dropped = self.kernel.udp_queue.len();
        self.kernel.udp_queue.clear();
        if dropped > 0 {
            self.log(None, || format!("udp: {dropped} queued datagrams dropped"));
        }
    }

    /// The driver stops after the shutdown (the engine said `status`). After a time
    /// out the process exits: the kernel closes every socket the server still held
    /// (a reset where unread bytes remain, else a FIN after what was written).
    pub(crate) fn stop(&mut self, status: ShutdownStatus) {
        self.stopped = Some(status);
        self.log(None, || format!("shutdown: driver stops ({status:?})"));
        if status == ShutdownStatus::Drained {
            self.stats.drained += 1;
            return;
        }
        self.stats.drain_timeouts += 1;
        let open = std::mem::take(&mut self.kernel.open_sids);
        for sid in open {
            let p = &mut self.kernel.pipes[sid];
            if p.conn.is_none() || p.server_closed {
                continue;
            }
            p.server_closed = true;
            p.closed_by_exit = true;
            if !p.c2s.is_empty() && !p.client_rst {
                p.rst_destroyed = !p.s2c.is_empty();
                p.s2c.clear();
            }
            p.s2c_fin = true;
            let cid = p.cid;
            self.log(Some(cid), || "closed by the exit".into());
            self.schedule_read(cid);
        }
    }

    /// Heal and drain: faults stop, held jobs complete, time runs past every deadline;
    /// then the liveness checks. Returns the first violation.
    pub fn finish(&mut self) -> Result<(), Violation> {
        self.healed = true;
        for _ in 0..10_000 {
            self.run(None);
            if self.violation.is_some() || self.jobs.is_empty() || self.stopped.is_some() {
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
        if self.violation.is_none() {
            self.check_auth();
        }
        let c = self.engine.counters();
        self.stats.refused_per_client = c.refused_per_client;
        self.stats.refused_rate = c.refused_rate;
        self.stats.udp_rate_limited = c.udp_rate_limited;
        self.stats.udp_refusals = c.udp_refusals;
        self.stats.budget_waits = c.budget_waits;
        self.stats.discard_limit_closes = c.discard_limit_closes;
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

    // ----- the driver: outputs ------------------------------------------------------------

    /// Drains the engine's outputs and services woken sockets until nothing moves.
    pub(crate) fn settle(&mut self) {
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
                self.check_job_started();
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
                Some(&sid) if !self.kernel.pipes[sid].server_closed => {
                    let p = &mut self.kernel.pipes[sid];
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
                // After the outputs before it: the closes the engine made count.
                self.log(None, || "listener: accept again".into());
                if !self.listener_retry {
                    self.listener_retry = true;
                    self.schedule(self.now, Ev::ListenerRetry);
                }
            }
            Output::StopListening => self.stop_listening(),
            Output::Sync => {
                // This world's store is in memory: every write is durable when made,
                // so no response waits; a sync is a no-op answered at once.
                self.engine.keys().sync();
                let now = self.ts();
                self.engine.handle_commit(now);
            }
            // This world's one server has no peers configured, so a fix makes no
            // call; should one come, it is refused and the fix answers from its own
            // vote alone. Peer calls are carried by the RAIDA world
            // (`crate::raida_net`), which runs many servers.
            Output::Connect { id, .. } => self.engine.handle_connect_failed(id, self.ts()),
            Output::WakePeer(_) | Output::ClosePeer(_) => {}
        }
    }

    fn origin_client(&self, origin: Origin) -> Option<u32> {
        match origin {
            Origin::Tcp(id) => self.by_conn.get(&id).map(|&sid| self.kernel.pipes[sid].cid),
            Origin::Udp(peer) => udp_cid(peer),
            _ => None,
        }
    }

    // ----- the driver: the listener -------------------------------------------------------

    /// The driver's accept loop on listener readiness: the engine's own accept loop
    /// over the simulated listener (faults: EMFILE for a while, a connection aborted in
    /// the queue), then each accepted connection is serviced.
    pub(crate) fn accept_loop(&mut self) {
        if self.violation.is_some() || !self.listening {
            return;
        }
        let now = self.ts();
        let mut listener = Backlog {
            backlog: &mut self.kernel.backlog,
            pipes: &mut self.kernel.pipes,
            rng: &mut self.rng,
            knobs: &self.knobs,
            healed: self.healed,
            now: self.now,
            blocked_until: &mut self.kernel.accept_blocked_until,
            seen: Vec::new(),
            calls: 0,
            conns: 0,
            last: None,
            exhaustions: &mut self.kernel.exhaustions,
        };
        let mut answers = Vec::new();
        let stop = self
            .engine
            .accept_from(&mut listener, now, |engine, sid, answer| {
                answers.push((sid, answer, engine.connection_count()));
            });
        let (seen, calls, conns, last) = (
            std::mem::take(&mut listener.seen),
            listener.calls,
            listener.conns,
            listener.last,
        );
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
        self.check_accept_loop(stop, calls, conns, last, answers.len());
        for (sid, answer, open_then) in answers {
            self.accepted(sid, answer, open_then);
        }
        if stop == AcceptStop::Budget && !self.listener_retry {
            // The driver accepts again after serving everything else (one retry
            // pending at a time: it accepts the rest, up to the budget again).
            self.listener_retry = true;
            self.schedule(self.now, Ev::ListenerRetry);
        }
    }

    /// The engine's answer to the connection of socket `sid`.
    fn accepted(&mut self, sid: usize, answer: Accept, open_then: usize) {
        let cid = self.kernel.pipes[sid].cid;
        let ip = self.clients[cid as usize].peer.ip();
        let open_before = match answer {
            Accept::Accepted(_) => open_then.saturating_sub(1),
            Accept::Refused(_) => open_then,
        };
        let max = self.knobs.max_connections;
        let verdict = self.limits.connect(ip, self.now, open_before, max);
        self.check_verdict(cid, answer, verdict, open_before);
        if self.violation.is_some() {
            return;
        }
        match answer {
            Accept::Accepted(id) => {
                if self.by_conn.insert(id, sid).is_some() {
                    self.violate(format!("{id:?} given to two connections"));
                }
                self.stats.accepted += 1;
                self.kernel.open += 1;
                self.kernel.open_sids.insert(sid);
                let counted = !self.limits.trusted(ip);
                let p = &mut self.kernel.pipes[sid];
                p.conn = Some(id);
                p.counted = counted;
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
                self.check_refusal(&bytes);
                let p = &mut self.kernel.pipes[sid];
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

    // ----- the driver: connections --------------------------------------------------------

    /// A readiness edge on socket `sid` (if the engine has it).
    pub(crate) fn ready(&mut self, sid: usize) {
        let p = &self.kernel.pipes[sid];
        if p.conn.is_some() && !p.server_closed {
            self.wakes.push_back(sid);
            self.settle();
        }
    }

    /// Services one connection like a driver on readiness: the socket's faults (an
    /// error, an EAGAIN storm) are the kernel's, then the engine's own service loop
    /// runs over the simulated socket, and what the socket saw is checked and applied.
    fn service(&mut self, sid: usize) {
        if self.violation.is_some() {
            return;
        }
        let p = &self.kernel.pipes[sid];
        let (Some(id), false) = (p.conn, p.server_closed) else {
            return;
        };
        let cid = p.cid;
        if p.client_rst {
            // EPOLLERR is reported whatever the interest.
            if !p.error_delivered {
                self.kernel.pipes[sid].error_delivered = true;
                self.log(Some(cid), || "server: ECONNRESET".into());
                self.engine.handle_error(id, self.ts());
                self.drain();
            }
            return;
        }
        if self.kernel.pipes[sid].storm_until > self.now {
            return;
        }
        if !self.healed && self.rng.chance(self.knobs.eagain_pm) {
            let d = self.rng.range(1, self.knobs.eagain_max_us);
            self.kernel.pipes[sid].storm_until = self.now + d;
            self.schedule(self.now + d, Ev::Ready(sid));
            self.log(Some(cid), || format!("server: EAGAIN storm for {d}us"));
            return;
        }
        let now = self.ts();
        let mut seen = std::mem::take(&mut self.seen);
        let mut io = PipeIo {
            pipe: &mut self.kernel.pipes[sid],
            rng: &mut self.rng,
            knobs: &self.knobs,
            now: self.now,
            cid,
            seen: &mut seen,
            bad: None,
            shut: false,
        };
        let _ = self.engine.service(id, &mut io, now);
        if let Some(b) = io.bad {
            return self.violate(b);
        }
        for event in seen.drain(..) {
            match event {
                Seen::Read(n) => self.log(Some(cid), || format!("server: read {n}")),
                Seen::Eof => self.log(Some(cid), || "server: read eof".into()),
                Seen::Wrote(n) => {
                    self.log(Some(cid), || format!("server: wrote {n}"));
                    self.check_written(sid);
                    self.schedule_read(cid);
                }
                Seen::Shutdown => self.shutdown_write(sid),
                Seen::Done => self.arrived_whole(sid),
            }
        }
        self.seen = seen;
        self.drain();
    }

    /// The next tick of the order of executions' arrivals and answers.
    pub(crate) fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The server read the last byte of socket `sid`'s request: an execution of it
    /// when it is an authentication request.
    fn arrived_whole(&mut self, sid: usize) {
        let cid = self.kernel.pipes[sid].cid;
        if self.clients[cid as usize].auth.is_some() {
            let arrived = self.next_tick();
            self.kernel.pipes[sid].exec = Some(self.execs.len());
            self.execs.push(Exec {
                cid,
                arrived,
                answered: None,
            });
        }
    }

    /// The engine shut down the write side of socket `sid` (its response is out).
    fn shutdown_write(&mut self, sid: usize) {
        if !self.check_shutdown(sid) {
            return;
        }
        self.uncount(sid);
        if let Some(i) = self.kernel.pipes[sid].exec {
            let said = self.kernel.pipes[sid].said.take().unwrap_or(None);
            let tick = self.next_tick();
            self.execs[i].answered = Some((tick, said));
        }
        let p = &mut self.kernel.pipes[sid];
        let cid = p.cid;
        p.shutdown_at = Some(self.now);
        p.s2c_fin = true;
        self.stats.tcp_responses += 1;
        self.log(Some(cid), || "server: shutdown(write)".into());
        self.check_context_tcp(sid);
        self.schedule_read(cid);
    }

    /// The engine closes connection `id`.
    fn close(&mut self, id: ConnId) {
        let Some(&sid) = self.by_conn.get(&id) else {
            return self.violate(format!("close of {id:?}, never accepted"));
        };
        let Some(reason) = self.judge_close(sid) else {
            return;
        };
        *self.stats.closes.entry(reason.name()).or_default() += 1;
        self.kernel.open -= 1;
        self.kernel.open_sids.remove(&sid);
        self.uncount(sid);
        let p = &mut self.kernel.pipes[sid];
        let cid = p.cid;
        p.server_closed = true;
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

    /// The connection of socket `sid` no longer counts against its client's limit.
    fn uncount(&mut self, sid: usize) {
        let p = &mut self.kernel.pipes[sid];
        if std::mem::take(&mut p.counted) {
            let ip = self.clients[p.cid as usize].peer.ip();
            self.limits.uncount(ip);
        }
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

    fn complete(&mut self, jid: u64) {
        let Some(job) = self.jobs.remove(&jid) else {
            return;
        };
        self.stats.jobs += 1;
        let origin = job.origin();
        let (cid, late) = match origin {
            Origin::Tcp(id) => match self.by_conn.get(&id) {
                Some(&sid) => {
                    let p = &mut self.kernel.pipes[sid];
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
        let random = server::job_random(self.knobs.seed, cid);
        let completion = job.run(self.ts(), &random, &mut self.scratch);
        let before = self.engine.counters().late_completions_dropped;
        self.log(Some(cid), || {
            format!("job {jid} done{}", if late { " (late)" } else { "" })
        });
        self.engine.handle_completion(completion, self.ts());
        if late {
            self.stats.late_completions += 1;
            self.check_late_dropped(cid, before);
            if self.violation.is_some() {
                return;
            }
        }
        self.settle();
    }

    // ----- UDP ---------------------------------------------------------------------------

    /// UDP client `cid` sends its datagram (it arrives in the UDP socket's queue).
    pub fn udp_send(&mut self, cid: u32) {
        if !self.listening {
            // The port is closed: the kernel drops it.
            self.log(Some(cid), || {
                "udp: dropped by the kernel (port closed)".into()
            });
            return;
        }
        let bytes = self.clients[cid as usize].stream.clone();
        let peer = self.clients[cid as usize].peer;
        if self.kernel.udp_queue.len() >= self.knobs.udp_queue_cap {
            self.log(Some(cid), || {
                "udp: dropped by the kernel (queue full)".into()
            });
            return;
        }
        self.log(Some(cid), || format!("udp: send {} bytes", bytes.len()));
        let was_empty = self.kernel.udp_queue.is_empty();
        self.kernel.udp_queue.push_back((peer, bytes));
        if was_empty {
            self.read_udp();
            self.settle();
        }
    }

    /// The driver reads the UDP socket while the engine wants datagrams.
    fn read_udp(&mut self) {
        while self.listening && self.engine.wants_datagrams() && self.violation.is_none() {
            let Some((peer, bytes)) = self.kernel.udp_queue.pop_front() else {
                return;
            };
            let kept = &bytes[..bytes.len().min(self.knobs.udp_payload_threshold)];
            let parses = RequestHeader::parse(kept).is_some();
            let verdict = self.limits.datagram(peer.ip(), self.now, parses);
            let cid = udp_cid(peer);
            if parses && verdict != limits::Datagram::Dropped {
                let busy = verdict == limits::Datagram::Refused;
                let auth = cid.is_some_and(|c| self.clients[c as usize].auth.is_some());
                let exec = match (auth && !busy, cid) {
                    (true, Some(cid)) => {
                        let arrived = self.next_tick();
                        self.execs.push(Exec {
                            cid,
                            arrived,
                            answered: None,
                        });
                        Some(self.execs.len() - 1)
                    }
                    _ => None,
                };
                self.udp_pending.entry(peer).or_default().push(Pending {
                    kept: kept.to_vec(),
                    at: self.now,
                    busy,
                    exec,
                });
            }
            self.log(cid, || format!("udp: server reads {} bytes", bytes.len()));
            let c = self.engine.counters();
            let before = (c.udp_rate_limited, c.udp_refusals);
            self.engine.handle_datagram(peer, &bytes, self.ts());
            self.check_datagram_verdict(cid, verdict, before);
            self.drain();
        }
    }

    fn datagram_out(&mut self, peer: SocketAddr, bytes: Vec<u8>) {
        self.check_context_udp(peer, &bytes);
        if self.violation.is_some() {
            return;
        }
        if let Some(cid) = self.match_datagram(peer, &bytes) {
            self.stats.udp_responses += 1;
            self.log(Some(cid), || format!("udp: response {} bytes", bytes.len()));
        }
    }

    // ----- scripted runs (proptest) -------------------------------------------------------

    /// Adds a TCP client that will send `request` and then `garbage`, reads
    /// everything, and connects now.
    pub fn connect_scripted(&mut self, request: ClientRequest, garbage: &[u8]) -> u32 {
        let behaviour = Behaviour {
            reads: true,
            ..Behaviour::default()
        };
        let mut stream = request.bytes().to_vec();
        stream.extend_from_slice(garbage);
        let cid = self.add_client(true, request, stream, behaviour);
        self.connect(cid);
        self.check();
        cid
    }

    /// A UDP client whose datagram is `request`, cut to `cut` bytes if given (send it
    /// with [`World::udp_send`]).
    pub fn add_udp_client(&mut self, request: ClientRequest, cut: Option<usize>) -> u32 {
        let mut bytes = request.bytes().to_vec();
        if let Some(n) = cut {
            bytes.truncate(n);
        }
        self.add_client(false, request, bytes, Behaviour::default())
    }

    /// Moves the clock forward by `us` and runs what falls due.
    pub fn advance(&mut self, us: u64) {
        let until = self.now + us;
        self.run(Some(until));
        self.now = self.now.max(until);
        self.run(Some(self.now));
    }

    /// Asks the server to shut down now (scripted runs; the swarm draws the time).
    pub fn shutdown(&mut self) {
        if self.shutdown.is_none() {
            self.shutdown_now();
            self.check();
        }
    }

    /// Runs what is due now (after a scripted input).
    pub fn step(&mut self) {
        self.run(Some(self.now));
        self.check();
    }
}
