//! The independent expected answer to every request: core's codec in one call
//! (`answer_request`, a model of what the engine splits between its loop and its
//! workers), over the simulated server's rules, commands and keys, built once per
//! world. Also how far the engine may read of a TCP stream, from the header rules
//! alone.

use raida_core::codec::{
    answer_request, check_header, header_len, Arrival, HeaderRules, RequestHeader, PREFIX_LEN,
    RANDOM_LEN, SHORT_HEADER_LEN,
};
use raida_core::keys::MemoryKeyStore;
use raida_core::{CommandRegistry, Timestamp};

use crate::server;

/// The simulated server's answers, computed apart from its engine.
#[derive(Debug)]
pub struct Oracle {
    rules: HeaderRules,
    commands: CommandRegistry,
    keys: MemoryKeyStore,
}

impl Oracle {
    /// The oracle of a server whose bodies are at most `max_body_size` bytes.
    pub fn new(max_body_size: usize) -> Oracle {
        Oracle {
            rules: HeaderRules {
                raida_id: server::RAIDA_ID,
                coin_id: server::COIN_ID,
                max_body_size,
            },
            commands: server::commands(),
            keys: server::key_store(),
        }
    }

    /// The length of the request at the start of `stream` as the TCP engine reads it:
    /// the header alone when it is rejected at header time, else header and declared
    /// body. `None` when `stream` is shorter than its header.
    pub fn request_len(&self, stream: &[u8]) -> Option<usize> {
        let header = RequestHeader::parse(stream)?;
        match check_header(
            &header,
            &self.rules,
            &self.commands,
            &self.keys,
            Timestamp::ZERO,
        ) {
            Err(_) => Some(header.len()),
            Ok(admitted) => Some(header.len() + admitted.body_len),
        }
    }

    /// How far the engine may read of a TCP stream that begins with `stream`.
    pub fn extent(&self, stream: &[u8]) -> Extent {
        Extent {
            header: stream.get(PREFIX_LEN - 1).map(|&b| header_len(b)),
            request: self.request_len(stream),
        }
    }

    /// The codec's answer to a whole request that arrived as `arrival` says.
    pub fn answer(
        &self,
        request: &[u8],
        arrival: &Arrival,
        elapsed_micros: u32,
        random: &[u8; RANDOM_LEN],
    ) -> Option<Vec<u8>> {
        answer_request(
            request,
            arrival,
            &self.rules,
            &self.commands,
            &self.keys,
            elapsed_micros,
            random,
        )
    }
}

/// The lengths that bound the engine's reads of one TCP stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// The header length byte 16 announces (None: the stream is shorter than 17 bytes).
    pub header: Option<usize>,
    /// The request's length as the engine must read it (None: the stream is shorter
    /// than its header).
    pub request: Option<usize>,
}

impl Extent {
    /// How far the engine may have read after `read` bytes: 32 (the shorter header;
    /// no request is shorter) until it has the 17-byte prefix that says which header
    /// it is, then the header, then (when the header passes) the declared body.
    pub fn bound(&self, read: usize) -> usize {
        match (self.header, self.request) {
            (None, _) => SHORT_HEADER_LEN,
            (Some(_), _) if read < PREFIX_LEN => SHORT_HEADER_LEN,
            (Some(h), Some(r)) if read >= h => r,
            (Some(h), _) => h,
        }
    }
}

/// Microseconds between two simulated instants, as the 4-byte field holds them.
pub fn elapsed(from: u64, to: u64) -> u32 {
    u32::try_from(to.saturating_sub(from)).unwrap_or(u32::MAX)
}
