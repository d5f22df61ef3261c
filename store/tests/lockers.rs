//! The locker index of `DiskStore` over `FileDisk` (PROTOCOL.md section 8c): derived
//! from the records, built at open from the page files, changed by every write, and by
//! an outside rewrite once a refresh sees it.

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use raida_core::keys::{is_locker_key, An, CoinId, KeyStore};
use raida_store::{DiskStore, StoreConfig};
use support::*;

fn open(root: &Path) -> DiskStore {
    DiskStore::open(root, StoreConfig::new(8, Duration::from_secs(1))).expect("open")
}

/// A locker key: bytes 12..15 are FF.
fn key(fill: u8) -> An {
    let mut k = [fill; 16];
    k[12..].copy_from_slice(&[0xFF; 4]);
    k
}

/// Writes page `page` of `den` (version 1 ANs) with the records at `lockers` holding
/// the given keys instead.
fn write_page_with(root: &Path, den: i8, page: u32, lockers: &[(u32, An)]) {
    let mut bytes = page_bytes(den, page, 1);
    for (index, k) in lockers {
        let at = *index as usize * 17;
        bytes[at..at + 16].copy_from_slice(k);
    }
    let path = page_path(root, den, page);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, bytes).expect("write page");
}

/// What a scan of every record of `pages` gives: each locker key with its coins in
/// peek's order (coins are visited in that order, so no sorting is needed).
fn scan(store: &DiskStore, pages: &[(i8, u32)]) -> BTreeMap<An, Vec<CoinId>> {
    let mut pages = pages.to_vec();
    pages.sort_unstable();
    let mut lockers: BTreeMap<An, Vec<CoinId>> = BTreeMap::new();
    for (den, page) in pages {
        for serial in page * 1024..(page + 1) * 1024 {
            if let Some(a) = an(store, den, serial, T0) {
                if is_locker_key(&a) {
                    lockers.entry(a).or_default().push(CoinId::new(den, serial));
                }
            }
        }
    }
    lockers
}

/// Asserts that the index answers, for every key the scan finds (and the extra
/// `gone` keys), exactly the scan's coins, and that it holds no other entry.
fn assert_index_matches(store: &DiskStore, pages: &[(i8, u32)], gone: &[An]) {
    let lockers = scan(store, pages);
    for (k, coins) in &lockers {
        assert_eq!(&store.locker_coins(k, T0), coins);
    }
    for k in gone {
        if !lockers.contains_key(k) {
            assert!(store.locker_coins(k, T0).is_empty());
        }
    }
    let entries: usize = lockers.values().map(Vec::len).sum();
    assert_eq!(store.locker_index().entries(), entries);
}

#[test]
fn the_index_is_built_at_open_from_the_page_files() {
    let dir = store_root();
    write_page_with(dir.path(), -8, 0, &[(5, key(1)), (3, key(1))]);
    write_page_with(dir.path(), 2, 0x123, &[(0, key(1)), (9, key(2))]);
    let store = open(dir.path());
    assert_eq!(
        store.locker_coins(&key(1), T0),
        vec![
            CoinId::new(-8, 3),
            CoinId::new(-8, 5),
            CoinId::new(2, 0x123 * 1024)
        ]
    );
    assert_eq!(
        store.locker_coins(&key(2), T0),
        vec![CoinId::new(2, 0x123 * 1024 + 9)]
    );
    assert_eq!(store.locker_keys(&[1; 5], T0), vec![key(1)]);
    assert_eq!(store.stats().expect("counts").cached_pages, 0);
}

#[test]
fn writes_keep_the_index_equal_to_the_records_and_a_reopen_rebuilds_it() {
    let dir = store_root();
    let pages = [(0, 0), (1, 0), (1, 1)];
    write_page_with(dir.path(), 0, 0, &[(1, key(1)), (2, key(1))]);
    write_page(dir.path(), 1, 0, 1);
    write_page(dir.path(), 1, 1, 1);
    let keys = [key(1), key(2), key(3)];
    {
        let store = open(dir.path());
        assert_index_matches(&store, &pages, &keys);
        // Into a locker, between lockers, out of a locker, into a new one across pages.
        assert!(cas(&store, CoinId::new(1, 7), an_of(1, 7, 1), key(1), T0));
        assert!(cas(&store, CoinId::new(0, 1), key(1), key(2), T0));
        assert!(cas(&store, CoinId::new(0, 2), key(1), [9; 16], T0));
        store
            .modify(
                &[CoinId::new(1, 1024), CoinId::new(1, 3)],
                T0,
                &mut |_, new| {
                    new[0] = Some(record(key(3), 1));
                    new[1] = Some(record(key(3), 1));
                },
            )
            .expect("modify");
        // A coin named twice ends in the locker of its last record only.
        store
            .modify(
                &[CoinId::new(1, 9), CoinId::new(1, 9)],
                T0,
                &mut |_, new| {
                    new[0] = Some(record(key(1), 1));
                    new[1] = Some(record(key(2), 1));
                },
            )
            .expect("modify");
        assert_eq!(
            store.locker_coins(&key(1), T0),
            vec![CoinId::new(1, 7)],
            "the coin named twice left key 1"
        );
        assert_index_matches(&store, &pages, &keys);
    }
    let store = open(dir.path());
    assert_eq!(
        store.locker_coins(&key(2), T0),
        vec![CoinId::new(0, 1), CoinId::new(1, 9)]
    );
    assert_eq!(
        store.locker_coins(&key(3), T0),
        vec![CoinId::new(1, 3), CoinId::new(1, 1024)]
    );
    assert_index_matches(&store, &pages, &keys);
}

#[test]
fn an_outside_rewrite_is_indexed_after_the_next_refresh() {
    let dir = store_root();
    write_page_with(dir.path(), 3, 0, &[(4, key(1))]);
    let store = open(dir.path());
    assert_eq!(an(&store, 3, 4, T0), Some(key(1)));
    assert!(store.refresh(T0).ran);

    std::thread::sleep(Duration::from_millis(20));
    write_page_with(dir.path(), 3, 0, &[(6, key(2))]);
    assert_eq!(store.locker_coins(&key(1), T0), vec![CoinId::new(3, 4)]);
    assert_eq!(store.refresh(at_ms(1000)).reloaded, 1);
    assert!(store.locker_coins(&key(1), at_ms(1000)).is_empty());
    assert_eq!(
        store.locker_coins(&key(2), at_ms(1000)),
        vec![CoinId::new(3, 6)]
    );

    // A deleted page takes its coins out of every locker.
    fs::remove_file(page_path(dir.path(), 3, 0)).expect("rm");
    assert_eq!(store.refresh(at_ms(2000)).reloaded, 1);
    assert!(store.locker_coins(&key(2), at_ms(2000)).is_empty());
    assert_eq!(store.locker_index().entries(), 0);
}

#[test]
fn a_page_read_again_after_eviction_replaces_its_entries() {
    let dir = store_root();
    write_page_with(dir.path(), 0, 0, &[(1, key(1))]);
    for page in 1..12 {
        write_page(dir.path(), 0, page, 1);
    }
    let store = open(dir.path());
    assert_eq!(an(&store, 0, 1, T0), Some(key(1)));
    // Evict page 0 (the cache holds 8), change it outside, read it again.
    for page in 1..12 {
        let _ = an(&store, 0, page * 1024, T0);
    }
    write_page_with(dir.path(), 0, 0, &[(2, key(1))]);
    assert_eq!(an(&store, 0, 2, T0), Some(key(1)));
    assert_eq!(store.locker_coins(&key(1), T0), vec![CoinId::new(0, 2)]);
}

#[test]
fn an_outside_rewrite_of_a_page_never_read_since_open_is_indexed_after_a_refresh() {
    let dir = store_root();
    write_page_with(dir.path(), 5, 2, &[(1, key(1))]);
    write_page(dir.path(), 5, 3, 1);
    let store = open(dir.path());
    assert_eq!(store.stats().expect("counts").cached_pages, 0);
    assert!(store.refresh(T0).ran);

    std::thread::sleep(Duration::from_millis(20));
    write_page_with(dir.path(), 5, 2, &[(8, key(2))]);
    write_page_with(dir.path(), 5, 3, &[(9, key(2))]);
    let done = store.refresh(at_ms(1000));
    assert_eq!(done.reindexed, 2);
    assert!(store.locker_coins(&key(1), at_ms(1000)).is_empty());
    assert_eq!(
        store.locker_coins(&key(2), at_ms(1000)),
        vec![CoinId::new(5, 2 * 1024 + 8), CoinId::new(5, 3 * 1024 + 9)]
    );
    // Unchanged since: nothing is read again.
    assert_eq!(store.refresh(at_ms(2000)).reindexed, 0);
    // Removed from outside while out of the cache (a cache of 8 pages, 12 read).
    for page in 10..22 {
        write_page(dir.path(), 5, page, 1);
    }
    std::thread::sleep(Duration::from_millis(20));
    let store = open(dir.path());
    for page in 10..22 {
        let _ = an(&store, 5, page * 1024, T0);
    }
    assert_eq!(store.locker_coins(&key(2), T0).len(), 2);
    fs::remove_file(page_path(dir.path(), 5, 2)).expect("rm");
    let done = store.refresh(T0);
    assert!(done.reindexed >= 1, "{done:?}");
    assert_eq!(
        store.locker_coins(&key(2), T0),
        vec![CoinId::new(5, 3 * 1024 + 9)]
    );
}

#[test]
fn a_page_file_created_from_outside_after_open_is_indexed_after_a_refresh() {
    let dir = store_root();
    write_page(dir.path(), -2, 0, 1);
    let store = open(dir.path());
    assert!(store.refresh(T0).ran);
    std::thread::sleep(Duration::from_millis(20));
    write_page_with(dir.path(), -2, 7, &[(3, key(4))]);
    let done = store.refresh(at_ms(1000));
    assert_eq!(done.reindexed, 1, "{done:?}");
    assert_eq!(
        store.locker_coins(&key(4), at_ms(1000)),
        vec![CoinId::new(-2, 7 * 1024 + 3)]
    );
    assert_eq!(store.refresh(at_ms(2000)).reindexed, 0);
}
