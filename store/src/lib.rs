//! raida-store: the coin store of a RAIDA (`Data/`, PROTOCOL.md section 10) as a
//! shared, writable, durable [`KeyStore`](raida_core::KeyStore) that never blocks an
//! event loop.
//!
//! - [`DiskStore`] is the store: a page cache the event loops read without touching
//!   the disk, page loads on workers, absent pages remembered apart, writes made
//!   durable through a write-ahead log with group commit, recovery at open, and
//!   background steps (freshness, checkpoints) that a thread of the server calls.
//! - [`Storage`] is the byte-level seam (read and write at offsets, set a length,
//!   sync, create, remove, list, metadata); [`Disk`] is pages and the log written once
//!   above it. Backends: [`FileDisk`] over a deployed directory (page files kept open,
//!   a bounded number), [`MemStorage`] in memory, and [`Faulty`], which fails calls as
//!   a [`Faults`] policy decides: [`MemDisk`] (the store's tests) and the simulator's
//!   disk are both a `Faulty<MemStorage, _>`.
//! - [`demo`] writes the small demo store a demo server serves.
//!
//! **What is durable when.** A [`modify`](raida_core::KeyStore::modify) that returns
//! `Ok` is in the log and synced (`fdatasync`); its records are then written in place
//! into the page files, which are synced at the next checkpoint, before the log
//! segment that holds them is removed. At open, the log is replayed into the page
//! files. A page file is never created, grown or shrunk by the store.
// One exception, in `prefetch`: the CPU's prefetch hint, which reads nothing the program
// sees and cannot fault. Everything else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod absent;
mod cache;
pub mod demo;
mod disk;
mod entry;
mod file_disk;
mod locks;
mod log;
mod mem_disk;
mod prefetch;
mod storage;
mod store;

use std::io;
use std::path::PathBuf;

pub use demo::{demo_coin_an, demo_locker_an, write_demo_store, DemoCoin};
pub use disk::{
    dir_file_path, page_file_path, segment_file_path, DirId, Disk, FileMeta, PageRead, RecordWrite,
    Segment, Written, LOG_DIR,
};
pub use file_disk::{
    check_root, coin_page_path, page_path, FileDisk, RootCheck, DEFAULT_OPEN_FILES,
};
pub use log::{Recovery, DEFAULT_SEGMENT_BYTES};
pub use mem_disk::{MemDisk, MemFaults, MemStorage, SwitchedFaults};
pub use storage::{Call, Fault, Faults, Faulty, FileKind, Op, Storage};
pub use store::{
    DiskStore, Refreshed, StoreConfig, DEFAULT_CACHE_PAGES, DEFAULT_REFRESH_INTERVAL,
    UNREADABLE_FOR,
};

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// `<root>/Data` does not exist.
    #[error("key store directory {} does not exist", .path.display())]
    MissingDataDir {
        /// The `Data` directory that was looked for.
        path: PathBuf,
    },
    /// `<root>/Data` exists but is not a directory.
    #[error("key store path {} is not a directory", .path.display())]
    NotADirectory {
        /// The `Data` path that was found.
        path: PathBuf,
    },
    /// `<root>/Data` could not be inspected (permissions, I/O error).
    #[error("cannot inspect key store directory {}", .path.display())]
    Inaccessible {
        /// The `Data` directory that was looked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// The log's directory could not be listed or created.
    #[error("key store log {}", .path.display())]
    Log {
        /// The log's directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// Replaying the log failed (nothing is lost: the log stays, and the next open
    /// replays it again).
    #[error("key store recovery failed")]
    Recovery(#[source] io::Error),
}
