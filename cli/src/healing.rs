//! `raida ticket`, `raida find` and `raida fix`: the healing commands a wallet sends to
//! the RAIDAs where its coins are good (get_ticket 2/40), to learn whether a coin holds
//! its AN or its PAN (find 2/60), and to the RAIDA where a coin is fracked, with the
//! others' tickets (fix 2/80), PROTOCOL.md section 8b. `raida heal` (module `heal`) does
//! the whole flow across a network.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};

use raida_client::healing::{self, FindValue, Tickets, RAIDA_COUNT};
use raida_client::{exchange, status_name, An, Coin, Reply, Timeouts};

use crate::coin_call::{os_random_ans, CoinArgs, CoinLine};
use crate::exit::{usage_error, Exit};
use crate::output::{hex, insert_reply, out, print_reply};
use crate::target::{parse_an, parse_coin, KeyCoinArgs, TargetArgs};

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

const FIX_HELP: &str = "\
Output: the status by name and number, the PG, the tickets sent, then one line per coin,
`DEN:SN pass` (fixed: the record now holds the new AN) or `DEN:SN fail`; then the new
ANs of the coins fixed, as `DEN:SN ANHEX` lines: MD5 of the RAIDA id, the coin and the PG
(PROTOCOL.md 8b), the AN the coin now has on this RAIDA. When the outcome is unknown (no
answer, or one that does not verify) the new ANs are printed too: the server may have
written them (raida find --coin C --an NEW --pan OLD tells). --json prints one object
(status, status_name, round_trip_us, pg, tickets, passed, failed, coins: [{coin, result,
new_an}]).

The RAIDA answers once its own calls to the ticket issuers have ended (up to its
[healing] peer_timeout_ms, 8 s by default): --timeout-ms defaults to 20000 here.

Exit status: 0 = every coin fixed (241 ALL_PASS); 1 = another status (242 ALL_FAIL, 243
MIXED, 40, 160 ...); 2 = bad command line; 3 = transport error or timeout; 4 = a response
that does not verify.

Examples:
  raida fix --raida-id 3 --coin 1:1 --ticket 0:1a2b3c4d --ticket 1:5e6f7081 ...
  raida fix --raida-id 3 --coin 1:1 --pg 000102030405060708090a0b0c0d0e0f --ticket ... --json
";

/// Fix coins on one RAIDA: fix (2, 80) sends the coins, a PG and the tickets other
/// RAIDAs issued for them (raida ticket); the RAIDA claims each ticket from its issuer,
/// and gives every coin at least 13 issuers vouch for the new AN MD5(raida id, coin,
/// PG).
///
/// --ticket RAIDA:HEX names the ticket RAIDA RAIDA issued (repeat, once per RAIDA; the
/// others are 0, no ticket). The PG is --pg or drawn from the OS random source. This
/// changes the RAIDA's records: keep the new ANs. Tickets and PG are bearer secrets:
/// prefer an encrypted --enc.
#[derive(Debug, Args)]
#[command(after_help = FIX_HELP)]
pub(crate) struct Fix {
    /// A coin to fix, as DENOMINATION:SERIAL; repeat for more coins.
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true, required = true)]
    coin: Vec<Coin>,
    /// A ticket, as RAIDA:HEX: the RAIDA (0..24) that issued it and its 8 hex digits,
    /// as raida ticket prints them; repeat, once per RAIDA.
    #[arg(long, value_name = "RAIDA:HEX", value_parser = parse_ticket)]
    ticket: Vec<(u8, u32)>,
    /// The PG (32 hex digits) the new ANs derive from [default: random].
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    pg: Option<An>,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

/// `RAIDA:HEX`: a RAIDA index 0..24 and a ticket of 1 to 8 hex digits.
pub(crate) fn parse_ticket(s: &str) -> Result<(u8, u32), String> {
    let (r, t) = s
        .split_once(':')
        .ok_or_else(|| format!("expected RAIDA:HEX (e.g. 3:1a2b3c4d), got {s:?}"))?;
    let raida = r
        .parse::<u8>()
        .ok()
        .filter(|&r| usize::from(r) < RAIDA_COUNT)
        .ok_or_else(|| format!("expected a RAIDA index 0..24 before ':', got {r:?}"))?;
    if t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected a ticket of 1 to 8 hex digits after ':', got {t:?}"
        ));
    }
    let ticket = u32::from_str_radix(t, 16)
        .map_err(|_| format!("expected a ticket of 1 to 8 hex digits after ':', got {t:?}"))?;
    Ok((raida, ticket))
}

/// The 25 tickets of `given` (each RAIDA at most once).
pub(crate) fn tickets_of(given: &[(u8, u32)]) -> Result<Tickets, String> {
    let mut tickets = [0u32; RAIDA_COUNT];
    let mut seen = [false; RAIDA_COUNT];
    for &(raida, ticket) in given {
        let i = usize::from(raida);
        if seen[i] {
            return Err(format!(
                "--ticket: expected one ticket per RAIDA, got RAIDA {raida} twice"
            ));
        }
        seen[i] = true;
        tickets[i] = ticket;
    }
    Ok(tickets)
}

/// Sends (2, `command`, `payload`) to `target`, waiting `default_timeout_ms` unless
/// --timeout-ms says otherwise; the reply, or the exit after printing what went wrong
/// (and, as `unknown`, what the server may have done).
fn call(
    target: &TargetArgs<KeyCoinArgs>,
    name: &str,
    command: u8,
    payload: Vec<u8>,
    o: &mut Map<String, Value>,
) -> Result<Reply, Exit> {
    call_waiting(target, name, command, payload, o, 2000, &|_| {})
}

/// What to add when no valid answer came: to the JSON object, or (given `None`) as
/// text.
type Unknown<'a> = dyn Fn(Option<&mut Map<String, Value>>) + 'a;

/// [`call`] with its default timeout, and `unknown` run (given the JSON object, `None`
/// for text) when no valid answer came.
fn call_waiting(
    target: &TargetArgs<KeyCoinArgs>,
    name: &str,
    command: u8,
    payload: Vec<u8>,
    o: &mut Map<String, Value>,
    default_timeout_ms: u64,
    unknown: &Unknown<'_>,
) -> Result<Reply, Exit> {
    let timeouts = Timeouts::uniform(Duration::from_millis(
        target.timeout_ms.unwrap_or(default_timeout_ms),
    ));
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
                unknown(Some(o));
                out!("{}", Value::Object(o.clone()));
            } else {
                eprintln!("raida {name}: {e}");
                unknown(None);
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

impl Fix {
    pub(crate) fn run(&self) -> Exit {
        let t = &self.target;
        let tickets = tickets_of(&self.ticket).unwrap_or_else(|e| usage_error(e));
        let pg = self.pg.unwrap_or_else(|| os_random_ans(1)[0]);
        let raida = t.raida_id();
        let coins = &self.coin;
        let new_ans: Vec<An> = coins
            .iter()
            .map(|&c| healing::new_an(raida, c, &pg))
            .collect();
        let mut o = t.json_head("fix");
        o.insert("pg".into(), json!(hex(&pg)));
        o.insert(
            "tickets".into(),
            json!(tickets
                .iter()
                .map(|t| format!("{t:08x}"))
                .collect::<Vec<_>>()),
        );
        // No valid answer: the server may have fixed any of the coins.
        let unknown = |o: Option<&mut Map<String, Value>>| match o {
            Some(o) => {
                o.insert("unknown_outcome".into(), json!(true));
                let list: Vec<Value> = coins
                    .iter()
                    .zip(&new_ans)
                    .map(|(c, an)| json!({ "coin": c.to_string(), "new_an": hex(an) }))
                    .collect();
                o.insert("coins".into(), Value::Array(list));
            }
            None => {
                out!(
                    "the server may have written these new ANs (raida find --an NEW --pan OLD \
                     tells):"
                );
                for (c, an) in coins.iter().zip(&new_ans) {
                    out!("{c} {}", hex(an));
                }
            }
        };
        let reply = match call_waiting(
            t,
            "fix",
            healing::FIX,
            healing::fix_payload(coins, &pg, &tickets),
            &mut o,
            20_000,
            &unknown,
        ) {
            Ok(r) => r,
            Err(exit) => return exit,
        };
        let status = reply.response.header.status;
        insert_reply(&mut o, &reply);
        let results = match healing::fix_results(status, &reply.response.body, coins.len()) {
            Ok(r) => r,
            Err(e) => {
                if t.json {
                    unknown(Some(&mut o));
                } else {
                    unknown(None);
                }
                return invalid(t, "fix", &e, &mut o);
            }
        };
        let result = |i: usize| results.as_ref().map(|r| if r[i] { "pass" } else { "fail" });
        if t.json {
            let passed = results.as_ref().map(|r| r.iter().filter(|&&p| p).count());
            o.insert("passed".into(), json!(passed));
            o.insert("failed".into(), json!(passed.map(|p| coins.len() - p)));
            let list: Vec<Value> = coins
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let mut e = coin_json(c, result(i));
                    if result(i) == Some("pass") {
                        e["new_an"] = json!(hex(&new_ans[i]));
                    }
                    e
                })
                .collect();
            o.insert("coins".into(), Value::Array(list));
            out!("{}", Value::Object(o));
        } else {
            print_reply(&reply, t.transport(), t.addr());
            out!("pg:         {}", hex(&pg));
            let sent: Vec<String> = tickets
                .iter()
                .enumerate()
                .filter(|(_, &t)| t != 0)
                .map(|(i, t)| format!("{i}:{t:08x}"))
                .collect();
            out!("tickets:    {} ({})", sent.len(), sent.join(" "));
            match &results {
                Some(r) => {
                    for (i, c) in coins.iter().enumerate() {
                        out!("{c} {}", result(i).unwrap_or("fail"));
                    }
                    if r.iter().any(|&p| p) {
                        out!(
                            "new ANs on RAIDA {raida} (written by the server; keep them, they \
                             own the coins there now):"
                        );
                        for ((c, an), _) in coins.iter().zip(&new_ans).zip(r).filter(|(_, &p)| p) {
                            out!("{c} {}", hex(an));
                        }
                    }
                }
                None => out!(
                    "coins:      no per-coin result (fix refused the request: {} ({}))",
                    status_name(status),
                    status.0
                ),
            }
        }
        if status.0 == 241 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_raida_colon_hex() {
        assert_eq!(parse_ticket("0:1a2b3c4d"), Ok((0, 0x1a2b_3c4d)));
        assert_eq!(parse_ticket("24:FFFFFFFF"), Ok((24, u32::MAX)));
        assert_eq!(parse_ticket("3:7"), Ok((3, 7)));
        for (s, says) in [
            ("1a2b3c4d", "expected RAIDA:HEX"),
            ("25:1", "RAIDA index 0..24"),
            ("-1:1", "RAIDA index 0..24"),
            ("1:", "1 to 8 hex digits"),
            ("1:123456789", "1 to 8 hex digits"),
            ("1:+1", "1 to 8 hex digits"),
            ("1:xyz", "1 to 8 hex digits"),
        ] {
            let e = parse_ticket(s).expect_err(s);
            assert!(e.contains(says), "{s:?}: {e}");
        }
    }

    #[test]
    fn tickets_go_to_their_raida_s_position_once() {
        let t = tickets_of(&[(24, 9), (0, 5)]).expect("two RAIDAs");
        assert_eq!((t[0], t[24]), (5, 9));
        assert_eq!(t.iter().filter(|&&x| x != 0).count(), 2);
        let e = tickets_of(&[(3, 1), (3, 2)]).expect_err("twice");
        assert!(e.contains("RAIDA 3 twice"), "{e}");
    }
}
