//! The event loop: one thread, edge-triggered epoll (`crate::poll`), one engine.
//! With `io_threads` > 1 the server runs several, each with its own sockets (bound
//! with SO_REUSEPORT, so the kernel spreads connections and datagrams), its own engine
//! and poller, sharing the worker pool and the key store.
//!
//! It follows the engine's calling contract (see `raida_core::Engine`): every input is
//! followed by a complete drain of `poll_output`; every socket is read and written until
//! it would block (edge-triggered readiness is not repeated); interest is never tracked
//! here: every connection is registered once for both directions, and what to do on
//! readiness follows from `recv_buf` / `send_buf`.
//!
//! Poller keys: the listener and the UDP socket have fixed keys; a connection's key is
//! its engine slab index in the low 32 bits and the low 32 bits of its generation above,
//! and the slot table here keeps the key it registered, so an event still queued for a
//! socket closed earlier in the same batch never reaches the connection that reused
//! its slot.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use raida_core::config::NetworkConfig;
use raida_core::metrics::MetricsSnapshot;
use raida_core::{
    Accept, AcceptStop, Accepting, Completion, ConnId, ConnSocket, Engine, Io, Listener, Output,
    PeerConnId, ShutdownStatus, Timestamp,
};
use socket2::Socket;

use crate::committer::CommitLink;
use crate::poll::{Events, Poller};
use crate::snapshots::SnapshotRequests;
use crate::sockets;
use crate::udp::{self, UdpPath};
use crate::workers::Routed;

// `Poller::NOTIFY_KEY` is usize::MAX.
const LISTENER_KEY: usize = usize::MAX - 1;
const UDP_KEY: usize = usize::MAX - 2;

/// Random bytes fetched per `getrandom` for the engine's own responses.
const RANDOM_REFILL: usize = 4096;
/// A refused connection's bytes already received are read and discarded (at most this
/// many 4 KiB reads, so a peer that keeps sending cannot hold the loop) before it is
/// closed: unread bytes at close would turn the 160 into a reset.
const REFUSAL_DISCARD_READS: usize = 4;

/// Microseconds since `epoch`: the engine's clock (shared with the workers).
pub(crate) fn timestamp(epoch: Instant) -> Timestamp {
    Timestamp::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// What the event loop needs besides the engine.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The poller every socket of this loop is registered with (shared with workers,
    /// signals and the metrics endpoint, which wake it).
    pub poller: Arc<Poller>,
    /// This loop's index among the event loops (completions come back to it).
    pub index: usize,
    /// The time origin of every timestamp.
    pub epoch: Instant,
    /// The listening socket, non-blocking.
    pub listener: Socket,
    /// The UDP socket, non-blocking, on the same port.
    pub udp: UdpSocket,
    /// Jobs out to the workers, tagged with this loop's index.
    pub jobs: Sender<Routed>,
    /// Jobs of long-running commands, to their own threads.
    pub long_jobs: Sender<Routed>,
    /// Completions back from the workers.
    pub completions: Receiver<Completion>,
    /// Set by the signal thread (which then notifies the poller).
    pub stop: Arc<AtomicBool>,
    /// `[network]`: timeouts, keep-alive, events per wait, drain timeout.
    pub network: NetworkConfig,
    /// UDP receive buffer size (`udp_payload_threshold`).
    pub udp_buffer: usize,
    /// Snapshot requests from the metrics endpoint (with `Poller::notify`), if any.
    pub snapshots: Option<SnapshotRequests>,
    /// The committer: asks for syncs, and hears when one ended.
    pub commits: CommitLink,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything in flight was answered after the stop signal.
    Drained,
    /// The drain timeout passed with work still open.
    DrainTimeout,
}

/// An outbound peer connection's socket (a peer call the engine asked for).
#[derive(Debug)]
struct PeerSlot {
    key: usize,
    id: PeerConnId,
    socket: Socket,
    /// The non-blocking connect has not been reported to the engine yet.
    connecting: bool,
}

#[derive(Debug)]
struct Slot {
    key: usize,
    id: ConnId,
    socket: Socket,
}

/// The event loop's state.
#[derive(Debug)]
pub(crate) struct EventLoop {
    engine: Engine,
    poller: Arc<Poller>,
    epoch: Instant,
    listener: Option<Socket>,
    udp: UdpPath,
    /// Read the UDP socket on the next turn (after `Output::ResumeDatagrams`, or when
    /// the last read ended on its budget).
    udp_resume: bool,
    /// Accept on the next turn (the last accept ended on its budget, or the engine's
    /// accept pause is over).
    accept_more: bool,
    /// Sockets by engine slab index.
    slots: Vec<Option<Slot>>,
    /// Connections to service (`Output::Wake`), in order.
    wakes: VecDeque<ConnId>,
    /// Outbound peer sockets by engine peer slab index.
    peer_slots: Vec<Option<PeerSlot>>,
    /// Peer connections to service (`Output::WakePeer`), in order.
    peer_wakes: VecDeque<PeerConnId>,
    index: usize,
    jobs: Sender<Routed>,
    long_jobs: Sender<Routed>,
    completions: Receiver<Completion>,
    stop: Arc<AtomicBool>,
    network: NetworkConfig,
    snapshots: Option<SnapshotRequests>,
    commits: CommitLink,
}

/// Bit 63 of a poller key marks an outbound peer connection.
const PEER_BIT: u64 = 1 << 63;

fn key_of(id: ConnId) -> usize {
    let index = id.index() as u64;
    let generation = id.generation() & 0x7FFF_FFFF;
    // On 64-bit targets this keeps both halves; elsewhere the index alone, and the
    // slot's stored key still matches only the socket that registered it.
    (index | (generation << 32)) as usize
}

/// A peer connection's key: like a connection's, with [`PEER_BIT`] set.
fn peer_key_of(id: PeerConnId) -> usize {
    let index = id.index() as u64 & 0xFFFF_FFFF;
    let generation = id.generation() & 0x7FFF_FFFF;
    (PEER_BIT | index | (generation << 32)) as usize
}

fn is_peer_key(key: usize) -> bool {
    key as u64 & PEER_BIT != 0
}

fn index_of(key: usize) -> usize {
    (key as u64 & 0xFFFF_FFFF) as usize
}

impl EventLoop {
    /// Registers the listener and the UDP socket; nothing is read yet.
    pub(crate) fn new(engine: Engine, parts: Parts) -> io::Result<EventLoop> {
        // The listener and the UDP socket are owned by the returned EventLoop and
        // deleted from the poller before they are dropped (the listener in
        // `stop_listening`, the UDP socket in `Drop`).
        // SAFETY: see above.
        unsafe {
            parts
                .poller
                .add(&parts.listener, LISTENER_KEY, true, false)?;
        }
        // SAFETY: see above.
        if let Err(e) = unsafe { parts.poller.add(&parts.udp, UDP_KEY, true, true) } {
            let _ = parts.poller.delete(&parts.listener);
            return Err(e);
        }
        Ok(EventLoop {
            engine,
            poller: parts.poller,
            epoch: parts.epoch,
            listener: Some(parts.listener),
            udp: UdpPath::new(parts.udp, parts.udp_buffer),
            // Datagrams may have arrived before registration: read once at start.
            udp_resume: true,
            accept_more: false,
            slots: Vec::new(),
            wakes: VecDeque::new(),
            peer_slots: Vec::new(),
            peer_wakes: VecDeque::new(),
            index: parts.index,
            jobs: parts.jobs,
            long_jobs: parts.long_jobs,
            completions: parts.completions,
            stop: parts.stop,
            network: parts.network,
            snapshots: parts.snapshots,
            commits: parts.commits,
        })
    }

    /// Everything the metrics endpoint shows: the engine's counters and gauges, and
    /// the response datagrams this driver dropped.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::of(&self.engine);
        snapshot.udp_send_dropped = self.udp.dropped();
        snapshot
    }

    fn now(&self) -> Timestamp {
        timestamp(self.epoch)
    }

    fn instant_of(&self, t: Timestamp) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_micros(t.as_micros()))
    }

    /// Runs until a stop signal has been handled and the drain is over.
    pub(crate) fn run(&mut self) -> io::Result<Exit> {
        let capacity = NonZeroUsize::new(self.network.events_per_wait).unwrap_or(NonZeroUsize::MIN);
        let mut events = Events::with_capacity(capacity.get());
        // Connections may be waiting in the backlog already.
        self.accept_all();
        loop {
            self.udp.flush(&mut self.engine);
            let deadline = self.next_deadline();
            self.poller.wait_deadline(&mut events, Some(deadline))?;

            for event in events.iter() {
                match event.key {
                    LISTENER_KEY => self.accept_all(),
                    UDP_KEY => {
                        if event.writable {
                            self.udp.writable(&mut self.engine);
                        }
                        if event.readable {
                            self.read_datagrams();
                        }
                    }
                    key if is_peer_key(key) => self.peer_event(key),
                    key => {
                        let index = index_of(key);
                        let id = match self.slots.get(index) {
                            Some(Some(slot)) if slot.key == key => slot.id,
                            // Stale: the socket was closed, its slot maybe reused.
                            _ => continue,
                        };
                        self.service(id);
                    }
                }
                self.run_wakes();
            }

            // Notifies merge: take every completion there is, whatever woke us.
            while let Ok(completion) = self.completions.try_recv() {
                let now = self.now();
                self.engine.handle_completion(completion, now);
                self.drain();
            }
            if self.commits.take_ended() {
                let now = self.now();
                self.engine.handle_commit(now);
                self.drain();
            }
            self.run_wakes();
            self.udp.flush(&mut self.engine);
            if std::mem::take(&mut self.udp_resume) {
                self.read_datagrams();
            }
            if std::mem::take(&mut self.accept_more) {
                self.accept_all();
            }

            let now = self.now();
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
                self.drain();
                self.run_wakes();
            }

            // Every input of this turn is applied and drained: answer the metrics
            // endpoint now, so a scrape counts every response already sent.
            if let Some(requests) = &self.snapshots {
                requests.answer(|| self.snapshot());
            }

            // The shutdown is the engine's: it stops listening, drains, and says when
            // the drain is over.
            if self.stop.load(Ordering::SeqCst) {
                let now = self.now();
                self.engine.handle_shutdown(now);
                self.drain();
            }
            match self.engine.shutdown_status(self.now()) {
                ShutdownStatus::Running | ShutdownStatus::Draining => {}
                ShutdownStatus::Drained if self.udp.is_flushed() => return Ok(Exit::Drained),
                ShutdownStatus::Drained => self.udp.flush(&mut self.engine),
                ShutdownStatus::TimedOut => {
                    self.udp.flush(&mut self.engine);
                    tracing::warn!(
                        connections = self.engine.connection_count(),
                        jobs = self.engine.in_flight() + self.engine.waiting(),
                        "drain timeout: exiting with work still open"
                    );
                    return Ok(Exit::DrainTimeout);
                }
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let now = crate::clock::now();
        if !self.wakes.is_empty()
            || !self.peer_wakes.is_empty()
            || self.udp_resume
            || self.accept_more
        {
            return now;
        }
        let mut deadline = now + self.network.epoll_timeout();
        if let Some(t) = self.engine.poll_timeout().and_then(|t| self.instant_of(t)) {
            deadline = deadline.min(t);
        }
        deadline
    }

    /// The engine is shutting down: the listener leaves the poller and is closed (UDP
    /// is no longer read: the engine wants no datagrams). In-flight work goes on until
    /// the engine says the drain is over.
    fn stop_listening(&mut self) {
        if let Some(listener) = self.listener.take() {
            if let Err(e) = self.poller.delete(&listener) {
                tracing::warn!("cannot deregister the listener: {e}");
            }
            drop(listener);
            tracing::info!(
                connections = self.engine.connection_count(),
                jobs = self.engine.in_flight() + self.engine.waiting(),
                "stopping: no longer accepting; finishing requests in flight (at most {} ms)",
                self.network.drain_timeout_ms
            );
        }
    }

    // ----- outputs ------------------------------------------------------------------

    /// Carries out every output the engine has (and tops up its random bytes, so
    /// cheap encrypted requests can be answered on this thread).
    fn drain(&mut self) {
        if self.engine.wants_random() {
            self.feed_random();
        }
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Job(job) => {
                    let pool = if job.is_long() {
                        &self.long_jobs
                    } else {
                        &self.jobs
                    };
                    if pool.send((self.index, job)).is_err() {
                        tracing::error!("the worker pool is gone; a job is lost");
                    }
                }
                Output::Wake(id) => self.wakes.push_back(id),
                Output::Close(id) => self.close_socket(id),
                Output::Datagram { peer, bytes } => self.udp.queue(&mut self.engine, peer, bytes),
                Output::ResumeDatagrams => self.udp_resume = true,
                Output::ResumeAccepting => self.accept_more = true,
                Output::StopListening => self.stop_listening(),
                Output::Connect { id, addr } => self.connect_peer(id, addr),
                Output::WakePeer(id) => self.peer_wakes.push_back(id),
                Output::ClosePeer(id) => self.close_peer(id),
                Output::Sync => {
                    if self.commits.asks.send(()).is_err() {
                        tracing::error!("the committer thread is gone: writes cannot be synced");
                    }
                }
            }
        }
    }

    // ----- peer calls (outbound) ----------------------------------------------------

    /// Starts a non-blocking connect to `addr` for peer connection `id` and registers
    /// the socket for both directions; the engine hears of the outcome
    /// (`handle_connected` once established, `handle_connect_failed` when it cannot
    /// be), now or on the socket's first readiness.
    fn connect_peer(&mut self, id: PeerConnId, addr: std::net::SocketAddr) {
        let now = self.now();
        let socket = match sockets::connect_nonblocking(addr) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!("peer connect to {addr}: {e}");
                self.engine.handle_connect_failed(id, now);
                return;
            }
        };
        let key = peer_key_of(id);
        let index = id.index();
        if self.peer_slots.len() <= index {
            self.peer_slots.resize_with(index + 1, || None);
        }
        if let Some(old) = self.peer_slots[index].take() {
            // Its ClosePeer came first in the outputs; defensive only.
            let _ = self.poller.delete(&old.socket);
        }
        // SAFETY: the socket is owned by the peer slot and deleted from the poller
        // before it is dropped (`close_peer`, here above, `Drop`).
        if let Err(e) = unsafe { self.poller.add(&socket, key, true, true) } {
            tracing::warn!("cannot register a peer connection: {e}");
            self.engine.handle_connect_failed(id, now);
            return;
        }
        self.peer_slots[index] = Some(PeerSlot {
            key,
            id,
            socket,
            connecting: true,
        });
        // The connect's outcome comes as the socket's first readiness (writable, or an
        // error).
    }

    /// Readiness on a peer socket: a connect's outcome first, then the engine's
    /// service loop for peer connections.
    fn peer_event(&mut self, key: usize) {
        let index = index_of(key);
        let now = self.now();
        let Some(Some(slot)) = self.peer_slots.get_mut(index) else {
            return;
        };
        if slot.key != key {
            return;
        }
        let id = slot.id;
        if slot.connecting {
            match slot.socket.take_error() {
                Ok(None) if slot.socket.peer_addr().is_ok() => {
                    slot.connecting = false;
                    self.engine.handle_connected(id, now);
                }
                // Not yet connected, no error: wait for the next edge.
                Ok(None) => return,
                Ok(Some(_)) | Err(_) => self.engine.handle_connect_failed(id, now),
            }
            self.drain();
            self.run_wakes();
            return;
        }
        self.service_peer(id);
    }

    fn service_peer(&mut self, id: PeerConnId) {
        let Some(Some(slot)) = self.peer_slots.get(id.index()) else {
            return;
        };
        if slot.id != id || slot.connecting {
            return;
        }
        let now = self.now();
        let _ = self
            .engine
            .service_peer(id, &mut SocketIo(&slot.socket), now);
        self.drain();
    }

    fn close_peer(&mut self, id: PeerConnId) {
        let Some(entry) = self.peer_slots.get_mut(id.index()) else {
            return;
        };
        if entry.as_ref().is_some_and(|s| s.id == id) {
            if let Some(slot) = entry.take() {
                if let Err(e) = self.poller.delete(&slot.socket) {
                    tracing::debug!("deregister a peer socket: {e}");
                }
                drop(slot);
            }
        }
    }

    /// One `getrandom` for the next few hundred responses the engine builds itself.
    fn feed_random(&mut self) {
        let mut bytes = [0u8; RANDOM_REFILL];
        match getrandom::getrandom(&mut bytes) {
            Ok(()) => self.engine.handle_random(&bytes),
            // Without them the engine hands such requests to the workers, which have
            // their own fallback.
            Err(e) => tracing::debug!("getrandom: {e}"),
        }
    }

    fn run_wakes(&mut self) {
        loop {
            if let Some(id) = self.wakes.pop_front() {
                self.service(id);
            } else if let Some(id) = self.peer_wakes.pop_front() {
                self.service_peer(id);
            } else {
                return;
            }
        }
    }

    fn close_socket(&mut self, id: ConnId) {
        let Some(entry) = self.slots.get_mut(id.index()) else {
            return;
        };
        if entry.as_ref().is_some_and(|s| s.id == id) {
            if let Some(slot) = entry.take() {
                if let Err(e) = self.poller.delete(&slot.socket) {
                    tracing::debug!("deregister: {e}");
                }
                drop(slot);
            }
        }
    }

    // ----- TCP ----------------------------------------------------------------------

    /// Accepts until the listener would block, the turn's budget is spent, or the
    /// process is out of descriptors (the engine decides each, and the backoff).
    fn accept_all(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let now = self.now();
        let mut acceptor = Acceptor {
            listener,
            exhausted: None,
        };
        let slots = &mut self.slots;
        let poller = &self.poller;
        let stop =
            self.engine
                .accept_from(&mut acceptor, now, |engine, socket, answer| match answer {
                    Accept::Refused(bytes) => refuse(socket, &bytes),
                    Accept::Accepted(id) => register(engine, slots, poller, socket, id, now),
                });
        match stop {
            AcceptStop::Drained | AcceptStop::NotAccepting => {}
            // Serve everything else first; the backlog is taken up next turn.
            AcceptStop::Budget => self.accept_more = true,
            AcceptStop::Paused { warn } => {
                if warn {
                    let e = acceptor.exhausted.take();
                    tracing::warn!(
                        "accept failed: {}; pausing accepts for {} ms",
                        e.map_or_else(|| "out of resources".to_string(), |e| e.to_string()),
                        self.engine.config().accept_backoff.as_millis()
                    );
                }
            }
        }
        self.drain();
        self.run_wakes();
    }

    /// Services a connection on readiness or a wake: the engine's one service loop
    /// over the socket.
    fn service(&mut self, id: ConnId) {
        let Some(slot) = live_slot(&self.slots, id) else {
            return;
        };
        let now = self.now();
        let _ = self.engine.service(id, &mut SocketIo(&slot.socket), now);
        self.drain();
    }

    // ----- UDP ----------------------------------------------------------------------

    /// Reads datagrams in batches until the socket would block, the engine has no
    /// room (the kernel's buffer holds the rest until `ResumeDatagrams`), or the turn's
    /// budget is spent; every datagram's outputs are drained before the next.
    fn read_datagrams(&mut self) {
        let mut budget = self.network.turn_budget;
        loop {
            let room = self.engine.datagram_room();
            if room == 0 {
                return;
            }
            if budget == 0 {
                // Serve everything else first; read on after the next wait.
                self.udp_resume = true;
                return;
            }
            let want = room.min(budget);
            match self.udp.recv(want) {
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    let now = self.now();
                    let udp = &self.udp;
                    self.engine
                        .prefetch_datagrams((0..n).filter_map(|i| udp.get(i).map(|(_, d)| d)));
                    for i in 0..n {
                        if let Some((peer, received)) = self.udp.get(i) {
                            self.engine.handle_datagram(peer, received, now);
                        }
                        self.drain();
                    }
                    self.run_wakes();
                    self.udp.flush(&mut self.engine);
                    if n < udp::BATCH.min(want) {
                        // A short batch: the socket is (very likely) empty now; an edge
                        // comes with the next datagram. Confirm with one more read only
                        // when the batch was full.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors of earlier sends surface here (ECONNREFUSED): not ours
                    // to act on; keep reading.
                    tracing::debug!("udp recv: {e}");
                }
            }
        }
    }
}

/// A connection's socket as the engine's service loop drives it.
struct SocketIo<'a>(&'a Socket);

impl ConnSocket for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        Io::of_read((&*self.0).read(buf))
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        Io::of_write((&*self.0).write(bytes))
    }

    fn shutdown_write(&mut self) {
        if let Err(e) = self.0.shutdown(Shutdown::Write) {
            tracing::debug!("shutdown(write): {e}");
        }
    }
}

/// The listening socket as the engine's accept loop drives it.
struct Acceptor<'a> {
    listener: &'a Socket,
    /// The error that made the last accept report [`Accepting::Exhausted`].
    exhausted: Option<io::Error>,
}

impl Listener for Acceptor<'_> {
    type Socket = Socket;

    fn accept(&mut self) -> Accepting<Socket> {
        match sockets::accept_nonblocking(self.listener) {
            Ok((socket, peer)) => Accepting::Conn(socket, peer),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepting::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Accepting::Skip,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::debug!("accept: {e}");
                Accepting::Skip
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unexpected.
                self.exhausted = Some(e);
                Accepting::Exhausted
            }
        }
    }
}

/// A connection refused at `max_connections`, as [`Accept::Refused`] says: write the
/// 160, shut down the write side, discard what already arrived (never waiting), close.
fn refuse(socket: Socket, bytes: &[u8]) {
    let _ = (&socket).write(bytes);
    let _ = socket.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..REFUSAL_DISCARD_READS {
        if !matches!((&socket).read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Registers an accepted connection and services it at once (its request may be
/// there already: its edge came before registration).
fn register(
    engine: &mut Engine,
    slots: &mut Vec<Option<Slot>>,
    poller: &Poller,
    socket: Socket,
    id: ConnId,
    now: Timestamp,
) {
    // Non-blocking from accept4; keep-alive inherited from the listener.
    let key = key_of(id);
    let index = id.index();
    if slots.len() <= index {
        slots.resize_with(index + 1, || None);
    }
    if let Some(old) = slots[index].take() {
        // The engine reuses a slot only after closing its connection; that Close is
        // still queued (outputs are drained after the accept batch). Close it now.
        let _ = poller.delete(&old.socket);
    }
    // SAFETY: the socket is owned by the slot and deleted from the poller before it is
    // dropped (`close_socket`, here above, `Drop`).
    let added = unsafe { poller.add(&socket, key, true, true) };
    if let Err(e) = added {
        tracing::warn!("cannot register a connection: {e}");
        drop(socket);
        engine.handle_error(id, now);
        return;
    }
    let slot = slots[index].insert(Slot { key, id, socket });
    let _ = engine.service(id, &mut SocketIo(&slot.socket), now);
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        for slot in self.slots.iter_mut().filter_map(Option::take) {
            let _ = self.poller.delete(&slot.socket);
            drop(slot);
        }
        for slot in self.peer_slots.iter_mut().filter_map(Option::take) {
            let _ = self.poller.delete(&slot.socket);
            drop(slot);
        }
        if let Some(listener) = self.listener.take() {
            let _ = self.poller.delete(&listener);
        }
        let _ = self.poller.delete(self.udp.socket());
    }
}

/// The slot of connection `id`, if it is still the one there (a slot is reused once its
/// connection closes). A free function so that it borrows only the slots, beside the
/// engine.
fn live_slot(slots: &[Option<Slot>], id: ConnId) -> Option<&Slot> {
    match slots.get(id.index()) {
        Some(Some(slot)) if slot.id == id => Some(slot),
        _ => None,
    }
}

/// Accept errors that concern one connection only (it died in the backlog): go on.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}
