//! The protocol's primitives, through well-kept crates (RustCrypto, crc32fast); no
//! hand-written cipher, MAC or CRC. Every function here is pure.
//!
//! The vectors that test these come from their published sources (NIST SP 800-38A,
//! RFC 4231, the CRC-32 check value), never from this code.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// AES-128 in CTR mode with the whole 16-byte block as a big-endian counter, as the
/// protocol's types 1 and 2 use it.
type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
/// AES-256 in CTR mode with the whole 16-byte block as a big-endian counter (types 4, 5).
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The length of an HMAC-SHA256 tag.
pub(crate) const HMAC_LEN: usize = 32;

/// CRC-32 (IEEE 802.3, as zlib's `crc32`) of `data`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Encrypts or decrypts `buf` in place with AES-128-CTR, starting the counter at `iv`.
pub(crate) fn aes128_ctr(key: &[u8; 16], iv: &[u8; 16], buf: &mut [u8]) {
    Aes128Ctr::new(key.into(), iv.into()).apply_keystream(buf);
}

/// Encrypts or decrypts `buf` in place with AES-256-CTR, starting the counter at `iv`.
pub(crate) fn aes256_ctr(key: &[u8; 32], iv: &[u8; 16], buf: &mut [u8]) {
    Aes256Ctr::new(key.into(), iv.into()).apply_keystream(buf);
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of every length, so `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `data` under `key`, compared in constant time
/// (the deployed server's `memcmp` leaks how many leading bytes matched).
pub(crate) fn hmac_sha256_matches(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let expected = hmac_sha256(key, data);
    tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
}

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod vectors;
