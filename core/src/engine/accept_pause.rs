//! The accept pause: when the process runs out of descriptors, accepting stops for
//! `accept_backoff` instead of spinning on a listener that stays readable, and the
//! driver is told to warn at most once per ten pauses' length so a long shortage does
//! not flood the log. Its own part because it is the one piece of engine state that
//! follows the process's descriptors rather than any connection or job.

use std::time::Duration;

use raida_wire::Timestamp;

/// Whether accepting is paused, until when, and when the driver last warned.
#[derive(Debug)]
pub(super) struct AcceptPause {
    /// How long a pause lasts (`accept_backoff`).
    backoff: Duration,
    /// Accepting pauses until then.
    until: Option<Timestamp>,
    /// When the driver was last told to warn about a pause.
    warned_at: Option<Timestamp>,
}

impl AcceptPause {
    /// Not paused; a pause lasts `backoff`.
    pub(super) fn new(backoff: Duration) -> AcceptPause {
        AcceptPause {
            backoff,
            until: None,
            warned_at: None,
        }
    }

    /// Out of descriptors at `now`: pause until `now + backoff`. Returns whether the
    /// driver should warn (not within ten pauses' length of the last warning).
    pub(super) fn start(&mut self, now: Timestamp) -> bool {
        self.until = Some(now.saturating_add(self.backoff));
        let quiet = self
            .warned_at
            .is_some_and(|at| now.saturating_since(at) < self.backoff * 10);
        if !quiet {
            self.warned_at = Some(now);
        }
        !quiet
    }

    /// Whether accepting is allowed at `now`; a pause that is over ends here.
    pub(super) fn allows(&mut self, now: Timestamp) -> bool {
        match self.until {
            Some(until) if now < until => false,
            Some(_) => {
                self.until = None;
                true
            }
            None => true,
        }
    }

    /// Ends a pause that is over at `now`; returns whether one ended (the driver is
    /// told to accept again).
    pub(super) fn end_if_over(&mut self, now: Timestamp) -> bool {
        if self.until.is_some_and(|t| t <= now) {
            self.until = None;
            return true;
        }
        false
    }

    /// Ends any pause at once (shutting down: accepting stops for good instead).
    pub(super) fn end(&mut self) {
        self.until = None;
    }

    /// When the pause in force ends, if one is.
    pub(super) fn until(&self) -> Option<Timestamp> {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_micros(n * 1000)
    }

    #[test]
    fn a_pause_lasts_its_backoff_and_warnings_are_spaced() {
        let mut p = AcceptPause::new(Duration::from_millis(10));
        assert!(p.allows(ms(0)));
        assert!(p.start(ms(0)), "the first pause warns");
        assert_eq!(p.until(), Some(ms(10)));
        assert!(!p.allows(ms(9)));
        assert!(!p.end_if_over(ms(9)));
        assert!(p.end_if_over(ms(10)));
        assert!(!p.end_if_over(ms(10)), "ends once");
        assert!(!p.start(ms(50)), "within ten pauses' length: quiet");
        assert!(p.allows(ms(60)), "over: accepting again");
        assert_eq!(p.until(), None);
        assert!(p.start(ms(100)), "ten pauses' length later: warns again");
        p.end();
        assert!(p.allows(ms(100)));
    }
}
