//! `raida bench`: load-test a RAIDA with `raida_client::bench`, showing progress on a
//! terminal, then its report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use raida_client::bench::{
    self, BenchConfig, BenchReport, CoinCommand, CoinLoad, Limit, Progress, RequestSource,
    StoreCoins,
};

use crate::exit::{usage_error, Exit};
use crate::output::out;
use crate::target::TargetArgs;

const BENCH_HELP: &str = "\
Examples:
  raida bench --connections 64 --duration 10
  raida bench --udp --connections 128 --requests 1000000
  raida bench --enc 4 --coin 1:1 --an <AN> --command version --json
  raida bench --command detect --coins-from ./raida-data --coins-per-request 40 --udp
  raida bench --command pown --coins-from ./copy-of-a-store --requests 10000

detect and pown name the coins of the store directory --coins-from (read once, at
start: 16 bytes per coin in memory, 250 MB for a full store), drawn from --seed, so
the load covers the whole store: detect draws every coin uniformly, pown uses each coin
at most once, with a fresh random PAN, and stops when the store has no unused coins
left. pown rewrites the server's ANs and keeps no PAN: run it against a server on a
throwaway copy of a store (and --coins-from that copy), and do not key --enc with a
coin it may pown. Both count 241 ALL_PASS as success.

Exit status: 0 = at least one SUCCESS response; 1 = responses, but none SUCCESS;
3 = no response at all (every request failed); 2 = bad command line.";

/// Load-test a RAIDA: keep N requests in flight and report throughput and latency.
///
/// Closed loop: each of --connections slots sends a request, waits for its
/// response (or --timeout-ms), and sends the next. TCP uses one connection per
/// request (connect, send, read until the server closes, close), as the protocol
/// says. Ends after --duration seconds or --requests requests.
#[derive(Debug, Args)]
#[command(after_help = BENCH_HELP)]
pub(crate) struct Bench {
    #[command(flatten)]
    target: TargetArgs,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    connections: usize,
    /// Run for this many seconds (default 10 unless --requests is given).
    #[arg(long, value_name = "SECS", conflicts_with = "requests")]
    duration: Option<f64>,
    /// Send exactly this many requests, then stop.
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// Threads multiplexing the connections [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Which command to send.
    #[arg(long, value_enum, default_value_t = BenchCommand::Echo)]
    command: BenchCommand,
    /// Count every response, with its status byte, without verifying it (signature,
    /// echo bytes, HMAC, length): to time a server that cannot answer correctly, such
    /// as the null server of shared/bench.
    #[arg(long)]
    no_verify: bool,
    /// detect, pown: the store directory (holding Data/, PROTOCOL.md section 10) whose
    /// coins the requests name, with the ANs its page files hold at start.
    #[arg(long, value_name = "DIR")]
    coins_from: Option<PathBuf>,
    /// detect, pown: coins named by each request.
    #[arg(long, default_value_t = 1, value_name = "N")]
    coins_per_request: usize,
    /// detect, pown: the seed of the coin draws (the same seed and store name the same
    /// coins in the same order).
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchCommand {
    /// (0, 0): no body.
    Echo,
    /// (0, 1): an 8-byte body.
    Version,
    /// (1, 10): --coins-per-request coins of --coins-from with their ANs; 241 expected.
    Detect,
    /// (1, 20): --coins-per-request unused coins of --coins-from, fresh PANs; 241
    /// expected.
    Pown,
}

impl BenchCommand {
    /// Request bytes 4 and 5.
    fn group_and_command(self) -> (u8, u8) {
        match self {
            BenchCommand::Echo => (0, 0),
            BenchCommand::Version => (0, 1),
            BenchCommand::Detect => (1, 10),
            BenchCommand::Pown => (1, 20),
        }
    }

    /// As --command spells it, and the report names it.
    fn name(self) -> &'static str {
        match self {
            BenchCommand::Echo => "echo",
            BenchCommand::Version => "version",
            BenchCommand::Detect => "detect",
            BenchCommand::Pown => "pown",
        }
    }

    /// The load over a store's coins, for detect and pown.
    fn coin_command(self) -> Option<CoinCommand> {
        match self {
            BenchCommand::Echo | BenchCommand::Version => None,
            BenchCommand::Detect => Some(CoinCommand::Detect),
            BenchCommand::Pown => Some(CoinCommand::Pown),
        }
    }
}

impl Bench {
    pub(crate) fn run(&self) -> Exit {
        let t = &self.target;
        let addr = t.addr();
        let transport = t.transport();
        let (group, command) = self.command.group_and_command();
        let request = t.request(group, command);
        let load = self.coin_load(&request);
        let built = match request.build() {
            Ok(b) => b,
            Err(e) => usage_error(e.to_string()),
        };
        let limit = match (self.requests, self.duration) {
            (Some(n), _) => Limit::Requests(n),
            (None, Some(s)) if s.is_finite() && s > 0.0 => {
                Limit::Duration(Duration::from_secs_f64(s))
            }
            (None, Some(s)) => usage_error(format!("--duration: expected seconds > 0, got {s}")),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        };
        if self.connections == 0 {
            usage_error("--connections: expected at least 1, got 0".into());
        }
        let default_timeout = if t.udp { 200 } else { 2000 };
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let config = BenchConfig {
            addr,
            transport,
            request: built,
            connections: self.connections,
            threads: threads.max(1),
            limit,
            timeout: Duration::from_millis(t.timeout_ms.unwrap_or(default_timeout).max(1)),
            verify: !self.no_verify,
        };
        let report = match run_showing_progress(&config, load.as_ref(), !t.json) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("raida bench: expected to set up sockets and threads, got: {e}");
                return Exit::Transport;
            }
        };
        let name = self.command.name();
        if t.json {
            let mut v = report.to_json(&config, name);
            if let (Some(load), Some(o)) = (&load, v.as_object_mut()) {
                o.insert(
                    "coins".into(),
                    json!({
                        "store_coins": load.coins().len(),
                        "store_pages": load.coins().pages(),
                        "per_request": load.per_request(),
                        "seed": load.seed(),
                        "requests_made": load.requests_made(),
                    }),
                );
            }
            out!("{v}");
        } else {
            // Like `out!`: a closed stdout is not an error of the run.
            let _ = report.write_text(&mut std::io::stdout().lock(), &config, name);
            if let Some(load) = &load {
                out!(
                    "  coins: {} per request, seed {}, from {} coins on {} pages",
                    load.per_request(),
                    load.seed(),
                    load.coins().len(),
                    load.coins().pages()
                );
            }
        }
        if report.ok() > 0 {
            Exit::Success
        } else if report.responses() > 0 {
            Exit::OtherStatus
        } else {
            Exit::Transport
        }
    }
}

impl Bench {
    /// The coin load of detect and pown over --coins-from (usage errors for a store
    /// that has no coins, options that do not fit the command); `None` for the others.
    fn coin_load(&self, request: &raida_client::Request) -> Option<CoinLoad> {
        let Some(command) = self.command.coin_command() else {
            if self.coins_from.is_some() {
                usage_error(format!(
                    "--coins-from: expected --command detect or pown, got --command {}",
                    self.command.name()
                ));
            }
            return None;
        };
        let Some(dir) = &self.coins_from else {
            usage_error(format!(
                "--command {}: expected --coins-from DIR (a store directory holding Data/)",
                self.command.name()
            ));
        };
        let coins = match StoreCoins::read(dir) {
            Ok(c) => c,
            Err(e) => usage_error(format!("--coins-from: {e}")),
        };
        if let Some(first) = coins.skipped().first() {
            eprintln!(
                "raida bench: --coins-from: skipped {} entries under {} that hold no coins                  (first: {}: {})",
                coins.skipped().len(),
                dir.join("Data").display(),
                first.path.display(),
                first.reason
            );
        }
        match CoinLoad::new(request, command, coins, self.coins_per_request, self.seed) {
            Ok(load) => Some(load),
            Err(raida_client::bench::CoinLoadError::Random(e)) => {
                eprintln!("raida bench: {e}");
                Exit::Transport.now()
            }
            Err(e) => usage_error(format!("--coins-from {}: {e}", dir.display())),
        }
    }
}

/// Runs `config` (its requests from `load` when there is one), with a progress bar on
/// a terminal when `show` (the JSON report keeps the terminal clean).
fn run_showing_progress(
    config: &BenchConfig,
    load: Option<&CoinLoad>,
    show: bool,
) -> std::io::Result<BenchReport> {
    let limit = config.limit;
    let progress = Progress::default();
    let bar = match limit {
        Limit::Requests(n) => ProgressBar::new(n),
        Limit::Duration(d) => ProgressBar::new(d.as_secs().max(1)),
    };
    if !std::io::stdout().is_terminal() || !show {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = match limit {
        Limit::Requests(_) => "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
        Limit::Duration(_) => "{elapsed_precise} [{bar:30}] {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let result = std::thread::scope(|s| {
        let handle = s.spawn(|| match load {
            Some(load) => bench::run_with(config, load as &dyn RequestSource, &progress),
            None => bench::run(config, &progress),
        });
        let start = Instant::now();
        while !handle.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            let responses = progress.responses.load(Ordering::Relaxed);
            let errors = progress.errors.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            match limit {
                Limit::Requests(_) => bar.set_position(responses + errors),
                Limit::Duration(_) => bar.set_position(start.elapsed().as_secs()),
            }
            bar.set_message(format!(
                "{responses} responses, {errors} errors, {:.0} req/s",
                responses as f64 / secs
            ));
        }
        handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("bench thread panicked")))
    });
    bar.finish_and_clear();
    result
}
