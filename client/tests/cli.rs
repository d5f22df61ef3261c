//! The `raida` binary against in-process servers on 127.0.0.1: output, JSON and
//! exit statuses.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use raida_store::{demo_coin_an, demo_locker_an};
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const ID: &str = "--raida-id=3";
const COIN: &str = "--coin-id=6";

#[test]
fn keys_demo_prints_every_coin_and_the_locker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_str().expect("utf-8 path");
    let o = raida(&["keys", "demo", "--data-root", root]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 51 + 1);
    assert!(lines.contains(&format!("1:1 {}", hex(&demo_coin_an(1, 1))).as_str()));
    assert!(lines.contains(&format!("-1:16 {}", hex(&demo_coin_an(-1, 16))).as_str()));
    assert_eq!(
        lines.last().copied(),
        Some(format!("locker {}", hex(&demo_locker_an())).as_str())
    );
    assert!(dir.path().join("Data/01/00/0000.bin").exists());
}

#[test]
fn echo_success_exits_0_and_prints_the_status() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let o = raida(&["echo", "--port", &port, ID, COIN]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("SUCCESS (250)"), "{o:?}");
}

#[test]
fn version_json_over_udp_with_type_4() {
    let server = UdpServer::start();
    let port = server.addr.port().to_string();
    let an = hex(&demo_coin_an(1, 1));
    let o = raida(&[
        "version", "--udp", "--json", "--port", &port, ID, COIN, "--enc", "4", "--coin", "1:1",
        "--an", &an,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["status"], 250);
    assert_eq!(v["status_name"], "SUCCESS");
    let expected = String::from_utf8_lossy(&raida_core::VERSION_BYTES)
        .trim_end()
        .to_string();
    assert_eq!(v["version"], expected.as_str());
}

#[test]
fn type5_needs_two_coins_and_two_ans() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let (a1, a2) = (hex(&demo_coin_an(1, 1)), hex(&demo_coin_an(1, 2)));
    let o = raida(&[
        "version", "--port", &port, ID, COIN, "--enc", "5", "--coin", "1:1", "--an", &a1, "--coin",
        "1:2", "--an", &a2,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = raida(&["version", "--enc", "5", "--coin", "1:1", "--an", &a1]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn another_status_exits_1() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let o = raida(&["echo", "--port", &port, "--raida-id=4", COIN]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("INVALID_RAIDA_ID (3)"), "{o:?}");
}

#[test]
fn a_closed_port_exits_3() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port().to_string();
    drop(l);
    let o = raida(&["echo", "--port", &port, "--json"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["error_kind"], "connect");
}

#[test]
fn a_bad_encryption_type_exits_2() {
    let o = raida(&["echo", "--enc", "3"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn bench_json_counts_the_requests() {
    let server = TcpServer::start(TcpMode::Answer, 50);
    let port = server.addr.port().to_string();
    let o = raida(&[
        "bench",
        "--port",
        &port,
        ID,
        COIN,
        "--requests",
        "50",
        "--connections",
        "4",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["ok"], 50);
    assert_eq!(v["error_count"], 0);
    assert_eq!(v["statuses"]["250"], 50);
}
