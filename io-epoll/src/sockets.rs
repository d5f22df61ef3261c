//! Socket setup through socket2: the listener, the UDP socket on the same port, and
//! the options of accepted connections.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use raida_core::config::NetworkConfig;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

/// How many times `--port 0` tries a fresh port when UDP cannot bind the port TCP got.
const PORT_ZERO_ATTEMPTS: usize = 32;

/// The TCP listener (SO_REUSEADDR, non-blocking, backlog SOMAXCONN).
fn listener(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(libc::SOMAXCONN)?;
    Ok(socket)
}

/// The UDP socket, non-blocking.
fn udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket.into())
}

/// Binds TCP and UDP on `bind:port`. Port 0 picks a port on which both can bind: TCP
/// binds a free port, then UDP binds the same one; when UDP finds it taken, both are
/// dropped and a new port is tried, a bounded number of times.
pub fn bind_pair(bind: IpAddr, port: u16) -> io::Result<(Socket, UdpSocket)> {
    if port != 0 {
        let addr = SocketAddr::new(bind, port);
        let tcp = listener(addr).map_err(|e| with_context(e, "TCP", addr))?;
        let udp = udp(addr).map_err(|e| with_context(e, "UDP", addr))?;
        return Ok((tcp, udp));
    }
    let mut last = None;
    for _ in 0..PORT_ZERO_ATTEMPTS {
        let tcp = listener(SocketAddr::new(bind, 0))
            .map_err(|e| with_context(e, "TCP", SocketAddr::new(bind, 0)))?;
        let local = local_addr(&tcp)?;
        match udp(local) {
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
pub fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no IP address"))
}

/// Options of an accepted connection: non-blocking, keep-alive from the configuration.
pub fn configure_accepted(socket: &Socket, network: &NetworkConfig) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(network.keepalive_idle())
        .with_interval(network.keepalive_interval())
        .with_retries(network.keepalive_probes);
    socket.set_tcp_keepalive(&keepalive)?;
    Ok(())
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
