//! pown (1/20) and pown_sum (1/21): compare and set, durably.

use std::collections::BTreeMap;
use std::sync::Arc;

use raida_core::keys::{CoinId, Record};
use raida_core::{Command, RequestContext, Runs, Status, StatusByte};

use crate::clock::Clock;
use crate::payload::{self, AN, COIN_REF};

/// pown (1/20): `n x [coin (5), AN (16), PAN (16)]`. Each coin whose AN matches its
/// record gets the PAN and the status byte MFS; answered as detect (241, 242, 243 and
/// the bitmap of the coins that changed). Atomic per coin: of two concurrent powns of
/// one coin with the same AN exactly one passes. Answered only once the new records
/// are durable.
#[derive(Debug)]
pub struct Pown {
    clock: Arc<dyn Clock>,
}

/// pown_sum (1/21): `n x [coin (5)] + XOR of the n ANs (16) + delta (16)`. 40 when a
/// coin is unknown; when the XOR of the stored ANs equals the sum, every record's
/// AN ^= delta with status byte MFS, 241; else nothing changes, 242. All or nothing.
#[derive(Debug)]
pub struct PownSum {
    clock: Arc<dyn Clock>,
}

impl Pown {
    /// pown, stamping records with `clock`'s MFS.
    pub fn new(clock: Arc<dyn Clock>) -> Pown {
        Pown { clock }
    }
}

impl PownSum {
    /// pown_sum, stamping records with `clock`'s MFS.
    pub fn new(clock: Arc<dyn Clock>) -> PownSum {
        PownSum { clock }
    }
}

const POWN_ENTRY: usize = COIN_REF + AN + AN;

impl Command for Pown {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let n = match payload::check(ctx, POWN_ENTRY, 0, POWN_ENTRY) {
            Ok(n) => n,
            Err(status) => return status.into(),
        };
        let entries: Vec<&[u8]> = ctx.payload.chunks_exact(POWN_ENTRY).collect();
        let coins: Vec<CoinId> = entries.iter().map(|e| payload::coin(e)).collect();
        let mfs = self.clock.mfs();
        let mut passed = vec![false; n];
        let changed = ctx.store.modify(&coins, ctx.arrived, &mut |current, new| {
            // In request order: a coin named twice compares its second AN with what the
            // first entry left (the deployed server's order).
            let mut now: BTreeMap<CoinId, Option<Record>> = BTreeMap::new();
            for (i, entry) in entries.iter().enumerate() {
                let record = *now.entry(coins[i]).or_insert(current[i]);
                let matches = record.is_some_and(|r| r.an == payload::an(&entry[COIN_REF..]));
                passed[i] = matches;
                if matches {
                    let written = Record {
                        an: payload::an(&entry[COIN_REF + AN..]),
                        status: mfs,
                    };
                    new[i] = Some(written);
                    now.insert(coins[i], Some(written));
                }
            }
        });
        match changed {
            Ok(()) => payload::per_coin_answer(&passed, output).into(),
            // Nothing was written: the client learns nothing passed.
            Err(_) => {
                output.clear();
                Status::Internal.into()
            }
        }
    }

    fn prefetch_coins(&self, payload: &[u8], coins: &mut Vec<CoinId>) {
        payload::prefetch_refs(payload, POWN_ENTRY, 0, coins);
    }
}

impl Command for PownSum {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        let n = match payload::check(ctx, COIN_REF + AN + AN, AN + AN, COIN_REF) {
            Ok(n) => n,
            Err(status) => return status.into(),
        };
        let (coins, tail) = ctx.payload.split_at(n * COIN_REF);
        let coins: Vec<CoinId> = coins.chunks_exact(COIN_REF).map(payload::coin).collect();
        let (sum, delta) = (payload::an(tail), payload::an(&tail[AN..]));
        let mfs = self.clock.mfs();
        let mut outcome = Status::AllFail;
        let changed = ctx.store.modify(&coins, ctx.arrived, &mut |current, new| {
            let mut xor = [0u8; AN];
            for record in current {
                match record {
                    Some(r) => payload::xor_into(&mut xor, &r.an),
                    None => {
                        outcome = Status::InvalidSnOrDenomination;
                        return;
                    }
                }
            }
            if xor != sum {
                outcome = Status::AllFail;
                return;
            }
            outcome = Status::AllPass;
            // Every coin's AN ^= delta, in request order (a coin named twice gets it
            // twice, as the deployed server does).
            let mut now: BTreeMap<CoinId, Record> = BTreeMap::new();
            for (i, coin) in coins.iter().enumerate() {
                let Some(old) = now.get(coin).copied().or(current[i]) else {
                    continue;
                };
                let mut an = old.an;
                payload::xor_into(&mut an, &delta);
                let written = Record { an, status: mfs };
                new[i] = Some(written);
                now.insert(*coin, written);
            }
        });
        match changed {
            Ok(()) => outcome.into(),
            Err(_) => Status::Internal.into(),
        }
    }

    fn prefetch_coins(&self, payload: &[u8], coins: &mut Vec<CoinId>) {
        payload::prefetch_refs(payload, COIN_REF, AN + AN, coins);
    }
}
