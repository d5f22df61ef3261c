//! One TCP connection's state machine.

use std::net::SocketAddr;

use crate::codec::{Admitted, RequestHeader, LONG_HEADER_LEN};
use crate::Timestamp;

/// Where a connection is in its one request's life.
#[derive(Debug)]
pub(crate) enum State {
    /// Reading the 32 bytes every header has, then the rest of a 48-byte header.
    ReadHeader {
        buf: [u8; LONG_HEADER_LEN],
        filled: usize,
    },
    /// Header in, its key's page being loaded: nothing is read until it is.
    Parked { header: RequestHeader },
    /// Header admitted; reading exactly the declared body.
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
    /// peer's end of stream or the linger deadline, so unread client bytes never turn
    /// the close into a reset that destroys the response.
    Closing,
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
        }
    }
}
