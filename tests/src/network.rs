//! A local RAIDA network: `n` `raida-server` processes on 127.0.0.1, raida ids
//! `0..n` on the consecutive ports `base..base + n`, each with a data root of its own
//! (`raida-NN/`, holding its `config.toml` and `Data/`) whose `[server] raida_servers`
//! lists every server as `"127.0.0.1:PORT"`, index i being RAIDA i (PROTOCOL.md 10a).
//! `network.txt` in the same directory lists the same addresses, one a line, as
//! `raida --network` reads them.
//!
//! `scripts/local-network` does the same from a shell, for people. The servers run
//! with one worker thread each (25 servers on a small machine), and are stopped by
//! their own PIDs when the [`LocalNetwork`] is dropped. [`NetworkOptions`] chooses the
//! binary (e.g. the release build) and the `[healing] peer_timeout_ms` of every server.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use crate::{server_binary, Server};

/// How many servers a deployed RAIDA network has.
pub const RAIDA_COUNT: usize = 25;

/// Base ports tried at most before giving up (another process may take a port between
/// the probe and the server's bind).
const PORT_ATTEMPTS: u32 = 20;
/// The lowest base port tried; bases are drawn from `FIRST_BASE..FIRST_BASE + BASE_SPAN`.
const FIRST_BASE: u32 = 20_000;
/// The span base ports are drawn from (below the usual ephemeral range, 32768..).
const BASE_SPAN: u32 = 12_000;

/// What each server's `Data/` starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkData {
    /// The demo key store (`raida_store::write_demo_store`): the same coins and ANs on
    /// every RAIDA.
    Demo,
    /// An empty `Data/` tree, for a test to fill.
    Empty,
}

/// How [`LocalNetwork::start_with`] sets the servers up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkOptions {
    /// What each server's `Data/` starts with.
    pub data: NetworkData,
    /// The `raida-server` binary; `None`: [`server_binary`] (the test's profile).
    pub binary: Option<PathBuf>,
    /// Every server's `[healing] peer_timeout_ms` (how long a fix waits for its peers);
    /// `None`: the server's default (8 s).
    pub peer_timeout_ms: Option<u64>,
}

impl NetworkOptions {
    /// `data`, the test's `raida-server`, default `[healing]`.
    pub fn new(data: NetworkData) -> NetworkOptions {
        NetworkOptions {
            data,
            binary: None,
            peer_timeout_ms: None,
        }
    }
}

/// A running local network (see the module docs); every server is stopped (by its
/// PID) and the directory removed when it is dropped.
#[derive(Debug)]
pub struct LocalNetwork {
    /// One server per raida id, in order (stopped before `dir` is removed).
    servers: Vec<Server>,
    /// The first server's port; server i listens on `base_port + i`.
    pub base_port: u16,
    dir: tempfile::TempDir,
}

impl LocalNetwork {
    /// Starts `n` servers (1..=25) with `data`, on the first free run of `n`
    /// consecutive ports it finds, and waits until every one is listening.
    pub fn start(n: usize, data: NetworkData) -> LocalNetwork {
        LocalNetwork::start_with(n, &NetworkOptions::new(data))
    }

    /// Starts `n` servers (1..=25) set up as `options` says, on the first free run of
    /// `n` consecutive ports it finds, and waits until every one is listening.
    pub fn start_with(n: usize, options: &NetworkOptions) -> LocalNetwork {
        assert!((1..=RAIDA_COUNT).contains(&n), "1..=25 servers, not {n}");
        let mut last_error = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let base = base_candidate(attempt, n);
            if !ports_free(base, n) {
                continue;
            }
            let dir = tempfile::tempdir().expect("temp dir");
            write_roots(dir.path(), base, n, options);
            let binary = options.binary.clone().unwrap_or_else(server_binary);
            match start_servers(&binary, dir.path(), n) {
                Ok(servers) => {
                    return LocalNetwork {
                        servers,
                        base_port: base,
                        dir,
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("no run of {n} free ports for a local network; last error: {last_error}");
    }

    /// The servers, by raida id.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// The servers, by raida id, to wait for one that was stopped.
    pub fn servers_mut(&mut self) -> &mut [Server] {
        &mut self.servers
    }

    /// Server `raida_id`'s TCP address.
    pub fn addr(&self, raida_id: usize) -> SocketAddr {
        self.servers[raida_id].tcp
    }

    /// Every server's address, by raida id.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.tcp).collect()
    }

    /// `network.txt`: one `127.0.0.1:PORT` a line, line i for RAIDA i.
    pub fn network_file(&self) -> PathBuf {
        self.dir.path().join("network.txt")
    }

    /// Server `raida_id`'s data root (its `config.toml` and `Data/`).
    pub fn root(&self, raida_id: usize) -> PathBuf {
        root_dir(self.dir.path(), raida_id)
    }
}

fn root_dir(dir: &Path, raida_id: usize) -> PathBuf {
    dir.join(format!("raida-{raida_id:02}"))
}

/// The `attempt`-th base port to try: spread by process id, so that test processes
/// running at the same time start far apart.
fn base_candidate(attempt: u32, n: usize) -> u16 {
    let n = u32::try_from(n).unwrap_or(25);
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(attempt.wrapping_mul(104_729));
    let slots = BASE_SPAN / n;
    let base = FIRST_BASE + (seed % slots) * n;
    u16::try_from(base).unwrap_or(20_000)
}

/// Whether TCP and UDP can both bind each of `base..base + n` on 127.0.0.1 right now.
fn ports_free(base: u16, n: usize) -> bool {
    (0..n).all(|i| {
        let Some(port) = u16::try_from(i).ok().and_then(|i| base.checked_add(i)) else {
            return false;
        };
        TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
    })
}

/// The `raida_servers` array and `network.txt` for `n` servers from `base`.
fn addresses(base: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("127.0.0.1:{}", usize::from(base) + i))
        .collect()
}

/// Writes `raida-NN/config.toml` and `Data/` for every server, and `network.txt`.
fn write_roots(dir: &Path, base: u16, n: usize, options: &NetworkOptions) {
    let addrs = addresses(base, n);
    let list = addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for (i, _) in addrs.iter().enumerate() {
        let root = root_dir(dir, i);
        std::fs::create_dir_all(&root).expect("create a server's root");
        let mut config = String::new();
        let port = usize::from(base) + i;
        let _ = write!(
            config,
            "[server]\nraida_id = {i}\nport = {port}\nthreads = 1\nraida_servers = [{list}]\n\n\
             [network]\nbind = \"127.0.0.1\"\n"
        );
        if let Some(ms) = options.peer_timeout_ms {
            let _ = write!(config, "\n[healing]\npeer_timeout_ms = {ms}\n");
        }
        std::fs::write(root.join("config.toml"), config).expect("write config.toml");
        match options.data {
            NetworkData::Demo => {
                raida_store::write_demo_store(&root).expect("write the demo store");
            }
            NetworkData::Empty => {
                std::fs::create_dir_all(root.join("Data")).expect("create Data/");
            }
        }
    }
    std::fs::write(dir.join("network.txt"), addrs.join("\n") + "\n").expect("write network.txt");
}

/// Starts every server, the binary `binary`, one after the other; on any failure stops
/// those that started and says why.
fn start_servers(binary: &Path, dir: &Path, n: usize) -> Result<Vec<Server>, String> {
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        let root = root_dir(dir, i);
        let config = root.join("config.toml");
        let config = config.to_str().ok_or("a UTF-8 temp path")?;
        // A failed start drops (and so stops) the servers already started.
        servers.push(Server::try_start_program(
            binary,
            &["--config", config],
            Some(&root),
        )?);
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_ports_leave_room_for_every_server_below_the_ephemeral_range() {
        for attempt in 0..PORT_ATTEMPTS {
            let base = u32::from(base_candidate(attempt, 25));
            assert!(base >= FIRST_BASE && base + 25 <= FIRST_BASE + BASE_SPAN);
        }
    }

    #[test]
    fn every_server_lists_all_of_them_in_raida_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = NetworkOptions::new(NetworkData::Empty);
        write_roots(dir.path(), 30_000, 3, &options);
        let config =
            std::fs::read_to_string(dir.path().join("raida-02/config.toml")).expect("config");
        assert!(config.contains("raida_id = 2\nport = 30002\n"), "{config}");
        assert!(
            config.contains(
                "raida_servers = [\"127.0.0.1:30000\", \"127.0.0.1:30001\", \"127.0.0.1:30002\"]"
            ),
            "{config}"
        );
        let list = std::fs::read_to_string(dir.path().join("network.txt")).expect("list");
        assert_eq!(list, "127.0.0.1:30000\n127.0.0.1:30001\n127.0.0.1:30002\n");
        assert!(dir.path().join("raida-00/Data").is_dir());
        assert!(!config.contains("[healing]"), "{config}");
        options.peer_timeout_ms = Some(1500);
        write_roots(dir.path(), 30_000, 3, &options);
        let config =
            std::fs::read_to_string(dir.path().join("raida-01/config.toml")).expect("config");
        assert!(
            config.ends_with("\n[healing]\npeer_timeout_ms = 1500\n"),
            "{config}"
        );
    }
}
