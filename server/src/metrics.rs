//! The metrics and health endpoint (`[network] metrics_addr`, `--metrics-addr`): one
//! HTTP thread (`tiny_http`) that asks the event loop for a snapshot of the engine's
//! counters whenever a client asks for one.
//!
//! **Freshness.** The counters live in the engine, on the event-loop thread; nothing
//! copies them periodically. For every request the HTTP thread asks every loop through
//! the driver's [`Snapshots`]; a loop answers after it has drained the events and
//! completions of its current turn. A response a client has already received was
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

use raida_core::metrics::MetricsSnapshot;
use raida_io_epoll::Snapshots;
use tiny_http::{Header, Method, Request, Response};

/// How long a scrape or a health check waits for the event loop to answer.
pub(crate) const LOOP_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The running endpoint; dropping it stops the HTTP thread.
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    http: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `addr` (port 0: a free port) and starts the HTTP thread, which reads
    /// every loop's counters through `snapshots` and shows the sum.
    pub(crate) fn start(addr: SocketAddr, snapshots: Snapshots) -> io::Result<MetricsServer> {
        let http = tiny_http::Server::http(addr)
            .map_err(|e| io::Error::other(format!("metrics_addr {addr}: {e}")))?;
        let bound = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other(format!("metrics_addr {addr}: not an IP socket")))?;
        let http = Arc::new(http);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let http = Arc::clone(&http);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("raida-metrics".into())
                .spawn(move || serve(&http, &snapshots, &stop))?
        };
        Ok(MetricsServer {
            addr: bound,
            http,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens on (the real port when 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
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

fn serve(http: &tiny_http::Server, snapshots: &Snapshots, stop: &AtomicBool) {
    loop {
        match http.recv() {
            Ok(request) => handle(request, snapshots),
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

/// Every loop's counters summed; `None` when one does not answer within
/// [`LOOP_ANSWER_TIMEOUT`] (or has stopped).
fn snapshot(snapshots: &Snapshots) -> Option<MetricsSnapshot> {
    snapshots.read(std::time::Instant::now() + LOOP_ANSWER_TIMEOUT)
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

fn handle(request: Request, snapshots: &Snapshots) {
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
        "/metrics" => match snapshot(snapshots) {
            Some(snapshot) => respond(request, 200, PROMETHEUS, snapshot.render()),
            None => respond(request, 503, PLAIN, "event loop not answering\n".into()),
        },
        "/healthz" | "/live" => match snapshot(snapshots) {
            Some(_) => respond(request, 200, PLAIN, "ok\n".into()),
            None => respond(request, 503, PLAIN, "event loop not answering\n".into()),
        },
        _ => respond(request, 404, PLAIN, "not found\n".into()),
    }
}
