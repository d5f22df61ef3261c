//! Payload layouts of PROTOCOL.md section 8a: coin references (5 bytes: denomination,
//! serial big-endian), ANs (16 bytes), and the checks every command makes first.

use raida_core::keys::{An, CoinId};
use raida_core::{RequestContext, Status};

/// A coin reference's length: denomination (1) and serial (4).
pub(crate) const COIN_REF: usize = 5;
/// An AN's length.
pub(crate) const AN: usize = 16;

/// The coin named by the 5 bytes at the start of `b`.
pub(crate) fn coin(b: &[u8]) -> CoinId {
    CoinId::from_bytes([b[0], b[1], b[2], b[3], b[4]])
}

/// The 16 bytes at the start of `b`.
pub(crate) fn an(b: &[u8]) -> An {
    let mut out = [0u8; AN];
    out.copy_from_slice(&b[..AN]);
    out
}

/// The coins of a payload of entries `entry` bytes long, each starting with a coin
/// reference, followed by `fixed` bytes: pushed onto `coins` for
/// [`Command::prefetch_coins`](raida_core::Command::prefetch_coins). Unchecked, like any
/// hint: a payload that is not a whole number of entries names the whole ones.
pub(crate) fn prefetch_refs(payload: &[u8], entry: usize, fixed: usize, coins: &mut Vec<CoinId>) {
    let entries = &payload[..payload.len().saturating_sub(fixed)];
    coins.extend(entries.chunks_exact(entry).map(coin));
}

/// `a ^= b`.
pub(crate) fn xor_into(a: &mut An, b: &An) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// The checks every command of section 8a makes before looking at a coin, in order:
/// no body at all (36), a payload shorter than `min` (16), a payload whose length past
/// `fixed` bytes is not a multiple of `entry` (39), shards 1 and 2 (20). `Ok` holds the
/// number of entries.
pub(crate) fn check(
    ctx: &RequestContext<'_>,
    min: usize,
    fixed: usize,
    entry: usize,
) -> Result<usize, Status> {
    if !ctx.has_body {
        return Err(Status::EmptyRequest);
    }
    let len = ctx.payload.len();
    if len < min {
        return Err(Status::InvalidPacketLength);
    }
    if (len - fixed) % entry != 0 {
        return Err(Status::CoinsNotDiv);
    }
    // Shard 1 is legacy CloudCoin, 2 CloudCoin 2.0: other systems, which the deployed
    // server reaches through code that is not public.
    if matches!(ctx.shard, 1 | 2) {
        return Err(Status::ShardNotAvailable);
    }
    Ok((len - fixed) / entry)
}

/// The answer of a per-coin command: 241 when every coin passed, 242 when none did, else
/// 243 with the bitmap (ceil(n/8) bytes, bit i % 8 of byte i / 8 for coin i) in
/// `output`.
pub(crate) fn per_coin_answer(passed: &[bool], output: &mut Vec<u8>) -> Status {
    let n = passed.iter().filter(|&&p| p).count();
    if n == passed.len() {
        return Status::AllPass;
    }
    if n == 0 {
        return Status::AllFail;
    }
    output.resize(passed.len().div_ceil(8), 0);
    for (i, _) in passed.iter().enumerate().filter(|(_, &p)| p) {
        output[i / 8] |= 1 << (i % 8);
    }
    Status::Mixed
}
