//! Request headers (PROTOCOL.md sections 2 and 3) and the header-time checks.

use std::sync::Arc;

use super::reply::ReplyContext;
use super::{Encryption, LONG_HEADER_LEN, PREFIX_LEN, SHORT_HEADER_LEN};
use crate::command::{Command, CommandRegistry, KeyId, MAX_COMMAND_GROUP};
use crate::crypto;
use crate::keys::{An, CoinId, KeyStore, Lookup, PageId};
use crate::status::Status;
use crate::Timestamp;

/// The highest shard id the header rules accept.
pub const MAX_SHARD: u8 = 3;

/// The length of the request header announced by byte 16 (the encryption type):
/// 32 bytes for types 0, 1, 2, and 48 for every other value (4 and 5 are valid; the
/// others are read in full and then answered 27).
pub const fn header_len(encryption_byte: u8) -> usize {
    match encryption_byte {
        0..=2 => SHORT_HEADER_LEN,
        _ => LONG_HEADER_LEN,
    }
}

/// What the header rules compare against: this server's identity and body bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRules {
    /// Request byte 2 must equal this.
    pub raida_id: u8,
    /// Request bytes 6..7 must equal this.
    pub coin_id: u16,
    /// A declared body longer than this is answered 16 before any body byte is read.
    pub max_body_size: usize,
}

/// A complete request header, 32 or 48 bytes, copied out of the read buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    bytes: [u8; LONG_HEADER_LEN],
    len: u8,
}

impl std::fmt::Debug for RequestHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHeader")
            .field("len", &self.len)
            .field("group", &self.group())
            .field("command", &self.command())
            .field("encryption", &self.encryption_byte())
            .finish()
    }
}

impl RequestHeader {
    /// The header at the start of `bytes`, when `bytes` holds all of it (at least 17
    /// bytes, and then the 32 or 48 that byte 16 announces). Bytes after it are not read.
    pub fn parse(bytes: &[u8]) -> Option<RequestHeader> {
        let enc = *bytes.get(PREFIX_LEN - 1)?;
        let len = header_len(enc);
        let src = bytes.get(..len)?;
        let mut h = RequestHeader {
            bytes: [0; LONG_HEADER_LEN],
            len: len as u8,
        };
        h.bytes[..len].copy_from_slice(src);
        Some(h)
    }

    /// The header's bytes, 32 or 48 of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// 32 or 48.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a header is never empty. (Present because `len` is.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Byte 16, the encryption type as sent.
    pub fn encryption_byte(&self) -> u8 {
        self.bytes[16]
    }

    /// Byte 4.
    pub fn group(&self) -> u8 {
        self.bytes[4]
    }

    /// Byte 5.
    pub fn command(&self) -> u8 {
        self.bytes[5]
    }

    /// The declared body length: bytes 22..23 for types 0, 1, 2, bytes 17..18 for the
    /// 48-byte types (meaningless, and never used, for invalid types).
    pub fn declared_body_len(&self) -> usize {
        let at = if self.len() == SHORT_HEADER_LEN {
            22
        } else {
            17
        };
        usize::from(u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]]))
    }

    /// Byte 3.
    pub fn shard(&self) -> u8 {
        self.bytes[3]
    }

    /// Byte 2.
    pub fn raida_id(&self) -> u8 {
        self.bytes[2]
    }

    /// Bytes 6..7.
    pub fn coin_id(&self) -> u16 {
        u16::from_be_bytes([self.bytes[6], self.bytes[7]])
    }

    /// The nonce bytes: 24..31 of a 32-byte header, 24..47 of a 48-byte one.
    pub fn nonce(&self) -> &[u8] {
        &self.bytes[24..self.len()]
    }

    /// Who the key of a request of type `encryption` belongs to, as this header names
    /// it.
    pub fn key_id(&self, encryption: Encryption) -> KeyId {
        let coin = |at: usize| CoinId::from_bytes(self.array::<5>(at));
        match encryption {
            Encryption::None => KeyId::None,
            Encryption::CoinAes128 => KeyId::Coin(coin(17)),
            Encryption::LockerAes128 => KeyId::Locker(self.array::<5>(17)),
            Encryption::CoinAes256 => KeyId::Coin(coin(19)),
            Encryption::TwoCoinAes256 => KeyId::TwoCoins(coin(19), coin(24)),
        }
    }

    fn byte(&self, i: usize) -> u8 {
        self.bytes[i]
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[at..at + N]);
        out
    }
}

/// The key a request's body is encrypted with, resolved at header time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RequestKey {
    /// Type 0: no encryption.
    None,
    /// Types 1 and 2: AES-128-CTR under the AN, IV = request bytes 24..31 + 8 zeros.
    Aes128 {
        /// The coin's or locker's AN (also XORed into the challenge).
        an: An,
        /// The request IV; the response body restarts at it.
        iv: [u8; 16],
    },
    /// Types 4 and 5: AES-256-CTR and HMAC-SHA256 under SHA-256 of the AN(s).
    Aes256 {
        /// SHA-256(AN) or SHA-256(AN1 || AN2).
        key: [u8; 32],
        /// The request IV: request bytes 24..39.
        iv: [u8; 16],
    },
}

impl std::fmt::Debug for RequestKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestKey::None => f.write_str("RequestKey::None"),
            RequestKey::Aes128 { .. } => f.write_str("RequestKey::Aes128(..)"),
            RequestKey::Aes256 { .. } => f.write_str("RequestKey::Aes256(..)"),
        }
    }
}

/// A header that passed every header-time check: the request may have its body read
/// and be run.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The header itself (what the handler's request context is read from).
    pub header: RequestHeader,
    /// How the request is encrypted.
    pub encryption: Encryption,
    /// The key its body (and the response body) is encrypted with. Type 2: the first
    /// (in ascending byte order) of the locker keys starting with the request's prefix.
    pub key: RequestKey,
    /// Type 2 only: the other locker keys with the request's prefix, ascending. When
    /// there are any, the body is decrypted with each key in turn and the first whose
    /// challenge passes the CRC keys the request and its response (PROTOCOL.md
    /// section 8c); if none does, [`key`](Self::key) is used.
    /// (Kept as keys, whose `Debug` never prints key material.)
    pub other_keys: Vec<RequestKey>,
    /// Exactly how many body bytes follow the header.
    pub body_len: usize,
    /// The handler of the request's (group, command).
    pub handler: Arc<dyn Command>,
    /// What the response header carries from this request.
    pub reply: ReplyContext,
}

/// A header that failed a header-time check: answer `status` and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The first failing rule's status.
    pub status: Status,
    /// What the response header carries from this request.
    pub reply: ReplyContext,
}

/// What the header-time checks decided.
#[derive(Debug)]
pub(crate) enum HeaderCheck {
    /// Every check passed.
    Admitted(Admitted),
    /// A check failed: answer its status.
    Rejected(Rejected),
    /// A key's page is not in memory: park the request until it is loaded, then check
    /// again.
    Park(PageId),
}

/// Runs the header-time checks of PROTOCOL.md section 2 in their order (routing 255,
/// split 2, raida 3, group 5, shard 4, command 6, coin id 7, encryption type 27, key
/// lookup 34/25, declared body length 16) and resolves the key. The first failing
/// rule wins. Runs on the event-loop thread, before any body byte is read; a key
/// whose page is not in memory parks the request (the engine loads it off the loop).
pub(crate) fn check_header_or_park(
    h: &RequestHeader,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> HeaderCheck {
    match check(h, rules, commands, keys, now) {
        Ok(admitted) => HeaderCheck::Admitted(admitted),
        Err(Fail::Rejected(rejected)) => HeaderCheck::Rejected(rejected),
        Err(Fail::Park(page)) => HeaderCheck::Park(page),
    }
}

/// The event loop's header-time checks, for callers off the event loop (clients,
/// tests, models): a key whose page is not in memory is loaded here, blocking on the
/// store; a page that cannot be read is answered 252 INTERNAL.
pub fn check_header(
    h: &RequestHeader,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<Admitted, Rejected> {
    // A page evicted again between its load and the check is loaded again; a bound
    // keeps a pathological store from looping.
    for _ in 0..4 {
        match check(h, rules, commands, keys, now) {
            Ok(admitted) => return Ok(admitted),
            Err(Fail::Rejected(rejected)) => return Err(rejected),
            Err(Fail::Park(page)) => {
                if keys.load(page, now).is_err() {
                    break;
                }
            }
        }
    }
    Err(unreadable_key(h))
}

/// The answer to a request refused for its client's rate: 160 REQUEST_RATE, with what
/// the response carries before any rule is checked (its echo bytes, its layout).
pub(crate) fn busy(h: &RequestHeader) -> Rejected {
    Rejected {
        status: Status::RequestRate,
        reply: ReplyContext::early(h),
    }
}

/// The answer to a request whose key's page cannot be read: 252 INTERNAL, with what
/// the response carries once the rules up to the key lookup have passed.
pub(crate) fn unreadable_key(h: &RequestHeader) -> Rejected {
    let mut reply = ReplyContext::early(h);
    reply.group = h.group();
    reply.coins_parsed(h);
    Rejected {
        status: Status::Internal,
        reply,
    }
}

/// Why the checks did not admit a header.
enum Fail {
    Rejected(Rejected),
    Park(PageId),
}

fn check(
    h: &RequestHeader,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<Admitted, Fail> {
    let mut reply = ReplyContext::early(h);
    let reject = |status, reply| Err(Fail::Rejected(Rejected { status, reply }));
    if h.byte(0) != 1 {
        return reject(Status::InvalidRouting, reply);
    }
    if h.byte(1) != 0 {
        return reject(Status::InvalidSplitId, reply);
    }
    if h.byte(2) != rules.raida_id {
        return reject(Status::InvalidRaidaId, reply);
    }
    if h.group() > MAX_COMMAND_GROUP {
        return reject(Status::InvalidCommandGroup, reply);
    }
    if h.byte(3) > MAX_SHARD {
        return reject(Status::InvalidShardId, reply);
    }
    let Some(handler) = commands.get(h.group(), h.command()) else {
        return reject(Status::InvalidCommand, reply);
    };
    reply.group = h.group();
    if u16::from_be_bytes([h.byte(6), h.byte(7)]) != rules.coin_id {
        return reject(Status::InvalidCoinId, reply);
    }
    let Some(encryption) = Encryption::from_byte(h.encryption_byte()) else {
        // Only 48-byte headers get here: bytes 0..=2 are all valid types. A 27 carries
        // none of the request's nonce bytes.
        reply.tail = [0, 0];
        return reject(Status::InvalidEncryptionCode, reply);
    };
    reply.coins_parsed(h);
    let (key, other_keys) = match resolve_key(h, encryption, keys, now) {
        Ok(key) => key,
        Err(KeyFail::Status(status)) => return reject(status, reply),
        Err(KeyFail::Park(page)) => return Err(Fail::Park(page)),
    };
    let body_len = h.declared_body_len();
    if body_len > rules.max_body_size {
        return reject(Status::InvalidPacketLength, reply);
    }
    Ok(Admitted {
        header: *h,
        encryption,
        key,
        other_keys,
        body_len,
        handler: Arc::clone(handler),
        reply,
    })
}

/// Why a key could not be resolved.
enum KeyFail {
    /// Answer this status (unknown coin or locker; a page that cannot be read).
    Status(Status),
    /// The coin's page is not in memory.
    Park(PageId),
}

/// The AN of the coin named by the 5 bytes at `at`; `unknown` is the status of an
/// unknown coin (34 for types 1, 2; 25 for types 4, 5).
fn coin_an(
    h: &RequestHeader,
    at: usize,
    unknown: Status,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<An, KeyFail> {
    let coin = CoinId::from_bytes(h.array::<5>(at));
    match keys.lookup(coin, now) {
        Lookup::Found(an) => Ok(an),
        Lookup::Unknown => Err(KeyFail::Status(unknown)),
        Lookup::NotInMemory(page) => Err(KeyFail::Park(page)),
        Lookup::Unreadable(_) => Err(KeyFail::Status(Status::Internal)),
    }
}

fn resolve_key(
    h: &RequestHeader,
    encryption: Encryption,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<(RequestKey, Vec<RequestKey>), KeyFail> {
    let short_iv = || {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&h.bytes[24..32]);
        iv
    };
    let key = match encryption {
        Encryption::None => Ok(RequestKey::None),
        Encryption::CoinAes128 => {
            let an = coin_an(h, 17, Status::InvalidEncryption, keys, now)?;
            Ok(RequestKey::Aes128 { an, iv: short_iv() })
        }
        Encryption::LockerAes128 => {
            // Every locker key with the prefix, ascending; the first keys the request
            // unless the body says otherwise (see `Admitted::other_keys`).
            let mut found = keys.locker_keys(&h.array::<5>(17), now).into_iter();
            let an = found
                .next()
                .ok_or(KeyFail::Status(Status::InvalidEncryption))?;
            let others = found
                .map(|an| RequestKey::Aes128 { an, iv: short_iv() })
                .collect();
            return Ok((RequestKey::Aes128 { an, iv: short_iv() }, others));
        }
        Encryption::CoinAes256 => {
            let an = coin_an(h, 19, Status::EncryptionCoinNotFound, keys, now)?;
            Ok(RequestKey::Aes256 {
                key: crypto::sha256(&[&an]),
                iv: h.array::<16>(24),
            })
        }
        Encryption::TwoCoinAes256 => {
            let an1 = coin_an(h, 19, Status::EncryptionCoinNotFound, keys, now)?;
            let an2 = coin_an(h, 24, Status::EncryptionCoinNotFound, keys, now)?;
            Ok(RequestKey::Aes256 {
                key: crypto::sha256(&[&an1, &an2]),
                iv: h.array::<16>(24),
            })
        }
    }?;
    Ok((key, Vec::new()))
}
