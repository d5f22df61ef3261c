//! The authentication commands through the real codec (`answer_request`: header checks,
//! body decryption, the command, response encryption) over the in-memory store, every
//! row of PROTOCOL.md section 8a: payload layouts, checks in their order (36, 16, 39,
//! 20, 40), the bitmap, MFS, every encryption type, and the store's atomicity.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};

use raida_client::{BuiltRequest, Coin, Keys, Request};
use raida_commands::FixedClock;
use raida_core::codec::{answer_request, Arrival, HeaderRules};
use raida_core::keys::{An, Change, CoinId, KeyStore, Lookup, MemoryKeyStore, Record, StoreError};
use raida_core::{CommandRegistry, Status, Timestamp, Transport};

const RAIDA_ID: u8 = 4;
const MFS: u8 = 46;

fn an(n: u8) -> An {
    [n; 16]
}

/// A store with coins (1, s) for s in 1..=20 holding AN [s; 16], and coin (6, 3).
fn store() -> Arc<MemoryKeyStore> {
    let store = MemoryKeyStore::new();
    for s in 1..=20u32 {
        store.insert_coin(1, s, an(s as u8));
    }
    store.insert_coin(6, 3, an(0x63));
    Arc::new(store)
}

fn registry() -> CommandRegistry {
    let mut r = CommandRegistry::with_builtins();
    for (g, c, h) in raida_commands::all(Arc::new(FixedClock(MFS)), Default::default()) {
        r.register(g, c, h).expect("free");
    }
    r
}

fn coin_ref(den: i8, serial: u32) -> Vec<u8> {
    let mut v = vec![den as u8];
    v.extend_from_slice(&serial.to_be_bytes());
    v
}

/// What a request got: status and (decrypted) body.
fn send(store: &dyn KeyStore, req: &Request) -> (Status, Vec<u8>) {
    let built: BuiltRequest = req.build().expect("builds");
    let arrival = Arrival {
        peer: SocketAddr::from(([127, 0, 0, 1], 5)),
        transport: Transport::Udp,
        at: Timestamp::from_micros(1),
    };
    let rules = HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: 0,
        max_body_size: 65_536,
    };
    let bytes = answer_request(
        built.bytes(),
        &arrival,
        &rules,
        &registry(),
        store,
        0,
        &[7; 22],
    )
    .expect("a response");
    let response = built
        .parse_response(&bytes)
        .expect("a response that verifies");
    let status = Status::from_code(response.header.status.0).expect("a known status");
    (status, response.body)
}

fn request(command: u8, payload: Vec<u8>) -> Request {
    let mut r = Request::new(RAIDA_ID, 1, command, Keys::None);
    r.payload = payload;
    r.challenge = [3; 12];
    r
}

fn detect(coins: &[(i8, u32, An)]) -> Request {
    let mut p = Vec::new();
    for (d, s, a) in coins {
        p.extend_from_slice(&coin_ref(*d, *s));
        p.extend_from_slice(a);
    }
    request(10, p)
}

fn pown(coins: &[(i8, u32, An, An)]) -> Request {
    let mut p = Vec::new();
    for (d, s, a, pan) in coins {
        p.extend_from_slice(&coin_ref(*d, *s));
        p.extend_from_slice(a);
        p.extend_from_slice(pan);
    }
    request(20, p)
}

fn sum_request(command: u8, coins: &[(i8, u32)], sum: An, delta: Option<An>) -> Request {
    let mut p = Vec::new();
    for (d, s) in coins {
        p.extend_from_slice(&coin_ref(*d, *s));
    }
    p.extend_from_slice(&sum);
    if let Some(delta) = delta {
        p.extend_from_slice(&delta);
    }
    request(command, p)
}

fn xor(ans: &[An]) -> An {
    let mut x = [0u8; 16];
    for a in ans {
        for (o, b) in x.iter_mut().zip(a) {
            *o ^= b;
        }
    }
    x
}

fn record(store: &dyn KeyStore, den: i8, serial: u32) -> Option<Record> {
    store
        .record(CoinId::new(den, serial), Timestamp::ZERO)
        .expect("readable")
}

#[test]
fn detect_answers_all_pass_all_fail_or_mixed_with_a_bitmap() {
    let s = store();
    assert_eq!(
        send(&*s, &detect(&[(1, 1, an(1)), (1, 2, an(2))])),
        (Status::AllPass, vec![])
    );
    assert_eq!(
        send(&*s, &detect(&[(1, 1, an(9)), (1, 2, an(9))])),
        (Status::AllFail, vec![])
    );
    // Ten coins, coins 0, 3 and 9 right: bits 0 and 3 of byte 0, bit 1 of byte 1.
    let coins: Vec<(i8, u32, An)> = (0..10u32)
        .map(|i| {
            let right = matches!(i, 0 | 3 | 9);
            (1, i + 1, if right { an(i as u8 + 1) } else { an(0xEE) })
        })
        .collect();
    assert_eq!(
        send(&*s, &detect(&coins)),
        (Status::Mixed, vec![0b0000_1001, 0b0000_0010])
    );
    // Eight coins, all but the last: one byte.
    let coins: Vec<(i8, u32, An)> = (0..8u32)
        .map(|i| (1, i + 1, if i < 7 { an(i as u8 + 1) } else { an(0) }))
        .collect();
    assert_eq!(send(&*s, &detect(&coins)), (Status::Mixed, vec![0x7F]));
}

#[test]
fn detect_fails_unknown_coins_and_coins_that_can_never_be_known() {
    let s = store();
    // (1, 999) has no record; denomination 7 and serial 2^26 are never coins.
    let coins = [
        (1, 1, an(1)),
        (1, 999, an(1)),
        (7, 1, an(1)),
        (1, 1 << 26, an(1)),
    ];
    assert_eq!(send(&*s, &detect(&coins)), (Status::Mixed, vec![0b0001]));
    // Denomination 6 and -8 exist; the top serial is a serial.
    assert_eq!(
        send(&*s, &detect(&[(6, 3, an(0x63))])),
        (Status::AllPass, vec![])
    );
}

#[test]
fn checks_come_in_the_order_36_16_39_20() {
    let s = store();
    for command in [10u8, 11, 20, 21] {
        // No body at all: 36.
        let mut none = request(command, vec![]);
        none.faults.no_body = true;
        assert_eq!(
            send(&*s, &none).0,
            Status::EmptyRequest,
            "command {command}"
        );
        // A body of only the challenge: an empty payload, 16.
        assert_eq!(
            send(&*s, &request(command, vec![])).0,
            Status::InvalidPacketLength
        );
        // Shorter than one entry: 16, even on shard 1.
        let mut short = request(command, vec![1; 20]);
        short.shard = 1;
        assert_eq!(
            send(&*s, &short).0,
            Status::InvalidPacketLength,
            "command {command}"
        );
    }
    // Not a whole number of entries: 39 (before the shard is looked at).
    let mut r = request(10, vec![1; 22]);
    r.shard = 2;
    assert_eq!(send(&*s, &r).0, Status::CoinsNotDiv);
    assert_eq!(send(&*s, &request(11, vec![1; 22])).0, Status::CoinsNotDiv);
    assert_eq!(send(&*s, &request(20, vec![1; 38])).0, Status::CoinsNotDiv);
    assert_eq!(send(&*s, &request(21, vec![1; 38])).0, Status::CoinsNotDiv);
    // Shards 1 and 2 live elsewhere: 20; 0 and 3 use this store.
    for shard in [1u8, 2] {
        let mut r = detect(&[(1, 1, an(1))]);
        r.shard = shard;
        assert_eq!(send(&*s, &r).0, Status::ShardNotAvailable);
        let mut r = pown(&[(1, 1, an(1), an(0x77))]);
        r.shard = shard;
        assert_eq!(send(&*s, &r).0, Status::ShardNotAvailable);
        assert_eq!(
            record(&*s, 1, 1).map(|r| r.an),
            Some(an(1)),
            "no change on shard {shard}"
        );
    }
    let mut r = detect(&[(1, 1, an(1))]);
    r.shard = 3;
    assert_eq!(send(&*s, &r).0, Status::AllPass);
}

#[test]
fn detect_sum_compares_the_xor_of_the_stored_ans() {
    let s = store();
    let coins = [(1, 1), (1, 2), (1, 5)];
    let sum = xor(&[an(1), an(2), an(5)]);
    assert_eq!(
        send(&*s, &sum_request(11, &coins, sum, None)).0,
        Status::AllPass
    );
    assert_eq!(
        send(&*s, &sum_request(11, &coins, an(0), None)).0,
        Status::AllFail
    );
    // Any coin unknown: 40, whatever the sum.
    let unknown = [(1, 1), (1, 999)];
    assert_eq!(
        send(&*s, &sum_request(11, &unknown, an(1), None)).0,
        Status::InvalidSnOrDenomination
    );
    assert_eq!(
        send(&*s, &sum_request(11, &[(1, 1 << 26)], an(0), None)).0,
        Status::InvalidSnOrDenomination
    );
}

#[test]
fn pown_writes_the_pan_and_mfs_of_every_coin_whose_an_matches() {
    let s = store();
    let r = pown(&[
        (1, 1, an(1), an(0x81)),
        (1, 2, an(0xEE), an(0x82)),
        (1, 3, an(3), an(0x83)),
    ]);
    assert_eq!(send(&*s, &r), (Status::Mixed, vec![0b101]));
    assert_eq!(
        record(&*s, 1, 1),
        Some(Record {
            an: an(0x81),
            status: MFS
        })
    );
    assert_eq!(
        record(&*s, 1, 2),
        Some(Record {
            an: an(2),
            status: 0
        }),
        "unchanged"
    );
    assert_eq!(
        record(&*s, 1, 3),
        Some(Record {
            an: an(0x83),
            status: MFS
        })
    );
    // Now the old AN fails and the new one passes, for detect and for the key lookup.
    assert_eq!(send(&*s, &detect(&[(1, 1, an(1))])).0, Status::AllFail);
    assert_eq!(send(&*s, &detect(&[(1, 1, an(0x81))])).0, Status::AllPass);
    assert_eq!(
        s.lookup(CoinId::new(1, 1), Timestamp::ZERO),
        Lookup::Found(an(0x81))
    );
    // Every coin wrong: 242, nothing written.
    assert_eq!(
        send(&*s, &pown(&[(1, 4, an(0), an(0x84))])).0,
        Status::AllFail
    );
    assert_eq!(record(&*s, 1, 4).map(|r| r.an), Some(an(4)));
}

#[test]
fn a_coin_named_twice_in_one_pown_is_taken_in_request_order() {
    let s = store();
    // The second entry presents the AN the first one sets: both pass.
    let r = pown(&[(1, 6, an(6), an(0x61)), (1, 6, an(0x61), an(0x62))]);
    assert_eq!(send(&*s, &r).0, Status::AllPass);
    assert_eq!(record(&*s, 1, 6).map(|r| r.an), Some(an(0x62)));
    // The second presents the old AN again: it fails, the first's PAN stays.
    let r = pown(&[(1, 7, an(7), an(0x71)), (1, 7, an(7), an(0x72))]);
    assert_eq!(send(&*s, &r), (Status::Mixed, vec![0b01]));
    assert_eq!(record(&*s, 1, 7).map(|r| r.an), Some(an(0x71)));
}

#[test]
fn pown_sum_changes_all_of_its_coins_or_none() {
    let s = store();
    let coins = [(1, 10), (1, 11), (1, 12)];
    let sum = xor(&[an(10), an(11), an(12)]);
    let delta = an(0x0F);
    // A wrong sum: 242, nothing changes.
    assert_eq!(
        send(&*s, &sum_request(21, &coins, an(0), Some(delta))).0,
        Status::AllFail
    );
    for serial in 10..=12 {
        assert_eq!(
            record(&*s, 1, serial),
            Some(Record {
                an: an(serial as u8),
                status: 0
            })
        );
    }
    // One coin unknown: 40, nothing changes.
    let with_unknown = [(1, 10), (1, 11), (1, 999)];
    assert_eq!(
        send(&*s, &sum_request(21, &with_unknown, sum, Some(delta))).0,
        Status::InvalidSnOrDenomination
    );
    assert_eq!(record(&*s, 1, 10).map(|r| r.an), Some(an(10)));
    // The right sum: every AN ^= delta, status MFS, 241.
    assert_eq!(
        send(&*s, &sum_request(21, &coins, sum, Some(delta))).0,
        Status::AllPass
    );
    for serial in 10..=12u32 {
        let want = xor(&[an(serial as u8), delta]);
        assert_eq!(
            record(&*s, 1, serial),
            Some(Record {
                an: want,
                status: MFS
            })
        );
    }
}

#[test]
fn every_encryption_type_sees_exactly_the_decrypted_payload() {
    let s = store();
    let key_coin = Coin::new(1, 20);
    let keys = [
        Keys::Coin {
            coin: key_coin,
            an: an(20),
        },
        Keys::Coin256 {
            coin: key_coin,
            an: an(20),
        },
        Keys::TwoCoins256 {
            first: key_coin,
            first_an: an(20),
            second: Coin::new(1, 19),
            second_an: an(19),
        },
    ];
    for keys in keys {
        // One coin: with types 4 and 5 the deployed server miscounts (section 11).
        let mut one = detect(&[(1, 1, an(1))]);
        one.keys = keys.clone();
        assert_eq!(send(&*s, &one), (Status::AllPass, vec![]), "{keys:?}");
        let mut mixed = detect(&[(1, 1, an(1)), (1, 2, an(0))]);
        mixed.keys = keys.clone();
        assert_eq!(send(&*s, &mixed), (Status::Mixed, vec![1]), "{keys:?}");
        let mut sum = sum_request(11, &[(1, 3), (1, 4)], xor(&[an(3), an(4)]), None);
        sum.keys = keys.clone();
        assert_eq!(send(&*s, &sum).0, Status::AllPass, "{keys:?}");
    }
}

#[test]
fn of_32_concurrent_powns_of_one_coin_with_the_same_an_exactly_one_passes() {
    let s = store();
    let barrier = Arc::new(Barrier::new(32));
    let results: Vec<Status> = (0..32u8)
        .map(|i| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let r = pown(&[(1, 8, an(8), an(0x80 + i))]);
                barrier.wait();
                send(&*s, &r).0
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(results.iter().filter(|&&r| r == Status::AllPass).count(), 1);
    assert_eq!(
        results.iter().filter(|&&r| r == Status::AllFail).count(),
        31
    );
}

/// A store whose writes fail: the command answers 252 and nothing changes.
#[derive(Debug)]
struct FailingWrites(Arc<MemoryKeyStore>);

impl KeyStore for FailingWrites {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        self.0.lookup(coin, now)
    }
    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.0.locker_an(prefix, now)
    }
    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        self.0.record(coin, now)
    }
    fn modify(&self, _: &[CoinId], _: Timestamp, _: &mut Change<'_>) -> Result<(), StoreError> {
        Err(StoreError::Write(std::io::Error::other("disk full")))
    }
}

#[test]
fn a_write_that_fails_answers_252_and_changes_nothing() {
    let inner = store();
    let s = FailingWrites(Arc::clone(&inner));
    assert_eq!(
        send(&s, &pown(&[(1, 9, an(9), an(0x99))])),
        (Status::Internal, vec![])
    );
    let sum = sum_request(21, &[(1, 9)], an(9), Some(an(1)));
    assert_eq!(send(&s, &sum).0, Status::Internal);
    assert_eq!(
        record(&*inner, 1, 9),
        Some(Record {
            an: an(9),
            status: 0
        })
    );
}

/// A store that records every coin a command reads or writes, in order.
#[derive(Debug)]
struct ReadsStore {
    inner: Arc<MemoryKeyStore>,
    coins: std::sync::Mutex<Vec<CoinId>>,
}

impl ReadsStore {
    fn saw(&self, coins: &[CoinId]) {
        self.coins.lock().expect("lock").extend_from_slice(coins);
    }
}

impl KeyStore for ReadsStore {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        self.saw(&[coin]);
        self.inner.lookup(coin, now)
    }

    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.inner.locker_an(prefix, now)
    }

    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        self.saw(&[coin]);
        self.inner.record(coin, now)
    }

    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        self.saw(coins);
        self.inner.modify(coins, now, change)
    }
}

/// The cache hint of each coin command of section 8a names exactly the coins the
/// command then reads, in its order: the engine hints a batch's coins from the payload
/// alone (`Command::prefetch_coins`), and a hint that named the wrong bytes (an AN, a
/// sum) would bring the wrong lines into the cache.
#[test]
fn each_coin_commands_hint_names_the_coins_it_reads() {
    let coins = [(1, 3u32), (6, 3), (1, 17)];
    let requests = [
        detect(&[(1, 3, an(3)), (6, 3, an(0x63)), (1, 17, an(9))]),
        sum_request(raida_commands::DETECT_SUM, &coins, an(5), None),
        pown(&[
            (1, 3, an(3), an(0x33)),
            (6, 3, an(0x63), an(0x66)),
            (1, 17, an(17), an(0x77)),
        ]),
        sum_request(raida_commands::POWN_SUM, &coins, an(5), Some(an(6))),
    ];
    let registry = registry();
    let want: Vec<CoinId> = coins.iter().map(|&(d, s)| CoinId::new(d, s)).collect();
    for req in &requests {
        let store = ReadsStore {
            inner: store(),
            coins: std::sync::Mutex::new(Vec::new()),
        };
        send(&store, req);
        let read = store.coins.lock().expect("lock").clone();
        assert_eq!(read, want, "command {} reads the three coins", req.command);
        let command = registry.get(req.group, req.command).expect("registered");
        let mut hinted = Vec::new();
        command.prefetch_coins(&req.payload, &mut hinted);
        assert_eq!(hinted, want, "command {} hints what it reads", req.command);
    }
}
