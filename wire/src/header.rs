//! Request headers (PROTOCOL.md sections 2 and 3): their lengths, their fields, and
//! the lengths of the parts of a body and a response that every layer agrees on.

use crate::coin::{CoinId, KeyId};
use crate::encryption::Encryption;

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
/// The bytes of a type 0, 1 or 2 body before the payload: 12 random bytes and their CRC.
pub const CHALLENGE_LEN: usize = 16;
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

    /// Byte 0: the routing byte (1 for every request this server serves).
    pub fn routing(&self) -> u8 {
        self.bytes[0]
    }

    /// Byte 1: the split id (0 for every request this server serves).
    pub fn split_id(&self) -> u8 {
        self.bytes[1]
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

    /// The request IV of types 1 and 2: bytes 24..31, then 8 zeros.
    pub fn short_iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&self.bytes[24..32]);
        iv
    }

    /// The request IV of types 4 and 5: bytes 24..39.
    pub fn long_iv(&self) -> [u8; 16] {
        self.array::<16>(24)
    }

    /// The 5 bytes at `at` (`at + 5` at most 48): a coin or a locker prefix.
    pub fn five_bytes(&self, at: usize) -> [u8; 5] {
        self.array::<5>(at)
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

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        // Every caller's range lies within the 48 bytes; a wrong one yields zeros
        // rather than a panic.
        if let Some(src) = at.checked_add(N).and_then(|end| self.bytes.get(at..end)) {
            out.copy_from_slice(src);
        }
        out
    }
}
