//! What a response header carries from its request (PROTOCOL.md sections 5 and 6).

use crate::header::{RequestHeader, LONG_HEADER_LEN};

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
    pub fn early(h: &RequestHeader) -> ReplyContext {
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
    pub fn coins_parsed(&mut self, h: &RequestHeader) {
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
