//! The metrics and health endpoint of the real `raida-server` (`--metrics-addr
//! 127.0.0.1:0`): a scrape, requests of several statuses over TCP and UDP, another
//! scrape, and the counters moved by exactly those amounts. The second scrape comes
//! right after the last response was received: it must already count it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};

use raida_client::{exchange, BuiltRequest, Coin, Keys, Request, Timeouts, Transport};
use raida_core::Status;
use raida_tests::{demo_keys, demo_root, http_get, read_to_eof, Server, GENEROUS};

/// One scrape: every sample line, `series -> value` (the series with its labels).
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let r = http_get(addr, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    let content_type = r.content_type.unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "Prometheus text format: {content_type}"
    );
    r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a number in {l:?}")),
            };
            (series.to_string(), value)
        })
        .collect()
}

fn responses(transport: &str, status: Status) -> String {
    format!(
        "raida_responses_total{{transport=\"{transport}\",status=\"{}\",name=\"{}\"}}",
        status.code(),
        status.name()
    )
}

fn latency_count(transport: &str) -> String {
    format!("raida_response_latency_seconds_count{{transport=\"{transport}\"}}")
}

fn latency_inf(transport: &str) -> String {
    format!("raida_response_latency_seconds_bucket{{transport=\"{transport}\",le=\"+Inf\"}}")
}

fn built(mut request: Request) -> BuiltRequest {
    request.randomize().expect("random bytes");
    request.build().expect("request builds")
}

/// Sends `request` on a fresh TCP connection and returns the status byte of the answer
/// (raw: a response to a wrong raida id does not verify as the client expects).
fn raw_tcp_status(server: &Server, request: &BuiltRequest) -> u8 {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&server.tcp, GENEROUS).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("read timeout");
    s.write_all(request.bytes()).expect("write the request");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let response = read_to_eof(&mut s).expect("the response, then FIN");
    assert!(response.len() >= 32, "a whole header: {response:?}");
    response[2]
}

#[test]
fn counters_move_by_exactly_the_requests_sent() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--metrics-addr", "127.0.0.1:0"]);
    // The listening line stays first; the metrics line follows it.
    let metrics = server.metrics_addr();
    assert_eq!(metrics.ip().to_string(), "127.0.0.1");
    assert_ne!(metrics.port(), 0, "the bound port, not the one asked for");

    let before = scrape(metrics);
    let timeouts = Timeouts::uniform(GENEROUS);

    // 3 echoes (250) over TCP, 2 over UDP.
    for (transport, addr, n) in [
        (Transport::Tcp, server.tcp, 3),
        (Transport::Udp, server.udp, 2),
    ] {
        for _ in 0..n {
            let req = built(Request::echo(0, demo_keys(0)));
            let reply = exchange(addr, transport, &req, &timeouts).expect("echo");
            assert_eq!(reply.response.header.status, Status::Success.into());
        }
    }
    // A wrong raida id (3) over TCP.
    let wrong_raida = built(Request::echo(5, Keys::None));
    assert_eq!(
        raw_tcp_status(&server, &wrong_raida),
        Status::InvalidRaidaId.code()
    );
    // Type 4 naming a coin the store does not have (25) over TCP.
    let unknown_coin = built(Request::echo(
        0,
        Keys::Coin256 {
            coin: Coin::new(1, 999_999),
            an: [0; 16],
        },
    ));
    assert_eq!(
        raw_tcp_status(&server, &unknown_coin),
        Status::EncryptionCoinNotFound.code()
    );

    let after = scrape(metrics);
    let delta = |series: &str| -> f64 {
        let a = after.get(series).copied();
        let b = before.get(series).copied();
        match (a, b) {
            (Some(a), Some(b)) => a - b,
            (Some(a), None) => a,
            _ => panic!("{series} missing from the scrape"),
        }
    };

    let expected: BTreeMap<String, f64> = [
        (responses("tcp", Status::Success), 3.0),
        (responses("udp", Status::Success), 2.0),
        (responses("tcp", Status::InvalidRaidaId), 1.0),
        (responses("tcp", Status::EncryptionCoinNotFound), 1.0),
    ]
    .into_iter()
    .collect();
    // Every response series: exactly the expected movement, zero elsewhere.
    for series in after
        .keys()
        .filter(|s| s.starts_with("raida_responses_total{"))
    {
        let want = expected.get(series).copied().unwrap_or(0.0);
        assert_eq!(delta(series), want, "{series}");
    }
    for series in expected.keys() {
        assert!(after.contains_key(series), "{series} listed");
    }

    assert_eq!(delta("raida_connections_accepted_total"), 5.0);
    assert_eq!(delta("raida_connections_refused_total"), 0.0);
    assert_eq!(delta(&latency_count("tcp")), 5.0);
    assert_eq!(delta(&latency_count("udp")), 2.0);
    assert_eq!(delta(&latency_inf("tcp")), 5.0);
    assert_eq!(delta(&latency_inf("udp")), 2.0);
    // Buckets are cumulative: never decreasing along le, and ending at the count.
    for transport in ["tcp", "udp"] {
        let prefix = format!("raida_response_latency_seconds_bucket{{transport=\"{transport}\",");
        let buckets: Vec<f64> = after
            .iter()
            .filter(|(s, _)| s.starts_with(&prefix))
            .map(|(_, &v)| v)
            .collect();
        assert_eq!(buckets.len(), 16, "15 bounds and +Inf");
        let count = after[&latency_count(transport)];
        assert!(
            buckets.iter().all(|&b| b <= count),
            "{transport}: {buckets:?}"
        );
        assert!(
            delta(&format!(
                "raida_response_latency_seconds_sum{{transport=\"{transport}\"}}"
            )) >= 0.0
        );
    }
    // Only the type-4 request looked a coin up: its page was not in memory (a miss),
    // a worker read it (absent), and the request looked again (a hit: unknown coin).
    assert_eq!(delta("raida_store_lookups_total"), 2.0);
    assert_eq!(delta("raida_store_lookup_misses_total"), 1.0);
    assert_eq!(delta("raida_store_page_loads_total"), 1.0);
    assert_eq!(delta("raida_store_pages_absent_total"), 1.0);
    let cache = delta("raida_store_lookup_hits_total")
        + delta("raida_store_lookup_misses_total")
        + delta("raida_store_out_of_range_total");
    assert_eq!(cache, 2.0, "every lookup is a hit, a miss or out of range");
    assert_eq!(delta("raida_late_completions_dropped_total"), 0.0);
    for gauge in [
        "raida_connections_open",
        "raida_jobs_in_flight",
        "raida_jobs_waiting",
    ] {
        assert!(after.contains_key(gauge), "{gauge}");
    }
}

#[test]
fn health_paths_answer_ok_and_unknown_paths_404() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--metrics-addr", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    for path in ["/healthz", "/live"] {
        let r = http_get(metrics, path);
        assert_eq!((r.status, r.body.trim()), (200, "ok"), "{path}");
    }
    assert_eq!(http_get(metrics, "/healthz?verbose=1").status, 200);
    for path in ["/", "/nope", "/metricsx"] {
        assert_eq!(http_get(metrics, path).status, 404, "{path}");
    }
}

#[test]
fn without_metrics_addr_there_is_no_second_line() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    // The server is serving (echo answered), and it printed nothing after `listening`.
    let req = built(Request::echo(0, demo_keys(0)));
    let reply = exchange(
        server.tcp,
        Transport::Tcp,
        &req,
        &Timeouts::uniform(GENEROUS),
    )
    .expect("echo");
    assert_eq!(reply.response.header.status, Status::Success.into());
    assert_eq!(
        server.next_stdout_line(std::time::Duration::from_millis(200)),
        None
    );
}
