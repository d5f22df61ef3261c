//! raida-net as a library: a test binary (tests/examples/embedded.rs) builds a server
//! with `ServerBuilder`, commands of its own and no signal handlers, and stops it
//! through its `ShutdownHandle`. Shutting down drains like SIGTERM (every request in
//! flight is answered, the process exits 0); long-running handlers have a lane and a
//! pool of their own, so they never starve short requests, and their socket deadline
//! stays suspended while they run.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use raida_client::{BuiltRequest, Keys, Request};
use raida_tests::{demo_keys, example_binary, http_get, read_to_eof, Server, GENEROUS};

fn embedded(flags: &[&str]) -> (Server, SocketAddr) {
    let bin = example_binary("raida-tests", "embedded");
    let server = Server::start_program(&bin, flags);
    let metrics = server.metrics_addr();
    (server, metrics)
}

fn request(command: u8, keys: Keys, payload: &[u8]) -> BuiltRequest {
    let mut req = Request::new(0, 15, command, keys);
    req.payload = payload.to_vec();
    req.build().expect("a valid request")
}

/// Sends `built` over TCP and returns the status and body of the response.
fn tcp(addr: SocketAddr, built: &BuiltRequest) -> (u8, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(GENEROUS)).expect("timeout");
    stream.write_all(built.bytes()).expect("send");
    let bytes = read_to_eof(&mut stream).expect("a response, then end of stream");
    let response = built
        .parse_response(&bytes)
        .expect("a response that verifies");
    (response.header.status.0, response.body)
}

/// A gauge of the metrics endpoint.
fn gauge(metrics: SocketAddr, name: &str) -> u64 {
    let body = http_get(metrics, "/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

/// Waits (bounded) until the server has `n` jobs in flight.
fn wait_in_flight(metrics: SocketAddr, n: u64) {
    let end = Instant::now() + GENEROUS;
    while gauge(metrics, "raida_jobs_in_flight") < n {
        assert!(Instant::now() < end, "{n} jobs never got in flight");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn shutdown_through_the_handle_answers_every_request_in_flight_and_exits_0() {
    let (mut server, metrics) = embedded(&["--drain-timeout-ms", "20000"]);
    let addr = server.tcp;
    // Six requests over TCP and two over UDP, each taking 1 s on a worker.
    let tcp_clients: Vec<_> = (0..6u8)
        .map(|i| {
            thread::spawn(move || {
                let built = request(1, Keys::None, &[10, i]);
                tcp(addr, &built)
            })
        })
        .collect();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    udp.set_read_timeout(Some(GENEROUS)).expect("timeout");
    let udp_requests: Vec<BuiltRequest> = (0..2u8)
        .map(|i| request(1, demo_keys(1), &[10, 100 + i]))
        .collect();
    for built in &udp_requests {
        udp.send_to(built.bytes(), server.udp).expect("send");
    }
    wait_in_flight(metrics, 8);
    server.send_line("shutdown");
    // Nothing new is accepted once the stop is under way.
    let end = Instant::now() + GENEROUS;
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < end, "still accepting after the shutdown");
        thread::sleep(Duration::from_millis(10));
    }
    for (i, client) in tcp_clients.into_iter().enumerate() {
        let (status, body) = client.join().expect("client thread");
        assert_eq!((status, body), (250, vec![10, i as u8]));
    }
    let mut answered = Vec::new();
    for _ in &udp_requests {
        let mut buf = [0u8; 2048];
        let (len, _) = udp.recv_from(&mut buf).expect("a UDP answer");
        let ok = udp_requests
            .iter()
            .filter_map(|b| b.parse_response(&buf[..len]).ok())
            .next()
            .expect("an answer to one of the requests");
        answered.push((ok.header.status.0, ok.body));
    }
    answered.sort();
    assert_eq!(answered, [(250, vec![10, 100]), (250, vec![10, 101])]);
    let status = server.wait_exit(GENEROUS).expect("the server exits");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(server.stderr().contains("shutting down through the handle"));
}

#[test]
fn long_running_handlers_do_not_starve_short_requests() {
    // As many long handlers as mod_queue_size, each holding its request for 4 s.
    let (mut server, metrics) = embedded(&["--mod-queue-size", "4", "--drain-timeout-ms", "20000"]);
    let addr = server.tcp;
    let holds: Vec<_> = (0..4)
        .map(|_| thread::spawn(move || tcp(addr, &request(2, Keys::None, &[40]))))
        .collect();
    wait_in_flight(metrics, 4);
    // A short request on a worker, and encrypted ones, are answered while all four
    // long handlers still run.
    assert_eq!(
        tcp(addr, &request(1, Keys::None, &[0, 7])),
        (250, vec![0, 7])
    );
    assert_eq!(
        tcp(addr, &request(1, demo_keys(1), &[0, 8])),
        (250, vec![0, 8])
    );
    let mut version = Request::version(0, demo_keys(1));
    version.payload = vec![0; 300];
    let (status, _) = tcp(addr, &version.build().expect("valid"));
    assert_eq!(status, 250);
    assert_eq!(
        gauge(metrics, "raida_jobs_in_flight"),
        4,
        "the long handlers were still running"
    );
    for hold in holds {
        assert_eq!(hold.join().expect("client"), (250, b"held".to_vec()));
    }
    server.send_line("shutdown");
    let status = server.wait_exit(GENEROUS).expect("the server exits");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

#[test]
fn a_long_running_request_outlives_the_socket_timeout() {
    // The socket timeout is 300 ms; the handler holds the request for 1.5 s. While a
    // request runs, its deadline is suspended: the response still arrives.
    let (mut server, _metrics) = embedded(&["--socket-timeout-ms", "300"]);
    assert_eq!(
        tcp(server.tcp, &request(2, Keys::None, &[15])),
        (250, b"held".to_vec())
    );
    server.send_line("shutdown");
    let status = server.wait_exit(GENEROUS).expect("the server exits");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}
