//! The locker commands (PROTOCOL.md section 8c) through the real codec
//! (`answer_request`) over the in-memory store: every row of the table (payloads,
//! checks in their order, answers and bitmaps), the duplicate-coin theft, the
//! take-back after a recipient's pown, concurrent removes, and the locker index
//! against what the records imply.
//!
//! Type-0 requests are built here byte by byte, as a wallet sends them (a 32-byte
//! header, a challenge with its CRC, the payload, `3E 3E`), and their answers read
//! byte by byte; encrypted requests go through the client library.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};

use raida_client::{Coin, Keys, Request};
use raida_commands::FixedClock;
use raida_core::codec::{answer_request, Arrival, HeaderRules};
use raida_core::keys::{is_locker_key, An, CoinId, KeyStore, MemoryKeyStore, Record};
use raida_core::{CommandRegistry, Timestamp, Transport};

const RAIDA_ID: u8 = 4;
const MFS: u8 = 46;

const STORE_SUM: u8 = 82;
const PEEK: u8 = 83;
const REMOVE: u8 = 84;
const STORE_MULTIPLE_SUM: u8 = 88;

const ALL_PASS: u8 = 241;
const ALL_FAIL: u8 = 242;
const MIXED: u8 = 243;
const INVALID_PARAMETER: u8 = 198;
const INVALID_PAN: u8 = 199;
const UNKNOWN_COIN: u8 = 40;
const EMPTY_REQUEST: u8 = 36;
const INVALID_PACKET_LENGTH: u8 = 16;
const COINS_NOT_DIV: u8 = 39;

fn an(n: u8) -> An {
    [n; 16]
}

/// A locker key: bytes 12..15 FF.
fn key(n: u8) -> An {
    let mut k = [n; 16];
    k[12..].copy_from_slice(&[0xFF; 4]);
    k
}

/// Coins (1, s) for s in 1..=40 holding AN [s; 16], (-8, 5) and (6, 3).
fn store() -> Arc<MemoryKeyStore> {
    let store = MemoryKeyStore::new();
    for s in 1..=40u32 {
        store.insert_coin(1, s, an(s as u8));
    }
    store.insert_coin(-8, 5, an(0x85));
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

fn rules() -> HeaderRules {
    HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: 0,
        max_body_size: 65_536,
    }
}

fn arrival(transport: Transport) -> Arrival {
    Arrival {
        peer: SocketAddr::from(([127, 0, 0, 1], 5)),
        transport,
        at: Timestamp::from_micros(1),
    }
}

/// A type-0 request of group 8, written byte by byte: `payload` `None` sends body
/// length 0; otherwise the body is a challenge (12 bytes and their CRC-32, big-endian),
/// the payload and `3E 3E`.
fn raw(command: u8, shard: u8, payload: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(p) = payload {
        let random = [0x11u8; 12];
        body.extend_from_slice(&random);
        body.extend_from_slice(&crc32fast::hash(&random).to_be_bytes());
        body.extend_from_slice(p);
        body.extend_from_slice(&[0x3E, 0x3E]);
    }
    let mut h = [0u8; 32];
    h[0] = 1;
    h[2] = RAIDA_ID;
    h[3] = shard;
    h[4] = 8;
    h[5] = command;
    let len = u16::try_from(body.len()).expect("fits");
    h[22..24].copy_from_slice(&len.to_be_bytes());
    h[30..32].copy_from_slice(&[0xAB, 0xCD]);
    let mut out = h.to_vec();
    out.extend_from_slice(&body);
    out
}

/// Status and body of the answer to `bytes`, read byte by byte (section 5).
fn answer_over(store: &dyn KeyStore, bytes: &[u8], transport: Transport) -> (u8, Vec<u8>) {
    let resp = answer_request(
        bytes,
        &arrival(transport),
        &rules(),
        &registry(),
        store,
        0,
        &[7; 22],
    )
    .expect("a response");
    assert!(resp.len() >= 32, "a whole header");
    assert_eq!(resp[0], RAIDA_ID);
    assert_eq!(&resp[6..8], &[0xAB, 0xCD], "echo bytes");
    let size = usize::from(resp[9]) << 16 | usize::from(resp[10]) << 8 | usize::from(resp[11]);
    assert_eq!(resp.len(), 32 + size, "body size field");
    if size == 0 {
        return (resp[2], vec![]);
    }
    assert_eq!(&resp[resp.len() - 2..], &[0x3E, 0x3E], "trailer");
    (resp[2], resp[32..resp.len() - 2].to_vec())
}

fn answer(store: &dyn KeyStore, command: u8, payload: &[u8]) -> (u8, Vec<u8>) {
    answer_over(store, &raw(command, 0, Some(payload)), Transport::Tcp)
}

/// The status of an authentication command (group 1, PROTOCOL.md 8a) over TCP, type 0.
fn authentication(store: &dyn KeyStore, command: u8, payload: Vec<u8>) -> u8 {
    let mut req = Request::new(RAIDA_ID, 1, command, Keys::None);
    req.payload = payload;
    let built = req.build().expect("builds");
    let resp = answer_request(
        built.bytes(),
        &arrival(Transport::Tcp),
        &rules(),
        &registry(),
        store,
        0,
        &[7; 22],
    )
    .expect("a response");
    resp[2]
}

fn coin_ref(den: i8, serial: u32) -> Vec<u8> {
    let mut v = vec![den as u8];
    v.extend_from_slice(&serial.to_be_bytes());
    v
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

fn put_payload(coins: &[(i8, u32)], sum: An, key: An) -> Vec<u8> {
    let mut p = Vec::new();
    for (d, s) in coins {
        p.extend_from_slice(&coin_ref(*d, *s));
    }
    p.extend_from_slice(&sum);
    p.extend_from_slice(&key);
    p
}

/// A put of `coins` of the test store (their ANs are [s; 16]) into `k`.
fn put(store: &dyn KeyStore, coins: &[u32], k: An) -> (u8, Vec<u8>) {
    let refs: Vec<(i8, u32)> = coins.iter().map(|&s| (1, s)).collect();
    let ans: Vec<An> = coins.iter().map(|&s| an(s as u8)).collect();
    answer(store, STORE_SUM, &put_payload(&refs, xor(&ans), k))
}

fn remove_payload(k: An, coins: &[(i8, u32, An)]) -> Vec<u8> {
    let mut p = k.to_vec();
    for (d, s, new) in coins {
        p.extend_from_slice(&coin_ref(*d, *s));
        p.extend_from_slice(new);
    }
    p
}

fn peek_body(coins: &[(i8, u32)]) -> Vec<u8> {
    coins.iter().flat_map(|(d, s)| coin_ref(*d, *s)).collect()
}

fn record(store: &dyn KeyStore, den: i8, serial: u32) -> Option<Record> {
    store
        .record(CoinId::new(den, serial), Timestamp::ZERO)
        .expect("readable")
}

fn an_of(store: &dyn KeyStore, serial: u32) -> Option<An> {
    record(store, 1, serial).map(|r| r.an)
}

#[test]
fn store_sum_moves_the_coins_to_the_key_and_peek_lists_them_in_order() {
    let s = store();
    let coins = [(1, 3), (-8, 5), (6, 3), (1, 1)];
    let sum = xor(&[an(3), an(0x85), an(0x63), an(1)]);
    assert_eq!(
        answer(&*s, STORE_SUM, &put_payload(&coins, sum, key(7))),
        (ALL_PASS, vec![])
    );
    for (d, serial) in coins {
        let r = record(&*s, d, serial).expect("known");
        assert_eq!((r.an, r.status), (key(7), MFS));
    }
    assert_eq!(record(&*s, 1, 2).map(|r| r.an), Some(an(2)), "others kept");
    // Ascending by signed denomination, then serial; each coin once.
    assert_eq!(
        answer(&*s, PEEK, &key(7)),
        (ALL_PASS, peek_body(&[(-8, 5), (1, 1), (1, 3), (6, 3)]))
    );
    // A put into the locker it is in already: each coin still once.
    assert_eq!(
        answer(&*s, STORE_SUM, &put_payload(&[(1, 1)], key(7), key(7))),
        (ALL_PASS, vec![])
    );
    assert_eq!(answer(&*s, PEEK, &key(7)).1.len(), 4 * 5);
}

#[test]
fn store_sum_checks_in_order_36_16_39_198_40_242_199() {
    let s = store();
    let none = raw(STORE_SUM, 0, None);
    assert_eq!(answer_over(&*s, &none, Transport::Tcp).0, EMPTY_REQUEST);
    assert_eq!(answer(&*s, STORE_SUM, &[]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, STORE_SUM, &[1; 36]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, STORE_SUM, &[1; 38]).0, COINS_NOT_DIV);
    // A duplicate wins over an unknown coin, a wrong sum and a bad key.
    let dup = put_payload(&[(1, 1), (1, 999), (1, 1)], an(0), an(0));
    assert_eq!(answer(&*s, STORE_SUM, &dup).0, INVALID_PARAMETER);
    // Unknown: no record, a denomination outside -8..=6, a serial >= 2^26.
    for unknown in [(1, 999), (7, 1), (1, 1 << 26)] {
        let p = put_payload(&[(1, 1), unknown], an(1), key(1));
        assert_eq!(answer(&*s, STORE_SUM, &p).0, UNKNOWN_COIN, "{unknown:?}");
    }
    // A wrong sum with a bad key: 242, not 199.
    let p = put_payload(&[(1, 1), (1, 2)], an(0), an(9));
    assert_eq!(answer(&*s, STORE_SUM, &p), (ALL_FAIL, vec![]));
    // The right sum with a bad key: 199.
    let p = put_payload(&[(1, 1), (1, 2)], xor(&[an(1), an(2)]), an(9));
    assert_eq!(answer(&*s, STORE_SUM, &p), (INVALID_PAN, vec![]));
    // Nothing changed.
    assert_eq!(an_of(&*s, 1), Some(an(1)));
    assert_eq!(an_of(&*s, 2), Some(an(2)));
    assert_eq!(s.locker_index().entries(), 0);
}

#[test]
fn a_coin_listed_twice_cannot_be_moved_without_its_an() {
    // [V, V] XORs to zero whatever V's AN is; the deployed server moved V (241).
    let s = store();
    for coins in [vec![(1, 5), (1, 5)], vec![(1, 6), (1, 5), (1, 5)]] {
        let sum = if coins.len() == 2 { an(0) } else { an(6) };
        let p = put_payload(&coins, sum, key(0x66));
        assert_eq!(answer(&*s, STORE_SUM, &p), (INVALID_PARAMETER, vec![]));
    }
    assert_eq!(
        record(&*s, 1, 5).map(|r| (r.an, r.status)),
        Some((an(5), 0))
    );
    assert_eq!(answer(&*s, PEEK, &key(0x66)), (ALL_FAIL, vec![]));
    // In store_multiple_sum: twice in one locker, or once in each of two.
    let mut twice = vec![1u8, 0, 2];
    twice.extend_from_slice(&put_payload(&[(1, 5), (1, 5)], an(0), key(0x66)));
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &twice).0, INVALID_PARAMETER);
    let mut across = vec![2u8];
    for k in [key(0x66), key(0x67)] {
        across.extend_from_slice(&[0, 1]);
        across.extend_from_slice(&put_payload(&[(1, 5)], an(5), k));
    }
    assert_eq!(
        answer(&*s, STORE_MULTIPLE_SUM, &across).0,
        INVALID_PARAMETER
    );
    assert_eq!(an_of(&*s, 5), Some(an(5)));
}

#[test]
fn peek_answers_242_without_a_locker_and_16_for_a_wrong_length() {
    let s = store();
    let none = raw(PEEK, 0, None);
    assert_eq!(answer_over(&*s, &none, Transport::Tcp).0, EMPTY_REQUEST);
    assert_eq!(answer(&*s, PEEK, &[]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, PEEK, &[0xFF; 15]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, PEEK, &[0xFF; 17]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, PEEK, &key(1)), (ALL_FAIL, vec![]));
    // A plain coin's AN never names a locker.
    assert_eq!(answer(&*s, PEEK, &an(2)), (ALL_FAIL, vec![]));
    // A key-shaped AN held by a coin is a locker, however it got there.
    s.insert_coin(0, 77, key(3));
    assert_eq!(
        answer(&*s, PEEK, &key(3)),
        (ALL_PASS, peek_body(&[(0, 77)]))
    );
}

#[test]
fn the_shard_byte_is_not_consulted() {
    let s = store();
    for shard in 0..=3u8 {
        let k = key(0x40 + shard);
        let serial = u32::from(shard) + 1;
        let p = put_payload(&[(1, serial)], an(serial as u8), k);
        let sent = answer_over(&*s, &raw(STORE_SUM, shard, Some(&p)), Transport::Tcp);
        assert_eq!(sent, (ALL_PASS, vec![]), "shard {shard}");
        let peek = answer_over(&*s, &raw(PEEK, shard, Some(&k)), Transport::Udp);
        assert_eq!(peek, (ALL_PASS, peek_body(&[(1, serial)])));
    }
}

#[test]
fn remove_moves_each_coin_whose_an_is_the_key_with_a_bitmap_of_floor_n_8_plus_1() {
    let s = store();
    assert_eq!(put(&*s, &[1, 2, 3, 4, 5, 6, 7, 8, 9], key(1)).0, ALL_PASS);
    // Two coins, both pass: 241 with one bitmap byte.
    let p = remove_payload(key(1), &[(1, 1, an(0xA1)), (1, 2, key(2))]);
    assert_eq!(answer(&*s, REMOVE, &p), (ALL_PASS, vec![0x03]));
    let r = record(&*s, 1, 1).expect("known");
    assert_eq!((r.an, r.status), (an(0xA1), MFS));
    // A key-shaped new AN moves the coin into that locker.
    assert_eq!(answer(&*s, PEEK, &key(2)), (ALL_PASS, peek_body(&[(1, 2)])));
    // Coin 1 left the locker, coin 10 was never in it, (1, 999) is unknown: 243.
    let p = remove_payload(
        key(1),
        &[
            (1, 1, an(0xB1)),
            (1, 3, an(0xB3)),
            (1, 10, an(0xBA)),
            (1, 999, an(0xBB)),
        ],
    );
    assert_eq!(answer(&*s, REMOVE, &p), (MIXED, vec![0b0010]));
    assert_eq!(an_of(&*s, 1), Some(an(0xA1)));
    assert_eq!(an_of(&*s, 10), Some(an(10)));
    // None passes: 242, still with the bitmap.
    let p = remove_payload(key(1), &[(1, 3, an(0xC3))]);
    assert_eq!(answer(&*s, REMOVE, &p), (ALL_FAIL, vec![0x00]));
    // Eight coins: 2 bytes, even for 241 (coins 4..=9 and 3 are left... 3 moved).
    let eight: Vec<(i8, u32, An)> = (4..=9).map(|i| (1, i, an(0xD0))).collect();
    let mut eight = eight;
    eight.push((1, 30, an(0xD0)));
    eight.push((1, 31, an(0xD0)));
    let p = remove_payload(key(1), &eight);
    assert_eq!(answer(&*s, REMOVE, &p), (MIXED, vec![0x3F, 0x00]));
    // The locker is empty now: it no longer exists, 242 without a body.
    let p = remove_payload(key(1), &[(1, 4, an(0xE4))]);
    assert_eq!(answer(&*s, REMOVE, &p), (ALL_FAIL, vec![]));
    assert_eq!(answer(&*s, PEEK, &key(1)), (ALL_FAIL, vec![]));
}

#[test]
fn remove_with_8_passing_coins_sends_two_bitmap_bytes() {
    let s = store();
    let coins: Vec<u32> = (1..=8).collect();
    assert_eq!(put(&*s, &coins, key(1)).0, ALL_PASS);
    let entries: Vec<(i8, u32, An)> = coins.iter().map(|&c| (1, c, an(0xF0))).collect();
    assert_eq!(
        answer(&*s, REMOVE, &remove_payload(key(1), &entries)),
        (ALL_PASS, vec![0xFF, 0x00])
    );
}

#[test]
fn remove_checks_in_order_36_16_39_198_242() {
    let s = store();
    assert_eq!(put(&*s, &[1, 2], key(1)).0, ALL_PASS);
    let none = raw(REMOVE, 0, None);
    assert_eq!(answer_over(&*s, &none, Transport::Tcp).0, EMPTY_REQUEST);
    assert_eq!(answer(&*s, REMOVE, &[]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, REMOVE, &[0xFF; 36]).0, INVALID_PACKET_LENGTH);
    assert_eq!(answer(&*s, REMOVE, &[0xFF; 38]).0, COINS_NOT_DIV);
    // A coin listed twice: 198, even for a locker that does not exist; nothing moves.
    let twice = [(1, 1, an(0xA1)), (1, 1, an(0xA2))];
    assert_eq!(
        answer(&*s, REMOVE, &remove_payload(key(1), &twice)),
        (INVALID_PARAMETER, vec![])
    );
    assert_eq!(
        answer(&*s, REMOVE, &remove_payload(key(9), &twice)).0,
        INVALID_PARAMETER
    );
    assert_eq!(an_of(&*s, 1), Some(key(1)));
    // No locker with this key: 242 without a body (the key is not key-shaped, or no
    // coin holds it).
    let one = [(1, 1, an(0xA1))];
    assert_eq!(
        answer(&*s, REMOVE, &remove_payload(key(9), &one)),
        (ALL_FAIL, vec![])
    );
    assert_eq!(
        answer(&*s, REMOVE, &remove_payload(an(3), &[(1, 3, an(0xA3))])),
        (ALL_FAIL, vec![])
    );
    assert_eq!(an_of(&*s, 3), Some(an(3)));
}

#[test]
fn the_sender_cannot_take_back_a_coin_the_recipient_powned() {
    let s = store();
    assert_eq!(put(&*s, &[1, 2], key(5)).0, ALL_PASS);
    // The recipient takes coin 1 with a pown from AN = key (1/20).
    let mut pown = coin_ref(1, 1);
    pown.extend_from_slice(&key(5));
    pown.extend_from_slice(&an(0xEC));
    let mut req = Request::new(RAIDA_ID, 1, 20, Keys::None);
    req.payload = pown;
    req.challenge = [3; 12];
    let built = req.build().expect("builds");
    let resp = answer_request(
        built.bytes(),
        &arrival(Transport::Tcp),
        &rules(),
        &registry(),
        &*s,
        0,
        &[7; 22],
    )
    .expect("a response");
    assert_eq!(resp[2], ALL_PASS);
    assert_eq!(answer(&*s, PEEK, &key(5)), (ALL_PASS, peek_body(&[(1, 2)])));
    // The sender's remove of coin 1 fails: its AN is no longer the key.
    let p = remove_payload(key(5), &[(1, 1, an(0x5E))]);
    assert_eq!(answer(&*s, REMOVE, &p), (ALL_FAIL, vec![0x00]));
    assert_eq!(an_of(&*s, 1), Some(an(0xEC)), "the recipient keeps it");
}

#[test]
fn of_concurrent_removes_of_one_locker_each_coin_goes_to_exactly_one() {
    for _round in 0..10 {
        let s = store();
        let coins: Vec<u32> = (1..=12).collect();
        assert_eq!(put(&*s, &coins, key(8)).0, ALL_PASS);
        let threads = 8u8;
        let barrier = Arc::new(Barrier::new(usize::from(threads)));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (s, barrier, coins) = (Arc::clone(&s), Arc::clone(&barrier), coins.clone());
                std::thread::spawn(move || {
                    let entries: Vec<(i8, u32, An)> =
                        coins.iter().map(|&c| (1, c, an(0x80 + t))).collect();
                    barrier.wait();
                    answer(&*s, REMOVE, &remove_payload(key(8), &entries))
                })
            })
            .collect();
        let mut owner: BTreeMap<u32, u8> = BTreeMap::new();
        for (t, h) in handles.into_iter().enumerate() {
            let (status, bitmap) = h.join().expect("thread");
            if status == ALL_FAIL && bitmap.is_empty() {
                continue; // the locker was already empty
            }
            assert_eq!(bitmap.len(), 12 / 8 + 1);
            for (i, &c) in coins.iter().enumerate() {
                if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                    let t = u8::try_from(t).expect("few");
                    assert_eq!(owner.insert(c, t), None, "coin {c} went twice");
                }
            }
        }
        assert_eq!(owner.len(), 12, "every coin went once");
        for (c, t) in owner {
            assert_eq!(an_of(&*s, c), Some(an(0x80 + t)), "coin {c}");
        }
    }
}

/// One locker of a store_multiple_sum request: its coins, sum and key.
type LockerPut<'a> = (&'a [(i8, u32)], An, An);

fn multi(lockers: &[LockerPut<'_>]) -> Vec<u8> {
    let mut p = vec![u8::try_from(lockers.len()).expect("few")];
    for (coins, sum, k) in lockers {
        p.extend_from_slice(&u16::try_from(coins.len()).expect("few").to_be_bytes());
        p.extend_from_slice(&put_payload(coins, *sum, *k));
    }
    p
}

#[test]
fn store_multiple_sum_puts_each_locker_and_answers_with_a_bitmap_of_ceil_nl_8() {
    let s = store();
    let all = multi(&[
        (&[(1, 1), (1, 2)], xor(&[an(1), an(2)]), key(1)),
        (&[(1, 3)], an(3), key(2)),
    ]);
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &all), (ALL_PASS, vec![]));
    assert_eq!(
        answer(&*s, PEEK, &key(1)),
        (ALL_PASS, peek_body(&[(1, 1), (1, 2)]))
    );
    assert_eq!(answer(&*s, PEEK, &key(2)), (ALL_PASS, peek_body(&[(1, 3)])));
    // Locker 0 right, 1 a wrong sum, 2 unknown, 3 a bad key, 4 right: 243, bits 0, 4.
    let some = multi(&[
        (&[(1, 4)], an(4), key(3)),
        (&[(1, 5)], an(0), key(3)),
        (&[(1, 999)], an(0), key(3)),
        (&[(1, 6)], an(6), an(6)),
        (&[(1, 7)], an(7), key(4)),
    ]);
    assert_eq!(
        answer(&*s, STORE_MULTIPLE_SUM, &some),
        (MIXED, vec![0b1_0001])
    );
    assert_eq!(an_of(&*s, 4), Some(key(3)));
    assert_eq!(an_of(&*s, 5), Some(an(5)));
    assert_eq!(an_of(&*s, 6), Some(an(6)));
    assert_eq!(an_of(&*s, 7), Some(key(4)));
    // Nine lockers, only the last passes: two bitmap bytes.
    let nine: Vec<(i8, u32)> = (10..19).map(|c| (1, c)).collect();
    let mut lockers: Vec<LockerPut<'_>> = nine
        .iter()
        .map(|c| (std::slice::from_ref(c), an(0), key(5)))
        .collect();
    lockers[8].1 = an(18);
    assert_eq!(
        answer(&*s, STORE_MULTIPLE_SUM, &multi(&lockers)),
        (MIXED, vec![0x00, 0x01])
    );
    // None passes: 242 without a body.
    let none = multi(&[(&[(1, 20)], an(0), key(6))]);
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &none), (ALL_FAIL, vec![]));
}

#[test]
fn store_multiple_sum_checks_in_order() {
    let s = store();
    let none = raw(STORE_MULTIPLE_SUM, 0, None);
    assert_eq!(answer_over(&*s, &none, Transport::Tcp).0, EMPTY_REQUEST);
    assert_eq!(
        answer(&*s, STORE_MULTIPLE_SUM, &[]).0,
        INVALID_PACKET_LENGTH
    );
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &[0]).0, INVALID_PARAMETER);
    // NL = 2 needs 1 + 78 bytes.
    let one = multi(&[(&[(1, 1)], an(1), key(1))]);
    let mut short = one.clone();
    short[0] = 2;
    short.extend_from_slice(&[0; 38]);
    assert_eq!(
        answer(&*s, STORE_MULTIPLE_SUM, &short).0,
        INVALID_PACKET_LENGTH
    );
    // A locker whose NC runs past the payload: 16.
    let mut past = one.clone();
    past[2] = 2;
    assert_eq!(
        answer(&*s, STORE_MULTIPLE_SUM, &past).0,
        INVALID_PACKET_LENGTH
    );
    assert_eq!(an_of(&*s, 1), Some(an(1)));
    // Bytes after the last locker are ignored.
    let mut padded = one.clone();
    padded.extend_from_slice(&[0xEE; 7]);
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &padded), (ALL_PASS, vec![]));
    assert_eq!(an_of(&*s, 1), Some(key(1)));
    // NC = 0 (reached with padding): passes with a zero sum and a locker key, writes
    // nothing; fails with a bad key.
    let mut empty = vec![1u8, 0, 0];
    empty.extend_from_slice(&an(0));
    empty.extend_from_slice(&key(9));
    empty.extend_from_slice(&[0; 5]);
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &empty), (ALL_PASS, vec![]));
    empty[19..35].copy_from_slice(&an(9));
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &empty), (ALL_FAIL, vec![]));
    assert_eq!(answer(&*s, PEEK, &key(9)), (ALL_FAIL, vec![]));
}

/// Every locker the records define, by a scan of every known coin.
fn scan(s: &MemoryKeyStore) -> BTreeMap<An, Vec<CoinId>> {
    let mut lockers: BTreeMap<An, Vec<CoinId>> = BTreeMap::new();
    for d in -8..=6i8 {
        for serial in 0..=1000u32 {
            if let Some(r) = record(s, d, serial) {
                if is_locker_key(&r.an) {
                    lockers
                        .entry(r.an)
                        .or_default()
                        .push(CoinId::new(d, serial));
                }
            }
        }
    }
    lockers
}

fn assert_index_is_the_records(s: &MemoryKeyStore) {
    let lockers = scan(s);
    for (k, coins) in &lockers {
        assert_eq!(&s.locker_coins(k, Timestamp::ZERO), coins);
    }
    let entries: usize = lockers.values().map(Vec::len).sum();
    assert_eq!(s.locker_index().entries(), entries);
}

#[test]
fn the_index_equals_what_the_records_imply_after_every_kind_of_write() {
    let s = store();
    let step = |s: &MemoryKeyStore| assert_index_is_the_records(s);
    assert_eq!(put(&*s, &[1, 2, 3, 4], key(1)).0, ALL_PASS);
    step(&s);
    // A put of a locker coin into another locker.
    let p = put_payload(&[(1, 4)], key(1), key(2));
    assert_eq!(answer(&*s, STORE_SUM, &p).0, ALL_PASS);
    step(&s);
    // A pown out of a locker and a pown into one (1/20).
    for (serial, from, to) in [(1u32, key(1), an(0x31)), (5, an(5), key(3))] {
        let mut p = coin_ref(1, serial);
        p.extend_from_slice(&from);
        p.extend_from_slice(&to);
        assert_eq!(authentication(&*s, 20, p), ALL_PASS);
        step(&s);
    }
    // A pown_sum (1/21) that moves locker coins out by a delta.
    let mut p = coin_ref(1, 2);
    p.extend_from_slice(&coin_ref(1, 3));
    p.extend_from_slice(&xor(&[key(1), key(1)]));
    p.extend_from_slice(&an(0x0F));
    assert_eq!(authentication(&*s, 21, p), ALL_PASS);
    step(&s);
    assert_eq!(answer(&*s, PEEK, &key(1)), (ALL_FAIL, vec![]));
    // A remove into another locker, and store_multiple_sum.
    let p = remove_payload(key(2), &[(1, 4, key(3))]);
    assert_eq!(answer(&*s, REMOVE, &p).0, ALL_PASS);
    step(&s);
    let m = multi(&[(&[(1, 6), (6, 3)], xor(&[an(6), an(0x63)]), key(4))]);
    assert_eq!(answer(&*s, STORE_MULTIPLE_SUM, &m).0, ALL_PASS);
    step(&s);
    assert_eq!(
        answer(&*s, PEEK, &key(3)),
        (ALL_PASS, peek_body(&[(1, 4), (1, 5)]))
    );
}

#[test]
fn a_udp_peek_too_long_for_one_datagram_answers_16_and_tcp_sends_it() {
    let s = MemoryKeyStore::new();
    // 13,095 coins: 32 + 65,475 + 2 = 65,509 bytes, two past a datagram.
    for serial in 0..13_095u32 {
        s.insert_coin(0, serial, key(1));
    }
    assert_eq!(
        answer_over(&s, &raw(PEEK, 0, Some(&key(1))), Transport::Udp),
        (INVALID_PACKET_LENGTH, vec![])
    );
    let (status, body) = answer_over(&s, &raw(PEEK, 0, Some(&key(1))), Transport::Tcp);
    assert_eq!((status, body.len()), (ALL_PASS, 13_095 * 5));
    // One coin fewer fits (65,504 bytes).
    assert_eq!(s.remove_coin(0, 13_094), Some(key(1)));
    let (status, body) = answer_over(&s, &raw(PEEK, 0, Some(&key(1))), Transport::Udp);
    assert_eq!((status, body.len()), (ALL_PASS, 13_094 * 5));
}

#[test]
fn every_encryption_type_carries_the_locker_commands() {
    let s = store();
    assert_eq!(put(&*s, &[1, 2], key(1)).0, ALL_PASS);
    let keys = [
        Keys::Coin {
            coin: Coin::new(6, 3),
            an: an(0x63),
        },
        Keys::Coin256 {
            coin: Coin::new(6, 3),
            an: an(0x63),
        },
    ];
    for keys in keys {
        let mut req = Request::new(RAIDA_ID, 8, PEEK, keys);
        req.payload = key(1).to_vec();
        let built = req.build().expect("builds");
        let resp = answer_request(
            built.bytes(),
            &arrival(Transport::Udp),
            &rules(),
            &registry(),
            &*s,
            0,
            &[7; 22],
        )
        .expect("a response");
        let parsed = built.parse_response(&resp).expect("verifies");
        assert_eq!(parsed.header.status.0, ALL_PASS);
        assert_eq!(parsed.body, peek_body(&[(1, 1), (1, 2)]));
    }
}

/// A locker key with bytes 0..4 `prefix` and byte 5 `tail`.
fn prefixed_key(prefix: u8, tail: u8) -> An {
    let mut k = key(prefix);
    k[5] = tail;
    k
}

/// Sends `payload` as command `command` of group 8 over type 2 keyed by `locker`:
/// the raw answer, and, when it verifies under `locker`, its status and body.
fn type2(store: &dyn KeyStore, locker: An, command: u8, payload: &[u8]) -> (u8, Option<Vec<u8>>) {
    let mut req = Request::new(RAIDA_ID, 8, command, Keys::Locker { an: locker });
    req.payload = payload.to_vec();
    req.challenge = [9; 12];
    let built = req.build().expect("builds");
    let resp = answer_request(
        built.bytes(),
        &arrival(Transport::Udp),
        &rules(),
        &registry(),
        store,
        0,
        &[7; 22],
    )
    .expect("a response");
    let body = built.parse_response(&resp).ok().map(|r| r.body);
    (resp[2], body)
}

#[test]
fn type_2_finds_a_live_locker_by_its_prefix_and_an_emptied_one_answers_34() {
    let s = store();
    assert_eq!(put(&*s, &[1, 2], key(0x21)).0, ALL_PASS);
    assert_eq!(
        type2(&*s, key(0x21), PEEK, &key(0x21)),
        (ALL_PASS, Some(peek_body(&[(1, 1), (1, 2)])))
    );
    // A type-2 remove of the locker's last coins is answered under its key.
    let p = remove_payload(key(0x21), &[(1, 1, an(0xA1)), (1, 2, an(0xA2))]);
    assert_eq!(
        type2(&*s, key(0x21), REMOVE, &p),
        (ALL_PASS, Some(vec![0x03]))
    );
    // Emptied: the prefix names no locker, 34.
    assert_eq!(type2(&*s, key(0x21), PEEK, &key(0x21)).0, 34);
    // Never a locker: 34.
    assert_eq!(type2(&*s, key(0x22), PEEK, &key(0x22)).0, 34);
    // A plain coin's AN is no locker even when its prefix is asked for.
    assert_eq!(type2(&*s, an(3), PEEK, &an(3)).0, 34);
}

#[test]
fn type_2_tries_every_locker_sharing_a_prefix_in_ascending_key_order() {
    let s = store();
    let (low, mid, high) = (
        prefixed_key(0x50, 0x10),
        prefixed_key(0x50, 0x20),
        prefixed_key(0x50, 0x30),
    );
    assert_eq!(put(&*s, &[1], high).0, ALL_PASS);
    assert_eq!(put(&*s, &[2], low).0, ALL_PASS);
    assert_eq!(put(&*s, &[3], mid).0, ALL_PASS);
    for (k, coin) in [(low, 2), (mid, 3), (high, 1)] {
        assert_eq!(
            type2(&*s, k, PEEK, &k),
            (ALL_PASS, Some(peek_body(&[(1, coin)]))),
            "locker {:02x}",
            k[5]
        );
    }
    // A key no locker has, with the shared prefix: every candidate fails the CRC, the
    // first (lowest) keys the 37.
    let stranger = prefixed_key(0x50, 0x40);
    assert_eq!(type2(&*s, stranger, PEEK, &stranger), (37, None));
    // Once the lowest is emptied, the others still work.
    let p = remove_payload(low, &[(1, 2, an(0xB2))]);
    assert_eq!(type2(&*s, low, REMOVE, &p), (ALL_PASS, Some(vec![0x01])));
    assert_eq!(
        type2(&*s, high, PEEK, &high),
        (ALL_PASS, Some(peek_body(&[(1, 1)])))
    );
}

/// A store whose writes fail: puts and removes answer 252 and change nothing.
#[derive(Debug)]
struct FailingWrites(Arc<MemoryKeyStore>);

impl KeyStore for FailingWrites {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> raida_core::keys::Lookup {
        self.0.lookup(coin, now)
    }
    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.0.locker_an(prefix, now)
    }
    fn locker_coins(&self, key: &An, now: Timestamp) -> Vec<CoinId> {
        self.0.locker_coins(key, now)
    }
    fn record(
        &self,
        coin: CoinId,
        now: Timestamp,
    ) -> Result<Option<Record>, raida_core::keys::StoreError> {
        self.0.record(coin, now)
    }
    fn modify(
        &self,
        _: &[CoinId],
        _: Timestamp,
        _: &mut raida_core::keys::Change<'_>,
    ) -> Result<(), raida_core::keys::StoreError> {
        Err(raida_core::keys::StoreError::Write(std::io::Error::other(
            "disk full",
        )))
    }
}

#[test]
fn a_write_that_fails_answers_252_and_changes_nothing() {
    let inner = store();
    assert_eq!(put(&*inner, &[1], key(1)).0, ALL_PASS);
    let s = FailingWrites(Arc::clone(&inner));
    assert_eq!(put(&s, &[2, 3], key(1)), (252, vec![]));
    let p = remove_payload(key(1), &[(1, 1, an(0xF1))]);
    assert_eq!(answer(&s, REMOVE, &p), (252, vec![]));
    let m = multi(&[(&[(1, 4)], an(4), key(2))]);
    assert_eq!(answer(&s, STORE_MULTIPLE_SUM, &m), (252, vec![]));
    assert_eq!(an_of(&*inner, 1), Some(key(1)));
    assert_eq!(an_of(&*inner, 2), Some(an(2)));
    assert_eq!(an_of(&*inner, 4), Some(an(4)));
}
