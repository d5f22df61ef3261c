//! The RAIDA world: a whole RAIDA in one seeded world. Up to 25 servers, each its own
//! unmodified [`Engine`] serving the real healing commands of raida-commands over its
//! own store ([`DurableStore`]), connected by a simulated network ([`crate::raida_net`])
//! in which the world performs every engine's outbound peer calls as io-epoll does
//! (connect, write, read, close) with latency, refusals and hangs; and wallets
//! ([`crate::wallet`]) that heal their coins by the protocol (find and get_ticket on
//! every RAIDA, fix on the fracked ones). Time is virtual, there are no threads, and
//! the seed decides everything, so a seed replays exactly.
//!
//! **Faults** (until the heal time, after which every server is up and honest):
//! servers down (connections refused), hung (connections accepted by the kernel and
//! never read; in some epochs every server but one), answering their peers' claims
//! with garbage, or lying (claiming every ticket valid and listing every coin, each
//! several times), redrawn every epoch; servers that crash and restart (connections
//! cut or reset, jobs lost, tickets forgotten, the store recovered from its durable
//! records); partitions between pairs of servers (connects never complete); slow
//! servers (a one-way latency up to one and a half peer deadlines); partial reads and
//! writes; store appends that fail, and syncs that fail and stop the store until a
//! restart (the engine answers 252 to what it held); slow wallets (which wait, sometimes past the
//! tickets' lifetime, before they fix), wallets that send a fix twice or list a coin
//! twice in one.
//!
//! **Invariants**, checked as the bytes move:
//! - a fix sets a coin only when more than 13 distinct RAIDAs vouch for it, itself
//!   included: the peers counted are those whose whole claim answer (250, the section
//!   8b framing, the coin listed) the fixing server read, for the ticket the wallet
//!   gave for that peer;
//! - a coin listed twice in one fix gets one verdict;
//! - a ticket is claimed at most once per RAIDA (two 250 answers for one ticket of one
//!   issuer and one claiming index break it);
//! - an expired ticket never votes: no 250 answers a claim whose connection was
//!   accepted a ticket lifetime or more after the ticket was issued;
//! - a fix is durable before its answer: when a fix's answer leaves the server (its
//!   write side shut), every coin it calls fixed has the new AN in the server's durable
//!   records (what a recovery from its synced bytes would find; [`DurableStore`]);
//! - the fixing server answers within the peer deadline plus a bound (two worker
//!   delays, a store sync and a millisecond) after it read the fix, whatever its peers
//!   do;
//! - liveness: when every coin is fracked on at most N - 14 of the N servers, the
//!   wallets, after the heal, end with every coin healed on every server, and every
//!   store holds exactly the ANs its wallet knows;
//! - at the end every engine is idle (no connection, fix, job or timer left).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use raida_client::healing as client_healing;
use raida_client::{Keys, Request, Response};
use raida_commands::{new_an, FixedClock, HealingSetup};
use raida_core::codec::RANDOM_LEN;
use raida_core::keys::{An, CoinId, KeyStore};
use raida_core::{
    Accept, CommandRegistry, ConnId, Engine, EngineConfig, Job, Output, PeerConnId, PeerFailure,
    Timestamp,
};

use crate::durable_store::DurableStore;
use crate::invariants::Violation;
use crate::raida_net::{
    client_addr, server_addr, server_at, server_ip, wallet_ip, Fake, Far, Inbound, Link, Opener,
    Outbound, Sends,
};
use crate::rng::{Fnv64, Rng};
use crate::wallet::{Phase, ReqKind, Wallet, WalletReq, POSITIONS};
use crate::START_US;

/// Steps (events and timer rounds) after which a run counts as livelocked.
const MAX_STEPS: u64 = 3_000_000;
/// Work items one settle may run before it counts as a livelock.
const MAX_SETTLE: u64 = 1_000_000;
/// The coin id of every server.
const COIN_ID: u16 = 6;
/// The status byte fixed records get (a fixed clock: no wall clock).
const MFS: u8 = 46;
/// A coin is fixed when its votes exceed this (PROTOCOL.md 8b).
const VOTES_ABOVE: usize = 13;
/// The length of a claim request (PROTOCOL.md 8b's table).
const CLAIM_LEN: usize = 55;
/// What a fix may take beyond its peer deadline and two worker runs: the driver's
/// own steps, which take no simulated time, and a margin.
const FIX_SLACK_US: u64 = 1_000;
/// Rounds a wallet makes after the heal (once the fixes begun before it have ended)
/// before it gives up.
const ROUNDS_AFTER_HEAL: u32 = 10;

/// Everything a seed decides about a RAIDA world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaidaKnobs {
    /// The seed.
    pub seed: u64,
    /// Servers present (RAIDA 0..servers; the other positions up to 25 refuse).
    pub servers: usize,
    /// Wallets.
    pub wallets: usize,
    /// Coins per wallet.
    pub coins_per_wallet: usize,
    /// A coin starts fracked on at most this many servers.
    pub max_fracked: usize,
    /// `peer_timeout_ms`, in microseconds.
    pub peer_timeout_us: u64,
    /// `ticket_lifetime_s`, in microseconds.
    pub ticket_lifetime_us: u64,
    /// `max_fixes`.
    pub max_fixes: usize,
    /// The longest a worker takes for a job.
    pub worker_max_us: u64,
    /// The longest one-way latency of a link that is not slow.
    pub latency_max_us: u64,
    /// Per mille of servers that are slow until the heal.
    pub slow_pm: u32,
    /// How often the servers' fault modes are redrawn.
    pub epoch_us: u64,
    /// Per mille of servers down in an epoch.
    pub down_pm: u32,
    /// Per mille of servers hung in an epoch.
    pub hang_pm: u32,
    /// Per mille of servers answering claims with garbage in an epoch.
    pub garbage_pm: u32,
    /// Per mille of servers lying in an epoch.
    pub lying_pm: u32,
    /// Per mille of servers that crash and restart in an epoch: their connections
    /// are cut, their jobs lost, their tickets forgotten, and their store recovers
    /// from its durable records.
    pub restart_pm: u32,
    /// Per mille of epochs in which every server but one hangs (a fix sent to that one
    /// finds every peer hung).
    pub mass_hang_pm: u32,
    /// How often a lying server lists each coin.
    pub lie_repeats: usize,
    /// Pairs of servers drawn as partitioned until the heal.
    pub partitions: usize,
    /// Per mille of store writes (log appends) that fail until the heal.
    pub store_fail_pm: u32,
    /// Per mille of store syncs that fail (the store stops until a restart) until
    /// the heal.
    pub sync_fail_pm: u32,
    /// The longest a store sync takes.
    pub sync_max_us: u64,
    /// Per mille of wallet rounds that wait before fixing.
    pub slow_wallet_pm: u32,
    /// Per mille of fixes a wallet sends twice.
    pub duplicate_fix_pm: u32,
    /// Per mille of fixes that list one of their coins twice.
    pub repeat_coin_pm: u32,
    /// When the faults stop, after the start.
    pub heal_at_us: u64,
    /// The largest read or write on a link.
    pub chunk_max: usize,
}

/// A fault rate: off in half the seeds, else up to `max` per mille.
fn rate(rng: &mut Rng, max: u64) -> u32 {
    if rng.chance(500) {
        0
    } else {
        rng.range(1, max) as u32
    }
}

impl RaidaKnobs {
    /// The knobs of `seed`.
    pub fn from_seed(seed: u64) -> RaidaKnobs {
        let mut rng = Rng::new(seed).fork(0x5241_4944_414B);
        let servers = match rng.below(20) {
            0..=10 => 25,
            11..=17 => rng.range_usize(14, 24),
            _ => rng.range_usize(3, 13),
        };
        let max_fracked = if rng.chance(850) {
            rng.range_usize(1, 11)
        } else {
            rng.range_usize(1, servers)
        };
        let peer_timeout_us = rng.range(100_000, 2_000_000);
        RaidaKnobs {
            seed,
            servers,
            wallets: rng.range_usize(1, 3),
            coins_per_wallet: rng.range_usize(1, 3),
            max_fracked,
            peer_timeout_us,
            ticket_lifetime_us: rng.range(500_000, 5_000_000),
            max_fixes: if rng.chance(300) {
                rng.range_usize(1, 3)
            } else {
                64
            },
            worker_max_us: rng.range(10, 3_000),
            latency_max_us: rng.range(20, 5_000),
            slow_pm: rate(&mut rng, 300),
            epoch_us: rng.range(200_000, 3_000_000),
            down_pm: rate(&mut rng, 250),
            hang_pm: rate(&mut rng, 250),
            garbage_pm: rate(&mut rng, 250),
            lying_pm: rate(&mut rng, 250),
            mass_hang_pm: rate(&mut rng, 300),
            restart_pm: rate(&mut rng, 100),
            lie_repeats: rng.range_usize(1, 4),
            partitions: if rng.chance(500) {
                0
            } else {
                rng.range_usize(1, 8)
            },
            store_fail_pm: rate(&mut rng, 300),
            sync_fail_pm: rate(&mut rng, 50),
            sync_max_us: rng.range(10, 5_000),
            slow_wallet_pm: rate(&mut rng, 500),
            duplicate_fix_pm: rate(&mut rng, 300),
            repeat_coin_pm: rate(&mut rng, 300),
            heal_at_us: rng.range(500_000, 5_000_000),
            chunk_max: if rng.chance(500) {
                4096
            } else {
                rng.range_usize(1, 64)
            },
        }
    }

    /// Whether the liveness promise applies: every coin is good on at least 14
    /// servers, so 13 peers can vouch for it wherever it is fracked.
    pub fn liveness(&self) -> bool {
        self.servers > self.max_fracked + VOTES_ABOVE
    }

    /// The longest one-way latency of any link (slow ones included).
    fn latency_bound_us(&self) -> u64 {
        let slow = if self.slow_pm > 0 {
            self.peer_timeout_us * 3 / 2
        } else {
            0
        };
        self.latency_max_us.max(slow)
    }

    /// The longest a fix may take from the moment its server read it to its answer.
    pub fn fix_bound_us(&self) -> u64 {
        self.peer_timeout_us + 2 * self.worker_max_us + self.sync_max_us + FIX_SLACK_US
    }

    /// The engines' socket timeout: longer than any request takes to arrive.
    fn socket_timeout_us(&self) -> u64 {
        4 * self.latency_bound_us() + 1_000_000
    }

    /// How long a wallet waits for the answers of a find or get_ticket phase.
    fn phase_timeout_us(&self) -> u64 {
        6 * self.latency_bound_us() + 2 * self.worker_max_us + 10_000
    }

    /// When, after the start, nothing begun before the heal can still hold a fix slot:
    /// a fix sent just before it arrives within three latencies and ends within the
    /// fix bound.
    fn settled_after_heal_us(&self) -> u64 {
        self.heal_at_us + 3 * self.latency_bound_us() + self.fix_bound_us()
    }

    /// How long a wallet waits for its fixes' answers: longer than any fix may take.
    fn fix_timeout_us(&self) -> u64 {
        self.fix_bound_us() + 6 * self.latency_bound_us() + 10_000
    }
}

/// What a run did, for the summary lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaidaStats {
    /// Servers present.
    pub servers: u64,
    /// Wallets.
    pub wallets: u64,
    /// Wallets whose coins ended healed on every server.
    pub wallets_healed: u64,
    /// Runs whose liveness was checked.
    pub liveness_checked: u64,
    /// find answers read.
    pub finds: u64,
    /// Tickets received.
    pub tickets: u64,
    /// Fixes sent (tried).
    pub fixes_sent: u64,
    /// Fixes answered 241 or 243.
    pub fixes_answered: u64,
    /// Coins those answers call fixed (healed).
    pub coins_healed: u64,
    /// Fixes answered 160 (`max_fixes` in flight).
    pub fixes_refused: u64,
    /// Fixes answered 252 (the store write failed).
    pub fixes_failed: u64,
    /// Fixes sent twice.
    pub duplicate_fixes: u64,
    /// Peer calls the engines made.
    pub peer_calls: u64,
    /// Of those, answered (a whole response read).
    pub peer_answered: u64,
    /// Refused (the peer down or absent).
    pub peer_refused: u64,
    /// Cut at the fix's deadline (the peer hung, slow or partitioned away).
    pub peer_timeouts: u64,
    /// Other failures (reset, closed early, too long).
    pub peer_other: u64,
    /// Claims answered 250, 43 and 44.
    pub claims: [u64; 3],
    /// Server epochs spent down, hung, answering garbage, lying.
    pub epochs: [u64; 4],
    /// Server crashes and restarts.
    pub restarts: u64,
    /// Links to hung servers.
    pub hung_links: u64,
    /// Claims the world answered as a dishonest peer.
    pub fake_answers: u64,
    /// Connects lost to a partition.
    pub lost_syns: u64,
    /// Store writes that failed.
    pub store_failures: u64,
    /// Steps taken.
    pub steps: u64,
    /// Simulated time at the end.
    pub end_us: u64,
}

impl RaidaStats {
    /// Adds another run's numbers.
    pub fn add(&mut self, o: &RaidaStats) {
        self.servers += o.servers;
        self.wallets += o.wallets;
        self.wallets_healed += o.wallets_healed;
        self.liveness_checked += o.liveness_checked;
        self.finds += o.finds;
        self.tickets += o.tickets;
        self.fixes_sent += o.fixes_sent;
        self.fixes_answered += o.fixes_answered;
        self.coins_healed += o.coins_healed;
        self.fixes_refused += o.fixes_refused;
        self.fixes_failed += o.fixes_failed;
        self.duplicate_fixes += o.duplicate_fixes;
        self.peer_calls += o.peer_calls;
        self.peer_answered += o.peer_answered;
        self.peer_refused += o.peer_refused;
        self.peer_timeouts += o.peer_timeouts;
        self.peer_other += o.peer_other;
        for i in 0..3 {
            self.claims[i] += o.claims[i];
        }
        for i in 0..4 {
            self.epochs[i] += o.epochs[i];
        }
        self.restarts += o.restarts;
        self.hung_links += o.hung_links;
        self.fake_answers += o.fake_answers;
        self.lost_syns += o.lost_syns;
        self.store_failures += o.store_failures;
        self.steps += o.steps;
        self.end_us = self.end_us.max(o.end_us);
    }
}

/// A server's fault mode in an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Hang,
    Garbage,
    Lying,
}

/// One server: its engine, store, the driver's registries and its held jobs.
#[derive(Debug)]
struct Server {
    engine: Engine,
    store: Arc<DurableStore>,
    /// Accepted connections: their links.
    conns: BTreeMap<ConnId, usize>,
    /// Peer calls: their links.
    peers: BTreeMap<PeerConnId, usize>,
    /// Jobs a worker holds, by number.
    jobs: BTreeMap<u64, Job>,
    mode: Mode,
    slow: bool,
    /// A store sync is scheduled.
    syncing: bool,
}

/// A simulated event.
#[derive(Debug)]
enum Ev {
    /// The SYN of a link reaches its server.
    Syn(usize),
    /// The opener learns its connection is established.
    Established(usize),
    /// The opener learns its connection was refused.
    Refused(usize),
    /// Bytes (and maybe the end of stream) reach one end of a link.
    Arrive {
        link: usize,
        to_server: bool,
        bytes: Vec<u8>,
        fin: bool,
    },
    /// A reset reaches the opener of a peer call: its socket reports the error.
    Reset(usize),
    /// A worker finished a job.
    Worker { server: usize, job: u64 },
    /// A server's store sync ends.
    Sync(usize),
    /// A wallet begins a round.
    Round(usize),
    /// A wallet stops waiting for a phase's answers.
    PhaseTimeout {
        wallet: usize,
        round: u32,
        phase: Phase,
    },
    /// A slow wallet sends its fixes.
    FixStart { wallet: usize, round: u32 },
    /// The servers' fault modes are redrawn.
    Modes,
    /// The faults stop.
    Heal,
    /// A fix's answer is due (the bound after its server read it).
    FixDeadline(usize),
}

/// What the driver services next.
#[derive(Clone, Copy, Debug)]
enum Work {
    Service(usize, ConnId),
    ServicePeer(usize, PeerConnId),
}

/// The world of one seed.
#[derive(Debug)]
pub struct RaidaWorld {
    /// The knobs it was built from.
    pub knobs: RaidaKnobs,
    rng: Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    servers: Vec<Server>,
    links: Vec<Link>,
    wallets: Vec<Wallet>,
    reqs: Vec<WalletReq>,
    work: VecDeque<Work>,
    healed: bool,
    partitions: BTreeSet<(usize, usize)>,
    /// Every wallet's coins (what a lying peer lists).
    coins: Vec<CoinId>,
    /// Peer calls by (caller, callee, ticket): their links.
    peer_index: BTreeMap<(usize, usize, u32), Vec<usize>>,
    /// Tickets issued, by (issuer, ticket): when the answer carrying it was written
    /// (no earlier than its issue).
    issued: BTreeMap<(usize, u32), u64>,
    /// Claims answered 250: (issuer, ticket, claiming index).
    claimed: BTreeSet<(usize, u32, u8)>,
    next_job: u64,
    next_port: u64,
    violation: Option<Violation>,
    tracing: bool,
    hash: Fnv64,
    scratch: Vec<u8>,
    /// What the run did.
    pub stats: RaidaStats,
}

/// The engine of RAIDA `i`: the healing commands (and the rest of raida-commands) over
/// `store`, its peers at [`server_addr`], claims taken only from their addresses.
fn engine(knobs: &RaidaKnobs, i: usize, store: Arc<DurableStore>) -> Engine {
    let peers: Vec<Option<SocketAddr>> = (0..POSITIONS).map(|j| Some(server_addr(j))).collect();
    let mut config = EngineConfig::default().with_peers(
        peers.clone(),
        Duration::from_micros(knobs.peer_timeout_us),
        knobs.max_fixes,
    );
    config.raida_id = i as u8;
    config.coin_id = COIN_ID;
    config.socket_timeout = Duration::from_micros(knobs.socket_timeout_us());
    config.inline_crypto_max_body = 0;
    config.buffer_pool = 8;
    let setup = HealingSetup {
        ticket_lifetime: Duration::from_micros(knobs.ticket_lifetime_us),
        raida_servers: peers,
        ..HealingSetup::default()
    };
    let mut registry = CommandRegistry::with_builtins();
    for (group, command, handler) in raida_commands::all(Arc::new(FixedClock(MFS)), setup) {
        // Every (group, command) of raida-commands is free in a registry of built-ins:
        // a failure is the simulator's bug, found by its first run.
        if let Err(e) = registry.register(group, command, handler) {
            panic!("command ({group}, {command}): {e}");
        }
    }
    Engine::new(config, registry, store as Arc<dyn KeyStore>)
}

/// A type-0 answer's status and command output (the body without its trailer), read
/// from the bytes a server wrote; `None` before the whole answer is there.
fn raw_answer(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let header = bytes.get(..32)?;
    let size =
        (usize::from(header[9]) << 16) | (usize::from(header[10]) << 8) | usize::from(header[11]);
    if size == 0 {
        return Some((header[2], &[]));
    }
    let body = bytes.get(32..32 + size)?;
    Some((header[2], &body[..size.saturating_sub(2)]))
}

/// A coin's 5-byte reference.
fn coin_ref(c: CoinId) -> [u8; 5] {
    let s = c.serial.to_be_bytes();
    [c.denomination as u8, s[0], s[1], s[2], s[3]]
}

/// Whether a peer's claim answer (`answer`, of which the claimer read `read` bytes)
/// vouches for `coin` by the rules of PROTOCOL.md 8b: the whole answer read, status
/// 250, body size S with 7 <= S <= 65,536 and (S - 2) % 5 == 0, ending in `3e 3e`,
/// the coin among the references before it. Written here from the protocol, apart
/// from the server's reader.
fn vouches(answer: &[u8], read: usize, coin: CoinId) -> bool {
    let Some(header) = answer.get(..32) else {
        return false;
    };
    let s =
        (usize::from(header[9]) << 16) | (usize::from(header[10]) << 8) | usize::from(header[11]);
    if header[2] != 250 || !(7..=65_536).contains(&s) || (s - 2) % 5 != 0 || read < 32 + s {
        return false;
    }
    let Some(body) = answer.get(32..32 + s) else {
        return false;
    };
    if body[s - 2..] != [0x3E, 0x3E] {
        return false;
    }
    let want = coin_ref(coin);
    body[..s - 2].chunks_exact(5).any(|r| r == want)
}

impl RaidaWorld {
    /// The world of `knobs`: its servers, coins (fracked where the seed says), wallets,
    /// faults and heal time.
    pub fn new(knobs: RaidaKnobs, tracing: bool) -> RaidaWorld {
        let mut rng = Rng::new(knobs.seed).fork(0x5241_4944_4157);
        let n = knobs.servers;
        let mut wallets = Vec::new();
        let mut coins = Vec::new();
        // Per server, the records to start with.
        let mut records: Vec<Vec<(CoinId, An)>> = vec![Vec::new(); n];
        for w in 0..knobs.wallets {
            let mut mine = Vec::new();
            let mut ans = Vec::new();
            for c in 0..knobs.coins_per_wallet {
                let coin = CoinId::new((w as i8) - 1, 5_000 + (w * 10 + c) as u32);
                let an: Vec<An> = (0..POSITIONS)
                    .map(|_| {
                        let mut a = [0u8; 16];
                        rng.fill(&mut a);
                        a
                    })
                    .collect();
                // Fracked on a drawn set of servers: their record is another AN. Half
                // the coins are fracked on the most servers the seed allows, where
                // healing has the fewest votes to spare.
                let most = knobs.max_fracked.min(n);
                let fracked = if rng.chance(500) {
                    most
                } else {
                    rng.range_usize(0, most)
                };
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let bad: BTreeSet<usize> = order.into_iter().take(fracked).collect();
                for (s, rec) in records.iter_mut().enumerate() {
                    let held = if bad.contains(&s) {
                        let mut a = [0u8; 16];
                        rng.fill(&mut a);
                        a
                    } else {
                        an[s]
                    };
                    rec.push((coin, held));
                }
                mine.push(coin);
                ans.push(an);
                coins.push(coin);
            }
            wallets.push(Wallet::new(mine, ans));
        }
        let servers: Vec<Server> = (0..n)
            .map(|s| {
                let store = Arc::new(DurableStore::new(
                    rng.fork(0x5354_4f52_0000 + s as u64),
                    knobs.store_fail_pm,
                    knobs.sync_fail_pm,
                ));
                for &(coin, an) in &records[s] {
                    store.insert(coin, an);
                }
                let slow = rng.chance(knobs.slow_pm);
                Server {
                    engine: engine(&knobs, s, Arc::clone(&store)),
                    store,
                    conns: BTreeMap::new(),
                    peers: BTreeMap::new(),
                    jobs: BTreeMap::new(),
                    mode: Mode::Up,
                    slow,
                    syncing: false,
                }
            })
            .collect();
        let mut partitions = BTreeSet::new();
        for _ in 0..knobs.partitions {
            let a = rng.below(n as u64) as usize;
            let b = rng.below(n as u64) as usize;
            if a != b {
                partitions.insert((a.min(b), a.max(b)));
            }
        }
        let mut world = RaidaWorld {
            stats: RaidaStats {
                servers: n as u64,
                wallets: knobs.wallets as u64,
                ..RaidaStats::default()
            },
            knobs,
            rng,
            now: START_US,
            seq: 0,
            events: BTreeMap::new(),
            servers,
            links: Vec::new(),
            wallets,
            reqs: Vec::new(),
            work: VecDeque::new(),
            healed: false,
            partitions,
            coins,
            peer_index: BTreeMap::new(),
            issued: BTreeMap::new(),
            claimed: BTreeSet::new(),
            next_job: 0,
            next_port: 0,
            violation: None,
            tracing,
            hash: Fnv64::default(),
            scratch: Vec::new(),
        };
        for w in 0..world.wallets.len() {
            let at = world.now + world.rng.range(0, 50_000);
            world.schedule(at, Ev::Round(w));
        }
        let k = &world.knobs;
        if k.down_pm + k.hang_pm + k.garbage_pm + k.lying_pm + k.mass_hang_pm + k.restart_pm > 0 {
            world.schedule(world.now, Ev::Modes);
        }
        world.schedule(world.now + world.knobs.heal_at_us, Ev::Heal);
        world
    }

    // ----- the trace --------------------------------------------------------------

    fn log(&mut self, msg: impl FnOnce() -> String) {
        if !self.tracing {
            return;
        }
        let line = format!("t={} {}", self.now, msg());
        self.hash.update(line.as_bytes());
        self.hash.update(b"\n");
        tracing::info!("{line}");
    }

    /// The hash of the whole trace (replay only).
    pub fn trace_hash(&self) -> u64 {
        self.hash.finish()
    }

    fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.log(|| format!("VIOLATION: {what}"));
            self.violation = Some(Violation { at: self.now, what });
        }
    }

    fn ts(&self) -> Timestamp {
        Timestamp::from_micros(self.now)
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    // ----- running ----------------------------------------------------------------

    /// Runs the world to its end (every event and timer), then the final checks.
    pub fn run_all(&mut self) -> Result<(), Violation> {
        self.run();
        if self.violation.is_none() {
            self.final_checks();
        }
        self.collect_counters();
        self.stats.end_us = self.now;
        if self.tracing {
            let end = format!("end: {:?}", self.stats);
            self.log(|| end);
        }
        match self.violation.clone() {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    fn run(&mut self) {
        while self.violation.is_none() {
            self.stats.steps += 1;
            if self.stats.steps > MAX_STEPS {
                self.violate(format!("livelock: more than {MAX_STEPS} steps"));
                return;
            }
            let ev_t = self.events.first_key_value().map(|(k, _)| k.0);
            let timer = self
                .servers
                .iter()
                .filter_map(|s| s.engine.poll_timeout())
                .map(Timestamp::as_micros)
                .min();
            let timer_first = match (ev_t, timer) {
                (None, None) => return,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(e), Some(t)) => t <= e,
            };
            if timer_first {
                self.now = self.now.max(timer.unwrap_or(self.now));
                let now = self.ts();
                for s in 0..self.servers.len() {
                    if self.servers[s]
                        .engine
                        .poll_timeout()
                        .is_some_and(|t| t <= now)
                    {
                        self.servers[s].engine.handle_timeout(now);
                        self.drain(s);
                    }
                }
            } else if let Some(((t, _), ev)) = self.events.pop_first() {
                self.now = self.now.max(t);
                self.event(ev);
            }
            self.settle();
        }
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Syn(l) => self.syn(l),
            Ev::Established(l) => self.established(l),
            Ev::Refused(l) => self.refused(l),
            Ev::Reset(l) => {
                if let (Opener::Peer { server, id }, false) =
                    (self.links[l].opener, self.links[l].opener_closed)
                {
                    self.log(|| format!("link {l}: reset"));
                    let now = self.ts();
                    self.servers[server].engine.handle_peer_error(id, now);
                    self.drain(server);
                }
            }
            Ev::Arrive {
                link,
                to_server,
                bytes,
                fin,
            } => self.arrive(link, to_server, bytes, fin),
            Ev::Worker { server, job } => self.worker(server, job),
            Ev::Sync(s) => {
                self.servers[s].syncing = false;
                self.servers[s].store.sync();
                if self.servers[s].store.stopped() {
                    self.log(|| format!("RAIDA {s}: a sync failed, the store stops"));
                }
                let now = self.ts();
                self.servers[s].engine.handle_commit(now);
                self.drain(s);
            }
            Ev::Round(w) => self.round(w),
            Ev::PhaseTimeout {
                wallet,
                round,
                phase,
            } => {
                let w = &self.wallets[wallet];
                if w.round == round && w.phase == phase {
                    self.log(|| format!("wallet {wallet}: {phase:?} times out"));
                    let open = std::mem::take(&mut self.wallets[wallet].phase_reqs);
                    for r in open {
                        if self.reqs[r].over {
                            continue;
                        }
                        self.reqs[r].over = true;
                        let l = self.reqs[r].link;
                        self.opener_close(l);
                    }
                    self.wallets[wallet].pending = 0;
                    self.phase_end(wallet);
                }
            }
            Ev::FixStart { wallet, round } => {
                let w = &self.wallets[wallet];
                if w.round == round && w.phase == Phase::Pause {
                    self.start_fixes(wallet);
                }
            }
            Ev::Modes => self.modes(),
            Ev::Heal => {
                self.healed = true;
                self.log(|| "heal: faults stop".into());
                for s in 0..self.servers.len() {
                    self.servers[s].mode = Mode::Up;
                    self.servers[s].store.heal();
                    // A server whose store stopped exits; its supervisor restarts it.
                    if self.servers[s].store.stopped() {
                        self.restart(s);
                    }
                }
            }
            Ev::FixDeadline(l) => {
                let link = &self.links[l];
                if !link.server_shut && !link.opener_closed && !link.cut_by_restart {
                    let (s, done) = (link.server, link.request_done_at.unwrap_or(0));
                    let bound = self.knobs.fix_bound_us();
                    self.violate(format!(
                        "RAIDA {s} read a fix at t={done} and has not answered it {bound}us \
                         later (peer deadline {}us)",
                        self.knobs.peer_timeout_us
                    ));
                }
            }
        }
    }

    /// Redraws every server's fault mode (until the heal).
    fn modes(&mut self) {
        if self.healed {
            return;
        }
        let k = self.knobs.clone();
        if self.rng.chance(k.mass_hang_pm) {
            let up = self.rng.below(self.servers.len() as u64) as usize;
            for (s, server) in self.servers.iter_mut().enumerate() {
                server.mode = if s == up { Mode::Up } else { Mode::Hang };
            }
            self.stats.epochs[1] += self.servers.len() as u64 - 1;
            self.log(|| format!("every RAIDA but {up} hangs"));
            self.schedule(self.now + k.epoch_us, Ev::Modes);
            return;
        }
        for s in 0..self.servers.len() {
            if self.rng.chance(k.restart_pm) {
                self.restart(s);
            }
            let x = self.rng.below(1000) as u32;
            let mode = if x < k.down_pm {
                Mode::Down
            } else if x < k.down_pm + k.hang_pm {
                Mode::Hang
            } else if x < k.down_pm + k.hang_pm + k.garbage_pm {
                Mode::Garbage
            } else if x < k.down_pm + k.hang_pm + k.garbage_pm + k.lying_pm {
                Mode::Lying
            } else {
                Mode::Up
            };
            match mode {
                Mode::Down => self.stats.epochs[0] += 1,
                Mode::Hang => self.stats.epochs[1] += 1,
                Mode::Garbage => self.stats.epochs[2] += 1,
                Mode::Lying => self.stats.epochs[3] += 1,
                Mode::Up => {}
            }
            if mode != self.servers[s].mode {
                self.log(|| format!("RAIDA {s}: {mode:?}"));
            }
            self.servers[s].mode = mode;
        }
        self.schedule(self.now + k.epoch_us, Ev::Modes);
    }

    /// RAIDA `s` crashes and restarts at once: the kernel ends every connection the
    /// process held (its accepted ones and its peer calls), its workers' jobs die with
    /// it, its tickets (in memory only) are forgotten, and its store recovers from its
    /// durable records. A new engine serves from then on.
    fn restart(&mut self, s: usize) {
        self.stats.restarts += 1;
        self.log(|| format!("RAIDA {s}: crash and restart"));
        let conns: Vec<usize> = std::mem::take(&mut self.servers[s].conns)
            .into_values()
            .collect();
        for l in conns {
            let link = &mut self.links[l];
            link.cut_by_restart = true;
            if std::mem::replace(&mut link.server_closed, true) || link.server_shut {
                continue;
            }
            // The kernel resets what the process held: a peer call's socket reports
            // the error (outside any read or write) half the time, else it reads an
            // end of stream.
            if matches!(link.opener, Opener::Peer { .. }) && self.rng.chance(500) {
                let at = self.now + self.links[l].latency;
                self.schedule(at, Ev::Reset(l));
            } else {
                self.send(l, false, Vec::new(), true);
            }
        }
        let calls: Vec<usize> = std::mem::take(&mut self.servers[s].peers)
            .into_values()
            .collect();
        for l in calls {
            self.links[l].cut_by_restart = true;
            self.opener_close(l);
        }
        self.servers[s].jobs.clear();
        self.servers[s].store.recover();
        let store = Arc::clone(&self.servers[s].store);
        self.servers[s].engine = engine(&self.knobs, s, store);
    }

    /// Services woken connections (outputs drained after each) until nothing moves.
    fn settle(&mut self) {
        let mut n = 0u64;
        while let Some(w) = self.work.pop_front() {
            if self.violation.is_some() {
                return;
            }
            n += 1;
            if n > MAX_SETTLE {
                self.violate("livelock: the driver never settled".into());
                return;
            }
            match w {
                Work::Service(s, id) => self.service(s, id),
                Work::ServicePeer(s, id) => self.service_peer(s, id),
            }
        }
    }

    fn drain(&mut self, s: usize) {
        while let Some(o) = self.servers[s].engine.poll_output() {
            self.apply(s, o);
        }
    }

    fn apply(&mut self, s: usize, o: Output) {
        match o {
            Output::Job(job) => {
                let jid = self.next_job;
                self.next_job += 1;
                self.servers[s].jobs.insert(jid, job);
                let d = self.rng.range(0, self.knobs.worker_max_us);
                self.schedule(
                    self.now + d,
                    Ev::Worker {
                        server: s,
                        job: jid,
                    },
                );
            }
            Output::Wake(id) => self.work.push_back(Work::Service(s, id)),
            Output::Close(id) => {
                let Some(l) = self.servers[s].conns.remove(&id) else {
                    return self.violate(format!("RAIDA {s} closed {id:?}, never accepted"));
                };
                let link = &mut self.links[l];
                link.server_closed = true;
                let fin = !link.server_shut;
                if fin {
                    self.send(l, false, Vec::new(), true);
                }
            }
            Output::Connect { id, addr } => {
                let target = server_at(addr).unwrap_or(usize::MAX);
                let l = self.open(Opener::Peer { server: s, id }, target, server_ip(s));
                self.servers[s].peers.insert(id, l);
            }
            Output::WakePeer(id) => self.work.push_back(Work::ServicePeer(s, id)),
            Output::Sync => {
                if !std::mem::replace(&mut self.servers[s].syncing, true) {
                    let d = self.rng.range(0, self.knobs.sync_max_us);
                    self.schedule(self.now + d, Ev::Sync(s));
                }
            }
            Output::ClosePeer(id) => {
                let Some(l) = self.servers[s].peers.remove(&id) else {
                    return self.violate(format!("RAIDA {s} closed peer call {id:?} twice"));
                };
                self.opener_close(l);
            }
            // No UDP, no listener pauses, no shutdown in this world.
            Output::Datagram { .. }
            | Output::ResumeDatagrams
            | Output::ResumeAccepting
            | Output::StopListening => {}
        }
    }

    // ----- the network ------------------------------------------------------------

    /// Schedules the arrival of `bytes` (and the end of stream with `fin`) at one end
    /// of link `l`, its latency from now.
    fn send(&mut self, l: usize, to_server: bool, bytes: Vec<u8>, fin: bool) {
        let at = self.now + self.links[l].latency;
        self.schedule(
            at,
            Ev::Arrive {
                link: l,
                to_server,
                bytes,
                fin,
            },
        );
    }

    /// The opener closes link `l`: its end of stream goes to an engine that holds it.
    fn opener_close(&mut self, l: usize) {
        let link = &mut self.links[l];
        if std::mem::replace(&mut link.opener_closed, true) {
            return;
        }
        if link.far == Far::Engine && !link.server_closed {
            self.send(l, true, Vec::new(), true);
        }
    }

    /// Opens a connection from host `from` to RAIDA `server` (an index past the servers
    /// present, or `usize::MAX` for an address of no RAIDA, refuses).
    fn open(&mut self, opener: Opener, server: usize, from: Ipv4Addr) -> usize {
        let caller = match opener {
            Opener::Peer { server, .. } => Some(server),
            Opener::Wallet { .. } => None,
        };
        let present = server < self.servers.len();
        let slow = !self.healed
            && (present && self.servers[server].slow
                || caller.is_some_and(|c| self.servers[c].slow));
        let latency = if slow {
            let pt = self.knobs.peer_timeout_us;
            self.rng.range(pt / 4, pt * 3 / 2)
        } else {
            self.rng.range(1, self.knobs.latency_max_us)
        };
        let port = self.next_port;
        self.next_port += 1;
        let l = self.links.len();
        self.links
            .push(Link::new(opener, server, client_addr(from, port), latency));
        let down = !self.healed && present && self.servers[server].mode == Mode::Down;
        let lost = !self.healed
            && caller.is_some_and(|c| {
                present && self.partitions.contains(&(c.min(server), c.max(server)))
            });
        if !present || down {
            self.links[l].far = Far::Refused;
            self.schedule(self.now + 2 * latency, Ev::Refused(l));
        } else if lost {
            self.links[l].far = Far::Lost;
            self.stats.lost_syns += 1;
        } else {
            self.schedule(self.now + latency, Ev::Syn(l));
        }
        let what = format!(
            "{opener:?} connects to RAIDA {server} ({:?})",
            self.links[l].far
        );
        self.log(|| format!("link {l}: {what}"));
        l
    }

    /// The SYN of link `l` reaches its server: refused, accepted by a hung kernel,
    /// answered by the world, or accepted by the engine.
    fn syn(&mut self, l: usize) {
        if self.links[l].opener_closed {
            return;
        }
        let s = self.links[l].server;
        let mode = if self.healed {
            Mode::Up
        } else {
            self.servers[s].mode
        };
        let peer_call = matches!(self.links[l].opener, Opener::Peer { .. });
        let far = match mode {
            Mode::Down => Far::Refused,
            Mode::Hang => Far::Hang,
            Mode::Garbage if peer_call => Far::Fake(Fake::Garbage),
            Mode::Lying if peer_call => Far::Fake(Fake::Lying {
                repeats: self.knobs.lie_repeats,
            }),
            _ => Far::Engine,
        };
        self.links[l].far = far;
        let latency = self.links[l].latency;
        match far {
            Far::Refused => {
                self.schedule(self.now + latency, Ev::Refused(l));
                return;
            }
            Far::Hang => self.stats.hung_links += 1,
            Far::Engine => {
                let from = self.links[l].from;
                let now = self.ts();
                match self.servers[s].engine.handle_accept(from, now) {
                    Accept::Accepted(id) => {
                        self.servers[s].conns.insert(id, l);
                        self.links[l].conn = Some(id);
                        self.links[l].accepted_at = Some(self.now);
                        self.work.push_back(Work::Service(s, id));
                    }
                    Accept::Refused(bytes) => {
                        // The 160 is written and the connection closed.
                        self.links[l].far = Far::Refused;
                        self.links[l].answer.extend_from_slice(&bytes);
                        self.links[l].server_closed = true;
                        self.send(l, false, bytes.to_vec(), true);
                    }
                }
                self.drain(s);
            }
            Far::Fake(_) | Far::Pending | Far::Lost => {}
        }
        self.schedule(self.now + latency, Ev::Established(l));
    }

    /// Link `l`'s opener learns it is connected: an engine's peer call starts writing,
    /// a wallet sends its request.
    fn established(&mut self, l: usize) {
        if self.links[l].opener_closed {
            return;
        }
        self.links[l].established = true;
        match self.links[l].opener {
            Opener::Peer { server, id } => {
                let now = self.ts();
                self.servers[server].engine.handle_connected(id, now);
                self.drain(server);
            }
            Opener::Wallet { req } => {
                let bytes = self.reqs[req].built.bytes().to_vec();
                let link = &mut self.links[l];
                link.sent = bytes.clone();
                link.request_len = Some(bytes.len());
                self.send(l, true, bytes, false);
            }
        }
    }

    /// Link `l`'s opener learns its connect was refused.
    fn refused(&mut self, l: usize) {
        if self.links[l].opener_closed {
            return;
        }
        self.log(|| format!("link {l}: refused"));
        match self.links[l].opener {
            Opener::Peer { server, id } => {
                let now = self.ts();
                self.servers[server].engine.handle_connect_failed(id, now);
                self.drain(server);
            }
            Opener::Wallet { req } => {
                self.links[l].opener_closed = true;
                self.req_over(req, None);
            }
        }
    }

    fn arrive(&mut self, l: usize, to_server: bool, bytes: Vec<u8>, fin: bool) {
        let link = &mut self.links[l];
        if to_server {
            if link.server_closed {
                return;
            }
            link.c2s.extend(bytes);
            link.c2s_fin |= fin;
            match link.far {
                Far::Engine => {
                    if let Some(id) = link.conn {
                        let s = link.server;
                        self.work.push_back(Work::Service(s, id));
                    }
                }
                Far::Fake(fake) => self.fake_answer(l, fake),
                _ => {}
            }
        } else {
            if link.opener_closed {
                return;
            }
            link.s2c.extend(bytes);
            link.s2c_fin |= fin;
            match link.opener {
                Opener::Peer { server, id } => self.work.push_back(Work::ServicePeer(server, id)),
                Opener::Wallet { req } => {
                    if link.s2c_fin {
                        self.wallet_read(l, req);
                    }
                }
            }
        }
    }

    /// A dishonest peer answers the claim on link `l` once it is in.
    fn fake_answer(&mut self, l: usize, fake: Fake) {
        let link = &self.links[l];
        if link.server_shut || (link.c2s.len() < CLAIM_LEN && !link.c2s_fin) {
            return;
        }
        let s = link.server;
        let mut answer = vec![0u8; 32];
        answer[0] = s as u8;
        answer[2] = 250;
        answer[3] = 2;
        answer[5] = 1;
        let body: Vec<u8> = match fake {
            Fake::Lying { repeats } => {
                let mut b = Vec::new();
                for _ in 0..repeats {
                    for &c in &self.coins {
                        b.extend_from_slice(&coin_ref(c));
                    }
                }
                b.extend_from_slice(&[0x3E, 0x3E]);
                b
            }
            Fake::Garbage => {
                let mut b = Vec::new();
                for &c in &self.coins {
                    b.extend_from_slice(&coin_ref(c));
                }
                match self.rng.below(5) {
                    // Random bytes instead of an answer.
                    0 => {
                        let n = self.rng.range_usize(0, 80);
                        let mut g = vec![0u8; n];
                        self.rng.fill(&mut g);
                        answer.clear();
                        g
                    }
                    // A list without its trailer.
                    1 => {
                        b.extend_from_slice(&[0x3E, 0x00]);
                        b
                    }
                    // A list of a length no coin references fill.
                    2 => {
                        b.extend_from_slice(&[0x01, 0x3E, 0x3E]);
                        b
                    }
                    // A body cut short (the size announces more).
                    3 => {
                        let mut cut = b.clone();
                        cut.extend_from_slice(&[0x3E, 0x3E]);
                        let size = cut.len() + 5;
                        answer[9..12].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
                        answer.extend_from_slice(&cut);
                        Vec::new()
                    }
                    // A size past any bound.
                    _ => {
                        answer[9..12].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
                        b
                    }
                }
            }
        };
        if answer.len() == 32 && answer[9..12] == [0, 0, 0] {
            answer[9..12].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        }
        answer.extend_from_slice(&body);
        self.stats.fake_answers += 1;
        let link = &mut self.links[l];
        link.server_read += link.c2s.len();
        link.c2s.clear();
        link.answer.extend_from_slice(&answer);
        link.server_shut = true;
        link.server_closed = true;
        self.log(|| format!("link {l}: RAIDA {s} answers as {fake:?}"));
        self.send(l, false, answer, true);
    }

    /// The engine of RAIDA `s` services its accepted connection `id`.
    fn service(&mut self, s: usize, id: ConnId) {
        let Some(&l) = self.servers[s].conns.get(&id) else {
            return;
        };
        if self.links[l].server_closed {
            return;
        }
        let (was_shut, was_done) = (
            self.links[l].server_shut,
            self.links[l].request_done_at.is_some(),
        );
        let now = self.ts();
        let mut sends = Sends::default();
        {
            let mut io = Inbound {
                link: &mut self.links[l],
                rng: &mut self.rng,
                chunk_max: self.knobs.chunk_max,
                now: self.now,
                sends: &mut sends,
            };
            let _ = self.servers[s].engine.service(id, &mut io, now);
        }
        for (bytes, fin) in sends.out {
            self.send(l, false, bytes, fin);
        }
        let link = &self.links[l];
        if !was_done {
            if let (Some(done), Opener::Wallet { req }) = (link.request_done_at, link.opener) {
                if matches!(self.reqs[req].kind, ReqKind::Fix { .. }) {
                    let at = done + self.knobs.fix_bound_us() + 1;
                    self.schedule(at, Ev::FixDeadline(l));
                }
            }
        }
        if !was_shut && self.links[l].server_shut {
            self.answered(l);
        }
        self.drain(s);
    }

    /// The engine of RAIDA `s` services its peer call `id`.
    fn service_peer(&mut self, s: usize, id: PeerConnId) {
        let Some(&l) = self.servers[s].peers.get(&id) else {
            return;
        };
        if self.links[l].opener_closed {
            return;
        }
        let indexed = self.links[l].sent.len() >= CLAIM_LEN;
        let now = self.ts();
        let mut sends = Sends::default();
        {
            let mut io = Outbound {
                link: &mut self.links[l],
                rng: &mut self.rng,
                chunk_max: self.knobs.chunk_max,
                sends: &mut sends,
            };
            let _ = self.servers[s].engine.service_peer(id, &mut io, now);
        }
        for (bytes, fin) in sends.out {
            self.send(l, true, bytes, fin);
        }
        let sent = &self.links[l].sent;
        if !indexed && sent.len() >= CLAIM_LEN {
            let ticket = u32::from_be_bytes([sent[49], sent[50], sent[51], sent[52]]);
            let p = self.links[l].server;
            self.peer_index.entry((s, p, ticket)).or_default().push(l);
        }
        self.drain(s);
    }

    // ----- workers ----------------------------------------------------------------

    fn worker(&mut self, s: usize, jid: u64) {
        let Some(job) = self.servers[s].jobs.remove(&jid) else {
            return;
        };
        let mut random = [0u8; RANDOM_LEN];
        self.rng.fill(&mut random);
        let now = self.ts();
        let completion = job.run(now, &random, &mut self.scratch);
        self.servers[s].engine.handle_completion(completion, now);
        self.drain(s);
    }

    // ----- what the servers answer: the invariants --------------------------------

    /// The server end of link `l` shut its write side: its whole answer is out.
    fn answered(&mut self, l: usize) {
        let s = self.links[l].server;
        let Some((status, _)) = raw_answer(&self.links[l].answer) else {
            return self.violate(format!("link {l}: RAIDA {s} shut down before its answer"));
        };
        self.log(|| format!("link {l}: RAIDA {s} answered {status}"));
        match self.links[l].opener {
            Opener::Peer { .. } => self.claim_answered(l, status),
            Opener::Wallet { req } => match self.reqs[req].kind.clone() {
                ReqKind::Ticket(_) => self.ticket_issued(l),
                ReqKind::Fix { coins, pg } => self.check_fix(l, req, &coins, &pg),
                ReqKind::Find => {}
            },
        }
    }

    /// A get_ticket answer left RAIDA `s`: the ticket it carries is new.
    fn ticket_issued(&mut self, l: usize) {
        let s = self.links[l].server;
        let Some((status, out)) = raw_answer(&self.links[l].answer) else {
            return;
        };
        if (status == 241 || status == 243) && out.len() >= 4 {
            let t = &out[out.len() - 4..];
            let ticket = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            self.issued.insert((s, ticket), self.now);
            self.claimed.retain(|&(i, t, _)| (i, t) != (s, ticket));
        }
    }

    /// A claim answer left RAIDA `s`: a 250 must be the ticket's first for its
    /// claiming index, and the ticket must not have expired.
    fn claim_answered(&mut self, l: usize, status: u8) {
        let link = &self.links[l];
        let s = link.server;
        match status {
            250 => self.stats.claims[0] += 1,
            43 => self.stats.claims[1] += 1,
            44 => self.stats.claims[2] += 1,
            _ => {}
        }
        if status != 250 || link.sent.len() < CLAIM_LEN {
            return;
        }
        let claimer = link.sent[48];
        let ticket =
            u32::from_be_bytes([link.sent[49], link.sent[50], link.sent[51], link.sent[52]]);
        let accepted = link.accepted_at.unwrap_or(0);
        if !self.claimed.insert((s, ticket, claimer)) {
            return self.violate(format!(
                "RAIDA {s} answered 250 twice to claims of ticket {ticket:08x} for RAIDA \
                 {claimer}"
            ));
        }
        if let Some(&issued) = self.issued.get(&(s, ticket)) {
            let lifetime = self.knobs.ticket_lifetime_us;
            if accepted >= issued + lifetime {
                self.violate(format!(
                    "RAIDA {s} answered 250 to a claim of ticket {ticket:08x} accepted at \
                     t={accepted}, but the ticket was issued by t={issued} and lives \
                     {lifetime}us: an expired ticket voted"
                ));
            }
        }
    }

    /// A fix answer left RAIDA `k` on link `l`: every coin it calls fixed had more
    /// than 13 distinct RAIDAs vouching (itself included), and its new AN is durable.
    fn check_fix(&mut self, l: usize, req: usize, coins: &[usize], pg: &An) {
        let k = self.links[l].server;
        let Some((status, out)) = raw_answer(&self.links[l].answer) else {
            return;
        };
        let fixed: Vec<bool> = match status {
            241 => vec![true; coins.len()],
            243 => (0..coins.len())
                .map(|i| out.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                .collect(),
            _ => vec![false; coins.len()],
        };
        for (i, &c) in coins.iter().enumerate() {
            if let Some(j) = (0..i).find(|&j| coins[j] == c && fixed[j] != fixed[i]) {
                return self.violate(format!(
                    "RAIDA {k} gave a coin listed at positions {j} and {i} of a fix two \
                     verdicts"
                ));
            }
        }
        // The tickets the wallet gave, from the request bytes the server read.
        let sent = &self.links[l].sent;
        let payload = &sent[48..sent.len() - 2];
        let at = coins.len() * 5 + 16;
        let tickets: Vec<u32> = payload[at..]
            .chunks_exact(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let w = self.reqs[req].wallet;
        for (i, &c) in coins.iter().enumerate() {
            if !fixed[i] {
                continue;
            }
            let coin = self.wallets[w].coins[c];
            let vouchers = (0..POSITIONS)
                .filter(|&p| p != k && tickets.get(p).is_some_and(|&t| t != 0))
                .filter(|&p| {
                    self.peer_index
                        .get(&(k, p, tickets[p]))
                        .is_some_and(|links| {
                            links.iter().any(|&pl| {
                                let pl = &self.links[pl];
                                vouches(&pl.answer, pl.opener_read, coin)
                            })
                        })
                })
                .count();
            // Its own vote and one per distinct vouching peer.
            let votes = 1 + vouchers;
            if votes <= VOTES_ABOVE {
                return self.violate(format!(
                    "RAIDA {k} fixed coin {coin:?} with {votes} votes (itself and \
                     {vouchers} distinct vouching peers): a fix needs more than {VOTES_ABOVE}"
                ));
            }
            let want = new_an(k as u8, coin, pg);
            let durable = self.servers[k].store.durable(coin).map(|r| r.an);
            if durable != Some(want) {
                return self.violate(format!(
                    "RAIDA {k} answered coin {coin:?} fixed, but its durable record does \
                     not hold the new AN: the answer came before the write was durable"
                ));
            }
        }
    }

    // ----- wallets ----------------------------------------------------------------

    /// Wallet `w` sends a request of `kind` to RAIDA `s`.
    fn send_req(&mut self, w: usize, s: usize, kind: ReqKind, payload: Vec<u8>) {
        let command = match kind {
            ReqKind::Find => client_healing::FIND,
            ReqKind::Ticket(_) => client_healing::GET_TICKET,
            ReqKind::Fix { .. } => raida_commands::FIX,
        };
        let mut r = Request::new(s as u8, client_healing::GROUP, command, Keys::None);
        r.coin_id = COIN_ID;
        r.payload = payload;
        self.rng.fill(&mut r.challenge);
        self.rng.fill(&mut r.echo);
        let built = match r.build() {
            Ok(b) => b,
            Err(e) => return self.violate(format!("wallet {w}: request not built: {e}")),
        };
        let req = self.reqs.len();
        let link = self.open(Opener::Wallet { req }, s, wallet_ip(w));
        self.reqs.push(WalletReq {
            wallet: w,
            server: s,
            round: self.wallets[w].round,
            kind,
            built,
            link,
            over: false,
        });
        self.wallets[w].pending += 1;
        self.wallets[w].phase_reqs.push(req);
    }

    /// Wallet `w` begins a round: find on every RAIDA.
    fn round(&mut self, w: usize) {
        let n = self.servers.len();
        let wallet = &mut self.wallets[w];
        if wallet.done || wallet.gave_up {
            return;
        }
        // After the heal a wallet waits until every fix begun before it has ended (a
        // fix holds its `max_fixes` slot up to its peer deadline), then has its rounds.
        let settled = START_US + self.knobs.settled_after_heal_us();
        if self.healed && self.now < settled {
            self.schedule(settled, Ev::Round(w));
            return;
        }
        if self.healed {
            wallet.rounds_after_heal += 1;
            if wallet.rounds_after_heal > ROUNDS_AFTER_HEAL {
                wallet.gave_up = true;
                return;
            }
        }
        wallet.begin_round(n);
        wallet.phase = Phase::Find;
        wallet.pending = 0;
        wallet.phase_reqs.clear();
        let round = wallet.round;
        self.log(|| format!("wallet {w}: round {round}"));
        for s in 0..n {
            let payload = self.wallets[w].find_payload(s);
            self.send_req(w, s, ReqKind::Find, payload);
        }
        let at = self.now + self.knobs.phase_timeout_us();
        self.schedule(
            at,
            Ev::PhaseTimeout {
                wallet: w,
                round,
                phase: Phase::Find,
            },
        );
    }

    /// Link `l` of wallet request `req` ended (the server's end of stream arrived).
    fn wallet_read(&mut self, l: usize, req: usize) {
        let link = &mut self.links[l];
        let bytes: Vec<u8> = link.s2c.drain(..).collect();
        link.opener_read += bytes.len();
        let response = self.reqs[req].built.parse_response(&bytes).ok();
        self.opener_close(l);
        self.req_over(req, response);
    }

    /// Wallet request `req` is over, answered (`response`) or not.
    fn req_over(&mut self, req: usize, response: Option<Response>) {
        if std::mem::replace(&mut self.reqs[req].over, true) {
            return;
        }
        let (w, s) = (self.reqs[req].wallet, self.reqs[req].server);
        let what = match (&self.reqs[req].kind, &response) {
            (kind, Some(r)) => format!("{kind:?} on RAIDA {s}: {}", r.header.status.0),
            (kind, None) => format!("{kind:?} on RAIDA {s}: no answer"),
        };
        self.log(|| format!("wallet {w}: {what}"));
        if let Some(r) = &response {
            let status = r.header.status;
            let n = self.wallets[w].coins.len();
            match &self.reqs[req].kind {
                ReqKind::Find => {
                    if let Ok(Some(values)) = client_healing::find_values(status, &r.body, n) {
                        self.stats.finds += 1;
                        self.wallets[w].found(s, values);
                    }
                }
                ReqKind::Ticket(coins) => {
                    if let Ok(Some(answer)) =
                        client_healing::ticket_answer(status, &r.body, coins.len())
                    {
                        if let Some(t) = answer.ticket {
                            self.stats.tickets += 1;
                            self.wallets[w].tickets[s] = t;
                        }
                    }
                }
                ReqKind::Fix { coins, pg } => {
                    let fixed: Vec<bool> = match status.0 {
                        241 => vec![true; coins.len()],
                        243 => (0..coins.len())
                            .map(|i| r.body.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                            .collect(),
                        160 => {
                            self.stats.fixes_refused += 1;
                            Vec::new()
                        }
                        252 => {
                            self.stats.fixes_failed += 1;
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    if fixed.iter().any(|&f| f) {
                        self.stats.fixes_answered += 1;
                    }
                    let wallet = &mut self.wallets[w];
                    for (&c, _) in coins.iter().zip(&fixed).filter(|(_, &f)| f) {
                        let new = new_an(s as u8, wallet.coins[c], pg);
                        // A coin listed twice is healed once.
                        if wallet.an[c][s] != new {
                            self.stats.coins_healed += 1;
                        }
                        wallet.an[c][s] = new;
                        wallet.pan[c][s] = None;
                    }
                }
            }
        }
        let wallet = &mut self.wallets[w];
        if self.reqs[req].round != wallet.round {
            return;
        }
        wallet.pending = wallet.pending.saturating_sub(1);
        if wallet.pending == 0 {
            self.phase_end(w);
        }
    }

    /// Wallet `w`'s phase is over (every answer in, or its time out).
    fn phase_end(&mut self, w: usize) {
        let phase = self.wallets[w].phase;
        match phase {
            Phase::Find => {
                if self.wallets[w].all_good() {
                    self.wallets[w].done = true;
                    self.wallets[w].phase = Phase::Idle;
                    self.log(|| format!("wallet {w}: every coin good everywhere"));
                    return;
                }
                if self.wallets[w].fix_targets().is_empty() {
                    return self.next_round(w);
                }
                self.wallets[w].phase = Phase::Ticket;
                self.wallets[w].pending = 0;
                self.wallets[w].phase_reqs.clear();
                for (s, coins) in self.wallets[w].ticket_targets() {
                    let payload = self.wallets[w].ticket_payload(s, &coins);
                    self.send_req(w, s, ReqKind::Ticket(coins), payload);
                }
                let round = self.wallets[w].round;
                if self.wallets[w].pending == 0 {
                    return self.phase_end(w);
                }
                let at = self.now + self.knobs.phase_timeout_us();
                self.schedule(
                    at,
                    Ev::PhaseTimeout {
                        wallet: w,
                        round,
                        phase: Phase::Ticket,
                    },
                );
            }
            Phase::Ticket => {
                if !self.healed && self.rng.chance(self.knobs.slow_wallet_pm) {
                    let wait = self.rng.range(0, 2 * self.knobs.ticket_lifetime_us);
                    let round = self.wallets[w].round;
                    self.wallets[w].phase = Phase::Pause;
                    self.log(|| format!("wallet {w}: waits {wait}us before fixing"));
                    self.schedule(self.now + wait, Ev::FixStart { wallet: w, round });
                } else {
                    self.start_fixes(w);
                }
            }
            Phase::Fix => self.next_round(w),
            Phase::Pause | Phase::Idle => {}
        }
    }

    /// Wallet `w` sends a fix to every RAIDA where a coin is fracked.
    fn start_fixes(&mut self, w: usize) {
        self.wallets[w].phase = Phase::Fix;
        self.wallets[w].pending = 0;
        self.wallets[w].phase_reqs.clear();
        for (s, mut coins) in self.wallets[w].fix_targets() {
            // The protocol lets a fix list a coin twice (one verdict, one write).
            if self.rng.chance(self.knobs.repeat_coin_pm) {
                let again = coins[self.rng.below(coins.len() as u64) as usize];
                let at = self.rng.below(coins.len() as u64 + 1) as usize;
                coins.insert(at, again);
            }
            let mut pg = [0u8; 16];
            self.rng.fill(&mut pg);
            let payload = self.wallets[w].fix_payload(&coins, &pg);
            let wallet = &mut self.wallets[w];
            for &c in &coins {
                wallet.pan[c][s] = Some(new_an(s as u8, wallet.coins[c], &pg));
            }
            let copies = if !self.healed && self.rng.chance(self.knobs.duplicate_fix_pm) {
                self.stats.duplicate_fixes += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                self.stats.fixes_sent += 1;
                let kind = ReqKind::Fix {
                    coins: coins.clone(),
                    pg,
                };
                self.send_req(w, s, kind, payload.clone());
            }
        }
        if self.wallets[w].pending == 0 {
            return self.next_round(w);
        }
        let round = self.wallets[w].round;
        let at = self.now + self.knobs.fix_timeout_us();
        self.schedule(
            at,
            Ev::PhaseTimeout {
                wallet: w,
                round,
                phase: Phase::Fix,
            },
        );
    }

    fn next_round(&mut self, w: usize) {
        self.wallets[w].phase = Phase::Idle;
        let at = self.now + self.rng.range(20_000, 400_000);
        self.schedule(at, Ev::Round(w));
    }

    // ----- the end ----------------------------------------------------------------

    /// Every engine idle; with the liveness promise, every coin healed everywhere and
    /// every store agreeing with its wallet.
    fn final_checks(&mut self) {
        for s in 0..self.servers.len() {
            let e = &self.servers[s].engine;
            if !e.is_idle() || !self.servers[s].jobs.is_empty() {
                let what = format!(
                    "RAIDA {s} not idle at the end: {} connections, {} fixes, {} peer \
                     connections, {} jobs held",
                    e.connection_count(),
                    e.fixes_in_flight(),
                    e.peer_connections(),
                    self.servers[s].jobs.len()
                );
                return self.violate(what);
            }
        }
        for w in 0..self.wallets.len() {
            let wallet = &self.wallets[w];
            if wallet.done {
                self.stats.wallets_healed += 1;
            }
        }
        if !self.knobs.liveness() {
            return;
        }
        self.stats.liveness_checked += 1;
        for w in 0..self.wallets.len() {
            let wallet = &self.wallets[w];
            if !wallet.done {
                let what = format!(
                    "liveness: wallet {w} did not heal its coins in {} rounds after the \
                     heal (every coin fracked on at most {} of {} servers)",
                    ROUNDS_AFTER_HEAL, self.knobs.max_fracked, self.knobs.servers
                );
                return self.violate(what);
            }
            for (c, &coin) in wallet.coins.iter().enumerate() {
                for (s, server) in self.servers.iter().enumerate() {
                    let held = server.store.current(coin).map(|r| r.an);
                    if held != Some(wallet.an[c][s]) {
                        let what = format!(
                            "liveness: RAIDA {s} holds another AN for coin {coin:?} than \
                             its wallet knows"
                        );
                        return self.violate(what);
                    }
                }
            }
        }
    }

    /// The engines' and stores' counters into the stats.
    fn collect_counters(&mut self) {
        for s in &self.servers {
            for p in s.engine.counters().peers.values() {
                self.stats.peer_calls += p.calls;
                self.stats.peer_answered += p.answered;
                for f in PeerFailure::ALL {
                    let n = p.failures[f.index()];
                    match f {
                        PeerFailure::Refused => self.stats.peer_refused += n,
                        PeerFailure::Timeout => self.stats.peer_timeouts += n,
                        _ => self.stats.peer_other += n,
                    }
                }
            }
            self.stats.store_failures += s.store.counts().1;
        }
    }
}

/// Runs RAIDA seed `seed` to the end, without a trace.
pub fn run_raida_seed(seed: u64) -> Result<RaidaStats, Box<(RaidaKnobs, Violation)>> {
    let knobs = RaidaKnobs::from_seed(seed);
    let mut world = RaidaWorld::new(knobs.clone(), false);
    match world.run_all() {
        Ok(()) => Ok(world.stats),
        Err(v) => Err(Box::new((knobs, v))),
    }
}

/// The one command that replays RAIDA seed `seed` in this build.
pub fn raida_replay_command(seed: u64) -> String {
    crate::replay_command_of("raida-replay", seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_of_seeds_passes_and_heals() {
        let start = crate::seed_from_env();
        let mut totals = RaidaStats::default();
        for seed in start..start + 20 {
            match run_raida_seed(seed) {
                Ok(stats) => totals.add(&stats),
                Err(f) => panic!("seed {seed}: {:?}: {}", f.0, f.1.what),
            }
        }
        // The band must exercise what it claims to: fixes that heal, and peers that
        // fail in many ways.
        assert!(totals.coins_healed > 0, "{totals:?}");
        assert!(totals.liveness_checked > 0, "{totals:?}");
        assert!(totals.peer_timeouts > 0, "{totals:?}");
        assert!(totals.peer_other > 0, "{totals:?}");
        assert!(totals.epochs.iter().all(|&e| e > 0), "{totals:?}");
        assert!(totals.restarts > 0, "{totals:?}");
        assert!(totals.fake_answers > 0, "{totals:?}");
        assert!(totals.store_failures > 0, "{totals:?}");
    }

    #[test]
    fn a_seed_replays_to_the_same_trace() {
        let run = |seed| {
            let mut w = RaidaWorld::new(RaidaKnobs::from_seed(seed), true);
            let r = w.run_all();
            (r, w.trace_hash(), w.stats.clone())
        };
        assert_eq!(run(5), run(5));
    }

    #[test]
    fn vouching_follows_the_protocol_framing() {
        let coin = CoinId::new(1, 5000);
        let mut a = vec![0u8; 32];
        a[2] = 250;
        a[11] = 7;
        a.extend_from_slice(&coin_ref(coin));
        a.extend_from_slice(&[0x3E, 0x3E]);
        assert!(vouches(&a, a.len(), coin));
        // Not all read; another coin; another status; no trailer.
        assert!(!vouches(&a, a.len() - 1, coin));
        assert!(!vouches(&a, a.len(), CoinId::new(1, 5001)));
        let mut b = a.clone();
        b[2] = 43;
        assert!(!vouches(&b, b.len(), coin));
        let mut c = a.clone();
        c[38] = 0;
        assert!(!vouches(&c, c.len(), coin));
    }
}
