//! Requests from named fields (PROTOCOL.md sections 2, 3 and 4).

use std::fmt;

use crate::crypto;
use raida_wire::{header_len, An, Encryption, LONG_HEADER_LEN, SHORT_HEADER_LEN, TRAILER};

use crate::error::{BuildError, RandomError};
use crate::response::{Expect, ResponseKey};

/// Random bytes at the start of a type 0, 1, 2 body; their CRC-32 follows.
pub const CHALLENGE_RANDOM_LEN: usize = 12;
/// The nonce bytes a 48-byte header carries (request bytes 24..47).
pub const NONCE_LEN: usize = 24;
/// The largest body the 2-byte length field describes.
pub const MAX_REQUEST_BODY: usize = u16::MAX as usize;

/// A coin, as a request names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Coin {
    /// Denomination (-8..6 on a deployed RAIDA), sent as one signed byte.
    pub denomination: i8,
    /// Serial number, sent big-endian in 4 bytes.
    pub serial: u32,
}

impl Coin {
    /// Coin (`denomination`, `serial`).
    pub const fn new(denomination: i8, serial: u32) -> Coin {
        Coin {
            denomination,
            serial,
        }
    }

    /// The 5 bytes a header or payload names it by: denomination, serial big-endian.
    pub const fn to_bytes(self) -> [u8; 5] {
        let s = self.serial.to_be_bytes();
        [self.denomination as u8, s[0], s[1], s[2], s[3]]
    }
}

impl fmt::Display for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.denomination, self.serial)
    }
}

/// The key material of a request: which encryption type, which coin(s) or locker, and
/// the AN(s). The encryption type follows from the variant.
#[derive(Clone, PartialEq, Eq)]
pub enum Keys {
    /// Type 0: clear text.
    None,
    /// Type 1: AES-128-CTR under the coin's AN.
    Coin {
        /// The coin named in request bytes 17..21.
        coin: Coin,
        /// Its AN.
        an: An,
    },
    /// Type 2: AES-128-CTR under a locker's AN; request bytes 17..21 carry its first
    /// 5 bytes.
    Locker {
        /// The locker's AN.
        an: An,
    },
    /// Type 4: AES-256-CTR and HMAC-SHA256 under SHA-256(AN).
    Coin256 {
        /// The coin named in request bytes 19..23.
        coin: Coin,
        /// Its AN.
        an: An,
    },
    /// Type 5: AES-256-CTR and HMAC-SHA256 under SHA-256(AN1 || AN2).
    TwoCoins256 {
        /// The coin named in request bytes 19..23.
        first: Coin,
        /// Its AN.
        first_an: An,
        /// The coin named in request bytes 24..28 (the first nonce bytes).
        second: Coin,
        /// Its AN.
        second_an: An,
    },
}

/// Never prints an AN.
impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keys::None => f.write_str("Keys::None"),
            Keys::Coin { coin, .. } => write!(f, "Keys::Coin({coin}, ..)"),
            Keys::Locker { .. } => f.write_str("Keys::Locker(..)"),
            Keys::Coin256 { coin, .. } => write!(f, "Keys::Coin256({coin}, ..)"),
            Keys::TwoCoins256 { first, second, .. } => {
                write!(f, "Keys::TwoCoins256({first}, {second}, ..)")
            }
        }
    }
}

impl Keys {
    /// The encryption type these keys make.
    pub fn encryption(&self) -> Encryption {
        match self {
            Keys::None => Encryption::None,
            Keys::Coin { .. } => Encryption::CoinAes128,
            Keys::Locker { .. } => Encryption::LockerAes128,
            Keys::Coin256 { .. } => Encryption::CoinAes256,
            Keys::TwoCoins256 { .. } => Encryption::TwoCoinAes256,
        }
    }
}

/// Deliberate departures from a well-formed request, for testing a server's checks
/// (PROTOCOL.md sections 2 to 4) and for the simulator's and the fuzzers' faulty
/// clients. The default is none: a well-formed request. A wrong raida id, shard,
/// group, command or coin id needs no fault (set the [`Request`] field); an unknown
/// key neither (name a coin or locker the server does not hold).
///
/// The built request's [`Expect`] follows the bytes sent: their header length, type
/// byte and echo bytes, and a zero signature when the declared body length is 0 (no
/// challenge is read). Its key and challenge stay the keys' own: when the type byte
/// names another valid type and a server gets as far as the body under that type, its
/// answer may carry a signature or body the expectation does not match. The answers
/// to every other fault verify (`tests/faults.rs` checks each).
/// [`BuiltRequest::set_echo`] keeps a faulty request as faulty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// Byte 0 (routing) instead of 1.
    pub routing: Option<u8>,
    /// Byte 1 (split id) instead of 0.
    pub split_id: Option<u8>,
    /// Byte 16 instead of the keys' encryption type. The header is the one the keys
    /// build, cut to 32 or padded with zeros to 48 bytes as the new byte announces
    /// (PROTOCOL.md section 1), with the body length written where that layout has it.
    pub encryption_byte: Option<u8>,
    /// Types 0, 1, 2: the challenge's CRC is wrong (its first byte flipped).
    pub bad_crc: bool,
    /// Types 4, 5: the HMAC is wrong (its last byte flipped).
    pub bad_hmac: bool,
    /// The body ends with `3E 3F` instead of the trailer.
    pub bad_trailer: bool,
    /// The body before the trailer is cut to this many bytes (after encryption).
    pub truncate_body: Option<usize>,
    /// No body at all: no trailer either, body length 0.
    pub no_body: bool,
    /// The declared body length instead of the true one.
    pub declared_body_len: Option<u16>,
}

/// A request from named fields. [`Request::build`] turns it into wire bytes.
///
/// Where fields share header bytes, the later one in this list wins:
/// - 32-byte header (types 0, 1, 2): request bytes 24..31 are `nonce[0..8]` (the AES
///   IV of types 1, 2 is those 8 bytes and 8 zeros), then `echo` overwrites 30..31.
/// - 48-byte header (types 4, 5): request bytes 24..47 are `nonce`; type 5's second
///   coin overwrites 24..28; `echo` overwrites 46..47 (the server returns them in
///   response bytes 46..47). The AES-256 IV is request bytes 24..39.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// Byte 2: the RAIDA addressed.
    pub raida_id: u8,
    /// Bytes 6..7.
    pub coin_id: u16,
    /// Byte 3 (0..=3).
    pub shard: u8,
    /// Byte 4 (0..=15).
    pub group: u8,
    /// Byte 5.
    pub command: u8,
    /// Bytes 8..15 (presentation; the server ignores them).
    pub presentation: [u8; 8],
    /// Encryption type and key material.
    pub keys: Keys,
    /// The command payload, in clear.
    pub payload: Vec<u8>,
    /// Echo bytes: returned in response bytes 6..7 (32-byte) or 46..47 (48-byte).
    pub echo: [u8; 2],
    /// Nonce bytes (see the type's doc for which header bytes they fill).
    pub nonce: [u8; NONCE_LEN],
    /// Types 0, 1, 2: the 12 random bytes that start the body, followed by their CRC.
    pub challenge: [u8; CHALLENGE_RANDOM_LEN],
    /// Deliberate faults (none by default).
    pub faults: Faults,
}

/// Never prints key material.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("raida_id", &self.raida_id)
            .field("coin_id", &self.coin_id)
            .field("shard", &self.shard)
            .field("group", &self.group)
            .field("command", &self.command)
            .field("keys", &self.keys)
            .field("payload_len", &self.payload.len())
            .field("echo", &self.echo)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request for (`group`, `command`) on RAIDA `raida_id`, coin id 0, shard 0, with
    /// an empty payload and zero nonce, challenge and echo bytes (see
    /// [`Request::randomize`]).
    pub fn new(raida_id: u8, group: u8, command: u8, keys: Keys) -> Request {
        Request {
            raida_id,
            coin_id: 0,
            shard: 0,
            group,
            command,
            presentation: [0; 8],
            keys,
            payload: Vec::new(),
            echo: [0; 2],
            nonce: [0; NONCE_LEN],
            challenge: [0; CHALLENGE_RANDOM_LEN],
            faults: Faults::default(),
        }
    }

    /// Echo (0, 0).
    pub fn echo(raida_id: u8, keys: Keys) -> Request {
        Request::new(raida_id, 0, 0, keys)
    }

    /// Version (0, 1).
    pub fn version(raida_id: u8, keys: Keys) -> Request {
        Request::new(raida_id, 0, 1, keys)
    }

    /// Fills `nonce`, `challenge` and `echo` with fresh random bytes from the OS.
    pub fn randomize(&mut self) -> Result<(), RandomError> {
        let mut buf = [0u8; NONCE_LEN + CHALLENGE_RANDOM_LEN + 2];
        getrandom::getrandom(&mut buf).map_err(RandomError)?;
        self.nonce.copy_from_slice(&buf[..NONCE_LEN]);
        self.challenge
            .copy_from_slice(&buf[NONCE_LEN..NONCE_LEN + CHALLENGE_RANDOM_LEN]);
        self.echo
            .copy_from_slice(&buf[NONCE_LEN + CHALLENGE_RANDOM_LEN..]);
        Ok(())
    }

    /// The encryption type.
    pub fn encryption(&self) -> Encryption {
        self.keys.encryption()
    }

    /// The header length: 32 for types 0, 1, 2, 48 for 4, 5.
    pub fn header_len(&self) -> usize {
        header_len(self.encryption().byte())
    }

    /// The body length of the well-formed request (without [`Faults`]).
    pub fn body_len(&self) -> usize {
        if self.encryption().is_aes256() {
            self.payload.len() + crypto::HMAC_LEN + TRAILER.len()
        } else {
            CHALLENGE_RANDOM_LEN + 4 + self.payload.len() + TRAILER.len()
        }
    }

    /// The request bytes, and what a valid response to them must look like.
    pub fn build(&self) -> Result<BuiltRequest, BuildError> {
        let body_len = self.body_len();
        if body_len > MAX_REQUEST_BODY {
            return Err(BuildError::BodyTooLong {
                max: MAX_REQUEST_BODY,
                got: body_len,
            });
        }
        let enc = self.encryption();
        let hlen = self.header_len();
        let mut bytes = Vec::with_capacity(hlen + body_len);
        let faults = &self.faults;
        bytes.extend_from_slice(&[
            faults.routing.unwrap_or(1),
            faults.split_id.unwrap_or(0),
            self.raida_id,
            self.shard,
            self.group,
            self.command,
        ]);
        bytes.extend_from_slice(&self.coin_id.to_be_bytes());
        bytes.extend_from_slice(&self.presentation);
        bytes.push(enc.byte());
        bytes.resize(hlen, 0);
        let len_be = (body_len as u16).to_be_bytes();
        let key = if hlen == SHORT_HEADER_LEN {
            match &self.keys {
                Keys::Coin { coin, .. } => bytes[17..22].copy_from_slice(&coin.to_bytes()),
                Keys::Locker { an } => bytes[17..22].copy_from_slice(&an[..5]),
                _ => {}
            }
            bytes[22..24].copy_from_slice(&len_be);
            bytes[24..32].copy_from_slice(&self.nonce[..8]);
            bytes[30..32].copy_from_slice(&self.echo);
            match &self.keys {
                Keys::Coin { an, .. } | Keys::Locker { an } => ResponseKey::Aes128 {
                    an: *an,
                    iv: short_iv(&bytes),
                },
                _ => ResponseKey::None,
            }
        } else {
            debug_assert_eq!(hlen, LONG_HEADER_LEN);
            bytes[17..19].copy_from_slice(&len_be);
            bytes[24..48].copy_from_slice(&self.nonce);
            let k = match &self.keys {
                Keys::Coin256 { coin, an } => {
                    bytes[19..24].copy_from_slice(&coin.to_bytes());
                    crypto::sha256(&[an])
                }
                Keys::TwoCoins256 {
                    first,
                    first_an,
                    second,
                    second_an,
                } => {
                    bytes[19..24].copy_from_slice(&first.to_bytes());
                    bytes[24..29].copy_from_slice(&second.to_bytes());
                    crypto::sha256(&[first_an, second_an])
                }
                // A 48-byte header only comes from the two AES-256 variants.
                _ => [0; 32],
            };
            bytes[46..48].copy_from_slice(&self.echo);
            ResponseKey::Aes256 { key: k }
        };

        let mut plain_body = Vec::new();
        let signature;
        match &key {
            ResponseKey::None | ResponseKey::Aes128 { .. } => {
                let mut challenge = [0u8; 16];
                challenge[..12].copy_from_slice(&self.challenge);
                challenge[12..].copy_from_slice(&crypto::crc32(&self.challenge).to_be_bytes());
                if faults.bad_crc {
                    challenge[12] ^= 0x01;
                }
                let body_start = bytes.len();
                bytes.extend_from_slice(&challenge);
                bytes.extend_from_slice(&self.payload);
                if let ResponseKey::Aes128 { an, iv } = &key {
                    plain_body.extend_from_slice(&bytes[body_start..]);
                    crypto::aes128_ctr(an, iv, &mut bytes[body_start..]);
                    signature = xor16(&challenge, an);
                } else {
                    signature = challenge;
                }
            }
            ResponseKey::Aes256 { key } => {
                let iv = long_iv(&bytes);
                let body_start = bytes.len();
                bytes.extend_from_slice(&self.payload);
                crypto::aes256_ctr(key, &iv, &mut bytes[body_start..]);
                let mut mac = crypto::hmac_sha256(key, &bytes[body_start..]);
                if faults.bad_hmac {
                    mac[crypto::HMAC_LEN - 1] ^= 0x80;
                }
                bytes.extend_from_slice(&mac);
                signature = [0; 16];
            }
        }
        bytes.extend_from_slice(&TRAILER);
        debug_assert_eq!(bytes.len(), hlen + body_len);
        let mut expect = Expect {
            header_len: hlen,
            encryption: enc,
            type_byte: enc.byte(),
            key,
            signature,
            echo: self.echo,
        };
        if *faults != Faults::default() {
            let kept = apply_body_faults(&mut bytes, hlen, faults);
            // `set_echo` re-encrypts exactly the content still sent.
            plain_body.truncate(kept);
            // A server answers the bytes sent: their header length, type byte and echo
            // bytes (a header cut or padded to another length has them elsewhere), and
            // (32-byte layout) a zero signature when it reads no body, so no challenge.
            expect.type_byte = bytes[16];
            expect.header_len = header_len(bytes[16]);
            if expect.header_len == SHORT_HEADER_LEN {
                expect.echo = [bytes[30], bytes[31]];
                if bytes[22..24] == [0, 0] {
                    expect.signature = [0; 16];
                }
            } else {
                expect.echo = [bytes[46], bytes[47]];
            }
        }
        Ok(BuiltRequest {
            bytes,
            plain_body,
            expect,
        })
    }
}

/// The faults that change a built request's body and header layout: the trailer, the
/// body's length, the encryption byte (and with it the header's length), the declared
/// body length. `hlen` is the header length the keys built. Returns how many bytes of
/// the body's content (before the trailer) are still sent.
fn apply_body_faults(bytes: &mut Vec<u8>, hlen: usize, faults: &Faults) -> usize {
    let mut body = bytes.split_off(hlen);
    let mut content = body.len() - TRAILER.len();
    if faults.bad_trailer {
        body[content + 1] = 0x3F;
    }
    if let Some(n) = faults.truncate_body.filter(|&n| n < content) {
        body.drain(n..content);
        content = n;
    }
    if faults.no_body {
        body.clear();
        content = 0;
    }
    if let Some(b) = faults.encryption_byte {
        bytes[16] = b;
        bytes.resize(header_len(b), 0);
    }
    let declared = faults
        .declared_body_len
        .unwrap_or_else(|| u16::try_from(body.len()).unwrap_or(u16::MAX));
    let at = if bytes.len() == SHORT_HEADER_LEN {
        22
    } else {
        17
    };
    bytes[at..at + 2].copy_from_slice(&declared.to_be_bytes());
    bytes.extend_from_slice(&body);
    content
}

fn xor16(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Types 1, 2: request bytes 24..31 followed by 8 zeros.
fn short_iv(header: &[u8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&header[24..32]);
    iv
}

/// Types 4, 5: request bytes 24..39.
fn long_iv(header: &[u8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&header[24..40]);
    iv
}

/// A request on the wire, with what its response must look like.
#[derive(Clone)]
pub struct BuiltRequest {
    bytes: Vec<u8>,
    /// Types 1, 2: the body before encryption (trailer excluded; as much of it as
    /// [`Faults`] left), kept so that [`BuiltRequest::set_echo`] can re-encrypt under
    /// the new IV without allocating.
    plain_body: Vec<u8>,
    expect: Expect,
}

impl fmt::Debug for BuiltRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltRequest")
            .field("len", &self.bytes.len())
            .field("expect", &self.expect)
            .finish()
    }
}

impl BuiltRequest {
    /// The bytes to send.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What a valid response must look like.
    pub fn expect(&self) -> &Expect {
        &self.expect
    }

    /// The response header length (equal to the request's: 32 or 48).
    pub fn response_header_len(&self) -> usize {
        self.expect.header_len
    }

    /// Changes the echo bytes in place (no allocation), so one built request can be
    /// sent many times and its replies told apart. Types 1 and 2 carry the echo bytes in
    /// their IV, so their body is re-encrypted; the other types only rewrite 2 bytes.
    pub fn set_echo(&mut self, echo: [u8; 2]) {
        self.expect.echo = echo;
        let hlen = self.expect.header_len;
        if hlen == SHORT_HEADER_LEN {
            self.bytes[30..32].copy_from_slice(&echo);
            if let ResponseKey::Aes128 { an, iv } = &mut self.expect.key {
                *iv = short_iv(&self.bytes);
                // The content right after the header: all of it, or what `Faults` left
                // (CTR: a prefix re-encrypts to the prefix of the whole).
                let end = hlen + self.plain_body.len();
                if let Some(body) = self.bytes.get_mut(hlen..end) {
                    body.copy_from_slice(&self.plain_body);
                    crypto::aes128_ctr(an, iv, body);
                }
            }
        } else {
            self.bytes[46..48].copy_from_slice(&echo);
        }
    }

    /// Verifies and decrypts a complete response (header and whole body, nothing after).
    pub fn parse_response(&self, bytes: &[u8]) -> Result<crate::Response, crate::ResponseError> {
        let mut body = Vec::new();
        let header = self.expect.check_into(bytes, &mut body)?;
        Ok(crate::Response { header, body })
    }
}
