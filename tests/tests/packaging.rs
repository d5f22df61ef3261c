//! `packaging/raida-server@.service` passes `systemd-analyze verify`.
//!
//! The unit runs `/opt/raida/%i/raida-server`, which does not exist here, and verify
//! rightly fails on a missing executable. So the unit is copied into a temporary unit
//! directory with `/opt/raida/` rewritten to a temporary deployment (`<tmp>/14/`
//! holding the real built binary, a `config.toml` and `Data/`), and instance
//! `raida-server@14.service` is verified there (`SYSTEMD_UNIT_PATH=<dir>:`, the trailing
//! colon keeping the system's own units such as `network-online.target` reachable).
//! Verify reports unknown or malformed directives as warnings while still exiting 0,
//! so the test also requires that nothing it printed mentions the unit.
//!
//! Where `systemd-analyze` is not installed (it comes with Debian's `systemd` package)
//! the test prints why and passes: only in that case.

use std::path::Path;
use std::process::Command;

use raida_tests::{run_to_exit, server_binary};

const UNIT: &str = include_str!("../../packaging/raida-server@.service");

fn systemd_analyze() -> Option<String> {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

/// A deployment of instance 14 under `root`, the way the unit expects one.
fn deploy(root: &Path) {
    let dir = root.join("14");
    std::fs::create_dir_all(dir.join("Data")).expect("mkdir Data");
    std::fs::copy(server_binary(), dir.join("raida-server")).expect("copy the binary");
    std::fs::write(
        dir.join("config.toml"),
        "[server]\nraida_id = 14\ncoin_id = 6\n",
    )
    .expect("write config.toml");
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Some(version) = systemd_analyze() else {
        println!(
            "SKIPPED: systemd-analyze is not installed (Debian package `systemd`); \
             the unit was not verified"
        );
        return;
    };
    println!("verifying with {version}");
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("opt");
    let units = tmp.path().join("units");
    std::fs::create_dir_all(&units).expect("mkdir units");
    deploy(&root);
    let prefix = format!("{}/", root.to_str().expect("utf-8 temp path"));
    assert!(UNIT.contains("/opt/raida/%i/"), "the unit's paths changed");
    let unit = UNIT.replace("/opt/raida/", &prefix);
    std::fs::write(units.join("raida-server@.service"), unit).expect("write the unit");

    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "raida-server@14.service"])
        .env(
            "SYSTEMD_UNIT_PATH",
            format!("{}:", units.to_str().expect("utf-8")),
        )
        .current_dir(tmp.path())
        .output()
        .expect("run systemd-analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stdout}{stderr}"
    );
    let about_unit: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains("raida-server@"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "warnings about the unit:\n{}",
        about_unit.join("\n")
    );

    // The ExecStartPre line works on that deployment: the check passes.
    let dir = root.join("14");
    let config = dir.join("config.toml");
    let check = run_to_exit(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--check-config",
        ],
        Some(&dir),
    );
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn the_unit_runs_the_check_before_starting_and_the_same_config() {
    let pre = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStartPre="))
        .expect("ExecStartPre");
    let start = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert!(pre.ends_with(" --check-config"), "{pre}");
    assert_eq!(pre.trim_end_matches(" --check-config"), start);
}
