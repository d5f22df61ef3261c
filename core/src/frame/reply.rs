//! Response headers and bodies (PROTOCOL.md sections 5 and 6), built into a
//! caller-owned buffer.

use raida_wire::{
    ReplyContext, Status, StatusByte, MAX_RESPONSE_BODY, RANDOM_LEN, SHORT_HEADER_LEN, TRAILER,
};

use super::key::RequestKey;
use crate::crypto;

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
        status = Status::Internal.into();
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
