//! MFS, the status byte a pown writes: months since February 2023 at the time of the
//! write, UTC (PROTOCOL.md section 8a): `(year - 2023) * 12 + (month - 2)`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Where the powns learn the month (injected, so tests and the simulator choose it).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The MFS byte now.
    fn mfs(&self) -> u8;
}

/// The machine's clock, UTC.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn mfs(&self) -> u8 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (year, month) = year_month(secs / 86_400);
        mfs(year, month)
    }
}

/// A clock stopped at one MFS byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedClock(pub u8);

impl Clock for FixedClock {
    fn mfs(&self) -> u8 {
        self.0
    }
}

/// The MFS byte of `year`, `month` (1..=12), as the deployed server computes it (one
/// byte: it wraps, as the C server's does).
pub fn mfs(year: i64, month: u32) -> u8 {
    let months = (year - 2023) * 12 + i64::from(month) - 2;
    months.rem_euclid(256) as u8
}

/// The (year, month) of day `days` since 1970-01-01 (the civil calendar, proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn year_month(days: u64) -> (i64, u32) {
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfs_counts_months_from_february_2023() {
        assert_eq!(mfs(2023, 2), 0);
        assert_eq!(mfs(2023, 3), 1);
        assert_eq!(mfs(2024, 1), 11);
        assert_eq!(mfs(2024, 2), 12);
        assert_eq!(mfs(2026, 12), 46);
    }

    #[test]
    fn civil_dates_from_days() {
        // Days since 1970-01-01 of known dates, from Python's datetime, run once:
        // (date.fromisoformat(d) - date(1970, 1, 1)).days
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(19_389), (2023, 2)); // 2023-02-01
        assert_eq!(year_month(19_388), (2023, 1)); // 2023-01-31
        assert_eq!(year_month(19_782), (2024, 2)); // 2024-02-29
        assert_eq!(year_month(20_788), (2026, 12)); // 2026-12-01
    }
}
