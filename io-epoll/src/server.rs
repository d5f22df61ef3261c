//! `raida-server`: configuration, logging, key store, sockets, workers, signals, and
//! the event loop, put together.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use raida_core::keys::{demo_locker_an, write_demo_store, DiskKeyStore, KeyStore};
use raida_core::metrics::MetricsSnapshot;
use raida_core::{CommandRegistry, Engine, EngineConfig};
use tracing_subscriber::EnvFilter;

use crate::cli::{self, Args, Settings};
use crate::event_loop::{EventLoop, Exit, Parts};
use crate::metrics::MetricsServer;
use crate::poll::Poller;
use crate::shared_keys::SharedKeyStore;
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
    if args.check_config {
        return check_config(&settings);
    }
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

/// The key store's root as a start would open it (without creating anything): the
/// `Data/` path, or what is wrong with it.
fn check_key_store(settings: &Settings) -> Result<String, String> {
    let data = settings.data_root.join("Data");
    if settings.embedded_default && !data.exists() {
        return Ok(format!(
            "{} (absent: the embedded default creates the demo store at start)",
            data.display()
        ));
    }
    let network = &settings.config.network;
    match DiskKeyStore::open(
        &settings.data_root,
        network.key_page_cache_pages,
        network.key_page_ttl(),
    ) {
        Ok(store) => Ok(store.data_dir().display().to_string()),
        Err(e) => Err(match std::error::Error::source(&e) {
            Some(source) => format!("key store: {e}: {source}"),
            None => format!("key store: {e}"),
        }),
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

    let io_threads = config.network.io_threads.max(1);
    let stores: Vec<Box<dyn KeyStore>> = if io_threads == 1 {
        vec![Box::new(keys)]
    } else {
        // One store for every loop: one page cache, one locker index.
        let shared = SharedKeyStore::new(keys);
        (0..io_threads)
            .map(|_| Box::new(shared.clone()) as Box<dyn KeyStore>)
            .collect()
    };

    let pairs = sockets::bind_pairs(
        config.network.bind,
        config.server.effective_port(),
        io_threads,
        &config.network,
    )
    .map_err(|e| e.to_string())?;
    let tcp_addr = sockets::local_addr(&pairs[0].0).map_err(|e| e.to_string())?;
    let udp_addr = pairs[0].1.local_addr().map_err(|e| e.to_string())?;

    let pollers = (0..io_threads)
        .map(|_| Poller::new().map(Arc::new))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("poller: {e}"))?;
    for poller in &pollers {
        poller.set_busy_poll(std::time::Duration::from_micros(
            config.network.busy_poll_us,
        ));
    }
    // Dropped (its thread stopped) when `serve` returns, after the event loops.
    let (metrics, mut snapshots) = match config.network.metrics_addr {
        Some(addr) => {
            let (server, requests) = MetricsServer::start(addr, &pollers)
                .map_err(|e| format!("metrics endpoint: {e}"))?;
            (Some(server), requests.into_iter().map(Some).collect())
        }
        None => (None, Vec::new()),
    };
    snapshots.resize_with(io_threads, || None);
    let epoch = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = config.server.effective_threads(cores);
    let pool = workers::spawn(
        threads,
        // Every loop's completion channel holds loop 0's share, the largest.
        per_loop(EngineConfig::from_config(config), io_threads, 0).mod_queue_size,
        &pollers,
        epoch,
    )
    .map_err(|e| format!("cannot start worker threads: {e}"))?;
    let stop = signals::spawn(pollers.clone())
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let mut loops = Vec::with_capacity(io_threads);
    let parts = pairs
        .into_iter()
        .zip(stores)
        .zip(pool.completions)
        .zip(snapshots)
        .zip(pollers);
    for (index, (((((listener, udp), keys), completions), snapshots), poller)) in parts.enumerate()
    {
        let engine = Engine::new(
            per_loop(EngineConfig::from_config(config), io_threads, index),
            CommandRegistry::with_builtins(),
            keys,
        );
        let event_loop = EventLoop::new(
            engine,
            Parts {
                poller,
                index,
                epoch,
                listener,
                udp,
                jobs: pool.jobs.clone(),
                completions,
                stop: Arc::clone(&stop),
                network: config.network.clone(),
                udp_buffer: config.server.udp_payload_threshold,
                snapshots,
            },
        )
        .map_err(|e| format!("poller: {e}"))?;
        loops.push(event_loop);
    }
    // Each loop holds a clone; the workers end when the last loop drops its sender.
    drop(pool.jobs);

    tracing::info!(threads, io_threads, "serving");
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
        if let Some(metrics) = &metrics {
            let addr = metrics.local_addr();
            tracing::info!("metrics: http://{addr}/metrics, liveness: http://{addr}/healthz");
            let line = writeln!(out, "metrics http={addr}").and_then(|()| out.flush());
            if let Err(e) = line {
                tracing::warn!("cannot write the metrics line: {e}");
            }
        }
    }

    // Loop 0 runs on this thread, the others on their own.
    let mut loops = loops.into_iter();
    let Some(mut first) = loops.next() else {
        return Err("no event loop".into());
    };
    let others = loops
        .enumerate()
        .map(|(i, mut event_loop)| {
            std::thread::Builder::new()
                .name(format!("raida-io-{}", i + 1))
                .spawn(move || {
                    let exit = event_loop.run();
                    let snapshot = event_loop.snapshot();
                    (exit, snapshot)
                })
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("cannot start event-loop threads: {e}"))?;
    let exit = first.run();
    let mut total = first.snapshot();
    drop(first);
    let mut exits = vec![exit];
    for handle in others {
        match handle.join() {
            Ok((exit, snapshot)) => {
                total.absorb(&snapshot);
                exits.push(exit);
            }
            Err(_) => exits.push(Err(std::io::Error::other("an event-loop thread panicked"))),
        }
    }
    let mut drain = Exit::Drained;
    for exit in exits {
        match exit.map_err(|e| format!("event loop: {e}"))? {
            Exit::Drained => {}
            Exit::DrainTimeout => drain = Exit::DrainTimeout,
        }
    }
    log_totals(&total, drain);
    drop(metrics);
    Ok(())
}

fn log_totals(total: &MetricsSnapshot, exit: Exit) {
    let counters = &total.counters;
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
}

/// Loop `index`'s share of the bounds when `loops` loops share the server: the open
/// connections and the jobs in flight are split by [`share`](raida_core::config::share)
/// (shares differ by at most one and add up to exactly the configured totals, so the
/// server as a whole keeps to them: descriptors, memory). Configuration validation
/// keeps `io_threads` at most both totals, so no share is 0. Loop 0's share is the
/// largest.
fn per_loop(mut config: EngineConfig, loops: usize, index: usize) -> EngineConfig {
    use raida_core::config::share;
    config.max_connections = share(config.max_connections, loops, index);
    config.mod_queue_size = share(config.mod_queue_size, loops, index);
    config
}
