//! The outcome of a run: counts by status and by error kind, and the latency
//! histogram.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::ErrorKind;

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
        }
    }

    /// Verified responses of every status.
    pub fn responses(&self) -> u64 {
        self.statuses.iter().sum()
    }

    /// Verified responses with status 250 SUCCESS.
    pub fn ok(&self) -> u64 {
        self.statuses[usize::from(crate::Status::Success.code())]
    }

    /// Requests that ended in an error.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Successful (250) responses per second.
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
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3) {
        Ok(h) => h,
        // Fixed, valid bounds: this arm is unreachable; fall back to an auto-resizing one.
        Err(_) => Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfigs is valid")),
    }
}
