//! Response verification and decryption (PROTOCOL.md sections 5 and 6).

use std::fmt;

use crate::crypto;
use raida_wire::{An, Encryption, Status, StatusByte, SHORT_HEADER_LEN, TRAILER};

use crate::error::ResponseError;

/// The key a response body is decrypted with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseKey {
    /// Type 0.
    None,
    /// Types 1, 2: the body restarts the request's keystream.
    Aes128 { an: An, iv: [u8; 16] },
    /// Types 4, 5: IV = response bytes 24..39.
    Aes256 { key: [u8; 32] },
}

/// What a valid response to one request looks like: header length, key, signature
/// and echo bytes. Made by [`crate::Request::build`].
#[derive(Clone)]
pub struct Expect {
    pub(crate) header_len: usize,
    pub(crate) encryption: Encryption,
    /// Request byte 16 as sent: the keys' type unless [`crate::Faults`] replaced it.
    /// A 48-byte response repeats it in its byte 16.
    pub(crate) type_byte: u8,
    pub(crate) key: ResponseKey,
    /// 32-byte layout: the signature a response carries once the server read the
    /// challenge (type 0: the challenge; types 1, 2: challenge XOR AN).
    pub(crate) signature: [u8; 16],
    pub(crate) echo: [u8; 2],
}

/// Never prints key material.
impl fmt::Debug for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expect")
            .field("header_len", &self.header_len)
            .field("encryption", &self.encryption)
            .field("echo", &self.echo)
            .finish_non_exhaustive()
    }
}

/// The response body size a response header declares (bytes 9..11 in both layouts),
/// trailer (and HMAC) included. `header` must hold at least 12 bytes; fewer give 0.
pub fn declared_body_len(header: &[u8]) -> usize {
    match header.get(9..12) {
        Some(s) => (usize::from(s[0]) << 16) | (usize::from(s[1]) << 8) | usize::from(s[2]),
        None => 0,
    }
}

/// The name PROTOCOL.md gives a status byte (`SUCCESS`, `INVALID_CRC`, ...), or
/// `UNKNOWN` for a code neither the network layer nor the healing commands define.
pub fn status_name(status: StatusByte) -> &'static str {
    if let Some(known) = Status::from_code(status.0) {
        return known.name();
    }
    // The healing commands' own codes (PROTOCOL.md 8b).
    match status.0 {
        18 => "WRONG_RAIDA",
        42 => "NO_TICKET_SLOT",
        43 => "NO_TICKET_FOUND",
        44 => "TICKET_CLAIMED_ALREADY",
        208 => "FIND_NEITHER",
        209 => "FIND_ALL_AN",
        210 => "FIND_ALL_PAN",
        211 => "FIND_MIXED",
        _ => "UNKNOWN",
    }
}

/// The fields of a verified response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    /// Byte 0: the answering server's raida id.
    pub raida_id: u8,
    /// Byte 2.
    pub status: StatusByte,
    /// Byte 3: the request's group once the command rules passed, else 0.
    pub group: u8,
    /// Microseconds the server spent, from accept / receive to building the response
    /// (32-byte layout: bytes 12..15; 48-byte: bytes 4..7).
    pub server_micros: u32,
    /// 32 or 48.
    pub len: usize,
    /// The declared body size (trailer and HMAC included; 0 = no body).
    pub body_size: usize,
}

impl ResponseHeader {
    /// The status, if it is one the network layer knows.
    pub fn known_status(&self) -> Option<Status> {
        Status::from_code(self.status.0)
    }

    /// Whether the status is 250 SUCCESS.
    pub fn is_success(&self) -> bool {
        self.status == StatusByte::from(Status::Success)
    }
}

/// A verified, decrypted response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The header fields.
    pub header: ResponseHeader,
    /// The command output in clear (no HMAC, no trailer); empty when there was no body.
    pub body: Vec<u8>,
}

impl Expect {
    /// The response header length: 32 or 48.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The request's encryption type.
    pub fn encryption(&self) -> Encryption {
        self.encryption
    }

    /// The echo bytes a response must carry.
    pub fn echo(&self) -> [u8; 2] {
        self.echo
    }

    /// Verifies a complete response (header and whole body, nothing after) and writes
    /// the decrypted command output into `body` (cleared first; reuse it to avoid
    /// allocating per response).
    ///
    /// Checks, in order: length against the header and its declared body size; echo
    /// bytes; 32-byte layout: the signature equals the request's challenge (zeros are
    /// also accepted for a status other than SUCCESS: the server sends zeros when it
    /// rejected the request before reading the challenge); 48-byte layout: byte 16 is
    /// the request's type. Then the body: trailer, and for types 4, 5 the HMAC (in
    /// constant time) before decrypting.
    pub fn check_into(
        &self,
        bytes: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<ResponseHeader, ResponseError> {
        body.clear();
        let hlen = self.header_len;
        let Some(h) = bytes.get(..hlen) else {
            return Err(ResponseError::Short {
                part: "response header",
                expected: hlen,
                got: bytes.len(),
            });
        };
        let size = declared_body_len(h);
        let total = hlen + size;
        if bytes.len() < total {
            return Err(ResponseError::Short {
                part: "response body",
                expected: size,
                got: bytes.len() - hlen,
            });
        }
        if bytes.len() > total {
            return Err(ResponseError::Long {
                expected: total,
                got: bytes.len(),
            });
        }
        let status = StatusByte(h[2]);
        let short = hlen == SHORT_HEADER_LEN;
        let server_micros = if short {
            u32::from_be_bytes([h[12], h[13], h[14], h[15]])
        } else {
            u32::from_be_bytes([h[4], h[5], h[6], h[7]])
        };
        if short {
            let echo = [h[6], h[7]];
            if echo != self.echo {
                return Err(ResponseError::Echo {
                    expected: self.echo,
                    got: echo,
                });
            }
            let mut signature = [0u8; 16];
            signature.copy_from_slice(&h[16..32]);
            let success = status == StatusByte::from(Status::Success);
            if signature != self.signature && (success || signature != [0; 16]) {
                return Err(ResponseError::Signature {
                    status,
                    expected: self.signature,
                    zeros_allowed: !success,
                    got: signature,
                });
            }
        } else {
            if h[16] != self.type_byte {
                return Err(ResponseError::EncryptionType {
                    expected: self.type_byte,
                    got: h[16],
                });
            }
            // A 27 carries 00 00 here (it answers a request with a faulty type byte,
            // see `Faults::encryption_byte`), as the protocol defines it.
            let tail = [h[46], h[47]];
            let is_27 = status == StatusByte::from(Status::InvalidEncryptionCode);
            if tail != self.echo && !(is_27 && tail == [0, 0]) {
                return Err(ResponseError::Echo {
                    expected: self.echo,
                    got: tail,
                });
            }
        }
        let header = ResponseHeader {
            raida_id: h[0],
            status,
            group: h[3],
            server_micros,
            len: hlen,
            body_size: size,
        };
        if size == 0 {
            return Ok(header);
        }
        let raw = &bytes[hlen..];
        if raw.len() < TRAILER.len() || raw[raw.len() - 2..] != TRAILER {
            return Err(ResponseError::Trailer {
                got: raw[raw.len().saturating_sub(2)..].to_vec(),
            });
        }
        let content = &raw[..raw.len() - TRAILER.len()];
        match &self.key {
            ResponseKey::None => body.extend_from_slice(content),
            ResponseKey::Aes128 { an, iv } => {
                body.extend_from_slice(content);
                crypto::aes128_ctr(an, iv, body);
            }
            ResponseKey::Aes256 { key } => {
                let min = crypto::HMAC_LEN + TRAILER.len();
                if raw.len() < min {
                    return Err(ResponseError::BodyTooShort {
                        expected: min,
                        got: raw.len(),
                    });
                }
                let (ciphertext, tag) = content.split_at(content.len() - crypto::HMAC_LEN);
                if !crypto::hmac_sha256_matches(key, ciphertext, tag) {
                    let mut got = [0u8; 32];
                    got.copy_from_slice(tag);
                    return Err(ResponseError::Hmac {
                        expected: crypto::hmac_sha256(key, ciphertext),
                        got,
                    });
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&h[24..40]);
                body.extend_from_slice(ciphertext);
                crypto::aes256_ctr(key, &iv, body);
            }
        }
        Ok(header)
    }
}
