//! raida-sim: the unmodified engine of `raida-core` under a seeded, fault-injecting
//! in-memory world (a simulated kernel, clients, workers and clock), proptest operation
//! sequences, and a small async driver over turmoil's simulated sockets (in the tests).
//! Every seed replays exactly; invariants are checked after every step.

pub mod knobs;
pub mod request;
pub mod rng;
pub mod world;

pub use knobs::Knobs;
pub use world::{Stats, Violation, World};

/// The planted bugs compiled into this build (cargo features), for the replay command.
pub fn mutant_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    if cfg!(feature = "mutant-reused-slot") {
        f.push("mutant-reused-slot");
    }
    if cfg!(feature = "mutant-admission-overflow") {
        f.push("mutant-admission-overflow");
    }
    if cfg!(feature = "mutant-no-timeout") {
        f.push("mutant-no-timeout");
    }
    if cfg!(feature = "mutant-overread") {
        f.push("mutant-overread");
    }
    if cfg!(feature = "mutant-accept-once") {
        f.push("mutant-accept-once");
    }
    f
}

/// The one command that replays `seed` in this build.
pub fn replay_command(seed: u64) -> String {
    let features = mutant_features();
    if features.is_empty() {
        format!("cargo run --release -p raida-sim -- replay --seed {seed}")
    } else {
        format!(
            "cargo run --release -p raida-sim --features {} -- replay --seed {seed}",
            features.join(",")
        )
    }
}

/// The first seed a test runs: `SIM_SEED` if set (to move a test's band of seeds, or
/// to replay one), else 0. Printed, so a failing run's output names it.
pub fn seed_from_env() -> u64 {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    println!("SIM_SEED={seed}");
    seed
}

/// Runs the world of `seed` to the end, without a trace.
pub fn run_seed(seed: u64) -> Result<Stats, Box<(Knobs, Violation)>> {
    let knobs = Knobs::from_seed(seed);
    let mut world = World::swarm(knobs.clone(), false);
    match world.run_all() {
        Ok(()) => Ok(world.stats),
        Err(v) => Err(Box::new((knobs, v))),
    }
}
