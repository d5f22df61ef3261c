//! The healing commands of PROTOCOL.md section 8b that answer from the server's own
//! records (get_ticket 2/40, validate_ticket 2/50, find 2/60) against the real server
//! over its on-disk demo store (raida id 0, coin id 0), over TCP and UDP: a wallet's
//! get_ticket (type 0, 32-byte header, the whole answer in one read), the exact 55
//! bytes a fixing RAIDA sends to claim a ticket and the answer it reads, a claim once
//! per index, the claim's TCP + address rule, and find.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use raida_client::{exchange, Keys, Request, Timeouts, Transport};
use raida_core::keys::An;
use raida_store::demo_coin_an;
use raida_tests::{demo_root, read_to_eof, Server, GENEROUS};

/// Every RAIDA listed at 127.0.0.1: every local process may claim for any index.
fn local_network() -> String {
    (0..25)
        .map(|i| format!("127.0.0.1:{}", 50_000 + i))
        .collect::<Vec<_>>()
        .join(",")
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

/// A type-0 request of group 2 as a wallet writes it: 32-byte header, a challenge of
/// 12 bytes and their CRC-32 (big-endian), the payload, `3E 3E`.
fn wallet_request(command: u8, payload: &[u8]) -> Vec<u8> {
    let random = [0x5Au8; 12];
    let mut body = random.to_vec();
    body.extend_from_slice(&crc32fast::hash(&random).to_be_bytes());
    body.extend_from_slice(payload);
    body.extend_from_slice(&[0x3E, 0x3E]);
    let mut h = [0u8; 32];
    h[0] = 1;
    h[4] = 2;
    h[5] = command;
    let len = u16::try_from(body.len()).expect("fits");
    h[22..24].copy_from_slice(&len.to_be_bytes());
    [h.to_vec(), body].concat()
}

/// The 55 bytes a fixing RAIDA `fixer` sends RAIDA 0 (coin id 0) to claim `ticket`
/// (PROTOCOL.md 8b, "The peer call").
fn claim_request(fixer: u8, ticket: u32) -> Vec<u8> {
    let mut r = vec![1, 0, 0, 0, 2, 50, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x17, 0, 0, 0, 0, 0, 0, 0, 0]);
    r.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x92, 0x70, 0xc9, 0x65]);
    r.push(fixer);
    r.extend_from_slice(&ticket.to_be_bytes());
    r.extend_from_slice(&[0x3e, 0x3e]);
    assert_eq!(r.len(), 55);
    r
}

/// Writes `request` on a new TCP connection and reads the answer with one `read` into
/// a 4096-byte buffer, as qmail-client's `recv(4096)` does.
fn wallet_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("timeout");
    s.write_all(request).expect("write");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("read");
    buf[..n].to_vec()
}

/// What a fixer reads: the whole answer, to the server's close.
fn peer_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("timeout");
    s.write_all(request).expect("write");
    read_to_eof(&mut s).expect("read")
}

/// Sends (group 2, `command`, `payload`) with the client library; status and body.
fn call(server: &Server, transport: Transport, command: u8, payload: &[u8]) -> (u8, Vec<u8>) {
    let mut req = Request::new(0, 2, command, Keys::None);
    req.payload = payload.to_vec();
    req.randomize().expect("random");
    let built = req.build().expect("builds");
    let addr = match transport {
        Transport::Tcp => server.tcp,
        Transport::Udp => server.udp,
    };
    let reply = exchange(addr, transport, &built, &Timeouts::uniform(GENEROUS))
        .unwrap_or_else(|e| panic!("{transport:?} command {command}: {e}"));
    (reply.response.header.status.0, reply.response.body)
}

#[test]
fn a_wallet_s_get_ticket_and_a_fixer_s_claim_byte_for_byte_over_tcp() {
    let root = demo_root();
    let network = local_network();
    let server = Server::start(root.path(), &["--raida-servers", &network]);
    let coins = [(1, 1, demo_coin_an(1, 1)), (-1, 2, demo_coin_an(-1, 2))];
    let answer = wallet_exchange(server.tcp, &wallet_request(40, &ticket_payload(&coins)));
    assert_eq!(answer.len(), 32 + 6, "the whole answer in one read");
    assert_eq!((answer[0], answer[1], answer[2], answer[3]), (0, 0, 241, 2));
    assert_eq!(&answer[9..12], &[0, 0, 6], "ticket and trailer");
    assert_eq!(&answer[36..], &[0x3E, 0x3E]);
    let ticket = u32::from_be_bytes([answer[32], answer[33], answer[34], answer[35]]);
    assert_ne!(ticket, 0);

    // RAIDA 9's claim: 250 and the two coins, in ticket order, framed as section 5.
    let reply = peer_exchange(server.tcp, &claim_request(9, ticket));
    assert_eq!(reply.len(), 32 + 12);
    assert_eq!(&reply[..4], &[0, 0, 250, 2]);
    assert_eq!(&reply[4..12], &[0, 1, 0, 0, 0, 0, 0, 12]);
    assert_eq!(
        &reply[16..32],
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x92, 0x70, 0xc9, 0x65]
    );
    assert_eq!(&reply[32..], &[1, 0, 0, 0, 1, 0xff, 0, 0, 0, 2, 0x3e, 0x3e]);
    // Once per index: 44 for 9, another index still 250.
    let again = peer_exchange(server.tcp, &claim_request(9, ticket));
    assert_eq!((again[2], again.len()), (44, 32));
    assert_eq!(
        peer_exchange(server.tcp, &claim_request(10, ticket))[2],
        250
    );
    // Ticket 0 and an unknown ticket: 43.
    assert_eq!(peer_exchange(server.tcp, &claim_request(11, 0))[2], 43);
    assert_eq!(
        peer_exchange(server.tcp, &claim_request(11, ticket ^ 1))[2],
        43
    );
}

#[test]
fn claims_only_over_tcp_from_a_listed_address() {
    let root = demo_root();
    let network = local_network();
    let server = Server::start(root.path(), &["--raida-servers", &network]);
    let coins = [(0, 3, demo_coin_an(0, 3))];
    let (status, body) = call(&server, Transport::Udp, 40, &ticket_payload(&coins));
    assert_eq!(status, 241);
    let ticket = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    let mut claim = vec![4];
    claim.extend_from_slice(&ticket.to_be_bytes());
    // Over UDP: 18, and nothing is consumed.
    assert_eq!(call(&server, Transport::Udp, 50, &claim).0, 18);
    assert_eq!(
        call(&server, Transport::Tcp, 50, &claim),
        (250, coin_ref(0, 3))
    );
    claim[0] = 25;
    assert_eq!(call(&server, Transport::Tcp, 50, &claim).0, 18);

    // A server whose raida_servers do not list this address (nor any at all).
    let elsewhere = demo_root();
    let listed = (0..25)
        .map(|i| format!("10.255.0.{}:{}", i + 1, 50_000 + i))
        .collect::<Vec<_>>()
        .join(",");
    let strict = Server::start(elsewhere.path(), &["--raida-servers", &listed]);
    let (_, body) = call(&strict, Transport::Tcp, 40, &ticket_payload(&coins));
    let ticket = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    assert_eq!(peer_exchange(strict.tcp, &claim_request(4, ticket))[2], 18);
    let bare_root = demo_root();
    let bare = Server::start(bare_root.path(), &[]);
    let (_, body) = call(&bare, Transport::Tcp, 40, &ticket_payload(&coins));
    let ticket = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    assert_eq!(peer_exchange(bare.tcp, &claim_request(4, ticket))[2], 18);
    // claim_from lets this address claim on the strict server.
    let from_root = demo_root();
    let trusted = Server::start(
        from_root.path(),
        &["--raida-servers", &listed, "--claim-from", "127.0.0.1"],
    );
    let (_, body) = call(&trusted, Transport::Tcp, 40, &ticket_payload(&coins));
    let ticket = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    assert_eq!(
        peer_exchange(trusted.tcp, &claim_request(4, ticket))[2],
        250
    );
}

#[test]
fn find_and_get_ticket_over_tcp_and_udp() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    for transport in [Transport::Tcp, Transport::Udp] {
        let an = demo_coin_an(1, 5);
        let entry = |a: An, p: An| [coin_ref(1, 5), a.to_vec(), p.to_vec()].concat();
        assert_eq!(
            call(&server, transport, 60, &entry(an, [0; 16])),
            (209, Vec::new())
        );
        assert_eq!(
            call(&server, transport, 60, &entry([0; 16], an)),
            (210, Vec::new())
        );
        assert_eq!(
            call(&server, transport, 60, &entry([0; 16], [1; 16])),
            (208, Vec::new())
        );
        let mixed = [entry(an, [0; 16]), entry([0; 16], [0; 16])].concat();
        assert_eq!(call(&server, transport, 60, &mixed), (211, vec![1, 0]));
        let unknown = [coin_ref(1, 1 << 26), an.to_vec(), an.to_vec()].concat();
        assert_eq!(call(&server, transport, 60, &unknown).0, 40);
        let coins = [(1, 5, an), (1, 6, [0; 16])];
        let (status, body) = call(&server, transport, 40, &ticket_payload(&coins));
        assert_eq!((status, body.len(), body[0]), (243, 5, 0b01));
        assert_eq!(call(&server, transport, 41, &ticket_payload(&coins)).0, 6);
    }
}

#[test]
fn the_healing_table_bounds_room_and_lifetime() {
    let root = demo_root();
    let network = local_network();
    let server = Server::start(
        root.path(),
        &[
            "--raida-servers",
            &network,
            "--max-tickets",
            "1",
            "--ticket-lifetime-s",
            "1",
        ],
    );
    let coins = [(0, 4, demo_coin_an(0, 4))];
    let (status, body) = call(&server, Transport::Tcp, 40, &ticket_payload(&coins));
    assert_eq!(status, 241);
    let ticket = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    // One ticket is all the room there is: 42, no body.
    assert_eq!(
        call(&server, Transport::Udp, 40, &ticket_payload(&coins)),
        (42, Vec::new())
    );
    assert_eq!(peer_exchange(server.tcp, &claim_request(1, ticket))[2], 250);
    // Past its lifetime (1 s) the ticket is gone (43) and its room free.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(peer_exchange(server.tcp, &claim_request(2, ticket))[2], 43);
    assert_eq!(
        call(&server, Transport::Udp, 40, &ticket_payload(&coins)).0,
        241
    );
}
