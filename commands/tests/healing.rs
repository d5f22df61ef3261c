//! The healing commands of PROTOCOL.md section 8b served from this server's records
//! (get_ticket 2/40, validate_ticket 2/50, find 2/60) through the real codec
//! (`answer_request`) over the in-memory store: every row's checks in their order and
//! its answer bytes, the ticket's lifetime and room, claims once per RAIDA index (also
//! concurrently), withdrawal after a pown, and the claim address rule.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use raida_client::{BuiltRequest, Coin, Keys, Request};
use raida_commands::{FixedClock, HealingSetup};
use raida_core::codec::{answer_request, Arrival, HeaderRules};
use raida_core::keys::{An, KeyStore, MemoryKeyStore};
use raida_core::{CommandRegistry, Timestamp, Transport};

const RAIDA_ID: u8 = 7;
const MFS: u8 = 46;
const LIFETIME: Duration = Duration::from_secs(300);
/// The address every test's RAIDA 2 is listed at, and where claims come from.
const PEER: [u8; 4] = [10, 0, 0, 2];

fn an(n: u8) -> An {
    [n; 16]
}

/// A store with coins (1, s) for s in 1..=20 holding AN [s; 16], (1, 5000) and
/// (-3, 70000).
fn store() -> Arc<MemoryKeyStore> {
    let store = MemoryKeyStore::new();
    for s in 1..=20u32 {
        store.insert_coin(1, s, an(s as u8));
    }
    store.insert_coin(1, 5000, an(0x50));
    store.insert_coin(-3, 70_000, an(0x70));
    Arc::new(store)
}

fn setup() -> HealingSetup {
    let mut raida_servers = vec![None; 25];
    raida_servers[2] = Some(SocketAddr::from((PEER, 50_002)));
    raida_servers[3] = Some(SocketAddr::from(([10, 0, 0, 3], 50_003)));
    HealingSetup {
        ticket_lifetime: LIFETIME,
        max_tickets: 8,
        max_ticket_coins: 64,
        raida_servers,
        // RAIDA 3's host resolved to two addresses.
        raida_ips: vec![
            vec![],
            vec![],
            vec![],
            vec![IpAddr::from([10, 0, 0, 3]), IpAddr::from([10, 0, 1, 3])],
        ],
        claim_from: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 9, 9))],
    }
}

/// One server: its commands (one ticket table) and store, and a counter that gives
/// every request fresh random bytes.
struct Server {
    registry: CommandRegistry,
    store: Arc<MemoryKeyStore>,
    draws: std::sync::atomic::AtomicU32,
}

fn server_with(setup: HealingSetup) -> Server {
    let mut registry = CommandRegistry::with_builtins();
    for (g, c, h) in raida_commands::all(Arc::new(FixedClock(MFS)), setup) {
        registry.register(g, c, h).expect("free");
    }
    Server {
        registry,
        store: store(),
        draws: 0.into(),
    }
}

fn server() -> Server {
    server_with(setup())
}

/// Where and how a request comes in.
#[derive(Clone, Copy)]
struct From {
    peer: SocketAddr,
    transport: Transport,
    at: Timestamp,
}

const T0: Timestamp = Timestamp::from_micros(1_000_000);

fn tcp_from(ip: [u8; 4]) -> From {
    From {
        peer: SocketAddr::from((ip, 40_000)),
        transport: Transport::Tcp,
        at: T0,
    }
}

fn client() -> From {
    From {
        peer: SocketAddr::from(([203, 0, 113, 5], 40_000)),
        transport: Transport::Udp,
        at: T0,
    }
}

impl Server {
    /// The raw response bytes.
    fn raw(&self, from: From, bytes: &[u8]) -> Vec<u8> {
        let n = self
            .draws
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut random = [0u8; 22];
        random[..4].copy_from_slice(&n.to_be_bytes());
        let arrival = Arrival {
            peer: from.peer,
            transport: from.transport,
            at: from.at,
        };
        let rules = HeaderRules {
            raida_id: RAIDA_ID,
            coin_id: 6,
            max_body_size: 65_536,
        };
        let store: &dyn KeyStore = self.store.as_ref();
        answer_request(bytes, &arrival, &rules, &self.registry, store, 0, &random)
            .expect("a response")
    }

    /// Status and decrypted body.
    fn send(&self, from: From, req: &Request) -> (u8, Vec<u8>) {
        let built: BuiltRequest = req.build().expect("builds");
        let bytes = self.raw(from, built.bytes());
        let response = built
            .parse_response(&bytes)
            .expect("a response that verifies");
        (response.header.status.0, response.body)
    }

    fn record(&self, den: i8, serial: u32) -> An {
        self.store
            .record(raida_core::keys::CoinId::new(den, serial), T0)
            .expect("reads")
            .expect("known")
            .an
    }
}

fn request(command: u8, payload: Vec<u8>) -> Request {
    let mut r = Request::new(RAIDA_ID, 2, command, Keys::None);
    r.coin_id = 6;
    r.payload = payload;
    r.challenge = [3; 12];
    r
}

fn coin_ref(den: i8, serial: u32) -> Vec<u8> {
    let mut v = vec![den as u8];
    v.extend_from_slice(&serial.to_be_bytes());
    v
}

fn ticket_payload(coins: &[(i8, u32, An)]) -> Vec<u8> {
    coins
        .iter()
        .flat_map(|(d, s, a)| [coin_ref(*d, *s), a.to_vec()].concat())
        .collect()
}

fn claim_payload(raida: u8, ticket: u32) -> Vec<u8> {
    let mut p = vec![raida];
    p.extend_from_slice(&ticket.to_be_bytes());
    p
}

/// A get_ticket answered 241 or 243: its ticket (the last 4 body bytes).
fn get_ticket(s: &Server, coins: &[(i8, u32, An)]) -> (u8, u32) {
    let (status, body) = s.send(client(), &request(40, ticket_payload(coins)));
    assert!(matches!(status, 241 | 243), "status {status}");
    let t = body[body.len() - 4..].try_into().expect("4 bytes");
    (status, u32::from_be_bytes(t))
}

fn claim(s: &Server, from: From, raida: u8, ticket: u32) -> (u8, Vec<u8>) {
    s.send(from, &request(50, claim_payload(raida, ticket)))
}

#[test]
fn get_ticket_checks_in_order_36_16_39_40() {
    let s = server();
    let mut none = request(40, Vec::new());
    none.faults.no_body = true;
    assert_eq!(s.send(client(), &none).0, 36);
    assert_eq!(s.send(client(), &request(40, Vec::new())).0, 16);
    assert_eq!(s.send(client(), &request(40, vec![0; 20])).0, 16);
    assert_eq!(s.send(client(), &request(40, vec![0; 22])).0, 39);
    // A coin unknown after one that matched: 40, and no ticket is made (the table
    // still has room for all 8).
    let unknown = ticket_payload(&[(1, 1, an(1)), (1, 999, an(1))]);
    assert_eq!(s.send(client(), &request(40, unknown)), (40, Vec::new()));
    let aliased = ticket_payload(&[(1, 1 + (1 << 26), an(1))]);
    assert_eq!(s.send(client(), &request(40, aliased)).0, 40);
    for _ in 0..8 {
        get_ticket(&s, &[(1, 1, an(1))]);
    }
}

#[test]
fn get_ticket_answers_241_242_243_with_ticket_bytes() {
    let s = server();
    // Every AN matches: 241 and the ticket alone (4 bytes, nonzero).
    let (status, body) = s.send(
        client(),
        &request(40, ticket_payload(&[(1, 1, an(1)), (1, 2, an(2))])),
    );
    assert_eq!(status, 241);
    assert_eq!(body.len(), 4);
    assert_ne!(body, [0; 4]);
    // None matches: 242, no body.
    let (status, body) = s.send(client(), &request(40, ticket_payload(&[(1, 1, an(9))])));
    assert_eq!((status, body), (242, Vec::new()));
    // Some: 243, bitmap (ceil(9/8) = 2 bytes), then the ticket.
    let mut coins: Vec<(i8, u32, An)> = (1..=9).map(|s| (1, s, an(s as u8))).collect();
    coins[1].2 = an(0xEE);
    coins[8].2 = an(0xEE);
    let (status, body) = s.send(client(), &request(40, ticket_payload(&coins)));
    assert_eq!(status, 243);
    assert_eq!(body.len(), 2 + 4);
    assert_eq!(&body[..2], &[0b1111_1101, 0b0000_0000]);
    // No record changes.
    assert_eq!(s.record(1, 2), an(2));
    // The shard byte is not consulted: shard 2 is served like 0.
    let mut r = request(40, ticket_payload(&[(1, 3, an(3))]));
    r.shard = 2;
    assert_eq!(s.send(client(), &r).0, 241);
}

#[test]
fn tickets_are_distinct_and_the_claim_lists_coins_once_in_ticket_order() {
    let s = server();
    let (_, t1) = get_ticket(&s, &[(1, 5000, an(0x50)), (-3, 70_000, an(0x70))]);
    let (_, t2) = get_ticket(&s, &[(1, 5000, an(0x50))]);
    assert_ne!(t1, t2);
    // A coin listed twice is held once; a failing entry for it is not a second coin.
    let (status, t3) = get_ticket(
        &s,
        &[(1, 4, an(4)), (1, 3, an(3)), (1, 4, an(4)), (1, 3, an(0))],
    );
    assert_eq!(status, 243);
    let (status, body) = claim(&s, tcp_from(PEER), 2, t3);
    assert_eq!(status, 250);
    assert_eq!(body, [coin_ref(1, 4), coin_ref(1, 3)].concat());
}

/// PROTOCOL.md 8b's captured answer: a ticket holding 1:5000 and -3:70000, claimed for
/// RAIDA 2 on RAIDA 7 (coin id 6), with exactly the 55 bytes a fixing server sends.
#[test]
fn validate_ticket_answers_the_bytes_of_the_protocol_example() {
    let s = server();
    let (_, ticket) = get_ticket(&s, &[(1, 5000, an(0x50)), (-3, 70_000, an(0x70))]);
    let mut req = hex(
        "0100070002320006 0100000000000000 0000000000000017 0000000000000000 \
                       000102030405060708090a0b 9270c965 02 00000000 3e3e",
    );
    req[49..53].copy_from_slice(&ticket.to_be_bytes());
    assert_eq!(req.len(), 55);
    let got = s.raw(tcp_from(PEER), &req);
    let want = hex(
        "0700fa02 0001 0000 00 00000c 00000000 000102030405060708090a0b9270c965 \
                    0100001388 fd00011170 3e3e",
    );
    assert_eq!(got.len(), want.len());
    assert_eq!(&got[..12], &want[..12]);
    assert_eq!(&got[16..], &want[16..]);
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("0"), 16).unwrap_or(0))
        .collect()
}

#[test]
fn validate_ticket_checks_in_order_36_16_18_43_44() {
    let s = server();
    let (_, ticket) = get_ticket(&s, &[(1, 1, an(1))]);
    let peer = tcp_from(PEER);
    let mut none = request(50, Vec::new());
    none.faults.no_body = true;
    assert_eq!(s.send(peer, &none).0, 36);
    assert_eq!(s.send(peer, &request(50, Vec::new())).0, 16);
    assert_eq!(s.send(peer, &request(50, vec![2, 0, 0, 0])).0, 16);
    assert_eq!(s.send(peer, &request(50, vec![2, 0, 0, 0, 1, 0])).0, 16);
    // r >= 25: 18, even with a good ticket and a listed address.
    assert_eq!(claim(&s, peer, 25, ticket).0, 18);
    // Ticket 0, unknown: 43.
    assert_eq!(claim(&s, peer, 2, 0), (43, Vec::new()));
    assert_eq!(claim(&s, peer, 2, ticket ^ 1).0, 43);
    // The first claim for 2 answers the coins; every later one 44.
    assert_eq!(claim(&s, peer, 2, ticket), (250, coin_ref(1, 1)));
    assert_eq!(claim(&s, peer, 2, ticket), (44, Vec::new()));
    // Another index is unaffected (from its own address).
    assert_eq!(claim(&s, tcp_from([10, 0, 0, 3]), 3, ticket).0, 250);
    assert_eq!(claim(&s, tcp_from([10, 0, 0, 3]), 3, ticket).0, 44);
}

#[test]
fn a_claim_comes_over_tcp_from_the_raidas_address_or_claim_from() {
    let s = server();
    let (_, ticket) = get_ticket(&s, &[(1, 1, an(1))]);
    // Over UDP from the right address: 18, and nothing is consumed.
    let mut udp = tcp_from(PEER);
    udp.transport = Transport::Udp;
    assert_eq!(claim(&s, udp, 2, ticket), (18, Vec::new()));
    // From another RAIDA's address, or a client's: 18 before the ticket is looked up
    // (the same answer for an unknown ticket).
    assert_eq!(claim(&s, tcp_from([10, 0, 0, 3]), 2, ticket).0, 18);
    assert_eq!(claim(&s, tcp_from([203, 0, 113, 5]), 2, ticket ^ 1).0, 18);
    // A second address of RAIDA 3's host may claim for 3, not for 2.
    assert_eq!(claim(&s, tcp_from([10, 0, 1, 3]), 2, ticket).0, 18);
    assert_eq!(claim(&s, tcp_from([10, 0, 1, 3]), 3, ticket).0, 250);
    // RAIDA 4 has no listed address: only claim_from may claim for it.
    assert_eq!(claim(&s, tcp_from(PEER), 4, ticket).0, 18);
    assert_eq!(claim(&s, tcp_from([192, 168, 9, 9]), 4, ticket).0, 250);
    // An IPv4-mapped IPv6 peer counts as its IPv4 address.
    let mapped = From {
        peer: SocketAddr::from((Ipv4Addr::from(PEER).to_ipv6_mapped(), 40_000)),
        transport: Transport::Tcp,
        at: T0,
    };
    assert_eq!(claim(&s, mapped, 2, ticket).0, 250);
    // Without raida_servers every claim is 18.
    let bare = server_with(HealingSetup::default());
    let (_, ticket) = get_ticket(&bare, &[(1, 1, an(1))]);
    assert_eq!(claim(&bare, tcp_from(PEER), 2, ticket).0, 18);
}

#[test]
fn a_ticket_expires_after_its_lifetime_and_frees_its_room() {
    let mut setup = setup();
    setup.max_tickets = 1;
    let s = server_with(setup);
    let (_, ticket) = get_ticket(&s, &[(1, 1, an(1))]);
    let mut late = tcp_from(PEER);
    late.at = T0.saturating_add(LIFETIME - Duration::from_micros(1));
    assert_eq!(claim(&s, late, 2, ticket).0, 250);
    // Full until then.
    let mut c = client();
    c.at = late.at;
    assert_eq!(
        s.send(c, &request(40, ticket_payload(&[(1, 2, an(2))]))).0,
        42
    );
    // At 300 s it is gone: 43 (not 44 for the index claimed before), and its room
    // is free at once.
    late.at = T0.saturating_add(LIFETIME);
    assert_eq!(claim(&s, late, 2, ticket).0, 43);
    c.at = late.at;
    assert_eq!(
        s.send(c, &request(40, ticket_payload(&[(1, 2, an(2))]))).0,
        241
    );
}

#[test]
fn a_full_table_answers_42_and_all_failing_coins_still_242() {
    let mut setup = setup();
    setup.max_tickets = 2;
    setup.max_ticket_coins = 3;
    let s = server_with(setup);
    let (_, first) = get_ticket(&s, &[(1, 1, an(1)), (1, 2, an(2))]);
    // Two more coins would make 4 > 3: 42, no body.
    let two = ticket_payload(&[(1, 3, an(3)), (1, 4, an(4))]);
    assert_eq!(s.send(client(), &request(40, two)), (42, Vec::new()));
    get_ticket(&s, &[(1, 3, an(3))]);
    // Two tickets: the next one that needs a ticket is 42; one whose coins all fail
    // is 242; an unknown coin 40 first.
    let one = ticket_payload(&[(1, 5, an(5))]);
    assert_eq!(s.send(client(), &request(40, one)).0, 42);
    let failing = ticket_payload(&[(1, 5, an(0))]);
    assert_eq!(s.send(client(), &request(40, failing)).0, 242);
    let unknown = ticket_payload(&[(1, 5, an(5)), (1, 999, an(0))]);
    assert_eq!(s.send(client(), &request(40, unknown)).0, 40);
    // Issued tickets stay claimable.
    assert_eq!(claim(&s, tcp_from(PEER), 2, first).0, 250);
}

#[test]
fn a_pown_after_issue_withdraws_the_coin_from_the_ticket() {
    let s = server();
    let (_, ticket) = get_ticket(&s, &[(1, 5000, an(0x50)), (-3, 70_000, an(0x70))]);
    // Sell 1:5000.
    let pown = [coin_ref(1, 5000), an(0x50).to_vec(), an(0x51).to_vec()].concat();
    let mut r = Request::new(RAIDA_ID, 1, 20, Keys::None);
    r.coin_id = 6;
    r.payload = pown;
    assert_eq!(s.send(client(), &r).0, 241);
    assert_eq!(
        claim(&s, tcp_from(PEER), 2, ticket),
        (250, coin_ref(-3, 70_000))
    );
    // Sell the other: nothing is left to vouch for; 43 and no claim is recorded (the
    // next claim for 3 is 43 again, not 44).
    let mut r = Request::new(RAIDA_ID, 1, 20, Keys::None);
    r.coin_id = 6;
    r.payload = [coin_ref(-3, 70_000), an(0x70).to_vec(), an(0x71).to_vec()].concat();
    assert_eq!(s.send(client(), &r).0, 241);
    let raida3 = tcp_from([10, 0, 0, 3]);
    assert_eq!(claim(&s, raida3, 3, ticket), (43, Vec::new()));
    assert_eq!(claim(&s, raida3, 3, ticket).0, 43);
}

#[test]
fn of_concurrent_claims_for_one_index_exactly_one_gets_250() {
    for _ in 0..20 {
        let s = Arc::new(server());
        let (_, ticket) = get_ticket(&s, &[(1, 1, an(1))]);
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let s = Arc::clone(&s);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    claim(&s, tcp_from(PEER), 2, ticket).0
                })
            })
            .collect();
        let statuses: Vec<u8> = handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 250).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|&s| s == 250 || s == 44),
            "{statuses:?}"
        );
    }
}

#[test]
fn find_answers_208_209_210_211() {
    let s = server();
    let entry =
        |serial: u32, a: u8, p: u8| [coin_ref(1, serial), an(a).to_vec(), an(p).to_vec()].concat();
    let mut none = request(60, Vec::new());
    none.faults.no_body = true;
    assert_eq!(s.send(client(), &none).0, 36);
    assert_eq!(s.send(client(), &request(60, vec![0; 36])).0, 16);
    assert_eq!(s.send(client(), &request(60, vec![0; 38])).0, 39);
    let unknown = [
        entry(1, 1, 0),
        coin_ref(1, 999),
        an(0).to_vec(),
        an(0).to_vec(),
    ]
    .concat();
    assert_eq!(s.send(client(), &request(60, unknown)).0, 40);
    let all_an = [entry(1, 1, 0), entry(2, 2, 0)].concat();
    assert_eq!(s.send(client(), &request(60, all_an)), (209, Vec::new()));
    let all_pan = [entry(1, 0, 1), entry(2, 0, 2)].concat();
    assert_eq!(s.send(client(), &request(60, all_pan)), (210, Vec::new()));
    let neither = [entry(1, 0, 0), entry(2, 9, 9)].concat();
    assert_eq!(s.send(client(), &request(60, neither)), (208, Vec::new()));
    // AN wins when both equal the record.
    let mixed = [entry(1, 1, 1), entry(2, 0, 2), entry(3, 0, 0)].concat();
    assert_eq!(s.send(client(), &request(60, mixed)), (211, vec![1, 2, 0]));
    assert_eq!(s.record(1, 2), an(2), "no record changes");
}

#[test]
fn group_2_has_no_get_ticket_by_sum() {
    let s = server();
    assert_eq!(s.send(client(), &request(41, vec![0; 21])).0, 6);
}

#[test]
fn get_ticket_over_type_4_hides_the_ticket_from_the_header() {
    let s = server();
    let mut r = request(40, ticket_payload(&[(1, 1, an(1))]));
    r.keys = Keys::Coin256 {
        coin: Coin {
            denomination: 1,
            serial: 2,
        },
        an: an(2),
    };
    let built = r.build().expect("builds");
    let bytes = s.raw(client(), built.bytes());
    let response = built.parse_response(&bytes).expect("verifies");
    assert_eq!(response.header.status.0, 241);
    let ticket = &response.body[..4];
    // The header's random bytes (24..46) never contain the ticket.
    assert!(!bytes[24..46].windows(4).any(|w| w == ticket));
}
