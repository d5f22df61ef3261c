//! The options every subcommand that talks to a RAIDA shares: where to send, how to
//! encrypt, how long to wait, how to print; and the request they make.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Args;
use serde_json::{json, Map, Value};

use raida_client::{An, Coin, Keys, Request, Transport};

use crate::exit::{usage_error, Exit};

/// Where to send, and how to encrypt. `K` is how the request's key options are named:
/// [`KeyArgs`] (`--coin`, `--an`) for echo, version and bench; [`KeyCoinArgs`]
/// (`--key-coin`, `--key-an`) for detect and pown, whose `--coin` and `--an` name the
/// coins checked.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs<K: KeyOptions = KeyArgs> {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port [default: 50000 + raida id].
    #[arg(long)]
    port: Option<u16>,
    /// Use UDP (one datagram each way) instead of TCP.
    #[arg(long)]
    pub(crate) udp: bool,
    /// The RAIDA addressed (request byte 2); must match the server's.
    #[arg(long, default_value_t = 0)]
    raida_id: u8,
    /// Coin id (request bytes 6..7); must match the server's.
    #[arg(long, default_value_t = 0)]
    coin_id: u16,
    #[command(flatten)]
    key: K,
    /// Timeout for connect, write and the whole response, in milliseconds
    /// [default: 2000; bench over UDP: 200].
    #[arg(long, value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,
    /// Print one JSON object instead of text (for scripts).
    #[arg(long)]
    pub(crate) json: bool,
}

/// The encryption options of a request, whatever their flags are called.
pub(crate) trait KeyOptions: Args {
    /// The flag naming a key coin, e.g. `--coin`.
    const COIN_FLAG: &'static str;
    /// The flag naming a key AN, e.g. `--an`.
    const AN_FLAG: &'static str;
    /// The encryption type.
    fn enc(&self) -> u8;
    /// The key coins, in order.
    fn coins(&self) -> &[Coin];
    /// Their ANs, in the same order (type 2: the locker's).
    fn ans(&self) -> &[An];
}

/// The encryption options of echo, version and bench: --enc, --coin, --an.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// Encryption type: 0 none; 1 AES-128 under a coin's AN (--coin, --an);
    /// 2 AES-128 under a locker's AN (--an); 4 AES-256 + HMAC under one coin (--coin,
    /// --an); 5 AES-256 + HMAC under two coins (--coin and --an twice, same order).
    #[arg(long, default_value_t = 0, value_name = "0|1|2|4|5", value_parser = parse_enc)]
    enc: u8,
    /// A key coin as DENOMINATION:SERIAL, e.g. 1:1 or -1:16 (twice for --enc 5).
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --coin, in the same order; for --enc 2 the
    /// locker's AN.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    an: Vec<An>,
}

impl KeyOptions for KeyArgs {
    const COIN_FLAG: &'static str = "--coin";
    const AN_FLAG: &'static str = "--an";
    fn enc(&self) -> u8 {
        self.enc
    }
    fn coins(&self) -> &[Coin] {
        &self.coin
    }
    fn ans(&self) -> &[An] {
        &self.an
    }
}

/// The encryption options of detect and pown: --enc, --key-coin, --key-an (their
/// --coin and --an are the coins checked, not keys).
#[derive(Debug, Args)]
pub(crate) struct KeyCoinArgs {
    /// Encryption type of the request: 0 none; 1 AES-128 under a coin's AN (--key-coin,
    /// --key-an); 2 AES-128 under a locker's AN (--key-an); 4 AES-256 + HMAC under one
    /// coin (--key-coin, --key-an); 5 AES-256 + HMAC under two coins (--key-coin and
    /// --key-an twice, same order).
    #[arg(long, default_value_t = 0, value_name = "0|1|2|4|5", value_parser = parse_enc)]
    enc: u8,
    /// A coin whose AN encrypts the request (not one of the coins checked), as
    /// DENOMINATION:SERIAL (twice for --enc 5).
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    key_coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --key-coin, in the same order; for --enc 2 the
    /// locker's AN.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    key_an: Vec<An>,
}

impl KeyOptions for KeyCoinArgs {
    const COIN_FLAG: &'static str = "--key-coin";
    const AN_FLAG: &'static str = "--key-an";
    fn enc(&self) -> u8 {
        self.enc
    }
    fn coins(&self) -> &[Coin] {
        &self.key_coin
    }
    fn ans(&self) -> &[An] {
        &self.key_an
    }
}

fn parse_enc(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(t @ (0 | 1 | 2 | 4 | 5)) => Ok(t),
        _ => Err(format!("expected 0, 1, 2, 4 or 5, got {s:?}")),
    }
}

pub(crate) fn parse_coin(s: &str) -> Result<Coin, String> {
    let (d, n) = s
        .split_once(':')
        .ok_or_else(|| format!("expected DEN:SN (e.g. 1:1), got {s:?}"))?;
    let denomination = d
        .parse::<i8>()
        .map_err(|_| format!("expected a denomination -128..127 before ':', got {d:?}"))?;
    let serial = n
        .parse::<u32>()
        .map_err(|_| format!("expected a serial number 0..4294967295 after ':', got {n:?}"))?;
    Ok(Coin::new(denomination, serial))
}

pub(crate) fn parse_an(s: &str) -> Result<An, String> {
    let s = s.trim();
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected 32 hex digits (16 bytes), got {} characters: {s:?}",
            s.len()
        ));
    }
    let mut an = [0u8; 16];
    for (i, b) in an.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("expected hex digits, got {s:?}"))?;
    }
    Ok(an)
}

impl<K: KeyOptions> TargetArgs<K> {
    /// The encryption type (--enc).
    pub(crate) fn enc(&self) -> u8 {
        self.key.enc()
    }

    /// The JSON fields every call's object begins with: `command`, `addr`,
    /// `transport`, `enc`.
    pub(crate) fn json_head(&self, command: &str) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("command".into(), json!(command));
        o.insert("addr".into(), json!(self.addr().to_string()));
        o.insert("transport".into(), json!(self.transport().name()));
        o.insert("enc".into(), json!(self.enc()));
        o
    }

    /// The key material --enc and the key coin and AN options describe (a usage error
    /// when they do not fit together).
    pub(crate) fn keys(&self) -> Keys {
        let (coins, ans) = (self.key.coins(), self.key.ans());
        let enc = self.key.enc();
        let (c, a) = (K::COIN_FLAG, K::AN_FLAG);
        let want = |n_coins: usize, n_ans: usize, what: &str| {
            if coins.len() != n_coins || ans.len() != n_ans {
                usage_error(format!(
                    "--enc {enc} expects {what}; got {} {c} and {} {a}",
                    coins.len(),
                    ans.len()
                ));
            }
        };
        match enc {
            0 => {
                want(0, 0, &format!("no {c} and no {a}"));
                Keys::None
            }
            1 => {
                want(1, 1, &format!("one {c} and one {a}"));
                Keys::Coin {
                    coin: coins[0],
                    an: ans[0],
                }
            }
            2 => {
                want(0, 1, &format!("one {a} (the locker's AN) and no {c}"));
                Keys::Locker { an: ans[0] }
            }
            4 => {
                want(1, 1, &format!("one {c} and one {a}"));
                Keys::Coin256 {
                    coin: coins[0],
                    an: ans[0],
                }
            }
            5 => {
                want(2, 2, &format!("two {c} and two {a}, in the same order"));
                Keys::TwoCoins256 {
                    first: coins[0],
                    first_an: ans[0],
                    second: coins[1],
                    second_an: ans[1],
                }
            }
            other => usage_error(format!("--enc: expected 0, 1, 2, 4 or 5, got {other}")),
        }
    }

    /// The RAIDA addressed (--raida-id).
    pub(crate) fn raida_id(&self) -> u8 {
        self.raida_id
    }

    /// The coin id (--coin-id).
    pub(crate) fn coin_id(&self) -> u16 {
        self.coin_id
    }

    /// Whether a key AN option was given (e.g. `--key-an`).
    pub(crate) fn has_key_an(&self) -> bool {
        !self.key.ans().is_empty()
    }

    fn port(&self) -> u16 {
        self.port
            .unwrap_or_else(|| 50000u16.saturating_add(u16::from(self.raida_id)))
    }

    /// The server's address (a usage error when --host does not resolve).
    pub(crate) fn addr(&self) -> SocketAddr {
        let port = self.port();
        match (self.host.as_str(), port).to_socket_addrs() {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => a,
                None => usage_error(format!(
                    "--host: expected a resolvable name, got no address for {:?}",
                    self.host
                )),
            },
            Err(e) => usage_error(format!(
                "--host: expected a resolvable name or address, got {:?} ({e})",
                self.host
            )),
        }
    }

    pub(crate) fn transport(&self) -> Transport {
        if self.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }

    /// A request for (`group`, `command`) to this target, with fresh random nonce,
    /// challenge and echo bytes.
    pub(crate) fn request(&self, group: u8, command: u8) -> Request {
        self.request_with(self.raida_id, self.keys(), group, command)
    }

    /// A request for (`group`, `command`) to RAIDA `raida_id` under `keys`, with this
    /// target's coin id and fresh random nonce, challenge and echo bytes: one request
    /// of a command sent to every RAIDA of a network.
    pub(crate) fn request_with(&self, raida_id: u8, keys: Keys, group: u8, command: u8) -> Request {
        let mut r = Request::new(raida_id, group, command, keys);
        r.coin_id = self.coin_id;
        if let Err(e) = r.randomize() {
            eprintln!("raida: {e}");
            Exit::Transport.now();
        }
        r
    }
}

/// The `--coin` and `--an` options paired in their order: a usage error (exit 2)
/// unless there is exactly one `--an` per `--coin`.
pub(crate) fn coin_an_pairs<'a>(
    coins: &'a [Coin],
    ans: &'a [An],
) -> impl Iterator<Item = (Coin, An)> + 'a {
    if coins.len() != ans.len() {
        usage_error(format!(
            "--coin and --an: expected one --an per --coin, in the same order; got {} \
             --coin and {} --an",
            coins.len(),
            ans.len()
        ));
    }
    coins.iter().copied().zip(ans.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coin_is_denomination_colon_serial() {
        assert_eq!(parse_coin("1:5"), Ok(Coin::new(1, 5)));
        assert_eq!(parse_coin("-1:16"), Ok(Coin::new(-1, 16)));
        assert_eq!(parse_coin("-8:4294967295"), Ok(Coin::new(-8, u32::MAX)));
        assert_eq!(parse_coin("0:0"), Ok(Coin::new(0, 0)));
    }

    #[test]
    fn a_bad_coin_says_which_half_is_wrong() {
        for (s, says) in [
            ("15", "expected DEN:SN"),
            ("", "expected DEN:SN"),
            ("128:1", "denomination -128..127"),
            ("x:1", "denomination"),
            (":1", "denomination"),
            ("1:", "serial number"),
            ("1:-1", "serial number"),
            ("1:4294967296", "serial number"),
            ("1:2:3", "serial number"),
        ] {
            let e = parse_coin(s).expect_err(s);
            assert!(e.contains(says), "{s:?}: {e}");
        }
    }

    #[test]
    fn an_an_is_32_hex_digits_of_either_case() {
        let an = parse_an("00112233445566778899AaBbCcDdEeFf").expect("hex");
        assert_eq!(
            an,
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD,
                0xEE, 0xFF
            ]
        );
        assert_eq!(
            parse_an(" 000102030405060708090a0b0c0d0e0f\n").map(|a| a[15]),
            Ok(15)
        );
    }

    #[test]
    fn a_bad_an_says_what_it_got() {
        for s in [
            "",
            "0011",
            "00112233445566778899aabbccddeeff00",
            "00112233445566778899aabbccddeefg",
            "+0112233445566778899aabbccddeeff",
            "é0112233445566778899aabbccddeef",
        ] {
            let e = parse_an(s).expect_err(s);
            assert!(e.starts_with("expected 32 hex digits"), "{s:?}: {e}");
        }
    }
}
