//! The independent expected answer to every request: core's codec in one call
//! (`answer_request`, a model of what the engine splits between its loop and its
//! workers), over the simulated server's rules, commands and keys, built once per
//! world. Also how far the engine may read of a TCP stream, from the header rules
//! alone, and the two answers the engine adds to the codec's: a TCP body that could
//! never fit the buffered-bytes budget is answered 16 at header time, and a datagram
//! over its client's rate is answered 160 with what the response carries before any
//! rule is checked.

use raida_core::codec::{
    answer_request, check_header, header_len, Arrival, HeaderRules, RequestHeader, PREFIX_LEN,
    RANDOM_LEN, SHORT_HEADER_LEN,
};
use raida_core::keys::MemoryKeyStore;
use raida_core::{CommandRegistry, Timestamp, Transport};

use crate::auth::{self, Op};
use crate::server;

/// The buffered-bytes budget as the header-time rule sees it: a body of `declared`
/// bytes may use all of `limit` when it is at most `small_body` bytes, else all but
/// `small_reserve`; a body that could never fit is answered 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyBudget {
    /// `max_buffered_bytes`.
    pub limit: usize,
    /// `small_reserve`.
    pub small_reserve: usize,
    /// `small_body`.
    pub small_body: usize,
}

impl BodyBudget {
    /// What a body of `declared` bytes may hold at most.
    pub fn ceiling(&self, declared: usize) -> usize {
        if declared <= self.small_body {
            self.limit
        } else {
            self.limit - self.small_reserve.min(self.limit)
        }
    }

    /// Whether a TCP body of `declared` bytes could ever be buffered.
    pub fn could_fit(&self, declared: usize) -> bool {
        declared <= self.ceiling(declared)
    }
}

/// The simulated server's answers, computed apart from its engine.
#[derive(Debug)]
pub struct Oracle {
    rules: HeaderRules,
    commands: CommandRegistry,
    keys: MemoryKeyStore,
    budget: BodyBudget,
}

impl Oracle {
    /// The oracle of a server whose bodies are at most `max_body_size` bytes (and the
    /// default budget).
    pub fn new(max_body_size: usize) -> Oracle {
        let d = raida_core::EngineConfig::default();
        let budget = BodyBudget {
            limit: d.max_buffered_bytes,
            small_reserve: d.small_reserve,
            small_body: d.small_body,
        };
        Oracle::with_budget(max_body_size, budget)
    }

    /// The oracle of a server whose bodies are at most `max_body_size` bytes, with
    /// `budget` for buffered TCP bodies.
    pub fn with_budget(max_body_size: usize, budget: BodyBudget) -> Oracle {
        Oracle::of(
            max_body_size,
            budget,
            server::commands(),
            server::key_store(),
        )
    }

    /// The oracle of a server with these bounds serving `commands` over `keys` (its
    /// own copies: the server's store changes, the oracle's does not).
    pub fn of(
        max_body_size: usize,
        budget: BodyBudget,
        commands: CommandRegistry,
        keys: MemoryKeyStore,
    ) -> Oracle {
        Oracle {
            rules: HeaderRules {
                raida_id: server::RAIDA_ID,
                coin_id: server::COIN_ID,
                max_body_size,
            },
            commands,
            keys,
            budget,
        }
    }

    /// The buffered-bytes budget it assumes.
    pub fn budget(&self) -> BodyBudget {
        self.budget
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
            Ok(admitted) if !self.fits(admitted.body_len) => Some(header.len()),
            Ok(admitted) => Some(header.len() + admitted.body_len),
        }
    }

    /// Whether a TCP body of `len` bytes is read at all (a body-less request is).
    fn fits(&self, len: usize) -> bool {
        len == 0 || self.budget.could_fit(len)
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
        self.answer_over(request, arrival, elapsed_micros, random, &self.keys)
    }

    /// The answer to an authentication request asking `op` whose command found what
    /// `passed` says per entry (`None`: it decided nothing), computed over a store in
    /// which the coins hold just that ([`auth::store_for`]): everything but what the
    /// command found is the codec's and the commands' (the status of every malformed
    /// request, the bitmap's layout, the encryption, the signature).
    pub fn answer_auth(
        &self,
        request: &[u8],
        arrival: &Arrival,
        elapsed_micros: u32,
        random: &[u8; RANDOM_LEN],
        op: &Op,
        passed: Option<&[bool]>,
    ) -> Option<Vec<u8>> {
        let keys = auth::store_for(&self.keys, op, passed);
        self.answer_over(request, arrival, elapsed_micros, random, &keys)
    }

    fn answer_over(
        &self,
        request: &[u8],
        arrival: &Arrival,
        elapsed_micros: u32,
        random: &[u8; RANDOM_LEN],
        keys: &MemoryKeyStore,
    ) -> Option<Vec<u8>> {
        let header = RequestHeader::parse(request)?;
        let mut rules = self.rules;
        if arrival.transport == Transport::Tcp {
            let admitted = check_header(&header, &self.rules, &self.commands, keys, arrival.at);
            match admitted {
                Ok(a) if !self.fits(a.body_len) => {
                    // The budget's rule comes after every header rule, as the
                    // body-length rule does: the same answer with a bound the body is
                    // over.
                    rules.max_body_size = a.body_len - 1;
                }
                _ => {}
            }
        }
        answer_request(
            request,
            arrival,
            &rules,
            &self.commands,
            keys,
            elapsed_micros,
            random,
        )
    }

    /// The answer to a datagram refused for its client's rate: 160 REQUEST_RATE with
    /// what a response carries before any rule passed (its layout, echo bytes and
    /// type byte, no group, no body) — the layout of the first rule's answer (routing),
    /// whose status byte is the only difference.
    pub fn busy(
        &self,
        datagram: &[u8],
        arrival: &Arrival,
        elapsed_micros: u32,
        random: &[u8; RANDOM_LEN],
    ) -> Option<Vec<u8>> {
        let mut misrouted = datagram.to_vec();
        let routing = misrouted.first_mut()?;
        *routing = 0;
        let mut out = answer_request(
            &misrouted,
            arrival,
            &self.rules,
            &self.commands,
            &self.keys,
            elapsed_micros,
            random,
        )?;
        *out.get_mut(2)? = raida_core::Status::RequestRate.code();
        Some(out)
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
