//! The `raida` CLI against a live `raida-server` (the embedded default, run in a temp
//! directory on `--port 0`, so it serves the demo store and the demo locker): every
//! encryption type over TCP and UDP, a wrong AN, and a server that never answers.

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Output};
use std::time::Instant;

use raida_core::VERSION_BYTES;
use raida_store::{demo_coin_an, demo_locker_an};
use raida_tests::{cli_binary, Server, GENEROUS};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn embedded_default() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(&["--port", "0", "--bind", "127.0.0.1"], Some(dir.path()));
    (dir, server)
}

/// The key arguments for encryption type `enc` with the demo store's ANs.
fn key_args(enc: u8) -> Vec<String> {
    let coin = |d: i8, s: u32| {
        vec![
            "--coin".to_string(),
            format!("{d}:{s}"),
            "--an".to_string(),
            hex(&demo_coin_an(d, s)),
        ]
    };
    match enc {
        0 => vec![],
        1 | 4 => coin(1, 1),
        2 => vec!["--an".into(), hex(&demo_locker_an())],
        5 => {
            let mut a = coin(0, 3);
            a.extend(coin(-1, 16));
            a
        }
        other => panic!("no keys for type {other}"),
    }
}

fn raida(args: &[String]) -> Output {
    Command::new(cli_binary())
        .args(args)
        .output()
        .expect("run the raida CLI")
}

fn args(command: &str, port: u16, enc: u8, udp: bool) -> Vec<String> {
    let mut a = vec![
        command.to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--raida-id".into(),
        "0".into(),
        "--coin-id".into(),
        "0".into(),
        "--enc".into(),
        enc.to_string(),
        "--timeout-ms".into(),
        "5000".into(),
    ];
    if udp {
        a.push("--udp".into());
    }
    a.extend(key_args(enc));
    a
}

#[test]
fn echo_and_version_succeed_for_every_type_over_tcp_and_udp() {
    let (_dir, server) = embedded_default();
    let version = String::from_utf8(VERSION_BYTES.to_vec()).expect("ascii");
    for enc in [0u8, 1, 2, 4, 5] {
        for udp in [false, true] {
            let out = raida(&args("echo", server.tcp.port(), enc, udp));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "echo type {enc} udp {udp}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("SUCCESS (250)"),
                "echo type {enc}: {stdout}"
            );

            let out = raida(&args("version", server.tcp.port(), enc, udp));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "version type {enc} udp {udp}: {stdout}"
            );
            assert!(
                stdout.contains(version.trim_end()),
                "version type {enc}: {stdout}"
            );
        }
    }
}

#[test]
fn a_wrong_an_exits_non_zero_naming_the_status() {
    let (_dir, server) = embedded_default();
    // Type 4: the HMAC does not verify under the server's key.
    let mut a = args("echo", server.tcp.port(), 4, false);
    let an_at = a.iter().position(|x| x == "--an").expect("--an") + 1;
    a[an_at] = "00112233445566778899aabbccddeeff".into();
    let out = raida(&a);
    assert_eq!(out.status.code(), Some(1), "a non-250 status exits 1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("INVALID_HMAC (204)"));
    // Type 1: the server decrypts garbage, so the CRC fails.
    let mut a = args("echo", server.tcp.port(), 1, true);
    let an_at = a.iter().position(|x| x == "--an").expect("--an") + 1;
    a[an_at] = "00112233445566778899aabbccddeeff".into();
    let out = raida(&a);
    assert_ne!(out.status.code(), Some(0));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("INVALID_CRC") || all.contains("37"), "{all}");
}

#[test]
fn a_server_that_does_not_answer_is_a_timeout_not_a_hang() {
    // UDP: a socket that never replies. TCP: a listener whose backlog accepts the
    // connection but nobody ever reads or answers.
    let silent_udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let silent_tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    for (port, udp) in [
        (silent_udp.local_addr().expect("addr").port(), true),
        (silent_tcp.local_addr().expect("addr").port(), false),
    ] {
        let mut a = args("echo", port, 0, udp);
        let t = a.iter().position(|x| x == "--timeout-ms").expect("timeout") + 1;
        a[t] = "300".into();
        // Build (or find) the binary first: only the exchange is bounded.
        let bin = cli_binary();
        let started = Instant::now();
        let out = Command::new(bin)
            .args(&a)
            .output()
            .expect("run the raida CLI");
        assert!(started.elapsed() < GENEROUS, "no hang");
        assert_eq!(
            out.status.code(),
            Some(3),
            "transport errors exit 3 (udp {udp})"
        );
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            err.contains("timed out"),
            "the error says it timed out: {err}"
        );
    }
}
