//! A test binary that embeds raida-net as a library: a server built with
//! `raida_server::ServerBuilder`, with commands of its own, no signal handlers (it
//! owns its signals, as an embedder may), stopped through its `ShutdownHandle` when a
//! line `shutdown` arrives on standard input. Driven by `tests/tests/embedded.rs`.
//!
//! Flags: `--mod-queue-size N`, `--socket-timeout-ms N`, `--long-jobs N`.
//! Commands:
//! - 15/1 `slow` (a worker): sleeps payload[0] × 100 ms, answers the payload;
//! - 15/2 `hold` (long-running): sleeps payload[0] × 100 ms, answers `held`.
//!
//! Exit status: 0 when every request in flight was answered before the stop, 3 when
//! the drain timed out, 1 on an error.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use raida_core::config::Config;
use raida_core::keys::MemoryKeyStore;
use raida_core::{Command, RequestContext, Runs, Status, StatusByte};
use raida_server::{Served, ServerBuilder};
use raida_store::demo_coin_an;

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

fn config() -> Result<Config, String> {
    let mut network = vec![
        "bind = \"127.0.0.1\"".to_string(),
        "metrics_addr = \"127.0.0.1:0\"".to_string(),
    ];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag}: no value"))?;
        let key = match flag.as_str() {
            "--mod-queue-size" => "mod_queue_size",
            "--socket-timeout-ms" => "socket_timeout_ms",
            "--drain-timeout-ms" => "drain_timeout_ms",
            _ => return Err(format!("unknown flag {flag}")),
        };
        network.push(format!("{key} = {value}"));
    }
    let text = format!("[server]\nport = 0\n[network]\n{}\n", network.join("\n"));
    Config::from_toml_str(&text, Path::new("(flags)")).map_err(|e| e.to_string())
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
        .command(15, 1, Arc::new(Slow))
        .command(15, 2, Arc::new(Hold))
        .handle_signals(false)
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
