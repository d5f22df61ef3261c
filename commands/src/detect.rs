//! detect (1/10) and detect_sum (1/11): read-only.

use raida_core::keys::{An, CoinId, Record, StoreError};
use raida_core::{Command, RequestContext, Runs, Status, StatusByte};

use crate::payload::{self, AN, COIN_REF};

/// detect (1/10): `n x [coin (5), AN (16)]`; 241 when every AN matches its coin's
/// record, 242 when none does (an unknown coin fails), else 243 and the bitmap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detect;

/// detect_sum (1/11): `n x [coin (5)] + XOR of the n ANs (16)`; 40 when a coin is
/// unknown, 241 when the XOR of the stored ANs equals the sum, else 242.
#[derive(Clone, Copy, Debug, Default)]
pub struct DetectSum;

const DETECT_ENTRY: usize = COIN_REF + AN;

impl Command for Detect {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let n = match payload::check(ctx, DETECT_ENTRY, 0, DETECT_ENTRY) {
            Ok(n) => n,
            Err(status) => return status.into(),
        };
        let mut passed = Vec::with_capacity(n);
        for entry in ctx.payload.chunks_exact(DETECT_ENTRY) {
            let coin = payload::coin(entry);
            match ctx.store.record(coin, ctx.arrived) {
                Ok(record) => {
                    passed.push(record.is_some_and(|r| r.an == payload::an(&entry[COIN_REF..])))
                }
                Err(_) => return Status::Internal.into(),
            }
        }
        payload::per_coin_answer(&passed, output).into()
    }

    fn prefetch_coins(&self, payload: &[u8], coins: &mut Vec<CoinId>) {
        payload::prefetch_refs(payload, DETECT_ENTRY, 0, coins);
    }
}

impl Command for DetectSum {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        let n = match payload::check(ctx, COIN_REF + AN, AN, COIN_REF) {
            Ok(n) => n,
            Err(status) => return status.into(),
        };
        let (coins, sum) = ctx.payload.split_at(n * COIN_REF);
        let records = coins
            .chunks_exact(COIN_REF)
            .map(|c| ctx.store.record(payload::coin(c), ctx.arrived));
        match xor_of(records) {
            Err(_) => Status::Internal.into(),
            Ok(None) => Status::InvalidSnOrDenomination.into(),
            Ok(Some(xor)) if xor == payload::an(sum) => Status::AllPass.into(),
            Ok(Some(_)) => Status::AllFail.into(),
        }
    }

    fn prefetch_coins(&self, payload: &[u8], coins: &mut Vec<CoinId>) {
        payload::prefetch_refs(payload, COIN_REF, AN, coins);
    }
}

/// The XOR of the records' ANs; `None` when a coin is unknown.
pub(crate) fn xor_of(
    records: impl Iterator<Item = Result<Option<Record>, StoreError>>,
) -> Result<Option<An>, StoreError> {
    let mut xor = [0u8; AN];
    for record in records {
        match record? {
            Some(r) => payload::xor_into(&mut xor, &r.an),
            None => return Ok(None),
        }
    }
    Ok(Some(xor))
}
