//! A wallet of the RAIDA world ([`crate::raida_world`]) that heals its coins by the
//! protocol (PROTOCOL.md 8b): each round it asks every RAIDA `find` (AN and PAN), adopts
//! a PAN a RAIDA holds, asks `get_ticket` of every RAIDA where a coin is good, and
//! sends `fix` to every RAIDA where a coin is fracked, with the 25 tickets and a fresh
//! PG (the PAN it expects there is the new AN that PG gives). What it knows of each
//! RAIDA's record comes only from answers; the world checks the stores against it.

use raida_client::healing::{self, FindValue};
use raida_client::{BuiltRequest, Coin};
use raida_core::keys::{An, CoinId};

/// RAIDA indices in a fix payload.
pub const POSITIONS: usize = 25;

/// Where a wallet's round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Between rounds (or done).
    Idle,
    /// `find` on every RAIDA.
    Find,
    /// `get_ticket` where a coin is good.
    Ticket,
    /// Waiting before the fixes (a slow wallet).
    Pause,
    /// `fix` where a coin is fracked.
    Fix,
}

/// What a wallet request asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReqKind {
    /// find, every coin.
    Find,
    /// get_ticket of these coins (indices into the wallet's coins).
    Ticket(Vec<usize>),
    /// fix of these coins with this PG.
    Fix {
        /// The coins.
        coins: Vec<usize>,
        /// The PG.
        pg: An,
    },
}

/// One wallet request, sent on one link.
#[derive(Debug)]
pub struct WalletReq {
    /// The wallet.
    pub wallet: usize,
    /// The RAIDA asked.
    pub server: usize,
    /// The round it belongs to.
    pub round: u32,
    /// What it asks.
    pub kind: ReqKind,
    /// Its bytes and what its answer must look like.
    pub built: BuiltRequest,
    /// Its link (the world's list).
    pub link: usize,
    /// Answered, failed or given up.
    pub over: bool,
}

/// One wallet: its coins and what it knows of each RAIDA's record of them.
#[derive(Debug)]
pub struct Wallet {
    /// Its coins.
    pub coins: Vec<CoinId>,
    /// Per coin, per RAIDA: the AN the wallet holds for it.
    pub an: Vec<Vec<An>>,
    /// Per coin, per RAIDA: the AN a fix sent there would have written.
    pub pan: Vec<Vec<Option<An>>>,
    /// Rounds begun.
    pub round: u32,
    /// Rounds begun after the faults stopped.
    pub rounds_after_heal: u32,
    /// Where the round is.
    pub phase: Phase,
    /// Requests of this phase not over yet.
    pub pending: usize,
    /// The requests of this phase (the world's numbers).
    pub phase_reqs: Vec<usize>,
    /// This round's find answers, per RAIDA.
    pub found: Vec<Option<Vec<FindValue>>>,
    /// This round's tickets, per RAIDA (0: none).
    pub tickets: [u32; POSITIONS],
    /// Every coin is good on every RAIDA (a find said so).
    pub done: bool,
    /// It stopped trying.
    pub gave_up: bool,
}

impl Wallet {
    /// A wallet holding `coins` with these ANs per RAIDA.
    pub fn new(coins: Vec<CoinId>, an: Vec<Vec<An>>) -> Wallet {
        let pan = an.iter().map(|a| vec![None; a.len()]).collect();
        Wallet {
            coins,
            an,
            pan,
            round: 0,
            rounds_after_heal: 0,
            phase: Phase::Idle,
            pending: 0,
            phase_reqs: Vec::new(),
            found: Vec::new(),
            tickets: [0; POSITIONS],
            done: false,
            gave_up: false,
        }
    }

    fn coin(&self, c: usize) -> Coin {
        Coin::new(self.coins[c].denomination, self.coins[c].serial)
    }

    /// A new round over `n` RAIDAs: answers of the last one are forgotten.
    pub fn begin_round(&mut self, n: usize) {
        self.round += 1;
        self.found = vec![None; n];
        self.tickets = [0; POSITIONS];
    }

    /// find's payload for RAIDA `s`: every coin with its AN and PAN there (the AN
    /// twice when no fix is pending).
    pub fn find_payload(&self, s: usize) -> Vec<u8> {
        let coins: Vec<(Coin, An, An)> = (0..self.coins.len())
            .map(|c| {
                let an = self.an[c][s];
                (self.coin(c), an, self.pan[c][s].unwrap_or(an))
            })
            .collect();
        healing::find_payload(&coins)
    }

    /// RAIDA `s` answered find with `values`: a coin whose record holds the PAN now
    /// holds the wallet's new AN there.
    pub fn found(&mut self, s: usize, values: Vec<FindValue>) {
        for (c, v) in values.iter().enumerate() {
            if *v == FindValue::Pan {
                if let Some(pan) = self.pan[c][s].take() {
                    self.an[c][s] = pan;
                }
            }
        }
        if let Some(slot) = self.found.get_mut(s) {
            *slot = Some(values);
        }
    }

    /// Whether every RAIDA answered find and every coin is good on each.
    pub fn all_good(&self) -> bool {
        self.found.iter().all(|f| {
            f.as_ref()
                .is_some_and(|v| v.iter().all(|x| *x != FindValue::Neither))
        })
    }

    /// The coins of RAIDA `s` whose find value is `good` (good: An or Pan; else
    /// Neither), by the answer of this round (none when it did not answer).
    fn coins_where(&self, s: usize, good: bool) -> Vec<usize> {
        match self.found.get(s).and_then(Option::as_ref) {
            Some(v) => (0..v.len())
                .filter(|&c| (v[c] != FindValue::Neither) == good)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Where to ask for tickets: (RAIDA, its good coins), for every RAIDA with one.
    pub fn ticket_targets(&self) -> Vec<(usize, Vec<usize>)> {
        (0..self.found.len())
            .map(|s| (s, self.coins_where(s, true)))
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }

    /// get_ticket's payload for `coins` on RAIDA `s`.
    pub fn ticket_payload(&self, s: usize, coins: &[usize]) -> Vec<u8> {
        let entries: Vec<(Coin, An)> = coins
            .iter()
            .map(|&c| (self.coin(c), self.an[c][s]))
            .collect();
        healing::get_ticket_payload(&entries)
    }

    /// Where to send fixes: (RAIDA, its fracked coins), for every RAIDA with one.
    pub fn fix_targets(&self) -> Vec<(usize, Vec<usize>)> {
        (0..self.found.len())
            .map(|s| (s, self.coins_where(s, false)))
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }

    /// fix's payload: the coins, PG, then the 25 tickets of this round.
    pub fn fix_payload(&self, coins: &[usize], pg: &An) -> Vec<u8> {
        let mut p = Vec::with_capacity(coins.len() * 5 + 16 + POSITIONS * 4);
        for &c in coins {
            p.extend_from_slice(&self.coin(c).to_bytes());
        }
        p.extend_from_slice(pg);
        for t in self.tickets {
            p.extend_from_slice(&t.to_be_bytes());
        }
        p
    }
}
