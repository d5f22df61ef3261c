//! The key store of each server of the RAIDA world ([`crate::raida_world`]): the coin
//! records in memory, and beside them the records a recovery would find after a crash
//! (its *durable* copy), with seeded write failures.
//!
//! Why not raida-store's `DiskStore` over the simulated disk, as the store world runs
//! it: the RAIDA world holds up to 25 servers per seed, and the store world already
//! checks what the disk store does with its bytes (crashes, torn sectors, recovery).
//! What this world must check is the healing commands' side of the contract of
//! [`KeyStore::modify`]: a record is durable when `modify` returns `Ok`, and on `Err`
//! nothing was written, so a fix may answer a coin fixed only after an `Ok`. The
//! durable copy is exactly that contract: a record enters it when (and only when)
//! `modify` returns `Ok`, and it is what a server recovered from its synced bytes
//! would hold. The world compares it with every fix answer as the answer leaves the
//! server.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use raida_core::keys::{An, Change, CoinId, KeyStore, Lookup, Record, StoreError};
use raida_core::Timestamp;

use crate::rng::Rng;

/// The records, the durable copy and the fault policy.
#[derive(Debug)]
struct Inner {
    current: BTreeMap<CoinId, Record>,
    durable: BTreeMap<CoinId, Record>,
    /// Per mille of writes that fail (nothing written).
    fail_pm: u32,
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
    /// An empty store whose writes fail with probability `fail_pm / 1000`, drawn from
    /// `rng`.
    pub fn new(rng: Rng, fail_pm: u32) -> DurableStore {
        DurableStore {
            inner: Mutex::new(Inner {
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                fail_pm,
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

    /// A crash and recovery: the records become the durable ones (what a store
    /// recovered from its synced bytes holds).
    pub fn recover(&self) {
        let mut inner = self.lock();
        inner.current = inner.durable.clone();
    }

    /// Writes fail with probability `pm / 1000` from now on.
    pub fn set_fail_pm(&self, pm: u32) {
        self.lock().fail_pm = pm;
    }

    /// (writes made, writes failed).
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.writes, inner.failures)
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

    fn modify(
        &self,
        coins: &[CoinId],
        _now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let current: Vec<Option<Record>> = coins
            .iter()
            .map(|c| inner.current.get(c).copied())
            .collect();
        let mut new = vec![None; coins.len()];
        change(&current, &mut new);
        let pm = inner.fail_pm;
        if inner.rng.chance(pm) {
            inner.failures += 1;
            return Err(StoreError::Write(std::io::Error::other(
                "simulated write failure",
            )));
        }
        for ((coin, old), new) in coins.iter().zip(&current).zip(new) {
            if let (Some(_), Some(record)) = (old, new) {
                inner.current.insert(*coin, record);
                inner.durable.insert(*coin, record);
                inner.writes += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_micros(1);

    #[test]
    fn a_write_is_durable_when_ok_and_absent_when_failed() {
        let coin = CoinId::new(1, 5);
        let ok = DurableStore::new(Rng::new(1), 0);
        ok.insert(coin, [1; 16]);
        let new = Record {
            an: [2; 16],
            status: 9,
        };
        ok.modify(&[coin], NOW, &mut |_, n| n[0] = Some(new))
            .expect("no faults");
        assert_eq!(ok.durable(coin), Some(new));
        let failing = DurableStore::new(Rng::new(1), 1000);
        failing.insert(coin, [1; 16]);
        assert!(failing
            .modify(&[coin], NOW, &mut |_, n| n[0] = Some(new))
            .is_err());
        assert_eq!(failing.durable(coin).map(|r| r.an), Some([1; 16]));
        assert_eq!(failing.current(coin).map(|r| r.an), Some([1; 16]));
        assert_eq!(failing.counts(), (0, 1));
    }
}
