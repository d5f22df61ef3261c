//! Lockers (PROTOCOL.md section 8c): store_sum (8/82), peek (8/83), remove (8/84) and
//! store_multiple_sum (8/88).
//!
//! A locker is the set of coins whose record AN is a locker key K (bytes 12..15 `FF FF
//! FF FF`); nothing else defines it. The commands find lockers through the store's
//! locker index ([`KeyStore::locker_coins`](raida_core::KeyStore::locker_coins)), which
//! the store keeps equal to its records on every write; they never maintain it
//! themselves. Every write goes through [`KeyStore::modify`](raida_core::KeyStore::modify):
//! one compare-and-set per put (all of its coins or none) and per removed coin, durable
//! before the answer.
//!
//! Unlike the deployed server, a coin listed twice in one request answers 198
//! INVALID_PARAMETER before anything is read: `[V, V]` XORs to zero whatever V's AN
//! is, so a put would otherwise move V without knowing its AN (section 11).

use std::collections::BTreeSet;
use std::sync::Arc;

use raida_core::keys::{is_locker_key, An, CoinId, Record, StoreAccess, StoreError};
use raida_core::{Command, RequestContext, Runs, Status, StatusByte, Timestamp, Transport};

use crate::clock::Clock;
use crate::payload::{self, AN, COIN_REF};

/// 198 INVALID_PARAMETER: a coin listed twice; store_multiple_sum with no locker.
pub const INVALID_PARAMETER: StatusByte = StatusByte(198);
/// 199 INVALID_PAN: a put's key is not a locker key (its bytes 12..15 are not FF).
pub const INVALID_PAN: StatusByte = StatusByte(199);

/// The largest UDP datagram (65,535 less the IPv4 and UDP headers): a peek answer
/// longer than this is not sent over UDP.
const UDP_MAX_DATAGRAM: usize = 65_507;

/// store_sum (8/82, put): `n x [coin (5)] + sum (16) + key (16)`. 40 when a coin is
/// unknown; 242 when the XOR of the stored ANs is not `sum`; 199 when `key` is not a
/// locker key; else every record becomes key + MFS, 241. All or nothing, durable.
#[derive(Debug)]
pub struct StoreSum {
    clock: Arc<dyn Clock>,
}

/// peek (8/83): `key (16)`. 242 when no coin holds `key`; else 241 and the locker's
/// coins as 5-byte references, ascending by denomination (signed) then serial.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peek;

/// remove (8/84): `key (16) + n x [coin (5), new AN (16)]`. 242 without a body when
/// no coin holds `key`; else each coin whose AN is `key` gets its new AN + MFS (a
/// compare-and-set per coin, in request order), and the answer (241, 242 or 243)
/// carries a bitmap of floor(n/8) + 1 bytes.
#[derive(Debug)]
pub struct Remove {
    clock: Arc<dyn Clock>,
}

/// store_multiple_sum (8/88): `NL (1) + NL x [NC (2) + NC x coin (5) + sum (16) + key
/// (16)]`. Each locker in request order is a store_sum of its own; 241 all passed, 242
/// none (both without a body), 243 with a bitmap of ceil(NL/8) bytes.
#[derive(Debug)]
pub struct StoreMultipleSum {
    clock: Arc<dyn Clock>,
}

impl StoreSum {
    /// store_sum, stamping records with `clock`'s MFS.
    pub fn new(clock: Arc<dyn Clock>) -> StoreSum {
        StoreSum { clock }
    }
}

impl Remove {
    /// remove, stamping records with `clock`'s MFS.
    pub fn new(clock: Arc<dyn Clock>) -> Remove {
        Remove { clock }
    }
}

impl StoreMultipleSum {
    /// store_multiple_sum, stamping records with `clock`'s MFS.
    pub fn new(clock: Arc<dyn Clock>) -> StoreMultipleSum {
        StoreMultipleSum { clock }
    }
}

/// Whether a coin appears twice (same denomination byte and serial).
fn has_duplicate(coins: &[CoinId]) -> bool {
    let mut seen = BTreeSet::new();
    !coins.iter().all(|c| seen.insert(*c))
}

/// What one put decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Put {
    /// 241: every record now holds the key.
    Passed,
    /// 40: a coin is unknown.
    Unknown,
    /// 242: the XOR of the stored ANs is not the sum.
    WrongSum,
    /// 199: the key is not a locker key (the sum was right).
    NotAKey,
}

impl From<Put> for StatusByte {
    fn from(put: Put) -> StatusByte {
        match put {
            Put::Passed => Status::AllPass.into(),
            Put::Unknown => Status::InvalidSnOrDenomination.into(),
            Put::WrongSum => Status::AllFail.into(),
            Put::NotAKey => INVALID_PAN,
        }
    }
}

/// One put: in one [`KeyStore::modify`] over `coins` (checks in the order of 8c:
/// unknown coin, sum, key shape), every record becomes `key` + `mfs` when all pass.
/// The caller has ruled out duplicates.
fn put(
    store: StoreAccess<'_>,
    coins: &[CoinId],
    sum: An,
    key: An,
    mfs: u8,
    now: Timestamp,
) -> Result<Put, StoreError> {
    let decide = |current: &[Option<Record>], new: &mut [Option<Record>]| -> Put {
        let mut xor = [0u8; AN];
        for record in current {
            match record {
                Some(r) => payload::xor_into(&mut xor, &r.an),
                None => return Put::Unknown,
            }
        }
        if xor != sum {
            return Put::WrongSum;
        }
        if !is_locker_key(&key) {
            return Put::NotAKey;
        }
        for slot in new.iter_mut() {
            *slot = Some(Record {
                an: key,
                status: mfs,
            });
        }
        Put::Passed
    };
    if coins.is_empty() {
        // Nothing to read or write: the sum of no ANs is zero.
        return Ok(decide(&[], &mut []));
    }
    let mut outcome = Put::WrongSum;
    store.modify(coins, now, &mut |current, new| {
        outcome = decide(current, new);
    })?;
    Ok(outcome)
}

/// The checks of PROTOCOL.md 8c before a locker command reads its payload's entries:
/// no body at all is 36.
fn has_body(ctx: &RequestContext<'_>) -> Result<(), StatusByte> {
    if ctx.has_body {
        Ok(())
    } else {
        Err(Status::EmptyRequest.into())
    }
}

impl Command for StoreSum {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        if let Err(status) = has_body(ctx) {
            return status;
        }
        let len = ctx.payload.len();
        if len < COIN_REF + AN + AN {
            return Status::InvalidPacketLength.into();
        }
        if (len - AN - AN) % COIN_REF != 0 {
            return Status::CoinsNotDiv.into();
        }
        let n = (len - AN - AN) / COIN_REF;
        let (coins, tail) = ctx.payload.split_at(n * COIN_REF);
        let coins: Vec<CoinId> = coins.chunks_exact(COIN_REF).map(payload::coin).collect();
        #[cfg(raida_mutants)]
        let planted = raida_core::mutants::active(raida_core::mutants::Mutant::DuplicateXor);
        #[cfg(not(raida_mutants))]
        let planted = false;
        if has_duplicate(&coins) && !planted {
            return INVALID_PARAMETER;
        }
        let (sum, key) = (payload::an(tail), payload::an(&tail[AN..]));
        match put(ctx.store, &coins, sum, key, self.clock.mfs(), ctx.arrived) {
            Ok(outcome) => outcome.into(),
            // Nothing was written.
            Err(_) => Status::Internal.into(),
        }
    }
}

impl Command for Peek {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        if let Err(status) = has_body(ctx) {
            return status;
        }
        if ctx.payload.len() != AN {
            return Status::InvalidPacketLength.into();
        }
        if ctx.store.locker_index_complete(ctx.arrived).is_err() {
            return Status::Internal.into();
        }
        let coins = ctx
            .store
            .locker_coins(&payload::an(ctx.payload), ctx.arrived);
        if coins.is_empty() {
            return Status::AllFail.into();
        }
        let body = coins.len() * COIN_REF;
        if ctx.transport == Transport::Udp && udp_answer_len(ctx, body) > UDP_MAX_DATAGRAM {
            return Status::InvalidPacketLength.into();
        }
        output.reserve(body);
        for coin in coins {
            output.push(coin.denomination.to_be_bytes()[0]);
            output.extend_from_slice(&coin.serial.to_be_bytes());
        }
        Status::AllPass.into()
    }
}

/// The length of an answer carrying `body` bytes of output: its header, the output,
/// the HMAC of types 4 and 5, and the trailer.
fn udp_answer_len(ctx: &RequestContext<'_>, body: usize) -> usize {
    let (header, hmac) = if ctx.encryption.is_aes256() {
        (48, 32)
    } else {
        (32, 0)
    };
    header + body + hmac + 2
}

const REMOVE_ENTRY: usize = COIN_REF + AN;

impl Command for Remove {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        if let Err(status) = has_body(ctx) {
            return status;
        }
        let len = ctx.payload.len();
        if len < AN + REMOVE_ENTRY {
            return Status::InvalidPacketLength.into();
        }
        if (len - AN) % REMOVE_ENTRY != 0 {
            return Status::CoinsNotDiv.into();
        }
        let (key, entries) = ctx.payload.split_at(AN);
        let key = payload::an(key);
        let entries: Vec<&[u8]> = entries.chunks_exact(REMOVE_ENTRY).collect();
        let coins: Vec<CoinId> = entries.iter().map(|e| payload::coin(e)).collect();
        if has_duplicate(&coins) {
            return INVALID_PARAMETER;
        }
        if ctx.store.locker_index_complete(ctx.arrived).is_err() {
            return Status::Internal.into();
        }
        if ctx.store.locker_coins(&key, ctx.arrived).is_empty() {
            return Status::AllFail.into();
        }
        let mfs = self.clock.mfs();
        #[cfg(raida_mutants)]
        let planted = raida_core::mutants::active(raida_core::mutants::Mutant::RemoveNoAnCheck);
        #[cfg(not(raida_mutants))]
        let planted = false;
        let mut passed = vec![false; coins.len()];
        // One compare-and-set per coin, all inside one modify: a coin passes only while
        // its current AN is the key (never because an index once listed it).
        let changed = ctx.store.modify(&coins, ctx.arrived, &mut |current, new| {
            for (i, entry) in entries.iter().enumerate() {
                if current[i].is_some_and(|r| r.an == key || planted) {
                    passed[i] = true;
                    new[i] = Some(Record {
                        an: payload::an(&entry[COIN_REF..]),
                        status: mfs,
                    });
                }
            }
        });
        if changed.is_err() {
            return Status::Internal.into();
        }
        // floor(n/8) + 1 bytes, with every answer (the deployed server's length).
        output.resize(coins.len() / 8 + 1, 0);
        for (i, _) in passed.iter().enumerate().filter(|(_, &p)| p) {
            output[i / 8] |= 1 << (i % 8);
        }
        let n = passed.iter().filter(|&&p| p).count();
        if n == passed.len() {
            Status::AllPass.into()
        } else if n == 0 {
            Status::AllFail.into()
        } else {
            Status::Mixed.into()
        }
    }
}

/// One locker of a store_multiple_sum request.
struct LockerPut {
    coins: Vec<CoinId>,
    sum: An,
    key: An,
}

/// The bytes of one locker before its coins: NC (2).
const NC_LEN: usize = 2;
/// The least bytes a locker takes in the NL check (the deployed server's 39).
const MIN_LOCKER: usize = NC_LEN + COIN_REF + AN + AN;

/// Parses the lockers of a store_multiple_sum payload, with its checks in order.
fn parse_lockers(payload: &[u8]) -> Result<Vec<LockerPut>, StatusByte> {
    let Some((&nl, mut rest)) = payload.split_first() else {
        return Err(Status::InvalidPacketLength.into());
    };
    let nl = usize::from(nl);
    if nl == 0 {
        return Err(INVALID_PARAMETER);
    }
    if payload.len() < 1 + MIN_LOCKER * nl {
        return Err(Status::InvalidPacketLength.into());
    }
    let mut lockers = Vec::with_capacity(nl);
    for _ in 0..nl {
        let too_short = || StatusByte::from(Status::InvalidPacketLength);
        let (nc, after) = rest.split_at_checked(NC_LEN).ok_or_else(too_short)?;
        let nc = usize::from(u16::from_be_bytes([nc[0], nc[1]]));
        let (coins, after) = after
            .split_at_checked(nc * COIN_REF)
            .ok_or_else(too_short)?;
        let (sum, after) = after.split_at_checked(AN).ok_or_else(too_short)?;
        let (key, after) = after.split_at_checked(AN).ok_or_else(too_short)?;
        lockers.push(LockerPut {
            coins: coins.chunks_exact(COIN_REF).map(payload::coin).collect(),
            sum: payload::an(sum),
            key: payload::an(key),
        });
        rest = after;
    }
    // Bytes after the last locker are ignored.
    let all: Vec<CoinId> = lockers
        .iter()
        .flat_map(|l| l.coins.iter().copied())
        .collect();
    if has_duplicate(&all) {
        return Err(INVALID_PARAMETER);
    }
    Ok(lockers)
}

impl Command for StoreMultipleSum {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        if let Err(status) = has_body(ctx) {
            return status;
        }
        let lockers = match parse_lockers(ctx.payload) {
            Ok(l) => l,
            Err(status) => return status,
        };
        let mfs = self.clock.mfs();
        let mut passed = Vec::with_capacity(lockers.len());
        for locker in &lockers {
            match put(
                ctx.store,
                &locker.coins,
                locker.sum,
                locker.key,
                mfs,
                ctx.arrived,
            ) {
                Ok(outcome) => passed.push(outcome == Put::Passed),
                // The lockers before this one are written and durable; this one and
                // those after it are not.
                Err(_) => return Status::Internal.into(),
            }
        }
        payload::per_coin_answer(&passed, output).into()
    }
}
