//! A bound server: the driver (sockets, workers, event loops), the metrics endpoint
//! and the disk store's background thread, ready to serve.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raida_core::metrics::MetricsSnapshot;
use raida_core::{KeyStore, Timestamp};
use raida_io_epoll::{Driver, Exit, ServeError, ShutdownHandle};
use raida_store::DiskStore;

use crate::metrics::MetricsServer;

/// How [`Server::serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Served {
    /// Everything in flight was answered before the server stopped.
    Drained,
    /// The drain timeout passed with work still open; the server stopped anyway.
    DrainTimeout,
    /// The store stopped after a failed sync (fail-stop) and the server shut down:
    /// no write was acknowledged past the failure, and a restart recovers the store
    /// from its log. `raida-server` exits with status 75 so that its service manager
    /// restarts it.
    StoreFailed,
}

/// A server whose sockets are bound and whose workers run, built by
/// [`ServerBuilder`](crate::ServerBuilder). Nothing is served until [`serve`](Self::serve).
#[derive(Debug)]
pub struct Server {
    driver: Driver,
    metrics: Option<MetricsServer>,
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
pub(crate) struct StoreWatch {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// The watch thread's longest sleep between two steps.
const WATCH_TICK: Duration = Duration::from_millis(100);

impl StoreWatch {
    /// Also watches for the store's fail-stop: once a sync failed, it shuts the
    /// server down (`shutdown`) so that it exits and its service manager restarts it.
    pub(crate) fn spawn(
        store: Arc<DiskStore>,
        epoch: Instant,
        shutdown: ShutdownHandle,
    ) -> std::io::Result<StoreWatch> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let tick = store.config().refresh_interval.min(WATCH_TICK);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("raida-store-watch".into())
            .spawn(move || {
                let (lock, wake) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let mut failed = false;
                while !*stopped {
                    drop(stopped);
                    let micros = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                    store.maintain(Timestamp::from_micros(micros));
                    if !failed && store.is_failed() {
                        failed = true;
                        tracing::error!(
                            "the store stopped after a failed write to the disk; shutting \
                             down (exit status 75) so that a restart recovers it from its log"
                        );
                        shutdown.shutdown();
                    }
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
    /// A server of `driver` (bound, not yet running), with its metrics endpoint and
    /// the disk store's background thread when there are.
    pub(crate) fn new(
        driver: Driver,
        metrics: Option<MetricsServer>,
        store: Arc<dyn KeyStore>,
        threads: usize,
        watch: Option<StoreWatch>,
    ) -> Server {
        Server {
            driver,
            metrics,
            store,
            threads,
            watch,
        }
    }

    /// The bound TCP address (the real port when 0 was asked for).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.driver.tcp_addr()
    }

    /// The bound UDP address (the same port as TCP).
    pub fn udp_addr(&self) -> SocketAddr {
        self.driver.udp_addr()
    }

    /// The metrics endpoint's bound address, when `metrics_addr` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Stops the server from any thread (see [`ShutdownHandle`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.driver.shutdown_handle()
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
            driver,
            metrics,
            threads,
            watch,
            store: self_store,
        } = self;
        tracing::info!(threads, io_threads = driver.loops(), "serving");
        let store = self_store;
        let ran = driver.run()?;
        let served = match ran.exit {
            _ if store.commit_point().failed => Served::StoreFailed,
            Exit::Drained => Served::Drained,
            Exit::DrainTimeout => Served::DrainTimeout,
        };
        log_totals(&ran.totals, served);
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
            Served::StoreFailed => "the store failed",
        }
    );
}
