//! Starting and stopping the real `raida-server`: signals, configuration files, flags.

use std::io::Write;
use std::net::TcpStream;

use raida_client::{exchange, BuiltRequest, Request, Timeouts, Transport};
use raida_core::Status;
use raida_core::VERSION_BYTES;
use raida_tests::{demo_keys, demo_root, read_to_eof, run_to_exit, Server, GENEROUS};

fn version(raida_id: u8, coin_id: u16, encryption: u8) -> BuiltRequest {
    let mut r = Request::version(raida_id, demo_keys(encryption));
    r.coin_id = coin_id;
    r.randomize().expect("random");
    r.build().expect("build")
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect_timeout(&server.tcp, GENEROUS).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("read timeout");
    s.set_write_timeout(Some(GENEROUS)).expect("write timeout");
    s
}

/// SIGTERM while requests are in flight (accepted, partly sent): the server stops
/// accepting, the requests are completed and answered, and it exits with status 0.
#[test]
fn sigterm_answers_requests_in_flight_and_exits_0() {
    let root = demo_root();
    let mut server = Server::start(root.path(), &["--socket-timeout-ms", "60000"]);
    let reqs: Vec<BuiltRequest> = (0..8).map(|i| version(0, 0, [0, 1, 4, 5][i % 4])).collect();
    let mut conns: Vec<TcpStream> = Vec::new();
    for req in &reqs {
        let mut s = connect(&server);
        let hlen = req.response_header_len();
        s.write_all(&req.bytes()[..hlen]).expect("header only");
        conns.push(s);
    }
    // One full exchange after them: the accept queue is FIFO, so once this is answered
    // every connection above has been accepted.
    let reply = exchange(
        server.tcp,
        Transport::Tcp,
        &version(0, 0, 0),
        &Timeouts::uniform(GENEROUS),
    )
    .expect("echo");
    assert_eq!(reply.response.header.status, Status::Success.into());

    server.signal(libc::SIGTERM);
    for ((s, req), i) in conns.iter_mut().zip(&reqs).zip(0..) {
        let hlen = req.response_header_len();
        s.write_all(&req.bytes()[hlen..])
            .expect("rest of the request");
        let got = read_to_eof(s).unwrap_or_else(|e| panic!("request {i}: {e}"));
        let response = req.parse_response(&got).expect("answered");
        assert_eq!(response.body, VERSION_BYTES);
    }
    let status = server.wait_exit(GENEROUS).expect("exits after draining");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

/// The C server's sample config.toml (every key of PROTOCOL.md 10a, plus root_path)
/// with Data/ beside it starts the server, which honours its raida id and coin id.
#[test]
fn deployed_sample_config_starts_the_server() {
    let root = demo_root();
    let file = root.path().join("config.toml");
    std::fs::write(&file, SAMPLE).expect("write config.toml");
    let file = file.to_str().expect("utf-8 path");
    let server = Server::start_with(
        &["--config", file, "--port", "0", "--bind", "127.0.0.1"],
        None,
    );
    for t in [0, 4] {
        let reply = exchange(
            server.tcp,
            Transport::Tcp,
            &version(14, 6, t),
            &Timeouts::uniform(GENEROUS),
        )
        .expect("version");
        assert_eq!(reply.response.header.raida_id, 14);
        assert_eq!(reply.response.body, VERSION_BYTES);
    }
    // A request for another raida id is refused by the rules the file set.
    let reply = exchange(
        server.udp,
        Transport::Udp,
        &version(0, 6, 0),
        &Timeouts::uniform(GENEROUS),
    )
    .expect("answer");
    assert_eq!(reply.response.header.status, Status::InvalidRaidaId.into());
}

/// A broken config file: non-zero exit, and the error names the key.
#[test]
fn broken_config_exits_non_zero_naming_the_key() {
    let root = demo_root();
    let file = root.path().join("config.toml");
    let broken = SAMPLE.replace("raida_id = 14", "raida_id = \"fourteen\"");
    std::fs::write(&file, broken).expect("write config.toml");
    let out = run_to_exit(&["--config", file.to_str().expect("utf-8")], None);
    assert!(!out.status.success());
    assert!(out.stderr.contains("raida_id"), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("config.toml"), "stderr: {}", out.stderr);

    std::fs::write(&file, "[network]\nmax_conections = 5\n").expect("write");
    let out = run_to_exit(&["--config", file.to_str().expect("utf-8")], None);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("max_conections"),
        "stderr: {}",
        out.stderr
    );
}

/// A bad flag value goes through the same validation and names the flag.
#[test]
fn bad_flag_exits_non_zero_naming_the_flag() {
    for (flag, value) in [
        ("--port", "70000"),
        ("--raida-id", "25"),
        ("--socket-timeout-ms", "0"),
        ("--max-connections", "none"),
        ("--bind", "localhost:1"),
    ] {
        let out = run_to_exit(&[flag, value, "--print-config"], None);
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(out.stderr.contains(flag), "{flag}: stderr: {}", out.stderr);
    }
}

/// `--print-config` prints the effective configuration (flags applied) and exits 0.
#[test]
fn print_config_shows_flags_applied() {
    let out = run_to_exit(
        &[
            "--print-config",
            "--raida-id",
            "7",
            "--max-connections",
            "99",
        ],
        None,
    );
    assert!(out.status.success(), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("raida_id = 7"), "{}", out.stdout);
    assert!(
        out.stdout.contains("max_connections = 99"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("port = 50007"), "{}", out.stdout);
}

/// With --config, a missing Data/ is an error naming the path; nothing is created.
#[test]
fn config_without_data_dir_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[server]\nraida_id = 1\nport = 0\n").expect("write");
    let out = run_to_exit(&["--config", file.to_str().expect("utf-8")], None);
    assert!(!out.status.success());
    assert!(out.stderr.contains("Data"), "stderr: {}", out.stderr);
    assert!(
        !dir.path().join("Data").exists(),
        "no demo data in an operator's dir"
    );
}

/// Without a config file or data root the server serves the demo store it creates under
/// ./raida-data, including type-1 requests for demo coins.
#[test]
fn embedded_default_creates_and_serves_the_demo_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(&["--port", "0", "--bind", "127.0.0.1"], Some(dir.path()));
    assert!(dir.path().join("raida-data/Data").is_dir());
    let reply = exchange(
        server.tcp,
        Transport::Tcp,
        &version(0, 0, 1),
        &Timeouts::uniform(GENEROUS),
    )
    .expect("version");
    assert_eq!(reply.response.body, VERSION_BYTES);
    assert!(
        server.stderr_shows("try: raida version --port", GENEROUS),
        "stderr: {}",
        server.stderr()
    );
}

/// A file shaped like the deployed C server's sample: every key of PROTOCOL.md 10a.
const SAMPLE: &str = r#"
[server]
raida_id = 14
coin_id = 6
port = 50014
backup_freq = 5
integrity_freq = 3600
udp_effective_payload = 1440
synchronization_enabled = false
root_path = "/opt/wraidax"
threads = 4
admin_key = "6de9439834c9147569741d3c9c9fc010"
proxy_key = "11b524f989a384f58e0d442da6bd6379"
proxy_addr = "swap.cloudcoin.global"
proxy_port = 50555
btc_confirmations = 3
raida_servers = [
  "raida50.cloudcoin.global:50000", "raida51.cloudcoin.global:50001",
  "raida52.cloudcoin.global:50002", "raida53.cloudcoin.global:50003",
  "raida54.cloudcoin.global:50004", "raida55.cloudcoin.global:50005",
  "raida56.cloudcoin.global:50006", "raida57.cloudcoin.global:50007",
  "raida58.cloudcoin.global:50008", "raida59.cloudcoin.global:50009",
  "raida60.cloudcoin.global:50010", "raida61.cloudcoin.global:50011",
  "raida62.cloudcoin.global:50012", "raida63.cloudcoin.global:50013",
  "raida64.cloudcoin.global:50014", "raida65.cloudcoin.global:50015",
  "raida66.cloudcoin.global:50016", "raida67.cloudcoin.global:50017",
  "raida68.cloudcoin.global:50018", "raida69.cloudcoin.global:50019",
  "raida70.cloudcoin.global:50020", "raida71.cloudcoin.global:50021",
  "raida72.cloudcoin.global:50022", "raida73.cloudcoin.global:50023",
  "raida74.cloudcoin.global:50024",
]
"#;
