//! Requests built from named fields (PROTOCOL.md sections 2 to 4) and a seeded
//! generator of valid and invalid requests of every encryption type.

use raida_client::crypto;
use raida_core::keys::An;

use crate::rng::Rng;
use crate::server::{COINS, COIN_ID, LOCKER, RAIDA_ID, UNKNOWN_COIN};

fn coin_an(coin: (i8, u32)) -> An {
    COINS
        .iter()
        .find(|(d, s, _)| (*d, *s) == coin)
        .map_or([0x77; 16], |(_, _, an)| *an)
}

/// How a request's body is spoiled, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoil {
    /// A correct body.
    None,
    /// The trailer is not `3E 3E` (33).
    Trailer,
    /// The challenge's CRC is wrong (37, types 0..2).
    Crc,
    /// The HMAC tag is wrong (204, types 4, 5).
    Hmac,
    /// The body is cut to this many bytes before the trailer (16).
    Short(usize),
    /// No body at all (declared length 0).
    Empty,
}

/// A request's named fields.
#[derive(Clone, Debug)]
pub struct Req {
    /// Byte 0 (must be 1).
    pub routing: u8,
    /// Byte 1 (must be 0).
    pub split: u8,
    /// Byte 2 (must be the raida id).
    pub raida: u8,
    /// Byte 3 (<= 3).
    pub shard: u8,
    /// Byte 4 (<= 15).
    pub group: u8,
    /// Byte 5.
    pub command: u8,
    /// Bytes 6..7.
    pub coin_id: u16,
    /// Byte 16.
    pub encryption: u8,
    /// Nonce bytes (types 1, 2: the first 6 go to bytes 24..29; types 4, 5: 24..47).
    pub nonce: [u8; 24],
    /// Bytes 30..31 of a 32-byte header.
    pub echo: [u8; 2],
    /// The key coin (types 1, 4, 5).
    pub coin: (i8, u32),
    /// The second coin (type 5; written into nonce bytes 24..28).
    pub coin2: (i8, u32),
    /// Type 2: whether the locker prefix names the known locker.
    pub known_locker: bool,
    /// The first 12 challenge bytes (the CRC follows).
    pub challenge: [u8; 12],
    /// The command payload.
    pub payload: Vec<u8>,
    /// How the body is spoiled.
    pub spoil: Spoil,
    /// Override of the declared body length.
    pub declared: Option<u16>,
}

impl Req {
    /// A valid echo request of `encryption` type.
    pub fn echo(encryption: u8) -> Req {
        Req {
            routing: 1,
            split: 0,
            raida: RAIDA_ID,
            shard: 0,
            group: 0,
            command: 0,
            coin_id: COIN_ID,
            encryption,
            nonce: [0x11; 24],
            echo: [0xAB, 0xCD],
            coin: (COINS[0].0, COINS[0].1),
            coin2: (COINS[1].0, COINS[1].1),
            known_locker: true,
            challenge: [0x5C; 12],
            payload: Vec::new(),
            spoil: Spoil::None,
            declared: None,
        }
    }

    /// The request bytes, as a client builds them.
    pub fn bytes(&self) -> Vec<u8> {
        let long = self.encryption > 2;
        let mut h = vec![0u8; if long { 48 } else { 32 }];
        h[0] = self.routing;
        h[1] = self.split;
        h[2] = self.raida;
        h[3] = self.shard;
        h[4] = self.group;
        h[5] = self.command;
        h[6..8].copy_from_slice(&self.coin_id.to_be_bytes());
        h[16] = self.encryption;
        let mut nonce = self.nonce;
        if self.encryption == 5 {
            nonce[0] = self.coin2.0 as u8;
            nonce[1..5].copy_from_slice(&self.coin2.1.to_be_bytes());
        }
        if long {
            h[19] = self.coin.0 as u8;
            h[20..24].copy_from_slice(&self.coin.1.to_be_bytes());
            h[24..48].copy_from_slice(&nonce);
        } else {
            if self.encryption == 2 {
                let prefix = if self.known_locker {
                    [LOCKER[0], LOCKER[1], LOCKER[2], LOCKER[3], LOCKER[4]]
                } else {
                    *b"nokey"
                };
                h[17..22].copy_from_slice(&prefix);
            } else {
                h[17] = self.coin.0 as u8;
                h[18..22].copy_from_slice(&self.coin.1.to_be_bytes());
            }
            // Bytes 24..31 are the nonce and 30..31 also the echo bytes: one field.
            h[24..30].copy_from_slice(&nonce[..6]);
            h[30..32].copy_from_slice(&self.echo);
        }
        let an = match self.encryption {
            2 if self.known_locker => LOCKER,
            _ => coin_an(self.coin),
        };
        let mut body = Vec::new();
        match self.encryption {
            0..=2 => {
                let mut challenge = [0u8; 16];
                challenge[..12].copy_from_slice(&self.challenge);
                let mut crc = crypto::crc32(&challenge[..12]).to_be_bytes();
                if self.spoil == Spoil::Crc {
                    crc[0] ^= 0x01;
                }
                challenge[12..].copy_from_slice(&crc);
                body.extend_from_slice(&challenge);
                body.extend_from_slice(&self.payload);
                if self.encryption != 0 {
                    let mut iv = [0u8; 16];
                    iv[..8].copy_from_slice(&h[24..32]);
                    crypto::aes128_ctr(&an, &iv, &mut body);
                }
            }
            _ => {
                let key = if self.encryption == 5 {
                    crypto::sha256(&[&an, &coin_an(self.coin2)])
                } else {
                    crypto::sha256(&[&an])
                };
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&h[24..40]);
                let mut ct = self.payload.clone();
                crypto::aes256_ctr(&key, &iv, &mut ct);
                let mut mac = crypto::hmac_sha256(&key, &ct);
                if self.spoil == Spoil::Hmac {
                    mac[31] ^= 0x80;
                }
                body.extend_from_slice(&ct);
                body.extend_from_slice(&mac);
            }
        }
        match self.spoil {
            Spoil::Short(n) => body.truncate(n),
            Spoil::Empty => body.clear(),
            _ => {}
        }
        if self.spoil != Spoil::Empty {
            if self.spoil == Spoil::Trailer {
                body.extend_from_slice(&[0x3E, 0x3F]);
            } else {
                body.extend_from_slice(&[0x3E, 0x3E]);
            }
        }
        let len = self
            .declared
            .unwrap_or(u16::try_from(body.len()).unwrap_or(u16::MAX))
            .to_be_bytes();
        if long {
            h[17..19].copy_from_slice(&len);
        } else {
            h[22..24].copy_from_slice(&len);
        }
        h.extend_from_slice(&body);
        h
    }

    /// A seeded request: valid in most draws, invalid in a way drawn from `rng` in
    /// `invalid_pm` per mille of them, of every encryption type.
    pub fn generate(rng: &mut Rng, invalid_pm: u32, max_payload: usize) -> Req {
        let encryption = rng.pick(&[0u8, 0, 1, 2, 4, 5]).unwrap_or(0);
        let mut r = Req::echo(encryption);
        r.command = if rng.chance(500) { 1 } else { 0 };
        rng.fill(&mut r.nonce);
        rng.fill(&mut r.echo);
        rng.fill(&mut r.challenge);
        let c = rng.below(COINS.len() as u64) as usize;
        r.coin = (COINS[c].0, COINS[c].1);
        let c2 = rng.below(COINS.len() as u64) as usize;
        r.coin2 = (COINS[c2].0, COINS[c2].1);
        r.shard = rng.below(4) as u8;
        let n = rng.range_usize(0, max_payload);
        r.payload = vec![0; n];
        rng.fill(&mut r.payload);
        if !rng.chance(invalid_pm) {
            return r;
        }
        match rng.below(16) {
            0 => r.routing = rng.pick(&[0u8, 2, 255]).unwrap_or(0),
            1 => r.split = 1 + rng.below(254) as u8,
            2 => r.raida = RAIDA_ID ^ (1 + rng.below(200) as u8),
            3 => r.group = 16 + rng.below(200) as u8,
            4 => r.shard = 4 + rng.below(200) as u8,
            5 => r.command = 2 + rng.below(200) as u8,
            6 => r.coin_id = COIN_ID ^ (1 + rng.below(1000) as u16),
            7 => r.encryption = rng.pick(&[3u8, 6, 9, 200, 255]).unwrap_or(3),
            8 => {
                if encryption == 2 {
                    r.known_locker = false;
                } else if rng.chance(500) && encryption == 5 {
                    r.coin2 = UNKNOWN_COIN;
                } else {
                    r.coin = UNKNOWN_COIN;
                }
            }
            9 => r.spoil = Spoil::Trailer,
            10 => {
                r.spoil = if encryption <= 2 {
                    Spoil::Crc
                } else {
                    Spoil::Hmac
                }
            }
            11 => r.spoil = Spoil::Short(rng.range_usize(0, 33)),
            12 => r.spoil = Spoil::Empty,
            13 => r.declared = Some(rng.range(0, 2000) as u16),
            14 => r.declared = Some(u16::MAX - rng.below(100) as u16),
            _ => {
                // Several faults at once: the first failing rule must win.
                r.split = 1;
                r.shard = 9;
                r.spoil = Spoil::Trailer;
            }
        }
        r
    }
}
