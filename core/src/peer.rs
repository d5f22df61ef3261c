//! Peer calls: what a command asks of other RAIDA servers before it answers, and what
//! comes back (PROTOCOL.md 8b, "The peer call").
//!
//! A command that needs its peers ([`Command::peer_calls`](crate::Command::peer_calls))
//! returns a [`PeerPlan`]: the requests to send, one per peer. The engine makes the
//! outbound connections (the driver performs their syscalls, as for inbound ones),
//! sends each request, reads each peer's response by the section 5 framing (a 32-byte
//! header, then exactly the body size its bytes 9..11 announce, bounded by
//! `max_peer_response`), and once every call has ended (answered, failed, or cut at the
//! fix's deadline) runs [`Command::finish`](crate::Command::finish) with one
//! [`PeerAnswer`] per call, in the plan's order. No worker is held while the peers are
//! called.

use raida_wire::{StatusByte, SHORT_HEADER_LEN};

/// One request to one peer: the RAIDA index the engine looks its address up by
/// (`EngineConfig::peers`), and the exact bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCall {
    /// The peer's RAIDA index.
    pub raida: u8,
    /// The request, sent as it is.
    pub request: Vec<u8>,
}

/// What a command wants before it answers ([`Command::peer_calls`](crate::Command::peer_calls)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerPlan {
    /// No peer call: the command runs ([`Command::run`](crate::Command::run)) as usual.
    None,
    /// Call these peers, all in parallel, then [`Command::finish`](crate::Command::finish).
    /// An empty list finishes at once with no answers (no fix slot is taken).
    Calls(Vec<PeerCall>),
    /// Answer this status now, with no body and no call (a payload check failed).
    Reply(StatusByte),
}

/// Why a peer call gave no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerFailure {
    /// No address is configured for the peer's index: nothing was attempted.
    NoAddress,
    /// The connection was refused (or could not be started).
    Refused,
    /// The connection failed (reset, broken pipe) after it was established.
    Reset,
    /// The peer closed before its whole response was in.
    Closed,
    /// The fix's deadline passed first (connect included).
    Timeout,
    /// The response announced a body larger than `max_peer_response` bytes.
    TooLong,
    /// The plan named this peer already: one connection per peer per fix.
    Duplicate,
}

impl PeerFailure {
    /// Every reason, in the order of [`PeerFailure::index`].
    pub const ALL: [PeerFailure; 7] = [
        PeerFailure::NoAddress,
        PeerFailure::Refused,
        PeerFailure::Reset,
        PeerFailure::Closed,
        PeerFailure::Timeout,
        PeerFailure::TooLong,
        PeerFailure::Duplicate,
    ];

    /// A dense index (for per-reason counters).
    pub fn index(self) -> usize {
        match self {
            PeerFailure::NoAddress => 0,
            PeerFailure::Refused => 1,
            PeerFailure::Reset => 2,
            PeerFailure::Closed => 3,
            PeerFailure::Timeout => 4,
            PeerFailure::TooLong => 5,
            PeerFailure::Duplicate => 6,
        }
    }

    /// The reason's name, as metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            PeerFailure::NoAddress => "no_address",
            PeerFailure::Refused => "refused",
            PeerFailure::Reset => "reset",
            PeerFailure::Closed => "closed",
            PeerFailure::Timeout => "timeout",
            PeerFailure::TooLong => "too_long",
            PeerFailure::Duplicate => "duplicate",
        }
    }
}

/// One call's outcome, in the plan's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The peer's RAIDA index (as in its [`PeerCall`]).
    pub raida: u8,
    /// The peer's raw response (its 32-byte header, then exactly the body size the
    /// header announces), or why there is none.
    pub result: Result<Vec<u8>, PeerFailure>,
}

impl PeerAnswer {
    /// The response's header, if the call was answered.
    pub fn header(&self) -> Option<&[u8]> {
        self.result
            .as_ref()
            .ok()
            .and_then(|r| r.get(..SHORT_HEADER_LEN))
    }

    /// The response's body (after the 32-byte header), if the call was answered.
    pub fn body(&self) -> Option<&[u8]> {
        self.result
            .as_ref()
            .ok()
            .and_then(|r| r.get(SHORT_HEADER_LEN..))
    }
}

/// The body size a peer's 32-byte response header announces (bytes 9..11, BE).
pub fn announced_body_len(header: &[u8; SHORT_HEADER_LEN]) -> usize {
    (usize::from(header[9]) << 16) | (usize::from(header[10]) << 8) | usize::from(header[11])
}
