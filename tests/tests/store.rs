//! The key store under the real server: an outside rewrite of a page file (a backup
//! restore, a sync script) is served within about a second, found by the
//! `raida-store-watch` thread's metadata check; the store's log lives beside `Data/`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use raida_client::{BuiltRequest, Coin, Keys, Request};
use raida_core::Status;
use raida_store::demo_coin_an;
use raida_tests::{demo_root, read_to_eof, run_to_exit, Server, GENEROUS};

/// The status byte of a type-4 echo keyed by `coin` with `an`.
fn echo_status(server: &Server, coin: Coin, an: [u8; 16]) -> u8 {
    let mut request = Request::echo(0, Keys::Coin256 { coin, an });
    request.randomize().expect("random bytes");
    let built: BuiltRequest = request.build().expect("request builds");
    let mut s = TcpStream::connect_timeout(&server.tcp, GENEROUS).expect("connect");
    s.set_read_timeout(Some(GENEROUS)).expect("read timeout");
    s.write_all(built.bytes()).expect("write the request");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let response = read_to_eof(&mut s).expect("the response, then FIN");
    assert!(response.len() >= 32, "a whole header: {response:?}");
    response[2]
}

#[test]
fn an_outside_rewrite_of_a_page_is_served_within_about_a_second() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    let coin = Coin::new(1, 2);
    let old = demo_coin_an(1, 2);
    let new = [0x42; 16];
    let success = Status::Success.code();
    assert_eq!(echo_status(&server, coin, old), success);
    assert_ne!(echo_status(&server, coin, new), success);

    // Rewritten in place (same inode, same size): only the file's times change.
    std::thread::sleep(Duration::from_millis(20));
    let page = root.path().join("Data/01/00/0000.bin");
    let mut bytes = std::fs::read(&page).expect("read the page");
    bytes[2 * 17..2 * 17 + 16].copy_from_slice(&new);
    std::fs::write(&page, &bytes).expect("rewrite the page");
    let written = Instant::now();
    while echo_status(&server, coin, new) != success {
        assert!(
            written.elapsed() < Duration::from_secs(10),
            "the new AN is not served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = written.elapsed();
    println!("the rewritten page was served after {took:?}");
    // One refresh interval (1 s) and one watch tick (100 ms), with room for a loaded
    // machine.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_ne!(echo_status(&server, coin, old), success);
}

#[test]
fn the_server_runs_its_store_watch_thread_and_keeps_the_log_beside_data() {
    let root = demo_root();
    let server = Server::start(root.path(), &[]);
    // Thread names are cut to 15 bytes by the kernel.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("tasks");
    let names: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "raida-store-wat"),
        "threads: {names:?}"
    );
    assert!(root.path().join("raida-store.wal").is_dir());
    let data: Vec<String> = std::fs::read_dir(root.path().join("Data"))
        .expect("ls Data")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut data = data;
    data.sort();
    assert_eq!(
        data,
        ["00", "01", "ff"],
        "nothing of the store's own in Data/"
    );
}

#[test]
fn check_config_creates_no_log_and_counts_the_segments_a_start_would_replay() {
    let root = demo_root();
    let data_root = root.path().to_str().expect("utf-8 temp path");
    let check = || run_to_exit(&["--data-root", data_root, "--check-config"], None);
    let out = check();
    assert!(out.status.success(), "{out:?}");
    assert!(!out.stdout.contains("log segment"), "{}", out.stdout);
    assert!(
        !root.path().join("raida-store.wal").exists(),
        "a check creates nothing"
    );
    // A server that ran (and was killed) leaves its log; the check says a start replays
    // it, and replays nothing itself.
    drop(Server::start(root.path(), &[]));
    let log = root.path().join("raida-store.wal");
    let before: Vec<_> = std::fs::read_dir(&log)
        .expect("log")
        .map(|e| e.expect("entry").path())
        .collect();
    let out = check();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("1 log segment(s)"), "{}", out.stdout);
    let after: Vec<_> = std::fs::read_dir(&log)
        .expect("log")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(before, after);
}
