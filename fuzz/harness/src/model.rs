//! An independent model of PROTOCOL.md, written from the text (sections 2 to 7) and
//! not from the code under test: the header rules and the key lookup over the fixed
//! [world](crate::world), the body checks, what one datagram is answered, where a
//! request ends in a TCP stream, and a response reader that checks a response's
//! framing, header and body the way a client reads them. Its crypto is the client's
//! (`raida_client::crypto`, over RustCrypto), never core's.

use raida_client::crypto;
use raida_core::codec::{
    header_len, ReplyContext, RequestKey, LONG_HEADER_LEN, PREFIX_LEN, RANDOM_LEN,
    SHORT_HEADER_LEN, TRAILER,
};
use raida_core::keys::{An, SERIAL_LIMIT};
use raida_core::{Status, VERSION_BYTES};

use crate::world::{COINS, COIN_ID, LOCKER, MAX_BODY_SIZE, MIRROR, RAIDA_ID};

/// The big-endian `u16` at `b[at..at + 2]`, widened.
pub(crate) fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// The big-endian `u32` at `b[at..at + 4]`.
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The AN of coin (`denomination`, `serial`) in the fixed store (section 10: serials
/// from 2^26 up are never known).
fn coin(denomination: u8, serial: u32) -> Option<An> {
    if serial >= SERIAL_LIMIT {
        return None;
    }
    COINS
        .iter()
        .find(|c| c.0 == denomination as i8 && c.1 == serial)
        .map(|c| c.2)
}

/// The AN of the locker whose AN starts with `prefix`.
fn locker(prefix: &[u8]) -> Option<An> {
    (LOCKER[..5] == *prefix).then_some(LOCKER)
}

/// Whether the fuzzed server has a handler for (`group`, `command`).
pub fn is_registered(group: u8, command: u8) -> bool {
    matches!((group, command), (0, 0) | (0, 1)) || (group, command) == MIRROR
}

/// What PROTOCOL.md sections 2 and 3 say about a complete header `h` (32 or 48 bytes):
/// the reply context its response carries and either the key or the failing status.
pub fn header(h: &[u8]) -> (ReplyContext, Result<RequestKey, Status>) {
    let long = h.len() == LONG_HEADER_LEN;
    let mut reply = ReplyContext {
        header_len: h.len(),
        group: 0,
        echo: [h[30], h[31]],
        encryption_byte: h[16],
        first_coin: [0; 5],
        second_coin: None,
        tail: if long { [h[46], h[47]] } else { [0, 0] },
    };
    let fail = |reply, status| (reply, Err(status));
    if h[0] != 1 {
        return fail(reply, Status::InvalidRouting);
    }
    if h[1] != 0 {
        return fail(reply, Status::InvalidSplitId);
    }
    if h[2] != RAIDA_ID {
        return fail(reply, Status::InvalidRaidaId);
    }
    if h[4] > 15 {
        return fail(reply, Status::InvalidCommandGroup);
    }
    if h[3] > 3 {
        return fail(reply, Status::InvalidShardId);
    }
    if !is_registered(h[4], h[5]) {
        return fail(reply, Status::InvalidCommand);
    }
    reply.group = h[4];
    if be16(h, 6) != usize::from(COIN_ID) {
        return fail(reply, Status::InvalidCoinId);
    }
    let mut short_iv = [0u8; 16];
    short_iv[..8].copy_from_slice(&h[24..32]);
    let mut long_iv = [0u8; 16];
    if long {
        long_iv.copy_from_slice(&h[24..40]);
    }
    let key = match h[16] {
        0 => Ok(RequestKey::None),
        1 => coin(h[17], be32(h, 18))
            .map(|an| RequestKey::Aes128 { an, iv: short_iv })
            .ok_or(Status::InvalidEncryption),
        2 => locker(&h[17..22])
            .map(|an| RequestKey::Aes128 { an, iv: short_iv })
            .ok_or(Status::InvalidEncryption),
        4 => {
            reply.first_coin.copy_from_slice(&h[19..24]);
            coin(h[19], be32(h, 20))
                .map(|an| RequestKey::Aes256 {
                    key: crypto::sha256(&[&an]),
                    iv: long_iv,
                })
                .ok_or(Status::EncryptionCoinNotFound)
        }
        5 => {
            reply.first_coin.copy_from_slice(&h[19..24]);
            let mut second = [0u8; 5];
            second.copy_from_slice(&h[24..29]);
            reply.second_coin = Some(second);
            match (coin(h[19], be32(h, 20)), coin(h[24], be32(h, 25))) {
                (Some(a), Some(b)) => Ok(RequestKey::Aes256 {
                    key: crypto::sha256(&[&a, &b]),
                    iv: long_iv,
                }),
                _ => Err(Status::EncryptionCoinNotFound),
            }
        }
        _ => {
            reply.tail = [0, 0];
            Err(Status::InvalidEncryptionCode)
        }
    };
    let key = match key {
        Ok(key) => key,
        Err(status) => return fail(reply, status),
    };
    let declared = if long { be16(h, 17) } else { be16(h, 22) };
    if declared > MAX_BODY_SIZE {
        return fail(reply, Status::InvalidPacketLength);
    }
    (reply, Ok(key))
}

/// The declared body length of a complete header.
pub fn declared_body_len(h: &[u8]) -> usize {
    if h.len() == LONG_HEADER_LEN {
        be16(h, 17)
    } else {
        be16(h, 22)
    }
}

/// What the model answers to one datagram (the UDP column of section 7).
#[derive(Debug)]
pub struct Answer {
    /// What the response header carries from the request.
    pub reply: ReplyContext,
    /// The request's key (the response body is encrypted under it).
    pub key: RequestKey,
    /// The status code.
    pub status: u8,
    /// Response bytes 16..31 of the 32-byte layout.
    pub signature: Signature,
    /// The command's output in clear (empty: no body).
    pub output: Vec<u8>,
}

/// What the model answers to one datagram (`None`: dropped, as shorter than its header).
pub fn answer(datagram: &[u8]) -> Option<Answer> {
    let enc = *datagram.get(PREFIX_LEN - 1)?;
    let hlen = header_len(enc);
    let h = datagram.get(..hlen)?;
    let (reply, key) = header(h);
    let mut answer = Answer {
        reply,
        key: RequestKey::None,
        status: 0,
        signature: [0; 16],
        output: Vec::new(),
    };
    let key = match key {
        Ok(key) => key,
        Err(status) => {
            answer.status = status.code();
            return Some(answer);
        }
    };
    answer.key = key;
    let Some(body) = datagram.get(hlen..hlen + declared_body_len(h)) else {
        answer.status = Status::InvalidPacketLength.code();
        return Some(answer);
    };
    match open_body(enc, &key, body) {
        Ok((signature, payload)) => {
            answer.signature = signature;
            answer.status = Status::Success.code();
            answer.output = match (h[4], h[5]) {
                (0, 1) => VERSION_BYTES.to_vec(),
                c if c == MIRROR => payload,
                _ => Vec::new(),
            };
        }
        Err((status, signature)) => {
            answer.status = status.code();
            answer.signature = signature;
        }
    }
    Some(answer)
}

/// A response signature (response bytes 16..31 of the 32-byte layout).
pub type Signature = [u8; 16];
/// A body that passed: the response signature and the command payload.
pub type Opened = (Signature, Vec<u8>);

/// Section 4 on a body of the declared length: the signature and the payload, or the
/// failing status and the signature it carries.
pub fn open_body(enc: u8, key: &RequestKey, body: &[u8]) -> Result<Opened, (Status, Signature)> {
    let zero = [0u8; 16];
    let len = body.len();
    let aes256 = enc == 4 || enc == 5;
    if len == 0 && !aes256 {
        return Ok((zero, Vec::new()));
    }
    if len < 2 {
        return Err((Status::InvalidPacketLength, zero));
    }
    if body[len - 2..] != TRAILER {
        return Err((Status::InvalidEof, zero));
    }
    let mut content = body[..len - 2].to_vec();
    match key {
        RequestKey::None | RequestKey::Aes128 { .. } => {
            let mut an = [0u8; 16];
            if let RequestKey::Aes128 { an: k, iv } = key {
                crypto::aes128_ctr(k, iv, &mut content);
                an = *k;
            }
            if len < 18 {
                return Err((Status::InvalidPacketLength, zero));
            }
            let mut challenge = [0u8; 16];
            for (c, (b, k)) in challenge.iter_mut().zip(content.iter().zip(an)) {
                *c = b ^ k;
            }
            if crypto::crc32(&content[..12]).to_be_bytes() != content[12..16] {
                return Err((Status::InvalidCrc, challenge));
            }
            Ok((challenge, content[16..].to_vec()))
        }
        RequestKey::Aes256 { key, iv } => {
            if len < 34 {
                return Err((Status::InvalidPacketLength, zero));
            }
            let (ct, tag) = content.split_at(len - 34);
            if crypto::hmac_sha256(key, ct)[..] != *tag {
                return Err((Status::InvalidHmac, zero));
            }
            let mut clear = ct.to_vec();
            crypto::aes256_ctr(key, iv, &mut clear);
            Ok((zero, clear))
        }
    }
}

/// Checks a response's framing and header against what the model expects and returns
/// the command's output, decrypted (and, for the 48-byte layout, authenticated) with
/// the request's key.
pub fn check_response(
    response: &[u8],
    expected: &Answer,
    elapsed: u32,
    random: &[u8; RANDOM_LEN],
) -> Vec<u8> {
    let reply = &expected.reply;
    let hlen = reply.header_len;
    assert!(hlen == SHORT_HEADER_LEN || hlen == LONG_HEADER_LEN);
    assert!(response.len() >= hlen, "response shorter than its header");
    let h = &response[..hlen];
    assert_eq!(h[0], RAIDA_ID, "byte 0 is the raida id");
    assert_eq!(h[1], 0);
    assert!(
        Status::from_code(h[2]).is_some(),
        "status byte {} is not a known status",
        h[2]
    );
    assert_eq!(h[2], expected.status, "status");
    assert_eq!(
        h[3], reply.group,
        "byte 3 is the group once the rules passed"
    );
    let size = (usize::from(h[9]) << 16) | (usize::from(h[10]) << 8) | usize::from(h[11]);
    assert_eq!(
        size,
        response.len() - hlen,
        "the size field is the body length"
    );
    assert_eq!(h[8], 0);
    if hlen == SHORT_HEADER_LEN {
        assert_eq!(h[4..6], [0, 1]);
        assert_eq!(h[6..8], reply.echo, "echo bytes");
        assert_eq!(be32(h, 12), elapsed, "microseconds");
        assert_eq!(h[16..32], expected.signature, "signature");
    } else {
        assert_eq!(be32(h, 4), elapsed, "microseconds");
        assert_eq!(h[12..16], [0; 4]);
        assert_eq!(h[16], reply.encryption_byte);
        assert_eq!(h[17..22], reply.first_coin);
        assert_eq!(h[22..24], [0, 0]);
        match reply.second_coin {
            Some(second) => {
                assert_eq!(h[24..29], second);
                assert_eq!(h[29..46], random[5..]);
            }
            None => assert_eq!(h[24..46], random[..]),
        }
        assert_eq!(h[46..48], reply.tail);
    }
    if size == 0 {
        return Vec::new();
    }
    let body = &response[hlen..];
    assert!(body.len() >= 3, "a body holds output and the trailer");
    assert_eq!(body[body.len() - 2..], TRAILER, "trailer");
    let mut output = body[..body.len() - 2].to_vec();
    match expected.key {
        RequestKey::None => {}
        RequestKey::Aes128 { an, iv } => crypto::aes128_ctr(&an, &iv, &mut output),
        RequestKey::Aes256 { key, .. } => {
            assert!(
                output.len() > crypto::HMAC_LEN,
                "a 48-byte body carries its HMAC"
            );
            assert_eq!(hlen, LONG_HEADER_LEN);
            let tag = output.split_off(output.len() - crypto::HMAC_LEN);
            assert_eq!(
                crypto::hmac_sha256(&key, &output)[..],
                tag[..],
                "the response HMAC verifies with the request's key"
            );
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&h[24..40]);
            crypto::aes256_ctr(&key, &iv, &mut output);
        }
    }
    output
}

/// The model's answer to `datagram`, the code's `response` to it, and their agreement:
/// status, header, signature and the decrypted output.
pub fn check(datagram: &[u8], response: Option<&[u8]>, elapsed: u32, random: &[u8; RANDOM_LEN]) {
    let expected = answer(datagram);
    match (response, expected) {
        (None, None) => {}
        (Some(response), Some(expected)) => {
            let output = check_response(response, &expected, elapsed, random);
            assert_eq!(output, expected.output, "decrypted output");
        }
        (got, want) => panic!(
            "the codec answered {:?}, the model {:?}",
            got.map(<[u8]>::len),
            want.map(|w| w.status)
        ),
    }
}

/// Where the request at the start of `stream` ends: after the header when the model
/// rejects it, after the declared body when it admits it; `None` before the whole
/// header is in.
pub fn request_end(stream: &[u8]) -> Option<usize> {
    let hlen = header_len(*stream.get(PREFIX_LEN - 1)?);
    let h = stream.get(..hlen)?;
    Some(match header(h).1 {
        Ok(_) => hlen + declared_body_len(h),
        Err(_) => hlen,
    })
}
