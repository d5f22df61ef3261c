//! What the swarms (the engine's `swarm`, the store's `store-swarm`, the data world's
//! `data-swarm`) and their replays share: running many seeds on a few threads with a watchdog, naming the
//! failing ones with their replay command, and one seed's verdict with its trace.

use std::fmt::Debug;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raida_sim::Violation;

/// A seed that runs this long (wall clock) is hung: a world takes milliseconds. The
/// store blocks on locks and condition variables and the engine's world loops until
/// it drains, so a hang is a deadlock or a livelock, and the watchdog reports the seed
/// and ends the process rather than hanging with it.
const HANG: Duration = Duration::from_secs(120);

/// Which seeds a swarm runs, and how (the arguments of every `*swarm` subcommand).
#[derive(clap::Args, Debug)]
pub(crate) struct Swarm {
    /// How many seeds.
    #[arg(long)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Stop at the first violating seed.
    #[arg(long)]
    pub stop_first: bool,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run with this planted bug on (only in the mutant build).
    #[arg(long)]
    pub mutant: Option<String>,
}

/// The seed a replay runs (the arguments of `replay` and `store-replay`).
#[derive(clap::Args, Debug)]
pub(crate) struct Replay {
    /// The seed.
    #[arg(long)]
    pub seed: u64,
    /// Run with this planted bug on (only in the mutant build).
    #[arg(long)]
    pub mutant: Option<String>,
}

/// A failing seed: the knobs it drew and what broke.
pub(crate) type Failure<K> = (u64, Box<(K, Violation)>);

/// Runs the seeds of `swarm` through `run_seed`, summing the stats of the passing ones
/// with `add`; returns the failing seeds in order (only the first with `stop_first`)
/// and the totals. `replay` names a seed's replay command, for the watchdog.
pub(crate) fn run<K: Send, S: Default + Send>(
    swarm: &Swarm,
    run_seed: impl Fn(u64) -> Result<S, Box<(K, Violation)>> + Sync,
    add: impl Fn(&mut S, &S) + Sync,
    replay: fn(u64) -> String,
) -> (Vec<Failure<K>>, S) {
    let Swarm {
        seeds,
        start,
        stop_first,
        threads,
        ..
    } = *swarm;
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let next = AtomicU64::new(0);
    let stop = AtomicU64::new(u64::MAX);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(S::default());
    let running: Mutex<Vec<Option<(u64, Instant)>>> = Mutex::new(vec![None; threads]);
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| watchdog(&running, &finished, replay));
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let (next, stop, failures, totals, running) =
                    (&next, &stop, &failures, &totals, &running);
                let (run_seed, add) = (&run_seed, &add);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= seeds || (stop_first && i > stop.load(Ordering::Relaxed)) {
                        return;
                    }
                    let seed = start.wrapping_add(i);
                    if let Ok(mut r) = running.lock() {
                        r[w] = Some((seed, Instant::now()));
                    }
                    let result = run_seed(seed);
                    if let Ok(mut r) = running.lock() {
                        r[w] = None;
                    }
                    match result {
                        Ok(stats) => {
                            if let Ok(mut t) = totals.lock() {
                                add(&mut t, &stats);
                            }
                        }
                        Err(failure) => {
                            stop.fetch_min(i, Ordering::Relaxed);
                            if let Ok(mut f) = failures.lock() {
                                f.push((seed, failure));
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        finished.store(true, Ordering::Relaxed);
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|(seed, _)| *seed);
    if stop_first {
        failures.truncate(1);
    }
    (failures, totals.into_inner().unwrap_or_default())
}

/// Prints each failing seed: its knobs, its violation and its replay command (the
/// lines `raida-sim mutants` and the scripts read).
pub(crate) fn print_failures<K: Debug>(
    out: &mut impl std::io::Write,
    failures: &[Failure<K>],
    replay: fn(u64) -> String,
) {
    for (seed, failure) in failures {
        let (knobs, v) = failure.as_ref();
        let _ = writeln!(out, "seed {seed}: {knobs:?}");
        let _ = writeln!(out, "seed {seed}: VIOLATION at t={}us: {}", v.at, v.what);
        let _ = writeln!(out, "seed {seed}: replay: {}", replay(*seed));
    }
}

/// Prints `name: N seeds, M violations` and gives the exit code.
pub(crate) fn verdict(
    out: &mut impl std::io::Write,
    name: &str,
    seeds: u64,
    violations: usize,
) -> ExitCode {
    let _ = writeln!(out, "{name}: {seeds} seeds, {violations} violations");
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A replay's trace goes to stdout, plain, without times (so it is the same each run).
pub(crate) fn trace_to_stdout() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .without_time()
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Prints one replayed seed's outcome and gives the exit code.
pub(crate) fn replay_verdict(
    seed: u64,
    result: &Result<(), Violation>,
    stats: &impl Debug,
) -> ExitCode {
    match result {
        Ok(()) => {
            println!("seed {seed}: ok: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(v) => {
            println!("seed {seed}: VIOLATION at t={}us: {}", v.at, v.what);
            ExitCode::FAILURE
        }
    }
}

/// Ends the process when a seed runs past [`HANG`], naming it the way a violation is
/// named (so `raida-sim mutants` and scripts read it as one).
fn watchdog(
    running: &Mutex<Vec<Option<(u64, Instant)>>>,
    finished: &AtomicBool,
    replay: fn(u64) -> String,
) {
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let hung = running.lock().ok().and_then(|r| {
            r.iter()
                .flatten()
                .find(|(_, since)| since.elapsed() > HANG)
                .copied()
        });
        if let Some((seed, since)) = hung {
            println!(
                "seed {seed}: VIOLATION at t=?us: hung for {} s (a deadlock or a livelock)",
                since.elapsed().as_secs()
            );
            println!("seed {seed}: replay: {}", replay(seed));
            let _ = std::io::stdout().flush();
            std::process::exit(1);
        }
    }
}
