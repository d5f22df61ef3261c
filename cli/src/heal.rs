//! `raida heal`: a wallet's whole heal of fracked coins across the RAIDAs of a network
//! file (PROTOCOL.md 8b): the flow is `raida_client::heal`; this module reads the coins
//! and the network, and prints the report per RAIDA and per coin.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};

use raida_client::heal::{
    self, Call, CoinOutcome, CoinReport, HealCoin, HealReport, HealSettings, Mark, RaidaReport,
};
use raida_client::healing::{RAIDA_COUNT, VOUCHERS_NEEDED};
use raida_client::{status_name, An, Coin, Timeouts};

use crate::coin_call::os_random_ans;
use crate::exit::{usage_error, Exit};
use crate::locker::{parse_network, parse_put_coins, read_file};
use crate::output::{hex, out};
use crate::target::{parse_an, parse_coin, KeyCoinArgs, TargetArgs};

const HEAL_HELP: &str = "\
The flow: get_ticket (2/40) on every RAIDA with each coin's AN there; a coin is fracked
on a RAIDA that answers that its AN fails, and can be healed when at least 13 RAIDAs
vouch for it (their tickets list it). Each RAIDA where such coins are fracked gets one fix
(2/80) naming those coins, one PG, and the other RAIDAs' tickets; a fixed coin's AN there
becomes MD5(raida id, coin, PG). Then find (2/60) on every RAIDA checks which AN each
record holds. No fix is sent for a coin fewer than 13 RAIDAs vouch for.

Output: a line per RAIDA (get_ticket, fix when sent, find), a block per coin (its
outcome: authentic, healed, too_few_vouchers or not_healed; the RAIDAs where it was
fracked and fixed; its pown string before and after, one letter per RAIDA: p pass, f
fail, n no answer, e an answer without a per-coin result), a summary line, the PG, then
the coins' ANs after the heal as a coins file, `DEN:SN AN_0 AN_1 ...` (one AN per RAIDA,
as --coins reads it back): keep it, the new ANs own the coins. --json prints one object
(pg, coins_total, coins_pass, raidas: [{raida, addr, get_ticket, ticket, fix, find}],
coins: [{coin, result, before, after, vouchers, fracked, fix_sent, fixed, ans}]).

Exit status: 0 = every coin passes on every RAIDA afterwards (authentic or healed); 1 =
some coin does not (the output says why: too few vouchers, a fix refused, a RAIDA that
did not answer); 2 = bad command line; 3 = a local failure (random source).

Examples:
  raida heal --network local-network/network.txt --coins wallet.txt
  raida heal --network config.toml --coin 1:1 --an a978ec0c6a723c84269c15887fc3362a --json";

/// Heal fracked coins across a network: ask every RAIDA for a ticket, fix the coins on
/// the RAIDAs where their AN fails with the other RAIDAs' tickets, then check every
/// RAIDA's record (see below).
///
/// The coins are --coin and --an (repeated, in pairs; the same AN on every RAIDA) or
/// --coins FILE: one coin a line, `DEN:SN AN` (the same AN on every RAIDA) or `DEN:SN
/// AN_0 AN_1 ...` (one AN per RAIDA of --network, in raida order). --network FILE lists
/// the RAIDAs (one `host:port` a line, line i is RAIDA i; or a config.toml whose
/// raida_servers lists them). Every request has the same --enc and key; tickets
/// and PG are bearer secrets: prefer an encrypted --enc.
#[derive(Debug, Args)]
#[command(after_help = HEAL_HELP)]
pub(crate) struct Heal {
    /// A coin to heal, as DENOMINATION:SERIAL; repeat, each followed by its --an.
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --coin, the same on every RAIDA.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    an: Vec<An>,
    /// Read the coins from FILE ('-': standard input); see above.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["coin", "an"])]
    coins: Option<PathBuf>,
    /// The RAIDAs: one `host:port` a line, or a config.toml's raida_servers.
    #[arg(long, value_name = "FILE")]
    network: PathBuf,
    /// The PG (32 hex digits) of every fix [default: random].
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    pg: Option<An>,
    /// Timeout of each fix, in milliseconds: a RAIDA answers a fix once its own calls
    /// to the ticket issuers have ended (its healing peer_timeout_ms, 8 s by default).
    #[arg(long, value_name = "MS", default_value_t = 20_000)]
    fix_timeout_ms: u64,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

impl Heal {
    /// The coins, each with one AN per RAIDA of a network of `raidas`.
    fn coins(&self, raidas: usize) -> Vec<HealCoin> {
        let coins: Vec<HealCoin> = match &self.coins {
            Some(path) => parse_put_coins(&read_file(path), raidas)
                .unwrap_or_else(|e| usage_error(format!("--coins {}: {e}", path.display())))
                .into_iter()
                .map(|c| HealCoin {
                    coin: c.coin,
                    ans: if c.ans.len() == 1 {
                        vec![c.ans[0]; raidas]
                    } else {
                        c.ans
                    },
                })
                .collect(),
            None => crate::target::coin_an_pairs(&self.coin, &self.an)
                .map(|(coin, an)| HealCoin {
                    coin,
                    ans: vec![an; raidas],
                })
                .collect(),
        };
        if coins.is_empty() {
            usage_error(
                "expected at least one coin (--coin DEN:SN --an HEX, or --coins FILE)".into(),
            );
        }
        coins
    }

    pub(crate) fn run(&self) -> Exit {
        let t = &self.target;
        let text = std::fs::read_to_string(&self.network).unwrap_or_else(|e| {
            usage_error(format!(
                "--network: expected a readable file, got {}: {e}",
                self.network.display()
            ))
        });
        let raidas = parse_network(&text)
            .unwrap_or_else(|e| usage_error(format!("--network {}: {e}", self.network.display())));
        if raidas.len() > RAIDA_COUNT {
            usage_error(format!(
                "--network {}: expected at most {} RAIDAs (the tickets of a fix), got {}",
                self.network.display(),
                RAIDA_COUNT,
                raidas.len()
            ));
        }
        let coins = self.coins(raidas.len());
        let settings = HealSettings {
            transport: t.transport(),
            keys: t.keys(),
            coin_id: t.coin_id(),
            timeouts: Timeouts::uniform(Duration::from_millis(t.timeout_ms.unwrap_or(2000))),
            fix_timeouts: Timeouts::uniform(Duration::from_millis(self.fix_timeout_ms)),
            pg: self.pg.unwrap_or_else(|| os_random_ans(1)[0]),
        };
        let report = match heal::heal(&raidas, &coins, &settings) {
            Ok(r) => r,
            Err(heal::HealError::Input(e)) => usage_error(e),
            Err(e) => {
                eprintln!("raida heal: {e}");
                return Exit::Transport;
            }
        };
        if t.json {
            print_json(t, &report);
        } else {
            print_text(&report);
        }
        if report.all_pass() {
            Exit::Success
        } else {
            Exit::OtherStatus
        }
    }
}

/// A call's JSON: status, status_name, round_trip_us, server_us; or error, error_kind.
fn call_json(call: &Call) -> Map<String, Value> {
    let mut o = Map::new();
    match call {
        Call::Answered {
            status,
            round_trip,
            server_micros,
        } => {
            o.insert("status".into(), json!(status.0));
            o.insert("status_name".into(), json!(status_name(*status)));
            let us = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX);
            o.insert("round_trip_us".into(), json!(us));
            o.insert("server_us".into(), json!(server_micros));
        }
        Call::NoAnswer { kind, message } => {
            o.insert("error".into(), json!(message));
            o.insert("error_kind".into(), json!(kind.name()));
        }
        Call::Invalid { message } => {
            o.insert("error".into(), json!(message));
            o.insert("error_kind".into(), json!("invalid_response"));
        }
    }
    o
}

/// A call as text: `NAME (code)`, or why there is no answer.
fn call_text(call: &Call) -> String {
    match call {
        Call::Answered { status, .. } => format!("{} ({})", status_name(*status), status.0),
        Call::NoAnswer { message, .. } => format!("no answer: {message}"),
        Call::Invalid { message } => format!("invalid answer: {message}"),
    }
}

fn raida_json(r: &RaidaReport) -> Value {
    let mut o = Map::new();
    o.insert("raida".into(), json!(r.raida));
    o.insert("addr".into(), json!(r.addr.to_string()));
    o.insert("get_ticket".into(), Value::Object(call_json(&r.get_ticket)));
    o.insert("ticket".into(), json!(r.ticket.map(|t| format!("{t:08x}"))));
    let fix = r.fix.as_ref().map(|f| {
        let mut x = call_json(&f.call);
        x.insert(
            "coins".into(),
            json!(f.coins.iter().map(Coin::to_string).collect::<Vec<_>>()),
        );
        x.insert(
            "tickets".into(),
            json!(f
                .tickets
                .iter()
                .map(|t| format!("{t:08x}"))
                .collect::<Vec<_>>()),
        );
        let fixed = f.fixed.as_ref().map(|v| {
            f.coins
                .iter()
                .zip(v)
                .filter(|(_, &p)| p)
                .map(|(c, _)| c.to_string())
                .collect::<Vec<_>>()
        });
        x.insert("fixed".into(), json!(fixed));
        Value::Object(x)
    });
    o.insert("fix".into(), json!(fix));
    o.insert("find".into(), Value::Object(call_json(&r.find)));
    Value::Object(o)
}

fn coin_json(c: &CoinReport) -> Value {
    json!({
        "coin": c.coin.to_string(),
        "denomination": c.coin.denomination,
        "serial": c.coin.serial,
        "result": c.outcome.name(),
        "before": heal::pown_string(&c.before),
        "after": heal::pown_string(&c.after),
        "vouchers": c.vouchers,
        "vouchers_needed": VOUCHERS_NEEDED,
        "fracked": c.fracked,
        "fix_sent": c.fix_sent,
        "fixed": c.fixed,
        "ans": c.ans.iter().map(|a| hex(a)).collect::<Vec<_>>(),
    })
}

fn print_json(t: &TargetArgs<KeyCoinArgs>, report: &HealReport) {
    let mut o = Map::new();
    o.insert("command".into(), json!("heal"));
    o.insert("transport".into(), json!(t.transport().name()));
    o.insert("enc".into(), json!(t.enc()));
    o.insert("pg".into(), json!(hex(&report.pg)));
    o.insert("raidas_total".into(), json!(report.raidas.len()));
    o.insert("coins_total".into(), json!(report.coins.len()));
    let pass = report
        .coins
        .iter()
        .filter(|c| matches!(c.outcome, CoinOutcome::Authentic | CoinOutcome::Healed))
        .count();
    o.insert("coins_pass".into(), json!(pass));
    o.insert(
        "raidas".into(),
        Value::Array(report.raidas.iter().map(raida_json).collect()),
    );
    o.insert(
        "coins".into(),
        Value::Array(report.coins.iter().map(coin_json).collect()),
    );
    out!("{}", Value::Object(o));
}

/// `3, 7, 12`, or `none`.
fn ids(list: &[u8]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn print_text(report: &HealReport) {
    for r in &report.raidas {
        let mut line = format!(
            "RAIDA {} {}: get_ticket {}",
            r.raida,
            r.addr,
            call_text(&r.get_ticket)
        );
        if let Some(t) = r.ticket {
            line.push_str(&format!(" ticket {t:08x}"));
        }
        if let Some(f) = &r.fix {
            line.push_str(&format!(
                "; fix of {} coin(s) {}",
                f.coins.len(),
                call_text(&f.call)
            ));
        }
        line.push_str(&format!("; find {}", call_text(&r.find)));
        out!("{line}");
    }
    let mut counts = [0usize; 4];
    for c in &report.coins {
        let (i, why) = match c.outcome {
            CoinOutcome::Authentic => (0, "passes on every RAIDA; nothing to fix".to_string()),
            CoinOutcome::Healed => (
                1,
                format!(
                    "fracked on RAIDA {}, vouched for by {} RAIDAs, fixed on {}: passes on \
                     every RAIDA now",
                    ids(&c.fracked),
                    c.vouchers,
                    ids(&c.fixed)
                ),
            ),
            CoinOutcome::TooFewVouchers => (
                2,
                format!(
                    "fracked on RAIDA {}, but only {} RAIDAs vouch for it and a fix needs \
                     {VOUCHERS_NEEDED}: no fix sent, it cannot be healed now",
                    ids(&c.fracked),
                    c.vouchers
                ),
            ),
            CoinOutcome::NotHealed => {
                let silent: Vec<u8> = c
                    .after
                    .iter()
                    .enumerate()
                    .filter(|(_, &m)| m != Mark::Pass && m != Mark::Fail)
                    .map(|(i, _)| i as u8)
                    .collect();
                (
                    3,
                    format!(
                        "fracked on RAIDA {}, vouched for by {} RAIDAs, fix sent to {}, fixed on \
                         {}; no per-coin answer from RAIDA {}: does not pass on every RAIDA",
                        ids(&c.fracked),
                        c.vouchers,
                        ids(&c.fix_sent),
                        ids(&c.fixed),
                        ids(&silent)
                    ),
                )
            }
        };
        counts[i] += 1;
        out!("{} {}: {why}", c.coin, c.outcome.name());
        out!("  before {}", heal::pown_string(&c.before));
        out!("  after  {}", heal::pown_string(&c.after));
    }
    out!(
        "heal: {} of {} coins pass on every RAIDA ({} authentic, {} healed; {} with too few \
         vouchers, {} not healed)",
        counts[0] + counts[1],
        report.coins.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    out!("pg: {}", hex(&report.pg));
    out!("ANs after the heal (keep them; DEN:SN AN_0 AN_1 ..., as --coins reads them):");
    for c in &report.coins {
        let ans: Vec<String> = c.ans.iter().map(|a| hex(a)).collect();
        out!("{} {}", c.coin, ans.join(" "));
    }
}
