//! Where the network layer finds the keys that encrypted requests name
//! (PROTOCOL.md sections 2, 3 and 10).
//!
//! Two stores implement [`KeyStore`]:
//! - [`MemoryKeyStore`]: everything in memory, filled by the caller (tests, the
//!   simulator, small demos);
//! - [`DiskKeyStore`]: the deployed server's on-disk layout (section 10), read lazily
//!   one page at a time through a bounded cache whose pages expire after a TTL.
//!
//! [`write_demo_store`] writes a small deterministic store in that layout so a demo
//! server has coins to answer for.

use std::collections::BTreeMap;

use crate::Timestamp;

mod demo;
mod disk;
mod memory;

pub use demo::{demo_coin_an, demo_locker_an, write_demo_store, DemoCoin};
pub use disk::{
    coin_page_path, DiskKeyStore, KeyStoreError, KeyStoreStats, DEFAULT_PAGE_CACHE_PAGES,
    DEFAULT_PAGE_TTL, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES,
};
pub use memory::MemoryKeyStore;

/// An authenticity number: the 16-byte secret of one coin or locker.
pub type An = [u8; 16];

/// The first serial number that is never a known coin: serials are 26 bits.
///
/// The deployed server computes a 16-bit page number from larger serials, so they
/// alias coins on lower pages; here they are unknown in every store (PROTOCOL.md
/// section 11: a key must never come from another coin).
pub const SERIAL_LIMIT: u32 = 1 << 26;

/// A coin as requests and the store name it: denomination (a signed byte, -8..=6 on a
/// deployed RAIDA) and serial number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoinId {
    /// The denomination, sent as one signed byte.
    pub denomination: i8,
    /// The serial number, sent big-endian in 4 bytes.
    pub serial: u32,
}

impl CoinId {
    /// Coin (`denomination`, `serial`).
    pub const fn new(denomination: i8, serial: u32) -> CoinId {
        CoinId {
            denomination,
            serial,
        }
    }

    /// The coin the 5 bytes `[denomination, serial (big-endian)]` name.
    pub const fn from_bytes(b: [u8; 5]) -> CoinId {
        CoinId {
            denomination: b[0] as i8,
            serial: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
        }
    }
}

/// The key store, shared by every event loop and every handler (through the request
/// context): header validation looks keys up in it on the event-loop thread, and
/// commands reach it from their workers. Every method takes `&self`, so one store
/// behind an `Arc` serves them all; implementations synchronise inside.
///
/// Lookups run on the event-loop thread when a header is complete, so an
/// implementation answers from memory in the common case. `now` lets a caching store
/// decide when a cached page is too old to trust; it never goes backwards between
/// calls from one thread.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The AN of coin (`denomination`, `serial`), or `None` when the coin is unknown.
    fn coin_an(&self, denomination: i8, serial: u32, now: Timestamp) -> Option<An>;

    /// The AN of the locker whose AN starts with `prefix`, or `None`.
    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An>;

    /// What the store's lookups and cache have done so far (for metrics), or `None`
    /// when the store keeps no statistics.
    fn cache_stats(&self) -> Option<KeyStoreStats> {
        None
    }
}

/// The locker index both stores share: locker ANs keyed by their first 5 bytes.
///
/// Commands outside the network layer maintain it; like a freshly deployed server's,
/// it starts empty. Two lockers with the same prefix cannot both be addressed by a
/// type-2 request, so the later insert replaces the earlier one.
#[derive(Default, Clone)]
struct LockerIndex {
    by_prefix: BTreeMap<[u8; 5], An>,
}

impl LockerIndex {
    /// The 5-byte prefix a type-2 request uses to name `an`.
    fn prefix(an: &An) -> [u8; 5] {
        [an[0], an[1], an[2], an[3], an[4]]
    }

    fn insert(&mut self, an: An) {
        self.by_prefix.insert(Self::prefix(&an), an);
    }

    fn remove(&mut self, prefix: &[u8; 5]) -> Option<An> {
        self.by_prefix.remove(prefix)
    }

    fn get(&self, prefix: &[u8; 5]) -> Option<An> {
        self.by_prefix.get(prefix).copied()
    }

    fn len(&self) -> usize {
        self.by_prefix.len()
    }
}

/// Counts only: a key store's `Debug` output must never put a secret into a log.
impl std::fmt::Debug for LockerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockerIndex")
            .field("lockers", &self.by_prefix.len())
            .finish()
    }
}
