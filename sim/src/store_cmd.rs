//! `raida-sim store-swarm` and `raida-sim store-replay`: the store world
//! ([`raida_sim::store_world`]) over many seeds, and one seed with a readable trace.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raida_sim::store_world::{
    run_store_seed, store_replay_command, StoreKnobs, StoreStats, StoreWorld,
};

/// A seed that runs this long (wall clock) is hung: a store world takes milliseconds.
/// The store blocks on locks and condition variables, so a hang is a deadlock, and
/// the watchdog reports the seed and ends the process rather than hanging with it.
const HANG: Duration = Duration::from_secs(120);

/// Runs store seeds `start..start + seeds` on `threads` threads; prints every failing
/// seed (or the first, with `stop_first`), the totals, and the count of violations.
pub fn swarm(seeds: u64, start: u64, stop_first: bool, threads: Option<usize>) -> ExitCode {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let next = AtomicU64::new(0);
    let stop = AtomicU64::new(u64::MAX);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(StoreStats::default());
    let running: Mutex<Vec<Option<(u64, Instant)>>> = Mutex::new(vec![None; threads]);
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| watchdog(&running, &finished));
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let (next, stop, failures, totals, running) =
                    (&next, &stop, &failures, &totals, &running);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= seeds || (stop_first && i > stop.load(Ordering::Relaxed)) {
                        return;
                    }
                    let seed = start.wrapping_add(i);
                    if let Ok(mut r) = running.lock() {
                        r[w] = Some((seed, Instant::now()));
                    }
                    let result = run_store_seed(seed);
                    if let Ok(mut r) = running.lock() {
                        r[w] = None;
                    }
                    match result {
                        Ok(stats) => {
                            if let Ok(mut t) = totals.lock() {
                                t.add(&stats);
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
    let mut out = std::io::stdout().lock();
    for (seed, failure) in &failures {
        let (knobs, v) = failure.as_ref();
        let _ = writeln!(out, "seed {seed}: {knobs:?}");
        let _ = writeln!(out, "seed {seed}: VIOLATION at t={}us: {}", v.at, v.what);
        let _ = writeln!(out, "seed {seed}: replay: {}", store_replay_command(*seed));
    }
    if let Ok(t) = totals.into_inner() {
        let _ = writeln!(out, "totals: {t:?}");
    }
    let _ = writeln!(
        out,
        "store-swarm: {seeds} seeds, {} violations",
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Replays store seed `seed` with its trace, ending with the trace's hash.
pub fn replay(seed: u64) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .without_time()
        .with_ansi(false)
        .with_target(false)
        .try_init();
    let knobs = StoreKnobs::from_seed(seed);
    println!("seed {seed}: {knobs:?}");
    let mut world = StoreWorld::new(knobs, true);
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
    println!("disk: {:?}", world.disk().counts());
    println!("trace {:016x}", world.trace_hash());
    code
}

/// Ends the process when a seed runs past [`HANG`], naming it the way a violation is
/// named (so `raida-sim mutants` and scripts read it as one).
fn watchdog(running: &Mutex<Vec<Option<(u64, Instant)>>>, finished: &AtomicBool) {
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
                "seed {seed}: VIOLATION at t=?us: hung for {} s (a deadlock in the store or \
                 the world)",
                since.elapsed().as_secs()
            );
            println!("seed {seed}: replay: {}", store_replay_command(seed));
            let _ = std::io::stdout().flush();
            std::process::exit(1);
        }
    }
}
