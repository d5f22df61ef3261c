//! The data world as tests (the engine serving raida-commands over raida-store on the
//! faulty simulated disk, with crashes): a small band of seeds keeps every invariant
//! and exercises what the world is for, and one seed replayed twice gives the same
//! trace. `SIM_SEED=S` moves the band to S.

use raida_sim::data_world::{data_replay_command, run_data_seed, DataKnobs, DataStats, DataWorld};
use raida_sim::seed_from_env as start;

/// Seeds in the band: few, so a debug build runs it in seconds.
const BAND: u64 = 40;

#[test]
fn a_band_of_data_seeds_keeps_every_invariant_and_exercises_the_commit_path() {
    let start = start();
    let mut t = DataStats::default();
    for seed in start..start + BAND {
        match run_data_seed(seed) {
            Ok(stats) => t.add(&stats),
            Err(failure) => {
                let (knobs, v) = *failure;
                panic!(
                    "seed {seed}: {knobs:?}\nVIOLATION at t={}: {}\nreplay: {}",
                    v.at,
                    v.what,
                    data_replay_command(seed)
                );
            }
        }
    }
    // Requests parked on loads, loads failed, syncs made writes durable, answers
    // waited for them, servers crashed and recovered.
    let [parked, loads_failed, syncs, held, recovered] = t.seeds_with;
    assert!(parked > BAND / 2, "{t:?}");
    assert!(loads_failed > 0, "{t:?}");
    assert!(syncs > BAND / 2, "{t:?}");
    assert!(held > BAND / 2, "{t:?}");
    assert!(recovered > BAND / 4, "{t:?}");
    assert!(t.failed_syncs > 0 && t.fail_stops > 0, "{t:?}");
    assert!(t.writes_passed > 0 && t.reads_passed > 0, "{t:?}");
}

#[test]
fn one_data_seed_replays_to_the_same_trace() {
    let seed = start() + 3;
    let run = |seed| {
        let mut w = DataWorld::new(DataKnobs::from_seed(seed), true);
        let result = w.run_all();
        (result, w.trace_hash(), w.stats.clone())
    };
    let a = run(seed);
    let b = run(seed);
    assert_eq!(a, b);
    assert_ne!(a.1, run(seed + 1).1, "another seed is another world");
}
