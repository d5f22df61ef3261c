//! [`SimDisk`]: the disk raida-store runs on in the simulator: raida-store's
//! [`MemStorage`] inside its one fault-injecting wrapper ([`Faulty`]), with the
//! simulator's [`Faults`] policy ([`SimFaults`]). Every fault comes from the seed (its
//! own [`Rng`] stream), nothing from the OS, and nothing is iterated in hash order, so
//! a seed replays the same disk. The page and log semantics are raida-store's own
//! (its [`Disk`](raida_store::Disk) over any storage); this module only decides faults
//! and what a crash leaves.
//!
//! **Bytes.** Every file has its current bytes (what a read sees) and its durable
//! bytes (what survives a power loss). A sync makes a file's current bytes durable;
//! creating and removing log segments is durable at once (the [`Storage`] trait says so).
//!
//! **Crashes** ([`SimDisk::crash`]) lose every write not yet synced and tear them at
//! 512-byte sectors: for each file whose current bytes differ from its durable ones,
//! each sector independently keeps the new bytes or the durable ones (a sector that was
//! never durable reads as zeros). A log segment that grew by unsynced appends keeps any
//! length between its durable and its current size, so its tail may end inside an
//! entry; a segment cut back by an unsynced truncation keeps either length. A page file
//! keeps its size: the store never changes it, and neither does a crash.
//!
//! **Power cuts** ([`SimDisk::cut_power_after`]): after `n` more calls, every call fails
//! and changes nothing until the next [`crash`](SimDisk::crash), which is how the world
//! crashes the store in the middle of an operation (between a log append and its sync,
//! between in-place writes, inside a checkpoint or a recovery).
//!
//! **Faults** ([`DiskFaults`]), each drawn per byte-level call (a page read is a
//! metadata look and a read; an in-place write is a look, one write per record and a
//! look):
//! - a page read, a page's metadata or a directory's metadata fails: always `Err`,
//!   never an absent page;
//! - a page read is slow: it takes a drawn latency, which [`SimDisk::take_latency_us`]
//!   hands to the world and the world adds to its simulated clock. The store has no
//!   timeout of its own, so what a slow read can change is what time decides in the
//!   store: how long an unreadable page answers 252, when the next freshness pass runs;
//! - a log append fails after writing a drawn prefix of its bytes; a log sync fails,
//!   and in half of those the bytes did reach the disk anyway (a failed sync says
//!   "maybe", not "no"); a truncation fails; an in-place page write fails after writing
//!   a drawn prefix of its records; a page sync fails; listing, reading, creating or
//!   removing a log segment fails.
//!
//! **A writer that arrives during a sync** ([`SimDisk::arm_sync_hook`]): the store's
//! group commit only shows its followers when a second writer comes while a sync runs.
//! The world arms a hook; the next log sync of appended bytes runs it before they
//! become durable.
//! The hook starts a writer on a helper thread ([`mark_helper_thread`]) and returns once
//! that writer has returned or waits for the next sync. From then until
//! [`SimDisk::release_helper`], the helper's disk calls wait, and the in-place page
//! writes (and reads) of the other threads draw no fault: so the only thing that runs
//! is the leader finishing its write, and what the held writer decides next (lead the
//! next batch, or give up because the store failed) cannot depend on timing.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raida_core::keys::PageId;
use raida_store::{
    page_file_path, Call, Fault, Faults, Faulty, FileKind, FileMeta, MemStorage, Op, Segment,
    Storage, LOG_DIR,
};

use crate::rng::Rng;

/// The unit a crash tears writes at.
pub const SECTOR: usize = 512;

/// The largest log segment (`StoreConfig::segment_bytes`) a world's seed picks: large
/// enough that a run's log never rolls over. Not the store's default (32 MiB): once
/// written, the log fills its next segment with zeros ahead of its writes, and filling
/// megabytes in every run would cost a swarm most of its seeds a second.
pub const LARGE_SEGMENT_BYTES: u64 = 64 << 10;

/// How long a held helper's disk call waits for its release between checks, and how
/// many checks it makes before it gives up and reports the disk stuck (20 s in all: a
/// bound that fails the seed loudly instead of hanging it; a healthy run never waits
/// for it).
const HOLD_POLL: Duration = Duration::from_millis(100);
const HOLD_ROUNDS: u32 = 200;

/// What the hook armed with [`SimDisk::arm_sync_hook`] does, inside a log sync: it
/// returns whether the writer it started is still running (then its disk calls are
/// held until [`SimDisk::release_helper`]).
pub type SyncHook = Box<dyn FnOnce() -> bool + Send>;

thread_local! {
    static HELPER: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as the helper writer of a sync hook (its calls are the
/// ones held; see the module documentation).
pub fn mark_helper_thread() {
    HELPER.with(|h| h.set(true));
}

fn is_helper_thread() -> bool {
    HELPER.with(Cell::get)
}

/// The fault rates of one disk, per mille of calls (drawn from the seed by the world).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskFaults {
    /// Page reads that fail.
    pub read_error_pm: u32,
    /// Page and directory metadata reads that fail.
    pub meta_error_pm: u32,
    /// Page reads that are slow.
    pub slow_read_pm: u32,
    /// The longest slow read, microseconds.
    pub slow_read_max_us: u64,
    /// Log appends that fail (after a drawn prefix reached the file).
    pub append_error_pm: u32,
    /// Log syncs that fail.
    pub sync_error_pm: u32,
    /// Of the failed log syncs, those that made the bytes durable anyway.
    pub failed_sync_durable_pm: u32,
    /// Log truncations that fail.
    pub truncate_error_pm: u32,
    /// In-place page writes that fail (after a drawn prefix of their records).
    pub page_write_error_pm: u32,
    /// Page syncs that fail.
    pub page_sync_error_pm: u32,
    /// Log segment listings, reads, creations and removals that fail.
    pub log_file_error_pm: u32,
    /// At a crash, the chance that one torn sector keeps its new bytes.
    pub sector_keep_pm: u32,
}

impl DiskFaults {
    /// No fault; a crash keeps each unsynced sector with probability 1/2.
    pub fn none() -> DiskFaults {
        DiskFaults {
            sector_keep_pm: 500,
            failed_sync_durable_pm: 500,
            ..DiskFaults::default()
        }
    }

    /// Rates drawn from `rng`: each fault is off in about half the seeds, so that some
    /// worlds are quiet and some are hostile.
    pub fn draw(rng: &mut Rng) -> DiskFaults {
        let mut rate = |max: u64| {
            if rng.chance(500) {
                0
            } else {
                rng.range(1, max) as u32
            }
        };
        let mut f = DiskFaults {
            read_error_pm: rate(200),
            meta_error_pm: rate(100),
            slow_read_pm: rate(300),
            append_error_pm: rate(100),
            sync_error_pm: rate(150),
            truncate_error_pm: rate(300),
            page_write_error_pm: rate(30),
            page_sync_error_pm: rate(200),
            log_file_error_pm: rate(50),
            ..DiskFaults::default()
        };
        f.slow_read_max_us = rng.range(1_000, 2_000_000);
        f.failed_sync_durable_pm = 500;
        f.sector_keep_pm = rng.pick(&[0, 100, 500, 900, 1000]).unwrap_or(500);
        f
    }
}

/// What the disk did, for traces and the swarm's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskCounts {
    /// Page reads (failed ones included).
    pub page_reads: u64,
    /// Failed page reads.
    pub read_errors: u64,
    /// Failed metadata reads.
    pub meta_errors: u64,
    /// Slow page reads, and their latency in all (microseconds).
    pub slow_reads: u64,
    /// See `slow_reads`.
    pub slow_read_us: u64,
    /// Log syncs that succeeded.
    pub log_syncs: u64,
    /// Injected write-side faults (appends, syncs, truncations, page writes and syncs,
    /// log files).
    pub write_faults: u64,
    /// Calls refused because the power was cut.
    pub powerless_calls: u64,
    /// Crashes.
    pub crashes: u64,
    /// Sectors a crash tore (kept the durable bytes although new ones were written).
    pub torn_sectors: u64,
    /// Log segments a crash left with a tail shorter than what was appended.
    pub cut_tails: u64,
    /// Sync hooks run.
    pub hooks: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Power {
    On,
    /// This many more calls succeed.
    CutAfter(u32),
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Helper {
    None,
    /// The hook's writer runs while the leader waits inside its sync.
    Arriving,
    /// The hook returned with its writer still running: the writer's calls wait.
    Held,
}

struct State {
    rng: Rng,
    faults: DiskFaults,
    faults_on: bool,
    power: Power,
    latency_us: u64,
    counts: DiskCounts,
    hook: Option<SyncHook>,
    helper: Helper,
    stuck: bool,
}

impl State {
    /// One disk call against the power: `false` once it is gone.
    fn powered(&mut self) -> bool {
        match self.power {
            Power::On => true,
            Power::CutAfter(0) | Power::Lost => {
                self.power = Power::Lost;
                self.counts.powerless_calls += 1;
                false
            }
            Power::CutAfter(n) => {
                self.power = Power::CutAfter(n - 1);
                true
            }
        }
    }

    /// Whether this call fails, at `pm` per mille.
    fn fault(&mut self, pm: u32) -> bool {
        self.faults_on && pm > 0 && self.rng.chance(pm)
    }

    /// A write-side fault, counted.
    fn write_fault(&mut self, pm: u32) -> bool {
        let f = self.fault(pm);
        if f {
            self.counts.write_faults += 1;
        }
        f
    }
}

/// What a crash leaves of a file: see the module documentation.
fn torn(
    durable: &[u8],
    current: &[u8],
    rng: &mut Rng,
    keep_pm: u32,
    c: &mut DiskCounts,
) -> Vec<u8> {
    if durable == current {
        return current.to_vec();
    }
    let appended = current.len() > durable.len() && current.starts_with(durable);
    let len = if appended {
        rng.range_usize(durable.len(), current.len())
    } else if rng.chance(keep_pm) {
        current.len()
    } else {
        durable.len()
    };
    if appended && len < current.len() {
        c.cut_tails += 1;
    }
    let mut out = vec![0u8; len];
    for (s, sector) in out.chunks_mut(SECTOR).enumerate() {
        let start = s * SECTOR;
        let end = start + sector.len();
        let new = current.get(start..end.min(current.len())).unwrap_or(&[]);
        let old = durable.get(start..end.min(durable.len())).unwrap_or(&[]);
        let source = if new == old || rng.chance(keep_pm) {
            new
        } else {
            c.torn_sectors += 1;
            old
        };
        sector[..source.len()].copy_from_slice(source);
    }
    out
}

/// The simulator's [`Faults`] policy (see the module documentation).
pub struct SimFaults {
    /// The storage it decides for: a log sync runs the hook only when the segment has
    /// written bytes that are not durable yet.
    storage: Arc<MemStorage>,
    state: Mutex<State>,
    /// Signalled when a held helper is released.
    released: Condvar,
}

impl fmt::Debug for SimFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFaults")
            .field("counts", &self.lock().counts)
            .finish_non_exhaustive()
    }
}

impl SimFaults {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every section under the lock is short and panic-free.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock, for a disk call: a held helper's call first waits for its release.
    fn enter(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        if is_helper_thread() {
            let mut rounds = 0;
            while st.helper == Helper::Held {
                if rounds == HOLD_ROUNDS {
                    st.stuck = true;
                    st.helper = Helper::None;
                    break;
                }
                st = match self.released.wait_timeout(st, HOLD_POLL) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
                rounds += 1;
            }
        }
        st
    }

    /// A log sync: the hook first, if one is armed and the segment has written bytes
    /// (only a batch's sync: the sync after a truncation is the leader undoing a
    /// failed batch, which it does holding the log's mutex, so no writer could arrive
    /// at the log then, nor could the hook count the waiting ones).
    fn log_sync(&self, path: &str) -> Fault {
        let hook = {
            let mut st = self.enter();
            if self.storage.has_unsynced_data(path) {
                st.hook.take()
            } else {
                None
            }
        };
        if let Some(hook) = hook {
            {
                let mut st = self.lock();
                st.counts.hooks += 1;
                st.helper = Helper::Arriving;
            }
            // Without the lock: its writer calls the disk.
            let still_running = hook();
            self.lock().helper = if still_running {
                Helper::Held
            } else {
                Helper::None
            };
        }
        // Not `enter`: the leader finishing its sync is never held.
        let mut st = self.lock();
        if !st.powered() {
            return Fault::Fail;
        }
        let pm = st.faults.sync_error_pm;
        if st.write_fault(pm) {
            // A failed sync says "maybe": in some, the bytes reached the disk anyway.
            let durable_pm = st.faults.failed_sync_durable_pm;
            return if st.rng.chance(durable_pm) {
                Fault::FailAfter
            } else {
                Fault::Fail
            };
        }
        Fault::None
    }
}

impl Faults for SimFaults {
    fn decide(&self, call: &Call<'_>) -> Fault {
        if call.kind == FileKind::Log && call.op == Op::Sync {
            return self.log_sync(call.path);
        }
        let mut st = self.enter();
        let page = matches!(call.kind, FileKind::Page(_));
        // A non-helper's page looks, reads and writes while a helper is held draw no
        // fault and do not count towards a power cut (see the module documentation).
        let exempt = page
            && matches!(call.op, Op::Meta | Op::Read | Op::Write)
            && st.helper == Helper::Held
            && !is_helper_thread();
        if exempt {
            return if st.power == Power::Lost {
                Fault::Fail
            } else {
                if call.op == Op::Read {
                    st.counts.page_reads += 1;
                }
                Fault::None
            };
        }
        if !st.powered() {
            return Fault::Fail;
        }
        let f = st.faults.clone();
        let fail = |yes: bool| if yes { Fault::Fail } else { Fault::None };
        match (call.kind, call.op) {
            (FileKind::Page(_), Op::Read) => {
                st.counts.page_reads += 1;
                if st.fault(f.slow_read_pm) {
                    let us = st.rng.range(1, f.slow_read_max_us);
                    st.latency_us += us;
                    st.counts.slow_reads += 1;
                    st.counts.slow_read_us += us;
                }
                let failed = st.fault(f.read_error_pm);
                if failed {
                    st.counts.read_errors += 1;
                }
                fail(failed)
            }
            (FileKind::Page(_) | FileKind::PageDir, Op::Meta) => {
                let failed = st.fault(f.meta_error_pm);
                if failed {
                    st.counts.meta_errors += 1;
                }
                fail(failed)
            }
            (FileKind::Page(_), Op::Write) => fail(st.write_fault(f.page_write_error_pm)),
            (FileKind::Page(_), Op::Sync) => fail(st.write_fault(f.page_sync_error_pm)),
            (FileKind::Log, Op::Write) => {
                if st.write_fault(f.append_error_pm) {
                    // A failed append still wrote a prefix of its bytes.
                    Fault::Partial(st.rng.below(call.len as u64 + 1) as usize)
                } else {
                    Fault::None
                }
            }
            (FileKind::Log, Op::SetLen) => fail(st.write_fault(f.truncate_error_pm)),
            (FileKind::Log, Op::List | Op::Read | Op::Create | Op::Remove) => {
                fail(st.write_fault(f.log_file_error_pm))
            }
            _ => Fault::None,
        }
    }

    fn finished(&self, call: &Call<'_>, ok: bool) {
        if ok && call.kind == FileKind::Log && call.op == Op::Sync {
            self.lock().counts.log_syncs += 1;
        }
    }
}

/// The simulator's disk (see the module documentation).
pub struct SimDisk {
    inner: Faulty<Arc<MemStorage>, SimFaults>,
}

/// Counts only: the bytes are the coins' secrets, and a hook is not printable.
impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDisk")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl SimDisk {
    /// An empty disk whose faults are drawn from `rng` at `faults`' rates.
    pub fn new(rng: Rng, faults: DiskFaults) -> SimDisk {
        let storage = Arc::new(MemStorage::new());
        let policy = SimFaults {
            storage: Arc::clone(&storage),
            state: Mutex::new(State {
                rng,
                faults,
                faults_on: true,
                power: Power::On,
                latency_us: 0,
                counts: DiskCounts::default(),
                hook: None,
                helper: Helper::None,
                stuck: false,
            }),
            released: Condvar::new(),
        };
        SimDisk {
            inner: Faulty::wrap(storage, policy),
        }
    }

    fn storage(&self) -> &MemStorage {
        self.inner.storage()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.policy().lock()
    }

    /// Writes `page`'s whole file, durable at once (the world's setup).
    pub fn put_page(&self, page: PageId, bytes: &[u8]) {
        self.storage().put(&page_file_path(page), bytes);
    }

    /// `page`'s current bytes (what a read sees now), if it has a file.
    pub fn page_bytes(&self, page: PageId) -> Option<Vec<u8>> {
        self.storage().contents(&page_file_path(page))
    }

    /// `page`'s durable bytes (what a crash would start from), if it has a file.
    pub fn durable_page_bytes(&self, page: PageId) -> Option<Vec<u8>> {
        self.storage().durable_contents(&page_file_path(page))
    }

    /// The log segments' current sizes, in order.
    pub fn log_sizes(&self) -> Vec<(Segment, usize)> {
        self.storage()
            .files_under(&format!("{LOG_DIR}/"))
            .into_iter()
            .filter_map(|(path, bytes)| {
                let hex = path.rsplit('/').next()?.strip_suffix(".log")?;
                Some((u64::from_str_radix(hex, 16).ok()?, bytes.len()))
            })
            .collect()
    }

    /// Turns fault injection on or off (the world turns it off to let a recovery that
    /// keeps failing finish, as a disk that heals).
    pub fn set_faults(&self, on: bool) {
        self.lock().faults_on = on;
    }

    /// Changes the fault rates.
    pub fn faults(&self, f: impl FnOnce(&mut DiskFaults)) {
        f(&mut self.lock().faults);
    }

    /// After `calls` more disk calls, the power goes: every later call fails and
    /// changes nothing until [`crash`](Self::crash).
    pub fn cut_power_after(&self, calls: u32) {
        let mut st = self.lock();
        if st.power == Power::On {
            st.power = Power::CutAfter(calls);
        }
    }

    /// Whether the power went (a call failed for it).
    pub fn power_lost(&self) -> bool {
        self.lock().power == Power::Lost
    }

    /// Whether a power cut is armed and has not happened yet.
    pub fn power_cut_armed(&self) -> bool {
        matches!(self.lock().power, Power::CutAfter(_))
    }

    /// Disarms a power cut that has not happened yet.
    pub fn cancel_power_cut(&self) {
        let mut st = self.lock();
        if matches!(st.power, Power::CutAfter(_)) {
            st.power = Power::On;
        }
    }

    /// A power loss and restart: every unsynced write is lost or torn at 512-byte
    /// sectors, drawn from the seed (see the module documentation). The power is back.
    pub fn crash(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let keep = st.faults.sector_keep_pm;
        self.storage().crash_with(|_, durable, current| {
            torn(durable, current, &mut st.rng, keep, &mut st.counts)
        });
        st.counts.crashes += 1;
        st.power = Power::On;
        st.hook = None;
        st.helper = Helper::None;
    }

    /// A power loss whose outcome a test chooses: the unsynced writes to the pages in
    /// `kept` survive whole, those to every other page are lost, and each log segment
    /// keeps `log_tail` bytes of what was written to it since its last sync, from the
    /// first byte that changed (fewer when fewer were written); past them it holds its
    /// durable bytes (the zeros of a segment prepared ahead).
    pub fn crash_keeping(&self, kept: &[PageId], log_tail: usize) {
        let mut guard = self.lock();
        let st = &mut *guard;
        self.storage()
            .crash_with(|path, durable, current| match FileKind::of(path) {
                FileKind::Page(page) if kept.contains(&page) => current.to_vec(),
                FileKind::Log => {
                    let first = current
                        .iter()
                        .zip(durable)
                        .position(|(c, d)| c != d)
                        .unwrap_or(current.len().min(durable.len()));
                    let end = (first + log_tail).min(current.len());
                    let mut after = current[..end].to_vec();
                    if let Some(rest) = durable.get(end..) {
                        after.extend_from_slice(rest);
                    }
                    if after != current {
                        st.counts.cut_tails += 1;
                    }
                    after
                }
                _ => durable.to_vec(),
            });
        st.counts.crashes += 1;
        st.power = Power::On;
    }

    /// Simulated time the disk's slow reads took since the last call.
    pub fn take_latency_us(&self) -> u64 {
        std::mem::take(&mut self.lock().latency_us)
    }

    /// What the disk did so far.
    pub fn counts(&self) -> DiskCounts {
        self.lock().counts
    }

    /// Arms `hook` for the next log sync (replacing one that did not run).
    pub fn arm_sync_hook(&self, hook: SyncHook) {
        self.lock().hook = Some(hook);
    }

    /// Takes back a hook that no sync ran: `None` when one did.
    pub fn take_sync_hook(&self) -> Option<SyncHook> {
        self.lock().hook.take()
    }

    /// Lets a held helper's disk calls go on.
    pub fn release_helper(&self) {
        self.lock().helper = Helper::None;
        self.inner.policy().released.notify_all();
    }

    /// Whether a held helper waited for its release longer than any run should (a hang
    /// turned into an error).
    pub fn stuck(&self) -> bool {
        self.lock().stuck
    }
}

impl Storage for SimDisk {
    fn meta(&self, path: &str) -> io::Result<Option<FileMeta>> {
        self.inner.meta(path)
    }
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(path, offset, buf)
    }
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_at(path, offset, bytes)
    }
    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        self.inner.set_len(path, len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.inner.sync(path)
    }
    fn create(&self, path: &str) -> io::Result<()> {
        self.inner.create(path)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raida_core::keys::{PAGE_BYTES, RECORD_BYTES};
    use raida_store::{Disk, RecordWrite};

    fn page(n: u16) -> PageId {
        PageId {
            denomination: 1,
            number: n,
        }
    }

    fn disk(keep_pm: u32, seed: u64) -> SimDisk {
        let mut f = DiskFaults::none();
        f.sector_keep_pm = keep_pm;
        let d = SimDisk::new(Rng::new(seed), f);
        d.put_page(page(0), &[0xAA; PAGE_BYTES]);
        d
    }

    fn write_all(d: &SimDisk, fill: u8) {
        let records: Vec<RecordWrite> = (0..1024u16)
            .map(|index| RecordWrite {
                index,
                bytes: [fill; RECORD_BYTES],
            })
            .collect();
        d.write_records(page(0), &records).expect("write");
    }

    #[test]
    fn a_crash_tears_an_unsynced_page_at_sector_boundaries_and_keeps_its_size() {
        for seed in 0..20 {
            let d = disk(500, seed);
            write_all(&d, 0xBB);
            d.crash();
            let after = d.page_bytes(page(0)).expect("page");
            assert_eq!(after.len(), PAGE_BYTES);
            let mut kinds = [0; 2];
            for sector in after.chunks(SECTOR) {
                // Each sector is wholly old or wholly new.
                assert!(sector.iter().all(|&b| b == sector[0]), "seed {seed}");
                kinds[usize::from(sector[0] == 0xBB)] += 1;
            }
            assert!(kinds[0] > 0 && kinds[1] > 0, "seed {seed}: {kinds:?}");
            assert_eq!(d.durable_page_bytes(page(0)), Some(after));
        }
    }

    #[test]
    fn synced_bytes_survive_every_crash() {
        let d = disk(0, 3);
        write_all(&d, 0xBB);
        d.sync_page(page(0)).expect("sync");
        write_all(&d, 0xCC);
        d.crash();
        assert_eq!(d.page_bytes(page(0)), Some(vec![0xBB; PAGE_BYTES]));
    }

    #[test]
    fn an_unsynced_log_append_keeps_any_prefix_and_never_touches_the_synced_part() {
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let d = disk(500, seed);
            d.log_create(1).expect("create");
            d.log_append(1, 0, &[1; 100]).expect("append");
            d.log_sync(1).expect("sync");
            d.log_append(1, 100, &[2; 2000]).expect("append");
            d.crash();
            let bytes = d.log_read(1).expect("read");
            assert!(bytes.len() >= 100 && bytes.len() <= 2100, "seed {seed}");
            assert_eq!(bytes[..100], [1; 100]);
            // Past the durable part, a sector holds the appended bytes or zeros.
            for (i, &b) in bytes.iter().enumerate().skip(100) {
                assert!(b == 2 || b == 0, "seed {seed}: byte {i} is {b}");
            }
            lengths.insert(bytes.len());
        }
        assert!(lengths.len() > 10, "tails of many lengths: {lengths:?}");
    }

    #[test]
    fn after_a_power_cut_every_call_fails_and_changes_nothing_until_the_crash() {
        let d = disk(1000, 1);
        write_all(&d, 0xBB);
        d.cut_power_after(0);
        assert!(!d.power_lost());
        assert!(d.sync_page(page(0)).is_err());
        assert!(d.power_lost());
        assert!(d.read_page(page(0)).is_err());
        d.crash();
        assert!(!d.power_lost());
        // The unsynced write was torn or kept (keep_pm 1000: kept), never synced.
        assert!(d.read_page(page(0)).is_ok());
    }

    #[test]
    fn a_read_error_is_an_error_never_an_absent_page() {
        let d = disk(500, 1);
        d.faults(|f| f.read_error_pm = 1000);
        assert!(d.read_page(page(0)).is_err());
        d.faults(|f| f.meta_error_pm = 1000);
        assert!(d.read_page(page(9)).is_err(), "an absent page fails too");
    }
}
