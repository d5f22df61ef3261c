//! The faulty-request builder of the `request` target (and of the seed corpora).
//!
//! A [`RequestCase`] names an encryption type, a [`Fault`], a command, the key coins,
//! the request's free bytes and [`Mutation`]s to make after building.

use arbitrary::Arbitrary;
use raida_client::crypto;
use raida_core::codec::{LONG_HEADER_LEN, RANDOM_LEN, SHORT_HEADER_LEN, TRAILER};
use raida_core::Status;

use crate::world::{COINS, COIN_ID, LOCKER, MAX_BODY_SIZE, MIRROR, RAIDA_ID};

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

/// The structured input of the [`request`] target. The first four fields are selector
/// bytes, so a seed is four chosen bytes followed by anything.
#[derive(Arbitrary, Clone, Debug)]
pub struct RequestCase {
    /// `% 6`: encryption type 0, 1, 2, 4, 5, or an invalid one (3, or 6 and up).
    pub encryption: u8,
    /// `% 16`: the [`Fault`] built in.
    pub fault: u8,
    /// `% 3`: echo, version, [`Mirror`].
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

/// A request as built, before mutations, with the status the builder intends.
#[derive(Clone, Debug)]
pub struct Built {
    /// The request bytes.
    pub bytes: Vec<u8>,
    /// The status the request must get (before mutations).
    pub status: Status,
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

    /// Builds the request bytes as a client would, with the fault put in.
    pub fn build(&self) -> Built {
        let enc = self.encryption_byte();
        let fault = self.fault();
        let long = enc > 2;
        let mut h = vec![
            0u8;
            if long {
                LONG_HEADER_LEN
            } else {
                SHORT_HEADER_LEN
            }
        ];
        let (group, command) = match self.command % 3 {
            0 => (0, 0),
            1 => (0, 1),
            _ => MIRROR,
        };
        h[0] = 1;
        h[2] = RAIDA_ID;
        h[4] = group;
        h[5] = command;
        h[6..8].copy_from_slice(&COIN_ID.to_be_bytes());
        h[16] = enc;
        let coin = COINS[usize::from(self.coin % 3)];
        let mut second = COINS[usize::from(self.coin / 3 % 3)];
        let unknown = fault == Fault::UnknownKey;
        let mut first = coin;
        if unknown {
            if enc == 5 {
                second = (2, 999, [0; 16]);
            } else {
                first = (2, 999, [0; 16]);
            }
        }
        if long {
            h[19] = first.0 as u8;
            h[20..24].copy_from_slice(&first.1.to_be_bytes());
            h[24..48].copy_from_slice(&self.nonce);
            h[46..48].copy_from_slice(&self.echo);
            if enc == 5 {
                h[24] = second.0 as u8;
                h[25..29].copy_from_slice(&second.1.to_be_bytes());
            }
        } else {
            if enc == 2 {
                let prefix: &[u8] = if unknown { b"XXXXX" } else { &LOCKER[..5] };
                h[17..22].copy_from_slice(prefix);
            } else {
                h[17] = first.0 as u8;
                h[18..22].copy_from_slice(&first.1.to_be_bytes());
            }
            h[24..30].copy_from_slice(&self.nonce[..6]);
            h[30..32].copy_from_slice(&self.echo);
        }
        let an = if enc == 2 { LOCKER } else { first.2 };
        let mut body = Vec::new();
        match enc {
            0..=2 => {
                let mut challenge = [0u8; 16];
                challenge[..12].copy_from_slice(&self.challenge);
                let mut crc = crypto::crc32(&self.challenge).to_be_bytes();
                if fault == Fault::Integrity {
                    crc[3] ^= 1;
                }
                challenge[12..].copy_from_slice(&crc);
                body.extend_from_slice(&challenge);
                body.extend_from_slice(&self.payload);
                if enc != 0 {
                    let mut iv = [0u8; 16];
                    iv[..8].copy_from_slice(&h[24..32]);
                    crypto::aes128_ctr(&an, &iv, &mut body);
                }
            }
            _ => {
                let key = if enc == 5 {
                    crypto::sha256(&[&first.2, &second.2])
                } else {
                    crypto::sha256(&[&first.2])
                };
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&h[24..40]);
                let mut ct = self.payload.clone();
                crypto::aes256_ctr(&key, &iv, &mut ct);
                let mut mac = crypto::hmac_sha256(&key, &ct);
                if fault == Fault::Integrity {
                    mac[0] ^= 1;
                }
                body.extend_from_slice(&ct);
                body.extend_from_slice(&mac);
            }
        }
        body.extend_from_slice(&TRAILER);
        match fault {
            Fault::Trailer => {
                let n = body.len();
                body[n - 1] = 0x3F;
            }
            Fault::OneByte => body = vec![0x3E],
            Fault::Truncated => body = vec![0x11, 0x22, 0x3E, 0x3E],
            Fault::Empty => body.clear(),
            _ => {}
        }
        let mut declared = body.len();
        if fault == Fault::ShortBody {
            declared += 5;
        }
        if fault == Fault::TooLong {
            declared = MAX_BODY_SIZE + 1;
        }
        let declared16 = u16::try_from(declared).unwrap_or(u16::MAX);
        let at = if long { 17 } else { 22 };
        h[at..at + 2].copy_from_slice(&declared16.to_be_bytes());
        // Header faults last, so they win over everything else.
        match fault {
            Fault::Routing => h[0] = 2,
            Fault::Split => h[1] = 1,
            Fault::Raida => h[2] = RAIDA_ID.wrapping_add(1),
            Fault::Shard => h[3] = 4,
            Fault::Group => h[4] = 16,
            Fault::Command => (h[4], h[5]) = (0, 9),
            Fault::CoinId => h[6] ^= 0x80,
            _ => {}
        }
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
        h.extend_from_slice(&body);
        Built { bytes: h, status }
    }
}
