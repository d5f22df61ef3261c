//! The simulated clients' requests, built with the client library's builder
//! ([`raida_client::Request`], its [`raida_client::Faults`] for the malformed ones), and a seeded
//! generator of them: valid in most draws, invalid in a way drawn from the seed in the
//! rest, of every encryption type, for echo, version and the witnesses.

use raida_client::{BuiltRequest, Coin, Keys, Request};
use raida_core::keys::An;

use crate::rng::Rng;
use crate::server::{COINS, COIN_ID, LOCKER, RAIDA_ID, UNKNOWN_COIN};
use crate::witness;

/// A locker no store holds (its prefix, `nokey`, names none).
pub const UNKNOWN_LOCKER: An = *b"nokey-locker-AN!";
/// The AN a client uses for a coin the server does not hold.
const UNKNOWN_AN: An = [0x77; 16];

/// A request as a client sends it: its named fields and what the client library built
/// from them (the bytes, and what a valid response must look like).
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// The named fields.
    pub request: Request,
    /// The bytes and the response's verifier.
    pub built: BuiltRequest,
}

impl ClientRequest {
    /// Builds `request`.
    pub fn new(request: Request) -> ClientRequest {
        // The simulator's payloads are at most a few hundred bytes, far below the
        // 65,535 the body length field holds: building cannot fail.
        let built = request
            .build()
            .expect("a simulated request's body fits its length field");
        ClientRequest { request, built }
    }

    /// The bytes on the wire.
    pub fn bytes(&self) -> &[u8] {
        self.built.bytes()
    }
}

/// Coin `i` of the server's store.
fn coin(i: usize) -> (Coin, An) {
    let (d, s, an) = COINS[i % COINS.len()];
    (Coin::new(d, s), an)
}

/// The keys of `encryption` type that name the server's coins `first` and `second`
/// (type 2: its locker).
pub fn keys(encryption: u8, first: usize, second: usize) -> Keys {
    let (coin, an) = coin(first);
    match encryption {
        1 => Keys::Coin { coin, an },
        2 => Keys::Locker { an: LOCKER },
        4 => Keys::Coin256 { coin, an },
        5 => {
            let (second, second_an) = self::coin(second);
            Keys::TwoCoins256 {
                first: coin,
                first_an: an,
                second,
                second_an,
            }
        }
        _ => Keys::None,
    }
}

/// `keys` with the coin (or locker) the server does not hold; type 5: the `second`
/// coin when asked, else the first.
fn unknown(keys: &Keys, second: bool) -> Keys {
    let coin = Coin::new(UNKNOWN_COIN.0, UNKNOWN_COIN.1);
    match keys.clone() {
        Keys::None => Keys::None,
        Keys::Coin { .. } => Keys::Coin {
            coin,
            an: UNKNOWN_AN,
        },
        Keys::Locker { .. } => Keys::Locker { an: UNKNOWN_LOCKER },
        Keys::Coin256 { .. } => Keys::Coin256 {
            coin,
            an: UNKNOWN_AN,
        },
        Keys::TwoCoins256 {
            first,
            first_an,
            second: s,
            second_an,
        } => {
            if second {
                Keys::TwoCoins256 {
                    first,
                    first_an,
                    second: coin,
                    second_an: UNKNOWN_AN,
                }
            } else {
                Keys::TwoCoins256 {
                    first: coin,
                    first_an: UNKNOWN_AN,
                    second: s,
                    second_an,
                }
            }
        }
    }
}

/// A well-formed request for (`group`, `command`) of `encryption` type to the
/// simulated server, keyed by its first coins, with fixed nonce, echo and challenge.
pub fn for_command(group: u8, command: u8, encryption: u8) -> Request {
    let mut r = Request::new(RAIDA_ID, group, command, keys(encryption, 0, 1));
    r.coin_id = COIN_ID;
    r.nonce = [0x11; 24];
    r.echo = [0xAB, 0xCD];
    r.challenge = [0x5C; 12];
    r
}

/// A well-formed echo request of `encryption` type.
pub fn echo(encryption: u8) -> Request {
    for_command(0, 0, encryption)
}

/// A fault that keeps the command from running: the header is refused, or the body
/// fails its checks before the command sees it.
pub fn fault_before_the_command(rng: &mut Rng, r: &mut Request, encryption: u8) {
    match rng.below(6) {
        0 => r.faults.split_id = Some(1 + rng.below(254) as u8),
        1 => r.raida_id = RAIDA_ID ^ (1 + rng.below(200) as u8),
        2 => r.coin_id = COIN_ID ^ (1 + rng.below(1000) as u16),
        3 if encryption != 0 => {
            let second = rng.chance(500);
            r.keys = unknown(&r.keys, second);
        }
        4 => r.faults.bad_trailer = true,
        _ if encryption <= 2 => r.faults.bad_crc = true,
        _ => r.faults.bad_hmac = true,
    }
}

/// A seeded request: valid in most draws, invalid in a way drawn from `rng` in
/// `invalid_pm` per mille of them, of every encryption type; echo, version and the
/// two witnesses in equal shares.
pub fn generate(rng: &mut Rng, invalid_pm: u32, max_payload: usize) -> Request {
    let encryption = rng.pick(&[0u8, 0, 1, 2, 4, 5]).unwrap_or(0);
    let (group, command) = match rng.below(4) {
        0 => (0, 0),
        1 => (0, 1),
        2 => (witness::GROUP, witness::ON_WORKER),
        _ => (witness::GROUP, witness::INLINE),
    };
    let first = rng.below(COINS.len() as u64) as usize;
    let second = rng.below(COINS.len() as u64) as usize;
    let mut r = Request::new(RAIDA_ID, group, command, keys(encryption, first, second));
    r.coin_id = COIN_ID;
    r.shard = rng.below(4) as u8;
    rng.fill(&mut r.presentation);
    rng.fill(&mut r.nonce);
    rng.fill(&mut r.echo);
    rng.fill(&mut r.challenge);
    r.payload = vec![0; rng.range_usize(0, max_payload)];
    rng.fill(&mut r.payload);
    if !rng.chance(invalid_pm) {
        return r;
    }
    let f = &mut r.faults;
    match rng.below(16) {
        0 => f.routing = Some(rng.pick(&[0u8, 2, 255]).unwrap_or(0)),
        1 => f.split_id = Some(1 + rng.below(254) as u8),
        2 => r.raida_id = RAIDA_ID ^ (1 + rng.below(200) as u8),
        3 => r.group = 16 + rng.below(200) as u8,
        4 => r.shard = 4 + rng.below(200) as u8,
        // Registered are (0, 0), (0, 1), (15, 2) and (15, 3).
        5 => r.command = 4 + rng.below(200) as u8,
        6 => r.coin_id = COIN_ID ^ (1 + rng.below(1000) as u16),
        7 => f.encryption_byte = Some(rng.pick(&[3u8, 6, 9, 200, 255]).unwrap_or(3)),
        8 => {
            let second = rng.chance(500);
            r.keys = unknown(&r.keys, second);
        }
        9 => f.bad_trailer = true,
        10 => {
            if encryption <= 2 {
                f.bad_crc = true;
            } else {
                f.bad_hmac = true;
            }
        }
        11 => f.truncate_body = Some(rng.range_usize(0, 33)),
        12 => f.no_body = true,
        13 => f.declared_body_len = Some(rng.range(0, 2000) as u16),
        14 => f.declared_body_len = Some(u16::MAX - rng.below(100) as u16),
        _ => {
            // Several faults at once: the first failing rule must win.
            f.split_id = Some(1);
            f.bad_trailer = true;
            r.shard = 9;
        }
    }
    r
}
