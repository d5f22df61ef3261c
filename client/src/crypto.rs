//! The protocol's primitives for client authors, through the RustCrypto crates and
//! crc32fast directly: written apart from the server's own (raida-core keeps its crypto
//! private), so a request built here and checked there is checked by two
//! implementations. Every function is pure.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The length of an HMAC-SHA256 tag (types 4 and 5).
pub const HMAC_LEN: usize = 32;

/// CRC-32 (IEEE, as zlib's `crc32`) of `data`: the challenge's check (types 0, 1, 2).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// AES-128-CTR over `buf` in place, the whole 16-byte block a big-endian counter
/// starting at `iv` (types 1 and 2).
pub fn aes128_ctr(key: &[u8; 16], iv: &[u8; 16], buf: &mut [u8]) {
    ctr::Ctr128BE::<aes::Aes128>::new(key.into(), iv.into()).apply_keystream(buf);
}

/// AES-256-CTR over `buf` in place, counter as in [`aes128_ctr`] (types 4 and 5).
pub fn aes256_ctr(key: &[u8; 32], iv: &[u8; 16], buf: &mut [u8]) {
    ctr::Ctr128BE::<aes::Aes256>::new(key.into(), iv.into()).apply_keystream(buf);
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; HMAC_LEN] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `data` under `key` (constant time).
pub fn hmac_sha256_matches(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let expected = hmac_sha256(key, data);
    tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
}

/// SHA-256 of the concatenation of `parts` (the AES-256 key of types 4 and 5).
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The CRC-32 check value of "123456789" (the catalogue's "check" field).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn sha256_of_abc() {
        // FIPS 180-2, appendix B.1.
        let d = sha256(&[b"ab", b"c"]);
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(d[28..], [0xf2, 0x00, 0x15, 0xad]);
    }
}
