//! The store world: raida-store's [`DiskStore`] over a [`SimDisk`], driven by one seed
//! through a sequence of operations, with its invariants checked against a
//! model of the store after every operation and at every recovery.
//!
//! A seed decides a few real pages (records of known, random ANs; some coins
//! tracked, chosen often where a record straddles a 512-byte sector), an absent page
//! and sometimes a short page file, the store's configuration, the disk's fault rates
//! and the mix of operations:
//!
//! - compare-and-set writes through [`KeyStore::modify`]: one coin, or an
//!   all-or-nothing batch over several coins and pages (sometimes naming an unknown
//!   coin, which must not be written); some expect a stale record and must write
//!   nothing;
//! - **pairs**: a write during whose log sync a second writer arrives on a helper
//!   thread (the only way the group commit's followers, and the planted bug
//!   `ack-before-sync`, show; see [`SimDisk::arm_sync_hook`]). The hook waits until the
//!   helper has returned or is counted by [`DiskStore::writers_waiting`] (a state,
//!   never a time), and the helper's disk calls are held until the leader's write
//!   returns, so a pair runs the same way every time. The helper is joined before the
//!   next operation, and some pairs are followed at once by a crash;
//! - lookups, record reads and page loads, which read errors must turn into
//!   `Unreadable` or an error, never into an unknown coin;
//! - the background step ([`DiskStore::maintain`]: freshness, flush, checkpoint);
//! - crashes between operations, power cuts a drawn number of disk calls ahead (inside
//!   a write, a checkpoint or a recovery), and clean reopens; each is followed by a
//!   recovery ([`DiskStore::with_disk`] replays the log), which is judged, and then by
//!   a second crash and recovery with nothing new, which must leave the same bytes.
//!
//! The invariants: (a) no acknowledged write is lost after a crash and recovery, and
//! recovery leaves every page durable; (b) no record holds bytes that were never
//! written (each tracked record is its initial value, an acknowledged one or a maybe
//! one; every other record is untouched), and no batch is half applied; (c) recovery
//! is idempotent; (d) every page file keeps its size (17,408 bytes for a page; a short
//! file stays short, an absent one absent); (e) after every acknowledged write a
//! lookup sees the new record at once, and a failed one changes nothing a lookup sees;
//! (f) the locker index is what the records imply: a coin a lookup finds is in the
//! locker its AN names and in no other, and after every recovery the whole index
//! equals a scan of the page files. Some records start in a locker and some writes
//! put coins into one (a few locker keys per seed), so lockers fill, move and empty
//! across crashes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use raida_client::{Keys, Request};
use raida_core::codec::{answer_request, Arrival as RequestArrival, HeaderRules};
use raida_core::keys::{
    is_locker_key, An, CoinId, KeyStore, Lookup, PageId, Record, StoreError, PAGE_BYTES,
    RECORDS_PER_PAGE, RECORD_BYTES,
};
use raida_core::{CommandRegistry, StatusByte, Timestamp, Transport};
use raida_store::{DiskStore, StoreConfig};

use crate::disk::{mark_helper_thread, DiskFaults, SimDisk, LARGE_SEGMENT_BYTES, SECTOR};
use crate::invariants::Violation;
use crate::rng::{Fnv64, Rng};
use crate::store_model::{coin_name, short, Model, Write, MAX_MAYBE};

/// The store under test.
pub type SimStore = DiskStore<Arc<SimDisk>>;

/// The locker commands the world runs (group 8).
const PUT: u8 = raida_commands::STORE_SUM;
/// See [`PUT`].
const PEEK: u8 = raida_commands::PEEK;
/// See [`PUT`].
const REMOVE: u8 = raida_commands::REMOVE;
/// The months-since-February-2023 byte the locker commands stamp (a fixed clock).
const MFS: u8 = 46;

/// A coin reference as a payload names it: denomination, serial big-endian.
fn coin_ref(c: CoinId) -> Vec<u8> {
    let mut v = vec![c.denomination.to_be_bytes()[0]];
    v.extend_from_slice(&c.serial.to_be_bytes());
    v
}

/// The coin a 5-byte reference names.
fn coin_of_ref(b: &[u8]) -> CoinId {
    CoinId::new(
        i8::from_be_bytes([b[0]]),
        u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
    )
}

fn xor_into(acc: &mut An, an: &An) {
    for (a, b) in acc.iter_mut().zip(an) {
        *a ^= b;
    }
}

/// How many locker keys a seed's key-shaped ANs are drawn from (few, so that lockers
/// hold several coins and coins move between them).
const LOCKER_KEYS: usize = 3;
/// Per mille of tracked records that start in a locker, and of new records written
/// into one.
const LOCKER_RECORD_PM: u32 = 250;

/// How long the world waits for a helper writer to reach a state (returned, or
/// waiting for a sync) before it fails the seed: far beyond any healthy run, so only a
/// hang reaches it. The state is polled (a writer's wait inside the store signals
/// nothing): first `HELPER_SPINS` times with a yield between (a helper gets there in
/// microseconds), then every millisecond. What the world does next depends only on
/// the state reached, never on how long it took.
const HELPER_SPINS: u32 = 5_000;
const HELPER_POLL: Duration = Duration::from_millis(1);
const HELPER_ROUNDS: u32 = 20_000;

/// The relative weights of the world's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpWeights {
    /// A compare-and-set of one coin.
    pub single: u32,
    /// An all-or-nothing batch over several coins and pages.
    pub batch: u32,
    /// A write with a second writer arriving during its sync.
    pub pair: u32,
    /// A header-time lookup (and a load when the page is not in memory).
    pub lookup: u32,
    /// A record read.
    pub record: u32,
    /// A page load.
    pub load: u32,
    /// The background step.
    pub maintain: u32,
    /// A crash between operations.
    pub crash: u32,
    /// A power cut a few disk calls ahead.
    pub power_cut: u32,
    /// A clean restart (no crash).
    pub reopen: u32,
    /// A locker command (put, peek, remove; some of them attacks) through
    /// raida-commands.
    pub locker: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Single,
    Batch,
    Pair,
    Lookup,
    Record,
    Load,
    Maintain,
    Crash,
    PowerCut,
    Reopen,
    Locker,
}

impl OpWeights {
    fn draw(rng: &mut Rng) -> OpWeights {
        OpWeights {
            single: rng.range(1, 10) as u32,
            batch: rng.range(0, 8) as u32,
            pair: if rng.chance(100) {
                0
            } else {
                rng.range(1, 8) as u32
            },
            lookup: rng.range(1, 10) as u32,
            record: rng.range(0, 5) as u32,
            load: rng.range(0, 3) as u32,
            maintain: rng.range(0, 5) as u32,
            crash: rng.range(0, 3) as u32,
            power_cut: rng.range(0, 3) as u32,
            reopen: rng.range(0, 2) as u32,
            locker: rng.range(0, 8) as u32,
        }
    }

    fn pick(&self, rng: &mut Rng) -> Op {
        let table = [
            (Op::Single, self.single),
            (Op::Batch, self.batch),
            (Op::Pair, self.pair),
            (Op::Lookup, self.lookup),
            (Op::Record, self.record),
            (Op::Load, self.load),
            (Op::Maintain, self.maintain),
            (Op::Crash, self.crash),
            (Op::PowerCut, self.power_cut),
            (Op::Reopen, self.reopen),
            (Op::Locker, self.locker),
        ];
        let total: u64 = table.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = rng.below(total);
        for (op, w) in table {
            if x < u64::from(w) {
                return op;
            }
            x -= u64::from(w);
        }
        Op::Lookup
    }
}

/// Everything a seed decides before the run. Printed first for a failing seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreKnobs {
    /// The seed everything else comes from.
    pub seed: u64,
    /// The real pages (complete page files).
    pub pages: Vec<PageId>,
    /// A page with no file: its coins are unknown.
    pub absent_page: PageId,
    /// A page whose file is shorter than a page (and its length): unknown coins too.
    pub short_page: Option<(PageId, usize)>,
    /// Tracked coins per real page.
    pub coins_per_page: usize,
    /// Operations in the run.
    pub ops: u32,
    /// `StoreConfig::cache_pages` (as small as one page: evictions).
    pub cache_pages: usize,
    /// `StoreConfig::segment_bytes` (small: segments roll over, checkpoints run).
    pub segment_bytes: u64,
    /// The disk's fault rates.
    pub faults: DiskFaults,
    /// The operation mix.
    pub weights: OpWeights,
    /// Per mille of single writes that expect a stale record (and must write nothing).
    pub stale_cas_pm: u32,
    /// Per mille of batches that also name (and try to write) an unknown coin.
    pub unknown_in_batch_pm: u32,
    /// Per mille of pairs followed at once by a crash.
    pub crash_after_pair_pm: u32,
    /// A power cut comes after 0..=this many disk calls.
    pub power_cut_max_calls: u32,
    /// Per mille of recoveries with a power cut armed in them.
    pub recovery_power_cut_pm: u32,
    /// Simulated time between operations: 0..=this many microseconds.
    pub step_max_us: u64,
}

impl StoreKnobs {
    /// The world of `seed`.
    pub fn from_seed(seed: u64) -> StoreKnobs {
        let mut rng = Rng::new(seed).fork(0x5707E);
        let numbers = [0u16, 1, 2, 0x00ff, 0x0100, 0xffff];
        let draw_page = |rng: &mut Rng| PageId {
            denomination: rng.range(0, 14) as i8 - 8,
            number: rng.pick(&numbers).unwrap_or(0),
        };
        let count = rng.range_usize(2, 4);
        let mut pages = BTreeSet::new();
        while pages.len() < count {
            pages.insert(draw_page(&mut rng));
        }
        let other = |rng: &mut Rng, taken: &BTreeSet<PageId>| loop {
            let p = draw_page(rng);
            if !taken.contains(&p) {
                return p;
            }
        };
        let absent_page = other(&mut rng, &pages);
        let mut taken = pages.clone();
        taken.insert(absent_page);
        let short_page = rng.chance(500).then(|| {
            let len = rng
                .pick(&[0, 1, RECORD_BYTES, SECTOR, 4096, PAGE_BYTES - 1])
                .unwrap_or(0);
            (other(&mut rng, &taken), len)
        });
        let pages: Vec<PageId> = pages.into_iter().collect();
        StoreKnobs {
            seed,
            coins_per_page: rng.range_usize(1, 6),
            ops: rng.range(20, 150) as u32,
            cache_pages: rng.range_usize(1, pages.len() + 2),
            segment_bytes: rng
                .pick(&[64, 200, 1000, 4096, LARGE_SEGMENT_BYTES])
                .unwrap_or(LARGE_SEGMENT_BYTES),
            faults: DiskFaults::draw(&mut rng),
            weights: OpWeights::draw(&mut rng),
            stale_cas_pm: rng.range(0, 200) as u32,
            unknown_in_batch_pm: rng.range(0, 300) as u32,
            crash_after_pair_pm: rng.range(100, 800) as u32,
            power_cut_max_calls: rng.range(1, 12) as u32,
            recovery_power_cut_pm: rng.range(0, 300) as u32,
            step_max_us: rng.pick(&[1_000, 50_000, 500_000]).unwrap_or(1_000),
            pages,
            absent_page,
            short_page,
        }
    }
}

/// What one store run did (summed over a swarm).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Operations run.
    pub ops: u64,
    /// Writes acknowledged.
    pub acked: u64,
    /// Writes whose call failed after their change was decided (maybe durable).
    pub maybe: u64,
    /// Writes that wrote nothing (a stale compare-and-set).
    pub unchanged: u64,
    /// Writes refused before their change was decided (a read error, a failed store).
    pub refused: u64,
    /// Pairs whose helper waited for the next sync.
    pub pairs_waited: u64,
    /// Pairs whose helper returned while the leader's sync ran.
    pub pairs_returned_in_sync: u64,
    /// Pairs whose leader never synced (its write failed or wrote nothing first).
    pub pairs_without_sync: u64,
    /// Lookups and reads checked against the model.
    pub reads: u64,
    /// Of those, answered `Unreadable` or an I/O error.
    pub unreadable: u64,
    /// Crashes (power losses), power cuts that happened among them included.
    pub crashes: u64,
    /// Recoveries that succeeded, and that failed (then tried again).
    pub recoveries: u64,
    /// See `recoveries`.
    pub failed_recoveries: u64,
    /// Recoveries that dropped a torn log tail.
    pub torn_tails_dropped: u64,
    /// Log entries replayed by recoveries.
    pub entries_replayed: u64,
    /// Idempotence checks (a second crash and recovery with nothing new).
    pub idempotence_checks: u64,
    /// Whole locker-index checks after recoveries (the index against a scan of the
    /// page files).
    pub index_checks: u64,
    /// Locker commands run (puts, peeks, removes, attacks).
    pub locker_ops: u64,
    /// Sectors crashes tore, log tails they cut, slow page reads.
    pub torn_sectors: u64,
    /// See `torn_sectors`.
    pub cut_tails: u64,
    /// See `torn_sectors`.
    pub slow_reads: u64,
    /// Simulated time at the end, microseconds.
    pub end_us: u64,
}

impl StoreStats {
    /// Adds another run's numbers.
    pub fn add(&mut self, o: &StoreStats) {
        self.ops += o.ops;
        self.acked += o.acked;
        self.maybe += o.maybe;
        self.unchanged += o.unchanged;
        self.refused += o.refused;
        self.pairs_waited += o.pairs_waited;
        self.pairs_returned_in_sync += o.pairs_returned_in_sync;
        self.pairs_without_sync += o.pairs_without_sync;
        self.reads += o.reads;
        self.unreadable += o.unreadable;
        self.crashes += o.crashes;
        self.recoveries += o.recoveries;
        self.failed_recoveries += o.failed_recoveries;
        self.torn_tails_dropped += o.torn_tails_dropped;
        self.entries_replayed += o.entries_replayed;
        self.idempotence_checks += o.idempotence_checks;
        self.index_checks += o.index_checks;
        self.locker_ops += o.locker_ops;
        self.torn_sectors += o.torn_sectors;
        self.cut_tails += o.cut_tails;
        self.slow_reads += o.slow_reads;
        self.end_us = self.end_us.max(o.end_us);
    }
}

/// One planned `modify`: its coins, the records it expects them to hold, and the
/// records it writes if they all do.
#[derive(Clone, Debug)]
struct Planned {
    coins: Vec<CoinId>,
    expected: Vec<Option<Record>>,
    new: Vec<Record>,
}

/// What one `modify` call did.
#[derive(Debug)]
struct Outcome {
    result: Result<(), StoreError>,
    /// The records the change saw, if it ran.
    saw: Option<Vec<Option<Record>>>,
    /// Whether the change decided to write.
    wrote: bool,
}

/// Runs `plan` as one compare-and-set (on the world's thread or a helper's).
fn run_modify(store: &SimStore, plan: &Planned, now: Timestamp) -> Outcome {
    let mut saw = None;
    let mut wrote = false;
    let result = store.modify(&plan.coins, now, &mut |current, new| {
        saw = Some(current.to_vec());
        if current == plan.expected.as_slice() {
            for (slot, r) in new.iter_mut().zip(&plan.new) {
                *slot = Some(*r);
            }
            wrote = true;
        }
    });
    Outcome { result, saw, wrote }
}

/// Where a pair's helper writer got to while the leader's sync ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    /// It was counted waiting for the next sync.
    Waited,
    /// It returned before the sync finished.
    Returned,
    /// Neither, within the bound (a hang).
    Stuck,
    /// The helper thread could not be started.
    NoThread,
}

#[derive(Default)]
struct PairState {
    outcome: Option<Outcome>,
    arrival: Option<Arrival>,
    handle: Option<JoinHandle<()>>,
}

/// What a pair's hook and helper share with the world.
#[derive(Default)]
struct Pair {
    state: Mutex<PairState>,
    changed: Condvar,
}

impl Pair {
    fn lock(&self) -> std::sync::MutexGuard<'_, PairState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (bounded) until `done` holds of the state.
    fn wait_for(&self, mut done: impl FnMut(&PairState) -> bool) -> bool {
        let mut st = self.lock();
        for round in 0..HELPER_SPINS + HELPER_ROUNDS {
            if done(&st) {
                return true;
            }
            if round < HELPER_SPINS {
                drop(st);
                std::thread::yield_now();
                st = self.lock();
            } else {
                st = match self.changed.wait_timeout(st, HELPER_POLL) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
        }
        done(&st)
    }
}

/// Indices of the records that straddle a 512-byte sector boundary (a crash can tear
/// them in two).
fn straddling() -> Vec<usize> {
    (0..RECORDS_PER_PAGE as usize)
        .filter(|i| (i * RECORD_BYTES) / SECTOR != (i * RECORD_BYTES + RECORD_BYTES - 1) / SECTOR)
        .collect()
}

fn coin_of(page: PageId, index: usize) -> CoinId {
    CoinId::new(
        page.denomination,
        u32::from(page.number) * RECORDS_PER_PAGE + index as u32,
    )
}

fn record_at(bytes: &[u8], index: usize) -> Option<Record> {
    let r = bytes.get(index * RECORD_BYTES..(index + 1) * RECORD_BYTES)?;
    Some(Record {
        an: r[..16].try_into().ok()?,
        status: r[16],
    })
}

fn coins_text(coins: &[CoinId]) -> String {
    let names: Vec<String> = coins.iter().map(|c| coin_name(*c)).collect();
    format!("[{}]", names.join(" "))
}

/// An error and its sources, on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The store world of one seed (see the module documentation).
pub struct StoreWorld {
    /// What the seed decided.
    pub knobs: StoreKnobs,
    rng: Rng,
    disk: Arc<SimDisk>,
    store: Option<Arc<SimStore>>,
    config: StoreConfig,
    now: u64,
    op: u32,
    model: Model,
    /// Every page file's initial bytes (the real pages and the short one).
    initial: BTreeMap<PageId, Vec<u8>>,
    /// Tracked coins per real page, by record index.
    tracked: BTreeMap<PageId, Vec<usize>>,
    /// Coins of the absent and the short page.
    unknown: Vec<CoinId>,
    /// The locker keys (bytes 12..15 `FF`) key-shaped ANs are drawn from.
    locker_keys: Vec<An>,
    /// Whether the last open read every page without a fault (its locker index scan
    /// saw every record).
    index_whole: bool,
    tracing: bool,
    hash: Fnv64,
    /// What the run did.
    pub stats: StoreStats,
    violation: Option<Violation>,
}

impl std::fmt::Debug for StoreWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWorld")
            .field("seed", &self.knobs.seed)
            .field("op", &self.op)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl StoreWorld {
    /// The world of `knobs`; with `tracing`, every step is logged and hashed.
    pub fn new(knobs: StoreKnobs, tracing: bool) -> StoreWorld {
        let root = Rng::new(knobs.seed);
        let mut content = root.fork(3);
        let disk = Arc::new(SimDisk::new(root.fork(2), knobs.faults.clone()));
        let straddle = straddling();
        let mut keys_rng = root.fork(4);
        let locker_keys: Vec<An> = (0..LOCKER_KEYS)
            .map(|_| {
                let mut k = [0xFF; 16];
                keys_rng.fill(&mut k[..12]);
                k
            })
            .collect();
        let mut initial = BTreeMap::new();
        let mut tracked = BTreeMap::new();
        let mut records = BTreeMap::new();
        for &page in &knobs.pages {
            let mut bytes = vec![0u8; PAGE_BYTES];
            content.fill(&mut bytes);
            let mut indices = BTreeSet::new();
            while indices.len() < knobs.coins_per_page {
                let i = if content.chance(500) {
                    content.pick(&straddle).unwrap_or(0)
                } else {
                    content.below(u64::from(RECORDS_PER_PAGE)) as usize
                };
                indices.insert(i);
            }
            // Some tracked coins start in a locker: the index built at open has them.
            for &i in &indices {
                if keys_rng.chance(LOCKER_RECORD_PM) {
                    let key = keys_rng.pick(&locker_keys).unwrap_or([0xFF; 16]);
                    bytes[i * RECORD_BYTES..i * RECORD_BYTES + 16].copy_from_slice(&key);
                }
            }
            for &i in &indices {
                if let Some(r) = record_at(&bytes, i) {
                    records.insert(coin_of(page, i), r);
                }
            }
            disk.put_page(page, &bytes);
            tracked.insert(page, indices.into_iter().collect());
            initial.insert(page, bytes);
        }
        let mut unknown = vec![
            coin_of(knobs.absent_page, 0),
            coin_of(knobs.absent_page, 1023),
        ];
        if let Some((page, len)) = knobs.short_page {
            let mut bytes = vec![0u8; len];
            content.fill(&mut bytes);
            disk.put_page(page, &bytes);
            initial.insert(page, bytes);
            unknown.push(coin_of(page, 0));
            unknown.push(coin_of(page, 1023));
        }
        let mut config = StoreConfig::new(knobs.cache_pages, Duration::from_secs(1));
        config.segment_bytes = knobs.segment_bytes;
        StoreWorld {
            rng: root.fork(1),
            disk,
            store: None,
            config,
            now: 1_000_000,
            op: 0,
            model: Model::new(records),
            initial,
            tracked,
            unknown,
            locker_keys,
            index_whole: false,
            tracing,
            hash: Fnv64::default(),
            stats: StoreStats::default(),
            violation: None,
            knobs,
        }
    }

    /// The disk under the store.
    pub fn disk(&self) -> &Arc<SimDisk> {
        &self.disk
    }

    /// The hash of the whole trace so far (with tracing only).
    pub fn trace_hash(&self) -> u64 {
        self.hash.finish()
    }

    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    fn log(&mut self, msg: impl FnOnce() -> String) {
        if !self.tracing {
            return;
        }
        let line = format!("op {} t={} {}", self.op, self.now, msg());
        self.hash.update(line.as_bytes());
        self.hash.update(b"\n");
        tracing::info!("{line}");
    }

    fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            let what = format!("op {}: {what}", self.op);
            self.log(|| format!("VIOLATION {what}"));
            self.violation = Some(Violation { at: self.now, what });
        }
    }

    fn ts(&self) -> Timestamp {
        Timestamp::from_micros(self.now)
    }

    /// Runs the seed to the end: the initial open, every operation, and a final crash
    /// and recovery (so every run checks durability at least once).
    pub fn run_all(&mut self) -> Result<(), Violation> {
        self.log(|| "open".into());
        if self.open_store() {
            self.judge_recovery();
            self.check_locker_index("at the first open");
        }
        while self.violation.is_none() && self.op < self.knobs.ops {
            self.step();
        }
        if self.violation.is_none() {
            self.op += 1;
            self.log(|| "end: crash".into());
            self.crash_and_recover(true);
        }
        let c = self.disk.counts();
        self.stats.torn_sectors = c.torn_sectors;
        self.stats.cut_tails = c.cut_tails;
        self.stats.slow_reads = c.slow_reads;
        self.stats.end_us = self.now;
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    fn step(&mut self) {
        self.op += 1;
        self.stats.ops += 1;
        let advance = self.rng.below(self.knobs.step_max_us + 1) + self.disk.take_latency_us();
        self.now += advance;
        match self.knobs.weights.pick(&mut self.rng) {
            Op::Locker => self.op_locker(),
            Op::Single => self.op_single(),
            Op::Batch => self.op_batch(),
            Op::Pair => self.op_pair(),
            Op::Lookup => {
                let coin = self.any_coin();
                self.check_lookup(coin, "lookup");
            }
            Op::Record => self.op_record(),
            Op::Load => self.op_load(),
            Op::Maintain => self.op_maintain(),
            Op::Crash => {
                self.log(|| "crash".into());
                self.crash_and_recover(true);
            }
            Op::PowerCut => {
                let calls = self
                    .rng
                    .below(u64::from(self.knobs.power_cut_max_calls) + 1)
                    as u32;
                if !self.disk.power_cut_armed() {
                    self.log(|| format!("power cut armed: after {calls} more disk call(s)"));
                    self.disk.cut_power_after(calls);
                }
            }
            Op::Reopen => {
                self.log(|| "clean restart".into());
                self.crash_and_recover(false);
            }
        }
        self.after_op();
    }

    fn after_op(&mut self) {
        if self.violation.is_some() {
            return;
        }
        if self.disk.stuck() {
            self.violate("a held helper writer was never released (a hang)".into());
        } else if self.disk.power_lost() {
            self.log(|| "the power went: crash".into());
            self.crash_and_recover(true);
        } else if self.model.maybe_count() >= MAX_MAYBE {
            self.log(|| format!("{MAX_MAYBE} writes in doubt: crash"));
            self.crash_and_recover(true);
        } else if self.store.as_ref().is_some_and(|s| s.is_failed()) && self.rng.chance(300) {
            self.log(|| "the store failed: restart".into());
            self.crash_and_recover(false);
        }
    }

    // ----- choosing coins and records -----

    fn tracked_on(&self, pages: &[PageId]) -> Vec<CoinId> {
        pages
            .iter()
            .flat_map(|p| {
                self.tracked
                    .get(p)
                    .into_iter()
                    .flatten()
                    .map(move |&i| coin_of(*p, i))
            })
            .collect()
    }

    /// `n` distinct coins of `from` (fewer when it has fewer), in drawn order.
    fn pick_coins(&mut self, mut from: Vec<CoinId>, n: usize) -> Vec<CoinId> {
        let mut out = Vec::new();
        while out.len() < n && !from.is_empty() {
            let i = self.rng.below(from.len() as u64) as usize;
            out.push(from.swap_remove(i));
        }
        out
    }

    fn any_coin(&mut self) -> CoinId {
        let mut all = self.tracked_on(&self.knobs.pages.clone());
        if self.rng.chance(150) {
            all = self.unknown.clone();
        }
        self.pick_coins(all, 1)
            .first()
            .copied()
            .unwrap_or(CoinId::new(0, 0))
    }

    /// A record to write: a random AN, or (sometimes) one of the locker keys, so that
    /// writes move coins into, between and out of lockers.
    fn new_record(&mut self) -> Record {
        let mut an = [0u8; 16];
        self.rng.fill(&mut an);
        if self.rng.chance(LOCKER_RECORD_PM) {
            an = self.rng.pick(&self.locker_keys).unwrap_or(an);
        }
        Record {
            an,
            status: self.rng.below(256) as u8,
        }
    }

    fn plan(&mut self, coins: Vec<CoinId>, stale: bool) -> Planned {
        let mut expected: Vec<Option<Record>> =
            coins.iter().map(|c| self.model.visible(*c)).collect();
        if stale {
            if let Some(slot) = expected.iter_mut().find(|e| e.is_some()) {
                *slot = Some(self.new_record());
            }
        }
        let new = coins.iter().map(|_| self.new_record()).collect();
        Planned {
            coins,
            expected,
            new,
        }
    }

    // ----- writes -----

    fn op_single(&mut self) {
        let coins = self.tracked_on(&self.knobs.pages.clone());
        let coins = self.pick_coins(coins, 1);
        let stale = self.rng.chance(self.knobs.stale_cas_pm);
        let plan = self.plan(coins, stale);
        let Some(store) = self.store() else { return };
        let out = run_modify(&store, &plan, self.ts());
        self.judge_write("single", &plan, out);
    }

    fn op_batch(&mut self) {
        let all = self.tracked_on(&self.knobs.pages.clone());
        let n = self.rng.range_usize(2, 5);
        let mut coins = self.pick_coins(all, n);
        if self.rng.chance(self.knobs.unknown_in_batch_pm) {
            let unknown = self.unknown.clone();
            coins.extend(self.pick_coins(unknown, 1));
        }
        let plan = self.plan(coins, false);
        let Some(store) = self.store() else { return };
        let out = run_modify(&store, &plan, self.ts());
        self.judge_write("batch", &plan, out);
    }

    /// A write whose log sync a second writer (on other pages) arrives during.
    fn op_pair(&mut self) {
        let mut pages = self.knobs.pages.clone();
        for i in (1..pages.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            pages.swap(i, j);
        }
        let split = self.rng.range_usize(1, pages.len() - 1);
        let leader_coins = self.tracked_on(&pages[..split]);
        let helper_coins = self.tracked_on(&pages[split..]);
        let n = self.rng.range_usize(1, 3);
        let leader_coins = self.pick_coins(leader_coins, n);
        let n = self.rng.range_usize(1, 3);
        let helper_coins = self.pick_coins(helper_coins, n);
        let leader = self.plan(leader_coins, false);
        let helper = self.plan(helper_coins, false);
        let Some(store) = self.store() else { return };
        let now = self.ts();
        let pair = Arc::new(Pair::default());
        let hook = {
            let (store, pair, helper) = (Arc::clone(&store), Arc::clone(&pair), helper.clone());
            Box::new(move || {
                let spawned = {
                    let (store, pair) = (Arc::clone(&store), Arc::clone(&pair));
                    std::thread::Builder::new()
                        .name("sim-store-helper".into())
                        .spawn(move || {
                            mark_helper_thread();
                            let out = run_modify(&store, &helper, now);
                            pair.lock().outcome = Some(out);
                            pair.changed.notify_all();
                        })
                };
                match spawned {
                    Ok(handle) => pair.lock().handle = Some(handle),
                    Err(_) => {
                        pair.lock().arrival = Some(Arrival::NoThread);
                        return false;
                    }
                }
                // Wait on states: the helper returned, or it waits for the next sync.
                let mut arrival = Arrival::Stuck;
                pair.wait_for(|st| {
                    if st.outcome.is_some() {
                        arrival = Arrival::Returned;
                    } else if store.writers_waiting() > 0 {
                        arrival = Arrival::Waited;
                    }
                    arrival != Arrival::Stuck
                });
                pair.lock().arrival = Some(arrival);
                arrival == Arrival::Waited
            })
        };
        self.disk.arm_sync_hook(hook);
        let leader_out = run_modify(&store, &leader, now);
        if self.disk.take_sync_hook().is_some() {
            self.stats.pairs_without_sync += 1;
            self.log(|| "pair: the leader's write reached no sync: no second writer".into());
            self.judge_write("pair leader", &leader, leader_out);
            return;
        }
        self.disk.release_helper();
        let arrival = pair.lock().arrival.unwrap_or(Arrival::Stuck);
        match arrival {
            Arrival::Waited => self.stats.pairs_waited += 1,
            Arrival::Returned => self.stats.pairs_returned_in_sync += 1,
            Arrival::Stuck => {
                self.violate(
                    "a writer that arrived during a log sync neither returned nor waited for \
                     the next sync"
                        .into(),
                );
                return;
            }
            Arrival::NoThread => {
                self.violate("the helper writer's thread could not be started".into());
                return;
            }
        }
        if !pair.wait_for(|st| st.outcome.is_some()) {
            self.violate(
                "a writer that waited for the next log sync never returned (nobody ran it)".into(),
            );
            return;
        }
        let (helper_out, handle) = {
            let mut st = pair.lock();
            (st.outcome.take(), st.handle.take())
        };
        if let Some(h) = handle {
            if h.join().is_err() {
                self.violate("the helper writer panicked".into());
                return;
            }
        }
        self.log(|| {
            format!(
                "pair: a second writer arrived during the leader's sync and {}",
                match arrival {
                    Arrival::Waited => "waited for the next sync",
                    _ => "returned before the sync finished",
                }
            )
        });
        self.judge_write("pair leader", &leader, leader_out);
        if let Some(out) = helper_out {
            self.judge_write("pair helper", &helper, out);
        }
        if self.violation.is_none() && self.rng.chance(self.knobs.crash_after_pair_pm) {
            self.log(|| "crash right after the pair".into());
            self.crash_and_recover(true);
        }
    }

    /// Checks a write's outcome against the model and records it there.
    fn judge_write(&mut self, what: &'static str, plan: &Planned, out: Outcome) {
        if let Some(saw) = &out.saw {
            for (coin, seen) in plan.coins.iter().zip(saw) {
                let shows = self.model.visible(*coin);
                if *seen != shows {
                    self.violate(format!(
                        "{what} {}: the change saw {} for coin {}, the store had acknowledged {}",
                        coins_text(&plan.coins),
                        seen.as_ref().map_or("unknown".into(), short),
                        coin_name(*coin),
                        shows.as_ref().map_or("unknown".into(), short),
                    ));
                    return;
                }
            }
        }
        let records: Vec<(CoinId, Record)> = plan
            .coins
            .iter()
            .zip(&plan.new)
            .filter(|(c, _)| self.model.visible(**c).is_some())
            .map(|(c, r)| (*c, *r))
            .collect();
        let result = match &out.result {
            Ok(()) if !out.wrote => "nothing to write".to_string(),
            Ok(()) => "acknowledged".to_string(),
            Err(e) => format!("failed: {}", error_text(e)),
        };
        self.log(|| {
            let news: Vec<String> = records.iter().map(|(_, r)| short(r)).collect();
            format!(
                "{what} {} -> [{}]{}: {result}",
                coins_text(&plan.coins),
                news.join(" "),
                if out.wrote { "" } else { " (not written)" }
            )
        });
        match (&out.result, out.wrote) {
            (Ok(()), true) => self.stats.acked += 1,
            (Ok(()), false) => self.stats.unchanged += 1,
            (Err(_), true) => self.stats.maybe += 1,
            (Err(e), false) => {
                self.stats.refused += 1;
                if !matches!(e, StoreError::Unreadable { .. } | StoreError::Failed) {
                    self.violate(format!(
                        "{what} {}: refused before its change ran with {}",
                        coins_text(&plan.coins),
                        error_text(e)
                    ));
                    return;
                }
            }
        }
        if out.wrote {
            self.model.record(Write {
                op: self.op,
                what,
                records,
                acked: out.result.is_ok(),
            });
        }
        for coin in plan.coins.clone() {
            self.check_lookup(coin, what);
        }
    }

    // ----- lockers -----

    /// A locker command of raida-commands run on the store (PROTOCOL.md 8c), its answer
    /// judged against the model, which it then follows: an honest put (the coins'
    /// current ANs, their sum, a locker key), a put with a wrong sum, a put naming one
    /// coin twice (`[V, V]` sums to zero whatever V's AN: it must answer 198 and move
    /// nothing), a remove of coins some of which are not in the locker (only those
    /// whose AN is the key may move, each at most once), or a peek (exactly the coins
    /// whose AN is the key). No coin's AN changes without its AN or its locker key
    /// presented.
    fn op_locker(&mut self) {
        let Some(store) = self.store() else { return };
        let key = self.rng.pick(&self.locker_keys).unwrap_or([0xFF; 16]);
        let tracked = self.tracked_on(&self.knobs.pages.clone());
        let kind = self.rng.below(6);
        let (command, payload, what): (u8, Vec<u8>, &'static str) = match kind {
            0..=2 => {
                let n = self.rng.range_usize(1, 4);
                let coins = self.pick_coins(tracked, n);
                let Some(ans) = coins
                    .iter()
                    .map(|c| self.model.visible(*c).map(|r| r.an))
                    .collect::<Option<Vec<An>>>()
                else {
                    return;
                };
                let mut sum = [0u8; 16];
                for an in &ans {
                    xor_into(&mut sum, an);
                }
                let wrong = kind == 2;
                if wrong {
                    sum[0] ^= 1;
                }
                let mut p: Vec<u8> = coins.iter().flat_map(|c| coin_ref(*c)).collect();
                p.extend_from_slice(&sum);
                p.extend_from_slice(&key);
                self.locker_call(&store, PUT, &p, &coins, key, None, wrong);
                return;
            }
            3 => {
                let coins = self.pick_coins(tracked, 1);
                let Some(&v) = coins.first() else { return };
                let mut p = coin_ref(v);
                p.extend_from_slice(&coin_ref(v));
                p.extend_from_slice(&[0u8; 16]);
                p.extend_from_slice(&key);
                (PUT, p, "store_sum of a coin listed twice")
            }
            4 => {
                // Mostly coins of the locker, some not: only those may move.
                let inside: Vec<CoinId> = tracked
                    .iter()
                    .copied()
                    .filter(|c| self.model.visible(*c).is_some_and(|r| r.an == key))
                    .collect();
                let n = self.rng.range_usize(0, 3);
                let mut coins = self.pick_coins(inside, n);
                let others: Vec<CoinId> =
                    tracked.into_iter().filter(|c| !coins.contains(c)).collect();
                let more = self.rng.range_usize(usize::from(coins.is_empty()), 2);
                coins.extend(self.pick_coins(others, more));
                let news: Vec<Record> = coins.iter().map(|_| self.new_record()).collect();
                let mut p = key.to_vec();
                for (c, r) in coins.iter().zip(&news) {
                    p.extend_from_slice(&coin_ref(*c));
                    p.extend_from_slice(&r.an);
                }
                self.locker_call(&store, REMOVE, &p, &coins, key, Some(&news), false);
                return;
            }
            _ => (PEEK, key.to_vec(), "peek"),
        };
        let (status, body) = self.run_command(&store, command, &payload);
        self.log(|| format!("{what} -> {}, {} bytes", status.0, body.len()));
        self.stats.locker_ops += 1;
        if command == PUT {
            if status != StatusByte(198) {
                self.violate(format!(
                    "{what} answered {}, not 198: a coin could move without its AN",
                    status.0
                ));
            }
        } else {
            let mut want: Vec<CoinId> = self
                .tracked_on(&self.knobs.pages.clone())
                .into_iter()
                .filter(|c| self.model.visible(*c).is_some_and(|r| r.an == key))
                .collect();
            want.sort();
            let mut got: Vec<CoinId> = body.chunks_exact(5).map(coin_of_ref).collect();
            got.sort();
            let want_status = if want.is_empty() { 242 } else { 241 };
            // After an open that met read faults the index may lack the pages it could
            // not read: a peek reads them first and answers 252 while one still cannot
            // be read, never a partial list.
            // A store fail-stopped after a failed sync answers no read at all.
            let refused =
                (!self.index_whole || store.refuses_reads()) && status.0 == 252 && body.is_empty();
            if !refused && (status.0 != want_status || got != want || body.len() % 5 != 0) {
                self.violate(format!(
                    "peek of locker {}.. answered {} with {}; its coins are {}",
                    crate::invariants::hex(&key[..4]),
                    status.0,
                    coins_text(&got),
                    coins_text(&want)
                ));
            }
        }
    }

    /// Runs a put or a remove of `coins` and judges it: the answer the model expects
    /// (252 allowed: a store error, the write then in doubt), the records it wrote
    /// recorded in the model, and every coin looked up afterwards.
    #[allow(clippy::too_many_arguments)]
    fn locker_call(
        &mut self,
        store: &SimStore,
        command: u8,
        payload: &[u8],
        coins: &[CoinId],
        key: An,
        news: Option<&[Record]>,
        wrong_sum: bool,
    ) {
        let before: Vec<Option<Record>> = coins.iter().map(|c| self.model.visible(*c)).collect();
        let (status, body) = self.run_command(store, command, payload);
        self.stats.locker_ops += 1;
        let what = if command == PUT {
            "store_sum"
        } else {
            "remove"
        };
        self.log(|| {
            format!(
                "{what} {} key {}.. -> {}, body {}",
                coins_text(coins),
                crate::invariants::hex(&key[..4]),
                status.0,
                crate::invariants::hex(&body)
            )
        });
        // Which coins the model says move, and to what.
        let moves: Vec<(CoinId, Record)> = match news {
            None if wrong_sum => Vec::new(),
            None => coins
                .iter()
                .map(|c| {
                    (
                        *c,
                        Record {
                            an: key,
                            status: MFS,
                        },
                    )
                })
                .collect(),
            Some(news) => coins
                .iter()
                .zip(&before)
                .zip(news)
                .filter(|((_, b), _)| b.is_some_and(|r| r.an == key))
                .map(|((c, _), r)| {
                    (
                        *c,
                        Record {
                            an: r.an,
                            status: MFS,
                        },
                    )
                })
                .collect(),
        };
        // A remove never answers from a partial index: after an open that met read
        // faults it reads the pages the index lacks first, or answers 252.
        let want_status = match news {
            None if wrong_sum => 242,
            None => 241,
            Some(_) if moves.len() == coins.len() => 241,
            Some(_) if moves.is_empty() => 242,
            Some(_) => 243,
        };
        if status.0 == 252 {
            // A store error: nothing acknowledged, the write (if it was decided) in doubt.
            if !moves.is_empty() {
                self.model.record(Write {
                    op: self.op,
                    what,
                    records: moves,
                    acked: false,
                });
            }
        } else {
            let mut wrong = (status.0 != want_status).then(|| format!("answered {}", status.0));
            if wrong.is_none() && command == REMOVE {
                // The bitmap: floor(n/8) + 1 bytes; none when the locker was empty.
                let locker_empty = !self
                    .tracked_on(&self.knobs.pages.clone())
                    .iter()
                    .any(|c| self.model.visible(*c).is_some_and(|r| r.an == key));
                let mut want_body = vec![0u8; coins.len() / 8 + 1];
                for (i, c) in coins.iter().enumerate() {
                    if moves.iter().any(|(m, _)| m == c) {
                        want_body[i / 8] |= 1 << (i % 8);
                    }
                }
                if locker_empty {
                    want_body.clear();
                }
                if body != want_body {
                    wrong = Some(format!(
                        "answered the bitmap {}",
                        crate::invariants::hex(&body)
                    ));
                }
            }
            if let Some(w) = wrong {
                let held: Vec<String> = before
                    .iter()
                    .map(|r| r.as_ref().map_or("unknown".into(), short))
                    .collect();
                let moving: Vec<CoinId> = moves.iter().map(|(c, _)| *c).collect();
                self.violate(format!(
                    "{what} {} with key {}.. (the coins held [{}]) {w}; the model expects {} \
                     (moving {})",
                    coins_text(coins),
                    crate::invariants::hex(&key[..4]),
                    held.join(" "),
                    want_status,
                    coins_text(&moving),
                ));
                return;
            }
            if !moves.is_empty() {
                self.stats.acked += 1;
                self.model.record(Write {
                    op: self.op,
                    what,
                    records: moves,
                    acked: true,
                });
            }
        }
        for &coin in coins {
            self.check_lookup(coin, what);
        }
    }

    /// Runs locker command `command` with `payload` on `store`, as the server's codec
    /// answers a type-0 request of it (raida-commands' handlers, registered as a
    /// server registers them): the answer's status and body.
    fn run_command(
        &mut self,
        store: &SimStore,
        command: u8,
        payload: &[u8],
    ) -> (StatusByte, Vec<u8>) {
        let mut registry = CommandRegistry::with_builtins();
        for (g, c, h) in raida_commands::all(
            Arc::new(raida_commands::FixedClock(MFS)),
            Default::default(),
        ) {
            if registry.register(g, c, h).is_err() {
                self.violate("the commands do not register".into());
                return (StatusByte(0), Vec::new());
            }
        }
        let mut request = Request::new(0, raida_commands::LOCKER_GROUP, command, Keys::None);
        request.payload = payload.to_vec();
        let Ok(built) = request.build() else {
            self.violate("a locker request does not build".into());
            return (StatusByte(0), Vec::new());
        };
        let rules = HeaderRules {
            raida_id: 0,
            coin_id: 0,
            max_body_size: 65_536,
        };
        let arrival = RequestArrival {
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            transport: Transport::Tcp,
            at: self.ts(),
        };
        let answer = answer_request(
            built.bytes(),
            &arrival,
            &rules,
            &registry,
            store,
            0,
            &[7; 22],
        );
        let Some(resp) = answer.filter(|r| r.len() >= 32) else {
            self.violate("a locker request got no whole answer".into());
            return (StatusByte(0), Vec::new());
        };
        let size = usize::from(resp[9]) << 16 | usize::from(resp[10]) << 8 | usize::from(resp[11]);
        // The body is the command's output and the 2-byte trailer.
        let body = resp
            .get(32..(32 + size).saturating_sub(2).max(32))
            .unwrap_or_default()
            .to_vec();
        (StatusByte(resp[2]), body)
    }

    // ----- reads -----

    /// A header-time lookup of `coin` (and a load when its page is not in memory) must
    /// show what the model says: the last acknowledged record, or unknown for a coin of
    /// the absent or short page; a read error answers `Unreadable`, never unknown.
    fn check_lookup(&mut self, coin: CoinId, why: &str) {
        let Some(store) = self.store() else { return };
        let now = self.ts();
        let want = self.model.visible(coin);
        self.stats.reads += 1;
        let mut got = store.lookup(coin, now);
        let mut loaded = false;
        if let Lookup::NotInMemory(page) = got {
            loaded = true;
            match store.load(page, now) {
                Ok(()) => got = store.lookup(coin, now),
                Err(StoreError::Unreadable { .. }) => {
                    self.log(|| {
                        format!("{why}: lookup {}: its page is unreadable", coin_name(coin))
                    });
                    self.stats.unreadable += 1;
                    return;
                }
                Err(e) => {
                    self.violate(format!(
                        "{why}: loading the page of coin {} failed with {}, not Unreadable",
                        coin_name(coin),
                        error_text(&e)
                    ));
                    return;
                }
            }
        }
        if let (Lookup::NotInMemory(_), true) = (got, loaded) {
            // A cache smaller than the pages in play (or full of pinned ones) may evict
            // the page it just loaded: the store's own `lookup_blocking` then reads the
            // record without caching it, and so does the world.
            self.log(|| format!("{why}: lookup {}: evicted again at once", coin_name(coin)));
            return self.check_record(&store, coin, why);
        }
        self.log(|| {
            format!(
                "{why}: lookup {} -> {}",
                coin_name(coin),
                match got {
                    Lookup::Found(an) => format!("found {}..", crate::invariants::hex(&an[..4])),
                    other => format!("{other:?}"),
                }
            )
        });
        let wrong = match (got, want) {
            (Lookup::Found(an), Some(r)) if an == r.an => None,
            (Lookup::Unknown, None) | (Lookup::Unreadable(_), _) => None,
            (Lookup::Unknown, Some(_)) => Some("unknown coin".to_string()),
            (Lookup::Found(an), _) => Some(format!("found {}..", crate::invariants::hex(&an[..4]))),
            (other, _) => Some(format!("{other:?}")),
        };
        if matches!(got, Lookup::Unreadable(_)) {
            self.stats.unreadable += 1;
        }
        if let (None, Lookup::Found(an)) = (&wrong, got) {
            self.check_index_coin(&store, coin, &an, why);
        }
        match wrong {
            None => {}
            Some(w) => self.violate(format!(
                "{why}: a lookup of coin {} answered {w}{}, the store must show {}",
                coin_name(coin),
                if loaded { " after a load" } else { "" },
                want.as_ref().map_or("unknown".into(), short)
            )),
        }
    }

    fn op_record(&mut self) {
        let coin = self.any_coin();
        let Some(store) = self.store() else { return };
        self.check_record(&store, coin, "record");
    }

    /// A record read of `coin` must give what the model says (AN and status byte);
    /// a read error is `Unreadable`, never an unknown coin.
    fn check_record(&mut self, store: &SimStore, coin: CoinId, why: &str) {
        let want = self.model.visible(coin);
        self.stats.reads += 1;
        let got = store.record(coin, self.ts());
        self.log(|| match &got {
            Ok(r) => format!(
                "{why}: record {}: {}",
                coin_name(coin),
                r.as_ref().map_or("unknown".into(), short)
            ),
            Err(e) => format!("{why}: record {}: {}", coin_name(coin), error_text(e)),
        });
        match got {
            Ok(r) if r == want => {}
            Ok(r) => self.violate(format!(
                "{why}: a record read of coin {} gave {}, the store must show {}",
                coin_name(coin),
                r.as_ref().map_or("unknown".into(), short),
                want.as_ref().map_or("unknown".into(), short)
            )),
            Err(StoreError::Unreadable { .. }) => self.stats.unreadable += 1,
            // Fail-stopped after a failed sync: no read is answered from memory.
            Err(StoreError::Failed) if store.refuses_reads() => self.stats.unreadable += 1,
            Err(e) => self.violate(format!(
                "{why}: a record read of coin {} failed with {}, not Unreadable",
                coin_name(coin),
                error_text(&e)
            )),
        }
    }

    fn op_load(&mut self) {
        let mut pages = self.knobs.pages.clone();
        pages.push(self.knobs.absent_page);
        if let Some((p, _)) = self.knobs.short_page {
            pages.push(p);
        }
        let page = self.rng.pick(&pages).unwrap_or(self.knobs.absent_page);
        let Some(store) = self.store() else { return };
        let got = store.load(page, self.ts());
        self.log(|| {
            format!(
                "load {page:?}: {:?}",
                got.as_ref().map_err(|e| error_text(e))
            )
        });
        match got {
            Ok(()) => {}
            Err(StoreError::Unreadable { .. }) => self.stats.unreadable += 1,
            Err(e) => self.violate(format!(
                "a load of {page:?} failed with {}, not Unreadable",
                error_text(&e)
            )),
        }
    }

    fn op_maintain(&mut self) {
        self.now += self.rng.below(1_500_000);
        let Some(store) = self.store() else { return };
        let refreshed = store.maintain(self.ts());
        let segments = store.log_segments();
        self.log(|| format!("maintain: {refreshed:?}, {segments} log segment(s)"));
    }

    // ----- crashes and recovery -----

    /// The open store. Every operation runs with one (open_store either opens one or
    /// stops the run with a violation), so `None` is the world's own bug, reported.
    fn store(&mut self) -> Option<Arc<SimStore>> {
        if self.store.is_none() {
            self.violate("an operation ran with no store open".into());
        }
        self.store.clone()
    }

    /// Opens the store (recovery), trying again after failures, some with a crash in
    /// between, and with a power cut armed in some; after three failures the disk
    /// heals. False (and a violation) if even the healed disk cannot be recovered.
    fn open_store(&mut self) -> bool {
        for attempt in 0..8u32 {
            if attempt == 3 {
                self.log(|| "the disk heals (no more faults for this recovery)".into());
                self.disk.set_faults(false);
                self.disk.cancel_power_cut();
            }
            if attempt < 2
                && !self.disk.power_cut_armed()
                && self.rng.chance(self.knobs.recovery_power_cut_pm)
            {
                let calls = self
                    .rng
                    .below(u64::from(self.knobs.power_cut_max_calls) + 1)
                    as u32;
                self.log(|| format!("power cut armed in the recovery: after {calls} call(s)"));
                self.disk.cut_power_after(calls);
            }
            let read_faults = |d: &SimDisk| {
                let c = d.counts();
                c.read_errors + c.meta_errors
            };
            let faults_before = read_faults(&self.disk);
            match DiskStore::with_disk(Arc::clone(&self.disk), self.config.clone()) {
                Ok(store) if !self.disk.power_lost() => {
                    // The index scan leaves out a page it cannot read (it is indexed
                    // when next read): only an open without read faults built it whole.
                    self.index_whole = read_faults(&self.disk) == faults_before;
                    let r = store.recovery().clone();
                    self.stats.recoveries += 1;
                    self.stats.entries_replayed += r.entries;
                    if r.dropped_bytes > 0 {
                        self.stats.torn_tails_dropped += 1;
                    }
                    self.log(|| format!("recovered: {r:?}"));
                    self.store = Some(Arc::new(store));
                    self.disk.set_faults(true);
                    return true;
                }
                Ok(_) => {
                    self.log(|| "recovered, but the power went: crash".into());
                    self.stats.crashes += 1;
                    self.disk.crash();
                }
                Err(e) => {
                    self.stats.failed_recoveries += 1;
                    let text = error_text(&e);
                    self.log(|| format!("recovery failed: {text}"));
                    if self.disk.power_lost() || self.rng.chance(500) {
                        self.log(|| "crash during the recovery".into());
                        self.stats.crashes += 1;
                        self.disk.crash();
                    }
                    if attempt == 7 {
                        self.violate(format!("recovery fails on a healed disk: {text}"));
                    }
                }
            }
        }
        false
    }

    /// Drops the store (the process is gone), crashes the disk if `power_loss`, and
    /// recovers; judges the recovery, then crashes and recovers once more with nothing
    /// new, which must leave the same page bytes.
    fn crash_and_recover(&mut self, power_loss: bool) {
        self.store = None;
        if power_loss {
            self.stats.crashes += 1;
            self.disk.crash();
        }
        self.check_page_files("after the crash");
        if self.violation.is_some() || !self.open_store() {
            return;
        }
        self.judge_recovery();
        self.check_locker_index("after recovery");
        if self.violation.is_some() {
            return;
        }
        let before = self.page_snapshot();
        self.store = None;
        self.stats.crashes += 1;
        self.disk.crash();
        self.log(|| "idempotence: crash again with nothing new".into());
        if !self.open_store() {
            return;
        }
        self.stats.idempotence_checks += 1;
        self.check_locker_index("after a second recovery");
        let after = self.page_snapshot();
        if let Some(((page, _), _)) = before.iter().zip(&after).find(|(a, b)| a != b) {
            self.violate(format!(
                "recovery is not idempotent: page {page:?} changed in a second crash and \
                 recovery with nothing new"
            ));
        }
    }

    fn page_snapshot(&self) -> Vec<(PageId, Option<Vec<u8>>)> {
        self.initial
            .keys()
            .map(|p| (*p, self.disk.page_bytes(*p)))
            .collect()
    }

    /// (d): every page file keeps its size; the absent page stays absent.
    fn check_page_files(&mut self, when: &str) {
        for (page, bytes) in self.initial.clone() {
            let now = self.disk.page_bytes(page).map(|b| b.len());
            let durable = self.disk.durable_page_bytes(page).map(|b| b.len());
            if now != Some(bytes.len()) || durable != Some(bytes.len()) {
                self.violate(format!(
                    "{when}: page file {page:?} is {now:?} bytes ({durable:?} durable), it \
                     was {}",
                    bytes.len()
                ));
                return;
            }
        }
        if self.disk.page_bytes(self.knobs.absent_page).is_some() {
            self.violate(format!(
                "{when}: the absent page {:?} has a file",
                self.knobs.absent_page
            ));
        }
    }

    /// (f) The locker index holds `coin` exactly where its record `an` says: in the
    /// locker `an` when `an` is a locker key, in none of the seed's lockers otherwise.
    fn check_index_coin(&mut self, store: &SimStore, coin: CoinId, an: &An, why: &str) {
        let index = store.locker_index();
        for key in self.locker_keys.clone() {
            let held = index.coins(&key).contains(&coin);
            if held != (key == *an) {
                self.violate(format!(
                    "{why}: the locker index {} coin {} in locker {}.., but its record holds                      {}..",
                    if held { "has" } else { "lacks" },
                    coin_name(coin),
                    crate::invariants::hex(&key[..4]),
                    crate::invariants::hex(&an[..4]),
                ));
                return;
            }
        }
    }

    /// (f) After a recovery the locker index is exactly what a scan of the page files
    /// gives: every record whose AN is a locker key, in that locker, and nothing else.
    /// Skipped after an open that met a read fault: the store leaves a page it cannot
    /// read out of the scan and indexes it when it next reads it (checked by lookups).
    fn check_locker_index(&mut self, when: &str) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if !self.index_whole {
            return;
        }
        let mut want: BTreeMap<An, BTreeSet<CoinId>> = BTreeMap::new();
        for page in self.knobs.pages.clone() {
            let Some(bytes) = self.disk.page_bytes(page) else {
                continue;
            };
            if bytes.len() != PAGE_BYTES {
                continue;
            }
            for i in 0..RECORDS_PER_PAGE as usize {
                if let Some(r) = record_at(&bytes, i) {
                    if is_locker_key(&r.an) {
                        want.entry(r.an).or_default().insert(coin_of(page, i));
                    }
                }
            }
        }
        let index = store.locker_index();
        let total: usize = want.values().map(BTreeSet::len).sum();
        let mut wrong = (index.entries() != total).then(|| {
            format!(
                "{} entries, the records hold {total} coins in lockers",
                index.entries()
            )
        });
        for (key, coins) in &want {
            let got: BTreeSet<CoinId> = index.coins(key).into_iter().collect();
            if wrong.is_none() && &got != coins {
                wrong = Some(format!(
                    "locker {}.. holds {} coins in the index, {} in the records",
                    crate::invariants::hex(&key[..4]),
                    got.len(),
                    coins.len()
                ));
            }
        }
        self.stats.index_checks += 1;
        if let Some(w) = wrong {
            self.violate(format!(
                "{when}: the locker index is not what the records imply: {w}"
            ));
        }
    }

    /// (a), (b) and (d) after a recovery, from the disk's bytes (no fault in the way):
    /// every page durable, every untracked record as it was, the short page untouched,
    /// and the tracked records explained by the model.
    fn judge_recovery(&mut self) {
        self.check_page_files("after recovery");
        if self.violation.is_some() {
            return;
        }
        let mut observed = BTreeMap::new();
        for (page, initial) in self.initial.clone() {
            let (Some(now), Some(durable)) = (
                self.disk.page_bytes(page),
                self.disk.durable_page_bytes(page),
            ) else {
                return;
            };
            if now != durable {
                self.violate(format!(
                    "after recovery page {page:?} holds unsynced bytes (the log is gone: a \
                     crash now would lose them)"
                ));
                return;
            }
            let tracked = self.tracked.get(&page).cloned().unwrap_or_default();
            for (i, (new, old)) in now
                .chunks(RECORD_BYTES)
                .zip(initial.chunks(RECORD_BYTES))
                .enumerate()
            {
                if tracked.contains(&i) {
                    if let Some(r) = record_at(&now, i) {
                        observed.insert(coin_of(page, i), r);
                    }
                } else if new != old {
                    self.violate(format!(
                        "a record holds bytes never written: record {i} of page {page:?}, \
                         which nobody wrote, changed"
                    ));
                    return;
                }
            }
        }
        if let Err(what) = self.model.recovered(&observed) {
            self.violate(what);
        }
    }
}

/// Runs the store world of `seed` to the end, without a trace.
pub fn run_store_seed(seed: u64) -> Result<StoreStats, Box<(StoreKnobs, Violation)>> {
    let knobs = StoreKnobs::from_seed(seed);
    let mut world = StoreWorld::new(knobs.clone(), false);
    match world.run_all() {
        Ok(()) => Ok(world.stats),
        Err(v) => Err(Box::new((knobs, v))),
    }
}

/// The one command that replays store seed `seed` in this build.
pub fn store_replay_command(seed: u64) -> String {
    crate::replay_command_of("store-replay", seed)
}
