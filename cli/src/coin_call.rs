//! What `raida detect` and `raida pown` share: the coins they name (`--coin` and
//! `--an`, or a coins file), and one request of an authentication command (PROTOCOL.md
//! 8a) with its per-coin results printed as text or JSON.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};

use raida_client::auth::{self, AuthCommand};
use raida_client::{exchange, status_name, An, Coin, Status, Timeouts};

use crate::exit::{usage_error, Exit};
use crate::output::{hex, insert_reply, out, print_reply};
use crate::target::{parse_an, parse_coin, KeyCoinArgs, TargetArgs};

/// The exit statuses of detect and pown, as their `--help` lists them.
pub(crate) const COIN_EXIT_HELP: &str = "\
Exit status: 0 = ALL_PASS (241); 1 = the server answered another status (242 ALL_FAIL and
243 MIXED included); 2 = bad command line; 3 = transport error or timeout (no response);
4 = a response that does not verify (signature, HMAC, length, echo bytes, bitmap size).";

/// The coins a command checks: on the command line or in a file.
#[derive(Debug, Args)]
pub(crate) struct CoinArgs {
    /// A coin to check, as DENOMINATION:SERIAL, e.g. 1:1 or -1:16; repeat for more
    /// coins, each followed by its --an.
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --coin, in the same order.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    an: Vec<An>,
    /// Read the coins from FILE instead ('-': standard input): one coin per line,
    /// `DEN:SN ANHEX` (pown: `DEN:SN ANHEX PANHEX`), as `raida keys demo` prints them;
    /// blank lines, `#` comments and `locker` lines are skipped.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["coin", "an"])]
    coins: Option<PathBuf>,
}

/// One coin as the command line or a coins file names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CoinLine {
    pub coin: Coin,
    pub an: An,
    /// A coins file's third column.
    pub pan: Option<An>,
}

impl CoinArgs {
    /// The coins, in order (a usage error when there are none, or the options or the
    /// file do not describe them).
    pub(crate) fn lines(&self) -> Vec<CoinLine> {
        let lines = match &self.coins {
            Some(path) => {
                let text = match read_coins_file(path) {
                    Ok(t) => t,
                    Err(e) => usage_error(format!(
                        "--coins: expected a readable file, got {}: {e}",
                        path.display()
                    )),
                };
                match parse_coins_file(&text) {
                    Ok(lines) => lines,
                    Err(e) => usage_error(format!("--coins {}: {e}", path.display())),
                }
            }
            None => crate::target::coin_an_pairs(&self.coin, &self.an)
                .map(|(coin, an)| CoinLine {
                    coin,
                    an,
                    pan: None,
                })
                .collect(),
        };
        if lines.is_empty() {
            usage_error(
                "expected at least one coin (--coin DEN:SN --an HEX, or --coins FILE), got none"
                    .into(),
            );
        }
        lines
    }
}

fn read_coins_file(path: &Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

/// A coins file: one coin per line, `DEN:SN ANHEX [PANHEX]`, fields separated by
/// whitespace. Blank lines, `#` comments (to the end of the line) and lines whose first
/// field is `locker` (the last line `raida keys demo` prints) hold no coin.
pub(crate) fn parse_coins_file(text: &str) -> Result<Vec<CoinLine>, String> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let content = line.split('#').next().unwrap_or("");
        let fields: Vec<&str> = content.split_whitespace().collect();
        match fields.as_slice() {
            [] => continue,
            ["locker", ..] => continue,
            [coin, an] | [coin, an, _] => {
                let coin = parse_coin(coin).map_err(|e| format!("line {n}: {e}"))?;
                let an = parse_an(an).map_err(|e| format!("line {n}: AN: {e}"))?;
                let pan = match fields.get(2) {
                    Some(p) => Some(parse_an(p).map_err(|e| format!("line {n}: PAN: {e}"))?),
                    None => None,
                };
                lines.push(CoinLine { coin, an, pan });
            }
            _ => {
                return Err(format!(
                    "line {n}: expected DEN:SN ANHEX [PANHEX], got {} fields",
                    fields.len()
                ))
            }
        }
    }
    Ok(lines)
}

/// `len` ANs from the OS random source (exits 3 when it fails, as a request's
/// random fields do).
pub(crate) fn os_random_ans(len: usize) -> Vec<An> {
    let mut buf = vec![0u8; len * 16];
    if let Err(e) = getrandom::getrandom(&mut buf) {
        eprintln!("raida: random PANs: expected the OS random source to supply them, got: {e}");
        Exit::Transport.now();
    }
    buf.chunks_exact(16)
        .map(|c| {
            let mut an = [0u8; 16];
            an.copy_from_slice(c);
            an
        })
        .collect()
}

/// One request of an authentication command, and how its reply is shown.
#[derive(Debug)]
pub(crate) struct CoinCall {
    pub command: AuthCommand,
    /// The coins in request order; for pown each with its PAN.
    pub coins: Vec<CoinLine>,
    /// pown_sum's delta.
    pub delta: Option<An>,
    /// The PANs or the delta were drawn here: print the new ANs the server wrote (or,
    /// when the outcome is unknown, may have written).
    pub random: bool,
    /// Request byte 3.
    pub shard: u8,
}

impl CoinCall {
    /// The request's payload.
    fn payload(&self) -> Vec<u8> {
        let pairs: Vec<(Coin, An)> = self.coins.iter().map(|c| (c.coin, c.an)).collect();
        match self.command {
            AuthCommand::Detect => auth::detect_payload(&pairs),
            AuthCommand::DetectSum => auth::detect_sum_payload(&pairs),
            AuthCommand::Pown => {
                let triples: Vec<(Coin, An, An)> = self
                    .coins
                    .iter()
                    .map(|c| (c.coin, c.an, c.pan.unwrap_or(c.an)))
                    .collect();
                auth::pown_payload(&triples)
            }
            AuthCommand::PownSum => auth::pown_sum_payload(&pairs, &self.delta.unwrap_or([0; 16])),
        }
    }

    /// The AN coin `c` has once this request changed it (pown: its PAN; pown_sum: AN ^
    /// delta); `None` for detect.
    fn new_an(&self, c: &CoinLine) -> Option<An> {
        match self.command {
            AuthCommand::Pown => c.pan,
            AuthCommand::PownSum => self.delta.map(|d| auth::xor(&c.an, &d)),
            _ => None,
        }
    }

    /// The JSON key of [`new_an`](Self::new_an).
    fn new_an_key(&self) -> &'static str {
        if self.command == AuthCommand::Pown {
            "pan"
        } else {
            "new_an"
        }
    }

    /// Sends the request to `target` and prints the reply (or what went wrong).
    pub(crate) fn run(&self, target: &TargetArgs<KeyCoinArgs>) -> Exit {
        let t = target;
        let name = self.command.name();
        let addr = t.addr();
        let transport = t.transport();
        let timeouts = Timeouts::uniform(Duration::from_millis(t.timeout_ms.unwrap_or(2000)));
        let mut request = t.request(auth::GROUP, self.command.code());
        request.shard = self.shard;
        request.payload = self.payload();
        let built = match request.build() {
            Ok(b) => b,
            Err(e) => usage_error(format!("{} coins: {e}", self.coins.len())),
        };
        let mut o = t.json_head(name);
        o.insert("shard".into(), json!(self.shard));
        if let (true, Some(d)) = (self.random, self.delta) {
            o.insert("delta".into(), json!(hex(&d)));
        }
        let reply = match exchange(addr, transport, &built, &timeouts) {
            Ok(reply) => reply,
            Err(e) => {
                if t.json {
                    o.insert("error".into(), json!(e.to_string()));
                    o.insert("error_kind".into(), json!(e.kind().name()));
                    self.insert_unknown_outcome(&mut o);
                    out!("{}", Value::Object(o));
                } else {
                    eprintln!("raida {name}: {e}");
                    self.print_unknown_outcome();
                }
                return Exit::of_error(&e);
            }
        };
        let h = reply.response.header;
        let body = &reply.response.body;
        insert_reply(&mut o, &reply);
        let results = match auth::coin_results(self.command, h.status, body, self.coins.len()) {
            Ok(r) => r,
            Err(e) => {
                if t.json {
                    o.insert("error".into(), json!(e.to_string()));
                    o.insert("error_kind".into(), json!("invalid_response"));
                    self.insert_unknown_outcome(&mut o);
                    out!("{}", Value::Object(o));
                } else {
                    eprintln!("raida {name}: {e}");
                    self.print_unknown_outcome();
                }
                return Exit::Invalid;
            }
        };
        if t.json {
            let coins: Vec<Value> = self
                .coins
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let passed = results.as_ref().map(|r| r[i]);
                    let mut e = Map::new();
                    e.insert("coin".into(), json!(c.coin.to_string()));
                    e.insert("denomination".into(), json!(c.coin.denomination));
                    e.insert("serial".into(), json!(c.coin.serial));
                    e.insert("result".into(), json!(passed.map(pass_or_fail)));
                    if let (true, Some(true), Some(new)) = (self.random, passed, self.new_an(c)) {
                        e.insert(self.new_an_key().into(), json!(hex(&new)));
                    }
                    Value::Object(e)
                })
                .collect();
            let passed = results.as_ref().map(|r| r.iter().filter(|&&p| p).count());
            o.insert("passed".into(), json!(passed));
            o.insert("failed".into(), json!(passed.map(|p| self.coins.len() - p)));
            o.insert("coins".into(), Value::Array(coins));
            out!("{}", Value::Object(o));
        } else {
            print_reply(&reply, transport, addr);
            if let (true, Some(d)) = (self.random, self.delta) {
                out!("delta:      {}", hex(&d));
            }
            match &results {
                None => out!(
                    "coins:      no per-coin result ({name} refused the request: {} ({}))",
                    status_name(h.status),
                    h.status.0
                ),
                Some(r) => {
                    for (c, &passed) in self.coins.iter().zip(r) {
                        out!("{} {}", c.coin, pass_or_fail(passed));
                    }
                    let none_passed = r.iter().all(|p| !p);
                    match self.command {
                        AuthCommand::DetectSum if none_passed => out!(
                            "(detect_sum: the XOR of the ANs does not match: at least one AN is \
                             wrong; detect without --sum tells which)"
                        ),
                        AuthCommand::PownSum if none_passed => {
                            out!("(pown_sum: the XOR of the ANs does not match: no AN changed)")
                        }
                        _ => {}
                    }
                    let written: Vec<(Coin, An)> = self
                        .coins
                        .iter()
                        .zip(r)
                        .filter(|(_, &p)| p)
                        .filter_map(|(c, _)| self.new_an(c).map(|a| (c.coin, a)))
                        .collect();
                    if self.random && !written.is_empty() {
                        out!("new ANs (written by the server; keep them, they own the coins now):");
                        for (coin, an) in written {
                            out!("{coin} {}", hex(&an));
                        }
                    }
                }
            }
        }
        if h.status == Status::AllPass.into() {
            Exit::Success
        } else {
            Exit::OtherStatus
        }
    }

    /// JSON, when the server may or may not have written the new ANs drawn here: every
    /// coin with its new AN.
    fn insert_unknown_outcome(&self, o: &mut Map<String, Value>) {
        if !self.random {
            return;
        }
        let coins: Vec<Value> = self
            .coins
            .iter()
            .filter_map(|c| {
                let new = self.new_an(c)?;
                Some(json!({ "coin": c.coin.to_string(), self.new_an_key(): hex(&new) }))
            })
            .collect();
        o.insert("unknown_outcome".into(), json!(true));
        o.insert("coins".into(), Value::Array(coins));
    }

    /// Text, when the server may or may not have written the new ANs drawn here.
    fn print_unknown_outcome(&self) {
        if !self.random {
            return;
        }
        out!("the server may have written these new ANs (check them with raida detect --coins):");
        for c in &self.coins {
            if let Some(new) = self.new_an(c) {
                out!("{} {}", c.coin, hex(&new));
            }
        }
    }
}

fn pass_or_fail(passed: bool) -> &'static str {
    if passed {
        "pass"
    } else {
        "fail"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AN1: &str = "a978ec0c6a723c84269c15887fc3362a";
    const AN2: &str = "7efe4a8858845c51d04e2cbe97a8fb86";

    fn an(s: &str) -> An {
        parse_an(s).expect("hex")
    }

    #[test]
    fn a_coins_file_is_one_coin_per_line_as_keys_demo_prints_it() {
        let text = format!(
            "# demo coins\n\n1:1 {AN1}\n  -1:16\t{AN2}   # a comment\nlocker {AN1}\n1:2 {AN1} {AN2}\n"
        );
        let lines = parse_coins_file(&text).expect("parses");
        assert_eq!(
            lines,
            vec![
                CoinLine {
                    coin: Coin::new(1, 1),
                    an: an(AN1),
                    pan: None
                },
                CoinLine {
                    coin: Coin::new(-1, 16),
                    an: an(AN2),
                    pan: None
                },
                CoinLine {
                    coin: Coin::new(1, 2),
                    an: an(AN1),
                    pan: Some(an(AN2))
                },
            ]
        );
    }

    #[test]
    fn a_coins_file_with_nothing_but_comments_has_no_coins() {
        assert_eq!(parse_coins_file("# none\n\n   \n"), Ok(vec![]));
        assert_eq!(parse_coins_file(""), Ok(vec![]));
    }

    #[test]
    fn a_bad_coins_file_line_is_named_by_its_number() {
        let e = parse_coins_file(&format!("1:1 {AN1}\n1:2\n")).expect_err("one field");
        assert!(
            e.starts_with("line 2: expected DEN:SN ANHEX [PANHEX], got 1 fields"),
            "{e}"
        );
        let e = parse_coins_file(&format!("1:1 {AN1} {AN1} {AN1}\n")).expect_err("4 fields");
        assert!(e.contains("got 4 fields"), "{e}");
        let e = parse_coins_file(&format!("x:1 {AN1}\n")).expect_err("denomination");
        assert!(e.starts_with("line 1: expected a denomination"), "{e}");
        let e = parse_coins_file("1:1 abc\n").expect_err("short AN");
        assert!(e.starts_with("line 1: AN: expected 32 hex digits"), "{e}");
        let e = parse_coins_file(&format!("1:1 {AN1} zz{}\n", &AN2[2..])).expect_err("PAN");
        assert!(e.starts_with("line 1: PAN: expected"), "{e}");
    }

    #[test]
    fn pown_sum_new_ans_are_the_ans_xor_the_delta() {
        let call = CoinCall {
            command: AuthCommand::PownSum,
            coins: vec![CoinLine {
                coin: Coin::new(1, 1),
                an: [0x0F; 16],
                pan: None,
            }],
            delta: Some([0xFF; 16]),
            random: true,
            shard: 0,
        };
        assert_eq!(call.new_an(&call.coins[0]), Some([0xF0; 16]));
        assert_eq!(call.payload().len(), 5 + 16 + 16);
    }
}
