//! Command line and configuration: the deployed server's `config.toml` (parsed and
//! validated by `raida_core::config`), our `[network]` table, and flags that override
//! both.
//!
//! Every flag value goes through core's validation, exactly like a file value: each
//! flag is first checked alone as a one-key TOML document whose "file" is the flag's
//! name (so a bad value is reported as e.g. `--port: [server] port: expected an integer
//! 0..=65535, found 70000`), then written into the file's table, and the merged table is
//! parsed again.

use std::path::{Path, PathBuf};

use clap::Parser;
use raida_core::config::{Config, ConfigWarning};
use toml::{Table, Value};

/// `raida-server`: the RAIDA network layer over epoll.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "raida-server", version, about)]
pub struct Args {
    /// The deployed server's config.toml (table [server]) with an optional [network]
    /// table. Without it the server runs the embedded default: raida id 0, port 50000,
    /// a demo key store under ./raida-data.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP and UDP port ([server] port; default 50000 + raida id; 0 = a free port).
    #[arg(long, value_name = "N")]
    pub port: Option<String>,
    /// Address to bind, IPv4 or IPv6 ([network] bind; default 0.0.0.0).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// This server's raida id, 0..=24 ([server] raida_id).
    #[arg(long, value_name = "N")]
    pub raida_id: Option<String>,
    /// The coin id requests must carry ([server] coin_id).
    #[arg(long, value_name = "N")]
    pub coin_id: Option<String>,
    /// Directory that holds Data/ ([network] data_root; default: the config file's
    /// directory). A relative path is taken from the current directory.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<String>,
    /// Worker threads ([server] threads; 0 = max(8, cores)).
    #[arg(long, value_name = "N")]
    pub threads: Option<String>,
    /// Event-loop threads, each with its own TCP and UDP socket on the port
    /// (SO_REUSEPORT) and its own engine, sharing the workers and the key store
    /// ([network] io_threads; default 1).
    #[arg(long, value_name = "N")]
    pub io_threads: Option<String>,
    /// Poll for events without blocking this many microseconds before an event loop
    /// sleeps ([network] busy_poll_us; default 20; 0 blocks at once).
    #[arg(long, value_name = "US")]
    pub busy_poll_us: Option<String>,
    /// Most connections accepted, and most datagrams read, per event-loop turn
    /// ([network] turn_budget; default 256).
    #[arg(long, value_name = "N")]
    pub turn_budget: Option<String>,
    /// Most open TCP connections; one more is answered 160 ([network] max_connections).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Close a connection without a complete request after this long
    /// ([network] socket_timeout_ms).
    #[arg(long, value_name = "N")]
    pub socket_timeout_ms: Option<String>,
    /// Largest declared request body ([network] max_body_size).
    #[arg(long, value_name = "N")]
    pub max_body_size: Option<String>,
    /// UDP receive buffer ([server] udp_effective_payload).
    #[arg(long, value_name = "N")]
    pub udp_payload_threshold: Option<String>,
    /// Jobs in flight at most ([network] mod_queue_size).
    #[arg(long, value_name = "N")]
    pub mod_queue_size: Option<String>,
    /// Serve metrics (Prometheus text format, /metrics) and a liveness check
    /// (/healthz, /live) over HTTP on this address ([network] metrics_addr; default
    /// none; port 0 = a free port, printed on a second stdout line).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long, conflicts_with = "check_config")]
    pub print_config: bool,
    /// Validate the configuration (file and flags) and the key store's root
    /// (Data/ must be a directory), print a one-line summary and exit: 0 when all is
    /// well, 2 naming what is wrong. Binds no socket.
    #[arg(long)]
    pub check_config: bool,
}

/// The effective settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The merged configuration (file, then flags).
    pub config: Config,
    /// The configuration file, if one was given.
    pub config_file: Option<PathBuf>,
    /// The directory holding `Data/`.
    pub data_root: PathBuf,
    /// The embedded default: no file and no data root given, so the server serves (and
    /// creates when absent) the demo store under `./raida-data`.
    pub embedded_default: bool,
    /// Keys the file has that nothing reads (logged as warnings once logging is up).
    pub warnings: Vec<ConfigWarning>,
}

/// Where the embedded default keeps its demo store.
pub const EMBEDDED_DATA_ROOT: &str = "raida-data";

/// The overrides, as (flag, table, key, value).
fn overrides(args: &Args) -> Vec<(&'static str, &'static str, &'static str, &str)> {
    let all = [
        ("--port", "server", "port", &args.port),
        ("--raida-id", "server", "raida_id", &args.raida_id),
        ("--coin-id", "server", "coin_id", &args.coin_id),
        ("--threads", "server", "threads", &args.threads),
        (
            "--udp-payload-threshold",
            "server",
            "udp_effective_payload",
            &args.udp_payload_threshold,
        ),
        ("--bind", "network", "bind", &args.bind),
        ("--io-threads", "network", "io_threads", &args.io_threads),
        (
            "--busy-poll-us",
            "network",
            "busy_poll_us",
            &args.busy_poll_us,
        ),
        ("--turn-budget", "network", "turn_budget", &args.turn_budget),
        ("--data-root", "network", "data_root", &args.data_root),
        (
            "--max-connections",
            "network",
            "max_connections",
            &args.max_connections,
        ),
        (
            "--socket-timeout-ms",
            "network",
            "socket_timeout_ms",
            &args.socket_timeout_ms,
        ),
        (
            "--max-body-size",
            "network",
            "max_body_size",
            &args.max_body_size,
        ),
        (
            "--mod-queue-size",
            "network",
            "mod_queue_size",
            &args.mod_queue_size,
        ),
        (
            "--metrics-addr",
            "network",
            "metrics_addr",
            &args.metrics_addr,
        ),
    ];
    all.into_iter()
        .filter_map(|(flag, table, key, v)| v.as_deref().map(|v| (flag, table, key, v)))
        .collect()
}

/// A flag's text as a TOML value: an integer when it reads as one, else a string (so
/// core's validation reports what was given, e.g. `found "abc"`).
fn flag_value(key: &str, text: &str) -> Value {
    let numeric = !matches!(key, "bind" | "data_root" | "metrics_addr");
    match text.trim().parse::<i64>() {
        Ok(n) if numeric => Value::Integer(n),
        _ => Value::String(text.to_string()),
    }
}

fn table_mut<'a>(root: &'a mut Table, name: &str) -> Result<&'a mut Table, String> {
    let entry = root
        .entry(name.to_string())
        .or_insert_with(|| Value::Table(Table::new()));
    match entry {
        Value::Table(t) => Ok(t),
        // Core rejected this already when the file was parsed alone.
        _ => Err(format!("[{name}] is not a table")),
    }
}

/// Loads the effective settings from `args`. The error is the message to print (core's,
/// naming the file or the flag and the key).
pub fn load(args: &Args) -> Result<Settings, String> {
    let (text, file) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "{}: cannot read the configuration file: {e}",
                    path.display()
                )
            })?;
            (text, path.clone())
        }
        None => (String::new(), PathBuf::from("(no configuration file)")),
    };
    // The file alone first, so its own errors name it.
    let (_, mut warnings) =
        Config::from_toml_str_with_warnings(&text, &file).map_err(|e| e.to_string())?;

    let overrides = overrides(args);
    // Each flag alone, so a bad value names the flag.
    for &(flag, table, key, value) in &overrides {
        let mut one = Table::new();
        let mut inner = Table::new();
        inner.insert(key.to_string(), flag_value(key, value));
        one.insert(table.to_string(), Value::Table(inner));
        Config::from_toml_str(&one.to_string(), Path::new(flag)).map_err(|e| e.to_string())?;
    }

    // Merge and parse again.
    let mut root: Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for &(_, table, key, value) in &overrides {
        let t = table_mut(&mut root, table)?;
        if key == "udp_effective_payload" {
            // The flag replaces both of the file's names for this setting.
            t.remove("udp_payload_threshold");
        }
        let v = match key {
            // A relative --data-root is relative to the current directory, not to the
            // configuration file's directory.
            "data_root" => Value::String(
                std::path::absolute(value)
                    .map_err(|e| format!("--data-root: {value}: {e}"))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            _ => flag_value(key, value),
        };
        t.insert(key.to_string(), v);
    }
    let config = if overrides.is_empty() {
        Config::from_toml_str(&text, &file)
    } else {
        Config::from_toml_str(&root.to_string(), &file)
    }
    .map_err(|e| e.to_string())?;
    warnings.dedup();

    let embedded_default = args.config.is_none() && config.network.data_root.is_none();
    let data_root = if embedded_default {
        PathBuf::from(EMBEDDED_DATA_ROOT)
    } else {
        config.data_root(args.config.as_deref())
    };
    Ok(Settings {
        config,
        config_file: args.config.clone(),
        data_root,
        embedded_default,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        let mut v = vec!["raida-server"];
        v.extend_from_slice(list);
        Args::parse_from(v)
    }

    #[test]
    fn no_flags_is_the_embedded_default() {
        let s = load(&args(&[])).expect("loads");
        assert!(s.embedded_default);
        assert_eq!(s.config.server.effective_port(), 50_000);
        assert_eq!(s.data_root, PathBuf::from(EMBEDDED_DATA_ROOT));
    }

    #[test]
    fn flags_override_and_are_validated_by_core() {
        let s = load(&args(&["--port", "0", "--raida-id", "3", "--bind", "::1"])).expect("ok");
        assert_eq!(s.config.server.port, Some(0));
        assert_eq!(s.config.server.raida_id, 3);
        assert_eq!(s.config.network.bind.to_string(), "::1");
        let e = load(&args(&["--port", "70000"])).expect_err("rejected");
        assert!(e.starts_with("--port: [server] port:"), "{e}");
        let e = load(&args(&["--socket-timeout-ms", "0"])).expect_err("rejected");
        assert!(e.contains("--socket-timeout-ms"), "{e}");
        let e = load(&args(&["--raida-id", "abc"])).expect_err("rejected");
        assert!(e.contains("--raida-id") && e.contains("\"abc\""), "{e}");
        let e = load(&args(&["--bind", "nowhere"])).expect_err("rejected");
        assert!(e.contains("--bind"), "{e}");
    }

    #[test]
    fn metrics_addr_flag_is_validated_by_core() {
        let s = load(&args(&["--metrics-addr", "127.0.0.1:0"])).expect("ok");
        assert_eq!(
            s.config.network.metrics_addr,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        let e = load(&args(&["--metrics-addr", "9100"])).expect_err("rejected");
        assert!(
            e.starts_with("--metrics-addr: [network] metrics_addr:"),
            "{e}"
        );
    }

    #[test]
    fn data_root_flag_is_not_the_embedded_default() {
        let s = load(&args(&["--data-root", "somewhere"])).expect("ok");
        assert!(!s.embedded_default);
        assert!(s.data_root.is_absolute());
        assert!(s.data_root.ends_with("somewhere"));
    }
}
