//! The key store of each server of the RAIDA world ([`crate::raida_world`]): the coin
//! records in memory, and beside them the records a recovery would find after a crash
//! (its *durable* copy), with seeded write and sync failures.
//!
//! It follows the store seam's write path ([`KeyStore::modify_pending`]): a write is
//! applied in memory and appended to a log of pending writes, each with its
//! [`CommitSeq`], and the call returns at once; the engine holds the answer until
//! [`KeyStore::sync`] (which the world runs when the engine asks, a drawn delay later)
//! makes every pending write durable and the commit point passes it. A failed append
//! writes nothing; a failed sync stops the store (fail-stop: no write is durable
//! again, every held answer is 252) until a restart, which recovers the records from
//! the durable copy alone.
//!
//! Why not raida-store's `DiskStore` over the simulated disk, as the store world runs
//! it: the RAIDA world holds up to 25 servers per seed, and the store world already
//! checks what the disk store does with its bytes (crashes, torn sectors, recovery).
//! What this world must check is the healing commands' and the engine's side of the
//! contract: a fix may answer a coin fixed only once its write is durable. The durable
//! copy is exactly what a server recovered from its synced bytes would hold, and the
//! world compares it with every fix answer as the answer leaves the server.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use raida_core::keys::{
    Access, An, Change, CoinId, CommitPoint, CommitSeq, KeyStore, Lookup, Record, StoreError,
};
use raida_core::Timestamp;

use crate::rng::Rng;

/// The records, the durable copy, the pending writes and the fault policy.
#[derive(Debug)]
struct Inner {
    current: BTreeMap<CoinId, Record>,
    durable: BTreeMap<CoinId, Record>,
    /// Writes applied in memory, not yet durable, in commit order.
    pending: Vec<(CommitSeq, Vec<(CoinId, Record)>)>,
    /// The commit of each coin's newest pending write.
    pending_coin: BTreeMap<CoinId, CommitSeq>,
    next_commit: CommitSeq,
    durable_below: CommitSeq,
    /// A sync failed: the store stopped until a restart.
    failed: bool,
    /// Per mille of appends that fail (nothing written).
    fail_pm: u32,
    /// Per mille of syncs that fail (the store stops).
    sync_fail_pm: u32,
    rng: Rng,
    writes: u64,
    failures: u64,
}

/// One server's records with their durable copy (see the module documentation).
#[derive(Debug)]
pub struct DurableStore {
    inner: Mutex<Inner>,
}

impl DurableStore {
    /// An empty store whose appends fail with probability `fail_pm / 1000` and whose
    /// syncs fail with probability `sync_fail_pm / 1000`, drawn from `rng`.
    pub fn new(rng: Rng, fail_pm: u32, sync_fail_pm: u32) -> DurableStore {
        DurableStore {
            inner: Mutex::new(Inner {
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending: Vec::new(),
                pending_coin: BTreeMap::new(),
                next_commit: 0,
                durable_below: 0,
                failed: false,
                fail_pm,
                sync_fail_pm,
                rng,
                writes: 0,
                failures: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Single-threaded world: a poisoned lock only follows a panic, which ends the
        // run anyway; the maps are consistent between statements.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A known coin with `an` (status byte 0), current and durable.
    pub fn insert(&self, coin: CoinId, an: An) {
        let record = Record { an, status: 0 };
        let mut inner = self.lock();
        inner.current.insert(coin, record);
        inner.durable.insert(coin, record);
    }

    /// The coin's record as a recovery would find it.
    pub fn durable(&self, coin: CoinId) -> Option<Record> {
        self.lock().durable.get(&coin).copied()
    }

    /// The coin's record as requests see it now.
    pub fn current(&self, coin: CoinId) -> Option<Record> {
        self.lock().current.get(&coin).copied()
    }

    /// No fault from now on (appends and syncs).
    pub fn heal(&self) {
        let mut inner = self.lock();
        inner.fail_pm = 0;
        inner.sync_fail_pm = 0;
    }

    /// Whether a sync failed and the store stopped.
    pub fn stopped(&self) -> bool {
        self.lock().failed
    }

    /// A crash and recovery: the pending writes are lost and the records become the
    /// durable ones (what a store recovered from its synced bytes holds); a stopped
    /// store runs again.
    pub fn recover(&self) {
        let mut inner = self.lock();
        inner.current = inner.durable.clone();
        inner.pending.clear();
        inner.pending_coin.clear();
        inner.durable_below = inner.next_commit;
        inner.failed = false;
    }

    /// (writes made, writes failed).
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.writes, inner.failures)
    }
}

impl Inner {
    /// The commit of `coin`'s newest write not yet durable.
    fn pending_of(&self, coin: CoinId) -> Option<CommitSeq> {
        self.pending_coin
            .get(&coin)
            .copied()
            .filter(|&c| c >= self.durable_below)
    }
}

impl KeyStore for DurableStore {
    fn lookup(&self, coin: CoinId, _now: Timestamp) -> Lookup {
        match self.lock().current.get(&coin) {
            Some(r) => Lookup::Found(r.an),
            None => Lookup::Unknown,
        }
    }

    fn locker_an(&self, _prefix: &[u8; 5], _now: Timestamp) -> Option<An> {
        None
    }

    fn record(&self, coin: CoinId, _now: Timestamp) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().current.get(&coin).copied())
    }

    /// A write durable when it returns: [`modify_pending`](KeyStore::modify_pending),
    /// then a sync.
    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        let commit = self.modify_pending(coins, now, change, Access::Blocking)?;
        self.sync();
        match commit {
            Some(c) if !self.commit_point().covers(c) => Err(StoreError::Failed),
            _ => Ok(()),
        }
    }

    fn record_pending(
        &self,
        coin: CoinId,
        _now: Timestamp,
        _access: Access,
    ) -> Result<(Option<Record>, Option<CommitSeq>), StoreError> {
        let inner = self.lock();
        Ok((inner.current.get(&coin).copied(), inner.pending_of(coin)))
    }

    fn modify_pending(
        &self,
        coins: &[CoinId],
        _now: Timestamp,
        change: &mut Change<'_>,
        _access: Access,
    ) -> Result<Option<CommitSeq>, StoreError> {
        let mut inner = self.lock();
        if inner.failed {
            return Err(StoreError::Failed);
        }
        let current: Vec<Option<Record>> = coins
            .iter()
            .map(|c| inner.current.get(c).copied())
            .collect();
        let mut new = vec![None; coins.len()];
        change(&current, &mut new);
        let written: Vec<(CoinId, Record)> = coins
            .iter()
            .zip(&current)
            .zip(new)
            .filter_map(|((coin, old), new)| match (old, new) {
                (Some(_), Some(record)) => Some((*coin, record)),
                _ => None,
            })
            .collect();
        if written.is_empty() {
            return Ok(None);
        }
        let pm = inner.fail_pm;
        if inner.rng.chance(pm) {
            inner.failures += 1;
            return Err(StoreError::Write(std::io::Error::other(
                "simulated append failure",
            )));
        }
        let commit = inner.next_commit;
        inner.next_commit += 1;
        for &(coin, record) in &written {
            inner.current.insert(coin, record);
            inner.pending_coin.insert(coin, commit);
            inner.writes += 1;
        }
        inner.pending.push((commit, written));
        Ok(Some(commit))
    }

    fn pending_commit(&self, coin: CoinId) -> Option<CommitSeq> {
        self.lock().pending_of(coin)
    }

    fn newest_pending(&self) -> Option<CommitSeq> {
        let inner = self.lock();
        (inner.next_commit > inner.durable_below).then(|| inner.next_commit - 1)
    }

    fn commit_point(&self) -> CommitPoint {
        let inner = self.lock();
        CommitPoint {
            durable_below: inner.durable_below,
            failed: inner.failed,
        }
    }

    fn sync(&self) -> bool {
        let mut inner = self.lock();
        if inner.failed || inner.pending.is_empty() {
            return false;
        }
        let pm = inner.sync_fail_pm;
        if inner.rng.chance(pm) {
            inner.failed = true;
            inner.failures += 1;
            return false;
        }
        for (_, writes) in std::mem::take(&mut inner.pending) {
            for (coin, record) in writes {
                inner.durable.insert(coin, record);
            }
        }
        inner.durable_below = inner.next_commit;
        inner.pending_coin.clear();
        // One world, one thread: nothing was appended while it ran.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_micros(1);

    fn write(store: &DurableStore, coin: CoinId, an: An) -> Result<Option<CommitSeq>, StoreError> {
        let new = Record { an, status: 9 };
        store.modify_pending(&[coin], NOW, &mut |_, n| n[0] = Some(new), Access::Blocking)
    }

    #[test]
    fn a_write_is_durable_only_after_its_sync() {
        let coin = CoinId::new(1, 5);
        let store = DurableStore::new(Rng::new(1), 0, 0);
        store.insert(coin, [1; 16]);
        let commit = write(&store, coin, [2; 16])
            .expect("no faults")
            .expect("written");
        assert_eq!(store.current(coin).map(|r| r.an), Some([2; 16]));
        assert_eq!(store.durable(coin).map(|r| r.an), Some([1; 16]));
        assert_eq!(store.pending_commit(coin), Some(commit));
        assert!(!store.commit_point().covers(commit));
        store.sync();
        assert!(store.commit_point().covers(commit));
        assert_eq!(store.durable(coin).map(|r| r.an), Some([2; 16]));
        assert_eq!(store.pending_commit(coin), None);
    }

    #[test]
    fn a_crash_keeps_only_what_was_synced() {
        let coin = CoinId::new(1, 5);
        let store = DurableStore::new(Rng::new(1), 0, 0);
        store.insert(coin, [1; 16]);
        write(&store, coin, [2; 16]).expect("no faults");
        store.recover();
        assert_eq!(store.current(coin).map(|r| r.an), Some([1; 16]));
    }

    #[test]
    fn a_failed_append_writes_nothing_and_a_failed_sync_stops_the_store() {
        let coin = CoinId::new(1, 5);
        let failing = DurableStore::new(Rng::new(1), 1000, 0);
        failing.insert(coin, [1; 16]);
        assert!(write(&failing, coin, [2; 16]).is_err());
        assert_eq!(failing.current(coin).map(|r| r.an), Some([1; 16]));
        assert_eq!(failing.counts(), (0, 1));
        let stopping = DurableStore::new(Rng::new(1), 0, 1000);
        stopping.insert(coin, [1; 16]);
        let commit = write(&stopping, coin, [2; 16])
            .expect("appended")
            .expect("written");
        stopping.sync();
        let point = stopping.commit_point();
        assert!(point.failed && !point.covers(commit));
        assert_eq!(stopping.durable(coin).map(|r| r.an), Some([1; 16]));
        assert!(write(&stopping, coin, [3; 16]).is_err());
        stopping.recover();
        assert!(!stopping.stopped());
        assert_eq!(stopping.current(coin).map(|r| r.an), Some([1; 16]));
    }
}
