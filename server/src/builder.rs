//! The library entry point: build a RAIDA server on raida-net.
//!
//! [`ServerBuilder`] takes the configuration, the commands to register and the key
//! store (or where the default disk store lives), binds every socket, starts the
//! workers, and returns a [`Server`] that reports its bound addresses, serves until it
//! is shut down (from any thread through a [`ShutdownHandle`], or by a signal when the
//! builder was told to handle them), and drains what is in flight.
//!
//! [`ShutdownHandle`]: crate::ShutdownHandle

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raida_core::config::{Config, ConfigError, ValidConfig};
use raida_core::keys::MemoryKeyStore;
use raida_core::{Command, CommandRegistry, KeyStore, RegisterError, Runs};
use raida_io_epoll::{Driver, DriverConfig};
use raida_store::{DiskStore, StoreConfig};

use crate::metrics::MetricsServer;
use crate::server::{Server, StoreWatch};
use crate::signals;

/// Builds a RAIDA server: configuration, commands, key store, and what it does to its
/// process (signals, the open files limit), each an explicit choice.
///
/// ```no_run
/// use raida_server::{Config, Reply, RequestContext, ServerBuilder};
///
/// let mut config = Config::default();
/// config.server.raida_id = 14;
/// config.network.max_connections = 10_000;
/// // `bind` validates it first: an invalid configuration is `BuildError::Config`.
/// let server = ServerBuilder::new(config)
///     .data_root("/opt/raida/14")
///     // Group 15, command 7: answers the payload back.
///     .command(15, 7, |req: &RequestContext<'_>| Reply::success(req.payload))
///     .bind()?;
/// println!("listening tcp={} udp={}", server.tcp_addr(), server.udp_addr());
/// let stop = server.shutdown_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(60));
///     stop.shutdown(); // the same drain as SIGTERM
/// });
/// server.serve()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// By default the server registers the built-in commands (echo 0/0, version 0/1) and
/// the authentication commands (detect 1/10, detect_sum 1/11, pown 1/20, pown_sum 1/21,
/// PROTOCOL.md section 8a: `raida_commands`). Its key store is the one given
/// ([`store`](Self::store), [`disk_store`](Self::disk_store)); else the on-disk store
/// under the data root ([`data_root`](Self::data_root), else `[network] data_root` of
/// the configuration, a relative path taken from the current directory):
/// `<data root>/Data` (section 10; [`raida_store::DiskStore`], its log in
/// `<data root>/raida-store.wal`, recovered when the server starts, its freshness check
/// on a thread named `raida-store-watch`); else, with no data root at all, an empty
/// memory store (no coin, no locker: only requests of type 0 find their key).
///
/// It changes nothing of its process unless told to: no signal handlers
/// ([`handle_signals`](Self::handle_signals)), no change to the open files limit
/// ([`raise_fd_limit`](Self::raise_fd_limit)). The `raida-server` binary turns both on.
#[must_use]
pub struct ServerBuilder {
    config: Config,
    data_root: Option<PathBuf>,
    commands: Vec<(u8, u8, Arc<dyn Command>)>,
    store: Option<Store>,
    signals: bool,
    raise_fd_limit: bool,
    auth_commands: bool,
    peers: Option<PeerSettings>,
}

/// What a builder was told about the peers a fix calls (`[healing]`).
#[derive(Clone, Debug)]
struct PeerSettings {
    peers: Vec<Option<SocketAddr>>,
    peer_timeout: Duration,
    max_fixes: usize,
}

/// The store a builder was given.
enum Store {
    /// Any store; nothing runs beside it.
    Any(Arc<dyn KeyStore>),
    /// A disk store, whose background steps the server runs.
    Disk(Arc<DiskStore>),
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let commands: Vec<(u8, u8)> = self.commands.iter().map(|(g, c, _)| (*g, *c)).collect();
        f.debug_struct("ServerBuilder")
            .field("data_root", &self.data_root)
            .field("commands", &commands)
            .field("store", &self.store.is_some())
            .field("signals", &self.signals)
            .field("raise_fd_limit", &self.raise_fd_limit)
            .field("auth_commands", &self.auth_commands)
            .finish_non_exhaustive()
    }
}

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid ([`Config::validate`] refused it): a value out of
    /// range, a malformed network, more `io_threads` than connections or jobs.
    #[error("configuration: {0}")]
    Config(#[source] ConfigError),
    /// A command could not be registered: a group above 15, or a (group, command)
    /// that has a handler already (a built-in, or one registered twice).
    #[error("command ({group}, {command}): {source}")]
    Command {
        /// The group.
        group: u8,
        /// The command.
        command: u8,
        /// Why.
        #[source]
        source: RegisterError,
    },
    /// The default key store could not be opened.
    #[error("key store: {0}")]
    Store(#[source] raida_store::OpenError),
    /// A socket, the poller, a thread or the signal handlers could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let what = what.into();
        move |source| BuildError::Io { what, source }
    }
}

impl ServerBuilder {
    /// A builder for a server with `config`, the built-in and authentication commands,
    /// the store under `[network] data_root` when the configuration has one; no signal
    /// handlers, the open files limit as it is.
    pub fn new(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            data_root: None,
            commands: Vec::new(),
            store: None,
            signals: false,
            raise_fd_limit: false,
            auth_commands: true,
            peers: None,
        }
    }

    /// The peers the fix command calls (PROTOCOL.md 8b: `raida_servers` resolved,
    /// indexed by RAIDA index; `None` where there is no address), every call ending
    /// `peer_timeout` after its fix began, and at most `max_fixes` fixes waiting for
    /// their peers server-wide (split among the event loops as the other bounds are).
    /// Without it a fix calls nobody and answers 242.
    pub fn peers(
        mut self,
        peers: Vec<Option<SocketAddr>>,
        peer_timeout: Duration,
        max_fixes: usize,
    ) -> ServerBuilder {
        self.peers = Some(PeerSettings {
            peers,
            peer_timeout,
            max_fixes,
        });
        self
    }

    /// The directory holding `Data/` for the default disk key store, instead of the
    /// configuration's `[network] data_root`.
    pub fn data_root(mut self, dir: impl Into<PathBuf>) -> ServerBuilder {
        self.data_root = Some(dir.into());
        self
    }

    /// Registers `handler` for (`group`, `command`): any [`Command`], a closure
    /// `Fn(&RequestContext<'_>) -> R` where `R: Into<`[`Reply`](crate::Reply)`>`
    /// included, or an `Arc` of one. Taking a pair that has a handler (a built-in, or
    /// one registered before) is an error when building, never a silent replacement.
    pub fn command(
        mut self,
        group: u8,
        command: u8,
        handler: impl Command + 'static,
    ) -> ServerBuilder {
        self.commands.push((group, command, Arc::new(handler)));
        self
    }

    /// Serves keys from `store` (shared by every event loop and every handler) instead
    /// of the disk store under the data root.
    pub fn store(mut self, store: Arc<dyn KeyStore>) -> ServerBuilder {
        self.store = Some(Store::Any(store));
        self
    }

    /// Serves keys from a disk store the caller opened (e.g. to register lockers in
    /// it first) instead of opening the one under the data root; the server runs its
    /// background steps (freshness, checkpoints) on a thread named `raida-store-watch`,
    /// as for the default store.
    pub fn disk_store(mut self, store: Arc<DiskStore>) -> ServerBuilder {
        self.store = Some(Store::Disk(store));
        self
    }

    /// Whether to install handlers for SIGINT and SIGTERM (default false): the first
    /// drains as [`ShutdownHandle::shutdown`](crate::ShutdownHandle::shutdown) does,
    /// the second exits the process at once (status 128 + the signal). A program that
    /// owns its signals leaves this off and stops the server through its handle.
    pub fn handle_signals(mut self, install: bool) -> ServerBuilder {
        self.signals = install;
        self
    }

    /// Whether to raise the process's soft limit of open files to its hard limit
    /// (default false), so `max_connections` is not capped by a low default; a failure
    /// is logged, not fatal.
    pub fn raise_fd_limit(mut self, raise: bool) -> ServerBuilder {
        self.raise_fd_limit = raise;
        self
    }

    /// Whether to serve the authentication commands of `raida_commands` (default true):
    /// a server that is not a coin RAIDA, or registers its own, says false.
    pub fn auth_commands(mut self, serve: bool) -> ServerBuilder {
        self.auth_commands = serve;
        self
    }

    /// The commands the server will serve: the built-ins (echo, version), the
    /// authentication commands (unless told not to), then what was registered, in
    /// order.
    /// The healing commands are built from `config`'s `[healing]` table and its
    /// `raida_servers`, resolved here (once, at start).
    fn registry(
        &self,
        config: &ValidConfig,
        peers: &crate::peers::RaidaServers,
    ) -> Result<CommandRegistry, BuildError> {
        let mut registry = CommandRegistry::with_builtins();
        let auth = if self.auth_commands {
            let healing = raida_commands::HealingSetup {
                ticket_lifetime: config.healing.ticket_lifetime(),
                max_tickets: config.healing.max_tickets,
                max_ticket_coins: config.healing.max_ticket_coins,
                raida_servers: peers.addresses(),
                raida_ips: peers.ips(),
                claim_from: config.claim_from().to_vec(),
            };
            raida_commands::all(Arc::new(raida_commands::SystemClock), healing)
        } else {
            Vec::new()
        };
        for (group, command, handler) in auth.iter().chain(&self.commands) {
            registry
                .register(*group, *command, Arc::clone(handler))
                .map_err(|source| BuildError::Command {
                    group: *group,
                    command: *command,
                    source,
                })?;
        }
        Ok(registry)
    }

    /// Validates the configuration ([`Config::validate`]), registers the commands,
    /// opens the store, binds the sockets, starts the workers, the metrics endpoint
    /// when `[network] metrics_addr` is set, and the signal thread when asked for:
    /// everything but serving. Nothing is opened or bound for an invalid
    /// configuration.
    pub fn bind(self) -> Result<Server, BuildError> {
        let config = self.config.validate().map_err(BuildError::Config)?;
        // `raida_servers`, resolved once at start: the claims' address rule (2/50) and
        // the peers a fix calls (2/80), unless the embedder named the peers itself.
        let resolved = crate::peers::resolve_raida_servers(&config.server.raida_servers);
        let registry = self.registry(&config, &resolved)?;
        if self.raise_fd_limit {
            match raida_io_epoll::raise_fd_limit() {
                Ok(limit) => tracing::debug!("open files limit: {limit}"),
                Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
            }
        }
        let long = self
            .commands
            .iter()
            .any(|(_, _, handler)| handler.runs() == Runs::Long);
        let data_root = self
            .data_root
            .clone()
            .or_else(|| config.network.data_root.clone());
        let (store, watched): (Arc<dyn KeyStore>, _) = match (self.store, data_root) {
            (Some(Store::Any(store)), _) => (store, None),
            (Some(Store::Disk(disk)), _) => (Arc::clone(&disk) as Arc<dyn KeyStore>, Some(disk)),
            (None, Some(root)) => {
                let disk = Arc::new(open_disk_store(&config, &root)?);
                (Arc::clone(&disk) as Arc<dyn KeyStore>, Some(disk))
            }
            (None, None) => (Arc::new(MemoryKeyStore::new()) as Arc<dyn KeyStore>, None),
        };
        let mut driver_config = DriverConfig::from_config(&config, long);
        let from_config = PeerSettings {
            peers: resolved.addresses(),
            peer_timeout: config.healing.peer_timeout(),
            max_fixes: config.healing.max_fixes,
        };
        {
            let settings = self.peers.as_ref().unwrap_or(&from_config);
            let loops = driver_config.engines.len();
            for (i, engine) in driver_config.engines.iter_mut().enumerate() {
                *engine = engine.clone().with_peers(
                    settings.peers.clone(),
                    settings.peer_timeout,
                    raida_core::config::share(settings.max_fixes, loops, i),
                );
            }
        }
        let threads = driver_config.workers;
        let driver = Driver::bind(driver_config, registry, Arc::clone(&store)).map_err(|e| {
            BuildError::Io {
                what: e.what.to_string(),
                source: e.source,
            }
        })?;
        // Stopped (its thread joined) when the server is dropped, after the loops.
        let metrics = match config.network.metrics_addr {
            Some(addr) => Some(
                MetricsServer::start(addr, driver.snapshots())
                    .map_err(BuildError::io("metrics endpoint"))?,
            ),
            None => None,
        };
        let watch = watched
            .map(|disk| StoreWatch::spawn(disk, driver.epoch(), driver.shutdown_handle()))
            .transpose()
            .map_err(BuildError::io("cannot start the raida-store-watch thread"))?;
        if self.signals {
            signals::spawn(driver.shutdown_handle())
                .map_err(BuildError::io("cannot install signal handlers"))?;
        }
        Ok(Server::new(driver, metrics, store, threads, watch))
    }
}

/// The disk store under `data_root` as `config` sizes it: `[network]
/// key_page_cache_pages` and `store_refresh_ms`. Replays its log first.
pub(crate) fn open_disk_store(
    config: &Config,
    data_root: &std::path::Path,
) -> Result<DiskStore, BuildError> {
    let network = &config.network;
    let store_config = StoreConfig::new(network.key_page_cache_pages, network.store_refresh());
    DiskStore::open(data_root, store_config).map_err(BuildError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raida_core::keys::MemoryKeyStore;

    /// An invalid configuration is refused before anything is opened or bound, naming
    /// the key: a malformed trusted network is never dropped on the way to the engine.
    #[test]
    fn an_invalid_configuration_is_a_build_error() {
        let mut config = Config::default();
        config.server.port = Some(0);
        config.network.bind = std::net::Ipv4Addr::LOCALHOST.into();
        config.network.trusted_networks = vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()];
        let built = ServerBuilder::new(config.clone())
            .handle_signals(false)
            .store(Arc::new(MemoryKeyStore::new()))
            .bind();
        match built {
            Err(BuildError::Config(e)) => {
                assert_eq!(e.key(), "trusted_networks");
                assert_eq!(
                    BuildError::Config(e).to_string(),
                    "configuration: [network] trusted_networks: expected a CIDR network \
                     such as \"10.0.0.0/8\", found \"10.0.0.0/33\" (item 2)"
                );
            }
            Err(other) => panic!("another error: {other}"),
            Ok(_) => panic!("built with a bad network"),
        }
        config.network.trusted_networks.pop();
        config.network.io_threads = 2;
        config.network.mod_queue_size = 1;
        let built = ServerBuilder::new(config)
            .handle_signals(false)
            .store(Arc::new(MemoryKeyStore::new()))
            .bind();
        assert!(
            matches!(&built, Err(BuildError::Config(e)) if e.key() == "io_threads"),
            "{:?}",
            built.as_ref().err()
        );
    }
}
