//! [`MemDisk`]: a [`Disk`] in memory, with faults a test switches on and a crash
//! that loses every write not yet synced.
//!
//! For the store's own tests (and a starting point for the simulator's faulty disk).
//! Every file has its current bytes and its durable bytes: a sync makes the current
//! ones durable, [`MemDisk::crash`] throws the current ones away. Creating and removing
//! log segments are durable at once (the trait says they are).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use raida_core::keys::{PageId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

use crate::disk::{DirId, Disk, FileMeta, PageRead, RecordWrite, Segment, Written};

#[derive(Clone, Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Stands for mtime and ctime: moved by every change.
    version: i128,
    ino: u64,
}

/// Faults a test switches on.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Faults {
    /// Fail this many next log appends.
    pub log_appends: u32,
    /// Fail this many next log syncs.
    pub log_syncs: u32,
    /// Fail every log truncation.
    pub log_truncate: bool,
    /// Fail every in-place page write.
    pub page_writes: bool,
    /// Fail every page sync.
    pub page_syncs: bool,
    /// Pages whose reads (and metadata) fail.
    pub unreadable: BTreeSet<PageId>,
    /// How long every log sync takes (a slow disk), slept without the disk's lock.
    pub log_sync_delay: std::time::Duration,
}

#[derive(Debug, Default)]
struct State {
    pages: BTreeMap<PageId, MemFile>,
    /// Directories that exist, and their version.
    dirs: BTreeMap<DirId, i128>,
    segments: BTreeMap<Segment, MemFile>,
    faults: Faults,
    clock: i128,
    next_ino: u64,
    page_reads: BTreeMap<PageId, u64>,
    log_syncs: u64,
}

impl State {
    fn tick(&mut self) -> i128 {
        self.clock += 1;
        self.clock
    }
}

fn meta(f: &MemFile) -> FileMeta {
    FileMeta {
        len: f.data.len() as u64,
        mtime_ns: f.version,
        ctime_ns: f.version,
        ino: f.ino,
        dev: 0,
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

/// A [`Disk`] in memory (see the module documentation).
#[derive(Debug, Default)]
pub struct MemDisk {
    state: Mutex<State>,
}

impl MemDisk {
    /// An empty disk: no page, no log.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `page`'s whole file from outside the store (a backup restore): new
    /// bytes, new metadata, durable at once. A new file changes its directory.
    pub fn put_page(&self, page: PageId, bytes: &[u8]) {
        let mut st = self.lock();
        let version = st.tick();
        st.next_ino += 1;
        let ino = st.next_ino;
        let fresh = !st.pages.contains_key(&page);
        let file = st.pages.entry(page).or_default();
        file.data = bytes.to_vec();
        file.durable = bytes.to_vec();
        file.version = version;
        if file.ino == 0 {
            file.ino = ino;
        }
        if fresh {
            st.dirs.insert(DirId::of(page), version);
        }
    }

    /// Removes `page`'s file from outside (its directory changes).
    pub fn remove_page(&self, page: PageId) {
        let mut st = self.lock();
        if st.pages.remove(&page).is_some() {
            let version = st.tick();
            st.dirs.insert(DirId::of(page), version);
        }
    }

    /// `page`'s current bytes (what a read would see), if it has a file.
    pub fn page_bytes(&self, page: PageId) -> Option<Vec<u8>> {
        self.lock().pages.get(&page).map(|f| f.data.clone())
    }

    /// How many times `page` was read.
    pub fn page_reads(&self, page: PageId) -> u64 {
        self.lock().page_reads.get(&page).copied().unwrap_or(0)
    }

    /// Page reads in all.
    pub fn total_page_reads(&self) -> u64 {
        self.lock().page_reads.values().sum()
    }

    /// Log syncs that succeeded.
    pub fn log_syncs(&self) -> u64 {
        self.lock().log_syncs
    }

    /// The log segments' current bytes, in order.
    pub fn log_contents(&self) -> Vec<(Segment, Vec<u8>)> {
        self.lock()
            .segments
            .iter()
            .map(|(s, f)| (*s, f.data.clone()))
            .collect()
    }

    /// Changes the faults.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.lock().faults);
    }

    /// A power loss: every write not synced is gone (page files and log alike), and
    /// every fault is cleared.
    pub fn crash(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        for file in st.pages.values_mut().chain(st.segments.values_mut()) {
            file.data = file.durable.clone();
        }
        st.faults = Faults::default();
    }
}

impl Disk for MemDisk {
    fn read_page(&self, page: PageId) -> io::Result<PageRead> {
        let mut st = self.lock();
        *st.page_reads.entry(page).or_default() += 1;
        if st.faults.unreadable.contains(&page) {
            return Err(injected("page read"));
        }
        let Some(file) = st.pages.get(&page) else {
            return Ok(PageRead::Absent);
        };
        Ok(PageRead::of_contents(&file.data, meta(file)))
    }

    fn page_meta(&self, page: PageId) -> io::Result<Option<FileMeta>> {
        let st = self.lock();
        if st.faults.unreadable.contains(&page) {
            return Err(injected("page metadata"));
        }
        Ok(st.pages.get(&page).map(meta))
    }

    fn write_records(&self, page: PageId, records: &[RecordWrite]) -> io::Result<Written> {
        let mut st = self.lock();
        if st.faults.page_writes {
            return Err(injected("page write"));
        }
        let version = st.tick();
        let Some(file) = st.pages.get_mut(&page) else {
            return Ok(Written::NotAPage);
        };
        if file.data.len() < PAGE_BYTES {
            return Ok(Written::NotAPage);
        }
        let before = meta(file);
        for r in records {
            if u32::from(r.index) >= RECORDS_PER_PAGE {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "record index"));
            }
            let at = usize::from(r.index) * RECORD_BYTES;
            file.data[at..at + RECORD_BYTES].copy_from_slice(&r.bytes);
        }
        file.version = version;
        Ok(Written::Done {
            before,
            after: meta(file),
        })
    }

    fn sync_page(&self, page: PageId) -> io::Result<()> {
        let mut st = self.lock();
        if st.faults.page_syncs {
            return Err(injected("page sync"));
        }
        if let Some(file) = st.pages.get_mut(&page) {
            file.durable = file.data.clone();
        }
        Ok(())
    }

    fn dir_meta(&self, dir: DirId) -> io::Result<Option<FileMeta>> {
        Ok(self.lock().dirs.get(&dir).map(|&version| FileMeta {
            mtime_ns: version,
            ctime_ns: version,
            ..FileMeta::default()
        }))
    }

    fn log_segments(&self) -> io::Result<Vec<Segment>> {
        Ok(self.lock().segments.keys().copied().collect())
    }

    fn log_create(&self, segment: Segment) -> io::Result<()> {
        let mut st = self.lock();
        if st.segments.contains_key(&segment) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "segment exists",
            ));
        }
        st.segments.insert(segment, MemFile::default());
        Ok(())
    }

    fn log_read(&self, segment: Segment) -> io::Result<Vec<u8>> {
        self.lock()
            .segments
            .get(&segment)
            .map(|f| f.data.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such segment"))
    }

    fn log_append(&self, segment: Segment, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        if st.faults.log_appends > 0 {
            st.faults.log_appends -= 1;
            return Err(injected("log append"));
        }
        let file = st
            .segments
            .get_mut(&segment)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such segment"))?;
        file.data.extend_from_slice(bytes);
        Ok(())
    }

    fn log_sync(&self, segment: Segment) -> io::Result<()> {
        let delay = self.lock().faults.log_sync_delay;
        if !delay.is_zero() {
            // A test's slow disk, for threads that really wait; off unless a test asks.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(delay);
        }
        let mut st = self.lock();
        if st.faults.log_syncs > 0 {
            st.faults.log_syncs -= 1;
            return Err(injected("log sync"));
        }
        let file = st
            .segments
            .get_mut(&segment)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such segment"))?;
        file.durable = file.data.clone();
        st.log_syncs += 1;
        Ok(())
    }

    fn log_truncate(&self, segment: Segment, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        if st.faults.log_truncate {
            return Err(injected("log truncate"));
        }
        let file = st
            .segments
            .get_mut(&segment)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such segment"))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        file.data.truncate(len);
        Ok(())
    }

    fn log_remove(&self, segment: Segment) -> io::Result<()> {
        self.lock().segments.remove(&segment);
        Ok(())
    }
}
