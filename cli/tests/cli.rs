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

// ---- detect and pown, against the real commands over a memory store of 1:1, 1:2, -1:16 ----

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {o:?}"))
}

fn an_of(d: i8, s: u32) -> String {
    hex(&demo_coin_an(d, s))
}

const WRONG_AN: &str = "00000000000000000000000000000000";

/// `raida` with `args`, feeding `input` to its standard input.
fn raida_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_raida"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raida");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[test]
fn detect_all_pass_exits_0_and_lists_every_coin() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let (a, b) = (an_of(1, 1), an_of(-1, 16));
    let o = raida(&[
        "detect", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a, "--coin", "-1:16",
        "--an", &b,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with("status:     ALL_PASS (241)\n"), "{out}");
    assert!(out.contains("\n1:1 pass\n-1:16 pass\n"), "{out}");
}

#[test]
fn detect_mixed_over_udp_decodes_the_bitmap_and_exits_1() {
    let server = UdpServer::start();
    let port = server.addr.port().to_string();
    let (a, b) = (an_of(1, 1), an_of(-1, 16));
    // Passes, a wrong AN, passes, an unknown coin.
    let o = raida(&[
        "detect", "--udp", "--json", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a,
        "--coin", "1:2", "--an", WRONG_AN, "--coin", "-1:16", "--an", &b, "--coin", "5:5", "--an",
        &a,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = json(&o);
    assert_eq!(v["command"], "detect");
    assert_eq!(v["status"], 243);
    assert_eq!(v["status_name"], "MIXED");
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(2))
    );
    let results: Vec<(&str, &str)> = v["coins"]
        .as_array()
        .expect("coins")
        .iter()
        .map(|c| {
            (
                c["coin"].as_str().expect("coin"),
                c["result"].as_str().expect("result"),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("1:1", "pass"),
            ("1:2", "fail"),
            ("-1:16", "pass"),
            ("5:5", "fail")
        ]
    );
    assert!(v["round_trip_us"].is_u64());
}

#[test]
fn detect_all_fail_prints_every_coin_failed_and_exits_1() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let o = raida(&[
        "detect", "--port", &port, ID, COIN, "--coin", "1:1", "--an", WRONG_AN, "--coin", "1:2",
        "--an", WRONG_AN,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with("status:     ALL_FAIL (242)\n"), "{out}");
    assert!(out.contains("\n1:1 fail\n1:2 fail\n"), "{out}");
}

#[test]
fn detect_sum_passes_fails_and_refuses_an_unknown_coin() {
    let server = TcpServer::start(TcpMode::Answer, 3);
    let port = server.addr.port().to_string();
    let (a, b) = (an_of(1, 1), an_of(1, 2));
    let base = ["detect", "--sum", "--port", &port, ID, COIN];
    let run = |extra: &[&str]| raida(&[&base[..], extra].concat());
    let o = run(&["--coin", "1:1", "--an", &a, "--coin", "1:2", "--an", &b]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("ALL_PASS (241)\n"), "{o:?}");
    let o = run(&["--coin", "1:1", "--an", &a, "--coin", "1:2", "--an", &a]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("ALL_FAIL (242)") && out.contains("1:2 fail"),
        "{out}"
    );
    assert!(
        out.contains("detect_sum: the XOR of the ANs does not match"),
        "{out}"
    );
    let o = run(&[
        "--coin", "1:1", "--an", &a, "--coin", "3:3", "--an", &b, "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = json(&o);
    assert_eq!(v["command"], "detect_sum");
    assert_eq!(v["status"], 40);
    assert_eq!(v["status_name"], "INVALID_SN_OR_DENOMINATION");
    assert!(
        v["passed"].is_null() && v["coins"][0]["result"].is_null(),
        "{v}"
    );
}

#[test]
fn a_shard_of_another_system_is_refused_with_20() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let a = an_of(1, 1);
    let o = raida(&[
        "detect", "--shard", "1", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("SHARD_NOT_AVAILABLE (20)"), "{out}");
    assert!(out.contains("no per-coin result"), "{out}");
}

#[test]
fn pown_with_a_random_pan_makes_the_pan_the_coins_an() {
    let server = TcpServer::start(TcpMode::Answer, 4);
    let port = server.addr.port().to_string();
    let old = an_of(1, 2);
    let o = raida(&[
        "pown",
        "--random-pan",
        "--json",
        "--port",
        &port,
        ID,
        COIN,
        "--coin",
        "1:2",
        "--an",
        &old,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(
        (v["command"].as_str(), v["status"].as_u64()),
        (Some("pown"), Some(241))
    );
    let pan = v["coins"][0]["pan"]
        .as_str()
        .expect("the PAN written")
        .to_string();
    assert_eq!(pan.len(), 32);
    assert_ne!(pan, old);
    let detect = |an: &str| {
        raida(&[
            "detect", "--port", &port, ID, COIN, "--coin", "1:2", "--an", an,
        ])
    };
    let o = detect(&old);
    assert_eq!(o.status.code(), Some(1), "the old AN fails: {o:?}");
    let o = detect(&pan);
    assert_eq!(o.status.code(), Some(0), "the PAN passes: {o:?}");
    // And the text output lists the new AN as a coins-file line.
    let o = raida(&[
        "pown",
        "--random-pan",
        "--port",
        &port,
        ID,
        COIN,
        "--coin",
        "1:2",
        "--an",
        &pan,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("1:2 pass\nnew ANs"), "{out}");
    let line = out.lines().last().expect("a line");
    assert!(line.starts_with("1:2 ") && line.len() == 4 + 32, "{out}");
}

#[test]
fn pown_with_given_pans_over_type_4_answers_mixed() {
    let server = UdpServer::start();
    let port = server.addr.port().to_string();
    let (key, b) = (an_of(1, 1), an_of(-1, 16));
    let (p1, p2) = (
        "11111111111111111111111111111111",
        "22222222222222222222222222222222",
    );
    let o = raida(&[
        "pown",
        "--udp",
        "--json",
        "--port",
        &port,
        ID,
        COIN,
        "--enc",
        "4",
        "--key-coin",
        "1:1",
        "--key-an",
        &key,
        "--coin",
        "1:2",
        "--an",
        WRONG_AN,
        "--pan",
        p1,
        "--coin",
        "-1:16",
        "--an",
        &b,
        "--pan",
        p2,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = json(&o);
    assert_eq!(
        (v["enc"].as_u64(), v["status"].as_u64()),
        (Some(4), Some(243))
    );
    assert_eq!(v["coins"][0]["result"], "fail");
    assert_eq!(v["coins"][1]["result"], "pass");
    // Given PANs are not printed back.
    assert!(v["coins"][1].get("pan").is_none(), "{v}");
    let o = raida(&[
        "detect", "--udp", "--port", &port, ID, COIN, "--coin", "-1:16", "--an", p2,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn pown_sum_with_a_random_delta_changes_every_an_or_none() {
    let server = TcpServer::start(TcpMode::Answer, 4);
    let port = server.addr.port().to_string();
    let (a, b) = (an_of(1, 1), an_of(1, 2));
    // A wrong sum: 242, nothing changes.
    let o = raida(&[
        "pown",
        "--sum",
        "--random-delta",
        "--port",
        &port,
        ID,
        COIN,
        "--coin",
        "1:1",
        "--an",
        &a,
        "--coin",
        "1:2",
        "--an",
        WRONG_AN,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("no AN changed"), "{o:?}");
    let o = raida(&[
        "pown",
        "--sum",
        "--random-delta",
        "--json",
        "--port",
        &port,
        ID,
        COIN,
        "--coin",
        "1:1",
        "--an",
        &a,
        "--coin",
        "1:2",
        "--an",
        &b,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["command"], "pown_sum");
    let delta = v["delta"].as_str().expect("delta");
    let new: Vec<String> = (0..2)
        .map(|i| {
            v["coins"][i]["new_an"]
                .as_str()
                .expect("new AN")
                .to_string()
        })
        .collect();
    let xor = |x: &str, y: &str| -> String {
        (0..16)
            .map(|i| {
                let b = |s: &str| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
                format!("{:02x}", b(x) ^ b(y))
            })
            .collect()
    };
    assert_eq!(new[0], xor(&a, delta));
    assert_eq!(new[1], xor(&b, delta));
    let o = raida(&[
        "detect", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &new[0], "--coin", "1:2",
        "--an", &new[1],
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn coins_come_from_a_file_or_standard_input_as_keys_demo_prints_them() {
    let server = TcpServer::start(TcpMode::Answer, 2);
    let port = server.addr.port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("coins.txt");
    let text = format!(
        "# three coins\n1:1 {}\n\n1:2 {WRONG_AN}   # wrong\n-1:16 {}\nlocker {}\n",
        an_of(1, 1),
        an_of(-1, 16),
        hex(&demo_locker_an())
    );
    std::fs::write(&file, &text).expect("write");
    let path = file.to_str().expect("utf-8");
    let o = raida(&["detect", "--port", &port, ID, COIN, "--coins", path]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("MIXED (243)\n"), "{o:?}");
    assert!(
        stdout(&o).contains("\n1:1 pass\n1:2 fail\n-1:16 pass\n"),
        "{o:?}"
    );
    let o = raida_with_stdin(
        &["detect", "--port", &port, ID, COIN, "--coins", "-"],
        &text,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stdout(&o).contains("\n1:1 pass\n1:2 fail\n-1:16 pass\n"),
        "{o:?}"
    );
}

#[test]
fn pown_takes_its_pans_from_the_coins_files_third_column() {
    let server = TcpServer::start(TcpMode::Answer, 2);
    let port = server.addr.port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("coins.txt");
    let pan = "33333333333333333333333333333333";
    std::fs::write(&file, format!("-1:16 {} {pan}\n", an_of(-1, 16))).expect("write");
    let path = file.to_str().expect("utf-8");
    let o = raida(&["pown", "--port", &port, ID, COIN, "--coins", path]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = raida(&[
        "detect", "--port", &port, ID, COIN, "--coin", "-1:16", "--an", pan,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn bad_detect_and_pown_command_lines_exit_2() {
    let a = an_of(1, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("1:1 {a}\n1:2\n")).expect("write");
    let pans = dir.path().join("pans.txt");
    std::fs::write(&pans, format!("1:1 {a} {a}\n")).expect("write");
    let (bad, pans) = (bad.to_str().expect("utf-8"), pans.to_str().expect("utf-8"));
    let missing = dir.path().join("missing.txt");
    let missing = missing.to_str().expect("utf-8");
    let cases: [&[&str]; 17] = [
        &["detect"],
        &["detect", "--coin", "1:1"],
        &["detect", "--coin", "1:1", "--an", &a, "--an", &a],
        &["detect", "--coin", "1:1", "--an", "abc"],
        &["detect", "--coin", "1", "--an", &a],
        &["detect", "--coins", bad],
        &["detect", "--coins", pans],
        &["detect", "--coins", missing],
        &["detect", "--coins", pans, "--coin", "1:1"],
        &["detect", "--coin", "1:1", "--an", &a, "--enc", "4"],
        &["pown", "--coin", "1:1", "--an", &a],
        &[
            "pown", "--coin", "1:1", "--an", &a, "--pan", &a, "--pan", &a,
        ],
        &[
            "pown",
            "--coin",
            "1:1",
            "--an",
            &a,
            "--pan",
            &a,
            "--random-pan",
        ],
        &["pown", "--coins", pans, "--random-pan"],
        &["pown", "--coin", "1:1", "--an", &a, "--delta", &a],
        &["pown", "--coin", "1:1", "--an", &a, "--sum"],
        &["pown", "--coins", pans, "--sum", "--random-delta"],
    ];
    for args in cases {
        let o = raida(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(o.stdout.is_empty(), "{args:?}: {o:?}");
    }
}

#[test]
fn a_pown_with_no_answer_exits_3_and_prints_the_pans_it_may_have_written() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port().to_string();
    drop(l);
    let a = an_of(1, 1);
    let o = raida(&[
        "pown",
        "--random-pan",
        "--port",
        &port,
        "--coin",
        "1:1",
        "--an",
        &a,
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("may have written"), "{out}");
    assert!(
        out.lines().last().is_some_and(|l| l.starts_with("1:1 ")),
        "{out}"
    );
    let o = raida(&[
        "pown",
        "--random-pan",
        "--json",
        "--port",
        &port,
        "--coin",
        "1:1",
        "--an",
        &a,
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v = json(&o);
    assert_eq!(v["error_kind"], "connect");
    assert_eq!(v["unknown_outcome"], true);
    assert_eq!(v["coins"][0]["pan"].as_str().map(str::len), Some(32));
}

#[test]
fn the_key_coin_options_of_echo_are_unchanged_and_detect_names_its_own() {
    let o = raida(&["echo", "--help"]);
    let help = stdout(&o);
    assert!(
        help.contains("--coin <DEN:SN>") && !help.contains("--key-coin"),
        "{help}"
    );
    let o = raida(&["detect", "--help"]);
    let help = stdout(&o);
    assert!(
        help.contains("--coin <DEN:SN>") && help.contains("--key-coin <DEN:SN>"),
        "{help}"
    );
    assert!(help.contains("0 = ALL_PASS (241)"), "{help}");
}

// ---- bench over a store directory ----

#[test]
fn bench_detect_over_a_store_directory_counts_241_as_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = write_store(dir.path(), &[(1, 0), (-1, 3)]);
    let server = TcpServer::start_with_keys(TcpMode::Answer, 30, store);
    let port = server.addr.port().to_string();
    let root = dir.path().to_str().expect("utf-8");
    let o = raida(&[
        "bench",
        "--command",
        "detect",
        "--coins-from",
        root,
        "--coins-per-request",
        "3",
        "--requests",
        "30",
        "--connections",
        "3",
        "--port",
        &port,
        ID,
        COIN,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["command"], "detect");
    assert_eq!(v["ok"], 30);
    assert_eq!(v["success_status"], 241);
    assert_eq!(v["statuses"]["241"], 30);
    assert_eq!(v["coins"]["store_coins"], 2048);
    assert_eq!(v["coins"]["per_request"], 3);
    assert_eq!(v["source_stopped"], false);
}

#[test]
fn bench_pown_over_udp_uses_every_coin_once_and_stops() {
    use raida_core::keys::{CoinId, KeyStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = write_store(dir.path(), &[(0, 1)]);
    let server = UdpServer::start_with_keys(std::sync::Arc::clone(&store));
    let port = server.addr.port().to_string();
    let root = dir.path().to_str().expect("utf-8");
    // 1024 coins, 5 per request: 204 requests, then 4 coins are left.
    let o = raida(&[
        "bench",
        "--udp",
        "--command",
        "pown",
        "--coins-from",
        root,
        "--coins-per-request",
        "5",
        "--requests",
        "1000",
        "--connections",
        "4",
        "--timeout-ms",
        "2000",
        "--port",
        &port,
        ID,
        COIN,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["ok"], 204, "{v}");
    assert_eq!(v["responses"], 204, "{v}");
    assert_eq!(v["source_stopped"], true);
    let now = raida_core::Timestamp::from_micros(0);
    let changed = (1024..2048)
        .filter(|&serial| {
            let r = store
                .record(CoinId::new(0, serial), now)
                .expect("memory")
                .expect("known");
            r.an != store_an(0, serial)
        })
        .count();
    assert_eq!(changed, 1020);
    // Text: the success status is named 241, and the stop is reported.
    let o = raida(&[
        "bench",
        "--udp",
        "--command",
        "pown",
        "--coins-from",
        root,
        "--requests",
        "1",
        "--port",
        &port,
        ID,
        COIN,
    ]);
    let out = stdout(&o);
    assert!(out.contains("ok (241)"), "{out}");
    assert!(
        out.contains("coins: 1 per request, seed 0, from 1024 coins on 1 pages"),
        "{out}"
    );
}

#[test]
fn bench_coin_options_that_do_not_fit_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_str().expect("utf-8");
    let empty = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(empty.path().join("Data")).expect("mkdir");
    let empty = empty.path().to_str().expect("utf-8");
    write_store(dir.path(), &[(1, 0)]);
    let cases: [&[&str]; 5] = [
        &["bench", "--command", "detect"],
        &["bench", "--command", "echo", "--coins-from", root],
        &["bench", "--command", "detect", "--coins-from", empty],
        &[
            "bench",
            "--command",
            "pown",
            "--coins-from",
            root,
            "--coins-per-request",
            "1025",
        ],
        &[
            "bench",
            "--command",
            "detect",
            "--coins-from",
            root,
            "--coins-per-request",
            "0",
        ],
    ];
    for args in cases {
        let o = raida(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
}

// ---- ticket and find (PROTOCOL.md 8b), against the real commands ----

#[test]
fn ticket_all_pass_prints_the_ticket_and_exits_0() {
    let server = TcpServer::start(TcpMode::Answer, 1);
    let port = server.addr.port().to_string();
    let (a, b) = (an_of(1, 1), an_of(-1, 16));
    let o = raida(&[
        "ticket", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a, "--coin", "-1:16",
        "--an", &b,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with("status:     ALL_PASS (241)\n"), "{out}");
    let ticket = out
        .lines()
        .find_map(|l| l.strip_prefix("ticket:     "))
        .expect("a ticket line");
    assert_eq!(ticket.len(), 8, "{out}");
    assert_ne!(ticket, "00000000");
    assert!(out.contains("\n1:1 pass\n-1:16 pass\n"), "{out}");
}

#[test]
fn ticket_mixed_over_udp_json_and_all_fail_exits_1() {
    let server = UdpServer::start();
    let port = server.addr.port().to_string();
    let a = an_of(1, 1);
    let o = raida(&[
        "ticket", "--udp", "--json", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a,
        "--coin", "1:2", "--an", WRONG_AN,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["command"], "get_ticket");
    assert_eq!(v["status"], 243);
    assert_eq!(v["ticket"].as_str().map(str::len), Some(8));
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["coins"][0]["result"], "pass");
    assert_eq!(v["coins"][1]["result"], "fail");
    let o = raida(&[
        "ticket", "--udp", "--port", &port, ID, COIN, "--coin", "1:2", "--an", WRONG_AN,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with("status:     ALL_FAIL (242)\n"), "{out}");
    assert!(out.contains("ticket:     none\n1:2 fail\n"), "{out}");
}

#[test]
fn find_says_an_pan_or_neither_per_coin() {
    let server = TcpServer::start(TcpMode::Answer, 2);
    let port = server.addr.port().to_string();
    let a = an_of(1, 1);
    let o = raida(&[
        "find",
        "--json",
        "--port",
        &port,
        ID,
        COIN,
        "--coin",
        "1:1",
        "--an",
        &a,
        "--pan",
        WRONG_AN,
        "--coin",
        "1:2",
        "--an",
        WRONG_AN,
        "--pan",
        &an_of(1, 2),
        "--coin",
        "-1:16",
        "--an",
        WRONG_AN,
        "--pan",
        WRONG_AN,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["command"], "find");
    assert_eq!(v["status"], 211);
    let results: Vec<&str> = v["coins"]
        .as_array()
        .expect("coins")
        .iter()
        .map(|c| c["result"].as_str().expect("result"))
        .collect();
    assert_eq!(results, ["an", "pan", "neither"]);
    let o = raida(&[
        "find", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a, "--pan", WRONG_AN,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.starts_with("status:     FIND_ALL_AN (209)\n"), "{out}");
    assert!(out.ends_with("\n1:1 an\n"), "{out}");
    // A PAN per coin is required.
    let o = raida(&[
        "find", "--port", &port, ID, COIN, "--coin", "1:1", "--an", &a,
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

// ---- fix and heal: what they print when no RAIDA answers ----

#[test]
fn a_fix_without_an_answer_prints_the_new_ans_the_server_may_have_written() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port().to_string();
    drop(l);
    let o = raida(&[
        "fix",
        "--json",
        "--port",
        &port,
        "--raida-id",
        "7",
        "--coin",
        "1:5000",
        "--coin",
        "-3:70000",
        "--pg",
        "000102030405060708090a0b0c0d0e0f",
        "--ticket",
        "0:11111100",
        "--ticket",
        "24:deadbeef",
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v = json(&o);
    assert_eq!(v["error_kind"], "connect");
    assert_eq!(v["unknown_outcome"], true);
    // MD5(07 || denomination || serial BE || PG) (PROTOCOL.md 8b's example for 1:5000;
    // Python's hashlib for -3:70000).
    assert_eq!(v["coins"][0]["new_an"], "e8885a7e9ecf1a3d3947b2b75667dcbb");
    assert_eq!(v["coins"][1]["new_an"], "32cf5b1be3fc8c35c8abefba44bfa167");
    let tickets = v["tickets"].as_array().expect("25 tickets");
    assert_eq!(tickets.len(), 25);
    assert_eq!(tickets[0], "11111100");
    assert_eq!(tickets[24], "deadbeef");
    assert_eq!(tickets[1], "00000000");
}

#[test]
fn a_heal_where_no_raida_answers_heals_nothing_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<String> = (0..3)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("127.0.0.1:{}\n", l.local_addr().expect("addr").port())
        })
        .collect();
    let network = dir.path().join("network.txt");
    std::fs::write(&network, ports.concat()).expect("write");
    let net = network.to_str().expect("utf-8");
    let a = an_of(1, 1);
    let o = raida(&["heal", "--network", net, "--coin", "1:1", "--an", &a]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("1:1 not_healed: fracked on RAIDA none, vouched for by 0 RAIDAs, fix sent to none, fixed on none; no per-coin answer from RAIDA 0, 1, 2"),
        "{out}"
    );
    assert!(out.contains("  before nnn\n  after  nnn\n"), "{out}");
    assert!(out.contains(&format!("1:1 {a} {a} {a}")), "{out}");
    let o = raida(&["heal", "--network", net, "--coins", "/nonexistent/coins"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
