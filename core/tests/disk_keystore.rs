//! `DiskKeyStore` against page files written byte by byte here, in the layout of
//! PROTOCOL.md section 10 (`<root>/Data/<dd>/<pp>/<pppp>.bin`, 1024 records of
//! 16-byte AN + status byte), independently of the store's own path code.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raida_core::keys::{
    demo_locker_an, write_demo_store, An, DiskKeyStore, KeyStore, KeyStoreError,
    DEFAULT_PAGE_CACHE_PAGES, DEFAULT_PAGE_TTL,
};
use raida_core::keys::{CoinId, Lookup};
use raida_core::Timestamp;

const TTL: Duration = Duration::from_secs(1);
const T0: Timestamp = Timestamp::from_micros(1_000_000);

fn at(micros_after_t0: u64) -> Timestamp {
    Timestamp::from_micros(T0.as_micros() + micros_after_t0)
}

/// A test AN that names its coin and a version, so a rewritten page is told apart.
fn an_of(den: i8, serial: u32, version: u8) -> An {
    let mut an = [version; 16];
    an[0] = den.to_ne_bytes()[0];
    an[1..5].copy_from_slice(&serial.to_be_bytes());
    an
}

/// `<root>/Data/<dd>/<pp>/<pppp>.bin`, spelled out from section 10.
fn page_path(root: &Path, den: i8, page: u32) -> PathBuf {
    root.join(format!(
        "Data/{:02x}/{:02x}/{:04x}.bin",
        den.to_ne_bytes()[0],
        page >> 8,
        page
    ))
}

/// Writes page `page` of `den` with every record's AN `an_of(den, serial, version)`
/// and status byte 0xA5, truncated to `len` bytes.
fn write_page_len(root: &Path, den: i8, page: u32, version: u8, len: usize) {
    let mut bytes = Vec::with_capacity(17 * 1024);
    for record in 0..1024u32 {
        bytes.extend_from_slice(&an_of(den, page * 1024 + record, version));
        bytes.push(0xA5);
    }
    assert_eq!(bytes.len(), 17408);
    bytes.truncate(len);
    let path = page_path(root, den, page);
    fs::create_dir_all(path.parent().expect("page has a parent")).expect("mkdir");
    fs::write(path, bytes).expect("write page");
}

fn write_page(root: &Path, den: i8, page: u32, version: u8) {
    write_page_len(root, den, page, version, 17408);
}

fn store_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("Data")).expect("mkdir Data");
    dir
}

fn open(root: &Path, cache_pages: usize) -> DiskKeyStore {
    DiskKeyStore::open(root, cache_pages, TTL).expect("open store")
}

#[test]
fn finds_coin_of_denomination_minus_one_under_ff() {
    let dir = store_root();
    write_page(dir.path(), -1, 0, 1);
    assert!(dir.path().join("Data/ff/00/0000.bin").is_file());
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(-1, 42, T0), Some(an_of(-1, 42, 1)));
    assert_eq!(store.coin_an(-1, 0, T0), Some(an_of(-1, 0, 1)));
    assert_eq!(store.coin_an(-1, 1023, T0), Some(an_of(-1, 1023, 1)));
    // Denomination 1 has no page: the `ff` directory is not read for it.
    assert_eq!(store.coin_an(1, 42, T0), None);
}

#[test]
fn finds_coin_on_page_with_nonzero_high_byte() {
    let dir = store_root();
    let serial = 0x1234 * 1024 + 77; // page 0x1234: Data/06/12/1234.bin
    write_page(dir.path(), 6, 0x1234, 1);
    assert!(dir.path().join("Data/06/12/1234.bin").is_file());
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(6, serial, T0), Some(an_of(6, serial, 1)));
    // The same record index on page 0x34 (what a one-byte page number would name).
    assert_eq!(store.coin_an(6, 0x34 * 1024 + 77, T0), None);
}

#[test]
fn status_byte_is_not_part_of_the_an() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 9);
    let store = open(dir.path(), 8);
    let an = store.coin_an(0, 5, T0).expect("known coin");
    assert!(!an.contains(&0xA5));
}

#[test]
fn truncated_page_is_unknown() {
    let dir = store_root();
    write_page_len(dir.path(), 0, 0, 1, 17407);
    let store = open(dir.path(), 8);
    // Even record 0, which the short file holds in full, is unknown.
    assert_eq!(store.coin_an(0, 0, T0), None);
    assert_eq!(store.coin_an(0, 3, T0), None);
}

#[test]
fn empty_page_file_is_unknown() {
    let dir = store_root();
    write_page_len(dir.path(), 0, 0, 1, 0);
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(0, 3, T0), None);
}

#[test]
fn missing_page_is_unknown() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(0, 1024, T0), None); // page 1 missing
    assert_eq!(store.coin_an(2, 5, T0), None); // whole denomination missing
    assert_eq!(store.stats().pages_absent, 2);
}

#[test]
fn serial_at_or_above_2_pow_26_is_unknown_and_reads_no_file() {
    let dir = store_root();
    // The page such serials alias in the deployed server (16-bit page numbers).
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    for serial in [1 << 26, (1 << 26) + 5, u32::MAX] {
        assert_eq!(store.coin_an(0, serial, T0), None, "serial {serial:#x}");
    }
    let stats = store.stats();
    assert_eq!(stats.disk_reads, 0);
    assert_eq!(stats.out_of_range, 3);
    assert_eq!(store.cached_pages(), 0);
    // The highest valid serial lives on page 0xffff.
    write_page(dir.path(), 0, 0xffff, 1);
    let top = (1 << 26) - 1;
    assert_eq!(store.coin_an(0, top, T0), Some(an_of(0, top, 1)));
}

#[test]
fn open_reads_no_page() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert_eq!(store.stats().disk_reads, 0);
    // Removed after open and before the first lookup: the store never saw it.
    fs::remove_file(page_path(dir.path(), 0, 0)).expect("rm");
    assert_eq!(store.coin_an(0, 1, T0), None);
}

#[test]
fn second_lookup_on_a_page_is_a_hit() {
    let dir = store_root();
    write_page(dir.path(), 1, 0, 1);
    let store = open(dir.path(), 8);
    for serial in 0..100 {
        assert_eq!(
            store.coin_an(1, serial, at(serial.into())),
            Some(an_of(1, serial, 1))
        );
    }
    let stats = store.stats();
    assert_eq!((stats.misses, stats.hits, stats.disk_reads), (1, 99, 1));
    assert_eq!(stats.lookups, 100);
}

#[test]
fn rewritten_page_serves_old_an_until_ttl_then_new() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(0, 7, T0), Some(an_of(0, 7, 1)));

    write_page(dir.path(), 0, 0, 2);
    // Policy: a cached page is trusted for less than the TTL after it was read.
    assert_eq!(store.coin_an(0, 7, at(1)), Some(an_of(0, 7, 1)));
    let just_before = at(TTL.as_micros() as u64 - 1);
    assert_eq!(store.coin_an(0, 7, just_before), Some(an_of(0, 7, 1)));
    assert_eq!(store.stats().disk_reads, 1);

    // The first lookup at read time + TTL re-reads the file.
    let at_ttl = at(TTL.as_micros() as u64);
    assert_eq!(store.coin_an(0, 7, at_ttl), Some(an_of(0, 7, 2)));
    let stats = store.stats();
    assert_eq!((stats.disk_reads, stats.expired), (2, 1));
    // And the re-read page is fresh again for a TTL.
    assert_eq!(store.coin_an(0, 8, at_ttl), Some(an_of(0, 8, 2)));
    assert_eq!(store.stats().disk_reads, 2);
}

#[test]
fn use_does_not_extend_a_cached_page_life() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    // A hot page, used every 100 ms, is still re-read once per TTL.
    for step in 0..=10u64 {
        store.coin_an(0, 1, at(step * 100_000));
    }
    assert_eq!(store.stats().disk_reads, 2); // at T0 and at T0 + 1 s
}

#[test]
fn deleted_page_becomes_unknown_after_ttl() {
    let dir = store_root();
    write_page(dir.path(), -1, 3, 1);
    let store = open(dir.path(), 8);
    let serial = 3 * 1024 + 1;
    assert_eq!(store.coin_an(-1, serial, T0), Some(an_of(-1, serial, 1)));
    fs::remove_file(page_path(dir.path(), -1, 3)).expect("rm");
    assert_eq!(
        store.coin_an(-1, serial, at(500_000)),
        Some(an_of(-1, serial, 1))
    );
    assert_eq!(store.coin_an(-1, serial, at(1_000_000)), None);
    assert_eq!(store.coin_an(-1, serial, at(1_500_000)), None);
}

#[test]
fn page_truncated_on_disk_becomes_unknown_after_ttl() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 8);
    assert!(store.coin_an(0, 1, T0).is_some());
    write_page_len(dir.path(), 0, 0, 2, 17000);
    assert_eq!(store.coin_an(0, 1, at(2_000_000)), None);
}

#[test]
fn missing_page_is_opened_at_most_once_per_ttl() {
    let dir = store_root();
    let store = open(dir.path(), 8);
    // A flood of unknown serials, all on page 5 of denomination 4.
    for i in 0..1000u32 {
        assert_eq!(store.coin_an(4, 5 * 1024 + i, at(i.into())), None);
    }
    assert_eq!(store.stats().disk_reads, 1);
    assert_eq!(store.stats().hits, 999);

    // A page that appears is found once the cached absence has expired.
    write_page(dir.path(), 4, 5, 1);
    assert_eq!(store.coin_an(4, 5 * 1024, at(999_999)), None);
    assert_eq!(
        store.coin_an(4, 5 * 1024, at(1_000_000)),
        Some(an_of(4, 5 * 1024, 1))
    );
    assert_eq!(store.stats().disk_reads, 2);
}

#[test]
fn cache_bound_evicts_least_recently_used() {
    let dir = store_root();
    for page in 0..3 {
        write_page(dir.path(), 0, page, 1);
    }
    let store = open(dir.path(), 2);
    store.coin_an(0, 0, T0); // page 0
    store.coin_an(0, 1024, T0); // page 1
    store.coin_an(0, 1, T0); // page 0 again: now page 1 is least recent
    assert_eq!(store.stats().disk_reads, 2);
    store.coin_an(0, 2048, T0); // page 2 evicts page 1
    assert_eq!(store.cached_pages(), 2);
    assert_eq!(store.stats().evictions, 1);
    store.coin_an(0, 2, T0); // page 0: still cached
    assert_eq!(store.stats().disk_reads, 3);
    // Page 1 was evicted: reading it again is a miss and a re-read, within the TTL.
    assert_eq!(store.coin_an(0, 1025, T0), Some(an_of(0, 1025, 1)));
    let stats = store.stats();
    assert_eq!((stats.disk_reads, stats.misses, stats.evictions), (4, 4, 2));
    assert_eq!(store.cached_pages(), 2);
}

#[test]
fn negative_entries_are_bounded_too() {
    let dir = store_root();
    let store = open(dir.path(), 4);
    for page in 0..10_000u32 {
        assert_eq!(store.coin_an(2, page * 1024, T0), None);
        assert!(store.cached_pages() <= 4);
    }
    let stats = store.stats();
    assert_eq!(stats.disk_reads, 10_000);
    assert_eq!(stats.evictions, 10_000 - 4);
}

#[test]
fn zero_capacity_reads_every_time() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 0);
    for _ in 0..3 {
        assert_eq!(store.coin_an(0, 1, T0), Some(an_of(0, 1, 1)));
    }
    assert_eq!(store.stats().disk_reads, 3);
    assert_eq!(store.cached_pages(), 0);
}

#[test]
fn stats_add_up() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let store = open(dir.path(), 1);
    let lookups = [
        (0, 1, 0),
        (0, 2, 1),
        (0, 1 << 26, 2),
        (1, 3, 3),
        (0, 4, 2_000_000),
    ];
    for (den, serial, t) in lookups {
        store.coin_an(den, serial, at(t));
    }
    let s = store.stats();
    assert_eq!(s.lookups, 5);
    assert_eq!(s.lookups, s.out_of_range + s.hits + s.misses + s.expired);
    assert_eq!(s.disk_reads, s.misses + s.expired);
}

#[test]
fn unreadable_page_is_unknown_without_panic() {
    let dir = store_root();
    // A directory where the page file should be: open or read fails.
    fs::create_dir_all(page_path(dir.path(), 0, 0)).expect("mkdir");
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(0, 1, T0), None);
    assert_eq!(store.stats().pages_absent, 1);
}

#[test]
fn longer_page_file_uses_its_first_17408_bytes() {
    let dir = store_root();
    write_page(dir.path(), 0, 0, 1);
    let path = page_path(dir.path(), 0, 0);
    let mut bytes = fs::read(&path).expect("read");
    bytes.extend_from_slice(&[0xEE; 100]);
    fs::write(&path, bytes).expect("write");
    let store = open(dir.path(), 8);
    assert_eq!(store.coin_an(0, 1023, T0), Some(an_of(0, 1023, 1)));
}

#[test]
fn open_without_data_dir_fails_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = DiskKeyStore::open(dir.path(), 8, TTL).expect_err("no Data");
    let expected = dir.path().join("Data");
    match &err {
        KeyStoreError::MissingDataDir { path } => assert_eq!(path, &expected),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains(&expected.display().to_string()));
}

#[test]
fn open_with_data_as_a_file_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("Data"), b"not a directory").expect("write");
    let err = DiskKeyStore::open(dir.path(), 8, TTL).expect_err("Data is a file");
    assert!(
        matches!(err, KeyStoreError::NotADirectory { .. }),
        "{err:?}"
    );
}

#[test]
fn defaults_are_1024_pages_and_one_second() {
    let dir = store_root();
    let store = DiskKeyStore::open_with_defaults(dir.path()).expect("open");
    assert_eq!(DEFAULT_PAGE_CACHE_PAGES, 1024);
    assert_eq!(DEFAULT_PAGE_TTL, Duration::from_secs(1));
    assert_eq!(store.cache_capacity(), DEFAULT_PAGE_CACHE_PAGES);
    assert_eq!(store.page_ttl(), DEFAULT_PAGE_TTL);
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
fn demo_store_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("server");
    let coins = write_demo_store(&root).expect("write demo store");
    assert_eq!(coins.len(), 51);
    assert!(coins.iter().any(|c| c.denomination == -1));
    assert!(coins.iter().any(|c| c.serial >= 0x100 * 1024));
    let store = open(&root, DEFAULT_PAGE_CACHE_PAGES);
    for coin in &coins {
        assert_eq!(
            store.coin_an(coin.denomination, coin.serial, T0),
            Some(coin.an),
            "{coin}"
        );
    }
    // Denominations and pages the demo did not write stay unknown.
    assert_eq!(store.coin_an(2, 1, T0), None);
    assert_eq!(store.coin_an(0, 1024, T0), None);
    // 3 denominations x 2 pages, each read once.
    assert_eq!(store.stats().disk_reads, 6 + 2);
}

mod prop {
    //! Caching never changes an answer while the files do not change: with a tiny
    //! cache (evictions, expiries, negative entries all exercised), every lookup equals
    //! a `MemoryKeyStore` holding exactly the coins on disk.
    use super::*;
    use proptest::prelude::*;
    use raida_core::keys::MemoryKeyStore;

    const DENS: [i8; 3] = [0, -1, 6];
    const PAGES: [u32; 3] = [0, 1, 0x100];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn disk_store_answers_like_memory_store(
            written in proptest::collection::btree_set((0..3usize, 0..3usize), 0..6),
            lookups in proptest::collection::vec(
                (0..3usize, 0..3usize, 0..1024u32, 0..400_000u64), 1..200),
            capacity in 0..3usize,
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
            let mut now = T0;
            for (d, p, record, step) in lookups {
                now = now.saturating_add(Duration::from_micros(step));
                let serial = PAGES[p] * 1024 + record;
                let in_memory = match memory.lookup(CoinId::new(DENS[d], serial), now) {
                    Lookup::Found(an) => Some(an),
                    _ => None,
                };
                prop_assert_eq!(disk.coin_an(DENS[d], serial, now), in_memory);
                prop_assert!(disk.cached_pages() <= capacity);
            }
            let s = disk.stats();
            prop_assert_eq!(s.lookups, s.out_of_range + s.hits + s.misses + s.expired);
        }
    }
}
