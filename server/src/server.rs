//! A bound server: its sockets, workers and event loops, ready to serve; and the
//! handle that stops it from any thread.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raida_core::config::Config;
use raida_core::metrics::MetricsSnapshot;
use raida_core::{CommandRegistry, Engine, EngineConfig, KeyStore, Timestamp};
use raida_store::DiskStore;

use crate::builder::BuildError;
use crate::metrics::MetricsServer;
use crate::signals;
use raida_io_epoll::event_loop::{EventLoop, Exit, Parts};
use raida_io_epoll::poll::Poller;
use raida_io_epoll::{sockets, workers};

/// Stops a server gracefully, from any thread: it stops accepting (the listeners
/// close), stops reading datagrams, lets the requests in flight finish and their
/// responses be written (at most `drain_timeout_ms`), then [`Server::serve`] returns.
/// The same drain as the first SIGINT or SIGTERM. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    stop: Arc<AtomicBool>,
    pollers: Vec<Arc<Poller>>,
}

impl ShutdownHandle {
    /// Asks the server to drain and stop; returns at once. Calling it again does
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

/// How [`Server::serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Served {
    /// Everything in flight was answered before the server stopped.
    Drained,
    /// The drain timeout passed with work still open; the server stopped anyway.
    DrainTimeout,
}

/// Why serving failed.
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

/// A server whose sockets are bound and whose workers run, built by
/// [`ServerBuilder`](crate::ServerBuilder). Nothing is served until [`serve`](Self::serve).
#[derive(Debug)]
pub struct Server {
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
    metrics: Option<MetricsServer>,
    loops: Vec<EventLoop>,
    handle: ShutdownHandle,
    store: Arc<dyn KeyStore>,
    threads: usize,
    /// The disk store's background thread; stopped when the server is.
    watch: Option<StoreWatch>,
}

/// The thread `raida-store-watch`: calls the disk store's background step
/// ([`DiskStore::maintain`]: the freshness check, at most once per
/// `store_refresh_ms`, and checkpoints of its log) every [`WATCH_TICK`] or sooner.
/// Stopped and joined when dropped.
#[derive(Debug)]
struct StoreWatch {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// The watch thread's longest sleep between two steps.
const WATCH_TICK: Duration = Duration::from_millis(100);

impl StoreWatch {
    fn spawn(store: Arc<DiskStore>, epoch: Instant) -> std::io::Result<StoreWatch> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let tick = store.config().refresh_interval.min(WATCH_TICK);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("raida-store-watch".into())
            .spawn(move || {
                let (lock, wake) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while !*stopped {
                    drop(stopped);
                    let micros = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                    store.maintain(Timestamp::from_micros(micros));
                    stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    if *stopped {
                        break;
                    }
                    stopped = wake
                        .wait_timeout(stopped, tick)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            })?;
        Ok(StoreWatch {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StoreWatch {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the raida-store-watch thread panicked");
            }
        }
    }
}

impl Server {
    pub(crate) fn bind(
        config: Config,
        commands: CommandRegistry,
        store: Arc<dyn KeyStore>,
        watched: Option<Arc<DiskStore>>,
        long_commands: bool,
        install_signals: bool,
    ) -> Result<Server, BuildError> {
        match sockets::raise_fd_limit() {
            Ok(limit) => tracing::debug!("open files limit: {limit}"),
            Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
        }
        let network = &config.network;
        let io_threads = network.io_threads.max(1);
        let port = config.server.effective_port();
        let pairs = sockets::bind_pairs(network.bind, port, io_threads, network)
            .map_err(BuildError::io("bind"))?;
        let tcp_addr = sockets::local_addr(&pairs[0].0).map_err(BuildError::io("bind"))?;
        let udp_addr = pairs[0].1.local_addr().map_err(BuildError::io("bind"))?;

        let pollers = (0..io_threads)
            .map(|_| Poller::new().map(Arc::new))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(BuildError::io("poller"))?;
        for poller in &pollers {
            poller.set_busy_poll(std::time::Duration::from_micros(network.busy_poll_us));
        }
        let handle = ShutdownHandle {
            stop: Arc::new(AtomicBool::new(false)),
            pollers: pollers.clone(),
        };
        // Stopped (its thread joined) when the server is dropped, after the loops.
        let (metrics, mut snapshots) = match network.metrics_addr {
            Some(addr) => {
                let (server, requests) = MetricsServer::start(addr, &pollers)
                    .map_err(BuildError::io("metrics endpoint"))?;
                (Some(server), requests.into_iter().map(Some).collect())
            }
            None => (None, Vec::new()),
        };
        snapshots.resize_with(io_threads, || None);

        let engine_configs: Vec<EngineConfig> = (0..io_threads)
            .map(|i| EngineConfig::from_config(&config).for_loop(io_threads, i))
            .collect();
        let epoch = Instant::now();
        let watch = watched
            .map(|disk| StoreWatch::spawn(disk, epoch))
            .transpose()
            .map_err(BuildError::io("cannot start the raida-store-watch thread"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = config.server.effective_threads(cores);
        let long_threads = if long_commands {
            engine_configs.iter().map(|c| c.long_jobs).sum()
        } else {
            0
        };
        let in_flight = engine_configs
            .iter()
            .map(|c| c.mod_queue_size + c.long_jobs)
            .max()
            .unwrap_or(1);
        let pool = workers::spawn(threads, long_threads, in_flight, &pollers, epoch)
            .map_err(BuildError::io("cannot start worker threads"))?;
        if install_signals {
            signals::spawn(handle.clone())
                .map_err(BuildError::io("cannot install signal handlers"))?;
        }

        let mut loops = Vec::with_capacity(io_threads);
        let parts = pairs
            .into_iter()
            .zip(engine_configs)
            .zip(pool.completions)
            .zip(snapshots)
            .zip(pollers);
        for (index, (((((listener, udp), engine_config), completions), snapshots), poller)) in
            parts.enumerate()
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
                    network: config.network.clone(),
                    udp_buffer: config.server.udp_payload_threshold,
                    snapshots,
                },
            )
            .map_err(BuildError::io("poller"))?;
            loops.push(event_loop);
        }
        // Each loop holds clones; the workers end when the last loop drops its senders.
        drop((pool.jobs, pool.long_jobs));
        Ok(Server {
            tcp_addr,
            udp_addr,
            metrics,
            loops,
            handle,
            store,
            threads,
            watch,
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

    /// The metrics endpoint's bound address, when `metrics_addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Stops the server from any thread (see [`ShutdownHandle`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// The key store the server serves (shared with its handlers).
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// Serves until shut down (a signal, or [`ShutdownHandle::shutdown`]) and the
    /// drain is over. Each event loop runs on a thread of its own named `raida-loop-N`
    /// (N from 0), so a profile tells them apart; the calling thread waits for them.
    pub fn serve(self) -> Result<Served, ServeError> {
        let Server {
            metrics,
            loops,
            threads,
            watch,
            ..
        } = self;
        tracing::info!(threads, io_threads = loops.len(), "serving");
        let running = loops
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
        let mut total = MetricsSnapshot::default();
        let mut exits = Vec::with_capacity(running.len());
        for handle in running {
            match handle.join() {
                Ok((exit, snapshot)) => {
                    total.absorb(&snapshot);
                    exits.push(exit);
                }
                Err(_) => exits.push(Err(std::io::Error::other("an event-loop thread panicked"))),
            }
        }
        let mut served = Served::Drained;
        for exit in exits {
            match exit.map_err(ServeError::EventLoop)? {
                Exit::Drained => {}
                Exit::DrainTimeout => served = Served::DrainTimeout,
            }
        }
        log_totals(&total, served);
        drop(metrics);
        drop(watch);
        Ok(served)
    }
}

fn log_totals(total: &MetricsSnapshot, served: Served) {
    let counters = &total.counters;
    tracing::info!(
        accepted = counters.accepted,
        refused = counters.refused,
        tcp_responses = counters.tcp_responses,
        udp_responses = counters.udp_responses,
        timed_out = counters.timed_out,
        reset = counters.reset,
        abandoned = counters.abandoned,
        late_completions_dropped = counters.late_completions_dropped,
        "stopped ({})",
        match served {
            Served::Drained => "drained",
            Served::DrainTimeout => "drain timeout",
        }
    );
}
