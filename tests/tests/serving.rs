//! The real `raida-server` on loopback: what clients see over TCP and UDP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use raida_client::{exchange, BuiltRequest, Request, Timeouts, Transport};
use raida_core::Status;
use raida_core::VERSION_BYTES;
use raida_tests::{demo_keys, demo_root, http_get, raise_nofile, read_to_eof, Server, GENEROUS};

const TYPES: [u8; 4] = [0, 1, 4, 5];

fn built(mut request: Request, echo: [u8; 2]) -> BuiltRequest {
    request.randomize().expect("random bytes");
    request.echo = echo;
    request.build().expect("request builds")
}

fn version(encryption: u8) -> BuiltRequest {
    built(Request::version(0, demo_keys(encryption)), [0x12, 0x34])
}

fn echo(encryption: u8) -> BuiltRequest {
    built(Request::echo(0, demo_keys(encryption)), [0x56, 0x78])
}

fn timeouts() -> Timeouts {
    Timeouts::uniform(GENEROUS)
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect_timeout(&server.tcp, GENEROUS).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("read timeout");
    s.set_write_timeout(Some(GENEROUS)).expect("write timeout");
    s
}

/// Echo and version, encryption types 0, 1, 4 and 5, over TCP and UDP: every response
/// verified by the client library (signature, echo bytes, HMAC of 48-byte responses,
/// decryption) and its content checked.
#[test]
fn echo_and_version_for_every_type_over_tcp_and_udp() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    for transport in [Transport::Tcp, Transport::Udp] {
        let addr = match transport {
            Transport::Tcp => server.tcp,
            Transport::Udp => server.udp,
        };
        for t in TYPES {
            let req = echo(t);
            let reply = exchange(addr, transport, &req, &timeouts())
                .unwrap_or_else(|e| panic!("echo type {t} over {}: {e}", transport.name()));
            assert_eq!(reply.response.header.status, Status::Success.into());
            assert_eq!(reply.response.header.raida_id, 0);
            assert_eq!(reply.response.header.len, if t <= 2 { 32 } else { 48 });
            assert!(reply.response.body.is_empty(), "echo has no body");

            let req = version(t);
            let reply = exchange(addr, transport, &req, &timeouts())
                .unwrap_or_else(|e| panic!("version type {t} over {}: {e}", transport.name()));
            assert_eq!(reply.response.header.status, Status::Success.into());
            assert_eq!(reply.response.body, VERSION_BYTES, "version body, type {t}");
        }
    }
}

/// A request written one byte at a time is answered like any other.
#[test]
fn request_written_one_byte_at_a_time() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    for t in [0, 4] {
        let req = version(t);
        let mut s = connect(&server);
        s.set_nodelay(true).expect("nodelay");
        for b in req.bytes() {
            s.write_all(std::slice::from_ref(b))
                .expect("write one byte");
            s.flush().expect("flush");
        }
        let bytes = read_to_eof(&mut s).expect("response, then FIN");
        let response = req.parse_response(&bytes).expect("valid response");
        assert_eq!(response.body, VERSION_BYTES);
    }
}

/// Bytes after the request are never read as a request, and do not turn the close into
/// a reset: the response arrives whole and the stream ends with FIN (`Ok(0)`), not
/// ECONNRESET.
#[test]
fn unread_bytes_after_the_request_do_not_reset_the_response() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    for t in [0, 5] {
        let req = version(t);
        let mut bytes = req.bytes().to_vec();
        bytes.extend_from_slice(&[0xEE; 3000]);
        let mut s = connect(&server);
        s.write_all(&bytes).expect("write request and extra bytes");
        let got = read_to_eof(&mut s).expect("FIN, not a reset");
        let response = req
            .parse_response(&got)
            .expect("one whole response, nothing more");
        assert_eq!(response.body, VERSION_BYTES);
    }
}

/// A connection that sends nothing, and one that sends half a header, are closed by
/// the server after `--socket-timeout-ms` (the bound here is generous: the assertion is
/// that the close happens, not when).
#[test]
fn silent_and_half_sent_connections_are_closed_by_the_socket_timeout() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--socket-timeout-ms", "300"]);
    let mut silent = connect(&server);
    let mut half = connect(&server);
    half.write_all(&version(4).bytes()[..20])
        .expect("half a header");
    for (name, s) in [("silent", &mut silent), ("half-sent", &mut half)] {
        let got = read_to_eof(s).unwrap_or_else(|e| panic!("{name}: not closed cleanly: {e}"));
        assert!(got.is_empty(), "{name}: nothing is answered");
    }
    // The server itself is fine.
    let reply = exchange(server.tcp, Transport::Tcp, &echo(0), &timeouts()).expect("echo");
    assert_eq!(reply.response.header.status, Status::Success.into());
}

/// 1,000 connections open at once, each answered exactly once with its own response.
#[test]
fn thousand_concurrent_connections_each_answered_once() {
    const N: usize = 1000;
    let limit = raise_nofile(4 * N as u64);
    assert!(
        limit >= 2 * N as u64 + 64,
        "open files limit {limit} too low"
    );
    let root = demo_root();
    let server = Server::start(root.path(), &["--socket-timeout-ms", "60000"]);
    let mut conns = Vec::with_capacity(N);
    for i in 0..N {
        let t = TYPES[i % TYPES.len()];
        let mut req = Request::version(0, demo_keys(t));
        req.randomize().expect("random");
        let mut req = req.build().expect("build");
        req.set_echo([(i >> 8) as u8, i as u8]);
        conns.push((connect(&server), req));
    }
    for (s, req) in &mut conns {
        s.write_all(req.bytes()).expect("write request");
    }
    for (i, (s, req)) in conns.iter_mut().enumerate() {
        let got = read_to_eof(s).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let response = req
            .parse_response(&got)
            .unwrap_or_else(|e| panic!("connection {i}: exactly its own response: {e}"));
        assert_eq!(response.body, VERSION_BYTES, "connection {i}");
    }
}

/// Clients that reset (SO_LINGER 0, then close) right after sending a type-4 request,
/// while its job is out on a worker: the late completion is dropped, nothing breaks, and
/// the next client is served.
#[test]
fn reset_while_the_job_runs_then_the_server_still_serves() {
    let root = demo_root();
    let mut server = Server::start(root.path(), &[]);
    for _ in 0..50 {
        let req = version(4);
        let s = connect(&server);
        (&s).write_all(req.bytes()).expect("write request");
        let sock = socket2::Socket::from(s);
        sock.set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0");
        drop(sock);
    }
    for t in TYPES {
        let reply = exchange(server.tcp, Transport::Tcp, &version(t), &timeouts())
            .unwrap_or_else(|e| panic!("type {t} after resets: {e}"));
        assert_eq!(reply.response.body, VERSION_BYTES);
    }
    assert!(server.is_running());
}

/// A client over the limit that sends its whole request at once (as clients do, before
/// reading) still reads the 160 and a clean end of stream: the refusal must not turn
/// into a reset that destroys the answer (PROTOCOL.md section 7). Each round reads only
/// once the server's metrics show it refused that connection (refused, written,
/// closed: the metrics answer after the loop's turn), so the read sees the close
/// whatever the timing.
#[test]
fn a_refused_connection_that_sent_its_request_reads_160_then_eof() {
    const N: usize = 2;
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &[
            "--max-connections",
            "2",
            "--socket-timeout-ms",
            "60000",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let metrics = server.metrics_addr();
    let _open: Vec<TcpStream> = (0..N).map(|_| connect(&server)).collect();
    for round in 0..20u32 {
        let mut extra = connect(&server);
        let req = version(0);
        // The write may race the refusal; a refused socket may already be closed.
        let _ = extra.write_all(req.bytes());
        let end = std::time::Instant::now() + GENEROUS;
        while counter(metrics, "raida_connections_refused_total") < u64::from(round) + 1 {
            assert!(
                std::time::Instant::now() < end,
                "round {round}: never refused"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let got = read_to_eof(&mut extra)
            .unwrap_or_else(|e| panic!("round {round}: the refusal was reset: {e}"));
        assert_eq!(got.len(), 32, "round {round}: one 32-byte header, then EOF");
        assert_eq!(
            got[2],
            Status::RequestRate.code(),
            "round {round}: status 160"
        );
    }
}

/// A counter of the metrics endpoint.
fn counter(metrics: std::net::SocketAddr, name: &str) -> u64 {
    let body = http_get(metrics, "/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

/// At `--max-connections` N, the N+1-th connection is answered with a 32-byte header,
/// status 160 REQUEST_RATE, and closed; the N open ones are still served.
#[test]
fn connection_over_the_limit_is_answered_160() {
    const N: usize = 4;
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &["--max-connections", "4", "--socket-timeout-ms", "60000"],
    );
    let open: Vec<TcpStream> = (0..N).map(|_| connect(&server)).collect();
    let mut extra = connect(&server);
    let mut header = [0u8; 32];
    extra.read_exact(&mut header).expect("a 32-byte refusal");
    assert_eq!(header[2], Status::RequestRate.code(), "status 160");
    assert_eq!(header[0], 0, "raida id");
    let rest = read_to_eof(&mut extra).expect("then closed");
    assert!(rest.is_empty());
    // The open ones are served.
    for (i, mut s) in open.into_iter().enumerate() {
        let req = version(0);
        s.write_all(req.bytes()).expect("write");
        let got = read_to_eof(&mut s).unwrap_or_else(|e| panic!("open {i}: {e}"));
        assert_eq!(req.parse_response(&got).expect("valid").body, VERSION_BYTES);
    }
}
