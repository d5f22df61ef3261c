//! The typed configuration (PROTOCOL.md section 10a) and its validation.
//!
//! [`Config`] holds the deployed server's `[server]` table (`raida_id`, `coin_id`,
//! `port`, `threads`, `udp_effective_payload`) and our own `[network]` table: every
//! limit of the network layer, defaulting to the values of DESIGN.md ("Defaults").
//! The structs are plain data with public fields; build one from `Default` and assign
//! what differs.
//!
//! **One gate.** [`Config::validate`] checks every bound, once, and is the only way to
//! a [`ValidConfig`], which is what the engine's configuration is made from
//! ([`EngineConfig::from_config`](crate::EngineConfig::from_config)): a value out of
//! range, an empty path, a malformed network in `trusted_networks` is a
//! [`ConfigError`] naming the table and the key, e.g.
//! `[server] raida_id: expected an integer 0..=24, found 30`, never a value silently
//! dropped. The accepted range of every integer field is a named constant of
//! [`bounds`], which a file reader or a command line reuses for its own messages
//! instead of repeating it.
//!
//! Core reads no files and knows no file format: drivers read `config.toml` (or flags)
//! into a [`Config`], call [`Config::validate`], and prefix its errors with where the
//! value came from (the file's path, the flag).
//!
//! [`Config`]: crate::config::Config
//! [`Config::validate`]: crate::config::Config::validate
//! [`ValidConfig`]: crate::config::ValidConfig
//! [`ConfigError`]: crate::config::ConfigError
//! [`bounds`]: crate::config::bounds

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Deref, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use crate::Cidr;

/// Number of RAIDA servers in a network (`TOTAL_RAIDA_SERVERS` of the deployed server);
/// a raida id is below it.
pub const RAIDA_COUNT: u8 = 25;

/// The largest UDP payload an IPv4 datagram can carry (65535 - 20 - 8).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Upper bound for every millisecond setting of `[network]`: one day. It keeps deadlines
/// computed from them far from overflow and catches values typed in the wrong unit.
pub const MAX_MILLIS: u64 = 86_400_000;

/// Upper bound for `threads` and `io_threads`.
pub const MAX_THREADS: usize = 1024;

/// Largest request body the wire can declare is 65535 (a 2-byte length field); the
/// default `max_body_size`, 65536, therefore admits every body, and larger values mean
/// nothing.
pub const MAX_BODY_SIZE_LIMIT: usize = 65_536;

/// Upper bound for `max_connections`: 1,048,576 (2^20), the kernel's default
/// `fs.nr_open`, which caps the descriptors a process may be allowed at all. Every
/// connection holds one descriptor, so a larger value could never be reached on a stock
/// kernel; it also keeps connection indices far inside the `u32` the engine names them
/// by.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

/// Upper bound for `mod_queue_size`: 65,536. Each event loop's completion channel is
/// allocated whole at start, one slot (a completion of about 100 bytes) per job, so
/// this is at most about 6.5 MB in all; without a bound, a value typed with a few
/// digits too many would abort the server at start on the allocation instead of being
/// refused with a message. More jobs in flight than that would not help either: they
/// wait for at most [`MAX_THREADS`] workers.
pub const MAX_MOD_QUEUE_SIZE: usize = 65_536;

/// Upper bound (and default) for `key_page_cache_pages`: 16,384 pages of 17 KiB
/// (`PAGE_BYTES`), about 285 MB, room for a whole store (15 denominations × 1,000 pages
/// = 15,000 pages, 261 MB). The store fills its cache lazily, so memory grows only with
/// the pages looked up; absent pages are remembered apart and never take room here.
pub const MAX_KEY_PAGE_CACHE_PAGES: usize = 16_384;

/// Bounds of `store_refresh_ms`: at least 10 ms (each pass looks at the metadata of
/// every cached page file), at most a minute (an outside change is served within about
/// one interval).
pub const STORE_REFRESH_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// The whole configuration: the deployed server's `[server]` table and our `[network]`
/// table.
///
/// Non-exhaustive (it grows): build one with `Default`, assign the fields that differ,
/// and [`validate`](Config::validate) it; no configuration file is needed:
///
/// ```
/// use raida_core::config::Config;
///
/// let mut c = Config::default();
/// c.server.raida_id = 7;
/// c.network.max_connections = 1000;
/// c.network.trusted_networks.push("10.0.0.0/8".into());
/// let valid = c.validate()?;
/// assert_eq!(valid.server.effective_port(), 50_007);
/// assert_eq!(valid.trusted_networks().len(), 3);
///
/// c.server.raida_id = 30;
/// let e = c.validate().expect_err("no such raida");
/// assert_eq!(e.to_string(), "[server] raida_id: expected an integer 0..=24, found 30");
/// # Ok::<(), raida_core::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Table `[server]`: the deployed server's keys.
    pub server: ServerConfig,
    /// Table `[network]`: the limits and settings of this network layer.
    pub network: NetworkConfig,
    /// Table `[healing]`: the bounds of the healing commands (PROTOCOL.md section 8b).
    pub healing: HealingConfig,
}

/// Table `[server]`, the deployed server's keys with their meaning unchanged.
///
/// Non-exhaustive (other keys may become ours): build one with `Default` and assign
/// fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Key `raida_id`: this server's place in the RAIDA, `0..RAIDA_COUNT` (0..=24).
    /// Requests must carry it (else 3 INVALID_RAIDA_ID) and responses start with it.
    /// Default 0 (the deployed server requires the key).
    pub raida_id: u8,
    /// Key `coin_id`: the coin id requests must carry (else 7 INVALID_COIN_ID),
    /// 0..=65535 (the wire's two bytes). Default 0 (the deployed server requires the
    /// key; its sample file has 6).
    pub coin_id: u16,
    /// Key `port`: the TCP and UDP port, 0..=65535. `None` (key absent) means 50000 +
    /// raida id, see [`ServerConfig::effective_port`]. 0 asks the OS for a free port
    /// (tests).
    pub port: Option<u16>,
    /// Key `threads`: command worker threads, 0..=[`MAX_THREADS`] (each is an OS thread
    /// with its own stack; more than that only adds switching); 0 (the default) means
    /// max(8, cores), see [`ServerConfig::effective_threads`].
    pub threads: usize,
    /// Key `udp_effective_payload` (also accepted as `udp_payload_threshold`): the UDP
    /// receive buffer; only this many bytes of a datagram are kept (PROTOCOL.md
    /// section 7). 32..=[`MAX_UDP_PAYLOAD`] (no datagram is larger), default 1024.
    pub udp_payload_threshold: usize,
    /// Key `raida_servers`: the RAIDA's servers as `"host:port"` strings, index i being
    /// RAIDA i (PROTOCOL.md section 10a), at most [`RAIDA_COUNT`] of them. The healing
    /// commands call their peers at these addresses and accept a ticket claim for
    /// RAIDA i only from an address its host resolved to. Empty (the key absent, the
    /// default) is not an error: every fix then answers 242 and every claim 18.
    /// Resolving the hosts is the driver's work, once at start: core resolves nothing.
    pub raida_servers: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            raida_id: 0,
            coin_id: 0,
            port: None,
            threads: 0,
            udp_payload_threshold: 1024,
            raida_servers: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The port to listen on: `port` if set, else 50000 + raida id.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(50_000 + u16::from(self.raida_id))
    }

    /// The number of worker threads given the machine's `cores`: `threads` if not 0,
    /// else max(8, cores).
    pub fn effective_threads(&self, cores: usize) -> usize {
        if self.threads == 0 {
            cores.max(8)
        } else {
            self.threads
        }
    }
}

/// Table `[network]`: every bound of the network layer, with DESIGN.md's defaults.
///
/// Durations are integers in the unit their name ends with; each `*_ms` value is at
/// most [`MAX_MILLIS`]. Every number has an upper bound any machine can honour
/// ([`bounds`]), so a typo is refused by [`Config::validate`] with a message instead of
/// failing (or allocating) at start. Non-exhaustive (it grows): build one with
/// `Default` and assign fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkConfig {
    /// Address the TCP and UDP sockets bind to. Default `0.0.0.0`.
    pub bind: IpAddr,
    /// Most TCP connections open at once; one more is refused with 160 REQUEST_RATE.
    /// 1..=[`MAX_CONNECTIONS_LIMIT`] (one descriptor each, see there), default 65535.
    pub max_connections: usize,
    /// Largest declared request body; larger ones get 16 INVALID_PACKET_LENGTH.
    /// 2..=[`MAX_BODY_SIZE_LIMIT`], default 65536.
    pub max_body_size: usize,
    /// A TCP connection without a complete request this long after accept is closed.
    /// 1..=[`MAX_MILLIS`], default 2000.
    pub socket_timeout_ms: u64,
    /// Capacity of the queue of commands handed to the worker threads.
    /// 1..=[`MAX_MOD_QUEUE_SIZE`] (allocated at start, see there), default 1024.
    pub mod_queue_size: usize,
    /// Longest wait for events (shorter when a deadline is nearer).
    /// 1..=[`MAX_MILLIS`], default 10000.
    pub epoll_timeout_ms: u64,
    /// Most events taken from one wait. 1..=1000000: the event buffer is allocated at
    /// start (an epoll event is 12 bytes, so at most 12 MB per loop), and a million ready sockets
    /// in one wait is already about every descriptor a process can hold
    /// ([`MAX_CONNECTIONS_LIMIT`]). Default 10000.
    pub events_per_wait: usize,
    /// TCP keep-alive idle time before the first probe. 1..=32767 (Linux's
    /// `TCP_KEEPIDLE` maximum), default 60.
    pub keepalive_idle_s: u64,
    /// TCP keep-alive interval between probes. 1..=32767 (Linux's `TCP_KEEPINTVL`
    /// maximum), default 10.
    pub keepalive_interval_s: u64,
    /// TCP keep-alive probes before the connection is dropped. 1..=127 (Linux's
    /// `TCP_KEEPCNT` maximum), default 5.
    pub keepalive_probes: u32,
    /// After a response is written and the write side shut down, how long the
    /// connection goes on reading and discarding client bytes before it closes, so
    /// unread input does not turn the close into a reset. 0 closes at once; at most
    /// [`MAX_MILLIS`]; default 500.
    pub linger_ms: u64,
    /// Graceful shutdown: how long in-flight requests may take to finish before the
    /// server exits anyway. 0 exits at once; at most [`MAX_MILLIS`]; default 5000.
    pub drain_timeout_ms: u64,
    /// Event-loop threads. 1..=[`MAX_THREADS`], and at most `max_connections` and
    /// `mod_queue_size`: each loop serves a [`share`] of both, and a loop whose share
    /// is 0 could never serve. Default 1.
    pub io_threads: usize,
    /// Before an event loop blocks for events, it polls without blocking for up to this
    /// many microseconds. Under load that keeps it awake between bursts, which saves
    /// the wake-up of a sleeping thread per burst (on the sending side too: that is
    /// what raised loopback throughput in bench/RESULTS.md); it costs up to this much
    /// CPU per idle gap (at 1,000 requests/s, at most 2% of a core). 0..=1000 (a
    /// millisecond of spinning is already far past any burst gap; 0: block at once),
    /// default 20.
    pub busy_poll_us: u64,
    /// Most connections an event loop accepts, and most datagrams it reads, in one
    /// turn before it serves everything else (open connections, completions, timers,
    /// signals) and comes back: without it a steady stream of new connections or
    /// datagrams would keep the loop accepting or reading for ever. 1..=1000000 (a
    /// count, nothing is allocated for it; beyond that the bound would no longer bound
    /// a turn in practice), default 256.
    pub turn_budget: usize,
    /// Key pages (PROTOCOL.md section 10) the key store keeps in memory at most.
    /// 1..=[`MAX_KEY_PAGE_CACHE_PAGES`], default [`MAX_KEY_PAGE_CACHE_PAGES`] (a whole
    /// store; see there).
    pub key_page_cache_pages: usize,
    /// How often the key store compares the metadata of its cached page files (and of
    /// the directories of absent pages) with what it last saw, and reads a changed page
    /// again: other modules rewrite pages while the server runs, and such a change is
    /// served within about this long. An unchanged page is never read again.
    /// [`STORE_REFRESH_MS`], default 1000.
    pub store_refresh_ms: u64,
    /// Directory holding `Data/`; not empty when set. `None` (the default) means the
    /// config file's directory, and a relative path is taken relative to it: the
    /// driver that read the file resolves it.
    pub data_root: Option<PathBuf>,
    /// Address of the metrics endpoint; `None` (the default) serves none.
    pub metrics_addr: Option<SocketAddr>,
    /// A `tracing` filter (e.g. `"info,raida_core=debug"`); `None` (the default) means
    /// `RUST_LOG`, else `info`.
    pub log: Option<String>,
    /// Request body bytes buffered at most over every connection: bodies grow as their
    /// bytes arrive, and when the budget is spent, body reads pause until room frees
    /// (the kernel's buffers and TCP flow control hold the rest); the last eighth is
    /// kept for bodies of at most 4 KiB, so small requests get through. 1 MiB..=64 GiB
    /// (more than a machine would give a front door), default 64 MiB.
    pub max_buffered_bytes: u64,
    /// Open connections one client (an IPv4 address, an IPv6 /64) holds at most; one
    /// more is answered 160 and closed. 0 = no limit; at most [`MAX_CONNECTIONS_LIMIT`];
    /// default 256 (a NAT'd office of wallets: dozens of wallets, each with a few
    /// requests in flight to one RAIDA).
    pub max_connections_per_ip: usize,
    /// Networks exempt from the per-client limits (CIDR, e.g. `"10.0.0.0/8"`; each must
    /// parse, else [`Config::validate`] names it). Default
    /// loopback (`127.0.0.0/8`, `::1/128`): local processes are the operator's own.
    pub trusted_networks: Vec<String>,
    /// Requests a second one client may make on average (TCP connections and UDP
    /// datagrams); over it they are answered 160, and over UDP the 160s themselves are
    /// capped (1,000 a second server-wide). 0 (the default) = no rate limit;
    /// at most 1,000,000.
    pub rate_limit_per_s: u32,
    /// The burst a client may make at once under `rate_limit_per_s`. 1..=1,000,000,
    /// default 100.
    pub rate_limit_burst: u32,
    /// Jobs of long-running commands one event loop runs at once, on threads of their
    /// own apart from the workers (see `Runs::Long`). 1..=1024, default 16.
    pub long_jobs: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_connections: 65_535,
            max_body_size: 65_536,
            socket_timeout_ms: 2_000,
            mod_queue_size: 1_024,
            epoll_timeout_ms: 10_000,
            events_per_wait: 10_000,
            keepalive_idle_s: 60,
            keepalive_interval_s: 10,
            keepalive_probes: 5,
            linger_ms: 500,
            drain_timeout_ms: 5_000,
            io_threads: 1,
            busy_poll_us: 20,
            turn_budget: 256,
            key_page_cache_pages: MAX_KEY_PAGE_CACHE_PAGES,
            store_refresh_ms: 1_000,
            data_root: None,
            metrics_addr: None,
            log: None,
            max_buffered_bytes: 64 << 20,
            max_connections_per_ip: 256,
            trusted_networks: vec!["127.0.0.0/8".to_string(), "::1/128".to_string()],
            rate_limit_per_s: 0,
            rate_limit_burst: 100,
            long_jobs: 16,
        }
    }
}

impl NetworkConfig {
    /// `socket_timeout_ms` as a duration.
    pub fn socket_timeout(&self) -> Duration {
        Duration::from_millis(self.socket_timeout_ms)
    }

    /// `epoll_timeout_ms` as a duration.
    pub fn epoll_timeout(&self) -> Duration {
        Duration::from_millis(self.epoll_timeout_ms)
    }

    /// `keepalive_idle_s` as a duration.
    pub fn keepalive_idle(&self) -> Duration {
        Duration::from_secs(self.keepalive_idle_s)
    }

    /// `keepalive_interval_s` as a duration.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(self.keepalive_interval_s)
    }

    /// `linger_ms` as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// `drain_timeout_ms` as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// `store_refresh_ms` as a duration.
    pub fn store_refresh(&self) -> Duration {
        Duration::from_millis(self.store_refresh_ms)
    }
}

/// Table `[healing]`: the bounds of the healing commands (PROTOCOL.md section 8b), each
/// with its default from there.
///
/// Non-exhaustive (it grows): build one with `Default` and assign fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealingConfig {
    /// Seconds a ticket lives after it was issued (claims neither extend nor end it);
    /// an expired ticket answers 43. [`bounds::TICKET_LIFETIME_S`], default 300.
    pub ticket_lifetime_s: u64,
    /// Live tickets at most; a get_ticket that needs one more answers 42.
    /// [`bounds::MAX_TICKETS`], default 65,536.
    pub max_tickets: usize,
    /// Coins held by all live tickets together at most (21 bytes each with its AN); a
    /// get_ticket whose coins would not fit answers 42. [`bounds::MAX_TICKET_COINS`],
    /// default 1,048,576 (about 22 MB).
    pub max_ticket_coins: usize,
    /// Milliseconds after a fix began (its request arrived whole) by which every one of
    /// its peer calls ends, connect included: one overall deadline, which the time the
    /// fix waited before its calls started counts against. [`bounds::PEER_TIMEOUT_MS`],
    /// default 8,000.
    pub peer_timeout_ms: u64,
    /// Fixes in flight at most; one more answers 160. [`bounds::MAX_FIXES`], default 64.
    pub max_fixes: usize,
    /// IP addresses (besides those of `raida_servers`) a ticket claim may come from:
    /// for a peer whose outgoing address differs from its listed one. Default empty.
    pub claim_from: Vec<String>,
}

impl Default for HealingConfig {
    fn default() -> Self {
        HealingConfig {
            ticket_lifetime_s: 300,
            max_tickets: 65_536,
            max_ticket_coins: 1 << 20,
            peer_timeout_ms: 8_000,
            max_fixes: 64,
            claim_from: Vec::new(),
        }
    }
}

impl HealingConfig {
    /// `ticket_lifetime_s` as a duration.
    pub fn ticket_lifetime(&self) -> Duration {
        Duration::from_secs(self.ticket_lifetime_s)
    }

    /// `peer_timeout_ms` as a duration.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }
}

/// Part `index` of `total` split into `parts` shares: the shares differ by at most 1
/// (the first `total % parts` get one more) and add up to exactly `total`.
///
/// With `io_threads` = N each event loop gets `share(total, N, loop index)` of
/// `max_connections` and `mod_queue_size`, so the loops together never exceed the
/// configured totals (descriptors, memory), which rounding every share up would.
/// `parts == 0` is taken as 1; an `index` at or past `parts` names no part and gets 0.
pub fn share(total: usize, parts: usize, index: usize) -> usize {
    let parts = parts.max(1);
    if index >= parts {
        return 0;
    }
    total / parts + usize::from(index < total % parts)
}

/// The accepted values of every integer field, each named after its key: what
/// [`Config::validate`] checks, and what a file reader or a command line names in its
/// own messages (a value that does not even fit the field's type) and help texts.
pub mod bounds {
    use std::ops::RangeInclusive;

    use super::{
        MAX_BODY_SIZE_LIMIT, MAX_CONNECTIONS_LIMIT, MAX_KEY_PAGE_CACHE_PAGES, MAX_MILLIS,
        MAX_MOD_QUEUE_SIZE, MAX_THREADS, MAX_UDP_PAYLOAD, RAIDA_COUNT, STORE_REFRESH_MS,
    };

    /// `[server] raida_id`: below [`RAIDA_COUNT`].
    pub const RAIDA_ID: RangeInclusive<u64> = 0..=(RAIDA_COUNT as u64 - 1);
    /// `[server] coin_id`: the wire's two bytes.
    pub const COIN_ID: RangeInclusive<u64> = 0..=(u16::MAX as u64);
    /// `[server] port`: a port; 0 asks the OS for a free one.
    pub const PORT: RangeInclusive<u64> = 0..=(u16::MAX as u64);
    /// `[server] threads`: 0 (max(8, cores)) up to [`MAX_THREADS`].
    pub const THREADS: RangeInclusive<u64> = 0..=(MAX_THREADS as u64);
    /// `[server] udp_effective_payload`: up to [`MAX_UDP_PAYLOAD`].
    pub const UDP_EFFECTIVE_PAYLOAD: RangeInclusive<u64> = 32..=(MAX_UDP_PAYLOAD as u64);
    /// `[network] max_connections`: up to [`MAX_CONNECTIONS_LIMIT`].
    pub const MAX_CONNECTIONS: RangeInclusive<u64> = 1..=(MAX_CONNECTIONS_LIMIT as u64);
    /// `[network] max_body_size`: up to [`MAX_BODY_SIZE_LIMIT`].
    pub const MAX_BODY_SIZE: RangeInclusive<u64> = 2..=(MAX_BODY_SIZE_LIMIT as u64);
    /// `[network] socket_timeout_ms`: up to [`MAX_MILLIS`].
    pub const SOCKET_TIMEOUT_MS: RangeInclusive<u64> = 1..=MAX_MILLIS;
    /// `[network] mod_queue_size`: up to [`MAX_MOD_QUEUE_SIZE`].
    pub const MOD_QUEUE_SIZE: RangeInclusive<u64> = 1..=(MAX_MOD_QUEUE_SIZE as u64);
    /// `[network] epoll_timeout_ms`: up to [`MAX_MILLIS`].
    pub const EPOLL_TIMEOUT_MS: RangeInclusive<u64> = 1..=MAX_MILLIS;
    /// `[network] events_per_wait`: the buffer is allocated at start (12 bytes an
    /// event).
    pub const EVENTS_PER_WAIT: RangeInclusive<u64> = 1..=1_000_000;
    /// `[network] keepalive_idle_s`: Linux's `TCP_KEEPIDLE` maximum.
    pub const KEEPALIVE_IDLE_S: RangeInclusive<u64> = 1..=32_767;
    /// `[network] keepalive_interval_s`: Linux's `TCP_KEEPINTVL` maximum.
    pub const KEEPALIVE_INTERVAL_S: RangeInclusive<u64> = 1..=32_767;
    /// `[network] keepalive_probes`: Linux's `TCP_KEEPCNT` maximum.
    pub const KEEPALIVE_PROBES: RangeInclusive<u64> = 1..=127;
    /// `[network] linger_ms`: 0 closes at once.
    pub const LINGER_MS: RangeInclusive<u64> = 0..=MAX_MILLIS;
    /// `[network] drain_timeout_ms`: 0 exits at once.
    pub const DRAIN_TIMEOUT_MS: RangeInclusive<u64> = 0..=MAX_MILLIS;
    /// `[network] io_threads`: up to [`MAX_THREADS`] (and at most `max_connections`
    /// and `mod_queue_size`, checked apart).
    pub const IO_THREADS: RangeInclusive<u64> = 1..=(MAX_THREADS as u64);
    /// `[network] busy_poll_us`: a millisecond of spinning is past any burst gap.
    pub const BUSY_POLL_US: RangeInclusive<u64> = 0..=1_000;
    /// `[network] turn_budget`.
    pub const TURN_BUDGET: RangeInclusive<u64> = 1..=1_000_000;
    /// `[network] key_page_cache_pages`: up to [`MAX_KEY_PAGE_CACHE_PAGES`].
    pub const KEY_PAGE_CACHE_PAGES: RangeInclusive<u64> = 1..=(MAX_KEY_PAGE_CACHE_PAGES as u64);
    /// `[network] store_refresh_ms`: [`STORE_REFRESH_MS`].
    pub const STORE_REFRESH: RangeInclusive<u64> = STORE_REFRESH_MS;
    /// `[network] max_buffered_bytes`: 1 MiB to 64 GiB.
    pub const MAX_BUFFERED_BYTES: RangeInclusive<u64> = (1 << 20)..=(64 << 30);
    /// `[network] max_connections_per_ip`: 0 (no limit) up to
    /// [`MAX_CONNECTIONS_LIMIT`].
    pub const MAX_CONNECTIONS_PER_IP: RangeInclusive<u64> = 0..=(MAX_CONNECTIONS_LIMIT as u64);
    /// `[network] rate_limit_per_s`: 0 (no rate limit) up to a million.
    pub const RATE_LIMIT_PER_S: RangeInclusive<u64> = 0..=1_000_000;
    /// `[network] rate_limit_burst`.
    pub const RATE_LIMIT_BURST: RangeInclusive<u64> = 1..=1_000_000;
    /// `[network] long_jobs`.
    pub const LONG_JOBS: RangeInclusive<u64> = 1..=1024;
    /// `[healing] ticket_lifetime_s`: a second to a day.
    pub const TICKET_LIFETIME_S: RangeInclusive<u64> = 1..=86_400;
    /// `[healing] max_tickets`: up to 2^24 (the table's index grows with its use).
    pub const MAX_TICKETS: RangeInclusive<u64> = 1..=(1 << 24);
    /// `[healing] max_ticket_coins`: up to 2^24 coins (21 bytes each: about 350 MB).
    pub const MAX_TICKET_COINS: RangeInclusive<u64> = 1..=(1 << 24);
    /// `[healing] peer_timeout_ms`: up to a minute (the only public client waits 20 s
    /// for a fix).
    pub const PEER_TIMEOUT_MS: RangeInclusive<u64> = 1..=60_000;
    /// `[healing] max_fixes`: each fix in flight may hold 24 peer connections.
    pub const MAX_FIXES: RangeInclusive<u64> = 1..=4_096;
}

/// What one `[server] raida_servers` item is, as messages say it.
pub const RAIDA_SERVER_EXPECTED: &str =
    "a \"host:port\" string such as \"raida0.cloudcoin.global:50000\"";

/// What `[server] raida_servers` is as a whole, as messages say it.
pub const RAIDA_SERVERS_EXPECTED: &str = "at most 25 \"host:port\" strings";

/// What one `[healing] claim_from` item is, as messages say it.
pub const CLAIM_FROM_EXPECTED: &str = "an IP address such as \"10.0.0.5\"";

/// The host and port of a `raida_servers` item (`"host:port"`, `"[v6]:port"`), if it
/// has that form: a non-empty host, a port 0..=65535.
pub fn split_host_port(item: &str) -> Option<(&str, u16)> {
    let (host, port) = item.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

/// What a CIDR network is, as messages say it.
pub const CIDR_EXPECTED: &str = "a CIDR network such as \"10.0.0.0/8\"";

/// What `[network] log` is, as messages say it.
pub const LOG_EXPECTED: &str = "a non-empty tracing filter such as \"info\"";

/// What `[network] data_root` is, as messages say it.
pub const PATH_EXPECTED: &str = "a non-empty path";

/// Why `io_threads` may not exceed `max_connections`, `mod_queue_size` nor `max_fixes`.
const SHARE_REASON: &str =
    "each event loop gets a share of it, and a loop whose share is 0 could never serve";

/// Why a configuration was rejected: the table and the key, and what is wrong. A
/// driver prefixes where the value came from (`config.toml: `, `--port: `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key's value is outside what it accepts.
    #[error("[{table}] {key}: expected {expected}, found {found}")]
    InvalidValue {
        /// The table holding the key (`server` or `network`).
        table: &'static str,
        /// The key, as the file writes it.
        key: &'static str,
        /// What the key accepts, e.g. `an integer 0..=24`.
        expected: String,
        /// The value found, e.g. `30`, `""`, `"10.0.0.0/33" (item 2)`.
        found: String,
    },
    /// A key's value is more than another key's value allows.
    #[error("[{table}] {key} = {value} is more than {limit} = {limit_value}: {reason}")]
    Exceeds {
        /// The table holding both keys.
        table: &'static str,
        /// The bounded key.
        key: &'static str,
        /// Its value.
        value: u64,
        /// The key that bounds it.
        limit: &'static str,
        /// Its value.
        limit_value: u64,
        /// Why the one bounds the other.
        reason: &'static str,
    },
}

impl ConfigError {
    /// The table holding the key the error is about.
    pub fn table(&self) -> &'static str {
        match self {
            ConfigError::InvalidValue { table, .. } | ConfigError::Exceeds { table, .. } => table,
        }
    }

    /// The key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::InvalidValue { key, .. } | ConfigError::Exceeds { key, .. } => key,
        }
    }
}

/// `an integer 0..=24`: what an integer field accepts, as messages say it.
pub fn int_expected(range: &RangeInclusive<u64>) -> String {
    format!("an integer {}..={}", range.start(), range.end())
}

/// Checks one integer field against its range.
fn int<T>(
    table: &'static str,
    key: &'static str,
    value: T,
    range: RangeInclusive<u64>,
) -> Result<u64, ConfigError>
where
    T: TryInto<u64> + Copy + std::fmt::Display,
{
    match value.try_into() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError::InvalidValue {
            table,
            key,
            expected: int_expected(&range),
            found: value.to_string(),
        }),
    }
}

/// Checks that `key`'s value is at most `limit`'s.
fn at_most(
    key: (&'static str, u64),
    limit: (&'static str, u64),
    reason: &'static str,
) -> Result<(), ConfigError> {
    if key.1 > limit.1 {
        return Err(ConfigError::Exceeds {
            table: NETWORK,
            key: key.0,
            value: key.1,
            limit: limit.0,
            limit_value: limit.1,
            reason,
        });
    }
    Ok(())
}

/// A string as messages show it: quoted, escaped.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

const SERVER: &str = "server";
const NETWORK: &str = "network";
const HEALING: &str = "healing";

impl Config {
    /// Checks every field against its bound ([`bounds`]), the bounds between fields
    /// (`io_threads` at most `max_connections` and `mod_queue_size`: each event loop
    /// serves a [`share`] of both), that `data_root` and `log` are not empty when set,
    /// and that every `trusted_networks` entry is a CIDR network. The first problem
    /// found is the error, naming its table and key.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        use bounds as b;
        let s = &self.server;
        let n = &self.network;
        int(SERVER, "raida_id", s.raida_id, b::RAIDA_ID)?;
        int(SERVER, "coin_id", s.coin_id, b::COIN_ID)?;
        if let Some(port) = s.port {
            int(SERVER, "port", port, b::PORT)?;
        }
        int(SERVER, "threads", s.threads, b::THREADS)?;
        int(
            SERVER,
            "udp_effective_payload",
            s.udp_payload_threshold,
            b::UDP_EFFECTIVE_PAYLOAD,
        )?;
        if s.raida_servers.len() > usize::from(RAIDA_COUNT) {
            return Err(ConfigError::InvalidValue {
                table: SERVER,
                key: "raida_servers",
                expected: RAIDA_SERVERS_EXPECTED.into(),
                found: format!("{} items", s.raida_servers.len()),
            });
        }
        for (i, item) in s.raida_servers.iter().enumerate() {
            if split_host_port(item).is_none() {
                return Err(ConfigError::InvalidValue {
                    table: SERVER,
                    key: "raida_servers",
                    expected: RAIDA_SERVER_EXPECTED.into(),
                    found: format!("{} (item {})", quoted(item), i + 1),
                });
            }
        }
        let max_connections = int(
            NETWORK,
            "max_connections",
            n.max_connections,
            b::MAX_CONNECTIONS,
        )?;
        int(NETWORK, "max_body_size", n.max_body_size, b::MAX_BODY_SIZE)?;
        int(
            NETWORK,
            "socket_timeout_ms",
            n.socket_timeout_ms,
            b::SOCKET_TIMEOUT_MS,
        )?;
        let mod_queue_size = int(
            NETWORK,
            "mod_queue_size",
            n.mod_queue_size,
            b::MOD_QUEUE_SIZE,
        )?;
        int(
            NETWORK,
            "epoll_timeout_ms",
            n.epoll_timeout_ms,
            b::EPOLL_TIMEOUT_MS,
        )?;
        int(
            NETWORK,
            "events_per_wait",
            n.events_per_wait,
            b::EVENTS_PER_WAIT,
        )?;
        int(
            NETWORK,
            "keepalive_idle_s",
            n.keepalive_idle_s,
            b::KEEPALIVE_IDLE_S,
        )?;
        int(
            NETWORK,
            "keepalive_interval_s",
            n.keepalive_interval_s,
            b::KEEPALIVE_INTERVAL_S,
        )?;
        int(
            NETWORK,
            "keepalive_probes",
            n.keepalive_probes,
            b::KEEPALIVE_PROBES,
        )?;
        int(NETWORK, "linger_ms", n.linger_ms, b::LINGER_MS)?;
        int(
            NETWORK,
            "drain_timeout_ms",
            n.drain_timeout_ms,
            b::DRAIN_TIMEOUT_MS,
        )?;
        let io_threads = int(NETWORK, "io_threads", n.io_threads, b::IO_THREADS)?;
        int(NETWORK, "busy_poll_us", n.busy_poll_us, b::BUSY_POLL_US)?;
        int(NETWORK, "turn_budget", n.turn_budget, b::TURN_BUDGET)?;
        int(
            NETWORK,
            "key_page_cache_pages",
            n.key_page_cache_pages,
            b::KEY_PAGE_CACHE_PAGES,
        )?;
        int(
            NETWORK,
            "store_refresh_ms",
            n.store_refresh_ms,
            b::STORE_REFRESH,
        )?;
        if let Some(root) = &n.data_root {
            if root.as_os_str().is_empty() {
                return Err(ConfigError::InvalidValue {
                    table: NETWORK,
                    key: "data_root",
                    expected: PATH_EXPECTED.into(),
                    found: quoted(""),
                });
            }
        }
        int(
            NETWORK,
            "max_buffered_bytes",
            n.max_buffered_bytes,
            b::MAX_BUFFERED_BYTES,
        )?;
        int(
            NETWORK,
            "max_connections_per_ip",
            n.max_connections_per_ip,
            b::MAX_CONNECTIONS_PER_IP,
        )?;
        let trusted = n
            .trusted_networks
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Cidr::parse(text).ok_or_else(|| ConfigError::InvalidValue {
                    table: NETWORK,
                    key: "trusted_networks",
                    expected: CIDR_EXPECTED.into(),
                    found: format!("{} (item {})", quoted(text), i + 1),
                })
            })
            .collect::<Result<Vec<Cidr>, ConfigError>>()?;
        int(
            NETWORK,
            "rate_limit_per_s",
            n.rate_limit_per_s,
            b::RATE_LIMIT_PER_S,
        )?;
        int(
            NETWORK,
            "rate_limit_burst",
            n.rate_limit_burst,
            b::RATE_LIMIT_BURST,
        )?;
        int(NETWORK, "long_jobs", n.long_jobs, b::LONG_JOBS)?;
        if let Some(log) = &n.log {
            if log.is_empty() {
                return Err(ConfigError::InvalidValue {
                    table: NETWORK,
                    key: "log",
                    expected: LOG_EXPECTED.into(),
                    found: quoted(log),
                });
            }
        }
        let h = &self.healing;
        int(
            HEALING,
            "ticket_lifetime_s",
            h.ticket_lifetime_s,
            b::TICKET_LIFETIME_S,
        )?;
        int(HEALING, "max_tickets", h.max_tickets, b::MAX_TICKETS)?;
        int(
            HEALING,
            "max_ticket_coins",
            h.max_ticket_coins,
            b::MAX_TICKET_COINS,
        )?;
        int(
            HEALING,
            "peer_timeout_ms",
            h.peer_timeout_ms,
            b::PEER_TIMEOUT_MS,
        )?;
        let max_fixes = int(HEALING, "max_fixes", h.max_fixes, b::MAX_FIXES)?;
        let claim_from = h
            .claim_from
            .iter()
            .enumerate()
            .map(|(i, text)| {
                text.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| ConfigError::InvalidValue {
                        table: HEALING,
                        key: "claim_from",
                        expected: CLAIM_FROM_EXPECTED.into(),
                        found: format!("{} (item {})", quoted(text), i + 1),
                    })
            })
            .collect::<Result<Vec<IpAddr>, ConfigError>>()?;
        at_most(
            ("io_threads", io_threads),
            ("max_connections", max_connections),
            SHARE_REASON,
        )?;
        at_most(
            ("io_threads", io_threads),
            ("mod_queue_size", mod_queue_size),
            SHARE_REASON,
        )?;
        at_most(
            ("io_threads", io_threads),
            ("max_fixes", max_fixes),
            SHARE_REASON,
        )?;
        Ok(ValidConfig {
            config: self.clone(),
            trusted,
            claim_from,
        })
    }
}

/// A [`Config`] that passed [`Config::validate`]: every field within its bound, and
/// `trusted_networks` parsed. Read it as a `Config` (it derefs to one); the only way
/// to make one is validation, so whatever takes a `ValidConfig` (the engine's
/// configuration, a server) never sees an unchecked value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidConfig {
    config: Config,
    trusted: Vec<Cidr>,
    claim_from: Vec<IpAddr>,
}

impl ValidConfig {
    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `network.trusted_networks`, parsed, in their order.
    pub fn trusted_networks(&self) -> &[Cidr] {
        &self.trusted
    }

    /// `healing.claim_from`, parsed, in their order.
    pub fn claim_from(&self) -> &[IpAddr] {
        &self.claim_from
    }

    /// The configuration itself, e.g. to change it and validate it again.
    pub fn into_config(self) -> Config {
        self.config
    }
}

impl Deref for ValidConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(c: &Config) -> ConfigError {
        match c.validate() {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(e) => e,
        }
    }

    /// One integer field: its key, how to set it (`false` when the value does not fit
    /// its type, which then enforces that side of the bound itself), and its range.
    struct IntField {
        key: &'static str,
        set: fn(&mut Config, u64) -> bool,
        range: RangeInclusive<u64>,
    }

    macro_rules! int_field {
        ($key:literal, $section:ident . $field:ident, $range:expr) => {
            IntField {
                key: $key,
                set: |c, v| match v.try_into() {
                    Ok(v) => {
                        c.$section.$field = v;
                        true
                    }
                    Err(_) => false,
                },
                range: $range,
            }
        };
    }

    /// Every integer field of both tables.
    fn int_fields() -> Vec<IntField> {
        use bounds as b;
        vec![
            int_field!("raida_id", server.raida_id, b::RAIDA_ID),
            int_field!("coin_id", server.coin_id, b::COIN_ID),
            IntField {
                key: "port",
                set: |c, v| match v.try_into() {
                    Ok(v) => {
                        c.server.port = Some(v);
                        true
                    }
                    Err(_) => false,
                },
                range: b::PORT,
            },
            int_field!("threads", server.threads, b::THREADS),
            int_field!(
                "udp_effective_payload",
                server.udp_payload_threshold,
                b::UDP_EFFECTIVE_PAYLOAD
            ),
            int_field!(
                "max_connections",
                network.max_connections,
                b::MAX_CONNECTIONS
            ),
            int_field!("max_body_size", network.max_body_size, b::MAX_BODY_SIZE),
            int_field!(
                "socket_timeout_ms",
                network.socket_timeout_ms,
                b::SOCKET_TIMEOUT_MS
            ),
            int_field!("mod_queue_size", network.mod_queue_size, b::MOD_QUEUE_SIZE),
            int_field!(
                "epoll_timeout_ms",
                network.epoll_timeout_ms,
                b::EPOLL_TIMEOUT_MS
            ),
            int_field!(
                "events_per_wait",
                network.events_per_wait,
                b::EVENTS_PER_WAIT
            ),
            int_field!(
                "keepalive_idle_s",
                network.keepalive_idle_s,
                b::KEEPALIVE_IDLE_S
            ),
            int_field!(
                "keepalive_interval_s",
                network.keepalive_interval_s,
                b::KEEPALIVE_INTERVAL_S
            ),
            int_field!(
                "keepalive_probes",
                network.keepalive_probes,
                b::KEEPALIVE_PROBES
            ),
            int_field!("linger_ms", network.linger_ms, b::LINGER_MS),
            int_field!(
                "drain_timeout_ms",
                network.drain_timeout_ms,
                b::DRAIN_TIMEOUT_MS
            ),
            int_field!("io_threads", network.io_threads, b::IO_THREADS),
            int_field!("busy_poll_us", network.busy_poll_us, b::BUSY_POLL_US),
            int_field!("turn_budget", network.turn_budget, b::TURN_BUDGET),
            int_field!(
                "key_page_cache_pages",
                network.key_page_cache_pages,
                b::KEY_PAGE_CACHE_PAGES
            ),
            int_field!(
                "store_refresh_ms",
                network.store_refresh_ms,
                b::STORE_REFRESH
            ),
            int_field!(
                "max_buffered_bytes",
                network.max_buffered_bytes,
                b::MAX_BUFFERED_BYTES
            ),
            int_field!(
                "max_connections_per_ip",
                network.max_connections_per_ip,
                b::MAX_CONNECTIONS_PER_IP
            ),
            int_field!(
                "rate_limit_per_s",
                network.rate_limit_per_s,
                b::RATE_LIMIT_PER_S
            ),
            int_field!(
                "rate_limit_burst",
                network.rate_limit_burst,
                b::RATE_LIMIT_BURST
            ),
            int_field!("long_jobs", network.long_jobs, b::LONG_JOBS),
        ]
    }

    #[test]
    fn the_defaults_are_valid() {
        let valid = Config::default()
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(valid.config(), &Config::default());
        assert_eq!(
            valid.trusted_networks(),
            [Cidr::parse("127.0.0.0/8"), Cidr::parse("::1/128")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        );
        assert_eq!(valid.into_config(), Config::default());
    }

    #[test]
    fn every_bound_accepts_its_edges_and_rejects_just_past_them() {
        for f in int_fields() {
            let (min, max) = (*f.range.start(), *f.range.end());
            assert!(max <= 1 << 40, "{} has no real upper bound", f.key);
            // `io_threads` at its top needs as many connections, jobs and fixes.
            let mut base = Config::default();
            base.network.mod_queue_size = MAX_MOD_QUEUE_SIZE;
            base.healing.max_fixes = *bounds::MAX_FIXES.end() as usize;
            let mut accepted = Vec::new();
            for edge in [min, max] {
                let mut c = base.clone();
                assert!((f.set)(&mut c, edge), "{} = {edge} fits its type", f.key);
                if let Err(e) = c.validate() {
                    panic!("{} = {edge} rejected: {e}", f.key);
                }
                accepted.push(edge);
            }
            let past = [min.checked_sub(1), max.checked_add(1)];
            let mut rejected = 0;
            for value in past.into_iter().flatten() {
                let mut c = base.clone();
                if !(f.set)(&mut c, value) {
                    continue; // the field's type cannot hold it at all
                }
                let e = error(&c);
                assert_eq!(e.key(), f.key, "{e}");
                assert_eq!(
                    e.to_string(),
                    format!(
                        "[{}] {}: expected an integer {min}..={max}, found {value}",
                        e.table(),
                        f.key
                    )
                );
                rejected += 1;
            }
            // Every field is bounded by validation on at least one side (the others
            // by their type: a `u16` port, a `u8` raida id below).
            assert!(
                rejected > 0 || f.key == "coin_id" || f.key == "port",
                "{}: nothing past its range could be tried",
                f.key
            );
        }
    }

    #[test]
    fn the_message_names_the_table_and_the_key() {
        let mut c = Config::default();
        c.server.raida_id = 30;
        assert_eq!(
            error(&c).to_string(),
            "[server] raida_id: expected an integer 0..=24, found 30"
        );
        let mut c = Config::default();
        c.network.max_connections = 0;
        assert_eq!(
            error(&c).to_string(),
            "[network] max_connections: expected an integer 1..=1048576, found 0"
        );
    }

    #[test]
    fn a_bad_trusted_network_is_an_error_naming_the_field_and_the_item() {
        for bad in ["10.0.0.0/33", "::1/129", "localhost", "", "10.0.0.0/8/8"] {
            let mut c = Config::default();
            c.network.trusted_networks = vec!["10.0.0.0/8".into(), bad.into()];
            let e = error(&c);
            assert_eq!(e.key(), "trusted_networks");
            assert_eq!(
                e.to_string(),
                format!(
                    "[network] trusted_networks: expected a CIDR network such as \
                     \"10.0.0.0/8\", found {bad:?} (item 2)"
                )
            );
        }
        let mut c = Config::default();
        c.network.trusted_networks = vec!["10.0.0.0/8".into(), "192.168.1.7".into()];
        let valid = c.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(valid.trusted_networks().len(), 2);
        c.network.trusted_networks.clear();
        let valid = c.validate().unwrap_or_else(|e| panic!("{e}"));
        assert!(valid.trusted_networks().is_empty());
    }

    #[test]
    fn empty_paths_and_filters_are_errors() {
        let mut c = Config::default();
        c.network.data_root = Some(PathBuf::new());
        assert_eq!(
            error(&c).to_string(),
            "[network] data_root: expected a non-empty path, found \"\""
        );
        c.network.data_root = Some(PathBuf::from("store"));
        c.network.log = Some(String::new());
        assert_eq!(
            error(&c).to_string(),
            "[network] log: expected a non-empty tracing filter such as \"info\", found \"\""
        );
        c.network.log = Some("debug".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn io_threads_may_not_exceed_the_totals_they_share() {
        let mut c = Config::default();
        c.network.io_threads = 4;
        c.network.max_connections = 3;
        assert_eq!(
            error(&c).to_string(),
            "[network] io_threads = 4 is more than max_connections = 3: each event loop \
             gets a share of it, and a loop whose share is 0 could never serve"
        );
        c.network.max_connections = 4;
        c.network.mod_queue_size = 3;
        let e = error(&c);
        assert_eq!(e.key(), "io_threads");
        assert!(e.to_string().contains("mod_queue_size = 3"), "{e}");
        c.network.mod_queue_size = 4;
        c.healing.max_fixes = 3;
        let e = error(&c);
        assert_eq!(e.key(), "io_threads");
        assert!(e.to_string().contains("max_fixes = 3"), "{e}");
        c.healing.max_fixes = 4;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn effective_port_and_threads() {
        let mut s = ServerConfig {
            raida_id: 14,
            ..ServerConfig::default()
        };
        assert_eq!(s.effective_port(), 50_014);
        s.port = Some(6000);
        assert_eq!(s.effective_port(), 6000);
        assert_eq!(s.effective_threads(4), 8);
        assert_eq!(s.effective_threads(32), 32);
        s.threads = 3;
        assert_eq!(s.effective_threads(32), 3);
    }

    #[test]
    fn shares_differ_by_at_most_one_and_sum_to_the_total() {
        fn check(total: usize, parts: usize) {
            let shares: Vec<usize> = (0..parts).map(|i| share(total, parts, i)).collect();
            assert_eq!(shares.iter().sum::<usize>(), total, "{total} / {parts}");
            for (i, s) in shares.iter().enumerate() {
                assert!(
                    *s == total / parts || *s == total / parts + 1,
                    "{total} / {parts}: share {i} is {s}"
                );
            }
            // The first loop has the largest share (io-epoll sizes channels by it).
            assert_eq!(shares.iter().max(), shares.first());
            assert_eq!(share(total, parts, parts), 0, "no part past the last");
        }
        for total in 0..300 {
            for parts in 1..40 {
                check(total, parts);
            }
        }
        for (total, parts) in [
            (65_535, 3),
            (1 << 20, 1024),
            (MAX_MOD_QUEUE_SIZE, 7),
            (usize::MAX, 1024),
            (usize::MAX, 1),
        ] {
            check(total, parts);
        }
        assert_eq!(share(10, 0, 0), 10, "0 parts is one part");
    }

    #[test]
    fn healing_defaults_and_bounds() {
        let c = Config::default();
        assert_eq!(c.healing.ticket_lifetime_s, 300);
        assert_eq!(c.healing.max_tickets, 65_536);
        assert_eq!(c.healing.max_ticket_coins, 1_048_576);
        assert_eq!(c.healing.peer_timeout_ms, 8_000);
        assert_eq!(c.healing.max_fixes, 64);
        assert!(c.healing.claim_from.is_empty());
        assert!(c.server.raida_servers.is_empty());
        assert!(c.validate().is_ok(), "no raida_servers is not an error");

        let mut c = Config::default();
        c.healing.max_tickets = 0;
        let e = c.validate().expect_err("no room");
        assert_eq!(
            e.to_string(),
            "[healing] max_tickets: expected an integer 1..=16777216, found 0"
        );
        let mut c = Config::default();
        c.healing.peer_timeout_ms = 60_001;
        assert_eq!(c.validate().map_err(|e| e.key()), Err("peer_timeout_ms"));
        let mut c = Config::default();
        c.healing.claim_from = vec!["10.0.0.5".into(), "::ffff:1.2.3.4".into()];
        let valid = c.validate().expect("addresses");
        assert_eq!(valid.claim_from().len(), 2);
        c.healing.claim_from.push("host.example".into());
        let e = c.validate().expect_err("not an address");
        assert_eq!(
            e.to_string(),
            "[healing] claim_from: expected an IP address such as \"10.0.0.5\", found \
             \"host.example\" (item 3)"
        );
    }

    #[test]
    fn raida_servers_are_at_most_25_host_ports() {
        let mut c = Config::default();
        c.server.raida_servers = (0..25)
            .map(|i| format!("raida{i}.example:{}", 50_000 + i))
            .collect();
        assert!(c.validate().is_ok());
        c.server.raida_servers.push("one.more:1".into());
        assert_eq!(c.validate().map_err(|e| e.key()), Err("raida_servers"));
        c.server.raida_servers = vec!["127.0.0.1:50000".into(), "[::1]:50001".into()];
        assert!(c.validate().is_ok());
        c.server.raida_servers.push("no-port".into());
        let e = c.validate().expect_err("no port");
        assert!(e.to_string().ends_with("found \"no-port\" (item 3)"), "{e}");
        assert_eq!(split_host_port("a:70000"), None);
        assert_eq!(split_host_port(":1"), None);
        assert_eq!(split_host_port("[::1]:7"), Some(("::1", 7)));
        assert_eq!(
            split_host_port("h.example:50000"),
            Some(("h.example", 50_000))
        );
    }

    proptest::proptest! {
        #[test]
        fn shares_sum_to_the_total(total in 0usize..(1 << 40), parts in 1usize..=1024) {
            let shares: Vec<usize> = (0..parts).map(|i| share(total, parts, i)).collect();
            proptest::prop_assert_eq!(shares.iter().sum::<usize>(), total);
            let low = total / parts;
            proptest::prop_assert!(shares.iter().all(|s| *s == low || *s == low + 1));
        }
    }
}
