//! `raida locker`: put coins into a locker, peek at it, remove its coins (PROTOCOL.md
//! 8c), on one RAIDA or on every RAIDA of a network file at once.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use raida_client::locker::{self, LockerCommand};
use raida_client::{exchange, status_name, An, ClientError, Coin, Keys, Reply, Timeouts};

use crate::coin_call::os_random_ans;
use crate::exit::{usage_error, Exit};
use crate::output::{hex, insert_reply, out};
use crate::target::{parse_an, parse_coin, KeyCoinArgs, TargetArgs};

const LOCKER_HELP: &str = "\
The locker: --code CODE derives each RAIDA's key as wallets do, MD5 of the RAIDA number in
decimal then the code (\"7abc2345\" for RAIDA 7), bytes 12..15 set to FF; or --key HEX
names one key for every RAIDA. --network FILE sends to every RAIDA it lists (one
`host:port` a line, line i is RAIDA i; or a config.toml whose [server] raida_servers
lists them), all at once, each request carrying that RAIDA's id; without it, the one
server of --host, --port and --raida-id. With --enc 2 and no --key-an, each request is
encrypted under that RAIDA's locker key (peek and remove: the locker must exist).

Exit status: 0 = every RAIDA answered ALL_PASS (241); 1 = some answered another status;
2 = bad command line; 3 = some gave no response (transport error, timeout); 4 = some
response does not verify. 4 wins over 3, 3 over 1.";

/// Lockers (8/82 put, 8/83 peek, 8/84 remove): hand coins to someone through a key.
#[derive(Debug, Args)]
pub(crate) struct Locker {
    #[command(subcommand)]
    command: LockerCmd,
}

#[derive(Debug, Subcommand)]
enum LockerCmd {
    Put(Put),
    Peek(Peek),
    Remove(Remove),
}

impl Locker {
    pub(crate) fn run(&self) -> Exit {
        match &self.command {
            LockerCmd::Put(c) => c.run(),
            LockerCmd::Peek(c) => c.run(),
            LockerCmd::Remove(c) => c.run(),
        }
    }
}

/// Which locker, and which RAIDAs: what every locker subcommand takes.
#[derive(Debug, Args)]
struct LockerArgs {
    /// The locker code; each RAIDA's key is derived from it (see below).
    #[arg(
        long,
        value_name = "CODE",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    code: Option<String>,
    /// The locker key itself (32 hex digits, bytes 12..15 FF), the same on every RAIDA.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    key: Option<An>,
    /// Send to every RAIDA this file lists (see below) instead of one server.
    #[arg(long, value_name = "FILE")]
    network: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

/// One RAIDA the command is sent to.
#[derive(Clone, Copy, Debug)]
struct Raida {
    id: u8,
    addr: SocketAddr,
    key: An,
}

impl LockerArgs {
    /// The RAIDAs addressed, by id, each with its locker key.
    fn raidas(&self) -> Vec<Raida> {
        let key_of = |id: u8| match (&self.code, self.key) {
            (Some(code), _) => locker::locker_key(id, code),
            (None, Some(key)) => key,
            (None, None) => usage_error("expected --code CODE or --key HEX".into()),
        };
        match &self.network {
            None => {
                let id = self.target.raida_id();
                vec![Raida {
                    id,
                    addr: self.target.addr(),
                    key: key_of(id),
                }]
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
                    usage_error(format!(
                        "--network: expected a readable file, got {}: {e}",
                        path.display()
                    ))
                });
                let addrs = parse_network(&text)
                    .unwrap_or_else(|e| usage_error(format!("--network {}: {e}", path.display())));
                addrs
                    .into_iter()
                    .enumerate()
                    .map(|(i, addr)| {
                        let id = u8::try_from(i).unwrap_or(u8::MAX);
                        Raida {
                            id,
                            addr,
                            key: key_of(id),
                        }
                    })
                    .collect()
            }
        }
    }

    /// The request's key material for RAIDA `r`: its locker key for `--enc 2` without
    /// `--key-an`, else what the options say.
    fn keys_for(&self, r: &Raida) -> Keys {
        if self.target.enc() == 2 && !self.target.has_key_an() {
            Keys::Locker { an: r.key }
        } else {
            self.target.keys()
        }
    }

    /// Sends (8, `command`) with the payload `payload(i, raida)` to every RAIDA at
    /// once and returns each one's reply, in raida order.
    fn send_all(
        &self,
        raidas: &[Raida],
        command: LockerCommand,
        payload: impl Fn(usize, &Raida) -> Vec<u8> + Sync,
    ) -> Vec<Result<Reply, ClientError>> {
        let t = &self.target;
        let timeouts = Timeouts::uniform(Duration::from_millis(t.timeout_ms.unwrap_or(2000)));
        let transport = t.transport();
        let built: Vec<_> = raidas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut request =
                    t.request_with(r.id, self.keys_for(r), locker::GROUP, command.code());
                request.payload = payload(i, r);
                request.build().unwrap_or_else(|e| {
                    usage_error(format!("{} for RAIDA {}: {e}", command.name(), r.id))
                })
            })
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = raidas
                .iter()
                .zip(&built)
                .map(|(r, b)| s.spawn(|| exchange(r.addr, transport, b, &timeouts)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(result) => result,
                    Err(_) => {
                        eprintln!("raida locker: a sending thread panicked");
                        Exit::Transport.now()
                    }
                })
                .collect()
        })
    }
}

/// The addresses of a network file: one `host:port` a line (blank lines and `#`
/// comments skipped), or a config.toml whose `raida_servers` array lists them; entry i
/// is RAIDA i. At most 256 (a raida id is one byte).
pub(crate) fn parse_network(text: &str) -> Result<Vec<SocketAddr>, String> {
    let entries: Vec<String> = match text.find("raida_servers") {
        Some(at) => {
            let rest = &text[at..];
            let open = rest
                .find('[')
                .ok_or("raida_servers: expected an array `[...]`")?;
            let close = rest[open..]
                .find(']')
                .ok_or("raida_servers: expected the array to end with `]`")?;
            rest[open + 1..open + close]
                .split(',')
                .map(|e| e.trim().trim_matches('"').to_string())
                .filter(|e| !e.is_empty())
                .collect()
        }
        None => text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    };
    if entries.is_empty() {
        return Err("expected at least one host:port, got none".into());
    }
    if entries.len() > 256 {
        return Err(format!(
            "expected at most 256 RAIDAs, got {}",
            entries.len()
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("RAIDA {i}: expected a resolvable host:port, got {e:?}"))
        })
        .collect()
}

/// The exit status for every RAIDA's outcome: 0 when all passed (241), else 4 when
/// one answer does not verify, 3 when one gave no answer, 1 otherwise.
fn overall(outcomes: &[Outcome]) -> Exit {
    if outcomes.iter().any(|o| o.exit == Exit::Invalid) {
        Exit::Invalid
    } else if outcomes.iter().any(|o| o.exit == Exit::Transport) {
        Exit::Transport
    } else if outcomes.iter().all(|o| o.exit == Exit::Success) {
        Exit::Success
    } else {
        Exit::OtherStatus
    }
}

/// One RAIDA's outcome: its JSON object, its text line, its exit status.
#[derive(Debug)]
struct Outcome {
    json: Map<String, Value>,
    text: Vec<String>,
    exit: Exit,
}

impl Outcome {
    /// The outcome of an exchange with `r`, before the command's own reading of the
    /// answer: `Err` when there was no (valid) answer.
    fn start(r: &Raida, result: &Result<Reply, ClientError>) -> Result<Outcome, Outcome> {
        let mut json = Map::new();
        json.insert("raida".into(), json!(r.id));
        json.insert("addr".into(), json!(r.addr.to_string()));
        json.insert("key".into(), json!(hex(&r.key)));
        match result {
            Ok(reply) => {
                insert_reply(&mut json, reply);
                let s = reply.response.header.status;
                Ok(Outcome {
                    json,
                    text: vec![format!(
                        "RAIDA {} {}: {} ({})",
                        r.id,
                        r.addr,
                        status_name(s),
                        s.0
                    )],
                    exit: if s.0 == 241 {
                        Exit::Success
                    } else {
                        Exit::OtherStatus
                    },
                })
            }
            Err(e) => {
                json.insert("error".into(), json!(e.to_string()));
                json.insert("error_kind".into(), json!(e.kind().name()));
                Err(Outcome {
                    json,
                    text: vec![format!("RAIDA {} {}: no answer: {e}", r.id, r.addr)],
                    exit: Exit::of_error(e),
                })
            }
        }
    }

    /// The answer did not fit the protocol.
    fn invalid(&mut self, e: impl std::fmt::Display) {
        self.json.insert("error".into(), json!(e.to_string()));
        self.json
            .insert("error_kind".into(), json!("invalid_response"));
        self.text.push(format!("  invalid answer: {e}"));
        self.exit = Exit::Invalid;
    }
}

/// Prints every outcome (text, or one JSON object with `extra` and `raidas`) and
/// returns the overall exit status.
fn finish(
    command: &str,
    args: &LockerArgs,
    outcomes: Vec<Outcome>,
    extra: Map<String, Value>,
) -> Exit {
    let exit = overall(&outcomes);
    let passed = outcomes.iter().filter(|o| o.exit == Exit::Success).count();
    if args.target.json {
        let mut o = Map::new();
        o.insert("command".into(), json!(command));
        o.insert("transport".into(), json!(args.target.transport().name()));
        o.insert("enc".into(), json!(args.target.enc()));
        o.insert("raidas_passed".into(), json!(passed));
        o.insert("raidas_total".into(), json!(outcomes.len()));
        o.extend(extra);
        let list: Vec<Value> = outcomes
            .into_iter()
            .map(|x| Value::Object(x.json))
            .collect();
        o.insert("raidas".into(), Value::Array(list));
        out!("{}", Value::Object(o));
    } else {
        let total = outcomes.len();
        for x in outcomes {
            for line in x.text {
                out!("{line}");
            }
        }
        out!("{command}: {passed} of {total} RAIDAs answered ALL_PASS (241)");
    }
    exit
}

/// Put coins into a locker: store_sum (8/82) sends the coins, the XOR of their ANs
/// and the locker key; when the XOR matches, every coin's AN becomes the key (241),
/// else nothing changes (242); 40 when a coin is unknown, 198 when one is listed
/// twice, 199 when the key is not key-shaped.
///
/// The coins are --coin and --an (repeated, in pairs; with --network the same AN on
/// every RAIDA), or --coins FILE: one coin a line, `DEN:SN AN` (the same AN on every
/// RAIDA) or `DEN:SN AN_0 AN_1 ...` (one AN per RAIDA of --network, in raida order).
/// After a put the coins belong to whoever knows the key: keep the code.
#[derive(Debug, Args)]
#[command(after_help = LOCKER_HELP)]
struct Put {
    /// A coin to put, as DENOMINATION:SERIAL; repeat, each followed by its --an.
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --coin, in the same order.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    an: Vec<An>,
    /// Read the coins from FILE ('-': standard input); see above.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["coin", "an"])]
    coins: Option<PathBuf>,
    #[command(flatten)]
    locker: LockerArgs,
}

/// A coin to put, with its AN on each RAIDA (one AN: the same on all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PutCoin {
    pub coin: Coin,
    pub ans: Vec<An>,
}

impl PutCoin {
    /// Its AN on the `i`-th RAIDA addressed.
    fn an(&self, i: usize) -> An {
        if self.ans.len() == 1 {
            self.ans[0]
        } else {
            self.ans[i]
        }
    }
}

/// A put coins file: `DEN:SN AN...` per line, blank lines and `#` comments skipped,
/// `locker` lines (as `raida keys demo` prints) skipped; every line has one AN or
/// `raidas` of them.
pub(crate) fn parse_put_coins(text: &str, raidas: usize) -> Result<Vec<PutCoin>, String> {
    let mut coins = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let fields: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        match fields.as_slice() {
            [] | ["locker", ..] => continue,
            [coin, ans @ ..] => {
                if ans.len() != 1 && ans.len() != raidas {
                    return Err(format!(
                        "line {n}: expected DEN:SN and 1 AN or {raidas} ANs (one per RAIDA), got \
                         {} ANs",
                        ans.len()
                    ));
                }
                let coin = parse_coin(coin).map_err(|e| format!("line {n}: {e}"))?;
                let ans = ans
                    .iter()
                    .map(|a| parse_an(a).map_err(|e| format!("line {n}: AN: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                coins.push(PutCoin { coin, ans });
            }
        }
    }
    Ok(coins)
}

impl Put {
    fn coins(&self, raidas: usize) -> Vec<PutCoin> {
        let coins = match &self.coins {
            Some(path) => {
                let text = read_file(path);
                parse_put_coins(&text, raidas)
                    .unwrap_or_else(|e| usage_error(format!("--coins {}: {e}", path.display())))
            }
            None => crate::target::coin_an_pairs(&self.coin, &self.an)
                .map(|(coin, an)| PutCoin {
                    coin,
                    ans: vec![an],
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

    fn run(&self) -> Exit {
        let args = &self.locker;
        let raidas = args.raidas();
        let coins = self.coins(raidas.len());
        let replies = args.send_all(&raidas, LockerCommand::Put, |i, r| {
            let pairs: Vec<(Coin, An)> = coins.iter().map(|c| (c.coin, c.an(i))).collect();
            locker::put_payload(&pairs, &r.key)
        });
        let outcomes = raidas
            .iter()
            .zip(&replies)
            .map(|(r, result)| match Outcome::start(r, result) {
                Err(o) => o,
                Ok(mut o) => {
                    if let Ok(reply) = result {
                        let (s, body) = (reply.response.header.status, &reply.response.body);
                        match locker::put_passed(s, body) {
                            Err(e) => o.invalid(e),
                            Ok(passed) => {
                                o.json.insert("passed".into(), json!(passed));
                                if passed == Some(false) {
                                    o.text.push(
                                        "  the XOR of the ANs does not match: nothing moved".into(),
                                    );
                                }
                            }
                        }
                    }
                    o
                }
            })
            .collect();
        let mut extra = Map::new();
        extra.insert(
            "coins".into(),
            json!(coins.iter().map(|c| c.coin.to_string()).collect::<Vec<_>>()),
        );
        finish("locker put", args, outcomes, extra)
    }
}

/// List a locker's coins: peek (8/83) answers 241 with the coins whose AN is the key
/// (ascending by denomination, then serial), or 242 when no coin holds it. Nothing
/// changes on the server.
///
/// Output: a line per RAIDA, then its coins as `DEN:SN` lines; --json gives each
/// RAIDA's `coins`.
#[derive(Debug, Args)]
#[command(after_help = LOCKER_HELP)]
struct Peek {
    #[command(flatten)]
    locker: LockerArgs,
}

/// Each RAIDA's peek: its outcome and the coins it listed (`None` without a valid
/// 241 or 242 answer).
fn peek_all(args: &LockerArgs, raidas: &[Raida]) -> Vec<(Outcome, Option<Vec<Coin>>)> {
    let replies = args.send_all(raidas, LockerCommand::Peek, |_, r| {
        locker::peek_payload(&r.key)
    });
    raidas
        .iter()
        .zip(&replies)
        .map(|(r, result)| match Outcome::start(r, result) {
            Err(o) => (o, None),
            Ok(mut o) => {
                let Ok(reply) = result else {
                    return (o, None);
                };
                let (s, body) = (reply.response.header.status, &reply.response.body);
                match locker::peek_coins(s, body) {
                    Err(e) => {
                        o.invalid(e);
                        (o, None)
                    }
                    Ok(coins) => {
                        if let Some(coins) = &coins {
                            o.json.insert(
                                "coins".into(),
                                json!(coins.iter().map(Coin::to_string).collect::<Vec<_>>()),
                            );
                            if coins.is_empty() {
                                o.text
                                    .push("  no coin holds this key (no such locker)".into());
                            }
                            o.text.extend(coins.iter().map(|c| format!("  {c}")));
                        }
                        (o, coins)
                    }
                }
            }
        })
        .collect()
}

impl Peek {
    fn run(&self) -> Exit {
        let args = &self.locker;
        let raidas = args.raidas();
        let outcomes = peek_all(args, &raidas)
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        finish("locker peek", args, outcomes, Map::new())
    }
}

/// Take a locker's coins: remove (8/84) gives each coin whose AN is the key a new AN,
/// drawn here from the OS random source, one per coin and RAIDA; 241 all moved, 242
/// none, 243 some (a bitmap says which).
///
/// The coins are --coin (repeated), or, without --coin, those each RAIDA's peek lists
/// (a peek first, then a remove of exactly those coins). Output: a line per RAIDA, its
/// coins `DEN:SN pass|fail`, then the new ANs as a coins file: `DEN:SN AN_0 AN_1 ...`
/// (one AN per RAIDA addressed, in raida order; `-` where the coin did not move there).
/// Keep them: they own the coins now. --json gives each RAIDA's coins with `new_an`.
#[derive(Debug, Args)]
#[command(after_help = LOCKER_HELP)]
struct Remove {
    /// A coin to take, as DENOMINATION:SERIAL (repeat); default: what peek lists.
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    #[command(flatten)]
    locker: LockerArgs,
}

impl Remove {
    fn run(&self) -> Exit {
        let args = &self.locker;
        let raidas = args.raidas();
        // Each RAIDA's coins: the same --coin list, or what its own peek lists.
        let (coins_by_raida, mut peek_failures): (Vec<Vec<Coin>>, Vec<Option<Outcome>>) =
            if self.coin.is_empty() {
                peek_all(args, &raidas)
                    .into_iter()
                    .map(|(o, coins)| match coins {
                        Some(c) => (c, None),
                        None => (Vec::new(), Some(o)),
                    })
                    .unzip()
            } else {
                (
                    vec![self.coin.clone(); raidas.len()],
                    raidas.iter().map(|_| None).collect(),
                )
            };
        let new_ans: Vec<Vec<An>> = coins_by_raida
            .iter()
            .map(|coins| os_random_ans(coins.len()))
            .collect();
        // RAIDAs whose peek failed or found nothing are not sent a remove.
        let sent: Vec<usize> = (0..raidas.len())
            .filter(|&i| !coins_by_raida[i].is_empty())
            .collect();
        let sent_raidas: Vec<Raida> = sent.iter().map(|&i| raidas[i]).collect();
        let replies = args.send_all(&sent_raidas, LockerCommand::Remove, |j, r| {
            let i = sent[j];
            let pairs: Vec<(Coin, An)> = coins_by_raida[i]
                .iter()
                .copied()
                .zip(new_ans[i].iter().copied())
                .collect();
            locker::remove_payload(&r.key, &pairs)
        });
        let mut replies = replies.into_iter();
        // The new AN each coin has on each RAIDA, where it moved.
        let mut moved: Vec<(Coin, Vec<Option<An>>)> = Vec::new();
        let mut outcomes = Vec::new();
        for (i, r) in raidas.iter().enumerate() {
            if let Some(o) = peek_failures[i].take() {
                outcomes.push(o);
                continue;
            }
            let coins = &coins_by_raida[i];
            if coins.is_empty() {
                let mut json = Map::new();
                json.insert("raida".into(), json!(r.id));
                json.insert("addr".into(), json!(r.addr.to_string()));
                json.insert("key".into(), json!(hex(&r.key)));
                json.insert("coins".into(), json!([]));
                outcomes.push(Outcome {
                    json,
                    text: vec![format!(
                        "RAIDA {} {}: no coin holds this key (peek: no such locker); nothing \
                         to remove",
                        r.id, r.addr
                    )],
                    exit: Exit::OtherStatus,
                });
                continue;
            }
            let Some(result) = replies.next() else { break };
            let mut o = match Outcome::start(r, &result) {
                Err(o) => o,
                Ok(o) => o,
            };
            if let Ok(reply) = &result {
                let (s, body) = (reply.response.header.status, &reply.response.body);
                match locker::remove_results(s, body, coins.len()) {
                    Err(e) => o.invalid(e),
                    Ok(None) => {}
                    Ok(Some(passed)) => {
                        let mut list = Vec::new();
                        for ((coin, an), &p) in coins.iter().zip(&new_ans[i]).zip(&passed) {
                            let mut e = Map::new();
                            e.insert("coin".into(), json!(coin.to_string()));
                            e.insert("result".into(), json!(if p { "pass" } else { "fail" }));
                            if p {
                                e.insert("new_an".into(), json!(hex(an)));
                            }
                            list.push(Value::Object(e));
                            o.text
                                .push(format!("  {coin} {}", if p { "pass" } else { "fail" }));
                            if p {
                                let at = match moved.iter().position(|(c, _)| c == coin) {
                                    Some(at) => at,
                                    None => {
                                        moved.push((*coin, vec![None; raidas.len()]));
                                        moved.len() - 1
                                    }
                                };
                                moved[at].1[i] = Some(*an);
                            }
                        }
                        o.json.insert("coins".into(), Value::Array(list));
                    }
                }
            }
            outcomes.push(o);
        }
        moved.sort_by_key(|(c, _)| *c);
        if !args.target.json && !moved.is_empty() {
            let mut lines =
                vec!["new ANs (written by the server; keep them, they own the coins now):".into()];
            for (coin, ans) in &moved {
                let cols: Vec<String> = ans
                    .iter()
                    .map(|a| a.map_or_else(|| "-".to_string(), |a| hex(&a)))
                    .collect();
                lines.push(format!("{coin} {}", cols.join(" ")));
            }
            if let Some(last) = outcomes.last_mut() {
                last.text.extend(lines);
            }
        }
        finish("locker remove", args, outcomes, Map::new())
    }
}

/// A coins file's text (`-`: standard input); a usage error when it cannot be read.
pub(crate) fn read_file(path: &Path) -> String {
    let read = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    read.unwrap_or_else(|e| {
        usage_error(format!(
            "--coins: expected a readable file, got {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AN1: &str = "a978ec0c6a723c84269c15887fc3362a";
    const AN2: &str = "7efe4a8858845c51d04e2cbe97a8fb86";

    #[test]
    fn a_network_file_is_one_address_a_line_or_a_configs_raida_servers() {
        let lines =
            parse_network("# local\n127.0.0.1:40000\n\n127.0.0.1:40001 # one\n").expect("lines");
        assert_eq!(
            lines,
            vec![
                "127.0.0.1:40000".parse::<SocketAddr>().expect("addr"),
                "127.0.0.1:40001".parse().expect("addr")
            ]
        );
        let config = "[server]\nraida_id = 1\nraida_servers = [\"127.0.0.1:40000\",\n  \
                      \"127.0.0.1:40001\", ]\nport = 3\n";
        assert_eq!(parse_network(config), Ok(lines));
        assert!(parse_network("# nothing\n").is_err());
        let e = parse_network("127.0.0.1:1\nnot an address\n").expect_err("bad");
        assert!(e.starts_with("RAIDA 1:"), "{e}");
    }

    #[test]
    fn a_put_coins_file_has_one_an_or_one_per_raida() {
        let text = format!("1:1 {AN1}\nlocker {AN1}\n-1:16 {AN1} {AN2} # two RAIDAs\n");
        let coins = parse_put_coins(&text, 2).expect("parses");
        assert_eq!(coins.len(), 2);
        assert_eq!(coins[0].an(1), parse_an(AN1).expect("hex"));
        assert_eq!(coins[1].coin, Coin::new(-1, 16));
        assert_eq!(coins[1].an(1), parse_an(AN2).expect("hex"));
        let e = parse_put_coins(&format!("1:1 {AN1} {AN2}\n"), 3).expect_err("2 of 3");
        assert!(e.contains("1 AN or 3 ANs"), "{e}");
    }
}
