//! A small in-memory driver around the engine for tests: a virtual clock, simulated
//! sockets (bytes in, bytes out, end of stream, a write capacity), held jobs, and the
//! drain-after-every-input discipline of the engine contract.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use raida_client::{Coin, Faults, Keys, Request};
use raida_core::codec::RANDOM_LEN;
use raida_core::keys::{
    An, Change, CoinId, KeyStore, Lookup, MemoryKeyStore, PageId, Record, StoreError,
};
use raida_core::{
    Accept, CommandRegistry, Completion, ConnId, ConnSocket, Engine, EngineConfig, Io, Job, Output,
    Timestamp,
};

pub const RAIDA_ID: u8 = 7;
pub const COIN_ID: u16 = 6;
pub const AN1: [u8; 16] = *b"0123456789abcdef";

/// The random bytes every job of this harness gets: fixed, so responses are comparable.
pub const RANDOM: [u8; RANDOM_LEN] = [0xA5; RANDOM_LEN];

pub fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.raida_id = RAIDA_ID;
    config.coin_id = COIN_ID;
    config
}

pub fn keys() -> MemoryKeyStore {
    let k = MemoryKeyStore::new();
    k.insert_coin(1, 1, AN1);
    k
}

pub fn peer(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000 + n))
}

/// One simulated server-side socket.
#[derive(Debug, Default)]
pub struct Sock {
    /// Bytes the client sent that the server has not read yet.
    pub inbound: VecDeque<u8>,
    /// The client shut down its write side after `inbound`.
    pub client_eof: bool,
    /// Bytes the server wrote.
    pub outbound: Vec<u8>,
    /// Bytes the socket accepts before it would block (None = unlimited).
    pub write_room: Option<usize>,
    /// Largest read the socket returns at once.
    pub read_chunk: usize,
    /// Bytes the engine read before it shut down its write side.
    pub read_before_shutdown: usize,
    pub read_total: usize,
    pub shutdown: bool,
    pub closed: bool,
    /// The largest buffer the engine lent for one read, and the request bytes left then.
    pub overlend: bool,
}

/// A store whose pages are not in memory until loaded: the coins of [`keys`], each
/// page answering `NotInMemory` until [`KeyStore::load`] brings it in (or fails, for
/// the pages in `failing`). Counts the loads.
#[derive(Debug, Default)]
pub struct LazyStore {
    pub inner: MemoryKeyStore,
    pub loaded: Mutex<BTreeSet<PageId>>,
    pub failing: Mutex<BTreeSet<PageId>>,
    pub loads: AtomicUsize,
}

impl LazyStore {
    pub fn new() -> LazyStore {
        LazyStore {
            inner: keys(),
            ..LazyStore::default()
        }
    }

    fn is_loaded(&self, page: PageId) -> bool {
        self.loaded
            .lock()
            .map(|l| l.contains(&page))
            .unwrap_or(false)
    }
}

impl KeyStore for LazyStore {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        match PageId::of(coin) {
            Some((page, _)) if !self.is_loaded(page) => Lookup::NotInMemory(page),
            _ => self.inner.lookup(coin, now),
        }
    }

    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.inner.locker_an(prefix, now)
    }

    fn load(&self, page: PageId, _now: Timestamp) -> Result<(), StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self
            .failing
            .lock()
            .map(|f| f.contains(&page))
            .unwrap_or(false)
        {
            return Err(StoreError::Unreadable {
                page,
                source: std::io::Error::other("injected read error"),
            });
        }
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.insert(page);
        }
        Ok(())
    }

    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        self.inner.record(coin, now)
    }

    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        self.inner.modify(coins, now, change)
    }
}

/// A [`Sock`] as the engine's service loop sees it; `limit` is the request's length,
/// to catch a buffer lent past it.
struct SockIo<'a> {
    sock: &'a mut Sock,
    limit: Option<usize>,
}

impl ConnSocket for SockIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let s = &mut *self.sock;
        if let Some(limit) = self.limit {
            if !s.shutdown && s.read_total + buf.len() > limit {
                s.overlend = true;
            }
        }
        let n = buf.len().min(s.inbound.len()).min(s.read_chunk);
        if n > 0 {
            for (dst, src) in buf.iter_mut().zip(s.inbound.drain(..n)) {
                *dst = src;
            }
            s.read_total += n;
            Io::Done(n)
        } else if s.client_eof && s.inbound.is_empty() {
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        let s = &mut *self.sock;
        let n = bytes.len().min(s.write_room.unwrap_or(usize::MAX));
        if n == 0 {
            return Io::WouldBlock;
        }
        s.outbound.extend_from_slice(&bytes[..n]);
        if let Some(room) = s.write_room.as_mut() {
            *room -= n;
        }
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        let s = &mut *self.sock;
        assert!(!s.shutdown, "write side shut down twice");
        s.shutdown = true;
        s.read_before_shutdown = s.read_total;
    }
}

#[derive(Debug)]
pub struct Harness {
    pub engine: Engine,
    pub now: Timestamp,
    pub socks: BTreeMap<ConnId, Sock>,
    /// Jobs handed out and not completed yet (when `auto_run` is false).
    pub jobs: VecDeque<Job>,
    pub auto_run: bool,
    pub datagrams: Vec<(SocketAddr, Vec<u8>)>,
    pub closes: Vec<ConnId>,
    pub resumes: usize,
    /// `Output::StopListening`s seen.
    pub stopped_listening: usize,
    /// Request length per connection, to check the engine never lends past it.
    pub request_len: BTreeMap<ConnId, usize>,
    wake: VecDeque<ConnId>,
    scratch: Vec<u8>,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with(config(), CommandRegistry::with_builtins())
    }

    pub fn with(config: EngineConfig, commands: CommandRegistry) -> Harness {
        Self::with_store(config, commands, std::sync::Arc::new(keys()))
    }

    pub fn with_store(
        config: EngineConfig,
        commands: CommandRegistry,
        store: std::sync::Arc<dyn KeyStore>,
    ) -> Harness {
        Harness {
            engine: Engine::new(config, commands, store),
            now: Timestamp::from_micros(1_000_000),
            socks: BTreeMap::new(),
            jobs: VecDeque::new(),
            auto_run: true,
            datagrams: Vec::new(),
            closes: Vec::new(),
            resumes: 0,
            stopped_listening: 0,
            request_len: BTreeMap::new(),
            wake: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        if let Some(t) = self.engine.poll_timeout() {
            if t <= self.now {
                self.engine.handle_timeout(self.now);
                self.settle();
            }
        }
    }

    /// Accepts a connection; returns its id (panics on refusal: use `accept_raw`).
    pub fn accept(&mut self) -> ConnId {
        match self.accept_raw() {
            Accept::Accepted(id) => id,
            Accept::Refused(_) => panic!("connection refused"),
        }
    }

    pub fn accept_raw(&mut self) -> Accept {
        self.accept_from(peer(0))
    }

    /// Accepts a connection from `from` (its id, or the refusal).
    pub fn accept_from(&mut self, from: SocketAddr) -> Accept {
        let a = self.engine.handle_accept(from, self.now);
        if let Accept::Accepted(id) = a {
            self.socks.insert(
                id,
                Sock {
                    read_chunk: usize::MAX,
                    ..Sock::default()
                },
            );
            self.wake.push_back(id);
            self.settle();
        }
        a
    }

    /// The client sends `bytes` (they arrive in the socket; the server reads them).
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        let s = self.socks.get_mut(&id).expect("known socket");
        s.inbound.extend(bytes.iter().copied());
        self.wake.push_back(id);
        self.settle();
    }

    pub fn client_shutdown(&mut self, id: ConnId) {
        self.socks.get_mut(&id).expect("known socket").client_eof = true;
        self.wake.push_back(id);
        self.settle();
    }

    pub fn reset(&mut self, id: ConnId) {
        self.engine.handle_error(id, self.now);
        self.settle();
    }

    pub fn set_write_room(&mut self, id: ConnId, room: Option<usize>) {
        self.socks.get_mut(&id).expect("known socket").write_room = room;
        self.wake.push_back(id);
        self.settle();
    }

    pub fn set_read_chunk(&mut self, id: ConnId, chunk: usize) {
        self.socks.get_mut(&id).expect("known socket").read_chunk = chunk;
    }

    pub fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.engine.handle_datagram(from, bytes, self.now);
        self.settle();
    }

    /// Runs the oldest held job and hands its completion back.
    pub fn complete_one(&mut self) -> bool {
        let Some(job) = self.jobs.pop_front() else {
            return false;
        };
        let c = self.run_job(job);
        self.engine.handle_completion(c, self.now);
        self.settle();
        true
    }

    pub fn complete_all(&mut self) {
        while self.complete_one() {}
    }

    pub fn run_job(&mut self, job: Job) -> Completion {
        job.run(self.now, &RANDOM, &mut self.scratch)
    }

    pub fn out(&self, id: ConnId) -> &[u8] {
        &self.socks[&id].outbound
    }

    pub fn sock(&self, id: ConnId) -> &Sock {
        &self.socks[&id]
    }

    /// Drains the engine's outputs and services woken sockets until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if let Some(o) = self.engine.poll_output() {
                self.apply(o);
                continue;
            }
            let Some(id) = self.wake.pop_front() else {
                return;
            };
            self.service(id);
        }
        panic!("the engine did not settle (livelock)");
    }

    fn apply(&mut self, o: Output) {
        match o {
            Output::Job(job) => {
                if self.auto_run {
                    let c = self.run_job(job);
                    self.engine.handle_completion(c, self.now);
                } else {
                    self.jobs.push_back(job);
                }
            }
            Output::Wake(id) => self.wake.push_back(id),
            Output::Close(id) => {
                let s = self.socks.get_mut(&id).expect("close of a known socket");
                assert!(!s.closed, "connection closed twice");
                s.closed = true;
                self.closes.push(id);
            }
            Output::Datagram { peer, bytes } => self.datagrams.push((peer, bytes)),
            Output::ResumeDatagrams => self.resumes += 1,
            Output::ResumeAccepting => {}
            Output::StopListening => self.stopped_listening += 1,
        }
    }

    /// One service pass on readiness, through the engine's own service loop; then
    /// every output is applied.
    fn service(&mut self, id: ConnId) {
        let limit = self.request_len.get(&id).copied();
        let Some(sock) = self.socks.get_mut(&id).filter(|s| !s.closed) else {
            return;
        };
        let _ = self
            .engine
            .service(id, &mut SockIo { sock, limit }, self.now);
        self.drain_now();
    }

    fn drain_now(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            self.apply(o);
        }
    }

    /// The leak check every test ends with: after draining, the engine holds nothing.
    pub fn assert_drained(&mut self) {
        self.settle();
        assert!(
            self.engine.is_idle(),
            "engine not idle: {} connections, {} in flight, {} waiting",
            self.engine.connection_count(),
            self.engine.in_flight(),
            self.engine.waiting()
        );
    }
}

// ----- requests built from named fields -----------------------------------------------

/// A request's named fields (PROTOCOL.md sections 2 and 3), built into bytes by the
/// one request builder, the client's (`raida_client::Request`, with `Faults` for the
/// fields a well-formed request cannot have).
#[derive(Clone, Debug)]
pub struct Req {
    pub routing: u8,
    pub split: u8,
    pub raida: u8,
    pub shard: u8,
    pub group: u8,
    pub command: u8,
    pub coin_id: u16,
    pub encryption: u8,
    pub echo: [u8; 2],
    pub nonce: [u8; 24],
    /// (denomination, serial) of the key coin for types 1 and 4 (its AN is [`AN1`]).
    pub coin: (i8, u32),
    pub payload: Vec<u8>,
    /// Override of the declared body length.
    pub declared: Option<u16>,
}

impl Req {
    pub fn echo(encryption: u8) -> Req {
        Req {
            routing: 1,
            split: 0,
            raida: RAIDA_ID,
            shard: 0,
            group: 0,
            command: 0,
            coin_id: COIN_ID,
            encryption,
            echo: [0xAB, 0xCD],
            nonce: [0x11; 24],
            coin: (1, 1),
            payload: Vec::new(),
            declared: None,
        }
    }

    pub fn version(encryption: u8) -> Req {
        Req {
            command: 1,
            ..Req::echo(encryption)
        }
    }

    /// The request bytes, as a client builds them.
    pub fn bytes(&self) -> Vec<u8> {
        let coin = Coin::new(self.coin.0, self.coin.1);
        let keys = match self.encryption {
            1 => Keys::Coin { coin, an: AN1 },
            4 => Keys::Coin256 { coin, an: AN1 },
            _ => Keys::None,
        };
        let mut req = Request::new(self.raida, self.group, self.command, keys);
        req.shard = self.shard;
        req.coin_id = self.coin_id;
        req.echo = self.echo;
        req.nonce = self.nonce;
        req.challenge = [0x5C; 12];
        req.payload = self.payload.clone();
        let mut faults = Faults::default();
        faults.routing = (self.routing != 1).then_some(self.routing);
        faults.split_id = (self.split != 0).then_some(self.split);
        faults.encryption_byte = (!matches!(self.encryption, 0 | 1 | 4)).then_some(self.encryption);
        faults.declared_body_len = self.declared;
        req.faults = faults;
        match req.build() {
            Ok(built) => built.bytes().to_vec(),
            Err(e) => panic!("a test request does not build: {e}"),
        }
    }
}

/// The status byte of a response.
pub fn status_of(response: &[u8]) -> u8 {
    response[2]
}
