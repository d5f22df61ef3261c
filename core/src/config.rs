//! Configuration (PROTOCOL.md section 10a).
//!
//! The server reads the deployed C server's `config.toml` as it is. Its `[server]`
//! table keeps its meaning: `raida_id`, `coin_id`, `port`, `threads` and
//! `udp_effective_payload` (also accepted as `udp_payload_threshold`) are honoured; the
//! keys that belong to other modules ([`IGNORED_SERVER_KEYS`]) are accepted whatever
//! their type and never required. Every limit of the network layer is a field of our
//! own `[network]` table, defaulting to the values of DESIGN.md ("Defaults").
//!
//! **One table.** [`FIELDS`] lists every key once: its table, what it accepts (type
//! and range), its flag, a one-line doc, and where it lives in [`Config`]. The parser,
//! [`Config::to_toml_string`] (`--print-config`), the `Serialize` form, the flags of
//! `raida-server` and the test of README.md's tables all read that list, so adding a
//! field is one entry there plus its struct field (and its value in `Default`, which
//! is where every default lives: the table reads it back rather than repeating it).
//!
//! Core reads no files: the driver reads the text and hands it to
//! [`Config::from_toml_str`] together with the file's path, which every
//! [`ConfigError`] names, e.g.
//! `config.toml: [server] raida_id: expected an integer 0..=24, found "abc"`.
//!
//! Strictness: a typo in our own `[network]` table is an error
//! ([`ConfigError::UnknownKey`]); an unknown key in `[server]` or an unknown top-level
//! table is not (other modules of the deployed server add keys there), but it is
//! reported as a [`ConfigWarning`] by [`Config::from_toml_str_with_warnings`] so the
//! driver can log it.
//!
//! [`IGNORED_SERVER_KEYS`]: crate::config::IGNORED_SERVER_KEYS
//! [`FIELDS`]: crate::config::FIELDS
//! [`Config`]: crate::config::Config
//! [`Config::to_toml_string`]: crate::config::Config::to_toml_string
//! [`Config::from_toml_str`]: crate::config::Config::from_toml_str
//! [`ConfigError`]: crate::config::ConfigError
//! [`ConfigError::UnknownKey`]: crate::config::ConfigError::UnknownKey
//! [`ConfigWarning`]: crate::config::ConfigWarning
//! [`Config::from_toml_str_with_warnings`]: crate::config::Config::from_toml_str_with_warnings

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use toml::{Table, Value};

/// Keys of the `[server]` table that belong to other modules of the deployed server.
///
/// They are accepted whatever their type and never required. `root_path` is in the C
/// server's sample file but read by nothing there (its data root is the binary's
/// directory); here the data root is [`NetworkConfig::data_root`], else the config
/// file's directory.
pub const IGNORED_SERVER_KEYS: &[&str] = &[
    "proxy_key",
    "admin_key",
    "raida_servers",
    "proxy_addr",
    "proxy_port",
    "backup_freq",
    "integrity_freq",
    "synchronization_enabled",
    "btc_confirmations",
    "root_path",
];

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
/// `Serialize` writes the keys of [`FIELDS`] that are set, in the form
/// [`Config::from_toml_str`] reads back; [`Config::to_toml_string`] is the annotated
/// form for `--print-config`. Non-exhaustive: build one with `Default` and assign
/// fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Table `[server]`: the deployed server's keys.
    pub server: ServerConfig,
    /// Table `[network]`: the limits and settings of this network layer.
    pub network: NetworkConfig,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            raida_id: 0,
            coin_id: 0,
            port: None,
            threads: 0,
            udp_payload_threshold: 1024,
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
/// Unknown keys in this table are errors. Durations are integers in the unit their
/// name ends with; each `*_ms` value is at most [`MAX_MILLIS`]. Every number has an
/// upper bound any machine can honour, so a typo is refused with a message instead of
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
    /// Directory holding `Data/`. `None` (the default) means the config file's
    /// directory; a relative path is taken relative to it. See [`Config::data_root`].
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
    /// Networks exempt from the per-client limits (CIDR, e.g. `"10.0.0.0/8"`). Default
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

/// A table of the configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `[server]`: the deployed server's table. Unknown keys are warnings (other modules
    /// of the deployed server add keys there), [`IGNORED_SERVER_KEYS`] are accepted
    /// silently.
    Server,
    /// `[network]`: our own table. Unknown keys are errors (a typo must not pass
    /// silently for a bound).
    Network,
}

impl Section {
    /// Every table, in the order the file (and `--print-config`) lists them.
    pub const ALL: [Section; 2] = [Section::Server, Section::Network];

    /// The table's name in the file: `server` or `network`.
    pub const fn name(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::Network => "network",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a field accepts: how the file's value is checked and what an error says it
/// expected.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Kind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value: every number has one a machine can honour.
        max: u64,
    },
    /// An IP address string, IPv4 or IPv6.
    IpAddr,
    /// A socket address string (`address:port`).
    SocketAddr,
    /// A non-empty path string. A driver takes a relative path given as a flag from
    /// its current directory (a file's from the file's directory).
    Path,
    /// A non-empty string.
    Text {
        /// What it is, for errors, e.g. `a non-empty tracing filter such as "info"`.
        expected: &'static str,
    },
    /// An array of strings (possibly empty), each accepted by `check`, e.g. CIDR
    /// networks.
    Strings {
        /// What one item is, for errors, e.g. `a CIDR network such as "10.0.0.0/8"`.
        item: &'static str,
        /// Whether one item is acceptable.
        check: fn(&str) -> bool,
    },
}

impl Kind {
    /// An integer in `min..=max`.
    pub const fn int(min: u64, max: u64) -> Kind {
        Kind::Int { min, max }
    }

    /// The range of an integer kind.
    pub fn range(&self) -> Option<(u64, u64)> {
        match *self {
            Kind::Int { min, max } => Some((min, max)),
            _ => None,
        }
    }

    /// What the kind accepts, as error messages say it: `an integer 0..=24`.
    pub fn expected(&self) -> String {
        match self {
            Kind::Int { min, max } => format!("an integer {min}..={max}"),
            Kind::IpAddr => "an IP address such as \"0.0.0.0\" or \"::\"".into(),
            Kind::SocketAddr => "a socket address such as \"127.0.0.1:9100\"".into(),
            Kind::Path => "a non-empty path".into(),
            Kind::Text { expected } => (*expected).into(),
            Kind::Strings { item, .. } => format!("an array of strings, each {item}"),
        }
    }

    /// Checks a value of the file. The error is what was found, as error messages show
    /// it (the offending item of an array, with its place).
    pub fn parse(&self, value: &Value) -> Result<FieldValue, String> {
        let bad = || show(value);
        match (self, value) {
            (Kind::Int { min, max }, Value::Integer(i)) => match u64::try_from(*i) {
                Ok(n) if (*min..=*max).contains(&n) => Ok(FieldValue::Int(n)),
                _ => Err(bad()),
            },
            (Kind::IpAddr, Value::String(s)) => s.parse().map(FieldValue::Ip).map_err(|_| bad()),
            (Kind::SocketAddr, Value::String(s)) => {
                s.parse().map(FieldValue::Socket).map_err(|_| bad())
            }
            (Kind::Path, Value::String(s)) if !s.is_empty() => Ok(FieldValue::Path(s.into())),
            (Kind::Text { .. }, Value::String(s)) if !s.is_empty() => {
                Ok(FieldValue::Text(s.clone()))
            }
            (Kind::Strings { check, .. }, Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) if check(s) => Ok(s.clone()),
                    other => Err(format!("{} (item {})", show(other), i + 1)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(FieldValue::Strings),
            _ => Err(bad()),
        }
    }
}

/// A field's value, checked against its [`Kind`], on its way into or out of
/// [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldValue {
    /// For [`Kind::Int`].
    Int(u64),
    /// For [`Kind::IpAddr`].
    Ip(IpAddr),
    /// For [`Kind::SocketAddr`].
    Socket(SocketAddr),
    /// For [`Kind::Path`].
    Path(PathBuf),
    /// For [`Kind::Text`].
    Text(String),
    /// For [`Kind::Strings`].
    Strings(Vec<String>),
}

impl FieldValue {
    /// The value as the file writes it (a path that is not UTF-8, lossily).
    pub fn to_toml(&self) -> Value {
        match self {
            // Every bound is far below i64::MAX (a unit test checks), so this never
            // saturates.
            FieldValue::Int(n) => Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX)),
            FieldValue::Ip(a) => Value::String(a.to_string()),
            FieldValue::Socket(a) => Value::String(a.to_string()),
            FieldValue::Path(p) => Value::String(p.to_string_lossy().into_owned()),
            FieldValue::Text(s) => Value::String(s.clone()),
            FieldValue::Strings(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        }
    }
}

/// The command-line flag of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The flag without its dashes, e.g. `raida-id` for `--raida-id`.
    pub long: &'static str,
    /// The placeholder of its value in `--help`, e.g. `N`.
    pub value_name: &'static str,
    /// What the flag adds to the field's doc, if anything.
    pub note: Option<&'static str>,
}

impl Flag {
    /// The flag as typed, e.g. `--raida-id`; errors about its value name it so.
    pub fn name(&self) -> String {
        format!("--{}", self.long)
    }
}

/// Where a field lives in [`Config`]: read it, and store a checked value (`false` when
/// the value does not fit the field's type, only possible where `usize` is narrower
/// than a range).
#[derive(Clone, Copy, Debug)]
struct Slot {
    get: fn(&Config) -> Option<FieldValue>,
    set: fn(&mut Config, FieldValue) -> bool,
}

/// The [`Slot`] of `config.$section.$field`, through [`Stored`].
macro_rules! slot {
    ($section:ident . $field:ident) => {
        Slot {
            get: |c| Stored::to_value(&c.$section.$field),
            set: |c, v| match Stored::from_value(v) {
                Some(v) => {
                    c.$section.$field = v;
                    true
                }
                None => false,
            },
        }
    };
}

/// A Rust type a field of [`Config`] can have, as a [`FieldValue`]. `Option<T>` is an
/// optional field: `None` is unset, and never written.
trait Stored: Sized {
    fn to_value(&self) -> Option<FieldValue>;
    fn from_value(value: FieldValue) -> Option<Self>;
}

macro_rules! stored_int {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            fn to_value(&self) -> Option<FieldValue> {
                u64::try_from(*self).ok().map(FieldValue::Int)
            }
            fn from_value(value: FieldValue) -> Option<Self> {
                match value {
                    FieldValue::Int(n) => Self::try_from(n).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
stored_int!(u8, u16, u32, u64, usize);

macro_rules! stored_as {
    ($t:ty, $variant:ident) => {
        impl Stored for $t {
            fn to_value(&self) -> Option<FieldValue> {
                Some(FieldValue::$variant(self.clone()))
            }
            fn from_value(value: FieldValue) -> Option<Self> {
                match value {
                    FieldValue::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
stored_as!(IpAddr, Ip);
stored_as!(SocketAddr, Socket);
stored_as!(PathBuf, Path);
stored_as!(String, Text);
stored_as!(Vec<String>, Strings);

impl<T: Stored> Stored for Option<T> {
    fn to_value(&self) -> Option<FieldValue> {
        self.as_ref().and_then(T::to_value)
    }
    fn from_value(value: FieldValue) -> Option<Self> {
        T::from_value(value).map(Some)
    }
}

/// One configuration field: everything the parser, `--print-config`, the command line
/// and the README's tables know about it. [`FIELDS`] lists them all.
///
/// Its default is not repeated here: it is the field's value in `Config::default()`
/// ([`Field::default_value`]), so the two cannot disagree.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The key, as the file writes it.
    pub name: &'static str,
    /// The table holding it.
    pub section: Section,
    /// What it accepts.
    pub kind: Kind,
    /// Another accepted name of the key (deployed files use both); both given with
    /// different values is an error ([`ConfigError::Conflict`]).
    pub alias: Option<&'static str>,
    /// For an optional field (absent means unset): what applies when it is unset, e.g.
    /// `50000 + raida_id`. `None` for a field that always has a value.
    pub unset: Option<&'static str>,
    /// A remark `--print-config` writes after the value, e.g. `0 = max(8, cores)`.
    pub note: Option<&'static str>,
    /// The command-line flag that sets it, if it has one.
    pub flag: Option<Flag>,
    /// What it is, in one line (for `--help`).
    pub doc: &'static str,
    slot: Slot,
    /// For an optional field whose unset value is still a value (`port`): that value,
    /// which `--print-config` shows.
    effective: Option<fn(&Config) -> FieldValue>,
}

/// The builder steps [`FIELDS`] is written with: `Field::new(..)` and then only what
/// the field has (`.flag(..)`, `.alias(..)`, `.unset(..)`, ...).
impl Field {
    const fn new(
        name: &'static str,
        section: Section,
        kind: Kind,
        slot: Slot,
        doc: &'static str,
    ) -> Field {
        Field {
            name,
            section,
            kind,
            alias: None,
            unset: None,
            note: None,
            flag: None,
            doc,
            slot,
            effective: None,
        }
    }

    const fn flag(mut self, long: &'static str, value_name: &'static str) -> Field {
        self.flag = Some(Flag {
            long,
            value_name,
            note: None,
        });
        self
    }

    const fn flag_note(mut self, note: &'static str) -> Field {
        self.flag = match self.flag {
            Some(f) => Some(Flag {
                note: Some(note),
                ..f
            }),
            None => None,
        };
        self
    }

    const fn alias(mut self, alias: &'static str) -> Field {
        self.alias = Some(alias);
        self
    }

    const fn unset(mut self, unset: &'static str) -> Field {
        self.unset = Some(unset);
        self
    }

    const fn effective(mut self, effective: fn(&Config) -> FieldValue) -> Field {
        self.effective = Some(effective);
        self
    }

    const fn note(mut self, note: &'static str) -> Field {
        self.note = Some(note);
        self
    }

    /// Its value in `config`; `None` when an optional field is unset.
    pub fn value(&self, config: &Config) -> Option<FieldValue> {
        (self.slot.get)(config)
    }

    /// Its default: its value in `Config::default()`.
    pub fn default_value(&self) -> Option<FieldValue> {
        self.value(&Config::default())
    }

    /// Its default as README.md's tables write it: the TOML value (`65535`,
    /// `"0.0.0.0"`), or for an optional field unset by default, what applies then.
    pub fn default_text(&self) -> String {
        match self.default_value() {
            Some(v) => v.to_toml().to_string(),
            None => self.unset.unwrap_or("unset").to_string(),
        }
    }

    /// A flag's text as the TOML value a file would hold, for the same checks: an
    /// integer when the field is one and the text reads as one (else the text, so the
    /// error shows what was given, e.g. `found "abc"`), an array for
    /// [`Kind::Strings`] (one item per value), else the text.
    pub fn flag_value(&self, values: &[String]) -> Value {
        let last = values.last().map_or("", String::as_str);
        match self.kind {
            Kind::Int { .. } => match last.trim().parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => Value::String(last.to_string()),
            },
            // An empty value is an empty list (e.g. `--trusted-networks ""`).
            Kind::Strings { .. } => Value::Array(
                values
                    .iter()
                    .filter(|v| !v.trim().is_empty())
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
            _ => Value::String(last.to_string()),
        }
    }

    /// Stores a checked value; `false` if it does not fit the field's type.
    fn store(&self, config: &mut Config, value: FieldValue) -> bool {
        (self.slot.set)(config, value)
    }

    /// Its line of `--print-config`.
    fn toml_line(&self, config: &Config) -> String {
        match (self.value(config), self.effective) {
            (Some(v), _) => match self.note {
                Some(note) => format!("{} = {}  # {note}", self.name, v.to_toml()),
                None => format!("{} = {}", self.name, v.to_toml()),
            },
            (None, Some(effective)) => format!(
                "# {} = {}  (unset: {})",
                self.name,
                effective(config).to_toml(),
                self.unset.unwrap_or("no value")
            ),
            (None, None) => format!(
                "# {} unset: {}",
                self.name,
                self.unset.unwrap_or("no value")
            ),
        }
    }
}

/// The field named `name` in `section`, if there is one (aliases are not names).
pub fn field(section: Section, name: &str) -> Option<&'static Field> {
    FIELDS
        .iter()
        .find(|f| f.section == section && f.name == name)
}

/// Every configuration field, in the order `--print-config` lists them: `[server]`
/// first, then `[network]`.
pub static FIELDS: &[Field] = {
    use Section::{Network, Server};
    &[
        Field::new(
            "raida_id",
            Server,
            Kind::int(0, RAIDA_COUNT as u64 - 1),
            slot!(server.raida_id),
            "This server's raida id; requests must carry it (else 3)",
        )
        .flag("raida-id", "N"),
        Field::new(
            "coin_id",
            Server,
            Kind::int(0, u16::MAX as u64),
            slot!(server.coin_id),
            "The coin id requests must carry (else 7)",
        )
        .flag("coin-id", "N"),
        Field::new(
            "port",
            Server,
            Kind::int(0, u16::MAX as u64),
            slot!(server.port),
            "TCP and UDP port; 0 picks a free port on which both bind",
        )
        .unset("50000 + raida_id")
        .effective(|c| FieldValue::Int(u64::from(c.server.effective_port())))
        .flag("port", "N"),
        Field::new(
            "threads",
            Server,
            Kind::int(0, MAX_THREADS as u64),
            slot!(server.threads),
            "Worker threads; 0 = max(8, cores)",
        )
        .note("0 = max(8, cores)")
        .flag("threads", "N"),
        Field::new(
            "udp_effective_payload",
            Server,
            Kind::int(32, MAX_UDP_PAYLOAD as u64),
            slot!(server.udp_payload_threshold),
            "UDP receive buffer: only this many bytes of a datagram are kept",
        )
        .alias("udp_payload_threshold")
        .flag("udp-payload-threshold", "N"),
        Field::new(
            "bind",
            Network,
            Kind::IpAddr,
            slot!(network.bind),
            "Address of both sockets, IPv4 or IPv6",
        )
        .flag("bind", "ADDR"),
        Field::new(
            "max_connections",
            Network,
            Kind::int(1, MAX_CONNECTIONS_LIMIT as u64),
            slot!(network.max_connections),
            "Most open TCP connections; one more is answered 160 and closed",
        )
        .flag("max-connections", "N"),
        Field::new(
            "max_body_size",
            Network,
            Kind::int(2, MAX_BODY_SIZE_LIMIT as u64),
            slot!(network.max_body_size),
            "Largest declared request body; a larger one is answered 16",
        )
        .flag("max-body-size", "N"),
        Field::new(
            "socket_timeout_ms",
            Network,
            Kind::int(1, MAX_MILLIS),
            slot!(network.socket_timeout_ms),
            "Close a connection without a complete request (or response) after this long",
        )
        .flag("socket-timeout-ms", "N"),
        Field::new(
            "mod_queue_size",
            Network,
            Kind::int(1, MAX_MOD_QUEUE_SIZE as u64),
            slot!(network.mod_queue_size),
            "Jobs in flight at most; further requests wait in arrival order",
        )
        .flag("mod-queue-size", "N"),
        Field::new(
            "epoll_timeout_ms",
            Network,
            Kind::int(1, MAX_MILLIS),
            slot!(network.epoll_timeout_ms),
            "Longest wait for events (shorter when a deadline is nearer)",
        ),
        Field::new(
            "events_per_wait",
            Network,
            Kind::int(1, 1_000_000),
            slot!(network.events_per_wait),
            "Events taken from one wait",
        ),
        Field::new(
            "keepalive_idle_s",
            Network,
            Kind::int(1, 32_767),
            slot!(network.keepalive_idle_s),
            "TCP keep-alive: idle time before the first probe",
        ),
        Field::new(
            "keepalive_interval_s",
            Network,
            Kind::int(1, 32_767),
            slot!(network.keepalive_interval_s),
            "TCP keep-alive: time between probes",
        ),
        Field::new(
            "keepalive_probes",
            Network,
            Kind::int(1, 127),
            slot!(network.keepalive_probes),
            "TCP keep-alive: probes before the connection is dropped",
        ),
        Field::new(
            "linger_ms",
            Network,
            Kind::int(0, MAX_MILLIS),
            slot!(network.linger_ms),
            "After the response, how long unread client bytes are read and discarded before closing",
        ),
        Field::new(
            "drain_timeout_ms",
            Network,
            Kind::int(0, MAX_MILLIS),
            slot!(network.drain_timeout_ms),
            "On SIGINT/SIGTERM, how long requests in flight may take before the server exits anyway",
        ),
        Field::new(
            "io_threads",
            Network,
            Kind::int(1, MAX_THREADS as u64),
            slot!(network.io_threads),
            "Event-loop threads, each with its own sockets on the port (SO_REUSEPORT) and its \
             own engine, sharing the workers and the key store",
        )
        .flag("io-threads", "N"),
        Field::new(
            "busy_poll_us",
            Network,
            Kind::int(0, 1_000),
            slot!(network.busy_poll_us),
            "Microseconds an event loop polls for events without blocking before it sleeps; 0 blocks at once",
        )
        .flag("busy-poll-us", "US"),
        Field::new(
            "turn_budget",
            Network,
            Kind::int(1, 1_000_000),
            slot!(network.turn_budget),
            "Most connections accepted, and most datagrams read, per event-loop turn",
        )
        .flag("turn-budget", "N"),
        Field::new(
            "key_page_cache_pages",
            Network,
            Kind::int(1, MAX_KEY_PAGE_CACHE_PAGES as u64),
            slot!(network.key_page_cache_pages),
            "Key pages kept in memory at most (17 KB each; filled as pages are looked up)",
        ),
        Field::new(
            "store_refresh_ms",
            Network,
            Kind::int(*STORE_REFRESH_MS.start(), *STORE_REFRESH_MS.end()),
            slot!(network.store_refresh_ms),
            "How often the key store checks its cached page files for outside changes",
        ),
        Field::new(
            "data_root",
            Network,
            Kind::Path,
            slot!(network.data_root),
            "Directory holding Data/; a relative one in a file is taken from the file's directory",
        )
        .unset("the config file's directory")
        .flag("data-root", "DIR"),
        Field::new(
            "metrics_addr",
            Network,
            Kind::SocketAddr,
            slot!(network.metrics_addr),
            "Serve metrics (Prometheus text format, /metrics) and a liveness check \
             (/healthz, /live) over HTTP on this address",
        )
        .unset("no metrics endpoint")
        .flag("metrics-addr", "ADDR")
        .flag_note("port 0 = a free port, printed on a second stdout line"),
        Field::new(
            "max_buffered_bytes",
            Network,
            Kind::int(1 << 20, 64 << 30),
            slot!(network.max_buffered_bytes),
            "Request body bytes buffered at most over every connection; body reads pause \
             when it is spent",
        )
        .flag("max-buffered-bytes", "BYTES"),
        Field::new(
            "max_connections_per_ip",
            Network,
            Kind::int(0, MAX_CONNECTIONS_LIMIT as u64),
            slot!(network.max_connections_per_ip),
            "Open connections one client (IPv4 address, IPv6 /64) holds at most; one more \
             is answered 160; 0 = no limit",
        )
        .flag("max-connections-per-ip", "N"),
        Field::new(
            "trusted_networks",
            Network,
            Kind::Strings {
                item: "a CIDR network such as \"10.0.0.0/8\"",
                check: |s| crate::cidr::Cidr::parse(s).is_some(),
            },
            slot!(network.trusted_networks),
            "Networks exempt from the per-client limits (CIDR)",
        )
        .flag("trusted-networks", "CIDR"),
        Field::new(
            "rate_limit_per_s",
            Network,
            Kind::int(0, 1_000_000),
            slot!(network.rate_limit_per_s),
            "Requests a second one client may make; over it they are answered 160; 0 = no \
             rate limit",
        )
        .flag("rate-limit", "N"),
        Field::new(
            "rate_limit_burst",
            Network,
            Kind::int(1, 1_000_000),
            slot!(network.rate_limit_burst),
            "Requests one client may make at once under rate_limit_per_s",
        )
        .flag("rate-burst", "N"),
        Field::new(
            "long_jobs",
            Network,
            Kind::int(1, 1024),
            slot!(network.long_jobs),
            "Jobs of long-running commands one event loop runs at once, on threads of \
             their own",
        ),
        Field::new(
            "log",
            Network,
            Kind::Text {
                expected: "a non-empty tracing filter such as \"info\"",
            },
            slot!(network.log),
            "A tracing filter, e.g. \"info,raida_core=debug\"",
        )
        .unset("RUST_LOG, else \"info\""),
    ]
};

/// A bound one field of a table puts on another: `key` may not exceed `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtMost {
    /// The table holding both keys.
    pub section: Section,
    /// The bounded key.
    pub key: &'static str,
    /// The key whose value bounds it.
    pub limit: &'static str,
    /// Why, for the error message.
    pub reason: &'static str,
}

/// Every bound between fields, checked once the whole file is read.
pub static AT_MOST: &[AtMost] = &[
    AtMost {
        section: Section::Network,
        key: "io_threads",
        limit: "max_connections",
        reason: "each event loop gets a share of it, and a loop whose share is 0 could never serve",
    },
    AtMost {
        section: Section::Network,
        key: "io_threads",
        limit: "mod_queue_size",
        reason: "each event loop gets a share of it, and a loop whose share is 0 could never serve",
    },
];

/// Why a configuration file was rejected. Its `Display` names the file and, when the
/// problem is one key, the table and the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML.
    #[error("{}: {}TOML syntax error: {message}", .file.display(), location(*.line, *.column))]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column (in characters) of the error, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A top-level key that must be a table (`server`, `network`) is something else.
    #[error("{}: {key}: expected a table, found {found}", .file.display())]
    NotATable {
        /// The configuration file.
        file: PathBuf,
        /// The key (`server` or `network`).
        key: &'static str,
        /// The value found, as TOML (shortened).
        found: String,
    },
    /// A key has the wrong type or is out of range.
    #[error("{}: [{table}] {key}: expected {expected}, found {found}", .file.display())]
    InvalidValue {
        /// The configuration file.
        file: PathBuf,
        /// The table holding the key.
        table: &'static str,
        /// The key.
        key: &'static str,
        /// What the key accepts.
        expected: String,
        /// The value found, as TOML (shortened).
        found: String,
    },
    /// A key of the `[network]` table that does not exist.
    #[error("{}: [{table}] {key}: unknown key{}", .file.display(), did_you_mean(*.suggestion))]
    UnknownKey {
        /// The configuration file.
        file: PathBuf,
        /// The table holding the key.
        table: &'static str,
        /// The key, as written.
        key: String,
        /// A known key of that table spelled similarly, if any.
        suggestion: Option<&'static str>,
    },
    /// Two names of one setting are both given, with different values.
    #[error(
        "{}: [{table}] {key}: {value} disagrees with {other_key} = {other_value} \
         (two names of one setting); keep one",
        .file.display()
    )]
    Conflict {
        /// The configuration file.
        file: PathBuf,
        /// The table holding both keys.
        table: &'static str,
        /// The first name.
        key: &'static str,
        /// Its value, as TOML.
        value: String,
        /// The other name.
        other_key: &'static str,
        /// Its value, as TOML.
        other_value: String,
    },
    /// A key's value is more than another key's value allows ([`AT_MOST`]).
    #[error(
        "{}: [{table}] {key} = {value} is more than {limit} = {limit_value}: {reason}",
        .file.display()
    )]
    Exceeds {
        /// The configuration file.
        file: PathBuf,
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
    /// The configuration file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Syntax { file, .. }
            | ConfigError::NotATable { file, .. }
            | ConfigError::InvalidValue { file, .. }
            | ConfigError::UnknownKey { file, .. }
            | ConfigError::Conflict { file, .. }
            | ConfigError::Exceeds { file, .. } => file,
        }
    }

    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Syntax { .. } => None,
            ConfigError::NotATable { key, .. }
            | ConfigError::InvalidValue { key, .. }
            | ConfigError::Conflict { key, .. }
            | ConfigError::Exceeds { key, .. } => Some(key),
            ConfigError::UnknownKey { key, .. } => Some(key),
        }
    }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
}

/// Something in a configuration file that was ignored but may be a mistake: an unknown
/// key of `[server]` or an unknown top-level key. The driver logs it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigWarning {
    /// The configuration file.
    pub file: PathBuf,
    /// The table holding the key; `None` for a top-level key.
    pub table: Option<&'static str>,
    /// The ignored key.
    pub key: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.table {
            Some(t) => write!(
                f,
                "{}: [{t}] {}: unknown key, ignored",
                self.file.display(),
                self.key
            ),
            None => write!(
                f,
                "{}: {}: unknown key, ignored",
                self.file.display(),
                self.key
            ),
        }
    }
}

impl Config {
    /// Parses the text of a configuration file; `file` is its path, used in error
    /// messages and nothing else. Absent keys and tables take their defaults.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Self::from_toml_str_with_warnings(text, file).map(|(config, _)| config)
    }

    /// As [`Config::from_toml_str`], also returning what was ignored but might be a
    /// typo (unknown `[server]` keys, unknown top-level keys), top-level ones first,
    /// each group sorted by key.
    pub fn from_toml_str_with_warnings(
        text: &str,
        file: &Path,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let root: Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_column(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            ConfigError::Syntax {
                file: file.to_path_buf(),
                line,
                column,
                message: e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;

        let mut warnings = Vec::new();
        let mut config = Config::default();
        for (key, value) in &root {
            match Section::ALL.into_iter().find(|s| s.name() == key) {
                Some(section) => {
                    Reader::table(file, section, value)?.read(&mut config, &mut warnings)?
                }
                None => warnings.push(ConfigWarning {
                    file: file.to_path_buf(),
                    table: None,
                    key: key.clone(),
                }),
            }
        }
        check_at_most(&config, file)?;
        warnings.sort();
        Ok((config, warnings))
    }

    /// The directory holding `Data/`: `network.data_root` if set (a relative one taken
    /// relative to the config file's directory), else the config file's directory,
    /// else `.`.
    pub fn data_root(&self, config_file: Option<&Path>) -> PathBuf {
        let file_dir = config_file
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty());
        match (&self.network.data_root, file_dir) {
            (Some(root), Some(dir)) if root.is_relative() => dir.join(root),
            (Some(root), _) => root.clone(),
            (None, Some(dir)) => dir.to_path_buf(),
            (None, None) => PathBuf::from("."),
        }
    }

    /// The effective configuration as an annotated TOML file, for `--print-config`.
    ///
    /// Every key of [`FIELDS`] is listed, in its order; unset optional keys appear as
    /// comments stating what applies instead (an unset `port` as `# port = <effective
    /// port>`). The output parses back to an equal `Config` (a `data_root` that is not
    /// UTF-8 is written lossily).
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        for (i, section) in Section::ALL.into_iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("[{section}]\n"));
            for field in FIELDS.iter().filter(|f| f.section == section) {
                out.push_str(&field.toml_line(self));
                out.push('\n');
            }
        }
        out
    }

    /// The keys that are set, as TOML tables (the `Serialize` form).
    fn to_toml_table(&self) -> Table {
        let mut root = Table::new();
        for section in Section::ALL {
            let table: Table = FIELDS
                .iter()
                .filter(|f| f.section == section)
                .filter_map(|f| Some((f.name.to_string(), f.value(self)?.to_toml())))
                .collect();
            root.insert(section.name().to_string(), Value::Table(table));
        }
        root
    }
}

/// The keys of [`FIELDS`] that are set, as `[server]` and `[network]` tables: what
/// [`Config::from_toml_str`] reads back.
impl Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_toml_table().serialize(serializer)
    }
}

/// Checks [`AT_MOST`] over a whole configuration.
fn check_at_most(config: &Config, file: &Path) -> Result<(), ConfigError> {
    let int = |section, name| match field(section, name).and_then(|f| f.value(config)) {
        Some(FieldValue::Int(n)) => Some(n),
        _ => None,
    };
    for rule in AT_MOST {
        if let (Some(value), Some(limit_value)) =
            (int(rule.section, rule.key), int(rule.section, rule.limit))
        {
            if value > limit_value {
                return Err(ConfigError::Exceeds {
                    file: file.to_path_buf(),
                    table: rule.section.name(),
                    key: rule.key,
                    value,
                    limit: rule.limit,
                    limit_value,
                    reason: rule.reason,
                });
            }
        }
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A value shown in an error message: TOML syntax, shortened.
fn show(value: &Value) -> String {
    const MAX: usize = 60;
    let text = match value {
        Value::Table(_) => return "a table".into(),
        Value::Array(a) if a.is_empty() => return "an empty array".into(),
        Value::Datetime(d) => d.to_string(),
        v => v.to_string(),
    };
    if text.chars().count() > MAX {
        let short: String = text.chars().take(MAX).collect();
        format!("{short}...")
    } else {
        text
    }
}

/// The known key closest to `key` by edit distance, if close enough to be a typo.
fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One table of the file, with the path for error messages.
struct Reader<'a> {
    file: &'a Path,
    section: Section,
    table: &'a Table,
}

impl<'a> Reader<'a> {
    fn table(file: &'a Path, section: Section, value: &'a Value) -> Result<Self, ConfigError> {
        match value {
            Value::Table(table) => Ok(Reader {
                file,
                section,
                table,
            }),
            other => Err(ConfigError::NotATable {
                file: file.to_path_buf(),
                key: section.name(),
                found: show(other),
            }),
        }
    }

    fn invalid(&self, key: &'static str, expected: String, found: String) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_path_buf(),
            table: self.section.name(),
            key,
            expected,
            found,
        }
    }

    /// The fields of this table.
    fn fields(&self) -> impl Iterator<Item = &'static Field> + '_ {
        FIELDS.iter().filter(move |f| f.section == self.section)
    }

    /// Reads every field of this table into `config`; unknown keys are errors in
    /// `[network]`, warnings in `[server]` (except [`IGNORED_SERVER_KEYS`]).
    fn read(
        &self,
        config: &mut Config,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        for key in self.table.keys() {
            let known = self
                .fields()
                .any(|f| f.name == key || f.alias == Some(key.as_str()));
            if known {
                continue;
            }
            match self.section {
                Section::Network => {
                    let names: Vec<&'static str> = self
                        .fields()
                        .flat_map(|f| std::iter::once(f.name).chain(f.alias))
                        .collect();
                    return Err(ConfigError::UnknownKey {
                        file: self.file.to_path_buf(),
                        table: self.section.name(),
                        key: key.clone(),
                        suggestion: suggest(key, &names),
                    });
                }
                Section::Server => {
                    if !IGNORED_SERVER_KEYS.contains(&key.as_str()) {
                        warnings.push(ConfigWarning {
                            file: self.file.to_path_buf(),
                            table: Some(self.section.name()),
                            key: key.clone(),
                        });
                    }
                }
            }
        }

        for field in self.fields() {
            let primary = self.value(field, field.name)?;
            let alias = match field.alias {
                Some(alias) => self.value(field, alias)?.map(|v| (alias, v)),
                None => None,
            };
            let value = match (primary, alias) {
                (Some(a), Some((alias, b))) if a != b => {
                    return Err(ConfigError::Conflict {
                        file: self.file.to_path_buf(),
                        table: self.section.name(),
                        key: field.name,
                        value: a.to_toml().to_string(),
                        other_key: alias,
                        other_value: b.to_toml().to_string(),
                    })
                }
                (Some(v), _) | (None, Some((_, v))) => v,
                (None, None) => continue,
            };
            let shown = value.to_toml();
            if !field.store(config, value) {
                // Only reachable where usize is narrower than the range asked for.
                return Err(self.invalid(
                    field.name,
                    "an integer this platform can hold".into(),
                    show(&shown),
                ));
            }
        }
        Ok(())
    }

    /// The value of `key` (the field's name or its alias), checked; `None` if absent.
    fn value(&self, field: &Field, key: &'static str) -> Result<Option<FieldValue>, ConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(value) => field
                .kind
                .parse(value)
                .map(Some)
                .map_err(|found| self.invalid(key, field.kind.expected(), found)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("config.toml"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse(""), Ok(Config::default()));
        assert_eq!(parse("[server]\n[network]\n"), Ok(Config::default()));
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
    fn syntax_error_names_file_and_line() {
        let e = parse("[server]\nraida_id = 1\nport = = 3\n");
        match e {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, Some(3)),
            other => panic!("{other:?}"),
        }
        let text = error("[server]\nraida_id = 1\nport = = 3\n");
        assert!(text.starts_with("config.toml: line 3, column "), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }

    #[test]
    fn value_errors_are_exact() {
        assert_eq!(
            error("[server]\nraida_id = \"abc\"\n"),
            "config.toml: [server] raida_id: expected an integer 0..=24, found \"abc\""
        );
        assert_eq!(
            error("[server]\nraida_id = 25\n"),
            "config.toml: [server] raida_id: expected an integer 0..=24, found 25"
        );
        assert_eq!(
            error("[network]\nmax_connections = 0\n"),
            "config.toml: [network] max_connections: expected an integer 1..=1048576, found 0"
        );
        assert_eq!(
            error("[network]\nmax_conections = 10\n"),
            "config.toml: [network] max_conections: unknown key (did you mean max_connections?)"
        );
        assert_eq!(
            error("[network]\nfrobnicate = 10\n"),
            "config.toml: [network] frobnicate: unknown key"
        );
        assert_eq!(
            error("server = 5\n"),
            "config.toml: server: expected a table, found 5"
        );
        assert_eq!(
            error("[server]\ncoin_id = 1979-05-27\n"),
            "config.toml: [server] coin_id: expected an integer 0..=65535, found 1979-05-27"
        );
        assert_eq!(
            error("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1024\n"),
            "config.toml: [server] udp_effective_payload: 1440 disagrees with \
             udp_payload_threshold = 1024 (two names of one setting); keep one"
        );
    }

    #[test]
    fn udp_names_conflict_only_when_they_differ() {
        let c = parse("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1440\n");
        assert_eq!(c.map(|c| c.server.udp_payload_threshold), Ok(1440));
        let e = error("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1024\n");
        assert!(
            e.starts_with("config.toml: [server] udp_effective_payload: "),
            "{e}"
        );
        assert!(e.contains("udp_payload_threshold"), "{e}");
    }

    #[test]
    fn unknown_server_keys_and_tables_are_warnings() {
        let (config, warnings) = Config::from_toml_str_with_warnings(
            "extra = 1\n[server]\nraida_id = 3\nnew_module_key = [1, 2]\nproxy_key = 7\n[other]\nx = 1\n",
            Path::new("/etc/raida/config.toml"),
        )
        .expect("valid");
        assert_eq!(config.server.raida_id, 3);
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "/etc/raida/config.toml: extra: unknown key, ignored",
                "/etc/raida/config.toml: other: unknown key, ignored",
                "/etc/raida/config.toml: [server] new_module_key: unknown key, ignored",
            ]
        );
    }

    #[test]
    fn data_root_resolution() {
        let mut c = Config::default();
        assert_eq!(c.data_root(None), PathBuf::from("."));
        assert_eq!(
            c.data_root(Some(Path::new("config.toml"))),
            PathBuf::from(".")
        );
        assert_eq!(
            c.data_root(Some(Path::new("/opt/raida/config.toml"))),
            PathBuf::from("/opt/raida")
        );
        c.network.data_root = Some(PathBuf::from("/srv/data"));
        assert_eq!(
            c.data_root(Some(Path::new("/opt/raida/config.toml"))),
            PathBuf::from("/srv/data")
        );
        c.network.data_root = Some(PathBuf::from("store"));
        assert_eq!(
            c.data_root(Some(Path::new("/opt/raida/config.toml"))),
            PathBuf::from("/opt/raida/store")
        );
        assert_eq!(c.data_root(None), PathBuf::from("store"));
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("bind", "bind"), 0);
    }

    #[test]
    fn every_number_has_an_upper_bound_a_machine_can_honour() {
        for (text, expected) in [
            (
                "[network]\nmax_connections = 1048577\n",
                "config.toml: [network] max_connections: expected an integer 1..=1048576, \
                 found 1048577",
            ),
            (
                "[network]\nmod_queue_size = 10000000000\n",
                "config.toml: [network] mod_queue_size: expected an integer 1..=65536, \
                 found 10000000000",
            ),
            (
                "[network]\nkey_page_cache_pages = 16385\n",
                "config.toml: [network] key_page_cache_pages: expected an integer 1..=16384, \
                 found 16385",
            ),
        ] {
            assert_eq!(error(text), expected);
        }
        let top = parse(
            "[network]\nmax_connections = 1048576\nmod_queue_size = 65536\n\
             key_page_cache_pages = 16384\n",
        )
        .map(|c| c.network);
        assert_eq!(
            top.map(|n| (n.max_connections, n.mod_queue_size, n.key_page_cache_pages)),
            Ok((1 << 20, 65_536, 16_384))
        );
        for f in FIELDS {
            if let Kind::Int { min, max } = f.kind {
                assert!(min <= max, "{}", f.name);
                // TOML integers are i64; and the bound is something a machine can honour.
                assert!(max <= 1 << 40, "{} has no real upper bound", f.name);
            }
        }
    }

    #[test]
    fn io_threads_may_not_exceed_the_totals_they_share() {
        assert_eq!(
            error("[network]\nio_threads = 4\nmax_connections = 3\n"),
            "config.toml: [network] io_threads = 4 is more than max_connections = 3: each \
             event loop gets a share of it, and a loop whose share is 0 could never serve"
        );
        assert_eq!(
            error("[network]\nio_threads = 4\nmod_queue_size = 2\n"),
            "config.toml: [network] io_threads = 4 is more than mod_queue_size = 2: each \
             event loop gets a share of it, and a loop whose share is 0 could never serve"
        );
        let c = parse("[network]\nio_threads = 4\nmax_connections = 4\nmod_queue_size = 4\n");
        assert_eq!(c.map(|c| c.network.io_threads), Ok(4));
        match parse("[network]\nio_threads = 2\nmax_connections = 1\n") {
            Err(e) => assert_eq!(e.key(), Some("io_threads")),
            Ok(c) => panic!("accepted: {c:?}"),
        }
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

    proptest::proptest! {
        #[test]
        fn shares_sum_to_the_total(total in 0usize..(1 << 40), parts in 1usize..=1024) {
            let shares: Vec<usize> = (0..parts).map(|i| share(total, parts, i)).collect();
            proptest::prop_assert_eq!(shares.iter().sum::<usize>(), total);
            let low = total / parts;
            proptest::prop_assert!(shares.iter().all(|s| *s == low || *s == low + 1));
        }
    }

    #[test]
    fn the_table_is_consistent() {
        for section in Section::ALL {
            let mut names: Vec<&str> = FIELDS
                .iter()
                .filter(|f| f.section == section)
                .flat_map(|f| std::iter::once(f.name).chain(f.alias))
                .collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count, "a name twice in [{section}]");
            assert!(
                !names.iter().any(|n| IGNORED_SERVER_KEYS.contains(n)),
                "an ignored key is also a field"
            );
        }
        let mut flags: Vec<&str> = FIELDS
            .iter()
            .filter_map(|f| f.flag.map(|f| f.long))
            .collect();
        let count = flags.len();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(flags.len(), count, "a flag twice");
        for f in FIELDS {
            // The default fits the kind (it parses back), and an optional field says what
            // applies when it is unset.
            match f.default_value() {
                Some(v) => assert_eq!(f.kind.parse(&v.to_toml()), Ok(v), "{}", f.name),
                None => assert!(f.unset.is_some(), "{} is unset by default", f.name),
            }
            assert!(
                !f.doc.is_empty() && !f.doc.contains('\n'),
                "{}: one line",
                f.name
            );
        }
        for rule in AT_MOST {
            for name in [rule.key, rule.limit] {
                let f = field(rule.section, name).unwrap_or_else(|| panic!("no field {name}"));
                assert!(f.kind.range().is_some(), "{name} is not an integer");
            }
        }
    }

    /// A valid value of `f` other than its default: the top of an integer's range (its
    /// bottom when that is the default, which also proves the type holds the range).
    fn other_value(f: &Field) -> FieldValue {
        match f.kind {
            Kind::Int { min, max } => {
                if f.default_value() == Some(FieldValue::Int(max)) {
                    FieldValue::Int(min)
                } else {
                    FieldValue::Int(max)
                }
            }
            Kind::IpAddr => FieldValue::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            Kind::SocketAddr => FieldValue::Socket(SocketAddr::from(([127, 0, 0, 1], 9100))),
            Kind::Path => FieldValue::Path(PathBuf::from("elsewhere")),
            Kind::Text { .. } => FieldValue::Text("debug".into()),
            Kind::Strings { .. } => FieldValue::Strings(Vec::new()),
        }
    }

    #[test]
    fn every_field_is_read_printed_and_serialized() {
        // A file setting every field to a value other than its default.
        let mut text = String::new();
        for section in Section::ALL {
            text.push_str(&format!("[{section}]\n"));
            for f in FIELDS.iter().filter(|f| f.section == section) {
                text.push_str(&format!("{} = {}\n", f.name, other_value(f).to_toml()));
            }
        }
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for f in FIELDS {
            assert_eq!(f.value(&c), Some(other_value(f)), "{} was not read", f.name);
            assert_ne!(f.value(&c), f.default_value(), "{}", f.name);
        }
        for config in [c, Config::default()] {
            let printed = config.to_toml_string();
            assert_eq!(parse(&printed).as_ref(), Ok(&config), "{printed}");
            let serialized = toml::to_string(&config).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parse(&serialized).as_ref(), Ok(&config), "{serialized}");
            for f in FIELDS {
                assert!(
                    printed.contains(f.name),
                    "{} not printed:\n{printed}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn printed_config_keeps_its_shape() {
        let mut c = parse("[server]\nraida_id = 9\n").unwrap_or_else(|e| panic!("{e}"));
        c.network.log = Some("debug".into());
        let printed = c.to_toml_string();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(
            lines.get(..6),
            Some(
                &[
                    "[server]",
                    "raida_id = 9",
                    "coin_id = 0",
                    "# port = 50009  (unset: 50000 + raida_id)",
                    "threads = 0  # 0 = max(8, cores)",
                    "udp_effective_payload = 1024",
                ][..]
            )
        );
        assert_eq!(
            lines.get(6..9),
            Some(&["", "[network]", "bind = \"0.0.0.0\""][..])
        );
        assert!(lines.contains(&"# data_root unset: the config file's directory"));
        assert!(lines.contains(&"# metrics_addr unset: no metrics endpoint"));
        assert_eq!(lines.last(), Some(&"log = \"debug\""));
        assert!(printed.ends_with("\"debug\"\n"));
    }

    /// A CIDR-ish check for the list tests: `address/prefix`.
    fn cidr(s: &str) -> bool {
        match s.split_once('/') {
            Some((addr, prefix)) => match (addr.parse::<IpAddr>(), prefix.parse::<u8>()) {
                (Ok(IpAddr::V4(_)), Ok(p)) => p <= 32,
                (Ok(IpAddr::V6(_)), Ok(p)) => p <= 128,
                _ => false,
            },
            None => false,
        }
    }

    #[test]
    fn a_list_of_strings_is_parsed_and_checked_item_by_item() {
        let kind = Kind::Strings {
            item: "a CIDR network such as \"10.0.0.0/8\"",
            check: cidr,
        };
        let value = |text: &str| -> Value {
            let t: Table = format!("v = {text}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            t.get("v").cloned().unwrap_or_else(|| panic!("no v"))
        };
        let ok = kind.parse(&value("[\"10.0.0.0/8\", \"::1/128\"]"));
        assert_eq!(
            ok,
            Ok(FieldValue::Strings(vec![
                "10.0.0.0/8".into(),
                "::1/128".into()
            ]))
        );
        assert_eq!(
            kind.parse(&value("[]")),
            Ok(FieldValue::Strings(Vec::new()))
        );
        assert_eq!(
            kind.parse(&value("[\"10.0.0.0/8\", \"10.0.0.0/33\"]")),
            Err("\"10.0.0.0/33\" (item 2)".into())
        );
        assert_eq!(
            kind.parse(&value("[\"::1/128\", 7]")),
            Err("7 (item 2)".into())
        );
        assert_eq!(
            kind.parse(&value("\"10.0.0.0/8\"")),
            Err("\"10.0.0.0/8\"".into())
        );
        assert_eq!(
            kind.expected(),
            "an array of strings, each a CIDR network such as \"10.0.0.0/8\""
        );
        // Back to TOML, and in and out of a `Vec<String>` field.
        let list = FieldValue::Strings(vec!["10.0.0.0/8".into()]);
        assert_eq!(list.to_toml().to_string(), "[\"10.0.0.0/8\"]");
        assert_eq!(kind.parse(&list.to_toml()), Ok(list.clone()));
        let stored: Option<Vec<String>> = Stored::from_value(list.clone());
        assert_eq!(stored.as_ref().and_then(Stored::to_value), Some(list));
        assert_eq!(
            <Vec<String> as Stored>::from_value(FieldValue::Int(1)),
            None
        );
        // A flag given twice is two items.
        let f = Field::new(
            "trusted_networks",
            Section::Network,
            kind,
            Slot {
                get: |_| None,
                set: |_, _| false,
            },
            "test only",
        );
        assert_eq!(
            f.flag_value(&["10.0.0.0/8".into(), "::1/128".into()])
                .to_string(),
            "[\"10.0.0.0/8\", \"::1/128\"]"
        );
    }

    #[test]
    fn flag_values_become_what_a_file_would_hold() {
        let port = field(Section::Server, "port").unwrap_or_else(|| panic!("port"));
        assert_eq!(port.flag_value(&["70000".into()]), Value::Integer(70_000));
        assert_eq!(port.flag_value(&[" 5 ".into()]), Value::Integer(5));
        assert_eq!(
            port.flag_value(&["abc".into()]),
            Value::String("abc".into())
        );
        let bind = field(Section::Network, "bind").unwrap_or_else(|| panic!("bind"));
        assert_eq!(bind.flag_value(&["7".into()]), Value::String("7".into()));
    }
}
