//! fix (2/80) through the engine, with the other 24 RAIDAs played by scripted
//! in-memory peers (raida-testkit): the checks in their order, the exact peer requests,
//! votes from distinct peers, the new AN, MFS, the answer, and 160 past `max_fixes`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raida_client::{Coin, Keys, Request};
use raida_commands::{new_an, peer_request, FixedClock};
use raida_core::keys::{An, CoinId, KeyStore, MemoryKeyStore};
use raida_core::{CommandRegistry, Engine, EngineConfig, Status, Timestamp};
use raida_testkit::{Driver, PeerScript};

const RAIDA_ID: u8 = 7;
const COIN_ID: u16 = 6;
const MFS: u8 = 46;
const DEADLINE: Duration = Duration::from_millis(8_000);
const PG: An = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// The coins of these tests: (1, 5000) and (-3, 16777217), the examples of 8b's new
/// AN, and (1, 9).
const A: (i8, u32) = (1, 5000);
const B: (i8, u32) = (-3, 16_777_217);
const C: (i8, u32) = (1, 9);
const KEY_AN: An = [0x4B; 16];

fn coin(c: (i8, u32)) -> CoinId {
    CoinId::new(c.0, c.1)
}

fn peer_addr(raida: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50_000 + u16::from(raida)))
}

fn ticket(raida: u8) -> u32 {
    0x1111_1100 + u32::from(raida)
}

fn store() -> Arc<MemoryKeyStore> {
    let store = MemoryKeyStore::new();
    store.insert_coin(A.0, A.1, [0xAA; 16]);
    store.insert_coin(B.0, B.1, [0xBB; 16]);
    store.insert_coin(C.0, C.1, [0xCC; 16]);
    store.insert_coin(2, 2, KEY_AN);
    Arc::new(store)
}

fn harness(store: Arc<MemoryKeyStore>, max_fixes: usize) -> Driver {
    let peers = (0..25u8).map(|i| Some(peer_addr(i))).collect();
    let mut config = EngineConfig::default().with_peers(peers, DEADLINE, max_fixes);
    config.raida_id = RAIDA_ID;
    config.coin_id = COIN_ID;
    let mut commands = CommandRegistry::with_builtins();
    for (g, c, h) in raida_commands::all(Arc::new(FixedClock(MFS)), Default::default()) {
        commands.register(g, c, h).expect("free");
    }
    let engine = Engine::new(config, commands, store);
    Driver::new(engine, Timestamp::from_micros(1_000_000), [0x5A; 22])
}

fn coin_ref(c: (i8, u32)) -> Vec<u8> {
    let mut v = vec![c.0 as u8];
    v.extend_from_slice(&c.1.to_be_bytes());
    v
}

/// A fix payload for `coins`, PG, and a nonzero ticket at every position in `tickets`.
fn fix_payload(coins: &[(i8, u32)], tickets: &[u8]) -> Vec<u8> {
    let mut p: Vec<u8> = coins.iter().flat_map(|&c| coin_ref(c)).collect();
    p.extend_from_slice(&PG);
    for i in 0..25u8 {
        let t = if tickets.contains(&i) { ticket(i) } else { 0 };
        p.extend_from_slice(&t.to_be_bytes());
    }
    p
}

fn fix_request(payload: Vec<u8>, keys: Keys) -> Request {
    let mut r = Request::new(RAIDA_ID, 2, 80, keys);
    r.coin_id = COIN_ID;
    r.payload = payload;
    r.challenge = [3; 12];
    r
}

/// A claim answer (2/50's 250) listing `coins`, in section 5's framing.
fn claim_answer(coins: &[(i8, u32)]) -> Vec<u8> {
    let mut body: Vec<u8> = coins.iter().flat_map(|&c| coin_ref(c)).collect();
    body.extend_from_slice(&[0x3E, 0x3E]);
    let mut r = vec![0u8; 32];
    r[2] = 250;
    r[9..12].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    r.extend_from_slice(&body);
    r
}

/// Sends `req` over TCP and returns the status and the (decrypted) body.
fn send(h: &mut Driver, req: &Request) -> (u8, Vec<u8>) {
    let built = req.build().expect("builds");
    let id = h.accept();
    h.send(id, built.bytes());
    if h.out(id).is_empty() {
        // Waiting for peers that hang: the deadline ends their calls.
        h.advance(DEADLINE);
    }
    let out = h.out(id).to_vec();
    h.hang_up(id);
    let response = built
        .parse_response(&out)
        .expect("a response that verifies");
    (response.header.status.0, response.body)
}

/// The peers other than this server, in order.
fn others() -> impl Iterator<Item = u8> {
    (0..25u8).filter(|&i| i != RAIDA_ID)
}

fn record(store: &MemoryKeyStore, c: (i8, u32)) -> (An, u8) {
    let r = store
        .record(coin(c), Timestamp::ZERO)
        .expect("readable")
        .expect("known");
    (r.an, r.status)
}

#[test]
fn thirteen_vouching_peers_fix_the_coin_with_the_protocol_new_an() {
    let store = store();
    let mut h = harness(Arc::clone(&store), 64);
    let vouching: Vec<u8> = others().take(13).collect();
    for &i in &vouching {
        h.peer_scripts
            .insert(peer_addr(i), PeerScript::Answer(claim_answer(&[A, B])));
    }
    // Tickets from the 13, from this server's own position (never claimed), and from
    // two peers that do not vouch.
    let mut tickets = vouching.clone();
    tickets.extend([RAIDA_ID, 20, 21]);
    h.peer_scripts
        .insert(peer_addr(20), PeerScript::Answer(claim_answer(&[C])));
    // An empty list (S = 2): no votes.
    h.peer_scripts
        .insert(peer_addr(21), PeerScript::Answer(claim_answer(&[])));
    let (status, body) = send(
        &mut h,
        &fix_request(fix_payload(&[A, B], &tickets), Keys::None),
    );
    assert_eq!(status, Status::AllPass.code());
    assert!(body.is_empty());
    // 8b's vectors: RAIDA 7, PG 00..0f.
    assert_eq!(
        record(&store, A),
        (
            [
                0xe8, 0x88, 0x5a, 0x7e, 0x9e, 0xcf, 0x1a, 0x3d, 0x39, 0x47, 0xb2, 0xb7, 0x56, 0x67,
                0xdc, 0xbb
            ],
            MFS
        )
    );
    assert_eq!(record(&store, B), (new_an(RAIDA_ID, coin(B), &PG), MFS));
    assert_eq!(
        record(&store, B).0[..4],
        [0x45, 0x3b, 0x80, 0x69],
        "the second vector"
    );
    // Every nonzero ticket but our own was claimed, with exactly 8b's 55 bytes.
    let mut called: Vec<(u8, Vec<u8>)> = h
        .peer_conns()
        .map(|(_, addr, p)| ((addr.port() - 50_000) as u8, p.request().to_vec()))
        .collect();
    called.sort();
    let mut expected: Vec<u8> = vouching.clone();
    expected.extend([20, 21]);
    expected.sort();
    assert_eq!(called.iter().map(|(i, _)| *i).collect::<Vec<_>>(), expected);
    for (i, request) in called {
        assert_eq!(
            request,
            peer_request(RAIDA_ID, i, COIN_ID, ticket(i)).to_vec()
        );
    }
    h.assert_no_leaks();
}

#[test]
fn twelve_vouching_peers_are_not_enough() {
    let store = store();
    let mut h = harness(Arc::clone(&store), 64);
    let vouching: Vec<u8> = others().take(12).collect();
    for &i in &vouching {
        h.peer_scripts
            .insert(peer_addr(i), PeerScript::Answer(claim_answer(&[A])));
    }
    let (status, _) = send(
        &mut h,
        &fix_request(fix_payload(&[A], &vouching), Keys::None),
    );
    assert_eq!(status, Status::AllFail.code());
    assert_eq!(record(&store, A), ([0xAA; 16], 0), "unchanged");
    h.assert_no_leaks();
}

#[test]
fn a_coin_listed_many_times_by_one_peer_is_one_vote() {
    let store = store();
    let mut h = harness(Arc::clone(&store), 64);
    let vouching: Vec<u8> = others().take(12).collect();
    for &i in &vouching[1..] {
        h.peer_scripts
            .insert(peer_addr(i), PeerScript::Answer(claim_answer(&[A])));
    }
    // The first peer lists A thirteen times: still one vote, 12 peers in all.
    h.peer_scripts.insert(
        peer_addr(vouching[0]),
        PeerScript::Answer(claim_answer(&[A; 13])),
    );
    let (status, _) = send(
        &mut h,
        &fix_request(fix_payload(&[A], &vouching), Keys::None),
    );
    assert_eq!(status, Status::AllFail.code());
    assert_eq!(record(&store, A).0, [0xAA; 16]);
    h.assert_no_leaks();
}

#[test]
fn a_coin_at_several_positions_gets_one_verdict_and_garbage_gives_no_votes() {
    let store = store();
    let mut h = harness(Arc::clone(&store), 64);
    let peers: Vec<u8> = others().take(14).collect();
    // 13 vouch for A; 12 of them also for C; the 14th answers garbage listing C (S not
    // 5k + 2), and one of the 13 hangs after vouching for nothing.
    for &i in &peers[..12] {
        h.peer_scripts.insert(
            peer_addr(i),
            PeerScript::Answer(claim_answer(&[A, C, (5, 5)])),
        );
    }
    h.peer_scripts
        .insert(peer_addr(peers[12]), PeerScript::Answer(claim_answer(&[A])));
    let mut garbage = claim_answer(&[C]);
    garbage.insert(32, 0x00);
    garbage[11] += 1;
    h.peer_scripts
        .insert(peer_addr(peers[13]), PeerScript::Answer(garbage));
    h.peer_scripts.insert(peer_addr(23), PeerScript::Hang);
    let mut tickets = peers.clone();
    tickets.push(23);
    let (status, body) = send(
        &mut h,
        &fix_request(fix_payload(&[A, C, A], &tickets), Keys::None),
    );
    assert_eq!(status, Status::Mixed.code());
    assert_eq!(body, [0b101], "A at both positions, C not");
    assert_eq!(record(&store, A), (new_an(RAIDA_ID, coin(A), &PG), MFS));
    assert_eq!(record(&store, C).0, [0xCC; 16]);
    h.assert_no_leaks();
}

#[test]
fn the_checks_come_in_their_order_and_before_any_call() {
    let store = store();
    let mut h = harness(Arc::clone(&store), 64);
    let all: Vec<u8> = others().collect();
    // 120 bytes: 16. 122 bytes: 39. An unknown coin: 40. No body at all: 36.
    let short = fix_payload(&[A], &all)[..120].to_vec();
    assert_eq!(send(&mut h, &fix_request(short, Keys::None)).0, 16);
    let mut odd = fix_payload(&[A], &all);
    odd.insert(0, 1);
    assert_eq!(send(&mut h, &fix_request(odd, Keys::None)).0, 39);
    let unknown = fix_payload(&[A, (1, 77)], &all);
    assert_eq!(send(&mut h, &fix_request(unknown, Keys::None)).0, 40);
    let mut empty = fix_request(Vec::new(), Keys::None);
    empty.faults.no_body = true;
    assert_eq!(send(&mut h, &empty).0, 36);
    assert_eq!(h.peer_conns().count(), 0, "nobody was called");
    // No tickets at all: nobody to call, one vote: 242.
    assert_eq!(
        send(&mut h, &fix_request(fix_payload(&[A], &[]), Keys::None)).0,
        242
    );
    h.assert_no_leaks();
}

#[test]
fn past_max_fixes_a_fix_is_answered_160_and_an_encrypted_fix_is_answered_in_its_key() {
    let store = store();
    let mut h = harness(Arc::clone(&store), 1);
    h.peer_scripts.insert(peer_addr(0), PeerScript::Hang);
    let waiting = fix_request(fix_payload(&[A], &[0]), Keys::None)
        .build()
        .expect("builds");
    let first = h.accept();
    h.send(first, waiting.bytes());
    assert!(h.out(first).is_empty());
    let (status, _) = send(&mut h, &fix_request(fix_payload(&[A], &[0]), Keys::None));
    assert_eq!(status, 160);
    h.advance(DEADLINE);
    assert_eq!(h.out(first)[2], 242);
    h.hang_up(first);

    // Over type 1 (keyed by coin 2:2): 13 vouching peers, the answer decrypts.
    let vouching: Vec<u8> = others().take(13).collect();
    for &i in &vouching {
        h.peer_scripts
            .insert(peer_addr(i), PeerScript::Answer(claim_answer(&[C])));
    }
    let keys = Keys::Coin {
        coin: Coin::new(2, 2),
        an: KEY_AN,
    };
    let (status, _) = send(&mut h, &fix_request(fix_payload(&[C], &vouching), keys));
    assert_eq!(status, 241);
    assert_eq!(record(&store, C), (new_an(RAIDA_ID, coin(C), &PG), MFS));
    h.assert_no_leaks();
}
