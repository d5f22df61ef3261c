//! The faulty-request builder of the `request` target (and of the seed corpora).
//!
//! A [`RequestCase`] names an encryption type, a [`Fault`], a command, the key coins,
//! the request's free bytes and [`Mutation`]s to make after building. The request is
//! built by the client's builder, [`raida_client::Request`]: a wrong raida id, shard,
//! group, command or coin id is a plain field of the request, an unknown key is a coin
//! or locker the fuzzed store does not hold, and routing, split id, an invalid
//! encryption type, a bad CRC or HMAC, a bad trailer, a truncated or missing body and a
//! wrong declared length are the client's [`Faults`](raida_client::Faults). What
//! those cannot express (a 1-byte body) is a [`Mutation`] of the built bytes.

use arbitrary::Arbitrary;
use raida_client::{BuildError, Coin, Expect, Keys, Request};
use raida_core::codec::{header_len, Encryption, RANDOM_LEN};
use raida_core::keys::An;
use raida_core::Status;

use crate::model;
use crate::world::{COINS, COIN_ID, LOCKER, MAX_BODY_SIZE, MIRROR, RAIDA_ID};

/// A coin the fuzzed store does not hold (`Fault::UnknownKey`).
pub const UNKNOWN_COIN: (i8, u32, An) = (2, 999, [0; 16]);
/// A locker the fuzzed store does not hold: its 5-byte prefix is not [`LOCKER`]'s.
pub const UNKNOWN_LOCKER: An = *b"XXXXXno-such-lkr";

/// A deliberate fault the request builder puts in (selector `fault % 16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A valid request: 250.
    None,
    /// Byte 0 = 2: 255.
    Routing,
    /// Byte 1 = 1: 2.
    Split,
    /// Byte 2 = another raida: 3.
    Raida,
    /// Byte 3 = 4: 4.
    Shard,
    /// Byte 4 = 16: 5.
    Group,
    /// (0, 9): 6.
    Command,
    /// Another coin id: 7.
    CoinId,
    /// A coin or locker the store does not hold: 34 (types 1, 2), 25 (4, 5).
    UnknownKey,
    /// A wrong CRC (types 0, 1, 2: 37) or HMAC (4, 5: 204).
    Integrity,
    /// The body does not end with the trailer: 33.
    Trailer,
    /// The declared length is 5 more than what was sent: 16.
    ShortBody,
    /// The declared length is over `max_body_size`: 16.
    TooLong,
    /// A 1-byte body: 16.
    OneByte,
    /// A body with a trailer but too short for its type: 16.
    Truncated,
    /// No body: 250 for types 0, 1, 2 (empty payload), 16 for 4, 5.
    Empty,
}

impl Fault {
    /// Every fault, in selector order.
    pub const ALL: [Fault; 16] = [
        Fault::None,
        Fault::Routing,
        Fault::Split,
        Fault::Raida,
        Fault::Shard,
        Fault::Group,
        Fault::Command,
        Fault::CoinId,
        Fault::UnknownKey,
        Fault::Integrity,
        Fault::Trailer,
        Fault::ShortBody,
        Fault::TooLong,
        Fault::OneByte,
        Fault::Truncated,
        Fault::Empty,
    ];

    /// The fault a selector byte names.
    pub fn from_selector(b: u8) -> Fault {
        Fault::ALL[usize::from(b) % Fault::ALL.len()]
    }
}

/// A change made to the built request's bytes, after it was built.
#[derive(Arbitrary, Clone, Debug)]
pub enum Mutation {
    /// Sets the byte at `at` (modulo the length).
    SetByte {
        /// Position.
        at: u16,
        /// New value.
        value: u8,
    },
    /// Flips one bit of the byte at `at` (modulo the length).
    FlipBit {
        /// Position.
        at: u16,
        /// Bit index (modulo 8).
        bit: u8,
    },
    /// Cuts the request to `len` bytes (when shorter).
    Truncate {
        /// New length.
        len: u16,
    },
    /// Appends bytes after the request.
    Append {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Rewrites the declared body length (bytes 22..23 or 17..18).
    Declare {
        /// New declared length.
        len: u16,
    },
}

impl Mutation {
    /// Makes the change to the request bytes `r`.
    pub fn apply(&self, r: &mut Vec<u8>) {
        match *self {
            Mutation::SetByte { at, value } => {
                if !r.is_empty() {
                    let i = usize::from(at) % r.len();
                    r[i] = value;
                }
            }
            Mutation::FlipBit { at, bit } => {
                if !r.is_empty() {
                    let i = usize::from(at) % r.len();
                    r[i] ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate { len } => r.truncate(usize::from(len)),
            Mutation::Append { ref bytes } => r.extend_from_slice(bytes),
            Mutation::Declare { len } => {
                if let Some(&enc) = r.get(16) {
                    let at = if enc <= 2 { 22 } else { 17 };
                    if let Some(field) = r.get_mut(at..at + 2) {
                        field.copy_from_slice(&len.to_be_bytes());
                    }
                }
            }
        }
    }
}

/// The structured input of the [`request`](crate::request()) target. The first four fields are selector
/// bytes, so a seed is four chosen bytes followed by anything.
#[derive(Arbitrary, Clone, Debug)]
pub struct RequestCase {
    /// `% 6`: encryption type 0, 1, 2, 4, 5, or an invalid one (3, or 6 and up).
    pub encryption: u8,
    /// `% 16`: the [`Fault`] built in.
    pub fault: u8,
    /// `% 3`: echo, version, [`Mirror`](crate::world::Mirror).
    pub command: u8,
    /// `% 3`: the key coin (index into [`COINS`]); `/ 3 % 3`: type 5's second coin.
    pub coin: u8,
    /// Request bytes 24..47 (types 4, 5) or 24..29 (types 0, 1, 2).
    pub nonce: [u8; 24],
    /// Request bytes 30..31 (types 0, 1, 2) and 46..47 (types 4, 5).
    pub echo: [u8; 2],
    /// The 12 random bytes of the challenge (types 0, 1, 2).
    pub challenge: [u8; 12],
    /// The response's microseconds field.
    pub elapsed: u32,
    /// The response's random bytes.
    pub random: [u8; RANDOM_LEN],
    /// The command payload, in clear.
    pub payload: Vec<u8>,
    /// Changes made after building, in order.
    pub mutations: Vec<Mutation>,
}

/// A request as built, before the case's mutations, with the status the builder
/// intends.
#[derive(Clone, Debug)]
pub struct Built {
    /// The request bytes (the client's, and for [`Fault::OneByte`] cut to a 1-byte
    /// body).
    pub bytes: Vec<u8>,
    /// The status the request must get (before mutations).
    pub status: Status,
    /// What the client's response reader accepts, when `bytes` are exactly what the
    /// client built for a request it can read the answer to (a valid encryption type,
    /// a body when one was built, no mutation of the fault's own).
    pub expect: Option<Expect>,
}

impl RequestCase {
    /// The encryption type byte this case sends.
    pub fn encryption_byte(&self) -> u8 {
        match self.encryption % 6 {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 4,
            4 => 5,
            _ if self.coin % 2 == 0 => 3,
            _ => 6u8.saturating_add(self.coin),
        }
    }

    /// The fault this case builds in.
    pub fn fault(&self) -> Fault {
        Fault::from_selector(self.fault)
    }

    /// The key material: the selected coins of [`COINS`] (or [`LOCKER`]), one of them
    /// replaced by [`UNKNOWN_COIN`] (or [`UNKNOWN_LOCKER`]) for [`Fault::UnknownKey`].
    /// An invalid encryption type is sent with a type 4 request's 48-byte header.
    fn keys(&self) -> Keys {
        let unknown = self.fault() == Fault::UnknownKey;
        let enc = self.encryption_byte();
        let mut first = COINS[usize::from(self.coin % 3)];
        let mut second = COINS[usize::from(self.coin / 3 % 3)];
        if unknown {
            if enc == 5 {
                second = UNKNOWN_COIN;
            } else {
                first = UNKNOWN_COIN;
            }
        }
        let coin = |c: (i8, u32, An)| Coin::new(c.0, c.1);
        match enc {
            0 => Keys::None,
            1 => Keys::Coin {
                coin: coin(first),
                an: first.2,
            },
            2 => Keys::Locker {
                an: if unknown { UNKNOWN_LOCKER } else { LOCKER },
            },
            5 => Keys::TwoCoins256 {
                first: coin(first),
                first_an: first.2,
                second: coin(second),
                second_an: second.2,
            },
            _ => Keys::Coin256 {
                coin: coin(first),
                an: first.2,
            },
        }
    }

    /// The request as the client's builder takes it: named fields, and the fault as a
    /// field or as the client's [`Faults`](raida_client::Faults).
    pub fn client_request(&self) -> Request {
        let (group, command) = match self.command % 3 {
            0 => (0, 0),
            1 => (0, 1),
            _ => MIRROR,
        };
        let mut r = Request::new(RAIDA_ID, group, command, self.keys());
        r.coin_id = COIN_ID;
        r.payload.clone_from(&self.payload);
        r.echo = self.echo;
        r.nonce = self.nonce;
        r.challenge = self.challenge;
        let enc = self.encryption_byte();
        if Encryption::from_byte(enc).is_none() {
            r.faults.encryption_byte = Some(enc);
        }
        let aes256 = r.encryption().is_aes256();
        let f = &mut r.faults;
        match self.fault() {
            Fault::None | Fault::UnknownKey => {}
            Fault::Routing => f.routing = Some(2),
            Fault::Split => f.split_id = Some(1),
            Fault::Integrity if aes256 => f.bad_hmac = true,
            Fault::Integrity => f.bad_crc = true,
            Fault::Trailer => f.bad_trailer = true,
            Fault::ShortBody => {
                // Five bytes more than the well-formed body that is sent.
                let declared = r.body_len() + 5;
                r.faults.declared_body_len = Some(u16::try_from(declared).unwrap_or(u16::MAX));
            }
            Fault::TooLong => {
                f.declared_body_len = u16::try_from(MAX_BODY_SIZE + 1).ok();
            }
            // Two bytes `3E 3E` declared as one; `build` cuts the second.
            Fault::OneByte => {
                f.truncate_body = Some(0);
                f.declared_body_len = Some(1);
            }
            Fault::Truncated => f.truncate_body = Some(2),
            Fault::Empty => f.no_body = true,
            Fault::Raida => r.raida_id = RAIDA_ID.wrapping_add(1),
            Fault::Shard => r.shard = 4,
            Fault::Group => r.group = 16,
            Fault::Command => (r.group, r.command) = (0, 9),
            Fault::CoinId => r.coin_id = COIN_ID ^ 0x8000,
        }
        r
    }

    /// The mutations the fault itself needs after the client built the request.
    fn fault_mutations(&self, built_len: usize) -> Vec<Mutation> {
        match self.fault() {
            // The body `3E 3E` declared as 1 byte, cut to that byte.
            Fault::OneByte => vec![Mutation::Truncate {
                len: u16::try_from(built_len.saturating_sub(1)).unwrap_or(u16::MAX),
            }],
            _ => Vec::new(),
        }
    }

    /// Builds the request bytes with the client's builder, with the fault put in.
    /// Fails only when the payload does not fit the 2-byte body length.
    pub fn build(&self) -> Result<Built, BuildError> {
        let request = self.client_request();
        let client = request.build()?;
        let mut bytes = client.bytes().to_vec();
        let fixes = self.fault_mutations(bytes.len());
        for m in &fixes {
            m.apply(&mut bytes);
        }
        let enc = self.encryption_byte();
        let fault = self.fault();
        let hlen = header_len(enc);
        let declared = bytes.get(..hlen).map_or(0, model::declared_body_len);
        let aes256 = enc == 4 || enc == 5;
        let status = match fault {
            Fault::Routing => Status::InvalidRouting,
            Fault::Split => Status::InvalidSplitId,
            Fault::Raida => Status::InvalidRaidaId,
            Fault::Shard => Status::InvalidShardId,
            Fault::Group => Status::InvalidCommandGroup,
            Fault::Command => Status::InvalidCommand,
            Fault::CoinId => Status::InvalidCoinId,
            _ if !matches!(enc, 0 | 1 | 2 | 4 | 5) => Status::InvalidEncryptionCode,
            Fault::UnknownKey if enc == 1 || enc == 2 => Status::InvalidEncryption,
            Fault::UnknownKey if aes256 => Status::EncryptionCoinNotFound,
            _ if declared > MAX_BODY_SIZE => Status::InvalidPacketLength,
            Fault::Integrity if aes256 => Status::InvalidHmac,
            Fault::Integrity => Status::InvalidCrc,
            Fault::Trailer => Status::InvalidEof,
            Fault::ShortBody | Fault::TooLong | Fault::OneByte | Fault::Truncated => {
                Status::InvalidPacketLength
            }
            Fault::Empty if aes256 => Status::InvalidPacketLength,
            Fault::None | Fault::UnknownKey | Fault::Empty => Status::Success,
        };
        // The client's reader expects the keys' type in a 48-byte response and the
        // challenge in the signature of a success (a body-less request gets zeros).
        let readable =
            request.faults.encryption_byte.is_none() && fixes.is_empty() && !request.faults.no_body;
        Ok(Built {
            bytes,
            status,
            expect: readable.then(|| client.expect().clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use raida_core::codec::{answer_datagram, SHORT_HEADER_LEN};
    use raida_core::Timestamp;

    use super::*;
    use crate::world::{commands, keys, rules, RANDOM};

    fn case(encryption: u8, fault: Fault, command: u8) -> RequestCase {
        RequestCase {
            encryption,
            fault: Fault::ALL
                .iter()
                .position(|f| *f == fault)
                .map_or(0, |i| i as u8),
            command,
            coin: 4,
            nonce: [7; 24],
            echo: [0xAB, 0xCD],
            challenge: [9; 12],
            elapsed: 0,
            random: [0x5A; RANDOM_LEN],
            payload: b"payload".to_vec(),
            mutations: Vec::new(),
        }
    }

    fn answer(bytes: &[u8]) -> Vec<u8> {
        let store = keys();
        let rules = rules();
        answer_datagram(
            bytes,
            &rules,
            &commands(),
            &store,
            Timestamp::ZERO,
            0,
            &RANDOM,
        )
        .expect("a whole request is answered")
    }

    /// Every fault of every encryption type and command gets the status the builder
    /// intends, from the server's codec and from the model alike.
    #[test]
    fn every_fault_gets_its_status() {
        for encryption in 0..6 {
            for fault in Fault::ALL {
                for command in 0..3 {
                    let case = case(encryption, fault, command);
                    let built = case.build().expect("builds");
                    let response = answer(&built.bytes);
                    let name = format!("type {} {fault:?}", case.encryption_byte());
                    assert_eq!(response[2], built.status.code(), "{name}");
                    let model = model::answer(&built.bytes).expect("the model answers");
                    assert_eq!(model.status, built.status.code(), "{name}: the model");
                }
            }
        }
    }

    /// The fault that is no client fault: a body of one byte, declared as one.
    #[test]
    fn one_byte_body_is_one_byte() {
        for encryption in 0..6 {
            let built = case(encryption, Fault::OneByte, 0).build().expect("builds");
            let hlen = header_len(built.bytes[16]);
            assert_eq!(built.bytes.len(), hlen + 1);
            assert_eq!(built.bytes[hlen], 0x3E);
            assert_eq!(model::declared_body_len(&built.bytes[..hlen]), 1);
            assert!(
                built.expect.is_none(),
                "a mutated request is not the client's"
            );
        }
    }

    /// An unknown key is a coin or locker the store does not hold, named by the
    /// client's builder in the header bytes of its type.
    #[test]
    fn unknown_keys_are_named_in_the_header() {
        let built = |e| case(e, Fault::UnknownKey, 0).build().expect("builds").bytes;
        let coin = [2, 0, 0, 3, 0xE7]; // (2, 999)
        assert_eq!(built(1)[17..22], coin);
        assert_eq!(built(2)[17..22], UNKNOWN_LOCKER[..5]);
        assert_eq!(built(3)[19..24], coin);
        assert_eq!(built(4)[24..29], coin);
        assert_eq!(built(0).len(), SHORT_HEADER_LEN + 16 + 7 + 2);
    }

    /// The client's reader accepts the server's answer to every request it built
    /// unchanged, and decrypts the mirrored payload.
    #[test]
    fn the_client_reads_its_answers() {
        for encryption in 0..5 {
            let built = case(encryption, Fault::None, 2).build().expect("builds");
            let expect = built.expect.expect("readable");
            let mut output = Vec::new();
            expect
                .check_into(&answer(&built.bytes), &mut output)
                .expect("the client accepts the response");
            assert_eq!(output, b"payload");
        }
    }
}
