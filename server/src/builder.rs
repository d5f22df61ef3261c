//! The library entry point: build a RAIDA server on raida-net.
//!
//! [`ServerBuilder`] takes the configuration, the commands to register and the key
//! store (or where the default disk store lives), binds every socket, starts the
//! workers, and returns a [`Server`] that reports its bound addresses, serves until it
//! is shut down (by a signal, or from any thread through a [`ShutdownHandle`]), and
//! drains what is in flight exactly as SIGTERM does.
//!
//! [`ShutdownHandle`]: crate::ShutdownHandle

use std::path::PathBuf;
use std::sync::Arc;

use raida_core::config::Config;
use raida_core::{Command, CommandRegistry, KeyStore, RegisterError, Runs};
use raida_store::{DiskStore, StoreConfig};

use crate::server::Server;

/// Builds a RAIDA server: configuration, commands, key store, signals.
///
/// ```no_run
/// use std::sync::Arc;
/// use raida_core::config::Config;
/// use raida_core::{Command, RequestContext, Status, StatusByte};
/// use raida_server::ServerBuilder;
///
/// /// Group 15, command 7: answers the payload back.
/// #[derive(Debug)]
/// struct Mirror;
///
/// impl Command for Mirror {
///     fn run(&self, ctx: &RequestContext<'_>, out: &mut Vec<u8>) -> StatusByte {
///         out.extend_from_slice(ctx.payload);
///         Status::Success.into()
///     }
/// }
///
/// let config = Config::default();
/// let server = ServerBuilder::new(config)
///     .data_root("/opt/raida/14")
///     .command(15, 7, Arc::new(Mirror))
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
/// PROTOCOL.md section 8a: `raida_commands`), serves the on-disk key store under the
/// data root (`<data root>/Data`, section 10; [`raida_store::DiskStore`], its log in
/// `<data root>/raida-store.wal`, recovered when the server starts, its freshness check
/// on a thread named `raida-store-watch`), and installs handlers for SIGINT and SIGTERM
/// (the first drains, the second exits at once).
#[must_use]
pub struct ServerBuilder {
    config: Config,
    data_root: PathBuf,
    commands: Vec<(u8, u8, Arc<dyn Command>)>,
    store: Option<Store>,
    signals: bool,
    auth_commands: bool,
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
            .field("auth_commands", &self.auth_commands)
            .finish_non_exhaustive()
    }
}

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
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
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let what = what.into();
        move |source| BuildError::Io { what, source }
    }
}

impl ServerBuilder {
    /// A builder for a server with `config`, the built-in commands, the disk key store
    /// under the current directory, and signal handlers.
    pub fn new(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            data_root: PathBuf::from("."),
            commands: Vec::new(),
            store: None,
            signals: true,
            auth_commands: true,
        }
    }

    /// The directory holding `Data/` for the default disk key store.
    pub fn data_root(mut self, dir: impl Into<PathBuf>) -> ServerBuilder {
        self.data_root = dir.into();
        self
    }

    /// Registers `handler` for (`group`, `command`). Taking a pair that has a handler
    /// (a built-in, or one registered before) is an error when building, never a
    /// silent replacement.
    pub fn command(mut self, group: u8, command: u8, handler: Arc<dyn Command>) -> ServerBuilder {
        self.commands.push((group, command, handler));
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

    /// Whether to install handlers for SIGINT and SIGTERM (default true). An embedder
    /// that owns its signals says false and stops the server through its
    /// [`ShutdownHandle`](crate::ShutdownHandle).
    pub fn handle_signals(mut self, install: bool) -> ServerBuilder {
        self.signals = install;
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
    fn registry(&self) -> Result<CommandRegistry, BuildError> {
        let mut registry = CommandRegistry::with_builtins();
        let auth = if self.auth_commands {
            raida_commands::all(Arc::new(raida_commands::SystemClock))
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

    /// Registers the commands, opens the store, binds the sockets, starts the workers
    /// (and the signal thread, unless told not to): everything but serving.
    pub fn bind(self) -> Result<Server, BuildError> {
        let registry = self.registry()?;
        let long = self
            .commands
            .iter()
            .any(|(_, _, handler)| handler.runs() == Runs::Long);
        let (store, watched): (Arc<dyn KeyStore>, _) = match self.store {
            Some(Store::Any(store)) => (store, None),
            Some(Store::Disk(disk)) => (Arc::clone(&disk) as Arc<dyn KeyStore>, Some(disk)),
            None => {
                let disk = Arc::new(open_disk_store(&self.config, &self.data_root)?);
                (Arc::clone(&disk) as Arc<dyn KeyStore>, Some(disk))
            }
        };
        Server::bind(self.config, registry, store, watched, long, self.signals)
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
