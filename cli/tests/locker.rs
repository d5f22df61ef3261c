//! `raida locker put|peek|remove` against an in-process server over a memory key store
//! with the real locker commands: the records it changes, its JSON, its exit statuses,
//! and a network file where some RAIDAs do not answer.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;

use raida_client::locker::locker_key;
use raida_core::keys::{CoinId, Lookup, MemoryKeyStore};
use raida_core::KeyStore;
use raida_core::Timestamp;
use raida_store::demo_coin_an;
use serde_json::Value;
use support::*;

fn raida(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raida"))
        .args(args)
        .output()
        .expect("run raida")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

fn an_of(store: &MemoryKeyStore, d: i8, s: u32) -> [u8; 16] {
    match store.lookup(CoinId::new(d, s), Timestamp::ZERO) {
        Lookup::Found(an) => an,
        other => panic!("{d}:{s}: {other:?}"),
    }
}

const CODE: &str = "abc2345";

/// The options that address the test server (raida id 3, coin id 6).
fn target(port: &str) -> Vec<String> {
    [
        "--port",
        port,
        "--raida-id=3",
        "--coin-id=6",
        "--code",
        CODE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(sub: &str, port: &str, extra: &[&str]) -> Output {
    let mut args = vec!["locker".to_string(), sub.to_string()];
    args.extend(target(port));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    raida(&refs)
}

#[test]
fn put_peek_remove_move_the_coins_through_the_derived_key() {
    let store = Arc::new(keys());
    let server = TcpServer::start_with_keys(TcpMode::Answer, 10, Arc::clone(&store));
    let port = server.addr.port().to_string();
    let (an1, an2) = (hex(&demo_coin_an(1, 1)), hex(&demo_coin_an(1, 2)));
    let key = locker_key(3, CODE);

    let o = run(
        "put",
        &port,
        &["--coin", "1:1", "--an", &an1, "--coin", "1:2", "--an", &an2],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 of 1 RAIDAs answered ALL_PASS"));
    assert_eq!(an_of(&store, 1, 1), key);
    assert_eq!(an_of(&store, 1, 2), key);

    let o = run("peek", &port, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["raidas"][0]["key"], hex(&key));
    assert_eq!(v["raidas"][0]["coins"], serde_json::json!(["1:1", "1:2"]));

    // No --coin: remove what peek lists, each with a new AN drawn by the CLI.
    let o = run("remove", &port, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    let coins = v["raidas"][0]["coins"].as_array().expect("coins").clone();
    assert_eq!(coins.len(), 2);
    for (c, (d, s)) in coins.iter().zip([(1, 1), (1, 2)]) {
        assert_eq!(c["coin"], format!("{d}:{s}"));
        assert_eq!(c["result"], "pass");
        assert_eq!(c["new_an"], hex(&an_of(&store, d, s)));
        assert_ne!(an_of(&store, d, s), key);
    }

    // The locker is empty now: peek answers 242, exit 1.
    let o = run("peek", &port, &[]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("no coin holds this key"));
}

#[test]
fn a_put_with_a_wrong_an_moves_nothing_and_exits_1() {
    let store = Arc::new(keys());
    let server = TcpServer::start_with_keys(TcpMode::Answer, 10, Arc::clone(&store));
    let port = server.addr.port().to_string();
    let wrong = hex(&[0x11; 16]);
    let o = run("put", &port, &["--coin", "1:1", "--an", &wrong, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = json(&o);
    assert_eq!(v["raidas"][0]["status"], 242);
    assert_eq!(v["raidas"][0]["passed"], false);
    assert_eq!(an_of(&store, 1, 1), demo_coin_an(1, 1));
}

#[test]
fn a_network_file_addresses_raida_i_on_line_i_and_unreachable_ones_exit_3() {
    let store = Arc::new(keys());
    let server = TcpServer::start_with_keys(TcpMode::Answer, 10, Arc::clone(&store));
    // RAIDAs 0..2 on a port nobody listens on (bound, then closed); RAIDA 3 answers.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let network = dir.path().join("network.txt");
    std::fs::write(
        &network,
        format!("{closed}\n{closed}\n{closed}\n{}\n", server.addr),
    )
    .expect("write");
    let coins = dir.path().join("coins.txt");
    // One AN per RAIDA: only RAIDA 3's is the coin's.
    let an = hex(&demo_coin_an(-1, 16));
    let zero = hex(&[0; 16]);
    std::fs::write(&coins, format!("-1:16 {zero} {zero} {zero} {an}\n")).expect("write");
    let o = raida(&[
        "locker",
        "put",
        "--network",
        network.to_str().expect("utf-8"),
        "--coin-id=6",
        "--code",
        CODE,
        "--coins",
        coins.to_str().expect("utf-8"),
        "--json",
        "--timeout-ms",
        "2000",
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v = json(&o);
    assert_eq!(v["raidas_total"], 4);
    assert_eq!(v["raidas_passed"], 1);
    assert!(v["raidas"][0]["error_kind"].as_str().is_some());
    assert_eq!(v["raidas"][3]["raida"], 3);
    assert_eq!(v["raidas"][3]["status"], 241);
    assert_eq!(an_of(&store, -1, 16), locker_key(3, CODE));
}

#[test]
fn a_locker_needs_a_code_or_a_key() {
    let o = raida(&["locker", "peek", "--port", "1"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = raida(&[
        "locker",
        "peek",
        "--port",
        "1",
        "--code",
        "x",
        "--key",
        &"ff".repeat(16),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
