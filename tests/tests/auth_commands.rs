//! The authentication commands of PROTOCOL.md section 8a against the real server over
//! its on-disk store (the demo store: denominations 0, 1 and -1, serials 1..=16 and
//! 0x100 * 1024 + 5, every serial of those pages known): every row of 8a over TCP and
//! UDP and encryption types 0, 1 and 4; atomicity (32 concurrent powns of one coin, one
//! winner); pown_sum all or nothing; coherence (after a pown, a type-1 request keyed
//! by the coin works with the new AN and fails with the old one); persistence across a
//! restart; and crashes (SIGKILL at random moments under a pown load, then a restart:
//! no answered pown lost, no page torn).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use raida_client::{exchange, BuiltRequest, Coin, Keys, Request, Timeouts, Transport};
use raida_core::keys::An;
use raida_core::Status;
use raida_store::demo_coin_an;
use raida_tests::{demo_root, Server, GENEROUS};

fn timeouts() -> Timeouts {
    Timeouts::uniform(GENEROUS)
}

fn coin_ref(den: i8, serial: u32) -> Vec<u8> {
    let mut v = vec![den as u8];
    v.extend_from_slice(&serial.to_be_bytes());
    v
}

fn detect_payload(coins: &[(i8, u32, An)]) -> Vec<u8> {
    coins
        .iter()
        .flat_map(|(d, s, a)| coin_ref(*d, *s).into_iter().chain(a.iter().copied()))
        .collect()
}

fn pown_payload(coins: &[(i8, u32, An, An)]) -> Vec<u8> {
    coins
        .iter()
        .flat_map(|(d, s, a, p)| {
            coin_ref(*d, *s)
                .into_iter()
                .chain(a.iter().copied())
                .chain(p.iter().copied())
        })
        .collect()
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

fn keys(encryption: u8) -> Keys {
    // The key coin is one the tests never pown.
    let coin = Coin::new(0, 16);
    let an = demo_coin_an(0, 16);
    match encryption {
        0 => Keys::None,
        1 => Keys::Coin { coin, an },
        4 => Keys::Coin256 { coin, an },
        other => panic!("type {other}"),
    }
}

/// Where a server listens (a copy, for client threads).
#[derive(Clone, Copy, Debug)]
struct At {
    tcp: SocketAddr,
    udp: SocketAddr,
}

fn at(server: &Server) -> At {
    At {
        tcp: server.tcp,
        udp: server.udp,
    }
}

/// Sends (group 1, `command`, `payload`) and returns the status and decrypted body.
fn call(
    server: &Server,
    transport: Transport,
    enc: u8,
    command: u8,
    payload: &[u8],
) -> (u8, Vec<u8>) {
    call_shard(at(server), transport, enc, command, payload, 0)
}

fn call_shard(
    server: At,
    transport: Transport,
    enc: u8,
    command: u8,
    payload: &[u8],
    shard: u8,
) -> (u8, Vec<u8>) {
    let mut req = Request::new(0, 1, command, keys(enc));
    req.payload = payload.to_vec();
    req.shard = shard;
    req.randomize().expect("random");
    let built = req.build().expect("builds");
    let addr = match transport {
        Transport::Tcp => server.tcp,
        Transport::Udp => server.udp,
    };
    let reply = exchange(addr, transport, &built, &timeouts())
        .unwrap_or_else(|e| panic!("{transport:?} type {enc} command {command}: {e}"));
    (reply.response.header.status.0, reply.response.body)
}

const PASS: u8 = 241;
const FAIL: u8 = 242;
const MIXED: u8 = 243;

#[test]
fn every_row_of_section_8a_over_tcp_and_udp_and_types_0_1_4() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let mut serial = 1u32;
    for transport in [Transport::Tcp, Transport::Udp] {
        for enc in [0u8, 1, 4] {
            let a = |s: u32| demo_coin_an(1, s);
            // detect: all pass, all fail (an unknown coin fails), mixed with the bitmap.
            let p = detect_payload(&[(1, 1, a(1)), (1, 2, a(2))]);
            assert_eq!(call(&server, transport, enc, 10, &p), (PASS, vec![]));
            let p = detect_payload(&[(1, 1, [0; 16]), (5, 999, a(2))]);
            assert_eq!(call(&server, transport, enc, 10, &p), (FAIL, vec![]));
            let coins: Vec<_> = (1..=9u32)
                .map(|s| (1, s, if s % 3 == 0 { a(s) } else { [9; 16] }))
                .collect();
            // Coins 3, 6, 9 (indices 2, 5, 8) pass: bits 2 and 5 of byte 0, bit 0 of 1.
            assert_eq!(
                call(&server, transport, enc, 10, &detect_payload(&coins)),
                (MIXED, vec![0b0010_0100, 0b0000_0001])
            );
            // detect_sum.
            let mut p: Vec<u8> = [(1, 4), (1, 5)]
                .iter()
                .flat_map(|&(d, s)| coin_ref(d, s))
                .collect();
            p.extend_from_slice(&xor(&[a(4), a(5)]));
            assert_eq!(call(&server, transport, enc, 11, &p).0, PASS);
            let mut p: Vec<u8> = coin_ref(1, 4);
            p.extend_from_slice(&[0; 16]);
            assert_eq!(call(&server, transport, enc, 11, &p).0, FAIL);
            let mut p: Vec<u8> = coin_ref(1, 1 << 26);
            p.extend_from_slice(&[0; 16]);
            assert_eq!(call(&server, transport, enc, 11, &p).0, 40);
            // pown: the coin's AN becomes the PAN; the old AN fails from then on.
            let s = 100 + serial;
            serial += 1;
            let pan = [0x50 + serial as u8; 16];
            let p = pown_payload(&[(1, s, a(s), pan)]);
            assert_eq!(call(&server, transport, enc, 20, &p), (PASS, vec![]));
            assert_eq!(
                call(&server, transport, enc, 10, &detect_payload(&[(1, s, pan)])).0,
                PASS
            );
            assert_eq!(
                call(
                    &server,
                    transport,
                    enc,
                    10,
                    &detect_payload(&[(1, s, a(s))])
                )
                .0,
                FAIL
            );
            // pown_sum: AN ^= delta on every coin.
            let (s1, s2) = (200 + serial, 300 + serial);
            let delta = [0x0F; 16];
            let mut p: Vec<u8> = [(1, s1), (1, s2)]
                .iter()
                .flat_map(|&(d, s)| coin_ref(d, s))
                .collect();
            p.extend_from_slice(&xor(&[a(s1), a(s2)]));
            p.extend_from_slice(&delta);
            assert_eq!(call(&server, transport, enc, 21, &p).0, PASS);
            let moved =
                detect_payload(&[(1, s1, xor(&[a(s1), delta])), (1, s2, xor(&[a(s2), delta]))]);
            assert_eq!(call(&server, transport, enc, 10, &moved).0, PASS);
            // The checks: 16, 39, 20.
            assert_eq!(call(&server, transport, enc, 10, &[1; 20]).0, 16);
            assert_eq!(call(&server, transport, enc, 10, &[1; 22]).0, 39);
            assert_eq!(call(&server, transport, enc, 20, &[1; 38]).0, 39);
            let p = detect_payload(&[(1, 1, a(1))]);
            assert_eq!(call_shard(at(&server), transport, enc, 10, &p, 2).0, 20);
        }
    }
    // 36: no body at all (type 0 over TCP).
    let mut req = Request::new(0, 1, 10, Keys::None);
    req.faults.no_body = true;
    let built = req.build().expect("builds");
    let reply = exchange(server.tcp, Transport::Tcp, &built, &timeouts()).expect("reply");
    assert_eq!(reply.response.header.status.0, Status::EmptyRequest.code());
}

#[test]
fn of_32_concurrent_powns_of_one_coin_with_the_same_an_exactly_one_passes() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let addrs = at(&server);
    let barrier = Arc::new(Barrier::new(32));
    let results: Vec<u8> = (0..32u8)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let p = pown_payload(&[(1, 7, demo_coin_an(1, 7), [0x80 + i; 16])]);
                barrier.wait();
                call_shard(addrs, Transport::Tcp, 0, 20, &p, 0).0
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    assert_eq!(
        results.iter().filter(|&&s| s == PASS).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|&&s| s == FAIL).count(),
        31,
        "{results:?}"
    );
}

#[test]
fn pown_sum_changes_all_of_its_coins_or_none() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let coins = [(1i8, 10u32), (1, 11), (1, 12)];
    let ans: Vec<An> = coins.iter().map(|&(d, s)| demo_coin_an(d, s)).collect();
    let refs: Vec<u8> = coins.iter().flat_map(|&(d, s)| coin_ref(d, s)).collect();
    // A wrong sum: 242, and every coin keeps its AN.
    let mut p = refs.clone();
    p.extend_from_slice(&xor(&[ans[0], ans[1]]));
    p.extend_from_slice(&[0x33; 16]);
    assert_eq!(call(&server, Transport::Udp, 0, 21, &p).0, FAIL);
    // One coin unknown: 40, and nothing changes.
    let mut p = refs[..10].to_vec();
    p.extend_from_slice(&coin_ref(1, 5_000_000));
    p.extend_from_slice(&xor(&[ans[0], ans[1]]));
    p.extend_from_slice(&[0x33; 16]);
    assert_eq!(call(&server, Transport::Udp, 0, 21, &p).0, 40);
    let unchanged: Vec<_> = coins
        .iter()
        .zip(&ans)
        .map(|(&(d, s), &a)| (d, s, a))
        .collect();
    assert_eq!(
        call(&server, Transport::Tcp, 0, 10, &detect_payload(&unchanged)).0,
        PASS
    );
}

/// A type-1 echo keyed by coin (1, `serial`) with `an`: its status.
fn echo_keyed(server: &Server, serial: u32, an: An) -> u8 {
    let mut req = Request::echo(
        0,
        Keys::Coin {
            coin: Coin::new(1, serial),
            an,
        },
    );
    req.randomize().expect("random");
    let built: BuiltRequest = req.build().expect("builds");
    let mut stream = TcpStream::connect(server.tcp).expect("connect");
    stream.set_read_timeout(Some(GENEROUS)).expect("timeout");
    std::io::Write::write_all(&mut stream, built.bytes()).expect("send");
    let bytes = raida_tests::read_to_eof(&mut stream).expect("a response");
    bytes[2]
}

#[test]
fn after_a_pown_the_coins_key_is_the_new_an_at_once() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let old = demo_coin_an(1, 13);
    assert_eq!(echo_keyed(&server, 13, old), Status::Success.code());
    let new = [0xC3; 16];
    let p = pown_payload(&[(1, 13, old, new)]);
    assert_eq!(call(&server, Transport::Udp, 0, 20, &p).0, PASS);
    // The very next request keyed by the coin: the new AN works, the old one decrypts to
    // garbage whose CRC fails (37).
    assert_eq!(echo_keyed(&server, 13, new), Status::Success.code());
    assert_eq!(echo_keyed(&server, 13, old), Status::InvalidCrc.code());
}

#[test]
fn an_answered_pown_survives_a_restart() {
    let root = demo_root();
    let new = [0xD4; 16];
    {
        let mut server = Server::start(root.path(), &[]);
        let p = pown_payload(&[(-1, 14, demo_coin_an(-1, 14), new)]);
        assert_eq!(call(&server, Transport::Tcp, 0, 20, &p).0, PASS);
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait_exit(GENEROUS).and_then(|s| s.code()), Some(0));
    }
    let server = Server::start(root.path(), &[]);
    assert_eq!(
        call(
            &server,
            Transport::Tcp,
            0,
            10,
            &detect_payload(&[(-1, 14, new)])
        )
        .0,
        PASS
    );
}

/// Every page file of the store under `root` is exactly 17,408 bytes.
fn pages_whole(root: &Path) -> Result<usize, String> {
    let mut n = 0;
    let mut dirs = vec![root.join("Data")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "bin") {
                let len = entry.metadata().map_err(|e| e.to_string())?.len();
                if len != 17_408 {
                    return Err(format!("{} is {len} bytes", path.display()));
                }
                n += 1;
            }
        }
    }
    Ok(n)
}

fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the test knows of a coin: its AN for certain, or one of two (a pown whose
/// answer never came: it may or may not have happened).
#[derive(Clone, Copy, Debug)]
enum Known {
    Is(An),
    Either(An, An),
}

/// Crashes under load: a pown load (several clients over UDP, fresh PANs, coins of one
/// demo page) is cut by SIGKILL at a random moment; the server restarts on the same
/// store (recovering it) and every coin must hold the AN its last answered pown set
/// (or, for a pown cut before its answer, either AN), every page file stays 17,408
/// bytes, and the server starts cleanly. At least 50 rounds, seeded (`CRASH_SEED`
/// replays one run), bounded in time.
#[test]
fn no_answered_pown_is_lost_when_the_server_is_killed() {
    const ROUNDS: usize = 50;
    const COINS: u32 = 64;
    let seed = seed();
    println!("CRASH_SEED={seed}");
    let mut rng = seed;
    let root = demo_root();
    let pages = pages_whole(root.path()).expect("whole pages");
    let known: Arc<Mutex<Vec<Known>>> = Arc::new(Mutex::new(
        (0..COINS)
            .map(|s| Known::Is(demo_coin_an(0, 1 + s)))
            .collect(),
    ));
    let started = Instant::now();
    for round in 0..ROUNDS {
        let server = Server::start(root.path(), &[]);
        let udp = server.udp;
        // Check what the last round left, then load.
        verify(&server, &known, round, seed);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..4u64)
            .map(|c| {
                let (known, stop) = (Arc::clone(&known), Arc::clone(&stop));
                let mut r = rng ^ (c << 40);
                std::thread::spawn(move || pown_load(udp, c, &known, &stop, &mut r))
            })
            .collect();
        let run = Duration::from_millis(20 + splitmix(&mut rng) % 200);
        std::thread::sleep(run);
        server.signal(libc::SIGKILL);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in clients {
            c.join().expect("client");
        }
        drop(server);
        assert_eq!(
            pages_whole(root.path()),
            Ok(pages),
            "round {round}: a page file changed its size (CRASH_SEED={seed})"
        );
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the crash test took too long"
        );
    }
    let server = Server::start(root.path(), &[]);
    verify(&server, &known, ROUNDS, seed);
    println!("crash rounds: {ROUNDS} in {:?}", started.elapsed());
}

/// Powns coins of demo page (0, 0) over UDP until `stop`, each from the AN the test
/// knows to a fresh PAN, recording answered ones (and unanswered ones as "either").
fn pown_load(
    udp: SocketAddr,
    client: u64,
    known: &Mutex<Vec<Known>>,
    stop: &std::sync::atomic::AtomicBool,
    rng: &mut u64,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(udp).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        // Client c owns coins c, c + 4, ...: no two clients pown one coin at once.
        let slot = (client + 4 * (splitmix(rng) % 16)) as usize;
        let Ok(mut k) = known.lock() else { return };
        let Known::Is(an) = k[slot] else {
            drop(k);
            continue;
        };
        let mut pan = [0u8; 16];
        pan[..8].copy_from_slice(&splitmix(rng).to_le_bytes());
        pan[8..].copy_from_slice(&splitmix(rng).to_le_bytes());
        // Until an answer says otherwise, the pown may or may not happen.
        k[slot] = Known::Either(an, pan);
        drop(k);
        let mut req = Request::new(0, 1, 20, Keys::None);
        req.payload = pown_payload(&[(0, 1 + slot as u32, an, pan)]);
        req.randomize().expect("random");
        let built = req.build().expect("builds");
        if sock.send(built.bytes()).is_err() {
            return;
        }
        let answer = sock
            .recv(&mut buf)
            .ok()
            .and_then(|n| built.parse_response(&buf[..n]).ok())
            .map(|r| r.header.status.0);
        let Ok(mut k) = known.lock() else { return };
        match answer {
            Some(PASS) => k[slot] = Known::Is(pan),
            Some(FAIL) => k[slot] = Known::Is(an),
            // No answer (killed, lost): either stays.
            _ => return,
        }
    }
}

/// Every coin holds the AN the test knows (or one of two), by detect; "either" is then
/// resolved to the one found.
fn verify(server: &Server, known: &Mutex<Vec<Known>>, round: usize, seed: u64) {
    let Ok(mut k) = known.lock() else {
        panic!("lock")
    };
    for (slot, state) in k.iter_mut().enumerate() {
        let serial = 1 + slot as u32;
        let holds = |an: An| {
            call(
                server,
                Transport::Tcp,
                0,
                10,
                &detect_payload(&[(0, serial, an)]),
            )
            .0 == PASS
        };
        *state = match *state {
            Known::Is(an) => {
                assert!(
                    holds(an),
                    "round {round}: coin 0:{serial} lost an answered pown (CRASH_SEED={seed})"
                );
                Known::Is(an)
            }
            Known::Either(old, new) => {
                if holds(new) {
                    Known::Is(new)
                } else {
                    assert!(
                        holds(old),
                        "round {round}: coin 0:{serial} holds neither its AN nor the PAN sent \
                         (CRASH_SEED={seed})"
                    );
                    Known::Is(old)
                }
            }
        };
    }
}
