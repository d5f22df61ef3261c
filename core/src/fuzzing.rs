//! The bodies of the fuzz targets, compiled only with the `fuzzing` feature.
//!
//! Each `pub fn` takes the bytes libFuzzer generates and panics (an assertion) when the
//! code under test breaks a rule of PROTOCOL.md or of the engine's calling contract.
//! The cargo-fuzz targets in `fuzz/` are one-line wrappers around them, and the
//! `raida-tests` crate replays every committed corpus and regression file through the
//! same functions on the stable toolchain (`cargo test -p raida-tests --test fuzz_replay`).
//!
//! The oracles are independent of the code under test where that is cheap: a model of
//! the header rules and of the body checks written from PROTOCOL.md (sections 2 to 6),
//! a response reader that checks framing the way a client would, and, for the engine
//! targets, the single-call codec [`answer_datagram`].
//!
//! Targets:
//! - [`header`]: bytes into [`RequestHeader::parse`] and [`check_header`].
//! - [`tcp_stream`]: a byte stream cut into reads, with time steps, write room, end of
//!   stream and resets, into one engine connection.
//! - [`udp_datagram`]: datagrams of any length into the engine's UDP path.
//! - [`request`]: a structured request ([`RequestCase`]) of any encryption type with
//!   deliberate faults and random mutations, through [`answer_datagram`].
//!
//! Input layouts (what the seed corpora contain) are documented on each target.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::codec::{
    answer_datagram, check_header, header_len, write_rejection, HeaderRules, ReplyContext,
    RequestHeader, RequestKey, LONG_HEADER_LEN, PREFIX_LEN, RANDOM_LEN, SHORT_HEADER_LEN, TRAILER,
};
use crate::command::{Command, CommandRegistry, VERSION_BYTES};
use crate::crypto;
use crate::engine::Origin;
use crate::keys::{An, MemoryKeyStore, SERIAL_LIMIT};
use crate::status::{Status, StatusByte};
use crate::{
    Accept, ConnId, ConnSocket, Engine, EngineConfig, Io, Output, RequestContext, Serviced,
    Timestamp,
};

// ----- the fixed world every target runs in -------------------------------------------

/// The raida id the fuzzed server has (request byte 2).
pub const RAIDA_ID: u8 = 7;
/// The coin id the fuzzed server has (request bytes 6..7).
pub const COIN_ID: u16 = 6;
/// The `max_body_size` of the fuzzed server: small, so that the header-time 16 is
/// reachable with short inputs.
pub const MAX_BODY_SIZE: usize = 1024;
/// The random bytes every 48-byte response gets (fixed, so responses are comparable).
pub const RANDOM: [u8; RANDOM_LEN] = [0xA5; RANDOM_LEN];
/// The coins the key store knows: (denomination, serial, AN).
pub const COINS: [(i8, u32, An); 3] = [
    (1, 1, *b"0123456789abcdef"),
    (-1, 0x0012_3456, [0x42; 16]),
    (6, SERIAL_LIMIT - 1, *b"last-serial-coin"),
];
/// The one locker the key store knows (type 2 requests name it by `LOCKER[..5]`).
pub const LOCKER: An = *b"LOCKRlocker-an-!";
/// Where [`Mirror`] is registered: status 250, output = payload.
pub const MIRROR: (u8, u8) = (15, 1);

/// A test command: status 250, output = the payload, run on a worker (not inline), so
/// the fuzzers reach encrypted response bodies of any length.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mirror;

impl Command for Mirror {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        output.extend_from_slice(ctx.payload);
        Status::Success.into()
    }
}

/// The key store of the fuzzed server: [`COINS`] and [`LOCKER`].
pub fn keys() -> MemoryKeyStore {
    let k = MemoryKeyStore::new();
    for (denomination, serial, an) in COINS {
        k.insert_coin(denomination, serial, an);
    }
    k.insert_locker(LOCKER);
    k
}

/// Echo (0, 0), version (0, 1) and [`Mirror`] at [`MIRROR`].
pub fn commands() -> CommandRegistry {
    let mut c = CommandRegistry::with_builtins();
    if c.register(MIRROR.0, MIRROR.1, Arc::new(Mirror)).is_err() {
        unreachable!("group 15 is registrable");
    }
    c
}

/// The header rules of the fuzzed server.
pub fn rules() -> HeaderRules {
    HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: COIN_ID,
        max_body_size: MAX_BODY_SIZE,
    }
}

/// The engine configuration of the fuzzed server (defaults otherwise).
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        raida_id: RAIDA_ID,
        coin_id: COIN_ID,
        max_body_size: MAX_BODY_SIZE,
        ..EngineConfig::default()
    }
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

// ----- an independent model of the protocol -------------------------------------------

fn model_coin(denomination: u8, serial: u32) -> Option<An> {
    if serial >= SERIAL_LIMIT {
        return None;
    }
    COINS
        .iter()
        .find(|c| c.0 == denomination as i8 && c.1 == serial)
        .map(|c| c.2)
}

fn model_locker(prefix: &[u8]) -> Option<An> {
    (LOCKER[..5] == *prefix).then_some(LOCKER)
}

fn is_registered(group: u8, command: u8) -> bool {
    matches!((group, command), (0, 0) | (0, 1)) || (group, command) == MIRROR
}

/// What PROTOCOL.md sections 2 and 3 say about a complete header `h` (32 or 48 bytes):
/// the reply context its response carries and either the key or the failing status.
fn model_header(h: &[u8]) -> (ReplyContext, Result<RequestKey, Status>) {
    let long = h.len() == LONG_HEADER_LEN;
    let mut reply = ReplyContext {
        header_len: h.len(),
        group: 0,
        echo: [h[30], h[31]],
        encryption_byte: h[16],
        first_coin: [0; 5],
        second_coin: None,
        tail: if long { [h[46], h[47]] } else { [0, 0] },
    };
    let fail = |reply, status| (reply, Err(status));
    if h[0] != 1 {
        return fail(reply, Status::InvalidRouting);
    }
    if h[1] != 0 {
        return fail(reply, Status::InvalidSplitId);
    }
    if h[2] != RAIDA_ID {
        return fail(reply, Status::InvalidRaidaId);
    }
    if h[4] > 15 {
        return fail(reply, Status::InvalidCommandGroup);
    }
    if h[3] > 3 {
        return fail(reply, Status::InvalidShardId);
    }
    if !is_registered(h[4], h[5]) {
        return fail(reply, Status::InvalidCommand);
    }
    reply.group = h[4];
    if be16(h, 6) != usize::from(COIN_ID) {
        return fail(reply, Status::InvalidCoinId);
    }
    let mut short_iv = [0u8; 16];
    short_iv[..8].copy_from_slice(&h[24..32]);
    let mut long_iv = [0u8; 16];
    if long {
        long_iv.copy_from_slice(&h[24..40]);
    }
    let key = match h[16] {
        0 => Ok(RequestKey::None),
        1 => model_coin(h[17], be32(h, 18))
            .map(|an| RequestKey::Aes128 { an, iv: short_iv })
            .ok_or(Status::InvalidEncryption),
        2 => model_locker(&h[17..22])
            .map(|an| RequestKey::Aes128 { an, iv: short_iv })
            .ok_or(Status::InvalidEncryption),
        4 => {
            reply.first_coin.copy_from_slice(&h[19..24]);
            model_coin(h[19], be32(h, 20))
                .map(|an| RequestKey::Aes256 {
                    key: crypto::sha256(&[&an]),
                    iv: long_iv,
                })
                .ok_or(Status::EncryptionCoinNotFound)
        }
        5 => {
            reply.first_coin.copy_from_slice(&h[19..24]);
            let mut second = [0u8; 5];
            second.copy_from_slice(&h[24..29]);
            reply.second_coin = Some(second);
            match (
                model_coin(h[19], be32(h, 20)),
                model_coin(h[24], be32(h, 25)),
            ) {
                (Some(a), Some(b)) => Ok(RequestKey::Aes256 {
                    key: crypto::sha256(&[&a, &b]),
                    iv: long_iv,
                }),
                _ => Err(Status::EncryptionCoinNotFound),
            }
        }
        _ => {
            reply.tail = [0, 0];
            Err(Status::InvalidEncryptionCode)
        }
    };
    let key = match key {
        Ok(key) => key,
        Err(status) => return fail(reply, status),
    };
    let declared = if long { be16(h, 17) } else { be16(h, 22) };
    if declared > MAX_BODY_SIZE {
        return fail(reply, Status::InvalidPacketLength);
    }
    (reply, Ok(key))
}

/// The declared body length of a complete header.
fn model_declared(h: &[u8]) -> usize {
    if h.len() == LONG_HEADER_LEN {
        be16(h, 17)
    } else {
        be16(h, 22)
    }
}

/// What the model answers to one datagram (the UDP column of section 7).
#[derive(Debug)]
struct ModelAnswer {
    reply: ReplyContext,
    key: RequestKey,
    status: u8,
    signature: [u8; 16],
    /// The command's output in clear (empty: no body).
    output: Vec<u8>,
}

fn model_answer(datagram: &[u8]) -> Option<ModelAnswer> {
    let enc = *datagram.get(PREFIX_LEN - 1)?;
    let hlen = header_len(enc);
    let h = datagram.get(..hlen)?;
    let (reply, key) = model_header(h);
    let mut answer = ModelAnswer {
        reply,
        key: RequestKey::None,
        status: 0,
        signature: [0; 16],
        output: Vec::new(),
    };
    let key = match key {
        Ok(key) => key,
        Err(status) => {
            answer.status = status.code();
            return Some(answer);
        }
    };
    answer.key = key;
    let Some(body) = datagram.get(hlen..hlen + model_declared(h)) else {
        answer.status = Status::InvalidPacketLength.code();
        return Some(answer);
    };
    match model_body(enc, &key, body) {
        Ok((signature, payload)) => {
            answer.signature = signature;
            answer.status = Status::Success.code();
            answer.output = match (h[4], h[5]) {
                (0, 1) => VERSION_BYTES.to_vec(),
                c if c == MIRROR => payload,
                _ => Vec::new(),
            };
        }
        Err((status, signature)) => {
            answer.status = status.code();
            answer.signature = signature;
        }
    }
    Some(answer)
}

type Signature = [u8; 16];
/// A body that passed: the response signature and the command payload.
type Opened = (Signature, Vec<u8>);

/// Section 4 on a body of the declared length: the signature and the payload, or the
/// failing status and the signature it carries.
fn model_body(enc: u8, key: &RequestKey, body: &[u8]) -> Result<Opened, (Status, Signature)> {
    let zero = [0u8; 16];
    let len = body.len();
    let aes256 = enc == 4 || enc == 5;
    if len == 0 && !aes256 {
        return Ok((zero, Vec::new()));
    }
    if len < 2 {
        return Err((Status::InvalidPacketLength, zero));
    }
    if body[len - 2..] != TRAILER {
        return Err((Status::InvalidEof, zero));
    }
    let mut content = body[..len - 2].to_vec();
    match key {
        RequestKey::None | RequestKey::Aes128 { .. } => {
            let mut an = [0u8; 16];
            if let RequestKey::Aes128 { an: k, iv } = key {
                crypto::aes128_ctr(k, iv, &mut content);
                an = *k;
            }
            if len < 18 {
                return Err((Status::InvalidPacketLength, zero));
            }
            let mut challenge = [0u8; 16];
            for (c, (b, k)) in challenge.iter_mut().zip(content.iter().zip(an)) {
                *c = b ^ k;
            }
            if crypto::crc32(&content[..12]).to_be_bytes() != content[12..16] {
                return Err((Status::InvalidCrc, challenge));
            }
            Ok((challenge, content[16..].to_vec()))
        }
        RequestKey::Aes256 { key, iv } => {
            if len < 34 {
                return Err((Status::InvalidPacketLength, zero));
            }
            let (ct, tag) = content.split_at(len - 34);
            if crypto::hmac_sha256(key, ct)[..] != *tag {
                return Err((Status::InvalidHmac, zero));
            }
            let mut clear = ct.to_vec();
            crypto::aes256_ctr(key, iv, &mut clear);
            Ok((zero, clear))
        }
    }
}

// ----- a response reader, as a client reads it -----------------------------------------

/// Checks a response's framing and header against what the model expects and returns
/// the command's output, decrypted (and, for the 48-byte layout, authenticated) with
/// the request's key.
fn check_response(
    response: &[u8],
    expected: &ModelAnswer,
    elapsed: u32,
    random: &[u8; RANDOM_LEN],
) -> Vec<u8> {
    let reply = &expected.reply;
    let hlen = reply.header_len;
    assert!(hlen == SHORT_HEADER_LEN || hlen == LONG_HEADER_LEN);
    assert!(response.len() >= hlen, "response shorter than its header");
    let h = &response[..hlen];
    assert_eq!(h[0], RAIDA_ID, "byte 0 is the raida id");
    assert_eq!(h[1], 0);
    assert!(
        Status::from_code(h[2]).is_some(),
        "status byte {} is not a known status",
        h[2]
    );
    assert_eq!(h[2], expected.status, "status");
    assert_eq!(
        h[3], reply.group,
        "byte 3 is the group once the rules passed"
    );
    let size = (usize::from(h[9]) << 16) | (usize::from(h[10]) << 8) | usize::from(h[11]);
    assert_eq!(
        size,
        response.len() - hlen,
        "the size field is the body length"
    );
    assert_eq!(h[8], 0);
    if hlen == SHORT_HEADER_LEN {
        assert_eq!(h[4..6], [0, 1]);
        assert_eq!(h[6..8], reply.echo, "echo bytes");
        assert_eq!(be32(h, 12), elapsed, "microseconds");
        assert_eq!(h[16..32], expected.signature, "signature");
    } else {
        assert_eq!(be32(h, 4), elapsed, "microseconds");
        assert_eq!(h[12..16], [0; 4]);
        assert_eq!(h[16], reply.encryption_byte);
        assert_eq!(h[17..22], reply.first_coin);
        assert_eq!(h[22..24], [0, 0]);
        match reply.second_coin {
            Some(second) => {
                assert_eq!(h[24..29], second);
                assert_eq!(h[29..46], random[5..]);
            }
            None => assert_eq!(h[24..46], random[..]),
        }
        assert_eq!(h[46..48], reply.tail);
    }
    if size == 0 {
        return Vec::new();
    }
    let body = &response[hlen..];
    assert!(body.len() >= 3, "a body holds output and the trailer");
    assert_eq!(body[body.len() - 2..], TRAILER, "trailer");
    let mut output = body[..body.len() - 2].to_vec();
    match expected.key {
        RequestKey::None => {}
        RequestKey::Aes128 { an, iv } => crypto::aes128_ctr(&an, &iv, &mut output),
        RequestKey::Aes256 { key, .. } => {
            assert!(
                output.len() > crypto::HMAC_LEN,
                "a 48-byte body carries its HMAC"
            );
            assert_eq!(hlen, LONG_HEADER_LEN);
            let tag = output.split_off(output.len() - crypto::HMAC_LEN);
            assert_eq!(
                crypto::hmac_sha256(&key, &output)[..],
                tag[..],
                "the response HMAC verifies with the request's key"
            );
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&h[24..40]);
            crypto::aes256_ctr(&key, &iv, &mut output);
        }
    }
    output
}

/// The model's answer, the codec's, and their agreement: status, header, signature and
/// the decrypted output.
fn check_against_model(datagram: &[u8], response: Option<&[u8]>, elapsed: u32, random: &[u8; 22]) {
    let expected = model_answer(datagram);
    match (response, expected) {
        (None, None) => {}
        (Some(response), Some(expected)) => {
            let output = check_response(response, &expected, elapsed, random);
            assert_eq!(output, expected.output, "decrypted output");
        }
        (got, want) => panic!(
            "the codec answered {:?}, the model {:?}",
            got.map(<[u8]>::len),
            want.map(|w| w.status)
        ),
    }
}

// ----- target: header -----------------------------------------------------------------

/// `RequestHeader::parse` and `check_header` on arbitrary bytes (the bytes are the
/// request's start; anything after the header is ignored). Checks the parse against
/// section 1, the verdict, key and reply context against the model of sections 2 and 3,
/// and the rejection bytes against sections 5 and 6.
pub fn header(data: &[u8]) {
    let parsed = RequestHeader::parse(data);
    let Some(&enc) = data.get(PREFIX_LEN - 1) else {
        assert!(parsed.is_none(), "parsed a header from fewer than 17 bytes");
        return;
    };
    let hlen = if enc <= 2 {
        SHORT_HEADER_LEN
    } else {
        LONG_HEADER_LEN
    };
    assert_eq!(header_len(enc), hlen);
    let Some(h) = data.get(..hlen) else {
        assert!(parsed.is_none(), "parsed a header from a short buffer");
        return;
    };
    let Some(parsed) = parsed else {
        panic!("a complete header did not parse");
    };
    assert_eq!(parsed.len(), hlen);
    assert_eq!(parsed.as_bytes(), h);
    assert_eq!(parsed.encryption_byte(), enc);
    assert_eq!((parsed.group(), parsed.command()), (h[4], h[5]));
    assert_eq!(parsed.declared_body_len(), model_declared(h));

    let (reply, verdict) = model_header(h);
    let store = keys();
    let checked = check_header(&parsed, &rules(), &commands(), &store, Timestamp::ZERO);
    match (checked, verdict) {
        (Ok(admitted), Ok(key)) => {
            assert_eq!(admitted.encryption.byte(), enc);
            assert!(admitted.key == key, "resolved key differs from the model's");
            assert_eq!(admitted.body_len, model_declared(h));
            assert_eq!(admitted.reply, reply);
        }
        (Err(rejected), Err(status)) => {
            assert_eq!(rejected.status, status);
            assert_eq!(rejected.reply, reply);
            let elapsed = be32(h, 8);
            let mut out = vec![0xEE; 3];
            write_rejection(&mut out, RAIDA_ID, &rejected, elapsed, &RANDOM);
            let expected = ModelAnswer {
                reply,
                key: RequestKey::None,
                status: status.code(),
                signature: [0; 16],
                output: Vec::new(),
            };
            assert_eq!(out.len(), hlen, "a rejection has no body");
            let output = check_response(&out, &expected, elapsed, &RANDOM);
            assert!(output.is_empty());
        }
        (Ok(_), Err(status)) => panic!("admitted; the model rejects it with {status:?}"),
        (Err(rejected), Ok(_)) => {
            panic!("rejected with {:?}; the model admits it", rejected.status)
        }
    }
}

// ----- target: request ----------------------------------------------------------------

/// A deliberate fault the request builder puts in (selector `fault % 16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A valid request: 250.
    None,
    /// Byte 0 = 2: 255.
    Routing,
    /// Byte 1 = 1: 2.
    Split,
    /// Byte 2 = another raida: 3.
    Raida,
    /// Byte 3 = 4: 4.
    Shard,
    /// Byte 4 = 16: 5.
    Group,
    /// (0, 9): 6.
    Command,
    /// Another coin id: 7.
    CoinId,
    /// A coin or locker the store does not hold: 34 (types 1, 2), 25 (4, 5).
    UnknownKey,
    /// A wrong CRC (types 0, 1, 2: 37) or HMAC (4, 5: 204).
    Integrity,
    /// The body does not end with the trailer: 33.
    Trailer,
    /// The declared length is 5 more than what was sent: 16.
    ShortBody,
    /// The declared length is over `max_body_size`: 16.
    TooLong,
    /// A 1-byte body: 16.
    OneByte,
    /// A body with a trailer but too short for its type: 16.
    Truncated,
    /// No body: 250 for types 0, 1, 2 (empty payload), 16 for 4, 5.
    Empty,
}

impl Fault {
    const ALL: [Fault; 16] = [
        Fault::None,
        Fault::Routing,
        Fault::Split,
        Fault::Raida,
        Fault::Shard,
        Fault::Group,
        Fault::Command,
        Fault::CoinId,
        Fault::UnknownKey,
        Fault::Integrity,
        Fault::Trailer,
        Fault::ShortBody,
        Fault::TooLong,
        Fault::OneByte,
        Fault::Truncated,
        Fault::Empty,
    ];

    /// The fault a selector byte names.
    pub fn from_selector(b: u8) -> Fault {
        Fault::ALL[usize::from(b) % Fault::ALL.len()]
    }
}

/// A change made to the built request's bytes, after it was built.
#[derive(Arbitrary, Clone, Debug)]
pub enum Mutation {
    /// Sets the byte at `at` (modulo the length).
    SetByte {
        /// Position.
        at: u16,
        /// New value.
        value: u8,
    },
    /// Flips one bit of the byte at `at` (modulo the length).
    FlipBit {
        /// Position.
        at: u16,
        /// Bit index (modulo 8).
        bit: u8,
    },
    /// Cuts the request to `len` bytes (when shorter).
    Truncate {
        /// New length.
        len: u16,
    },
    /// Appends bytes after the request.
    Append {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Rewrites the declared body length (bytes 22..23 or 17..18).
    Declare {
        /// New declared length.
        len: u16,
    },
}

impl Mutation {
    fn apply(&self, r: &mut Vec<u8>) {
        match *self {
            Mutation::SetByte { at, value } => {
                if !r.is_empty() {
                    let i = usize::from(at) % r.len();
                    r[i] = value;
                }
            }
            Mutation::FlipBit { at, bit } => {
                if !r.is_empty() {
                    let i = usize::from(at) % r.len();
                    r[i] ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate { len } => r.truncate(usize::from(len)),
            Mutation::Append { ref bytes } => r.extend_from_slice(bytes),
            Mutation::Declare { len } => {
                if let Some(&enc) = r.get(16) {
                    let at = if enc <= 2 { 22 } else { 17 };
                    if let Some(field) = r.get_mut(at..at + 2) {
                        field.copy_from_slice(&len.to_be_bytes());
                    }
                }
            }
        }
    }
}

/// The structured input of the [`request`] target. The first four fields are selector
/// bytes, so a seed is four chosen bytes followed by anything.
#[derive(Arbitrary, Clone, Debug)]
pub struct RequestCase {
    /// `% 6`: encryption type 0, 1, 2, 4, 5, or an invalid one (3, or 6 and up).
    pub encryption: u8,
    /// `% 16`: the [`Fault`] built in.
    pub fault: u8,
    /// `% 3`: echo, version, [`Mirror`].
    pub command: u8,
    /// `% 3`: the key coin (index into [`COINS`]); `/ 3 % 3`: type 5's second coin.
    pub coin: u8,
    /// Request bytes 24..47 (types 4, 5) or 24..29 (types 0, 1, 2).
    pub nonce: [u8; 24],
    /// Request bytes 30..31 (types 0, 1, 2) and 46..47 (types 4, 5).
    pub echo: [u8; 2],
    /// The 12 random bytes of the challenge (types 0, 1, 2).
    pub challenge: [u8; 12],
    /// The response's microseconds field.
    pub elapsed: u32,
    /// The response's random bytes.
    pub random: [u8; RANDOM_LEN],
    /// The command payload, in clear.
    pub payload: Vec<u8>,
    /// Changes made after building, in order.
    pub mutations: Vec<Mutation>,
}

/// A request as built, before mutations, with the status the builder intends.
#[derive(Clone, Debug)]
pub struct Built {
    /// The request bytes.
    pub bytes: Vec<u8>,
    /// The status the request must get (before mutations).
    pub status: Status,
}

impl RequestCase {
    /// The encryption type byte this case sends.
    pub fn encryption_byte(&self) -> u8 {
        match self.encryption % 6 {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 4,
            4 => 5,
            _ if self.coin % 2 == 0 => 3,
            _ => 6u8.saturating_add(self.coin),
        }
    }

    /// The fault this case builds in.
    pub fn fault(&self) -> Fault {
        Fault::from_selector(self.fault)
    }

    /// Builds the request bytes as a client would, with the fault put in.
    pub fn build(&self) -> Built {
        let enc = self.encryption_byte();
        let fault = self.fault();
        let long = enc > 2;
        let mut h = vec![
            0u8;
            if long {
                LONG_HEADER_LEN
            } else {
                SHORT_HEADER_LEN
            }
        ];
        let (group, command) = match self.command % 3 {
            0 => (0, 0),
            1 => (0, 1),
            _ => MIRROR,
        };
        h[0] = 1;
        h[2] = RAIDA_ID;
        h[4] = group;
        h[5] = command;
        h[6..8].copy_from_slice(&COIN_ID.to_be_bytes());
        h[16] = enc;
        let coin = COINS[usize::from(self.coin % 3)];
        let mut second = COINS[usize::from(self.coin / 3 % 3)];
        let unknown = fault == Fault::UnknownKey;
        let mut first = coin;
        if unknown {
            if enc == 5 {
                second = (2, 999, [0; 16]);
            } else {
                first = (2, 999, [0; 16]);
            }
        }
        if long {
            h[19] = first.0 as u8;
            h[20..24].copy_from_slice(&first.1.to_be_bytes());
            h[24..48].copy_from_slice(&self.nonce);
            h[46..48].copy_from_slice(&self.echo);
            if enc == 5 {
                h[24] = second.0 as u8;
                h[25..29].copy_from_slice(&second.1.to_be_bytes());
            }
        } else {
            if enc == 2 {
                let prefix: &[u8] = if unknown { b"XXXXX" } else { &LOCKER[..5] };
                h[17..22].copy_from_slice(prefix);
            } else {
                h[17] = first.0 as u8;
                h[18..22].copy_from_slice(&first.1.to_be_bytes());
            }
            h[24..30].copy_from_slice(&self.nonce[..6]);
            h[30..32].copy_from_slice(&self.echo);
        }
        let an = if enc == 2 { LOCKER } else { first.2 };
        let mut body = Vec::new();
        match enc {
            0..=2 => {
                let mut challenge = [0u8; 16];
                challenge[..12].copy_from_slice(&self.challenge);
                let mut crc = crypto::crc32(&self.challenge).to_be_bytes();
                if fault == Fault::Integrity {
                    crc[3] ^= 1;
                }
                challenge[12..].copy_from_slice(&crc);
                body.extend_from_slice(&challenge);
                body.extend_from_slice(&self.payload);
                if enc != 0 {
                    let mut iv = [0u8; 16];
                    iv[..8].copy_from_slice(&h[24..32]);
                    crypto::aes128_ctr(&an, &iv, &mut body);
                }
            }
            _ => {
                let key = if enc == 5 {
                    crypto::sha256(&[&first.2, &second.2])
                } else {
                    crypto::sha256(&[&first.2])
                };
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&h[24..40]);
                let mut ct = self.payload.clone();
                crypto::aes256_ctr(&key, &iv, &mut ct);
                let mut mac = crypto::hmac_sha256(&key, &ct);
                if fault == Fault::Integrity {
                    mac[0] ^= 1;
                }
                body.extend_from_slice(&ct);
                body.extend_from_slice(&mac);
            }
        }
        body.extend_from_slice(&TRAILER);
        match fault {
            Fault::Trailer => {
                let n = body.len();
                body[n - 1] = 0x3F;
            }
            Fault::OneByte => body = vec![0x3E],
            Fault::Truncated => body = vec![0x11, 0x22, 0x3E, 0x3E],
            Fault::Empty => body.clear(),
            _ => {}
        }
        let mut declared = body.len();
        if fault == Fault::ShortBody {
            declared += 5;
        }
        if fault == Fault::TooLong {
            declared = MAX_BODY_SIZE + 1;
        }
        let declared16 = u16::try_from(declared).unwrap_or(u16::MAX);
        let at = if long { 17 } else { 22 };
        h[at..at + 2].copy_from_slice(&declared16.to_be_bytes());
        // Header faults last, so they win over everything else.
        match fault {
            Fault::Routing => h[0] = 2,
            Fault::Split => h[1] = 1,
            Fault::Raida => h[2] = RAIDA_ID.wrapping_add(1),
            Fault::Shard => h[3] = 4,
            Fault::Group => h[4] = 16,
            Fault::Command => (h[4], h[5]) = (0, 9),
            Fault::CoinId => h[6] ^= 0x80,
            _ => {}
        }
        let aes256 = enc == 4 || enc == 5;
        let status = match fault {
            Fault::Routing => Status::InvalidRouting,
            Fault::Split => Status::InvalidSplitId,
            Fault::Raida => Status::InvalidRaidaId,
            Fault::Shard => Status::InvalidShardId,
            Fault::Group => Status::InvalidCommandGroup,
            Fault::Command => Status::InvalidCommand,
            Fault::CoinId => Status::InvalidCoinId,
            _ if !matches!(enc, 0 | 1 | 2 | 4 | 5) => Status::InvalidEncryptionCode,
            Fault::UnknownKey if enc == 1 || enc == 2 => Status::InvalidEncryption,
            Fault::UnknownKey if aes256 => Status::EncryptionCoinNotFound,
            _ if declared > MAX_BODY_SIZE => Status::InvalidPacketLength,
            Fault::Integrity if aes256 => Status::InvalidHmac,
            Fault::Integrity => Status::InvalidCrc,
            Fault::Trailer => Status::InvalidEof,
            Fault::ShortBody | Fault::TooLong | Fault::OneByte | Fault::Truncated => {
                Status::InvalidPacketLength
            }
            Fault::Empty if aes256 => Status::InvalidPacketLength,
            Fault::None | Fault::UnknownKey | Fault::Empty => Status::Success,
        };
        h.extend_from_slice(&body);
        Built { bytes: h, status }
    }
}

/// A structured request (see [`RequestCase`]) through the whole codec
/// ([`answer_datagram`]), its response read back as a client reads it: header length
/// follows the request's type, a known status (the one the builder intended when no
/// mutation changed the bytes, and always the model's), the size field equals the body,
/// the trailer ends every body, a 48-byte body's HMAC verifies under the request's
/// key, and the output decrypts to what the command returns.
pub fn request(data: &[u8]) {
    let Ok(case) = RequestCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let built = case.build();
    let mut bytes = built.bytes.clone();
    for m in &case.mutations {
        m.apply(&mut bytes);
    }
    let store = keys();
    let response = answer_datagram(
        &bytes,
        &rules(),
        &commands(),
        &store,
        Timestamp::ZERO,
        case.elapsed,
        &case.random,
    );
    if bytes == built.bytes {
        let Some(r) = response.as_deref() else {
            panic!("no answer to a built request");
        };
        assert_eq!(
            r[2],
            built.status.code(),
            "the builder's intended status for {:?} with type {}",
            case.fault(),
            case.encryption_byte()
        );
    }
    check_against_model(&bytes, response.as_deref(), case.elapsed, &case.random);
}

// ----- target: udp_datagram -----------------------------------------------------------

/// The engine's UDP path. Layout: one mode byte (`% 4 + 1` = `mod_queue_size`; bit 2:
/// hold jobs and run them only when admission is full or at the end; bit 3: run held
/// jobs newest first; bit 4: random bytes at hand, so cheap requests are answered
/// inline), then datagrams, each a 2-byte big-endian length and that many
/// bytes (the last one cut short by the end of the input). Every datagram comes from
/// its own peer; its response must equal [`answer_datagram`] on the bytes the engine
/// keeps (`udp_payload_threshold`), exactly once, or nothing when that is `None`.
pub fn udp_datagram(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let config = EngineConfig {
        mod_queue_size: usize::from(mode % 4) + 1,
        ..engine_config()
    };
    let threshold = config.udp_payload_threshold;
    let queue = config.mod_queue_size;
    let hold = mode & 4 != 0;
    let newest_first = mode & 8 != 0;
    let random_at_hand = mode & 16 != 0;
    let mut engine = Engine::new(config, commands(), Arc::new(keys()));
    let now = Timestamp::from_micros(5_000_000);
    let mut held = std::collections::VecDeque::new();
    let mut got: BTreeMap<SocketAddr, Vec<Vec<u8>>> = BTreeMap::new();
    let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut scratch = Vec::new();

    let mut paused = false;
    let mut drain = |engine: &mut Engine,
                     held: &mut std::collections::VecDeque<crate::Job>,
                     got: &mut BTreeMap<SocketAddr, Vec<Vec<u8>>>,
                     run_all: bool| {
        loop {
            while let Some(o) = engine.poll_output() {
                match o {
                    Output::Job(job) => held.push_back(job),
                    Output::Datagram { peer, bytes } => got.entry(peer).or_default().push(bytes),
                    Output::ResumeDatagrams => paused = false,
                    other => panic!("a UDP-only engine emitted {other:?}"),
                }
            }
            // Bounds: jobs out never exceed mod_queue_size; every one is held here.
            assert_eq!(held.len(), engine.in_flight(), "jobs out vs. in flight");
            assert!(
                engine.in_flight() <= queue,
                "more jobs out than mod_queue_size"
            );
            // A driver stops reading while wants_datagrams is false and starts again
            // only on ResumeDatagrams: room must never free without one.
            if engine.wants_datagrams() {
                assert!(
                    !paused,
                    "admission has room again but no ResumeDatagrams came"
                );
            } else {
                paused = true;
            }
            let must_run = run_all || !hold || !engine.wants_datagrams();
            if !must_run {
                return;
            }
            let next = if newest_first {
                held.pop_back()
            } else {
                held.pop_front()
            };
            let Some(job) = next else { return };
            assert!(matches!(job.origin(), Origin::Udp(_)));
            let c = job.run(now, &RANDOM, &mut scratch);
            engine.handle_completion(c, now);
        }
    };

    let mut index: u16 = 0;
    while !rest.is_empty() {
        // A 2-byte length and the datagram; a last lone byte is a 1-byte datagram.
        let (datagram, tail) = match rest {
            [a, b, body @ ..] => {
                let len = usize::from(u16::from_be_bytes([*a, *b])).min(body.len());
                body.split_at(len)
            }
            _ => (rest, &[][..]),
        };
        rest = tail;
        let peer = SocketAddr::from(([10, 0, 0, 1], index));
        index = index.wrapping_add(1);
        if index == 0 {
            break;
        }
        assert!(
            engine.wants_datagrams(),
            "the driver reads only while wanted"
        );
        if random_at_hand {
            feed_random(&mut engine);
        }
        engine.handle_datagram(peer, datagram, now);
        drain(&mut engine, &mut held, &mut got, false);
        sent.push((peer, datagram.to_vec()));
    }
    drain(&mut engine, &mut held, &mut got, true);
    assert!(held.is_empty());
    assert!(
        engine.is_idle(),
        "engine not idle after every job completed"
    );
    assert!(engine.wants_datagrams());

    let mut dropped = 0;
    let (rules, commands, store) = (rules(), commands(), keys());
    for (peer, datagram) in &sent {
        let kept = &datagram[..datagram.len().min(threshold)];
        let expected = answer_datagram(kept, &rules, &commands, &store, now, 0, &RANDOM);
        let responses = got.remove(peer).unwrap_or_default();
        match expected {
            None => {
                dropped += 1;
                assert!(
                    responses.is_empty(),
                    "answered a datagram that must be dropped"
                );
            }
            Some(expected) => {
                assert_eq!(responses.len(), 1, "one datagram in, one out");
                assert_eq!(responses[0], expected, "engine and codec disagree");
            }
        }
        check_against_model(kept, got_first(&responses), 0, &RANDOM);
    }
    assert!(
        got.is_empty(),
        "a response went to a peer that sent nothing"
    );
    assert_eq!(engine.counters().udp_dropped, dropped);
}

fn got_first(responses: &[Vec<u8>]) -> Option<&[u8]> {
    responses.first().map(Vec::as_slice)
}

// ----- target: tcp_stream -------------------------------------------------------------

/// Gives the engine the fixed [`RANDOM`] bytes when it asks for some, as the driver
/// does with the OS generator's: responses it builds inline stay comparable.
fn feed_random(engine: &mut Engine) {
    if engine.wants_random() {
        engine.handle_random(&RANDOM.repeat(64));
    }
}

/// One engine connection fed a byte stream. Layout: a 2-byte big-endian stream length,
/// the stream, then operations, two bytes each (`kind`, `arg`):
///
/// - kind % 8 in 0..=3: `arg + 1` more stream bytes arrive in the socket;
/// - 4: time advances `arg * 10 ms` (the socket timeout is 2 s);
/// - 5: the socket takes `arg` more bytes of writes;
/// - 6: time advances `arg` microseconds, and `handle_timeout` is called (extra calls are
///   harmless);
/// - 7: `arg % 4 == 0`: the client shuts its write side (no more stream arrives);
///   `arg % 4 == 1`: the socket errors (reset); `arg % 4 == 2`: the driver hands the
///   engine random bytes (cheap encrypted requests are answered inline from then on);
///   otherwise nothing.
///
/// After every operation the connection is serviced as the contract says (read while
/// the engine lends and bytes are there, write while it has bytes and the socket has
/// room, outputs drained after every input; jobs run inline at once). At the end the
/// rest of the stream arrives, writes are unlimited, the client shuts its side and time
/// runs on: the connection must then be closed and the engine idle.
///
/// Invariants: every lent buffer is non-empty and never reaches past the end of the
/// request; at most one response, written once, then shut down once; closed exactly
/// once, after which the id lends and sends nothing; the response equals
/// [`answer_datagram`] on the request's bytes (with the microseconds field equal to the
/// time since accept), and is there whenever the request was complete and neither a
/// timeout nor a reset cut the connection first.
pub fn tcp_stream(data: &[u8]) {
    let (stream, ops) = match data {
        [a, b, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
            rest.split_at(len)
        }
        _ => (data, &[][..]),
    };
    let mut run = TcpRun::new(stream);
    for op in ops.chunks(2) {
        let kind = op[0];
        let arg = op.get(1).copied().unwrap_or(0);
        run.op(kind, arg);
    }
    run.finish();
}

struct TcpRun<'a> {
    engine: Engine,
    id: ConnId,
    now: Timestamp,
    accepted: Timestamp,
    sock: TcpSock<'a>,
    closed: bool,
    scratch: Vec<u8>,
}

/// The connection's socket as the engine's service loop sees it, with the checks of
/// the engine's contract on every call.
struct TcpSock<'a> {
    stream: &'a [u8],
    now: Timestamp,
    /// Bytes of `stream` that can arrive (shortened by the client's shutdown).
    end: usize,
    /// Bytes that arrived in the socket.
    arrived: usize,
    /// Bytes the engine read.
    read: usize,
    client_eof: bool,
    eof_delivered: bool,
    reset: bool,
    room: usize,
    /// Where the request ends in the stream per the model (when the stream holds its
    /// whole header).
    request_end: Option<usize>,
    /// The response as first offered, and when.
    response: Option<(Vec<u8>, Timestamp)>,
    written: Vec<u8>,
    shutdown: bool,
}

impl TcpSock<'_> {
    /// Where the request in the stream ends, as far as the engine can know after
    /// `read` bytes: 32 (the shorter header: no request is shorter) until the 17-byte
    /// prefix is in, then the header length byte 16 announces, then the body (per the
    /// model of the header rules).
    fn lend_limit(&self) -> usize {
        if self.read < PREFIX_LEN {
            return SHORT_HEADER_LEN;
        }
        let hlen = header_len(self.stream[PREFIX_LEN - 1]);
        if self.read < hlen {
            return hlen;
        }
        self.request_end.unwrap_or(hlen)
    }
}

impl ConnSocket for TcpSock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        assert!(!buf.is_empty(), "an empty read buffer");
        if !self.shutdown {
            let limit = self.lend_limit();
            assert!(
                self.read + buf.len() <= limit,
                "lent {} bytes at {}; the request ends at {limit}",
                buf.len(),
                self.read
            );
        }
        let n = buf.len().min(self.arrived - self.read);
        if n > 0 {
            buf[..n].copy_from_slice(&self.stream[self.read..self.read + n]);
            self.read += n;
            Io::Done(n)
        } else if self.client_eof && self.arrived == self.end {
            self.eof_delivered = true;
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        assert!(!bytes.is_empty(), "an empty write");
        assert!(!self.shutdown, "bytes to send after shutdown");
        if self.response.is_none() {
            assert!(self.written.is_empty());
            self.response = Some((bytes.to_vec(), self.now));
        }
        if let Some((response, _)) = &self.response {
            assert_eq!(
                bytes,
                &response[self.written.len()..],
                "the bytes to send are the rest of the one response"
            );
        }
        let n = bytes.len().min(self.room);
        if n == 0 {
            return Io::WouldBlock;
        }
        self.written.extend_from_slice(&bytes[..n]);
        self.room -= n;
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        assert!(!self.shutdown, "write side shut down twice");
        let Some((response, _)) = &self.response else {
            panic!("shut down without a response");
        };
        assert_eq!(
            &self.written, response,
            "shut down before the whole response"
        );
        self.shutdown = true;
    }
}

impl<'a> TcpRun<'a> {
    fn new(stream: &'a [u8]) -> TcpRun<'a> {
        let mut engine = Engine::new(engine_config(), commands(), Arc::new(keys()));
        let now = Timestamp::from_micros(1_000_000);
        let peer = SocketAddr::from(([10, 0, 0, 2], 4000));
        let Accept::Accepted(id) = engine.handle_accept(peer, now) else {
            panic!("the first connection was refused");
        };
        let mut run = TcpRun {
            engine,
            id,
            now,
            accepted: now,
            sock: TcpSock {
                stream,
                now,
                end: stream.len(),
                arrived: 0,
                read: 0,
                client_eof: false,
                eof_delivered: false,
                reset: false,
                room: 0,
                request_end: model_request_end(stream),
                response: None,
                written: Vec::new(),
                shutdown: false,
            },
            closed: false,
            scratch: Vec::new(),
        };
        run.drain();
        run.service();
        run
    }

    fn op(&mut self, kind: u8, arg: u8) {
        let sock = &mut self.sock;
        match kind % 8 {
            0..=3 => sock.arrived = (sock.arrived + usize::from(arg) + 1).min(sock.end),
            4 => self.advance(Duration::from_millis(10 * u64::from(arg)), false),
            5 => sock.room = sock.room.saturating_add(usize::from(arg)),
            6 => self.advance(Duration::from_micros(u64::from(arg)), true),
            _ => match arg % 4 {
                0 => {
                    sock.client_eof = true;
                    sock.end = sock.arrived;
                }
                1 if !self.closed => {
                    self.engine.handle_error(self.id, self.now);
                    self.sock.reset = true;
                    self.drain();
                    assert!(self.closed, "a socket error closes the connection");
                }
                // The driver hands the engine random bytes: small encrypted requests
                // and 48-byte rejections are answered inline from then on.
                2 => feed_random(&mut self.engine),
                _ => {}
            },
        }
        self.service();
    }

    fn advance(&mut self, d: Duration, always: bool) {
        self.now = self.now.saturating_add(d);
        let due = self.engine.poll_timeout().is_some_and(|t| t <= self.now);
        if due || always {
            self.engine.handle_timeout(self.now);
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Job(job) => {
                    assert_eq!(job.origin(), Origin::Tcp(self.id));
                    let c = job.run(self.now, &RANDOM, &mut self.scratch);
                    self.engine.handle_completion(c, self.now);
                }
                Output::Wake(id) => {
                    assert_eq!(id, self.id);
                    assert!(!self.closed, "woke a closed connection");
                }
                Output::Close(id) => {
                    assert_eq!(id, self.id);
                    assert!(!self.closed, "closed twice");
                    self.closed = true;
                }
                Output::Datagram { .. } => panic!("a TCP connection produced a datagram"),
                Output::ResumeDatagrams | Output::ResumeAccepting => {}
            }
        }
    }

    /// The engine's own service loop, then every output.
    fn service(&mut self) {
        if self.closed {
            return;
        }
        self.sock.now = self.now;
        let serviced = self.engine.service(self.id, &mut self.sock, self.now);
        self.drain();
        if self.sock.eof_delivered {
            // End of stream is only read while the engine reads: the request is
            // incomplete, or the response is written.
            assert!(self.closed, "end of stream while reading left it open");
        }
        if serviced == Serviced::Budget {
            self.service();
        }
    }

    fn finish(mut self) {
        if !self.closed {
            self.sock.arrived = self.sock.end;
            self.sock.room = usize::MAX;
            self.service();
            self.sock.client_eof = true;
            self.sock.end = self.sock.arrived;
            self.service();
        }
        if !self.closed {
            self.advance(Duration::from_secs(3600), true);
        }
        assert!(
            self.closed,
            "the connection outlived end of stream and every timer"
        );
        assert!(
            self.engine.is_idle(),
            "the engine holds something after the close"
        );
        assert_eq!(self.engine.connection_count(), 0);

        // The request as the engine saw it: the stream up to the client's shutdown.
        let delivered = &self.sock.stream[..self.sock.end];
        let expected = expected_tcp(delivered);
        match &self.sock.response {
            Some((response, at)) => {
                let Some((request, expected)) = expected else {
                    panic!("a response to an undecided request");
                };
                let elapsed =
                    u32::try_from(at.as_micros() - self.accepted.as_micros()).unwrap_or(u32::MAX);
                let mut want = expected;
                let field = if header_len(request[16]) == LONG_HEADER_LEN {
                    4
                } else {
                    12
                };
                want[field..field + 4].copy_from_slice(&elapsed.to_be_bytes());
                assert_eq!(response, &want, "the TCP response differs from the codec's");
                let written = &self.sock.written;
                assert!(written.len() <= response.len());
                assert_eq!(written[..], response[..written.len()]);
                check_against_model(request, Some(response), elapsed, &RANDOM);
            }
            None => {
                let cut = self.sock.reset || self.engine.counters().timed_out > 0;
                assert!(
                    expected.is_none() || cut,
                    "a complete request got no response and nothing cut the connection"
                );
            }
        }
    }
}

/// What a TCP connection must answer to a stream: `answer_datagram` on the request's
/// bytes once they decide it (a rejected header, or an admitted header and its body);
/// `None` while the request is incomplete. Returns the request's bytes too.
fn expected_tcp(stream: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let request = stream.get(..model_request_end(stream)?)?;
    let store = keys();
    let answer = answer_datagram(
        request,
        &rules(),
        &commands(),
        &store,
        Timestamp::ZERO,
        0,
        &RANDOM,
    )?;
    Some((request, answer))
}

/// Where the request at the start of `stream` ends: after the header when the model
/// rejects it, after the declared body when it admits it; `None` before the whole
/// header is in.
fn model_request_end(stream: &[u8]) -> Option<usize> {
    let hlen = header_len(*stream.get(PREFIX_LEN - 1)?);
    let h = stream.get(..hlen)?;
    Some(match model_header(h).1 {
        Ok(_) => hlen + model_declared(h),
        Err(_) => hlen,
    })
}

// ----- seed corpora -------------------------------------------------------------------

/// The seed inputs of every target: `(target, file name, bytes)`. Valid requests of
/// each encryption type and every error case, in each target's input layout. The
/// committed corpora under `fuzz/corpus/` are these files
/// (`cargo test -p raida-tests --test fuzz_replay -- --ignored write_seed_corpora`
/// rewrites them).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let types = ["t0", "t1", "t2", "t4", "t5", "tbad"];
    let commands = ["echo", "version", "mirror"];
    for (ti, tname) in types.iter().enumerate() {
        for (fi, fault) in Fault::ALL.iter().enumerate() {
            for (ci, cname) in commands.iter().enumerate() {
                // Every fault with echo; the valid and body-level ones with each command.
                if ci > 0 && !matches!(fault, Fault::None | Fault::Empty | Fault::Integrity) {
                    continue;
                }
                let selectors = [ti as u8, fi as u8, ci as u8, (ti + fi) as u8 % 9];
                let mut input = selectors.to_vec();
                input.extend((0..24).map(|i| (i * 7 + ti) as u8)); // nonce
                input.extend([0xAB, 0xCD]); // echo
                input.extend((0..12).map(|i| (i * 13 + fi) as u8)); // challenge
                input.extend(1234u32.to_be_bytes()); // elapsed
                input.extend([0x5A; RANDOM_LEN]); // random
                if ci == 2 {
                    for b in b"payload bytes" {
                        input.extend([1, *b]);
                    }
                }
                input.push(0); // end of payload; no mutation follows
                let name = format!("{tname}-{fault:?}-{cname}").to_lowercase();
                let case = RequestCase::arbitrary_take_rest(Unstructured::new(&input))
                    .unwrap_or_else(|e| panic!("seed {name} does not decode: {e}"));
                assert!(case.mutations.is_empty(), "seed {name} decodes mutations");
                assert_eq!(case.fault(), *fault);
                let built = case.build();
                out.push(("request", name.clone(), input));

                let bytes = built.bytes;
                let header_bytes = bytes[..bytes.len().min(LONG_HEADER_LEN)].to_vec();
                if ci == 0 && !header_bytes.is_empty() {
                    out.push(("header", name.clone(), header_bytes));
                }
                let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes();
                let mut udp = vec![0u8];
                udp.extend(len);
                udp.extend(&bytes);
                if fi == 0 || matches!(fault, Fault::Integrity) {
                    // The same with random bytes at hand: answered inline when cheap.
                    let mut inline = udp.clone();
                    inline[0] = 16;
                    out.push(("udp_datagram", format!("{name}-random"), inline));
                }
                out.push(("udp_datagram", name.clone(), udp));
                let mut tcp = len.to_vec();
                tcp.extend(&bytes);
                if fi == 0 || matches!(fault, Fault::Integrity) {
                    let mut inline = tcp.clone();
                    inline.extend([7, 2]);
                    out.push(("tcp_stream", format!("{name}-random"), inline));
                }
                out.push(("tcp_stream", name.clone(), tcp.clone()));
                if fi == 0 {
                    // The same request one byte per read, with the write side slow.
                    for _ in 0..bytes.len() {
                        tcp.extend([0, 0, 5, 3]);
                    }
                    out.push(("tcp_stream", format!("{name}-bytewise"), tcp));
                }
            }
        }
    }
    // Transport cases.
    let valid = RequestCase::arbitrary_take_rest(Unstructured::new(&[1, 0, 1, 0]))
        .map(|c| c.build().bytes)
        .unwrap_or_default();
    let len = u16::try_from(valid.len()).unwrap_or(u16::MAX).to_be_bytes();
    let with = |ops: &[u8]| {
        let mut v = len.to_vec();
        v.extend(&valid);
        v.extend(ops);
        v
    };
    out.push((
        "tcp_stream",
        "half-header-then-timeout".into(),
        with(&[0, 19, 4, 250]),
    ));
    out.push((
        "tcp_stream",
        "half-body-then-eof".into(),
        with(&[0, 40, 7, 0]),
    ));
    out.push(("tcp_stream", "reset-mid-header".into(), with(&[0, 9, 7, 1])));
    out.push((
        "tcp_stream",
        "reset-while-writing".into(),
        with(&[0, 255, 5, 10, 7, 1]),
    ));
    out.push((
        "tcp_stream",
        "write-timeout".into(),
        with(&[0, 255, 5, 10, 4, 250]),
    ));
    out.push((
        "tcp_stream",
        "linger".into(),
        with(&[0, 255, 5, 255, 4, 60]),
    ));
    let mut trailing = with(&[]);
    trailing[..2].copy_from_slice(&u16::try_from(valid.len() + 600).unwrap_or(0).to_be_bytes());
    trailing.extend([0x77; 600]);
    out.push(("tcp_stream", "bytes-after-the-request".into(), trailing));
    let mut many = vec![4 | 1];
    for i in 0..6u8 {
        many.extend(len);
        let mut v = valid.clone();
        v[31] = i;
        many.extend(v);
    }
    out.push(("udp_datagram", "held-jobs-queue-of-2".into(), many));
    let mut big = vec![0u8, 0x05, 0x00];
    let mut v = valid.clone();
    v.resize(0x500, 0);
    big.extend(v);
    out.push(("udp_datagram", "over-threshold".into(), big));
    out.push(("udp_datagram", "short".into(), vec![0, 0, 16, 1, 0, 7]));
    out.push(("header", "short-16".into(), vec![1; 16]));
    out
}
