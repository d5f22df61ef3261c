//! fix (2/80): heals coins on this RAIDA with tickets the other RAIDAs issued
//! (PROTOCOL.md 8b, the 2/80 row, "The peer call", "Votes", "New AN").
//!
//! Payload: `n x [coin ref (5)] + PG (16) + 25 x ticket (4, BE)`; position i of the
//! tickets is the ticket RAIDA i issued. The command checks the payload, then asks the
//! engine to claim every nonzero ticket from its RAIDA (except its own position) with a
//! validate_ticket (2/50) call of exactly 55 bytes; the engine calls the peers in
//! parallel, holds no worker while they answer, bounds the fixes in flight
//! (`max_fixes`, then 160) and ends every call at the fix's deadline. Once every call
//! has ended, each coin gets one vote from this server and one from every distinct peer
//! whose claim answer lists it; a coin with more than 13 votes is fixed: its record
//! becomes the new AN (MD5 of this RAIDA's id, the coin and PG) with status byte MFS,
//! durably, before the answer (241 all fixed, 242 none, 243 + bitmap).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use md5::{Digest, Md5};
use raida_core::keys::{An, CoinId, Record};
use raida_core::{
    Command, PeerAnswer, PeerCall, PeerPlan, RequestContext, Runs, Status, StatusByte,
};

use super::{HEALING_GROUP, VALIDATE_TICKET};
use crate::clock::Clock;
use crate::payload::{self, AN, COIN_REF};

/// RAIDA servers in a RAIDA (ticket positions in a fix payload).
pub const RAIDA_COUNT: usize = 25;
/// A ticket's length.
const TICKET: usize = 4;
/// The fixed part of a fix payload: PG and the 25 tickets.
const FIXED: usize = AN + RAIDA_COUNT * TICKET;
/// The shortest fix payload: one coin and the fixed part (121 bytes).
const MIN_PAYLOAD: usize = COIN_REF + FIXED;
/// Votes a coin needs more than (its own server's included): the deployed
/// `cnt > TOTAL_RAIDA_SERVERS / 2 + 1`.
pub const VOTES_NEEDED_ABOVE: usize = 13;
/// The challenge of every peer request, and its CRC-32 (PROTOCOL.md 8b's table).
const PEER_CHALLENGE: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x92, 0x70, 0xc9, 0x65,
];
/// A peer response's header length (section 5).
const RESPONSE_HEADER: usize = 32;
/// The largest claim answer body a peer may announce.
const MAX_PEER_BODY: usize = 65_536;

/// fix (2/80): `n x [coin (5)] + PG (16) + 25 x ticket (4)`. Checks (36, 16, 39, 40,
/// then the engine's 160 past `max_fixes`), then claims every nonzero ticket but its
/// own from its RAIDA through the engine's peer calls; a coin vouched for by at least
/// 13 distinct peers (more than 13 votes with this server's own) gets the new AN
/// ([`new_an`]) and status byte MFS, durably before the answer: 241 when every coin is
/// fixed, 242 when none is, else 243 and the bitmap.
#[derive(Debug)]
pub struct Fix {
    clock: Arc<dyn Clock>,
}

impl Fix {
    /// fix, stamping fixed records with `clock`'s MFS.
    pub fn new(clock: Arc<dyn Clock>) -> Fix {
        Fix { clock }
    }
}

/// A fix payload, read.
struct FixPayload {
    coins: Vec<CoinId>,
    pg: An,
    tickets: [u32; RAIDA_COUNT],
}

/// The payload checks of the 2/80 row, in order: no body (36), shorter than 121 bytes
/// (16), not a whole number of coins before the fixed part (39). The shard is not
/// consulted (8b).
fn parse(ctx: &RequestContext<'_>) -> Result<FixPayload, Status> {
    if !ctx.has_body {
        return Err(Status::EmptyRequest);
    }
    let len = ctx.payload.len();
    if len < MIN_PAYLOAD {
        return Err(Status::InvalidPacketLength);
    }
    if (len - FIXED) % COIN_REF != 0 {
        return Err(Status::CoinsNotDiv);
    }
    let n = (len - FIXED) / COIN_REF;
    let (coins, rest) = ctx.payload.split_at(n * COIN_REF);
    let coins = coins.chunks_exact(COIN_REF).map(payload::coin).collect();
    let pg = payload::an(rest);
    let mut tickets = [0u32; RAIDA_COUNT];
    for (t, b) in tickets.iter_mut().zip(rest[AN..].chunks_exact(TICKET)) {
        *t = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(FixPayload { coins, pg, tickets })
}

/// The exact 55 bytes a fix sends RAIDA `peer` to claim `ticket` (PROTOCOL.md 8b's
/// table): a type-0 validate_ticket (2/50) with the fixed challenge, whose payload is
/// this server's raida id `own` and the ticket.
pub fn peer_request(own: u8, peer: u8, coin_id: u16, ticket: u32) -> [u8; 55] {
    let mut r = [0u8; 55];
    r[0] = 1;
    r[2] = peer;
    r[4] = HEALING_GROUP;
    r[5] = VALIDATE_TICKET;
    r[6..8].copy_from_slice(&coin_id.to_be_bytes());
    r[8] = 1;
    // Byte 16: type 0; 17..21: no key; 22..23: body length 23.
    r[23] = 23;
    r[32..48].copy_from_slice(&PEER_CHALLENGE);
    r[48] = own;
    r[49..53].copy_from_slice(&ticket.to_be_bytes());
    r[53] = 0x3E;
    r[54] = 0x3E;
    r
}

/// The coins a peer's claim answer lists, or `None` when it gives no votes: not a
/// response, status other than 250, body size S outside 7..=65,536 or with
/// (S - 2) % 5 != 0, a body that is not exactly S bytes or does not end in `3e 3e`.
/// Each coin once, however often it is listed.
pub fn listed_coins(answer: &PeerAnswer) -> Option<BTreeSet<CoinId>> {
    let response = answer.result.as_ref().ok()?;
    let header = response.get(..RESPONSE_HEADER)?;
    if header[2] != Status::Success.code() {
        return None;
    }
    let s =
        (usize::from(header[9]) << 16) | (usize::from(header[10]) << 8) | usize::from(header[11]);
    if !(7..=MAX_PEER_BODY).contains(&s) || (s - 2) % COIN_REF != 0 {
        return None;
    }
    let body = response.get(RESPONSE_HEADER..)?;
    if body.len() != s || body[s - 2..] != [0x3E, 0x3E] {
        return None;
    }
    Some(
        body[..s - 2]
            .chunks_exact(COIN_REF)
            .map(payload::coin)
            .collect(),
    )
}

/// A fixed coin's new AN: MD5(raida id (1) || denomination (1, two's complement) ||
/// serial (4, BE) || PG (16)) (cmd_healing.c 496-503; qmail-client's
/// `calculate_new_an`).
pub fn new_an(raida_id: u8, coin: CoinId, pg: &An) -> An {
    let mut md5 = Md5::new();
    md5.update([raida_id, coin.denomination as u8]);
    md5.update(coin.serial.to_be_bytes());
    md5.update(pg);
    md5.finalize().into()
}

/// votes(c) for every coin of the fix: 1 (this server) + the distinct peers whose list
/// contains c. Coins a list names that are not in the fix are ignored.
fn votes(coins: &[CoinId], answers: &[PeerAnswer]) -> BTreeMap<CoinId, usize> {
    let mut votes: BTreeMap<CoinId, usize> = coins.iter().map(|c| (*c, 1)).collect();
    let mut voted = BTreeSet::new();
    for answer in answers {
        if !voted.insert(answer.raida) {
            // One peer, one vote per coin (the engine calls a peer once anyway).
            continue;
        }
        let Some(listed) = listed_coins(answer) else {
            continue;
        };
        #[cfg(raida_mutants)]
        if raida_core::mutants::active(raida_core::mutants::Mutant::VotesPerOccurrence) {
            // The planted bug: every listed occurrence is a vote (the list's repeats
            // included), not one per distinct peer.
            let body = answer.body().unwrap_or_default();
            for coin in body[..body.len().saturating_sub(2)]
                .chunks_exact(COIN_REF)
                .map(payload::coin)
            {
                if let Some(v) = votes.get_mut(&coin) {
                    *v += 1;
                }
            }
            continue;
        }
        for coin in listed {
            if let Some(v) = votes.get_mut(&coin) {
                *v += 1;
            }
        }
    }
    votes
}

impl Command for Fix {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        // Reached only without the engine's peer calls (never by the engine, which
        // runs `peer_calls` first): as if no peer answered.
        self.finish(ctx, &[], output)
    }

    fn peer_calls(&self, ctx: &RequestContext<'_>) -> PeerPlan {
        let fix = match parse(ctx) {
            Ok(fix) => fix,
            Err(status) => return PeerPlan::Reply(status.into()),
        };
        for coin in &fix.coins {
            match ctx.store.record(*coin, ctx.arrived) {
                Ok(Some(_)) => {}
                Ok(None) => return PeerPlan::Reply(Status::InvalidSnOrDenomination.into()),
                Err(_) => return PeerPlan::Reply(Status::Internal.into()),
            }
        }
        let calls = fix
            .tickets
            .iter()
            .enumerate()
            .filter(|&(i, &ticket)| ticket != 0 && i != usize::from(ctx.raida_id))
            .map(|(i, &ticket)| {
                let peer = i as u8;
                PeerCall {
                    raida: peer,
                    request: peer_request(ctx.raida_id, peer, ctx.coin_id, ticket).to_vec(),
                }
            })
            .collect();
        PeerPlan::Calls(calls)
    }

    fn finish(
        &self,
        ctx: &RequestContext<'_>,
        answers: &[PeerAnswer],
        output: &mut Vec<u8>,
    ) -> StatusByte {
        let fix = match parse(ctx) {
            Ok(fix) => fix,
            Err(status) => return status.into(),
        };
        let votes = votes(&fix.coins, answers);
        let fixed: BTreeSet<CoinId> = votes
            .iter()
            .filter(|&(_, &v)| v > VOTES_NEEDED_ABOVE)
            .map(|(c, _)| *c)
            .collect();
        let mfs = self.clock.mfs();
        let mut passed = vec![false; fix.coins.len()];
        let changed = ctx
            .store
            .modify(&fix.coins, ctx.arrived, &mut |current, new| {
                let mut written = BTreeSet::new();
                for (i, coin) in fix.coins.iter().enumerate() {
                    let known = current.get(i).is_some_and(Option::is_some);
                    passed[i] = known && fixed.contains(coin);
                    // A coin at several positions gets one verdict and one write.
                    if passed[i] && written.insert(*coin) {
                        new[i] = Some(Record {
                            an: new_an(ctx.raida_id, *coin, &fix.pg),
                            status: mfs,
                        });
                    }
                }
            });
        #[cfg(raida_mutants)]
        let changed =
            if raida_core::mutants::active(raida_core::mutants::Mutant::FixAckBeforeDurable) {
                // The planted bug: the write's failure is ignored, so the answer says fixed
                // for records that never became durable.
                Ok(())
            } else {
                changed
            };
        match changed {
            Ok(()) => payload::per_coin_answer(&passed, output).into(),
            Err(_) => {
                output.clear();
                Status::Internal.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn the_peer_request_is_the_captured_one() {
        // PROTOCOL.md 8b: RAIDA 7 claiming ticket 0x11111100 from RAIDA 0, coin id 6.
        let captured = hex(
            "0100000002320006 0100000000000000 0000000000000017 0000000000000000
             000102030405060708090a0b 9270c965 07 11111100 3e3e",
        );
        assert_eq!(peer_request(7, 0, 6, 0x1111_1100).to_vec(), captured);
    }

    #[test]
    fn the_new_an_matches_the_protocol_vectors() {
        let pg: An = std::array::from_fn(|i| i as u8);
        let an = new_an(7, CoinId::new(1, 5000), &pg);
        assert_eq!(an.to_vec(), hex("e8885a7e9ecf1a3d3947b2b75667dcbb"));
        let an = new_an(7, CoinId::new(-3, 16_777_217), &pg);
        assert_eq!(an.to_vec(), hex("453b80696dc5d064b11c3124c04aa69d"));
    }

    fn answer(status: u8, body: &[u8]) -> PeerAnswer {
        let mut r = vec![0u8; 32];
        r[2] = status;
        r[9..12].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        r.extend_from_slice(body);
        PeerAnswer {
            raida: 0,
            result: Ok(r),
        }
    }

    #[test]
    fn a_claim_answer_is_read_by_the_protocol_rules() {
        // The captured claim answer of 8b: 1:5000 and -3:70000.
        let good = answer(250, &hex("0100001388 fd00011170 3e3e"));
        let listed = listed_coins(&good).expect("votes");
        assert_eq!(
            listed.into_iter().collect::<Vec<_>>(),
            [CoinId::new(-3, 70_000), CoinId::new(1, 5000)]
        );
        // Status other than 250; S too small; (S - 2) % 5 != 0; no trailer.
        assert!(listed_coins(&answer(43, &hex("0100001388 3e3e"))).is_none());
        assert!(listed_coins(&answer(250, &hex("3e3e"))).is_none());
        assert!(listed_coins(&answer(250, &hex("0100001388 00 3e3e"))).is_none());
        assert!(listed_coins(&answer(250, &hex("0100001388 0000"))).is_none());
        // A coin listed many times is one coin.
        let many = answer(250, &hex("0100001388 0100001388 0100001388 3e3e"));
        assert_eq!(listed_coins(&many).map(|l| l.len()), Some(1));
    }
}
