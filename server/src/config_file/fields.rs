//! The table of configuration fields: every key of `config.toml` once, with its table,
//! what it accepts, its flag, its one-line doc and where it lives in [`Config`]. The
//! reader, `--print-config`, the flags of `raida-server` and the test of the operators'
//! tables all read [`FIELDS`], so adding a field is one entry here plus its struct field
//! in core (and its value in core's `Default`, which is where every default lives: the
//! table reads it back rather than repeating it). Integer ranges are core's
//! ([`raida_core::config::bounds`]), named here for messages and help, checked by
//! [`Config::validate`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use raida_core::config::{
    bounds, int_expected, Config, CIDR_EXPECTED, CLAIM_FROM_EXPECTED, LOG_EXPECTED,
    RAIDA_SERVER_EXPECTED,
};

use super::flags::Flag;

/// A table of the configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `[server]`: the deployed server's table. Unknown keys are warnings (other modules
    /// of the deployed server add keys there),
    /// [`IGNORED_SERVER_KEYS`](super::IGNORED_SERVER_KEYS) are accepted silently.
    Server,
    /// `[network]`: our own table. Unknown keys are errors (a typo must not pass
    /// silently for a bound).
    Network,
    /// `[healing]`: our own table of the healing commands' bounds (PROTOCOL.md 8b).
    /// Unknown keys are errors, as in `[network]`.
    Healing,
}

impl Section {
    /// Every table, in the order the file (and `--print-config`) lists them.
    pub const ALL: [Section; 3] = [Section::Server, Section::Network, Section::Healing];

    /// The table's name in the file: `server` or `network`.
    pub const fn name(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::Network => "network",
            Section::Healing => "healing",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a field accepts: the type a file's value must have, and what an error says it
/// expected. Whether the value is acceptable beyond its type (a range, a CIDR, not
/// empty) is [`Config::validate`]'s to say.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Kind {
    /// An integer in `min..=max` (core's [`bounds`]).
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
    /// An array of strings (possibly empty), e.g. CIDR networks.
    Strings {
        /// What one item is, for errors, e.g. `a CIDR network such as "10.0.0.0/8"`.
        item: &'static str,
    },
}

impl Kind {
    /// An integer in `range` (one of core's [`bounds`]).
    pub const fn int(range: std::ops::RangeInclusive<u64>) -> Kind {
        Kind::Int {
            min: *range.start(),
            max: *range.end(),
        }
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
            Kind::Int { min, max } => int_expected(&(*min..=*max)),
            Kind::IpAddr => "an IP address such as \"0.0.0.0\" or \"::\"".into(),
            Kind::SocketAddr => "a socket address such as \"127.0.0.1:9100\"".into(),
            Kind::Path => raida_core::config::PATH_EXPECTED.into(),
            Kind::Text { expected } => (*expected).into(),
            Kind::Strings { item } => format!("an array of strings, each {item}"),
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

/// Where a field lives in [`Config`]: read it, and store a checked value (`false` when
/// the value does not fit the field's type, only possible where `usize` is narrower
/// than a range).
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) get: fn(&Config) -> Option<FieldValue>,
    pub(super) set: fn(&mut Config, FieldValue) -> bool,
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
pub(super) trait Stored: Sized {
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
    /// different values is an error ([`ConfigFileError::Conflict`]).
    ///
    /// [`ConfigFileError::Conflict`]: super::ConfigFileError::Conflict
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
    pub(super) slot: Slot,
    /// For an optional field whose unset value is still a value (`port`): that value,
    /// which `--print-config` shows.
    pub(super) effective: Option<fn(&Config) -> FieldValue>,
}

/// The builder steps [`FIELDS`] is written with: `Field::new(..)` and then only what
/// the field has (`.flag(..)`, `.alias(..)`, `.unset(..)`, ...).
impl Field {
    pub(super) const fn new(
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

    /// Stores a checked value; `false` if it does not fit the field's type.
    pub(super) fn store(&self, config: &mut Config, value: FieldValue) -> bool {
        (self.slot.set)(config, value)
    }
}

/// The field named `name` in `section`, if there is one (aliases are not names).
pub fn field(section: Section, name: &str) -> Option<&'static Field> {
    FIELDS
        .iter()
        .find(|f| f.section == section && f.name == name)
}

/// Every configuration field, in the order `--print-config` lists them: `[server]`
/// first, then `[network]`, then `[healing]`.
pub static FIELDS: &[Field] = {
    use Section::{Healing, Network, Server};
    &[
        Field::new(
            "raida_id",
            Server,
            Kind::int(bounds::RAIDA_ID),
            slot!(server.raida_id),
            "This server's raida id; requests must carry it (else 3)",
        )
        .flag("raida-id", "N"),
        Field::new(
            "coin_id",
            Server,
            Kind::int(bounds::COIN_ID),
            slot!(server.coin_id),
            "The coin id requests must carry (else 7)",
        )
        .flag("coin-id", "N"),
        Field::new(
            "port",
            Server,
            Kind::int(bounds::PORT),
            slot!(server.port),
            "TCP and UDP port; 0 picks a free port on which both bind",
        )
        .unset("50000 + raida_id")
        .effective(|c| FieldValue::Int(u64::from(c.server.effective_port())))
        .flag("port", "N"),
        Field::new(
            "threads",
            Server,
            Kind::int(bounds::THREADS),
            slot!(server.threads),
            "Worker threads; 0 = max(8, cores)",
        )
        .note("0 = max(8, cores)")
        .flag("threads", "N"),
        Field::new(
            "udp_effective_payload",
            Server,
            Kind::int(bounds::UDP_EFFECTIVE_PAYLOAD),
            slot!(server.udp_payload_threshold),
            "UDP receive buffer: only this many bytes of a datagram are kept",
        )
        .alias("udp_payload_threshold")
        .flag("udp-payload-threshold", "N"),
        Field::new(
            "raida_servers",
            Server,
            Kind::Strings {
                item: RAIDA_SERVER_EXPECTED,
            },
            slot!(server.raida_servers),
            "The RAIDA's servers, index i = RAIDA i: where fixes call their peers, and \
             the only addresses a ticket claim for RAIDA i is taken from",
        )
        .flag("raida-servers", "HOST:PORT"),
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
            Kind::int(bounds::MAX_CONNECTIONS),
            slot!(network.max_connections),
            "Most open TCP connections; one more is answered 160 and closed",
        )
        .flag("max-connections", "N"),
        Field::new(
            "max_body_size",
            Network,
            Kind::int(bounds::MAX_BODY_SIZE),
            slot!(network.max_body_size),
            "Largest declared request body; a larger one is answered 16",
        )
        .flag("max-body-size", "N"),
        Field::new(
            "socket_timeout_ms",
            Network,
            Kind::int(bounds::SOCKET_TIMEOUT_MS),
            slot!(network.socket_timeout_ms),
            "Close a connection without a complete request (or response) after this long",
        )
        .flag("socket-timeout-ms", "N"),
        Field::new(
            "mod_queue_size",
            Network,
            Kind::int(bounds::MOD_QUEUE_SIZE),
            slot!(network.mod_queue_size),
            "Jobs in flight at most; further requests wait in arrival order",
        )
        .flag("mod-queue-size", "N"),
        Field::new(
            "epoll_timeout_ms",
            Network,
            Kind::int(bounds::EPOLL_TIMEOUT_MS),
            slot!(network.epoll_timeout_ms),
            "Longest wait for events (shorter when a deadline is nearer)",
        ),
        Field::new(
            "events_per_wait",
            Network,
            Kind::int(bounds::EVENTS_PER_WAIT),
            slot!(network.events_per_wait),
            "Events taken from one wait",
        ),
        Field::new(
            "keepalive_idle_s",
            Network,
            Kind::int(bounds::KEEPALIVE_IDLE_S),
            slot!(network.keepalive_idle_s),
            "TCP keep-alive: idle time before the first probe",
        ),
        Field::new(
            "keepalive_interval_s",
            Network,
            Kind::int(bounds::KEEPALIVE_INTERVAL_S),
            slot!(network.keepalive_interval_s),
            "TCP keep-alive: time between probes",
        ),
        Field::new(
            "keepalive_probes",
            Network,
            Kind::int(bounds::KEEPALIVE_PROBES),
            slot!(network.keepalive_probes),
            "TCP keep-alive: probes before the connection is dropped",
        ),
        Field::new(
            "linger_ms",
            Network,
            Kind::int(bounds::LINGER_MS),
            slot!(network.linger_ms),
            "After the response, how long unread client bytes are read and discarded before closing",
        ),
        Field::new(
            "drain_timeout_ms",
            Network,
            Kind::int(bounds::DRAIN_TIMEOUT_MS),
            slot!(network.drain_timeout_ms),
            "On SIGINT/SIGTERM, how long requests in flight may take before the server exits anyway",
        ),
        Field::new(
            "io_threads",
            Network,
            Kind::int(bounds::IO_THREADS),
            slot!(network.io_threads),
            "Event-loop threads, each with its own sockets on the port (SO_REUSEPORT) and its \
             own engine, sharing the workers and the key store",
        )
        .flag("io-threads", "N"),
        Field::new(
            "busy_poll_us",
            Network,
            Kind::int(bounds::BUSY_POLL_US),
            slot!(network.busy_poll_us),
            "Microseconds an event loop polls for events without blocking before it sleeps; 0 blocks at once",
        )
        .flag("busy-poll-us", "US"),
        Field::new(
            "turn_budget",
            Network,
            Kind::int(bounds::TURN_BUDGET),
            slot!(network.turn_budget),
            "Most connections accepted, and most datagrams read, per event-loop turn",
        )
        .flag("turn-budget", "N"),
        Field::new(
            "key_page_cache_pages",
            Network,
            Kind::int(bounds::KEY_PAGE_CACHE_PAGES),
            slot!(network.key_page_cache_pages),
            "Key pages kept in memory at most (17 KB each; filled as pages are looked up)",
        ),
        Field::new(
            "store_refresh_ms",
            Network,
            Kind::int(bounds::STORE_REFRESH),
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
            Kind::int(bounds::MAX_BUFFERED_BYTES),
            slot!(network.max_buffered_bytes),
            "Request body bytes buffered at most over every connection; body reads pause \
             when it is spent",
        )
        .flag("max-buffered-bytes", "BYTES"),
        Field::new(
            "max_connections_per_ip",
            Network,
            Kind::int(bounds::MAX_CONNECTIONS_PER_IP),
            slot!(network.max_connections_per_ip),
            "Open connections one client (IPv4 address, IPv6 /64) holds at most; one more \
             is answered 160; 0 = no limit",
        )
        .flag("max-connections-per-ip", "N"),
        Field::new(
            "trusted_networks",
            Network,
            Kind::Strings {
                item: CIDR_EXPECTED,
            },
            slot!(network.trusted_networks),
            "Networks exempt from the per-client limits (CIDR)",
        )
        .flag("trusted-networks", "CIDR"),
        Field::new(
            "rate_limit_per_s",
            Network,
            Kind::int(bounds::RATE_LIMIT_PER_S),
            slot!(network.rate_limit_per_s),
            "Requests a second one client may make; over it they are answered 160; 0 = no \
             rate limit",
        )
        .flag("rate-limit", "N"),
        Field::new(
            "rate_limit_burst",
            Network,
            Kind::int(bounds::RATE_LIMIT_BURST),
            slot!(network.rate_limit_burst),
            "Requests one client may make at once under rate_limit_per_s",
        )
        .flag("rate-burst", "N"),
        Field::new(
            "long_jobs",
            Network,
            Kind::int(bounds::LONG_JOBS),
            slot!(network.long_jobs),
            "Jobs of long-running commands one event loop runs at once, on threads of \
             their own",
        ),
        Field::new(
            "log",
            Network,
            Kind::Text {
                expected: LOG_EXPECTED,
            },
            slot!(network.log),
            "A tracing filter, e.g. \"info,raida_core=debug\"",
        )
        .unset("RUST_LOG, else \"info\""),
        Field::new(
            "ticket_lifetime_s",
            Healing,
            Kind::int(bounds::TICKET_LIFETIME_S),
            slot!(healing.ticket_lifetime_s),
            "Seconds a ticket lives after it was issued; an expired ticket answers 43",
        )
        .flag("ticket-lifetime-s", "S"),
        Field::new(
            "max_tickets",
            Healing,
            Kind::int(bounds::MAX_TICKETS),
            slot!(healing.max_tickets),
            "Live tickets at most; a get_ticket needing one more answers 42",
        )
        .flag("max-tickets", "N"),
        Field::new(
            "max_ticket_coins",
            Healing,
            Kind::int(bounds::MAX_TICKET_COINS),
            slot!(healing.max_ticket_coins),
            "Coins held by all live tickets at most (21 bytes each); beyond it get_ticket \
             answers 42",
        )
        .flag("max-ticket-coins", "N"),
        Field::new(
            "peer_timeout_ms",
            Healing,
            Kind::int(bounds::PEER_TIMEOUT_MS),
            slot!(healing.peer_timeout_ms),
            "Every peer call of a fix ends this long after the fix began, connect included",
        )
        .flag("peer-timeout-ms", "MS"),
        Field::new(
            "max_fixes",
            Healing,
            Kind::int(bounds::MAX_FIXES),
            slot!(healing.max_fixes),
            "Fixes in flight at most; one more answers 160",
        )
        .flag("max-fixes", "N"),
        Field::new(
            "claim_from",
            Healing,
            Kind::Strings {
                item: CLAIM_FROM_EXPECTED,
            },
            slot!(healing.claim_from),
            "IP addresses besides those of raida_servers a ticket claim may come from",
        )
        .flag("claim-from", "ADDR"),
    ]
};
