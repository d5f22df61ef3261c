//! Responses held until the write they depend on is durable: a store command's write
//! is in memory when the command returns, and the engine holds its answer (and the
//! answer of any request that read the written record, or is keyed by it) until the
//! store's commit point passes the write; a failed sync answers 252 instead. Store
//! commands run on the engine's thread when their records are in memory, and again
//! on a worker when they are not.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use raida_core::keys::{
    Access, An, Change, CoinId, CommitPoint, CommitSeq, KeyStore, Lookup, MemoryKeyStore, Record,
    StoreError,
};
use raida_core::{Command, CommandRegistry, RequestContext, Runs, Status, StatusByte, Timestamp};
use support::*;

const GROUP: u8 = 9;
const TOUCH: u8 = 1;
const READ: u8 = 2;
const CLAIM: u8 = 3;

/// A store whose writes are durable only when synced: each write gets the next
/// commit, [`KeyStore::sync`] makes every one so far durable (or fails, once asked
/// to), and reads report the commit of a record written and not yet synced. Its
/// records are "in memory" (for [`Access::Resident`]) only while `resident` is set.
#[derive(Debug)]
struct CommitStore {
    inner: MemoryKeyStore,
    next: AtomicU64,
    durable_below: AtomicU64,
    failed: AtomicBool,
    fail_next_sync: AtomicBool,
    resident: AtomicBool,
    pending: Mutex<BTreeMap<(i8, u32), CommitSeq>>,
    syncs: AtomicUsize,
}

impl CommitStore {
    fn new() -> CommitStore {
        CommitStore {
            inner: keys(),
            next: AtomicU64::new(1),
            durable_below: AtomicU64::new(1),
            failed: AtomicBool::new(false),
            fail_next_sync: AtomicBool::new(false),
            resident: AtomicBool::new(true),
            pending: Mutex::new(BTreeMap::new()),
            syncs: AtomicUsize::new(0),
        }
    }

    fn pending_of(&self, coin: CoinId) -> Option<CommitSeq> {
        let durable = self.durable_below.load(Ordering::SeqCst);
        self.pending
            .lock()
            .expect("lock")
            .get(&(coin.denomination, coin.serial))
            .copied()
            .filter(|&s| s >= durable)
    }

    fn check_resident(&self, access: Access) -> Result<(), StoreError> {
        if access == Access::Resident && !self.resident.load(Ordering::SeqCst) {
            return Err(StoreError::NotResident);
        }
        Ok(())
    }
}

impl KeyStore for CommitStore {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        self.inner.lookup(coin, now)
    }

    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.inner.locker_an(prefix, now)
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

    fn record_pending(
        &self,
        coin: CoinId,
        now: Timestamp,
        access: Access,
    ) -> Result<(Option<Record>, Option<CommitSeq>), StoreError> {
        self.check_resident(access)?;
        Ok((self.inner.record(coin, now)?, self.pending_of(coin)))
    }

    fn modify_pending(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
        access: Access,
    ) -> Result<Option<CommitSeq>, StoreError> {
        self.check_resident(access)?;
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Failed);
        }
        let mut wrote = false;
        self.inner.modify(coins, now, &mut |current, new| {
            change(current, new);
            wrote = new.iter().any(Option::is_some);
        })?;
        if !wrote {
            // Nothing written: no commit of its own.
            return Ok(None);
        }
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let mut pending = self.pending.lock().expect("lock");
        for c in coins {
            pending.insert((c.denomination, c.serial), seq);
        }
        Ok(Some(seq))
    }

    fn pending_commit(&self, coin: CoinId) -> Option<CommitSeq> {
        self.pending_of(coin)
    }

    fn commit_point(&self) -> CommitPoint {
        CommitPoint {
            durable_below: self.durable_below.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
        }
    }

    fn sync(&self) -> bool {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        if self.fail_next_sync.swap(false, Ordering::SeqCst) {
            self.failed.store(true, Ordering::SeqCst);
            return false;
        }
        if !self.failed.load(Ordering::SeqCst) {
            self.durable_below
                .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        false
    }
}

/// (9, 1): writes coin (1, 1) again (its AN unchanged, status 7); answers 250 and
/// one byte. 252 when the store refuses.
#[derive(Debug)]
struct Touch;

impl Command for Touch {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let written = ctx
            .store
            .modify(&[CoinId::new(1, 1)], ctx.arrived, &mut |current, new| {
                new[0] = current[0].map(|r| Record {
                    an: r.an,
                    status: 7,
                });
            });
        match written {
            Ok(()) => {
                output.push(1);
                Status::Success.into()
            }
            Err(_) => Status::Internal.into(),
        }
    }

    fn runs(&self) -> Runs {
        Runs::Store
    }
}

/// (9, 2): answers coin (1, 1)'s status byte.
#[derive(Debug)]
struct Read;

impl Command for Read {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        match ctx.store.record(CoinId::new(1, 1), ctx.arrived) {
            Ok(Some(r)) => {
                output.push(r.status);
                Status::Success.into()
            }
            _ => Status::Internal.into(),
        }
    }

    fn runs(&self) -> Runs {
        Runs::Store
    }
}

/// (9, 3): a compare-and-set of coin (1, 1): writes status 9 when its status is 0,
/// else nothing; answers 250 and 1 when it wrote, 0 when it did not.
#[derive(Debug)]
struct Claim;

impl Command for Claim {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let mut claimed = false;
        let written = ctx
            .store
            .modify(&[CoinId::new(1, 1)], ctx.arrived, &mut |current, new| {
                if let Some(r) = current[0].filter(|r| r.status == 0) {
                    new[0] = Some(Record {
                        an: r.an,
                        status: 9,
                    });
                    claimed = true;
                }
            });
        match written {
            Ok(()) => {
                output.push(u8::from(claimed));
                Status::Success.into()
            }
            Err(_) => Status::Internal.into(),
        }
    }

    fn runs(&self) -> Runs {
        Runs::Store
    }
}

fn server() -> (Driver, Arc<CommitStore>) {
    let mut commands = CommandRegistry::with_builtins();
    commands
        .register(GROUP, TOUCH, Arc::new(Touch))
        .expect("free");
    commands
        .register(GROUP, READ, Arc::new(Read))
        .expect("free");
    commands
        .register(GROUP, CLAIM, Arc::new(Claim))
        .expect("free");
    let store = Arc::new(CommitStore::new());
    let mut d = harness_with_store(config(), commands, Arc::clone(&store) as Arc<dyn KeyStore>);
    d.feed_random(&[0x3C; 4096]);
    (d, store)
}

fn request(command: u8) -> Vec<u8> {
    Req {
        group: GROUP,
        command,
        payload: vec![0; 3],
        ..Req::echo(0)
    }
    .bytes()
}

#[test]
fn a_write_s_answer_waits_for_the_sync_that_makes_it_durable() {
    let (mut d, store) = server();
    d.hold_syncs = true;
    d.datagram(peer(1), &request(TOUCH));
    assert!(
        d.datagrams().is_empty(),
        "answered before its write was durable"
    );
    assert_eq!(d.engine.waiting_on_commit(), 1);
    assert_eq!(d.syncs_asked, 1);
    assert_eq!(
        d.engine.counters().store_inline,
        1,
        "ran on the engine's thread"
    );
    d.hold_syncs = false;
    d.drive();
    assert_eq!(store.syncs.load(Ordering::SeqCst), 1);
    assert_eq!(d.datagrams().len(), 1);
    assert_eq!(status_of(&d.datagrams()[0].1), 250);
    assert_eq!(d.engine.waiting_on_commit(), 0);
    assert_eq!(d.engine.counters().commit_waits, 1);
}

#[test]
fn a_read_of_a_record_written_and_not_yet_durable_waits_for_that_write() {
    let (mut d, _store) = server();
    d.hold_syncs = true;
    d.datagram(peer(1), &request(TOUCH));
    d.datagram(peer(2), &request(READ));
    assert!(
        d.datagrams().is_empty(),
        "the read revealed a write not yet durable"
    );
    assert_eq!(d.engine.waiting_on_commit(), 2);
    d.hold_syncs = false;
    d.drive();
    let answers: Vec<(u16, u8, Vec<u8>)> = d
        .datagrams()
        .iter()
        .map(|(p, r)| (p.port(), status_of(r), r[32..33].to_vec()))
        .collect();
    assert_eq!(
        answers,
        vec![(40001, 250, vec![1]), (40002, 250, vec![7])],
        "in commit order, the read showing the write"
    );
    // Once durable, a read answers at once.
    d.hold_syncs = true;
    d.datagram(peer(3), &request(READ));
    assert_eq!(d.datagrams().len(), 3);
}

#[test]
fn a_request_keyed_by_a_coin_written_and_not_yet_durable_waits_for_that_write() {
    let (mut d, _store) = server();
    d.hold_syncs = true;
    d.datagram(peer(1), &request(TOUCH));
    // Echo, encrypted with coin (1, 1)'s AN (type 1): its key's record is pending.
    d.datagram(peer(2), &Req::echo(1).bytes());
    assert!(d.datagrams().is_empty());
    assert_eq!(d.engine.waiting_on_commit(), 2);
    d.hold_syncs = false;
    d.drive();
    assert_eq!(d.datagrams().len(), 2);
    assert!(d.datagrams().iter().all(|(_, r)| status_of(r) == 250));
}

#[test]
fn a_failed_sync_answers_252_to_every_answer_that_waited_for_it() {
    let (mut d, store) = server();
    d.hold_syncs = true;
    d.datagram(peer(1), &request(TOUCH));
    d.datagram(peer(2), &request(READ));
    store.fail_next_sync.store(true, Ordering::SeqCst);
    d.hold_syncs = false;
    d.drive();
    let statuses: Vec<u8> = d.datagrams().iter().map(|(_, r)| status_of(r)).collect();
    assert_eq!(statuses, vec![252, 252]);
    assert_eq!(d.engine.counters().commit_failures, 2);
    // Every later write is refused by the stopped store.
    d.datagram(peer(3), &request(TOUCH));
    assert_eq!(status_of(&d.datagrams()[2].1), 252);
    assert_eq!(d.engine.waiting_on_commit(), 0);
}

#[test]
fn a_store_command_whose_records_are_not_in_memory_runs_again_on_a_worker() {
    let (mut d, store) = server();
    store.resident.store(false, Ordering::SeqCst);
    d.datagram(peer(1), &request(READ));
    assert_eq!(d.engine.counters().store_retries, 1);
    assert_eq!(d.engine.counters().store_inline, 0);
    assert_eq!(d.datagrams().len(), 1);
    assert_eq!(status_of(&d.datagrams()[0].1), 250);
    // A write that must wait for a page is made once, on the worker.
    d.datagram(peer(2), &request(TOUCH));
    assert_eq!(d.engine.counters().store_retries, 2);
    assert_eq!(store.next.load(Ordering::SeqCst), 2, "one write");
    assert_eq!(status_of(&d.datagrams()[1].1), 250);
}

#[test]
fn over_tcp_a_held_answer_is_written_once_its_write_is_durable() {
    let (mut d, _store) = server();
    d.hold_syncs = true;
    let id = d.accept();
    d.send(id, &request(TOUCH));
    assert!(d.out(id).is_empty());
    d.hold_syncs = false;
    d.drive();
    assert_eq!(status_of(d.out(id)), 250);
}

#[test]
fn a_compare_and_set_that_fails_on_a_write_not_yet_durable_waits_for_that_write() {
    let (mut d, _store) = server();
    d.hold_syncs = true;
    d.datagram(peer(1), &request(TOUCH));
    // The claim sees the touch's status 7 (in memory, not durable) and writes nothing:
    // its "not claimed" answer reveals the touch, which a crash could still take back.
    d.datagram(peer(2), &request(CLAIM));
    assert!(
        d.datagrams().is_empty(),
        "a failed compare-and-set revealed a write not yet durable"
    );
    assert_eq!(d.engine.waiting_on_commit(), 2);
    d.hold_syncs = false;
    d.drive();
    let answers: Vec<(u16, u8, Vec<u8>)> = d
        .datagrams()
        .iter()
        .map(|(p, r)| (p.port(), status_of(r), r[32..33].to_vec()))
        .collect();
    assert_eq!(answers, vec![(40001, 250, vec![1]), (40002, 250, vec![0])]);
    // On a durable record a claim that writes nothing answers at once.
    d.hold_syncs = true;
    d.datagram(peer(3), &request(CLAIM));
    assert_eq!(d.datagrams().len(), 3);
    assert_eq!(d.datagrams()[2].1[32], 0);
}

#[test]
fn an_encrypted_store_command_runs_again_on_a_worker_from_its_body_as_it_came() {
    let (mut d, store) = server();
    store.resident.store(false, Ordering::SeqCst);
    // Type 1, keyed by coin (1, 1): opening the body on the engine's thread decrypts
    // it in place; the worker must get the body as it came, or its challenge fails.
    let read = Req {
        group: GROUP,
        command: READ,
        payload: vec![0; 3],
        ..Req::echo(1)
    }
    .bytes();
    d.datagram(peer(1), &read);
    assert_eq!(d.engine.counters().store_retries, 1);
    assert_eq!(d.datagrams().len(), 1);
    assert_eq!(status_of(&d.datagrams()[0].1), 250);
}
