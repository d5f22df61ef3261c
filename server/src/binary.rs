//! The `raida-server` binary: flags and file to configuration (`cli`), then the
//! builder. `--check-config` and `--print-config` stop before binding; the embedded
//! default (no file, no data root) first writes the demo store and registers its
//! locker.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use raida_store::{demo_locker_an, write_demo_store};
use tracing_subscriber::EnvFilter;

use crate::cli::{self, Args, Settings};
use crate::config_file;
use crate::{Served, ServerBuilder};

/// Exit status for a configuration or start-up error.
const EXIT_CONFIG: u8 = 2;
/// Exit status when the server fails while running.
const EXIT_RUNTIME: u8 = 1;
/// Exit status after the store stopped on a failed sync (fail-stop): the service
/// manager restarts the server, whose store recovers from its log at open. 75 is
/// `EX_TEMPFAIL` of sysexits.h: a temporary failure, try again.
const EXIT_STORE_FAILED: u8 = 75;

/// Parses the process arguments and runs the server.
pub fn main() -> ExitCode {
    let args = Args::parse();
    run(&args)
}

/// Runs the server for `args` until a signal stops it.
pub fn run(args: &Args) -> ExitCode {
    let settings = match cli::load(args) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("raida-server: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        return check_config(&settings);
    }
    if args.print_config {
        print!("{}", config_file::to_toml_string(&settings.config));
        return match std::io::stdout().flush() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(EXIT_RUNTIME),
        };
    }
    init_logging(settings.config.network.log.as_deref());
    serve(&settings)
}

/// `--check-config`: the configuration was parsed and every flag checked (by
/// [`cli::load`], exactly as for a start); now the key store's root, then one summary
/// line on stdout. Warnings go to stderr. Binds nothing, creates nothing.
fn check_config(settings: &Settings) -> ExitCode {
    let config = &settings.config;
    let mut warnings: Vec<String> = settings.warnings.iter().map(ToString::to_string).collect();
    if let Some(filter) = &config.network.log {
        if let Err(e) = EnvFilter::try_new(filter) {
            warnings.push(format!(
                "[network] log: bad filter ({e}); the server would log at \"info\""
            ));
        }
    }
    for warning in &warnings {
        eprintln!("raida-server: warning: {warning}");
    }
    let key_store = match check_key_store(settings) {
        Ok(summary) => summary,
        Err(message) => {
            eprintln!("raida-server: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let file = settings.config_file.as_deref().map_or_else(
        || "none (embedded default)".to_string(),
        |p| p.display().to_string(),
    );
    let listen = std::net::SocketAddr::new(config.network.bind, config.server.effective_port());
    let metrics = config
        .network
        .metrics_addr
        .map_or_else(|| "off".to_string(), |a| a.to_string());
    println!(
        "configuration OK: file {file}; raida_id {}, coin_id {}; tcp+udp {listen}; \
         key store {key_store}; metrics {metrics}; {} warning(s)",
        config.server.raida_id,
        config.server.coin_id,
        warnings.len()
    );
    match std::io::stdout().flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(EXIT_RUNTIME),
    }
}

/// The key store's root as a start would open it, without creating anything (not
/// even the log's directory) and without replaying the log: the `Data/` path, and the
/// log's segments a start would replay; or what is wrong with them.
fn check_key_store(settings: &Settings) -> Result<String, String> {
    let data = settings.data_root.join("Data");
    if settings.embedded_default && !data.exists() {
        return Ok(format!(
            "{} (absent: the embedded default creates the demo store at start)",
            data.display()
        ));
    }
    match raida_store::check_root(&settings.data_root) {
        Ok(check) => Ok(match check.segments {
            0 => check.data_dir.display().to_string(),
            n => format!(
                "{} ({n} log segment(s) in {} to replay at start)",
                check.data_dir.display(),
                check.log_dir.display()
            ),
        }),
        Err(e) => Err(match std::error::Error::source(&e) {
            Some(source) => format!("key store: {e}: {source}"),
            None => format!("key store: {e}"),
        }),
    }
}

/// Logging to stderr: the `[network] log` filter, else `RUST_LOG`, else `info`.
pub fn init_logging(filter: Option<&str>) {
    let parsed = match filter {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let (filter, bad) = match parsed {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
    if let Some(e) = bad {
        tracing::warn!("bad log filter ({e}); using \"info\"");
    }
}

fn serve(settings: &Settings) -> ExitCode {
    let config = &settings.config;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let toml = config_file::to_toml_string(config);
    let effective: Vec<&str> = toml.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>();
    tracing::info!(
        file = %settings.config_file.as_deref().map_or("(none)".into(), |p| p.display().to_string()),
        data_root = %settings.data_root.display(),
        "effective configuration: {}",
        effective.join("; ")
    );
    let mut builder = ServerBuilder::new(config.clone())
        .data_root(&settings.data_root)
        .handle_signals(true)
        .raise_fd_limit(true);
    // Only the embedded default creates (demo) data.
    if settings.embedded_default {
        if let Err(e) = write_demo_store(&settings.data_root) {
            tracing::error!(
                "cannot create the demo key store under {}: {e}",
                settings.data_root.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        match crate::builder::open_disk_store(config, &settings.data_root) {
            Ok(store) => {
                store.insert_locker(demo_locker_an());
                builder = builder.disk_store(Arc::new(store));
            }
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let server = match builder.bind() {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if settings.embedded_default {
        tracing::info!("try: raida version --port {}", server.tcp_addr().port());
    }
    print_listening(&server);
    match server.serve() {
        Ok(Served::StoreFailed) => ExitCode::from(EXIT_STORE_FAILED),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// The one line on stdout once both sockets serve (`listening tcp=... udp=...`), and
/// the metrics line after it when there is an endpoint.
pub fn print_listening(server: &crate::Server) {
    let mut out = std::io::stdout().lock();
    let line = writeln!(
        out,
        "listening tcp={} udp={}",
        server.tcp_addr(),
        server.udp_addr()
    )
    .and_then(|()| out.flush());
    if let Err(e) = line {
        tracing::warn!("cannot write the listening line: {e}");
    }
    if let Some(addr) = server.metrics_addr() {
        tracing::info!("metrics: http://{addr}/metrics, liveness: http://{addr}/healthz");
        let line = writeln!(out, "metrics http={addr}").and_then(|()| out.flush());
        if let Err(e) = line {
            tracing::warn!("cannot write the metrics line: {e}");
        }
    }
}
