//! The simulated server: its identity, the keys it holds, the commands it serves, and
//! its engine configuration from the knobs. The world's engine and its oracle are both
//! built from these (each its own instance).

use std::sync::Arc;
use std::time::Duration;

use raida_commands::FixedClock;

use raida_core::codec::RANDOM_LEN;
use raida_core::keys::{An, MemoryKeyStore};
use raida_core::{Cidr, CommandRegistry, EngineConfig, Rate};

use crate::auth::{Workload, MFS};
use crate::knobs::Knobs;
use crate::limits::Limits;
use crate::rng::Rng;
use crate::witness;

/// The simulated server's raida id.
pub const RAIDA_ID: u8 = 7;
/// The simulated server's coin id.
pub const COIN_ID: u16 = 6;

/// Coins the server knows: (denomination, serial, AN).
pub const COINS: [(i8, u32, An); 3] = [
    (1, 1, *b"0123456789abcdef"),
    (2, 500, *b"fedcba9876543210"),
    (-1, 70_000, *b"ANANANANANANANAN"),
];
/// The one locker the server knows (type 2 names it by its first 5 bytes).
pub const LOCKER: An = *b"LOCKER-AN-16byte";
/// A coin no store holds.
pub const UNKNOWN_COIN: (i8, u32) = (3, 999_999);

/// The key store of every simulated server.
pub fn key_store() -> MemoryKeyStore {
    let k = MemoryKeyStore::new();
    for (d, s, an) in COINS {
        k.insert_coin(d, s, an);
    }
    k.insert_locker(LOCKER);
    k
}

/// The key store of the simulated server whose authentication workload is `w`: the
/// keys of [`key_store`] and the workload's coins at their first AN.
pub fn store(w: &Workload) -> MemoryKeyStore {
    let k = key_store();
    w.fill(&k);
    k
}

/// The commands the simulated server serves: echo, version, the two witnesses and the
/// authentication commands (detect, detect_sum, pown, pown_sum), whose powns write
/// the status byte [`MFS`] (no wall clock).
pub fn commands() -> CommandRegistry {
    let mut r = CommandRegistry::with_builtins();
    witness::register(&mut r);
    for (group, command, handler) in
        raida_commands::all(Arc::new(FixedClock(MFS)), Default::default())
    {
        // (1, 10), (1, 11), (1, 20) and (1, 21) are free in a registry of built-ins
        // and witnesses: a failure is the simulator's bug, found by its first run.
        if let Err(e) = r.register(group, command, handler) {
            panic!("authentication command ({group}, {command}): {e}");
        }
    }
    r
}

/// The engine configuration of the world with `knobs`.
pub fn config(knobs: &Knobs) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.raida_id = RAIDA_ID;
    config.coin_id = COIN_ID;
    config.max_connections = knobs.max_connections;
    config.max_body_size = knobs.max_body_size;
    config.socket_timeout = Duration::from_micros(knobs.socket_timeout_us);
    config.mod_queue_size = knobs.mod_queue_size;
    config.udp_payload_threshold = knobs.udp_payload_threshold;
    config.linger = Duration::from_micros(knobs.linger_us);
    config.buffer_pool = knobs.buffer_pool;
    config.max_pooled_capacity = knobs.max_pooled_capacity;
    config.turn_budget = knobs.turn_budget;
    config.accept_backoff = Duration::from_micros(knobs.accept_backoff_us);
    config.drain_timeout = Duration::from_micros(knobs.drain_timeout_us);
    config.max_connections_per_client = knobs.max_connections_per_client;
    config.trusted = trusted(knobs);
    config.rate = knobs.rate.map(|(per_s, burst)| Rate { per_s, burst });
    config.udp_refusals_per_s = knobs.udp_refusals_per_s;
    config.max_buffered_bytes = knobs.max_buffered_bytes;
    config.small_reserve = knobs.small_reserve;
    config.small_body = knobs.small_body;
    config.body_chunk = knobs.body_chunk;
    config.discard_limit = knobs.discard_limit;
    config
}

/// The networks exempt from the per-client limits in the world with `knobs`.
pub fn trusted(knobs: &Knobs) -> Vec<Cidr> {
    let net = match knobs.trusted {
        1 => crate::kernel::host_ip(0).to_string(),
        2 => "10.0.0.0/8".to_string(),
        _ => return Vec::new(),
    };
    Cidr::parse(&net).into_iter().collect()
}

/// The limits the world expects of the engine with `knobs`.
pub fn limits(knobs: &Knobs) -> Limits {
    Limits::new(
        knobs.max_connections_per_client,
        trusted(knobs),
        knobs.rate.map(|(per_s, burst)| Rate { per_s, burst }),
        knobs.udp_refusals_per_s,
    )
}

/// The 32-byte answer to a connection refused at `max_connections` (status 160).
pub fn refusal() -> [u8; 32] {
    let mut r = [0u8; 32];
    r[0] = RAIDA_ID;
    r[2] = 160;
    r[5] = 1;
    r
}

/// The random bytes the simulated workers give the job of client `client`.
pub fn job_random(seed: u64, client: u32) -> [u8; RANDOM_LEN] {
    let mut r = Rng::new(seed ^ 0x5EED_0000_0000_0000).fork(u64::from(client));
    let mut out = [0u8; RANDOM_LEN];
    r.fill(&mut out);
    out
}
