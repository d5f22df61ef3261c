//! The outcome of a run: counts by status and by error kind, the latency
//! histogram, and the two ways `raida bench` shows them (text and one JSON object).

use std::io::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::BenchConfig;
use crate::error::ErrorKind;
use crate::response::status_name;
use crate::StatusByte;

/// Latencies above this (in microseconds) are recorded as this.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Responses that verified, by status code (index = code).
    pub statuses: Vec<u64>,
    /// Requests that ended in an error, by kind (index = [`ErrorKind::index`]).
    pub errors: [u64; ErrorKind::ALL.len()],
    /// UDP replies to an earlier request of the same slot (after a timeout), ignored.
    pub stale: u64,
    /// Round-trip latency of every verified response, in microseconds.
    pub latency: Histogram<u64>,
    /// The status that counts as a success ([`ok`](Self::ok)): the request source's
    /// (250 SUCCESS for echo and version, 241 ALL_PASS for detect and pown).
    pub success: StatusByte,
    /// The request source ran out (a pown load used every coin of its store) and the
    /// run ended before its limit.
    pub source_stopped: bool,
}

impl BenchReport {
    /// No requests yet.
    pub(super) fn empty() -> BenchReport {
        BenchReport {
            elapsed: Duration::ZERO,
            statuses: vec![0; 256],
            errors: [0; ErrorKind::ALL.len()],
            stale: 0,
            latency: new_histogram(),
            success: crate::Status::Success.into(),
            source_stopped: false,
        }
    }

    /// Verified responses of every status.
    pub fn responses(&self) -> u64 {
        self.statuses.iter().sum()
    }

    /// Verified responses with the success status ([`success`](Self::success)).
    pub fn ok(&self) -> u64 {
        self.statuses[usize::from(self.success.0)]
    }

    /// Requests that ended in an error.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Successful responses ([`ok`](Self::ok)) per second.
    pub fn ok_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// Errors by kind, only the kinds that occurred.
    pub fn errors_by_kind(&self) -> Vec<(ErrorKind, u64)> {
        ErrorKind::ALL
            .iter()
            .map(|k| (*k, self.errors[k.index()]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Responses by status code, only the codes that occurred.
    pub fn responses_by_status(&self) -> Vec<(u8, u64)> {
        (0..=255u8)
            .map(|c| (c, self.statuses[usize::from(c)]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Adds another thread's counts (the elapsed time stays this report's).
    pub(super) fn merge(&mut self, other: &BenchReport) {
        for (a, b) in self.statuses.iter_mut().zip(&other.statuses) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(&other.errors) {
            *a += b;
        }
        self.stale += other.stale;
        self.source_stopped |= other.source_stopped;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// Rendering. `command` names what was sent, in lower case (`echo`, `version`): the
/// request bytes do not say. The encryption type shown is the request's.
impl BenchReport {
    /// Latency in microseconds: p50, p90, p99, p99.9, max and mean, under those names
    /// (all 0 when nothing was answered).
    pub fn latency_summary(&self) -> [(&'static str, u64); 6] {
        let h = &self.latency;
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        [
            ("p50", q(0.50)),
            ("p90", q(0.90)),
            ("p99", q(0.99)),
            ("p99.9", q(0.999)),
            ("max", if h.is_empty() { 0 } else { h.max() }),
            ("mean", h.mean() as u64),
        ]
    }

    /// The report as one JSON object (`raida bench --json`), for scripts.
    pub fn to_json(&self, config: &BenchConfig, command: &str) -> Value {
        let mut errors = Map::new();
        for (k, n) in self.errors_by_kind() {
            errors.insert(k.name().into(), json!(n));
        }
        let mut statuses = Map::new();
        for (code, n) in self.responses_by_status() {
            statuses.insert(code.to_string(), json!(n));
        }
        let mut latency = Map::new();
        for (name, v) in self.latency_summary() {
            latency.insert(name.replace('.', "_"), json!(v));
        }
        json!({
            "addr": config.addr.to_string(),
            "transport": config.transport.name(),
            "command": command,
            "enc": encryption_byte(config),
            "connections": config.connections,
            "threads": config.threads,
            "verified": config.verify,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests_per_s": self.ok_per_sec(),
            "ok": self.ok(),
            "success_status": self.success.0,
            "source_stopped": self.source_stopped,
            "responses": self.responses(),
            "errors": errors,
            "error_count": self.error_count(),
            "statuses": statuses,
            "stale_replies": self.stale,
            "latency_us": latency,
        })
    }

    /// The report as text (`raida bench`): a heading line, the totals, the latency
    /// summary, then the statuses and error kinds that occurred.
    pub fn write_text(
        &self,
        out: &mut dyn Write,
        config: &BenchConfig,
        command: &str,
    ) -> io::Result<()> {
        writeln!(
            out,
            "raida bench: {} {}, {} (enc {}), {} connections on {} threads, {:.2} s",
            config.transport.name(),
            config.addr,
            capitalized(command),
            encryption_byte(config),
            config.connections,
            config.threads.min(config.connections),
            self.elapsed.as_secs_f64()
        )?;
        if !config.verify {
            writeln!(
                out,
                "  (--no-verify: responses counted by their status byte, not verified)"
            )?;
        }
        writeln!(out, "  {:<14}{:>12.0}", "requests/s", self.ok_per_sec())?;
        let ok = format!("ok ({})", self.success.0);
        writeln!(out, "  {ok:<14}{:>12}", self.ok())?;
        writeln!(
            out,
            "  {:<14}{:>12}",
            "other status",
            self.responses() - self.ok()
        )?;
        writeln!(out, "  {:<14}{:>12}", "errors", self.error_count())?;
        writeln!(out, "  latency (us)")?;
        for (name, v) in self.latency_summary() {
            writeln!(out, "    {name:<12}{v:>12}")?;
        }
        let statuses = self.responses_by_status();
        if !statuses.is_empty() {
            writeln!(out, "  responses by status")?;
            for (code, n) in statuses {
                let label = format!("{} ({code})", status_name(StatusByte(code)));
                writeln!(out, "    {label:<30}{n:>12}")?;
            }
        }
        let errors = self.errors_by_kind();
        if !errors.is_empty() {
            writeln!(out, "  errors by kind")?;
            for (k, n) in errors {
                writeln!(out, "    {:<30}{n:>12}", k.name())?;
            }
        }
        if self.stale > 0 {
            writeln!(out, "  {:<14}{:>12}", "late replies", self.stale)?;
        }
        if self.source_stopped {
            writeln!(
                out,
                "  (the request source ran out before the limit: pown used every coin of the store)"
            )?;
        }
        Ok(())
    }
}

/// The encryption type of the request a run sent (its first: a `RequestSource` is
/// expected to keep it).
fn encryption_byte(config: &BenchConfig) -> u8 {
    config.request.expect().encryption().byte()
}

/// `echo` -> `Echo`: the text report's heading names the command that way.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3) {
        Ok(h) => h,
        // Fixed, valid bounds: this arm is unreachable; fall back to an auto-resizing one.
        Err(_) => Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfigs is valid")),
    }
}
