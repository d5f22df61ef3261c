//! The data world: the unmodified engine of raida-core serving the real commands of
//! raida-commands (detect, pown and their sums) over the real raida-store
//! ([`DiskStore`] over the faulty [`SimDisk`], as [`crate::store_world`] builds it),
//! driven by completions alone: no helper thread, no wall clock. Clients send one
//! request each, as a datagram or over a TCP connection (request and end of stream at
//! once); every worker job, page load and log sync is a scheduled event.
//!
//! What a seed decides ([`DataKnobs`]): the authentication workload (coins on a few
//! pages, clients that present the AN of the version they expect by their arrival time,
//! some wrong, some malformed, every encryption type so that header-time keys park on
//! page loads), a small page cache (pages are evicted, so requests park and store
//! commands run again on a worker), the disk's fault rates (page reads that fail, so
//! loads fail; log syncs that fail, so the store fail-stops), the latency of workers and
//! syncs, crashes at random moments, and how long a server stays down.
//!
//! The driver does what `io-epoll`'s does: it runs every [`Output::Job`] on a worker
//! (an event after a drawn delay; a [`Origin::Load`] job runs `store.load`), and on
//! [`Output::Sync`] it schedules one sync (an event after a drawn latency) that calls
//! [`KeyStore::sync`] and then [`Engine::handle_commit`]. When the store fail-stops
//! the server is restarted after a drawn delay; a crash happens at random moments too,
//! and so does a power cut a few disk calls ahead (inside a load, a log append, a sync
//! or the in-place writes after one).
//! Either way the process is gone: the disk loses every unsynced byte
//! ([`SimDisk::crash`]), a new [`DiskStore`] recovers from the log and a new [`Engine`]
//! serves; requests in flight are never answered (their connections drop), and clients
//! go on sending.
//!
//! The invariants:
//! 1. no answer reveals a write that is not durable: when an answer saying a pown
//!    passed (or a detect that found its AN) reaches its client, the record it shows
//!    must not be a write the store's commit point has not passed;
//! 2. after every recovery, and at the end, the durable records and every answer given
//!    so far are linearizable per coin ([`crate::auth::check`]: a pown that passed
//!    is in its coin's history unless a later one replaced it, a detect that passed
//!    saw an AN the coin held durably); a 252 answer says "maybe", like no answer;
//! 3. a fail-stopped store acknowledges no new write: no answer saying a pown passed
//!    reaches a client for a request that arrived after the failure (the writes the
//!    failed sync was to cover are invariant 1's);
//! 4. liveness: once faults stop and the run drains, the live server holds no answer
//!    and no connection, and every request it read was answered.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raida_client::auth::AuthCommand;
use raida_core::codec::RANDOM_LEN;
use raida_core::keys::{Access, CoinId, KeyStore, PageId, Record, PAGE_BYTES, RECORD_BYTES};
use raida_core::{
    Accept, AcceptStop, Accepting, ConnId, ConnSocket, Engine, EngineConfig, Io, Job, Listener,
    Origin, Output, Timestamp,
};
use raida_store::{DiskStore, StoreConfig};

use crate::auth::{self, Exec, Op, Workload};
use crate::disk::{DiskFaults, SimDisk, LARGE_SEGMENT_BYTES};
use crate::invariants::Violation;
use crate::kernel::{client_peer, udp_cid};
use crate::knobs::Knobs;
use crate::request::ClientRequest;
use crate::rng::{Fnv64, Rng};
use crate::server::{self, COINS, COIN_ID, LOCKER, RAIDA_ID};
use crate::world::START_US;

/// The store under test.
pub type DataStore = DiskStore<Arc<SimDisk>>;

/// Events after which a run counts as livelocked.
const MAX_STEPS: u64 = 1_000_000;
/// Recovery attempts before the world gives up (a violation: the disk is healed then).
const RECOVERY_ATTEMPTS: u32 = 3;

/// Everything a seed decides before the run. Printed first for a failing seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataKnobs {
    /// The seed everything else comes from.
    pub seed: u64,
    /// Clients (one request each).
    pub clients: u32,
    /// Per mille of clients that connect over TCP (the rest send a datagram).
    pub tcp_pm: u32,
    /// Clients send within this window, microseconds.
    pub arrival_window_us: u64,
    /// Solo coins of the workload.
    pub auth_coins: usize,
    /// Pages per denomination the workload's coins are drawn from.
    pub auth_pages: u64,
    /// Versions the clients' ANs move through over the window.
    pub auth_versions: u32,
    /// Per mille of entries presenting a wrong AN.
    pub auth_wrong_pm: u32,
    /// Per mille of malformed payloads.
    pub auth_malformed_pm: u32,
    /// Per mille (times 3) of header faults.
    pub invalid_pm: u32,
    /// The workload has a group of coins the sums move together.
    pub auth_group: bool,
    /// `StoreConfig::cache_pages` (small: pages are evicted).
    pub cache_pages: usize,
    /// `StoreConfig::segment_bytes` (at most [`LARGE_SEGMENT_BYTES`]).
    pub segment_bytes: u64,
    /// The disk's fault rates.
    pub faults: DiskFaults,
    /// `EngineConfig::mod_queue_size`.
    pub mod_queue_size: usize,
    /// The engine gets random bytes, so store commands run on its thread (from memory,
    /// again on a worker when a page is not there).
    pub inline: bool,
    /// A worker's job takes 0..=this many microseconds.
    pub worker_delay_max_us: u64,
    /// A log sync takes 1..=this many microseconds.
    pub sync_latency_max_us: u64,
    /// Crashes at random moments of the window.
    pub crashes: u32,
    /// Power cuts at random moments of the window, each a drawn number of disk calls
    /// later (inside a load, an append, a sync or the in-place writes after one).
    pub power_cuts: u32,
    /// A server is down for 0..=this many microseconds before it restarts.
    pub restart_delay_max_us: u64,
    /// The store's background step runs this often (0: never).
    pub maintain_every_us: u64,
}

impl DataKnobs {
    /// The world of `seed`.
    pub fn from_seed(seed: u64) -> DataKnobs {
        let mut r = Rng::new(seed).fork(0xDA7A);
        let mut faults = DiskFaults::draw(&mut r);
        // Reads fail less often than in the store world: a request whose key page
        // cannot be read is answered 252, and the workload needs answers.
        faults.read_error_pm /= 2;
        DataKnobs {
            seed,
            clients: r.range(20, 160) as u32,
            tcp_pm: r.pick(&[0, 300, 700, 1000]).unwrap_or(300),
            arrival_window_us: r.pick(&[20_000, 100_000, 400_000]).unwrap_or(100_000),
            auth_coins: r.range_usize(1, 6),
            auth_pages: r.range(1, 3),
            auth_versions: r.range(1, 12) as u32,
            auth_wrong_pm: r.range(0, 250) as u32,
            auth_malformed_pm: r.range(0, 100) as u32,
            invalid_pm: r.range(0, 150) as u32,
            auth_group: r.chance(600),
            // At least two pages: a type-5 request's two key pages on different pages
            // must fit at once (with one page, loading each evicts the other, forever).
            cache_pages: r.range_usize(2, 4),
            segment_bytes: r
                .pick(&[200, 1000, 4096, LARGE_SEGMENT_BYTES])
                .unwrap_or(LARGE_SEGMENT_BYTES),
            faults,
            mod_queue_size: r.pick(&[1, 2, 8, 64]).unwrap_or(8),
            inline: r.chance(700),
            worker_delay_max_us: r.pick(&[0, 200, 2_000, 20_000]).unwrap_or(200),
            sync_latency_max_us: r.pick(&[1, 500, 5_000, 30_000]).unwrap_or(500),
            crashes: r.range(0, 3) as u32,
            power_cuts: r.range(0, 2) as u32,
            restart_delay_max_us: r.pick(&[0, 1_000, 20_000]).unwrap_or(1_000),
            maintain_every_us: r.pick(&[0, 5_000, 50_000]).unwrap_or(0),
        }
    }

    /// The engine world's knobs that the authentication workload reads.
    fn auth_knobs(&self) -> Knobs {
        let mut k = Knobs::quiet(self.seed);
        k.auth_pm = 1000;
        k.auth_coins = self.auth_coins;
        k.auth_pages = self.auth_pages;
        k.auth_versions = self.auth_versions;
        k.auth_wrong_pm = self.auth_wrong_pm;
        k.auth_malformed_pm = self.auth_malformed_pm;
        k.invalid_pm = self.invalid_pm;
        k.auth_group = self.auth_group;
        k
    }
}

/// What one run did (summed over a swarm).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Runs summed.
    pub seeds: u64,
    /// Requests the servers read.
    pub requests: u64,
    /// Answers that reached their client.
    pub answered: u64,
    /// Of those, 252 (a store error, a failed sync, an unreadable page).
    pub internal: u64,
    /// Requests never answered (their server crashed or restarted).
    pub lost: u64,
    /// Requests parked on a page load (`Counters::parked`).
    pub parked: u64,
    /// Page loads that failed.
    pub loads_failed: u64,
    /// Store commands that ran on the engine's thread, and those that ran again on a
    /// worker because a page was not in memory.
    pub store_inline: u64,
    /// See `store_inline`.
    pub store_retries: u64,
    /// Syncs that made writes durable (commits completed).
    pub syncs: u64,
    /// Syncs that failed (the store fail-stopped).
    pub failed_syncs: u64,
    /// Answers held until their commit (`Counters::commit_waits`).
    pub held: u64,
    /// Held answers turned into 252 by a failed sync.
    pub commit_failures: u64,
    /// Crashes and restarts the servers recovered from during the run (the last crash
    /// and recovery, after it, not counted).
    pub recoveries: u64,
    /// Of those, restarts after a fail-stop.
    pub fail_stops: u64,
    /// Pown entries that passed, and detect entries (the final model's count).
    pub writes_passed: u64,
    /// See `writes_passed`.
    pub reads_passed: u64,
    /// Runs in which each of parked, loads_failed, syncs, held and recoveries was not
    /// zero.
    pub seeds_with: [u64; 5],
    /// Simulated time at the end, microseconds.
    pub end_us: u64,
}

impl DataStats {
    /// Adds another run's numbers.
    pub fn add(&mut self, o: &DataStats) {
        self.seeds += o.seeds;
        self.requests += o.requests;
        self.answered += o.answered;
        self.internal += o.internal;
        self.lost += o.lost;
        self.parked += o.parked;
        self.loads_failed += o.loads_failed;
        self.store_inline += o.store_inline;
        self.store_retries += o.store_retries;
        self.syncs += o.syncs;
        self.failed_syncs += o.failed_syncs;
        self.held += o.held;
        self.commit_failures += o.commit_failures;
        self.recoveries += o.recoveries;
        self.fail_stops += o.fail_stops;
        self.writes_passed += o.writes_passed;
        self.reads_passed += o.reads_passed;
        for (a, b) in self.seeds_with.iter_mut().zip(o.seeds_with) {
            *a += b;
        }
        self.end_us = self.end_us.max(o.end_us);
    }
}

/// A simulated event.
#[derive(Clone, Copy, Debug)]
enum Ev {
    /// Client `cid` sends its request.
    Send(u32),
    /// Worker job `jid` of server incarnation `epoch` is done.
    Worker(u64, u64),
    /// The log sync asked by server incarnation `epoch` is done.
    Sync(u64),
    /// The store's background step, in incarnation `epoch`.
    Maintain(u64),
    /// The machine crashes (power loss).
    Crash,
    /// The power goes this many disk calls from now.
    PowerCut(u32),
    /// The server (down, or fail-stopped) starts again.
    Restart,
    /// Faults and crashes stop.
    Heal,
}

/// One client: its request and what it asks.
struct Client {
    request: ClientRequest,
    op: Op,
    peer: SocketAddr,
    /// It connects over TCP (else it sends a datagram).
    tcp: bool,
    /// Its execution, once a server read it.
    exec: Option<usize>,
    /// It got its answer.
    answered: bool,
}

/// One TCP connection: the client's request and end of stream, what the server
/// wrote, and whether it shut down its write side or closed.
struct TcpConn {
    cid: u32,
    peer: SocketAddr,
    /// The request (the client half-closes right after it).
    c2s: Vec<u8>,
    /// Bytes of it the server read.
    read: usize,
    /// What the server wrote.
    s2c: Vec<u8>,
    /// The server shut down its write side (its answer is whole).
    shut: bool,
    /// The server closed it, or its process is gone.
    closed: bool,
}

/// One connection as the engine's service loop sees it: the request, then the end of
/// stream; writes always fit.
struct TcpIo<'a> {
    conn: &'a mut TcpConn,
}

impl ConnSocket for TcpIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let c = &mut *self.conn;
        let n = buf.len().min(c.c2s.len() - c.read);
        if n == 0 {
            return Io::Eof;
        }
        buf[..n].copy_from_slice(&c.c2s[c.read..c.read + n]);
        c.read += n;
        Io::Done(n)
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        self.conn.s2c.extend_from_slice(bytes);
        Io::Done(bytes.len())
    }

    fn shutdown_write(&mut self) {
        self.conn.shut = true;
    }
}

/// The listener's accept queue as the engine's accept loop sees it.
struct Backlog<'a> {
    queue: &'a mut VecDeque<usize>,
    conns: &'a [TcpConn],
}

impl Listener for Backlog<'_> {
    type Socket = usize;

    fn accept(&mut self) -> Accepting<usize> {
        match self.queue.pop_front() {
            Some(sid) => Accepting::Conn(sid, self.conns[sid].peer),
            None => Accepting::WouldBlock,
        }
    }
}

/// One server process: its store and engine and the jobs its workers hold.
struct Server {
    store: Arc<DataStore>,
    engine: Engine,
    jobs: BTreeMap<u64, Job>,
    /// A sync event is scheduled.
    syncing: bool,
    /// The store fail-stopped (a restart is scheduled) when the world's order of
    /// observations stood at this tick.
    failed: Option<u64>,
}

/// The data world of one seed (see the module documentation).
pub struct DataWorld {
    /// What the seed decided.
    pub knobs: DataKnobs,
    rng: Rng,
    disk: Arc<SimDisk>,
    config: StoreConfig,
    workload: Workload,
    clients: Vec<Client>,
    execs: Vec<Exec>,
    /// The incarnation each execution was read by.
    exec_epoch: Vec<u64>,
    server: Option<Server>,
    /// The server's incarnation: events of an earlier one are stale.
    epoch: u64,
    next_job: u64,
    tick: u64,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    udp_queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The engine wants datagrams read (again).
    udp_wake: bool,
    /// Every TCP connection ever made, by socket number.
    conns: Vec<TcpConn>,
    /// The listener's accept queue.
    backlog: VecDeque<usize>,
    /// The live server's connections.
    by_conn: BTreeMap<ConnId, usize>,
    /// Sockets to service, in order.
    wakes: VecDeque<usize>,
    healed: bool,
    restart_scheduled: bool,
    /// The last crash and recovery, after the run (not counted among the recoveries).
    ending: bool,
    steps: u64,
    scratch: Vec<u8>,
    tracing: bool,
    hash: Fnv64,
    /// What the run did.
    pub stats: DataStats,
    violation: Option<Violation>,
}

impl std::fmt::Debug for DataWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataWorld")
            .field("seed", &self.knobs.seed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn put_record(bytes: &mut [u8], index: usize, r: Record) {
    let at = index * RECORD_BYTES;
    bytes[at..at + 16].copy_from_slice(&r.an);
    bytes[at + 16] = r.status;
}

/// Whether `op` writes (pown, pown_sum).
fn writes(op: &Op) -> bool {
    matches!(op.command, AuthCommand::Pown | AuthCommand::PownSum)
}

impl DataWorld {
    /// The world of `knobs`; with `tracing`, every step is logged and hashed.
    pub fn new(knobs: DataKnobs, tracing: bool) -> DataWorld {
        let root = Rng::new(knobs.seed);
        let auth_knobs = knobs.auth_knobs();
        let mut workload = Workload::from_knobs(&auth_knobs);
        // The absent coin: on a page no file holds (the store's pages are whole files,
        // so any coin on a page with a file is known).
        if let (Some(first), Some(absent)) = (workload.coins.first(), workload.unknown.first_mut())
        {
            let number = knobs.auth_pages as u32 + 5;
            *absent = CoinId::new(first.coin.denomination, number * 1024 + 7);
        }
        // Page files: the workload's coins at their first AN (status 0) and the keys
        // the encrypted requests name; every other record random.
        let mut content = root.fork(3);
        let mut pages: BTreeMap<PageId, Vec<u8>> = BTreeMap::new();
        let mut page_of = |coin: CoinId, rec: Record, pages: &mut BTreeMap<PageId, Vec<u8>>| {
            if let Some((page, index)) = PageId::of(coin) {
                let bytes = pages.entry(page).or_insert_with(|| {
                    let mut b = vec![0u8; PAGE_BYTES];
                    content.fill(&mut b);
                    b
                });
                put_record(bytes, index, rec);
            }
        };
        for (d, s, an) in COINS {
            page_of(CoinId::new(d, s), Record { an, status: 0 }, &mut pages);
        }
        for c in workload.coins.iter().chain(&workload.group) {
            let rec = Record {
                an: c.chain[0],
                status: 0,
            };
            page_of(c.coin, rec, &mut pages);
        }
        let disk = Arc::new(SimDisk::new(root.fork(2), knobs.faults.clone()));
        for (page, bytes) in &pages {
            disk.put_page(*page, bytes);
        }
        let mut config = StoreConfig::new(knobs.cache_pages, Duration::from_secs(1));
        config.segment_bytes = knobs.segment_bytes;
        // The clients: one request each, at a drawn moment of the window.
        let mut gen = root.fork(4);
        let mut clients = Vec::new();
        let mut sends = Vec::new();
        for cid in 0..knobs.clients {
            let at = gen.below(knobs.arrival_window_us + 1);
            let progress = at * 1000 / knobs.arrival_window_us.max(1);
            let (request, op) = auth::generate(&mut gen, &workload, &auth_knobs, progress);
            let tcp = gen.chance(knobs.tcp_pm);
            clients.push(Client {
                request: ClientRequest::new(request),
                op,
                peer: client_peer(cid + 1, cid, tcp),
                tcp,
                exec: None,
                answered: false,
            });
            sends.push((START_US + at, cid));
        }
        let mut w = DataWorld {
            rng: root.fork(1),
            disk,
            config,
            workload,
            clients,
            execs: Vec::new(),
            exec_epoch: Vec::new(),
            server: None,
            epoch: 0,
            next_job: 0,
            tick: 0,
            now: START_US,
            seq: 0,
            events: BTreeMap::new(),
            udp_queue: VecDeque::new(),
            udp_wake: false,
            conns: Vec::new(),
            backlog: VecDeque::new(),
            by_conn: BTreeMap::new(),
            wakes: VecDeque::new(),
            healed: false,
            restart_scheduled: false,
            ending: false,
            steps: 0,
            scratch: Vec::new(),
            tracing,
            hash: Fnv64::default(),
            stats: DataStats {
                seeds: 1,
                ..DataStats::default()
            },
            violation: None,
            knobs,
        };
        for (at, cid) in sends {
            w.schedule(at, Ev::Send(cid));
        }
        for _ in 0..w.knobs.crashes {
            let at = START_US + w.rng.below(w.knobs.arrival_window_us + 1);
            w.schedule(at, Ev::Crash);
        }
        for _ in 0..w.knobs.power_cuts {
            let at = START_US + w.rng.below(w.knobs.arrival_window_us + 1);
            let calls = w.rng.below(12) as u32;
            w.schedule(at, Ev::PowerCut(calls));
        }
        let end = START_US + w.knobs.arrival_window_us + 1;
        w.schedule(end, Ev::Heal);
        w
    }

    /// The disk under the store.
    pub fn disk(&self) -> &Arc<SimDisk> {
        &self.disk
    }

    /// The hash of the whole trace so far (with tracing only).
    pub fn trace_hash(&self) -> u64 {
        self.hash.finish()
    }

    fn log(&mut self, msg: impl FnOnce() -> String) {
        if !self.tracing {
            return;
        }
        let line = format!("t={} e{} {}", self.now, self.epoch, msg());
        self.hash.update(line.as_bytes());
        self.hash.update(b"\n");
        tracing::info!("{line}");
    }

    fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.log(|| format!("VIOLATION {what}"));
            self.violation = Some(Violation { at: self.now, what });
        }
    }

    fn ts(&self) -> Timestamp {
        Timestamp::from_micros(self.now)
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    // ----- running --------------------------------------------------------------------

    /// Runs the seed to the end: the first start, every event, then (faults stopped,
    /// everything drained) the liveness checks and a last crash and recovery, judged.
    pub fn run_all(&mut self) -> Result<(), Violation> {
        self.start_server();
        while self.violation.is_none() {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                self.violate(format!("livelock: more than {MAX_STEPS} events"));
                break;
            }
            let timer = self
                .server
                .as_ref()
                .and_then(|s| s.engine.poll_timeout())
                .map(Timestamp::as_micros);
            let ev_t = self.events.first_key_value().map(|(k, _)| k.0);
            match (timer, ev_t) {
                (None, None) => break,
                (Some(t), e) if e.map_or(true, |e| t <= e) => {
                    self.now = self.now.max(t);
                    let now = self.ts();
                    if let Some(s) = self.server.as_mut() {
                        s.engine.handle_timeout(now);
                    }
                    self.settle();
                }
                _ => {
                    let Some(((t, _), ev)) = self.events.pop_first() else {
                        break;
                    };
                    self.now = self.now.max(t);
                    self.event(ev);
                }
            }
            self.after_event();
        }
        if self.violation.is_none() {
            self.final_checks();
        }
        self.stats.end_us = self.now;
        let s = &mut self.stats;
        s.seeds_with = [
            u64::from(s.parked > 0),
            u64::from(s.loads_failed > 0),
            u64::from(s.syncs > 0),
            u64::from(s.held > 0),
            u64::from(s.recoveries > 0),
        ];
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Send(cid) => self.send(cid),
            Ev::Worker(epoch, jid) if epoch == self.epoch => self.complete(jid),
            Ev::Sync(epoch) if epoch == self.epoch => self.sync(),
            Ev::Maintain(epoch) if epoch == self.epoch => self.maintain(),
            Ev::Worker(..) | Ev::Sync(_) | Ev::Maintain(_) => {}
            Ev::Crash => {
                if !self.healed && self.server.is_some() {
                    self.log(|| "crash (power loss)".into());
                    self.stop_server();
                    self.schedule_restart();
                }
            }
            Ev::PowerCut(calls) => {
                if !self.healed && self.server.is_some() {
                    self.log(|| format!("the power goes after {calls} more disk call(s)"));
                    self.disk.cut_power_after(calls);
                }
            }
            Ev::Restart => {
                self.restart_scheduled = false;
                if self.server.is_some() {
                    self.log(|| "restart of the fail-stopped server".into());
                    self.stats.fail_stops += 1;
                    self.stop_server();
                }
                self.start_server();
            }
            Ev::Heal => {
                self.healed = true;
                self.disk.set_faults(false);
                self.disk.cancel_power_cut();
                self.log(|| "heal: faults and crashes stop".into());
            }
        }
    }

    /// After every event: a store that fail-stopped is noticed (the server restarts
    /// after a drawn delay); the disk's slow-read latency is not modelled here.
    fn after_event(&mut self) {
        let _ = self.disk.take_latency_us();
        if self.server.is_some() && self.disk.power_lost() {
            self.log(|| "the power went: crash".into());
            self.stop_server();
            self.schedule_restart();
            return;
        }
        let Some(s) = self.server.as_mut() else {
            return;
        };
        if s.failed.is_none() && s.store.is_failed() {
            s.failed = Some(self.tick);
            self.log(|| "the store fail-stopped".into());
            self.schedule_restart();
        }
    }

    fn schedule_restart(&mut self) {
        if self.restart_scheduled {
            return;
        }
        self.restart_scheduled = true;
        let d = self.rng.range(0, self.knobs.restart_delay_max_us);
        self.schedule(self.now + d, Ev::Restart);
    }

    // ----- the server's life ----------------------------------------------------------

    /// The process is gone: its engine, its workers' jobs and the datagrams queued for
    /// it with it; the disk loses every unsynced byte.
    fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            self.take_counters(&s.engine);
        }
        self.epoch += 1;
        self.udp_queue.clear();
        // The kernel closes every socket the process held: its clients see the
        // connection drop.
        self.backlog.clear();
        self.wakes.clear();
        for (_, sid) in std::mem::take(&mut self.by_conn) {
            self.conns[sid].closed = true;
        }
        self.disk.crash();
    }

    fn take_counters(&mut self, engine: &Engine) {
        let c = engine.counters();
        self.stats.parked += c.parked;
        self.stats.loads_failed += c.page_load_failures;
        self.stats.held += c.commit_waits;
        self.stats.commit_failures += c.commit_failures;
        self.stats.store_inline += c.store_inline;
        self.stats.store_retries += c.store_retries;
    }

    /// Starts a server: recovery from the log (on a healed disk: recovery under faults
    /// is the store world's), the recovered records judged against every answer given
    /// so far, a new engine.
    fn start_server(&mut self) {
        self.disk.set_faults(false);
        self.disk.cancel_power_cut();
        let mut opened = None;
        for attempt in 0..RECOVERY_ATTEMPTS {
            match DiskStore::with_disk(Arc::clone(&self.disk), self.config.clone()) {
                Ok(store) => {
                    opened = Some(store);
                    break;
                }
                Err(e) => {
                    let text = e.to_string();
                    self.log(|| format!("recovery {attempt} failed: {text}"));
                    self.disk.crash();
                }
            }
        }
        let Some(store) = opened else {
            return self.violate("recovery fails on a healed disk".into());
        };
        let store = Arc::new(store);
        store.insert_locker(LOCKER);
        let r = store.recovery().clone();
        self.log(|| format!("recovered: {r:?}"));
        if self.epoch > 0 && !self.ending {
            self.stats.recoveries += 1;
        }
        self.judge_durable(&store);
        if !self.healed {
            self.disk.set_faults(true);
        }
        let mut config = EngineConfig::default();
        config.raida_id = RAIDA_ID;
        config.coin_id = COIN_ID;
        config.mod_queue_size = self.knobs.mod_queue_size;
        config.inline_crypto_max_body = if self.knobs.inline { 256 } else { 0 };
        // No connection times out while it waits for a load or a commit: every request
        // read is answered (liveness is checked), unless its process goes.
        config.socket_timeout = Duration::from_secs(600);
        let engine = Engine::new(
            config,
            server::commands(),
            Arc::clone(&store) as Arc<dyn KeyStore>,
        );
        self.server = Some(Server {
            store,
            engine,
            jobs: BTreeMap::new(),
            syncing: false,
            failed: None,
        });
        if self.knobs.maintain_every_us > 0 {
            let at = self.now + self.knobs.maintain_every_us;
            self.schedule(at, Ev::Maintain(self.epoch));
        }
        self.settle();
    }

    /// (2) What the recovered store holds, with every answer given so far, is
    /// linearizable per coin; an answer that showed a write the crash lost breaks it.
    fn judge_durable(&mut self, store: &DataStore) {
        let now = self.ts();
        let mut held: BTreeMap<CoinId, Record> = BTreeMap::new();
        let coins: Vec<CoinId> = self
            .workload
            .coins
            .iter()
            .chain(&self.workload.group)
            .map(|c| c.coin)
            .collect();
        for coin in coins {
            match store.record(coin, now) {
                Ok(Some(r)) => {
                    held.insert(coin, r);
                }
                Ok(None) => {}
                Err(e) => {
                    return self.violate(format!(
                        "after recovery coin {coin:?} cannot be read on a healed disk: {e}"
                    ))
                }
            }
        }
        let clients = &self.clients;
        let ops = |cid: u32| clients.get(cid as usize).map(|c| c.op.clone());
        let record = |c: CoinId| held.get(&c).copied();
        match auth::check(&self.workload, &ops, &self.execs, &record) {
            Ok(checked) => {
                self.stats.writes_passed = checked.writes_passed;
                self.stats.reads_passed = checked.reads_passed;
            }
            Err(what) => self.violate(format!("after recovery {}: {what}", self.epoch)),
        }
    }

    /// The end: the live server holds nothing and answered everything it read; then a
    /// last crash and recovery, judged.
    fn final_checks(&mut self) {
        if let Some(s) = &self.server {
            let (held, in_flight) = (s.engine.waiting_on_commit(), s.engine.in_flight());
            let open = s.engine.connection_count();
            if held > 0 || in_flight > 0 || !s.jobs.is_empty() || open > 0 {
                return self.violate(format!(
                    "after the drain the server still holds {held} answer(s) for a commit, \
                     {in_flight} request(s) in flight and {open} connection(s)"
                ));
            }
        }
        let unanswered = (0..self.execs.len())
            .find(|&i| self.exec_epoch[i] == self.epoch && self.execs[i].answered.is_none())
            .map(|i| self.execs[i].cid)
            .filter(|&cid| !self.clients[cid as usize].answered);
        if let Some(cid) = unanswered {
            return self.violate(format!(
                "client {cid}'s request was read by the live server and never answered"
            ));
        }
        for c in &self.clients {
            if c.exec.is_some() && !c.answered {
                self.stats.lost += 1;
            }
        }
        self.log(|| "end: crash".into());
        self.ending = true;
        self.stop_server();
        self.start_server();
        if let Some(s) = self.server.take() {
            self.take_counters(&s.engine);
        }
    }

    // ----- the driver -----------------------------------------------------------------

    /// Drains the engine's outputs (and feeds it random bytes when it wants them).
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if self.violation.is_some() {
                return;
            }
            self.feed_random();
            let Some(s) = self.server.as_mut() else {
                return;
            };
            if let Some(o) = s.engine.poll_output() {
                self.apply(o);
            } else if let Some(sid) = self.wakes.pop_front() {
                self.service(sid);
            } else if std::mem::take(&mut self.udp_wake) {
                self.read_udp();
            } else {
                return;
            }
        }
        self.violate("livelock: the driver never settled".into());
    }

    /// Random bytes for the engine when it wants them (from the seed: the driver's OS
    /// generator), so store commands can run on its thread.
    fn feed_random(&mut self) {
        if let Some(s) = self.server.as_mut() {
            if s.engine.wants_random() {
                let mut bytes = vec![0u8; 1024];
                self.rng.fill(&mut bytes);
                s.engine.handle_random(&bytes);
            }
        }
    }

    fn apply(&mut self, o: Output) {
        let (epoch, now) = (self.epoch, self.now);
        match o {
            Output::Job(job) => {
                let jid = self.next_job;
                self.next_job += 1;
                let origin = job.origin();
                let Some(s) = self.server.as_mut() else {
                    return;
                };
                s.jobs.insert(jid, job);
                // A page load takes time (a disk read): loads that evict each other
                // while written pages are held cannot spin at one instant.
                let least = u64::from(matches!(origin, Origin::Load(_)));
                let d = self
                    .rng
                    .range(least, self.knobs.worker_delay_max_us.max(least));
                self.schedule(now + d, Ev::Worker(epoch, jid));
                self.log(|| format!("job {jid} ({origin:?}) out, done in {d}us"));
            }
            Output::Sync => {
                let Some(s) = self.server.as_mut() else {
                    return;
                };
                if !s.syncing {
                    s.syncing = true;
                    let d = self.rng.range(1, self.knobs.sync_latency_max_us);
                    self.schedule(now + d, Ev::Sync(epoch));
                    self.log(|| format!("sync asked, done in {d}us"));
                }
            }
            Output::Datagram { peer, bytes } => self.answer(peer, &bytes),
            Output::ResumeDatagrams => self.udp_wake = true,
            Output::Connect { id, .. } => {
                let ts = self.ts();
                if let Some(s) = self.server.as_mut() {
                    s.engine.handle_connect_failed(id, ts);
                }
            }
            Output::Wake(id) => match self.by_conn.get(&id) {
                Some(&sid) => self.wakes.push_back(sid),
                None => self.violate(format!("a wake for {id:?}, no live connection")),
            },
            Output::Close(id) => match self.by_conn.remove(&id) {
                Some(sid) => {
                    self.conns[sid].closed = true;
                    let cid = self.conns[sid].cid;
                    self.log(|| format!("client {cid}: the server closes the connection"));
                }
                None => self.violate(format!("a close of {id:?}, no live connection")),
            },
            Output::WakePeer(_)
            | Output::ClosePeer(_)
            | Output::ResumeAccepting
            | Output::StopListening => {}
        }
    }

    /// Client `cid` sends its datagram (dropped while no server runs), or connects
    /// and sends its request and its end of stream at once (refused while no server
    /// runs).
    fn send(&mut self, cid: u32) {
        let (peer, bytes, tcp) = {
            let c = &self.clients[cid as usize];
            (c.peer, c.request.bytes().to_vec(), c.tcp)
        };
        if self.server.is_none() {
            self.log(|| format!("client {cid}: sends, no server (dropped)"));
            return;
        }
        if tcp {
            self.log(|| format!("client {cid}: connects, sends {} bytes", bytes.len()));
            self.backlog.push_back(self.conns.len());
            self.conns.push(TcpConn {
                cid,
                peer,
                c2s: bytes,
                read: 0,
                s2c: Vec::new(),
                shut: false,
                closed: false,
            });
            self.accept_loop();
            return self.settle();
        }
        self.log(|| format!("client {cid}: sends {} bytes", bytes.len()));
        self.udp_queue.push_back((peer, bytes));
        self.udp_wake = true;
        self.settle();
    }

    /// The driver reads the UDP socket while the engine wants datagrams, applying the
    /// engine's outputs after each ([`DataWorld::settle`] calls it when the engine asks
    /// for datagrams again, so it never calls itself).
    fn read_udp(&mut self) {
        while self.violation.is_none() {
            self.feed_random();
            let Some(s) = self.server.as_mut() else {
                return;
            };
            if !s.engine.wants_datagrams() {
                return;
            }
            let Some((peer, bytes)) = self.udp_queue.pop_front() else {
                return;
            };
            let now = Timestamp::from_micros(self.now);
            let Some(cid) = udp_cid(peer) else {
                return self.violate(format!("a datagram from {peer}, no client's"));
            };
            let arrived = self.next_tick();
            self.clients[cid as usize].exec = Some(self.execs.len());
            self.execs.push(Exec {
                cid,
                arrived,
                answered: None,
            });
            self.exec_epoch.push(self.epoch);
            self.stats.requests += 1;
            if let Some(s) = self.server.as_mut() {
                // As the driver does for each batch it reads (a batch of one here): the
                // store's hint runs under the world's faults and must change nothing.
                s.engine.prefetch_datagrams([&bytes[..]]);
                s.engine.handle_datagram(peer, &bytes, now);
            }
            while let Some(o) = self.server.as_mut().and_then(|s| s.engine.poll_output()) {
                self.apply(o);
            }
        }
    }

    /// Worker job `jid` runs now (a page load runs `store.load`).
    fn complete(&mut self, jid: u64) {
        let now = self.ts();
        let mut random = [0u8; RANDOM_LEN];
        self.rng.fill(&mut random);
        let Some(s) = self.server.as_mut() else {
            return;
        };
        let Some(job) = s.jobs.remove(&jid) else {
            return;
        };
        let completion = job.run(now, &random, &mut self.scratch);
        let (origin, status) = (completion.origin(), completion.status());
        s.engine.handle_completion(completion, now);
        self.log(|| format!("job {jid} ({origin:?}) done: {}", status.0));
        self.settle();
    }

    /// The sync the engine asked for: one group commit, then every held answer it
    /// lets go.
    fn sync(&mut self) {
        let now = self.ts();
        let Some(s) = self.server.as_mut() else {
            return;
        };
        s.syncing = false;
        s.store.sync();
        let point = s.store.commit_point();
        // From here on the store acknowledges no new write (invariant 3; the held
        // answers this sync was to cover become 252, invariant 1).
        let stopped = point.failed && s.failed.is_none();
        if stopped {
            s.failed = Some(self.tick);
        }
        if stopped {
            self.stats.failed_syncs += 1;
        } else if !point.failed {
            self.stats.syncs += 1;
        }
        s.engine.handle_commit(now);
        self.log(|| format!("sync done: {point:?}"));
        if stopped {
            self.log(|| "the store fail-stopped".into());
            self.schedule_restart();
        }
        self.settle();
    }

    fn maintain(&mut self) {
        let now = self.ts();
        let Some(s) = self.server.as_ref() else {
            return;
        };
        let refreshed = s.store.maintain(now);
        self.log(|| format!("maintain: {refreshed:?}"));
        if !self.healed {
            let at = self.now + self.knobs.maintain_every_us;
            self.schedule(at, Ev::Maintain(self.epoch));
        }
        self.settle();
    }

    // ----- TCP -------------------------------------------------------------------------

    /// The driver's accept loop: the engine's own, over the listener's queue; each
    /// connection accepted is serviced at once (its bytes are there already).
    fn accept_loop(&mut self) {
        loop {
            let now = self.ts();
            let Some(s) = self.server.as_mut() else {
                return;
            };
            let mut listener = Backlog {
                queue: &mut self.backlog,
                conns: &self.conns,
            };
            let mut answers = Vec::new();
            let stop = s.engine.accept_from(&mut listener, now, |_, sid, answer| {
                answers.push((sid, answer))
            });
            for (sid, answer) in answers {
                let cid = self.conns[sid].cid;
                match answer {
                    Accept::Accepted(id) => {
                        self.by_conn.insert(id, sid);
                        self.wakes.push_back(sid);
                    }
                    Accept::Refused(bytes) => {
                        self.conns[sid].closed = true;
                        self.log(|| format!("client {cid}: refused"));
                        self.answer_client(cid, &bytes);
                    }
                }
            }
            if stop != AcceptStop::Budget {
                return;
            }
        }
    }

    /// Services socket `sid` like a driver on readiness; an execution once the engine
    /// has read the whole request, an answer once it shut down its write side.
    fn service(&mut self, sid: usize) {
        let now = self.ts();
        let Some(s) = self.server.as_mut() else {
            return;
        };
        let Some(id) = self
            .by_conn
            .iter()
            .find(|(_, &v)| v == sid)
            .map(|(id, _)| *id)
        else {
            return;
        };
        let conn = &mut self.conns[sid];
        let _ = s.engine.service(id, &mut TcpIo { conn }, now);
        let conn = &self.conns[sid];
        let (cid, whole, shut) = (conn.cid, conn.read == conn.c2s.len(), conn.shut);
        if whole && self.clients[cid as usize].exec.is_none() {
            let arrived = self.next_tick();
            self.clients[cid as usize].exec = Some(self.execs.len());
            self.execs.push(Exec {
                cid,
                arrived,
                answered: None,
            });
            self.exec_epoch.push(self.epoch);
            self.stats.requests += 1;
        }
        if shut && !self.clients[cid as usize].answered {
            let response = self.conns[sid].s2c.clone();
            self.log(|| format!("client {cid}: reads {} bytes and the end", response.len()));
            self.answer_client(cid, &response);
        }
    }

    // ----- answers --------------------------------------------------------------------

    /// An answer datagram reaches `peer`.
    fn answer(&mut self, peer: SocketAddr, bytes: &[u8]) {
        match udp_cid(peer) {
            Some(cid) => self.answer_client(cid, bytes),
            None => self.violate(format!("an answer to {peer}, no client's")),
        }
    }

    /// An answer reaches client `cid`: what it says is recorded for the model, and
    /// invariants 1 and 3 are checked at this instant.
    fn answer_client(&mut self, cid: u32, bytes: &[u8]) {
        let c = &self.clients[cid as usize];
        let Some(exec) = c.exec else {
            return self.violate(format!("client {cid} got an answer to nothing it sent"));
        };
        if c.answered {
            return self.violate(format!("client {cid} got two answers"));
        }
        let said = match auth::outcome(&c.request, &c.op, bytes) {
            Ok(s) => s,
            Err(e) => return self.violate(format!("client {cid}'s answer: {e}")),
        };
        let status = bytes.get(2).copied().unwrap_or(0);
        let op = c.op.clone();
        self.clients[cid as usize].answered = true;
        self.stats.answered += 1;
        self.log(|| format!("client {cid}: answer {status} {said:?}"));
        if status == 252 {
            // "Something went wrong": the write may or may not be durable, as if never
            // answered.
            self.stats.internal += 1;
            return;
        }
        let tick = self.next_tick();
        self.execs[exec].answered = Some((tick, said.clone()));
        let Some(passed) = said.filter(|_| op.shaped) else {
            return;
        };
        let arrived = self.execs[exec].arrived;
        if let Some(wrong) = self.reveals(&op, &passed, arrived) {
            self.violate(format!(
                "client {cid}'s {} answer {wrong}",
                op.command.name()
            ));
        }
    }

    /// What is wrong with an answer saying `passed` of `op`'s entries (a request that
    /// arrived at tick `arrived`) reaching its client now: (3) a write that arrived
    /// after the store fail-stopped acknowledged; (1) a record shown that a write not
    /// yet durable made.
    fn reveals(&self, op: &Op, passed: &[bool], arrived: u64) -> Option<String> {
        let s = self.server.as_ref()?;
        let after_failure = s.failed.is_some_and(|t| arrived > t);
        if after_failure && writes(op) && passed.iter().any(|&p| p) {
            return Some("passed, though it arrived after the store fail-stopped".into());
        }
        let point = s.store.commit_point();
        for (e, _) in op.entries.iter().zip(passed).filter(|(_, &p)| p) {
            let shown = e.new.unwrap_or(e.an);
            let Some(pending) = s.store.pending_commit(e.coin) else {
                continue;
            };
            if point.covers(pending) {
                continue;
            }
            let current = s.store.record_pending(e.coin, self.ts(), Access::Resident);
            if matches!(current, Ok((Some(r), _)) if r.an == shown) {
                return Some(format!(
                    "shows coin {:?}'s AN from a write not yet durable (commit {pending}, \
                     durable below {})",
                    e.coin, point.durable_below
                ));
            }
        }
        None
    }
}

/// Runs the data world of `seed` to the end, without a trace.
pub fn run_data_seed(seed: u64) -> Result<DataStats, Box<(DataKnobs, Violation)>> {
    let knobs = DataKnobs::from_seed(seed);
    let mut world = DataWorld::new(knobs.clone(), false);
    match world.run_all() {
        Ok(()) => Ok(world.stats),
        Err(v) => Err(Box::new((knobs, v))),
    }
}

/// The one command that replays data seed `seed` in this build.
pub fn data_replay_command(seed: u64) -> String {
    crate::replay_command_of("data-replay", seed)
}
