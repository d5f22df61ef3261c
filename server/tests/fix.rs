//! fix (2/80) through a whole server (`ServerBuilder::peers`, the epoll driver, the
//! disk store) with 13 other RAIDAs played by loopback listeners that answer the claim
//! as 2/50 does: the coin is fixed (a silent fourteenth peer ended by the deadline),
//! and the new AN survives a restart.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use support::Running;

use raida_client::{Coin, Keys, Request};
use raida_commands::new_an;
use raida_server::store::write_demo_store;
use raida_server::{An, CoinId};
use raida_server::{Config, ServerBuilder};

const PG: An = [0x21; 16];
/// Demo coin 1:1, the one this test heals.
const COIN: (i8, u32) = (1, 1);

fn config(root: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.port = Some(0);
    config.network.bind = [127, 0, 0, 1].into();
    config.network.data_root = Some(root.to_path_buf());
    config
}

fn coin_ref(c: (i8, u32)) -> Vec<u8> {
    let mut v = vec![c.0 as u8];
    v.extend_from_slice(&c.1.to_be_bytes());
    v
}

/// A peer on loopback that reads the 55-byte claim of RAIDA 0 and answers 250 listing
/// [`COIN`], as 2/50 does (section 5 framing).
fn vouching_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut claim = [0u8; 55];
            if s.read_exact(&mut claim).is_ok() && claim[4..6] == [2, 50] && claim[48] == 0 {
                let mut body = coin_ref(COIN);
                body.extend_from_slice(&[0x3E, 0x3E]);
                let mut r = vec![0u8; 32];
                r[2] = 250;
                r[11] = body.len() as u8;
                r.extend_from_slice(&body);
                let _ = s.write_all(&r);
            }
        }
    });
    addr
}

/// A peer that accepts and never answers.
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

#[test]
fn thirteen_peers_fix_a_coin_durably_while_a_fourteenth_stays_silent() {
    let root = tempfile::tempdir().expect("temp dir");
    write_demo_store(root.path()).expect("the demo store");
    // RAIDAs 1..=13 vouch, 14 is silent, the others have no address.
    let mut peers: Vec<Option<SocketAddr>> = vec![None; 25];
    for peer in peers.iter_mut().take(14).skip(1) {
        *peer = Some(vouching_peer());
    }
    peers[14] = Some(silent_peer());
    let server = Running::start(ServerBuilder::new(config(root.path())).peers(
        peers,
        Duration::from_millis(500),
        4,
    ));

    let mut payload = coin_ref(COIN);
    payload.extend_from_slice(&PG);
    for i in 0..25u32 {
        let ticket: u32 = if (1..=14).contains(&i) { 0x100 + i } else { 0 };
        payload.extend_from_slice(&ticket.to_be_bytes());
    }
    let mut fix = Request::new(0, 2, 80, Keys::None);
    fix.payload = payload;
    assert_eq!(server.ask(fix), (241, Vec::new()));
    server.stop();

    // After a restart, the new AN is the coin's key: a type-1 request keyed by it
    // passes, which only the durable record can make true.
    let an = new_an(0, CoinId::new(COIN.0, COIN.1), &PG);
    let server = Running::start(ServerBuilder::new(config(root.path())));
    let version = Request::version(
        0,
        Keys::Coin {
            coin: Coin::new(COIN.0, COIN.1),
            an,
        },
    );
    assert_eq!(server.ask(version).0, 250);
    server.stop();
}
