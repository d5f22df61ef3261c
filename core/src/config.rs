//! Configuration (PROTOCOL.md section 10a).
//!
//! The server reads the deployed C server's `config.toml` as it is. Its `[server]`
//! table keeps its meaning: `raida_id`, `coin_id`, `port`, `threads` and
//! `udp_effective_payload` (also accepted as `udp_payload_threshold`) are honoured; the
//! keys that belong to other modules ([`IGNORED_SERVER_KEYS`]) are accepted whatever
//! their type and never required. Every limit of the network layer is a field of our
//! own `[network]` table, defaulting to the values of DESIGN.md ("Defaults").
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

/// Upper bound for `key_page_cache_pages`: 16,384 pages of 17 KiB (`PAGE_BYTES`), about
/// 285 MB, room for a whole store (about 15,000 pages); a larger cache could only fill
/// up with absences, at memory a small machine does not have.
pub const MAX_KEY_PAGE_CACHE_PAGES: usize = 16_384;

/// Name of the deployed server's key for [`ServerConfig::udp_payload_threshold`].
const UDP_KEY: &str = "udp_effective_payload";
/// Another accepted name for [`UDP_KEY`].
const UDP_ALIAS: &str = "udp_payload_threshold";

/// The whole configuration: the deployed server's `[server]` table and our `[network]`
/// table.
///
/// `Serialize` writes keys [`Config::from_toml_str`] reads back (unset optional values
/// are left out); [`Config::to_toml_string`] is the annotated form for
/// `--print-config`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Table `[server]`: the deployed server's keys.
    pub server: ServerConfig,
    /// Table `[network]`: the limits and settings of this network layer.
    pub network: NetworkConfig,
}

/// Table `[server]`, the deployed server's keys with their meaning unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Key `threads`: command worker threads, 0..=[`MAX_THREADS`] (each is an OS thread
    /// with its own stack; more than that only adds switching); 0 (the default) means
    /// max(8, cores), see [`ServerConfig::effective_threads`].
    pub threads: usize,
    /// Key `udp_effective_payload` (also accepted as `udp_payload_threshold`): the UDP
    /// receive buffer; only this many bytes of a datagram are kept (PROTOCOL.md
    /// section 7). 32..=[`MAX_UDP_PAYLOAD`] (no datagram is larger), default 1024.
    #[serde(rename = "udp_effective_payload")]
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
/// failing (or allocating) at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    /// Key pages (PROTOCOL.md section 10) the key store keeps in memory.
    /// 1..=[`MAX_KEY_PAGE_CACHE_PAGES`] (see there), default 1024 (about 17 MB).
    pub key_page_cache_pages: usize,
    /// How long a cached key page is trusted before it is read again, since other
    /// modules change pages while the server runs. 0 reads on every lookup; at most
    /// [`MAX_MILLIS`]; default 1000.
    pub key_page_ttl_ms: u64,
    /// Directory holding `Data/`. `None` (the default) means the config file's
    /// directory; a relative path is taken relative to it. See [`Config::data_root`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_root: Option<PathBuf>,
    /// Address of the metrics endpoint; `None` (the default) serves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// A `tracing` filter (e.g. `"info,raida_core=debug"`); `None` (the default) means
    /// `RUST_LOG`, else `info`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
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
            key_page_cache_pages: 1_024,
            key_page_ttl_ms: 1_000,
            data_root: None,
            metrics_addr: None,
            log: None,
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

    /// `key_page_ttl_ms` as a duration.
    pub fn key_page_ttl(&self) -> Duration {
        Duration::from_millis(self.key_page_ttl_ms)
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
        /// Its value.
        value: usize,
        /// The other name.
        other_key: &'static str,
        /// Its value.
        other_value: usize,
    },
    /// A key's value is more than another key's value allows.
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

/// Keys of `[network]`, in declaration order.
const NETWORK_KEYS: &[&str] = &[
    "bind",
    "max_connections",
    "max_body_size",
    "socket_timeout_ms",
    "mod_queue_size",
    "epoll_timeout_ms",
    "events_per_wait",
    "keepalive_idle_s",
    "keepalive_interval_s",
    "keepalive_probes",
    "linger_ms",
    "drain_timeout_ms",
    "io_threads",
    "busy_poll_us",
    "turn_budget",
    "key_page_cache_pages",
    "key_page_ttl_ms",
    "data_root",
    "metrics_addr",
    "log",
];

/// Keys of `[server]` this module honours.
const SERVER_KEYS: &[&str] = &["raida_id", "coin_id", "port", "threads", UDP_KEY, UDP_ALIAS];

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
            match key.as_str() {
                "server" => {
                    let t = Reader::table(file, "server", value)?;
                    config.server = t.server(&mut warnings)?;
                }
                "network" => {
                    let t = Reader::table(file, "network", value)?;
                    config.network = t.network()?;
                }
                _ => warnings.push(ConfigWarning {
                    file: file.to_path_buf(),
                    table: None,
                    key: key.clone(),
                }),
            }
        }
        check_shares(&config.network, file)?;
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
    /// Every key is listed; unset optional keys appear as comments stating what
    /// applies instead (an unset `port` as `# port = <effective port>`). The output
    /// parses back to an equal `Config` (a `data_root` that is not UTF-8 is written
    /// lossily).
    pub fn to_toml_string(&self) -> String {
        let s = &self.server;
        let n = &self.network;
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line("[server]".into());
        line(format!("raida_id = {}", s.raida_id));
        line(format!("coin_id = {}", s.coin_id));
        match s.port {
            Some(p) => line(format!("port = {p}")),
            None => line(format!(
                "# port = {}  (unset: 50000 + raida_id)",
                s.effective_port()
            )),
        }
        line(format!("threads = {}  # 0 = max(8, cores)", s.threads));
        line(format!("{UDP_KEY} = {}", s.udp_payload_threshold));
        line(String::new());
        line("[network]".into());
        line(format!("bind = {}", quote(&n.bind.to_string())));
        line(format!("max_connections = {}", n.max_connections));
        line(format!("max_body_size = {}", n.max_body_size));
        line(format!("socket_timeout_ms = {}", n.socket_timeout_ms));
        line(format!("mod_queue_size = {}", n.mod_queue_size));
        line(format!("epoll_timeout_ms = {}", n.epoll_timeout_ms));
        line(format!("events_per_wait = {}", n.events_per_wait));
        line(format!("keepalive_idle_s = {}", n.keepalive_idle_s));
        line(format!("keepalive_interval_s = {}", n.keepalive_interval_s));
        line(format!("keepalive_probes = {}", n.keepalive_probes));
        line(format!("linger_ms = {}", n.linger_ms));
        line(format!("drain_timeout_ms = {}", n.drain_timeout_ms));
        line(format!("io_threads = {}", n.io_threads));
        line(format!("busy_poll_us = {}", n.busy_poll_us));
        line(format!("turn_budget = {}", n.turn_budget));
        line(format!("key_page_cache_pages = {}", n.key_page_cache_pages));
        line(format!("key_page_ttl_ms = {}", n.key_page_ttl_ms));
        match &n.data_root {
            Some(p) => line(format!("data_root = {}", quote(&p.to_string_lossy()))),
            None => line("# data_root unset: the config file's directory".into()),
        }
        match &n.metrics_addr {
            Some(a) => line(format!("metrics_addr = {}", quote(&a.to_string()))),
            None => line("# metrics_addr unset: no metrics endpoint".into()),
        }
        match &n.log {
            Some(f) => line(format!("log = {}", quote(f))),
            None => line("# log unset: RUST_LOG, else \"info\"".into()),
        }
        out
    }
}

/// Each event loop gets a [`share`] of `max_connections` and `mod_queue_size`: none may
/// be 0, so `io_threads` is at most both.
fn check_shares(n: &NetworkConfig, file: &Path) -> Result<(), ConfigError> {
    for (limit, limit_value) in [
        ("max_connections", n.max_connections),
        ("mod_queue_size", n.mod_queue_size),
    ] {
        if n.io_threads > limit_value {
            return Err(ConfigError::Exceeds {
                file: file.to_path_buf(),
                table: "network",
                key: "io_threads",
                value: n.io_threads as u64,
                limit,
                limit_value: limit_value as u64,
                reason: "each event loop gets a share of it, and a loop whose share is 0 \
                         could never serve",
            });
        }
    }
    Ok(())
}

/// `s` as a TOML basic string.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
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
    name: &'static str,
    table: &'a Table,
}

impl<'a> Reader<'a> {
    fn table(file: &'a Path, name: &'static str, value: &'a Value) -> Result<Self, ConfigError> {
        match value {
            Value::Table(table) => Ok(Reader { file, name, table }),
            other => Err(ConfigError::NotATable {
                file: file.to_path_buf(),
                key: name,
                found: show(other),
            }),
        }
    }

    fn invalid(
        &self,
        key: &'static str,
        expected: impl Into<String>,
        found: &Value,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_path_buf(),
            table: self.name,
            key,
            expected: expected.into(),
            found: show(found),
        }
    }

    /// Integer key in `min..=max`, `None` if absent.
    fn uint(&self, key: &'static str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.table.get(key) else {
            return Ok(None);
        };
        let expected = || format!("an integer {min}..={max}");
        match value {
            Value::Integer(i) => match u64::try_from(*i) {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.invalid(key, expected(), value)),
            },
            _ => Err(self.invalid(key, expected(), value)),
        }
    }

    /// As [`Reader::uint`], converted to `T` (whose range must hold `min..=max`).
    fn get<T: TryFrom<u64>>(
        &self,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Option<T>, ConfigError> {
        match self.uint(key, min, max)? {
            None => Ok(None),
            Some(n) => match T::try_from(n) {
                Ok(v) => Ok(Some(v)),
                // Only reachable where usize is narrower than the range asked for.
                Err(_) => {
                    let found = Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
                    Err(self.invalid(key, "an integer this platform can hold", &found))
                }
            },
        }
    }

    /// Sets `*field` from integer key `key` in `min..=max`, if present.
    fn set<T: TryFrom<u64>>(
        &self,
        field: &mut T,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Result<(), ConfigError> {
        if let Some(v) = self.get(key, min, max)? {
            *field = v;
        }
        Ok(())
    }

    /// String key parsed by `parse`, `None` if absent.
    fn parsed<T>(
        &self,
        key: &'static str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(value @ Value::String(s)) => match parse(s) {
                Some(v) => Ok(Some(v)),
                None => Err(self.invalid(key, expected, value)),
            },
            Some(value) => Err(self.invalid(key, expected, value)),
        }
    }

    fn server(&self, warnings: &mut Vec<ConfigWarning>) -> Result<ServerConfig, ConfigError> {
        let mut s = ServerConfig::default();
        self.set(&mut s.raida_id, "raida_id", 0, u64::from(RAIDA_COUNT) - 1)?;
        self.set(&mut s.coin_id, "coin_id", 0, u64::from(u16::MAX))?;
        s.port = self.get("port", 0, u64::from(u16::MAX))?;
        self.set(&mut s.threads, "threads", 0, MAX_THREADS as u64)?;

        let udp_range = (32, MAX_UDP_PAYLOAD as u64);
        let primary: Option<usize> = self.get(UDP_KEY, udp_range.0, udp_range.1)?;
        let alias: Option<usize> = self.get(UDP_ALIAS, udp_range.0, udp_range.1)?;
        match (primary, alias) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConfigError::Conflict {
                    file: self.file.to_path_buf(),
                    table: self.name,
                    key: UDP_KEY,
                    value: a,
                    other_key: UDP_ALIAS,
                    other_value: b,
                })
            }
            (Some(v), _) | (None, Some(v)) => s.udp_payload_threshold = v,
            (None, None) => {}
        }

        for key in self.table.keys() {
            if !SERVER_KEYS.contains(&key.as_str()) && !IGNORED_SERVER_KEYS.contains(&key.as_str())
            {
                warnings.push(ConfigWarning {
                    file: self.file.to_path_buf(),
                    table: Some(self.name),
                    key: key.clone(),
                });
            }
        }
        Ok(s)
    }

    fn network(&self) -> Result<NetworkConfig, ConfigError> {
        if let Some(key) = self
            .table
            .keys()
            .find(|k| !NETWORK_KEYS.contains(&k.as_str()))
        {
            return Err(ConfigError::UnknownKey {
                file: self.file.to_path_buf(),
                table: self.name,
                key: key.clone(),
                suggestion: suggest(key, NETWORK_KEYS),
            });
        }
        let mut n = NetworkConfig::default();
        if let Some(bind) =
            self.parsed("bind", "an IP address such as \"0.0.0.0\" or \"::\"", |s| {
                s.parse().ok()
            })?
        {
            n.bind = bind;
        }
        self.set(
            &mut n.max_connections,
            "max_connections",
            1,
            MAX_CONNECTIONS_LIMIT as u64,
        )?;
        self.set(
            &mut n.max_body_size,
            "max_body_size",
            2,
            MAX_BODY_SIZE_LIMIT as u64,
        )?;
        self.set(&mut n.socket_timeout_ms, "socket_timeout_ms", 1, MAX_MILLIS)?;
        self.set(
            &mut n.mod_queue_size,
            "mod_queue_size",
            1,
            MAX_MOD_QUEUE_SIZE as u64,
        )?;
        self.set(&mut n.epoll_timeout_ms, "epoll_timeout_ms", 1, MAX_MILLIS)?;
        self.set(&mut n.events_per_wait, "events_per_wait", 1, 1_000_000)?;
        self.set(&mut n.keepalive_idle_s, "keepalive_idle_s", 1, 32_767)?;
        self.set(
            &mut n.keepalive_interval_s,
            "keepalive_interval_s",
            1,
            32_767,
        )?;
        self.set(&mut n.keepalive_probes, "keepalive_probes", 1, 127)?;
        self.set(&mut n.linger_ms, "linger_ms", 0, MAX_MILLIS)?;
        self.set(&mut n.drain_timeout_ms, "drain_timeout_ms", 0, MAX_MILLIS)?;
        self.set(&mut n.io_threads, "io_threads", 1, MAX_THREADS as u64)?;
        self.set(&mut n.busy_poll_us, "busy_poll_us", 0, 1_000)?;
        self.set(&mut n.turn_budget, "turn_budget", 1, 1_000_000)?;
        self.set(
            &mut n.key_page_cache_pages,
            "key_page_cache_pages",
            1,
            MAX_KEY_PAGE_CACHE_PAGES as u64,
        )?;
        self.set(&mut n.key_page_ttl_ms, "key_page_ttl_ms", 0, MAX_MILLIS)?;
        n.data_root = self.parsed("data_root", "a non-empty path", |s| {
            (!s.is_empty()).then(|| PathBuf::from(s))
        })?;
        n.metrics_addr = self.parsed(
            "metrics_addr",
            "a socket address such as \"127.0.0.1:9100\"",
            |s| s.parse().ok(),
        )?;
        n.log = self.parsed("log", "a non-empty tracing filter such as \"info\"", |s| {
            (!s.is_empty()).then(|| s.to_string())
        })?;
        Ok(n)
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
}
