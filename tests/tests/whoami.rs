//! The whoami example (`server/examples/whoami.rs`), a RAIDA server built on
//! raida-net with a command of its own: group 15, command 0 answers 250 with the
//! client's IPv4 address, its source port (big-endian) and the request's shard,
//! encrypted like every response body of the request's type. Over TCP and UDP, for
//! encryption types 0, 1 and 4, from two client sockets with different source ports.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};

use raida_client::{BuiltRequest, Request};
use raida_tests::{demo_keys, example_binary, read_to_eof, Server, GENEROUS};

const RAIDA_ID: u8 = 3;
const COIN_ID: u16 = 6;

fn whoami() -> Server {
    let bin = example_binary("raida-server", "whoami");
    // Port 0: a free port; the example is raida 3 of coin 6 on 127.0.0.1.
    Server::start_program(&bin, &["0"])
}

fn request(encryption: u8, shard: u8, n: u8) -> BuiltRequest {
    let mut req = Request::new(RAIDA_ID, 15, 0, demo_keys(encryption));
    req.coin_id = COIN_ID;
    req.shard = shard;
    req.echo = [n, encryption];
    req.nonce[3] = n;
    req.challenge[0] = n;
    req.build().expect("a valid request")
}

/// The body whoami must answer to a client at `local`, for `shard`.
fn expected(local: SocketAddr, shard: u8) -> Vec<u8> {
    let SocketAddr::V4(v4) = local else {
        panic!("an IPv4 client");
    };
    let mut body = v4.ip().octets().to_vec();
    body.extend_from_slice(&v4.port().to_be_bytes());
    body.push(shard);
    body
}

#[test]
fn whoami_answers_each_tcp_client_its_own_address_port_and_shard() {
    let server = whoami();
    let mut ports = Vec::new();
    for (n, encryption) in [0u8, 0, 1, 1, 4, 4].into_iter().enumerate() {
        let shard = n as u8 % 4;
        let built = request(encryption, shard, n as u8);
        let mut stream = TcpStream::connect(server.tcp).expect("connect");
        stream.set_read_timeout(Some(GENEROUS)).expect("timeout");
        let local = stream.local_addr().expect("local address");
        ports.push(local.port());
        stream.write_all(built.bytes()).expect("send");
        let bytes = read_to_eof(&mut stream).expect("the response, then end of stream");
        let response = built
            .parse_response(&bytes)
            .expect("a response that verifies");
        assert_eq!(response.header.status.0, 250, "type {encryption}");
        assert_eq!(response.body, expected(local, shard), "type {encryption}");
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6, "six source ports");
}

#[test]
fn whoami_answers_each_udp_client_its_own_address_port_and_shard() {
    let server = whoami();
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    assert_ne!(a.local_addr().ok(), b.local_addr().ok());
    for (n, encryption) in [0u8, 1, 4].into_iter().enumerate() {
        // Both clients ask, interleaved: each answer names its own client (the deployed
        // server's UDP path leaked fields between clients).
        let built_a = request(encryption, 1, 2 * n as u8);
        let built_b = request(encryption, 2, 2 * n as u8 + 1);
        a.send_to(built_a.bytes(), server.udp).expect("send a");
        b.send_to(built_b.bytes(), server.udp).expect("send b");
        for (socket, built, shard) in [(&a, &built_a, 1), (&b, &built_b, 2)] {
            socket.set_read_timeout(Some(GENEROUS)).expect("timeout");
            let mut buf = [0u8; 2048];
            let (len, from) = socket.recv_from(&mut buf).expect("an answer");
            assert_eq!(from, server.udp);
            let response = built
                .parse_response(&buf[..len])
                .expect("a response that verifies");
            assert_eq!(response.header.status.0, 250, "type {encryption}");
            let local = socket.local_addr().expect("local address");
            assert_eq!(response.body, expected(local, shard), "type {encryption}");
        }
    }
}
