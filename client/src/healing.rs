//! The healing commands of PROTOCOL.md section 8b from a wallet's side: the payloads of
//! get_ticket (2/40) and find (2/60), and what their answers say.
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
/// A ticket's length: a big-endian u32.
pub const TICKET_LEN: usize = 4;

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
