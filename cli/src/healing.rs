//! `raida ticket` and `raida find`: the healing commands a wallet sends to the RAIDAs
//! where its coins are good (get_ticket 2/40) and to learn whether a coin holds its AN
//! or its PAN (find 2/60), PROTOCOL.md section 8b.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};

use raida_client::healing::{self, FindValue};
use raida_client::{exchange, status_name, An, Coin, Reply, Timeouts};

use crate::coin_call::{CoinArgs, CoinLine};
use crate::exit::{usage_error, Exit};
use crate::output::{insert_reply, out, print_reply};
use crate::target::{parse_an, KeyCoinArgs, TargetArgs};

const TICKET_HELP: &str = "\
Output: the status by name and number, the ticket (8 hex digits, as the fix request
carries it) when one was issued, then one line per coin, `DEN:SN pass` (its AN matched:
the ticket vouches for it) or `DEN:SN fail`; --json prints one object (status,
status_name, round_trip_us, ticket, passed, failed, coins: [{coin, result}]).

Exit status: 0 = a ticket was issued (241 ALL_PASS, 243 MIXED); 1 = the server answered
another status (242 ALL_FAIL, 42 NO_TICKET_SLOT, 40 ...); 2 = bad command line; 3 =
transport error or timeout; 4 = a response that does not verify.

Examples:
  raida ticket --coin 1:1 --an a978ec0c6a723c84269c15887fc3362a --raida-id 3
  raida keys demo --data-root ./raida-data | raida ticket --coins - --json
";

const FIND_HELP: &str = "\
Output: the status by name and number, then one line per coin, `DEN:SN an` (the record
holds the AN), `DEN:SN pan` (it holds the PAN) or `DEN:SN neither`; --json prints one
object (status, status_name, round_trip_us, coins: [{coin, result}]).

Exit status: 0 = answered per coin (208 FIND_NEITHER, 209 FIND_ALL_AN, 210 FIND_ALL_PAN,
211 FIND_MIXED); 1 = another status (40 for an unknown coin ...); 2 = bad command line;
3 = transport error or timeout; 4 = a response that does not verify.

Examples:
  raida find --coin 1:1 --an <AN> --pan <PAN>
  raida find --coins pown.txt --json
";

/// Ask for a ticket: get_ticket (2, 40) checks each coin's AN and answers a ticket
/// vouching for the coins whose AN matched, which a RAIDA fixing these coins claims.
///
/// The coins are --coin and --an (repeated, in pairs) or --coins FILE. Nothing changes
/// on the server's records; the ticket lives 300 s there (its `[healing]
/// ticket_lifetime_s`). Tickets are bearer secrets: prefer an encrypted --enc.
#[derive(Debug, Args)]
#[command(after_help = TICKET_HELP)]
pub(crate) struct Ticket {
    #[command(flatten)]
    coins: CoinArgs,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

/// Find where coins stand: find (2, 60) says for each coin whether the RAIDA's record
/// holds its AN, its PAN, or neither (after a pown whose answer was lost, say).
///
/// The coins are --coin, --an and --pan (repeated, in triples) or --coins FILE
/// (`DEN:SN ANHEX PANHEX` per line). Nothing changes on the server.
#[derive(Debug, Args)]
#[command(after_help = FIND_HELP)]
pub(crate) struct Find {
    #[command(flatten)]
    coins: CoinArgs,
    /// The PAN (32 hex digits) of each --coin, in the same order.
    #[arg(long, value_name = "HEX", value_parser = parse_an, conflicts_with = "coins")]
    pan: Vec<An>,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

/// Sends (2, `command`, `payload`) to `target`; the reply, or the exit after printing
/// what went wrong.
fn call(
    target: &TargetArgs<KeyCoinArgs>,
    name: &str,
    command: u8,
    payload: Vec<u8>,
    o: &mut Map<String, Value>,
) -> Result<Reply, Exit> {
    let timeouts = Timeouts::uniform(Duration::from_millis(target.timeout_ms.unwrap_or(2000)));
    let mut request = target.request(healing::GROUP, command);
    request.payload = payload;
    let built = match request.build() {
        Ok(b) => b,
        Err(e) => usage_error(format!("{name}: {e}")),
    };
    match exchange(target.addr(), target.transport(), &built, &timeouts) {
        Ok(reply) => Ok(reply),
        Err(e) => {
            if target.json {
                o.insert("error".into(), json!(e.to_string()));
                o.insert("error_kind".into(), json!(e.kind().name()));
                out!("{}", Value::Object(o.clone()));
            } else {
                eprintln!("raida {name}: {e}");
            }
            Err(Exit::of_error(&e))
        }
    }
}

/// An answer whose body does not fit its status.
fn invalid(
    target: &TargetArgs<KeyCoinArgs>,
    name: &str,
    e: &dyn std::fmt::Display,
    o: &mut Map<String, Value>,
) -> Exit {
    if target.json {
        o.insert("error".into(), json!(e.to_string()));
        o.insert("error_kind".into(), json!("invalid_response"));
        out!("{}", Value::Object(o.clone()));
    } else {
        eprintln!("raida {name}: {e}");
    }
    Exit::Invalid
}

fn coin_json(coin: Coin, result: Option<&str>) -> Value {
    json!({
        "coin": coin.to_string(),
        "denomination": coin.denomination,
        "serial": coin.serial,
        "result": result,
    })
}

impl Ticket {
    pub(crate) fn run(&self) -> Exit {
        let coins = self.coins.lines();
        if coins.iter().any(|c| c.pan.is_some()) {
            usage_error(
                "--coins: ticket expects DEN:SN ANHEX per line, got a third column (a PAN)".into(),
            );
        }
        let pairs: Vec<(Coin, An)> = coins.iter().map(|c| (c.coin, c.an)).collect();
        let t = &self.target;
        let mut o = t.json_head("get_ticket");
        let reply = match call(
            t,
            "ticket",
            healing::GET_TICKET,
            healing::get_ticket_payload(&pairs),
            &mut o,
        ) {
            Ok(r) => r,
            Err(exit) => return exit,
        };
        let status = reply.response.header.status;
        insert_reply(&mut o, &reply);
        let answer = match healing::ticket_answer(status, &reply.response.body, coins.len()) {
            Ok(a) => a,
            Err(e) => return invalid(t, "ticket", &e, &mut o),
        };
        let ticket = answer.as_ref().and_then(|a| a.ticket);
        let result = |i: usize| {
            answer
                .as_ref()
                .map(|a| if a.passed[i] { "pass" } else { "fail" })
        };
        if t.json {
            o.insert("ticket".into(), json!(ticket.map(|t| format!("{t:08x}"))));
            let passed = answer
                .as_ref()
                .map(|a| a.passed.iter().filter(|&&p| p).count());
            o.insert("passed".into(), json!(passed));
            o.insert("failed".into(), json!(passed.map(|p| coins.len() - p)));
            let list: Vec<Value> = coins
                .iter()
                .enumerate()
                .map(|(i, c)| coin_json(c.coin, result(i)))
                .collect();
            o.insert("coins".into(), Value::Array(list));
            out!("{}", Value::Object(o));
        } else {
            print_reply(&reply, t.transport(), t.addr());
            match ticket {
                Some(ticket) => out!("ticket:     {ticket:08x}"),
                None => out!("ticket:     none"),
            }
            match &answer {
                Some(_) => {
                    for (i, c) in coins.iter().enumerate() {
                        out!("{} {}", c.coin, result(i).unwrap_or("fail"));
                    }
                }
                None => out!(
                    "coins:      no per-coin result (get_ticket refused the request: {} ({}))",
                    status_name(status),
                    status.0
                ),
            }
        }
        if ticket.is_some() {
            Exit::Success
        } else {
            Exit::OtherStatus
        }
    }
}

impl Find {
    fn lines(&self) -> Vec<CoinLine> {
        let mut coins = self.coins.lines();
        if !self.pan.is_empty() {
            if self.pan.len() != coins.len() {
                usage_error(format!(
                    "--pan: expected one --pan per --coin, in the same order; got {} --coin and \
                     {} --pan",
                    coins.len(),
                    self.pan.len()
                ));
            }
            for (c, &pan) in coins.iter_mut().zip(&self.pan) {
                c.pan = Some(pan);
            }
        }
        if coins.iter().any(|c| c.pan.is_none()) {
            usage_error(
                "find expects a PAN for every coin: --pan HEX per --coin, or a third column in \
                 --coins"
                    .into(),
            );
        }
        coins
    }

    pub(crate) fn run(&self) -> Exit {
        let coins = self.lines();
        let triples: Vec<(Coin, An, An)> = coins
            .iter()
            .map(|c| (c.coin, c.an, c.pan.unwrap_or(c.an)))
            .collect();
        let t = &self.target;
        let mut o = t.json_head("find");
        let reply = match call(
            t,
            "find",
            healing::FIND,
            healing::find_payload(&triples),
            &mut o,
        ) {
            Ok(r) => r,
            Err(exit) => return exit,
        };
        let status = reply.response.header.status;
        insert_reply(&mut o, &reply);
        let values = match healing::find_values(status, &reply.response.body, coins.len()) {
            Ok(v) => v,
            Err(e) => return invalid(t, "find", &e, &mut o),
        };
        let result = |i: usize| values.as_ref().map(|v| v[i].name());
        if t.json {
            let list: Vec<Value> = coins
                .iter()
                .enumerate()
                .map(|(i, c)| coin_json(c.coin, result(i)))
                .collect();
            o.insert("coins".into(), Value::Array(list));
            out!("{}", Value::Object(o));
        } else {
            print_reply(&reply, t.transport(), t.addr());
            match &values {
                Some(_) => {
                    for (i, c) in coins.iter().enumerate() {
                        out!(
                            "{} {}",
                            c.coin,
                            result(i).unwrap_or(FindValue::Neither.name())
                        );
                    }
                }
                None => out!(
                    "coins:      no per-coin result (find refused the request: {} ({}))",
                    status_name(status),
                    status.0
                ),
            }
        }
        if values.is_some() {
            Exit::Success
        } else {
            Exit::OtherStatus
        }
    }
}
