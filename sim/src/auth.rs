//! The authentication workload (PROTOCOL.md section 8a) and its model.
//!
//! **The store.** In a share of seeds the simulated server's store holds a handful of
//! coins (denominations -8..=6, a few pages), apart from the coins that key encrypted
//! requests (those never change, so header-time keys stay what the oracle knows). Each
//! coin has a chain of ANs its clients know, `chain[0]` the one it starts with. Most
//! are *solo* coins: detect and pown name one to four of them, detect_sum and pown_sum
//! one. Three more form the *group*, which only the sum commands name, all three at
//! once: a group coin's version `k + 1` is its version `k` XOR the group's `k`-th delta,
//! so one pown_sum moves the group a version. A sum over several coins only knows their
//! XOR (a pown_sum over an even number of coins leaves it as it was, so it may pass
//! again), which is why the group is odd and sums over several coins name exactly it:
//! the model treats the group's XOR as one coin of its own.
//!
//! **The clients.** A client presents the ANs of the version it expects by its arrival
//! time (so concurrent powns of one coin with the same AN happen), a wrong AN in some
//! entries, an unknown coin (absent, out of range, or a serial 2^26 above a known one)
//! in a few; a PAN or delta off the chain in some writes; a malformed payload (short,
//! long, empty, no body, shard 1 or 2) or a header fault that keeps the command from
//! running in a few; over TCP and UDP, every encryption type.
//!
//! **The model** ([`check`]), after the run. An execution of an op is its request
//! arriving whole at the server (TCP: its last byte read; UDP: each copy read), and
//! its answer (TCP: the whole response written; UDP: the datagram matched to it), in
//! one global order of such observations. The answer says, per entry, passed, failed,
//! or nothing (any other status: the command decided nothing); no answer is unknown
//! (it may have run). Per coin (and for the group's XOR):
//! - its history is the path of ANs from `chain[0]` to the AN the store holds at the
//!   end, over the writes that passed or are unknown (each value is written by one op,
//!   or by several with the same PAN: the values form a tree, the path is unique);
//! - no two writes that passed presented the same AN, every write that passed is on the
//!   path, and every step of the path has a write that passed or is unknown (a write
//!   that failed or decided nothing changed nothing);
//! - the path is linearizable: each step's write took effect after the step before and
//!   between its own arrival and answer;
//! - a read (detect, detect_sum) that passed presented an AN on the path, written before
//!   the read was answered and not yet replaced when it arrived (by a pown answered
//!   before the detect arrived); a read or a write that failed did not present an AN
//!   the coin surely held from its arrival to its answer;
//! - coins no store holds never pass;
//! - every group coin moved by the same XOR (a pown_sum changes all its coins or none);
//! - a coin's status byte is the powns' MFS once its AN changed, else 0.
//!
//! Responses are still checked byte for byte by the oracle: it answers with a store in
//! which each coin holds what the response says the command found (the AN presented for
//! an entry that passed, another one for an entry that failed), so the header, the
//! status for every malformed case, the bitmap, the encryption and the signature are
//! the codec's and the commands'; the model checks what the results say about time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raida_client::auth::{self, AuthCommand};
use raida_client::{Coin, Request};
use raida_core::keys::{An, CoinId, MemoryKeyStore, Record, SERIAL_LIMIT};
use raida_core::StatusByte;

use crate::knobs::Knobs;
use crate::request::{self, ClientRequest};
use crate::rng::Rng;
use crate::server::{COINS, COIN_ID, RAIDA_ID};

/// The months-since-February-2023 byte the simulated powns write (no wall clock).
pub const MFS: u8 = 46;
/// Versions of each coin's AN the clients know.
pub const CHAIN: usize = 24;
/// Coins in the group (odd: every pown_sum over it changes its XOR).
pub const GROUP: usize = 3;
/// The model's name for the group's XOR, a coin of its own (no store holds it).
const GROUP_COIN: CoinId = CoinId::new(i8::MIN, u32::MAX);

/// One coin of the store and the ANs its clients know.
#[derive(Clone, Debug)]
pub struct AuthCoin {
    /// The coin.
    pub coin: CoinId,
    /// Its ANs by version: `chain[0]` is the one it starts with.
    pub chain: Vec<An>,
}

/// The coins of one seed's workload.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    /// The solo coins (detect, pown, and the sums of one coin).
    pub coins: Vec<AuthCoin>,
    /// The group (the sums of all of it), or none.
    pub group: Vec<AuthCoin>,
    /// `group[i].chain[k + 1] = group[i].chain[k] ^ group_deltas[k]`.
    pub group_deltas: Vec<An>,
    /// Coins no store holds (absent, out of range, serials at 2^26 and above).
    pub unknown: Vec<CoinId>,
}

impl Workload {
    /// The workload of the world with `knobs` (empty when no client sends these
    /// commands).
    pub fn from_knobs(knobs: &Knobs) -> Workload {
        if knobs.auth_pm == 0 {
            return Workload::default();
        }
        let mut r = Rng::new(knobs.seed).fork(0x4155_5448);
        let mut w = Workload::default();
        let taken = |c: CoinId, w: &Workload| {
            COINS.iter().any(|&(d, s, _)| CoinId::new(d, s) == c) || w.coin(c).is_some()
        };
        let draw = |r: &mut Rng, w: &Workload| loop {
            let d = r.range(0, 14) as i8 - 8;
            let serial = r.below(knobs.auth_pages) as u32 * 1024 + r.below(1024) as u32;
            let coin = CoinId::new(d, serial);
            if !taken(coin, w) {
                return coin;
            }
        };
        for _ in 0..knobs.auth_coins {
            let coin = draw(&mut r, &w);
            let mut chain = vec![[0u8; 16]; CHAIN];
            for an in &mut chain {
                r.fill(an);
            }
            w.coins.push(AuthCoin { coin, chain });
        }
        if knobs.auth_group {
            w.group_deltas = vec![[0u8; 16]; CHAIN];
            for d in &mut w.group_deltas {
                r.fill(d);
            }
            for _ in 0..GROUP {
                let coin = draw(&mut r, &w);
                let mut chain = vec![[0u8; 16]; CHAIN];
                r.fill(&mut chain[0]);
                for k in 1..CHAIN {
                    chain[k] = auth::xor(&chain[k - 1], &w.group_deltas[k - 1]);
                }
                w.group.push(AuthCoin { coin, chain });
            }
        }
        let first = w.coins[0].coin;
        let absent = draw(&mut r, &w);
        w.unknown = vec![
            absent,
            CoinId::new(7, first.serial),
            CoinId::new(-9, first.serial),
            // The deployed server's page arithmetic aliases this one to `first`.
            CoinId::new(first.denomination, first.serial + SERIAL_LIMIT),
            CoinId::new(first.denomination, SERIAL_LIMIT - 1),
        ];
        w
    }

    /// Puts the workload's coins, at their first AN, into `store`.
    pub fn fill(&self, store: &MemoryKeyStore) {
        for c in self.coins.iter().chain(&self.group) {
            store.insert_coin(c.coin.denomination, c.coin.serial, c.chain[0]);
        }
    }

    /// The workload's coin `coin`, if the store holds it.
    pub fn coin(&self, coin: CoinId) -> Option<&AuthCoin> {
        self.coins
            .iter()
            .chain(&self.group)
            .find(|c| c.coin == coin)
    }

    /// The group's XOR at version `k`.
    fn group_sum(&self, k: usize) -> An {
        auth::xor_all(self.group.iter().map(|c| &c.chain[k]))
    }
}

/// One coin of a request: the AN presented (for the sum commands: the one the sum
/// holds for it) and, for pown and pown_sum, what it becomes when the entry passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The coin.
    pub coin: CoinId,
    /// Its AN, as the client presents it.
    pub an: An,
    /// What a passing entry writes.
    pub new: Option<An>,
}

/// What an authentication request asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Which command.
    pub command: AuthCommand,
    /// Its coins, in request order.
    pub entries: Vec<Entry>,
    /// The payload is what the entries say and the command runs: no malformed
    /// payload, no header fault.
    pub shaped: bool,
    /// A sum over the group (and maybe an unknown coin).
    pub group: bool,
}

/// A seeded authentication request from a client arriving `progress_pm` per mille
/// into the arrival window: its bytes and what it asks.
pub fn generate(r: &mut Rng, w: &Workload, k: &Knobs, progress_pm: u64) -> (Request, Op) {
    let command = match r.below(100) {
        0..=34 => AuthCommand::Detect,
        35..=69 => AuthCommand::Pown,
        70..=84 => AuthCommand::DetectSum,
        _ => AuthCommand::PownSum,
    };
    let fresh = |r: &mut Rng| {
        let mut an = [0u8; 16];
        r.fill(&mut an);
        an
    };
    let base = (progress_pm * u64::from(k.auth_versions) / 1000) as i64;
    let version = |r: &mut Rng| (base + r.below(3) as i64 - 1).clamp(0, CHAIN as i64 - 2) as usize;
    let group = command.is_sum() && !w.group.is_empty() && r.chance(500);
    let mut entries: Vec<Entry> = Vec::new();
    let mut delta = [0u8; 16];
    if group {
        let v = version(r);
        let mut order: Vec<usize> = (0..w.group.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, r.below(i as u64 + 1) as usize);
        }
        for i in order {
            let c = &w.group[i];
            entries.push(Entry {
                coin: c.coin,
                an: c.chain[v],
                new: None,
            });
        }
        if r.chance(k.auth_wrong_pm) {
            entries[0].an = fresh(r);
        }
        if r.chance(60) {
            let coin = w.unknown[r.below(w.unknown.len() as u64) as usize];
            let an = fresh(r);
            entries.push(Entry {
                coin,
                an,
                new: None,
            });
        }
        if command == AuthCommand::PownSum {
            delta = if r.chance(850) {
                w.group_deltas[v]
            } else {
                fresh(r)
            };
        }
    } else {
        let n = match r.chance(600) {
            _ if command.is_sum() => 1,
            true => 1,
            false => r.range_usize(2, 4),
        };
        let distinct = command == AuthCommand::Pown;
        let n = if distinct { n.min(w.coins.len()) } else { n };
        for _ in 0..64 {
            if entries.len() == n {
                break;
            }
            let (coin, an, next) = if r.chance(60) {
                let coin = w.unknown[r.below(w.unknown.len() as u64) as usize];
                (coin, fresh(r), None)
            } else {
                let c = &w.coins[r.below(w.coins.len() as u64) as usize];
                let v = version(r);
                let an = if r.chance(k.auth_wrong_pm) {
                    fresh(r)
                } else {
                    c.chain[v]
                };
                (c.coin, an, Some((c.chain[v], c.chain[v + 1])))
            };
            if distinct && entries.iter().any(|e| e.coin == coin) {
                continue;
            }
            // The next version's AN (whatever the entry presents), or one off the
            // chain; for a pown_sum, the delta from this version to the next.
            let canonical = next.filter(|_| !r.chance(150));
            let new = match command {
                AuthCommand::Pown => Some(canonical.map_or_else(|| fresh(r), |(_, next)| next)),
                AuthCommand::PownSum => {
                    delta =
                        canonical.map_or_else(|| fresh(r), |(this, next)| auth::xor(&this, &next));
                    Some(auth::xor(&an, &delta))
                }
                _ => None,
            };
            entries.push(Entry { coin, an, new });
        }
    }
    if command == AuthCommand::PownSum {
        for e in &mut entries {
            e.new = Some(auth::xor(&e.an, &delta));
        }
    }
    let coins: Vec<(Coin, An)> = entries
        .iter()
        .map(|e| (Coin::new(e.coin.denomination, e.coin.serial), e.an))
        .collect();
    let mut payload = match command {
        AuthCommand::Detect => auth::detect_payload(&coins),
        AuthCommand::DetectSum => auth::detect_sum_payload(&coins),
        AuthCommand::Pown => {
            let triples: Vec<(Coin, An, An)> = coins
                .iter()
                .zip(&entries)
                .map(|(&(c, an), e)| (c, an, e.new.unwrap_or(an)))
                .collect();
            auth::pown_payload(&triples)
        }
        AuthCommand::PownSum => auth::pown_sum_payload(&coins, &delta),
    };
    let encryption = r.pick(&[0u8, 0, 1, 2, 4, 5]).unwrap_or(0);
    let first = r.below(COINS.len() as u64) as usize;
    let second = r.below(COINS.len() as u64) as usize;
    let mut req = Request::new(
        RAIDA_ID,
        auth::GROUP,
        command.code(),
        request::keys(encryption, first, second),
    );
    req.coin_id = COIN_ID;
    req.shard = if r.chance(500) { 0 } else { 3 };
    r.fill(&mut req.presentation);
    r.fill(&mut req.nonce);
    r.fill(&mut req.echo);
    r.fill(&mut req.challenge);
    let mut shaped = true;
    if r.chance(k.auth_malformed_pm) {
        shaped = false;
        match r.below(5) {
            0 => {
                let cut = r.range_usize(1, payload.len().clamp(1, 20));
                payload.truncate(payload.len().saturating_sub(cut));
            }
            1 => {
                let mut more = vec![0u8; r.range_usize(1, 4)];
                r.fill(&mut more);
                payload.extend_from_slice(&more);
            }
            2 => payload.clear(),
            3 => req.faults.no_body = true,
            _ => req.shard = r.range(1, 2) as u8,
        }
    } else if r.chance(k.invalid_pm / 3) {
        // A header or body fault: the command never runs.
        shaped = false;
        request::fault_before_the_command(r, &mut req, encryption);
    }
    req.payload = payload;
    (
        req,
        Op {
            command,
            entries,
            shaped,
            group,
        },
    )
}

/// What the response `bytes` to `request` (asking `op`) says about each entry:
/// `Some` for 241, 242 and 243 (read with the client library), `None` for any other
/// status (the command decided nothing); `Err` when it cannot be read.
pub fn outcome(
    request: &ClientRequest,
    op: &Op,
    bytes: &[u8],
) -> Result<Option<Vec<bool>>, String> {
    let status = *bytes.get(2).ok_or("a response shorter than 3 bytes")?;
    let n = op.entries.len();
    match status {
        241 => Ok(Some(vec![true; n])),
        242 => Ok(Some(vec![false; n])),
        243 => {
            let mut faults = request.request.faults;
            faults.no_body = false;
            if faults != raida_client::Faults::default() {
                return Err("243 to a request with faults".into());
            }
            let response = request
                .built
                .parse_response(bytes)
                .map_err(|e| format!("the client rejects a 243: {e}"))?;
            auth::coin_results(op.command, StatusByte(status), &response.body, n)
                .map_err(|e| format!("the client cannot read a 243: {e}"))
        }
        _ => Ok(None),
    }
}

/// The store in which `op`'s entries find what `passed` says (the coins it names hold
/// the AN presented for an entry that passed, another for one that failed; every
/// other coin as in `base`): the store the oracle answers the request with.
pub fn store_for(base: &MemoryKeyStore, op: &Op, passed: Option<&[bool]>) -> MemoryKeyStore {
    let store = base.clone();
    let known = |c: CoinId| {
        raida_core::KeyStore::record(&store, c, raida_core::Timestamp::ZERO)
            .ok()
            .flatten()
            .is_some()
    };
    let set = |c: CoinId, an: An| store.insert_record(c, Record { an, status: 0 });
    let other = |an: &An| {
        let mut x = *an;
        x[0] ^= 0x80;
        x
    };
    let all = passed.is_some_and(|p| p.iter().all(|&x| x));
    if op.command.is_sum() {
        for e in op.entries.iter().filter(|e| known(e.coin)) {
            set(e.coin, e.an);
        }
        if !all {
            if let Some(e) = op.entries.iter().find(|e| known(e.coin)) {
                set(e.coin, other(&e.an));
            }
        }
        return store;
    }
    let pass = |i: usize| passed.is_some_and(|p| p.get(i).copied().unwrap_or(false));
    for (i, e) in op.entries.iter().enumerate() {
        if !pass(i) && known(e.coin) {
            set(e.coin, other(&e.an));
        }
    }
    for (i, e) in op.entries.iter().enumerate() {
        if pass(i) && known(e.coin) {
            set(e.coin, e.an);
        }
    }
    store
}

/// One execution of an op: its request arrived whole at the server at `arrived` (a
/// tick of the world's order of observations), and maybe its answer.
#[derive(Clone, Debug)]
pub struct Exec {
    /// The client.
    pub cid: u32,
    /// When it arrived.
    pub arrived: u64,
    /// When it was answered, and what the answer said per entry (`None`: nothing).
    pub answered: Option<(u64, Option<Vec<bool>>)>,
}

/// What the answer of an execution says about one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Said {
    /// No answer: it may have run.
    Unknown,
    /// The command decided nothing (the request was refused or malformed).
    Nothing,
    Passed,
    Failed,
}

/// One entry of one execution (for a sum over the group: the group's XOR).
#[derive(Clone, Debug)]
struct Act {
    exec: usize,
    cid: u32,
    command: AuthCommand,
    entry: Entry,
    arrived: u64,
    /// `u64::MAX` when not answered.
    answered: u64,
    said: Said,
}

impl Act {
    fn may_have_written(&self) -> bool {
        self.entry.new.is_some() && matches!(self.said, Said::Passed | Said::Unknown)
    }

    fn describe(&self) -> String {
        let answer = if self.answered == u64::MAX {
            "never answered".to_string()
        } else {
            format!("answered at {}", self.answered)
        };
        format!(
            "client {}'s {} (execution {}, arrived at {}, {answer}, {:?})",
            self.cid,
            self.command.name(),
            self.exec,
            self.arrived,
            self.said
        )
    }
}

/// What the model saw, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Executions.
    pub execs: u64,
    /// Of those, never answered.
    pub unknown: u64,
    /// Pown and pown_sum entries (group sums: once) that passed.
    pub writes_passed: u64,
    /// Detect and detect_sum entries (group sums: once) that passed.
    pub reads_passed: u64,
}

/// The model's checks over every execution (`ops` gives each client's op) and the
/// records the store holds at the end. `Err` names the first broken rule.
pub fn check(
    w: &Workload,
    ops: &dyn Fn(u32) -> Option<Op>,
    execs: &[Exec],
    record: &dyn Fn(CoinId) -> Option<Record>,
) -> Result<Checked, String> {
    let mut checked = Checked::default();
    let mut acts: Vec<Act> = Vec::new();
    for (i, x) in execs.iter().enumerate() {
        let Some(op) = ops(x.cid) else { continue };
        checked.execs += 1;
        let (answered, said) = match &x.answered {
            None => {
                checked.unknown += 1;
                (u64::MAX, None)
            }
            Some((t, said)) => (*t, Some(said.clone())),
        };
        // A malformed request that runs at all runs another payload (a sum cut by a
        // whole coin reference keeps its shape): what it found is not about these
        // entries (the oracle checks its answer over the store the answer implies).
        let said_of = |j: usize| match &said {
            None => Said::Unknown,
            Some(_) if !op.shaped => Said::Nothing,
            Some(None) => Said::Nothing,
            Some(Some(p)) if p.get(j).copied().unwrap_or(false) => Said::Passed,
            Some(Some(_)) => Said::Failed,
        };
        let act = |entry: Entry, said: Said| Act {
            exec: i,
            cid: x.cid,
            command: op.command,
            entry,
            arrived: x.arrived,
            answered,
            said,
        };
        if op.group {
            let unknown = op.entries.iter().find(|e| w.coin(e.coin).is_none());
            if let (Some(e), Said::Passed) = (unknown, said_of(0)) {
                return Err(format!(
                    "{} passed for coin {:?}, which no store holds",
                    act(e.clone(), Said::Passed).describe(),
                    e.coin
                ));
            }
            let sum = auth::xor_all(op.entries.iter().map(|e| &e.an));
            let news: Option<Vec<An>> = op.entries.iter().map(|e| e.new).collect();
            let new = news.map(|n| auth::xor_all(&n));
            let entry = Entry {
                coin: GROUP_COIN,
                an: sum,
                new,
            };
            acts.push(act(entry, said_of(0)));
        } else {
            for (j, e) in op.entries.iter().enumerate() {
                acts.push(act(e.clone(), said_of(j)));
            }
        }
    }
    if let Some(a) = acts
        .iter()
        .find(|a| a.entry.coin != GROUP_COIN && w.coin(a.entry.coin).is_none())
        .filter(|a| a.said == Said::Passed)
    {
        return Err(format!(
            "{} passed for coin {:?}, which no store holds",
            a.describe(),
            a.entry.coin
        ));
    }
    let held = |c: CoinId| record(c).ok_or(format!("coin {c:?} is gone from the store"));
    for c in &w.coins {
        let now = held(c.coin)?;
        let changed = now.an != c.chain[0];
        check_status(c.coin, now, changed)?;
        let mine: Vec<&Act> = acts.iter().filter(|a| a.entry.coin == c.coin).collect();
        let h = history(c.coin, c.chain[0], now.an, &mine)?;
        check_reads(c.coin, &h, &mine, &mut checked)?;
    }
    if !w.group.is_empty() {
        // Every group coin moved by the same XOR: a pown_sum changed all or none.
        let mut now = Vec::new();
        for c in &w.group {
            now.push(held(c.coin)?);
        }
        let shift = auth::xor(&now[0].an, &w.group[0].chain[0]);
        for (c, r) in w.group.iter().zip(&now) {
            if auth::xor(&r.an, &c.chain[0]) != shift {
                return Err(format!(
                    "the group's coins moved by different XORs ({:?} and {:?}): a pown_sum \
                     changed some of its coins and not others",
                    w.group[0].coin, c.coin
                ));
            }
            check_status(c.coin, *r, shift != [0; 16])?;
        }
        let sum = auth::xor_all(now.iter().map(|r| &r.an));
        let mine: Vec<&Act> = acts.iter().filter(|a| a.entry.coin == GROUP_COIN).collect();
        let h = history(GROUP_COIN, w.group_sum(0), sum, &mine)?;
        check_reads(GROUP_COIN, &h, &mine, &mut checked)?;
    }
    Ok(checked)
}

/// A coin's status byte: the powns' MFS once its AN changed, else still 0.
fn check_status(coin: CoinId, now: Record, changed: bool) -> Result<(), String> {
    let status = if changed { MFS } else { 0 };
    if now.status == status {
        return Ok(());
    }
    Err(format!(
        "coin {coin:?}: status byte {}, expected {status} (its AN {})",
        now.status,
        if changed { "changed" } else { "is its first" }
    ))
}

/// One coin's history: its ANs in order, and per step the earliest and latest
/// moments its write can have taken effect.
#[derive(Debug)]
struct History {
    path: Vec<An>,
    /// `earliest[i]`: the write of step `i` (`path[i]` to `path[i + 1]`) took effect
    /// after this tick.
    earliest: Vec<u64>,
    /// `latest[i]`: ... and before this one (`u64::MAX`: no bound).
    latest: Vec<u64>,
}

impl History {
    fn index(&self, an: &An) -> Option<usize> {
        self.path.iter().position(|x| x == an)
    }

    /// When the coin surely held `path[i]`: from the tick by which its write surely
    /// took effect (`None`: not sure when) to the tick after which the next write may
    /// take effect (`u64::MAX`: it holds it still).
    fn surely_held(&self, i: usize) -> (Option<u64>, u64) {
        let from = if i == 0 {
            Some(0)
        } else {
            Some(self.latest[i - 1]).filter(|&t| t != u64::MAX)
        };
        (from, self.earliest.get(i).copied().unwrap_or(u64::MAX))
    }
}

/// The history of `coin` from `start` to `held` (the AN it holds at the end) over the
/// writes among `acts`, and the checks of the writes against it.
fn history(coin: CoinId, start: An, held: An, acts: &[&Act]) -> Result<History, String> {
    // Two writes that passed never presented the same AN.
    let mut by_an: BTreeMap<An, &Act> = BTreeMap::new();
    for a in acts
        .iter()
        .filter(|a| a.entry.new.is_some() && a.said == Said::Passed)
    {
        if let Some(b) = by_an.insert(a.entry.an, a) {
            return Err(format!(
                "coin {coin:?}: two writes presenting the same AN both passed: {} and {}",
                b.describe(),
                a.describe()
            ));
        }
    }
    // The path from the first AN to the one the store holds, over the writes that may
    // have happened.
    let mut next: BTreeMap<An, BTreeSet<An>> = BTreeMap::new();
    for a in acts.iter().filter(|a| a.may_have_written()) {
        if let Some(new) = a.entry.new {
            next.entry(a.entry.an).or_default().insert(new);
        }
    }
    let mut parent: BTreeMap<An, An> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut seen = BTreeSet::from([start]);
    while let Some(v) = queue.pop_front() {
        if v == held {
            break;
        }
        for &n in next.get(&v).into_iter().flatten() {
            if seen.insert(n) {
                parent.insert(n, v);
                queue.push_back(n);
            }
        }
    }
    if !seen.contains(&held) {
        return Err(format!(
            "coin {coin:?} holds an AN that no write that passed or may have run gave it \
             (a write that failed or decided nothing took effect, or the store lost one)"
        ));
    }
    let mut path = vec![held];
    while let Some(&p) = path.last().and_then(|v| parent.get(v)) {
        path.push(p);
    }
    path.reverse();
    // Every write that passed is a step of the path.
    let step_of = |a: &Act| {
        let i = path.iter().position(|x| *x == a.entry.an)?;
        (path.get(i + 1) == a.entry.new.as_ref()).then_some(i)
    };
    if let Some(a) = by_an.values().find(|a| step_of(a).is_none()) {
        return Err(format!(
            "coin {coin:?}: {} passed, but its PAN is not in the coin's history (a lost \
             write, or it passed with an AN the coin never held)",
            a.describe()
        ));
    }
    // Each step: made by the write that passed, else by one that may have run; the
    // steps take effect in order, each between its write's arrival and answer.
    let steps = path.len() - 1;
    let mut earliest = vec![0u64; steps];
    let mut latest = vec![u64::MAX; steps];
    let mut after = 0u64;
    for i in 0..steps {
        let candidates: Vec<&&Act> = acts
            .iter()
            .filter(|a| a.may_have_written() && step_of(a) == Some(i))
            .collect();
        let passed = candidates.iter().find(|a| a.said == Said::Passed);
        let (arrived, answered) = match passed {
            Some(a) => (a.arrived, a.answered),
            None => match candidates.iter().map(|a| a.arrived).min() {
                Some(arrived) => (arrived, u64::MAX),
                None => {
                    return Err(format!(
                        "coin {coin:?}: step {i} of its history has no write"
                    ))
                }
            },
        };
        after = after.max(arrived);
        if after >= answered {
            let a = passed.map_or(String::new(), |a| a.describe());
            return Err(format!(
                "coin {coin:?}: not linearizable: {a} was answered at {answered}, but the \
                 AN it presented (version {i} of the coin's history) was written after \
                 {after}"
            ));
        }
        earliest[i] = after;
        latest[i] = answered;
    }
    for i in (0..steps.saturating_sub(1)).rev() {
        latest[i] = latest[i].min(latest[i + 1]);
    }
    Ok(History {
        path,
        earliest,
        latest,
    })
}

/// The reads against a coin's history: one that passed presented an AN the coin held
/// at some moment between its arrival and its answer; a read or a write that failed
/// did not present the AN the coin surely held all that time.
fn check_reads(
    coin: CoinId,
    h: &History,
    acts: &[&Act],
    checked: &mut Checked,
) -> Result<(), String> {
    for a in acts {
        match a.said {
            Said::Passed if a.entry.new.is_none() => {
                let Some(i) = h.index(&a.entry.an) else {
                    return Err(format!(
                        "coin {coin:?}: {} passed with an AN the coin never held",
                        a.describe()
                    ));
                };
                if i > 0 && h.earliest[i - 1] >= a.answered {
                    return Err(format!(
                        "coin {coin:?}: {} passed with an AN written only after it was \
                         answered",
                        a.describe()
                    ));
                }
                if i < h.earliest.len() && h.latest[i] <= a.arrived {
                    return Err(format!(
                        "coin {coin:?}: {} passed with an AN replaced before it arrived \
                         (by a pown answered by {})",
                        a.describe(),
                        h.latest[i]
                    ));
                }
                checked.reads_passed += 1;
            }
            Said::Passed => checked.writes_passed += 1,
            Said::Failed => {
                let Some(i) = h.index(&a.entry.an) else {
                    continue;
                };
                let (from, until) = h.surely_held(i);
                if from.is_some_and(|f| f < a.arrived) && a.answered < until {
                    return Err(format!(
                        "coin {coin:?}: {} failed, though the coin held the AN it presented \
                         (version {i} of its history) from before it arrived to after it \
                         was answered ({} to {until})",
                        a.describe(),
                        from.unwrap_or(0)
                    ));
                }
            }
            Said::Unknown | Said::Nothing => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COIN: CoinId = CoinId::new(3, 1029);

    fn an(b: u8) -> An {
        [b; 16]
    }

    /// A workload of one solo coin whose versions are `an(0)`, `an(1)`, ...
    fn workload() -> Workload {
        Workload {
            coins: vec![AuthCoin {
                coin: COIN,
                chain: (0..CHAIN as u8).map(an).collect(),
            }],
            ..Workload::default()
        }
    }

    fn op(command: AuthCommand, entries: Vec<Entry>) -> Op {
        Op {
            command,
            entries,
            shaped: true,
            group: false,
        }
    }

    fn pown(from: u8, to: u8) -> Op {
        let e = Entry {
            coin: COIN,
            an: an(from),
            new: Some(an(to)),
        };
        op(AuthCommand::Pown, vec![e])
    }

    fn detect(v: u8) -> Op {
        let e = Entry {
            coin: COIN,
            an: an(v),
            new: None,
        };
        op(AuthCommand::Detect, vec![e])
    }

    /// An op, when it arrived, and when it was answered and whether it passed.
    type Run = (Op, u64, Option<(u64, bool)>);

    /// Runs the model over `runs`, the store holding `held` (with the status byte a
    /// pown writes unless it is the first AN).
    fn model(runs: &[Run], held: u8) -> Result<Checked, String> {
        let w = workload();
        let ops: Vec<Op> = runs.iter().map(|r| r.0.clone()).collect();
        let execs: Vec<Exec> = runs
            .iter()
            .enumerate()
            .map(|(i, (_, arrived, answered))| Exec {
                cid: i as u32,
                arrived: *arrived,
                answered: answered.map(|(t, p)| (t, Some(vec![p]))),
            })
            .collect();
        let status = if held == 0 { 0 } else { MFS };
        let record = |c: CoinId| {
            (c == COIN).then_some(Record {
                an: an(held),
                status,
            })
        };
        check(&w, &|cid| ops.get(cid as usize).cloned(), &execs, &record)
    }

    #[test]
    fn a_sequence_of_powns_and_detects_in_order_is_linearizable() {
        let runs = [
            (pown(0, 1), 1, Some((2, true))),
            (detect(0), 3, Some((4, false))),
            (pown(1, 2), 5, Some((6, true))),
            (detect(2), 7, Some((8, true))),
            (pown(1, 9), 9, Some((10, false))),
        ];
        let checked = model(&runs, 2).expect("linearizable");
        assert_eq!((checked.writes_passed, checked.reads_passed), (2, 1));
    }

    #[test]
    fn two_powns_presenting_one_an_cannot_both_pass() {
        let runs = [
            (pown(0, 1), 1, Some((3, true))),
            (pown(0, 1), 2, Some((4, true))),
        ];
        let e = model(&runs, 1).expect_err("both passed");
        assert!(e.contains("same AN"), "{e}");
    }

    #[test]
    fn a_detect_never_passes_with_an_an_replaced_before_it_arrived() {
        let runs = [
            (pown(0, 1), 1, Some((2, true))),
            (detect(0), 3, Some((4, true))),
        ];
        let e = model(&runs, 1).expect_err("stale detect");
        assert!(e.contains("replaced before it arrived"), "{e}");
        // Overlapping the pown, it may pass.
        let runs = [
            (pown(0, 1), 1, Some((3, true))),
            (detect(0), 2, Some((4, true))),
        ];
        assert!(model(&runs, 1).is_ok());
    }

    #[test]
    fn a_pown_that_passed_is_in_the_coins_history() {
        let runs = [(pown(0, 1), 1, Some((2, true)))];
        let e = model(&runs, 0).expect_err("lost write");
        assert!(e.contains("not in the coin's history"), "{e}");
        let e = model(&[(pown(0, 1), 1, Some((2, false)))], 1).expect_err("a failed write");
        assert!(e.contains("no write that passed"), "{e}");
    }

    #[test]
    fn powns_take_effect_between_their_arrival_and_their_answer_in_order() {
        // The second pown presents the first's PAN, yet it was answered before the
        // first arrived.
        let runs = [
            (pown(1, 2), 1, Some((2, true))),
            (pown(0, 1), 3, Some((4, true))),
        ];
        let e = model(&runs, 2).expect_err("not linearizable");
        assert!(e.contains("not linearizable"), "{e}");
    }

    #[test]
    fn a_read_of_the_an_held_throughout_passes_and_unknown_writes_may_have_run() {
        let e = model(&[(detect(0), 1, Some((2, false)))], 0).expect_err("held");
        assert!(e.contains("failed, though"), "{e}");
        // A pown never answered may have run: a later detect of its PAN passes.
        let runs = [(pown(0, 1), 1, None), (detect(1), 2, Some((3, true)))];
        assert!(model(&runs, 1).is_ok());
        let runs = [(pown(0, 1), 1, None), (detect(0), 2, Some((3, false)))];
        assert!(model(&runs, 1).is_ok(), "it may have run before the detect");
    }

    #[test]
    fn a_pown_sum_moves_every_coin_of_the_group_by_the_same_xor() {
        let mut w = workload();
        w.group_deltas = (0..CHAIN as u8).map(|k| an(0x40 | k)).collect();
        for i in 0..GROUP as u8 {
            let mut chain = vec![an(0x80 | i)];
            for k in 1..CHAIN {
                chain.push(auth::xor(&chain[k - 1], &w.group_deltas[k - 1]));
            }
            let coin = CoinId::new(-2, u32::from(i));
            w.group.push(AuthCoin { coin, chain });
        }
        let moved = |moved: usize| {
            let w = w.clone();
            move |c: CoinId| {
                let i = w.group.iter().position(|g| g.coin == c)?;
                let v = usize::from(i < moved);
                Some(Record {
                    an: w.group[i].chain[v],
                    status: if v == 1 { MFS } else { 0 },
                })
            }
        };
        let no_ops = |_: u32| None;
        let e = check(&w, &no_ops, &[], &|c| {
            if c == COIN {
                Some(Record {
                    an: an(0),
                    status: 0,
                })
            } else {
                moved(2)(c)
            }
        });
        assert!(e.is_err_and(|e| e.contains("different XORs")));
    }
}
