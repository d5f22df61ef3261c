//! The epoll driver performs the engine's peer calls on loopback: non-blocking
//! connects, the request written, the response read by its framing, refusals and
//! silent peers ended by the engine's deadline.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use raida_core::config::NetworkConfig;
use raida_core::keys::MemoryKeyStore;
use raida_core::{
    Command, CommandRegistry, EngineConfig, PeerAnswer, PeerCall, PeerPlan, RequestContext, Status,
    StatusByte,
};
use raida_io_epoll::{Driver, DriverConfig};

const RAIDA_ID: u8 = 7;
const COIN_ID: u16 = 6;

/// Calls the peers named by the payload's bytes with `Q` and the index; answers, per
/// call, the index, 0 and the response's bytes after its header when answered, else
/// the index and 1.
#[derive(Debug)]
struct CallsPeers;

impl Command for CallsPeers {
    fn run(&self, _ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        Status::Internal.into()
    }

    fn peer_calls(&self, ctx: &RequestContext<'_>) -> PeerPlan {
        PeerPlan::Calls(
            ctx.payload
                .iter()
                .map(|&raida| PeerCall {
                    raida,
                    request: vec![b'Q', raida],
                })
                .collect(),
        )
    }

    fn finish(
        &self,
        _ctx: &RequestContext<'_>,
        answers: &[PeerAnswer],
        output: &mut Vec<u8>,
    ) -> StatusByte {
        for a in answers {
            output.push(a.raida);
            match a.body() {
                Some(body) => {
                    output.push(0);
                    output.extend_from_slice(body);
                }
                None => output.push(1),
            }
        }
        Status::Success.into()
    }
}

/// A type-0 request for (9, 9) with `payload`, the challenge of PROTOCOL.md 8b (its
/// CRC given there).
fn request(payload: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 32];
    r[0] = 1;
    r[2] = RAIDA_ID;
    r[4] = 9;
    r[5] = 9;
    r[6..8].copy_from_slice(&COIN_ID.to_be_bytes());
    let body_len = 16 + payload.len() + 2;
    r[22..24].copy_from_slice(&(body_len as u16).to_be_bytes());
    r.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x92, 0x70, 0xc9, 0x65]);
    r.extend_from_slice(payload);
    r.extend_from_slice(&[0x3E, 0x3E]);
    r
}

/// A peer that reads the 2-byte request and answers a 250 with body `AB 3E 3E`.
fn answering_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut req = [0u8; 2];
            if s.read_exact(&mut req).is_ok() && req[0] == b'Q' {
                let mut resp = vec![0u8; 32];
                resp[2] = 250;
                resp[11] = 3;
                resp.extend_from_slice(&[0xAB, 0x3E, 0x3E]);
                let _ = s.write_all(&resp);
            }
        }
    });
    addr
}

/// A peer that accepts and never answers (held open until the process ends).
fn silent_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept() {
            held.push(s);
        }
    });
    addr
}

/// An address nobody listens on (bound once, then closed): connects are refused.
fn refusing_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[test]
fn the_driver_connects_writes_reads_and_the_engine_times_out_the_silent_peer() {
    let mut engine = EngineConfig::default().with_peers(
        vec![
            Some(answering_peer()),
            Some(refusing_peer()),
            Some(silent_peer()),
            None,
        ],
        Duration::from_millis(400),
        4,
    );
    engine.raida_id = RAIDA_ID;
    engine.coin_id = COIN_ID;
    let config = DriverConfig {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        network: NetworkConfig::default(),
        engines: vec![engine],
        workers: 1,
        long_workers: 0,
        udp_buffer: 1024,
    };
    let mut commands = CommandRegistry::with_builtins();
    commands.register(9, 9, Arc::new(CallsPeers)).expect("free");
    let driver = Driver::bind(config, commands, Arc::new(MemoryKeyStore::new())).expect("bind");
    let addr = driver.tcp_addr();
    let handle = driver.shutdown_handle();
    let server = std::thread::spawn(move || driver.run());

    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    client.write_all(&request(&[0, 1, 2, 3])).expect("send");
    let mut response = Vec::new();
    client
        .read_to_end(&mut response)
        .expect("the response, then the close");

    handle.shutdown();
    let ran = server.join().expect("the server thread");
    assert!(ran.is_ok());

    assert_eq!(response[2], 250, "{response:02x?}");
    // Answered: its body (AB 3E 3E); refused, silent (cut at the deadline) and
    // without an address: no response.
    assert_eq!(
        &response[32..response.len() - 2],
        &[0, 0, 0xAB, 0x3E, 0x3E, 1, 1, 2, 1, 3, 1]
    );
}
