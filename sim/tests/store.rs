//! raida-store over the simulated disk, scripted: what a crash may and may not do to
//! an acknowledged write, a torn log tail, a read error, a writer that arrives during
//! a sync, a recovery interrupted by a crash; then a band of store-world seeds and the
//! replay of one. `SIM_SEED=S` moves the band to S.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raida_core::keys::{CoinId, KeyStore, Lookup, PageId, Record, StoreError, PAGE_BYTES};
use raida_core::Timestamp;
use raida_sim::disk::{mark_helper_thread, DiskFaults, SimDisk};
use raida_sim::rng::Rng;
use raida_sim::store_world::{run_store_seed, store_replay_command, StoreKnobs, StoreWorld};
use raida_store::{DiskStore, StoreConfig};

type Store = DiskStore<Arc<SimDisk>>;

const NOW: Timestamp = Timestamp::from_micros(1_000_000);
const P1: PageId = PageId {
    denomination: 1,
    number: 0,
};
const P2: PageId = PageId {
    denomination: -3,
    number: 7,
};
/// Coin `A` is on page P1, `B` on page P2, `C` on an absent page.
const A: CoinId = CoinId::new(1, 5);
const B: CoinId = CoinId::new(-3, 7 * 1024 + 30);
const C: CoinId = CoinId::new(2, 9);

/// Every record of a page: AN = the coin's serial, repeated; status 0xA5.
fn page_bytes(page: PageId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PAGE_BYTES);
    for index in 0..1024u32 {
        let serial = u32::from(page.number) * 1024 + index;
        for _ in 0..4 {
            bytes.extend_from_slice(&serial.to_be_bytes());
        }
        bytes.push(0xA5);
    }
    bytes
}

fn initial(coin: CoinId) -> Record {
    let mut an = [0u8; 16];
    for chunk in an.chunks_mut(4) {
        chunk.copy_from_slice(&coin.serial.to_be_bytes());
    }
    Record { an, status: 0xA5 }
}

fn new_record(fill: u8) -> Record {
    Record {
        an: [fill; 16],
        status: fill,
    }
}

/// A disk with pages P1 and P2 and the given faults.
fn disk_with(faults: DiskFaults) -> Arc<SimDisk> {
    let disk = Arc::new(SimDisk::new(Rng::new(7), faults));
    disk.put_page(P1, &page_bytes(P1));
    disk.put_page(P2, &page_bytes(P2));
    disk
}

fn open(disk: &Arc<SimDisk>) -> Result<Store, raida_store::OpenError> {
    DiskStore::with_disk(
        Arc::clone(disk),
        StoreConfig::new(16, Duration::from_secs(1)),
    )
}

/// A compare-and-set of `coins`: each from its `from` record to `to`.
fn cas(store: &Store, coins: &[CoinId], from: &[Record], to: &[Record]) -> Result<(), StoreError> {
    store.modify(coins, NOW, &mut |current, new| {
        let expected: Vec<Option<Record>> = from.iter().map(|r| Some(*r)).collect();
        if current == expected.as_slice() {
            for (slot, r) in new.iter_mut().zip(to) {
                *slot = Some(*r);
            }
        }
    })
}

/// The record of `coin` as the disk holds it now.
fn on_disk(disk: &SimDisk, coin: CoinId) -> Record {
    let page = PageId::of(coin).expect("a store coin").0;
    let bytes = disk.page_bytes(page).expect("a page file");
    let at = (coin.serial % 1024) as usize * 17;
    Record {
        an: bytes[at..at + 16].try_into().expect("16 bytes"),
        status: bytes[at + 16],
    }
}

fn record(store: &Store, coin: CoinId) -> Option<Record> {
    store.record(coin, NOW).expect("no read error")
}

#[test]
fn an_acknowledged_write_survives_a_crash_that_loses_its_in_place_write() {
    // Every unsynced sector is lost at the crash: only the log can keep the write.
    let mut faults = DiskFaults::none();
    faults.sector_keep_pm = 0;
    let disk = disk_with(faults);
    let store = open(&disk).expect("open");
    cas(&store, &[A], &[initial(A)], &[new_record(9)]).expect("acknowledged");
    assert_eq!(store.lookup(A, NOW), Lookup::Found([9; 16]));
    drop(store);
    disk.crash();
    assert_eq!(on_disk(&disk, A), initial(A), "the in-place write was lost");
    let store = open(&disk).expect("recovery");
    assert_eq!(store.recovery().entries, 1);
    assert_eq!(record(&store, A), Some(new_record(9)));
    assert_eq!(disk.durable_page_bytes(P1), disk.page_bytes(P1));
    assert_eq!(disk.page_bytes(P1).map(|b| b.len()), Some(PAGE_BYTES));
}

#[test]
fn a_torn_unsynced_log_tail_is_discarded_on_recovery() {
    let disk = disk_with(DiskFaults::none());
    let store = open(&disk).expect("open");
    cas(&store, &[A], &[initial(A)], &[new_record(1)]).expect("acknowledged");
    // The next write's sync fails without reaching the disk, and so does the undo's
    // truncation: its entry stays in the log, unsynced, and the call fails.
    disk.faults(|f| {
        f.sync_error_pm = 1000;
        f.failed_sync_durable_pm = 0;
        f.truncate_error_pm = 1000;
    });
    let failed = cas(&store, &[B], &[initial(B)], &[new_record(2)]);
    assert!(matches!(failed, Err(StoreError::Write(_))), "{failed:?}");
    assert!(store.is_failed());
    drop(store);
    disk.faults(|f| *f = DiskFaults::none());
    // Power loss: the unsynced entry keeps only its first 17 bytes (magic, length,
    // sequence number and the count's first byte, which is not zero: a tail of zeros
    // in a segment prepared ahead is its end, and is not counted as dropped).
    disk.crash_keeping(&[], 17);
    let store = open(&disk).expect("recovery");
    assert_eq!(store.recovery().dropped_bytes, 17);
    assert_eq!(store.recovery().entries, 1);
    assert_eq!(record(&store, A), Some(new_record(1)));
    assert_eq!(record(&store, B), Some(initial(B)));
}

#[test]
fn a_read_error_is_never_unknown_coin() {
    let mut faults = DiskFaults::none();
    faults.read_error_pm = 1000;
    let disk = disk_with(faults);
    let store = open(&disk).expect("open");
    for coin in [A, B, C] {
        let page = PageId::of(coin).expect("a store coin").0;
        assert_eq!(store.lookup(coin, NOW), Lookup::NotInMemory(page));
        let loaded = store.load(page, NOW);
        assert!(
            matches!(loaded, Err(StoreError::Unreadable { .. })),
            "{loaded:?}"
        );
        // Even the absent page: a read that fails cannot tell absent from present.
        assert_eq!(store.lookup(coin, NOW), Lookup::Unreadable(page));
        let read = store.record(coin, NOW);
        assert!(
            matches!(read, Err(StoreError::Unreadable { .. })),
            "{read:?}"
        );
        let mut ran = false;
        let write = store.modify(&[coin], NOW, &mut |_, _| ran = true);
        assert!(
            matches!(write, Err(StoreError::Unreadable { .. })),
            "{write:?}"
        );
        assert!(!ran, "the change never saw a record of an unreadable page");
    }
    // Once the disk reads again (and the 252 window passed), the coins are back.
    disk.faults(|f| f.read_error_pm = 0);
    let later = Timestamp::from_micros(NOW.as_micros() + 2_000_000);
    assert_eq!(store.load(P1, later).map_err(|e| e.to_string()), Ok(()));
    assert_eq!(store.lookup(A, later), Lookup::Found(initial(A).an));
}

/// Waits (bounded) until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_writer_arriving_during_a_sync_waits_for_the_next_one_and_both_survive_a_crash() {
    let disk = disk_with(DiskFaults::none());
    let store = Arc::new(open(&disk).expect("open"));
    let waited = Arc::new(AtomicBool::new(false));
    let helper = Arc::new(Mutex::new(None));
    let hook = {
        let (store, waited, helper) =
            (Arc::clone(&store), Arc::clone(&waited), Arc::clone(&helper));
        Box::new(move || {
            let writer = {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    mark_helper_thread();
                    cas(&store, &[B], &[initial(B)], &[new_record(2)])
                })
            };
            // Inside the leader's sync: the second writer must not return before it.
            wait_until("the second writer waits or returns", || {
                store.writers_waiting() > 0 || writer.is_finished()
            });
            waited.store(!writer.is_finished(), Ordering::SeqCst);
            *helper.lock().expect("helper slot") = Some(writer);
            true
        })
    };
    disk.arm_sync_hook(hook);
    cas(&store, &[A], &[initial(A)], &[new_record(1)]).expect("the leader");
    assert!(
        disk.take_sync_hook().is_none(),
        "the leader's sync ran the hook"
    );
    disk.release_helper();
    let writer = helper.lock().expect("helper slot").take().expect("started");
    writer.join().expect("no panic").expect("the follower");
    assert!(
        waited.load(Ordering::SeqCst),
        "a writer that arrived during a sync returned before any sync covered it"
    );
    assert_eq!(store.lookup(B, NOW), Lookup::Found([2; 16]));
    drop(store);
    disk.crash();
    let store = open(&disk).expect("recovery");
    assert_eq!(record(&store, A), Some(new_record(1)));
    assert_eq!(record(&store, B), Some(new_record(2)));
}

/// Regression (found by the store swarm, seeds 487, 1000, 1425 and 1756): recovery
/// replayed log bytes that were never synced into the page files, then failed; a
/// power loss kept part of those in-place records but cut the log's tail, so the next
/// recovery dropped the entry, and the batch was half applied.
#[test]
fn a_recovery_interrupted_by_a_crash_never_leaves_a_write_half_applied() {
    let disk = disk_with(DiskFaults::none());
    let store = open(&disk).expect("open");
    disk.faults(|f| {
        f.sync_error_pm = 1000;
        f.failed_sync_durable_pm = 0;
        f.truncate_error_pm = 1000;
    });
    let failed = cas(
        &store,
        &[A, B],
        &[initial(A), initial(B)],
        &[new_record(1), new_record(2)],
    );
    assert!(matches!(failed, Err(StoreError::Write(_))), "{failed:?}");
    drop(store);
    // The restart's recovery writes the entry in place and fails on a page sync.
    disk.faults(|f| {
        *f = DiskFaults::none();
        f.page_sync_error_pm = 1000;
    });
    assert!(open(&disk).is_err(), "the page sync fails");
    // Power loss: page P1's unsynced write survives, P2's does not, and the log keeps
    // 10 bytes of whatever it had not synced.
    disk.crash_keeping(&[P1], 10);
    disk.faults(|f| *f = DiskFaults::none());
    let store = open(&disk).expect("recovery");
    let (a, b) = (record(&store, A), record(&store, B));
    let old = (Some(initial(A)), Some(initial(B)));
    let new = (Some(new_record(1)), Some(new_record(2)));
    assert!(
        (a, b) == old || (a, b) == new,
        "the batch was half applied: {a:?} {b:?}"
    );
}

/// Regression (found by the store swarm, seed 1324): an in-place write failed after
/// its entry was durable, while its page was out of memory (a small cache) and could
/// not be read back to be kept there; the store then served the page's old bytes from
/// disk, so an acknowledged write was invisible (and the old AN still worked) until a
/// restart.
#[test]
fn an_acknowledged_write_whose_in_place_write_failed_is_never_served_stale() {
    let disk = disk_with(DiskFaults::none());
    let store = Arc::new(
        DiskStore::with_disk(
            Arc::clone(&disk),
            StoreConfig::new(1, Duration::from_secs(1)),
        )
        .expect("open"),
    );
    // Inside the leader's sync: another page's load evicts the leader's page (a cache
    // of one page), then the disk's page writes and reads start failing.
    let hook = {
        let (store, disk) = (Arc::clone(&store), Arc::clone(&disk));
        Box::new(move || {
            store.load(P2, NOW).expect("load P2");
            disk.faults(|f| {
                f.page_write_error_pm = 1000;
                f.read_error_pm = 1000;
            });
            false
        })
    };
    disk.arm_sync_hook(hook);
    cas(&store, &[A], &[initial(A)], &[new_record(1)]).expect("durable in the log");
    assert!(disk.take_sync_hook().is_none(), "the hook ran");
    // In place at the checkpoint (or when the deferred writes go): it fails.
    store.write_deferred();
    assert!(store.is_failed(), "the in-place write failed");
    assert_eq!(
        on_disk(&disk, A),
        initial(A),
        "nothing of it reached the page"
    );
    // The disk reads again, long after any 252 window: the page must still not be
    // served from its stale bytes.
    disk.faults(|f| f.read_error_pm = 0);
    for later in [NOW.as_micros() + 2_000_000, NOW.as_micros() + 60_000_000] {
        let later = Timestamp::from_micros(later);
        let _ = store.load(P1, later);
        let seen = store.lookup(A, later);
        assert!(
            seen == Lookup::Found([1; 16]) || seen == Lookup::Unreadable(P1),
            "an acknowledged write is invisible: {seen:?}"
        );
        let read = store.record(A, later).map_err(|e| e.to_string());
        assert!(
            read == Ok(Some(new_record(1))) || read.is_err(),
            "an acknowledged write is invisible: {read:?}"
        );
    }
    // A restart replays the log.
    drop(store);
    disk.faults(|f| *f = DiskFaults::none());
    let store = open(&disk).expect("recovery");
    assert_eq!(record(&store, A), Some(new_record(1)));
}

#[test]
fn a_band_of_store_seeds_keeps_every_invariant() {
    let start = raida_sim::seed_from_env();
    // A debug build runs about one store seed a second; the release swarm of
    // `scripts/sim-test` runs a thousand.
    for seed in start..start + 40 {
        if let Err(failure) = run_store_seed(seed) {
            let (knobs, v) = *failure;
            panic!(
                "seed {seed}: {knobs:?}\nVIOLATION at t={}: {}\nreplay: {}",
                v.at,
                v.what,
                store_replay_command(seed)
            );
        }
    }
}

#[test]
fn one_store_seed_replays_to_the_same_trace() {
    let seed = raida_sim::seed_from_env() + 11;
    let run = |seed| {
        let mut w = StoreWorld::new(StoreKnobs::from_seed(seed), true);
        let result = w.run_all();
        (result, w.trace_hash(), w.stats.clone(), w.disk().counts())
    };
    let a = run(seed);
    assert_eq!(a, run(seed));
    assert_ne!(a.1, run(seed + 1).1, "another seed is another world");
}

#[test]
fn a_spare_prepared_while_a_leader_writes_into_the_last_one_is_the_segment_after_it() {
    use raida_store::Disk;
    let disk = disk_with(DiskFaults::none());
    let mut config = StoreConfig::new(16, Duration::from_secs(1));
    config.segment_bytes = 100;
    let store = Arc::new(DiskStore::with_disk(Arc::clone(&disk), config).expect("open"));
    // Written: the background step prepares the spare (segment 2).
    cas(&store, &[A], &[initial(A)], &[new_record(1)]).expect("first write");
    store.maintain(NOW);
    assert_eq!(disk.log_segments().expect("segments"), vec![1, 2]);
    // The next write goes to the spare; inside its sync, the background step runs
    // and must prepare the segment after the spare, not the spare again.
    let hook = {
        let store = Arc::clone(&store);
        Box::new(move || {
            store.maintain(NOW);
            false
        })
    };
    disk.arm_sync_hook(hook);
    cas(&store, &[B], &[initial(B)], &[new_record(2)]).expect("second write");
    assert!(disk.take_sync_hook().is_none(), "the hook ran");
    let segments = disk.log_segments().expect("segments");
    assert_eq!(segments.last(), Some(&3), "{segments:?}");
    drop(store);
    disk.crash();
    let store = open(&disk).expect("recovery");
    assert_eq!(store.recovery().dropped_bytes, 0);
    assert_eq!(record(&store, A), Some(new_record(1)));
    assert_eq!(record(&store, B), Some(new_record(2)));
}
