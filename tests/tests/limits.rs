//! Per-client limits on the real server: one client (an address; all of 127.0.0.0/8 is
//! local, so the test binds its client sockets to 127.0.0.2 and 127.0.0.3) over its
//! connection limit is answered 160 and closed like the global refusal while others
//! are served; over its request rate it is answered 160 over TCP and UDP, and the UDP
//! 160s are capped, so the server never answers a flood in kind.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use raida_client::Request;
use raida_core::Status;
use raida_tests::{demo_keys, demo_root, read_to_eof, Server, GENEROUS};

fn from(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to `to` from address `source`.
fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the source address");
    socket.connect(&to.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(GENEROUS)).expect("timeout");
    stream
}

fn echo() -> raida_client::BuiltRequest {
    let mut r = Request::echo(0, demo_keys(0));
    r.randomize().expect("random");
    r.build().expect("builds")
}

/// The status of the one response on `stream` after sending `req`.
fn exchange(stream: &mut TcpStream, req: &[u8]) -> u8 {
    let _ = stream.write_all(req);
    let bytes = read_to_eof(stream).expect("a response, then end of stream");
    bytes.get(2).copied().unwrap_or(0)
}

#[test]
fn a_client_over_its_connection_limit_is_refused_160_and_others_are_served() {
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &["--max-connections-per-ip", "3", "--trusted-networks", ""],
    );
    let req = echo();
    let held: Vec<TcpStream> = (0..3).map(|_| connect_from(from(2), server.tcp)).collect();
    for i in 0..4 {
        let mut extra = connect_from(from(2), server.tcp);
        assert_eq!(
            exchange(&mut extra, req.bytes()),
            Status::RequestRate.code(),
            "extra {i}"
        );
    }
    // Another client is served meanwhile.
    let mut other = connect_from(from(3), server.tcp);
    assert_eq!(exchange(&mut other, req.bytes()), Status::Success.code());
    // The held ones are served, and then the client may connect again.
    for mut s in held {
        assert_eq!(exchange(&mut s, req.bytes()), Status::Success.code());
    }
    let mut again = connect_from(from(2), server.tcp);
    assert_eq!(exchange(&mut again, req.bytes()), Status::Success.code());
}

#[test]
fn over_its_rate_a_client_is_answered_160_over_tcp_and_udp_and_the_udp_160s_are_capped() {
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &[
            "--rate-limit",
            "1",
            "--rate-burst",
            "3",
            "--trusted-networks",
            "",
        ],
    );
    let req = echo();
    // TCP: the burst, then 160s.
    let statuses: Vec<u8> = (0..5)
        .map(|_| exchange(&mut connect_from(from(2), server.tcp), req.bytes()))
        .collect();
    assert_eq!(statuses[..3], [Status::Success.code(); 3], "{statuses:?}");
    assert_eq!(
        statuses[3..],
        [Status::RequestRate.code(); 2],
        "{statuses:?}"
    );
    // UDP from another client: the burst answered, then a flood. At most 1,000 160s a
    // second go out (server-wide), so most of the flood is dropped unanswered.
    let sock = UdpSocket::bind(SocketAddr::new(from(3), 0)).expect("bind");
    sock.connect(server.udp).expect("connect");
    let start = Instant::now();
    let flood = 5_000;
    for _ in 0..flood {
        let _ = sock.send(req.bytes());
    }
    let sent_in = start.elapsed();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut ok, mut busy) = (0, 0);
    let mut buf = [0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf) {
        match buf[..n].get(2).copied() {
            Some(250) => ok += 1,
            Some(160) => busy += 1,
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert_eq!(
        ok, 3,
        "the burst is answered, then nothing more at 1 a second"
    );
    assert!(busy >= 1, "rate-limited datagrams are answered 160");
    let cap = 1_000.0 * (1.0 + sent_in.as_secs_f64() + 0.5);
    assert!(
        f64::from(busy) <= cap && busy < flood - ok,
        "{busy} 160s for {flood} datagrams sent in {sent_in:?}: capped at about 1,000/s"
    );
}
