//! The per-client limits as the world expects them, written from their description
//! (docs/OPERATING.md "Limits and budgets", PROTOCOL.md's 160 REQUEST_RATE) apart
//! from the engine's code: at most
//! `max_connections_per_client` connections counted per client (from its accept until
//! its response is out or it closes), a token bucket per client (`rate`, `burst`) that
//! every accepted connection and every datagram takes a token from, a server-wide
//! bucket for the 160s that answer rate-limited datagrams (past it they are dropped),
//! and trusted networks exempt from both. The global limit (`max_connections`) comes
//! first and takes no token; so does the per-client one.
//!
//! A client is an IPv4 address here (the simulated hosts are all IPv4).

use std::collections::BTreeMap;
use std::net::IpAddr;

use raida_core::{Cidr, Rate};

/// Tokens in millionths, so a refill over microseconds stays an integer.
const UNIT: u64 = 1_000_000;

/// A token bucket: `burst` tokens when full, refilled at `per_s` a second.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u64,
    at: u64,
}

impl Bucket {
    fn full(rate: Rate, at: u64) -> Bucket {
        Bucket {
            tokens: u64::from(rate.burst.max(1)) * UNIT,
            at,
        }
    }

    /// Takes a token at `now` (microseconds) if there is one.
    fn take(&mut self, rate: Rate, now: u64) -> bool {
        let cap = u64::from(rate.burst.max(1)) * UNIT;
        let refill = now.saturating_sub(self.at) * u64::from(rate.per_s);
        self.tokens = (self.tokens + refill).min(cap);
        self.at = now;
        if self.tokens >= UNIT {
            self.tokens -= UNIT;
            true
        } else {
            false
        }
    }
}

/// What the limits say about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Accept,
    /// Refused at `max_connections`.
    Global,
    /// Refused: its client holds `max_connections_per_client`.
    PerClient,
    /// Refused: its client is over its rate.
    Rate,
}

/// What the limits say about a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// Served.
    Served,
    /// Over its client's rate, answered 160 (within the server-wide cap).
    Refused,
    /// Over its client's rate, dropped (past the cap, or too short for a header).
    Dropped,
}

/// The limits' state: connections counted per client, one bucket per client, the
/// server-wide bucket of UDP 160s.
#[derive(Debug)]
pub struct Limits {
    per_client: usize,
    trusted: Vec<Cidr>,
    rate: Option<Rate>,
    open: BTreeMap<IpAddr, usize>,
    buckets: BTreeMap<IpAddr, Bucket>,
    refusal_rate: Rate,
    refusals: Bucket,
}

impl Limits {
    /// The limits of a server with these settings (`rate` with `per_s` 0 is none).
    pub fn new(
        per_client: usize,
        trusted: Vec<Cidr>,
        rate: Option<Rate>,
        udp_refusals_per_s: u32,
    ) -> Limits {
        let refusal_rate = Rate {
            per_s: udp_refusals_per_s.max(1),
            burst: udp_refusals_per_s.max(1),
        };
        Limits {
            per_client,
            trusted,
            rate: rate.filter(|r| r.per_s > 0),
            open: BTreeMap::new(),
            buckets: BTreeMap::new(),
            refusal_rate,
            // Full from the start of time.
            refusals: Bucket::full(refusal_rate, 0),
        }
    }

    /// Whether `ip` is exempt from the per-client limits.
    pub fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// A connection from `ip` at `now` while `open` connections are open of at most
    /// `max`: the verdict, counted (and its token taken) when accepted.
    pub fn connect(&mut self, ip: IpAddr, now: u64, open: usize, max: usize) -> Verdict {
        if open >= max {
            return Verdict::Global;
        }
        if self.trusted(ip) {
            return Verdict::Accept;
        }
        let held = self.open.get(&ip).copied().unwrap_or(0);
        if self.per_client > 0 && held >= self.per_client {
            return Verdict::PerClient;
        }
        if !self.token(ip, now) {
            return Verdict::Rate;
        }
        *self.open.entry(ip).or_default() += 1;
        Verdict::Accept
    }

    /// A counted connection of `ip` no longer counts (its response is out, or it
    /// closed).
    pub fn uncount(&mut self, ip: IpAddr) {
        if let Some(n) = self.open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// A datagram from `ip` at `now`; `parses`: it is long enough for a header (only
    /// such a one can be answered).
    pub fn datagram(&mut self, ip: IpAddr, now: u64, parses: bool) -> Datagram {
        if self.trusted(ip) || self.token(ip, now) {
            return Datagram::Served;
        }
        if parses && self.refusals.take(self.refusal_rate, now) {
            Datagram::Refused
        } else {
            Datagram::Dropped
        }
    }

    /// Takes one of `ip`'s tokens at `now` (always there without a rate).
    fn token(&mut self, ip: IpAddr, now: u64) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        self.buckets
            .entry(ip)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn the_global_limit_comes_first_then_the_client_then_its_rate() {
        let rate = Rate {
            per_s: 10,
            burst: 2,
        };
        let mut l = Limits::new(2, Vec::new(), Some(rate), 1);
        let a = ip("10.0.0.1");
        assert_eq!(l.connect(a, 0, 5, 5), Verdict::Global);
        assert_eq!(l.connect(a, 0, 0, 5), Verdict::Accept);
        assert_eq!(l.connect(a, 0, 1, 5), Verdict::Accept);
        assert_eq!(l.connect(a, 0, 2, 5), Verdict::PerClient);
        l.uncount(a);
        assert_eq!(l.connect(a, 0, 2, 5), Verdict::Rate, "two tokens spent");
        assert_eq!(
            l.connect(a, 100_000, 2, 5),
            Verdict::Accept,
            "one token later"
        );
    }

    #[test]
    fn trusted_clients_are_exempt_and_udp_refusals_are_capped() {
        let trusted = vec![Cidr::parse("10.0.0.0/8").expect("a network")];
        let rate = Rate { per_s: 1, burst: 1 };
        let mut l = Limits::new(1, trusted, Some(rate), 2);
        for _ in 0..5 {
            assert_eq!(l.connect(ip("10.1.2.3"), 0, 0, 9), Verdict::Accept);
            assert_eq!(l.datagram(ip("10.1.2.3"), 0, true), Datagram::Served);
        }
        let b = ip("192.0.2.1");
        assert_eq!(l.datagram(b, 10, true), Datagram::Served);
        assert_eq!(l.datagram(b, 10, true), Datagram::Refused);
        assert_eq!(l.datagram(b, 10, false), Datagram::Dropped, "no header");
        assert_eq!(l.datagram(b, 10, true), Datagram::Refused);
        assert_eq!(l.datagram(b, 10, true), Datagram::Dropped, "past the cap");
    }
}
