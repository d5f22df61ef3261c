//! `raida bench`: load-test a RAIDA with `raida_client::bench`, showing progress on a
//! terminal, then its report.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use raida_client::bench::{self, BenchConfig, BenchReport, Limit, Progress};

use crate::exit::{usage_error, Exit};
use crate::output::out;
use crate::target::TargetArgs;

const BENCH_HELP: &str = "\
Examples:
  raida bench --connections 64 --duration 10
  raida bench --udp --connections 128 --requests 1000000
  raida bench --enc 4 --coin 1:1 --an <AN> --command version --json

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchCommand {
    /// (0, 0): no body.
    Echo,
    /// (0, 1): an 8-byte body.
    Version,
}

impl BenchCommand {
    /// Request bytes 4 and 5.
    fn group_and_command(self) -> (u8, u8) {
        match self {
            BenchCommand::Echo => (0, 0),
            BenchCommand::Version => (0, 1),
        }
    }

    /// As --command spells it, and the report names it.
    fn name(self) -> &'static str {
        match self {
            BenchCommand::Echo => "echo",
            BenchCommand::Version => "version",
        }
    }
}

impl Bench {
    pub(crate) fn run(&self) -> Exit {
        let t = &self.target;
        let addr = t.addr();
        let transport = t.transport();
        let (group, command) = self.command.group_and_command();
        let built = match t.request(group, command).build() {
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
        let report = match run_showing_progress(&config, !t.json) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("raida bench: expected to set up sockets and threads, got: {e}");
                return Exit::Transport;
            }
        };
        let name = self.command.name();
        if t.json {
            out!("{}", report.to_json(&config, name));
        } else {
            // Like `out!`: a closed stdout is not an error of the run.
            let _ = report.write_text(&mut std::io::stdout().lock(), &config, name);
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

/// Runs `config`, with a progress bar on a terminal when `show` (the JSON report
/// keeps the terminal clean).
fn run_showing_progress(config: &BenchConfig, show: bool) -> std::io::Result<BenchReport> {
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
        let handle = s.spawn(|| bench::run(config, &progress));
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
