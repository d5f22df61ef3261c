//! `raida-sim data-swarm` and `raida-sim data-replay`: the data world
//! ([`raida_sim::data_world`]: engine, commands and store together, with crashes) over
//! many seeds, and one seed with a readable trace.

use std::io::Write as _;
use std::process::ExitCode;

use raida_sim::data_world::{data_replay_command, run_data_seed, DataKnobs, DataStats, DataWorld};

use crate::seeds::{self, Swarm};

/// Runs the data seeds of `run`; prints every failing seed (or the first, with
/// `stop_first`), the totals, and the count of violations.
pub(crate) fn swarm(run: &Swarm) -> ExitCode {
    let (failures, t) = seeds::run(run, run_data_seed, DataStats::add, data_replay_command);
    let mut out = std::io::stdout().lock();
    seeds::print_failures(&mut out, &failures, data_replay_command);
    let [parked, loads_failed, syncs, held, recovered] = t.seeds_with;
    let _ = writeln!(
        out,
        "totals: {} requests, {} answered ({} of them 252), {} never answered; {} parked on \
         a page load, {} loads failed, {} store commands inline, {} run again on a worker; \
         {} commits completed (syncs), {} syncs failed, {} answers held on a commit, {} \
         turned 252 by a failed sync; {} crashes recovered ({} after a fail-stop); {} \
         powns and {} detects passed",
        t.requests,
        t.answered,
        t.internal,
        t.lost,
        t.parked,
        t.loads_failed,
        t.store_inline,
        t.store_retries,
        t.syncs,
        t.failed_syncs,
        t.held,
        t.commit_failures,
        t.recoveries,
        t.fail_stops,
        t.writes_passed,
        t.reads_passed
    );
    let _ = writeln!(
        out,
        "seeds with: {parked} parked, {loads_failed} failed loads, {syncs} syncs, {held} held \
         answers, {recovered} recoveries (of {} passing seeds)",
        t.seeds
    );
    seeds::verdict(&mut out, "data-swarm", run.seeds, failures.len())
}

/// Replays data seed `seed` with its trace, ending with the trace's hash.
pub(crate) fn replay(seed: u64) -> ExitCode {
    seeds::trace_to_stdout();
    let knobs = DataKnobs::from_seed(seed);
    println!("seed {seed}: {knobs:?}");
    let mut world = DataWorld::new(knobs, true);
    let result = world.run_all();
    let code = seeds::replay_verdict(seed, &result, &world.stats);
    println!("disk: {:?}", world.disk().counts());
    println!("trace {:016x}", world.trace_hash());
    code
}
