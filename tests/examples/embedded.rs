//! A test binary that embeds raida-net as a library: a server built with
//! `raida_server::ServerBuilder` from a configuration built in Rust, with commands of
//! its own, no signal handlers (it owns its signals, as an embedder may), stopped
//! through its `ShutdownHandle` when a line `shutdown` arrives on standard input.
//! Driven by `tests/tests/embedded.rs`.
//!
//! It listens on 127.0.0.1, port 0, with the metrics endpoint on 127.0.0.1, port 0.
//! Flags: `--mod-queue-size N`, `--socket-timeout-ms N`, `--drain-timeout-ms N`.
//! Commands:
//! - 15/1 `slow` (a worker): sleeps payload[0] × 100 ms, answers the payload;
//! - 15/2 `hold` (long-running): sleeps payload[0] × 100 ms, answers `held`.
//!
//! Exit status: 0 when every request in flight was answered before the stop, 3 when
//! the drain timed out, 1 on an error.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use raida_server::store::demo_coin_an;
use raida_server::{
    Command, Config, MemoryKeyStore, RequestContext, Runs, Served, ServerBuilder, Status,
    StatusByte,
};

/// Sleeps payload[0] × 100 ms on a worker, then answers the payload.
#[derive(Debug)]
struct Slow;

impl Command for Slow {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let tenths = ctx.payload.first().copied().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(100 * u64::from(tenths)));
        output.extend_from_slice(ctx.payload);
        Status::Success.into()
    }
}

/// Sleeps payload[0] × 100 ms on the long-running pool, then answers `held`.
#[derive(Debug)]
struct Hold;

impl Command for Hold {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let tenths = ctx.payload.first().copied().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(100 * u64::from(tenths)));
        output.extend_from_slice(b"held");
        Status::Success.into()
    }

    fn runs(&self) -> Runs {
        Runs::Long
    }
}

/// The configuration: loopback, a free port, a metrics endpoint on a free port, and
/// the flags, built in Rust (no configuration text) and validated by core.
fn config() -> Result<Config, String> {
    let mut config = Config::default();
    config.server.port = Some(0);
    config.network.bind = std::net::Ipv4Addr::LOCALHOST.into();
    config.network.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag}: no value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--mod-queue-size" => config.network.mod_queue_size = value.parse().map_err(bad)?,
            "--socket-timeout-ms" => {
                config.network.socket_timeout_ms = value.parse().map_err(bad)?;
            }
            "--drain-timeout-ms" => config.network.drain_timeout_ms = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let config = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embedded: {e}");
            return ExitCode::from(2);
        }
    };
    raida_server::init_logging(None);
    let store = MemoryKeyStore::new();
    store.insert_coin(1, 1, demo_coin_an(1, 1));
    let server = ServerBuilder::new(config)
        .store(Arc::new(store))
        .command(15, 1, Slow)
        .command(15, 2, Hold)
        .bind();
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("embedded: {e}");
            return ExitCode::from(1);
        }
    };
    let handle = server.shutdown_handle();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim() == "shutdown" => {
                    eprintln!("embedded: shutting down through the handle");
                    handle.shutdown();
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    raida_server::print_listening(&server);
    match server.serve() {
        Ok(Served::Drained) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(e) => {
            eprintln!("embedded: {e}");
            ExitCode::from(1)
        }
    }
}
