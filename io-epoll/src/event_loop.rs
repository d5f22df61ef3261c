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
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use raida_core::config::NetworkConfig;
use raida_core::metrics::MetricsSnapshot;
use raida_core::{Accept, Completion, ConnId, Engine, Output, Timestamp};
use socket2::Socket;

use crate::metrics::SnapshotRequests;
use crate::mmsg::{RecvBatch, SendBatch};
use crate::poll::{Events, Poller};
use crate::sockets;
use crate::workers::Routed;

// `Poller::NOTIFY_KEY` is usize::MAX.
const LISTENER_KEY: usize = usize::MAX - 1;
const UDP_KEY: usize = usize::MAX - 2;

/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning about accept failures per this interval.
const ACCEPT_WARN_INTERVAL: Duration = Duration::from_secs(1);
/// Random bytes fetched per `getrandom` for the engine's own responses.
const RANDOM_REFILL: usize = 4096;
/// Response datagrams held while the UDP socket's send buffer is full.
const MAX_PENDING_DATAGRAMS: usize = 4096;
/// A refused connection's bytes already received are read and discarded (at most this
/// many 4 KiB reads, so a peer that keeps sending cannot hold the loop) before it is
/// closed: unread bytes at close would turn the 160 into a reset.
const REFUSAL_DISCARD_READS: usize = 4;

/// Microseconds since `epoch`: the engine's clock (shared with the workers).
pub fn timestamp(epoch: Instant) -> Timestamp {
    Timestamp::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// What the event loop needs besides the engine.
#[derive(Debug)]
pub struct Parts {
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
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything in flight was answered after the stop signal.
    Drained,
    /// The drain timeout passed with work still open.
    DrainTimeout,
}

#[derive(Debug)]
struct Slot {
    key: usize,
    id: ConnId,
    socket: Socket,
}

/// The event loop's state.
#[derive(Debug)]
pub struct EventLoop {
    engine: Engine,
    poller: Arc<Poller>,
    epoch: Instant,
    listener: Option<Socket>,
    udp: UdpSocket,
    udp_in: RecvBatch,
    udp_send: SendBatch,
    /// Read the UDP socket on the next turn (after `Output::ResumeDatagrams`).
    udp_resume: bool,
    /// The last accept turn ended on its budget (`turn_budget`), not on would-block:
    /// accept again after the next (non-blocking) wait.
    accept_more: bool,
    /// Response datagrams not yet sent: collected while a batch is read, sent with
    /// `sendmmsg`; held while the send buffer is full (bounded).
    udp_out: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The UDP socket's send buffer was full; wait for writability.
    udp_blocked: bool,
    udp_dropped: u64,
    /// Sockets by engine slab index.
    slots: Vec<Option<Slot>>,
    /// Connections to service (`Output::Wake`), in order.
    wakes: VecDeque<ConnId>,
    index: usize,
    jobs: Sender<Routed>,
    completions: Receiver<Completion>,
    stop: Arc<AtomicBool>,
    /// The connection `service` is working on: a `Wake` for it is redundant (the
    /// service loop goes on until both directions block or want nothing).
    servicing: Option<ConnId>,
    network: NetworkConfig,
    accept_paused_until: Option<Instant>,
    last_accept_warning: Option<Instant>,
    drain_deadline: Option<Instant>,
    snapshots: Option<SnapshotRequests>,
}

fn key_of(id: ConnId) -> usize {
    let index = id.index() as u64;
    let generation = id.generation() & 0xFFFF_FFFF;
    // On 64-bit targets this keeps both halves; elsewhere the index alone, and the
    // slot's stored key still matches only the socket that registered it.
    (index | (generation << 32)) as usize
}

fn index_of(key: usize) -> usize {
    (key as u64 & 0xFFFF_FFFF) as usize
}

impl EventLoop {
    /// Registers the listener and the UDP socket; nothing is read yet.
    pub fn new(engine: Engine, parts: Parts) -> io::Result<EventLoop> {
        // The listener and the UDP socket are owned by the returned EventLoop and
        // deleted from the poller before they are dropped (the listener in
        // `stop_accepting`, the UDP socket in `Drop`).
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
            udp: parts.udp,
            udp_in: RecvBatch::new(parts.udp_buffer.max(1)),
            udp_send: SendBatch::default(),
            // Datagrams may have arrived before registration: read once at start.
            udp_resume: true,
            accept_more: false,
            udp_out: VecDeque::new(),
            udp_blocked: false,
            udp_dropped: 0,
            slots: Vec::new(),
            wakes: VecDeque::new(),
            index: parts.index,
            jobs: parts.jobs,
            completions: parts.completions,
            stop: parts.stop,
            servicing: None,
            network: parts.network,
            accept_paused_until: None,
            last_accept_warning: None,
            drain_deadline: None,
            snapshots: parts.snapshots,
        })
    }

    /// The engine (for counters).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Everything the metrics endpoint shows: the engine's counters and gauges, and
    /// the response datagrams this driver dropped.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::of(&self.engine);
        snapshot.udp_send_dropped = self.udp_dropped;
        snapshot
    }

    fn now(&self) -> Timestamp {
        timestamp(self.epoch)
    }

    fn instant_of(&self, t: Timestamp) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_micros(t.as_micros()))
    }

    /// Runs until a stop signal has been handled and the drain is over.
    pub fn run(&mut self) -> io::Result<Exit> {
        let capacity = NonZeroUsize::new(self.network.events_per_wait).unwrap_or(NonZeroUsize::MIN);
        let mut events = Events::with_capacity(capacity.get());
        // Connections may be waiting in the backlog already.
        self.accept_all();
        loop {
            self.flush_datagrams();
            let deadline = self.next_deadline();
            self.poller.wait_deadline(&mut events, Some(deadline))?;

            for event in events.iter() {
                match event.key {
                    LISTENER_KEY => self.accept_all(),
                    UDP_KEY => {
                        if event.writable {
                            self.udp_blocked = false;
                            self.flush_datagrams();
                        }
                        if event.readable {
                            self.read_datagrams();
                        }
                    }
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
            self.run_wakes();
            self.flush_datagrams();
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

            if self
                .accept_paused_until
                .is_some_and(|t| t <= Instant::now())
            {
                self.accept_paused_until = None;
                self.accept_all();
            }

            if self.stop.load(Ordering::SeqCst) && self.drain_deadline.is_none() {
                self.stop_accepting();
            }
            if let Some(deadline) = self.drain_deadline {
                if self.drained() {
                    self.flush_datagrams();
                    return Ok(Exit::Drained);
                }
                if Instant::now() >= deadline {
                    self.flush_datagrams();
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

    fn drained(&self) -> bool {
        self.engine.connection_count() == 0
            && self.engine.in_flight() == 0
            && self.engine.waiting() == 0
            && self.udp_out.is_empty()
    }

    fn next_deadline(&self) -> Instant {
        let now = Instant::now();
        if !self.wakes.is_empty() || self.udp_resume || self.accept_more {
            return now;
        }
        let mut deadline = now + self.network.epoll_timeout();
        if let Some(t) = self.engine.poll_timeout().and_then(|t| self.instant_of(t)) {
            deadline = deadline.min(t);
        }
        for t in [self.accept_paused_until, self.drain_deadline]
            .into_iter()
            .flatten()
        {
            deadline = deadline.min(t);
        }
        deadline
    }

    /// Stops accepting: the listener leaves the poller and is closed; UDP stops being
    /// read. In-flight work goes on until drained or the drain timeout.
    fn stop_accepting(&mut self) {
        if let Some(listener) = self.listener.take() {
            if let Err(e) = self.poller.delete(&listener) {
                tracing::warn!("cannot deregister the listener: {e}");
            }
            drop(listener);
        }
        self.accept_paused_until = None;
        self.drain_deadline = Some(Instant::now() + self.network.drain_timeout());
        tracing::info!(
            connections = self.engine.connection_count(),
            jobs = self.engine.in_flight() + self.engine.waiting(),
            "stopping: no longer accepting; finishing requests in flight (at most {} ms)",
            self.network.drain_timeout_ms
        );
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
                    if self.jobs.send((self.index, job)).is_err() {
                        tracing::error!("the worker pool is gone; a job is lost");
                    }
                }
                // The connection being serviced goes on being serviced anyway.
                Output::Wake(id) if self.servicing == Some(id) => {}
                Output::Wake(id) => self.wakes.push_back(id),
                Output::ShutdownWrite(id) => {
                    if let Some(slot) = live_slot(&self.slots, id) {
                        if let Err(e) = slot.socket.shutdown(Shutdown::Write) {
                            tracing::debug!("shutdown(write): {e}");
                        }
                    }
                }
                Output::Close(id) => self.close_socket(id),
                Output::Datagram { peer, bytes } => self.queue_datagram(peer, bytes),
                Output::ResumeDatagrams => self.udp_resume = true,
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
        while let Some(id) = self.wakes.pop_front() {
            self.service(id);
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

    /// Accepts until the listener would block (or the process is out of descriptors).
    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let mut budget = self.network.turn_budget;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if budget == 0 {
                // Serve everything else first; the backlog is taken up next turn.
                self.accept_more = true;
                return;
            }
            match sockets::accept_nonblocking(listener) {
                Ok((socket, peer)) => {
                    budget -= 1;
                    self.accepted(socket, peer);
                    self.run_wakes();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_accept_error(&e) => {
                    tracing::debug!("accept: {e}");
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unexpected: pause
                    // accepting for a moment instead of spinning; open connections are
                    // served meanwhile, and the backlog is retried at the deadline.
                    let now = Instant::now();
                    if self
                        .last_accept_warning
                        .map_or(true, |t| now.duration_since(t) >= ACCEPT_WARN_INTERVAL)
                    {
                        self.last_accept_warning = Some(now);
                        tracing::warn!(
                            "accept failed: {e}; pausing accepts for {} ms",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn accepted(&mut self, socket: Socket, peer: SocketAddr) {
        let now = self.now();
        let accept = self.engine.handle_accept(peer, now);
        self.drain();
        match accept {
            Accept::Refused(bytes) => {
                // As the engine's contract says: write, shut down the write side, discard
                // what already arrived, close. Best effort, never waiting.
                let _ = (&socket).write(&bytes);
                let _ = socket.shutdown(std::net::Shutdown::Write);
                let mut sink = [0u8; 4096];
                for _ in 0..REFUSAL_DISCARD_READS {
                    if !matches!((&socket).read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                drop(socket);
            }
            Accept::Accepted(id) => {
                // Non-blocking from accept4; keep-alive inherited from the listener.
                let key = key_of(id);
                let index = id.index();
                if self.slots.len() <= index {
                    self.slots.resize_with(index + 1, || None);
                }
                if let Some(old) = self.slots[index].take() {
                    // The engine closes a slot before reusing it, and Close is carried
                    // out at once; this would be an engine bug. Never keep two sockets.
                    tracing::error!("slot {index} reused while open; closing the old socket");
                    let _ = self.poller.delete(&old.socket);
                }
                // SAFETY: the socket is owned by the slot and deleted from the poller
                // before it is dropped (`close_socket`, `Drop`).
                let added = unsafe { self.poller.add(&socket, key, true, true) };
                if let Err(e) = added {
                    tracing::warn!("cannot register a connection: {e}");
                    drop(socket);
                    self.engine.handle_error(id, now);
                    self.drain();
                    return;
                }
                self.slots[index] = Some(Slot { key, id, socket });
                // The request may be there already: its edge came before registration.
                self.service(id);
            }
        }
    }

    /// Reads into the engine's buffer and writes its bytes until the socket would block
    /// or the engine wants nothing more.
    fn service(&mut self, id: ConnId) {
        let outer = self.servicing.replace(id);
        self.service_inner(id);
        self.servicing = outer;
    }

    fn service_inner(&mut self, id: ConnId) {
        let mut read_blocked = false;
        let mut write_blocked = false;
        loop {
            let mut progressed = false;
            if !read_blocked {
                let Some(slot) = live_slot(&self.slots, id) else {
                    return;
                };
                if let Some(buf) = self.engine.recv_buf(id).filter(|b| !b.is_empty()) {
                    match (&slot.socket).read(buf) {
                        Ok(0) => {
                            let now = self.now();
                            self.engine.handle_eof(id, now);
                            self.drain();
                            read_blocked = true;
                            progressed = true;
                        }
                        Ok(n) => {
                            let now = self.now();
                            self.engine.handle_received(id, n, now);
                            self.drain();
                            progressed = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_blocked = true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                        Err(_) => {
                            let now = self.now();
                            self.engine.handle_error(id, now);
                            self.drain();
                            return;
                        }
                    }
                }
            }
            if !write_blocked {
                let Some(slot) = live_slot(&self.slots, id) else {
                    return;
                };
                if let Some(bytes) = self.engine.send_buf(id).filter(|b| !b.is_empty()) {
                    match (&slot.socket).write(bytes) {
                        Ok(n) => {
                            let now = self.now();
                            self.engine.handle_sent(id, n, now);
                            self.drain();
                            progressed = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => write_blocked = true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                        Err(_) => {
                            let now = self.now();
                            self.engine.handle_error(id, now);
                            self.drain();
                            return;
                        }
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    // ----- UDP ----------------------------------------------------------------------

    /// Reads datagrams in batches until the socket would block or the engine wants no
    /// more, and sends each batch's responses together.
    fn read_datagrams(&mut self) {
        if self.drain_deadline.is_some() {
            // Stopping: no new requests.
            return;
        }
        let mut budget = self.network.turn_budget;
        loop {
            let room = self.engine.datagram_room();
            if room == 0 {
                // The kernel's buffer holds the rest until ResumeDatagrams.
                return;
            }
            if budget == 0 {
                // Serve everything else first; read on after the next wait.
                self.udp_resume = true;
                return;
            }
            let want = room.min(budget);
            match self.udp_in.recv(&self.udp, want) {
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    let now = timestamp(self.epoch);
                    for i in 0..n {
                        if let Some((peer, received)) = self.udp_in.get(i) {
                            self.engine.handle_datagram(peer, received, now);
                        }
                        self.drain();
                    }
                    self.run_wakes();
                    self.flush_datagrams();
                    if n < crate::mmsg::BATCH.min(want) {
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

    fn queue_datagram(&mut self, peer: SocketAddr, bytes: Vec<u8>) {
        if self.udp_out.len() >= MAX_PENDING_DATAGRAMS {
            self.udp_dropped += 1;
            if self.udp_dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.udp_dropped,
                    "UDP send buffer full: response datagrams dropped"
                );
            }
            self.engine.recycle(bytes);
            return;
        }
        self.udp_out.push_back((peer, bytes));
    }

    /// Sends the queued response datagrams until done or the send buffer is full.
    fn flush_datagrams(&mut self) {
        if self.udp_out.is_empty() || self.udp_blocked {
            return;
        }
        let engine = &mut self.engine;
        match self
            .udp_send
            .send(&self.udp, &mut self.udp_out, |b| engine.recycle(b))
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.udp_blocked = true,
            Err(e) => tracing::debug!("udp send: {e}"),
        }
        if !self.udp_out.is_empty() {
            // Stopped short: the buffer is full; the writable edge resumes us.
            self.udp_blocked = true;
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        for slot in self.slots.iter_mut().filter_map(Option::take) {
            let _ = self.poller.delete(&slot.socket);
            drop(slot);
        }
        if let Some(listener) = self.listener.take() {
            let _ = self.poller.delete(&listener);
        }
        let _ = self.poller.delete(&self.udp);
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
