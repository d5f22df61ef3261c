//! `DiskStore` over `FileDisk` in a temporary directory: lookups from memory only,
//! loads, absent pages, the cache's bound, freshness, writes, recovery and
//! checkpoints, against page files written byte by byte (tests/support).

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use raida_core::keys::{CoinId, KeyStore, Lookup, Record, StoreError};
use raida_store::{
    check_root, demo_locker_an, write_demo_store, DiskStore, OpenError, StoreConfig,
    DEFAULT_CACHE_PAGES, DEFAULT_REFRESH_INTERVAL, LOG_DIR,
};
use support::*;

fn open(root: &std::path::Path, cache_pages: usize) -> DiskStore {
    DiskStore::open(root, StoreConfig::new(cache_pages, Duration::from_secs(1))).expect("open")
}

fn stats(store: &DiskStore) -> raida_core::keys::StoreStats {
    store.stats().expect("counts")
}

#[test]
fn finds_coin_of_denomination_minus_one_under_ff() {
    let dir = store_root();
    write_page(dir.path(), -1, 0, 1);
    assert!(dir.path().join("Data/ff/00/0000.bin").is_file());
    let store = open(dir.path(), 8);
    assert_eq!(an(&store, -1, 42, T0), Some(an_of(-1, 42, 1)));
    assert_eq!(an(&store, -1, 0, T0), Some(an_of(-1, 0, 1)));
    assert_eq!(an(&store, -1, 1023, T0), Some(an_of(-1, 1023, 1)));
    assert_eq!(an(&store, 1, 42, T0), None);
}

#[test]
fn finds_coin_on_page_with_nonzero_high_byte() {
    let dir = store_root();
    let serial = 0x1234 * 1024 + 77;
    write_page(dir.path(), 6, 0x1234, 1);
    let store = open(dir.path(), 8);
    assert_eq!(an(&store, 6, serial, T0), Some(an_of(6, serial, 1)));
    assert_eq!(an(&store, 6, 0x34 * 1024 + 77, T0), None);
}

#[test]
fn the_status_byte_is_the_record_s_last_byte_not_part_of_the_an() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 9);
    let store = open(dir.path(), 8);
    let r = store
        .record(CoinId::new(0, 5), T0)
        .expect("read")
        .expect("known");
    assert_eq!((r.an, r.status), (an_of(0, 5, 9), 0xA5));
}

#[test]
fn lookups_answer_from_memory_and_a_miss_asks_for_a_load() {
    let dir = store_root();
    write_page(dir.path(), 1, 0, 1);
    let store = open(dir.path(), 8);
    let coin = CoinId::new(1, 3);
    let page = page_id(1, 0);
    assert_eq!(store.lookup(coin, T0), Lookup::NotInMemory(page));
    assert_eq!(stats(&store).loads, 0, "a lookup never reads");
    store.load(page, T0).expect("load");
    assert_eq!(store.lookup(coin, T0), Lookup::Found(an_of(1, 3, 1)));
    for serial in 0..100 {
        let _ = store.lookup(CoinId::new(1, serial), T0);
    }
    let s = stats(&store);
    assert_eq!((s.loads, s.misses, s.hits, s.lookups), (1, 1, 101, 102));
    assert_eq!(s.cached_pages, 1);
}

#[test]
fn missing_short_and_empty_pages_are_unknown_and_remembered_apart() {
    let dir = store_root();
    write_page_len(dir.path(), 0, 0, 1, 17407);
    write_page_len(dir.path(), 0, 1, 1, 0);
    let store = open(dir.path(), 8);
    assert_eq!(
        an(&store, 0, 0, T0),
        None,
        "even a record the short file holds"
    );
    assert_eq!(an(&store, 0, 1024, T0), None);
    assert_eq!(an(&store, 0, 2048, T0), None, "no file");
    assert_eq!(an(&store, 2, 5, T0), None, "no denomination directory");
    let s = stats(&store);
    assert_eq!((s.pages_absent, s.absent_pages, s.cached_pages), (4, 4, 0));
    // Remembered: no more reads.
    for serial in 0..1000 {
        assert_eq!(store.lookup(CoinId::new(0, serial), T0), Lookup::Unknown);
    }
    assert_eq!(stats(&store).loads, 4);
}

#[test]
fn coins_that_can_never_be_known_read_nothing() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    for coin in [
        CoinId::new(0, 1 << 26),
        CoinId::new(0, (1 << 26) + 5),
        CoinId::new(0, u32::MAX),
        CoinId::new(7, 1),
        CoinId::new(-9, 1),
        CoinId::new(i8::MIN, 0),
    ] {
        assert_eq!(store.lookup(coin, T0), Lookup::Unknown, "{coin:?}");
        assert_eq!(store.record(coin, T0).expect("no error"), None);
    }
    let s = stats(&store);
    assert_eq!((s.loads, s.out_of_range, s.lookups), (0, 6, 6));
    write_page(dir.path(), 0, 0xffff, 1);
    let top = (1 << 26) - 1;
    assert_eq!(an(&store, 0, top, T0), Some(an_of(0, top, 1)));
}

#[test]
fn open_reads_no_page() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert_eq!(stats(&store).loads, 0);
    fs::remove_file(page_path(dir.path(), 0, 0)).expect("rm");
    assert_eq!(an(&store, 0, 1, T0), None);
}

#[test]
fn a_page_that_cannot_be_read_is_unreadable_never_unknown() {
    let dir = store_root();
    // A directory where the page file should be: the read fails (EISDIR).
    fs::create_dir_all(page_path(dir.path(), 0, 0)).expect("mkdir");
    let store = open(dir.path(), 8);
    let coin = CoinId::new(0, 1);
    let page = page_id(0, 0);
    assert_eq!(store.lookup(coin, T0), Lookup::NotInMemory(page));
    assert!(matches!(
        store.load(page, T0),
        Err(StoreError::Unreadable { page: p, .. }) if p == page
    ));
    // Answered 252 from memory for a second, then tried again.
    assert_eq!(store.lookup(coin, at_ms(999)), Lookup::Unreadable(page));
    assert_eq!(store.lookup(coin, at_ms(1000)), Lookup::NotInMemory(page));
    assert!(store.record(coin, T0).is_err());
    let s = stats(&store);
    assert_eq!((s.read_errors, s.pages_absent), (2, 0));
    // Fixed on disk: the next load finds it.
    fs::remove_dir(page_path(dir.path(), 0, 0)).expect("rmdir");
    write_page(dir.path(), 0, 0, 3);
    store.load(page, at_ms(1000)).expect("load");
    assert_eq!(
        store.lookup(coin, at_ms(1000)),
        Lookup::Found(an_of(0, 1, 3))
    );
}

#[test]
fn a_longer_page_file_uses_its_first_17408_bytes() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let path = page_path(dir.path(), 0, 0);
    let mut bytes = fs::read(&path).expect("read");
    bytes.extend_from_slice(&[0xEE; 100]);
    fs::write(&path, bytes).expect("write");
    let store = open(dir.path(), 8);
    assert_eq!(an(&store, 0, 1023, T0), Some(an_of(0, 1023, 1)));
}

#[test]
fn open_without_data_dir_fails_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DiskStore::open(dir.path(), StoreConfig::default()).expect_err("no Data");
    let expected = dir.path().join("Data");
    match &err {
        OpenError::MissingDataDir { path } => assert_eq!(path, &expected),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains(&expected.display().to_string()));
    assert!(!dir.path().join(LOG_DIR).exists(), "nothing created");
}

#[test]
fn open_with_data_as_a_file_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("Data"), b"not a directory").expect("write");
    let err = DiskStore::open(dir.path(), StoreConfig::default()).expect_err("Data is a file");
    assert!(matches!(err, OpenError::NotADirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"));
}

#[test]
fn check_root_creates_nothing_and_open_puts_the_log_beside_data() {
    let dir = store_root();
    let check = check_root(dir.path()).expect("check");
    assert_eq!(check.segments, 0);
    assert!(!dir.path().join(LOG_DIR).exists());
    let store = open(dir.path(), 8);
    assert!(dir.path().join(LOG_DIR).is_dir());
    assert!(fs::read_dir(dir.path().join("Data"))
        .expect("ls")
        .next()
        .is_none());
    assert_eq!(store.log_segments(), 1);
    assert_eq!(check_root(dir.path()).expect("check").segments, 1);
}

#[test]
fn defaults_hold_a_whole_store_and_refresh_every_second() {
    let dir = store_root();
    let store = DiskStore::open(dir.path(), StoreConfig::default()).expect("open");
    assert_eq!(DEFAULT_CACHE_PAGES, 16_384);
    const { assert!(DEFAULT_CACHE_PAGES >= 15 * 1000, "a full store") };
    assert_eq!(DEFAULT_REFRESH_INTERVAL, Duration::from_secs(1));
    assert_eq!(store.cache_capacity(), DEFAULT_CACHE_PAGES);
}

#[test]
fn locker_index_starts_empty_and_finds_by_prefix() {
    let dir = store_root();
    let store = open(dir.path(), 8);
    let locker = demo_locker_an();
    let prefix: [u8; 5] = [locker[0], locker[1], locker[2], locker[3], locker[4]];
    assert_eq!(store.locker_an(&prefix, T0), None);
    store.insert_locker(locker);
    assert_eq!(store.locker_an(&prefix, T0), Some(locker));
    assert_eq!(store.locker_count(), 1);
    assert_eq!(store.remove_locker(&prefix), Some(locker));
    assert_eq!(store.locker_an(&prefix, T0), None);
}

#[test]
fn debug_output_holds_no_page_bytes() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 0x5a);
    let store = open(dir.path(), 8);
    let _ = an(&store, 0, 1, T0);
    store.insert_locker([0x5a; 16]);
    let text = format!("{store:?}");
    assert!(!text.contains("90, 90"), "{text}");
    assert!(text.contains("registered: 1"), "{text}");
}

#[test]
fn demo_store_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("server");
    let coins = write_demo_store(&root).expect("write demo store");
    assert_eq!(coins.len(), 51);
    let store = open(&root, DEFAULT_CACHE_PAGES);
    for coin in &coins {
        assert_eq!(
            an(&store, coin.denomination, coin.serial, T0),
            Some(coin.an),
            "{coin}"
        );
    }
    assert_eq!(an(&store, 2, 1, T0), None);
    assert_eq!(an(&store, 0, 1024, T0), None);
    // 3 denominations x 2 pages, each read once, and the two absent pages.
    assert_eq!(stats(&store).loads, 6 + 2);
}

#[test]
fn the_cache_stays_within_its_bound() {
    let dir = store_root();
    for page in 0..10 {
        write_page(dir.path(), 0, page, 1);
    }
    let store = open(dir.path(), 3);
    for round in 0..3 {
        for page in 0..10u32 {
            let serial = page * 1024 + round;
            assert_eq!(an(&store, 0, serial, T0), Some(an_of(0, serial, 1)));
            assert!(store.cached_pages() <= 3);
        }
    }
    let s = stats(&store);
    assert_eq!(s.loads, 30, "every page evicted before its next turn");
    assert_eq!(s.evictions, 27);
}

#[test]
fn a_flood_of_absent_coins_costs_one_load_per_page_and_evicts_no_real_page() {
    let dir = store_root();
    write_page(dir.path(), 3, 0, 1);
    write_page(dir.path(), 3, 1, 1);
    let store = open(dir.path(), 2);
    assert_eq!(an(&store, 3, 1, T0), Some(an_of(3, 1, 1)));
    assert_eq!(an(&store, 3, 1025, T0), Some(an_of(3, 1025, 1)));
    for round in 0..3u32 {
        for page in 2..5002u32 {
            assert_eq!(an(&store, 3, page * 1024 + round, T0), None);
        }
    }
    let s = stats(&store);
    assert_eq!(s.loads, 2 + 5000);
    assert_eq!((s.evictions, s.cached_pages, s.absent_pages), (0, 2, 5000));
    assert_eq!(
        store.lookup(CoinId::new(3, 7), T0),
        Lookup::Found(an_of(3, 7, 1))
    );
}

#[test]
fn an_outside_rewrite_is_served_after_the_next_refresh() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert_eq!(an(&store, 0, 7, T0), Some(an_of(0, 7, 1)));
    assert!(store.refresh(T0).ran);

    // Same size, same inode: only the times tell.
    std::thread::sleep(Duration::from_millis(20));
    write_page(dir.path(), 0, 0, 2);
    assert_eq!(
        store.lookup(CoinId::new(0, 7), at_ms(500)),
        Lookup::Found(an_of(0, 7, 1))
    );
    assert!(!store.refresh(at_ms(999)).ran, "at most once a second");
    let done = store.refresh(at_ms(1000));
    assert_eq!((done.ran, done.reloaded), (true, 1));
    assert_eq!(
        store.lookup(CoinId::new(0, 7), at_ms(1000)),
        Lookup::Found(an_of(0, 7, 2))
    );

    // Replaced by rename (a new inode).
    let tmp = dir.path().join("Data/00/00/new.tmp");
    fs::write(&tmp, page_bytes(0, 0, 3)).expect("write");
    fs::rename(&tmp, page_path(dir.path(), 0, 0)).expect("rename");
    assert_eq!(store.refresh(at_ms(2000)).reloaded, 1);
    assert_eq!(
        store.lookup(CoinId::new(0, 8), at_ms(2000)),
        Lookup::Found(an_of(0, 8, 3))
    );
    assert_eq!(stats(&store).reloads, 2);
}

#[test]
fn an_unchanged_page_is_never_read_again() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert_eq!(an(&store, 0, 7, T0), Some(an_of(0, 7, 1)));
    for second in 1..=5 {
        let done = store.refresh(at_ms(second * 1000));
        assert_eq!((done.ran, done.checked, done.reloaded), (true, 1, 0));
    }
    assert_eq!(stats(&store).loads, 1);
}

#[test]
fn the_store_s_own_writes_are_not_outside_changes() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    let coin = CoinId::new(0, 7);
    assert!(cas(&store, coin, an_of(0, 7, 1), [0xEE; 16], T0));
    assert_eq!(store.refresh(at_ms(1000)).reloaded, 0);
    assert_eq!(stats(&store).loads, 1);
    assert_eq!(store.lookup(coin, at_ms(1000)), Lookup::Found([0xEE; 16]));
}

#[test]
fn a_deleted_or_truncated_page_becomes_unknown_after_a_refresh() {
    let dir = store_root();
    write_page(dir.path(), -1, 3, 1);
    write_page(dir.path(), -1, 4, 1);
    let store = open(dir.path(), 8);
    let (a, b) = (3 * 1024 + 1, 4 * 1024 + 1);
    assert_eq!(an(&store, -1, a, T0), Some(an_of(-1, a, 1)));
    assert_eq!(an(&store, -1, b, T0), Some(an_of(-1, b, 1)));
    fs::remove_file(page_path(dir.path(), -1, 3)).expect("rm");
    write_page_len(dir.path(), -1, 4, 2, 17000);
    assert_eq!(store.refresh(T0).reloaded, 2);
    assert_eq!(store.lookup(CoinId::new(-1, a), T0), Lookup::Unknown);
    assert_eq!(store.lookup(CoinId::new(-1, b), T0), Lookup::Unknown);
    assert_eq!(stats(&store).cached_pages, 0);
}

#[test]
fn a_page_that_appears_is_found_after_a_refresh() {
    let dir = store_root();
    write_page(dir.path(), 4, 0, 1);
    let store = open(dir.path(), 8);
    // Absent: in a directory that exists (00), in one that does not (01), in a
    // denomination that does not (05), and a short file that grows in place.
    write_page_len(dir.path(), 4, 9, 1, 100);
    for (den, serial) in [(4, 5 * 1024), (4, 0x100 * 1024), (5, 0), (4, 9 * 1024)] {
        assert_eq!(an(&store, den, serial, T0), None);
    }
    let loads = stats(&store).loads;
    // A refresh with nothing changed forgets nothing and reads nothing.
    assert_eq!(store.refresh(T0).forgotten, 0);
    std::thread::sleep(Duration::from_millis(20));
    write_page(dir.path(), 4, 5, 2);
    write_page(dir.path(), 4, 0x100, 2);
    write_page(dir.path(), 5, 0, 2);
    write_page(dir.path(), 4, 9, 2);
    for (den, serial) in [(4, 5 * 1024), (4, 0x100 * 1024), (5, 0), (4, 9 * 1024)] {
        assert_eq!(
            store.lookup(CoinId::new(den, serial), at_ms(10)),
            Lookup::Unknown
        );
    }
    assert!(store.refresh(at_ms(1000)).forgotten >= 4);
    for (den, serial) in [(4, 5 * 1024), (4, 0x100 * 1024), (5, 0), (4, 9 * 1024)] {
        assert_eq!(
            an(&store, den, serial, at_ms(1000)),
            Some(an_of(den, serial, 2))
        );
    }
    assert_eq!(stats(&store).loads, loads + 4);
}

#[test]
fn modify_is_a_compare_and_set_and_durable() {
    let dir = store_root();
    write_page(dir.path(), 1, 0, 1);
    let coin = CoinId::new(1, 5);
    {
        let store = open(dir.path(), 8);
        assert!(
            !cas(&store, coin, [0; 16], [9; 16], T0),
            "wrong AN: no change"
        );
        assert!(cas(&store, coin, an_of(1, 5, 1), [9; 16], T0));
        assert!(
            !cas(&store, coin, an_of(1, 5, 1), [8; 16], T0),
            "the old AN fails now"
        );
        assert_eq!(store.lookup(coin, T0), Lookup::Found([9; 16]));
        let s = stats(&store);
        assert_eq!((s.records_written, s.syncs), (1, 1));
        // Durable in the log; in place once the deferred writes go (at a checkpoint).
        let bytes = fs::read(page_path(dir.path(), 1, 0)).expect("read");
        assert_eq!(bytes[5 * 17..5 * 17 + 16], an_of(1, 5, 1));
        store.write_deferred();
    }
    // Written in place, and the log replays it anyway.
    let bytes = fs::read(page_path(dir.path(), 1, 0)).expect("read");
    assert_eq!(bytes.len(), 17408);
    assert_eq!(
        &bytes[5 * 17..5 * 17 + 17],
        &[[9u8; 16].as_slice(), &[1]].concat()[..]
    );
    let store = open(dir.path(), 8);
    assert_eq!(store.recovery().entries, 1);
    assert_eq!(an(&store, 1, 5, T0), Some([9; 16]));
    assert_eq!(an(&store, 1, 6, T0), Some(an_of(1, 6, 1)));
}

#[test]
fn modify_writes_all_or_nothing_and_never_an_unknown_coin() {
    let dir = store_root();
    write_page(dir.path(), 1, 0, 1);
    write_page(dir.path(), 2, 7, 1);
    let store = open(dir.path(), 8);
    let coins = [
        CoinId::new(1, 5),
        CoinId::new(2, 7 * 1024 + 3),
        CoinId::new(1, 2048), // absent page
        CoinId::new(7, 1),    // never known
        CoinId::new(1, 5),    // named twice: its last record wins
    ];
    store
        .modify(&coins, T0, &mut |current, new| {
            assert_eq!(current[0].map(|r| r.an), Some(an_of(1, 5, 1)));
            assert_eq!(current[1].map(|r| r.an), Some(an_of(2, 7 * 1024 + 3, 1)));
            assert!(current[2].is_none() && current[3].is_none());
            for (i, slot) in new.iter_mut().enumerate() {
                *slot = Some(record([i as u8 + 1; 16], 3));
            }
        })
        .expect("modify");
    assert_eq!(store.lookup(coins[0], T0), Lookup::Found([5; 16]));
    assert_eq!(store.lookup(coins[1], T0), Lookup::Found([2; 16]));
    assert_eq!(an(&store, 1, 2048, T0), None);
    assert!(
        !page_path(dir.path(), 1, 2).exists(),
        "no page file is ever created"
    );
    assert_eq!(stats(&store).records_written, 3);

    // A batch naming an unreadable page fails before `change` runs: nothing written.
    fs::create_dir_all(page_path(dir.path(), 1, 3)).expect("mkdir");
    let mut called = false;
    let err = store
        .modify(&[coins[0], CoinId::new(1, 3 * 1024)], T0, &mut |_, new| {
            called = true;
            new[0] = Some(record([0x77; 16], 0));
        })
        .expect_err("unreadable page");
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
    assert!(!called);
    assert_eq!(store.lookup(coins[0], T0), Lookup::Found([5; 16]));

    // A change that writes nothing logs nothing.
    let syncs = stats(&store).syncs;
    store.modify(&coins, T0, &mut |_, _| {}).expect("modify");
    assert_eq!(stats(&store).syncs, syncs);
}

#[test]
fn of_32_concurrent_compare_and_sets_of_one_coin_exactly_one_wins() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = Arc::new(open(dir.path(), 8));
    let coin = CoinId::new(0, 9);
    let old = an_of(0, 9, 1);
    let start = Arc::new(Barrier::new(32));
    let threads: Vec<_> = (0..32u8)
        .map(|t| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                cas(&*store, coin, old, [t + 100; 16], T0).then_some(t)
            })
        })
        .collect();
    let winners: Vec<u8> = threads
        .into_iter()
        .filter_map(|t| t.join().expect("no panic"))
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.lookup(coin, T0),
        Lookup::Found([winners[0] + 100; 16])
    );
    assert_eq!(stats(&store).records_written, 1);
}

#[test]
fn concurrent_writers_of_different_pages_share_syncs() {
    let dir = store_root();
    for page in 0..32 {
        write_page(dir.path(), 2, page, 1);
    }
    let store = Arc::new(open(dir.path(), 64));
    let threads: Vec<_> = (0..32u32)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..20u32 {
                    let serial = t * 1024 + i;
                    let coin = CoinId::new(2, serial);
                    assert!(cas(&*store, coin, an_of(2, serial, 1), [i as u8; 16], T0));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    let s = stats(&store);
    assert_eq!(s.records_written, 640);
    assert!(s.syncs <= 640, "{s:?}");
    drop(store);
    let store = open(dir.path(), 64);
    for t in 0..32u32 {
        for i in 0..20u32 {
            assert_eq!(an(&store, 2, t * 1024 + i, T0), Some([i as u8; 16]));
        }
    }
}

/// The segment files of the store at `root`, in order.
fn segments(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(root.join(LOG_DIR))
        .expect("ls log")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn recovery_drops_a_torn_tail_and_is_idempotent() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let coin = |s| CoinId::new(0, s);
    {
        let store = open(dir.path(), 8);
        for serial in 1..=3u32 {
            assert!(cas(
                &store,
                coin(serial),
                an_of(0, serial, 1),
                [serial as u8; 16],
                T0
            ));
        }
    }
    // Undo the in-place writes (as if the process died before them), then tear the
    // last entry: recovery must bring back exactly the first two.
    let original = page_bytes(0, 0, 1);
    fs::write(page_path(dir.path(), 0, 0), &original).expect("restore page");
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    let log = fs::read(&files[0]).expect("read log");
    let entry = log.len() / 3;
    fs::write(&files[0], &log[..log.len() - 5]).expect("tear");
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> =
        vec![(files[0].clone(), log[..log.len() - 5].to_vec())];

    let first = {
        let store = open(dir.path(), 8);
        assert_eq!(store.recovery().entries, 2);
        assert_eq!(store.recovery().dropped_bytes, entry as u64 - 5);
        assert_eq!(an(&store, 0, 1, T0), Some([1; 16]));
        assert_eq!(an(&store, 0, 2, T0), Some([2; 16]));
        assert_eq!(an(&store, 0, 3, T0), Some(an_of(0, 3, 1)));
        fs::read(page_path(dir.path(), 0, 0)).expect("page")
    };
    assert_eq!(first.len(), 17408);
    // A crash in the middle of recovery (the log still there, the pages half
    // written), then recovery again: the same pages.
    let mut half = first.clone();
    half[17..34].copy_from_slice(&original[17..34]);
    fs::write(page_path(dir.path(), 0, 0), &half).expect("half");
    for (path, bytes) in &saved {
        fs::write(path, bytes).expect("put the log back");
    }
    {
        let store = open(dir.path(), 8);
        assert_eq!(store.recovery().entries, 2);
    }
    assert_eq!(fs::read(page_path(dir.path(), 0, 0)).expect("page"), first);
    // And once more with nothing to replay.
    let store = open(dir.path(), 8);
    assert_eq!(store.recovery().entries, 0);
    assert_eq!(fs::read(page_path(dir.path(), 0, 0)).expect("page"), first);
}

#[test]
fn log_segments_are_prepared_ahead_and_their_zeros_are_an_end_not_a_tear() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let mut config = StoreConfig::new(8, Duration::from_secs(1));
    // An entry of one write is 46 bytes: five fill a segment.
    config.segment_bytes = 200;
    let lengths = |dir: &std::path::Path| -> Vec<usize> {
        segments(dir)
            .iter()
            .map(|f| fs::read(f).expect("segment").len())
            .collect()
    };
    let write = |store: &DiskStore, serial: u32| {
        assert!(cas(
            store,
            CoinId::new(0, serial),
            an_of(0, serial, 1),
            [7; 16],
            T0
        ));
    };
    {
        let store = DiskStore::open(dir.path(), config.clone()).expect("open");
        // Open creates an empty segment; a log nobody writes prepares nothing.
        store.maintain(T0);
        assert_eq!(lengths(dir.path()), vec![0]);
        write(&store, 0);
        // Written: the background step prepares the next segment (the spare).
        store.maintain(T0);
        assert_eq!(lengths(dir.path()), vec![46, 200]);
        // The next write leaves the segment open created for the spare.
        write(&store, 1);
        assert_eq!(lengths(dir.path()), vec![46, 200]);
        // The background step checkpoints the segment left (its writes in place) and
        // prepares the next spare.
        store.maintain(T0);
        assert_eq!(lengths(dir.path()), vec![200, 200]);
        // Five more: the fifth entry of the spare goes past its end, and the sixth to
        // the next spare, within its prepared length.
        for serial in 2..7u32 {
            write(&store, serial);
        }
        assert_eq!(lengths(dir.path()), vec![230, 200]);
    }
    let files = segments(dir.path());
    let last = fs::read(files.last().expect("a segment")).expect("segment");
    assert_eq!(&last[..4], b"RSW1");
    assert!(last[46..].iter().all(|&b| b == 0));
    // A restart replays what the log holds and drops nothing: the zeros after the
    // last entry are the log's end.
    let store = DiskStore::open(dir.path(), config).expect("reopen");
    assert_eq!(store.recovery().dropped_bytes, 0);
    for serial in 0..7u32 {
        assert_eq!(an(&store, 0, serial, T0), Some([7; 16]), "serial {serial}");
    }
}

#[test]
fn checkpoints_remove_old_segments_once_their_pages_are_synced() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let mut config = StoreConfig::new(8, Duration::from_secs(1));
    config.segment_bytes = 200;
    let store = DiskStore::open(dir.path(), config.clone()).expect("open");
    for serial in 0..40u32 {
        assert!(cas(
            &store,
            CoinId::new(0, serial),
            an_of(0, serial, 1),
            [7; 16],
            T0
        ));
    }
    // One-coin entries are 42 bytes: a new segment every five.
    assert!(store.log_segments() >= 7, "{}", store.log_segments());
    let removed = store.checkpoint();
    assert_eq!(store.log_segments(), 1);
    assert!(removed >= 6);
    // On disk: the active segment, and the spares prepared ahead (zeros only).
    let with_entries = segments(dir.path())
        .iter()
        .filter(|f| {
            let bytes = fs::read(f).expect("segment");
            bytes.iter().any(|&b| b != 0)
        })
        .count();
    assert_eq!(with_entries, 1);
    assert!(segments(dir.path()).len() <= 2);
    drop(store);
    let store = DiskStore::open(dir.path(), config).expect("reopen");
    for serial in 0..40u32 {
        assert_eq!(an(&store, 0, serial, T0), Some([7; 16]));
    }
    assert_eq!(
        fs::metadata(page_path(dir.path(), 0, 0))
            .expect("page")
            .len(),
        17408
    );
}

#[test]
fn a_record_keeps_its_status_byte() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    let coin = CoinId::new(0, 1);
    store
        .modify(&[coin], T0, &mut |_, new| {
            new[0] = Some(Record {
                an: [3; 16],
                status: 42,
            })
        })
        .expect("modify");
    let r = store.record(coin, T0).expect("read").expect("known");
    assert_eq!((r.an, r.status), ([3; 16], 42));
}

mod prop {
    //! Caching never changes an answer while the files do not change: with a tiny
    //! cache (evictions and absences exercised), every lookup equals a
    //! `MemoryKeyStore` holding exactly the coins on disk.
    use super::*;
    use proptest::prelude::*;
    use raida_core::keys::MemoryKeyStore;

    const DENS: [i8; 3] = [0, -1, 6];
    const PAGES: [u32; 3] = [0, 1, 0x100];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn disk_store_answers_like_memory_store(
            written in proptest::collection::btree_set((0..3usize, 0..3usize), 0..6),
            lookups in proptest::collection::vec((0..3usize, 0..3usize, 0..1024u32), 1..200),
            capacity in 1..4usize,
        ) {
            let dir = store_root();
            let memory = MemoryKeyStore::new();
            for &(d, p) in &written {
                write_page(dir.path(), DENS[d], PAGES[p], 1);
                for record in 0..1024 {
                    let serial = PAGES[p] * 1024 + record;
                    memory.insert_coin(DENS[d], serial, an_of(DENS[d], serial, 1));
                }
            }
            let disk = open(dir.path(), capacity);
            for (d, p, record) in lookups {
                let serial = PAGES[p] * 1024 + record;
                let in_memory = match memory.lookup(CoinId::new(DENS[d], serial), T0) {
                    Lookup::Found(an) => Some(an),
                    _ => None,
                };
                prop_assert_eq!(an(&disk, DENS[d], serial, T0), in_memory);
                prop_assert!(disk.cached_pages() <= capacity);
            }
            let s = disk.stats().expect("counts");
            prop_assert_eq!(s.lookups, s.out_of_range + s.hits + s.misses);
        }
    }
}
