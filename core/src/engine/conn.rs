//! One TCP connection's state machine.

use std::net::SocketAddr;

use raida_wire::{RequestHeader, Timestamp, LONG_HEADER_LEN};

use super::checks::Admitted;

/// Where a connection is in its one request's life.
#[derive(Debug)]
pub(crate) enum State {
    /// Reading the 32 bytes every header has, then the rest of a 48-byte header.
    ReadHeader {
        buf: [u8; LONG_HEADER_LEN],
        filled: usize,
    },
    /// Header in, its key's page being loaded: nothing is read until it is. `loads`:
    /// the page loads it has waited for, this one included.
    Parked { header: RequestHeader, loads: u8 },
    /// Header admitted; reading exactly the declared body (`admitted.body_len`), into
    /// a buffer that grows as its bytes arrive (within the budget): `body.len()` bytes
    /// are allocated, `filled` of them read.
    ReadBody {
        admitted: Admitted,
        body: Vec<u8>,
        filled: usize,
    },
    /// The request is complete and its job is out, or waiting for admission.
    Processing,
    /// Writing the response.
    Writing { response: Vec<u8>, written: usize },
    /// Response written and the write side shut: reading and discarding until the
    /// peer's end of stream, the linger deadline, or `discard_limit` bytes, so unread
    /// client bytes never turn the close into a reset that destroys the response.
    Closing { discarded: usize },
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) generation: u64,
    /// The client's address and port (for its requests' context).
    pub(crate) peer: SocketAddr,
    pub(crate) accepted: Timestamp,
    pub(crate) state: State,
    /// The one deadline this connection has in its current state, if any (also an
    /// entry of the engine's timer set).
    pub(crate) deadline: Option<Timestamp>,
    /// Where it stands with the buffered-bytes budget.
    pub(crate) budget: BudgetWait,
    /// Counted against its client's connection limit (until its response is out).
    pub(crate) counted: bool,
}

/// Where a connection reading a body stands with the buffered-bytes budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BudgetWait {
    /// Not waiting.
    No,
    /// In the budget's queue once, waiting for room.
    Queued,
    /// Woken with this much room claimed for it, not yet back for it.
    Woken(usize),
}

impl BudgetWait {
    /// The room claimed for it (0 unless woken).
    pub(crate) fn claim(self) -> usize {
        match self {
            BudgetWait::Woken(claim) => claim,
            BudgetWait::No | BudgetWait::Queued => 0,
        }
    }
}

impl Conn {
    pub(crate) fn new(generation: u64, peer: SocketAddr, now: Timestamp) -> Conn {
        Conn {
            generation,
            peer,
            accepted: now,
            state: State::ReadHeader {
                buf: [0; LONG_HEADER_LEN],
                filled: 0,
            },
            deadline: None,
            budget: BudgetWait::No,
            counted: true,
        }
    }
}
