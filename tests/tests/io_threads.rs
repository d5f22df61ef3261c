//! `--io-threads 2`: two event loops, each with its own TCP listener and UDP socket on
//! the one port (SO_REUSEPORT), its own engine, one worker pool and one key store.
//! Requests from many source ports (so the kernel's hash spreads them over both
//! loops) over TCP and UDP, unencrypted and encrypted (through the shared key store
//! and the workers), every one answered and verified; the metrics endpoint shows the
//! sum over both loops.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use raida_client::{exchange, BuiltRequest, Request, Timeouts, Transport};
use raida_core::Status;
use raida_core::VERSION_BYTES;
use raida_tests::{demo_keys, demo_root, http_get, Server, GENEROUS};

/// Requests per transport and encryption type; each from a fresh source port.
const EACH: u64 = 40;

fn version(encryption: u8, n: u64) -> BuiltRequest {
    let mut request = Request::version(0, demo_keys(encryption));
    request.randomize().expect("random bytes");
    request.echo = (n as u16).to_be_bytes();
    request.build().expect("request builds")
}

fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let r = http_get(addr, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn successes(metrics: &BTreeMap<String, f64>, transport: &str) -> f64 {
    let key = format!(
        "raida_responses_total{{transport=\"{transport}\",status=\"{}\",name=\"{}\"}}",
        Status::Success.code(),
        Status::Success.name()
    );
    metrics.get(&key).copied().unwrap_or(0.0)
}

fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn two_event_loops_serve_tcp_and_udp() {
    let root = demo_root();
    let server = Server::start(
        root.path(),
        &["--io-threads", "2", "--metrics-addr", "127.0.0.1:0"],
    );
    let metrics = server.metrics_addr();
    if cfg!(target_os = "linux") {
        // A thread takes its name when it starts, which may come just after the
        // server says it is listening: look again until GENEROUS has passed.
        let start = std::time::Instant::now();
        let mut names = thread_names(server.pid());
        let both = |names: &[String]| {
            ["raida-loop-0", "raida-loop-1"]
                .iter()
                .all(|want| names.iter().any(|n| n == want))
        };
        while !both(&names) && start.elapsed() < GENEROUS {
            std::thread::sleep(std::time::Duration::from_millis(20));
            names = thread_names(server.pid());
        }
        assert!(
            both(&names),
            "two event-loop threads, raida-loop-0 and raida-loop-1, among {names:?}"
        );
    }
    let timeouts = Timeouts::uniform(GENEROUS);
    let mut sent = 0u64;
    for t in [0u8, 4] {
        for n in 0..EACH {
            let req = version(t, n);
            // TCP: a new connection each time, so a new source port.
            let reply = exchange(server.tcp, Transport::Tcp, &req, &timeouts)
                .unwrap_or_else(|e| panic!("TCP version type {t} #{n}: {e}"));
            assert_eq!(reply.response.header.status, Status::Success.into());
            assert_eq!(reply.response.body, VERSION_BYTES);
            // UDP: `exchange` binds a fresh socket, so a new source port too.
            let reply = exchange(server.udp, Transport::Udp, &req, &timeouts)
                .unwrap_or_else(|e| panic!("UDP version type {t} #{n}: {e}"));
            assert_eq!(reply.response.header.status, Status::Success.into());
            assert_eq!(reply.response.body, VERSION_BYTES);
            sent += 1;
        }
    }
    // The endpoint sums both loops: every response counted exactly once.
    let m = scrape(metrics);
    assert_eq!(successes(&m, "tcp"), sent as f64);
    assert_eq!(successes(&m, "udp"), sent as f64);
    assert_eq!(
        m.get("raida_connections_accepted_total").copied(),
        Some(sent as f64)
    );
}
