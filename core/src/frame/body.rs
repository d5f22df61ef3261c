//! Request bodies (PROTOCOL.md section 4): trailer, lengths, CRC, decryption, HMAC.

use std::ops::Range;

use raida_wire::{Encryption, Status, CHALLENGE_LEN, TRAILER};

use super::key::RequestKey;
use crate::crypto;

/// The bytes of the challenge its CRC covers (the CRC is the next 4).
const CRC_COVERS: usize = 12;

/// A body that passed its checks, decrypted in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenedBody {
    /// The signature of a 32-byte response: the challenge (type 0), the challenge
    /// XOR AN (types 1, 2), zeros for body length 0 and for types 4, 5.
    pub challenge: [u8; 16],
    /// Where the command's payload lies in the (now decrypted) body.
    pub payload: Range<usize>,
}

/// A body that failed a check. `challenge` is set when it was taken before the
/// failing check (a 37 carries it, like a success), zeros otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyRejected {
    /// The first failing rule's status.
    pub status: Status,
    /// The response signature.
    pub challenge: [u8; 16],
}

fn reject(status: Status) -> Result<OpenedBody, BodyRejected> {
    Err(BodyRejected {
        status,
        challenge: [0; 16],
    })
}

/// Checks `body` in the order PROTOCOL.md section 4 gives and decrypts it in place.
///
/// The body is the exact declared length. Types 0, 1, 2 with an empty body run the
/// command with an empty payload and a zero challenge, as the deployed server does;
/// types 4 and 5 answer 16, since without a body there is no HMAC.
pub(crate) fn open_body(
    encryption: Encryption,
    key: &RequestKey,
    body: &mut [u8],
) -> Result<OpenedBody, BodyRejected> {
    let len = body.len();
    if len == 0 && !encryption.is_aes256() {
        return Ok(OpenedBody {
            challenge: [0; 16],
            payload: 0..0,
        });
    }
    if len < TRAILER.len() {
        return reject(Status::InvalidPacketLength);
    }
    if body[len - 2..] != TRAILER {
        return reject(Status::InvalidEof);
    }
    let content = len - TRAILER.len();
    match (encryption, key) {
        (Encryption::None, _) => {
            if len < CHALLENGE_LEN + TRAILER.len() {
                return reject(Status::InvalidPacketLength);
            }
            let mut challenge = [0u8; 16];
            challenge.copy_from_slice(&body[..CHALLENGE_LEN]);
            check_crc(body, challenge)
        }
        (_, RequestKey::Aes128 { an, iv }) => {
            crypto::aes128_ctr(an, iv, &mut body[..content]);
            if len < CHALLENGE_LEN + TRAILER.len() {
                return reject(Status::InvalidPacketLength);
            }
            let mut challenge = [0u8; 16];
            for (c, (b, k)) in challenge.iter_mut().zip(body.iter().zip(an)) {
                *c = b ^ k;
            }
            check_crc(body, challenge)
        }
        (_, RequestKey::Aes256 { key, iv }) => {
            if len < crypto::HMAC_LEN + TRAILER.len() {
                return reject(Status::InvalidPacketLength);
            }
            let (ciphertext, tag) = body[..content].split_at_mut(content - crypto::HMAC_LEN);
            if !crypto::hmac_sha256_matches(key, ciphertext, tag) {
                return reject(Status::InvalidHmac);
            }
            crypto::aes256_ctr(key, iv, ciphertext);
            Ok(OpenedBody {
                challenge: [0; 16],
                payload: 0..content - crypto::HMAC_LEN,
            })
        }
        // An admitted header always resolves a key matching its type; anything else is
        // a bug in the caller, answered as a server fault rather than a panic.
        _ => reject(Status::Internal),
    }
}

/// The CRC rule shared by types 0, 1, 2: CRC-32 of body[0..12], big-endian, must equal
/// body[12..16]. The challenge was taken before, so a 37 carries it.
fn check_crc(body: &[u8], challenge: [u8; 16]) -> Result<OpenedBody, BodyRejected> {
    let crc = crypto::crc32(&body[..CRC_COVERS]).to_be_bytes();
    if body[CRC_COVERS..CHALLENGE_LEN] != crc {
        return Err(BodyRejected {
            status: Status::InvalidCrc,
            challenge,
        });
    }
    Ok(OpenedBody {
        challenge,
        payload: CHALLENGE_LEN..body.len() - TRAILER.len(),
    })
}
