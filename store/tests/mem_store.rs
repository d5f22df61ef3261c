//! `DiskStore` over `MemDisk`: faults a real disk rarely shows on demand (a failed
//! append, sync, truncation or in-place write, read errors) and power loss (every
//! unsynced write lost).

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use raida_core::keys::{Access, CoinId, KeyStore, Lookup, Record, StoreError};
use raida_store::{DiskStore, MemDisk, StoreConfig};
use support::*;

fn disk_with_pages(pages: &[(i8, u32)]) -> Arc<MemDisk> {
    let disk = Arc::new(MemDisk::new());
    for &(den, page) in pages {
        disk.put_page(page_id(den, page as u16), &page_bytes(den, page, 1));
    }
    disk
}

fn open(disk: &Arc<MemDisk>) -> DiskStore<Arc<MemDisk>> {
    DiskStore::with_disk(
        Arc::clone(disk),
        StoreConfig::new(64, Duration::from_secs(1)),
    )
    .expect("open")
}

fn write(store: &DiskStore<Arc<MemDisk>>, coin: CoinId, an: [u8; 16]) -> Result<(), StoreError> {
    store.modify(&[coin], T0, &mut |current, new| {
        if current[0].is_some() {
            new[0] = Some(Record { an, status: 2 });
        }
    })
}

fn record_on_disk(disk: &MemDisk, den: i8, serial: u32) -> Vec<u8> {
    let bytes = disk
        .page_bytes(page_id(den, (serial / 1024) as u16))
        .expect("page");
    let at = (serial % 1024) as usize * 17;
    bytes[at..at + 17].to_vec()
}

/// A failed sync stops the store (fail-stop): the write was applied in memory
/// before it was durable, so from then on nothing is answered from memory (reads
/// and header-time lookups included) and nothing is written, until a restart
/// recovers the store from its log, where the failed write is not.
fn assert_fail_stopped(store: &DiskStore<Arc<MemDisk>>, coin: CoinId) {
    assert!(store.is_failed());
    assert!(matches!(store.lookup(coin, T0), Lookup::Unreadable(_)));
    assert!(matches!(store.record(coin, T0), Err(StoreError::Failed)));
    assert!(matches!(
        write(store, coin, [8; 16]),
        Err(StoreError::Failed)
    ));
    assert!(store.commit_point().failed);
    assert_eq!(store.stats().expect("counts").fail_stopped, 1);
}

#[test]
fn a_failed_sync_fails_the_call_and_stops_the_store_until_a_restart() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 4);
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
    disk.faults(|f| f.log_syncs = 1);
    let err = write(&store, coin, [9; 16]).expect_err("sync fails");
    assert!(matches!(err, StoreError::Write(_)), "{err:?}");
    assert_fail_stopped(&store, coin);
    assert_eq!(record_on_disk(&disk, 0, 4)[..16], an_of(0, 4, 1));
    // The log was cut back: nothing of the failed write is left to replay.
    assert!(disk
        .log_contents()
        .iter()
        .all(|(_, bytes)| bytes.is_empty()));
    let s = store.stats().expect("counts");
    assert_eq!((s.write_errors, s.syncs, s.writes_committed), (1, 0, 0));
    // A restart recovers: the old record, and writes go through again.
    drop(store);
    let store = open(&disk);
    assert!(!store.is_failed());
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
    write(&store, coin, [8; 16]).expect("write");
    assert_eq!(store.lookup(coin, T0), Lookup::Found([8; 16]));
    drop(store);
    disk.crash();
    let store = open(&disk);
    assert_eq!(an(&store, 0, 4, T0), Some([8; 16]));
}

#[test]
fn a_failed_sync_of_a_batch_over_two_pages_changes_none_of_it() {
    let disk = disk_with_pages(&[(0, 0), (3, 7)]);
    let store = open(&disk);
    let coins = [CoinId::new(0, 4), CoinId::new(3, 7 * 1024 + 1)];
    disk.faults(|f| f.log_syncs = 1);
    let err = store
        .modify(&coins, T0, &mut |_, new| {
            new[0] = Some(Record {
                an: [1; 16],
                status: 2,
            });
            new[1] = Some(Record {
                an: [2; 16],
                status: 2,
            });
        })
        .expect_err("sync fails");
    assert!(matches!(err, StoreError::Write(_)), "{err:?}");
    assert_fail_stopped(&store, coins[0]);
    assert_eq!(
        record_on_disk(&disk, 3, 7 * 1024 + 1)[..16],
        an_of(3, 7 * 1024 + 1, 1)
    );
    drop(store);
    let store = open(&disk);
    assert_eq!(store.recovery().entries, 0);
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
    assert_eq!(
        an(&store, 3, 7 * 1024 + 1, T0),
        Some(an_of(3, 7 * 1024 + 1, 1))
    );
}

#[test]
fn a_failed_append_fails_the_call_and_stops_the_store_until_a_restart() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 4);
    disk.faults(|f| f.log_appends = 1);
    assert!(matches!(
        write(&store, coin, [9; 16]),
        Err(StoreError::Write(_))
    ));
    assert_fail_stopped(&store, coin);
    drop(store);
    let store = open(&disk);
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
    write(&store, coin, [7; 16]).expect("write");
    assert_eq!(an(&store, 0, 4, T0), Some([7; 16]));
}

#[test]
fn when_even_the_undo_fails_a_restart_recovers_one_of_the_two_records() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 4);
    disk.faults(|f| {
        f.log_syncs = 1;
        f.log_truncate = true;
    });
    assert!(matches!(
        write(&store, coin, [9; 16]),
        Err(StoreError::Write(_))
    ));
    assert_fail_stopped(&store, coin);
    // A restart recovers: the failed entry's bytes may have reached the log (the sync
    // said no, not that nothing was written), so the coin holds one of the two ANs
    // anyone wrote, never anything else.
    drop(store);
    disk.faults(|f| *f = Default::default());
    let store = open(&disk);
    let now = an(&store, 0, 4, T0);
    assert!(
        now == Some(an_of(0, 4, 1)) || now == Some([9; 16]),
        "{now:?}"
    );
    write(&store, coin, [6; 16]).expect("writes again");
}

#[test]
fn a_failed_in_place_write_keeps_the_acknowledged_record_in_memory_until_a_restart() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 4);
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
    disk.faults(|f| f.page_writes = true);
    // Durable in the log: acknowledged.
    write(&store, coin, [9; 16]).expect("durable");
    // In place at the checkpoint: that write fails.
    store.write_deferred();
    assert_eq!(store.lookup(coin, T0), Lookup::Found([9; 16]));
    assert!(store.is_failed());
    assert!(matches!(
        write(&store, coin, [8; 16]),
        Err(StoreError::Failed)
    ));
    // Pinned: an outside change does not replace the page, nor does eviction.
    disk.put_page(page_id(0, 0), &page_bytes(0, 0, 5));
    assert_eq!(store.refresh(at_ms(1000)).reloaded, 0);
    assert_eq!(store.lookup(coin, at_ms(1000)), Lookup::Found([9; 16]));
    assert_eq!(store.checkpoint(), 0, "the segment stays");
    drop(store);
    disk.faults(|f| f.page_writes = false);
    let store = open(&disk);
    assert_eq!(store.recovery().records, 1);
    assert_eq!(an(&store, 0, 4, T0), Some([9; 16]));
    assert_eq!(record_on_disk(&disk, 0, 4)[16], 2);
}

#[test]
fn a_power_loss_keeps_every_acknowledged_write() {
    let disk = disk_with_pages(&[(0, 0), (0, 1), (-8, 0xffff)]);
    let coins = [
        CoinId::new(0, 1),
        CoinId::new(0, 1024 + 1),
        CoinId::new(-8, 0xffff * 1024 + 1023),
    ];
    let mut expected: Vec<[u8; 16]> = coins
        .iter()
        .map(|c| an_of(c.denomination, c.serial, 1))
        .collect();
    let mut version = 10u8;
    for round in 0..20 {
        let store = open(&disk);
        for (i, coin) in coins.iter().enumerate() {
            assert_eq!(
                an(&store, coin.denomination, coin.serial, T0),
                Some(expected[i]),
                "round {round}"
            );
        }
        for _ in 0..round % 4 {
            version = version.wrapping_add(1);
            let i = usize::from(version) % coins.len();
            write(&store, coins[i], [version; 16]).expect("write");
            expected[i] = [version; 16];
        }
        if round % 5 == 4 {
            store.checkpoint();
        }
        // Power goes: the in-place writes (never synced before a checkpoint) are lost;
        // the log is not.
        drop(store);
        disk.crash();
    }
}

#[test]
fn an_unchanged_page_costs_no_read() {
    let disk = disk_with_pages(&[(1, 0)]);
    let store = open(&disk);
    // Opening reads every page once, for the locker index.
    let at_open = disk.page_reads(page_id(1, 0));
    assert_eq!(an(&store, 1, 3, T0), Some(an_of(1, 3, 1)));
    for second in 0..10 {
        store.refresh(at_ms(second * 1000));
    }
    assert_eq!(disk.page_reads(page_id(1, 0)), at_open + 1);
    disk.put_page(page_id(1, 0), &page_bytes(1, 0, 2));
    assert_eq!(store.refresh(at_ms(10_000)).reloaded, 1);
    assert_eq!(
        store.lookup(CoinId::new(1, 3), at_ms(10_000)),
        Lookup::Found(an_of(1, 3, 2))
    );
    assert_eq!(disk.page_reads(page_id(1, 0)), at_open + 2);
}

#[test]
fn a_read_error_answers_unreadable_for_a_second_then_tries_again() {
    let disk = disk_with_pages(&[(1, 0)]);
    let store = open(&disk);
    let page = page_id(1, 0);
    // Opening reads every page once, for the locker index.
    let at_open = disk.page_reads(page);
    disk.faults(|f| {
        f.unreadable.insert(page);
    });
    assert!(store.load(page, T0).is_err());
    assert_eq!(
        store.lookup(CoinId::new(1, 1), at_ms(500)),
        Lookup::Unreadable(page)
    );
    assert_eq!(disk.page_reads(page), at_open + 1);
    disk.faults(|f| f.unreadable.clear());
    assert_eq!(
        store.lookup(CoinId::new(1, 1), at_ms(1000)),
        Lookup::NotInMemory(page)
    );
    store.load(page, at_ms(1000)).expect("load");
    assert_eq!(
        store.lookup(CoinId::new(1, 1), at_ms(1000)),
        Lookup::Found(an_of(1, 1, 1))
    );
}

#[test]
fn a_page_sync_failure_keeps_the_segment_for_the_next_checkpoint() {
    let disk = disk_with_pages(&[(0, 0)]);
    let mut config = StoreConfig::new(8, Duration::from_secs(1));
    config.segment_bytes = 1;
    let store = DiskStore::with_disk(Arc::clone(&disk), config).expect("open");
    write(&store, CoinId::new(0, 1), [1; 16]).expect("write");
    write(&store, CoinId::new(0, 2), [2; 16]).expect("write");
    assert_eq!(store.log_segments(), 2);
    disk.faults(|f| f.page_syncs = true);
    assert_eq!(store.checkpoint(), 0);
    assert_eq!(store.log_segments(), 2);
    // The metrics count what was done: no page synced, no segment removed.
    let stats = store.stats().expect("stats");
    assert_eq!((stats.page_syncs, stats.checkpoints), (0, 0));
    disk.faults(|f| f.page_syncs = false);
    assert_eq!(store.checkpoint(), 1);
    assert_eq!(store.log_segments(), 1);
    // The first segment wrote one page: one page file synced, one segment removed.
    let stats = store.stats().expect("stats");
    assert_eq!((stats.page_syncs, stats.checkpoints), (1, 1));
    // Checkpointed: the first write survives a power loss without its segment.
    drop(store);
    disk.crash();
    let store = DiskStore::with_disk(Arc::clone(&disk), StoreConfig::default()).expect("open");
    assert_eq!(an(&store, 0, 1, T0), Some([1; 16]));
    assert_eq!(an(&store, 0, 2, T0), Some([2; 16]));
}

#[test]
fn modify_of_a_page_that_went_away_from_outside_writes_nothing_in_place() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    assert_eq!(an(&store, 0, 1, T0), Some(an_of(0, 1, 1)));
    disk.remove_page(page_id(0, 0));
    // The store still has the page in memory (until the next refresh); the write is
    // logged, but no page file is created.
    write(&store, CoinId::new(0, 1), [3; 16]).expect("write");
    store.write_deferred();
    assert!(disk.page_bytes(page_id(0, 0)).is_none());
    assert_eq!(
        store.lookup(CoinId::new(0, 1), T0),
        Lookup::NotInMemory(page_id(0, 0))
    );
    assert_eq!(an(&store, 0, 1, T0), None);
    // The write stays in the log (its one segment with entries; the others are spares
    // the in-place pass prepared, zeros only).
    let with_entries: Vec<u64> = disk
        .log_contents()
        .into_iter()
        .filter(|(_, bytes)| bytes.iter().any(|&b| b != 0))
        .map(|(segment, _)| segment)
        .collect();
    assert_eq!(with_entries.len(), 1);
}

#[test]
fn writers_that_arrive_during_a_sync_share_the_next_one() {
    let pages: Vec<(i8, u32)> = (0..16).map(|p| (0, p)).collect();
    let disk = disk_with_pages(&pages);
    disk.faults(|f| f.log_sync_delay = Duration::from_millis(5));
    let store = Arc::new(open(&disk));
    let threads: Vec<_> = (0..16u32)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..10u32 {
                    write(&store, CoinId::new(0, t * 1024 + i), [i as u8 + 1; 16]).expect("write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    let s = store.stats().expect("counts");
    assert_eq!(s.records_written, 160);
    // Alone, every write would take its own 5 ms sync; sixteen at a time share them.
    println!("{} syncs for 160 writes", s.syncs);
    assert!(s.syncs <= 60, "{} syncs for 160 writes", s.syncs);
    assert_eq!(disk.log_syncs(), s.syncs);
    drop(store);
    disk.crash();
    let store = open(&disk);
    for t in 0..16u32 {
        for i in 0..10u32 {
            assert_eq!(an(&store, 0, t * 1024 + i, T0), Some([i as u8 + 1; 16]));
        }
    }
}

/// A locker key: bytes 12..15 are FF (PROTOCOL.md 8c).
fn locker_key(fill: u8) -> [u8; 16] {
    let mut k = [fill; 16];
    k[12..].copy_from_slice(&[0xFF; 4]);
    k
}

#[test]
fn a_page_unreadable_at_open_keeps_locker_lookups_refused_until_it_is_read() {
    // Page 0 of denomination 1 holds coin 1:7 in a locker; its reads fail at open.
    let disk = disk_with_pages(&[(1, 0), (1, 1)]);
    let mut bytes = page_bytes(1, 0, 1);
    bytes[7 * 17..7 * 17 + 16].copy_from_slice(&locker_key(9));
    disk.put_page(page_id(1, 0), &bytes);
    disk.faults(|f| {
        f.unreadable.insert(page_id(1, 0));
    });
    let store = open(&disk);
    // The index lacks the page's lockers: the store says so rather than answer.
    assert!(store.locker_index_complete(T0).is_err());
    assert!(store.locker_coins(&locker_key(9), T0).is_empty());
    // Once the page reads again, the index is whole and the locker is there.
    disk.faults(|f| *f = Default::default());
    store.locker_index_complete(T0).expect("the page reads now");
    assert_eq!(
        store.locker_coins(&locker_key(9), T0),
        vec![CoinId::new(1, 7)]
    );
    assert!(store.locker_index_complete(T0).is_ok());
}

#[test]
fn a_pending_write_is_seen_at_once_marked_with_its_commit_and_durable_after_the_sync() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 4);
    let other = CoinId::new(0, 5);
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
    let seq = store
        .modify_pending(
            &[coin],
            T0,
            &mut |_, new| new[0] = Some(record([9; 16], 2)),
            Access::Resident,
        )
        .expect("in memory")
        .expect("a write");
    // In memory at once, and every read of it says which commit it waits for.
    assert!(!store.commit_point().covers(seq));
    assert_eq!(store.lookup(coin, T0), Lookup::Found([9; 16]));
    assert_eq!(store.pending_commit(coin), Some(seq));
    assert_eq!(
        store
            .record_pending(coin, T0, Access::Resident)
            .expect("read"),
        (Some(record([9; 16], 2)), Some(seq))
    );
    // Another record of the same page does not wait.
    assert_eq!(
        store
            .record_pending(other, T0, Access::Resident)
            .expect("read")
            .1,
        None
    );
    assert_eq!(store.newest_pending(), Some(seq));
    // Nothing on disk yet (the segment holds the zeros it was prepared with), and a
    // power loss now takes it back (it was never answered).
    assert!(disk
        .log_contents()
        .iter()
        .all(|(_, b)| b.iter().all(|&x| x == 0)));
    store.sync();
    assert!(store.commit_point().covers(seq));
    assert_eq!(store.pending_commit(coin), None);
    assert_eq!(store.newest_pending(), None);
    // In place at the next checkpoint.
    assert_eq!(record_on_disk(&disk, 0, 4)[..16], an_of(0, 4, 1));
    store.write_deferred();
    assert_eq!(record_on_disk(&disk, 0, 4)[..16], [9; 16]);
    let s = store.stats().expect("counts");
    assert_eq!((s.syncs, s.writes_committed), (1, 1));
    drop(store);
    disk.crash();
    let store = open(&disk);
    assert_eq!(an(&store, 0, 4, T0), Some([9; 16]));
}

#[test]
fn a_write_not_yet_synced_is_lost_by_a_power_loss_and_was_never_durable() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 4);
    let seq = store
        .modify_pending(
            &[coin],
            T0,
            &mut |_, new| new[0] = Some(record([9; 16], 2)),
            Access::Blocking,
        )
        .expect("written")
        .expect("a write");
    assert!(!store.commit_point().covers(seq));
    drop(store);
    disk.crash();
    let store = open(&disk);
    assert_eq!(an(&store, 0, 4, T0), Some(an_of(0, 4, 1)));
}

#[test]
fn one_sync_covers_every_write_appended_before_it() {
    let disk = disk_with_pages(&[(0, 0), (0, 1)]);
    let store = open(&disk);
    let mut last = 0;
    for i in 0..50u32 {
        let coin = CoinId::new(0, (i % 2) * 1024 + i);
        last = store
            .modify_pending(
                &[coin],
                T0,
                &mut |_, new| new[0] = Some(record([i as u8; 16], 2)),
                Access::Blocking,
            )
            .expect("written")
            .expect("a write");
    }
    store.sync();
    assert!(store.commit_point().covers(last));
    let s = store.stats().expect("counts");
    assert_eq!((s.syncs, s.writes_committed), (1, 50));
}

#[test]
fn from_memory_only_a_page_not_in_memory_is_not_resident_and_nothing_runs() {
    let disk = disk_with_pages(&[(0, 0), (0, 1)]);
    let store = open(&disk);
    let coin = CoinId::new(0, 1024 + 3);
    // Page 1 was never loaded: nothing is read or changed from memory only.
    assert!(matches!(
        store.record_pending(coin, T0, Access::Resident),
        Err(StoreError::NotResident)
    ));
    let mut ran = false;
    assert!(matches!(
        store.modify_pending(&[coin], T0, &mut |_, _| ran = true, Access::Resident),
        Err(StoreError::NotResident)
    ));
    assert!(!ran, "the change never ran");
    // On a worker it loads the page; from memory it answers afterwards.
    assert!(store.record_pending(coin, T0, Access::Blocking).is_ok());
    assert!(store.record_pending(coin, T0, Access::Resident).is_ok());
    // A known-absent page answers unknown from memory.
    let absent = CoinId::new(2, 9);
    let _ = an(&store, 2, 9, T0);
    assert_eq!(
        store
            .record_pending(absent, T0, Access::Resident)
            .expect("read"),
        (None, None)
    );
}

#[test]
fn a_sync_that_finds_its_writes_in_a_running_sync_waits_for_that_one_and_returns() {
    let disk = disk_with_pages(&[(0, 0)]);
    disk.faults(|f| f.log_sync_delay = Duration::from_millis(300));
    let store = Arc::new(open(&disk));
    let seq = store
        .modify_pending(
            &[CoinId::new(0, 4)],
            T0,
            &mut |_, new| new[0] = Some(record([9; 16], 2)),
            Access::Blocking,
        )
        .expect("written")
        .expect("a write");
    // One sync leads (and sleeps in the disk's sync); a second finds the write taken
    // by it, with nothing appended after: it must be woken when the first ends.
    let leader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.sync())
    };
    std::thread::sleep(Duration::from_millis(50));
    let (done, finished) = std::sync::mpsc::channel();
    {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            store.sync();
            let _ = done.send(store.commit_point().covers(seq));
        });
    }
    let covered = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the second sync returned");
    assert!(covered);
    leader.join().expect("leader");
}

#[test]
fn a_sync_says_whether_writes_were_appended_while_it_ran() {
    let disk = disk_with_pages(&[(0, 0)]);
    let store = Arc::new(open(&disk));
    let _ = an(&*store, 0, 4, T0);
    let pend = |store: &DiskStore<Arc<MemDisk>>, an: u8| {
        store
            .modify_pending(
                &[CoinId::new(0, 4)],
                T0,
                &mut |_, new| new[0] = Some(record([an; 16], 2)),
                Access::Blocking,
            )
            .expect("written")
    };
    pend(&store, 1);
    assert!(!store.sync(), "nothing appended meanwhile");
    pend(&store, 2);
    disk.faults(|f| f.log_sync_delay = Duration::from_millis(300));
    let syncing = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || store.sync())
    };
    std::thread::sleep(Duration::from_millis(50));
    // Appended while the sync sleeps in the disk's sync: that sync does not cover it.
    let late = pend(&store, 3).expect("a write");
    assert!(
        syncing.join().expect("sync"),
        "a write waits for the next sync"
    );
    assert!(!store.commit_point().covers(late));
    disk.faults(|f| f.log_sync_delay = Duration::ZERO);
    assert!(!store.sync());
    assert!(store.commit_point().covers(late));
}

#[test]
fn deferred_writes_wait_for_the_checkpoint_while_the_cache_has_room() {
    // A cache of 4 pages; 3 written (more than half of it held): with room left the
    // background step leaves their writes for the checkpoint, so that later writes of
    // the same pages share one write in place.
    let disk = disk_with_pages(&[(0, 0), (0, 1), (0, 2), (0, 3)]);
    let store = DiskStore::with_disk(
        Arc::clone(&disk),
        StoreConfig::new(4, Duration::from_secs(1)),
    )
    .expect("open");
    for page in 0..3u32 {
        write(&store, CoinId::new(0, page * 1024 + 5), [7; 16]).expect("write");
    }
    store.sync();
    store.maintain(T0);
    for page in 0..3u32 {
        assert_eq!(
            record_on_disk(&disk, 0, page * 1024 + 5)[..16],
            an_of(0, page * 1024 + 5, 1),
            "page {page} not yet written in place"
        );
    }
    // The cache fills (a fourth page loaded): held pages now block evictions, and the
    // next step writes them in place.
    assert_eq!(an(&store, 0, 3 * 1024, T0), Some(an_of(0, 3 * 1024, 1)));
    store.maintain(T0);
    for page in 0..3u32 {
        assert_eq!(
            record_on_disk(&disk, 0, page * 1024 + 5)[..16],
            [7; 16],
            "page {page} written in place"
        );
    }
}

/// The cache hint of a batch of datagrams (`KeyStore::prefetch`) changes nothing a
/// lookup sees: no page is loaded, no lookup counted, no record changed, and coins out
/// of range or on pages not in memory are skipped.
#[test]
fn a_prefetch_hint_loads_nothing_and_changes_nothing() {
    let disk = disk_with_pages(&[(1, 0), (1, 1)]);
    let store = open(&disk);
    let resident = CoinId::new(1, 5);
    let on_disk = CoinId::new(1, 1024 + 5);
    assert!(store.record(resident, T0).expect("readable").is_some());
    let before = store.stats().expect("stats");
    store.prefetch(&[
        resident,
        on_disk,
        CoinId::new(1, 1 << 26),
        CoinId::new(-128, 3),
        resident,
    ]);
    // More than one chunk of hints (they go out 64 at a time), all on the page in
    // memory.
    let many: Vec<CoinId> = (0..200).map(|s| CoinId::new(1, s)).collect();
    store.prefetch(&many);
    let after = store.stats().expect("stats");
    assert_eq!(
        (after.lookups, after.loads, after.cached_pages),
        (before.lookups, before.loads, before.cached_pages)
    );
    assert!(matches!(store.lookup(on_disk, T0), Lookup::NotInMemory(_)));
    assert_eq!(
        store.record(resident, T0).expect("readable").map(|r| r.an),
        Some(
            record_on_disk(&disk, 1, 5)[..16]
                .try_into()
                .expect("16 bytes")
        )
    );
}
