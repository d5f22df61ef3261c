//! `raida-sim`: swarm runs over many seeds, the replay of one seed with a readable
//! trace, and the mutant check (the swarm must catch every planted bug).

use std::io::Write as _;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clap::{Parser, Subcommand};
use raida_sim::{replay_command, run_seed, Knobs, World, MUTANTS, MUTANT_TARGET_DIR};

mod store_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "raida-sim",
    about = "Deterministic simulation of the raida-net engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs seeds S..S+N, each a different world; prints every failing seed.
    Swarm {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Stop at the first violating seed.
        #[arg(long)]
        stop_first: bool,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Run with this planted bug on (only in the mutant build).
        #[arg(long)]
        mutant: Option<String>,
    },
    /// Replays one seed with a readable trace, ending with the trace's hash.
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Run with this planted bug on (only in the mutant build).
        #[arg(long)]
        mutant: Option<String>,
    },
    /// Runs store seeds S..S+N: raida-store over the faulty simulated disk.
    StoreSwarm {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Stop at the first violating seed.
        #[arg(long)]
        stop_first: bool,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Run with this planted bug on (only in the mutant build).
        #[arg(long)]
        mutant: Option<String>,
    },
    /// Replays one store seed with a readable trace, ending with the trace's hash.
    StoreReplay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Run with this planted bug on (only in the mutant build).
        #[arg(long)]
        mutant: Option<String>,
    },
    /// Runs the swarm against every planted bug; each must be caught.
    Mutants {
        /// Seeds per mutant at most.
        #[arg(long, default_value_t = 2000)]
        seeds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Swarm {
            seeds,
            start,
            stop_first,
            threads,
            mutant,
        } => match with_mutant(mutant.as_deref()) {
            Ok(()) => swarm(seeds, start, stop_first, threads),
            Err(code) => code,
        },
        Cmd::Replay { seed, mutant } => match with_mutant(mutant.as_deref()) {
            Ok(()) => replay(seed),
            Err(code) => code,
        },
        Cmd::StoreSwarm {
            seeds,
            start,
            stop_first,
            threads,
            mutant,
        } => match with_mutant(mutant.as_deref()) {
            Ok(()) => store_cmd::swarm(seeds, start, stop_first, threads),
            Err(code) => code,
        },
        Cmd::StoreReplay { seed, mutant } => match with_mutant(mutant.as_deref()) {
            Ok(()) => store_cmd::replay(seed),
            Err(code) => code,
        },
        Cmd::Mutants { seeds } => mutants(seeds),
    }
}

/// Turns on the planted bug `name`, if one is named.
fn with_mutant(name: Option<&str>) -> Result<(), ExitCode> {
    let Some(name) = name else {
        return Ok(());
    };
    raida_sim::activate_mutant(name).map_err(|e| {
        eprintln!("raida-sim: {e}");
        ExitCode::from(2)
    })
}

fn swarm(seeds: u64, start: u64, stop_first: bool, threads: Option<usize>) -> ExitCode {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let next = AtomicU64::new(0);
    let stop = AtomicU64::new(u64::MAX);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(raida_sim::Stats::default());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds || (stop_first && i > stop.load(Ordering::Relaxed)) {
                    return;
                }
                let seed = start.wrapping_add(i);
                let result = run_seed(seed);
                if let (Ok(stats), Ok(mut t)) = (&result, totals.lock()) {
                    t.add(stats);
                }
                if let Err(failure) = result {
                    stop.fetch_min(i, Ordering::Relaxed);
                    if let Ok(mut f) = failures.lock() {
                        f.push((seed, failure));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|(seed, _)| *seed);
    if stop_first {
        failures.truncate(1);
    }
    let mut out = std::io::stdout().lock();
    for (seed, failure) in &failures {
        let (knobs, v) = failure.as_ref();
        let _ = writeln!(out, "seed {seed}: {knobs:?}");
        let _ = writeln!(out, "seed {seed}: VIOLATION at t={}us: {}", v.at, v.what);
        let _ = writeln!(out, "seed {seed}: replay: {}", replay_command(*seed));
    }
    if let Ok(t) = totals.into_inner() {
        let _ = writeln!(
            out,
            "totals: {} accepted, {} refused, {} tcp responses, {} udp responses, {} jobs, \
             {} late completions, {} contexts checked, closes {:?}, {} steps",
            t.accepted,
            t.refused,
            t.tcp_responses,
            t.udp_responses,
            t.jobs,
            t.late_completions,
            t.contexts_checked,
            t.closes,
            t.steps
        );
        let _ = writeln!(
            out,
            "shutdowns: {} asked, {} drained, {} timed out, {} connections reset or refused \
             by the kernel, {} datagrams handed in after",
            t.shutdowns, t.drained, t.drain_timeouts, t.kernel_resets, t.late_datagrams
        );
        let _ = writeln!(
            out,
            "auth: {} executions ({} never answered), {} pown entries passed, {} detect \
             entries passed",
            t.auth_execs, t.auth_unknown, t.powns_passed, t.detects_passed
        );
        let _ = writeln!(
            out,
            "limits: {} refused per client, {} refused over the rate, {} datagrams over the \
             rate ({} answered 160), {} budget waits, {} discard-limit closes",
            t.refused_per_client,
            t.refused_rate,
            t.udp_rate_limited,
            t.udp_refusals,
            t.budget_waits,
            t.discard_limit_closes
        );
    }
    let _ = writeln!(out, "swarm: {seeds} seeds, {} violations", failures.len());
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(seed: u64) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .without_time()
        .with_ansi(false)
        .with_target(false)
        .try_init();
    let knobs = Knobs::from_seed(seed);
    println!("seed {seed}: {knobs:?}");
    let mut world = World::swarm(knobs, true);
    let result = world.run_all();
    let code = match &result {
        Ok(()) => {
            println!("seed {seed}: ok: {:?}", world.stats);
            ExitCode::SUCCESS
        }
        Err(v) => {
            println!("seed {seed}: VIOLATION at t={}us: {}", v.at, v.what);
            ExitCode::FAILURE
        }
    };
    println!("trace {:016x}", world.trace_hash());
    code
}

/// Builds the mutant build once (`--cfg raida_mutants`, in its own target directory),
/// then runs the swarm with each planted bug on in turn: each must be caught.
fn mutants(seeds: u64) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let manifest = format!("{root}/Cargo.toml");
    let target = format!("{root}/{MUTANT_TARGET_DIR}");
    let flags = match std::env::var("RUSTFLAGS") {
        Ok(f) if !f.trim().is_empty() => format!("{f} --cfg raida_mutants"),
        _ => "--cfg raida_mutants".to_string(),
    };
    println!("mutants: building with RUSTFLAGS='{flags}' into {target}");
    let built = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "raida-sim",
            "--manifest-path",
            &manifest,
        ])
        .env("RUSTFLAGS", &flags)
        .env("CARGO_TARGET_DIR", &target)
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        println!("mutants: the mutant build failed: {built:?}");
        return ExitCode::FAILURE;
    }
    let binary = format!("{target}/release/raida-sim");
    let mut caught = 0;
    // The engine's planted bugs against the swarm, the store's against the store swarm.
    let store = raida_sim::store_world::STORE_MUTANTS;
    let all = MUTANTS.iter().map(|m| (*m, "swarm"));
    let all = all.chain(store.iter().map(|m| (*m, "store-swarm")));
    let count = MUTANTS.len() + store.len();
    for ((name, what), swarm) in all {
        println!("mutant {name}: {what}");
        let output = Command::new(&binary)
            .args([swarm, "--seeds", &seeds.to_string(), "--stop-first"])
            .args(["--mutant", name])
            .output();
        let output = match output {
            Ok(o) => o,
            Err(e) => {
                println!("mutant {name}: could not run {binary}: {e}");
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let first = stdout.lines().find(|l| l.contains(": VIOLATION"));
        match first {
            Some(line) if !output.status.success() => {
                caught += 1;
                let seed = line
                    .strip_prefix("seed ")
                    .and_then(|l| l.split(':').next())
                    .unwrap_or("?");
                let why = line.split_once(": VIOLATION").map_or("", |(_, w)| w);
                let why = why.lines().next().unwrap_or("");
                println!("mutant {name}: caught by seed {seed}{why}");
                if let Some(replay) = stdout.lines().find(|l| l.contains(": replay: ")) {
                    println!("  {}", replay.trim_start());
                }
            }
            _ => {
                println!("mutant {name}: NOT caught in {seeds} seeds");
                let stderr = String::from_utf8_lossy(&output.stderr);
                for l in stderr.lines().rev().take(5) {
                    println!("  {l}");
                }
            }
        }
    }
    println!("mutants: {caught}/{count} caught");
    if caught == count {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
