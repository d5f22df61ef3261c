//! The byte-level seam under the store, in the style of redb's `StorageBackend`: a
//! directory of named files that can be read and written at offsets, cut to a length,
//! synced, created, removed and listed, and whose metadata tells one version of a file
//! from the next.
//!
//! Everything the store knows about pages and the log (the record layout, what a
//! short or absent page means, log segments, recovery) is written once above this
//! seam, in [`Disk`](crate::Disk). A backend only moves bytes: [`FileDisk`](crate::FileDisk)
//! over a real directory, [`MemStorage`](crate::MemStorage) in memory, and
//! [`Faulty`] around either, which asks a [`Faults`] policy before every call whether
//! it fails (the memory disk of the store's tests and the simulator's disk are both a
//! `Faulty<MemStorage, _>` with their own policy).
//!
//! Paths are relative to the store's root and use `/` (for example
//! `Data/01/00/0000.bin`, `raida-store.wal/0000000000000001.log`).

use std::fmt;
use std::io;
use std::sync::Arc;

use raida_core::keys::PageId;

use crate::disk::FileMeta;

/// A directory of files, byte by byte (see the module documentation).
///
/// Every method may block; none is called from an event loop. An implementation
/// synchronises inside (several workers call it at once).
pub trait Storage: Send + Sync + fmt::Debug {
    /// The metadata of the file or directory at `path`, `None` when there is none
    /// (nor a directory on the way to it).
    fn meta(&self, path: &str) -> io::Result<Option<FileMeta>>;

    /// Reads from `offset` into `buf`; returns how many bytes it read (fewer than
    /// `buf.len()` only at the end of the file). An absent file is `NotFound`.
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes all of `bytes` at `offset` (not synced), growing the file if it ends
    /// before. An absent file is `NotFound`: a write never creates one.
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> io::Result<()>;

    /// Cuts or extends (with zeros) the file to `len` bytes (not synced).
    fn set_len(&self, path: &str, len: u64) -> io::Result<()>;

    /// Makes every write to the file so far durable (`fdatasync`).
    fn sync(&self, path: &str) -> io::Result<()>;

    /// Creates the file, empty, and makes its existence durable (the file and its
    /// directory entry). An existing file is `AlreadyExists`.
    fn create(&self, path: &str) -> io::Result<()>;

    /// Removes the file and makes the removal durable. An absent file is `Ok`.
    fn remove(&self, path: &str) -> io::Result<()>;

    /// The names of the files in directory `dir`.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;

    /// The file's length, `None` when it is absent.
    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        Ok(self.meta(path)?.map(|m| m.len))
    }
}

impl<S: Storage + ?Sized> Storage for Arc<S> {
    fn meta(&self, path: &str) -> io::Result<Option<FileMeta>> {
        (**self).meta(path)
    }
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(path, offset, buf)
    }
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        (**self).write_at(path, offset, bytes)
    }
    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        (**self).set_len(path, len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        (**self).sync(path)
    }
    fn create(&self, path: &str) -> io::Result<()> {
        (**self).create(path)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        (**self).remove(path)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        (**self).list(dir)
    }
}

/// One operation of [`Storage`], as a [`Faults`] policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`Storage::meta`].
    Meta,
    /// [`Storage::read_at`].
    Read,
    /// [`Storage::write_at`].
    Write,
    /// [`Storage::set_len`].
    SetLen,
    /// [`Storage::sync`].
    Sync,
    /// [`Storage::create`].
    Create,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::list`].
    List,
}

/// What a path is to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A page file.
    Page(PageId),
    /// A page directory `Data/<dd>/<pp>`.
    PageDir,
    /// The log's directory or a segment in it.
    Log,
    /// Anything else.
    Other,
}

/// One call a [`Faulty`] storage is about to make.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The operation.
    pub op: Op,
    /// Its path.
    pub path: &'a str,
    /// What the path is.
    pub kind: FileKind,
    /// Bytes to write or read (0 for the other operations).
    pub len: usize,
}

/// What a [`Faults`] policy decides for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call runs.
    None,
    /// The call fails and changes nothing.
    Fail,
    /// The call runs and then reports failure (a sync that reached the disk but said
    /// it did not).
    FailAfter,
    /// A write writes this many of its first bytes, then fails.
    Partial(usize),
}

/// The decisions of a [`Faulty`] storage: asked before every call, without any lock of
/// the storage held (a policy may wait, or run other work, inside).
pub trait Faults: Send + Sync + fmt::Debug {
    /// Whether `call` fails, and how.
    fn decide(&self, call: &Call<'_>) -> Fault;

    /// `call` ran with `ok` as its outcome (after a `Fault::None` decision only).
    fn finished(&self, call: &Call<'_>, ok: bool) {
        let _ = (call, ok);
    }
}

fn injected(call: &Call<'_>) -> io::Error {
    io::Error::other(format!("injected fault: {:?} {}", call.op, call.path))
}

/// A [`Storage`] whose calls a [`Faults`] policy may fail: the one fault-injecting
/// wrapper, for the memory disk of the store's tests and the simulator's disk alike.
#[derive(Debug)]
pub struct Faulty<S, F> {
    storage: S,
    faults: F,
}

impl<S: Storage, F: Faults> Faulty<S, F> {
    /// `storage` whose calls `faults` decides.
    pub fn wrap(storage: S, faults: F) -> Self {
        Faulty { storage, faults }
    }

    /// The storage underneath (no faults).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The policy.
    pub fn policy(&self) -> &F {
        &self.faults
    }

    fn run<T>(
        &self,
        op: Op,
        path: &str,
        len: usize,
        f: impl FnOnce(&S, Option<usize>) -> io::Result<T>,
    ) -> io::Result<T> {
        let call = Call {
            op,
            path,
            kind: FileKind::of(path),
            len,
        };
        match self.faults.decide(&call) {
            Fault::None => {
                let result = f(&self.storage, None);
                self.faults.finished(&call, result.is_ok());
                result
            }
            Fault::Fail => Err(injected(&call)),
            Fault::FailAfter => {
                f(&self.storage, None)?;
                Err(injected(&call))
            }
            Fault::Partial(n) => {
                f(&self.storage, Some(n.min(len)))?;
                Err(injected(&call))
            }
        }
    }
}

impl<S: Storage, F: Faults> Storage for Faulty<S, F> {
    fn meta(&self, path: &str) -> io::Result<Option<FileMeta>> {
        self.run(Op::Meta, path, 0, |s, _| s.meta(path))
    }
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.run(Op::Read, path, len, |s, part| {
            let n = part.unwrap_or(len);
            s.read_at(path, offset, &mut buf[..n])
        })
    }
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.run(Op::Write, path, bytes.len(), |s, part| {
            s.write_at(path, offset, &bytes[..part.unwrap_or(bytes.len())])
        })
    }
    fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        self.run(Op::SetLen, path, 0, |s, _| s.set_len(path, len))
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        self.run(Op::Sync, path, 0, |s, _| s.sync(path))
    }
    fn create(&self, path: &str) -> io::Result<()> {
        self.run(Op::Create, path, 0, |s, _| s.create(path))
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.run(Op::Remove, path, 0, |s, _| s.remove(path))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.run(Op::List, dir, 0, |s, _| s.list(dir))
    }
}

/// The directory part of `path` (`""` for a name at the root).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStorage;
    use std::sync::Mutex;

    /// Fails the calls of one operation as told, runs every other.
    #[derive(Debug)]
    struct Scripted {
        op: Op,
        fault: Fault,
        finished: Mutex<Vec<(Op, bool)>>,
    }

    impl Faults for Scripted {
        fn decide(&self, call: &Call<'_>) -> Fault {
            if call.op == self.op {
                self.fault
            } else {
                Fault::None
            }
        }
        fn finished(&self, call: &Call<'_>, ok: bool) {
            self.finished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((call.op, ok));
        }
    }

    fn faulty(op: Op, fault: Fault) -> Faulty<MemStorage, Scripted> {
        let storage = MemStorage::new();
        storage.put("raida-store.wal/a.log", b"head");
        Faulty::wrap(
            storage,
            Scripted {
                op,
                fault,
                finished: Mutex::new(Vec::new()),
            },
        )
    }

    const LOG: &str = "raida-store.wal/a.log";

    #[test]
    fn a_partial_write_writes_its_first_bytes_then_fails() {
        let f = faulty(Op::Write, Fault::Partial(3));
        assert!(f.write_at(LOG, 4, b"abcdef").is_err());
        assert_eq!(f.storage().contents(LOG).as_deref(), Some(&b"headabc"[..]));
        assert_eq!(
            f.storage().durable_contents(LOG).as_deref(),
            Some(&b"head"[..])
        );
    }

    #[test]
    fn a_failed_call_changes_nothing_and_a_fail_after_call_does_its_work() {
        let f = faulty(Op::Write, Fault::Fail);
        assert!(f.write_at(LOG, 4, b"abc").is_err());
        assert_eq!(f.storage().contents(LOG).as_deref(), Some(&b"head"[..]));

        let f = faulty(Op::Sync, Fault::FailAfter);
        f.write_at(LOG, 4, b"abc").expect("write");
        assert!(f.sync(LOG).is_err());
        assert_eq!(
            f.storage().durable_contents(LOG).as_deref(),
            Some(&b"headabc"[..])
        );
        // Only calls that ran without a fault are reported finished.
        let finished = f
            .policy()
            .finished
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        assert_eq!(finished, vec![(Op::Write, true)]);
    }

    #[test]
    fn calls_name_what_their_path_is() {
        let f = faulty(Op::Meta, Fault::None);
        assert_eq!(f.meta(LOG).ok().flatten().map(|m| m.len), Some(4));
        assert_eq!(FileKind::of(LOG), FileKind::Log);
        assert_eq!(
            f.list("raida-store.wal").ok(),
            Some(vec!["a.log".to_string()])
        );
    }
}
