//! `[server] raida_servers` resolved, once at start (PROTOCOL.md 8b, 10a): the I/O
//! core never does. Index i is RAIDA i's address; the healing commands accept a claim
//! for RAIDA i only from its IP, and a fix calls its peers there.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use raida_core::config::split_host_port;

/// `raida_servers` resolved: per entry (index i = RAIDA i), every IPv4 address its host
/// resolved to, in the resolver's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaidaServers {
    /// Per entry, its IPv4 addresses; empty where the host did not resolve to one.
    pub resolved: Vec<Vec<SocketAddr>>,
}

impl RaidaServers {
    /// The address each RAIDA is called at: its entry's first IPv4 address, `None`
    /// where there is none.
    pub fn addresses(&self) -> Vec<Option<SocketAddr>> {
        self.resolved.iter().map(|a| a.first().copied()).collect()
    }

    /// The IP addresses a claim for each RAIDA may come from: all of its entry's.
    pub fn ips(&self) -> Vec<Vec<IpAddr>> {
        self.resolved
            .iter()
            .map(|a| a.iter().map(SocketAddr::ip).collect())
            .collect()
    }
}

/// Each `"host:port"` entry's IPv4 addresses, in order; none (with a logged warning)
/// where the host does not resolve to one. Blocks on name resolution, so it runs once,
/// at start, before anything is served.
pub fn resolve_raida_servers(entries: &[String]) -> RaidaServers {
    let resolved = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let resolved: Vec<SocketAddr> = split_host_port(entry)
                .and_then(|(host, port)| (host, port).to_socket_addrs().ok())
                .map(|addrs| addrs.filter(SocketAddr::is_ipv4).collect())
                .unwrap_or_default();
            if resolved.is_empty() {
                tracing::warn!(
                    "[server] raida_servers item {} ({entry:?}, RAIDA {i}) does not resolve \
                     to an IPv4 address: no claims from it and no calls to it",
                    i + 1
                );
            }
            resolved
        })
        .collect();
    RaidaServers { resolved }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_resolve_and_bad_ones_are_none() {
        let entries = [
            "127.0.0.1:50000".to_string(),
            "[::1]:50001".to_string(),
            "localhost:50002".to_string(),
            "no-such-host.invalid:1".to_string(),
        ];
        let resolved = resolve_raida_servers(&entries);
        let r = resolved.addresses();
        assert_eq!(resolved.ips()[0], [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(r[0], Some(SocketAddr::from(([127, 0, 0, 1], 50_000))));
        assert_eq!(r[1], None, "IPv4 only");
        assert_eq!(r[2].map(|a| a.port()), Some(50_002));
        assert_eq!(r[3], None);
    }
}
