//! Socket setup through socket2: the listener, the UDP socket on the same port, and
//! accepting connections.
//!
//! Accepted connections need no option of their own, so accepting costs one syscall:
//! `accept4` makes them non-blocking, and Linux copies the listener's keep-alive
//! settings (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT) into every socket it
//! accepts, so they are set once, on the listener (a test below checks the copy).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};

use raida_core::config::NetworkConfig;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

/// How many times `--port 0` tries a fresh port when UDP cannot bind the port TCP got.
const PORT_ZERO_ATTEMPTS: usize = 32;

/// The TCP listener (SO_REUSEADDR, SO_REUSEPORT when several loops share the port,
/// non-blocking, keep-alive for the connections it accepts, backlog SOMAXCONN).
fn listener(addr: SocketAddr, network: &NetworkConfig, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_tcp_keepalive(&keepalive(network))?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(libc::SOMAXCONN)?;
    Ok(socket)
}

fn keepalive(network: &NetworkConfig) -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(network.keepalive_idle())
        .with_interval(network.keepalive_interval())
        .with_retries(network.keepalive_probes)
}

/// The UDP socket, non-blocking (SO_REUSEPORT when several loops share the port).
fn udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket.into())
}

/// Binds `count` TCP listeners and `count` UDP sockets on `bind:port`, one pair per
/// event loop; with more than one, every socket has SO_REUSEPORT and the kernel spreads
/// connections and datagrams over them (by a hash of the peer's address and port).
/// Port 0 picks a port on which both can bind: TCP binds a free port, then UDP binds
/// the same one; when UDP finds it taken, both are dropped and a new port is tried, a
/// bounded number of times; the other pairs then bind that port.
pub(crate) fn bind_pairs(
    bind: IpAddr,
    port: u16,
    count: usize,
    network: &NetworkConfig,
) -> io::Result<Vec<(Socket, UdpSocket)>> {
    let reuse = count > 1;
    let first = bind_pair(bind, port, network, reuse)?;
    let port = local_addr(&first.0)?.port();
    let mut pairs = vec![first];
    for _ in 1..count {
        let addr = SocketAddr::new(bind, port);
        let tcp = listener(addr, network, true).map_err(|e| with_context(e, "TCP", addr))?;
        let udp = udp(addr, true).map_err(|e| with_context(e, "UDP", addr))?;
        pairs.push((tcp, udp));
    }
    Ok(pairs)
}

fn bind_pair(
    bind: IpAddr,
    port: u16,
    network: &NetworkConfig,
    reuse: bool,
) -> io::Result<(Socket, UdpSocket)> {
    if port != 0 {
        let addr = SocketAddr::new(bind, port);
        let tcp = listener(addr, network, reuse).map_err(|e| with_context(e, "TCP", addr))?;
        let udp = udp(addr, reuse).map_err(|e| with_context(e, "UDP", addr))?;
        return Ok((tcp, udp));
    }
    let mut last = None;
    for _ in 0..PORT_ZERO_ATTEMPTS {
        let tcp = listener(SocketAddr::new(bind, 0), network, reuse)
            .map_err(|e| with_context(e, "TCP", SocketAddr::new(bind, 0)))?;
        let local = local_addr(&tcp)?;
        match udp(local, reuse) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(with_context(e, "UDP", local)),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port")))
}

fn with_context(e: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(e.kind(), format!("cannot bind {what} {addr}: {e}"))
}

/// The listener's bound address.
pub(crate) fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no IP address"))
}

/// Accepts one connection, non-blocking and close-on-exec (`accept4`, one syscall),
/// with its peer's address (unspecified when it has no IP address).
pub(crate) fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SocketAddr)> {
    // SAFETY: `accept4` writes at most `len` bytes of address into the storage
    // `try_init` lends; the returned descriptor is checked and owned at once.
    let (fd, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(
                listener.as_raw_fd(),
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })?
    };
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let peer = addr
        .as_socket()
        .unwrap_or_else(|| SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)));
    Ok((socket, peer))
}

/// A non-blocking TCP socket connecting to `addr` (a peer call): the connect is
/// started and, on `EINPROGRESS`, completes later (the socket becomes writable, or
/// reports its error). Nagle is off: the request is one small write.
pub(crate) fn connect_nonblocking(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(socket),
        Err(e) => Err(e),
    }
}

/// Raises the soft limit of open files to the hard limit, so `max_connections` is not
/// capped by a low default soft limit. Returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; the pointer is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Duration;

    /// Accepted sockets get their keep-alive settings from the listener, and accept4
    /// makes them non-blocking: nothing is set per connection.
    #[test]
    fn accepted_sockets_inherit_keepalive_and_are_nonblocking() {
        let mut network = NetworkConfig::default();
        network.keepalive_idle_s = 77;
        network.keepalive_interval_s = 11;
        network.keepalive_probes = 4;
        let pairs = bind_pairs(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 1, &network).expect("bind");
        let (listener, _udp) = &pairs[0];
        let addr = local_addr(listener).expect("addr");
        let _client = TcpStream::connect(addr).expect("connect");
        let mut accepted = None;
        for _ in 0..500 {
            match accept_nonblocking(listener) {
                Ok((s, _)) => {
                    accepted = Some(s);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        let socket = accepted.expect("a connection within a second");
        assert_eq!(socket.nonblocking().ok(), Some(true));
        assert_eq!(socket.keepalive().ok(), Some(true));
        assert_eq!(socket.keepalive_time().ok(), Some(Duration::from_secs(77)));
        assert_eq!(
            socket.keepalive_interval().ok(),
            Some(Duration::from_secs(11))
        );
        assert_eq!(socket.keepalive_retries().ok(), Some(4));
    }

    #[test]
    fn several_pairs_share_one_port() {
        let network = NetworkConfig::default();
        let pairs = bind_pairs(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 3, &network).expect("bind");
        let ports: Vec<u16> = pairs
            .iter()
            .map(|(t, u)| {
                let p = local_addr(t).expect("tcp addr").port();
                assert_eq!(u.local_addr().expect("udp addr").port(), p);
                p
            })
            .collect();
        assert!(ports.windows(2).all(|w| w[0] == w[1]));
    }
}
