//! The locker index (PROTOCOL.md section 8c): which coins hold each locker key, and
//! which keys start with each 5-byte prefix, derived from the records.
//!
//! A *locker key* is a 16-byte AN whose bytes 12..15 are `FF FF FF FF`; the locker
//! named K is the set of coins whose record AN is K. The index holds one entry per
//! coin whose AN is a locker key and nothing else, so a store keeps it equal to its
//! records by telling it every record it writes or reads ([`LockerIndex::set`],
//! [`LockerIndex::set_page`]).
//!
//! **Layout.** Two maps, both ordered (no hashing: core draws no randomness):
//! - `by_key`: a set of 17-byte entries `key[0..12] || denomination ^ 0x80 || serial
//!   (BE)`. The key's last four bytes are always FF, so they are not stored. The byte
//!   order sorts entries by key, then by signed denomination (-8 first), then by serial:
//!   a locker's coins are one range, already in peek's order, and the keys with a
//!   prefix are found by jumping from one key's range to the next (one search per key,
//!   never a scan of the coins).
//! - `by_page`: for each page holding locker coins, its (record index, key) pairs
//!   sorted by index, so that a page read again from disk can replace exactly its own
//!   entries.
//!
//! **Memory.** Per locker coin: one 17-byte element of a B-tree set (about 26 bytes
//! with the tree's nodes at their usual fill) and 14 bytes in its page's vector (up to
//! twice that while a vector has spare capacity). Measured (resident memory, 3 million
//! coins set one by one in page order, release build): 44 bytes per coin when every
//! coin has a key of its own, 52 when they share keys. A store whose every coin is in a
//! locker (15 denominations x 1,000 pages x 1,024 records = 15.36 million coins) thus
//! needs about 0.7 to 0.8 GB; a store with no lockers needs nothing. The bound is the
//! store itself, as section 8c requires.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::{An, CoinId, PageId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

/// Bytes 12..15 of every locker key.
pub const LOCKER_KEY_SUFFIX: [u8; 4] = [0xFF; 4];

/// Whether `an` is a locker key (*key-shaped*: bytes 12..15 are `FF FF FF FF`).
pub fn is_locker_key(an: &An) -> bool {
    an[12..] == LOCKER_KEY_SUFFIX
}

/// The 5-byte prefix a type-2 request uses to name `an` (its bytes 0..4).
pub fn locker_prefix(an: &An) -> [u8; 5] {
    [an[0], an[1], an[2], an[3], an[4]]
}

/// The stored part of a locker key: bytes 0..11 (bytes 12..15 are always FF).
type KeyHead = [u8; 12];

/// One `by_key` element: key head, denomination ^ 0x80, serial big-endian.
type Entry = [u8; 17];

fn head_of(key: &An) -> KeyHead {
    let mut h = [0u8; 12];
    h.copy_from_slice(&key[..12]);
    h
}

fn key_of(head: &[u8]) -> An {
    let mut k = [0xFFu8; 16];
    k[..12].copy_from_slice(&head[..12]);
    k
}

fn entry(head: &KeyHead, coin: CoinId) -> Entry {
    let mut e = [0u8; 17];
    e[..12].copy_from_slice(head);
    e[12] = coin.denomination.to_be_bytes()[0] ^ 0x80;
    e[13..].copy_from_slice(&coin.serial.to_be_bytes());
    e
}

fn coin_of(e: &Entry) -> CoinId {
    CoinId::new(
        i8::from_be_bytes([e[12] ^ 0x80]),
        u32::from_be_bytes([e[13], e[14], e[15], e[16]]),
    )
}

fn coin_at(page: PageId, index: u16) -> CoinId {
    CoinId::new(
        page.denomination,
        u32::from(page.number) * RECORDS_PER_PAGE + u32::from(index),
    )
}

/// The locker index of a store: one entry per coin whose AN is a locker key, in two
/// ordered maps (by key then coin, for peek and prefix lookups; by page, so a page
/// read again replaces exactly its entries). About 44 to 52 bytes per locker coin
/// (measured): a store whose 15.36 million coins were all in lockers needs 0.7 to 0.8 GB.
///
/// Besides the lockers its records define, it can hold *registered* type-2 keys
/// ([`register`](Self::register)): keys a demo or a test names by prefix without any
/// coin holding them. They are no lockers (peek and remove never see them); type-2
/// lookups find them beside the lockers.
#[derive(Default, Clone)]
pub struct LockerIndex {
    by_key: BTreeSet<Entry>,
    by_page: BTreeMap<PageId, Vec<(u16, KeyHead)>>,
    registered: BTreeMap<[u8; 5], An>,
}

impl LockerIndex {
    /// An empty index.
    pub fn new() -> LockerIndex {
        LockerIndex::default()
    }

    /// Records that `coin`'s record now holds `an` (`None`: the coin is unknown): the
    /// coin leaves the locker it was in, and joins `an`'s when `an` is a locker key. A
    /// coin that can never be known is ignored.
    pub fn set(&mut self, coin: CoinId, an: Option<&An>) {
        let Some((page, index)) = PageId::of(coin) else {
            return;
        };
        // `index` < 1024: it came from `PageId::of`.
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        let entries = self.by_page.entry(page).or_default();
        let at = entries.binary_search_by_key(&index, |(i, _)| *i);
        if let Ok(at) = at {
            let (_, head) = entries[at];
            if an.is_some_and(|a| is_locker_key(a) && head_of(a) == head) {
                return;
            }
            entries.remove(at);
            self.by_key.remove(&entry(&head, coin));
        }
        match an {
            Some(a) if is_locker_key(a) => {
                let head = head_of(a);
                let at = at.unwrap_or_else(|free| free);
                entries.insert(at, (index, head));
                self.by_key.insert(entry(&head, coin));
            }
            _ => {
                if entries.is_empty() {
                    self.by_page.remove(&page);
                }
            }
        }
    }

    /// Records that `page` now reads as `bytes` (a whole page: 1,024 records of 17
    /// bytes), or is absent or short (`None`: every coin of it is unknown). Replaces
    /// every entry of the page.
    pub fn set_page(&mut self, page: PageId, bytes: Option<&[u8; PAGE_BYTES]>) {
        if let Some(old) = self.by_page.remove(&page) {
            for (index, head) in old {
                self.by_key.remove(&entry(&head, coin_at(page, index)));
            }
        }
        let Some(bytes) = bytes else {
            return;
        };
        let mut entries = Vec::new();
        for (index, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            let Ok(an) = <An>::try_from(&record[..16]) else {
                continue;
            };
            if is_locker_key(&an) {
                let index = u16::try_from(index).unwrap_or(u16::MAX);
                let head = head_of(&an);
                self.by_key.insert(entry(&head, coin_at(page, index)));
                entries.push((index, head));
            }
        }
        if !entries.is_empty() {
            entries.shrink_to_fit();
            self.by_page.insert(page, entries);
        }
    }

    /// The coins of the locker `key`, ascending by denomination (signed: -8 first),
    /// then serial; empty when there is no such locker (a key that is not key-shaped
    /// never names one).
    pub fn coins(&self, key: &An) -> Vec<CoinId> {
        if !is_locker_key(key) {
            return Vec::new();
        }
        let head = head_of(key);
        let mut lo = [0u8; 17];
        lo[..12].copy_from_slice(&head);
        let mut hi = [0xFFu8; 17];
        hi[..12].copy_from_slice(&head);
        self.by_key.range(lo..=hi).map(coin_of).collect()
    }

    /// Whether a locker with this key exists (at least one coin holds it).
    pub fn contains(&self, key: &An) -> bool {
        if !is_locker_key(key) {
            return false;
        }
        let head = head_of(key);
        let mut lo = [0u8; 17];
        lo[..12].copy_from_slice(&head);
        self.by_key
            .range(lo..)
            .next()
            .is_some_and(|e| e[..12] == head)
    }

    /// Every key starting with `prefix`, ascending: the lockers' and a registered one.
    /// One tree search per key found.
    pub fn keys_with_prefix(&self, prefix: &[u8; 5]) -> Vec<An> {
        let mut keys = Vec::new();
        let mut from = [0u8; 17];
        from[..5].copy_from_slice(prefix);
        let mut lower = Bound::Included(from);
        while let Some(e) = self.by_key.range((lower, Bound::Unbounded)).next() {
            if e[..5] != prefix[..] {
                break;
            }
            keys.push(key_of(&e[..12]));
            let mut past = [0xFFu8; 17];
            past[..12].copy_from_slice(&e[..12]);
            lower = Bound::Excluded(past);
        }
        if let Some(extra) = self.registered.get(prefix) {
            if let Err(at) = keys.binary_search(extra) {
                keys.insert(at, *extra);
            }
        }
        keys
    }

    /// The first key starting with `prefix` (see [`keys_with_prefix`](Self::keys_with_prefix)).
    pub fn get(&self, prefix: &[u8; 5]) -> Option<An> {
        self.keys_with_prefix(prefix).first().copied()
    }

    /// Coins in lockers (one entry each).
    pub fn entries(&self) -> usize {
        self.by_key.len()
    }

    /// Registers a type-2 key no coin needs to hold (a later one with the same prefix
    /// replaces it).
    pub fn register(&mut self, an: An) {
        self.registered.insert(locker_prefix(&an), an);
    }

    /// Forgets the registered key with this prefix, returning it.
    pub fn unregister(&mut self, prefix: &[u8; 5]) -> Option<An> {
        self.registered.remove(prefix)
    }

    /// How many keys are registered.
    pub fn registered(&self) -> usize {
        self.registered.len()
    }
}

/// Counts only: a key store's `Debug` output must never put a secret into a log.
impl std::fmt::Debug for LockerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockerIndex")
            .field("locker_coins", &self.by_key.len())
            .field("pages", &self.by_page.len())
            .field("registered", &self.registered.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8, c: u8) -> An {
        let mut k = [b; 16];
        k[5] = c;
        k[12..].copy_from_slice(&LOCKER_KEY_SUFFIX);
        k
    }

    #[test]
    fn key_shape_is_the_last_four_bytes() {
        assert!(is_locker_key(&key(1, 1)));
        let mut k = key(1, 1);
        k[12] = 0xFE;
        assert!(!is_locker_key(&k));
    }

    #[test]
    fn set_moves_a_coin_between_lockers_and_out() {
        let mut ix = LockerIndex::new();
        let c = CoinId::new(1, 5);
        ix.set(c, Some(&key(1, 1)));
        assert_eq!(ix.coins(&key(1, 1)), vec![c]);
        ix.set(c, Some(&key(1, 2)));
        assert!(ix.coins(&key(1, 1)).is_empty());
        assert_eq!(ix.coins(&key(1, 2)), vec![c]);
        ix.set(c, Some(&[7; 16]));
        assert!(!ix.contains(&key(1, 2)));
        assert_eq!(ix.entries(), 0);
        assert!(ix.by_page.is_empty());
    }

    #[test]
    fn coins_ascend_by_signed_denomination_then_serial() {
        let mut ix = LockerIndex::new();
        let k = key(3, 3);
        for c in [
            CoinId::new(6, 1),
            CoinId::new(-1, 9),
            CoinId::new(-8, 2000),
            CoinId::new(0, 3),
            CoinId::new(-8, 4),
        ] {
            ix.set(c, Some(&k));
        }
        assert_eq!(
            ix.coins(&k),
            vec![
                CoinId::new(-8, 4),
                CoinId::new(-8, 2000),
                CoinId::new(-1, 9),
                CoinId::new(0, 3),
                CoinId::new(6, 1)
            ]
        );
    }

    #[test]
    fn prefix_finds_every_key_in_ascending_order() {
        let mut ix = LockerIndex::new();
        ix.set(CoinId::new(1, 1), Some(&key(9, 0x30)));
        ix.set(CoinId::new(1, 2), Some(&key(9, 0x10)));
        ix.set(CoinId::new(1, 3), Some(&key(9, 0x10)));
        ix.set(CoinId::new(1, 4), Some(&key(8, 0x10)));
        assert_eq!(
            ix.keys_with_prefix(&[9; 5]),
            vec![key(9, 0x10), key(9, 0x30)]
        );
        assert_eq!(ix.keys_with_prefix(&[8; 5]), vec![key(8, 0x10)]);
        assert!(ix.keys_with_prefix(&[7; 5]).is_empty());
    }

    #[test]
    fn set_page_replaces_the_pages_entries() {
        let mut ix = LockerIndex::new();
        let page = PageId {
            denomination: 2,
            number: 3,
        };
        ix.set(CoinId::new(2, 3 * 1024 + 7), Some(&key(1, 1)));
        ix.set(CoinId::new(2, 4 * 1024), Some(&key(1, 1)));
        let mut bytes = Box::new([0u8; PAGE_BYTES]);
        bytes[9 * RECORD_BYTES..9 * RECORD_BYTES + 16].copy_from_slice(&key(1, 1));
        ix.set_page(page, Some(&bytes));
        assert_eq!(
            ix.coins(&key(1, 1)),
            vec![CoinId::new(2, 3 * 1024 + 9), CoinId::new(2, 4 * 1024)]
        );
        ix.set_page(page, None);
        assert_eq!(ix.coins(&key(1, 1)), vec![CoinId::new(2, 4 * 1024)]);
    }

    #[test]
    fn registered_keys_join_prefix_lookups_only() {
        let mut ix = LockerIndex::new();
        let plain = *b"ABCDEfghijklmnop";
        ix.register(plain);
        assert_eq!(ix.get(b"ABCDE"), Some(plain));
        assert!(ix.coins(&plain).is_empty());
        assert_eq!(ix.unregister(b"ABCDE"), Some(plain));
        assert_eq!(ix.get(b"ABCDE"), None);
    }
}
