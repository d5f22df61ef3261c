//! The wire format (PROTOCOL.md sections 1 to 6) at the paths client authors, the
//! simulator's oracle and the fuzzers have always used: header lengths and fields,
//! the header-time checks and the one-call answer to a request.
//!
//! This module only gathers names. The words of the protocol are `raida-wire`'s; the
//! key a body is encrypted with is the frame module's (which opens bodies and writes
//! responses); the header-time checks and the one-call answer are the engine's, since
//! they need the command registry and the key store.

pub use raida_wire::{
    header_len, Encryption, ReplyContext, RequestHeader, CHALLENGE_LEN, LONG_HEADER_LEN,
    MAX_RESPONSE_BODY, MAX_SHARD, PREFIX_LEN, RANDOM_LEN, SHORT_HEADER_LEN, TRAILER,
};

pub use crate::engine::{
    answer_datagram, answer_request, check_header, Admitted, Arrival, HeaderRules, Rejected,
};
pub use crate::frame::RequestKey;
