//! [`MemStorage`]: a [`Storage`] in memory whose files have current and durable bytes,
//! and [`MemDisk`]: it wrapped in [`Faulty`] with faults a test switches on.
//!
//! Every file has its current bytes (what a read sees) and its durable bytes (what
//! survives a power loss): a sync makes the current ones durable, and
//! [`MemStorage::crash_with`] decides per file what a power loss leaves
//! ([`MemDisk::crash`] keeps the durable bytes; the simulator tears unsynced writes at
//! sectors). Creating and removing a file are durable at once (the trait says they
//! are), and change the metadata of the directory that holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use raida_core::keys::PageId;

use crate::disk::{page_file_path, FileMeta, Segment};
use crate::storage::{parent, Call, Fault, Faults, Faulty, FileKind, Op, Storage};

#[derive(Clone, Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Stands for mtime and ctime: moved by every change.
    version: i128,
    ino: u64,
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

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {path}"))
}

#[derive(Debug, Default)]
struct MemState {
    files: BTreeMap<String, MemFile>,
    /// Directories that exist, and their version.
    dirs: BTreeMap<String, i128>,
    clock: i128,
    next_ino: u64,
}

impl MemState {
    fn tick(&mut self) -> i128 {
        self.clock += 1;
        self.clock
    }

    /// A file at `path` was created or removed: its directory changes.
    fn touch_dir(&mut self, path: &str) {
        let version = self.tick();
        self.dirs.insert(parent(path).to_string(), version);
    }

    fn file(&mut self, path: &str) -> io::Result<&mut MemFile> {
        self.files.get_mut(path).ok_or_else(|| not_found(path))
    }
}

/// A [`Storage`] in memory (see the module documentation). Deterministic: files are
/// kept in name order, and versions and inode numbers count up.
#[derive(Debug, Default)]
pub struct MemStorage {
    state: Mutex<MemState>,
}

impl MemStorage {
    /// No file.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // Every section under the lock is short and panic-free.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the whole file at `path` from outside (a backup restore, a test's
    /// setup): new bytes and metadata, durable at once. A new file changes its
    /// directory; an existing one keeps its inode.
    pub fn put(&self, path: &str, bytes: &[u8]) {
        let mut st = self.lock();
        let version = st.tick();
        st.next_ino += 1;
        let ino = st.next_ino;
        let fresh = !st.files.contains_key(path);
        let file = st.files.entry(path.to_string()).or_default();
        file.data = bytes.to_vec();
        file.durable = bytes.to_vec();
        file.version = version;
        if file.ino == 0 {
            file.ino = ino;
        }
        if fresh {
            st.touch_dir(path);
        }
    }

    /// The current bytes of the file at `path` (what a read sees now).
    pub fn contents(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(path).map(|f| f.data.clone())
    }

    /// The durable bytes of the file at `path` (what a crash starts from).
    pub fn durable_contents(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(path).map(|f| f.durable.clone())
    }

    /// Whether the file at `path` holds bytes written since its last sync that a power
    /// loss could take back: appended, or written over bytes it had (a log segment
    /// prepared ahead is written over). Zeros past its durable end do not count: they
    /// are a segment being prepared, which a loss leaves as zeros too.
    pub fn has_unsynced_data(&self, path: &str) -> bool {
        self.lock().files.get(path).is_some_and(|f| {
            let common = f.data.len().min(f.durable.len());
            f.data[..common] != f.durable[..common] || f.data[common..].iter().any(|&b| b != 0)
        })
    }

    /// The files whose path starts with `prefix`, with their current bytes, in order.
    pub fn files_under(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .files
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .map(|(p, f)| (p.clone(), f.data.clone()))
            .collect()
    }

    /// A power loss: for every file whose current bytes are not all durable, `keep`
    /// decides from its path, durable bytes and current bytes what the file holds
    /// afterwards (then durable). Files are visited in path order.
    pub fn crash_with(&self, mut keep: impl FnMut(&str, &[u8], &[u8]) -> Vec<u8>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        for (path, file) in st.files.iter_mut() {
            if file.data != file.durable {
                let after = keep(path, &file.durable, &file.data);
                file.data = after.clone();
                file.durable = after;
                file.version += 1;
            }
        }
    }
}

impl Storage for MemStorage {
    fn meta(&self, path: &str) -> io::Result<Option<FileMeta>> {
        let st = self.lock();
        if let Some(file) = st.files.get(path) {
            return Ok(Some(meta(file)));
        }
        Ok(st.dirs.get(path).map(|&version| FileMeta {
            mtime_ns: version,
            ctime_ns: version,
            ..FileMeta::default()
        }))
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let st = self.lock();
        let file = st.files.get(path).ok_or_else(|| not_found(path))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let from = file.data.get(start..).unwrap_or(&[]);
        let n = from.len().min(buf.len());
        buf[..n].copy_from_slice(&from[..n]);
        Ok(n)
    }

    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        let version = st.tick();
        let file = st.file(path)?;
        let start = usize::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset"))?;
        let end = start + bytes.len();
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[start..end].copy_from_slice(bytes);
        file.version = version;
        Ok(())
    }

    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        let version = st.tick();
        let file = st.file(path)?;
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length"))?;
        file.data.resize(len, 0);
        file.version = version;
        Ok(())
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        let mut st = self.lock();
        let file = st.file(path)?;
        file.durable = file.data.clone();
        Ok(())
    }

    fn create(&self, path: &str) -> io::Result<()> {
        let mut st = self.lock();
        if st.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("file exists: {path}"),
            ));
        }
        let version = st.tick();
        st.next_ino += 1;
        let ino = st.next_ino;
        st.files.insert(
            path.to_string(),
            MemFile {
                version,
                ino,
                ..MemFile::default()
            },
        );
        st.touch_dir(path);
        Ok(())
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let mut st = self.lock();
        if st.files.remove(path).is_some() {
            st.touch_dir(path);
        }
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        Ok(self
            .lock()
            .files
            .keys()
            .filter(|p| parent(p) == dir)
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .collect())
    }
}

/// Faults a test switches on (the settings of [`SwitchedFaults`]).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct MemFaults {
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
    /// Pages whose reads fail.
    pub unreadable: BTreeSet<PageId>,
    /// How long every log sync takes (a slow disk), slept without the disk's lock.
    pub log_sync_delay: std::time::Duration,
}

/// The [`Faults`] policy of [`MemDisk`]: the [`MemFaults`] a test switched on, and
/// counts of page reads and log syncs.
#[derive(Debug, Default)]
pub struct SwitchedFaults {
    faults: Mutex<MemFaults>,
    page_reads: Mutex<BTreeMap<PageId, u64>>,
    log_syncs: AtomicU64,
}

impl SwitchedFaults {
    fn lock(&self) -> MutexGuard<'_, MemFaults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Faults for SwitchedFaults {
    fn decide(&self, call: &Call<'_>) -> Fault {
        let fail = |yes: bool| if yes { Fault::Fail } else { Fault::None };
        match (call.kind, call.op) {
            (FileKind::Page(page), Op::Read) => {
                *self
                    .page_reads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(page)
                    .or_default() += 1;
                fail(self.lock().unreadable.contains(&page))
            }
            (FileKind::Page(_), Op::Write) => fail(self.lock().page_writes),
            (FileKind::Page(_), Op::Sync) => fail(self.lock().page_syncs),
            (FileKind::Log, Op::Write) => {
                let mut f = self.lock();
                let yes = f.log_appends > 0;
                f.log_appends = f.log_appends.saturating_sub(1);
                fail(yes)
            }
            (FileKind::Log, Op::Sync) => {
                let delay = self.lock().log_sync_delay;
                if !delay.is_zero() {
                    // A test's slow disk, for threads that really wait; off unless a
                    // test asks.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(delay);
                }
                let mut f = self.lock();
                let yes = f.log_syncs > 0;
                f.log_syncs = f.log_syncs.saturating_sub(1);
                fail(yes)
            }
            (FileKind::Log, Op::SetLen) => fail(self.lock().log_truncate),
            _ => Fault::None,
        }
    }

    fn finished(&self, call: &Call<'_>, ok: bool) {
        if ok && call.kind == FileKind::Log && call.op == Op::Sync {
            self.log_syncs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A disk in memory with faults a test switches on and a crash that loses every write
/// not yet synced (see the module documentation).
pub type MemDisk = Faulty<MemStorage, SwitchedFaults>;

impl Faulty<MemStorage, SwitchedFaults> {
    /// An empty disk: no page, no log.
    pub fn new() -> MemDisk {
        Faulty::wrap(MemStorage::new(), SwitchedFaults::default())
    }

    /// Writes `page`'s whole file from outside the store (a backup restore): new
    /// bytes, new metadata, durable at once. A new file changes its directory.
    pub fn put_page(&self, page: PageId, bytes: &[u8]) {
        self.storage().put(&page_file_path(page), bytes);
    }

    /// Removes `page`'s file from outside (its directory changes).
    pub fn remove_page(&self, page: PageId) {
        let _ = self.storage().remove(&page_file_path(page));
    }

    /// `page`'s current bytes (what a read would see), if it has a file.
    pub fn page_bytes(&self, page: PageId) -> Option<Vec<u8>> {
        self.storage().contents(&page_file_path(page))
    }

    /// How many times `page` was read.
    pub fn page_reads(&self, page: PageId) -> u64 {
        self.policy()
            .page_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&page)
            .copied()
            .unwrap_or(0)
    }

    /// Page reads in all.
    pub fn total_page_reads(&self) -> u64 {
        self.policy()
            .page_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// Log syncs that succeeded.
    pub fn log_syncs(&self) -> u64 {
        self.policy().log_syncs.load(Ordering::Relaxed)
    }

    /// The log segments' current bytes, in order.
    pub fn log_contents(&self) -> Vec<(Segment, Vec<u8>)> {
        self.storage()
            .files_under(&format!("{}/", crate::disk::LOG_DIR))
            .into_iter()
            .filter_map(|(path, bytes)| {
                let name = path.rsplit('/').next()?;
                let hex = name.strip_suffix(".log")?;
                Some((u64::from_str_radix(hex, 16).ok()?, bytes))
            })
            .collect()
    }

    /// Changes the faults.
    pub fn faults(&self, f: impl FnOnce(&mut MemFaults)) {
        f(&mut self.policy().lock());
    }

    /// A power loss: every write not synced is gone (page files and log alike), and
    /// every fault is cleared.
    pub fn crash(&self) {
        self.storage().crash_with(|_, durable, _| durable.to_vec());
        *self.policy().lock() = MemFaults::default();
    }
}

impl Default for Faulty<MemStorage, SwitchedFaults> {
    fn default() -> Self {
        MemDisk::new()
    }
}
