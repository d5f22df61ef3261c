//! Metrics as data: the latency histogram the engine keeps per transport, a snapshot
//! of every counter, and its rendering in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Nothing here reads a clock or serves HTTP: the engine observes latencies from the
//! `now` values it is given, a driver takes a [`MetricsSnapshot`] on the engine's own
//! thread and serves [`MetricsSnapshot::render`] however it likes.
//!
//! Every metric name starts with `raida_`. Counters end in `_total`; responses carry the
//! labels `transport` (`tcp`, `udp`), `status` (the byte, decimal) and `name` (the name
//! PROTOCOL.md section 9 gives it, `UNKNOWN` for a code outside the network layer's).
//!
//! [`MetricsSnapshot`]: crate::metrics::MetricsSnapshot
//! [`MetricsSnapshot::render`]: crate::metrics::MetricsSnapshot::render

use std::fmt::Write as _;
use std::time::Duration;

/// The transport label of the response counters and histograms (the wire vocabulary's).
pub use raida_wire::Transport;
use raida_wire::{Status, StatusByte};

use crate::keys::StoreStats;
use crate::peer::PeerFailure;
use std::collections::BTreeMap;

/// Upper bounds (inclusive, in microseconds) of the latency histogram's buckets; one
/// more bucket, `+Inf`, holds everything above the last.
///
/// From 100 µs (an inline echo on loopback) to 5 s (beyond the default socket
/// timeout), roughly 1-2.5-5 per decade.
pub const LATENCY_BUCKETS_MICROS: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// A fixed-bucket latency histogram ([`LATENCY_BUCKETS_MICROS`] and `+Inf`), with the
/// sum and count Prometheus wants. Observing is a search over 15 bounds and three
/// additions: no allocation, no clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; LATENCY_BUCKETS_MICROS.len() + 1],
    sum_micros: u64,
    count: u64,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency.
    pub fn observe(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_MICROS.len());
        if let Some(n) = self.buckets.get_mut(bucket) {
            *n = n.saturating_add(1);
        }
        self.sum_micros = self.sum_micros.saturating_add(micros);
        self.count = self.count.saturating_add(1);
    }

    /// Adds the observations of `other` (another engine's histogram) to these.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.saturating_add(*b);
        }
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
        self.count = self.count.saturating_add(other.count);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum, in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros
    }

    /// The cumulative counts Prometheus exposes: for each bound of
    /// [`LATENCY_BUCKETS_MICROS`] (`Some(micros)`) and then `+Inf` (`None`), the number
    /// of latencies at or below it.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = LATENCY_BUCKETS_MICROS
            .iter()
            .map(|&b| Some(b))
            .chain(std::iter::once(None));
        bounds
            .zip(self.buckets.iter())
            .scan(0u64, |total, (bound, &n)| {
                *total = total.saturating_add(n);
                Some((bound, *total))
            })
    }
}

/// The engine's counters, for metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// TCP connections accepted.
    pub accepted: u64,
    /// TCP connections refused (answered 160), for any reason below.
    pub refused: u64,
    /// ... at `max_connections`.
    pub refused_global: u64,
    /// ... at `max_connections_per_client`.
    pub refused_per_client: u64,
    /// ... over the client's request rate.
    pub refused_rate: u64,
    /// Datagrams over their client's request rate.
    pub udp_rate_limited: u64,
    /// Of those, answered 160 (within `udp_refusals_per_s`); the rest were dropped.
    pub udp_refusals: u64,
    /// Connections closed by the socket timeout (reading or writing).
    pub timed_out: u64,
    /// Connections closed by a socket error (reset, broken pipe).
    pub reset: u64,
    /// Connections the peer closed before its request was complete.
    pub abandoned: u64,
    /// Responses by transport ([`Transport::index`]) and status byte; refusals at
    /// `max_connections` (160) count as TCP responses.
    pub responses_by_status: [[u64; 256]; 2],
    /// Latency by transport ([`Transport::index`]): from accept (TCP) or receipt (UDP)
    /// to the response being ready, one observation per counted response (a refusal
    /// is ready at once).
    pub latency: [LatencyHistogram; 2],
    /// Responses written to TCP connections (status known when built), refusals
    /// included.
    pub tcp_responses: u64,
    /// Response datagrams sent.
    pub udp_responses: u64,
    /// Datagrams dropped silently (shorter than their header).
    pub udp_dropped: u64,
    /// Completions whose connection had closed or whose slot was reused.
    pub late_completions_dropped: u64,
    /// Requests that found admission full and waited for a completion.
    pub admission_waits: u64,
    /// Times accepting paused because the process was out of descriptors.
    pub accept_pauses: u64,
    /// Page loads started (one per page however many requests wait for it).
    pub page_loads: u64,
    /// Page loads that failed (their requests were answered 252).
    pub page_load_failures: u64,
    /// Requests that waited for their key's page.
    pub parked: u64,
    /// Responses held until the write they depend on was durable (their command
    /// wrote, or read a record written, not yet synced).
    pub commit_waits: u64,
    /// Held responses answered 252 instead, because the sync that was to make their
    /// write durable failed (the store stopped).
    pub commit_failures: u64,
    /// From a held response being ready to its write being durable.
    pub commit_latency: LatencyHistogram,
    /// Store commands ([`Runs::Store`](crate::Runs::Store)) answered on the
    /// event-loop thread, from memory.
    pub store_inline: u64,
    /// Store commands that found a page not in memory on the event-loop thread and
    /// ran again on a worker.
    pub store_retries: u64,
    /// Connections that found the buffered-bytes budget spent and waited for room.
    pub budget_waits: u64,
    /// Connections closed because they sent more than `discard_limit` bytes after
    /// their response.
    pub discard_limit_closes: u64,
    /// Page load latency, from the first request that needed the page to the load's
    /// completion.
    pub load_latency: LatencyHistogram,
    /// Requests that called their peers (fixes started).
    pub fixes_started: u64,
    /// Requests answered 160 because `max_fixes` fixes were in flight.
    pub fixes_refused: u64,
    /// From a fix's first call to its last call's end.
    pub fix_latency: LatencyHistogram,
    /// Peer calls by peer (RAIDA index): calls, answers, failures by reason, latency.
    pub peers: BTreeMap<u8, PeerCounters>,
}

/// One peer's call counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Calls made (or attempted) to it.
    pub calls: u64,
    /// Calls it answered (a whole response read).
    pub answered: u64,
    /// Calls that ended without a response, by [`PeerFailure::index`].
    pub failures: [u64; PeerFailure::ALL.len()],
    /// From the fix's start to its whole response.
    pub latency: LatencyHistogram,
}

impl PeerCounters {
    /// Adds another engine's counts for the same peer.
    pub fn merge(&mut self, other: &PeerCounters) {
        self.calls += other.calls;
        self.answered += other.answered;
        for (a, b) in self.failures.iter_mut().zip(other.failures.iter()) {
            *a += b;
        }
        self.latency.merge(&other.latency);
    }
}

impl Counters {
    /// Peer `raida`'s call counters (created on first use).
    pub fn peer(&mut self, raida: u8) -> &mut PeerCounters {
        self.peers.entry(raida).or_default()
    }

    /// Responses with status byte `status` sent over `transport`.
    pub fn responses(&self, transport: Transport, status: StatusByte) -> u64 {
        self.responses_by_status[transport.index()][usize::from(status.0)]
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: 0,
            refused: 0,
            refused_global: 0,
            refused_per_client: 0,
            refused_rate: 0,
            udp_rate_limited: 0,
            udp_refusals: 0,
            timed_out: 0,
            reset: 0,
            abandoned: 0,
            responses_by_status: [[0; 256]; 2],
            latency: [LatencyHistogram::new(), LatencyHistogram::new()],
            tcp_responses: 0,
            udp_responses: 0,
            udp_dropped: 0,
            late_completions_dropped: 0,
            admission_waits: 0,
            accept_pauses: 0,
            page_loads: 0,
            page_load_failures: 0,
            parked: 0,
            commit_waits: 0,
            commit_failures: 0,
            commit_latency: LatencyHistogram::new(),
            store_inline: 0,
            store_retries: 0,
            budget_waits: 0,
            discard_limit_closes: 0,
            load_latency: LatencyHistogram::new(),
            fixes_started: 0,
            fixes_refused: 0,
            fix_latency: LatencyHistogram::new(),
            peers: BTreeMap::new(),
        }
    }
}

/// Everything the metrics endpoint shows, taken at one instant on the engine's thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The engine's counters and latency histograms.
    pub counters: Counters,
    /// Open TCP connections.
    pub open_connections: usize,
    /// Jobs handed out and not yet completed.
    pub jobs_in_flight: usize,
    /// Jobs waiting for admission.
    pub jobs_waiting: usize,
    /// Page loads running.
    pub loads_in_flight: usize,
    /// Request body bytes buffered.
    pub buffered_bytes: usize,
    /// Requests waiting for their key's page.
    pub parked: usize,
    /// Requests waiting for their peers (fixes in flight, against `max_fixes`).
    pub fixes_in_flight: usize,
    /// Responses held now until the write they depend on is durable.
    pub waiting_on_commit: usize,
    /// Outbound peer connections open (connecting included).
    pub peer_connections: usize,
    /// The key store's cache statistics, when it keeps any.
    pub keys: Option<StoreStats>,
    /// Response datagrams the driver dropped because the UDP socket's send buffer
    /// stayed full (a driver-side count; 0 when the driver keeps none).
    pub udp_send_dropped: u64,
}

impl MetricsSnapshot {
    /// Adds another engine's snapshot to this one (a server running several event
    /// loops shows their sum): every counter, histogram and gauge is summed. The key
    /// store's statistics are kept as they are in `self`, because the loops share one
    /// store and each snapshot already shows all of it.
    pub fn absorb(&mut self, other: &MetricsSnapshot) {
        let (a, b) = (&mut self.counters, &other.counters);
        a.accepted += b.accepted;
        a.refused += b.refused;
        a.timed_out += b.timed_out;
        a.reset += b.reset;
        a.abandoned += b.abandoned;
        for (ra, rb) in a.responses_by_status.iter_mut().zip(&b.responses_by_status) {
            for (x, y) in ra.iter_mut().zip(rb.iter()) {
                *x += y;
            }
        }
        for (la, lb) in a.latency.iter_mut().zip(&b.latency) {
            la.merge(lb);
        }
        a.tcp_responses += b.tcp_responses;
        a.udp_responses += b.udp_responses;
        a.udp_dropped += b.udp_dropped;
        a.late_completions_dropped += b.late_completions_dropped;
        a.admission_waits += b.admission_waits;
        a.accept_pauses += b.accept_pauses;
        a.fixes_started += b.fixes_started;
        a.fixes_refused += b.fixes_refused;
        a.fix_latency.merge(&b.fix_latency);
        for (raida, pb) in &b.peers {
            a.peer(*raida).merge(pb);
        }
        self.open_connections += other.open_connections;
        self.jobs_in_flight += other.jobs_in_flight;
        self.jobs_waiting += other.jobs_waiting;
        self.loads_in_flight += other.loads_in_flight;
        self.buffered_bytes += other.buffered_bytes;
        a.refused_global += b.refused_global;
        a.refused_per_client += b.refused_per_client;
        a.refused_rate += b.refused_rate;
        a.udp_rate_limited += b.udp_rate_limited;
        a.udp_refusals += b.udp_refusals;
        a.budget_waits += b.budget_waits;
        a.discard_limit_closes += b.discard_limit_closes;
        self.parked += other.parked;
        self.fixes_in_flight += other.fixes_in_flight;
        self.waiting_on_commit += other.waiting_on_commit;
        self.peer_connections += other.peer_connections;
        a.page_loads += b.page_loads;
        a.page_load_failures += b.page_load_failures;
        a.parked += b.parked;
        a.load_latency.merge(&b.load_latency);
        a.commit_waits += b.commit_waits;
        a.commit_failures += b.commit_failures;
        a.commit_latency.merge(&b.commit_latency);
        a.store_inline += b.store_inline;
        a.store_retries += b.store_retries;
        if self.keys.is_none() {
            self.keys = other.keys;
        }
        self.udp_send_dropped += other.udp_send_dropped;
    }

    /// The snapshot in the Prometheus text exposition format (0.0.4): a `# HELP` and a
    /// `# TYPE` line per metric, then its samples. Responses are listed for every
    /// status of PROTOCOL.md section 9 on both transports (zero included, so a rate
    /// over a new status starts from 0), and for any other code that occurred.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let c = &self.counters;
        let mut counter = |name: &str, help: &str, value: u64| {
            sample(&mut out, "counter", name, help, value);
        };
        counter(
            "raida_connections_accepted_total",
            "TCP connections accepted.",
            c.accepted,
        );
        counter(
            "raida_connections_refused_total",
            "TCP connections refused with 160 REQUEST_RATE (see raida_refusals_total for why).",
            c.refused,
        );
        counter(
            "raida_connections_timed_out_total",
            "TCP connections closed by the socket timeout (reading or writing).",
            c.timed_out,
        );
        counter(
            "raida_connections_reset_total",
            "TCP connections closed by a socket error (reset, broken pipe).",
            c.reset,
        );
        counter(
            "raida_connections_abandoned_total",
            "TCP connections the peer closed before its request was complete.",
            c.abandoned,
        );
        counter(
            "raida_udp_datagrams_dropped_total",
            "Datagrams dropped unanswered (shorter than their header).",
            c.udp_dropped,
        );
        counter(
            "raida_udp_responses_dropped_total",
            "Response datagrams dropped because the UDP send buffer stayed full.",
            self.udp_send_dropped,
        );
        counter(
            "raida_late_completions_dropped_total",
            "Responses dropped because their connection had closed.",
            c.late_completions_dropped,
        );
        counter(
            "raida_admission_waits_total",
            "Requests that found the job queue (mod_queue_size) full and waited.",
            c.admission_waits,
        );
        counter(
            "raida_udp_rate_limited_total",
            "Datagrams over their client's request rate (answered 160 within the server-wide cap, else dropped).",
            c.udp_rate_limited,
        );
        counter(
            "raida_udp_refusals_total",
            "Rate-limited datagrams answered 160.",
            c.udp_refusals,
        );
        counter(
            "raida_budget_waits_total",
            "Connections that found the buffered-bytes budget (max_buffered_bytes) spent and waited for room.",
            c.budget_waits,
        );
        counter(
            "raida_discard_limit_closes_total",
            "Connections closed for sending more than the discard limit after their response.",
            c.discard_limit_closes,
        );
        counter(
            "raida_accept_pauses_total",
            "Times accepting paused because the process was out of descriptors.",
            c.accept_pauses,
        );
        counter(
            "raida_store_loads_total",
            "Page loads started for requests whose key's page was not in memory (one per page however many waited).",
            c.page_loads,
        );
        counter(
            "raida_store_load_failures_total",
            "Page loads that failed (their requests were answered 252).",
            c.page_load_failures,
        );
        counter(
            "raida_parked_requests_total",
            "Requests that waited for their key's page.",
            c.parked,
        );
        counter(
            "raida_commit_waits_total",
            "Responses held until the write they depend on was durable.",
            c.commit_waits,
        );
        counter(
            "raida_commit_failures_total",
            "Held responses answered 252 because the sync of their write failed (the store stopped).",
            c.commit_failures,
        );
        counter(
            "raida_store_inline_total",
            "Store commands answered on the event-loop thread from memory.",
            c.store_inline,
        );
        counter(
            "raida_store_retries_total",
            "Store commands that needed a page not in memory on the event-loop thread and ran again on a worker.",
            c.store_retries,
        );

        metric_head(
            &mut out,
            "raida_refusals_total",
            "TCP connections refused with 160, by reason: the global limit (max_connections), the per-client limit (max_connections_per_ip), the client's request rate.",
            "counter",
        );
        for (reason, n) in [
            ("global", c.refused_global),
            ("per_client", c.refused_per_client),
            ("rate", c.refused_rate),
        ] {
            let _ = writeln!(out, "raida_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        let mut gauge = |name: &str, help: &str, value: usize| {
            sample(&mut out, "gauge", name, help, value as u64);
        };
        gauge(
            "raida_connections_open",
            "Open TCP connections.",
            self.open_connections,
        );
        gauge(
            "raida_jobs_in_flight",
            "Jobs handed to the workers and not yet completed.",
            self.jobs_in_flight,
        );
        gauge(
            "raida_jobs_waiting",
            "Jobs waiting for room in the job queue.",
            self.jobs_waiting,
        );
        gauge(
            "raida_buffered_bytes",
            "Request body bytes buffered now (against max_buffered_bytes).",
            self.buffered_bytes,
        );
        gauge(
            "raida_store_loads_in_flight",
            "Page loads running on the workers.",
            self.loads_in_flight,
        );
        gauge(
            "raida_parked_requests",
            "Requests waiting for their key's page now.",
            self.parked,
        );
        gauge(
            "raida_responses_waiting_on_commit",
            "Responses held now until the write they depend on is durable.",
            self.waiting_on_commit,
        );
        gauge(
            "raida_fixes_in_flight",
            "Requests waiting for their peers now (against max_fixes).",
            self.fixes_in_flight,
        );
        gauge(
            "raida_peer_connections_open",
            "Outbound peer connections open now (connecting included).",
            self.peer_connections,
        );

        metric_head(
            &mut out,
            "raida_responses_total",
            "Responses sent, by transport and status byte.",
            "counter",
        );
        for transport in Transport::ALL {
            let by_status = &c.responses_by_status[transport.index()];
            for (code, &n) in (0u8..=255).zip(by_status.iter()) {
                let name = match Status::from_code(code) {
                    Some(s) => s.name(),
                    None if n > 0 => "UNKNOWN",
                    None => continue,
                };
                let _ = writeln!(
                    out,
                    "raida_responses_total{{transport=\"{}\",status=\"{code}\",name=\"{name}\"}} {n}",
                    transport.name()
                );
            }
        }

        metric_head(
            &mut out,
            "raida_response_latency_seconds",
            "From accept (TCP) or receipt (UDP) to the response being ready.",
            "histogram",
        );
        for transport in Transport::ALL {
            let h = &c.latency[transport.index()];
            let t = transport.name();
            for (bound, n) in h.cumulative() {
                let le = bound.map_or_else(|| "+Inf".to_string(), seconds);
                let _ = writeln!(
                    out,
                    "raida_response_latency_seconds_bucket{{transport=\"{t}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "raida_response_latency_seconds_sum{{transport=\"{t}\"}} {}",
                seconds(h.sum_micros())
            );
            let _ = writeln!(
                out,
                "raida_response_latency_seconds_count{{transport=\"{t}\"}} {}",
                h.count()
            );
        }

        histogram(
            &mut out,
            "raida_store_load_latency_seconds",
            "From the first request that needed a page to its load's completion.",
            &c.load_latency,
        );
        histogram(
            &mut out,
            "raida_commit_latency_seconds",
            "From a held response being ready to its write being durable.",
            &c.commit_latency,
        );

        sample(
            &mut out,
            "counter",
            "raida_fixes_started_total",
            "Requests that called their peers.",
            c.fixes_started,
        );
        sample(
            &mut out,
            "counter",
            "raida_fixes_refused_total",
            "Requests answered 160 because max_fixes fixes were waiting for their peers.",
            c.fixes_refused,
        );
        histogram(
            &mut out,
            "raida_fix_latency_seconds",
            "From a fix's first peer call to its last call's end.",
            &c.fix_latency,
        );
        if !c.peers.is_empty() {
            metric_head(
                &mut out,
                "raida_peer_calls_total",
                "Peer calls by peer (RAIDA index) and outcome.",
                "counter",
            );
            for (raida, p) in &c.peers {
                let _ = writeln!(
                    out,
                    "raida_peer_calls_total{{peer=\"{raida}\",outcome=\"answered\"}} {}",
                    p.answered
                );
                for failure in PeerFailure::ALL {
                    let _ = writeln!(
                        out,
                        "raida_peer_calls_total{{peer=\"{raida}\",outcome=\"{}\"}} {}",
                        failure.name(),
                        p.failures[failure.index()]
                    );
                }
            }
            metric_head(
                &mut out,
                "raida_peer_latency_seconds",
                "From the fix's start to the peer's whole response.",
                "histogram",
            );
            for (raida, p) in &c.peers {
                for (bound, n) in p.latency.cumulative() {
                    let le = bound.map_or_else(|| "+Inf".to_string(), seconds);
                    let _ = writeln!(
                        out,
                        "raida_peer_latency_seconds_bucket{{peer=\"{raida}\",le=\"{le}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "raida_peer_latency_seconds_sum{{peer=\"{raida}\"}} {}",
                    seconds(p.latency.sum_micros())
                );
                let _ = writeln!(
                    out,
                    "raida_peer_latency_seconds_count{{peer=\"{raida}\"}} {}",
                    p.latency.count()
                );
            }
        }

        if let Some(k) = &self.keys {
            for (name, help, value) in [
                ("raida_store_lookups_total", "Header-time coin lookups.", k.lookups),
                (
                    "raida_store_lookup_hits_total",
                    "Lookups answered from memory (known or unknown coin).",
                    k.hits,
                ),
                (
                    "raida_store_lookup_misses_total",
                    "Lookups whose page was not in memory (the request waited for a load).",
                    k.misses,
                ),
                (
                    "raida_store_out_of_range_total",
                    "Lookups of a coin that can never be known (denomination outside -8..=6, serial >= 2^26).",
                    k.out_of_range,
                ),
                ("raida_store_page_loads_total", "Page files read.", k.loads),
                (
                    "raida_store_read_errors_total",
                    "Page reads that failed with an I/O error (answered 252).",
                    k.read_errors,
                ),
                (
                    "raida_store_pages_absent_total",
                    "Page reads that found no complete page.",
                    k.pages_absent,
                ),
                (
                    "raida_store_evictions_total",
                    "Pages dropped to stay within the page cache's bound.",
                    k.evictions,
                ),
                (
                    "raida_store_reloads_total",
                    "Pages read again because their file changed on disk.",
                    k.reloads,
                ),
                (
                    "raida_store_syncs_total",
                    "Durable syncs of the store's log (group commits).",
                    k.syncs,
                ),
                (
                    "raida_store_writes_committed_total",
                    "Writes made durable by the syncs (writes per commit: this over the syncs).",
                    k.writes_committed,
                ),
                (
                    "raida_store_page_syncs_total",
                    "Page files synced by checkpoints, before a log segment goes.",
                    k.page_syncs,
                ),
                (
                    "raida_store_checkpoints_total",
                    "Log segments removed by checkpoints (their writes in place and synced).",
                    k.checkpoints,
                ),
                (
                    "raida_store_records_written_total",
                    "Coin records written (each covered by a sync).",
                    k.records_written,
                ),
                (
                    "raida_store_write_errors_total",
                    "Writes or syncs that failed (answered 252; nothing changed).",
                    k.write_errors,
                ),
            ] {
                sample(&mut out, "counter", name, help, value);
            }
            for (name, help, value) in [
                (
                    "raida_store_cached_pages",
                    "Pages in memory.",
                    k.cached_pages,
                ),
                (
                    "raida_store_absent_pages",
                    "Pages known to be absent, remembered apart from real ones.",
                    k.absent_pages,
                ),
                (
                    "raida_store_fail_stopped",
                    "1 when a sync failed and the store stopped taking writes (a restart recovers it from its log).",
                    k.fail_stopped,
                ),
            ] {
                sample(&mut out, "gauge", name, help, value);
            }
        }
        out
    }
}

/// One metric without labels: its head and its one sample.
fn sample(out: &mut String, kind: &str, name: &str, help: &str, value: u64) {
    metric_head(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

/// A histogram without labels: buckets, sum and count.
fn histogram(out: &mut String, name: &str, help: &str, h: &LatencyHistogram) {
    metric_head(out, name, help, "histogram");
    for (bound, n) in h.cumulative() {
        let le = bound.map_or_else(|| "+Inf".to_string(), seconds);
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {}", seconds(h.sum_micros()));
    let _ = writeln!(out, "{name}_count {}", h.count());
}

fn metric_head(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Microseconds as decimal seconds, exactly, without trailing zeros: `100` is
/// `0.0001`, `2_500_000` is `2.5`, `0` is `0`.
fn seconds(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(1_234_567), "1.234567");
    }

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let mut h = LatencyHistogram::new();
        h.observe(Duration::from_micros(0));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_micros(), 60_000_201);
        let cumulative: Vec<_> = h.cumulative().collect();
        assert_eq!(cumulative.len(), LATENCY_BUCKETS_MICROS.len() + 1);
        assert_eq!(cumulative[0], (Some(100), 2));
        assert_eq!(cumulative[1], (Some(250), 3));
        assert_eq!(cumulative[14], (Some(5_000_000), 3));
        assert_eq!(cumulative[15], (None, 4), "+Inf holds everything");
    }

    #[test]
    fn render_has_help_type_and_labelled_samples() {
        let mut counters = Counters {
            accepted: 7,
            ..Counters::default()
        };
        counters.responses_by_status[Transport::Tcp.index()][250] = 3;
        counters.responses_by_status[Transport::Udp.index()][42] = 1;
        counters.latency[Transport::Tcp.index()].observe(Duration::from_micros(300));
        let snapshot = MetricsSnapshot {
            counters,
            open_connections: 2,
            jobs_in_flight: 1,
            jobs_waiting: 0,
            loads_in_flight: 0,
            buffered_bytes: 0,
            parked: 0,
            keys: Some(StoreStats::default()),
            udp_send_dropped: 0,
            fixes_in_flight: 0,
            waiting_on_commit: 0,
            peer_connections: 0,
        };
        let text = snapshot.render();
        for line in [
            "# TYPE raida_connections_accepted_total counter",
            "raida_connections_accepted_total 7",
            "raida_connections_open 2",
            "raida_responses_total{transport=\"tcp\",status=\"250\",name=\"SUCCESS\"} 3",
            "raida_responses_total{transport=\"udp\",status=\"250\",name=\"SUCCESS\"} 0",
            "raida_responses_total{transport=\"udp\",status=\"42\",name=\"UNKNOWN\"} 1",
            "# TYPE raida_response_latency_seconds histogram",
            "raida_response_latency_seconds_bucket{transport=\"tcp\",le=\"0.00025\"} 0",
            "raida_response_latency_seconds_bucket{transport=\"tcp\",le=\"0.0005\"} 1",
            "raida_response_latency_seconds_bucket{transport=\"tcp\",le=\"+Inf\"} 1",
            "raida_response_latency_seconds_sum{transport=\"tcp\"} 0.0003",
            "raida_response_latency_seconds_count{transport=\"udp\"} 0",
            "raida_store_lookup_hits_total 0",
            "raida_store_cached_pages 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("status=\"41\""),
            "unknown codes appear only once seen"
        );
        // Every sample's metric has exactly one HELP and one TYPE line.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).expect("name");
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn peer_calls_render_per_peer_and_outcome_and_add_up_across_loops() {
        let mut a = MetricsSnapshot {
            fixes_in_flight: 1,
            waiting_on_commit: 0,
            ..MetricsSnapshot::default()
        };
        a.counters.fixes_started = 2;
        let p = a.counters.peer(3);
        p.calls = 2;
        p.answered = 1;
        p.failures[PeerFailure::Timeout.index()] = 1;
        p.latency.observe(Duration::from_millis(40));
        let mut b = MetricsSnapshot::default();
        b.counters.fixes_refused = 1;
        b.counters.peer(3).failures[PeerFailure::Timeout.index()] = 2;
        b.counters.peer(11).calls = 1;
        a.absorb(&b);
        let text = a.render();
        for line in [
            "raida_fixes_started_total 2",
            "raida_fixes_in_flight 1",
            "raida_fixes_refused_total 1",
            "# TYPE raida_peer_calls_total counter",
            "raida_peer_calls_total{peer=\"3\",outcome=\"answered\"} 1",
            "raida_peer_calls_total{peer=\"3\",outcome=\"timeout\"} 3",
            "raida_peer_calls_total{peer=\"11\",outcome=\"refused\"} 0",
            "raida_peer_latency_seconds_bucket{peer=\"3\",le=\"0.05\"} 1",
            "raida_peer_latency_seconds_count{peer=\"3\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
