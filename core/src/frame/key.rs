//! The key a request's body and its response are encrypted with.

use raida_wire::An;

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
