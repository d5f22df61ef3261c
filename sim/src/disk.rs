//! [`SimDisk`]: the disk raida-store runs on in the simulator. Every fault comes from
//! the seed (its own [`Rng`] stream), nothing from the OS, and nothing is iterated in
//! hash order, so a seed replays the same disk.
//!
//! **Bytes.** Every file has its current bytes (what a read sees) and its durable
//! bytes (what survives a power loss). A sync makes a file's current bytes durable;
//! creating and removing log segments is durable at once (the [`Disk`] trait says so).
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
//! **Faults** ([`DiskFaults`]), each drawn per call:
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
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raida_core::keys::{PageId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};
use raida_store::{DirId, Disk, FileMeta, PageRead, RecordWrite, Segment, Written};

use crate::rng::Rng;

/// The unit a crash tears writes at.
pub const SECTOR: usize = 512;

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

#[derive(Clone, Debug, Default)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Stands for mtime and ctime: moved by every change.
    version: i128,
    ino: u64,
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
    pages: BTreeMap<PageId, SimFile>,
    dirs: BTreeMap<DirId, i128>,
    segments: BTreeMap<Segment, SimFile>,
    rng: Rng,
    faults: DiskFaults,
    faults_on: bool,
    power: Power,
    clock: i128,
    next_ino: u64,
    latency_us: u64,
    counts: DiskCounts,
    hook: Option<SyncHook>,
    helper: Helper,
    stuck: bool,
}

fn meta(f: &SimFile) -> FileMeta {
    FileMeta {
        len: f.data.len() as u64,
        mtime_ns: f.version,
        ctime_ns: f.version,
        ino: f.ino,
        dev: 7,
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("simulated fault: {what}"))
}

fn no_segment() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such log segment")
}

impl State {
    fn tick(&mut self) -> i128 {
        self.clock += 1;
        self.clock
    }

    /// One disk call against the power: `Err` once it is gone.
    fn powered(&mut self) -> io::Result<()> {
        match self.power {
            Power::On => Ok(()),
            Power::CutAfter(0) | Power::Lost => {
                self.power = Power::Lost;
                self.counts.powerless_calls += 1;
                Err(io::Error::other("simulated power loss"))
            }
            Power::CutAfter(n) => {
                self.power = Power::CutAfter(n - 1);
                Ok(())
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

    /// Whether this call is a non-helper's in-place page write or read while a helper
    /// is held: it draws no fault and does not count towards a power cut (see the
    /// module documentation).
    fn exempt(&self) -> bool {
        self.helper == Helper::Held && !is_helper_thread()
    }

    /// The checks every call starts with: the power, unless the call is exempt.
    fn begin(&mut self, exempt: bool) -> io::Result<()> {
        if exempt {
            if self.power == Power::Lost {
                return Err(io::Error::other("simulated power loss"));
            }
            return Ok(());
        }
        self.powered()
    }

    fn segment(&mut self, segment: Segment) -> io::Result<&mut SimFile> {
        self.segments.get_mut(&segment).ok_or_else(no_segment)
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

/// The simulator's disk (see the module documentation).
pub struct SimDisk {
    state: Mutex<State>,
    /// Signalled when a held helper is released.
    released: Condvar,
}

/// Counts only: the bytes are the coins' secrets, and a hook is not printable.
impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SimDisk")
            .field("pages", &st.pages.len())
            .field("segments", &st.segments.len())
            .field("counts", &st.counts)
            .finish_non_exhaustive()
    }
}

impl SimDisk {
    /// An empty disk whose faults are drawn from `rng` at `faults`' rates.
    pub fn new(rng: Rng, faults: DiskFaults) -> SimDisk {
        SimDisk {
            state: Mutex::new(State {
                pages: BTreeMap::new(),
                dirs: BTreeMap::new(),
                segments: BTreeMap::new(),
                rng,
                faults,
                faults_on: true,
                power: Power::On,
                clock: 0,
                next_ino: 0,
                latency_us: 0,
                counts: DiskCounts::default(),
                hook: None,
                helper: Helper::None,
                stuck: false,
            }),
            released: Condvar::new(),
        }
    }

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

    /// Writes `page`'s whole file, durable at once (the world's setup).
    pub fn put_page(&self, page: PageId, bytes: &[u8]) {
        let mut st = self.lock();
        let version = st.tick();
        st.next_ino += 1;
        let ino = st.next_ino;
        st.pages.insert(
            page,
            SimFile {
                data: bytes.to_vec(),
                durable: bytes.to_vec(),
                version,
                ino,
            },
        );
        st.dirs.insert(DirId::of(page), version);
    }

    /// `page`'s current bytes (what a read sees now), if it has a file.
    pub fn page_bytes(&self, page: PageId) -> Option<Vec<u8>> {
        self.lock().pages.get(&page).map(|f| f.data.clone())
    }

    /// `page`'s durable bytes (what a crash would start from), if it has a file.
    pub fn durable_page_bytes(&self, page: PageId) -> Option<Vec<u8>> {
        self.lock().pages.get(&page).map(|f| f.durable.clone())
    }

    /// The log segments' current sizes, in order.
    pub fn log_sizes(&self) -> Vec<(Segment, usize)> {
        self.lock()
            .segments
            .iter()
            .map(|(s, f)| (*s, f.data.len()))
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
        for file in st.pages.values_mut().chain(st.segments.values_mut()) {
            if file.data != file.durable {
                let after = torn(&file.durable, &file.data, &mut st.rng, keep, &mut st.counts);
                file.data = after.clone();
                file.durable = after;
                file.version += 1;
            }
        }
        st.counts.crashes += 1;
        st.power = Power::On;
        st.hook = None;
        st.helper = Helper::None;
    }

    /// A power loss whose outcome a test chooses: the unsynced writes to the pages in
    /// `kept` survive whole, those to every other page are lost, and each log segment
    /// keeps `log_tail` bytes of what was appended to it since its last sync (fewer
    /// when fewer were appended).
    pub fn crash_keeping(&self, kept: &[PageId], log_tail: usize) {
        let mut guard = self.lock();
        let st = &mut *guard;
        for (page, file) in st.pages.iter_mut() {
            if kept.contains(page) {
                file.durable = file.data.clone();
            } else {
                file.data = file.durable.clone();
            }
        }
        for file in st.segments.values_mut() {
            let durable = file.durable.len();
            let end = (durable + log_tail).min(file.data.len());
            if file.data.len() >= durable && file.data.starts_with(&file.durable) {
                if end < file.data.len() {
                    st.counts.cut_tails += 1;
                }
                file.data.truncate(end);
            } else {
                file.data = file.durable.clone();
            }
            file.durable = file.data.clone();
        }
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
        self.released.notify_all();
    }

    /// Whether a held helper waited for its release longer than any run should (a hang
    /// turned into an error).
    pub fn stuck(&self) -> bool {
        self.lock().stuck
    }
}

impl Disk for SimDisk {
    fn read_page(&self, page: PageId) -> io::Result<PageRead> {
        let mut st = self.enter();
        let exempt = st.exempt();
        st.begin(exempt)?;
        st.counts.page_reads += 1;
        if !exempt {
            let slow = st.faults.slow_read_pm;
            if st.fault(slow) {
                let max = st.faults.slow_read_max_us;
                let us = st.rng.range(1, max);
                st.latency_us += us;
                st.counts.slow_reads += 1;
                st.counts.slow_read_us += us;
            }
            let pm = st.faults.read_error_pm;
            if st.fault(pm) {
                st.counts.read_errors += 1;
                return Err(injected("page read"));
            }
        }
        let Some(file) = st.pages.get(&page) else {
            return Ok(PageRead::Absent);
        };
        Ok(PageRead::of_contents(&file.data, meta(file)))
    }

    fn page_meta(&self, page: PageId) -> io::Result<Option<FileMeta>> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.meta_error_pm;
        if st.fault(pm) {
            st.counts.meta_errors += 1;
            return Err(injected("page metadata"));
        }
        Ok(st.pages.get(&page).map(meta))
    }

    fn write_records(&self, page: PageId, records: &[RecordWrite]) -> io::Result<Written> {
        let mut st = self.enter();
        let exempt = st.exempt();
        st.begin(exempt)?;
        // A failed write still wrote a prefix of its records.
        let pm = st.faults.page_write_error_pm;
        let failed = !exempt && st.write_fault(pm);
        let count = if failed {
            st.rng.below(records.len() as u64 + 1) as usize
        } else {
            records.len()
        };
        let version = st.tick();
        let Some(file) = st.pages.get_mut(&page) else {
            return Ok(Written::NotAPage);
        };
        if file.data.len() < PAGE_BYTES {
            return Ok(Written::NotAPage);
        }
        let before = meta(file);
        for r in &records[..count] {
            if u32::from(r.index) >= RECORDS_PER_PAGE {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "record index"));
            }
            let at = usize::from(r.index) * RECORD_BYTES;
            file.data[at..at + RECORD_BYTES].copy_from_slice(&r.bytes);
        }
        file.version = version;
        if failed {
            return Err(injected("page write"));
        }
        Ok(Written::Done {
            before,
            after: meta(file),
        })
    }

    fn sync_page(&self, page: PageId) -> io::Result<()> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.page_sync_error_pm;
        if st.write_fault(pm) {
            return Err(injected("page sync"));
        }
        if let Some(file) = st.pages.get_mut(&page) {
            file.durable = file.data.clone();
        }
        Ok(())
    }

    fn dir_meta(&self, dir: DirId) -> io::Result<Option<FileMeta>> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.meta_error_pm;
        if st.fault(pm) {
            st.counts.meta_errors += 1;
            return Err(injected("directory metadata"));
        }
        Ok(st.dirs.get(&dir).map(|&version| FileMeta {
            mtime_ns: version,
            ctime_ns: version,
            ..FileMeta::default()
        }))
    }

    fn log_segments(&self) -> io::Result<Vec<Segment>> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.log_file_error_pm;
        if st.write_fault(pm) {
            return Err(injected("log listing"));
        }
        Ok(st.segments.keys().copied().collect())
    }

    fn log_create(&self, segment: Segment) -> io::Result<()> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.log_file_error_pm;
        if st.write_fault(pm) {
            return Err(injected("log create"));
        }
        if st.segments.contains_key(&segment) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "log segment exists",
            ));
        }
        st.segments.insert(segment, SimFile::default());
        Ok(())
    }

    fn log_read(&self, segment: Segment) -> io::Result<Vec<u8>> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.log_file_error_pm;
        if st.write_fault(pm) {
            return Err(injected("log read"));
        }
        Ok(st.segment(segment)?.data.clone())
    }

    fn log_append(&self, segment: Segment, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.append_error_pm;
        if st.write_fault(pm) {
            let keep = st.rng.below(bytes.len() as u64 + 1) as usize;
            st.segment(segment)?.data.extend_from_slice(&bytes[..keep]);
            return Err(injected("log append"));
        }
        st.segment(segment)?.data.extend_from_slice(bytes);
        Ok(())
    }

    fn log_sync(&self, segment: Segment) -> io::Result<()> {
        // A sync that a writer arrives during: the hook runs before the bytes are
        // durable, without the disk's lock (its writer calls the disk). Only a sync of
        // appended bytes (a batch's): the sync after a truncation is the leader undoing
        // a failed batch, which it does holding the log's mutex, so no writer could
        // arrive at the log then, nor could the hook count the waiting ones.
        let hook = {
            let mut st = self.enter();
            let appended = st
                .segments
                .get(&segment)
                .is_some_and(|f| f.data.len() > f.durable.len());
            if appended {
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
            let still_running = hook();
            let mut st = self.lock();
            st.helper = if still_running {
                Helper::Held
            } else {
                Helper::None
            };
        }
        // Not `enter`: the leader finishing its sync is never held.
        let mut st = self.lock();
        st.powered()?;
        let pm = st.faults.sync_error_pm;
        if st.write_fault(pm) {
            let durable_pm = st.faults.failed_sync_durable_pm;
            if st.rng.chance(durable_pm) {
                let file = st.segment(segment)?;
                file.durable = file.data.clone();
            }
            return Err(injected("log sync"));
        }
        let file = st.segment(segment)?;
        file.durable = file.data.clone();
        st.counts.log_syncs += 1;
        Ok(())
    }

    fn log_truncate(&self, segment: Segment, len: u64) -> io::Result<()> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.truncate_error_pm;
        if st.write_fault(pm) {
            return Err(injected("log truncate"));
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        st.segment(segment)?.data.truncate(len);
        Ok(())
    }

    fn log_remove(&self, segment: Segment) -> io::Result<()> {
        let mut st = self.enter();
        st.powered()?;
        let pm = st.faults.log_file_error_pm;
        if st.write_fault(pm) {
            return Err(injected("log remove"));
        }
        st.segments.remove(&segment);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            d.log_append(1, &[1; 100]).expect("append");
            d.log_sync(1).expect("sync");
            d.log_append(1, &[2; 2000]).expect("append");
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
        d.cut_power_after(1);
        write_all(&d, 0xBB);
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
        assert!(d.read_page(page(9)).is_err(), "an absent page fails too");
    }
}
