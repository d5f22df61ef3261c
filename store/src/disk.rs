//! The small disk the store runs on: every byte the store reads or writes goes
//! through [`Disk`], so the same store runs over the real `Data/` directory
//! ([`FileDisk`](crate::FileDisk)), over memory ([`MemDisk`](crate::MemDisk)), and in
//! the simulator over a disk that loses unsynced writes, tears them and fails reads.

use std::fmt;
use std::io;

use raida_core::keys::{PageId, PAGE_BYTES, RECORD_BYTES};

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

/// The store's whole file I/O, in the style of redb's `StorageBackend`.
///
/// Page files are the deployed layout (PROTOCOL.md section 10): the store only reads
/// them, writes records in place (never creating a file or changing its size), syncs
/// them and looks at their metadata. The write-ahead log is a sequence of segments the
/// store appends to, syncs, reads at start, truncates after a failed sync and removes
/// after a checkpoint.
///
/// Every method may block; none is called from an event loop. An implementation
/// synchronises inside (several workers call it at once).
pub trait Disk: Send + Sync + fmt::Debug {
    /// Reads page `page`'s file: absent, short, or its first [`PAGE_BYTES`] bytes with
    /// the metadata taken before the read. An I/O error (not an absent file) is `Err`.
    fn read_page(&self, page: PageId) -> io::Result<PageRead>;

    /// The metadata of `page`'s file, `None` when it is absent.
    fn page_meta(&self, page: PageId) -> io::Result<Option<FileMeta>>;

    /// Writes `records` in place into `page`'s file (record `i` at byte `i * 17`) in
    /// order, without syncing and without changing the file's size; a missing or short
    /// file is [`Written::NotAPage`] and nothing is written.
    fn write_records(&self, page: PageId, records: &[RecordWrite]) -> io::Result<Written>;

    /// Makes every write to `page`'s file so far durable (`fdatasync`). An absent file
    /// has nothing to sync: `Ok`.
    fn sync_page(&self, page: PageId) -> io::Result<()>;

    /// The metadata of directory `dir`, `None` when it is absent.
    fn dir_meta(&self, dir: DirId) -> io::Result<Option<FileMeta>>;

    /// The log segments there are, in ascending order.
    fn log_segments(&self) -> io::Result<Vec<Segment>>;

    /// Creates segment `segment`, empty, and makes its existence durable (the file and
    /// its directory entry).
    fn log_create(&self, segment: Segment) -> io::Result<()>;

    /// The whole contents of segment `segment` as they are now.
    fn log_read(&self, segment: Segment) -> io::Result<Vec<u8>>;

    /// Appends `bytes` at the end of segment `segment` (not synced).
    fn log_append(&self, segment: Segment, bytes: &[u8]) -> io::Result<()>;

    /// Makes everything appended to `segment` durable (`fdatasync`).
    fn log_sync(&self, segment: Segment) -> io::Result<()>;

    /// Cuts segment `segment` back to `len` bytes (not synced).
    fn log_truncate(&self, segment: Segment, len: u64) -> io::Result<()>;

    /// Removes segment `segment` and makes the removal durable. An absent segment is
    /// `Ok`.
    fn log_remove(&self, segment: Segment) -> io::Result<()>;
}

impl<D: Disk + ?Sized> Disk for std::sync::Arc<D> {
    fn read_page(&self, page: PageId) -> io::Result<PageRead> {
        (**self).read_page(page)
    }
    fn page_meta(&self, page: PageId) -> io::Result<Option<FileMeta>> {
        (**self).page_meta(page)
    }
    fn write_records(&self, page: PageId, records: &[RecordWrite]) -> io::Result<Written> {
        (**self).write_records(page, records)
    }
    fn sync_page(&self, page: PageId) -> io::Result<()> {
        (**self).sync_page(page)
    }
    fn dir_meta(&self, dir: DirId) -> io::Result<Option<FileMeta>> {
        (**self).dir_meta(dir)
    }
    fn log_segments(&self) -> io::Result<Vec<Segment>> {
        (**self).log_segments()
    }
    fn log_create(&self, segment: Segment) -> io::Result<()> {
        (**self).log_create(segment)
    }
    fn log_read(&self, segment: Segment) -> io::Result<Vec<u8>> {
        (**self).log_read(segment)
    }
    fn log_append(&self, segment: Segment, bytes: &[u8]) -> io::Result<()> {
        (**self).log_append(segment, bytes)
    }
    fn log_sync(&self, segment: Segment) -> io::Result<()> {
        (**self).log_sync(segment)
    }
    fn log_truncate(&self, segment: Segment, len: u64) -> io::Result<()> {
        (**self).log_truncate(segment, len)
    }
    fn log_remove(&self, segment: Segment) -> io::Result<()> {
        (**self).log_remove(segment)
    }
}

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
