//! `raida`: talk to a RAIDA server from the command line.
//!
//! Exit status: 0 SUCCESS (250); 1 the server answered another status; 2 bad
//! command line; 3 transport error or timeout (no response); 4 a response that does
//! not verify (wrong signature, HMAC, length, echo bytes).

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

use raida_client::bench::{self, BenchConfig, BenchReport, Limit, Progress};
use raida_client::{
    exchange, An, ClientError, Coin, ErrorKind, Keys, Request, Status, StatusByte, Timeouts,
    Transport,
};

/// `println!` that ignores a closed stdout (e.g. `raida bench | head`) instead of
/// panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const EXIT_OK: u8 = 0;
const EXIT_STATUS: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_TRANSPORT: u8 = 3;
const EXIT_INVALID: u8 = 4;

const EXIT_HELP: &str = "\
Exit status: 0 = SUCCESS (250); 1 = the server answered another status; 2 = bad command
line; 3 = transport error or timeout (no response); 4 = a response that does not verify.";

const BENCH_HELP: &str = "\
Examples:
  raida bench --connections 64 --duration 10
  raida bench --udp --connections 128 --requests 1000000
  raida bench --enc 4 --coin 1:1 --an <AN> --command version --json

Exit status: 0 = at least one SUCCESS response; 1 = responses, but none SUCCESS;
3 = no response at all (every request failed); 2 = bad command line.";

/// Talk to a RAIDA server: check it is up, ask its version, load-test it, make demo keys.
///
/// Start here: `raida keys demo --data-root ./raida-data` writes a demo key store and
/// prints its coins' ANs; then, against a server on raida id 0 (port 50000) using that
/// store: `raida version --enc 4 --coin 1:1 --an <AN of 1:1>`.
#[derive(Debug, Parser)]
#[command(name = "raida", version, after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ask a RAIDA whether it is up: command (0, 0), answered SUCCESS with no body.
    #[command(after_help = EXIT_HELP)]
    Echo(CallArgs),
    /// Ask a RAIDA for its version: command (0, 1), answered with 8 ASCII bytes.
    #[command(after_help = EXIT_HELP)]
    Version(CallArgs),
    /// Load-test a RAIDA: keep N requests in flight and report throughput and latency.
    ///
    /// Closed loop: each of --connections slots sends a request, waits for its
    /// response (or --timeout-ms), and sends the next. TCP uses one connection per
    /// request (connect, send, read until the server closes, close), as the protocol
    /// says. Ends after --duration seconds or --requests requests.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Key-store utilities.
    Keys {
        #[command(subcommand)]
        command: KeysCmd,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Write the demo key store (DIR/Data) and print its coins as `DEN:SN ANHEX`.
    ///
    /// A server started with this data root knows these coins, so encrypted requests
    /// (--enc 1, 4, 5) can name them. Never overwrites an existing DIR/Data. The last
    /// line is the demo locker's AN (for --enc 2, on a server that registered it).
    Demo {
        /// The data root: the directory that gets `Data/` (the server's data root).
        #[arg(long, value_name = "DIR")]
        data_root: PathBuf,
    },
}

/// Where to send, and how to encrypt.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port [default: 50000 + raida id].
    #[arg(long)]
    port: Option<u16>,
    /// Use UDP (one datagram each way) instead of TCP.
    #[arg(long)]
    udp: bool,
    /// The RAIDA addressed (request byte 2); must match the server's.
    #[arg(long, default_value_t = 0)]
    raida_id: u8,
    /// Coin id (request bytes 6..7); must match the server's.
    #[arg(long, default_value_t = 0)]
    coin_id: u16,
    /// Encryption type: 0 none; 1 AES-128 under a coin's AN (--coin, --an);
    /// 2 AES-128 under a locker's AN (--an); 4 AES-256 + HMAC under one coin (--coin,
    /// --an); 5 AES-256 + HMAC under two coins (--coin and --an twice, same order).
    #[arg(long, default_value_t = 0, value_name = "0|1|2|4|5", value_parser = parse_enc)]
    enc: u8,
    /// A key coin as DENOMINATION:SERIAL, e.g. 1:1 or -1:16 (twice for --enc 5).
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --coin, in the same order; for --enc 2 the
    /// locker's AN.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    an: Vec<An>,
    /// Timeout for connect, write and the whole response, in milliseconds
    /// [default: 2000; bench over UDP: 200].
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print one JSON object instead of text (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CallArgs {
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchCommand {
    /// (0, 0): no body.
    Echo,
    /// (0, 1): an 8-byte body.
    Version,
}

#[derive(Debug, Args)]
struct BenchArgs {
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

fn parse_enc(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(t @ (0 | 1 | 2 | 4 | 5)) => Ok(t),
        _ => Err(format!("expected 0, 1, 2, 4 or 5, got {s:?}")),
    }
}

fn parse_coin(s: &str) -> Result<Coin, String> {
    let (d, n) = s
        .split_once(':')
        .ok_or_else(|| format!("expected DEN:SN (e.g. 1:1), got {s:?}"))?;
    let denomination = d
        .parse::<i8>()
        .map_err(|_| format!("expected a denomination -128..127 before ':', got {d:?}"))?;
    let serial = n
        .parse::<u32>()
        .map_err(|_| format!("expected a serial number 0..4294967295 after ':', got {n:?}"))?;
    Ok(Coin::new(denomination, serial))
}

fn parse_an(s: &str) -> Result<An, String> {
    let s = s.trim();
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected 32 hex digits (16 bytes), got {} characters: {s:?}",
            s.len()
        ));
    }
    let mut an = [0u8; 16];
    for (i, b) in an.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("expected hex digits, got {s:?}"))?;
    }
    Ok(an)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A command-line error found after parsing: clap formats it and exits with 2.
fn usage_error(msg: String) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

impl TargetArgs {
    fn keys(&self) -> Keys {
        let (coins, ans) = (&self.coin, &self.an);
        let want = |n_coins: usize, n_ans: usize, what: &str| {
            if coins.len() != n_coins || ans.len() != n_ans {
                usage_error(format!(
                    "--enc {} expects {what}; got {} --coin and {} --an",
                    self.enc,
                    coins.len(),
                    ans.len()
                ));
            }
        };
        match self.enc {
            0 => {
                want(0, 0, "no --coin and no --an");
                Keys::None
            }
            1 => {
                want(1, 1, "one --coin and one --an");
                Keys::Coin {
                    coin: coins[0],
                    an: ans[0],
                }
            }
            2 => {
                want(0, 1, "one --an (the locker's AN) and no --coin");
                Keys::Locker { an: ans[0] }
            }
            4 => {
                want(1, 1, "one --coin and one --an");
                Keys::Coin256 {
                    coin: coins[0],
                    an: ans[0],
                }
            }
            5 => {
                want(2, 2, "two --coin and two --an, in the same order");
                Keys::TwoCoins256 {
                    first: coins[0],
                    first_an: ans[0],
                    second: coins[1],
                    second_an: ans[1],
                }
            }
            other => usage_error(format!("--enc: expected 0, 1, 2, 4 or 5, got {other}")),
        }
    }

    fn port(&self) -> u16 {
        self.port
            .unwrap_or_else(|| 50000u16.saturating_add(u16::from(self.raida_id)))
    }

    fn addr(&self) -> SocketAddr {
        let port = self.port();
        match (self.host.as_str(), port).to_socket_addrs() {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => a,
                None => usage_error(format!(
                    "--host: expected a resolvable name, got no address for {:?}",
                    self.host
                )),
            },
            Err(e) => usage_error(format!(
                "--host: expected a resolvable name or address, got {:?} ({e})",
                self.host
            )),
        }
    }

    fn transport(&self) -> Transport {
        if self.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }

    fn request(&self, group: u8, command: u8) -> Request {
        let mut r = Request::new(self.raida_id, group, command, self.keys());
        r.coin_id = self.coin_id;
        if let Err(e) = r.randomize() {
            eprintln!("raida: {e}");
            std::process::exit(i32::from(EXIT_TRANSPORT));
        }
        r
    }
}

fn status_name(s: StatusByte) -> &'static str {
    Status::from_code(s.0).map_or("UNKNOWN", Status::name)
}

fn error_exit_code(e: &ClientError) -> u8 {
    match e.kind() {
        ErrorKind::InvalidResponse => EXIT_INVALID,
        ErrorKind::Build => EXIT_USAGE,
        _ => EXIT_TRANSPORT,
    }
}

fn call(args: &CallArgs, command: u8) -> u8 {
    let t = &args.target;
    let name = if command == 0 { "echo" } else { "version" };
    let addr = t.addr();
    let transport = t.transport();
    let timeouts = Timeouts::uniform(Duration::from_millis(t.timeout_ms.unwrap_or(2000)));
    let built = match t.request(0, command).build() {
        Ok(b) => b,
        Err(e) => usage_error(e.to_string()),
    };
    match exchange(addr, transport, &built, &timeouts) {
        Ok(reply) => {
            let h = reply.response.header;
            let body = &reply.response.body;
            let rtt_us = u64::try_from(reply.round_trip.as_micros()).unwrap_or(u64::MAX);
            let ascii = (!body.is_empty()
                && body.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
            .then(|| String::from_utf8_lossy(body).into_owned());
            if t.json {
                let mut o = Map::new();
                o.insert("command".into(), json!(name));
                o.insert("addr".into(), json!(addr.to_string()));
                o.insert("transport".into(), json!(transport.name()));
                o.insert("enc".into(), json!(t.enc));
                o.insert("status".into(), json!(h.status.0));
                o.insert("status_name".into(), json!(status_name(h.status)));
                o.insert("round_trip_us".into(), json!(rtt_us));
                o.insert("server_us".into(), json!(h.server_micros));
                o.insert("body_hex".into(), json!(hex(body)));
                if command == 1 && h.is_success() {
                    if let Some(v) = &ascii {
                        o.insert("version".into(), json!(v.trim_end()));
                    }
                }
                out!("{}", Value::Object(o));
            } else {
                out!("status:     {} ({})", status_name(h.status), h.status.0);
                out!(
                    "round trip: {:.3} ms over {} to {addr} (server: {} us)",
                    rtt_us as f64 / 1000.0,
                    transport.name(),
                    h.server_micros
                );
                match (&ascii, body.is_empty()) {
                    (_, true) => out!("body:       (none)"),
                    (Some(v), false) if command == 1 => {
                        out!("version:    {}", v.trim_end())
                    }
                    (Some(v), false) => out!("body:       {v:?}"),
                    (None, false) => out!("body:       {} (hex)", hex(body)),
                }
            }
            if h.is_success() {
                EXIT_OK
            } else {
                EXIT_STATUS
            }
        }
        Err(e) => {
            if t.json {
                out!(
                    "{}",
                    json!({
                        "command": name,
                        "addr": addr.to_string(),
                        "transport": transport.name(),
                        "enc": t.enc,
                        "error": e.to_string(),
                        "error_kind": e.kind().name(),
                    })
                );
            } else {
                eprintln!("raida {name}: {e}");
            }
            error_exit_code(&e)
        }
    }
}

fn run_bench(args: &BenchArgs) -> u8 {
    let t = &args.target;
    let addr = t.addr();
    let transport = t.transport();
    let command = match args.command {
        BenchCommand::Echo => 0,
        BenchCommand::Version => 1,
    };
    let built = match t.request(0, command).build() {
        Ok(b) => b,
        Err(e) => usage_error(e.to_string()),
    };
    let limit = match (args.requests, args.duration) {
        (Some(n), _) => Limit::Requests(n),
        (None, Some(s)) if s.is_finite() && s > 0.0 => Limit::Duration(Duration::from_secs_f64(s)),
        (None, Some(s)) => usage_error(format!("--duration: expected seconds > 0, got {s}")),
        (None, None) => Limit::Duration(Duration::from_secs(10)),
    };
    if args.connections == 0 {
        usage_error("--connections: expected at least 1, got 0".into());
    }
    let default_timeout = if t.udp { 200 } else { 2000 };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let config = BenchConfig {
        addr,
        transport,
        request: built,
        connections: args.connections,
        threads: threads.max(1),
        limit,
        timeout: Duration::from_millis(t.timeout_ms.unwrap_or(default_timeout).max(1)),
        verify: !args.no_verify,
    };
    let progress = Progress::default();
    let bar = match limit {
        Limit::Requests(n) => ProgressBar::new(n),
        Limit::Duration(d) => ProgressBar::new(d.as_secs().max(1)),
    };
    if !std::io::stdout().is_terminal() || t.json {
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
        let handle = s.spawn(|| bench::run(&config, &progress));
        let start = std::time::Instant::now();
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
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raida bench: expected to set up sockets and threads, got: {e}");
            return EXIT_TRANSPORT;
        }
    };
    if t.json {
        out!("{}", bench_json(args, &config, &report));
    } else {
        print_bench(args, &config, &report);
    }
    if report.ok() > 0 {
        EXIT_OK
    } else if report.responses() > 0 {
        EXIT_STATUS
    } else {
        EXIT_TRANSPORT
    }
}

fn percentiles(r: &BenchReport) -> [(&'static str, u64); 6] {
    let h = &r.latency;
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    [
        ("p50", q(0.50)),
        ("p90", q(0.90)),
        ("p99", q(0.99)),
        ("p99.9", q(0.999)),
        ("max", if h.is_empty() { 0 } else { h.max() }),
        ("mean", h.mean() as u64),
    ]
}

fn bench_json(args: &BenchArgs, c: &BenchConfig, r: &BenchReport) -> Value {
    let mut errors = Map::new();
    for (k, n) in r.errors_by_kind() {
        errors.insert(k.name().into(), json!(n));
    }
    let mut statuses = Map::new();
    for (code, n) in r.responses_by_status() {
        statuses.insert(code.to_string(), json!(n));
    }
    let mut latency = Map::new();
    for (name, v) in percentiles(r) {
        latency.insert(name.replace('.', "_"), json!(v));
    }
    json!({
        "addr": c.addr.to_string(),
        "transport": c.transport.name(),
        "command": format!("{:?}", args.command).to_lowercase(),
        "enc": args.target.enc,
        "connections": c.connections,
        "threads": c.threads,
        "verified": c.verify,
        "elapsed_s": r.elapsed.as_secs_f64(),
        "requests_per_s": r.ok_per_sec(),
        "ok": r.ok(),
        "responses": r.responses(),
        "errors": errors,
        "error_count": r.error_count(),
        "statuses": statuses,
        "stale_replies": r.stale,
        "latency_us": latency,
    })
}

fn print_bench(args: &BenchArgs, c: &BenchConfig, r: &BenchReport) {
    out!(
        "raida bench: {} {}, {:?} (enc {}), {} connections on {} threads, {:.2} s",
        c.transport.name(),
        c.addr,
        args.command,
        args.target.enc,
        c.connections,
        c.threads.min(c.connections),
        r.elapsed.as_secs_f64()
    );
    if !c.verify {
        out!("  (--no-verify: responses counted by their status byte, not verified)");
    }
    out!("  {:<14}{:>12.0}", "requests/s", r.ok_per_sec());
    out!("  {:<14}{:>12}", "ok (250)", r.ok());
    out!("  {:<14}{:>12}", "other status", r.responses() - r.ok());
    out!("  {:<14}{:>12}", "errors", r.error_count());
    out!("  latency (us)");
    for (name, v) in percentiles(r) {
        out!("    {name:<12}{v:>12}");
    }
    let statuses = r.responses_by_status();
    if !statuses.is_empty() {
        out!("  responses by status");
        for (code, n) in statuses {
            let label = format!("{} ({code})", status_name(StatusByte(code)));
            out!("    {label:<30}{n:>12}");
        }
    }
    let errors = r.errors_by_kind();
    if !errors.is_empty() {
        out!("  errors by kind");
        for (k, n) in errors {
            out!("    {:<30}{n:>12}", k.name());
        }
    }
    if r.stale > 0 {
        out!("  {:<14}{:>12}", "late replies", r.stale);
    }
}

fn keys_demo(data_root: &std::path::Path) -> u8 {
    let existed = data_root.join("Data").exists();
    match raida_core::keys::write_demo_store(data_root) {
        Ok(coins) => {
            if existed {
                eprintln!(
                    "raida keys demo: {} already exists; nothing written (the list below \
                     describes it only if it is a demo store)",
                    data_root.join("Data").display()
                );
            } else {
                eprintln!(
                    "raida keys demo: wrote the demo store under {}",
                    data_root.join("Data").display()
                );
            }
            for coin in coins {
                out!("{coin}");
            }
            out!("locker {}", hex(&raida_core::keys::demo_locker_an()));
            EXIT_OK
        }
        Err(e) => {
            eprintln!(
                "raida keys demo: expected to write {}, got an error: {e}",
                data_root.join("Data").display()
            );
            EXIT_TRANSPORT
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Cmd::Echo(a) => call(a, 0),
        Cmd::Version(a) => call(a, 1),
        Cmd::Bench(a) => run_bench(a),
        Cmd::Keys {
            command: KeysCmd::Demo { data_root },
        } => keys_demo(data_root),
    };
    ExitCode::from(code)
}
