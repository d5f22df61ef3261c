//! Requests that wait for page loads: a request whose key coins' pages cannot be in
//! memory together (a type-5 key's two coins on two pages, a store that keeps one page)
//! waits for a bounded number of loads and is then answered 252 INTERNAL, over UDP and
//! TCP, instead of parking again forever.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use raida_client::{Coin, Keys, Request};
use raida_core::keys::{
    An, Change, CoinId, KeyStore, Lookup, MemoryKeyStore, PageId, Record, StoreError,
};
use raida_core::{CommandRegistry, Timestamp};
use support::*;

const AN_A: An = [0xA1; 16];
const AN_B: An = [0xB2; 16];
/// Two coins of denomination 1 on pages 0 and 1.
const SERIAL_A: u32 = 3;
const SERIAL_B: u32 = 1024 + 3;

/// A store that holds one page in memory: loading a page evicts the other.
#[derive(Debug)]
struct OnePageStore {
    inner: MemoryKeyStore,
    resident: Mutex<Option<PageId>>,
    loads: AtomicUsize,
}

impl OnePageStore {
    fn new() -> OnePageStore {
        let inner = MemoryKeyStore::new();
        inner.insert_coin(1, SERIAL_A, AN_A);
        inner.insert_coin(1, SERIAL_B, AN_B);
        OnePageStore {
            inner,
            resident: Mutex::new(None),
            loads: AtomicUsize::new(0),
        }
    }
}

impl KeyStore for OnePageStore {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        let Some((page, _)) = PageId::of(coin) else {
            return Lookup::Unknown;
        };
        if *self.resident.lock().expect("lock") != Some(page) {
            return Lookup::NotInMemory(page);
        }
        self.inner.lookup(coin, now)
    }

    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.inner.locker_an(prefix, now)
    }

    fn load(&self, page: PageId, _now: Timestamp) -> Result<(), StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        *self.resident.lock().expect("lock") = Some(page);
        Ok(())
    }

    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        self.inner.record(coin, now)
    }

    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        self.inner.modify(coins, now, change)
    }
}

/// Echo, type 5, keyed by the coins on page 0 and page 1.
fn two_page_echo() -> Vec<u8> {
    let keys = Keys::TwoCoins256 {
        first: Coin::new(1, SERIAL_A),
        first_an: AN_A,
        second: Coin::new(1, SERIAL_B),
        second_an: AN_B,
    };
    let mut req = Request::new(RAIDA_ID, 0, 0, keys);
    req.coin_id = COIN_ID;
    req.challenge = [0x5C; 12];
    req.nonce = [0x11; 24];
    req.build().expect("builds").bytes().to_vec()
}

fn server() -> (Driver, Arc<OnePageStore>) {
    let store = Arc::new(OnePageStore::new());
    let d = harness_with_store(
        config(),
        CommandRegistry::with_builtins(),
        Arc::clone(&store) as Arc<dyn KeyStore>,
    );
    (d, store)
}

#[test]
fn over_udp_keys_whose_pages_evict_each_other_are_answered_252_after_a_few_loads() {
    let (mut d, store) = server();
    d.datagram(peer(1), &two_page_echo());
    assert_eq!(d.datagrams().len(), 1, "answered, not parked forever");
    assert_eq!(status_of(&d.datagrams()[0].1), 252);
    assert_eq!(store.loads.load(Ordering::SeqCst), 4);
    assert_eq!(d.engine.parked(), 0);
    assert_eq!(d.engine.loads_in_flight(), 0);
}

#[test]
fn over_tcp_keys_whose_pages_evict_each_other_are_answered_252_after_a_few_loads() {
    let (mut d, store) = server();
    let id = d.accept();
    d.send(id, &two_page_echo());
    assert_eq!(status_of(d.out(id)), 252);
    assert_eq!(store.loads.load(Ordering::SeqCst), 4);
    assert_eq!(d.engine.parked(), 0);
}
