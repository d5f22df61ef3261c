//! The driver's public face: bind the sockets and start the workers for a
//! configuration, a command registry and a key store ([`Driver::bind`]), report the
//! bound addresses, run the event loops until stopped ([`Driver::run`]); stop them
//! from any thread ([`ShutdownHandle`]) and read their counters while they run
//! ([`Snapshots`]).
//!
//! The driver decides nothing: how many loops, workers and long-running threads, and
//! each engine's bounds, are the caller's ([`DriverConfig`]); what the caller does
//! not set comes from core ([`DriverConfig::from_config`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};
use raida_core::config::{NetworkConfig, ValidConfig};
use raida_core::metrics::MetricsSnapshot;
use raida_core::{CommandRegistry, Engine, EngineConfig, KeyStore};

use crate::event_loop::{EventLoop, Parts};
use crate::poll::Poller;
use crate::snapshots::{SnapshotReply, SnapshotRequests};
use crate::{sockets, workers};

pub use crate::event_loop::Exit;

/// Snapshot requests waiting for one loop at most (a reader sends one at a time; the
/// bound only keeps a confused caller from queueing without limit).
const PENDING_SNAPSHOTS: usize = 4;

/// What the driver runs, every number decided by its caller.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The address TCP and UDP bind (the same port; port 0 picks a free one).
    pub bind: IpAddr,
    /// The port.
    pub port: u16,
    /// `[network]`: socket options, timeouts, keep-alive, events per wait, busy poll,
    /// drain timeout.
    pub network: NetworkConfig,
    /// One engine configuration per event loop; their number is the number of loops.
    pub engines: Vec<EngineConfig>,
    /// Worker threads for the jobs of commands that run on a worker.
    pub workers: usize,
    /// Threads for the jobs of commands that run long (0 when none does).
    pub long_workers: usize,
    /// The UDP receive buffer: bytes kept of a datagram (`udp_payload_threshold`).
    pub udp_buffer: usize,
}

impl DriverConfig {
    /// What a validated `config` describes: `io_threads` loops, each with its share of the bounds
    /// ([`EngineConfig::for_loop`]); `threads` workers for this machine's cores
    /// ([`ServerConfig::effective_threads`](raida_core::config::ServerConfig::effective_threads));
    /// and, when `long_commands`, one long-running thread per long job any loop may
    /// have out (`long_jobs`), none otherwise.
    pub fn from_config(config: &ValidConfig, long_commands: bool) -> DriverConfig {
        let loops = config.network.io_threads.max(1);
        let engines: Vec<EngineConfig> = (0..loops)
            .map(|i| EngineConfig::from_config(config).for_loop(loops, i))
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let long_workers = if long_commands {
            engines.iter().map(|c| c.long_jobs).sum()
        } else {
            0
        };
        DriverConfig {
            bind: config.network.bind,
            port: config.server.effective_port(),
            network: config.network.clone(),
            engines,
            workers: config.server.effective_threads(cores),
            long_workers,
            udp_buffer: config.server.udp_payload_threshold,
        }
    }
}

/// What could not be set up, and the system's error.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct BindError {
    /// What was being set up (`bind`, `poller`, `worker threads`).
    pub what: &'static str,
    /// The system's error.
    #[source]
    pub source: std::io::Error,
}

fn failed(what: &'static str) -> impl FnOnce(std::io::Error) -> BindError {
    move |source| BindError { what, source }
}

/// Why running the event loops failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// An event loop failed (its poller).
    #[error("event loop: {0}")]
    EventLoop(#[source] std::io::Error),
    /// An event-loop thread could not start or panicked.
    #[error("{0}")]
    Thread(String),
}

/// Stops the event loops gracefully, from any thread: they stop accepting (the
/// listeners close), stop reading datagrams, let the requests in flight finish and
/// their responses be written (at most `drain_timeout_ms`), then [`Driver::run`]
/// returns. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    stop: Arc<AtomicBool>,
    pollers: Vec<Arc<Poller>>,
}

impl ShutdownHandle {
    /// Asks the loops to drain and stop; returns at once. Calling it again does
    /// nothing more.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for poller in &self.pollers {
            // The wait retries EINTR itself: only a notify wakes it.
            if let Err(e) = poller.notify() {
                tracing::error!("cannot wake an event loop to stop: {e}");
            }
        }
    }

    /// Whether shutting down was asked for.
    pub fn is_shut_down(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Reads the engines' counters while the loops run: each loop answers after it has
/// drained the events and completions of its current turn, so a response a client
/// has received was counted before its bytes were written. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Snapshots {
    loops: Vec<(Sender<SnapshotReply>, Arc<Poller>)>,
}

impl Snapshots {
    /// Asks every event loop for a snapshot (all at once, then waits for each until
    /// `deadline`) and sums them; `None` when one does not answer in time (or has
    /// stopped).
    pub fn read(&self, deadline: Instant) -> Option<MetricsSnapshot> {
        let mut answers = Vec::with_capacity(self.loops.len());
        for (requests, poller) in &self.loops {
            let (reply, answer) = crossbeam_channel::bounded(1);
            match requests.try_send(reply) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return None,
            }
            if let Err(e) = poller.notify() {
                tracing::debug!("snapshot: notify: {e}");
            }
            answers.push(answer);
        }
        let mut sum: Option<MetricsSnapshot> = None;
        for answer in answers {
            let one = answer.recv_deadline(deadline).ok()?;
            match &mut sum {
                None => sum = Some(one),
                Some(s) => s.absorb(&one),
            }
        }
        sum
    }
}

/// How [`Driver::run`] ended: how the drain went, and the loops' counters summed.
#[derive(Debug)]
#[non_exhaustive]
pub struct Ran {
    /// [`Exit::DrainTimeout`] when any loop stopped with work still open.
    pub exit: Exit,
    /// Every loop's last snapshot, summed.
    pub totals: MetricsSnapshot,
}

/// Bound sockets, running workers and the event loops, ready to run.
#[derive(Debug)]
pub struct Driver {
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
    epoch: Instant,
    loops: Vec<EventLoop>,
    handle: ShutdownHandle,
    snapshots: Snapshots,
}

impl Driver {
    /// Binds one TCP listener and one UDP socket per event loop on `config`'s
    /// address, creates the pollers, starts the worker threads, and builds one engine
    /// per loop over `commands` and `store`. Nothing is read until [`run`](Self::run).
    pub fn bind(
        config: DriverConfig,
        commands: CommandRegistry,
        store: Arc<dyn KeyStore>,
    ) -> Result<Driver, BindError> {
        let DriverConfig {
            bind,
            port,
            network,
            engines,
            workers,
            long_workers,
            udp_buffer,
        } = config;
        let loops = engines.len().max(1);
        let engines = if engines.is_empty() {
            vec![EngineConfig::default()]
        } else {
            engines
        };
        let pairs = sockets::bind_pairs(bind, port, loops, &network).map_err(failed("bind"))?;
        let tcp_addr = sockets::local_addr(&pairs[0].0).map_err(failed("bind"))?;
        let udp_addr = pairs[0].1.local_addr().map_err(failed("bind"))?;

        let pollers = (0..loops)
            .map(|_| Poller::new().map(Arc::new))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(failed("poller"))?;
        for poller in &pollers {
            poller.set_busy_poll(std::time::Duration::from_micros(network.busy_poll_us));
        }
        let handle = ShutdownHandle {
            stop: Arc::new(AtomicBool::new(false)),
            pollers: pollers.clone(),
        };
        let mut senders = Vec::with_capacity(loops);
        let mut requests = Vec::with_capacity(loops);
        for poller in &pollers {
            let (tx, rx) = crossbeam_channel::bounded(PENDING_SNAPSHOTS);
            senders.push((tx, Arc::clone(poller)));
            requests.push(SnapshotRequests { requests: rx });
        }
        let snapshots = Snapshots { loops: senders };

        let epoch = crate::clock::now();
        let in_flight = engines
            .iter()
            .map(|c| c.mod_queue_size + c.long_jobs)
            .max()
            .unwrap_or(1);
        let pool = workers::spawn(workers, long_workers, in_flight, &pollers, epoch)
            .map_err(failed("worker threads"))?;
        let commit_links = crate::committer::spawn(Arc::clone(&store), &pollers)
            .map_err(failed("committer thread"))?;

        let mut event_loops = Vec::with_capacity(loops);
        let parts = pairs
            .into_iter()
            .zip(engines)
            .zip(pool.completions)
            .zip(requests)
            .zip(pollers)
            .zip(commit_links);
        for (
            index,
            ((((((listener, udp), engine_config), completions), requests), poller), commits),
        ) in parts.enumerate()
        {
            let engine = Engine::new(engine_config, commands.clone(), Arc::clone(&store));
            let event_loop = EventLoop::new(
                engine,
                Parts {
                    poller,
                    index,
                    epoch,
                    listener,
                    udp,
                    jobs: pool.jobs.clone(),
                    long_jobs: pool.long_jobs.clone(),
                    completions,
                    stop: Arc::clone(&handle.stop),
                    network: network.clone(),
                    udp_buffer,
                    snapshots: Some(requests),
                    commits,
                },
            )
            .map_err(failed("poller"))?;
            event_loops.push(event_loop);
        }
        // Each loop holds clones; the workers end when the last loop drops its senders.
        drop((pool.jobs, pool.long_jobs));
        Ok(Driver {
            tcp_addr,
            udp_addr,
            epoch,
            loops: event_loops,
            handle,
            snapshots,
        })
    }

    /// The bound TCP address (the real port when 0 was asked for).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The bound UDP address (the same port as TCP).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The number of event loops.
    pub fn loops(&self) -> usize {
        self.loops.len()
    }

    /// The time origin of the engines' clock (and the workers'): a
    /// [`Timestamp`](raida_core::Timestamp) is microseconds since this instant.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Stops the loops from any thread (see [`ShutdownHandle`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Reads the loops' counters while they run (see [`Snapshots`]).
    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }

    /// Runs until shut down ([`ShutdownHandle::shutdown`]) and the drain is over.
    /// Each event loop runs on a thread of its own named `raida-loop-N` (N from 0), so
    /// a profile tells them apart; the calling thread waits for them.
    pub fn run(self) -> Result<Ran, ServeError> {
        let running = self
            .loops
            .into_iter()
            .enumerate()
            .map(|(i, mut event_loop)| {
                std::thread::Builder::new()
                    .name(format!("raida-loop-{i}"))
                    .spawn(move || {
                        let exit = event_loop.run();
                        let snapshot = event_loop.snapshot();
                        (exit, snapshot)
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| ServeError::Thread(format!("cannot start event-loop threads: {e}")))?;
        let mut totals = MetricsSnapshot::default();
        let mut exits = Vec::with_capacity(running.len());
        for handle in running {
            match handle.join() {
                Ok((exit, snapshot)) => {
                    totals.absorb(&snapshot);
                    exits.push(exit);
                }
                Err(_) => exits.push(Err(std::io::Error::other("an event-loop thread panicked"))),
            }
        }
        let mut ran = Exit::Drained;
        for exit in exits {
            match exit.map_err(ServeError::EventLoop)? {
                Exit::Drained => {}
                Exit::DrainTimeout => ran = Exit::DrainTimeout,
            }
        }
        Ok(Ran { exit: ran, totals })
    }
}
