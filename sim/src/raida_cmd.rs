//! `raida-sim raida-swarm` and `raida-sim raida-replay`: the RAIDA world
//! ([`raida_sim::raida_world`]) over many seeds, and one seed with a readable trace.

use std::process::ExitCode;

use raida_sim::raida_world::{
    raida_replay_command, run_raida_seed, RaidaKnobs, RaidaStats, RaidaWorld,
};

use crate::seeds::{self, Swarm};

/// Runs the RAIDA seeds of `run`; prints every failing seed (or the first, with
/// `stop_first`), the totals that show the faults happened, and the count of
/// violations.
pub(crate) fn swarm(run: &Swarm) -> ExitCode {
    let (failures, t) = seeds::run(run, run_raida_seed, RaidaStats::add, raida_replay_command);
    let mut out = std::io::stdout().lock();
    seeds::print_failures(&mut out, &failures, raida_replay_command);
    print_totals(&mut out, &t);
    seeds::verdict(&mut out, "raida-swarm", run.seeds, failures.len())
}

fn print_totals(out: &mut impl std::io::Write, t: &RaidaStats) {
    let _ = writeln!(
        out,
        "raida: {} servers, {} wallets ({} healed everywhere; liveness checked in {} runs)",
        t.servers, t.wallets, t.wallets_healed, t.liveness_checked
    );
    let _ = writeln!(
        out,
        "fixes: {} tried ({} sent twice), {} answered fixed, {} coins healed, {} refused 160, \
         {} failed 252 ({} store writes failed); {} finds, {} tickets",
        t.fixes_sent,
        t.duplicate_fixes,
        t.fixes_answered,
        t.coins_healed,
        t.fixes_refused,
        t.fixes_failed,
        t.store_failures,
        t.finds,
        t.tickets
    );
    let _ = writeln!(
        out,
        "peer calls: {} made, {} answered, {} refused (peer down), {} cut at the deadline \
         (hangs), {} other failures; claims answered 250/43/44: {:?}",
        t.peer_calls, t.peer_answered, t.peer_refused, t.peer_timeouts, t.peer_other, t.claims
    );
    let _ = writeln!(
        out,
        "faults: server epochs down/hung/garbage/lying {:?}, {} restarts, {} links to hung \
         servers, {} dishonest claim answers, {} connects lost to partitions; {} steps",
        t.epochs, t.restarts, t.hung_links, t.fake_answers, t.lost_syns, t.steps
    );
}

/// Replays RAIDA seed `seed` with its trace, ending with the trace's hash.
pub(crate) fn replay(seed: u64) -> ExitCode {
    seeds::trace_to_stdout();
    let knobs = RaidaKnobs::from_seed(seed);
    println!("seed {seed}: {knobs:?}");
    let mut world = RaidaWorld::new(knobs, true);
    let result = world.run_all();
    let code = seeds::replay_verdict(seed, &result, &world.stats);
    print_totals(&mut std::io::stdout().lock(), &world.stats);
    println!("trace {:016x}", world.trace_hash());
    code
}
