//! The lockers of PROTOCOL.md section 8c against the real server over its on-disk
//! store (the demo store: denominations 0, 1 and -1, serials 1..=16 and every serial of
//! those pages known): a wallet's put and peek (type 0, 32-byte header, the whole
//! answer in one read) over TCP; put, peek, remove over TCP and UDP and encryption
//! types 0, 1, 2 and 4; 198 for a coin listed twice; concurrent puts of one coin into
//! different lockers (one winner); and lockers surviving a SIGKILL and a restart (the
//! index rebuilt from the records: peek, remove and type 2 work again).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};

use raida_client::{exchange, Coin, Keys, Request, Timeouts, Transport};
use raida_core::keys::An;
use raida_store::demo_coin_an;
use raida_tests::{demo_root, Server, GENEROUS};

const PASS: u8 = 241;
const FAIL: u8 = 242;
const MIXED: u8 = 243;
const STORE_SUM: u8 = 82;
const PEEK: u8 = 83;
const REMOVE: u8 = 84;
const STORE_MULTIPLE_SUM: u8 = 88;

fn key(n: u8) -> An {
    let mut k = [n; 16];
    k[12..].copy_from_slice(&[0xFF; 4]);
    k
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

fn put_payload(coins: &[(i8, u32)], k: An) -> Vec<u8> {
    let mut p: Vec<u8> = coins.iter().flat_map(|(d, s)| coin_ref(*d, *s)).collect();
    let ans: Vec<An> = coins.iter().map(|(d, s)| demo_coin_an(*d, *s)).collect();
    p.extend_from_slice(&xor(&ans));
    p.extend_from_slice(&k);
    p
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

fn keys(enc: u8, locker: An) -> Keys {
    // The key coin is one the tests never move.
    let coin = Coin::new(0, 16);
    let an = demo_coin_an(0, 16);
    match enc {
        0 => Keys::None,
        1 => Keys::Coin { coin, an },
        2 => Keys::Locker { an: locker },
        4 => Keys::Coin256 { coin, an },
        other => panic!("type {other}"),
    }
}

/// Sends (group 8, `command`, `payload`) and returns the status and decrypted body.
fn call(
    addr: SocketAddr,
    transport: Transport,
    keys: Keys,
    command: u8,
    payload: &[u8],
) -> (u8, Vec<u8>) {
    let mut req = Request::new(0, 8, command, keys);
    req.payload = payload.to_vec();
    req.randomize().expect("random");
    let built = req.build().expect("builds");
    let reply = exchange(addr, transport, &built, &Timeouts::uniform(GENEROUS))
        .unwrap_or_else(|e| panic!("{transport:?} command {command}: {e}"));
    (reply.response.header.status.0, reply.response.body)
}

fn addr(server: &Server, transport: Transport) -> SocketAddr {
    match transport {
        Transport::Tcp => server.tcp,
        Transport::Udp => server.udp,
    }
}

/// A type-0 request of group 8 as a wallet writes it: 32-byte header, a challenge of
/// 12 bytes and their CRC-32 (big-endian), the payload, `3E 3E`.
fn wallet_request(command: u8, payload: &[u8]) -> Vec<u8> {
    let random = [0x5Au8; 12];
    let mut body = random.to_vec();
    body.extend_from_slice(&crc32fast::hash(&random).to_be_bytes());
    body.extend_from_slice(payload);
    body.extend_from_slice(&[0x3E, 0x3E]);
    let mut h = [0u8; 32];
    h[0] = 1;
    h[4] = 8;
    h[5] = command;
    let len = u16::try_from(body.len()).expect("fits");
    h[22..24].copy_from_slice(&len.to_be_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(&body);
    out
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

#[test]
fn a_wallet_s_put_and_peek_over_tcp_type_0() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let coins = [(1, 1), (-1, 2), (1, 3)];
    let answer = wallet_exchange(
        server.tcp,
        &wallet_request(STORE_SUM, &put_payload(&coins, key(0x31))),
    );
    assert_eq!(answer.len(), 32, "the whole put answer in one read");
    assert_eq!((answer[2], answer[3]), (PASS, 8));
    assert_eq!(&answer[9..12], &[0, 0, 0], "no body");
    let answer = wallet_exchange(server.tcp, &wallet_request(PEEK, &key(0x31)));
    assert_eq!(answer[2], PASS);
    let body = peek_body(&[(-1, 2), (1, 1), (1, 3)]);
    assert_eq!(&answer[9..12], &[0, 0, (body.len() + 2) as u8]);
    assert_eq!(&answer[32..answer.len() - 2], &body[..]);
    assert_eq!(&answer[answer.len() - 2..], &[0x3E, 0x3E]);
}

#[test]
fn put_peek_remove_over_tcp_and_udp_and_types_0_1_2_4() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut serial = 1u32;
    let mut k = 0x40u8;
    for transport in [Transport::Tcp, Transport::Udp] {
        for enc in [0u8, 1, 2, 4] {
            let at = addr(&server, transport);
            let locker = key(k);
            // Type 2 needs the locker to exist: the put goes over type 0 then.
            let put_keys = if enc == 2 {
                keys(0, locker)
            } else {
                keys(enc, locker)
            };
            let coins = [(1, serial), (0, serial)];
            let p = put_payload(&coins, locker);
            assert_eq!(
                call(at, transport, put_keys, STORE_SUM, &p),
                (PASS, vec![]),
                "{transport:?} type {enc}"
            );
            assert_eq!(
                call(at, transport, keys(enc, locker), PEEK, &locker),
                (PASS, peek_body(&[(0, serial), (1, serial)])),
                "{transport:?} type {enc}"
            );
            // A coin listed twice: 198, nothing moves.
            let twice = remove_payload(locker, &[(1, serial, [1; 16]), (1, serial, [2; 16])]);
            assert_eq!(
                call(at, transport, keys(enc, locker), REMOVE, &twice).0,
                198
            );
            // One coin out (and one never in): 243 with floor(2/8) + 1 bytes.
            let p = remove_payload(locker, &[(1, serial, [0xAA; 16]), (1, 15, [0xAB; 16])]);
            assert_eq!(
                call(at, transport, keys(enc, locker), REMOVE, &p),
                (MIXED, vec![0x01])
            );
            // The last coin out: under type 2 still answered with the locker's key.
            let p = remove_payload(locker, &[(0, serial, [0xAC; 16])]);
            assert_eq!(
                call(at, transport, keys(enc, locker), REMOVE, &p),
                (PASS, vec![0x01])
            );
            if enc == 2 {
                // Emptied: the prefix names no locker any more, 34.
                assert_eq!(call(at, transport, keys(2, locker), PEEK, &locker).0, 34);
            } else {
                assert_eq!(
                    call(at, transport, keys(enc, locker), PEEK, &locker),
                    (FAIL, vec![])
                );
            }
            serial += 1;
            k += 1;
        }
    }
    // store_multiple_sum: the second locker's sum is wrong.
    let mut m = vec![2u8, 0, 1];
    m.extend_from_slice(&put_payload(&[(-1, 9)], key(0x60)));
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&coin_ref(-1, 10));
    m.extend_from_slice(&[0; 16]);
    m.extend_from_slice(&key(0x61));
    assert_eq!(
        call(
            server.udp,
            Transport::Udp,
            Keys::None,
            STORE_MULTIPLE_SUM,
            &m
        ),
        (MIXED, vec![0x01])
    );
}

#[test]
fn of_concurrent_puts_of_one_coin_into_different_lockers_exactly_one_passes() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let (tcp, udp) = (server.tcp, server.udp);
    let n = 16u8;
    let barrier = Arc::new(Barrier::new(usize::from(n)));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let p = put_payload(&[(1, 7), (1, 8)], key(0x70 + i));
                let (transport, at) = if i % 2 == 0 {
                    (Transport::Udp, udp)
                } else {
                    (Transport::Tcp, tcp)
                };
                barrier.wait();
                call(at, transport, Keys::None, STORE_SUM, &p).0
            })
        })
        .collect();
    let results: Vec<u8> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        results.iter().filter(|&&r| r == PASS).count(),
        1,
        "{results:?}"
    );
    assert_eq!(results.iter().filter(|&&r| r == FAIL).count(), 15);
    let winner = (0..n)
        .find(|&i| results[usize::from(i)] == PASS)
        .expect("one");
    assert_eq!(
        call(tcp, Transport::Tcp, Keys::None, PEEK, &key(0x70 + winner)),
        (PASS, peek_body(&[(1, 7), (1, 8)]))
    );
}

#[test]
fn an_answered_put_survives_a_sigkill_and_the_index_is_rebuilt() {
    let root = demo_root();
    let locker = key(0x90);
    {
        let mut server = Server::start(root.path(), &[]);
        let p = put_payload(&[(0, 4), (-1, 5)], locker);
        assert_eq!(
            call(server.tcp, Transport::Tcp, Keys::None, STORE_SUM, &p).0,
            PASS
        );
        server.signal(libc::SIGKILL);
        assert!(server.wait_exit(GENEROUS).is_some());
    }
    let server = Server::start(root.path(), &[]);
    assert_eq!(
        call(server.udp, Transport::Udp, keys(2, locker), PEEK, &locker),
        (PASS, peek_body(&[(-1, 5), (0, 4)]))
    );
    let p = remove_payload(locker, &[(0, 4, [0xD1; 16]), (-1, 5, [0xD2; 16])]);
    assert_eq!(
        call(server.tcp, Transport::Tcp, Keys::None, REMOVE, &p),
        (PASS, vec![0x03])
    );
    assert_eq!(
        call(server.tcp, Transport::Tcp, Keys::None, PEEK, &locker),
        (FAIL, vec![])
    );
}

#[test]
fn every_acknowledged_put_survives_a_sigkill_during_puts() {
    // Puts of one coin each into a locker of its own, one after another over TCP, while
    // the server is killed with SIGKILL once a few have been answered: every put
    // answered 241 before the kill is in its locker after the restart.
    let root = demo_root();
    let mut server = Server::start(root.path(), &[]);
    let tcp = server.tcp;
    let coins: Vec<(i8, u32)> = (1..=16).flat_map(|s| [(1i8, s), (-1i8, s)]).collect();
    let (answered, acks) = std::sync::mpsc::channel();
    let putter = std::thread::spawn(move || {
        for (i, &(den, serial)) in coins.iter().enumerate() {
            let mut req = Request::new(0, 8, STORE_SUM, Keys::None);
            req.payload = put_payload(&[(den, serial)], key(0xA0 + i as u8));
            let built = req.build().expect("builds");
            // The kill ends the run: a failed exchange is the server gone.
            let Ok(reply) = exchange(tcp, Transport::Tcp, &built, &Timeouts::uniform(GENEROUS))
            else {
                return;
            };
            if reply.response.header.status.0 == PASS && answered.send((i, den, serial)).is_err() {
                return;
            }
        }
    });
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 4 {
        acknowledged.push(acks.recv_timeout(GENEROUS).expect("a put answered"));
    }
    server.signal(libc::SIGKILL);
    assert!(server.wait_exit(GENEROUS).is_some());
    putter.join().expect("the putter ends");
    acknowledged.extend(acks.try_iter());
    let server = Server::start(root.path(), &[]);
    for (i, den, serial) in acknowledged {
        assert_eq!(
            call(
                server.tcp,
                Transport::Tcp,
                Keys::None,
                PEEK,
                &key(0xA0 + i as u8)
            ),
            (PASS, peek_body(&[(den, serial)])),
            "the put of {den}:{serial} was answered before the kill"
        );
    }
}

#[test]
fn of_concurrent_removes_of_one_locker_each_coin_goes_to_exactly_one() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let coins: Vec<(i8, u32)> = (1..=10).map(|s| (-1, s)).collect();
    let locker = key(0xA0);
    assert_eq!(
        call(
            server.tcp,
            Transport::Tcp,
            Keys::None,
            STORE_SUM,
            &put_payload(&coins, locker)
        )
        .0,
        PASS
    );
    let (tcp, udp) = (server.tcp, server.udp);
    let n = 8u8;
    let barrier = Arc::new(Barrier::new(usize::from(n)));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, coins) = (Arc::clone(&barrier), coins.clone());
            std::thread::spawn(move || {
                let entries: Vec<(i8, u32, An)> =
                    coins.iter().map(|&(d, s)| (d, s, [0xB0 + i; 16])).collect();
                let (transport, at) = if i % 2 == 0 {
                    (Transport::Udp, udp)
                } else {
                    (Transport::Tcp, tcp)
                };
                barrier.wait();
                call(
                    at,
                    transport,
                    Keys::None,
                    REMOVE,
                    &remove_payload(locker, &entries),
                )
            })
        })
        .collect();
    let mut owners = vec![None; coins.len()];
    for (i, h) in handles.into_iter().enumerate() {
        let (status, bitmap) = h.join().expect("thread");
        if status == FAIL && bitmap.is_empty() {
            continue; // the locker was empty by then
        }
        assert_eq!(bitmap.len(), 2, "floor(10/8) + 1");
        for (c, owner) in owners.iter_mut().enumerate() {
            if bitmap[c / 8] & (1 << (c % 8)) != 0 {
                assert_eq!(*owner, None, "coin {c} went twice");
                *owner = Some(i);
            }
        }
    }
    assert!(owners.iter().all(Option::is_some), "{owners:?}");
    // Each coin holds the AN of the remove that took it (detect, 1/10).
    for (c, owner) in owners.iter().enumerate() {
        let owner = u8::try_from(owner.expect("some")).expect("few");
        let mut p = coin_ref(-1, coins[c].1);
        p.extend_from_slice(&[0xB0 + owner; 16]);
        let mut req = Request::new(0, 1, 10, Keys::None);
        req.payload = p;
        req.randomize().expect("random");
        let built = req.build().expect("builds");
        let reply =
            exchange(tcp, Transport::Tcp, &built, &Timeouts::uniform(GENEROUS)).expect("detect");
        assert_eq!(reply.response.header.status.0, PASS, "coin {c}");
    }
}
