//! A command's window on the store ([`StoreAccess`], `ctx.store`): the same calls as
//! [`KeyStore`], which also note what the command's answer must wait for.
//!
//! A write is applied in memory and appended to the log, and the call returns before
//! the log is synced; a read may see such a write. Either way the answer must not
//! reach the client before that write is durable, or a crash could take back what
//! the client was told. The command does not hold anything itself: `StoreAccess`
//! notes the newest commit its calls depended on, and the engine holds the response
//! until the store's commit point passes it.
//!
//! On the event-loop thread ([`Access::Resident`]) a call that would load a page or
//! wait for another writer fails with [`StoreError::NotResident`] before it reads or
//! changes anything; `StoreAccess` notes that too, and the engine runs the command
//! again on a worker, where the same calls may block. Once a command has written, its
//! later calls block rather than fail, so a write is never made twice.

use std::cell::Cell;

use raida_wire::Timestamp;

use super::{Access, An, Change, CoinId, CommitSeq, KeyStore, Lookup, PageId, Record, StoreError};

/// What a command's store calls came to, besides their results.
#[derive(Debug)]
pub(crate) struct AccessLog {
    access: Cell<Access>,
    /// The newest commit a call depended on (a write it made, a record it read).
    commit: Cell<Option<CommitSeq>>,
    /// A call in [`Access::Resident`] found something not in memory.
    not_resident: Cell<bool>,
}

impl AccessLog {
    /// A log for a command that runs with `access`, whose answer already waits for
    /// `commit` (its header-time key's).
    pub(crate) fn new(access: Access, commit: Option<CommitSeq>) -> AccessLog {
        AccessLog {
            access: Cell::new(access),
            commit: Cell::new(commit),
            not_resident: Cell::new(false),
        }
    }

    /// The newest commit the answer waits for.
    pub(crate) fn commit(&self) -> Option<CommitSeq> {
        self.commit.get()
    }

    /// Whether a call found something not in memory (the command must run again on
    /// a worker; its answer is void).
    pub(crate) fn not_resident(&self) -> bool {
        self.not_resident.get()
    }

    fn note(&self, commit: Option<CommitSeq>) {
        if let Some(c) = commit {
            self.commit
                .set(Some(self.commit.get().map_or(c, |old| old.max(c))));
        }
    }

    fn check<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(result, Err(StoreError::NotResident)) {
            self.not_resident.set(true);
        }
        result
    }
}

/// The store as a command sees it (`ctx.store`): [`KeyStore`]'s calls, each noting
/// what the command's answer waits for. Cheap to copy.
#[derive(Clone, Copy)]
pub struct StoreAccess<'a> {
    keys: &'a dyn KeyStore,
    log: &'a AccessLog,
}

impl std::fmt::Debug for StoreAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAccess")
            .field("keys", &self.keys)
            .field("access", &self.log.access.get())
            .finish_non_exhaustive()
    }
}

impl<'a> StoreAccess<'a> {
    pub(crate) fn new(keys: &'a dyn KeyStore, log: &'a AccessLog) -> StoreAccess<'a> {
        StoreAccess { keys, log }
    }

    /// The store itself. Calls made on it directly are not noted: an answer that
    /// depends on them may reach the client before the write it saw is durable.
    pub fn keys(&self) -> &'a dyn KeyStore {
        self.keys
    }

    /// The coin's record (`None`: unknown), loading its page when needed (on a
    /// worker). See [`KeyStore::record`].
    pub fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        let (record, commit) =
            self.log
                .check(self.keys.record_pending(coin, now, self.log.access.get()))?;
        self.log.note(commit);
        Ok(record)
    }

    /// Changes the records of `coins` atomically: see [`KeyStore::modify`]. The change
    /// is in memory when this returns `Ok`; the answer waits until it is durable.
    pub fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        let commit =
            self.log.check(
                self.keys
                    .modify_pending(coins, now, change, self.log.access.get()),
            )?;
        match commit {
            Some(_) => self.log.note(commit),
            // Nothing written: the change still read the coins' records, and one of
            // them may be a write not yet durable (a compare-and-set that fails
            // because of it tells the client so): the answer waits for it too.
            None => {
                for coin in coins {
                    self.log.note(self.keys.pending_commit(*coin));
                }
            }
        }
        // Written: whatever the command does next must not fail for residence (it
        // would run again, and write again).
        self.log.access.set(Access::Blocking);
        Ok(())
    }

    /// The coin's AN from memory: see [`KeyStore::lookup`].
    pub fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        let found = self.keys.lookup(coin, now);
        if matches!(found, Lookup::Found(_)) {
            self.log.note(self.keys.pending_commit(coin));
        }
        found
    }

    /// Whether the locker index covers every record: see
    /// [`KeyStore::locker_index_complete`].
    pub fn locker_index_complete(&self, now: Timestamp) -> Result<(), StoreError> {
        if self.log.access.get() == Access::Resident && !self.keys.locker_index_known() {
            return self.log.check(Err(StoreError::NotResident));
        }
        self.keys.locker_index_complete(now)
    }

    /// The coins of the locker `key`: see [`KeyStore::locker_coins`].
    pub fn locker_coins(&self, key: &An, now: Timestamp) -> Vec<CoinId> {
        let coins = self.keys.locker_coins(key, now);
        // After the read: a write the read saw was appended before it.
        self.log.note(self.keys.newest_pending());
        coins
    }

    /// The locker keys starting with `prefix`: see [`KeyStore::locker_keys`].
    pub fn locker_keys(&self, prefix: &[u8; 5], now: Timestamp) -> Vec<An> {
        let keys = self.keys.locker_keys(prefix, now);
        self.log.note(self.keys.newest_pending());
        keys
    }

    /// Brings `page` into memory: see [`KeyStore::load`].
    pub fn load(&self, page: PageId, now: Timestamp) -> Result<(), StoreError> {
        if self.log.access.get() == Access::Resident {
            return self.log.check(Err(StoreError::NotResident));
        }
        self.keys.load(page, now)
    }
}
