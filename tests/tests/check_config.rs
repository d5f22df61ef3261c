//! `raida-server --check-config`: the configuration (file and flags, parsed exactly as
//! for a start) and the key store's root are checked, one line says so, and the exit
//! status tells. It binds nothing: a port already taken does not fail the check.

use std::net::TcpListener;
use std::path::Path;

use raida_tests::run_to_exit;

/// A deployment directory: `config.toml` with `text`, and `Data/` when `with_data`.
fn deployment(text: &str, with_data: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.toml"), text).expect("write config.toml");
    if with_data {
        std::fs::create_dir(dir.path().join("Data")).expect("mkdir Data");
    }
    dir
}

fn config_arg(dir: &Path) -> String {
    dir.join("config.toml")
        .to_str()
        .expect("utf-8 temp path")
        .to_string()
}

const GOOD: &str = "[server]\nraida_id = 14\ncoin_id = 6\nproxy_key = \"x\"\n";

#[test]
fn a_good_configuration_exits_0_with_a_one_line_summary() {
    let dir = deployment(GOOD, true);
    // The port and the metrics address are taken: a start would fail, a check binds
    // nothing and passes.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let metrics = taken.local_addr().expect("addr").to_string();
    let config = config_arg(dir.path());
    let out = run_to_exit(
        &[
            "--config",
            &config,
            "--check-config",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--metrics-addr",
            &metrics,
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stdout);
    let line = lines[0];
    assert!(line.starts_with("configuration OK: "), "{line}");
    for part in [
        "raida_id 14",
        "coin_id 6",
        &format!("127.0.0.1:{port}"),
        &format!("metrics {metrics}"),
        "0 warning(s)",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    let data = dir.path().join("Data");
    assert!(line.contains(data.to_str().expect("utf-8")), "{line}");
}

#[test]
fn unknown_server_keys_are_warnings_not_failures() {
    let dir = deployment(&format!("{GOOD}new_module_key = 1\n"), true);
    let config = config_arg(dir.path());
    let out = run_to_exit(&["--config", &config, "--check-config"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.contains("new_module_key"), "{}", out.stderr);
    assert!(out.stdout.contains("1 warning(s)"), "{}", out.stdout);
}

#[test]
fn a_missing_data_directory_fails_naming_the_path() {
    let dir = deployment(GOOD, false);
    let config = config_arg(dir.path());
    let out = run_to_exit(&["--config", &config, "--check-config"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let data = dir.path().join("Data");
    assert!(
        out.stderr.contains(data.to_str().expect("utf-8")),
        "names {}: {}",
        data.display(),
        out.stderr
    );
    assert!(out.stdout.is_empty(), "no OK line: {}", out.stdout);
}

#[test]
fn data_that_is_a_file_fails_naming_the_path() {
    let dir = deployment(GOOD, false);
    std::fs::write(dir.path().join("Data"), b"not a directory").expect("write");
    let config = config_arg(dir.path());
    let out = run_to_exit(&["--config", &config, "--check-config"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    assert!(out.stderr.contains("Data"), "{}", out.stderr);
}

#[test]
fn a_bad_key_fails_naming_the_file_and_the_key() {
    for (text, key) in [
        ("[server]\nraida_id = \"abc\"\n", "[server] raida_id"),
        (
            "[network]\nmax_conections = 10\n",
            "[network] max_conections",
        ),
        (
            "[network]\nmetrics_addr = \"9100\"\n",
            "[network] metrics_addr",
        ),
    ] {
        let dir = deployment(text, true);
        let config = config_arg(dir.path());
        let out = run_to_exit(&["--config", &config, "--check-config"], None);
        assert_eq!(out.status.code(), Some(2), "{text}: {out:?}");
        assert!(
            out.stderr.contains(&config),
            "names the file: {}",
            out.stderr
        );
        assert!(out.stderr.contains(key), "names {key}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "no OK line: {}", out.stdout);
    }
}

#[test]
fn a_bad_flag_fails_naming_the_flag() {
    let dir = deployment(GOOD, true);
    let config = config_arg(dir.path());
    let out = run_to_exit(
        &["--config", &config, "--check-config", "--port", "70000"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("--port: [server] port"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_embedded_default_checks_without_creating_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run_to_exit(&["--check-config"], Some(dir.path()));
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.starts_with("configuration OK: "),
        "{}",
        out.stdout
    );
    assert!(
        !dir.path().join("raida-data").exists(),
        "a check creates no demo store"
    );
}
