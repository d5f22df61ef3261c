//! The engine: one sans-IO state machine that owns every connection and decides
//! everything. Drivers (`io-epoll`, the simulator, the fuzzers) only do syscalls.

mod accept_pause;
mod admission;
mod budget;
mod checks;
mod clients;
mod commits;
mod conn;
mod execute;
mod job;
mod loads;
mod peers;
mod prefetch;
mod service;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use slab::Slab;

use std::sync::Arc;

use raida_wire::{
    header_len, Encryption, RequestHeader, Status, StatusByte, Timestamp, Transport,
    LONG_HEADER_LEN, PREFIX_LEN, RANDOM_LEN, SHORT_HEADER_LEN,
};

use crate::command::{CommandRegistry, Runs};
use crate::keys::{Access, CoinId, KeyStore, PageId};
use crate::metrics::{Counters, MetricsSnapshot};
use checks::{busy, check_header_or_park, unreadable_key, HeaderCheck};
pub use checks::{check_header, Admitted, HeaderRules, Rejected};
use execute::write_rejection;
pub use execute::{answer_datagram, answer_request, Arrival};

use crate::cidr::{loopback, Cidr};
use accept_pause::AcceptPause;
use admission::Admission;
use budget::{Budget, Visit};
pub use clients::Rate;
use clients::{Clients, Refusal};
use commits::CommitWaits;
use conn::{BudgetWait, Conn, State};
use job::{elapsed_micros, Lane, Work};
pub use job::{Completion, Fallback, Job, Origin};
use loads::{PageLoads, ParkedDatagram, Waiter};
pub use peers::PeerConnId;
pub use service::{AcceptStop, Accepting, ConnSocket, Io, Listener, Serviced};
use timers::{Deadline, Timers};

/// The bounds and identity the engine enforces. Every bound is a named field with the
/// specification's default (DESIGN.md, "Defaults").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// This server's raida id (request byte 2, response byte 0).
    pub raida_id: u8,
    /// This server's coin id (request bytes 6..7).
    pub coin_id: u16,
    /// Open connections at most; one more is answered 160 and closed.
    pub max_connections: usize,
    /// Declared bodies longer than this are answered 16, before anything is allocated.
    pub max_body_size: usize,
    /// From accept until the request is complete, and again for writing the response.
    pub socket_timeout: Duration,
    /// Jobs in flight at most (the completion queue's capacity), long-running
    /// commands' aside.
    pub mod_queue_size: usize,
    /// Jobs of long-running commands ([`Runs::Long`]) in flight at most, apart from
    /// `mod_queue_size`: they run on a pool of their own, so they can never hold the
    /// workers or the admission short requests need. Beyond it they wait in arrival
    /// order (TCP), or are answered 160 once as many wait again (UDP).
    pub long_jobs: usize,
    /// UDP: only the first this-many bytes of a datagram are kept.
    pub udp_payload_threshold: usize,
    /// How long a closing connection reads and discards before it is closed anyway.
    pub linger: Duration,
    /// Spare buffers kept for reuse (bodies and responses), so the hot path does not
    /// allocate; buffers grown beyond `max_pooled_capacity` are freed instead.
    pub buffer_pool: usize,
    /// See `buffer_pool`.
    pub max_pooled_capacity: usize,
    /// Cheap commands (echo, version: [`Runs::Inline`]) whose request is
    /// encrypted run on the engine's thread too when their body is at most this many
    /// bytes and the engine holds random bytes for the response
    /// ([`Engine::handle_random`]): AES and HMAC over a few dozen bytes cost about a
    /// microsecond, far less than handing the job to a worker and back. 0: encrypted
    /// requests always go to the workers.
    pub inline_crypto_max_body: usize,
    /// Most reads [`Engine::service`] makes on one connection per call before it
    /// queues the connection behind the others ([`Serviced::Budget`]): a peer that
    /// keeps sending cannot hold the loop. A request needs at most four (32 header
    /// bytes, the rest of a 48-byte header, the body, the end of stream).
    pub reads_per_service: usize,
    /// Most connections [`Engine::accept_from`] accepts per call, so a flood of new
    /// connections cannot starve open ones, completions and timers.
    pub turn_budget: usize,
    /// How long accepting pauses when the process is out of descriptors; pending
    /// connections wait in the kernel's backlog meanwhile.
    pub accept_backoff: Duration,
    /// Request body bytes buffered at most, over every connection: bodies grow as
    /// their bytes arrive, and a connection that finds the budget spent stops reading
    /// until room frees (the kernel's buffers and TCP flow control hold the rest). A
    /// declared body that could never fit is answered 16 before anything is allocated.
    pub max_buffered_bytes: usize,
    /// The part of `max_buffered_bytes` that only bodies of at most `small_body`
    /// bytes may use, so small requests get through while large stalled bodies hold
    /// the rest.
    pub small_reserve: usize,
    /// See `small_reserve`.
    pub small_body: usize,
    /// A body grows by this many bytes at least (then doubling), as its bytes arrive.
    pub body_chunk: usize,
    /// After the response, at most this many client bytes are read and discarded
    /// before the connection is closed anyway (the linger deadline bounds the time).
    pub discard_limit: usize,
    /// Open connections one client holds at most (an IPv4 address, an IPv6 /64): one
    /// more is refused with 160, like the global limit. 0: no limit.
    pub max_connections_per_client: usize,
    /// Networks exempt from the per-client limits (connections and rate).
    pub trusted: Vec<Cidr>,
    /// The request rate one client may use (TCP connections and UDP datagrams), or
    /// none. Over it, requests are answered 160.
    pub rate: Option<Rate>,
    /// Clients whose rate the engine remembers at most (the table's bound).
    pub max_tracked_clients: usize,
    /// 160s the server sends a second at most for rate-limited datagrams (server-wide):
    /// past it they are dropped unanswered, so the server is no amplifier.
    pub udp_refusals_per_s: u32,
    /// After [`Engine::handle_shutdown`]: how long requests in flight may take before
    /// the driver stops anyway.
    pub drain_timeout: Duration,
    /// Datagrams whose key's page is being loaded, held at most (each a copy of at
    /// most `udp_payload_threshold` bytes). When full, UDP reading pauses until a load
    /// completes (the kernel's buffer holds the rest). A TCP request waiting for a page
    /// holds only its header, and its connection's deadline goes on.
    pub max_parked_datagrams: usize,
    /// The peers a command may call (PROTOCOL.md 8b, `raida_servers`), indexed by
    /// RAIDA index; `None` (or an index past the end): no address, a call to it fails
    /// at once ([`PeerFailure::NoAddress`](crate::peer::PeerFailure::NoAddress)).
    pub peers: Vec<Option<SocketAddr>>,
    /// Every peer call of a request ends this long after the calls began, connect
    /// included (`peer_timeout_ms`).
    pub peer_timeout: Duration,
    /// Requests waiting for their peers at most (`max_fixes`); one more is answered
    /// 160 REQUEST_RATE before anyone is called.
    pub max_fixes: usize,
    /// A peer response's body (after its 32-byte header) may announce at most this
    /// many bytes; a larger one ends the call
    /// ([`PeerFailure::TooLong`](crate::peer::PeerFailure::TooLong)) before anything is
    /// allocated for it.
    pub max_peer_response: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            raida_id: 0,
            coin_id: 0,
            max_connections: 65_535,
            max_body_size: 65_536,
            socket_timeout: Duration::from_secs(2),
            mod_queue_size: 1024,
            long_jobs: 16,
            udp_payload_threshold: 1024,
            linger: Duration::from_millis(500),
            buffer_pool: 1024,
            max_pooled_capacity: 4096,
            inline_crypto_max_body: 256,
            reads_per_service: 16,
            turn_budget: 256,
            accept_backoff: Duration::from_millis(100),
            max_parked_datagrams: 1024,
            max_buffered_bytes: 64 << 20,
            small_reserve: 8 << 20,
            small_body: 4096,
            body_chunk: 4096,
            discard_limit: 64 << 10,
            max_connections_per_client: 256,
            trusted: loopback(),
            rate: None,
            max_tracked_clients: 65_536,
            udp_refusals_per_s: 1000,
            drain_timeout: Duration::from_secs(5),
            peers: Vec::new(),
            peer_timeout: Duration::from_millis(8_000),
            max_fixes: 64,
            max_peer_response: 65_536,
        }
    }
}

/// A TCP connection's name: slab index and generation. A completion or input for a
/// generation that no longer lives at that index is dropped, never applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    index: u32,
    generation: u64,
}

impl ConnId {
    /// The slab index (stable for the connection's life; reused after it closes).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The generation: unique across the engine's life.
    pub fn generation(self) -> u64 {
        self.generation
    }
}

/// The engine's answer to an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Serve it under this id.
    Accepted(ConnId),
    /// Over `max_connections`: write these bytes (a 32-byte header, status 160
    /// REQUEST_RATE) if the socket takes them, shut down the write side, read and
    /// discard what the peer has sent already (never waiting), then close. The engine
    /// keeps no state for it; discarding the bytes already there keeps the close from
    /// turning into a reset that would destroy the 160 (PROTOCOL.md section 7).
    Refused([u8; SHORT_HEADER_LEN]),
}

/// What the driver must do, drained with [`Engine::poll_output`] after every input.
// A job travels by value (boxing it would allocate once per request); the queue of
// outputs is short-lived and small.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Run this job on a worker and hand its completion back.
    Job(Job),
    /// The connection wants I/O it may already be ready for (edge-triggered readiness
    /// will not repeat): service it now, with [`Engine::service`].
    Wake(ConnId),
    /// Deregister and close the connection's socket; the id is dead from now on.
    Close(ConnId),
    /// Send this datagram to `peer`.
    Datagram {
        /// The request's sender.
        peer: SocketAddr,
        /// The response.
        bytes: Vec<u8>,
    },
    /// Run the store's sync ([`KeyStore::sync`]) off the event loop, then call
    /// [`Engine::handle_commit`]: responses wait for the writes it makes durable. A
    /// sync that starts after this output covers everything the engine waits for; the
    /// engine asks again if more is waiting when `handle_commit` comes. Every engine
    /// of a server shares the store: after any sync, tell each of them.
    Sync,
    /// Open an outbound TCP connection to `addr` (a peer call) without blocking, then
    /// report it: [`Engine::handle_connected`] once it is established, or
    /// [`Engine::handle_connect_failed`]. The engine times it out itself.
    Connect {
        /// The connection's name from now on.
        id: PeerConnId,
        /// The peer.
        addr: SocketAddr,
    },
    /// The peer connection wants I/O it may already be ready for: service it now, with
    /// [`Engine::service_peer`].
    WakePeer(PeerConnId),
    /// Close the peer connection's socket (if the driver has one); the id is dead from
    /// now on. Every [`Output::Connect`] gets exactly one.
    ClosePeer(PeerConnId),
    /// The engine has room for datagrams again: read the UDP socket until it would
    /// block (it stopped because [`Engine::wants_datagrams`] said no).
    ResumeDatagrams,
    /// The pause after running out of descriptors is over: accept again
    /// ([`Engine::accept_from`]); the backlog raised no new edge meanwhile.
    ResumeAccepting,
    /// Shutting down ([`Engine::handle_shutdown`]): close the listener and stop reading
    /// datagrams; keep serving the connections and jobs there are until
    /// [`Engine::shutdown_status`] says the drain is over.
    StopListening,
}

/// The RAIDA network layer as a state machine: every TCP connection, every UDP
/// datagram, the jobs in flight and their admission, the timers, the limits.
///
/// # Calling contract
///
/// The engine never touches a socket, a thread or a clock. A driver feeds it inputs
/// and carries out its outputs:
///
/// - **Inputs** (`handle_*`), each with the current time `now`, which must never go
///   backwards between calls: [`accept_from`](Self::accept_from) on listener readiness
///   (it accepts until the listener would block, calls
///   [`handle_accept`](Self::handle_accept) for each connection and hands it back to the
///   driver, which registers it and services it at once: its first bytes may already
///   be there, and edge-triggered readiness will not report them);
///   [`service`](Self::service) on a connection's readiness or an [`Output::Wake`] (the
///   one service loop: it reads into buffers lent for exactly the bytes the request
///   still needs, so a read never crosses the end of a request, writes the response,
///   shuts down the write side, and discards until the peer's end of stream);
///   [`handle_error`](Self::handle_error) on a socket error reported outside a read or a
///   write; [`handle_datagram`](Self::handle_datagram) for each datagram read while
///   [`wants_datagrams`](Self::wants_datagrams);
///   [`handle_completion`](Self::handle_completion) for each finished [`Job`];
///   [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
///   passes (extra calls are harmless).
/// - **Peer calls** (outbound connections a command asked for, PROTOCOL.md 8b): on
///   [`Output::Connect`] the driver starts a non-blocking connect and reports its
///   outcome ([`handle_connected`](Self::handle_connected),
///   [`handle_connect_failed`](Self::handle_connect_failed)); on the socket's readiness
///   or an [`Output::WakePeer`] it calls [`service_peer`](Self::service_peer) (the
///   outbound twin of `service`); on [`Output::ClosePeer`] it closes the socket. The
///   engine decides everything else: what is written and read, and when a call ends
///   (its fix's deadline is part of [`poll_timeout`](Self::poll_timeout)).
/// - **Outputs**: after every input, drain [`poll_output`](Self::poll_output) until it
///   returns `None`, then ask [`poll_timeout`](Self::poll_timeout) for the next deadline.
///   Output left in the queue is a stranded response.
/// - **Interest** follows from state; the driver tracks none of its own: it registers
///   every connection for both directions and calls [`service`](Self::service) on any
///   readiness.
/// - **Identity**: connections are named by [`ConnId`] (slab index and generation).
///   Inputs and completions for a dead id are ignored (completions are counted).
///   After [`Output::Close`] the driver closes the socket before the next accept, so
///   an index is never shared by two live sockets.
/// - **Bounds**: jobs in flight never exceed `mod_queue_size`, so a completion always
///   fits; requests beyond it wait, in arrival order, and nothing is dropped.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    rules: HeaderRules,
    commands: CommandRegistry,
    keys: Arc<dyn KeyStore>,
    conns: Slab<Conn>,
    next_generation: u64,
    /// Connection deadlines: (when, slab index, generation), one FIFO per duration.
    timers: Timers,
    outputs: VecDeque<Output>,
    /// Jobs in flight and waiting, in both lanes, and the datagram pause.
    admission: Admission,
    pool: Vec<Vec<u8>>,
    /// Random bytes from the driver ([`Engine::handle_random`]) for responses built
    /// on this thread; `random_pos..` are unused. Each byte is handed out once.
    random: Vec<u8>,
    random_pos: usize,
    discard: [u8; 512],
    /// The coins of the last [`prefetch_datagrams`](Engine::prefetch_datagrams) (kept
    /// for its allocation).
    prefetch: Vec<CoinId>,
    counters: Counters,
    /// The connection [`Engine::service`] is driving: no [`Output::Wake`] for it.
    servicing: Option<ConnId>,
    /// Accepting paused while the process is out of descriptors.
    accept_pause: AcceptPause,
    /// Pages being loaded, and the requests (connections, datagrams) waiting for them.
    loads: PageLoads,
    /// Request body bytes buffered (`max_buffered_bytes`).
    budget: Budget,
    /// Connections and request rates per client.
    clients: Clients,
    /// Shutting down ([`Engine::handle_shutdown`]): until when requests in flight may
    /// take.
    drain_until: Option<Timestamp>,
    /// Requests waiting for their peers, and the outbound connections calling them.
    peers: peers::Peers,
    /// Responses held until the write they depend on is durable.
    commits: CommitWaits,
}

/// Built here rather than in `metrics`, so that the metrics (plain data and their
/// rendering) need nothing of the engine.
impl MetricsSnapshot {
    /// The engine's state now.
    pub fn of(engine: &Engine) -> MetricsSnapshot {
        MetricsSnapshot {
            counters: engine.counters().clone(),
            open_connections: engine.connection_count(),
            jobs_in_flight: engine.in_flight() + engine.long_in_flight(),
            jobs_waiting: engine.waiting(),
            loads_in_flight: engine.loads_in_flight(),
            buffered_bytes: engine.buffered_bytes(),
            parked: engine.parked(),
            fixes_in_flight: engine.fixes_in_flight(),
            waiting_on_commit: engine.waiting_on_commit(),
            peer_connections: engine.peer_connections(),
            keys: engine.keys().stats(),
            udp_send_dropped: 0,
        }
    }
}

/// Where a shutdown stands ([`Engine::shutdown_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownStatus {
    /// Serving (no shutdown asked).
    Running,
    /// Shutting down: requests in flight are being finished.
    Draining,
    /// Shut down: everything accepted was answered or closed; the driver may stop.
    Drained,
    /// The drain timeout passed with work still open; the driver stops anyway.
    TimedOut,
}

impl Engine {
    /// An engine with no connection, serving `commands` with keys from `keys` (shared
    /// with other engines and with the handlers, which reach it through their request
    /// context).
    pub fn new(config: EngineConfig, commands: CommandRegistry, keys: Arc<dyn KeyStore>) -> Engine {
        let rules = HeaderRules {
            raida_id: config.raida_id,
            coin_id: config.coin_id,
            max_body_size: config.max_body_size,
        };
        let clients = Clients::new(
            config.max_connections_per_client,
            config.trusted.clone(),
            config.rate,
            config.max_tracked_clients,
            config.udp_refusals_per_s,
        );
        let budget = Budget::new(
            config.max_buffered_bytes,
            config.small_reserve,
            config.small_body,
            config.body_chunk,
        );
        let admission = Admission::new(config.mod_queue_size, config.long_jobs);
        let loads = PageLoads::new(config.max_parked_datagrams);
        let accept_pause = AcceptPause::new(config.accept_backoff);
        Engine {
            config,
            rules,
            commands,
            keys,
            conns: Slab::new(),
            next_generation: 0,
            timers: Timers::default(),
            outputs: VecDeque::new(),
            admission,
            pool: Vec::new(),
            random: Vec::new(),
            random_pos: 0,
            discard: [0; 512],
            prefetch: Vec::new(),
            counters: Counters::default(),
            servicing: None,
            accept_pause,
            loads,
            budget,
            clients,
            drain_until: None,
            peers: peers::Peers::default(),
            commits: CommitWaits::default(),
        }
    }

    /// The configuration the engine enforces.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The key store (for its own statistics).
    pub fn keys(&self) -> &dyn KeyStore {
        &*self.keys
    }

    /// Open TCP connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Jobs handed out and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }

    /// Jobs waiting for admission.
    pub fn waiting(&self) -> usize {
        self.admission.waiting()
    }

    /// Jobs of long-running commands in flight (apart from [`in_flight`](Self::in_flight)).
    pub fn long_in_flight(&self) -> usize {
        self.admission.long_in_flight()
    }

    /// True when the engine holds no connection, no job, no timer and no output:
    /// everything it was given has been answered or closed.
    ///
    /// Stricter than a finished drain ([`shutdown_status`](Self::shutdown_status)):
    /// besides [`has_outstanding_work`](Self::has_outstanding_work) being false, no
    /// connection deadline is still counted live in the timers and no accept pause is
    /// in force. Neither is work a drain waits for (see there), but an idle engine
    /// holds nothing at all, which is what the simulator checks its bookkeeping with.
    pub fn is_idle(&self) -> bool {
        !self.has_outstanding_work()
            && self.timers.live() == 0
            && self.accept_pause.until().is_none()
    }

    /// Whether anything accepted is not finished: a connection open, a job in flight
    /// or waiting for admission (either lane), a page load running or a request
    /// parked for one (a datagram held), or output the driver has not taken yet.
    ///
    /// A drain ([`shutdown_status`](Self::shutdown_status)) is over exactly when this
    /// is false. Timers and an accept pause are not work: a connection's deadline
    /// ends with its connection (a stale timer entry is dropped lazily and answers
    /// nobody), and a shutdown stops accepting for good, so no pause needs to run out
    /// before the driver may stop.
    pub fn has_outstanding_work(&self) -> bool {
        !self.conns.is_empty()
            || !self.admission.is_empty()
            || !self.loads.is_empty()
            || !self.outputs.is_empty()
            || !self.peers.is_empty()
            || self.commits.len() > 0
    }

    /// Whether the driver should read datagrams now: false while admission is full,
    /// so that the kernel's socket buffer, not the engine, holds the excess (an
    /// [`Output::ResumeDatagrams`] follows when room frees), and once shutting down.
    pub fn wants_datagrams(&self) -> bool {
        self.datagram_room() > 0
    }

    /// Shutting down: stop accepting and reading datagrams ([`Output::StopListening`]),
    /// finish the requests already accepted and write their responses, at most
    /// `drain_timeout` from now. The same drain whatever asked for it (a signal, an
    /// embedder's handle). Asking again changes nothing.
    pub fn handle_shutdown(&mut self, now: Timestamp) {
        if self.drain_until.is_some() {
            return;
        }
        self.drain_until = Some(now.saturating_add(self.config.drain_timeout));
        self.accept_pause.end();
        self.outputs.push_back(Output::StopListening);
        // Fixes waiting for their peers (whose deadline may lie past the drain's)
        // answer from the votes they have, with time left to answer.
        if let Some(cap) = self.fix_deadline_cap() {
            self.peers.cap_deadlines(cap);
        }
    }

    /// While shutting down: the latest a fix's peer calls may end, three quarters of
    /// the way through the drain, so its answer (a worker's run, a sync, the write)
    /// fits in the quarter left.
    fn fix_deadline_cap(&self) -> Option<Timestamp> {
        let until = self.drain_until?;
        let quarter = self.config.drain_timeout / 4;
        Some(Timestamp::from_micros(until.as_micros().saturating_sub(
            u64::try_from(quarter.as_micros()).unwrap_or(u64::MAX),
        )))
    }

    /// Where a shutdown stands at `now`: running, draining, drained (nothing accepted is
    /// left: every connection answered or closed, no job, no load), or timed out.
    pub fn shutdown_status(&self, now: Timestamp) -> ShutdownStatus {
        let Some(until) = self.drain_until else {
            return ShutdownStatus::Running;
        };
        if !self.has_outstanding_work() {
            ShutdownStatus::Drained
        } else if now >= until {
            ShutdownStatus::TimedOut
        } else {
            ShutdownStatus::Draining
        }
    }

    /// How many datagrams the driver may read now: each makes at most one job, so
    /// reading no more than this many (in a batch, e.g. `recvmmsg`) keeps jobs in
    /// flight within `mod_queue_size`. 0 exactly when [`wants_datagrams`] is false.
    ///
    /// [`wants_datagrams`]: Self::wants_datagrams
    pub fn datagram_room(&self) -> usize {
        if self.drain_until.is_some() {
            return 0;
        }
        self.admission.room().min(self.loads.datagram_room())
    }

    /// Request body bytes buffered now (against `max_buffered_bytes`).
    pub fn buffered_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Connections waiting for room in the buffered-bytes budget now.
    pub fn budget_waiting(&self) -> usize {
        self.budget.waiting()
    }

    /// Responses held now until the write they depend on is durable.
    pub fn waiting_on_commit(&self) -> usize {
        self.commits.len()
    }

    /// Pages being loaded now.
    pub fn loads_in_flight(&self) -> usize {
        self.loads.in_flight()
    }

    /// Requests waiting for their key's page now (connections and datagrams).
    pub fn parked(&self) -> usize {
        self.loads.parked()
    }

    /// Whether the engine would use more random bytes ([`handle_random`]): it runs
    /// cheap encrypted requests on its own thread only while it holds some, and asks
    /// for more before it runs out. Never true when `inline_crypto_max_body` is 0.
    ///
    /// [`handle_random`]: Self::handle_random
    pub fn wants_random(&self) -> bool {
        self.config.inline_crypto_max_body > 0
            && self.random.len() - self.random_pos < RANDOM_LOW_WATER
    }

    /// Fresh random bytes (from the OS generator; a few KiB at a time is right) for
    /// the responses the engine builds itself. Bytes beyond [`RANDOM_RESERVOIR`] held
    /// are ignored. Without them, requests whose response needs random bytes go to the
    /// workers, as always.
    pub fn handle_random(&mut self, bytes: &[u8]) {
        self.random.drain(..self.random_pos);
        self.random_pos = 0;
        let room = RANDOM_RESERVOIR.saturating_sub(self.random.len());
        self.random
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The next unused random bytes, if the reservoir holds enough.
    fn take_random(&mut self) -> Option<[u8; RANDOM_LEN]> {
        let end = self.random_pos + RANDOM_LEN;
        let taken = self.random.get_mut(self.random_pos..end)?;
        let mut bytes = [0u8; RANDOM_LEN];
        bytes.copy_from_slice(taken);
        // Handed out once: forget them.
        taken.fill(0);
        self.random_pos = end;
        Some(bytes)
    }

    /// Hands back the buffer of an [`Output::Datagram`] once it is sent (or dropped),
    /// so the next response reuses it instead of allocating. Optional: a buffer not
    /// given back is simply freed.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        recycle(&mut self.pool, &self.config, buf);
    }

    // ----- inputs -------------------------------------------------------------------

    /// A connection was accepted from `peer`.
    pub fn handle_accept(&mut self, peer: SocketAddr, now: Timestamp) -> Accept {
        let refused = if self.conns.len() >= self.config.max_connections {
            Some(&mut self.counters.refused_global)
        } else {
            match self.clients.connect(peer.ip(), now) {
                Ok(()) => None,
                Err(Refusal::PerClient) => Some(&mut self.counters.refused_per_client),
                Err(Refusal::Rate) => Some(&mut self.counters.refused_rate),
            }
        };
        if let Some(reason) = refused {
            *reason += 1;
            self.counters.refused += 1;
            self.count_response(Status::RequestRate.into(), Transport::Tcp, now, now);
            return Accept::Refused(refusal(self.config.raida_id));
        }
        self.counters.accepted += 1;
        let generation = self.next_generation;
        self.next_generation += 1;
        let index = self.conns.insert(Conn::new(generation, peer, now));
        let id = ConnId {
            index: index as u32,
            generation,
        };
        let deadline = now.saturating_add(self.config.socket_timeout);
        self.set_deadline(id, Some((deadline, Deadline::SocketTimeout)));
        Accept::Accepted(id)
    }

    /// The buffer the next read on `id` goes into: exactly the bytes the request still
    /// needs, or a discard buffer while closing. `None` when the connection wants no
    /// read now (or is dead).
    pub(crate) fn recv_buf(&mut self, id: ConnId) -> Option<&mut [u8]> {
        if !self.grow_body(id) {
            return None;
        }
        let conn = live_mut(&mut self.conns, id)?;
        match &mut conn.state {
            State::ReadHeader { buf, filled } => {
                #[allow(unused_mut)]
                let mut want = header_target(buf, *filled);
                // Planted bug for the mutant runner (never in a normal build): lend past
                // the header.
                #[cfg(raida_mutants)]
                if crate::mutants::active(crate::mutants::Mutant::Overread) {
                    want = LONG_HEADER_LEN;
                }
                buf.get_mut(*filled..want)
            }
            State::ReadBody { body, filled, .. } => body.get_mut(*filled..),
            State::Closing { .. } => Some(&mut self.discard[..]),
            State::Parked { .. } | State::Processing | State::Writing { .. } => None,
        }
    }

    /// Before a body read: a body whose buffer is full grows as its bytes arrive,
    /// within the budget. `false` when there is no room (it waits for some, woken when
    /// room frees).
    fn grow_body(&mut self, id: ConnId) -> bool {
        let Some(conn) = live_mut(&mut self.conns, id) else {
            return true;
        };
        let State::ReadBody {
            admitted,
            body,
            filled,
        } = &mut conn.state
        else {
            return true;
        };
        if *filled < body.len() {
            return true;
        }
        let claim = conn.budget.claim();
        if let Some(n) = self.budget.grow(admitted.body_len, body.len(), claim) {
            if conn.budget == BudgetWait::Queued {
                self.budget.left();
            }
            conn.budget = BudgetWait::No;
            body.resize(body.len() + n, 0);
            return true;
        }
        if conn.budget != BudgetWait::Queued {
            conn.budget = BudgetWait::Queued;
            self.counters.budget_waits += 1;
            self.budget.wait(id, admitted.body_len, body.len());
        }
        if claim > 0 {
            // Woken for room that went elsewhere: pass on what it was promised.
            self.release_budget(0, BudgetWait::No);
        }
        false
    }

    /// `n` bytes were read into the buffer [`recv_buf`](Self::recv_buf) lent for `id`.
    pub(crate) fn handle_received(&mut self, id: ConnId, n: usize, now: Timestamp) {
        let Some(conn) = live_mut(&mut self.conns, id) else {
            return;
        };
        match &mut conn.state {
            State::ReadHeader { buf, filled } => {
                let want = header_target(buf, *filled);
                *filled = (*filled + n).min(want);
                if *filled < PREFIX_LEN || *filled < header_len(buf[PREFIX_LEN - 1]) {
                    return;
                }
                let header = RequestHeader::parse(&buf[..*filled]);
                if let Some(header) = header {
                    self.header_complete(id, header, now, None, 0);
                }
            }
            State::ReadBody {
                admitted,
                body,
                filled,
            } => {
                *filled = (*filled + n).min(body.len());
                if *filled == admitted.body_len {
                    self.body_complete(id, now);
                }
            }
            State::Closing { discarded } => {
                *discarded += n;
                if *discarded >= self.config.discard_limit {
                    // A peer that keeps sending after its response gets no more reads.
                    self.counters.discard_limit_closes += 1;
                    self.close(id);
                }
            }
            State::Parked { .. } | State::Processing | State::Writing { .. } => {}
        }
    }

    /// A read on `id` returned end of stream.
    pub(crate) fn handle_eof(&mut self, id: ConnId, _now: Timestamp) {
        let Some(conn) = live_mut(&mut self.conns, id) else {
            return;
        };
        match conn.state {
            State::ReadHeader { .. } | State::ReadBody { .. } => {
                // The peer gave up before its request was complete: nothing to answer.
                self.counters.abandoned += 1;
                self.close(id);
            }
            State::Closing { .. } => self.close(id),
            // A half-close after a complete request: the peer still waits for its
            // response. Nothing to do. (A parked request reads nothing, so it sees no
            // end of stream.)
            State::Parked { .. } | State::Processing | State::Writing { .. } => {}
        }
    }

    /// A socket error (reset, broken pipe, ...) on `id`: close it. A job it has out
    /// still completes later, and that completion is dropped.
    pub fn handle_error(&mut self, id: ConnId, _now: Timestamp) {
        if live_mut(&mut self.conns, id).is_some() {
            self.counters.reset += 1;
            self.close(id);
        }
    }

    /// The bytes `id` still has to write, if any.
    pub(crate) fn send_buf(&self, id: ConnId) -> Option<&[u8]> {
        let conn = self.conns.get(id.index())?;
        if conn.generation != id.generation {
            return None;
        }
        match &conn.state {
            State::Writing { response, written } => response.get(*written..),
            _ => None,
        }
    }

    /// `n` bytes from [`send_buf`](Self::send_buf) were written on `id`. Returns true
    /// when that completed the response: the caller shuts down the write side.
    pub(crate) fn handle_sent(&mut self, id: ConnId, n: usize, now: Timestamp) -> bool {
        let Some(conn) = live_mut(&mut self.conns, id) else {
            return false;
        };
        let State::Writing { response, written } = &mut conn.state else {
            return false;
        };
        *written = (*written + n).min(response.len());
        if *written < response.len() {
            return false;
        }
        let done = std::mem::replace(&mut conn.state, State::Closing { discarded: 0 });
        // Its response is out: it no longer counts against its client's limit (it only
        // waits for the peer's end of stream).
        if std::mem::take(&mut conn.counted) {
            self.clients.closed(conn.peer.ip());
        }
        if let State::Writing { response, .. } = done {
            recycle(&mut self.pool, &self.config, response);
        }
        let linger = now.saturating_add(self.config.linger);
        self.set_deadline(id, Some((linger, Deadline::Linger)));
        true
    }

    /// A datagram arrived from `peer`. Only the first `udp_payload_threshold` bytes
    /// count (the driver may pass more or fewer).
    pub fn handle_datagram(&mut self, peer: SocketAddr, datagram: &[u8], now: Timestamp) {
        if self.drain_until.is_some() {
            // Shutting down: no new requests (the driver stopped reading; a datagram
            // it had read already is dropped).
            return;
        }
        let kept = &datagram[..datagram.len().min(self.config.udp_payload_threshold)];
        if self.clients.request(peer.ip(), now).is_err() {
            self.counters.udp_rate_limited += 1;
            // A 160 answers it while the server-wide cap allows; past it, nothing.
            if let Some(header) = RequestHeader::parse(kept) {
                if self.clients.udp_refusal(now) {
                    self.counters.udp_refusals += 1;
                    let busy = busy(&header);
                    self.reject(Origin::Udp(peer), now, now, busy);
                }
            }
            return;
        }
        self.datagram(peer, kept, now, now, None, 0);
    }

    /// A datagram's request (received at `arrived`; `failed`: its key's page failed to
    /// load; `loads`: the loads it waited for already). A key whose page is not in
    /// memory parks a copy of the datagram.
    fn datagram(
        &mut self,
        peer: SocketAddr,
        kept: &[u8],
        now: Timestamp,
        arrived: Timestamp,
        failed: Option<PageId>,
        loads: u8,
    ) {
        let Some(header) = RequestHeader::parse(kept) else {
            self.counters.udp_dropped += 1;
            return;
        };
        let origin = Origin::Udp(peer);
        match self.check(&header, now, failed, loads) {
            HeaderCheck::Park(page) => {
                let mut bytes = take_buffer(&mut self.pool, kept.len());
                bytes.extend_from_slice(kept);
                let waiter = self.loads.hold_datagram(ParkedDatagram {
                    peer,
                    bytes,
                    arrived,
                    loads: loads.saturating_add(1),
                });
                self.park(page, waiter, now);
                if !self.wants_datagrams() {
                    // Full: the kernel's buffer holds the rest until a load completes.
                    self.admission.pause_datagrams();
                }
            }
            HeaderCheck::Rejected(rejected) => self.reject(origin, now, arrived, rejected),
            HeaderCheck::Admitted(admitted) => {
                let rest = &kept[header.len()..];
                match rest.get(..admitted.body_len) {
                    None => {
                        let short = Rejected {
                            status: Status::InvalidPacketLength,
                            reply: admitted.reply,
                        };
                        self.reject(origin, now, arrived, short);
                    }
                    Some(bytes) => {
                        let mut body = take_buffer(&mut self.pool, bytes.len());
                        body.extend_from_slice(bytes);
                        self.dispatch(origin, now, arrived, admitted, body);
                    }
                }
            }
        }
    }

    /// A job handed out by this engine finished. Its response is applied when its
    /// connection still lives (same index and generation) and waits for it; otherwise
    /// it is dropped and counted.
    pub fn handle_completion(&mut self, completion: Completion, now: Timestamp) {
        self.admission.complete(completion.lane);
        self.admit_waiting();
        if let Origin::Load(page) = completion.origin {
            let loaded = completion.status == StatusByte::from(Status::Success);
            recycle(&mut self.pool, &self.config, completion.response);
            return self.page_loaded(page, loaded, now);
        }
        self.finish(completion, now);
    }

    /// A sync of the store ended ([`Output::Sync`], or another engine's): the held
    /// responses whose write is durable now go out, in commit order; if the sync
    /// failed (the store stopped), every held response is answered 252 INTERNAL.
    /// Extra calls are harmless.
    pub fn handle_commit(&mut self, now: Timestamp) {
        let point = self.keys.commit_point();
        for (completion, ready, failed) in self.commits.release(point) {
            self.counters
                .commit_latency
                .observe(now.saturating_since(ready));
            let completion = if failed {
                self.counters.commit_failures += 1;
                self.internal_instead(completion, now)
            } else {
                completion
            };
            self.deliver(completion, now);
        }
        if self.commits.ask_sync() {
            self.outputs.push_back(Output::Sync);
        }
    }

    /// Time passed: close connections whose deadline is at or before `now`, and end
    /// an accept pause that is over ([`Output::ResumeAccepting`]).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.accept_pause.end_if_over(now) {
            self.outputs.push_back(Output::ResumeAccepting);
        }
        while let Some((when, index, generation)) = self.timers.pop_due(now) {
            let id = ConnId { index, generation };
            let Some(conn) = live_mut(&mut self.conns, id) else {
                continue;
            };
            if conn.deadline != Some(when) {
                // Stale: the deadline was replaced or cleared since.
                continue;
            }
            conn.deadline = None;
            self.timers.forget();
            // Planted bug for the mutant runner (never in a normal build): the socket
            // timeout is not enforced.
            #[cfg(raida_mutants)]
            if crate::mutants::active(crate::mutants::Mutant::NoTimeout)
                && !matches!(conn.state, State::Closing { .. })
            {
                continue;
            }
            match conn.state {
                State::Closing { .. } => {}
                _ => self.counters.timed_out += 1,
            }
            self.close(id);
        }
        self.prune_timers();
        self.peer_timeouts(now);
    }

    // ----- outputs ------------------------------------------------------------------

    /// The next thing the driver must do, or `None` when everything is drained.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest deadline (a connection's, or the end of an accept pause); call
    /// [`handle_timeout`](Self::handle_timeout) when it passes.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let conn = self.timers.first().map(|(when, _, _)| when);
        [
            conn,
            self.accept_pause.until(),
            self.drain_until,
            self.peers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- internals ----------------------------------------------------------------

    /// The header-time checks; when the key's page `failed` to load, a request that
    /// would wait for it again is answered 252 INTERNAL instead (a page that cannot be
    /// read is never "unknown coin").
    ///
    /// `loads`: how many loads the request waited for already. A request whose keys'
    /// pages keep evicting each other (a type-5 key's two coins on two pages, in a
    /// cache with room for one besides the pages held for writes) would wait forever;
    /// after [`MAX_LOADS_PER_REQUEST`] it is answered 252 INTERNAL instead.
    fn check(
        &self,
        header: &RequestHeader,
        now: Timestamp,
        failed: Option<PageId>,
        loads: u8,
    ) -> HeaderCheck {
        match check_header_or_park(header, &self.rules, &self.commands, &*self.keys, now) {
            HeaderCheck::Park(page) if Some(page) == failed || loads >= MAX_LOADS_PER_REQUEST => {
                HeaderCheck::Rejected(unreadable_key(header))
            }
            other => other,
        }
    }

    /// `waiter` waits for `page`: the first to wait starts its load (a job on the
    /// workers, admitted like any other).
    fn park(&mut self, page: PageId, waiter: Waiter, now: Timestamp) {
        self.counters.parked += 1;
        if !self.loads.park(page, waiter, now) {
            return;
        }
        self.counters.page_loads += 1;
        let job = Job {
            origin: Origin::Load(page),
            lane: Lane::Short,
            raida_id: self.config.raida_id,
            started: now,
            work: Work::Load {
                page,
                store: Arc::clone(&self.keys),
            },
            out: Vec::new(),
            access: Access::Blocking,
        };
        self.submit(job);
    }

    /// `page` is in memory now (or `loaded` is false: its load failed): its waiters
    /// resume, in the order they came.
    fn page_loaded(&mut self, page: PageId, loaded: bool, now: Timestamp) {
        let Some(load) = self.loads.finish(page) else {
            return;
        };
        self.counters
            .load_latency
            .observe(now.saturating_since(load.started));
        if !loaded {
            self.counters.page_load_failures += 1;
        }
        let failed = (!loaded).then_some(page);
        for waiter in load.waiters {
            match waiter {
                Waiter::Tcp(id) => {
                    let Some(conn) = live_mut(&mut self.conns, id) else {
                        // Closed while it waited (timeout, reset).
                        continue;
                    };
                    let State::Parked { header, loads } = conn.state else {
                        continue;
                    };
                    self.header_complete(id, header, now, failed, loads);
                    // Its body (or end of stream) may be in the socket already: the edge
                    // came while it waited.
                    if self.wants_read(id) {
                        self.wake(id);
                    }
                }
                Waiter::Udp(slot) => {
                    let Some(parked) = self.loads.take_datagram(slot) else {
                        continue;
                    };
                    self.datagram(
                        parked.peer,
                        &parked.bytes,
                        now,
                        parked.arrived,
                        failed,
                        parked.loads,
                    );
                    recycle(&mut self.pool, &self.config, parked.bytes);
                }
            }
        }
        if self.admission.datagrams_paused() && self.wants_datagrams() {
            self.admission.resume_datagrams();
            self.outputs.push_back(Output::ResumeDatagrams);
        }
    }

    /// Whether `id` names a connection that is open now.
    fn is_live(&self, id: ConnId) -> bool {
        self.conns
            .get(id.index())
            .is_some_and(|c| c.generation == id.generation)
    }

    /// Whether `id` is in a state that reads (its request, or the discard after it).
    fn wants_read(&self, id: ConnId) -> bool {
        self.conns
            .get(id.index())
            .filter(|c| c.generation == id.generation)
            .is_some_and(|c| {
                matches!(
                    c.state,
                    State::ReadHeader { .. } | State::ReadBody { .. } | State::Closing { .. }
                )
            })
    }

    /// Asks the driver to service `id` (unless [`Engine::service`] is at it already).
    fn wake(&mut self, id: ConnId) {
        if self.servicing != Some(id) {
            self.outputs.push_back(Output::Wake(id));
        }
    }

    /// Whether connections may be accepted now (not shutting down, no pause in force).
    fn accepting(&mut self, now: Timestamp) -> bool {
        #[allow(unused_mut)]
        let mut stopping = self.drain_until.is_some();
        // Planted bug for the mutant runner (never in a normal build): accepting after
        // the shutdown.
        #[cfg(raida_mutants)]
        if crate::mutants::active(crate::mutants::Mutant::AcceptAfterShutdown) {
            stopping = false;
        }
        if stopping {
            return false;
        }
        self.accept_pause.allows(now)
    }

    /// Out of descriptors: pause accepting for `accept_backoff`. Returns whether the
    /// driver should log it (at most once per ten pauses' length).
    fn pause_accepting(&mut self, now: Timestamp) -> bool {
        self.counters.accept_pauses += 1;
        self.accept_pause.start(now)
    }

    /// A TCP request's header is in (or its key's page was just loaded: `failed` names
    /// the page when that load failed).
    fn header_complete(
        &mut self,
        id: ConnId,
        header: RequestHeader,
        now: Timestamp,
        failed: Option<PageId>,
        loads: u8,
    ) {
        match self.check(&header, now, failed, loads) {
            HeaderCheck::Park(page) => {
                // The key's page is not in memory: wait for it (the socket timeout goes
                // on), without reading the body.
                self.set_state(
                    id,
                    State::Parked {
                        header,
                        loads: loads.saturating_add(1),
                    },
                );
                self.park(page, Waiter::Tcp(id), now);
            }
            HeaderCheck::Rejected(rejected) => {
                // Answer at once: an unknown key or a bad header never waits for a body.
                self.set_state(id, State::Processing);
                self.reject(Origin::Tcp(id), now, now, rejected);
            }
            HeaderCheck::Admitted(admitted) => {
                if admitted.body_len == 0 {
                    self.set_state(id, State::Processing);
                    self.dispatch(Origin::Tcp(id), now, now, admitted, Vec::new());
                } else if !self.budget.could_fit(admitted.body_len) {
                    // It could never be buffered: answered before anything is allocated.
                    self.set_state(id, State::Processing);
                    let too_long = Rejected {
                        status: Status::InvalidPacketLength,
                        reply: admitted.reply,
                    };
                    self.reject(Origin::Tcp(id), now, now, too_long);
                } else {
                    // Nothing is allocated yet: the body grows as its bytes arrive.
                    let body = take_buffer(&mut self.pool, 0);
                    self.set_state(
                        id,
                        State::ReadBody {
                            admitted,
                            body,
                            filled: 0,
                        },
                    );
                }
            }
        }
    }

    fn body_complete(&mut self, id: ConnId, now: Timestamp) {
        let Some(conn) = live_mut(&mut self.conns, id) else {
            return;
        };
        let State::ReadBody { admitted, body, .. } =
            std::mem::replace(&mut conn.state, State::Processing)
        else {
            return;
        };
        let wait = std::mem::replace(&mut conn.budget, BudgetWait::No);
        // The body leaves the budget with its job (jobs are bounded by admission).
        self.release_budget(body.len(), wait);
        // The request is complete: the socket timeout stops until the response is
        // ready to write (a slow worker is not the peer's fault).
        self.set_deadline(id, None);
        self.dispatch(Origin::Tcp(id), now, now, admitted, body);
    }

    /// A complete request: run it inline when cheap, else hand it out as a job (or
    /// queue it when admission is full).
    /// `arrived`: when the request arrived whole (TCP: now; UDP: the datagram's receipt,
    /// earlier when it waited for a page load).
    fn dispatch(
        &mut self,
        origin: Origin,
        now: Timestamp,
        arrived: Timestamp,
        admitted: Admitted,
        body: Vec<u8>,
    ) {
        let started = self.started(origin, arrived);
        let runs = admitted.handler.runs();
        let lane = if runs == Runs::Long {
            Lane::Long
        } else {
            Lane::Short
        };
        if lane == Lane::Long
            && matches!(origin, Origin::Udp(_))
            && self.admission.long_backlog_full()
        {
            // As many long requests wait as run: over UDP (which has no connection to
            // hold them) the next is refused, once, with 160.
            recycle(&mut self.pool, &self.config, body);
            let busy = Rejected {
                status: Status::RequestRate,
                reply: admitted.reply,
            };
            return self.reject(origin, now, arrived, busy);
        }
        let arrival = Arrival {
            peer: self.peer_of(origin),
            transport: match origin {
                Origin::Udp(_) => Transport::Udp,
                _ => Transport::Tcp,
            },
            at: arrived,
        };
        // Cheap commands run on this thread: unencrypted ones always; encrypted ones
        // with a small body when random bytes for a 48-byte response are at hand.
        // Store commands too, with fresh random bytes (they may draw some), from
        // memory only: one that needs a page runs again on a worker.
        let random = match runs {
            Runs::Inline if admitted.encryption == Encryption::None => Some([0; RANDOM_LEN]),
            Runs::Inline | Runs::Store if body.len() > self.config.inline_crypto_max_body => None,
            Runs::Inline if admitted.reply.header_len == LONG_HEADER_LEN => self.take_random(),
            // The 32-byte layout carries no random bytes.
            Runs::Inline => Some([0; RANDOM_LEN]),
            Runs::Store => self.take_random(),
            Runs::Worker | Runs::Long => None,
        };
        let access = if runs == Runs::Store && random.is_some() {
            Access::Resident
        } else {
            Access::Blocking
        };
        // A store command run here may have to run again on a worker from the body
        // as it came. Opening an encrypted body decrypts it in place: keep a copy (a
        // few hundred bytes at most); a clear-text body comes back unchanged with the
        // completion.
        let keep_copy = access == Access::Resident && admitted.encryption != Encryption::None;
        let copy = keep_copy.then(|| {
            let mut copy = take_buffer(&mut self.pool, body.len());
            copy.extend_from_slice(&body);
            copy
        });
        // The job serving this request: run here, or (again) on a worker.
        let raida_id = self.config.raida_id;
        let serve = |admitted, body, arrival, store, out, access| Job {
            origin,
            lane,
            raida_id,
            started,
            work: Work::Serve {
                admitted,
                body,
                arrival,
                store,
            },
            out,
            access,
        };
        let out = take_buffer(&mut self.pool, 0);
        let job = serve(admitted, body, arrival, Arc::clone(&self.keys), out, access);
        let Some(random) = random else {
            return self.submit(job);
        };
        let mut scratch = take_buffer(&mut self.pool, 0);
        let mut completion = job.run(now, &random, &mut scratch);
        recycle(&mut self.pool, &self.config, scratch);
        match completion.retry.take() {
            Some(retry) => {
                self.counters.store_retries += 1;
                recycle(&mut self.pool, &self.config, completion.response);
                let body = match copy {
                    Some(copy) => {
                        recycle(&mut self.pool, &self.config, completion.spent);
                        copy
                    }
                    None => completion.spent,
                };
                let job::Retry { admitted, arrival } = *retry;
                let out = take_buffer(&mut self.pool, 0);
                let store = Arc::clone(&self.keys);
                self.submit(serve(admitted, body, arrival, store, out, Access::Blocking));
            }
            None => {
                if access == Access::Resident {
                    self.counters.store_inline += 1;
                }
                if let Some(copy) = copy {
                    recycle(&mut self.pool, &self.config, copy);
                }
                self.finish(completion, now);
            }
        }
    }

    /// A header-time rejection: built here for the 32-byte layout, and for the 48-byte
    /// layout when the engine holds random bytes for it; else a job's runner builds it.
    fn reject(&mut self, origin: Origin, now: Timestamp, arrived: Timestamp, rejected: Rejected) {
        let started = self.started(origin, arrived);
        if rejected.reply.header_len == LONG_HEADER_LEN {
            if let Some(random) = self.take_random() {
                // Random bytes at hand: no need for a worker.
                return self.reject_here(origin, now, started, &rejected, &random);
            }
            let job = Job {
                origin,
                lane: Lane::Short,
                raida_id: self.config.raida_id,
                started,
                work: Work::Reject(rejected),
                out: take_buffer(&mut self.pool, 0),
                access: Access::Blocking,
            };
            self.submit(job);
            return;
        }
        self.reject_here(origin, now, started, &rejected, &[0; RANDOM_LEN]);
    }

    /// Builds a rejection on this thread (`random`: for the 48-byte layout).
    fn reject_here(
        &mut self,
        origin: Origin,
        now: Timestamp,
        started: Timestamp,
        rejected: &Rejected,
        random: &[u8; RANDOM_LEN],
    ) {
        let mut out = take_buffer(&mut self.pool, rejected.reply.header_len);
        let elapsed = elapsed_micros(started, now);
        write_rejection(&mut out, self.config.raida_id, rejected, elapsed, random);
        let completion = Completion {
            origin,
            lane: Lane::Short,
            status: rejected.status.into(),
            started,
            response: out,
            spent: Vec::new(),
            peers: None,
            commit: None,
            reply: None,
            retry: None,
        };
        self.finish(completion, now);
    }

    /// Delivers a response: a datagram to its peer, or the write of a connection that
    /// still waits for it (else dropped and counted); or, for a command that asked for
    /// peer calls, starts them (its response comes from a later job).
    fn finish(&mut self, mut completion: Completion, now: Timestamp) {
        recycle(
            &mut self.pool,
            &self.config,
            std::mem::take(&mut completion.spent),
        );
        if let Some(wait) = completion.peers.take() {
            // Its command calls its peers first (wherever it ran): the engine does, and
            // answers later.
            recycle(&mut self.pool, &self.config, completion.response);
            return self.start_fix(completion.origin, wait, now);
        }
        if let Some(commit) = completion.commit {
            let point = self.keys.commit_point();
            #[allow(unused_mut)]
            let mut hold = !point.covers(commit);
            // Planted bug for the mutant runner (never in a normal build): a response
            // released before the commit of the write it depends on.
            #[cfg(raida_mutants)]
            if crate::mutants::active(crate::mutants::Mutant::ReleaseBeforeCommit) {
                hold = false;
            }
            if hold && point.failed {
                self.counters.commit_failures += 1;
                completion = self.internal_instead(completion, now);
            } else if hold {
                self.counters.commit_waits += 1;
                self.commits.hold(commit, completion, now);
                if self.commits.ask_sync() {
                    self.outputs.push_back(Output::Sync);
                }
                return;
            }
        }
        self.deliver(completion, now);
    }

    /// The response of a held request whose write will never be durable (the sync
    /// failed, the store stopped): 252 INTERNAL instead, with what the request's
    /// response carries.
    fn internal_instead(&mut self, completion: Completion, now: Timestamp) -> Completion {
        let long = completion
            .reply
            .is_some_and(|r| r.header_len == LONG_HEADER_LEN);
        let random = if long {
            self.take_random().unwrap_or([0; RANDOM_LEN])
        } else {
            [0; RANDOM_LEN]
        };
        let (internal, spent) = completion.internal_instead(self.config.raida_id, now, &random);
        recycle(&mut self.pool, &self.config, spent);
        internal
    }

    /// Sends a response that may go now: a datagram to its peer, or the write of a
    /// connection that still waits for it (else dropped and counted).
    fn deliver(&mut self, completion: Completion, now: Timestamp) {
        let Completion {
            origin,
            status,
            started,
            response,
            ..
        } = completion;
        match origin {
            Origin::Udp(peer) => {
                self.count_response(status, Transport::Udp, started, now);
                self.outputs.push_back(Output::Datagram {
                    peer,
                    bytes: response,
                });
            }
            Origin::Tcp(id) => {
                // Planted bug for the mutant runner (never in a normal build): the
                // generation check skipped, so a completion lands on whoever holds the
                // slot now.
                #[cfg(raida_mutants)]
                let id = if crate::mutants::active(crate::mutants::Mutant::ReusedSlot) {
                    self.conns.get(id.index()).map_or(id, |c| ConnId {
                        index: id.index,
                        generation: c.generation,
                    })
                } else {
                    id
                };
                let waits = matches!(
                    live_mut(&mut self.conns, id),
                    Some(Conn {
                        state: State::Processing,
                        ..
                    })
                );
                if waits {
                    self.count_response(status, Transport::Tcp, started, now);
                    self.start_writing(id, response, now);
                } else {
                    self.counters.late_completions_dropped += 1;
                    recycle(&mut self.pool, &self.config, response);
                }
            }
            // Handled by `page_loaded`; a load has no response.
            Origin::Load(_) => recycle(&mut self.pool, &self.config, response),
        }
    }

    /// Hands `job` to the driver now, or lets it wait for room (counted).
    fn submit(&mut self, job: Job) {
        match self.admission.submit(job) {
            Some(job) => self.outputs.push_back(Output::Job(job)),
            None => self.counters.admission_waits += 1,
        }
    }

    /// Starts waiting jobs, oldest first, while there is room (in both lanes); a job
    /// whose connection is gone is dropped (counted). Resumes datagrams once the
    /// workers' lane has room.
    fn admit_waiting(&mut self) {
        let (conns, counters) = (&self.conns, &mut self.counters);
        let mut wanted = |job: &Job| {
            let orphan = is_orphan(conns, job);
            if orphan {
                counters.late_completions_dropped += 1;
            }
            !orphan
        };
        while let Some(job) = self.admission.next_admitted(&mut wanted) {
            self.outputs.push_back(Output::Job(job));
        }
        if self.admission.resume_datagrams_if_room() {
            self.outputs.push_back(Output::ResumeDatagrams);
        }
    }

    fn start_writing(&mut self, id: ConnId, response: Vec<u8>, now: Timestamp) {
        self.set_state(
            id,
            State::Writing {
                response,
                written: 0,
            },
        );
        let deadline = now.saturating_add(self.config.socket_timeout);
        self.set_deadline(id, Some((deadline, Deadline::SocketTimeout)));
        self.wake(id);
    }

    /// The client's address: the connection's peer, or the datagram's sender.
    fn peer_of(&self, origin: Origin) -> SocketAddr {
        match origin {
            Origin::Tcp(id) => self
                .conns
                .get(id.index())
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.peer),
            Origin::Udp(peer) => peer,
            Origin::Load(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// When the response's clock starts: the accept (TCP), the datagram's receipt
    /// (`arrived`, UDP).
    fn started(&self, origin: Origin, arrived: Timestamp) -> Timestamp {
        match origin {
            Origin::Tcp(id) => self.conns.get(id.index()).map_or(arrived, |c| c.accepted),
            _ => arrived,
        }
    }

    /// Counts a response by transport and status, and its latency from `started`.
    fn count_response(
        &mut self,
        status: StatusByte,
        transport: Transport,
        started: Timestamp,
        now: Timestamp,
    ) {
        let c = &mut self.counters;
        c.responses_by_status[transport.index()][usize::from(status.0)] += 1;
        c.latency[transport.index()].observe(now.saturating_since(started));
        match transport {
            Transport::Tcp => c.tcp_responses += 1,
            Transport::Udp => c.udp_responses += 1,
        }
    }

    fn set_state(&mut self, id: ConnId, state: State) {
        if matches!(state, State::Processing) {
            self.set_deadline(id, None);
        }
        if let Some(conn) = live_mut(&mut self.conns, id) {
            let old = std::mem::replace(&mut conn.state, state);
            if let State::ReadBody { body, .. } = old {
                let wait = std::mem::replace(&mut conn.budget, BudgetWait::No);
                self.release_budget(body.len(), wait);
                recycle(&mut self.pool, &self.config, body);
            }
        }
    }

    /// `n` body bytes left the budget with a connection whose wait was `wait` (the
    /// room claimed for it if it was woken, which it will not take now; its entry in
    /// the queue if it was queued, stale now): wake the connections that now have room.
    fn release_budget(&mut self, n: usize, wait: BudgetWait) {
        if wait == BudgetWait::Queued {
            self.budget.left();
        }
        self.budget.release(n, wait.claim());
        let (conns, outputs, servicing) = (&mut self.conns, &mut self.outputs, self.servicing);
        self.budget.wake(|id, visit| {
            let Some(conn) = live_mut(conns, id) else {
                return false;
            };
            if conn.budget != BudgetWait::Queued {
                return false;
            }
            if let Visit::Wake(claim) = visit {
                conn.budget = BudgetWait::Woken(claim);
                if servicing != Some(id) {
                    outputs.push_back(Output::Wake(id));
                }
            }
            true
        });
    }

    /// Sets (or clears) the connection's one deadline; `kind` names the fixed
    /// duration it was computed from, whose deadlines arrive in order.
    fn set_deadline(&mut self, id: ConnId, deadline: Option<(Timestamp, Deadline)>) {
        let Some(conn) = live_mut(&mut self.conns, id) else {
            return;
        };
        if conn.deadline.take().is_some() {
            self.timers.forget();
        }
        if let Some((when, kind)) = deadline {
            conn.deadline = Some(when);
            self.timers.push(kind, (when, id.index, id.generation));
        }
        self.prune_timers();
    }

    fn prune_timers(&mut self) {
        if self.conns.is_empty() {
            self.timers.clear();
            return;
        }
        let conns = &self.conns;
        self.timers.prune(|&(when, index, generation)| {
            conns
                .get(index as usize)
                .is_some_and(|c| c.generation == generation && c.deadline == Some(when))
        });
    }

    /// Frees the connection's slot and tells the driver to close its socket.
    fn close(&mut self, id: ConnId) {
        self.set_deadline(id, None);
        if live_mut(&mut self.conns, id).is_none() {
            return;
        }
        let conn = self.conns.remove(id.index());
        if conn.counted {
            self.clients.closed(conn.peer.ip());
        }
        match conn.state {
            State::ReadBody { body, .. } => {
                self.release_budget(body.len(), conn.budget);
                recycle(&mut self.pool, &self.config, body);
            }
            State::Writing { response, .. } => recycle(&mut self.pool, &self.config, response),
            _ => {}
        }
        self.prune_timers();
        self.outputs.push_back(Output::Close(id));
    }
}

/// Page loads one request waits for at most before it is answered 252 INTERNAL (see
/// `Engine::check`): two keys' pages, each evicted once.
pub(crate) const MAX_LOADS_PER_REQUEST: u8 = 4;

/// The engine asks for random bytes ([`Engine::wants_random`]) below this many.
pub const RANDOM_LOW_WATER: usize = 32 * RANDOM_LEN;
/// Random bytes the engine holds at most.
pub const RANDOM_RESERVOIR: usize = 8192;

/// A waiting job whose connection is gone: nobody waits for its answer.
fn is_orphan(conns: &Slab<Conn>, job: &Job) -> bool {
    match job.origin {
        Origin::Tcp(id) => !conns
            .get(id.index())
            .is_some_and(|c| c.generation == id.generation),
        _ => false,
    }
}

fn live_mut(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns
        .get_mut(id.index())
        .filter(|c| c.generation == id.generation)
}

/// How many header bytes the read position `filled` is heading for: 32 first (the
/// shorter header: every request has at least that many bytes, so this read never
/// crosses a request's end, and a request with a 32-byte header needs one read for its
/// header instead of two), then, once byte 16 is in, the 32 or 48 it announces.
fn header_target(buf: &[u8; LONG_HEADER_LEN], filled: usize) -> usize {
    if filled < PREFIX_LEN {
        SHORT_HEADER_LEN
    } else {
        header_len(buf[PREFIX_LEN - 1])
    }
}

/// The 32-byte answer to a connection refused at `max_connections`: status 160, no
/// request read, so every request field is zero.
fn refusal(raida_id: u8) -> [u8; SHORT_HEADER_LEN] {
    let mut r = [0u8; SHORT_HEADER_LEN];
    r[0] = raida_id;
    r[2] = Status::RequestRate.code();
    r[5] = 1;
    r
}

fn take_buffer(pool: &mut Vec<Vec<u8>>, capacity: usize) -> Vec<u8> {
    match pool.pop() {
        Some(mut b) => {
            b.clear();
            b.reserve(capacity);
            b
        }
        None => Vec::with_capacity(capacity),
    }
}

fn recycle(pool: &mut Vec<Vec<u8>>, config: &EngineConfig, buf: Vec<u8>) {
    if buf.capacity() > 0
        && buf.capacity() <= config.max_pooled_capacity
        && pool.len() < config.buffer_pool
    {
        pool.push(buf);
    }
}

impl EngineConfig {
    /// These peers (indexed by RAIDA index), peer deadline and bound on fixes in
    /// flight, the rest as it is.
    pub fn with_peers(
        mut self,
        peers: Vec<Option<SocketAddr>>,
        peer_timeout: Duration,
        max_fixes: usize,
    ) -> EngineConfig {
        self.peers = peers;
        self.peer_timeout = peer_timeout;
        self.max_fixes = max_fixes;
        self
    }

    /// Event loop `index`'s share when `loops` loops (engines) serve one server: the
    /// open connections and the jobs in flight are split by
    /// [`share`](crate::config::share) (shares differ by at most one and add up to
    /// exactly the configured totals, so the server as a whole keeps to them:
    /// descriptors, memory). Configuration validation keeps `io_threads` at most both
    /// totals, so no share is 0; loop 0's share is the largest. Long-running jobs are
    /// bounded per loop (`long_jobs`), as every other field is.
    pub fn for_loop(mut self, loops: usize, index: usize) -> EngineConfig {
        use crate::config::share;
        self.max_connections = share(self.max_connections, loops, index);
        self.mod_queue_size = share(self.mod_queue_size, loops, index);
        self.max_fixes = share(self.max_fixes, loops, index);
        self
    }

    /// The engine's part of a validated configuration ([`Config::validate`]): taking
    /// a [`ValidConfig`] rather than a `Config` means every value here was checked, and
    /// `trusted_networks` arrive parsed, none dropped.
    ///
    /// [`Config::validate`]: crate::config::Config::validate
    /// [`ValidConfig`]: crate::config::ValidConfig
    pub fn from_config(config: &crate::config::ValidConfig) -> EngineConfig {
        let n = &config.network;
        EngineConfig {
            raida_id: config.server.raida_id,
            coin_id: config.server.coin_id,
            max_connections: config.network.max_connections,
            max_body_size: config.network.max_body_size,
            socket_timeout: config.network.socket_timeout(),
            mod_queue_size: config.network.mod_queue_size,
            udp_payload_threshold: config.server.udp_payload_threshold,
            linger: config.network.linger(),
            turn_budget: config.network.turn_budget,
            drain_timeout: config.network.drain_timeout(),
            max_buffered_bytes: usize::try_from(n.max_buffered_bytes).unwrap_or(usize::MAX),
            small_reserve: usize::try_from(n.max_buffered_bytes / 8).unwrap_or(usize::MAX),
            max_connections_per_client: n.max_connections_per_ip,
            trusted: config.trusted_networks().to_vec(),
            rate: (n.rate_limit_per_s > 0).then_some(Rate {
                per_s: n.rate_limit_per_s,
                burst: n.rate_limit_burst,
            }),
            long_jobs: n.long_jobs,
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod fault_tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::*;
    use crate::keys::MemoryKeyStore;

    /// A type-0 version request.
    fn version_request() -> Vec<u8> {
        let mut r = vec![0u8; 32];
        r[0] = 1;
        r[5] = 1;
        r[23] = 18;
        r[30] = 0xAB;
        let mut challenge = [0x42u8; 16];
        let crc = crate::crypto::crc32(&challenge[..12]).to_be_bytes();
        challenge[12..].copy_from_slice(&crc);
        r.extend_from_slice(&challenge);
        r.extend_from_slice(&[0x3E, 0x3E]);
        r
    }

    /// A job that panics outside its handler (an injected fault before its body is
    /// opened) is answered 252, and the engine's count of jobs in flight comes back to
    /// zero: nothing leaks.
    #[test]
    fn a_job_that_panics_outside_its_handler_is_answered_252() {
        // Run the version job on a "worker", not inline.
        let config = EngineConfig {
            inline_crypto_max_body: 0,
            ..EngineConfig::default()
        };
        let commands = {
            #[derive(Debug)]
            struct OnWorker;
            impl crate::Command for OnWorker {
                fn run(&self, _: &crate::RequestContext<'_>, _: &mut Vec<u8>) -> StatusByte {
                    Status::Success.into()
                }
            }
            let mut r = CommandRegistry::empty();
            r.register(0, 1, Arc::new(OnWorker)).expect("free");
            r
        };
        let mut engine = Engine::new(config, commands, Arc::new(MemoryKeyStore::new()));
        let now = Timestamp::from_micros(10);
        let peer = SocketAddr::from(([10, 0, 0, 1], 9));
        engine.handle_datagram(peer, &version_request(), now);
        let Some(Output::Job(job)) = engine.poll_output() else {
            panic!("a job");
        };
        assert_eq!(engine.in_flight(), 1);
        job::inject::panic_next_job();
        let completion = job.run(now, &[0; RANDOM_LEN], &mut Vec::new());
        assert_eq!(completion.status(), Status::Internal.into());
        engine.handle_completion(completion, now);
        assert_eq!(engine.in_flight(), 0);
        let Some(Output::Datagram { bytes, .. }) = engine.poll_output() else {
            panic!("the 252 goes out");
        };
        assert_eq!(bytes[2], Status::Internal.code());
        assert_eq!(bytes[6..8], [0xAB, 0], "its own echo bytes");
        assert!(engine.is_idle());
    }
}
