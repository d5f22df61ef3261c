//! raida-sim: the unmodified engine of `raida-core` under a seeded, fault-injecting
//! in-memory world (a simulated kernel, clients, workers and clock), proptest operation
//! sequences, and a small async driver over turmoil's simulated sockets (in the tests).
//! Every seed replays exactly; invariants are checked after every step.
//!
//! One module per concept: [`knobs`] (everything a seed decides), [`rng`] (the one
//! source of randomness), [`server`] (the simulated server: identity, keys, commands,
//! configuration), [`witness`] (the commands that write down their request context),
//! [`request`] (the clients' requests, built with `raida_client::Request`), [`oracle`]
//! (the independent expected answers), [`auth`] (the detect/pown workload and its
//! per-coin model), [`limits`] (what the per-client limits must decide),
//! [`invariants`] (safety, liveness and the oracle comparisons), [`disk`] (the seeded
//! faulty disk under raida-store), [`store_world`] (raida-store driven over it and
//! checked against a model), [`data_world`] (the engine serving raida-commands over
//! raida-store on that disk, with crashes and recoveries, checked against the
//! authentication model), [`raida_world`] (a whole RAIDA: up to 25 engines healing
//! coins through their peers) with [`raida_net`] (its network, which carries the
//! engines' outbound peer calls), [`wallet`] (its wallets) and [`durable_store`] (each
//! server's records and what survives a crash), and, private, `kernel` (pipes, the
//! listener's backlog, the UDP queue and the engine's socket and listener seams over
//! them), `clients` (behaviours and their actions) and `world` (the event loop that
//! ties them together, its shutdown phase included).

pub mod auth;
mod clients;
// The data world: the engine, raida-commands and raida-store together, crashes.
pub mod data_world;
// The store world: raida-store over a faulty simulated disk.
pub mod disk;
// The RAIDA world: up to 25 servers healing coins through their peers.
pub mod durable_store;
pub mod invariants;
mod kernel;
pub mod knobs;
pub mod limits;
pub mod oracle;
pub mod raida_net;
pub mod raida_world;
pub mod request;
pub mod rng;
pub mod server;
mod store_model;
pub mod store_world;
pub mod wallet;
pub mod witness;
mod world;

pub use invariants::Violation;
pub use knobs::Knobs;
pub use world::{Stats, World, START_US};

/// Where the mutant build lives (beside the normal one, so neither rebuilds the other).
pub const MUTANT_TARGET_DIR: &str = "target/mutants";

/// Turns on the planted bug `name` for this process. Only a `--cfg raida_mutants` build
/// has planted bugs; in any other build this is an error.
pub fn activate_mutant(name: &str) -> Result<(), String> {
    #[cfg(raida_mutants)]
    {
        match raida_core::mutants::Mutant::from_name(name) {
            Some(m) => {
                raida_core::mutants::activate(Some(m));
                let _ = ACTIVE_MUTANT.set(name.to_string());
                Ok(())
            }
            None => Err(format!("no planted bug named {name:?}")),
        }
    }
    #[cfg(not(raida_mutants))]
    {
        Err(format!(
            "--mutant {name}: this build has no planted bugs (run `raida-sim mutants`, which \
             builds with --cfg raida_mutants into {MUTANT_TARGET_DIR})"
        ))
    }
}

#[cfg(raida_mutants)]
static ACTIVE_MUTANT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The planted bug this process runs with, if any.
fn active_mutant() -> Option<String> {
    #[cfg(raida_mutants)]
    {
        ACTIVE_MUTANT.get().cloned()
    }
    #[cfg(not(raida_mutants))]
    {
        None
    }
}

/// The one command that replays `seed` in this build.
pub fn replay_command(seed: u64) -> String {
    replay_command_of("replay", seed)
}

/// The one command that replays `seed` of the world whose replay subcommand is
/// `subcommand` (`replay`, `store-replay`, ...) in this build: with the planted bug
/// that is on, in the mutant build's target directory, when one is.
pub fn replay_command_of(subcommand: &str, seed: u64) -> String {
    match active_mutant() {
        None => format!("cargo run --release -p raida-sim -- {subcommand} --seed {seed}"),
        Some(m) => format!(
            "RUSTFLAGS='--cfg raida_mutants' CARGO_TARGET_DIR={MUTANT_TARGET_DIR} \
             cargo run --release -p raida-sim -- {subcommand} --seed {seed} --mutant {m}"
        ),
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
