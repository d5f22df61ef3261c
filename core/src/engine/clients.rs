//! Per-client limits: no single client can take the server.
//!
//! - **Connections per client** (`max_connections_per_client`): one more connection from
//!   a client that holds that many is refused with 160, exactly like the global limit.
//! - **Requests per client** (an optional token bucket: `rate`): a client over its rate
//!   is answered 160, over TCP (the connection is refused) and UDP (the datagram); over
//!   UDP the 160s themselves are rate-limited (`udp_refusals_per_s`, server-wide), so
//!   the server never amplifies a flood.
//! - A client is an IPv4 address, or an IPv6 /64 (one host's privacy addresses, one
//!   subscriber's prefix); IPv4-mapped IPv6 addresses are their IPv4 address.
//! - Clients in `trusted` networks are exempt from both.
//!
//! Memory is bounded: the rate table holds at most `max_tracked_clients` buckets (full
//! buckets, of clients idle long enough to have refilled, are dropped first; a client
//! dropped starts again full, which is what it would have had).

use std::collections::BTreeMap;
use std::net::IpAddr;

use raida_wire::Timestamp;

use crate::cidr::{canonical, Cidr};

/// A client as the limits count it: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Client {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match canonical(ip) {
            IpAddr::V4(v4) => Client::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Client::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        }
    }
}

/// A request rate: `per_s` requests a second on average, bursts of `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests a second (more than 0).
    pub per_s: u32,
    /// Requests at once after a quiet while (at least 1).
    pub burst: u32,
}

/// Tokens in millionths, so refills over microseconds stay integers.
const UNIT: u64 = 1_000_000;

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u64,
    at: Timestamp,
}

impl Bucket {
    fn full(rate: Rate, now: Timestamp) -> Bucket {
        Bucket {
            tokens: u64::from(rate.burst) * UNIT,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Timestamp) {
        let elapsed = now.as_micros().saturating_sub(self.at.as_micros());
        let cap = u64::from(rate.burst.max(1)) * UNIT;
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(u64::from(rate.per_s)))
            .min(cap);
        self.at = now;
    }

    /// Takes one token if there is one.
    fn take(&mut self, rate: Rate, now: Timestamp) -> bool {
        self.refill(rate, now);
        if self.tokens >= UNIT {
            self.tokens -= UNIT;
            true
        } else {
            false
        }
    }
}

/// Why a connection or a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client holds `max_connections_per_client` connections.
    PerClient,
    /// The client is over its request rate.
    Rate,
}

/// The per-client tables.
#[derive(Debug)]
pub(crate) struct Clients {
    per_client: usize,
    trusted: Vec<Cidr>,
    rate: Option<Rate>,
    max_tracked: usize,
    open: BTreeMap<Client, u32>,
    buckets: BTreeMap<Client, Bucket>,
    udp_refusals: Option<(Rate, Bucket)>,
}

impl Clients {
    pub(crate) fn new(
        per_client: usize,
        trusted: Vec<Cidr>,
        rate: Option<Rate>,
        max_tracked: usize,
        udp_refusals_per_s: u32,
    ) -> Clients {
        let refusals = Rate {
            per_s: udp_refusals_per_s.max(1),
            burst: udp_refusals_per_s.max(1),
        };
        Clients {
            per_client,
            trusted,
            rate: rate.filter(|r| r.per_s > 0),
            max_tracked: max_tracked.max(1),
            open: BTreeMap::new(),
            buckets: BTreeMap::new(),
            udp_refusals: Some((refusals, Bucket::full(refusals, Timestamp::ZERO))),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// A connection from `ip` wants in: counted (until [`Clients::closed`]) unless
    /// refused.
    pub(crate) fn connect(&mut self, ip: IpAddr, now: Timestamp) -> Result<(), Refusal> {
        if self.trusted(ip) {
            return Ok(());
        }
        let client = Client::of(ip);
        if self.per_client > 0
            && self.open.get(&client).copied().unwrap_or(0) as usize >= self.per_client
        {
            return Err(Refusal::PerClient);
        }
        self.request(ip, now)?;
        *self.open.entry(client).or_default() += 1;
        Ok(())
    }

    /// A connection from `ip` (counted by [`Clients::connect`]) closed.
    pub(crate) fn closed(&mut self, ip: IpAddr) {
        if self.trusted(ip) {
            return;
        }
        let client = Client::of(ip);
        if let Some(n) = self.open.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&client);
            }
        }
    }

    /// A request from `ip`: within its rate?
    pub(crate) fn request(&mut self, ip: IpAddr, now: Timestamp) -> Result<(), Refusal> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        if self.trusted(ip) {
            return Ok(());
        }
        let client = Client::of(ip);
        if !self.buckets.contains_key(&client) && self.buckets.len() >= self.max_tracked {
            self.forget_full(rate, now);
        }
        let bucket = self
            .buckets
            .entry(client)
            .or_insert_with(|| Bucket::full(rate, now));
        if bucket.take(rate, now) {
            Ok(())
        } else {
            Err(Refusal::Rate)
        }
    }

    /// Whether a 160 may be sent for a rate-limited datagram now (server-wide cap).
    pub(crate) fn udp_refusal(&mut self, now: Timestamp) -> bool {
        match &mut self.udp_refusals {
            Some((rate, bucket)) => bucket.take(*rate, now),
            None => false,
        }
    }

    /// Room in a full rate table: drops the buckets that refilled (their clients were
    /// idle), or, when none did, the oldest half by last use.
    fn forget_full(&mut self, rate: Rate, now: Timestamp) {
        let cap = u64::from(rate.burst.max(1)) * UNIT;
        self.buckets.retain(|_, b| {
            b.refill(rate, now);
            b.tokens < cap
        });
        if self.buckets.len() >= self.max_tracked {
            let mut ages: Vec<u64> = self.buckets.values().map(|b| b.at.as_micros()).collect();
            ages.sort_unstable();
            let median = ages[ages.len() / 2];
            self.buckets.retain(|_, b| b.at.as_micros() > median);
        }
    }

    /// Clients with open connections counted now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_micros(ms * 1000)
    }

    #[test]
    fn connections_per_client_are_limited_and_trusted_networks_exempt() {
        let trusted = vec![Cidr::parse("10.0.0.0/8").expect("cidr")];
        let mut c = Clients::new(2, trusted, None, 100, 10);
        assert_eq!(c.connect(ip("192.0.2.1"), t(0)), Ok(()));
        assert_eq!(c.connect(ip("192.0.2.1"), t(0)), Ok(()));
        assert_eq!(c.connect(ip("192.0.2.1"), t(0)), Err(Refusal::PerClient));
        assert_eq!(c.connect(ip("192.0.2.2"), t(0)), Ok(()), "another client");
        for _ in 0..10 {
            assert_eq!(c.connect(ip("10.9.9.9"), t(0)), Ok(()), "trusted");
        }
        c.closed(ip("192.0.2.1"));
        assert_eq!(c.connect(ip("192.0.2.1"), t(0)), Ok(()));
        assert_eq!(c.tracked(), 2);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_slash_64() {
        let mut c = Clients::new(2, Vec::new(), None, 100, 10);
        assert_eq!(c.connect(ip("2001:db8:1:2::a"), t(0)), Ok(()));
        assert_eq!(c.connect(ip("2001:db8:1:2:ffff::b"), t(0)), Ok(()));
        assert_eq!(
            c.connect(ip("2001:db8:1:2::c"), t(0)),
            Err(Refusal::PerClient)
        );
        assert_eq!(
            c.connect(ip("2001:db8:1:3::a"), t(0)),
            Ok(()),
            "another /64"
        );
    }

    #[test]
    fn a_token_bucket_allows_the_burst_then_the_rate() {
        let rate = Rate {
            per_s: 10,
            burst: 3,
        };
        let mut c = Clients::new(0, Vec::new(), Some(rate), 100, 10);
        let a = ip("198.51.100.1");
        for _ in 0..3 {
            assert_eq!(c.request(a, t(0)), Ok(()));
        }
        assert_eq!(c.request(a, t(0)), Err(Refusal::Rate));
        assert_eq!(c.request(a, t(99)), Err(Refusal::Rate), "0.99 of a token");
        assert_eq!(c.request(a, t(100)), Ok(()), "one token after 100 ms");
        assert_eq!(
            c.request(ip("198.51.100.2"), t(100)),
            Ok(()),
            "its own bucket"
        );
    }

    #[test]
    fn udp_refusals_are_capped_server_wide() {
        let mut c = Clients::new(0, Vec::new(), None, 100, 5);
        let sent = (0..100).filter(|_| c.udp_refusal(t(10))).count();
        assert_eq!(sent, 5);
        assert!(c.udp_refusal(t(210)), "one more after 200 ms at 5 a second");
    }

    #[test]
    fn the_rate_table_stays_within_its_bound() {
        let rate = Rate { per_s: 1, burst: 2 };
        let mut c = Clients::new(0, Vec::new(), Some(rate), 50, 10);
        for i in 0..1000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0xC000_0000 + i));
            let _ = c.request(a, t(u64::from(i)));
            assert!(c.buckets.len() <= 50);
        }
    }
}
