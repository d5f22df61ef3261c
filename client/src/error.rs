//! Typed errors. Every message says what was expected and what came instead.

use std::io;
use std::net::SocketAddr;

/// Lowercase hex of `bytes`, for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A request that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The body (challenge, payload, HMAC, trailer) does not fit the 2-byte length field.
    #[error("request body: expected at most {max} bytes (the 2-byte length field), got {got}")]
    BodyTooLong {
        /// 65535.
        max: usize,
        /// The body length the payload would need.
        got: usize,
    },
}

/// The OS random source failed (`Request::randomize`).
#[derive(Debug, thiserror::Error)]
#[error("random bytes: expected the OS random source to supply them, got an error: {0}")]
pub struct RandomError(pub getrandom::Error);

/// A response that does not verify against the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Fewer bytes than the header, or than header + declared body.
    #[error("{part}: expected {expected} bytes, got {got}")]
    Short {
        /// `response header` or `response body`.
        part: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// More bytes than header + declared body.
    #[error("response: expected {expected} bytes (header + declared body size), got {got}")]
    Long {
        /// Header length + declared body size.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The echo bytes (32-byte layout: response 6..7; 48-byte: response 46..47) are not
    /// the request's.
    #[error("response echo bytes: expected {}, got {}", hex(.expected), hex(.got))]
    Echo {
        /// What the request carried.
        expected: [u8; 2],
        /// What came back.
        got: [u8; 2],
    },
    /// The 32-byte layout's signature (bytes 16..31) is neither the request's challenge
    /// nor (for a status other than SUCCESS) all zeros.
    #[error(
        "response signature: expected {} (the request's challenge){}, got {} with status {}{}",
        hex(.expected),
        if *.zeros_allowed { " or zeros" } else { "" },
        hex(.got),
        .status,
        if .status.0 == 37 { " (the server could not decrypt the challenge: wrong AN?)" } else { "" }
    )]
    Signature {
        /// The response's status byte.
        status: raida_wire::StatusByte,
        /// The challenge the request sent (types 1, 2: XORed with the AN).
        expected: [u8; 16],
        /// Whether zeros were acceptable too (any status but SUCCESS).
        zeros_allowed: bool,
        /// What came back.
        got: [u8; 16],
    },
    /// Response byte 16 of the 48-byte layout is not the request's encryption type.
    #[error("response byte 16 (encryption type): expected {expected}, got {got}")]
    EncryptionType {
        /// The request's type.
        expected: u8,
        /// What came back.
        got: u8,
    },
    /// The body does not end with `3E 3E`.
    #[error("response body: expected trailer 3e3e, got {}", hex(.got))]
    Trailer {
        /// The last two body bytes (or fewer).
        got: Vec<u8>,
    },
    /// A 48-byte-layout body shorter than HMAC + trailer.
    #[error(
        "response body: expected at least {expected} bytes (HMAC-SHA256 and trailer), got {got}"
    )]
    BodyTooShort {
        /// 34.
        expected: usize,
        /// The declared body size.
        got: usize,
    },
    /// The HMAC does not match the ciphertext under the request's key.
    #[error(
        "response HMAC: expected {} (HMAC-SHA256 of the ciphertext under the request key), got {} \
         (tampered response or wrong key)",
        hex(.expected),
        hex(.got)
    )]
    Hmac {
        /// The tag computed here.
        expected: [u8; 32],
        /// The tag that came.
        got: [u8; 32],
    },
}

/// Anything that can go wrong in one exchange.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// TCP connect failed (refused, unreachable, ...), or a UDP server answered with
    /// ICMP port unreachable.
    #[error("connect to {addr}: expected a {transport} peer, got an error: {source}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// `TCP` or `UDP`.
        transport: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// No TCP connection within the connect timeout.
    #[error(
        "connect to {addr}: timed out: expected a connection within {timeout_ms} ms, got none"
    )]
    ConnectTimeout {
        /// Where to.
        addr: SocketAddr,
        /// The connect timeout.
        timeout_ms: u64,
    },
    /// Creating or configuring a local socket failed.
    #[error("local socket ({what}): expected success, got an error: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Writing the request failed.
    #[error("send request: expected to write {expected} bytes, wrote {written}: {source}")]
    Write {
        /// Request length.
        expected: usize,
        /// Bytes written before the error.
        written: usize,
        /// The OS error.
        source: io::Error,
    },
    /// The request could not be written within the write timeout.
    #[error(
        "send request: timed out: expected to write {expected} bytes within {timeout_ms} ms, wrote {written}"
    )]
    WriteTimeout {
        /// Request length.
        expected: usize,
        /// Bytes written in time.
        written: usize,
        /// The write timeout.
        timeout_ms: u64,
    },
    /// The server closed the connection before the whole response came.
    #[error("{part}: expected {expected} bytes, got {got} before the server closed")]
    Closed {
        /// `response header` or `response body`.
        part: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The response did not come within the read timeout.
    #[error("{part}: timed out: expected {expected} bytes within {timeout_ms} ms, got {got}")]
    Timeout {
        /// `response header`, `response body` or `response datagram`.
        part: &'static str,
        /// Bytes needed (for a datagram: at least a header).
        expected: usize,
        /// Bytes received in time.
        got: usize,
        /// The read timeout.
        timeout_ms: u64,
    },
    /// Reading failed (reset, ...).
    #[error("{part}: expected {expected} bytes, got {got} before a read error: {source}")]
    Read {
        /// `response header`, `response body` or `response datagram`.
        part: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes received before the error.
        got: usize,
        /// The OS error.
        source: io::Error,
    },
    /// The response came but does not verify.
    #[error(transparent)]
    Response(#[from] ResponseError),
}

/// Broad classes of [`ClientError`], for counting (bench) and exit codes (CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The request could not be built.
    Build,
    /// Connection refused or failed, or a local socket error.
    Connect,
    /// No connection, write or response in time.
    Timeout,
    /// A write failed.
    Write,
    /// The server closed before the whole response.
    Closed,
    /// A read failed.
    Read,
    /// A response that does not verify.
    InvalidResponse,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Build,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Write,
        ErrorKind::Closed,
        ErrorKind::Read,
        ErrorKind::InvalidResponse,
    ];

    /// A short lowercase name, e.g. `timeout`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Build => "build",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Write => "write",
            ErrorKind::Closed => "closed",
            ErrorKind::Read => "read",
            ErrorKind::InvalidResponse => "invalid_response",
        }
    }

    /// Index into [`ErrorKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl ClientError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Build(_) => ErrorKind::Build,
            ClientError::Connect { .. } | ClientError::Socket { .. } => ErrorKind::Connect,
            ClientError::ConnectTimeout { .. }
            | ClientError::WriteTimeout { .. }
            | ClientError::Timeout { .. } => ErrorKind::Timeout,
            ClientError::Write { .. } => ErrorKind::Write,
            ClientError::Closed { .. } => ErrorKind::Closed,
            ClientError::Read { .. } => ErrorKind::Read,
            ClientError::Response(_) => ErrorKind::InvalidResponse,
        }
    }

    /// Whether this is a timeout (connect, write or read).
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }
}
