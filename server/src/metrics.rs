//! The metrics and health endpoint (`[network] metrics_addr`, `--metrics-addr`): one
//! HTTP thread (`tiny_http`) that asks the event loop for a snapshot of the engine's
//! counters whenever a client asks for one.
//!
//! **Freshness.** The counters live in the engine, on the event-loop thread; nothing
//! copies them periodically. For every request the HTTP thread sends a one-shot reply
//! channel to the loop ([`SnapshotRequests`]) and wakes it with `Poller::notify`; the
//! loop answers after it has drained the events and completions of its current turn
//! ([`raida_io_epoll::event_loop::EventLoop`]). A response a client has already received was
//! counted before its bytes were written, so a scrape that follows it sees it.
//!
//! Paths: `GET /metrics` (the Prometheus text format, rendered by
//! `raida_core::metrics`), `GET /healthz` and `GET /live` (200 `ok` while the loop
//! answers, 503 when it does not within [`LOOP_ANSWER_TIMEOUT`]); anything else is 404,
//! and a method other than GET or HEAD 405.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use raida_core::metrics::MetricsSnapshot;
use raida_io_epoll::poll::Poller;
use raida_io_epoll::snapshots::{SnapshotReply, SnapshotRequests};
use tiny_http::{Header, Method, Request, Response};

/// How long a scrape or a health check waits for the event loop to answer.
pub const LOOP_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Snapshot requests waiting for the loop at most (the HTTP thread sends one at a
/// time; the bound only keeps a confused caller from queueing without limit).
const PENDING_REQUESTS: usize = 4;

/// The running endpoint; dropping it stops the HTTP thread.
pub struct MetricsServer {
    addr: SocketAddr,
    http: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The HTTP thread's way to the loops: one request channel and poller per loop.
#[derive(Debug)]
struct Endpoint {
    loops: Vec<(Sender<SnapshotReply>, Arc<Poller>)>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `addr` (port 0: a free port) and starts the HTTP thread, which asks every
    /// loop (one per poller in `pollers`) and shows the sum. Returns the server and
    /// each loop's end of its snapshot channel, in the order of `pollers`.
    pub fn start(
        addr: SocketAddr,
        pollers: &[Arc<Poller>],
    ) -> io::Result<(MetricsServer, Vec<SnapshotRequests>)> {
        let http = tiny_http::Server::http(addr)
            .map_err(|e| io::Error::other(format!("metrics_addr {addr}: {e}")))?;
        let bound = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other(format!("metrics_addr {addr}: not an IP socket")))?;
        let http = Arc::new(http);
        let mut loops = Vec::with_capacity(pollers.len());
        let mut ends = Vec::with_capacity(pollers.len());
        for poller in pollers {
            let (tx, rx) = crossbeam_channel::bounded(PENDING_REQUESTS);
            loops.push((tx, Arc::clone(poller)));
            ends.push(SnapshotRequests { requests: rx });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = Endpoint { loops };
        let thread = {
            let http = Arc::clone(&http);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("raida-metrics".into())
                .spawn(move || serve(&http, &endpoint, &stop))?
        };
        Ok((
            MetricsServer {
                addr: bound,
                http,
                stop,
                thread: Some(thread),
            },
            ends,
        ))
    }

    /// The address the endpoint listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.http.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(http: &tiny_http::Server, endpoint: &Endpoint, stop: &AtomicBool) {
    loop {
        match http.recv() {
            Ok(request) => handle(request, endpoint),
            // `unblock` (shutdown) or an accept error: stop only when asked to.
            Err(e) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                tracing::debug!("metrics endpoint: {e}");
            }
        }
    }
}

impl Endpoint {
    /// Asks every event loop for a snapshot (all at once, then waits for each) and
    /// sums them; `None` when one does not answer in time (or has stopped).
    fn snapshot(&self) -> Option<MetricsSnapshot> {
        let deadline = std::time::Instant::now() + LOOP_ANSWER_TIMEOUT;
        let mut answers = Vec::with_capacity(self.loops.len());
        for (requests, poller) in &self.loops {
            let (reply, answer) = crossbeam_channel::bounded(1);
            match requests.try_send(reply) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return None,
            }
            if let Err(e) = poller.notify() {
                tracing::debug!("metrics endpoint: notify: {e}");
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

fn text_header(content_type: &str) -> Option<Header> {
    Header::from_bytes("Content-Type", content_type).ok()
}

fn respond(request: Request, status: u16, content_type: &str, body: String) {
    let mut response = Response::from_string(body).with_status_code(status);
    if let Some(h) = text_header(content_type) {
        response = response.with_header(h);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!("metrics endpoint: writing a response: {e}");
    }
}

fn handle(request: Request, endpoint: &Endpoint) {
    const PLAIN: &str = "text/plain; charset=utf-8";
    const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
    if !matches!(request.method(), Method::Get | Method::Head) {
        return respond(request, 405, PLAIN, "method not allowed\n".into());
    }
    // The path without a query string.
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    match path.as_str() {
        "/metrics" => match endpoint.snapshot() {
            Some(snapshot) => respond(request, 200, PROMETHEUS, snapshot.render()),
            None => respond(request, 503, PLAIN, "event loop not answering\n".into()),
        },
        "/healthz" | "/live" => match endpoint.snapshot() {
            Some(_) => respond(request, 200, PLAIN, "ok\n".into()),
            None => respond(request, 503, PLAIN, "event loop not answering\n".into()),
        },
        _ => respond(request, 404, PLAIN, "not found\n".into()),
    }
}
