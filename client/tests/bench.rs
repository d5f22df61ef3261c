//! The bench loop counts correctly: against in-process servers on 127.0.0.1 it
//! ends after exactly the requested number of requests, each counted once, by
//! status or by error kind. Every run is bounded by a request count.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use raida_client::bench::{run, run_with, BenchConfig, Limit, Next, Progress, RequestSource};
use raida_client::{ErrorKind, Request, Transport};
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
