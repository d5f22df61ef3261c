//! `raida-server`: configuration, logging, key store, sockets, workers, signals, and
//! the event loop, put together.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use polling::Poller;
use raida_core::keys::{demo_locker_an, write_demo_store, DiskKeyStore};
use raida_core::{CommandRegistry, Engine, EngineConfig};
use tracing_subscriber::EnvFilter;

use crate::cli::{self, Args, Settings};
use crate::event_loop::{EventLoop, Exit, Parts};
use crate::{signals, sockets, workers};

/// Exit status for a configuration or start-up error.
const EXIT_CONFIG: u8 = 2;
/// Exit status when the server fails while running.
const EXIT_RUNTIME: u8 = 1;

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
    if args.print_config {
        print!("{}", settings.config.to_toml_string());
        return match std::io::stdout().flush() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(EXIT_RUNTIME),
        };
    }
    init_logging(&settings);
    match serve(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(settings: &Settings) {
    let filter = match &settings.config.network.log {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let (filter, bad) = match filter {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    if let Some(e) = bad {
        tracing::warn!("bad log filter ({e}); using \"info\"");
    }
}

fn serve(settings: &Settings) -> Result<(), String> {
    let config = &settings.config;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let toml = config.to_toml_string();
    let effective: Vec<&str> = toml.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>();
    tracing::info!(
        file = %settings.config_file.as_deref().map_or("(none)".into(), |p| p.display().to_string()),
        data_root = %settings.data_root.display(),
        "effective configuration: {}",
        effective.join("; ")
    );

    if config.network.io_threads > 1 {
        tracing::warn!(
            "[network] io_threads = {}: this driver runs one event-loop thread",
            config.network.io_threads
        );
    }
    if let Some(addr) = config.network.metrics_addr {
        tracing::warn!("[network] metrics_addr = {addr}: no metrics endpoint in this driver yet");
    }
    match sockets::raise_fd_limit() {
        Ok(limit) => tracing::debug!("open files limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }

    // Key store. Only the embedded default creates (demo) data.
    if settings.embedded_default {
        write_demo_store(&settings.data_root).map_err(|e| {
            format!(
                "cannot create the demo key store under {}: {e}",
                settings.data_root.display()
            )
        })?;
    }
    let mut keys = DiskKeyStore::open(
        &settings.data_root,
        config.network.key_page_cache_pages,
        config.network.key_page_ttl(),
    )
    .map_err(|e| format!("key store: {e}"))?;
    if settings.embedded_default {
        keys.insert_locker(demo_locker_an());
    }

    let engine = Engine::new(
        EngineConfig::from_config(config),
        CommandRegistry::with_builtins(),
        Box::new(keys),
    );

    let (listener, udp) = sockets::bind_pair(config.network.bind, config.server.effective_port())
        .map_err(|e| e.to_string())?;
    let tcp_addr = sockets::local_addr(&listener).map_err(|e| e.to_string())?;
    let udp_addr = udp.local_addr().map_err(|e| e.to_string())?;

    let poller = Arc::new(Poller::new().map_err(|e| format!("poller: {e}"))?);
    let epoch = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = config.server.effective_threads(cores);
    let pool = workers::spawn(
        threads,
        config.network.mod_queue_size,
        Arc::clone(&poller),
        epoch,
    )
    .map_err(|e| format!("cannot start worker threads: {e}"))?;
    let stop = signals::spawn(Arc::clone(&poller))
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let mut event_loop = EventLoop::new(
        engine,
        Parts {
            poller,
            epoch,
            listener,
            udp,
            jobs: pool.jobs,
            completions: pool.completions,
            stop,
            network: config.network.clone(),
            udp_buffer: config.server.udp_payload_threshold,
        },
    )
    .map_err(|e| format!("poller: {e}"))?;

    tracing::info!(threads, "serving");
    if settings.embedded_default {
        tracing::info!("try: raida version --port {}", tcp_addr.port());
    }
    {
        let mut out = std::io::stdout().lock();
        let line =
            writeln!(out, "listening tcp={tcp_addr} udp={udp_addr}").and_then(|()| out.flush());
        if let Err(e) = line {
            tracing::warn!("cannot write the listening line: {e}");
        }
    }

    let exit = event_loop.run().map_err(|e| format!("event loop: {e}"))?;
    let counters = event_loop.engine().counters();
    tracing::info!(
        accepted = counters.accepted,
        refused = counters.refused,
        tcp_responses = counters.tcp_responses,
        udp_responses = counters.udp_responses,
        timed_out = counters.timed_out,
        reset = counters.reset,
        abandoned = counters.abandoned,
        late_completions_dropped = counters.late_completions_dropped,
        "stopped ({})",
        match exit {
            Exit::Drained => "drained",
            Exit::DrainTimeout => "drain timeout",
        }
    );
    Ok(())
}
