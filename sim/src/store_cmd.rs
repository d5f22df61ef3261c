//! `raida-sim store-swarm` and `raida-sim store-replay`: the store world
//! ([`raida_sim::store_world`]) over many seeds, and one seed with a readable trace.

use std::io::Write as _;
use std::process::ExitCode;

use raida_sim::store_world::{
    run_store_seed, store_replay_command, StoreKnobs, StoreStats, StoreWorld,
};

use crate::seeds::{self, Swarm};

/// Runs the store seeds of `run`; prints every failing seed (or the first, with
/// `stop_first`), the totals, and the count of violations.
pub(crate) fn swarm(run: &Swarm) -> ExitCode {
    let (failures, totals) = seeds::run(run, run_store_seed, StoreStats::add, store_replay_command);
    let mut out = std::io::stdout().lock();
    seeds::print_failures(&mut out, &failures, store_replay_command);
    let _ = writeln!(out, "totals: {totals:?}");
    seeds::verdict(&mut out, "store-swarm", run.seeds, failures.len())
}

/// Replays store seed `seed` with its trace, ending with the trace's hash.
pub(crate) fn replay(seed: u64) -> ExitCode {
    seeds::trace_to_stdout();
    let knobs = StoreKnobs::from_seed(seed);
    println!("seed {seed}: {knobs:?}");
    let mut world = StoreWorld::new(knobs, true);
    let result = world.run_all();
    let code = seeds::replay_verdict(seed, &result, &world.stats);
    println!("disk: {:?}", world.disk().counts());
    println!("trace {:016x}", world.trace_hash());
    code
}
