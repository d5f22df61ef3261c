//! [`FileDisk`]: the [`Disk`] over a deployed RAIDA's directory: page files in
//! `<root>/Data` (PROTOCOL.md section 10) and the write-ahead log in
//! `<root>/raida-store.wal/`, beside `Data/`, never inside it (other modules scan it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use raida_core::keys::{CoinId, PageId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

use crate::disk::{DirId, Disk, FileMeta, PageRead, RecordWrite, Segment, Written};
use crate::OpenError;

/// The log's directory under the data root: `<root>/raida-store.wal`.
pub const LOG_DIR: &str = "raida-store.wal";

/// `<root>/Data/<dd>/<pp>/<pppp>.bin` for `page` (PROTOCOL.md section 10): `dd` the
/// denomination's unsigned byte in two lowercase hex digits (-1 is `ff`), `pppp` the
/// page number in four, `pp` its high byte.
pub fn page_path(root: &Path, page: PageId) -> PathBuf {
    root.join("Data").join(page_file(page))
}

/// The page file that holds `coin` in the store rooted at `root`, or `None` when the
/// coin can never be known (a denomination outside -8..=6, a serial at or above
/// 2^26), which has no page.
pub fn coin_page_path(root: &Path, coin: CoinId) -> Option<PathBuf> {
    PageId::of(coin).map(|(page, _)| page_path(root, page))
}

/// `<dd>/<pp>/<pppp>.bin`.
fn page_file(page: PageId) -> PathBuf {
    let dd = page.denomination.to_ne_bytes()[0];
    let [pp, _] = page.number.to_be_bytes();
    PathBuf::from(format!("{dd:02x}/{pp:02x}/{:04x}.bin", page.number))
}

/// `<dd>/<pp>`.
fn dir_file(dir: DirId) -> PathBuf {
    let dd = dir.denomination.to_ne_bytes()[0];
    PathBuf::from(format!("{dd:02x}/{:02x}", dir.high))
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

/// An error that means "there is no such file": not found, or a path component that
/// is a file (`ENOTDIR`).
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
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

/// The [`Disk`] over `<root>/Data` and the log directory `<root>/raida-store.wal`.
///
/// Page files are opened per operation, never kept open: a page replaced by rename
/// (a backup restore) is written where readers find it. The segment being appended to
/// stays open.
#[derive(Debug)]
pub struct FileDisk {
    data_dir: PathBuf,
    log_dir: PathBuf,
    /// The segment appended to last, open for appending.
    open_segment: Mutex<Option<(Segment, File)>>,
}

impl FileDisk {
    /// The disk of the store rooted at `root`: `<root>/Data` must be a directory; the
    /// log directory is created when it is missing (and made durable).
    pub fn open(root: &Path) -> Result<FileDisk, OpenError> {
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
            data_dir: check.data_dir,
            log_dir: check.log_dir,
            open_segment: Mutex::new(None),
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

    fn page(&self, page: PageId) -> PathBuf {
        self.data_dir.join(page_file(page))
    }

    fn segment_path(&self, segment: Segment) -> PathBuf {
        self.log_dir.join(format!("{segment:016x}.log"))
    }

    /// Runs `f` on segment `segment` opened for appending (kept open for the next call).
    fn with_segment<T>(
        &self,
        segment: Segment,
        f: impl FnOnce(&mut File) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut open = self
            .open_segment
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if open.as_ref().map(|(s, _)| *s) != Some(segment) {
            *open = None;
            let file = OpenOptions::new()
                .append(true)
                .open(self.segment_path(segment))?;
            *open = Some((segment, file));
        }
        match open.as_mut() {
            Some((_, file)) => f(file),
            None => Err(io::Error::other("no open segment")),
        }
    }
}

impl Disk for FileDisk {
    fn read_page(&self, page: PageId) -> io::Result<PageRead> {
        let file = match File::open(self.page(page)) {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Ok(PageRead::Absent),
            Err(e) => return Err(e),
        };
        let meta = meta_of(&file.metadata()?);
        let mut bytes: Box<[u8; PAGE_BYTES]> = vec![0u8; PAGE_BYTES]
            .into_boxed_slice()
            .try_into()
            .map_err(|_| io::Error::other("page buffer"))?;
        let mut filled = 0;
        while filled < PAGE_BYTES {
            match file.read_at(&mut bytes[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled < PAGE_BYTES {
            return Ok(PageRead::Short { meta });
        }
        Ok(PageRead::Page { bytes, meta })
    }

    fn page_meta(&self, page: PageId) -> io::Result<Option<FileMeta>> {
        match fs::metadata(self.page(page)) {
            Ok(m) => Ok(Some(meta_of(&m))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_records(&self, page: PageId, records: &[RecordWrite]) -> io::Result<Written> {
        let file = match OpenOptions::new().write(true).open(self.page(page)) {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Ok(Written::NotAPage),
            Err(e) => return Err(e),
        };
        let before = meta_of(&file.metadata()?);
        if before.len < PAGE_BYTES as u64 {
            return Ok(Written::NotAPage);
        }
        for record in records {
            if u32::from(record.index) >= RECORDS_PER_PAGE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "record index past the page",
                ));
            }
            let offset = u64::from(record.index) * RECORD_BYTES as u64;
            file.write_all_at(&record.bytes, offset)?;
        }
        let after = meta_of(&file.metadata()?);
        Ok(Written::Done { before, after })
    }

    fn sync_page(&self, page: PageId) -> io::Result<()> {
        match File::open(self.page(page)) {
            Ok(file) => file.sync_data(),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn dir_meta(&self, dir: DirId) -> io::Result<Option<FileMeta>> {
        match fs::metadata(self.data_dir.join(dir_file(dir))) {
            Ok(m) => Ok(Some(meta_of(&m))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn log_segments(&self) -> io::Result<Vec<Segment>> {
        list_segments(&self.log_dir)
    }

    fn log_create(&self, segment: Segment) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.segment_path(segment))?;
        file.sync_all()?;
        sync_dir(&self.log_dir)
    }

    fn log_read(&self, segment: Segment) -> io::Result<Vec<u8>> {
        fs::read(self.segment_path(segment))
    }

    fn log_append(&self, segment: Segment, bytes: &[u8]) -> io::Result<()> {
        self.with_segment(segment, |file| file.write_all(bytes))
    }

    fn log_sync(&self, segment: Segment) -> io::Result<()> {
        self.with_segment(segment, |file| file.sync_data())
    }

    fn log_truncate(&self, segment: Segment, len: u64) -> io::Result<()> {
        self.with_segment(segment, |file| file.set_len(len))
    }

    fn log_remove(&self, segment: Segment) -> io::Result<()> {
        {
            let mut open = self
                .open_segment
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if open.as_ref().map(|(s, _)| *s) == Some(segment) {
                *open = None;
            }
        }
        match fs::remove_file(self.segment_path(segment)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        sync_dir(&self.log_dir)
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

    #[test]
    fn dir_of_a_page_is_its_pp_directory() {
        let page = PageId {
            denomination: -1,
            number: 0x1234,
        };
        assert_eq!(dir_file(DirId::of(page)), PathBuf::from("ff/12"));
    }
}
