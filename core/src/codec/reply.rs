//! Response headers and bodies (PROTOCOL.md sections 5 and 6), built into a
//! caller-owned buffer.

use super::header::{RequestHeader, RequestKey};
use super::{LONG_HEADER_LEN, RANDOM_LEN, SHORT_HEADER_LEN, TRAILER};
use crate::crypto;
use crate::status::StatusByte;

/// The largest body the 3-byte size field can describe.
pub const MAX_RESPONSE_BODY: usize = (1 << 24) - 1;

/// Everything a response header carries from its request. Every field comes from the
/// request being answered (the deployed UDP path leaked fields of earlier datagrams).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyContext {
    /// 32 or 48: the response header length follows the request's.
    pub header_len: usize,
    /// Response byte 3: the request's group once the group, shard and command rules
    /// passed, 0 before.
    pub group: u8,
    /// Request bytes 30..31, returned in response bytes 6..7 (32-byte layout).
    pub echo: [u8; 2],
    /// Request byte 16, returned in response byte 16 (48-byte layout).
    pub encryption_byte: u8,
    /// Request bytes 19..23 (first coin denomination and serial), returned in response
    /// bytes 17..21 (48-byte layout) once parsed; zeros before and for status 27.
    pub first_coin: [u8; 5],
    /// Type 5: request bytes 24..28 (second coin), returned in response bytes 24..28.
    pub second_coin: Option<[u8; 5]>,
    /// Request bytes 46..47, returned in response bytes 46..47 (00 00 for status 27).
    pub tail: [u8; 2],
}

impl ReplyContext {
    /// What a response carries before any rule past the command rule passed.
    pub(super) fn early(h: &RequestHeader) -> ReplyContext {
        let b = h.as_bytes();
        let long = h.len() == LONG_HEADER_LEN;
        ReplyContext {
            header_len: h.len(),
            group: 0,
            echo: [b[30], b[31]],
            encryption_byte: h.encryption_byte(),
            first_coin: [0; 5],
            second_coin: None,
            tail: if long { [b[46], b[47]] } else { [0, 0] },
        }
    }

    /// Records the coin fields once the encryption type is known to be valid.
    pub(super) fn coins_parsed(&mut self, h: &RequestHeader) {
        let b = h.as_bytes();
        match h.encryption_byte() {
            4 => self.first_coin.copy_from_slice(&b[19..24]),
            5 => {
                self.first_coin.copy_from_slice(&b[19..24]);
                let mut second = [0u8; 5];
                second.copy_from_slice(&b[24..29]);
                self.second_coin = Some(second);
            }
            _ => {}
        }
    }
}

/// What the job decided: a status, the 16-byte signature (32-byte layout) and the
/// command's output, if any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseParts<'a> {
    /// Response byte 2.
    pub status: StatusByte,
    /// Response bytes 16..31 of the 32-byte layout: the challenge, or zeros.
    pub signature: [u8; 16],
    /// The command's output in clear; empty means no body.
    pub output: &'a [u8],
}

/// Appends the response to `out` (cleared first): header, then (when there is output)
/// the body encrypted as the request's type demands and the trailer.
///
/// `elapsed_micros` is the time from accept or receive to now; `random` supplies the
/// fresh bytes of a 48-byte response (bytes 24..45; for type 5 only `random[5..]`, since
/// bytes 24..28 carry the second coin). Both come from the driver: core reads no clock
/// and no random source.
pub(crate) fn write_response(
    out: &mut Vec<u8>,
    raida_id: u8,
    reply: &ReplyContext,
    key: &RequestKey,
    parts: ResponseParts<'_>,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) {
    out.clear();
    let (mut status, mut output) = (parts.status, parts.output);
    let mac_len = match key {
        RequestKey::Aes256 { .. } => crypto::HMAC_LEN,
        _ => 0,
    };
    if output.len() + mac_len + TRAILER.len() > MAX_RESPONSE_BODY {
        // A command's output the size field cannot describe is a server fault.
        status = crate::Status::Internal.into();
        output = &[];
    }
    let body_len = if output.is_empty() {
        0
    } else {
        output.len() + mac_len + TRAILER.len()
    };
    let size = (body_len as u32).to_be_bytes();
    let micros = elapsed_micros.to_be_bytes();
    out.reserve(reply.header_len + body_len);
    if reply.header_len == SHORT_HEADER_LEN {
        out.extend_from_slice(&[raida_id, 0, status.0, reply.group, 0, 1]);
        out.extend_from_slice(&reply.echo);
        out.extend_from_slice(&[0, size[1], size[2], size[3]]);
        out.extend_from_slice(&micros);
        out.extend_from_slice(&parts.signature);
    } else {
        out.extend_from_slice(&[raida_id, 0, status.0, reply.group]);
        out.extend_from_slice(&micros);
        out.extend_from_slice(&[0, size[1], size[2], size[3], 0, 0, 0, 0]);
        out.push(reply.encryption_byte);
        out.extend_from_slice(&reply.first_coin);
        out.extend_from_slice(&[0, 0]);
        match reply.second_coin {
            Some(second) => {
                out.extend_from_slice(&second);
                out.extend_from_slice(&random[5..]);
            }
            None => out.extend_from_slice(random),
        }
        out.extend_from_slice(&reply.tail);
    }
    debug_assert_eq!(out.len(), reply.header_len);
    if output.is_empty() {
        return;
    }
    let body_start = out.len();
    out.extend_from_slice(output);
    match key {
        RequestKey::None => {}
        RequestKey::Aes128 { an, iv } => {
            // Restart at the request IV: deployed clients decrypt it that way.
            crypto::aes128_ctr(an, iv, &mut out[body_start..]);
        }
        RequestKey::Aes256 { key, .. } => {
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&out[24..40]);
            crypto::aes256_ctr(key, &iv, &mut out[body_start..]);
            let mac = crypto::hmac_sha256(key, &out[body_start..]);
            out.extend_from_slice(&mac);
        }
    }
    out.extend_from_slice(&TRAILER);
}
