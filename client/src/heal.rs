//! A wallet's heal of fracked coins across a RAIDA network (PROTOCOL.md 8b), in three
//! rounds of requests, each sent to its RAIDAs at once:
//!
//! 1. **Tickets.** get_ticket (2/40) on every RAIDA with each coin's AN on that RAIDA.
//!    A coin *passes* on a RAIDA whose answer says its AN matched (that RAIDA's ticket
//!    then vouches for it) and is *fracked* on a RAIDA that answered and says it did not.
//! 2. **Fix.** A coin can be healed when at least [`VOUCHERS_NEEDED`] RAIDAs vouch for
//!    it: the fixing server counts its own vote and needs more than 13. Each RAIDA k
//!    where such coins are fracked gets one fix (2/80) naming exactly those coins, one
//!    PG for the whole heal, and the tickets of the other RAIDAs (position i the ticket
//!    RAIDA i issued; 0 where it issued none, and at k's own position, which the server
//!    never claims). A coin the fix says it fixed now has, on k, the AN
//!    [`new_an`](healing::new_an)`(k, coin, PG)`.
//! 3. **Verify.** find (2/60) on every RAIDA with, per coin, the AN the wallet expects
//!    there now (the new AN where a fix was sent, else the AN it had) and the AN it had:
//!    1 says the record holds the first, 2 the second, 0 neither (still fracked). This
//!    also settles a fix whose answer was lost.
//!
//! Only the coins fracked on k go into k's fix: a fix changes k's records, and k's ticket
//! vouches for a coin only while k's record still holds the AN that matched at issue, so
//! fixing a coin that passes on k would withdraw k's vote from the fixes the other
//! fracked RAIDAs run at the same time. No fix is sent for a coin with fewer than 13
//! vouchers: it cannot pass, and it would spend, for k, the claims of the tickets it
//! carries (a RAIDA claims each ticket once per index).
//!
//! ```no_run
//! use std::time::Duration;
//! use raida_client::heal::{heal, HealCoin, HealSettings};
//! use raida_client::{Coin, Keys, Timeouts, Transport};
//!
//! let raidas: Vec<std::net::SocketAddr> =
//!     (0..25).map(|i| ([127, 0, 0, 1], 40000 + i).into()).collect();
//! let coin = HealCoin { coin: Coin::new(1, 5), ans: vec![[0x11; 16]; 25] };
//! let settings = HealSettings {
//!     transport: Transport::Tcp,
//!     keys: Keys::None,
//!     coin_id: 0,
//!     timeouts: Timeouts::uniform(Duration::from_secs(2)),
//!     fix_timeouts: Timeouts::uniform(Duration::from_secs(20)),
//!     pg: [0x42; 16], // draw it from a CSPRNG
//! };
//! let report = heal(&raidas, &[coin], &settings)?;
//! for c in &report.coins {
//!     println!("{} {} {}", c.coin, c.outcome.name(), raida_client::heal::pown_string(&c.after));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use raida_wire::{An, StatusByte};

use crate::error::{BuildError, ClientError, ErrorKind, RandomError};
use crate::healing::{self, FindValue, Tickets, RAIDA_COUNT, VOUCHERS_NEEDED};
use crate::request::{BuiltRequest, Coin, Keys, Request};
use crate::transport::{exchange, Reply, Timeouts, Transport};

/// A coin to heal, with its AN on each RAIDA (index i = RAIDA i).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealCoin {
    /// The coin.
    pub coin: Coin,
    /// Its AN on each RAIDA of the network, in raida order.
    pub ans: Vec<An>,
}

/// How every request of a heal is sent.
#[derive(Clone, Debug)]
pub struct HealSettings {
    /// TCP or UDP (the servers' own calls to each other are TCP regardless).
    pub transport: Transport,
    /// The key material of every request (the same on every RAIDA).
    pub keys: Keys,
    /// Request bytes 6..7.
    pub coin_id: u16,
    /// Timeouts of get_ticket and find.
    pub timeouts: Timeouts,
    /// Timeouts of fix, which answers only once the server's own calls to its peers
    /// have ended (up to its `[healing] peer_timeout_ms`, 8 s by default).
    pub fix_timeouts: Timeouts,
    /// The PG of every fix: the new ANs derive from it. Draw it from a CSPRNG.
    pub pg: An,
}

/// What a heal could not even start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealError {
    /// The network or the coins do not describe a heal.
    #[error("{0}")]
    Input(String),
    /// A request could not be built (e.g. too many coins for one body).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The OS random source failed (nonce, challenge, echo bytes).
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// One RAIDA's mark for one coin, as wallets write the pown string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    /// `p`: the RAIDA's record holds the wallet's AN.
    Pass,
    /// `f`: the RAIDA answered that its record does not.
    Fail,
    /// `n`: no answer (refused, reset, timed out).
    NoReply,
    /// `e`: an answer that says nothing about the coin (a refusal such as 40, 42, 160,
    /// or a response that does not verify).
    Error,
}

impl Mark {
    /// Its letter in a pown string: `p`, `f`, `n`, `e`.
    pub const fn letter(self) -> char {
        match self {
            Mark::Pass => 'p',
            Mark::Fail => 'f',
            Mark::NoReply => 'n',
            Mark::Error => 'e',
        }
    }
}

/// The pown string of `marks`: one letter per RAIDA, in raida order.
pub fn pown_string(marks: &[Mark]) -> String {
    marks.iter().map(|m| m.letter()).collect()
}

/// How one request to one RAIDA went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// The server answered, and the answer fits its status.
    Answered {
        /// The status.
        status: StatusByte,
        /// From sending the request to reading the whole response.
        round_trip: Duration,
        /// The server's own time (response bytes 12..15 or 4..7).
        server_micros: u32,
    },
    /// No answer.
    NoAnswer {
        /// What kind of failure.
        kind: ErrorKind,
        /// What happened.
        message: String,
    },
    /// An answer that does not verify, or whose body does not fit its status.
    Invalid {
        /// What is wrong with it.
        message: String,
    },
}

impl Call {
    fn answered(reply: &Reply) -> Call {
        Call::Answered {
            status: reply.response.header.status,
            round_trip: reply.round_trip,
            server_micros: reply.response.header.server_micros,
        }
    }

    fn failed(e: &ClientError) -> Call {
        if e.kind() == ErrorKind::InvalidResponse {
            Call::Invalid {
                message: e.to_string(),
            }
        } else {
            Call::NoAnswer {
                kind: e.kind(),
                message: e.to_string(),
            }
        }
    }

    /// What one request came to, and its answer parsed by `parse` (from the status and
    /// the body): no answer, an answer that does not fit its status (`Invalid`), or
    /// the parsed answer (`None` when its status says nothing per coin).
    fn of<T>(
        result: &Result<Reply, ClientError>,
        parse: impl FnOnce(StatusByte, &[u8]) -> Result<Option<T>, healing::HealingAnswerError>,
    ) -> (Call, Option<T>) {
        match result {
            Err(e) => (Call::failed(e), None),
            Ok(reply) => {
                let r = &reply.response;
                match parse(r.header.status, &r.body) {
                    Ok(parsed) => (Call::answered(reply), parsed),
                    Err(e) => (
                        Call::Invalid {
                            message: e.to_string(),
                        },
                        None,
                    ),
                }
            }
        }
    }

    /// The mark every coin of a request gets when its answer says nothing per coin.
    fn blanket_mark(&self) -> Mark {
        match self {
            Call::NoAnswer { .. } => Mark::NoReply,
            _ => Mark::Error,
        }
    }
}

/// The fix a heal sent one RAIDA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixSent {
    /// The coins it named, in payload order.
    pub coins: Vec<Coin>,
    /// The tickets it carried.
    pub tickets: Tickets,
    /// How it went.
    pub call: Call,
    /// Per coin, whether the answer says it was fixed (`None`: no per-coin answer).
    pub fixed: Option<Vec<bool>>,
}

/// What a heal did with one RAIDA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaidaReport {
    /// Its raida id (its index in the network).
    pub raida: u8,
    /// Its address.
    pub addr: SocketAddr,
    /// get_ticket.
    pub get_ticket: Call,
    /// The ticket it issued, if any.
    pub ticket: Option<u32>,
    /// The fix sent to it, if any.
    pub fix: Option<FixSent>,
    /// find, the verification.
    pub find: Call,
}

/// How a coin came out of a heal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoinOutcome {
    /// It passed on every RAIDA before and after: nothing to fix.
    Authentic,
    /// It was fracked somewhere and now passes on every RAIDA.
    Healed,
    /// Fracked somewhere, but fewer than [`VOUCHERS_NEEDED`] RAIDAs vouch for it: no
    /// fix can heal it (it is not sent).
    TooFewVouchers,
    /// It does not pass on every RAIDA afterwards (a fix refused it, or some RAIDA did
    /// not answer).
    NotHealed,
}

impl CoinOutcome {
    /// `authentic`, `healed`, `too_few_vouchers`, `not_healed`.
    pub const fn name(self) -> &'static str {
        match self {
            CoinOutcome::Authentic => "authentic",
            CoinOutcome::Healed => "healed",
            CoinOutcome::TooFewVouchers => "too_few_vouchers",
            CoinOutcome::NotHealed => "not_healed",
        }
    }
}

/// What a heal did with one coin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinReport {
    /// The coin.
    pub coin: Coin,
    /// Per RAIDA, from get_ticket.
    pub before: Vec<Mark>,
    /// The RAIDAs whose ticket vouches for it.
    pub vouchers: usize,
    /// The RAIDAs where it was fracked (answered that its AN failed).
    pub fracked: Vec<u8>,
    /// The RAIDAs a fix was sent to for it.
    pub fix_sent: Vec<u8>,
    /// The RAIDAs whose fix answer says it was fixed.
    pub fixed: Vec<u8>,
    /// Per RAIDA, from find.
    pub after: Vec<Mark>,
    /// Its AN on each RAIDA afterwards, as find confirmed it (where find did not
    /// answer: the new AN where the fix said it was fixed, else the AN it had).
    pub ans: Vec<An>,
    /// How it came out.
    pub outcome: CoinOutcome,
}

/// What a heal did, per RAIDA and per coin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealReport {
    /// The PG of every fix.
    pub pg: An,
    /// Per RAIDA, in raida order.
    pub raidas: Vec<RaidaReport>,
    /// Per coin, in the order given.
    pub coins: Vec<CoinReport>,
}

impl HealReport {
    /// Whether every coin passes on every RAIDA afterwards.
    pub fn all_pass(&self) -> bool {
        self.coins
            .iter()
            .all(|c| matches!(c.outcome, CoinOutcome::Authentic | CoinOutcome::Healed))
    }
}

/// Heals `coins` across the network `raidas` (index i = RAIDA i, 1..=25 of them) as the
/// module docs describe, and reports per RAIDA and per coin. `Err` only when it cannot
/// start: a RAIDA's failure is in the report.
pub fn heal(
    raidas: &[SocketAddr],
    coins: &[HealCoin],
    settings: &HealSettings,
) -> Result<HealReport, HealError> {
    check_input(raidas, coins)?;
    let n = raidas.len();
    let ids: Vec<u8> = (0..n).map(|i| i as u8).collect();

    // 1. Tickets.
    let requests = ids
        .iter()
        .map(|&r| {
            let pairs: Vec<(Coin, An)> = coins
                .iter()
                .map(|c| (c.coin, c.ans[usize::from(r)]))
                .collect();
            build(
                settings,
                r,
                healing::GET_TICKET,
                healing::get_ticket_payload(&pairs),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let replies = exchange_all(
        raidas,
        &ids,
        &requests,
        settings.transport,
        &settings.timeouts,
    );
    let mut reports = Vec::with_capacity(n);
    // before[coin][raida]
    let mut before = vec![vec![Mark::NoReply; n]; coins.len()];
    for (i, result) in replies.iter().enumerate() {
        let (call, answer) = Call::of(result, |status, body| {
            healing::ticket_answer(status, body, coins.len())
        });
        for (c, marks) in before.iter_mut().enumerate() {
            marks[i] = match &answer {
                Some(a) if a.passed[c] => Mark::Pass,
                Some(_) => Mark::Fail,
                None => call.blanket_mark(),
            };
        }
        reports.push(RaidaReport {
            raida: ids[i],
            addr: raidas[i],
            get_ticket: call,
            ticket: answer.and_then(|a| a.ticket),
            fix: None,
            find: Call::Invalid {
                message: "not sent".into(),
            },
        });
    }

    // 2. Fix: per RAIDA k, the coins fracked on k that enough RAIDAs vouch for.
    let vouchers: Vec<usize> = before
        .iter()
        .map(|m| m.iter().filter(|&&m| m == Mark::Pass).count())
        .collect();
    let to_fix: Vec<Vec<usize>> = (0..n)
        .map(|k| {
            (0..coins.len())
                .filter(|&c| before[c][k] == Mark::Fail && vouchers[c] >= VOUCHERS_NEEDED)
                .collect()
        })
        .collect();
    let issued: Vec<Option<u32>> = reports.iter().map(|r| r.ticket).collect();
    let fixing: Vec<usize> = (0..n).filter(|&k| !to_fix[k].is_empty()).collect();
    let mut fix_requests = Vec::with_capacity(fixing.len());
    let mut fix_tickets = Vec::with_capacity(fixing.len());
    for &k in &fixing {
        let tickets = fix_tickets_for(&issued, k);
        let list: Vec<Coin> = to_fix[k].iter().map(|&c| coins[c].coin).collect();
        let payload = healing::fix_payload(&list, &settings.pg, &tickets);
        fix_requests.push(build(settings, ids[k], healing::FIX, payload)?);
        fix_tickets.push(tickets);
    }
    let fix_addrs: Vec<SocketAddr> = fixing.iter().map(|&k| raidas[k]).collect();
    let fix_ids: Vec<u8> = fixing.iter().map(|&k| ids[k]).collect();
    let fix_replies = exchange_all(
        &fix_addrs,
        &fix_ids,
        &fix_requests,
        settings.transport,
        &settings.fix_timeouts,
    );
    // expected[coin][raida]: the AN the wallet expects there now.
    let mut expected: Vec<Vec<An>> = coins.iter().map(|c| c.ans.clone()).collect();
    let mut fix_sent = vec![Vec::new(); coins.len()];
    let mut fixed = vec![Vec::new(); coins.len()];
    for ((&k, result), tickets) in fixing.iter().zip(&fix_replies).zip(fix_tickets) {
        let list = &to_fix[k];
        let (call, results) = Call::of(result, |status, body| {
            healing::fix_results(status, body, list.len())
        });
        for (j, &c) in list.iter().enumerate() {
            expected[c][k] = healing::new_an(ids[k], coins[c].coin, &settings.pg);
            fix_sent[c].push(ids[k]);
            if results.as_ref().is_some_and(|r| r[j]) {
                fixed[c].push(ids[k]);
            }
        }
        reports[k].fix = Some(FixSent {
            coins: list.iter().map(|&c| coins[c].coin).collect(),
            tickets,
            call,
            fixed: results,
        });
    }

    // 3. Verify: find (expected AN, AN it had) on every RAIDA.
    let requests = ids
        .iter()
        .map(|&r| {
            let i = usize::from(r);
            let triples: Vec<(Coin, An, An)> = coins
                .iter()
                .enumerate()
                .map(|(c, coin)| (coin.coin, expected[c][i], coin.ans[i]))
                .collect();
            build(settings, r, healing::FIND, healing::find_payload(&triples))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let replies = exchange_all(
        raidas,
        &ids,
        &requests,
        settings.transport,
        &settings.timeouts,
    );
    let mut after = vec![vec![Mark::NoReply; n]; coins.len()];
    // Where find does not answer, the wallet keeps what the fix answer says.
    let mut ans: Vec<Vec<An>> = coins.iter().map(|c| c.ans.clone()).collect();
    for (c, list) in fixed.iter().enumerate() {
        for &k in list {
            ans[c][usize::from(k)] = expected[c][usize::from(k)];
        }
    }
    for (i, result) in replies.iter().enumerate() {
        let (call, values) = Call::of(result, |status, body| {
            healing::find_values(status, body, coins.len())
        });
        for c in 0..coins.len() {
            after[c][i] = match values.as_ref().map(|v| v[c]) {
                Some(FindValue::An) => {
                    ans[c][i] = expected[c][i];
                    Mark::Pass
                }
                Some(FindValue::Pan) => {
                    ans[c][i] = coins[c].ans[i];
                    Mark::Pass
                }
                Some(FindValue::Neither) => Mark::Fail,
                None => call.blanket_mark(),
            };
        }
        reports[i].find = call;
    }

    let coin_reports = coins
        .iter()
        .enumerate()
        .map(|(c, coin)| {
            let fracked: Vec<u8> = (0..n)
                .filter(|&k| before[c][k] == Mark::Fail)
                .map(|k| ids[k])
                .collect();
            let outcome = outcome(&before[c], &after[c], vouchers[c]);
            CoinReport {
                coin: coin.coin,
                before: before[c].clone(),
                vouchers: vouchers[c],
                fracked,
                fix_sent: fix_sent[c].clone(),
                fixed: fixed[c].clone(),
                after: after[c].clone(),
                ans: ans[c].clone(),
                outcome,
            }
        })
        .collect();
    Ok(HealReport {
        pg: settings.pg,
        raidas: reports,
        coins: coin_reports,
    })
}

/// A coin's outcome from its marks before and after, and its vouchers.
pub fn outcome(before: &[Mark], after: &[Mark], vouchers: usize) -> CoinOutcome {
    let all_pass = |m: &[Mark]| m.iter().all(|&m| m == Mark::Pass);
    if all_pass(after) {
        if all_pass(before) {
            CoinOutcome::Authentic
        } else {
            CoinOutcome::Healed
        }
    } else if before.contains(&Mark::Fail) && vouchers < VOUCHERS_NEEDED {
        CoinOutcome::TooFewVouchers
    } else {
        CoinOutcome::NotHealed
    }
}

/// The tickets of the fix sent to RAIDA `k`: position i the ticket RAIDA i issued (0
/// where none), 0 at `k`'s own position and past the network's end.
pub fn fix_tickets_for(issued: &[Option<u32>], k: usize) -> Tickets {
    let mut tickets = [0u32; RAIDA_COUNT];
    for (i, (slot, ticket)) in tickets.iter_mut().zip(issued).enumerate() {
        if i != k {
            *slot = ticket.unwrap_or(0);
        }
    }
    tickets
}

fn check_input(raidas: &[SocketAddr], coins: &[HealCoin]) -> Result<(), HealError> {
    if raidas.is_empty() || raidas.len() > RAIDA_COUNT {
        return Err(HealError::Input(format!(
            "expected a network of 1..={RAIDA_COUNT} RAIDAs, got {}",
            raidas.len()
        )));
    }
    if coins.is_empty() {
        return Err(HealError::Input(
            "expected at least one coin to heal, got none".into(),
        ));
    }
    for c in coins {
        if c.ans.len() != raidas.len() {
            return Err(HealError::Input(format!(
                "coin {}: expected one AN per RAIDA ({}), got {}",
                c.coin,
                raidas.len(),
                c.ans.len()
            )));
        }
    }
    Ok(())
}

/// A request of (2, `command`) to RAIDA `raida` with `payload`, fresh random fields.
fn build(
    settings: &HealSettings,
    raida: u8,
    command: u8,
    payload: Vec<u8>,
) -> Result<BuiltRequest, HealError> {
    let mut request = Request::new(raida, healing::GROUP, command, settings.keys.clone());
    request.coin_id = settings.coin_id;
    request.payload = payload;
    request.randomize()?;
    Ok(request.build()?)
}

/// Sends `requests[j]` to `addrs[j]`, all at once (one thread each), and returns the
/// replies in the same order.
fn exchange_all(
    addrs: &[SocketAddr],
    ids: &[u8],
    requests: &[BuiltRequest],
    transport: Transport,
    timeouts: &Timeouts,
) -> Vec<Result<Reply, ClientError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = addrs
            .iter()
            .zip(requests)
            .map(|(&addr, request)| s.spawn(move || exchange(addr, transport, request, timeouts)))
            .collect();
        handles
            .into_iter()
            .zip(ids)
            .map(|(h, id)| {
                h.join().unwrap_or_else(|_| {
                    Err(ClientError::Socket {
                        what: "the thread sending to one RAIDA",
                        source: std::io::Error::other(format!("it panicked (RAIDA {id})")),
                    })
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use Mark::{Error as E, Fail as F, NoReply as N, Pass as P};

    #[test]
    fn a_pown_string_is_one_letter_per_raida() {
        assert_eq!(pown_string(&[P, F, N, E, P]), "pfnep");
    }

    #[test]
    fn a_fix_carries_every_other_raida_s_ticket_and_zero_at_its_own_position() {
        let issued = [Some(0xA), None, Some(0xC), Some(0xD)];
        let t = fix_tickets_for(&issued, 2);
        assert_eq!(&t[..4], &[0xA, 0, 0, 0xD]);
        assert!(t[4..].iter().all(|&x| x == 0));
        assert_eq!(t.len(), 25);
    }

    #[test]
    fn outcomes_follow_the_marks_and_the_vouchers() {
        let all = |m: Mark| vec![m; 25];
        assert_eq!(outcome(&all(P), &all(P), 25), CoinOutcome::Authentic);
        let mut one_fracked = all(P);
        one_fracked[3] = F;
        assert_eq!(outcome(&one_fracked, &all(P), 24), CoinOutcome::Healed);
        assert_eq!(
            outcome(&one_fracked, &one_fracked, 24),
            CoinOutcome::NotHealed
        );
        // 12 down, fracked on one of the 13 that answer: 12 vouchers.
        let mut down: Vec<Mark> = [vec![N; 12], vec![P; 12], vec![F]].concat();
        assert_eq!(outcome(&down, &down, 12), CoinOutcome::TooFewVouchers);
        // 13 vouchers is enough to try: a failure then is not for lack of vouchers.
        down[0] = P;
        assert_eq!(outcome(&down, &down, 13), CoinOutcome::NotHealed);
    }

    #[test]
    fn a_heal_that_cannot_start_says_why() {
        let addr: SocketAddr = ([127, 0, 0, 1], 9).into();
        let settings = HealSettings {
            transport: Transport::Tcp,
            keys: Keys::None,
            coin_id: 0,
            timeouts: Timeouts::uniform(Duration::from_millis(1)),
            fix_timeouts: Timeouts::uniform(Duration::from_millis(1)),
            pg: [0; 16],
        };
        let coin = HealCoin {
            coin: Coin::new(1, 1),
            ans: vec![[0; 16]; 2],
        };
        let e = heal(&[addr; 3], std::slice::from_ref(&coin), &settings)
            .expect_err("2 ANs for 3 RAIDAs");
        assert!(e.to_string().contains("one AN per RAIDA (3), got 2"), "{e}");
        let e = heal(&[addr; 26], &[coin], &settings).expect_err("26 RAIDAs");
        assert!(e.to_string().contains("1..=25 RAIDAs, got 26"), "{e}");
        let e = heal(&[addr; 2], &[], &settings).expect_err("no coin");
        assert!(e.to_string().contains("at least one coin"), "{e}");
    }
}
