//! A key store held entirely in memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{An, KeyStore, KeyStoreStats, LockerIndex, SERIAL_LIMIT};
use crate::Timestamp;

/// A [`KeyStore`] whose coins and lockers are all in memory, inserted by the caller.
///
/// For tests, the simulator and demos: nothing expires and nothing is read from disk,
/// so `now` is ignored. Serials at or above [`SERIAL_LIMIT`] are always unknown, even
/// if inserted (PROTOCOL.md section 11), so this store answers exactly like
/// [`DiskKeyStore`](super::DiskKeyStore) over the same coins.
///
/// Its [`cache_stats`](KeyStore::cache_stats) count lookups the way the disk store's
/// do, with everything in memory: every lookup below [`SERIAL_LIMIT`] is a hit, known
/// coin or not, and there are no misses, expiries or disk reads.
#[derive(Default)]
pub struct MemoryKeyStore {
    state: Mutex<State>,
}

#[derive(Default, Clone)]
struct State {
    coins: BTreeMap<(i8, u32), An>,
    lockers: LockerIndex,
    stats: KeyStoreStats,
}

impl Clone for MemoryKeyStore {
    fn clone(&self) -> Self {
        MemoryKeyStore {
            state: Mutex::new(self.lock().clone()),
        }
    }
}

/// Counts only: a key store's `Debug` output must never put an AN into a log.
impl std::fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryKeyStore")
            .field("coins", &state.coins.len())
            .field("lockers", &state.lockers.len())
            .finish()
    }
}

impl MemoryKeyStore {
    /// An empty store: every coin and every locker is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is one map operation: a panic elsewhere never leaves it half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes coin (`denomination`, `serial`) known with `an`, replacing any earlier AN.
    ///
    /// A serial at or above [`SERIAL_LIMIT`] is not a coin: the call does nothing, and
    /// lookups of it stay unknown.
    pub fn insert_coin(&self, denomination: i8, serial: u32, an: An) {
        if serial < SERIAL_LIMIT {
            self.lock().coins.insert((denomination, serial), an);
        }
    }

    /// Forgets coin (`denomination`, `serial`), returning its AN if it was known.
    pub fn remove_coin(&self, denomination: i8, serial: u32) -> Option<An> {
        self.lock().coins.remove(&(denomination, serial))
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

    /// How many coins are known.
    pub fn coin_count(&self) -> usize {
        self.lock().coins.len()
    }

    /// How many lockers are registered.
    pub fn locker_count(&self) -> usize {
        self.lock().lockers.len()
    }
}

impl KeyStore for MemoryKeyStore {
    fn coin_an(&self, denomination: i8, serial: u32, _now: Timestamp) -> Option<An> {
        let mut state = self.lock();
        state.stats.lookups += 1;
        if serial >= SERIAL_LIMIT {
            state.stats.out_of_range += 1;
            return None;
        }
        state.stats.hits += 1;
        state.coins.get(&(denomination, serial)).copied()
    }

    fn locker_an(&self, prefix: &[u8; 5], _now: Timestamp) -> Option<An> {
        self.lock().lockers.get(prefix)
    }

    fn cache_stats(&self) -> Option<KeyStoreStats> {
        Some(self.lock().stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::ZERO;

    fn an(fill: u8) -> An {
        [fill; 16]
    }

    #[test]
    fn finds_inserted_coin() {
        let store = MemoryKeyStore::new();
        store.insert_coin(-1, 7, an(0xAB));
        assert_eq!(store.coin_an(-1, 7, NOW), Some(an(0xAB)));
    }

    #[test]
    fn other_denomination_or_serial_is_unknown() {
        let store = MemoryKeyStore::new();
        store.insert_coin(1, 7, an(1));
        assert_eq!(store.coin_an(0, 7, NOW), None);
        assert_eq!(store.coin_an(1, 8, NOW), None);
    }

    #[test]
    fn later_insert_replaces_an() {
        let store = MemoryKeyStore::new();
        store.insert_coin(2, 9, an(1));
        store.insert_coin(2, 9, an(2));
        assert_eq!(store.coin_an(2, 9, NOW), Some(an(2)));
        assert_eq!(store.coin_count(), 1);
    }

    #[test]
    fn serial_at_or_above_2_pow_26_is_never_known() {
        let store = MemoryKeyStore::new();
        store.insert_coin(0, SERIAL_LIMIT, an(3));
        store.insert_coin(0, u32::MAX, an(4));
        assert_eq!(store.coin_count(), 0);
        assert_eq!(store.coin_an(0, SERIAL_LIMIT, NOW), None);
        assert_eq!(store.coin_an(0, u32::MAX, NOW), None);
        // The coin such a serial would alias in the deployed server stays distinct.
        store.insert_coin(0, 5, an(5));
        assert_eq!(store.coin_an(0, SERIAL_LIMIT + 5, NOW), None);
        assert_eq!(store.coin_an(0, SERIAL_LIMIT - 1, NOW), None);
    }

    #[test]
    fn remove_coin_makes_it_unknown() {
        let store = MemoryKeyStore::new();
        store.insert_coin(3, 1, an(9));
        assert_eq!(store.remove_coin(3, 1), Some(an(9)));
        assert_eq!(store.coin_an(3, 1, NOW), None);
    }

    #[test]
    fn cache_stats_count_every_lookup_as_a_hit() {
        let store = MemoryKeyStore::new();
        store.insert_coin(1, 1, an(1));
        let _ = store.coin_an(1, 1, NOW);
        let _ = store.coin_an(1, 2, NOW);
        let _ = store.coin_an(1, SERIAL_LIMIT, NOW);
        let stats = store.cache_stats().expect("counts");
        assert_eq!((stats.lookups, stats.hits, stats.out_of_range), (3, 2, 1));
        assert_eq!((stats.misses, stats.expired, stats.disk_reads), (0, 0, 0));
    }

    #[test]
    fn locker_found_by_first_five_bytes() {
        let store = MemoryKeyStore::new();
        let locker: An = *b"ABCDEfghijklmnop";
        assert_eq!(store.locker_an(b"ABCDE", NOW), None);
        store.insert_locker(locker);
        assert_eq!(store.locker_an(b"ABCDE", NOW), Some(locker));
        assert_eq!(store.locker_an(b"ABCDF", NOW), None);
        assert_eq!(store.remove_locker(b"ABCDE"), Some(locker));
        assert_eq!(store.locker_an(b"ABCDE", NOW), None);
    }
}
