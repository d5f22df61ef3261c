//! The driver: one engine, its sockets, its worker and a virtual clock, moved one
//! round at a time.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use raida_core::codec::RANDOM_LEN;
use raida_core::{Accept, ConnId, ConnSocket, Engine, Io, Origin, Output, PeerConnId, Timestamp};

use crate::conn::MemConn;
use crate::listener::MemListener;
use crate::peer::{MemPeer, PeerScript};
use crate::udp::MemUdp;
use crate::worker::{JobPolicy, Worker};

/// The steps [`Driver::drive`] allows before it declares a livelock: far more than any
/// scripted input needs (one request takes a handful).
pub const DEFAULT_STEP_BOUND: usize = 100_000;

/// The peer [`Driver::accept`] connects from.
const DEFAULT_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// One engine driven in memory: see the [crate documentation](crate).
#[derive(Debug)]
pub struct Driver {
    /// The engine under test (its queries, and inputs the driver has no verb for).
    pub engine: Engine,
    now: Timestamp,
    conns: BTreeMap<ConnId, MemConn>,
    /// The listening socket.
    pub listener: MemListener,
    /// The UDP socket.
    pub udp: MemUdp,
    /// The worker that runs jobs.
    pub worker: Worker,
    /// Connections to service at the next step, in order.
    wake: VecDeque<ConnId>,
    /// Connections the engine closed, in order.
    pub closes: Vec<ConnId>,
    /// Connections refused at accept: the 160 written, the write side shut, dropped.
    pub refused: Vec<MemConn>,
    /// [`Output::ResumeDatagrams`] seen.
    pub resumed_datagrams: usize,
    /// [`Output::ResumeAccepting`] seen.
    pub resumed_accepting: usize,
    /// [`Output::StopListening`] seen.
    pub stopped_listening: usize,
    /// [`Output::Sync`]s the engine asked for.
    pub syncs_asked: usize,
    /// Whether a sync was asked for and not yet run: [`step`](Self::step) runs it
    /// (the store's [`sync`](raida_core::KeyStore::sync), then
    /// [`handle_commit`](Engine::handle_commit)) unless [`hold_syncs`](Self::hold_syncs).
    pub sync_pending: bool,
    /// Leave asked syncs pending (a test that looks at held responses).
    pub hold_syncs: bool,
    /// The steps [`drive`](Self::drive) allows ([`DEFAULT_STEP_BOUND`]).
    pub step_bound: usize,
    /// How the peer at each address behaves when the engine connects to it; an
    /// address not listed refuses.
    pub peer_scripts: BTreeMap<SocketAddr, PeerScript>,
    /// Outbound connections the engine asked for: their address and socket.
    peers: BTreeMap<PeerConnId, (SocketAddr, MemPeer)>,
    /// Peer connections to service at the next step, in order.
    peer_wake: VecDeque<PeerConnId>,
}

impl Driver {
    /// Drives `engine` from time `start`; jobs run at once with `random` as their random
    /// bytes.
    pub fn new(engine: Engine, start: Timestamp, random: [u8; RANDOM_LEN]) -> Driver {
        Driver {
            engine,
            now: start,
            conns: BTreeMap::new(),
            listener: MemListener::default(),
            udp: MemUdp::default(),
            worker: Worker::new(random),
            wake: VecDeque::new(),
            closes: Vec::new(),
            refused: Vec::new(),
            resumed_datagrams: 0,
            resumed_accepting: 0,
            stopped_listening: 0,
            syncs_asked: 0,
            sync_pending: false,
            hold_syncs: false,
            step_bound: DEFAULT_STEP_BOUND,
            peer_scripts: BTreeMap::new(),
            peers: BTreeMap::new(),
            peer_wake: VecDeque::new(),
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    // ----- driving -----------------------------------------------------------------

    /// One round of every party: the engine's outputs are carried out, the listener's
    /// backlog is accepted, the UDP socket is read while the engine wants datagrams,
    /// and every connection woken is serviced once (outputs drained after each input).
    /// Returns whether anything happened. Never moves the clock.
    pub fn step(&mut self) -> bool {
        let mut active = self.drain();
        if self.sync_pending && !self.hold_syncs {
            self.sync_pending = false;
            self.engine.keys().sync();
            self.engine.handle_commit(self.now);
            self.drain();
            active = true;
        }
        if self.listener.pending() > 0 {
            active |= !self.accept_pending().is_empty();
        }
        // The batch this turn reads, hinted first, as the epoll driver does.
        let batch = self.engine.datagram_room().min(self.udp.inbound.len());
        if batch > 0 {
            self.engine
                .prefetch_datagrams(self.udp.inbound.iter().take(batch).map(|(_, b)| &b[..]));
        }
        while self.engine.datagram_room() > 0 {
            let Some((peer, bytes)) = self.udp.inbound.pop_front() else {
                break;
            };
            self.engine.handle_datagram(peer, &bytes, self.now);
            self.drain();
            active = true;
        }
        for _ in 0..self.wake.len() {
            let Some(id) = self.wake.pop_front() else {
                break;
            };
            self.service(id);
            active = true;
        }
        for _ in 0..self.peer_wake.len() {
            let Some(id) = self.peer_wake.pop_front() else {
                break;
            };
            self.service_peer(id);
            active = true;
        }
        active
    }

    /// Steps until nothing happens, at most [`step_bound`](Self::step_bound) steps.
    ///
    /// # Panics
    ///
    /// When the bound is reached (a livelock).
    pub fn drive(&mut self) {
        self.drive_bounded(self.step_bound);
    }

    /// Steps until nothing happens.
    ///
    /// # Panics
    ///
    /// When something still happens after `steps` steps (a livelock).
    pub fn drive_bounded(&mut self, steps: usize) {
        for _ in 0..steps {
            if !self.step() {
                return;
            }
        }
        panic!("the engine did not settle within {steps} steps (livelock)");
    }

    /// Carries out every queued output; whether there was one.
    fn drain(&mut self) -> bool {
        let mut any = false;
        while let Some(o) = self.engine.poll_output() {
            any = true;
            self.apply(o);
        }
        any
    }

    fn apply(&mut self, o: Output) {
        match o {
            Output::Job(job) => {
                if let Origin::Tcp(id) = job.origin() {
                    assert!(
                        self.conns.contains_key(&id),
                        "a job for a connection the driver does not hold"
                    );
                }
                if let Some(c) = self.worker.take(job, self.now) {
                    self.engine.handle_completion(c, self.now);
                }
            }
            Output::Wake(id) => {
                let conn = self
                    .conns
                    .get(&id)
                    .expect("a wake for a connection the driver does not hold");
                assert!(!conn.is_closed(), "woke a closed connection");
                self.wake.push_back(id);
            }
            Output::Close(id) => {
                self.conns
                    .get_mut(&id)
                    .expect("a close for a connection the driver does not hold")
                    .mark_closed();
                self.closes.push(id);
            }
            Output::Datagram { peer, bytes } => self.udp.sent.push((peer, bytes)),
            Output::ResumeDatagrams => self.resumed_datagrams += 1,
            Output::ResumeAccepting => self.resumed_accepting += 1,
            Output::StopListening => self.stopped_listening += 1,
            Output::Sync => {
                self.syncs_asked += 1;
                self.sync_pending = true;
            }
            Output::Connect { id, addr } => {
                let script = self
                    .peer_scripts
                    .get(&addr)
                    .cloned()
                    .unwrap_or(PeerScript::Refuse);
                assert!(
                    self.peers
                        .insert(id, (addr, MemPeer::new(script.clone())))
                        .is_none(),
                    "a peer connection id used twice"
                );
                match script {
                    PeerScript::Refuse => self.engine.handle_connect_failed(id, self.now),
                    PeerScript::ConnectHang => {}
                    _ => self.engine.handle_connected(id, self.now),
                }
            }
            Output::WakePeer(id) => {
                let (_, peer) = self
                    .peers
                    .get(&id)
                    .expect("a wake for a peer connection the driver does not hold");
                assert!(!peer.is_closed(), "woke a closed peer connection");
                self.peer_wake.push_back(id);
            }
            Output::ClosePeer(id) => {
                self.peers
                    .get_mut(&id)
                    .expect("a close for a peer connection the driver does not hold")
                    .1
                    .mark_closed();
            }
        }
    }

    /// The engine's service loop over peer connection `id`, then every output.
    fn service_peer(&mut self, id: PeerConnId) {
        let Some((_, peer)) = self.peers.get_mut(&id).filter(|(_, p)| !p.is_closed()) else {
            return;
        };
        let _ = self.engine.service_peer(id, peer, self.now);
        self.drain();
    }

    /// Every outbound connection the engine made: its id, address and socket (with
    /// the request it carried), in id order.
    pub fn peer_conns(&self) -> impl Iterator<Item = (PeerConnId, SocketAddr, &MemPeer)> + '_ {
        self.peers.iter().map(|(id, (addr, p))| (*id, *addr, p))
    }

    /// Readiness on peer connection `id` with nothing changed (even after it was
    /// closed, when the engine must ignore it); then drives.
    pub fn wake_peer(&mut self, id: PeerConnId) {
        if let Some((_, peer)) = self.peers.get_mut(&id) {
            if !peer.is_closed() {
                let _ = self.engine.service_peer(id, peer, self.now);
            } else {
                // A late event on a dead id: serviced over a fresh socket, which the
                // engine must not touch.
                let mut stale = MemPeer::new(PeerScript::Answer(vec![0; 64]));
                assert_eq!(
                    self.engine.service_peer(id, &mut stale, self.now),
                    raida_core::Serviced::Closed
                );
                assert!(stale.request().is_empty(), "a write on a dead peer id");
            }
        }
        self.drive();
    }

    /// The engine's service loop over `id`'s socket, then every output.
    fn service(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id).filter(|c| !c.is_closed()) else {
            return;
        };
        conn.now = self.now;
        let _ = self.engine.service(id, conn, self.now);
        self.drain();
    }

    /// Accepts from the listener's backlog as the engine allows; the answers, in order.
    /// Each accepted connection is serviced at the next step (its first bytes may be
    /// there already); each refused one gets its 160, its write side shut, and is
    /// dropped.
    fn accept_pending(&mut self) -> Vec<Accept> {
        let Driver {
            engine,
            listener,
            conns,
            wake,
            refused,
            now,
            ..
        } = self;
        let mut answers = Vec::new();
        let _ = engine.accept_from(listener, *now, |_, mut conn, answer| {
            match answer {
                Accept::Accepted(id) => {
                    conns.insert(id, conn);
                    wake.push_back(id);
                }
                Accept::Refused(bytes) => {
                    conn.now = *now;
                    if let Io::Done(_) = conn.write(&bytes) {
                        conn.shutdown_write();
                    }
                    refused.push(conn);
                }
            }
            answers.push(answer);
        });
        self.drain();
        answers
    }

    // ----- the clock ---------------------------------------------------------------

    /// Time passes by `d`; the engine's timers fire when due; then drives.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.engine.handle_timeout(self.now);
        }
        self.drive();
    }

    /// Time passes to the engine's next deadline, which fires; then drives. False when
    /// the engine has no deadline.
    pub fn advance_to_deadline(&mut self) -> bool {
        let Some(t) = self.engine.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(t);
        self.engine.handle_timeout(self.now);
        self.drive();
        true
    }

    /// Calls the engine's timeout input now, due or not (extra calls are harmless);
    /// then drives.
    pub fn fire_timers(&mut self) {
        self.engine.handle_timeout(self.now);
        self.drive();
    }

    // ----- connections -------------------------------------------------------------

    /// Accepts a connection from 127.0.0.1:40000 and returns its id.
    ///
    /// # Panics
    ///
    /// When the engine refuses it (use [`accept_from`](Self::accept_from)).
    pub fn accept(&mut self) -> ConnId {
        match self.accept_from(DEFAULT_PEER) {
            Accept::Accepted(id) => id,
            Accept::Refused(_) => panic!("connection refused"),
        }
    }

    /// A connection from `peer` arrives and is accepted; the engine's answer.
    pub fn accept_from(&mut self, peer: SocketAddr) -> Accept {
        self.accept_conn(peer, MemConn::new())
    }

    /// Connection `conn` (with whatever its client sent already) arrives from `peer`
    /// and is accepted through the engine's accept loop; the engine's answer, after
    /// driving.
    ///
    /// # Panics
    ///
    /// When the engine is not accepting (paused, or shutting down) or other
    /// connections wait in the backlog.
    pub fn accept_conn(&mut self, peer: SocketAddr, conn: MemConn) -> Accept {
        assert_eq!(
            self.listener.pending(),
            0,
            "connections wait in the backlog"
        );
        self.listener.push(conn, peer);
        let answers = self.accept_pending();
        let [answer] = answers[..] else {
            panic!("the engine did not accept (paused or shutting down)");
        };
        self.drive();
        answer
    }

    /// Connection `id`'s socket.
    ///
    /// # Panics
    ///
    /// When the driver never held `id` (or it was [removed](Self::remove)).
    pub fn conn(&self, id: ConnId) -> &MemConn {
        self.conns.get(&id).expect("a connection the driver holds")
    }

    fn conn_mut(&mut self, id: ConnId) -> &mut MemConn {
        self.conns
            .get_mut(&id)
            .expect("a connection the driver holds")
    }

    /// The bytes the server wrote on `id`.
    pub fn out(&self, id: ConnId) -> &[u8] {
        self.conn(id).outbound()
    }

    /// Forgets closed connection `id` and returns its socket (`None` while it is open
    /// or unknown), so a long run does not keep every socket.
    pub fn remove(&mut self, id: ConnId) -> Option<MemConn> {
        if !self.conns.get(&id)?.is_closed() {
            return None;
        }
        self.conns.remove(&id)
    }

    /// Readiness on `id` with nothing changed: it is serviced; then drives.
    pub fn wake(&mut self, id: ConnId) {
        self.wake.push_back(id);
        self.drive();
    }

    /// Applies `f` to `id`'s socket, then readiness: it is serviced; then drives.
    pub fn with_conn(&mut self, id: ConnId, f: impl FnOnce(&mut MemConn)) {
        f(self.conn_mut(id));
        self.wake(id);
    }

    /// The client sends `bytes` on `id`.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        self.with_conn(id, |c| c.push_inbound(bytes));
    }

    /// The client shuts down its write side on `id` (end of stream after what it sent).
    pub fn hang_up(&mut self, id: ConnId) {
        self.with_conn(id, MemConn::hang_up);
    }

    /// A socket error on `id` reported outside a read or a write (the engine's
    /// `handle_error`).
    pub fn reset(&mut self, id: ConnId) {
        self.engine.handle_error(id, self.now);
        self.drive();
    }

    /// Every later read and write on `id` fails (a reset seen by the socket calls).
    pub fn fail_io(&mut self, id: ConnId) {
        self.with_conn(id, MemConn::fail_io);
    }

    /// `id`'s socket takes at most `room` more bytes of writes (`None`: unlimited).
    pub fn set_write_room(&mut self, id: ConnId, room: Option<usize>) {
        self.with_conn(id, |c| c.set_write_room(room));
    }

    /// Reads on `id` return at most `chunk` bytes each. No readiness: the next input
    /// services it.
    pub fn set_read_chunk(&mut self, id: ConnId, chunk: usize) {
        self.conn_mut(id).set_read_chunk(chunk);
    }

    // ----- datagrams ---------------------------------------------------------------

    /// A datagram from `peer` arrives on the UDP socket; the driver reads it while the
    /// engine wants datagrams (else it waits in the socket); then drives.
    pub fn datagram(&mut self, peer: SocketAddr, bytes: &[u8]) {
        self.udp.push(peer, bytes);
        self.drive();
    }

    /// A datagram from `peer` the driver had read already, handed to the engine
    /// whether it wants datagrams now or not; then drives.
    pub fn datagram_read(&mut self, peer: SocketAddr, bytes: &[u8]) {
        self.engine.handle_datagram(peer, bytes, self.now);
        self.drive();
    }

    /// The responses sent on the UDP socket, in order.
    pub fn datagrams(&self) -> &[(SocketAddr, Vec<u8>)] {
        &self.udp.sent
    }

    // ----- jobs and other inputs ---------------------------------------------------

    /// Jobs are held until completed by hand (`true`) or run at once (`false`).
    pub fn hold_jobs(&mut self, hold: bool) {
        self.worker.policy = if hold {
            JobPolicy::Hold
        } else {
            JobPolicy::RunAtOnce
        };
    }

    /// Jobs held and not completed.
    pub fn held_jobs(&self) -> usize {
        self.worker.held().len()
    }

    /// Runs the oldest held job, hands its completion back and drives; the job's
    /// origin, or `None` when none is held.
    pub fn complete_oldest(&mut self) -> Option<Origin> {
        let job = self.worker.pop_oldest()?;
        Some(self.complete(job))
    }

    /// Runs the newest held job, hands its completion back and drives; the job's
    /// origin, or `None` when none is held.
    pub fn complete_newest(&mut self) -> Option<Origin> {
        let job = self.worker.pop_newest()?;
        Some(self.complete(job))
    }

    /// Completes held jobs, oldest first, until none is held (jobs they lead to
    /// included).
    pub fn complete_all(&mut self) {
        while self.complete_oldest().is_some() {}
    }

    fn complete(&mut self, job: raida_core::Job) -> Origin {
        let origin = job.origin();
        let c = self.worker.run(job, self.now);
        self.engine.handle_completion(c, self.now);
        self.drive();
        origin
    }

    /// Gives the engine `bytes` of randomness if it wants some (as a driver does with
    /// the OS generator's); then drives.
    pub fn feed_random(&mut self, bytes: &[u8]) {
        if self.engine.wants_random() {
            self.engine.handle_random(bytes);
        }
        self.drive();
    }

    /// The engine starts its shutdown now; then drives.
    pub fn shutdown(&mut self) {
        self.engine.handle_shutdown(self.now);
        self.drive();
    }

    // ----- the leak check ----------------------------------------------------------

    /// Whether everything given to the engine was answered or closed: the engine is
    /// idle (its own query: no connection, job, timer, load or output), the worker
    /// holds no job and no connection waits for service.
    pub fn is_drained(&self) -> bool {
        self.engine.is_idle()
            && self.worker.held().is_empty()
            && self.wake.is_empty()
            && self.peers.values().all(|(_, p)| p.is_closed())
    }

    /// The leak check a test ends with: drives, then asserts
    /// [`is_drained`](Self::is_drained).
    ///
    /// # Panics
    ///
    /// When something is left, saying what.
    pub fn assert_no_leaks(&mut self) {
        self.drive();
        assert!(
            self.is_drained(),
            "engine not idle: {} connections, {} in flight, {} waiting, {} held by the worker",
            self.engine.connection_count(),
            self.engine.in_flight(),
            self.engine.waiting(),
            self.worker.held().len()
        );
    }
}
