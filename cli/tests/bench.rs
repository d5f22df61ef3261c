//! The bench loop counts correctly: against in-process servers on 127.0.0.1 it
//! ends after exactly the requested number of requests, each counted once, by
//! status or by error kind. Every run is bounded by a request count.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use raida_client::bench::{run, run_with, BenchConfig, Limit, Next, Progress, RequestSource};
use raida_client::{Coin, ErrorKind, Request, Transport};
use raida_core::Status;
use support::*;

fn config(addr: std::net::SocketAddr, transport: Transport, t: u8, n: u64) -> BenchConfig {
    let mut r = Request::version(RAIDA_ID, keys_of_type(t));
    r.coin_id = COIN_ID;
    r.randomize().expect("OS random");
    BenchConfig {
        addr,
        transport,
        request: r.build().expect("build"),
        connections: 8,
        threads: 2,
        limit: Limit::Requests(n),
        timeout: Duration::from_secs(5),
        verify: true,
    }
}

#[test]
fn tcp_bench_counts_200_successes() {
    let server = TcpServer::start(TcpMode::Answer, 200);
    let progress = Progress::default();
    let report = run(&config(server.addr, Transport::Tcp, 0, 200), &progress).expect("run");
    assert_eq!(report.ok(), 200, "{report:?}");
    assert_eq!(report.responses(), 200);
    assert_eq!(report.error_count(), 0, "{:?}", report.errors_by_kind());
    assert_eq!(report.latency.len(), 200);
    assert_eq!(
        progress
            .responses
            .load(std::sync::atomic::Ordering::Relaxed),
        200
    );
    drop(server);
}

#[test]
fn tcp_bench_works_for_every_type() {
    for t in TYPES {
        let server = TcpServer::start(TcpMode::Answer, 40);
        let report = run(
            &config(server.addr, Transport::Tcp, t, 40),
            &Progress::default(),
        )
        .expect("run");
        assert_eq!(report.ok(), 40, "type {t}: {:?}", report.errors_by_kind());
    }
}

#[test]
fn udp_bench_counts_200_successes_for_every_type() {
    let server = UdpServer::start();
    for t in TYPES {
        let report = run(
            &config(server.addr, Transport::Udp, t, 200),
            &Progress::default(),
        )
        .expect("run");
        assert_eq!(report.ok(), 200, "type {t}: {:?}", report.errors_by_kind());
        assert_eq!(report.error_count(), 0);
    }
}

#[test]
fn non_success_statuses_are_counted_by_status() {
    let server = TcpServer::start(TcpMode::Answer, 30);
    let mut c = config(server.addr, Transport::Tcp, 0, 30);
    let mut r = Request::echo(RAIDA_ID + 1, keys_of_type(0));
    r.coin_id = COIN_ID;
    c.request = r.build().expect("build");
    let report = run(&c, &Progress::default()).expect("run");
    assert_eq!(report.ok(), 0);
    assert_eq!(
        report.responses_by_status(),
        vec![(Status::InvalidRaidaId.code(), 30)]
    );
}

#[test]
fn truncated_responses_are_counted_as_closed() {
    let server = TcpServer::start(TcpMode::Truncate(20), 25);
    let report = run(
        &config(server.addr, Transport::Tcp, 0, 25),
        &Progress::default(),
    )
    .expect("run");
    assert_eq!(report.responses(), 0);
    assert_eq!(report.errors_by_kind(), vec![(ErrorKind::Closed, 25)]);
}

#[test]
fn a_closed_tcp_port_counts_connect_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let report = run(&config(addr, Transport::Tcp, 0, 20), &Progress::default()).expect("run");
    assert_eq!(report.responses(), 0);
    assert_eq!(report.errors_by_kind(), vec![(ErrorKind::Connect, 20)]);
}

#[test]
fn a_silent_udp_peer_counts_timeouts() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut c = config(silent.local_addr().expect("addr"), Transport::Udp, 0, 6);
    c.connections = 3;
    c.timeout = Duration::from_millis(30);
    let report = run(&c, &Progress::default()).expect("run");
    assert_eq!(report.responses(), 0);
    assert_eq!(report.errors_by_kind(), vec![(ErrorKind::Timeout, 6)]);
    drop(silent);
}

#[test]
fn a_duration_limit_ends_the_run() {
    let server = UdpServer::start();
    let mut c = config(server.addr, Transport::Udp, 0, 0);
    c.limit = Limit::Duration(Duration::from_millis(100));
    let report = run(&c, &Progress::default()).expect("run");
    assert!(report.ok() > 0);
    assert_eq!(report.error_count(), 0);
}

/// A UDP peer that answers every datagram as the server codec does, but `delay`
/// late, until dropped (60 s at most).
struct LateUdpServer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LateUdpServer {
    fn start(delay: Duration) -> LateUdpServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Instant;
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(2)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stop2 = std::sync::Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut due: std::collections::VecDeque<(Instant, Vec<u8>, std::net::SocketAddr)> =
                std::collections::VecDeque::new();
            let mut buf = vec![0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && !stop2.load(Ordering::SeqCst) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    due.push_back((Instant::now() + delay, answer(&buf[..n]), from));
                }
                while due.front().is_some_and(|(at, _, _)| *at <= Instant::now()) {
                    if let Some((_, reply, to)) = due.pop_front() {
                        let _ = socket.send_to(&reply, to);
                    }
                }
            }
        });
        LateUdpServer {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for LateUdpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn late_udp_replies_are_stale_not_answers_to_the_next_request() {
    // Each request times out after 20 ms; its reply comes 50 ms after it was sent,
    // while a later request of the same slot (other echo bytes) is under way.
    let server = LateUdpServer::start(Duration::from_millis(50));
    let mut c = config(server.addr, Transport::Udp, 1, 20);
    c.connections = 1;
    c.threads = 1;
    c.timeout = Duration::from_millis(20);
    let report = run(&c, &Progress::default()).expect("run");
    assert_eq!(report.responses(), 0, "{:?}", report.responses_by_status());
    assert_eq!(report.errors_by_kind(), vec![(ErrorKind::Timeout, 20)]);
    assert!(report.stale >= 1, "no late reply was seen: {report:?}");
}

/// Every other request of a slot is addressed to another RAIDA.
struct Alternating {
    good: raida_client::BuiltRequest,
    bad: raida_client::BuiltRequest,
}

impl RequestSource for Alternating {
    fn next(&self, request: &mut raida_client::BuiltRequest, seq: u64) -> Next {
        request.clone_from(if seq % 2 == 1 { &self.good } else { &self.bad });
        Next::Send
    }
}

#[test]
fn a_request_source_varies_the_request_per_request() {
    for (transport, t) in [(Transport::Tcp, 4), (Transport::Udp, 1)] {
        let tcp;
        let udp;
        let addr = if transport == Transport::Tcp {
            tcp = TcpServer::start(TcpMode::Answer, 10);
            tcp.addr
        } else {
            udp = UdpServer::start();
            udp.addr
        };
        let mut c = config(addr, transport, t, 10);
        c.connections = 1;
        c.threads = 1;
        let mut bad = Request::version(RAIDA_ID + 1, keys_of_type(t));
        bad.coin_id = COIN_ID;
        bad.randomize().expect("OS random");
        let source = Alternating {
            good: c.request.clone(),
            bad: bad.build().expect("build"),
        };
        let report = run_with(&c, &source, &Progress::default()).expect("run");
        assert_eq!(
            report.responses_by_status(),
            vec![
                (Status::InvalidRaidaId.code(), 5),
                (Status::Success.code(), 5)
            ],
            "{transport:?}: {:?}",
            report.errors_by_kind()
        );
    }
}

// ---- loads over a store directory ----

use raida_client::bench::{CoinCommand, CoinLoad, StoreCoins};
use raida_client::BuiltRequest;

/// A detect or pown template of type `t` to the test RAIDA.
fn template(t: u8) -> Request {
    let mut r = Request::new(RAIDA_ID, 1, 10, keys_of_type(t));
    r.coin_id = COIN_ID;
    r.randomize().expect("OS random");
    r
}

/// The coin references (denomination, serial) of a type-0 detect or pown request.
fn coins_named(built: &BuiltRequest, entry: usize) -> Vec<(i8, u32)> {
    let b = built.bytes();
    // 32-byte header, 16-byte challenge, payload, 2-byte trailer.
    b[48..b.len() - 2]
        .chunks_exact(entry)
        .map(|e| {
            (
                i8::from_ne_bytes([e[0]]),
                u32::from_be_bytes([e[1], e[2], e[3], e[4]]),
            )
        })
        .collect()
}

#[test]
fn a_store_directory_is_read_page_by_page_and_the_rest_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path(), &[(1, 0), (-1, 0x100), (0, 2)]);
    let data = dir.path().join("Data");
    let junk = [
        ("01/00/0001.bin", 100),   // shorter than a page
        ("01/00/0101.bin", 17408), // page 0x101 under pp 00
        ("01/00/ABCD.bin", 17408), // upper case
        ("01/00/0002.txt", 17408), // not .bin
        ("07/00/0000.bin", 17408), // denomination 7
        ("XY/00/0000.bin", 17408), // not a denomination
    ];
    for (path, len) in junk {
        let p = data.join(path);
        std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        std::fs::write(&p, vec![0xEE; len]).expect("write");
    }
    // A page file longer than a page counts, from its first 17408 bytes (as a server
    // reads it).
    let long = data.join("00/00/0002.bin");
    let mut bytes = std::fs::read(&long).expect("read");
    bytes.extend_from_slice(&[0xEE; 17]);
    std::fs::write(&long, bytes).expect("write");

    let coins = StoreCoins::read(dir.path()).expect("read");
    assert_eq!((coins.len(), coins.pages()), (3 * 1024, 3));
    let reasons: Vec<(String, &str)> = coins
        .skipped()
        .iter()
        .map(|s| {
            let rel = s.path.strip_prefix(&data).expect("under Data");
            (rel.display().to_string(), s.reason)
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("01/00/0001.bin".into(), "shorter than a page (17408 bytes)"),
            (
                "01/00/0002.txt".into(),
                "not a page file (four lowercase hex digits, .bin)"
            ),
            (
                "01/00/0101.bin".into(),
                "under another page number's directory"
            ),
            (
                "01/00/ABCD.bin".into(),
                "not a page file (four lowercase hex digits, .bin)"
            ),
            ("07".into(), "denomination outside -8..=6"),
            (
                "XY".into(),
                "not a denomination directory (two lowercase hex digits)"
            ),
        ]
    );
    // Pages in (denomination, page) order: -1/0x100, 0/2, 1/0.
    assert_eq!(
        coins.coin(0),
        Some((Coin::new(-1, 0x100 * 1024), store_an(-1, 0x100 * 1024)))
    );
    assert_eq!(
        coins.coin(1024 + 5),
        Some((Coin::new(0, 2 * 1024 + 5), store_an(0, 2 * 1024 + 5)))
    );
    assert_eq!(
        coins.coin(3 * 1024 - 1),
        Some((Coin::new(1, 1023), store_an(1, 1023)))
    );
    assert_eq!(coins.coin(3 * 1024), None);
}

#[test]
fn a_store_without_data_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = StoreCoins::read(dir.path()).expect_err("no Data");
    assert!(e.to_string().contains("Data"), "{e}");
}

#[test]
fn detect_loads_pass_for_every_type_over_tcp_and_udp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = write_store(dir.path(), &[(1, 0), (-1, 16)]);
    for transport in [Transport::Tcp, Transport::Udp] {
        for t in TYPES {
            let tcp;
            let udp;
            let addr = if transport == Transport::Tcp {
                tcp =
                    TcpServer::start_with_keys(TcpMode::Answer, 40, std::sync::Arc::clone(&store));
                tcp.addr
            } else {
                udp = UdpServer::start_with_keys(std::sync::Arc::clone(&store));
                udp.addr
            };
            let coins = StoreCoins::read(dir.path()).expect("read");
            let load =
                CoinLoad::new(&template(t), CoinCommand::Detect, coins, 7, 11).expect("load");
            let mut c = config(addr, transport, t, 40);
            c.request = load.template().build().expect("build");
            let report = run_with(&c, &load, &Progress::default()).expect("run");
            assert_eq!(
                report.responses_by_status(),
                vec![(Status::AllPass.code(), 40)],
                "{transport:?} type {t}: {:?}",
                report.errors_by_kind()
            );
            assert_eq!(report.ok(), 40);
            assert_eq!(report.success, Status::AllPass.into());
            assert!(!report.source_stopped);
        }
    }
}

#[test]
fn a_detect_load_draws_from_the_whole_store_and_repeats_for_a_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path(), &[(0, 0), (0, 1), (2, 0), (-3, 9)]);
    let load = |seed| {
        let coins = StoreCoins::read(dir.path()).expect("read");
        CoinLoad::new(&template(0), CoinCommand::Detect, coins, 4, seed).expect("load")
    };
    let draws = |l: &CoinLoad, requests: u64| {
        let mut r = l.template().build().expect("build");
        let mut all = Vec::new();
        for seq in 1..=requests {
            assert_eq!(l.next(&mut r, seq), Next::Send);
            all.extend(coins_named(&r, 21));
        }
        all
    };
    let (a, b, c) = (load(5), load(5), load(6));
    let drawn = draws(&a, 1000);
    assert_eq!(drawn, draws(&b, 1000), "the same seed names the same coins");
    assert_ne!(drawn, draws(&c, 1000), "another seed names others");
    // 4000 draws over 4 pages of 1024 coins: about 1000 per page.
    for page in [(0, 0), (0, 1), (2, 0), (-3, 9)] {
        let n = drawn.iter().filter(|(d, s)| (*d, s / 1024) == page).count();
        assert!((800..1200).contains(&n), "page {page:?}: {n} draws");
    }
}

#[test]
fn a_pown_load_names_every_coin_once_then_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_store(dir.path(), &[(1, 0)]);
    let coins = StoreCoins::read(dir.path()).expect("read");
    let load = CoinLoad::new(&template(0), CoinCommand::Pown, coins, 7, 3).expect("load");
    let mut r = load.template().build().expect("build");
    let mut seen = std::collections::BTreeSet::new();
    let mut pans = std::collections::BTreeSet::new();
    let mut requests = 0;
    while load.next(&mut r, requests + 1) == Next::Send {
        requests += 1;
        let b = r.bytes();
        for e in b[48..b.len() - 2].chunks_exact(37) {
            let serial = u32::from_be_bytes([e[1], e[2], e[3], e[4]]);
            assert!(seen.insert(serial), "coin 1:{serial} named twice");
            assert_eq!(
                &e[5..21],
                &store_an(1, serial),
                "its AN as the page holds it"
            );
            assert!(pans.insert(e[21..37].to_vec()), "a PAN drawn twice");
        }
        assert!(requests <= 1024, "no end");
    }
    assert_eq!(requests, 1024 / 7);
    assert_eq!(seen.len(), 1024 / 7 * 7);
    assert_eq!(load.requests_made(), 1024 / 7);
    assert_eq!(load.next(&mut r, 1), Next::Stop, "stays stopped");
}

#[test]
fn a_pown_load_over_tcp_gets_241_for_every_request_and_reports_the_stop() {
    use raida_core::keys::{CoinId, KeyStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = write_store(dir.path(), &[(6, 0xFFFF)]);
    let server = TcpServer::start_with_keys(TcpMode::Answer, 1000, std::sync::Arc::clone(&store));
    let coins = StoreCoins::read(dir.path()).expect("read");
    let load = CoinLoad::new(&template(4), CoinCommand::Pown, coins, 40, 0).expect("load");
    let mut c = config(server.addr, Transport::Tcp, 4, 1000);
    c.request = load.template().build().expect("build");
    let report = run_with(&c, &load, &Progress::default()).expect("run");
    // 1024 coins, 40 per request: 25 requests, 24 coins left.
    assert_eq!(
        report.responses_by_status(),
        vec![(Status::AllPass.code(), 25)]
    );
    assert!(report.source_stopped);
    let now = raida_core::Timestamp::from_micros(0);
    let first = 0xFFFF * 1024;
    let powned = (first..first + 1024)
        .filter(|&s| {
            let r = store
                .record(CoinId::new(6, s), now)
                .expect("memory")
                .expect("known");
            assert!(r.status == 0 || r.status == MFS);
            r.an != store_an(6, s)
        })
        .count();
    assert_eq!(powned, 1000);
}
