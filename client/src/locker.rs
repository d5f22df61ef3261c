//! The lockers of PROTOCOL.md section 8c from the client's side: the key a wallet
//! derives from a locker code for each RAIDA, the payload of put (store_sum), peek and
//! remove, and what their answers say.
//!
//! A locker is the set of a RAIDA's coins whose AN equals a key K (16 bytes, bytes
//! 12..15 `FF`). A sender puts coins in with their ANs and K; whoever knows K peeks at
//! them and removes them to ANs of their own.
//!
//! ```
//! use raida_client::locker::{self, LockerCommand};
//! use raida_client::{Coin, Keys, Request, StatusByte};
//!
//! let key = locker::locker_key(0, "abc2345");
//! let coins = [(Coin::new(1, 5), [0x11; 16]), (Coin::new(1, 6), [0x22; 16])];
//! let mut req = Request::new(0, locker::GROUP, LockerCommand::Put.code(), Keys::None);
//! req.payload = locker::put_payload(&coins, &key);
//! assert_eq!(req.payload.len(), 2 * 5 + 16 + 16);
//! // A peek answer listing coin 1:5:
//! let coins = locker::peek_coins(StatusByte(241), &[1, 0, 0, 0, 5]);
//! assert_eq!(coins, Ok(Some(vec![Coin::new(1, 5)])));
//! ```

use md5::{Digest, Md5};
use raida_wire::{An, Status, StatusByte};

use crate::auth::{xor_all, AN_LEN, COIN_REF_LEN};
use crate::request::Coin;

/// The command group of the locker commands.
pub const GROUP: u8 = 8;
/// Bytes 12..15 of every locker key.
pub const KEY_SUFFIX: [u8; 4] = [0xFF; 4];

/// One of the locker commands this client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockerCommand {
    /// 8/82 store_sum: `n x [coin ref] + XOR of the n ANs + key`; 241 when the sum
    /// matches (every coin's AN becomes the key), 242 when it does not, 40 when a coin
    /// is unknown, 198 when a coin is listed twice, 199 when the key is not key-shaped.
    Put,
    /// 8/83 peek: `key`; 241 with the locker's coins (5-byte refs), 242 when no coin
    /// holds the key.
    Peek,
    /// 8/84 remove: `key + n x [coin ref, new AN]`; each coin whose AN is the key gets
    /// its new AN; 241, 242 or 243, with a bitmap of floor(n/8) + 1 bytes (242 without
    /// one when no coin holds the key).
    Remove,
}

impl LockerCommand {
    /// Request byte 5 (the group is [`GROUP`]).
    pub const fn code(self) -> u8 {
        match self {
            LockerCommand::Put => 82,
            LockerCommand::Peek => 83,
            LockerCommand::Remove => 84,
        }
    }

    /// The name PROTOCOL.md gives it: `store_sum`, `peek`, `remove`.
    pub const fn name(self) -> &'static str {
        match self {
            LockerCommand::Put => "store_sum",
            LockerCommand::Peek => "peek",
            LockerCommand::Remove => "remove",
        }
    }
}

/// The locker key of RAIDA `raida_id` for the locker code `code`, as wallets derive
/// it: MD5 of the RAIDA number in decimal followed by the code's bytes (`"7abc2345"`
/// for RAIDA 7 and code `abc2345`), with bytes 12..15 set to `FF`. Every RAIDA thus
/// holds the coins under a key of its own, and the code alone names all of them.
pub fn locker_key(raida_id: u8, code: &str) -> An {
    let mut h = Md5::new();
    h.update(raida_id.to_string().as_bytes());
    h.update(code.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; AN_LEN];
    key.copy_from_slice(&digest);
    key[12..].copy_from_slice(&KEY_SUFFIX);
    key
}

/// Whether `an` has the shape of a locker key (bytes 12..15 `FF`).
pub fn is_key_shaped(an: &An) -> bool {
    an[12..] == KEY_SUFFIX
}

/// put's (store_sum's) payload: every coin reference in order, the XOR of their ANs,
/// then `key`.
pub fn put_payload(coins: &[(Coin, An)], key: &An) -> Vec<u8> {
    let mut out = Vec::with_capacity(coins.len() * COIN_REF_LEN + 2 * AN_LEN);
    for (coin, _) in coins {
        out.extend_from_slice(&coin.to_bytes());
    }
    out.extend_from_slice(&xor_all(coins.iter().map(|(_, an)| an)));
    out.extend_from_slice(key);
    out
}

/// peek's payload: the key.
pub fn peek_payload(key: &An) -> Vec<u8> {
    key.to_vec()
}

/// remove's payload: the key, then `[coin ref, new AN]` per coin, in order.
pub fn remove_payload(key: &An, coins: &[(Coin, An)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AN_LEN + coins.len() * (COIN_REF_LEN + AN_LEN));
    out.extend_from_slice(key);
    for (coin, new_an) in coins {
        out.extend_from_slice(&coin.to_bytes());
        out.extend_from_slice(new_an);
    }
    out
}

/// The length of remove's bitmap for `coins` coins: floor(n/8) + 1 bytes (one more
/// than one bit per coin needs when n is a multiple of 8, as the deployed server sends).
pub const fn remove_bitmap_len(coins: usize) -> usize {
    coins / 8 + 1
}

/// A locker answer that does not fit the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockerResultsError {
    /// A remove answer whose bitmap is not floor(n/8) + 1 bytes.
    #[error("remove answer {status}: expected a bitmap of {expected} bytes for {coins} coins, got {got}")]
    Bitmap {
        /// The answer's status.
        status: StatusByte,
        /// floor(coins / 8) + 1.
        expected: usize,
        /// The coins the request named.
        coins: usize,
        /// The body length that came.
        got: usize,
    },
    /// A body where the answer has none (put's 241 and 242, peek's 242).
    #[error("{command} answer {status}: expected no body, got {got} bytes")]
    UnexpectedBody {
        /// `store_sum` or `peek`.
        command: &'static str,
        /// The answer's status.
        status: StatusByte,
        /// The body length that came.
        got: usize,
    },
    /// A peek answer that is not whole 5-byte coin references.
    #[error("peek answer: expected 5-byte coin references, got {got} bytes")]
    PeekBody {
        /// The body length that came.
        got: usize,
    },
}

/// What put's answer says: `Some(true)` for 241 (every coin is in the locker now),
/// `Some(false)` for 242 (the sum did not match: nothing changed), `None` for any other
/// status (40, 198, 199, 252, ...: refused, nothing changed).
pub fn put_passed(status: StatusByte, body: &[u8]) -> Result<Option<bool>, LockerResultsError> {
    let passed = match Status::from_code(status.0) {
        Some(Status::AllPass) => true,
        Some(Status::AllFail) => false,
        _ => return Ok(None),
    };
    if body.is_empty() {
        Ok(Some(passed))
    } else {
        Err(LockerResultsError::UnexpectedBody {
            command: LockerCommand::Put.name(),
            status,
            got: body.len(),
        })
    }
}

/// The coins a peek answer lists: `Some(coins)` in the answer's order for 241, `Some`
/// of none for 242 (no coin holds the key: the locker does not exist), `None` for any
/// other status.
pub fn peek_coins(
    status: StatusByte,
    body: &[u8],
) -> Result<Option<Vec<Coin>>, LockerResultsError> {
    match Status::from_code(status.0) {
        Some(Status::AllPass) => {
            if body.len() % COIN_REF_LEN != 0 {
                return Err(LockerResultsError::PeekBody { got: body.len() });
            }
            Ok(Some(
                body.chunks_exact(COIN_REF_LEN)
                    .map(|c| {
                        Coin::new(
                            i8::from_ne_bytes([c[0]]),
                            u32::from_be_bytes([c[1], c[2], c[3], c[4]]),
                        )
                    })
                    .collect(),
            ))
        }
        Some(Status::AllFail) if body.is_empty() => Ok(Some(Vec::new())),
        Some(Status::AllFail) => Err(LockerResultsError::UnexpectedBody {
            command: LockerCommand::Peek.name(),
            status,
            got: body.len(),
        }),
        _ => Ok(None),
    }
}

/// What a remove answer for `coins` coins says about each (request order, `true` when
/// the coin now has its new AN): 241, 242 and 243 carry a bitmap of
/// [`remove_bitmap_len`] bytes (bit `i % 8` of byte `i / 8` set when coin `i` passed);
/// 242 without a body means no coin holds the key (none passed). `None` for any other
/// status (16, 39, 198, ...: nothing changed).
pub fn remove_results(
    status: StatusByte,
    body: &[u8],
    coins: usize,
) -> Result<Option<Vec<bool>>, LockerResultsError> {
    match Status::from_code(status.0) {
        Some(Status::AllFail) if body.is_empty() => Ok(Some(vec![false; coins])),
        Some(Status::AllPass | Status::AllFail | Status::Mixed) => {
            let expected = remove_bitmap_len(coins);
            if body.len() != expected {
                return Err(LockerResultsError::Bitmap {
                    status,
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

    fn hex(s: &str) -> An {
        let mut an = [0u8; 16];
        for (i, b) in an.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        an
    }

    #[test]
    fn locker_keys_are_md5_of_the_raida_number_and_the_code_ending_ff() {
        // Computed once with Python's hashlib:
        //   d = bytearray(hashlib.md5((str(i) + 'abc2345').encode()).digest())
        //   d[12:16] = b'\xff' * 4; print(i, d.hex())
        for (raida, want) in [
            (0, "678f3dbb6f3a9e58f9b73bb2ffffffff"),
            (7, "7f6941229ec46681d8dd786dffffffff"),
            (24, "4eb2dc85589c2fc98f0be66fffffffff"),
        ] {
            let key = locker_key(raida, "abc2345");
            assert_eq!(key, hex(want), "raida {raida}");
            assert!(is_key_shaped(&key));
        }
        let mut almost = [0xFF; 16];
        almost[15] = 0xFE;
        assert!(!is_key_shaped(&almost));
    }

    #[test]
    fn commands_have_the_codes_and_names_of_8c() {
        for (c, code, name) in [
            (LockerCommand::Put, 82, "store_sum"),
            (LockerCommand::Peek, 83, "peek"),
            (LockerCommand::Remove, 84, "remove"),
        ] {
            assert_eq!((c.code(), c.name()), (code, name));
        }
    }

    #[test]
    fn put_payload_is_the_coin_refs_the_xor_of_the_ans_then_the_key() {
        let key = locker_key(1, "x");
        let p = put_payload(
            &[
                (Coin::new(1, 5), [0x0F; 16]),
                (Coin::new(-1, 0x0102_0304), [0xF1; 16]),
            ],
            &key,
        );
        assert_eq!(p.len(), 10 + 32);
        assert_eq!(&p[..10], &[1, 0, 0, 0, 5, 0xFF, 1, 2, 3, 4]);
        assert_eq!(&p[10..26], &[0xFE; 16]);
        assert_eq!(&p[26..], &key);
    }

    #[test]
    fn remove_payload_is_the_key_then_coin_ref_and_new_an_per_coin() {
        let key = [7; 16];
        let p = remove_payload(&key, &[(Coin::new(0, 16), [9; 16])]);
        assert_eq!(&p[..16], &key);
        assert_eq!(&p[16..21], &[0, 0, 0, 0, 16]);
        assert_eq!(&p[21..], &[9; 16]);
        assert_eq!(peek_payload(&key), key.to_vec());
    }

    #[test]
    fn peek_lists_coin_refs_and_242_is_an_empty_locker() {
        let body = [0xF8, 0, 0, 0, 1, 1, 0, 0, 4, 0];
        let coins = peek_coins(StatusByte(241), &body);
        assert_eq!(coins, Ok(Some(vec![Coin::new(-8, 1), Coin::new(1, 1024)])));
        assert_eq!(peek_coins(StatusByte(242), &[]), Ok(Some(vec![])));
        assert_eq!(peek_coins(StatusByte(16), &[]), Ok(None));
        assert_eq!(
            peek_coins(StatusByte(241), &[1, 2]),
            Err(LockerResultsError::PeekBody { got: 2 })
        );
        assert!(peek_coins(StatusByte(242), &[1]).is_err());
    }

    #[test]
    fn remove_bitmaps_are_floor_n_over_8_plus_1_bytes() {
        assert_eq!(remove_bitmap_len(1), 1);
        assert_eq!(remove_bitmap_len(7), 1);
        assert_eq!(remove_bitmap_len(8), 2);
        // 8 coins, coins 0 and 7 passed: byte 0 = 0x81, byte 1 = padding.
        let r = remove_results(StatusByte(243), &[0x81, 0], 8);
        let mut want = vec![false; 8];
        want[0] = true;
        want[7] = true;
        assert_eq!(r, Ok(Some(want)));
        assert_eq!(
            remove_results(StatusByte(241), &[0x03], 2),
            Ok(Some(vec![true, true]))
        );
        // No locker: 242 without a body.
        assert_eq!(
            remove_results(StatusByte(242), &[], 3),
            Ok(Some(vec![false; 3]))
        );
        assert!(matches!(
            remove_results(StatusByte(243), &[0x81], 8),
            Err(LockerResultsError::Bitmap {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert_eq!(remove_results(StatusByte(198), &[], 2), Ok(None));
    }

    #[test]
    fn put_answers_241_or_242_without_a_body() {
        assert_eq!(put_passed(StatusByte(241), &[]), Ok(Some(true)));
        assert_eq!(put_passed(StatusByte(242), &[]), Ok(Some(false)));
        assert_eq!(put_passed(StatusByte(40), &[]), Ok(None));
        assert!(put_passed(StatusByte(241), &[0]).is_err());
    }
}
