//! [`FileDisk`]: the [`Storage`] over a deployed RAIDA's directory: page files in
//! `<root>/Data` (PROTOCOL.md section 10) and the write-ahead log in
//! `<root>/raida-store.wal/`, beside `Data/`, never inside it (other modules scan it).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use raida_core::keys::{CoinId, PageId};

use crate::disk::{is_absent, page_file_path, FileMeta, Segment, LOG_DIR};
use crate::storage::Storage;
use crate::OpenError;

/// `<root>/Data/<dd>/<pp>/<pppp>.bin` for `page` (PROTOCOL.md section 10): `dd` the
/// denomination's unsigned byte in two lowercase hex digits (-1 is `ff`), `pppp` the
/// page number in four, `pp` its high byte.
pub fn page_path(root: &Path, page: PageId) -> PathBuf {
    root.join(page_file_path(page))
}

/// The page file that holds `coin` in the store rooted at `root`, or `None` when the
/// coin can never be known (a denomination outside -8..=6, a serial at or above
/// 2^26), which has no page.
pub fn coin_page_path(root: &Path, coin: CoinId) -> Option<PathBuf> {
    PageId::of(coin).map(|(page, _)| page_path(root, page))
}

fn meta_of(m: &fs::Metadata) -> FileMeta {
    const NS: i128 = 1_000_000_000;
    FileMeta {
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * NS + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * NS + i128::from(m.ctime_nsec()),
        ino: m.ino(),
        dev: m.dev(),
    }
}

/// `fsync` of a directory: makes its entries (a created or removed file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What [`check_root`] found: a store that [`FileDisk::open`] would open.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RootCheck {
    /// The `Data` directory.
    pub data_dir: PathBuf,
    /// The log's directory (it may not exist yet: the first start creates it).
    pub log_dir: PathBuf,
    /// Log segments waiting to be replayed (a start replays them).
    pub segments: usize,
}

/// Checks the store rooted at `root` as [`FileDisk::open`] would, creating nothing:
/// `Data/` is a directory, and the log directory is absent or a directory whose
/// segments can be listed.
pub fn check_root(root: &Path) -> Result<RootCheck, OpenError> {
    let data_dir = root.join("Data");
    check_data_dir(&data_dir)?;
    let log_dir = root.join(LOG_DIR);
    let segments = match fs::metadata(&log_dir) {
        Ok(m) if m.is_dir() => list_segments(&log_dir)
            .map_err(|source| OpenError::Log {
                path: log_dir.clone(),
                source,
            })?
            .len(),
        Ok(_) => {
            return Err(OpenError::Log {
                path: log_dir,
                source: io::Error::other("not a directory"),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(OpenError::Log {
                path: log_dir,
                source,
            })
        }
    };
    Ok(RootCheck {
        data_dir,
        log_dir,
        segments,
    })
}

fn check_data_dir(data_dir: &Path) -> Result<(), OpenError> {
    match fs::metadata(data_dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(OpenError::NotADirectory {
            path: data_dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OpenError::MissingDataDir {
            path: data_dir.to_path_buf(),
        }),
        Err(source) => Err(OpenError::Inaccessible {
            path: data_dir.to_path_buf(),
            source,
        }),
    }
}

fn list_segments(log_dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(log_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name.strip_suffix(".log") else {
            continue;
        };
        if hex.len() != 16 {
            continue;
        }
        if let Ok(n) = u64::from_str_radix(hex, 16) {
            segments.push(n);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// The default bound on files [`FileDisk`] keeps open: see
/// [`StoreConfig::open_files`](crate::StoreConfig::open_files).
pub const DEFAULT_OPEN_FILES: usize = 256;

/// One file kept open.
#[derive(Debug)]
struct OpenFile {
    file: Arc<File>,
    /// Its inode and device when opened: a path that names another one now (a page
    /// replaced by rename) is opened again.
    id: (u64, u64),
    /// When it was last used, for the least recently used to go first.
    used: u64,
}

#[derive(Debug, Default)]
struct OpenFiles {
    files: BTreeMap<String, OpenFile>,
    clock: u64,
}

/// The [`Storage`] over `<root>`: page files in `<root>/Data` (PROTOCOL.md section 10)
/// and the write-ahead log in `<root>/raida-store.wal`.
///
/// Files are kept open, at most `open_files` of them (the least recently used is
/// closed first), so that a write costs a `pwrite` and no `open`/`close`. A file kept
/// open follows its path: every metadata look (the store looks before each in-place
/// write and at every freshness pass) compares the path's inode with the open one's,
/// and a page replaced by rename (a backup restore) is opened again, so writes land
/// where readers find them.
#[derive(Debug)]
pub struct FileDisk {
    root: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    open_files: usize,
    open: Mutex<OpenFiles>,
}

impl FileDisk {
    /// The disk of the store rooted at `root`, keeping at most [`DEFAULT_OPEN_FILES`]
    /// files open (see [`open_with`](Self::open_with)).
    pub fn open(root: &Path) -> Result<FileDisk, OpenError> {
        FileDisk::open_with(root, DEFAULT_OPEN_FILES)
    }

    /// The disk of the store rooted at `root`, keeping at most `open_files` files
    /// open (at least 1): `<root>/Data` must be a directory; the log directory is
    /// created when it is missing (and made durable).
    pub fn open_with(root: &Path, open_files: usize) -> Result<FileDisk, OpenError> {
        let check = check_root(root)?;
        let log_err = |source| OpenError::Log {
            path: check.log_dir.clone(),
            source,
        };
        match fs::create_dir(&check.log_dir) {
            Ok(()) => sync_dir(root).map_err(log_err)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(log_err(e)),
        }
        Ok(FileDisk {
            root: root.to_path_buf(),
            data_dir: check.data_dir,
            log_dir: check.log_dir,
            open_files: open_files.max(1),
            open: Mutex::new(OpenFiles::default()),
        })
    }

    /// The `Data` directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log's directory.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Files open now (at most the bound).
    pub fn open_file_count(&self) -> usize {
        self.lock().files.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenFiles> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// The file at `path`, open for reading and writing (or reading only, when
    /// writing is not allowed): kept open from an earlier call, or opened now and
    /// kept, closing the least recently used one past the bound.
    fn file(&self, path: &str) -> io::Result<Arc<File>> {
        {
            let mut open = self.lock();
            open.clock += 1;
            let now = open.clock;
            if let Some(f) = open.files.get_mut(path) {
                f.used = now;
                return Ok(Arc::clone(&f.file));
            }
        }
        let full = self.full(path);
        let open_rw = || match OpenOptions::new().read(true).write(true).open(&full) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(&full),
            other => other,
        };
        let file = match open_rw() {
            // Out of descriptors (the process's limit, shared with sockets): the files
            // kept open give theirs back, and the open is tried once more.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                tracing::warn!(
                    "raida-store: out of file descriptors ({e}); closing the {} kept-open                      file(s)",
                    self.open_file_count()
                );
                self.lock().files.clear();
                open_rw()?
            }
            other => other?,
        };
        let m = file.metadata()?;
        let file = Arc::new(file);
        let mut open = self.lock();
        open.clock += 1;
        let used = open.clock;
        if open.files.len() >= self.open_files && !open.files.contains_key(path) {
            let oldest = open
                .files
                .iter()
                .min_by_key(|(_, f)| f.used)
                .map(|(p, _)| p.clone());
            if let Some(oldest) = oldest {
                open.files.remove(&oldest);
            }
        }
        open.files.insert(
            path.to_string(),
            OpenFile {
                file: Arc::clone(&file),
                id: (m.ino(), m.dev()),
                used,
            },
        );
        Ok(file)
    }

    /// Closes the file kept open for `path`, if any.
    fn forget(&self, path: &str) {
        self.lock().files.remove(path);
    }
}

impl Storage for FileDisk {
    fn meta(&self, path: &str) -> io::Result<Option<FileMeta>> {
        match fs::metadata(self.full(path)) {
            Ok(m) => {
                let mut open = self.lock();
                if open
                    .files
                    .get(path)
                    .is_some_and(|f| f.id != (m.ino(), m.dev()))
                {
                    // Replaced (by rename) since it was opened.
                    open.files.remove(path);
                }
                Ok(Some(meta_of(&m)))
            }
            Err(e) if is_absent(&e) => {
                self.forget(path);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let file = self.file(path)?;
        loop {
            match file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file(path)?.write_all_at(bytes, offset)
    }

    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        self.file(path)?.set_len(len)
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        self.file(path)?.sync_data()
    }

    fn create(&self, path: &str) -> io::Result<()> {
        let full = self.full(path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)?;
        file.sync_all()?;
        match full.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.forget(path);
        let full = self.full(path);
        match fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        match full.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.full(dir))? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort_unstable();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raida_core::keys::SERIAL_LIMIT;

    #[test]
    fn page_path_follows_section_10() {
        let root = Path::new("/r");
        let path = |den, serial| {
            coin_page_path(root, CoinId::new(den, serial)).map(|p| p.display().to_string())
        };
        assert_eq!(path(0, 5).as_deref(), Some("/r/Data/00/00/0000.bin"));
        assert_eq!(path(-1, 1023).as_deref(), Some("/r/Data/ff/00/0000.bin"));
        assert_eq!(path(-8, 1024).as_deref(), Some("/r/Data/f8/00/0001.bin"));
        assert_eq!(
            path(6, 0x1234 * 1024 + 7).as_deref(),
            Some("/r/Data/06/12/1234.bin")
        );
        assert_eq!(
            path(1, SERIAL_LIMIT - 1).as_deref(),
            Some("/r/Data/01/ff/ffff.bin")
        );
        assert_eq!(path(1, SERIAL_LIMIT), None);
        assert_eq!(path(1, u32::MAX), None);
        assert_eq!(path(7, 1), None);
        assert_eq!(path(-9, 1), None);
    }
}
