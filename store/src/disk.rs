//! Pages and the log over the byte-level [`Storage`]: every byte the store reads or
//! writes goes through [`Disk`], whose methods are written once here for every
//! backend, so the same store runs over the real `Data/` directory
//! ([`FileDisk`](crate::FileDisk)), over memory ([`MemDisk`](crate::MemDisk)), and in
//! the simulator over a disk that loses unsynced writes, tears them and fails reads.

use std::fmt;
use std::io;

use raida_core::keys::{PageId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

use crate::storage::{FileKind, Storage};

/// What identifies one version of a file or directory without reading it: the store
/// compares it to tell an outside change (a backup restore, a sync script) from none.
///
/// Any change of contents moves `mtime` and `ctime` (and a replacement by rename moves
/// `ino`); a change of size moves `len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileMeta {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the Unix epoch (no program can set it).
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
}

/// What reading a page file found.
#[derive(Clone, PartialEq, Eq)]
pub enum PageRead {
    /// No page file (nor its directory): every coin of the page is unknown.
    Absent,
    /// A file shorter than [`PAGE_BYTES`]: every coin of the page is unknown.
    Short {
        /// The file's metadata, taken before it was read.
        meta: FileMeta,
    },
    /// A complete page (a longer file's first [`PAGE_BYTES`] bytes).
    Page {
        /// The page's bytes.
        bytes: Box<[u8; PAGE_BYTES]>,
        /// The file's metadata, taken before it was read: a change made while it was
        /// read shows as a change of metadata later.
        meta: FileMeta,
    },
}

impl PageRead {
    /// What reading a file of these contents finds: a short file, or a page of its
    /// first [`PAGE_BYTES`] bytes. For disks that hold files in memory ([`MemDisk`](crate::MemDisk)
    /// and the simulator's).
    pub fn of_contents(data: &[u8], meta: FileMeta) -> PageRead {
        match <&[u8; PAGE_BYTES]>::try_from(data.get(..PAGE_BYTES).unwrap_or(&[])) {
            Ok(page) => PageRead::Page {
                bytes: Box::new(*page),
                meta,
            },
            Err(_) => PageRead::Short { meta },
        }
    }
}

/// No page bytes: they are secrets.
impl fmt::Debug for PageRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageRead::Absent => f.write_str("Absent"),
            PageRead::Short { meta } => f.debug_struct("Short").field("meta", meta).finish(),
            PageRead::Page { meta, .. } => f
                .debug_struct("Page")
                .field("meta", meta)
                .finish_non_exhaustive(),
        }
    }
}

/// One record to write in place: its index in the page (serial % 1024) and its 17
/// bytes (AN, then the status byte).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordWrite {
    /// The record's index in its page, 0..1024.
    pub index: u16,
    /// The record's bytes.
    pub bytes: [u8; RECORD_BYTES],
}

/// Only the index: the bytes are secrets.
impl fmt::Debug for RecordWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordWrite")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// What writing records in place did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The records were written (not synced).
    Done {
        /// The file's metadata just before the write.
        before: FileMeta,
        /// The file's metadata just after it, which the store records so that its own
        /// write does not look like an outside change.
        after: FileMeta,
    },
    /// The page file is missing or shorter than a page: nothing was written (a page
    /// file is never created nor grown).
    NotAPage,
}

/// The directory `Data/<dd>/<pp>` that holds pages `pp00..=ppff` of a denomination
/// (PROTOCOL.md section 10): a new page file there changes its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirId {
    /// The denomination.
    pub denomination: i8,
    /// The high byte of the page numbers it holds.
    pub high: u8,
}

impl DirId {
    /// The directory holding `page`.
    pub fn of(page: PageId) -> DirId {
        DirId {
            denomination: page.denomination,
            high: page.number.to_be_bytes()[0],
        }
    }
}

/// A log segment's number: segments are replayed in ascending order.
pub type Segment = u64;

/// The log's directory under the data root: `<root>/raida-store.wal`, beside `Data/`,
/// never inside it (other modules scan it).
pub const LOG_DIR: &str = "raida-store.wal";

/// `Data/<dd>/<pp>/<pppp>.bin` for `page` (PROTOCOL.md section 10): `dd` the
/// denomination's unsigned byte in two lowercase hex digits (-1 is `ff`), `pppp` the
/// page number in four, `pp` its high byte.
pub fn page_file_path(page: PageId) -> String {
    let dd = page.denomination.to_ne_bytes()[0];
    let [pp, _] = page.number.to_be_bytes();
    format!("Data/{dd:02x}/{pp:02x}/{:04x}.bin", page.number)
}

/// `Data/<dd>/<pp>`: the directory of `dir`.
pub fn dir_file_path(dir: DirId) -> String {
    let dd = dir.denomination.to_ne_bytes()[0];
    format!("Data/{dd:02x}/{:02x}", dir.high)
}

/// `raida-store.wal/<16 hex digits>.log`.
pub fn segment_file_path(segment: Segment) -> String {
    format!("{LOG_DIR}/{segment:016x}.log")
}

impl FileKind {
    /// What `path` is to the store: the inverse of [`page_file_path`],
    /// [`dir_file_path`] and [`segment_file_path`].
    pub fn of(path: &str) -> FileKind {
        if path == LOG_DIR || path.starts_with("raida-store.wal/") {
            return FileKind::Log;
        }
        let Some(rest) = path.strip_prefix("Data/") else {
            return FileKind::Other;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let hex8 = |s: &str| {
            (s.len() == 2)
                .then(|| u8::from_str_radix(s, 16).ok())
                .flatten()
        };
        match parts.as_slice() {
            [dd, pp] if hex8(dd).is_some() && hex8(pp).is_some() => FileKind::PageDir,
            [dd, pp, name] => {
                let number = name
                    .strip_suffix(".bin")
                    .filter(|n| n.len() == 4)
                    .and_then(|n| u16::from_str_radix(n, 16).ok());
                match (hex8(dd), hex8(pp), number) {
                    (Some(dd), Some(pp), Some(number)) if number.to_be_bytes()[0] == pp => {
                        FileKind::Page(PageId {
                            denomination: i8::from_ne_bytes([dd]),
                            number,
                        })
                    }
                    _ => FileKind::Other,
                }
            }
            _ => FileKind::Other,
        }
    }
}

/// An error that means "there is no such file": not found, or a path component that
/// is a file (`ENOTDIR`).
pub(crate) fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The store's whole file I/O: pages and the log, written once over the byte-level
/// [`Storage`] for every backend (a blanket implementation; nothing implements it by
/// hand).
///
/// Page files are the deployed layout (PROTOCOL.md section 10): the store only reads
/// them, writes records in place (never creating a file or changing its size), syncs
/// them and looks at their metadata. The write-ahead log is a sequence of segments the
/// store appends to, syncs, reads at start, truncates after a failed sync and removes
/// after a checkpoint.
pub trait Disk: Storage {
    /// Reads page `page`'s file: absent, short, or its first [`PAGE_BYTES`] bytes with
    /// the metadata taken before the read. An I/O error (not an absent file) is `Err`.
    fn read_page(&self, page: PageId) -> io::Result<PageRead> {
        let path = page_file_path(page);
        let Some(meta) = self.meta(&path)? else {
            // Absent only when a read says so too: a read that fails cannot tell an
            // absent page from a present one, so it is an error, never "absent". (A
            // file created between the look and the read changes its directory, which
            // the next freshness pass sees.)
            return match self.read_at(&path, 0, &mut [0u8; 1]) {
                Err(e) if !is_absent(&e) => Err(e),
                _ => Ok(PageRead::Absent),
            };
        };
        // Read even when the metadata says short: what counts is what a read finds
        // (and a directory in the page's place fails the read, never looks short).
        let mut bytes: Box<[u8; PAGE_BYTES]> = vec![0u8; PAGE_BYTES]
            .into_boxed_slice()
            .try_into()
            .map_err(|_| io::Error::other("page buffer"))?;
        let mut filled = 0;
        while filled < PAGE_BYTES {
            match self.read_at(&path, filled as u64, &mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Removed between the look and the read.
                Err(e) if is_absent(&e) => return Ok(PageRead::Absent),
                Err(e) => return Err(e),
            }
        }
        if filled < PAGE_BYTES {
            return Ok(PageRead::Short { meta });
        }
        Ok(PageRead::Page { bytes, meta })
    }

    /// The metadata of `page`'s file, `None` when it is absent.
    fn page_meta(&self, page: PageId) -> io::Result<Option<FileMeta>> {
        self.meta(&page_file_path(page))
    }

    /// Writes `records` in place into `page`'s file (record `i` at byte `i * 17`) in
    /// order, without syncing and without changing the file's size; a missing or short
    /// file is [`Written::NotAPage`] and nothing is written.
    fn write_records(&self, page: PageId, records: &[RecordWrite]) -> io::Result<Written> {
        let path = page_file_path(page);
        let before = match self.meta(&path)? {
            Some(meta) if meta.len >= PAGE_BYTES as u64 => meta,
            _ => return Ok(Written::NotAPage),
        };
        if records
            .iter()
            .any(|r| u32::from(r.index) >= RECORDS_PER_PAGE)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record index past the page",
            ));
        }
        for record in records {
            let offset = u64::from(record.index) * RECORD_BYTES as u64;
            match self.write_at(&path, offset, &record.bytes) {
                Ok(()) => {}
                Err(e) if is_absent(&e) => return Ok(Written::NotAPage),
                Err(e) => return Err(e),
            }
        }
        let after = self.meta(&path)?.unwrap_or(before);
        Ok(Written::Done { before, after })
    }

    /// Makes every write to `page`'s file so far durable (`fdatasync`). An absent file
    /// has nothing to sync: `Ok`.
    fn sync_page(&self, page: PageId) -> io::Result<()> {
        match self.sync(&page_file_path(page)) {
            Err(e) if is_absent(&e) => Ok(()),
            other => other,
        }
    }

    /// The metadata of directory `dir`, `None` when it is absent.
    fn dir_meta(&self, dir: DirId) -> io::Result<Option<FileMeta>> {
        self.meta(&dir_file_path(dir))
    }

    /// The log segments there are, in ascending order.
    fn log_segments(&self) -> io::Result<Vec<Segment>> {
        let mut segments: Vec<Segment> = self
            .list(LOG_DIR)?
            .iter()
            .filter_map(|name| {
                let hex = name.strip_suffix(".log").filter(|h| h.len() == 16)?;
                u64::from_str_radix(hex, 16).ok()
            })
            .collect();
        segments.sort_unstable();
        Ok(segments)
    }

    /// Creates segment `segment`, empty, and makes its existence durable (the file and
    /// its directory entry).
    fn log_create(&self, segment: Segment) -> io::Result<()> {
        self.create(&segment_file_path(segment))
    }

    /// Creates segment `segment` as [`log_create`](Self::log_create) does, then fills
    /// its first `len` bytes with zeros and syncs them: appends into it overwrite
    /// allocated blocks and leave the file's size alone, so their `fdatasync` flushes
    /// data only, with no journal commit for a new size (on ext4 about 0.13 ms against
    /// 0.2 ms for an append that grows the file, `bench/RESULTS.md`). Recovery reads a
    /// zero tail as the log's end. On an error the file is removed again (best effort).
    fn log_prepare(&self, segment: Segment, len: u64) -> io::Result<()> {
        const CHUNK: usize = 1 << 20;
        self.log_create(segment)?;
        let path = segment_file_path(segment);
        let zeros = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
        let filled = (|| {
            let mut offset = 0u64;
            while offset < len {
                let n = usize::try_from(len - offset).map_or(zeros.len(), |n| n.min(zeros.len()));
                self.write_at(&path, offset, &zeros[..n])?;
                offset += n as u64;
            }
            self.sync(&path)
        })();
        if filled.is_err() {
            let _ = self.remove(&path);
        }
        filled
    }

    /// The whole contents of segment `segment` as they are now.
    fn log_read(&self, segment: Segment) -> io::Result<Vec<u8>> {
        let path = segment_file_path(segment);
        let len = self
            .len(&path)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such log segment"))?;
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.read_at(&path, filled as u64, &mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }

    /// Writes `bytes` at `offset` of segment `segment`, its end (not synced).
    fn log_append(&self, segment: Segment, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.write_at(&segment_file_path(segment), offset, bytes)
    }

    /// Makes everything appended to `segment` durable (`fdatasync`).
    fn log_sync(&self, segment: Segment) -> io::Result<()> {
        self.sync(&segment_file_path(segment))
    }

    /// Cuts segment `segment` back to `len` bytes (not synced).
    fn log_truncate(&self, segment: Segment, len: u64) -> io::Result<()> {
        self.set_len(&segment_file_path(segment), len)
    }

    /// Removes segment `segment` and makes the removal durable. An absent segment is
    /// `Ok`.
    fn log_remove(&self, segment: Segment) -> io::Result<()> {
        self.remove(&segment_file_path(segment))
    }
}

impl<S: Storage + ?Sized> Disk for S {}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(len: usize) -> FileMeta {
        FileMeta {
            len: len as u64,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 1,
            dev: 1,
        }
    }

    #[test]
    fn paths_name_their_kind() {
        let page = PageId {
            denomination: -1,
            number: 0x1234,
        };
        assert_eq!(page_file_path(page), "Data/ff/12/1234.bin");
        assert_eq!(FileKind::of(&page_file_path(page)), FileKind::Page(page));
        assert_eq!(dir_file_path(DirId::of(page)), "Data/ff/12");
        assert_eq!(FileKind::of("Data/ff/12"), FileKind::PageDir);
        assert_eq!(segment_file_path(3), "raida-store.wal/0000000000000003.log");
        assert_eq!(FileKind::of(&segment_file_path(3)), FileKind::Log);
        assert_eq!(FileKind::of(LOG_DIR), FileKind::Log);
        assert_eq!(FileKind::of("Data/ff/13/1234.bin"), FileKind::Other);
        assert_eq!(FileKind::of("Data/ff/12/1234.txt"), FileKind::Other);
    }

    #[test]
    fn a_file_of_a_page_or_more_is_a_page_of_its_first_bytes_and_a_shorter_one_is_short() {
        let mut data: Vec<u8> = (0..PAGE_BYTES + 3).map(|i| (i % 251) as u8).collect();
        match PageRead::of_contents(&data, meta(data.len())) {
            PageRead::Page { bytes, .. } => assert_eq!(bytes[..], data[..PAGE_BYTES]),
            other => panic!("{other:?}"),
        }
        data.truncate(PAGE_BYTES);
        assert!(matches!(
            PageRead::of_contents(&data, meta(PAGE_BYTES)),
            PageRead::Page { .. }
        ));
        data.pop();
        assert_eq!(
            PageRead::of_contents(&data, meta(PAGE_BYTES - 1)),
            PageRead::Short {
                meta: meta(PAGE_BYTES - 1)
            }
        );
        assert_eq!(
            PageRead::of_contents(&[], meta(0)),
            PageRead::Short { meta: meta(0) }
        );
    }
}
