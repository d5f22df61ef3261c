//! The knobs of one simulated world, every one drawn from the seed ("swarm testing":
//! the fault rates themselves are random, so each seed is a different world).

use crate::rng::Rng;

/// Everything a seed decides before the run starts. Printed first for a failing seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// The seed everything else comes from.
    pub seed: u64,
    // ----- the engine's bounds -----
    /// `EngineConfig::max_connections`.
    pub max_connections: usize,
    /// `EngineConfig::mod_queue_size` (small in about half the seeds: queue pressure).
    pub mod_queue_size: usize,
    /// `EngineConfig::max_body_size`.
    pub max_body_size: usize,
    /// `EngineConfig::socket_timeout`, in microseconds.
    pub socket_timeout_us: u64,
    /// `EngineConfig::linger`, in microseconds.
    pub linger_us: u64,
    /// `EngineConfig::udp_payload_threshold`.
    pub udp_payload_threshold: usize,
    /// `EngineConfig::buffer_pool`.
    pub buffer_pool: usize,
    /// `EngineConfig::max_pooled_capacity`.
    pub max_pooled_capacity: usize,
    // ----- load -----
    /// TCP clients over the run.
    pub tcp_clients: u32,
    /// UDP clients (one datagram each, maybe duplicated).
    pub udp_clients: u32,
    /// Clients start within this window.
    pub arrival_window_us: u64,
    /// Per mille of requests that are invalid (bad header, body or key).
    pub invalid_pm: u32,
    /// Largest command payload.
    pub max_payload: usize,
    /// Per mille of TCP clients that send bytes after their request.
    pub garbage_pm: u32,
    /// Most chunks a client splits its stream into.
    pub chunks_max: usize,
    /// Longest pause between a client's chunks (and before its reads and FIN).
    pub client_delay_max_us: u64,
    /// Largest read a client does at once.
    pub client_read_max: usize,
    // ----- peer faults -----
    /// Per mille of clients that reset at a random moment (any state).
    pub reset_pm: u32,
    /// Per mille of clients that hang up (FIN) after a random prefix of the request.
    pub hangup_pm: u32,
    /// Per mille of clients that never send a byte.
    pub silent_pm: u32,
    /// Per mille of clients that send so slowly they may cross the socket timeout.
    pub slow_pm: u32,
    /// Per mille of clients that never read their response.
    pub nonreader_pm: u32,
    /// Per mille of clients that half-close right after the request (job still runs).
    pub early_fin_pm: u32,
    /// Per mille of clients that never close after the response (the linger closes).
    pub nofin_pm: u32,
    // ----- kernel faults -----
    /// Each read returns 1..=this many bytes (partial reads down to one byte).
    pub read_chunk_max: usize,
    /// Each write takes 1..=this many bytes (partial writes).
    pub write_chunk_max: usize,
    /// The socket's send buffer toward the client.
    pub send_window: usize,
    /// Per mille of socket services that hit an EAGAIN storm.
    pub eagain_pm: u32,
    /// Longest EAGAIN storm.
    pub eagain_max_us: u64,
    /// The listener's accept queue (connections beyond it are refused by the kernel).
    pub backlog: usize,
    /// Per mille of accepts that fail with fd exhaustion (accepts deferred).
    pub accept_fail_pm: u32,
    /// Longest fd exhaustion.
    pub accept_fail_max_us: u64,
    /// Per mille of accepted connections aborted in the queue.
    pub accept_abort_pm: u32,
    // ----- workers and clock -----
    /// Longest ordinary worker delay (jobs complete in any order).
    pub worker_delay_max_us: u64,
    /// Per mille of jobs whose worker stalls for seconds (admission stays full).
    pub worker_stall_pm: u32,
    /// Clock jumps forward during the run.
    pub clock_jumps: u32,
    /// Longest clock jump.
    pub clock_jump_max_us: u64,
    // ----- UDP faults -----
    /// Per mille of datagrams truncated in flight.
    pub udp_trunc_pm: u32,
    /// Per mille of datagrams duplicated.
    pub udp_dup_pm: u32,
    /// Per mille of datagrams dropped.
    pub udp_drop_pm: u32,
    /// The UDP socket's receive queue (datagrams beyond it are dropped by the kernel).
    pub udp_queue_cap: usize,
    /// Jobs are held until the caller completes them (proptest), not run by workers.
    pub hold_jobs: bool,
    /// `EngineConfig::turn_budget`: accepts per accept loop (small in some seeds, so
    /// the driver's retry after the budget runs).
    pub turn_budget: usize,
    /// `EngineConfig::accept_backoff`, in microseconds: how long accepting pauses
    /// after an EMFILE.
    pub accept_backoff_us: u64,
    // ----- shutdown -----
    /// When the world asks the engine to shut down, microseconds after the start
    /// (while clients still arrive and requests are in flight); `None`: never.
    pub shutdown_at_us: Option<u64>,
    /// `EngineConfig::drain_timeout`, in microseconds.
    pub drain_timeout_us: u64,
    // ----- clients' addresses and the per-client limits -----
    /// Hosts the clients share (client `c` is on host `c % hosts`); 0: one host per
    /// client.
    pub hosts: u32,
    /// `EngineConfig::trusted`: 0 none, 1 the first host, 2 every host (10.0.0.0/8).
    pub trusted: u8,
    /// `EngineConfig::max_connections_per_client` (0: no limit).
    pub max_connections_per_client: usize,
    /// `EngineConfig::rate`: (requests a second, burst), or none.
    pub rate: Option<(u32, u32)>,
    /// `EngineConfig::udp_refusals_per_s`.
    pub udp_refusals_per_s: u32,
    // ----- the buffered-bytes budget and the discard -----
    /// `EngineConfig::max_buffered_bytes` (small in some seeds: bodies wait for room).
    pub max_buffered_bytes: usize,
    /// `EngineConfig::small_reserve`.
    pub small_reserve: usize,
    /// `EngineConfig::small_body`.
    pub small_body: usize,
    /// `EngineConfig::body_chunk`.
    pub body_chunk: usize,
    /// `EngineConfig::discard_limit`.
    pub discard_limit: usize,
    // ----- the authentication workload (crate::auth) -----
    /// Per mille of clients that send detect, detect_sum, pown or pown_sum (0: none,
    /// and the store holds no workload coins).
    pub auth_pm: u32,
    /// Coins of the workload in the store.
    pub auth_coins: usize,
    /// Pages (of 1024 serials) the workload's coins lie on.
    pub auth_pages: u64,
    /// Versions of each coin's AN the clients expect to pass over the arrival window.
    pub auth_versions: u32,
    /// Per mille of entries with a wrong AN.
    pub auth_wrong_pm: u32,
    /// Per mille of requests with a malformed payload (or no body, or shard 1 or 2).
    pub auth_malformed_pm: u32,
    /// The store holds the group of coins the sums name all at once.
    pub auth_group: bool,
}

impl Knobs {
    /// The world of `seed`.
    pub fn from_seed(seed: u64) -> Knobs {
        let mut r = Rng::new(seed).fork(0x4B4E_4F42);
        let timeout = if r.chance(400) {
            2_000_000
        } else {
            r.range(20_000, 3_000_000)
        };
        let mut k = Knobs {
            seed,
            max_connections: if r.chance(300) {
                r.range_usize(1, 8)
            } else {
                r.range_usize(16, 4096)
            },
            mod_queue_size: if r.chance(500) {
                r.range_usize(1, 8)
            } else {
                r.range_usize(8, 1024)
            },
            max_body_size: if r.chance(200) {
                r.range_usize(0, 300)
            } else {
                65_536
            },
            socket_timeout_us: timeout,
            linger_us: r.range(1_000, 500_000),
            udp_payload_threshold: if r.chance(200) {
                r.range_usize(17, 200)
            } else {
                1024
            },
            buffer_pool: r.range_usize(0, 16),
            max_pooled_capacity: r.pick(&[0, 64, 4096]).unwrap_or(4096),
            tcp_clients: r.range(1, 40) as u32,
            udp_clients: r.range(0, 16) as u32,
            arrival_window_us: r.range(0, 5_000_000),
            invalid_pm: r.range(0, 600) as u32,
            max_payload: r.pick(&[0, 16, 300]).unwrap_or(0),
            garbage_pm: r.range(0, 300) as u32,
            chunks_max: r.range_usize(1, 20),
            client_delay_max_us: if r.chance(300) {
                0
            } else {
                r.range(0, 100_000)
            },
            client_read_max: r.range_usize(1, 4096),
            reset_pm: r.range(0, 300) as u32,
            hangup_pm: r.range(0, 300) as u32,
            silent_pm: r.range(0, 150) as u32,
            slow_pm: r.range(0, 200) as u32,
            nonreader_pm: r.range(0, 200) as u32,
            early_fin_pm: r.range(0, 300) as u32,
            nofin_pm: r.range(0, 500) as u32,
            read_chunk_max: chunk_max(&mut r),
            write_chunk_max: chunk_max(&mut r),
            send_window: if r.chance(300) {
                r.range_usize(1, 16)
            } else {
                r.range_usize(64, 65_536)
            },
            eagain_pm: match r.below(3) {
                0 => 0,
                1 => r.range(0, 100) as u32,
                _ => r.range(100, 600) as u32,
            },
            eagain_max_us: r.range(1, 500_000),
            backlog: r.range_usize(1, 128),
            accept_fail_pm: r.range(0, 200) as u32,
            accept_fail_max_us: r.range(1_000, 3_000_000),
            accept_abort_pm: r.range(0, 100) as u32,
            worker_delay_max_us: match r.below(3) {
                0 => 0,
                1 => r.range(1, 1_000),
                _ => r.range(1_000, 500_000),
            },
            worker_stall_pm: r.range(0, 300) as u32,
            clock_jumps: r.range(0, 3) as u32,
            clock_jump_max_us: r.range(1_000, 5_000_000),
            udp_trunc_pm: r.range(0, 300) as u32,
            udp_dup_pm: r.range(0, 300) as u32,
            udp_drop_pm: r.range(0, 300) as u32,
            udp_queue_cap: r.range_usize(1, 64),
            hold_jobs: false,
            turn_budget: if r.chance(400) {
                r.range_usize(1, 8)
            } else {
                256
            },
            accept_backoff_us: r.range(1_000, 500_000),
            // The limits, the shutdown and the workload start as in a quiet run and are
            // drawn after everything else, so the knobs above keep their values.
            ..Knobs::quiet(seed)
        };
        k.shutdown_at_us = r
            .chance(300)
            .then(|| r.range(0, k.arrival_window_us + 200_000));
        k.drain_timeout_us = match r.below(3) {
            0 => r.range(1_000, 100_000),
            1 => r.range(100_000, 1_000_000),
            _ => r.range(1_000_000, 6_000_000),
        };
        if r.chance(400) {
            k.hosts = r.range(1, 4) as u32;
        }
        k.trusted = r.pick(&[0, 0, 0, 1, 2]).unwrap_or(0);
        if r.chance(500) {
            k.max_connections_per_client = r.range_usize(1, 6);
        }
        if r.chance(300) {
            k.rate = Some((r.range(1, 100) as u32, r.range(1, 8) as u32));
            k.udp_refusals_per_s = r.range(1, 20) as u32;
        }
        if r.chance(300) {
            k.max_buffered_bytes = r.range_usize(64, 3_000);
            k.small_reserve = r.range_usize(0, k.max_buffered_bytes / 2);
            k.small_body = r.pick(&[0, 16, 64, 200, 4096]).unwrap_or(0);
            k.body_chunk = r.range_usize(1, 300);
        }
        if r.chance(200) {
            k.discard_limit = r.range_usize(1, 150);
        }
        if r.chance(600) {
            k.auth_pm = r.range(100, 900) as u32;
            k.auth_coins = r.range_usize(1, 6);
            k.auth_pages = r.range(1, 3);
            k.auth_versions = r.range(1, 10) as u32;
            k.auth_wrong_pm = r.range(0, 300) as u32;
            k.auth_malformed_pm = r.range(0, 150) as u32;
            k.auth_group = r.chance(600);
        }
        k
    }

    /// A world without faults, whose jobs wait for the caller (for proptest sequences:
    /// the operations themselves are the faults).
    pub fn quiet(seed: u64) -> Knobs {
        Knobs {
            seed,
            max_connections: 4,
            mod_queue_size: 2,
            max_body_size: 65_536,
            socket_timeout_us: 2_000_000,
            linger_us: 500_000,
            udp_payload_threshold: 1024,
            buffer_pool: 4,
            max_pooled_capacity: 4096,
            tcp_clients: 0,
            udp_clients: 0,
            arrival_window_us: 0,
            invalid_pm: 0,
            max_payload: 0,
            garbage_pm: 0,
            chunks_max: 1,
            client_delay_max_us: 0,
            client_read_max: usize::MAX,
            reset_pm: 0,
            hangup_pm: 0,
            silent_pm: 0,
            slow_pm: 0,
            nonreader_pm: 0,
            early_fin_pm: 0,
            nofin_pm: 0,
            read_chunk_max: usize::MAX,
            write_chunk_max: usize::MAX,
            send_window: 1 << 20,
            eagain_pm: 0,
            eagain_max_us: 1,
            backlog: 1024,
            accept_fail_pm: 0,
            accept_fail_max_us: 1,
            accept_abort_pm: 0,
            worker_delay_max_us: 0,
            worker_stall_pm: 0,
            clock_jumps: 0,
            clock_jump_max_us: 1,
            udp_trunc_pm: 0,
            udp_dup_pm: 0,
            udp_drop_pm: 0,
            udp_queue_cap: 1024,
            hold_jobs: true,
            turn_budget: 256,
            accept_backoff_us: 100_000,
            shutdown_at_us: None,
            drain_timeout_us: 5_000_000,
            hosts: 0,
            trusted: 0,
            max_connections_per_client: 0,
            rate: None,
            udp_refusals_per_s: 1000,
            max_buffered_bytes: 64 << 20,
            small_reserve: 8 << 20,
            small_body: 4096,
            body_chunk: 4096,
            discard_limit: 64 << 10,
            auth_pm: 0,
            auth_coins: 0,
            auth_pages: 1,
            auth_versions: 1,
            auth_wrong_pm: 0,
            auth_malformed_pm: 0,
            auth_group: false,
        }
    }
}

fn chunk_max(r: &mut Rng) -> usize {
    match r.below(3) {
        0 => 1,
        1 => r.range_usize(1, 16),
        _ => 65_536,
    }
}
