//! The wire codec: request headers, header-time checks, bodies, responses
//! (PROTOCOL.md sections 1 to 6). Every function here is pure: buffers are the
//! caller's, time and random bytes are arguments.

mod body;
mod header;
mod reply;

pub(crate) use body::open_body;
pub use body::CHALLENGE_LEN;
pub(crate) use header::{busy, check_header_or_park, unreadable_key, HeaderCheck};
pub use header::{
    check_header, header_len, Admitted, HeaderRules, Rejected, RequestHeader, RequestKey, MAX_SHARD,
};
pub(crate) use reply::{write_response, ResponseParts};
pub use reply::{ReplyContext, MAX_RESPONSE_BODY};

use std::net::SocketAddr;

use crate::command::{CommandRegistry, RequestContext};
use crate::keys::KeyStore;
use crate::metrics::Transport;
use crate::status::{Status, StatusByte};
use crate::Timestamp;

/// Bytes needed before the header length is known: byte 16 is the encryption type.
pub const PREFIX_LEN: usize = 17;
/// Request and response header length for encryption types 0, 1, 2.
pub const SHORT_HEADER_LEN: usize = 32;
/// Request and response header length for every other encryption type byte.
pub const LONG_HEADER_LEN: usize = 48;
/// Every body, request or response, ends with these two bytes.
pub const TRAILER: [u8; 2] = [0x3E, 0x3E];
/// Fresh random bytes a 48-byte response carries (bytes 24..45).
pub const RANDOM_LEN: usize = 22;

/// The encryption types this server speaks (request byte 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// 0: clear text, CRC-checked challenge.
    None,
    /// 1: AES-128-CTR under a coin's AN.
    CoinAes128,
    /// 2: AES-128-CTR under a locker's AN, found by a 5-byte prefix.
    LockerAes128,
    /// 4: AES-256-CTR + HMAC-SHA256 under SHA-256 of one coin's AN.
    CoinAes256,
    /// 5: AES-256-CTR + HMAC-SHA256 under SHA-256 of two coins' ANs.
    TwoCoinAes256,
}

impl Encryption {
    /// The type byte 16 names, if this server speaks it.
    pub const fn from_byte(b: u8) -> Option<Encryption> {
        match b {
            0 => Some(Encryption::None),
            1 => Some(Encryption::CoinAes128),
            2 => Some(Encryption::LockerAes128),
            4 => Some(Encryption::CoinAes256),
            5 => Some(Encryption::TwoCoinAes256),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            Encryption::None => 0,
            Encryption::CoinAes128 => 1,
            Encryption::LockerAes128 => 2,
            Encryption::CoinAes256 => 4,
            Encryption::TwoCoinAes256 => 5,
        }
    }

    /// Types 4 and 5: 48-byte headers, HMAC-authenticated bodies.
    pub const fn is_aes256(self) -> bool {
        matches!(self, Encryption::CoinAes256 | Encryption::TwoCoinAes256)
    }
}

/// Where and when a request arrived, and over what: the parts of a handler's request
/// context that are not in the request's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The client's address and port.
    pub peer: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// When the request arrived whole.
    pub at: Timestamp,
}

/// Everything that happens to an admitted request once its whole body is in: the body
/// checks and decryption (in place), the command, and the response, appended to `out`.
/// This is the work of a job; `scratch` is a reusable buffer for the command's output.
///
/// Returns the status written, for the counters.
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve_admitted(
    raida_id: u8,
    admitted: &Admitted,
    arrival: &Arrival,
    store: &dyn KeyStore,
    body: &mut [u8],
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> StatusByte {
    scratch.clear();
    let has_body = !body.is_empty();
    let key = locker_key_for(admitted, body);
    let (status, signature) = match open_body(admitted.encryption, &key, body) {
        Ok(opened) => {
            let payload = body.get(opened.payload.clone()).unwrap_or(&[]);
            let h = &admitted.header;
            let ctx = RequestContext {
                group: h.group(),
                command: h.command(),
                shard: h.shard(),
                raida_id: h.raida_id(),
                coin_id: h.coin_id(),
                encryption: admitted.encryption,
                key: h.key_id(admitted.encryption),
                nonce: h.nonce(),
                peer: arrival.peer,
                transport: arrival.transport,
                arrived: arrival.at,
                payload,
                has_body,
                store,
            };
            // A command that panics is answered 252 INTERNAL and the server keeps
            // serving: the handler is outside the network layer's control.
            let handler = &admitted.handler;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler.run(&ctx, scratch)
            }));
            let status = run.unwrap_or_else(|_| {
                scratch.clear();
                Status::Internal.into()
            });
            (status, opened.challenge)
        }
        Err(rejected) => (rejected.status.into(), rejected.challenge),
    };
    let parts = ResponseParts {
        status,
        signature,
        output: scratch,
    };
    write_response(
        out,
        raida_id,
        &admitted.reply,
        &key,
        parts,
        elapsed_micros,
        random,
    );
    parts.status
}

/// The key of an admitted request: its header-time key, unless it is a type-2 request
/// whose prefix several lockers share. Then each locker key is tried in ascending
/// order on a copy of the body, and the first whose challenge passes the CRC keys the
/// request and its response; if none does, or the body is too short to hold a
/// challenge (under 18 bytes, or empty), the first key is used (PROTOCOL.md 8c).
fn locker_key_for(admitted: &Admitted, body: &[u8]) -> RequestKey {
    if admitted.other_keys.is_empty() || body.len() < body::CHALLENGE_LEN + TRAILER.len() {
        return admitted.key;
    }
    let mut trial = Vec::with_capacity(body.len());
    let candidates = std::iter::once(admitted.key).chain(admitted.other_keys.iter().copied());
    for candidate in candidates {
        trial.clear();
        trial.extend_from_slice(body);
        if open_body(admitted.encryption, &candidate, &mut trial).is_ok() {
            return candidate;
        }
    }
    admitted.key
}

/// Appends the response to a request rejected at header time (no body, zero signature).
pub(crate) fn write_rejection(
    out: &mut Vec<u8>,
    raida_id: u8,
    rejected: &Rejected,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) {
    let parts = ResponseParts {
        status: rejected.status.into(),
        signature: [0; 16],
        output: &[],
    };
    write_response(
        out,
        raida_id,
        &rejected.reply,
        &RequestKey::None,
        parts,
        elapsed_micros,
        random,
    );
}

/// What the protocol answers to one UDP datagram (PROTOCOL.md section 7, UDP column),
/// computed in one call: `None` when the datagram is shorter than its header (dropped
/// silently), otherwise the response bytes. `datagram` is what the server kept (at most
/// `udp_payload_threshold` bytes); bytes after the declared body are ignored.
///
/// The engine splits this work between the loop thread and a worker; this single-call
/// form serves the client library, tests and models. Handlers see an unspecified peer
/// (`0.0.0.0:0`) over UDP, arrived `now`: [`answer_request`] names them.
pub fn answer_datagram(
    datagram: &[u8],
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) -> Option<Vec<u8>> {
    let arrival = Arrival {
        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
        transport: Transport::Udp,
        at: now,
    };
    answer_request(
        datagram,
        &arrival,
        rules,
        commands,
        keys,
        elapsed_micros,
        random,
    )
}

/// [`answer_datagram`] for a request that arrived as `arrival` says (its handler's
/// context has that peer, transport and time). Over TCP the answer is the same bytes
/// once the request is whole.
pub fn answer_request(
    datagram: &[u8],
    arrival: &Arrival,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) -> Option<Vec<u8>> {
    let now = arrival.at;
    let header = RequestHeader::parse(datagram)?;
    let mut out = Vec::new();
    match check_header(&header, rules, commands, keys, now) {
        Err(rejected) => {
            write_rejection(&mut out, rules.raida_id, &rejected, elapsed_micros, random)
        }
        Ok(admitted) => {
            let after_header = &datagram[header.len()..];
            match after_header.get(..admitted.body_len) {
                Some(body) => {
                    let mut body = body.to_vec();
                    let mut scratch = Vec::new();
                    serve_admitted(
                        rules.raida_id,
                        &admitted,
                        arrival,
                        keys,
                        &mut body,
                        elapsed_micros,
                        random,
                        &mut scratch,
                        &mut out,
                    );
                }
                None => {
                    let short = Rejected {
                        status: Status::InvalidPacketLength,
                        reply: admitted.reply,
                    };
                    write_rejection(&mut out, rules.raida_id, &short, elapsed_micros, random);
                }
            }
        }
    }
    Some(out)
}
