//! [`DiskStore`]: the [`KeyStore`] over a [`Disk`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use raida_core::keys::{
    Access, An, Change, CoinId, CommitPoint, CommitSeq, KeyStore, LockerIndex, Lookup, PageId,
    Record, StoreError, StoreStats, DENOMINATIONS, PAGE_BYTES, RECORD_BYTES,
};
use raida_core::Timestamp;

use crate::absent::{Absent, DirState};
use crate::cache::{Cache, InPlace};
use crate::disk::{DirId, Disk, FileMeta, PageRead, RecordWrite, Written};
use crate::file_disk::FileDisk;
use crate::log::{self, Log, Recovery};
use crate::OpenError;

/// Default bound on pages in memory: 16,384 pages of 17,408 bytes (285 MB), more than
/// a full store (15 denominations × 1,000 pages = 15,000 pages, 261 MB). The cache
/// fills lazily, so memory grows only with the pages actually looked up.
pub const DEFAULT_CACHE_PAGES: usize = 16_384;

/// Default interval between two metadata checks of the cached page files (and of the
/// directories of absent pages): an outside change is served within about this long.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// How long a page that could not be read (an I/O error) answers `Unreadable` (252)
/// before a lookup tries it again.
pub const UNREADABLE_FOR: Duration = Duration::from_secs(1);

/// How often an unreadable page is logged at most.
const READ_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How a [`DiskStore`] is sized and paced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Most pages in memory (at least 1). Default [`DEFAULT_CACHE_PAGES`].
    pub cache_pages: usize,
    /// Least time between two [`DiskStore::refresh`] passes. Default
    /// [`DEFAULT_REFRESH_INTERVAL`].
    pub refresh_interval: Duration,
    /// A log segment past this many bytes is followed by a new one; the old one goes at
    /// the next checkpoint. Default [`DEFAULT_SEGMENT_BYTES`](crate::DEFAULT_SEGMENT_BYTES).
    pub segment_bytes: u64,
    /// How long an unreadable page answers 252 before it is read again. Default
    /// [`UNREADABLE_FOR`].
    pub unreadable_for: Duration,
    /// Most files (page files and log segments) the file disk keeps open, so that a
    /// write to a page written recently costs no `open`/`close`. Default
    /// [`DEFAULT_OPEN_FILES`](crate::DEFAULT_OPEN_FILES) (256). A bound, because every
    /// open file is a descriptor out of the process's limit, which the server's sockets
    /// share, and a full store has 15,000 page files: keeping them all open would take
    /// most of a usual limit of 16-20 thousand from the connections. Past the bound the
    /// least recently used file is closed; out of descriptors, all kept-open files are.
    /// Writes that fall on the same pages (a client's coins, lockers, a hot range) stay
    /// within it; writes spread uniformly over a full store mostly miss it.
    pub open_files: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_pages: DEFAULT_CACHE_PAGES,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            segment_bytes: log::DEFAULT_SEGMENT_BYTES,
            unreadable_for: UNREADABLE_FOR,
            open_files: crate::file_disk::DEFAULT_OPEN_FILES,
        }
    }
}

impl StoreConfig {
    /// The defaults with `cache_pages` and `refresh_interval`.
    pub fn new(cache_pages: usize, refresh_interval: Duration) -> StoreConfig {
        StoreConfig {
            cache_pages,
            refresh_interval,
            ..StoreConfig::default()
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    loads: AtomicU64,
    read_errors: AtomicU64,
    pages_absent: AtomicU64,
    reloads: AtomicU64,
    records_written: AtomicU64,
    write_errors: AtomicU64,
    page_syncs: AtomicU64,
    checkpoints: AtomicU64,
}

/// What one [`DiskStore::refresh`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refreshed {
    /// Whether it ran (at most once per interval).
    pub ran: bool,
    /// Page files and directories whose metadata it looked at.
    pub checked: u64,
    /// Pages read again because their file changed.
    pub reloaded: u64,
    /// Absences forgotten because their directory or short file changed.
    pub forgotten: u64,
    /// Page files out of the cache whose change was seen through the locker index's
    /// watch, read again (and indexed again).
    pub reindexed: u64,
}

/// Durable writes waiting for a checkpoint to be written in place.
#[derive(Debug, Default)]
struct Deferred {
    pages: BTreeMap<PageId, WaitingWrites>,
    /// The segment of every entry taken, to report each once it is in place.
    entries: Vec<crate::disk::Segment>,
}

/// One page's durable writes since the last checkpoint.
#[derive(Debug, Default)]
struct WaitingWrites {
    /// In sequence order.
    writes: Vec<RecordWrite>,
    /// The newest write's sequence number.
    last_seq: u64,
    /// Holds on the page in memory (one per entry that wrote it).
    holds: u32,
}

/// The coin store over `Data/` (PROTOCOL.md section 10), shared by every event loop and
/// every worker: a [`KeyStore`].
///
/// - **Lookups** ([`KeyStore::lookup`], on the event loops) answer from memory only:
///   a sharded page cache, and a bitmap of absent pages. Nothing on that path touches
///   the disk or a lock held across disk I/O.
/// - **Loads** ([`KeyStore::load`], on workers) read one page file; an I/O error
///   answers `Unreadable` (252) for [`StoreConfig::unreadable_for`] and is logged at
///   most once per page per minute.
/// - **Writes** ([`KeyStore::modify_pending`]) take intents on their pages (on the
///   event loop only if none is held and the pages are in memory), read the current
///   records, let the caller decide, append one log entry (not yet synced), apply it
///   in memory with its records marked pending, and return its sequence number: no
///   wait for the disk, intents released at once. The engine holds the answer until
///   [`sync`](KeyStore::sync) (the driver's committer: one append and one
///   `fdatasync` for every write in flight) makes it durable; a read of a pending
///   record reports the commit it must wait for too. Durable records are written in
///   place at checkpoints ([`write_deferred`](Self::write_deferred): one write per
///   page for every write since the last checkpoint, through the files kept open,
///   then synced before the log segment goes) and the marks go; until then the page
///   stays in memory. [`KeyStore::modify`] does the
///   same and waits for its own sync. A failed sync stops the store (fail-stop):
///   memory is ahead of the log, so every later read and write is refused
///   (`StoreError::Failed`, answered 252) until a restart recovers from the log. If
///   an in-place write fails after its entry is durable, the page stays in memory
///   (pinned) and the store takes no more writes until a restart replays the log.
/// - **Background steps** ([`maintain`](Self::maintain): [`refresh`](Self::refresh)
///   and [`checkpoint`](Self::checkpoint)) are functions a thread of the server calls,
///   or the simulator: the store has no thread of its own.
/// - **Recovery** runs in [`open`](Self::open): the log is replayed into the page
///   files, which are synced before the log goes.
pub struct DiskStore<D: Disk = FileDisk> {
    disk: D,
    config: StoreConfig,
    cache: Cache,
    absent: Absent,
    locks: crate::locks::PageLocks,
    log: Log,
    lockers: RwLock<LockerIndex>,
    /// Pages the scan at open could not read, so the index may lack their lockers
    /// until each is read (any read of the page takes it off).
    unindexed: Mutex<BTreeSet<PageId>>,
    /// The metadata of every page file as the store last read or wrote it, so that a
    /// page out of the cache that another process rewrites is indexed again (see
    /// [`refresh`](Self::refresh)).
    indexed_meta: Mutex<BTreeMap<PageId, FileMeta>>,
    /// The metadata of every page directory there was at open, so that a page file
    /// created there later is indexed (see [`refresh`](Self::refresh)).
    indexed_dirs: Mutex<BTreeMap<DirId, FileMeta>>,
    counters: Counters,
    last_refresh: Mutex<Option<Timestamp>>,
    read_error_logged: Mutex<BTreeMap<PageId, Timestamp>>,
    /// Held while durable writes are written in place, so they land in order.
    applying: Mutex<()>,
    /// Durable writes waiting for the next checkpoint to be written in place.
    deferred: Mutex<Deferred>,
    recovery: Recovery,
}

/// Counts only: a key store's `Debug` output must never put an AN into a log.
impl<D: Disk> fmt::Debug for DiskStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("disk", &self.disk)
            .field("cache", &self.cache)
            .field("absent", &self.absent)
            .field("failed", &self.log.is_failed())
            .field(
                "lockers",
                &self.lockers.read().unwrap_or_else(PoisonError::into_inner),
            )
            .finish_non_exhaustive()
    }
}

impl DiskStore<FileDisk> {
    /// The store rooted at `root` (`<root>/Data` and the log in
    /// `<root>/raida-store.wal`): replays the log, if one is there, first.
    pub fn open(root: &Path, config: StoreConfig) -> Result<Self, OpenError> {
        let disk = FileDisk::open_with(root, config.open_files)?;
        DiskStore::with_disk(disk, config)
    }
}

/// The locker index of the records on `disk`: every page file of every denomination
/// is read once (a directory `Data/<dd>/<pp>` that is absent is skipped whole). A page
/// that cannot be read is logged and left out, and returned among the pages the index
/// is missing: peek and remove read them first (see
/// [`KeyStore::locker_index_complete`]), and until they can be read they answer 252,
/// never from a partial index.
fn index_lockers<D: Disk>(disk: &D) -> IndexedAtOpen {
    let mut index = LockerIndex::new();
    let mut metas = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    let mut unindexed = BTreeSet::new();
    for denomination in DENOMINATIONS {
        for high in 0..=u8::MAX {
            match disk.dir_meta(DirId { denomination, high }) {
                // Looked at before its pages: a page created after this look changes
                // the directory's metadata, which a refresh sees.
                Ok(Some(meta)) => {
                    dirs.insert(DirId { denomination, high }, meta);
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(
                        "raida-store: locker index: cannot inspect directory \
                         {denomination}/{high:02x}: {e}; peek and remove read its pages \
                         first until they can be read"
                    );
                    unindexed.extend((0..=u8::MAX).map(|low| PageId {
                        denomination,
                        number: u16::from_be_bytes([high, low]),
                    }));
                    continue;
                }
            }
            for low in 0..=u8::MAX {
                let page = PageId {
                    denomination,
                    number: u16::from_be_bytes([high, low]),
                };
                match disk.read_page(page) {
                    Ok(PageRead::Page { bytes, meta }) => {
                        index.set_page(page, Some(&bytes));
                        metas.insert(page, meta);
                    }
                    Ok(PageRead::Short { meta }) => {
                        metas.insert(page, meta);
                    }
                    Ok(PageRead::Absent) => {}
                    Err(e) => {
                        tracing::error!(
                            "raida-store: locker index: page {page:?} cannot be read: {e}; \
                             peek and remove read it first until it can be read"
                        );
                        unindexed.insert(page);
                    }
                }
            }
        }
    }
    (index, metas, dirs, unindexed)
}

/// What the scan at open found: the index, the metadata of every page file it read and
/// of every page directory there was, and the pages it could not read.
type IndexedAtOpen = (
    LockerIndex,
    BTreeMap<PageId, FileMeta>,
    BTreeMap<DirId, FileMeta>,
    BTreeSet<PageId>,
);

fn record_of(bytes: &[u8; PAGE_BYTES], index: usize) -> Option<Record> {
    let start = index.checked_mul(RECORD_BYTES)?;
    let r = bytes.get(start..start.checked_add(RECORD_BYTES)?)?;
    Some(Record {
        an: r.get(..16)?.try_into().ok()?,
        status: r[16],
    })
}

/// Pages a checkpoint writes in place between two looks at the log's spare segments.
const PAGES_BETWEEN_SPARE_CHECKS: usize = 256;

impl<D: Disk> DiskStore<D> {
    /// The store over `disk`: replays its log first (see [`Recovery`]).
    pub fn with_disk(disk: D, config: StoreConfig) -> Result<Self, OpenError> {
        let (recovery, segment, next_seq) = log::recover(&disk).map_err(OpenError::Recovery)?;
        #[cfg_attr(not(raida_mutants), allow(unused_mut))]
        let (mut lockers, indexed_meta, indexed_dirs, unindexed) = index_lockers(&disk);
        #[cfg(raida_mutants)]
        if raida_core::mutants::active(raida_core::mutants::Mutant::IndexNotRebuilt) {
            // The planted bug: the scan's result is dropped; the index starts empty.
            lockers = LockerIndex::new();
        }
        Ok(DiskStore {
            log: Log::new(segment, next_seq, config.segment_bytes),
            cache: Cache::new(config.cache_pages),
            absent: Absent::new(),
            locks: crate::locks::PageLocks::default(),
            lockers: RwLock::new(lockers),
            unindexed: Mutex::new(unindexed),
            indexed_meta: Mutex::new(indexed_meta),
            indexed_dirs: Mutex::new(indexed_dirs),
            counters: Counters::default(),
            last_refresh: Mutex::new(None),
            read_error_logged: Mutex::new(BTreeMap::new()),
            applying: Mutex::new(()),
            deferred: Mutex::new(Deferred::default()),
            recovery,
            config,
            disk,
        })
    }

    /// The disk under the store.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// How the store was configured.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// What recovery did when the store was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Whether the store fail-stopped after a failed sync (or append): memory holds
    /// writes that will never be durable, so it answers no read either (lookups
    /// `Unreadable`, records `StoreError::Failed`) until a restart recovers it.
    pub fn refuses_reads(&self) -> bool {
        self.log.sync_failed()
    }

    /// Whether the store stopped taking writes after a failure (a failed sync, or an
    /// in-place write that failed after its entry was durable); a restart recovers it.
    pub fn is_failed(&self) -> bool {
        self.log.is_failed()
    }

    /// Log segments held now (the one being written included).
    pub fn log_segments(&self) -> usize {
        self.log.segments()
    }

    /// Writers blocked inside [`modify`](KeyStore::modify) right now, waiting for a
    /// log sync to cover their entry (a group commit's followers).
    ///
    /// For the simulator, which cannot otherwise tell a writer that waits for the next
    /// sync from one that is still running: it starts a second writer while a sync is
    /// in flight and waits for this count to rise (or for the writer to return) before
    /// letting the sync finish, so the interleaving is decided by state, never by
    /// timing. Counted under the log's mutex, which the writer's wait releases: once a
    /// writer is counted, it is inside its wait.
    pub fn writers_waiting(&self) -> u32 {
        self.log.writers_waiting()
    }

    /// Registers a type-2 key that no coin holds, found by the first 5 bytes of its AN
    /// (the prefix type-2 requests carry); a later one with the same prefix replaces
    /// it. It is no locker of PROTOCOL.md section 8c (peek and remove never see it):
    /// those are derived from the records (see [`locker_index`](Self::locker_index)).
    pub fn insert_locker(&self, an: An) {
        self.lockers_mut().register(an);
    }

    /// Forgets the registered type-2 key with prefix `prefix`, returning it.
    pub fn remove_locker(&self, prefix: &[u8; 5]) -> Option<An> {
        self.lockers_mut().unregister(prefix)
    }

    /// How many type-2 keys are registered with [`insert_locker`](Self::insert_locker).
    pub fn locker_count(&self) -> usize {
        self.lockers().registered()
    }

    /// A copy of the locker index (for tests that compare it with the records).
    ///
    /// The index holds one entry per coin whose AN is a locker key (bytes 12..15 `FF FF
    /// FF FF`). It is built at open by reading every page file (off the event loop:
    /// before the store serves anything), and kept equal to the records by the store's
    /// own paths: every [`modify`](KeyStore::modify) updates it with the records it
    /// wrote, under the same page intents and before it returns; every page read
    /// (a first load, a reload after eviction, a freshness refresh that saw an outside
    /// change) replaces that page's entries with what the file now holds, and a page
    /// found absent or short loses them. A [`refresh`](Self::refresh) also looks at
    /// the page files out of the cache (their metadata as last read or written) and at
    /// the page directories that existed at open (for new page files), and reads again
    /// whatever changed. No command maintains it itself.
    pub fn locker_index(&self) -> LockerIndex {
        self.lockers().clone()
    }

    fn lockers(&self) -> std::sync::RwLockReadGuard<'_, LockerIndex> {
        self.lockers.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Indexes `page` as just read (`None`: no records), and takes it off the pages
    /// the index lacks.
    fn index_page(&self, page: PageId, bytes: Option<&[u8; PAGE_BYTES]>) {
        self.lockers_mut().set_page(page, bytes);
        self.unindexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&page);
    }

    fn lockers_mut(&self) -> std::sync::RwLockWriteGuard<'_, LockerIndex> {
        self.lockers.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers the metadata of `page`'s file as the store just read or wrote it
    /// (`None`: absent).
    fn set_indexed_meta(&self, page: PageId, meta: Option<FileMeta>) {
        let mut metas = self
            .indexed_meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match meta {
            Some(meta) => metas.insert(page, meta),
            None => metas.remove(&page),
        };
    }

    /// Reads `page` into memory (or learns it is absent, short or unreadable). The
    /// caller holds its intent. With `reload`, reads it even when it is in memory.
    fn load_locked(&self, page: PageId, now: Timestamp, reload: bool) -> Result<(), StoreError> {
        if !reload && (self.cache.has_page(page) || self.absent.contains(page)) {
            return Ok(());
        }
        // The directory is looked at before the read: a file created after this look
        // changes the directory's metadata, which the next refresh sees.
        let dir = DirId::of(page);
        let dir_before =
            (!self.absent.watches(dir)).then(|| DirState::from_meta(self.disk.dir_meta(dir)));
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        match self.disk.read_page(page) {
            Ok(PageRead::Page { bytes, meta }) => {
                self.absent.clear(page);
                self.index_page(page, Some(&bytes));
                self.set_indexed_meta(page, Some(meta));
                self.cache.insert(page, bytes, meta);
                Ok(())
            }
            Ok(PageRead::Absent) => {
                self.index_page(page, None);
                self.set_indexed_meta(page, None);
                self.counters.pages_absent.fetch_add(1, Ordering::Relaxed);
                self.cache.remove(page);
                self.absent.mark_missing(page, dir_before);
                Ok(())
            }
            Ok(PageRead::Short { meta }) => {
                self.index_page(page, None);
                self.set_indexed_meta(page, Some(meta));
                self.counters.pages_absent.fetch_add(1, Ordering::Relaxed);
                self.cache.remove(page);
                self.absent.mark_short(page, meta);
                Ok(())
            }
            Err(source) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                self.log_read_error(page, &source, now);
                self.cache
                    .set_unreadable(page, now.saturating_add(self.config.unreadable_for));
                Err(StoreError::Unreadable { page, source })
            }
        }
    }

    fn log_read_error(&self, page: PageId, e: &std::io::Error, now: Timestamp) {
        let mut logged = self
            .read_error_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = logged.get(&page).map_or(true, |&at| {
            now.saturating_since(at) >= READ_ERROR_LOG_INTERVAL
        });
        if due {
            tracing::error!(
                "raida-store: page {:02x}/{:04x} cannot be read: {e} (answered 252; logged \
                 at most once a minute per page)",
                page.denomination.to_ne_bytes()[0],
                page.number
            );
            if logged.len() >= 1024 {
                logged.retain(|_, at| now.saturating_since(*at) < READ_ERROR_LOG_INTERVAL);
            }
            logged.insert(page, now);
        }
    }

    /// The records at `indices` of `page`, `None` when the page is absent or short.
    /// The caller holds the page's intent.
    fn records_locked(
        &self,
        page: PageId,
        indices: &[usize],
        now: Timestamp,
    ) -> Result<Option<Vec<Record>>, StoreError> {
        for _ in 0..2 {
            if let Some(records) = self.cache.records(page, indices) {
                return Ok(Some(records));
            }
            if self.absent.contains(page) {
                return Ok(None);
            }
            self.load_locked(page, now, false)?;
        }
        // Evicted again at once (a cache of a page or two): read it without caching.
        match self.disk.read_page(page) {
            Ok(PageRead::Page { bytes, meta }) => {
                self.index_page(page, Some(&bytes));
                self.set_indexed_meta(page, Some(meta));
                Ok(indices.iter().map(|&i| record_of(&bytes, i)).collect())
            }
            Ok(PageRead::Absent | PageRead::Short { .. }) => Ok(None),
            Err(source) => Err(StoreError::Unreadable { page, source }),
        }
    }

    /// The commit a read of a marked record waits for: the write's sequence number
    /// while it is not durable (a mark stays until the write is in place), unless the
    /// planted bug `read-before-commit` hides it.
    fn reported(&self, seq: Option<u64>) -> Option<CommitSeq> {
        #[cfg(raida_mutants)]
        if raida_core::mutants::active(raida_core::mutants::Mutant::ReadBeforeCommit) {
            return None;
        }
        seq.filter(|&s| !self.log.commit_point().covers(s))
    }

    /// The records at `indices` of `page` for a writer, with the page held in memory
    /// (see `Cache::hold`) when it holds records; `None` when the page is absent or
    /// short. With [`Access::Resident`], from memory only. The caller holds the
    /// page's intent.
    fn held_records(
        &self,
        page: PageId,
        indices: &[usize],
        now: Timestamp,
        access: Access,
    ) -> Result<Option<Vec<Record>>, StoreError> {
        for _ in 0..2 {
            if self.cache.hold(page, None) {
                return match self.cache.records(page, indices) {
                    Some(records) => Ok(Some(records)),
                    None => {
                        self.cache.let_go(page);
                        Ok(None)
                    }
                };
            }
            if self.absent.contains(page) {
                return Ok(None);
            }
            if access == Access::Resident {
                return Err(StoreError::NotResident);
            }
            self.load_locked(page, now, false)?;
        }
        // Evicted again at once (a cache of a page or two): read it and hold it in
        // memory beyond the bound until the write is in place.
        match self.disk.read_page(page) {
            Ok(PageRead::Page { bytes, meta }) => {
                self.index_page(page, Some(&bytes));
                self.set_indexed_meta(page, Some(meta));
                let records: Option<Vec<Record>> =
                    indices.iter().map(|&i| record_of(&bytes, i)).collect();
                self.cache.hold(page, Some((bytes, meta)));
                Ok(records)
            }
            Ok(PageRead::Absent | PageRead::Short { .. }) => Ok(None),
            Err(source) => Err(StoreError::Unreadable { page, source }),
        }
    }

    /// Takes the durable entries from the log into the writes waiting for the next
    /// checkpoint (their pages stay held in memory meanwhile). Cheap: the committer
    /// calls it after every sync; the page files are written by
    /// [`write_deferred`](Self::write_deferred), off the commit path.
    fn apply_durable(&self) {
        let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in self.log.take_durable() {
            for (page, write) in &entry.writes {
                let waiting = deferred.pages.entry(*page).or_default();
                waiting.writes.push(*write);
                waiting.last_seq = waiting.last_seq.max(entry.seq);
            }
            // One hold per page the entry wrote (see `modify_pending`).
            let mut pages: Vec<PageId> = entry.writes.iter().map(|(p, _)| *p).collect();
            pages.sort_unstable();
            pages.dedup();
            for page in pages {
                if let Some(waiting) = deferred.pages.get_mut(&page) {
                    waiting.holds += 1;
                }
            }
            deferred.entries.push(entry.segment);
        }
    }

    /// Whether more pages wait for their in-place writes than half the cache holds
    /// (they stay in memory meanwhile) and the cache is full, so that loads must evict
    /// and only the other half can go: [`maintain`](Self::maintain) writes them then,
    /// without waiting for a checkpoint. While the cache has room, held pages cost
    /// nothing, and the writes wait to be coalesced at the checkpoint: writing them
    /// every few thousand pages wrote most pages in place once per one or two writes,
    /// and that writeback slowed the log's syncs.
    fn deferred_too_many(&self) -> bool {
        let waiting = self
            .deferred
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pages
            .len();
        waiting > (self.cache.capacity() / 2).max(1)
            && self.cache.cached_pages() >= self.cache.capacity()
    }

    /// Writes every durable write waiting for a checkpoint into its page file: one
    /// write per page (its records coalesced, newest last), through the files kept
    /// open, so a page written by many powns since the last checkpoint is opened once.
    /// Each page's writes land in sequence order; pages are independent of each other
    /// (recovery replays whole entries from the log). A failed in-place write keeps
    /// the page in memory (pinned) and stops the store's writes until a restart
    /// replays the log. [`checkpoint`](Self::checkpoint) calls it when an older log
    /// segment waits; a caller that wants the page files current now may too.
    pub fn write_deferred(&self) {
        let _applying = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        let Deferred { pages, entries } =
            std::mem::take(&mut *self.deferred.lock().unwrap_or_else(PoisonError::into_inner));
        let mut all_applied = true;
        for (i, (page, waiting)) in pages.into_iter().enumerate() {
            // A checkpoint of a full store writes thousands of pages, for longer than
            // the log takes to fill a segment under load: the log's spare is kept
            // ready meanwhile, or writes would go to a segment that grows.
            if i % PAGES_BETWEEN_SPARE_CHECKS == 0 {
                self.log.prepare_spare(&self.disk);
            }
            let _intent = self.locks.lock(&[page]);
            all_applied &= self.write_in_place(page, &waiting);
        }
        if all_applied {
            for segment in entries {
                self.log.applied(segment);
            }
        }
    }

    /// Writes one page's durable records in place (`waiting`: its writes since the
    /// last checkpoint, in sequence order). The caller holds the page's intent; the
    /// page is held in memory (written ahead of its file).
    fn write_in_place(&self, page: PageId, waiting: &WaitingWrites) -> bool {
        // The newest write of each record, in record order.
        let mut newest: BTreeMap<u16, RecordWrite> = BTreeMap::new();
        for w in &waiting.writes {
            newest.insert(w.index, *w);
        }
        let writes: Vec<RecordWrite> = newest.into_values().collect();
        let (seq, holds) = (waiting.last_seq, waiting.holds);
        match self.disk.write_records(page, &writes) {
            Ok(Written::Done { before, after }) => {
                self.cache
                    .applied_in_place(page, seq, holds, InPlace::Written { before, after });
                self.set_indexed_meta(page, Some(after));
                true
            }
            Ok(Written::NotAPage) => {
                // Removed or cut short from outside since it was read: the outside
                // change wins, as for any page; its absence is learned on the next load.
                tracing::warn!(
                    "raida-store: page {page:?} went away while being written; its new \
                     records are only in the log"
                );
                self.cache.applied_in_place(page, seq, holds, InPlace::Gone);
                true
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "raida-store: writing page {page:?} in place failed after its log entry \
                     was durable: {e}; the page is kept in memory, the store takes no more \
                     writes until a restart replays the log"
                );
                // Held in memory since the write: pinned there from now on.
                self.cache
                    .applied_in_place(page, seq, holds, InPlace::Failed);
                self.log.fail();
                false
            }
        }
    }

    /// The background steps, for the server's thread (or the simulator) to call often
    /// (every few hundred milliseconds): [`refresh`](Self::refresh) (which runs at
    /// most once per interval), a flush of anything queued, the next log segment
    /// prepared ahead (zero-filled, so that appends never grow a file), and
    /// [`checkpoint`](Self::checkpoint).
    pub fn maintain(&self, now: Timestamp) -> Refreshed {
        let refreshed = self.refresh(now);
        self.log.flush(&self.disk);
        self.log.prepare_spare(&self.disk);
        self.apply_durable();
        if self.deferred_too_many() {
            self.write_deferred();
        }
        self.checkpoint();
        refreshed
    }

    /// The freshness check, at most once per [`StoreConfig::refresh_interval`]: the
    /// metadata (size, mtime, ctime, inode) of every cached page file is compared with
    /// what the store saw when it last read or wrote it, and a page whose file changed
    /// is read again; every directory holding absent pages, and every short page file,
    /// is compared likewise, and the absences under a changed one are forgotten. An
    /// unchanged page costs one `statx`, no read.
    pub fn refresh(&self, now: Timestamp) -> Refreshed {
        {
            let mut last = self
                .last_refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| now.saturating_since(t) < self.config.refresh_interval) {
                return Refreshed::default();
            }
            *last = Some(now);
        }
        let mut done = Refreshed {
            ran: true,
            ..Refreshed::default()
        };
        for cached in self.cache.snapshot() {
            done.checked += 1;
            if !cached.stale && self.disk.page_meta(cached.page).ok().flatten() == Some(cached.meta)
            {
                continue;
            }
            let _intent = self.locks.lock(&[cached.page]);
            // Written (or reloaded) meanwhile? Look again under the intent.
            let Some(now_cached) = self.cache.cached(cached.page) else {
                continue;
            };
            let current = self.disk.page_meta(cached.page).ok().flatten();
            if !now_cached.stale && current == Some(now_cached.meta) {
                continue;
            }
            done.reloaded += 1;
            self.counters.reloads.fetch_add(1, Ordering::Relaxed);
            // An error is remembered (252 for a while) and logged by the load.
            let _ = self.load_locked(cached.page, now, true);
        }
        // Page files out of the cache: the locker index holds what the store last read
        // or wrote there, so an outside change is read (and indexed) again. One
        // metadata look per page, as for cached pages.
        let watched: Vec<(PageId, FileMeta)> = self
            .indexed_meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(p, m)| (*p, *m))
            .collect();
        for (page, meta) in watched {
            if self.cache.has_page(page) || self.absent.contains(page) {
                continue;
            }
            if self.disk.page_meta(page).ok().flatten() == Some(meta) {
                continue;
            }
            let _intent = self.locks.lock(&[page]);
            let still = self
                .indexed_meta
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&page)
                .copied();
            if self.cache.has_page(page) || still != Some(meta) {
                continue; // read or written meanwhile
            }
            done.reindexed += 1;
            // An error is remembered (252 for a while) and logged by the load.
            let _ = self.load_locked(page, now, true);
        }
        // Page directories of the open scan: a new page file there is read (and indexed).
        let dirs: Vec<(DirId, FileMeta)> = self
            .indexed_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(d, m)| (*d, *m))
            .collect();
        for (dir, was) in dirs {
            let Ok(Some(meta)) = self.disk.dir_meta(dir) else {
                continue; // gone or unreadable: its pages' own watch covers them
            };
            if meta == was {
                continue;
            }
            self.indexed_dirs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(dir, meta);
            for low in 0..=u8::MAX {
                let page = PageId {
                    denomination: dir.denomination,
                    number: u16::from_be_bytes([dir.high, low]),
                };
                let known = self
                    .indexed_meta
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains_key(&page);
                if known || self.cache.has_page(page) || self.absent.contains(page) {
                    continue;
                }
                if let Ok(PageRead::Page { .. }) = self.disk.read_page(page) {
                    let _intent = self.locks.lock(&[page]);
                    done.reindexed += 1;
                    let _ = self.load_locked(page, now, true);
                }
            }
        }
        for (page, meta) in self.absent.shorts() {
            done.checked += 1;
            if self.disk.page_meta(page).ok().flatten() != Some(meta) {
                self.absent.clear(page);
                done.forgotten += 1;
            }
        }
        for (dir, was) in self.absent.dirs() {
            done.checked += 1;
            let now_state = DirState::from_meta(self.disk.dir_meta(dir));
            if !now_state.same(&was) {
                done.forgotten += self.absent.dir_changed(dir, was, now_state);
            }
        }
        done
    }

    /// Removes log segments that are no longer needed, oldest first: a segment that is
    /// not the one being written and whose writes were all applied in place goes once
    /// the page files it touched are synced. Returns how many went. A failure is
    /// logged and tried again on the next call.
    pub fn checkpoint(&self) -> usize {
        if self.log.segments() > 1 {
            // An older segment waits: its writes go in place (with every later one
            // waiting) so that it can go.
            self.write_deferred();
        }
        let mut removed = 0;
        while let Some((segment, pages)) = self.log.checkpoint_candidate() {
            for page in &pages {
                if let Err(e) = self.disk.sync_page(*page) {
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "raida-store: checkpoint: cannot sync page {page:?}: {e}; log segment \
                         {segment} stays"
                    );
                    return removed;
                }
                self.counters.page_syncs.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = self.disk.log_remove(segment) {
                tracing::warn!("raida-store: checkpoint: cannot remove log segment {segment}: {e}");
                return removed;
            }
            self.log.checkpointed(segment);
            self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            removed += 1;
        }
        removed
    }

    /// Pages in memory now.
    pub fn cached_pages(&self) -> usize {
        self.cache.cached_pages()
    }

    /// The bound on pages in memory.
    pub fn cache_capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// The metadata the store holds for a cached `page` (for tests of freshness).
    pub fn cached_meta(&self, page: PageId) -> Option<FileMeta> {
        self.cache.cached(page).map(|c| c.meta)
    }
}

impl<D: Disk> KeyStore for DiskStore<D> {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        let Some((page, index)) = PageId::of(coin) else {
            self.cache.count_out_of_range(coin.serial);
            return Lookup::Unknown;
        };
        if self.absent.contains(page) {
            self.cache.count_hit(page);
            return Lookup::Unknown;
        }
        if self.log.sync_failed() {
            // Fail-stop: memory may hold writes that will never be durable.
            return Lookup::Unreadable(page);
        }
        self.cache.lookup(page, index, now)
    }

    fn locker_an(&self, prefix: &[u8; 5], _now: Timestamp) -> Option<An> {
        self.lockers().get(prefix)
    }

    fn locker_keys(&self, prefix: &[u8; 5], _now: Timestamp) -> Vec<An> {
        self.lockers().keys_with_prefix(prefix)
    }

    fn locker_index_complete(&self, now: Timestamp) -> Result<(), StoreError> {
        let missing: Vec<PageId> = self
            .unindexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        for page in missing {
            let _intent = self.locks.lock(&[page]);
            self.load_locked(page, now, true)?;
        }
        Ok(())
    }

    fn locker_coins(&self, key: &An, _now: Timestamp) -> Vec<CoinId> {
        self.lockers().coins(key)
    }

    fn load(&self, page: PageId, now: Timestamp) -> Result<(), StoreError> {
        if self.cache.has_page(page) || self.absent.contains(page) {
            return Ok(());
        }
        let _intent = self.locks.lock(&[page]);
        self.load_locked(page, now, false)
    }

    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        self.record_pending(coin, now, Access::Blocking)
            .map(|(record, _)| record)
    }

    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        let Some(seq) = self.modify_pending(coins, now, change, Access::Blocking)? else {
            return Ok(());
        };
        // The planted bug: a writer that finds a sync running does not wait for the
        // next one (whoever syncs its entry writes it in place).
        #[cfg(raida_mutants)]
        if self.log.is_syncing()
            && raida_core::mutants::active(raida_core::mutants::Mutant::AckBeforeSync)
        {
            return Ok(());
        }
        let waited = self.log.wait(&self.disk, seq);
        self.apply_durable();
        waited
    }

    fn record_pending(
        &self,
        coin: CoinId,
        now: Timestamp,
        access: Access,
    ) -> Result<(Option<Record>, Option<CommitSeq>), StoreError> {
        let Some((page, index)) = PageId::of(coin) else {
            return Ok((None, None));
        };
        if self.log.sync_failed() {
            // Fail-stop: memory may hold writes that will never be durable.
            return Err(StoreError::Failed);
        }
        if let Some((records, seq)) = self.cache.records_pending(page, &[index]) {
            return Ok((records.first().copied(), self.reported(seq)));
        }
        if access == Access::Resident {
            if self.absent.contains(page) {
                return Ok((None, None));
            }
            return Err(StoreError::NotResident);
        }
        let _intent = self.locks.lock(&[page]);
        // A page out of memory has no write pending (a written page stays until its
        // write is in place).
        Ok((
            self.records_locked(page, &[index], now)?
                .and_then(|r| r.first().copied()),
            None,
        ))
    }

    fn modify_pending(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
        access: Access,
    ) -> Result<Option<CommitSeq>, StoreError> {
        if self.log.is_failed() {
            return Err(StoreError::Failed);
        }
        let located: Vec<Option<(PageId, usize)>> = coins.iter().map(|c| PageId::of(*c)).collect();
        let mut by_page: BTreeMap<PageId, Vec<usize>> = BTreeMap::new();
        for (i, at) in located.iter().enumerate() {
            if let Some((page, _)) = at {
                by_page.entry(*page).or_default().push(i);
            }
        }
        let pages: Vec<PageId> = by_page.keys().copied().collect();
        let intents = match access {
            Access::Blocking => self.locks.lock(&pages),
            Access::Resident => self.locks.try_lock(&pages).ok_or(StoreError::NotResident)?,
        };

        // Each page that holds records is held in memory from here until its write is
        // in place (or let go, if nothing is written to it).
        let mut held: Vec<PageId> = Vec::new();
        let let_go = |held: &[PageId]| {
            for page in held {
                self.cache.let_go(*page);
            }
        };
        let mut current: Vec<Option<Record>> = vec![None; coins.len()];
        for (page, members) in &by_page {
            let indices: Vec<usize> = members
                .iter()
                .filter_map(|&i| located[i].map(|(_, index)| index))
                .collect();
            let records = match self.held_records(*page, &indices, now, access) {
                Ok(records) => records,
                Err(e) => {
                    let_go(&held);
                    return Err(e);
                }
            };
            if let Some(records) = records {
                held.push(*page);
                for (&i, record) in members.iter().zip(records) {
                    current[i] = Some(record);
                }
            }
        }
        let mut new: Vec<Option<Record>> = vec![None; coins.len()];
        change(&current, &mut new);

        // In coin order: a coin named twice ends with its last record, in memory, in
        // the log and in place alike.
        let mut writes: Vec<(PageId, RecordWrite)> = Vec::new();
        for i in 0..coins.len() {
            if let (Some((page, index)), Some(_), Some(record)) = (located[i], current[i], new[i]) {
                let mut bytes = [0u8; RECORD_BYTES];
                bytes[..16].copy_from_slice(&record.an);
                bytes[16] = record.status;
                // `index` < 1024: it came from `PageId::of`.
                let index = u16::try_from(index).unwrap_or(u16::MAX);
                writes.push((page, RecordWrite { index, bytes }));
            }
        }
        let mut per_page: BTreeMap<PageId, Vec<RecordWrite>> = BTreeMap::new();
        for (page, write) in &writes {
            per_page.entry(*page).or_default().push(*write);
        }
        // Pages read but not written are let go now.
        let unwritten: Vec<PageId> = held
            .iter()
            .copied()
            .filter(|p| !per_page.contains_key(p))
            .collect();
        let_go(&unwritten);
        if writes.is_empty() {
            return Ok(None);
        }
        let seq = match self.log.append(&writes) {
            Ok(seq) => seq,
            Err(e) => {
                let written: Vec<PageId> = per_page.keys().copied().collect();
                let_go(&written);
                return Err(e);
            }
        };
        // In memory, under the intents, in sequence order for each record: every later
        // read sees it, marked with `seq` until it is in place.
        for (page, recs) in &per_page {
            self.cache.write_held(*page, recs, seq);
        }
        {
            let mut lockers = self.lockers_mut();
            for (coin, record) in
                coins
                    .iter()
                    .zip(&new)
                    .zip(&current)
                    .filter_map(|((coin, new), current)| match (current, new) {
                        (Some(_), Some(record)) => Some((coin, record)),
                        _ => None,
                    })
            {
                lockers.set(*coin, Some(&record.an));
            }
        }
        self.counters
            .records_written
            .fetch_add(writes.len() as u64, Ordering::Relaxed);
        drop(intents);
        Ok(Some(seq))
    }

    fn pending_commit(&self, coin: CoinId) -> Option<CommitSeq> {
        let (page, index) = PageId::of(coin)?;
        self.reported(self.cache.pending_of(page, index))
    }

    fn newest_pending(&self) -> Option<CommitSeq> {
        self.log.newest_pending()
    }

    fn locker_index_known(&self) -> bool {
        self.unindexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn commit_point(&self) -> CommitPoint {
        self.log.commit_point()
    }

    fn prefetch(&self, coins: &[CoinId]) {
        self.cache
            .prefetch(coins.iter().filter_map(|c| PageId::of(*c)));
    }

    fn sync(&self) -> bool {
        if let Some(newest) = self.log.newest_pending() {
            // A failure is the log's to keep (fail-stop): the commit point says so.
            let _ = self.log.wait(&self.disk, newest);
        }
        self.apply_durable();
        self.log.newest_pending().is_some() && !self.log.is_failed()
    }

    fn stats(&self) -> Option<StoreStats> {
        let (hits, misses, out_of_range) = self.cache.lookup_counts();
        let c = &self.counters;
        let mut s = StoreStats::default();
        s.lookups = hits + misses + out_of_range;
        s.hits = hits;
        s.misses = misses;
        s.out_of_range = out_of_range;
        s.loads = c.loads.load(Ordering::Relaxed);
        s.read_errors = c.read_errors.load(Ordering::Relaxed);
        s.pages_absent = c.pages_absent.load(Ordering::Relaxed);
        s.cached_pages = self.cache.cached_pages() as u64;
        s.absent_pages = self.absent.count();
        s.evictions = self.cache.evictions();
        s.reloads = c.reloads.load(Ordering::Relaxed);
        s.syncs = self.log.counters.syncs.load(Ordering::Relaxed);
        s.records_written = c.records_written.load(Ordering::Relaxed);
        s.write_errors = c.write_errors.load(Ordering::Relaxed)
            + self.log.counters.write_errors.load(Ordering::Relaxed);
        s.writes_committed = self.log.counters.entries.load(Ordering::Relaxed);
        s.page_syncs = c.page_syncs.load(Ordering::Relaxed);
        s.checkpoints = c.checkpoints.load(Ordering::Relaxed);
        s.fail_stopped = u64::from(self.log.is_failed());
        Some(s)
    }
}
