//! A key store held entirely in memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    An, Change, CoinId, KeyStore, LockerIndex, Lookup, PageId, Record, StoreError, StoreStats,
};
use raida_wire::Timestamp;

/// A [`KeyStore`] whose coins and lockers are all in memory, inserted by the caller.
///
/// For tests, the simulator and demos: nothing expires and nothing is read from disk,
/// so `now` is ignored. Coins that can never be known (a denomination outside -8..=6, a
/// serial at or above [`SERIAL_LIMIT`](super::SERIAL_LIMIT)) are always unknown, even
/// if inserted (PROTOCOL.md section 11), so this store answers exactly like the disk
/// store (`raida_store::DiskStore`) over the same coins.
///
/// Its [`stats`](KeyStore::stats) count lookups the way the disk store's do, with
/// everything in memory: every lookup of a coin that can be known is a hit, known coin
/// or not, and there are no misses or disk reads.
#[derive(Default)]
pub struct MemoryKeyStore {
    state: Mutex<State>,
}

#[derive(Default, Clone)]
struct State {
    coins: BTreeMap<CoinId, Record>,
    lockers: LockerIndex,
    stats: StoreStats,
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
            .field("lockers", &state.lockers)
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

    /// Makes coin (`denomination`, `serial`) known with `an` (status byte 0),
    /// replacing any earlier record.
    ///
    /// A coin that can never be known (a denomination outside -8..=6, a serial at or
    /// above 2^26) is not stored: the call does nothing, and lookups stay unknown.
    pub fn insert_coin(&self, denomination: i8, serial: u32, an: An) {
        self.insert_record(CoinId::new(denomination, serial), Record { an, status: 0 });
    }

    /// Makes `coin` known with `record` (see [`insert_coin`](Self::insert_coin)).
    pub fn insert_record(&self, coin: CoinId, record: Record) {
        if PageId::of(coin).is_some() {
            let mut state = self.lock();
            state.coins.insert(coin, record);
            state.lockers.set(coin, Some(&record.an));
        }
    }

    /// Forgets coin (`denomination`, `serial`), returning its AN if it was known.
    pub fn remove_coin(&self, denomination: i8, serial: u32) -> Option<An> {
        let coin = CoinId::new(denomination, serial);
        let mut state = self.lock();
        state.lockers.set(coin, None);
        state.coins.remove(&coin).map(|r| r.an)
    }

    /// Registers a type-2 key that no coin holds, found by the first 5 bytes of its AN
    /// (the prefix type-2 requests carry); a later one with the same prefix replaces
    /// it. It is no locker of PROTOCOL.md section 8c (peek and remove never see it):
    /// those are the coins whose AN is a locker key, indexed as they are written.
    pub fn insert_locker(&self, an: An) {
        self.lock().lockers.register(an);
    }

    /// Forgets the registered type-2 key with prefix `prefix`, returning it.
    pub fn remove_locker(&self, prefix: &[u8; 5]) -> Option<An> {
        self.lock().lockers.unregister(prefix)
    }

    /// The locker index as it stands (for tests that compare it with the records).
    pub fn locker_index(&self) -> LockerIndex {
        self.lock().lockers.clone()
    }

    /// How many coins are known.
    pub fn coin_count(&self) -> usize {
        self.lock().coins.len()
    }

    /// How many type-2 keys are registered with [`insert_locker`](Self::insert_locker).
    pub fn locker_count(&self) -> usize {
        self.lock().lockers.registered()
    }
}

impl KeyStore for MemoryKeyStore {
    fn lookup(&self, coin: CoinId, _now: Timestamp) -> Lookup {
        let mut state = self.lock();
        state.stats.lookups += 1;
        if PageId::of(coin).is_none() {
            state.stats.out_of_range += 1;
            return Lookup::Unknown;
        }
        state.stats.hits += 1;
        match state.coins.get(&coin) {
            Some(record) => Lookup::Found(record.an),
            None => Lookup::Unknown,
        }
    }

    fn locker_an(&self, prefix: &[u8; 5], _now: Timestamp) -> Option<An> {
        self.lock().lockers.get(prefix)
    }

    fn locker_keys(&self, prefix: &[u8; 5], _now: Timestamp) -> Vec<An> {
        self.lock().lockers.keys_with_prefix(prefix)
    }

    fn locker_coins(&self, key: &An, _now: Timestamp) -> Vec<CoinId> {
        self.lock().lockers.coins(key)
    }

    fn record(&self, coin: CoinId, _now: Timestamp) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().coins.get(&coin).copied())
    }

    fn modify(
        &self,
        coins: &[CoinId],
        _now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        // One lock over the whole change: atomic against every other writer.
        let mut state = self.lock();
        let current: Vec<Option<Record>> =
            coins.iter().map(|c| state.coins.get(c).copied()).collect();
        let mut new = vec![None; coins.len()];
        change(&current, &mut new);
        for ((coin, old), new) in coins.iter().zip(&current).zip(new) {
            if let (Some(_), Some(record)) = (old, new) {
                state.coins.insert(*coin, record);
                state.lockers.set(*coin, Some(&record.an));
                state.stats.records_written += 1;
            }
        }
        Ok(())
    }

    fn stats(&self) -> Option<StoreStats> {
        let state = self.lock();
        let mut stats = state.stats;
        stats.cached_pages = state.coins.len() as u64;
        Some(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::ZERO;
    use crate::keys::SERIAL_LIMIT;

    fn an_of(store: &MemoryKeyStore, denomination: i8, serial: u32) -> Option<An> {
        match store.lookup(CoinId::new(denomination, serial), NOW) {
            Lookup::Found(an) => Some(an),
            _ => None,
        }
    }

    fn an(fill: u8) -> An {
        [fill; 16]
    }

    #[test]
    fn finds_inserted_coin() {
        let store = MemoryKeyStore::new();
        store.insert_coin(-1, 7, an(0xAB));
        assert_eq!(an_of(&store, -1, 7), Some(an(0xAB)));
    }

    #[test]
    fn other_denomination_or_serial_is_unknown() {
        let store = MemoryKeyStore::new();
        store.insert_coin(1, 7, an(1));
        assert_eq!(an_of(&store, 0, 7), None);
        assert_eq!(an_of(&store, 1, 8), None);
    }

    #[test]
    fn later_insert_replaces_an() {
        let store = MemoryKeyStore::new();
        store.insert_coin(2, 9, an(1));
        store.insert_coin(2, 9, an(2));
        assert_eq!(an_of(&store, 2, 9), Some(an(2)));
        assert_eq!(store.coin_count(), 1);
    }

    #[test]
    fn serial_at_or_above_2_pow_26_is_never_known() {
        let store = MemoryKeyStore::new();
        store.insert_coin(0, SERIAL_LIMIT, an(3));
        store.insert_coin(0, u32::MAX, an(4));
        assert_eq!(store.coin_count(), 0);
        assert_eq!(an_of(&store, 0, SERIAL_LIMIT), None);
        assert_eq!(an_of(&store, 0, u32::MAX), None);
        // The coin such a serial would alias in the deployed server stays distinct.
        store.insert_coin(0, 5, an(5));
        assert_eq!(an_of(&store, 0, SERIAL_LIMIT + 5), None);
        assert_eq!(an_of(&store, 0, SERIAL_LIMIT - 1), None);
    }

    #[test]
    fn remove_coin_makes_it_unknown() {
        let store = MemoryKeyStore::new();
        store.insert_coin(3, 1, an(9));
        assert_eq!(store.remove_coin(3, 1), Some(an(9)));
        assert_eq!(an_of(&store, 3, 1), None);
    }

    #[test]
    fn stats_count_every_lookup_as_a_hit_and_out_of_range_apart() {
        let store = MemoryKeyStore::new();
        store.insert_coin(1, 1, an(1));
        let _ = an_of(&store, 1, 1);
        let _ = an_of(&store, 1, 2);
        let _ = an_of(&store, 1, SERIAL_LIMIT);
        let _ = an_of(&store, 7, 1);
        let stats = store.stats().expect("counts");
        assert_eq!((stats.lookups, stats.hits, stats.out_of_range), (4, 2, 2));
        assert_eq!((stats.misses, stats.loads), (0, 0));
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

#[cfg(test)]
mod modify_tests {
    use super::*;
    use crate::Timestamp;

    #[test]
    fn modify_writes_what_change_fills_in_and_never_an_unknown_coin() {
        let store = MemoryKeyStore::new();
        store.insert_coin(1, 5, [1; 16]);
        let coins = [CoinId::new(1, 5), CoinId::new(1, 6)];
        let new = Record {
            an: [9; 16],
            status: 3,
        };
        store
            .modify(&coins, Timestamp::ZERO, &mut |current, out| {
                assert_eq!(current[0].map(|r| r.an), Some([1; 16]));
                assert!(current[1].is_none());
                out[0] = Some(new);
                out[1] = Some(new);
            })
            .expect("modify");
        assert_eq!(
            store.record(coins[0], Timestamp::ZERO).ok().flatten(),
            Some(new)
        );
        assert_eq!(store.record(coins[1], Timestamp::ZERO).ok().flatten(), None);
        assert_eq!(
            store.lookup(coins[0], Timestamp::ZERO),
            Lookup::Found([9; 16])
        );
    }

    #[test]
    fn denominations_outside_minus_8_to_6_are_never_known() {
        let store = MemoryKeyStore::new();
        store.insert_coin(7, 1, [1; 16]);
        store.insert_coin(-9, 1, [1; 16]);
        store.insert_coin(6, 1, [2; 16]);
        store.insert_coin(-8, 1, [3; 16]);
        assert_eq!(store.coin_count(), 2);
        assert_eq!(
            store.lookup(CoinId::new(7, 1), Timestamp::ZERO),
            Lookup::Unknown
        );
        assert_eq!(
            store.lookup(CoinId::new(6, 1), Timestamp::ZERO),
            Lookup::Found([2; 16])
        );
    }
}
