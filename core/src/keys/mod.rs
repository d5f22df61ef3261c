//! Where the network layer finds the keys that encrypted requests name
//! (PROTOCOL.md sections 2, 3 and 10), and what commands read and change.
//!
//! [`KeyStore`] is the seam. core holds it and one store, [`MemoryKeyStore`]
//! (everything in memory, filled by the caller: tests, the simulator, small demos);
//! core does no file I/O (its `clippy.toml` bans `std::fs`). The deployed `Data/`
//! layout, its page cache, its durable writes and the demo store live in the
//! `raida-store` crate (`DiskStore`).
//!
//! [`MemoryKeyStore`]: crate::keys::MemoryKeyStore

mod access;
mod locker;
mod memory;

pub(crate) use access::AccessLog;
pub use access::StoreAccess;

pub use locker::{is_locker_key, locker_prefix, LockerIndex, LOCKER_KEY_SUFFIX};
pub use memory::MemoryKeyStore;
/// How requests name coins and keys, and the page layout's sizes: the wire
/// vocabulary's, here at the paths the store and the commands have always used.
pub use raida_wire::{An, CoinId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

use raida_wire::Timestamp;

/// The first serial number that is never a known coin: serials are 26 bits.
///
/// The deployed server computes a 16-bit page number from larger serials, so they
/// alias coins on lower pages; here they are unknown in every store (PROTOCOL.md
/// section 11: a key must never come from another coin).
pub const SERIAL_LIMIT: u32 = 1 << 26;

/// Denominations a deployed RAIDA has (PROTOCOL.md section 10): a coin of any other
/// denomination is unknown without any lookup.
pub const DENOMINATIONS: std::ops::RangeInclusive<i8> = -8..=6;

/// One page of the store: denomination and page number (serial / 1024), the unit the
/// store reads, caches and names files by (`Data/<dd>/<pp>/<pppp>.bin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId {
    /// The denomination (-8..=6).
    pub denomination: i8,
    /// The page number (serial / 1024; below 2^16 since serials are below 2^26).
    pub number: u16,
}

impl PageId {
    /// The page holding `coin` and the record's index in it, or `None` when the coin
    /// can never be known (a denomination outside -8..=6, a serial at or above 2^26).
    pub fn of(coin: CoinId) -> Option<(PageId, usize)> {
        if !DENOMINATIONS.contains(&coin.denomination) || coin.serial >= SERIAL_LIMIT {
            return None;
        }
        let number = u16::try_from(coin.serial / RECORDS_PER_PAGE).ok()?;
        let index = usize::try_from(coin.serial % RECORDS_PER_PAGE).ok()?;
        Some((
            PageId {
                denomination: coin.denomination,
                number,
            },
            index,
        ))
    }
}

/// One coin's record: its AN and the status byte after it (PROTOCOL.md section 10;
/// pown writes the months since February 2023 there, section 8a).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The authenticity number.
    pub an: An,
    /// The status byte.
    pub status: u8,
}

/// Never prints an AN.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// What a header-time lookup found, from memory only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Lookup {
    /// The coin is known: its AN.
    Found(An),
    /// The coin is not known (its page is absent or short, or the coin can never be).
    Unknown,
    /// The coin's page is not in memory: load it off the event loop
    /// ([`KeyStore::load`]) and look again.
    NotInMemory(PageId),
    /// The coin's page could not be read (an I/O error, not an absent file): the
    /// request is answered 252 INTERNAL, never "unknown coin".
    Unreadable(PageId),
}

/// Why a store operation failed. Commands answer 252 INTERNAL; nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A page could not be read (an I/O error, not an absent file).
    #[error("page {page:?} cannot be read: {source}")]
    Unreadable {
        /// The page.
        page: PageId,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A write or its sync failed; the change was not made.
    #[error("write failed: {0}")]
    Write(#[source] std::io::Error),
    /// The store stopped accepting writes after an earlier failure it could not undo
    /// (a restart recovers it from its log).
    #[error("the store accepts no more writes after an earlier failure")]
    Failed,
    /// Asked with [`Access::Resident`], the call would have to wait: a page is not in
    /// memory, or another writer holds one of its pages. Nothing was read or changed;
    /// the engine runs the command again on a worker.
    #[error("the records are not all in memory")]
    NotResident,
}

/// How a command's store call may wait ([`KeyStore::record_pending`],
/// [`KeyStore::modify_pending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// From memory only, on the event-loop thread: a call that would load a page or
    /// wait for another writer fails with [`StoreError::NotResident`] before it reads
    /// or changes anything.
    Resident,
    /// On a worker: the call may load pages and wait for other writers.
    Blocking,
}

/// A write's place in the store's log: the write is durable once the store's
/// [`CommitPoint::durable_below`] has passed it.
pub type CommitSeq = u64;

/// Where the store's log stands ([`KeyStore::commit_point`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitPoint {
    /// Every write whose [`CommitSeq`] is below this is durable.
    pub durable_below: CommitSeq,
    /// A sync failed: no write at or past `durable_below` will ever be durable in
    /// this process (the store stopped; a restart recovers from the log).
    pub failed: bool,
}

impl CommitPoint {
    /// A store whose every write is durable when it returns.
    pub const ALWAYS_DURABLE: CommitPoint = CommitPoint {
        durable_below: CommitSeq::MAX,
        failed: false,
    };

    /// Whether `commit` is durable.
    pub fn covers(self, commit: CommitSeq) -> bool {
        commit < self.durable_below
    }
}

/// What a [`KeyStore::modify`] caller decides: given the current records of its coins
/// (`None`: unknown), fill in the records to write (`None`: leave as it is).
pub type Change<'a> = dyn FnMut(&[Option<Record>], &mut [Option<Record>]) + 'a;

/// The store seam: where the keys of encrypted requests come from, and what commands
/// read and change (PROTOCOL.md sections 2, 3, 8a and 10).
///
/// One store behind an `Arc` serves every event loop and every handler: every method
/// takes `&self`, implementations synchronise inside.
///
/// - [`lookup`](Self::lookup), [`locker_an`](Self::locker_an) and
///   [`locker_keys`](Self::locker_keys) run on the event-loop thread when a header is
///   complete: they answer from memory and never block on I/O. A coin whose page is not in memory is [`Lookup::NotInMemory`]: the engine
///   parks the request, a worker calls [`load`](Self::load), and the request resumes.
/// - [`load`](Self::load), [`record`](Self::record) and [`modify`](Self::modify) run on
///   worker threads: they may block on the disk.
/// - A change made by [`modify`](Self::modify) is durable when it returns, and every
///   later lookup sees it.
///
/// `now` lets a store decide when to look at its files again; it never goes
/// backwards between calls from one thread.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The coin's AN, from memory only.
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup;

    /// The AN of the locker whose AN starts with `prefix`, or `None` (the first of
    /// [`locker_keys`](Self::locker_keys)).
    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An>;

    /// Every locker key starting with `prefix`, in ascending byte order, from memory
    /// only (type-2 requests, PROTOCOL.md section 8c, try them in this order). A store
    /// without a locker index has at most [`locker_an`](Self::locker_an)'s.
    fn locker_keys(&self, prefix: &[u8; 5], now: Timestamp) -> Vec<An> {
        self.locker_an(prefix, now).into_iter().collect()
    }

    /// Whether the locker index covers every record: `Err` when some page could not be
    /// read when the index was built and still cannot. Peek and remove ask first (on a
    /// worker: this may read those pages) and answer 252 rather than from an index
    /// that may lack coins. A store that holds everything in memory is always complete.
    fn locker_index_complete(&self, now: Timestamp) -> Result<(), StoreError> {
        let _ = now;
        Ok(())
    }

    /// The coins of the locker `key` (the coins whose record AN is `key`, a locker
    /// key), ascending by denomination (signed) then serial, as they stood at one
    /// instant; empty when there is no such locker. From memory, by map: never a scan
    /// of the records. A store without a locker index has no lockers.
    fn locker_coins(&self, key: &An, now: Timestamp) -> Vec<CoinId> {
        let _ = (key, now);
        Vec::new()
    }

    /// Brings `page` into memory, or learns that it is absent; blocks on the disk.
    /// A store that holds everything in memory has nothing to do.
    fn load(&self, page: PageId, now: Timestamp) -> Result<(), StoreError> {
        let _ = (page, now);
        Ok(())
    }

    /// The coin's record, loading its page when needed (off the event loop); `None`
    /// when the coin is unknown.
    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError>;

    /// Changes the records of `coins` atomically and durably: `change` sees their
    /// current records (`None`: unknown coin) and fills in, in `new` (which arrives
    /// all `None`), the records to write; unknown coins cannot be written. While
    /// `change` runs and until the write is durable no other `modify` of any of these
    /// coins runs, so a compare-and-set over them is atomic. Every record written is
    /// durable when this returns `Ok`; on `Err` nothing was written.
    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError>;

    /// What the store has done so far (for metrics), or `None` when it counts nothing.
    fn stats(&self) -> Option<StoreStats> {
        None
    }

    // ----- writes answered by their commit --------------------------------------------
    //
    // The engine's path: a command's write is applied in memory and appended to the
    // log, and the command returns at once; the engine holds the response until the
    // store's commit point passes the write ([`commit_point`](Self::commit_point)),
    // and the driver runs [`sync`](Self::sync) (one sync for every write in flight).
    // A read that sees a write not yet durable says so, and its response waits too.
    // The defaults fit a store whose writes are durable when they return.

    /// [`record`](Self::record), and the commit the record waits for: `Some` when the
    /// record was written by a write not yet durable (an answer that reveals it must
    /// wait for that commit). With [`Access::Resident`], from memory only.
    fn record_pending(
        &self,
        coin: CoinId,
        now: Timestamp,
        access: Access,
    ) -> Result<(Option<Record>, Option<CommitSeq>), StoreError> {
        let _ = access;
        Ok((self.record(coin, now)?, None))
    }

    /// [`modify`](Self::modify) without waiting for durability: the records are
    /// changed in memory (every later read sees them, and says it waits for this
    /// commit) and the write is appended to the log. Returns the write's commit
    /// (`None`: nothing was written, or it is durable already). Coin locks are held
    /// while `change` runs and the write is applied, not across the sync. With
    /// [`Access::Resident`] it fails with [`StoreError::NotResident`], before `change`
    /// runs, when a page is not in memory or another writer holds one.
    fn modify_pending(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
        access: Access,
    ) -> Result<Option<CommitSeq>, StoreError> {
        let _ = access;
        self.modify(coins, now, change).map(|()| None)
    }

    /// The commit of the newest write of `coin` not yet durable, if any (a header-time
    /// key of that coin waits for it). From memory; never blocks.
    fn pending_commit(&self, coin: CoinId) -> Option<CommitSeq> {
        let _ = coin;
        None
    }

    /// The commit of the newest write appended and not yet durable, of any coin: what
    /// an answer from the locker index waits for (the index does not say which write
    /// put a coin in a locker). Never blocks.
    fn newest_pending(&self) -> Option<CommitSeq> {
        None
    }

    /// Whether [`locker_index_complete`](Self::locker_index_complete) would answer at
    /// once from memory (`false`: it must read pages first, which the event loop must
    /// not do).
    fn locker_index_known(&self) -> bool {
        true
    }

    /// Where the log stands: which writes are durable, and whether a sync failed.
    fn commit_point(&self) -> CommitPoint {
        CommitPoint::ALWAYS_DURABLE
    }

    /// Makes every write appended so far durable: one append and one sync for all of
    /// them (the group commit). Blocks on the disk; the driver runs it off the event
    /// loop and then tells every engine ([`Engine::handle_commit`]). A failed sync
    /// stops the store (fail-stop): no write is acknowledged again until a restart
    /// recovers from the log.
    ///
    /// Returns whether writes were appended while it ran and wait for the next sync:
    /// the store's word that a committer should sync again at once rather than wait
    /// to be asked (`false` after a failure: nothing will be durable).
    ///
    /// [`Engine::handle_commit`]: crate::Engine::handle_commit
    fn sync(&self) -> bool {
        false
    }

    /// A hint that `coins` are looked up soon (the requests of a batch of datagrams,
    /// before the first is served): a store may start bringing their records into the
    /// CPU's cache, so that their misses overlap instead of each request waiting for
    /// its own. Never blocks, never loads a page, changes nothing a lookup sees; coins
    /// out of range or not in memory are skipped. Default: nothing.
    fn prefetch(&self, coins: &[CoinId]) {
        let _ = coins;
    }
}

/// A coin's AN, blocking on the disk when its page is not in memory (for the
/// single-call answer and other callers off the event loop): `Ok(None)` when unknown.
pub fn lookup_blocking(
    store: &dyn KeyStore,
    coin: CoinId,
    now: Timestamp,
) -> Result<Option<An>, StoreError> {
    // A page a concurrent eviction drops between the load and the lookup is loaded
    // again; a bound keeps a pathological store from looping.
    for _ in 0..4 {
        match store.lookup(coin, now) {
            Lookup::Found(an) => return Ok(Some(an)),
            Lookup::Unknown => return Ok(None),
            Lookup::NotInMemory(page) | Lookup::Unreadable(page) => store.load(page, now)?,
        }
    }
    Ok(store.record(coin, now)?.map(|r| r.an))
}

/// What a store has done since it was opened, for metrics and tests. A store fills in
/// what it keeps; the rest stays 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Header-time lookups.
    pub lookups: u64,
    /// Lookups answered from memory (known or unknown coin).
    pub hits: u64,
    /// Lookups whose page was not in memory (a load followed).
    pub misses: u64,
    /// Lookups of a coin that can never be known (no lookup was made).
    pub out_of_range: u64,
    /// Page files read.
    pub loads: u64,
    /// Page reads that failed with an I/O error.
    pub read_errors: u64,
    /// Page reads that found no complete page (remembered apart from real pages).
    pub pages_absent: u64,
    /// Pages in memory now.
    pub cached_pages: u64,
    /// Pages known to be absent now.
    pub absent_pages: u64,
    /// Pages evicted to stay within the cache's bound.
    pub evictions: u64,
    /// Pages read again because their file changed on disk.
    pub reloads: u64,
    /// Durable syncs of the log (group commits).
    pub syncs: u64,
    /// Records written (every sync covers one or more).
    pub records_written: u64,
    /// Writes (or syncs) that failed.
    pub write_errors: u64,
    /// Writes made durable by the syncs (each one command's all-or-nothing change).
    pub writes_committed: u64,
    /// Page files synced by checkpoints (before a log segment goes).
    pub page_syncs: u64,
    /// Log segments removed by checkpoints (their writes in place and synced).
    pub checkpoints: u64,
    /// 1 when a sync failed and the store stopped taking writes (fail-stop), else 0.
    pub fail_stopped: u64,
}
