//! The healing commands of PROTOCOL.md section 8b from a wallet's side: the payloads of
//! get_ticket (2/40), find (2/60) and fix (2/80), what their answers say, and the new AN
//! a fixed coin has ([`new_an`]). The whole heal across a network is [`crate::heal`].
//!
//! ```
//! use raida_client::healing::{self, FindValue, TicketAnswer};
//! use raida_client::{Coin, StatusByte};
//!
//! let coins = [(Coin::new(1, 5), [0x11; 16]), (Coin::new(1, 6), [0x22; 16])];
//! assert_eq!(healing::get_ticket_payload(&coins).len(), 2 * 21);
//! // A 243 MIXED answer: coin 0 matched; the ticket follows the bitmap.
//! let answer = healing::ticket_answer(StatusByte(243), &[0b01, 0, 0, 0x12, 0x34], 2);
//! assert_eq!(
//!     answer,
//!     Ok(Some(TicketAnswer { passed: vec![true, false], ticket: Some(0x1234) }))
//! );
//! let values = healing::find_values(StatusByte(211), &[1, 2], 2);
//! assert_eq!(values, Ok(Some(vec![FindValue::An, FindValue::Pan])));
//! ```

use md5::{Digest, Md5};
use raida_wire::{An, StatusByte};

use crate::request::Coin;

/// The command group of the healing commands.
pub const GROUP: u8 = 2;
/// get_ticket: `n x [coin ref, AN]`.
pub const GET_TICKET: u8 = 40;
/// validate_ticket: `raida index (1) + ticket (4)` (what a fixing RAIDA sends).
pub const VALIDATE_TICKET: u8 = 50;
/// find: `n x [coin ref, AN, PAN]`.
pub const FIND: u8 = 60;
/// fix: `n x [coin ref] + PG (16) + 25 x ticket (4)`.
pub const FIX: u8 = 80;
/// A ticket's length: a big-endian u32.
pub const TICKET_LEN: usize = 4;
/// The RAIDAs of a network: the ticket positions of a fix payload.
pub const RAIDA_COUNT: usize = 25;
/// The distinct other RAIDAs whose tickets must vouch for a coin before a fix heals it:
/// the fixing server counts its own vote and needs more than 13 (PROTOCOL.md 8b,
/// "Votes").
pub const VOUCHERS_NEEDED: usize = 13;
/// The tickets of a fix payload: position i is the ticket RAIDA i issued, 0 for none.
pub type Tickets = [u32; RAIDA_COUNT];

/// get_ticket's payload: each coin's reference and AN.
pub fn get_ticket_payload(coins: &[(Coin, An)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * 21);
    for (coin, an) in coins {
        out.extend_from_slice(&coin.to_bytes());
        out.extend_from_slice(an);
    }
    out
}

/// find's payload: each coin's reference, AN and PAN.
pub fn find_payload(coins: &[(Coin, An, An)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * 37);
    for (coin, an, pan) in coins {
        out.extend_from_slice(&coin.to_bytes());
        out.extend_from_slice(an);
        out.extend_from_slice(pan);
    }
    out
}

/// validate_ticket's payload: the claiming RAIDA's index and the ticket.
pub fn validate_ticket_payload(raida: u8, ticket: u32) -> Vec<u8> {
    let mut out = vec![raida];
    out.extend_from_slice(&ticket.to_be_bytes());
    out
}

/// fix's payload: each coin's reference, then the PG, then the 25 tickets (big-endian,
/// position i the ticket RAIDA i issued, 0 for none).
pub fn fix_payload(coins: &[Coin], pg: &An, tickets: &Tickets) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * 5 + 16 + RAIDA_COUNT * TICKET_LEN);
    for coin in coins {
        out.extend_from_slice(&coin.to_bytes());
    }
    out.extend_from_slice(pg);
    for t in tickets {
        out.extend_from_slice(&t.to_be_bytes());
    }
    out
}

/// The AN a fix with `pg` writes for `coin` on RAIDA `raida_id`, which the wallet
/// records once the fix says the coin passed: MD5(raida id (1) || denomination (1, two's
/// complement) || serial (4, BE) || PG (16)) (PROTOCOL.md 8b, "New AN").
pub fn new_an(raida_id: u8, coin: Coin, pg: &An) -> An {
    let mut md5 = Md5::new();
    md5.update([raida_id]);
    md5.update(coin.to_bytes());
    md5.update(pg);
    md5.finalize().into()
}

/// What a fix answer to a request of `coins` coins says, one verdict per coin (`true`:
/// fixed, its record now holds [`new_an`]): `Some` for 241 (every coin) and 242 (none),
/// both without a body, and 243 (a bitmap of ceil(n/8) bytes, bit i % 8 of byte i / 8
/// for coin i); `None` for any other status (16, 39, 40, 160 ...).
pub fn fix_results(
    status: StatusByte,
    body: &[u8],
    coins: usize,
) -> Result<Option<Vec<bool>>, HealingAnswerError> {
    let expect = |expected: usize| {
        if body.len() == expected {
            Ok(())
        } else {
            Err(HealingAnswerError::Body {
                status,
                coins,
                expected,
                got: body.len(),
            })
        }
    };
    match status.0 {
        241 => expect(0).map(|()| Some(vec![true; coins])),
        242 => expect(0).map(|()| Some(vec![false; coins])),
        243 => {
            expect(coins.div_ceil(8))?;
            Ok(Some(
                (0..coins)
                    .map(|i| body[i / 8] & (1 << (i % 8)) != 0)
                    .collect(),
            ))
        }
        _ => Ok(None),
    }
}

/// What a get_ticket answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketAnswer {
    /// Per coin, in request order: whether its AN matched.
    pub passed: Vec<bool>,
    /// The ticket (241 and 243); `None` for 242.
    pub ticket: Option<u32>,
}

/// A get_ticket or find answer whose body does not fit its status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealingAnswerError {
    /// The body is not what the status announces.
    #[error("{status} answer to {coins} coins: expected a body of {expected} bytes, got {got}")]
    Body {
        /// The status.
        status: StatusByte,
        /// The coins the request named.
        coins: usize,
        /// The body length it needs.
        expected: usize,
        /// The body length that came.
        got: usize,
    },
    /// A find value other than 0, 1 or 2.
    #[error("211 answer: value {value} of coin {index} is not 0, 1 or 2")]
    FindValue {
        /// Its coin's place in the request.
        index: usize,
        /// The byte.
        value: u8,
    },
}

/// What a get_ticket answer to a request of `coins` coins says: `Some` for 241 (every
/// AN matched; body = ticket), 242 (none; no body) and 243 (bitmap of ceil(n/8) bytes,
/// then the ticket); `None` for any other status (a refusal such as 16, 39, 40, 42).
pub fn ticket_answer(
    status: StatusByte,
    body: &[u8],
    coins: usize,
) -> Result<Option<TicketAnswer>, HealingAnswerError> {
    let expect = |expected: usize| {
        if body.len() == expected {
            Ok(())
        } else {
            Err(HealingAnswerError::Body {
                status,
                coins,
                expected,
                got: body.len(),
            })
        }
    };
    let ticket = |b: &[u8]| {
        let mut t = [0u8; TICKET_LEN];
        t.copy_from_slice(&b[b.len() - TICKET_LEN..]);
        u32::from_be_bytes(t)
    };
    match status.0 {
        241 => {
            expect(TICKET_LEN)?;
            Ok(Some(TicketAnswer {
                passed: vec![true; coins],
                ticket: Some(ticket(body)),
            }))
        }
        242 => {
            expect(0)?;
            Ok(Some(TicketAnswer {
                passed: vec![false; coins],
                ticket: None,
            }))
        }
        243 => {
            let bitmap = coins.div_ceil(8);
            expect(bitmap + TICKET_LEN)?;
            Ok(Some(TicketAnswer {
                passed: (0..coins)
                    .map(|i| body[i / 8] & (1 << (i % 8)) != 0)
                    .collect(),
                ticket: Some(ticket(body)),
            }))
        }
        _ => Ok(None),
    }
}

/// One coin's find result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FindValue {
    /// The record holds neither (0).
    Neither,
    /// The record holds the AN (1).
    An,
    /// The record holds the PAN (2).
    Pan,
}

impl FindValue {
    /// `an`, `pan` or `neither`.
    pub const fn name(self) -> &'static str {
        match self {
            FindValue::Neither => "neither",
            FindValue::An => "an",
            FindValue::Pan => "pan",
        }
    }
}

/// What a find answer to a request of `coins` coins says, one value per coin: `Some`
/// for 208 (all neither), 209 (all AN), 210 (all PAN), all without a body, and 211 (one
/// byte per coin); `None` for any other status.
pub fn find_values(
    status: StatusByte,
    body: &[u8],
    coins: usize,
) -> Result<Option<Vec<FindValue>>, HealingAnswerError> {
    let all = |v: FindValue| {
        if body.is_empty() {
            Ok(Some(vec![v; coins]))
        } else {
            Err(HealingAnswerError::Body {
                status,
                coins,
                expected: 0,
                got: body.len(),
            })
        }
    };
    match status.0 {
        208 => all(FindValue::Neither),
        209 => all(FindValue::An),
        210 => all(FindValue::Pan),
        211 => {
            if body.len() != coins {
                return Err(HealingAnswerError::Body {
                    status,
                    coins,
                    expected: coins,
                    got: body.len(),
                });
            }
            body.iter()
                .enumerate()
                .map(|(index, &value)| match value {
                    0 => Ok(FindValue::Neither),
                    1 => Ok(FindValue::An),
                    2 => Ok(FindValue::Pan),
                    _ => Err(HealingAnswerError::FindValue { index, value }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_the_protocol_s_bytes() {
        let coins = [(Coin::new(-3, 70_000), [0xAB; 16])];
        let p = get_ticket_payload(&coins);
        assert_eq!(&p[..5], &[0xfd, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(&p[5..], &[0xAB; 16]);
        let f = find_payload(&[(Coin::new(1, 5000), [1; 16], [2; 16])]);
        assert_eq!(&f[..5], &[1, 0, 0, 0x13, 0x88]);
        assert_eq!(f.len(), 37);
        assert_eq!(
            validate_ticket_payload(7, 0x1111_1100),
            [7, 0x11, 0x11, 0x11, 0x00]
        );
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn the_fix_payload_is_coins_then_pg_then_25_tickets() {
        // Laid out by hand from the 2/80 row of PROTOCOL.md 8b: one coin (-3:70000), PG
        // 00..0f, ticket 0x11111100 at position 0 and 0xdeadbeef at position 24: the
        // shortest fix payload, 121 bytes.
        let mut tickets = [0u32; RAIDA_COUNT];
        tickets[0] = 0x1111_1100;
        tickets[24] = 0xdead_beef;
        let pg: An = std::array::from_fn(|i| i as u8);
        let p = fix_payload(&[Coin::new(-3, 70_000)], &pg, &tickets);
        let expected = unhex(&format!(
            "fd00011170 000102030405060708090a0b0c0d0e0f 11111100 {} deadbeef",
            "00000000".repeat(23)
        ));
        assert_eq!(p, expected);
        assert_eq!(p.len(), 121);
        let two = fix_payload(&[Coin::new(1, 1), Coin::new(0, 2)], &pg, &tickets);
        assert_eq!(&two[..10], &unhex("0100000001 0000000002")[..]);
        assert_eq!(two.len(), 126);
    }

    #[test]
    fn the_new_an_is_md5_of_raida_coin_and_pg() {
        // PROTOCOL.md 8b's examples (PG = 00 01 .. 0f, RAIDA 7).
        let pg: An = std::array::from_fn(|i| i as u8);
        assert_eq!(
            new_an(7, Coin::new(1, 5000), &pg).to_vec(),
            unhex("e8885a7e9ecf1a3d3947b2b75667dcbb")
        );
        assert_eq!(
            new_an(7, Coin::new(-3, 16_777_217), &pg).to_vec(),
            unhex("453b80696dc5d064b11c3124c04aa69d")
        );
        // Python: hashlib.md5(bytes([24, 0xff]) + struct.pack('>I', 16) + bytes([0x21] * 16)).
        assert_eq!(
            new_an(24, Coin::new(-1, 16), &[0x21; 16]).to_vec(),
            unhex("e3c3d07cb9c49d56e2ef4193d177ef1a")
        );
    }

    #[test]
    fn fix_answers_are_read_by_status() {
        assert_eq!(
            fix_results(StatusByte(241), &[], 2),
            Ok(Some(vec![true, true]))
        );
        assert_eq!(fix_results(StatusByte(242), &[], 1), Ok(Some(vec![false])));
        // Nine coins: bits 0 and 2 of byte 0, bit 0 of byte 1 (coin 8).
        let nine = fix_results(StatusByte(243), &[0b0000_0101, 0b0000_0001], 9);
        let passed: Vec<usize> = nine
            .expect("fits")
            .expect("per coin")
            .iter()
            .enumerate()
            .filter(|(_, &p)| p)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(passed, [0, 2, 8]);
        assert!(fix_results(StatusByte(243), &[1], 9).is_err());
        assert!(fix_results(StatusByte(241), &[0], 1).is_err());
        assert!(fix_results(StatusByte(242), &[0], 1).is_err());
        assert_eq!(fix_results(StatusByte(160), &[], 1), Ok(None));
        assert_eq!(fix_results(StatusByte(40), &[], 1), Ok(None));
    }

    #[test]
    fn ticket_answers_are_read_by_status() {
        assert_eq!(
            ticket_answer(StatusByte(241), &[0, 0, 1, 0], 2),
            Ok(Some(TicketAnswer {
                passed: vec![true, true],
                ticket: Some(256)
            }))
        );
        assert_eq!(
            ticket_answer(StatusByte(242), &[], 1).map(|a| a.map(|a| a.ticket)),
            Ok(Some(None))
        );
        assert_eq!(ticket_answer(StatusByte(42), &[], 1), Ok(None));
        assert!(ticket_answer(StatusByte(243), &[1, 0, 0, 0], 2).is_err());
        assert!(ticket_answer(StatusByte(241), &[], 2).is_err());
    }

    #[test]
    fn find_answers_are_read_by_status() {
        assert_eq!(
            find_values(StatusByte(209), &[], 2),
            Ok(Some(vec![FindValue::An; 2]))
        );
        assert_eq!(
            find_values(StatusByte(211), &[0, 2, 1], 3),
            Ok(Some(vec![
                FindValue::Neither,
                FindValue::Pan,
                FindValue::An
            ]))
        );
        assert!(find_values(StatusByte(211), &[3], 1).is_err());
        assert!(find_values(StatusByte(208), &[0], 1).is_err());
        assert_eq!(find_values(StatusByte(40), &[], 1), Ok(None));
    }
}
