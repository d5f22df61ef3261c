//! One exchange over TCP or UDP with blocking std sockets and timeouts.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::ClientError;
use crate::request::BuiltRequest;
use crate::response::{declared_body_len, Response};

/// The largest datagram read (the whole UDP payload range).
const MAX_DATAGRAM: usize = 65_536;

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One request per connection; the server closes after the response.
    Tcp,
    /// One datagram in, one datagram out.
    Udp,
}

impl Transport {
    /// `TCP` or `UDP`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        }
    }
}

/// How long each phase may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Writing the request.
    pub write: Duration,
    /// Reading the whole response (a deadline over all reads, not per read).
    pub read: Duration,
}

impl Timeouts {
    /// The same timeout for every phase (zero is raised to 1 ms: std rejects zero).
    pub fn uniform(d: Duration) -> Timeouts {
        let d = d.max(Duration::from_millis(1));
        Timeouts {
            connect: d,
            write: d,
            read: d,
        }
    }
}

impl Default for Timeouts {
    /// 2 s each: the server's own `socket_timeout` default.
    fn default() -> Self {
        Timeouts::uniform(Duration::from_secs(2))
    }
}

/// A verified response and how long it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The response.
    pub response: Response,
    /// From before connecting (TCP) or sending (UDP) to the last response byte.
    pub round_trip: Duration,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends `request` to `addr` over `transport` and returns the verified response.
pub fn exchange(
    addr: SocketAddr,
    transport: Transport,
    request: &BuiltRequest,
    timeouts: &Timeouts,
) -> Result<Reply, ClientError> {
    match transport {
        Transport::Tcp => exchange_tcp(addr, request, timeouts),
        Transport::Udp => exchange_udp(addr, request, timeouts),
    }
}

/// TCP: connect, write the request, read exactly the response header (32 or 48 bytes,
/// as the request's) and then exactly the declared body, verify, close.
pub fn exchange_tcp(
    addr: SocketAddr,
    request: &BuiltRequest,
    timeouts: &Timeouts,
) -> Result<Reply, ClientError> {
    let start = Instant::now();
    let mut stream = match TcpStream::connect_timeout(&addr, timeouts.connect) {
        Ok(s) => s,
        Err(e) if is_timeout(&e) => {
            return Err(ClientError::ConnectTimeout {
                addr,
                timeout_ms: millis(timeouts.connect),
            })
        }
        Err(source) => {
            return Err(ClientError::Connect {
                addr,
                transport: "TCP",
                source,
            })
        }
    };
    let socket_err = |what| move |source| ClientError::Socket { what, source };
    stream
        .set_nodelay(true)
        .map_err(socket_err("set TCP_NODELAY"))?;
    stream
        .set_write_timeout(Some(timeouts.write.max(Duration::from_millis(1))))
        .map_err(socket_err("set write timeout"))?;
    write_all(&mut stream, request.bytes(), timeouts.write)?;

    let deadline = Instant::now() + timeouts.read;
    let hlen = request.response_header_len();
    let mut buf = vec![0u8; hlen];
    read_exact(
        &mut stream,
        &mut buf,
        "response header",
        deadline,
        timeouts.read,
    )?;
    let size = declared_body_len(&buf);
    buf.resize(hlen + size, 0);
    read_exact(
        &mut stream,
        &mut buf[hlen..],
        "response body",
        deadline,
        timeouts.read,
    )?;
    let round_trip = start.elapsed();
    let response = request.parse_response(&buf)?;
    Ok(Reply {
        response,
        round_trip,
    })
}

fn write_all(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> Result<(), ClientError> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => {
                return Err(ClientError::Write {
                    expected: bytes.len(),
                    written,
                    source: io::Error::from(io::ErrorKind::WriteZero),
                })
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Err(ClientError::WriteTimeout {
                    expected: bytes.len(),
                    written,
                    timeout_ms: millis(timeout),
                })
            }
            Err(source) => {
                return Err(ClientError::Write {
                    expected: bytes.len(),
                    written,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Fills `buf` before `deadline`, naming `part` in errors.
fn read_exact(
    stream: &mut TcpStream,
    buf: &mut [u8],
    part: &'static str,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), ClientError> {
    let mut got = 0;
    let expected = buf.len();
    let timed_out = |got| ClientError::Timeout {
        part,
        expected,
        got,
        timeout_ms: millis(timeout),
    };
    while got < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(got));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|source| ClientError::Socket {
                what: "set read timeout",
                source,
            })?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(ClientError::Closed {
                    part,
                    expected,
                    got,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(timed_out(got)),
            Err(source) => {
                return Err(ClientError::Read {
                    part,
                    expected,
                    got,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// UDP: send the request as one datagram from an ephemeral local port connected to
/// `addr`, read one datagram back, verify it.
pub fn exchange_udp(
    addr: SocketAddr,
    request: &BuiltRequest,
    timeouts: &Timeouts,
) -> Result<Reply, ClientError> {
    let local: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket_err = |what| move |source| ClientError::Socket { what, source };
    let socket = UdpSocket::bind(local).map_err(socket_err("bind UDP"))?;
    socket.connect(addr).map_err(socket_err("connect UDP"))?;
    socket
        .set_write_timeout(Some(timeouts.write.max(Duration::from_millis(1))))
        .map_err(socket_err("set write timeout"))?;
    socket
        .set_read_timeout(Some(timeouts.read.max(Duration::from_millis(1))))
        .map_err(socket_err("set read timeout"))?;
    let bytes = request.bytes();
    let start = Instant::now();
    match socket.send(bytes) {
        Ok(n) if n == bytes.len() => {}
        Ok(n) => {
            return Err(ClientError::Write {
                expected: bytes.len(),
                written: n,
                source: io::Error::from(io::ErrorKind::WriteZero),
            })
        }
        Err(e) if is_timeout(&e) => {
            return Err(ClientError::WriteTimeout {
                expected: bytes.len(),
                written: 0,
                timeout_ms: millis(timeouts.write),
            })
        }
        Err(source) => return Err(connect_or_write(addr, bytes.len(), source)),
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let hlen = request.response_header_len();
    let deadline = start + timeouts.read;
    let n = loop {
        match socket.recv(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(udp_timeout(hlen, timeouts.read));
                }
                socket
                    .set_read_timeout(Some(left))
                    .map_err(socket_err("set read timeout"))?;
            }
            Err(e) if is_timeout(&e) => return Err(udp_timeout(hlen, timeouts.read)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ClientError::Connect {
                    addr,
                    transport: "UDP",
                    source: e,
                })
            }
            Err(source) => {
                return Err(ClientError::Read {
                    part: "response datagram",
                    expected: hlen,
                    got: 0,
                    source,
                })
            }
        }
    };
    let round_trip = start.elapsed();
    let response = request.parse_response(&buf[..n])?;
    Ok(Reply {
        response,
        round_trip,
    })
}

fn udp_timeout(hlen: usize, read: Duration) -> ClientError {
    ClientError::Timeout {
        part: "response datagram",
        expected: hlen,
        got: 0,
        timeout_ms: millis(read),
    }
}

fn connect_or_write(addr: SocketAddr, len: usize, source: io::Error) -> ClientError {
    if source.kind() == io::ErrorKind::ConnectionRefused {
        ClientError::Connect {
            addr,
            transport: "UDP",
            source,
        }
    } else {
        ClientError::Write {
            expected: len,
            written: 0,
            source,
        }
    }
}
