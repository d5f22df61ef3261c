//! `raida-sim`: swarm runs over many seeds, the replay of one seed with a readable
//! trace, and the mutant check (the swarm must catch every planted bug).

use std::io::Write as _;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use raida_core::mutants::Mutant;
use raida_sim::{replay_command, run_seed, Knobs, World, MUTANT_TARGET_DIR};

use seeds::{Replay, Swarm};

mod data_cmd;
mod raida_cmd;
mod seeds;
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
    Swarm(Swarm),
    /// Replays one seed with a readable trace, ending with the trace's hash.
    Replay(Replay),
    /// Runs store seeds S..S+N: raida-store over the faulty simulated disk.
    StoreSwarm(Swarm),
    /// Replays one store seed with a readable trace, ending with the trace's hash.
    StoreReplay(Replay),
    /// Runs RAIDA seeds S..S+N: up to 25 servers healing coins through their peers.
    RaidaSwarm(Swarm),
    /// Replays one RAIDA seed with a readable trace, ending with the trace's hash.
    RaidaReplay(Replay),
    /// Runs data seeds S..S+N: the engine with raida-commands over raida-store on the
    /// faulty simulated disk, with crashes and recoveries.
    DataSwarm(Swarm),
    /// Replays one data seed with a readable trace, ending with the trace's hash.
    DataReplay(Replay),
    /// Runs the swarm against every planted bug; each must be caught.
    Mutants {
        /// Seeds per mutant at most.
        #[arg(long, default_value_t = 2000)]
        seeds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mutant = match &cli.command {
        Cmd::Swarm(s) | Cmd::StoreSwarm(s) | Cmd::RaidaSwarm(s) | Cmd::DataSwarm(s) => {
            s.mutant.as_deref()
        }
        Cmd::Replay(r) | Cmd::StoreReplay(r) | Cmd::RaidaReplay(r) | Cmd::DataReplay(r) => {
            r.mutant.as_deref()
        }
        Cmd::Mutants { .. } => None,
    };
    if let Err(code) = with_mutant(mutant) {
        return code;
    }
    match cli.command {
        Cmd::Swarm(run) => swarm(&run),
        Cmd::Replay(r) => replay(r.seed),
        Cmd::StoreSwarm(run) => store_cmd::swarm(&run),
        Cmd::StoreReplay(r) => store_cmd::replay(r.seed),
        Cmd::RaidaSwarm(run) => raida_cmd::swarm(&run),
        Cmd::RaidaReplay(r) => raida_cmd::replay(r.seed),
        Cmd::DataSwarm(run) => data_cmd::swarm(&run),
        Cmd::DataReplay(r) => data_cmd::replay(r.seed),
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

fn swarm(run: &Swarm) -> ExitCode {
    let (failures, t) = seeds::run(run, run_seed, raida_sim::Stats::add, replay_command);
    let mut out = std::io::stdout().lock();
    seeds::print_failures(&mut out, &failures, replay_command);
    {
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
    seeds::verdict(&mut out, "swarm", run.seeds, failures.len())
}

fn replay(seed: u64) -> ExitCode {
    seeds::trace_to_stdout();
    let knobs = Knobs::from_seed(seed);
    println!("seed {seed}: {knobs:?}");
    let mut world = World::swarm(knobs, true);
    let result = world.run_all();
    let code = seeds::replay_verdict(seed, &result, &world.stats);
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
            "--locked",
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
    // Each planted bug against the swarm that must catch it (core's one list).
    let count = Mutant::ALL.len();
    for mutant in Mutant::ALL {
        let (name, what, swarm) = (mutant.name(), mutant.breaks(), mutant.swarm().command());
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
