//! The deployed server's on-disk key store (PROTOCOL.md section 10), read lazily
//! through a bounded, expiring page cache.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{
    An, Change, CoinId, KeyStore, LockerIndex, Lookup, Record, StoreError, StoreStats, PAGE_BYTES,
    RECORDS_PER_PAGE, RECORD_BYTES, SERIAL_LIMIT,
};
use crate::Timestamp;

/// Default bound on cached pages, positive and negative together: 1024 pages are
/// about 17 MiB, enough for every page a busy server touches within one TTL while a
/// full store (about 15,000 pages, 260 MB) never has to be resident.
pub const DEFAULT_PAGE_CACHE_PAGES: usize = 1024;

/// Default time a cached page (or a cached absence) is trusted after it was read:
/// a change another module writes to disk is served at most this long after the
/// write, and a flood of lookups costs at most one file open per page per second.
pub const DEFAULT_PAGE_TTL: Duration = Duration::from_secs(1);

/// A page as the cache knows it: (denomination's unsigned byte, page number).
type PageKey = (u8, u16);

/// The page key and the record index within it of coin (`denomination`, `serial`),
/// or `None` for a serial at or above [`SERIAL_LIMIT`].
fn locate(denomination: i8, serial: u32) -> Option<(PageKey, usize)> {
    if serial >= SERIAL_LIMIT {
        return None;
    }
    // Serials below 2^26 have page numbers below 2^16, so the conversions cannot fail;
    // `ok()?` keeps even a broken invariant from panicking.
    let page = u16::try_from(serial / RECORDS_PER_PAGE).ok()?;
    let record = usize::try_from(serial % RECORDS_PER_PAGE).ok()?;
    Some(((denomination.to_ne_bytes()[0], page), record))
}

/// `<data_dir>/<dd>/<pp>/<pppp>.bin` for a page key.
fn page_file(data_dir: &Path, (den, page): PageKey) -> PathBuf {
    data_dir
        .join(format!("{den:02x}"))
        .join(format!("{:02x}", page >> 8))
        .join(format!("{page:04x}.bin"))
}

/// The page file that holds coin (`denomination`, `serial`) in the store rooted at
/// `root`: `<root>/Data/<dd>/<pp>/<pppp>.bin` (PROTOCOL.md section 10), or `None` for a
/// serial at or above [`SERIAL_LIMIT`], which has no page.
///
/// `dd` is the denomination's unsigned byte in two lowercase hex digits (-1 is `ff`),
/// `pppp` the page number `serial / 1024` in four, `pp` the page number's high byte.
pub fn coin_page_path(root: &Path, denomination: i8, serial: u32) -> Option<PathBuf> {
    let (key, _) = locate(denomination, serial)?;
    Some(page_file(&root.join("Data"), key))
}

/// Reads a page file's first [`PAGE_BYTES`] bytes; `None` when the file is missing,
/// unreadable or shorter than a page. Never reads more than one page, whatever the
/// file's size.
fn read_page(path: &Path) -> Option<Box<[u8; PAGE_BYTES]>> {
    let file = File::open(path).ok()?;
    let mut buf = Vec::with_capacity(PAGE_BYTES);
    file.take(PAGE_BYTES as u64).read_to_end(&mut buf).ok()?;
    buf.into_boxed_slice().try_into().ok()
}

/// The AN in record `record` of a complete page.
fn record_an(page: &[u8; PAGE_BYTES], record: usize) -> Option<An> {
    let start = record.checked_mul(RECORD_BYTES)?;
    page.get(start..start.checked_add(16)?)?.try_into().ok()
}

/// Why [`DiskKeyStore::open`] refused a root directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
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
}

/// What a [`DiskKeyStore`] has done since it was opened, for metrics and tests.
///
/// Coin lookups add up: `lookups == out_of_range + hits + misses + expired`, and
/// every miss or expiry is one page read: `disk_reads == misses + expired`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStoreStats {
    /// Coin lookups (`coin_an` calls).
    pub lookups: u64,
    /// Lookups of a serial at or above [`SERIAL_LIMIT`]: unknown, no cache, no disk.
    pub out_of_range: u64,
    /// Lookups answered from a fresh cached page, positive or negative.
    pub hits: u64,
    /// Lookups whose page was not cached (never read, or evicted): one page read.
    pub misses: u64,
    /// Lookups whose page was cached longer than the TTL: one page re-read.
    pub expired: u64,
    /// Page files opened (or attempted): `misses + expired`.
    pub disk_reads: u64,
    /// Page reads that found no complete page (missing, short or unreadable file);
    /// the absence is cached like a page.
    pub pages_absent: u64,
    /// Cached pages dropped, least recently used first, to stay within the bound.
    pub evictions: u64,
}

/// One cache entry: a page, or the fact that there was none, as of `read_at`.
struct CachedPage {
    /// The page's bytes, or `None` when the file was missing, short or unreadable.
    page: Option<Box<[u8; PAGE_BYTES]>>,
    /// When the file was read: the entry is trusted until `read_at + page_ttl`.
    read_at: Timestamp,
    /// Position in the recency order (`DiskKeyStore::recency`).
    tick: u64,
}

/// A [`KeyStore`] over the deployed server's `Data/` directory (PROTOCOL.md
/// section 10), with an in-memory locker index.
///
/// **Lazy.** Opening reads no page: a full store is about 15,000 pages (260 MB). A
/// lookup that misses the cache reads exactly one page file, at most [`PAGE_BYTES`]
/// bytes of it.
///
/// **Bounded.** At most `cache_pages` pages are cached, and negative entries (a page
/// that was missing, short or unreadable) count against the same bound, so neither a
/// scan of the whole store nor a flood of made-up serials grows memory past
/// `cache_pages` × [`PAGE_BYTES`]. When full, the least recently used entry goes;
/// recency is a counter, never a clock or a hash, so eviction is deterministic.
/// `cache_pages == 0` disables caching: every lookup reads its page.
///
/// **Freshness policy.** Pages change on disk while the server runs. A cached page,
/// or a cached absence, is trusted for less than `page_ttl` after the file was read
/// (`now - read_at < page_ttl`); the first lookup at or after `read_at + page_ttl`
/// re-reads the file, so a rewritten page serves its new ANs, and a page deleted or
/// truncated becomes unknown, at most `page_ttl` after the read that cached it. Using a
/// cached page does not extend its life (a hot page is re-read every TTL), and an
/// absence is re-checked on the same schedule, so a flood of lookups of unknown
/// serials costs at most one file open per page per TTL. `page_ttl == 0` trusts
/// nothing: every lookup reads its page.
///
/// **Errors.** Any I/O error on lookup makes the coin unknown (`None`); lookups never
/// panic and never fail the caller.
///
/// **Lockers** live in memory only (`insert_locker`); the index starts empty, like a
/// freshly deployed server's.
pub struct DiskKeyStore {
    data_dir: PathBuf,
    capacity: usize,
    page_ttl: Duration,
    /// The cache, the locker index and the counters, behind one lock: lookups come
    /// from every event loop and every worker.
    cache: Mutex<Cache>,
}

struct Cache {
    data_dir: PathBuf,
    capacity: usize,
    page_ttl: Duration,
    pages: BTreeMap<PageKey, CachedPage>,
    /// Recency order of `pages`: tick -> page, oldest first.
    recency: BTreeMap<u64, PageKey>,
    next_tick: u64,
    lockers: LockerIndex,
    stats: KeyStoreStats,
}

/// No page bytes: a key store's `Debug` output must never put an AN into a log.
impl std::fmt::Debug for DiskKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.lock();
        f.debug_struct("DiskKeyStore")
            .field("data_dir", &self.data_dir)
            .field("capacity", &self.capacity)
            .field("page_ttl", &self.page_ttl)
            .field("cached_pages", &cache.pages.len())
            .field("lockers", &cache.lockers)
            .field("stats", &cache.stats)
            .finish()
    }
}

impl DiskKeyStore {
    /// A store over `<root>/Data`, caching at most `cache_pages` pages, each trusted
    /// for `page_ttl` after it was read (see the type's freshness policy).
    ///
    /// Only checks that `<root>/Data` is a directory; reads no page.
    pub fn open(
        root: impl Into<PathBuf>,
        cache_pages: usize,
        page_ttl: Duration,
    ) -> Result<Self, KeyStoreError> {
        let data_dir = root.into().join("Data");
        match std::fs::metadata(&data_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(KeyStoreError::NotADirectory { path: data_dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyStoreError::MissingDataDir { path: data_dir })
            }
            Err(source) => {
                return Err(KeyStoreError::Inaccessible {
                    path: data_dir,
                    source,
                })
            }
        }
        Ok(DiskKeyStore {
            data_dir: data_dir.clone(),
            capacity: cache_pages,
            page_ttl,
            cache: Mutex::new(Cache {
                data_dir,
                capacity: cache_pages,
                page_ttl,
                pages: BTreeMap::new(),
                recency: BTreeMap::new(),
                next_tick: 0,
                lockers: LockerIndex::default(),
                stats: KeyStoreStats::default(),
            }),
        })
    }

    /// [`open`](Self::open) with [`DEFAULT_PAGE_CACHE_PAGES`] and [`DEFAULT_PAGE_TTL`].
    pub fn open_with_defaults(root: impl Into<PathBuf>) -> Result<Self, KeyStoreError> {
        Self::open(root, DEFAULT_PAGE_CACHE_PAGES, DEFAULT_PAGE_TTL)
    }

    /// The `Data` directory this store reads.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The bound on cached pages (positive and negative entries together).
    pub fn cache_capacity(&self) -> usize {
        self.capacity
    }

    /// How long a cached page is trusted after it was read.
    pub fn page_ttl(&self) -> Duration {
        self.page_ttl
    }

    /// Pages (and absences) cached now; never more than [`cache_capacity`](Self::cache_capacity).
    pub fn cached_pages(&self) -> usize {
        self.lock().pages.len()
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> KeyStoreStats {
        self.lock().stats
    }

    /// The counters since the store was opened.
    pub fn cache_stats(&self) -> Option<KeyStoreStats> {
        Some(self.lock().stats)
    }

    /// Registers a locker, indexed by the first 5 bytes of its AN (the prefix type-2
    /// requests carry). A later locker with the same prefix replaces this one.
    pub fn insert_locker(&self, an: An) {
        self.lock().lockers.insert(an);
    }

    /// Forgets the locker with AN prefix `prefix`, returning its AN if there was one.
    pub fn remove_locker(&self, prefix: &[u8; 5]) -> Option<An> {
        self.lock().lockers.remove(prefix)
    }

    /// How many lockers are registered.
    pub fn locker_count(&self) -> usize {
        self.lock().lockers.len()
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // A lookup is self-contained: a panic elsewhere leaves the cache consistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Cache {
    fn take_tick(&mut self) -> u64 {
        let tick = self.next_tick;
        self.next_tick = self.next_tick.wrapping_add(1);
        tick
    }

    /// The AN in record `record` of page `key`, through the cache.
    fn lookup(&mut self, key: PageKey, record: usize, now: Timestamp) -> Option<An> {
        let tick = self.take_tick();
        if let Some(entry) = self.pages.get_mut(&key) {
            self.recency.remove(&entry.tick);
            self.recency.insert(tick, key);
            entry.tick = tick;
            if now.saturating_since(entry.read_at) < self.page_ttl {
                self.stats.hits += 1;
            } else {
                self.stats.expired += 1;
                self.stats.disk_reads += 1;
                entry.page = read_page(&page_file(&self.data_dir, key));
                entry.read_at = now;
                if entry.page.is_none() {
                    self.stats.pages_absent += 1;
                }
            }
            return entry.page.as_deref().and_then(|p| record_an(p, record));
        }

        self.stats.misses += 1;
        self.stats.disk_reads += 1;
        let page = read_page(&page_file(&self.data_dir, key));
        if page.is_none() {
            self.stats.pages_absent += 1;
        }
        let an = page.as_deref().and_then(|p| record_an(p, record));
        if self.capacity == 0 {
            return an;
        }
        while self.pages.len() >= self.capacity {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.pages.remove(&oldest);
            self.stats.evictions += 1;
        }
        self.recency.insert(tick, key);
        self.pages.insert(
            key,
            CachedPage {
                page,
                read_at: now,
                tick,
            },
        );
        an
    }
}

impl DiskKeyStore {
    /// The AN of coin (`denomination`, `serial`), reading its page on a miss.
    pub fn coin_an(&self, denomination: i8, serial: u32, now: Timestamp) -> Option<An> {
        let mut cache = self.lock();
        cache.stats.lookups += 1;
        let Some((key, record)) = locate(denomination, serial) else {
            cache.stats.out_of_range += 1;
            return None;
        };
        cache.lookup(key, record, now)
    }
}

impl KeyStore for DiskKeyStore {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        match self.coin_an(coin.denomination, coin.serial, now) {
            Some(an) => Lookup::Found(an),
            None => Lookup::Unknown,
        }
    }

    fn locker_an(&self, prefix: &[u8; 5], _now: Timestamp) -> Option<An> {
        self.lock().lockers.get(prefix)
    }

    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        Ok(self
            .coin_an(coin.denomination, coin.serial, now)
            .map(|an| Record { an, status: 0 }))
    }

    fn modify(
        &self,
        _coins: &[CoinId],
        _now: Timestamp,
        _change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        Err(StoreError::Write(io::Error::other(
            "this key store is read-only",
        )))
    }

    fn stats(&self) -> Option<StoreStats> {
        let s = self.lock().stats;
        Some(StoreStats {
            lookups: s.lookups,
            out_of_range: s.out_of_range,
            hits: s.hits,
            misses: s.misses + s.expired,
            loads: s.disk_reads,
            pages_absent: s.pages_absent,
            evictions: s.evictions,
            ..StoreStats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_path_follows_section_10() {
        let root = Path::new("/r");
        let path = |den, serial| coin_page_path(root, den, serial).map(|p| p.display().to_string());
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
    }

    #[test]
    fn record_index_is_serial_mod_1024() {
        assert_eq!(locate(2, 1024 * 3 + 17), Some(((2, 3), 17)));
        assert_eq!(locate(-1, 1023), Some(((0xff, 0), 1023)));
    }

    #[test]
    fn record_an_reads_the_first_16_bytes_of_a_record() {
        let mut page = Box::new([0u8; PAGE_BYTES]);
        let last = (RECORDS_PER_PAGE as usize - 1) * RECORD_BYTES;
        page[last..last + 16].copy_from_slice(&[7; 16]);
        page[last + 16] = 0xEE; // status byte, not part of the AN
        assert_eq!(record_an(&page, 1023), Some([7; 16]));
        assert_eq!(record_an(&page, 1024), None);
    }

    #[test]
    fn debug_output_holds_no_page_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("Data")).expect("mkdir");
        let store = DiskKeyStore::open(dir.path(), 4, DEFAULT_PAGE_TTL).expect("open");
        store.insert_locker([0x5a; 16]);
        let text = format!("{store:?}");
        assert!(!text.contains("90, 90"), "{text}");
        assert!(text.contains("lockers: 1"), "{text}");
    }
}
