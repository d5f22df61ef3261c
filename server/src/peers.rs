//! `[server] raida_servers` resolved, once at start (PROTOCOL.md 8b, 10a): the I/O
//! core never does. Index i is RAIDA i's address; the healing commands accept a claim
//! for RAIDA i only from its IP, and a fix calls its peers there.

use std::net::{SocketAddr, ToSocketAddrs};

use raida_core::config::split_host_port;

/// Each `"host:port"` entry's first IPv4 address, in order; `None` (with a logged
/// warning) where the host does not resolve to one. Blocks on name resolution, so it
/// runs once, at start, before anything is served.
pub fn resolve_raida_servers(entries: &[String]) -> Vec<Option<SocketAddr>> {
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let resolved = split_host_port(entry).and_then(|(host, port)| {
                (host, port)
                    .to_socket_addrs()
                    .ok()?
                    .find(SocketAddr::is_ipv4)
            });
            if resolved.is_none() {
                tracing::warn!(
                    "[server] raida_servers item {} ({entry:?}, RAIDA {i}) does not resolve \
                     to an IPv4 address: no claims from it and no calls to it",
                    i + 1
                );
            }
            resolved
        })
        .collect()
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
        let r = resolve_raida_servers(&entries);
        assert_eq!(r[0], Some(SocketAddr::from(([127, 0, 0, 1], 50_000))));
        assert_eq!(r[1], None, "IPv4 only");
        assert_eq!(r[2].map(|a| a.port()), Some(50_002));
        assert_eq!(r[3], None);
    }
}
