//! The authentication commands of PROTOCOL.md section 8a from the client's side: the
//! payload each one takes, and what its answer says about each coin.
//!
//! ```
//! use raida_client::auth::{self, AuthCommand};
//! use raida_client::{Coin, Keys, Request, StatusByte};
//!
//! let coins = [(Coin::new(1, 5), [0x11; 16]), (Coin::new(1, 6), [0x22; 16])];
//! let mut req = Request::new(0, auth::GROUP, AuthCommand::Detect.code(), Keys::None);
//! req.payload = auth::detect_payload(&coins);
//! assert_eq!(req.payload.len(), 2 * 21);
//! // A 243 MIXED answer whose bitmap says coin 0 passed and coin 1 did not:
//! let passed = auth::coin_results(AuthCommand::Detect, StatusByte(243), &[0b01], coins.len());
//! assert_eq!(passed, Ok(Some(vec![true, false])));
//! ```

use raida_wire::{An, Status, StatusByte};

use crate::request::Coin;

/// The command group of the authentication commands.
pub const GROUP: u8 = 1;
/// A coin reference's length: denomination (1), serial big-endian (4).
pub const COIN_REF_LEN: usize = 5;
/// An AN's (or a PAN's, or a delta's) length.
pub const AN_LEN: usize = 16;

/// One of the four commands of section 8a.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthCommand {
    /// 1/10: `n x [coin ref, AN]`; 241, 242, or 243 with a bitmap.
    Detect,
    /// 1/11: `n x [coin ref] + XOR of the n ANs`; 241 or 242 for all of them (40 when a
    /// coin is unknown).
    DetectSum,
    /// 1/20: `n x [coin ref, AN, PAN]`; each coin whose AN matches gets its PAN;
    /// answered as detect.
    Pown,
    /// 1/21: `n x [coin ref] + XOR of the n ANs + delta`; when the sum matches every
    /// coin's AN ^= delta (241), else nothing changes (242); 40 when a coin is unknown.
    PownSum,
}

impl AuthCommand {
    /// Request byte 5 (the group is [`GROUP`]).
    pub const fn code(self) -> u8 {
        match self {
            AuthCommand::Detect => 10,
            AuthCommand::DetectSum => 11,
            AuthCommand::Pown => 20,
            AuthCommand::PownSum => 21,
        }
    }

    /// The name PROTOCOL.md gives it: `detect`, `detect_sum`, `pown`, `pown_sum`.
    pub const fn name(self) -> &'static str {
        match self {
            AuthCommand::Detect => "detect",
            AuthCommand::DetectSum => "detect_sum",
            AuthCommand::Pown => "pown",
            AuthCommand::PownSum => "pown_sum",
        }
    }

    /// Whether it is one of the sum commands: one answer for all its coins.
    pub const fn is_sum(self) -> bool {
        matches!(self, AuthCommand::DetectSum | AuthCommand::PownSum)
    }
}

/// `a XOR b`.
pub fn xor(a: &An, b: &An) -> An {
    let mut out = *a;
    for (o, y) in out.iter_mut().zip(b) {
        *o ^= y;
    }
    out
}

/// The XOR of `ans` (zeros for none): the sum the sum commands compare.
pub fn xor_all<'a>(ans: impl IntoIterator<Item = &'a An>) -> An {
    ans.into_iter().fold([0; AN_LEN], |acc, an| xor(&acc, an))
}

/// detect's payload: `[denomination, serial BE, AN]` per coin, in order.
pub fn detect_payload(coins: &[(Coin, An)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * (COIN_REF_LEN + AN_LEN));
    for (coin, an) in coins {
        out.extend_from_slice(&coin.to_bytes());
        out.extend_from_slice(an);
    }
    out
}

/// detect_sum's payload: every coin reference, in order, then the XOR of their ANs.
pub fn detect_sum_payload(coins: &[(Coin, An)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * COIN_REF_LEN + AN_LEN);
    for (coin, _) in coins {
        out.extend_from_slice(&coin.to_bytes());
    }
    out.extend_from_slice(&xor_all(coins.iter().map(|(_, an)| an)));
    out
}

/// pown's payload: `[denomination, serial BE, AN, PAN]` per coin, in order.
pub fn pown_payload(coins: &[(Coin, An, An)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * (COIN_REF_LEN + 2 * AN_LEN));
    for (coin, an, pan) in coins {
        out.extend_from_slice(&coin.to_bytes());
        out.extend_from_slice(an);
        out.extend_from_slice(pan);
    }
    out
}

/// pown_sum's payload: every coin reference, in order, then the XOR of their ANs, then
/// `delta` (each coin's new AN is its AN XOR `delta`).
pub fn pown_sum_payload(coins: &[(Coin, An)], delta: &An) -> Vec<u8> {
    let mut out = detect_sum_payload(coins);
    out.extend_from_slice(delta);
    out
}

/// An answer of an authentication command that does not fit the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultsError {
    /// A 243 MIXED whose body is not one bit per coin (ceil(n/8) bytes).
    #[error("243 MIXED body: expected a bitmap of {expected} bytes for {coins} coins, got {got}")]
    Bitmap {
        /// ceil(coins / 8).
        expected: usize,
        /// The coins the request named.
        coins: usize,
        /// The body length that came.
        got: usize,
    },
    /// A 241 or 242 with a body (they have none).
    #[error("{status} answer: expected no body, got {got} bytes")]
    UnexpectedBody {
        /// 241 or 242.
        status: StatusByte,
        /// The body length that came.
        got: usize,
    },
    /// A 243 MIXED answering a sum command (they answer 241 or 242 only).
    #[error(
        "243 MIXED: expected 241 or 242 from {command}, which answers for all its coins at once"
    )]
    MixedForSum {
        /// `detect_sum` or `pown_sum`.
        command: &'static str,
    },
}

/// What an answer of `command` to a request naming `coins` coins says about each of
/// them: `Some` (one entry per coin, in request order, `true` when it passed) for
/// 241 ALL_PASS (all passed), 242 ALL_FAIL (none did; for the sum commands: the sum did
/// not match, so nothing passed as a whole) and 243 MIXED (bit `i % 8` of body byte
/// `i / 8` set when coin `i` passed); `None` for any other status (an error: 16, 20,
/// 36, 39, 40, 252, ...), which says nothing about single coins.
///
/// `body` is the decrypted command output. Padding bits past the last coin are not
/// checked.
pub fn coin_results(
    command: AuthCommand,
    status: StatusByte,
    body: &[u8],
    coins: usize,
) -> Result<Option<Vec<bool>>, ResultsError> {
    let all = |passed: bool| {
        if body.is_empty() {
            Ok(Some(vec![passed; coins]))
        } else {
            Err(ResultsError::UnexpectedBody {
                status,
                got: body.len(),
            })
        }
    };
    match Status::from_code(status.0) {
        Some(Status::AllPass) => all(true),
        Some(Status::AllFail) => all(false),
        Some(Status::Mixed) if command.is_sum() => Err(ResultsError::MixedForSum {
            command: command.name(),
        }),
        Some(Status::Mixed) => {
            let expected = coins.div_ceil(8);
            if body.len() != expected {
                return Err(ResultsError::Bitmap {
                    expected,
                    coins,
                    got: body.len(),
                });
            }
            Ok(Some(
                (0..coins)
                    .map(|i| body[i / 8] & (1 << (i % 8)) != 0)
                    .collect(),
            ))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: Coin = Coin::new(1, 5);
    const C2: Coin = Coin::new(-1, 0x0102_0304);

    #[test]
    fn commands_have_the_codes_and_names_of_8a() {
        let all = [
            (AuthCommand::Detect, 10, "detect", false),
            (AuthCommand::DetectSum, 11, "detect_sum", true),
            (AuthCommand::Pown, 20, "pown", false),
            (AuthCommand::PownSum, 21, "pown_sum", true),
        ];
        for (c, code, name, sum) in all {
            assert_eq!((c.code(), c.name(), c.is_sum()), (code, name, sum));
        }
    }

    #[test]
    fn detect_payload_is_coin_ref_then_an_per_coin() {
        let p = detect_payload(&[(C1, [0xA1; 16]), (C2, [0xB2; 16])]);
        assert_eq!(p.len(), 42);
        assert_eq!(&p[..5], &[1, 0, 0, 0, 5]);
        assert_eq!(&p[5..21], &[0xA1; 16]);
        assert_eq!(&p[21..26], &[0xFF, 1, 2, 3, 4]);
        assert_eq!(&p[26..42], &[0xB2; 16]);
        assert!(detect_payload(&[]).is_empty());
    }

    #[test]
    fn detect_sum_payload_is_the_coin_refs_then_the_xor_of_the_ans() {
        let a1 = [0x0F; 16];
        let mut a2 = [0xF0; 16];
        a2[15] = 0x01;
        let p = detect_sum_payload(&[(C1, a1), (C2, a2)]);
        assert_eq!(p.len(), 5 + 5 + 16);
        assert_eq!(&p[..5], &[1, 0, 0, 0, 5]);
        assert_eq!(&p[5..10], &[0xFF, 1, 2, 3, 4]);
        let mut sum = [0xFF; 16];
        sum[15] = 0x0E;
        assert_eq!(&p[10..], &sum);
    }

    #[test]
    fn pown_payload_is_coin_ref_an_pan_per_coin() {
        let p = pown_payload(&[(C1, [1; 16], [2; 16]), (C2, [3; 16], [4; 16])]);
        assert_eq!(p.len(), 2 * 37);
        assert_eq!(&p[..5], &[1, 0, 0, 0, 5]);
        assert_eq!(&p[5..21], &[1; 16]);
        assert_eq!(&p[21..37], &[2; 16]);
        assert_eq!(&p[37..42], &[0xFF, 1, 2, 3, 4]);
        assert_eq!(&p[42..58], &[3; 16]);
        assert_eq!(&p[58..74], &[4; 16]);
    }

    #[test]
    fn pown_sum_payload_is_the_coin_refs_the_xor_then_the_delta() {
        let p = pown_sum_payload(&[(C1, [0x01; 16]), (C2, [0x03; 16])], &[0x77; 16]);
        assert_eq!(p.len(), 10 + 16 + 16);
        assert_eq!(&p[..10], &[1, 0, 0, 0, 5, 0xFF, 1, 2, 3, 4]);
        assert_eq!(&p[10..26], &[0x02; 16]);
        assert_eq!(&p[26..], &[0x77; 16]);
    }

    #[test]
    fn xor_all_of_nothing_is_zeros_and_of_one_is_itself() {
        assert_eq!(xor_all([]), [0; 16]);
        assert_eq!(xor_all([&[9; 16]]), [9; 16]);
        assert_eq!(xor(&[0xF0; 16], &[0xFF; 16]), [0x0F; 16]);
    }

    #[test]
    fn all_pass_and_all_fail_say_the_same_of_every_coin() {
        let r = coin_results(AuthCommand::Pown, Status::AllPass.into(), &[], 3);
        assert_eq!(r, Ok(Some(vec![true; 3])));
        let r = coin_results(AuthCommand::DetectSum, Status::AllFail.into(), &[], 2);
        assert_eq!(r, Ok(Some(vec![false; 2])));
    }

    #[test]
    fn the_bitmap_sets_bit_i_mod_8_of_byte_i_div_8_for_coin_i() {
        // Coins 0, 3, 8 and 9 of 10 passed: byte 0 = 0b0000_1001, byte 1 = 0b11.
        let r = coin_results(AuthCommand::Detect, Status::Mixed.into(), &[0x09, 0x03], 10);
        let mut want = vec![false; 10];
        for i in [0, 3, 8, 9] {
            want[i] = true;
        }
        assert_eq!(r, Ok(Some(want)));
        // Exactly 8 coins: one byte; the last coin is bit 7.
        let r = coin_results(AuthCommand::Pown, Status::Mixed.into(), &[0x80], 8);
        let mut want = vec![false; 8];
        want[7] = true;
        assert_eq!(r, Ok(Some(want)));
    }

    #[test]
    fn a_bitmap_of_the_wrong_length_is_an_error() {
        for body in [&[][..], &[1, 0][..]] {
            let r = coin_results(AuthCommand::Detect, Status::Mixed.into(), body, 8);
            assert_eq!(
                r,
                Err(ResultsError::Bitmap {
                    expected: 1,
                    coins: 8,
                    got: body.len()
                })
            );
        }
        let r = coin_results(AuthCommand::Detect, Status::Mixed.into(), &[1], 9);
        assert!(matches!(r, Err(ResultsError::Bitmap { expected: 2, .. })));
    }

    #[test]
    fn mixed_from_a_sum_command_and_a_body_on_241_are_errors() {
        let r = coin_results(AuthCommand::PownSum, Status::Mixed.into(), &[1], 2);
        assert_eq!(
            r,
            Err(ResultsError::MixedForSum {
                command: "pown_sum"
            })
        );
        let r = coin_results(AuthCommand::Detect, Status::AllPass.into(), &[1], 2);
        assert!(matches!(
            r,
            Err(ResultsError::UnexpectedBody { got: 1, .. })
        ));
    }

    #[test]
    fn other_statuses_say_nothing_about_single_coins() {
        for s in [
            Status::InvalidPacketLength,
            Status::ShardNotAvailable,
            Status::EmptyRequest,
            Status::CoinsNotDiv,
            Status::InvalidSnOrDenomination,
            Status::Internal,
            Status::Success,
        ] {
            assert_eq!(
                coin_results(AuthCommand::Detect, s.into(), &[], 1),
                Ok(None)
            );
        }
        assert_eq!(
            coin_results(AuthCommand::Detect, StatusByte(99), &[7], 1),
            Ok(None)
        );
    }
}
