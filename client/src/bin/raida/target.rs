//! The options every subcommand that talks to a RAIDA shares: where to send, how to
//! encrypt, how long to wait, how to print; and the request they make.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Args;

use raida_client::{An, Coin, Keys, Request, Transport};

use crate::exit::{usage_error, Exit};

/// Where to send, and how to encrypt.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
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
    /// Encryption type: 0 none; 1 AES-128 under a coin's AN (--coin, --an);
    /// 2 AES-128 under a locker's AN (--an); 4 AES-256 + HMAC under one coin (--coin,
    /// --an); 5 AES-256 + HMAC under two coins (--coin and --an twice, same order).
    #[arg(long, default_value_t = 0, value_name = "0|1|2|4|5", value_parser = parse_enc)]
    pub(crate) enc: u8,
    /// A key coin as DENOMINATION:SERIAL, e.g. 1:1 or -1:16 (twice for --enc 5).
    #[arg(long, value_name = "DEN:SN", value_parser = parse_coin, allow_hyphen_values = true)]
    coin: Vec<Coin>,
    /// The AN (32 hex digits) of each --coin, in the same order; for --enc 2 the
    /// locker's AN.
    #[arg(long, value_name = "HEX", value_parser = parse_an)]
    an: Vec<An>,
    /// Timeout for connect, write and the whole response, in milliseconds
    /// [default: 2000; bench over UDP: 200].
    #[arg(long, value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,
    /// Print one JSON object instead of text (for scripts).
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_enc(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(t @ (0 | 1 | 2 | 4 | 5)) => Ok(t),
        _ => Err(format!("expected 0, 1, 2, 4 or 5, got {s:?}")),
    }
}

fn parse_coin(s: &str) -> Result<Coin, String> {
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

fn parse_an(s: &str) -> Result<An, String> {
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

impl TargetArgs {
    /// The key material --enc, --coin and --an describe (a usage error when they do
    /// not fit together).
    fn keys(&self) -> Keys {
        let (coins, ans) = (&self.coin, &self.an);
        let want = |n_coins: usize, n_ans: usize, what: &str| {
            if coins.len() != n_coins || ans.len() != n_ans {
                usage_error(format!(
                    "--enc {} expects {what}; got {} --coin and {} --an",
                    self.enc,
                    coins.len(),
                    ans.len()
                ));
            }
        };
        match self.enc {
            0 => {
                want(0, 0, "no --coin and no --an");
                Keys::None
            }
            1 => {
                want(1, 1, "one --coin and one --an");
                Keys::Coin {
                    coin: coins[0],
                    an: ans[0],
                }
            }
            2 => {
                want(0, 1, "one --an (the locker's AN) and no --coin");
                Keys::Locker { an: ans[0] }
            }
            4 => {
                want(1, 1, "one --coin and one --an");
                Keys::Coin256 {
                    coin: coins[0],
                    an: ans[0],
                }
            }
            5 => {
                want(2, 2, "two --coin and two --an, in the same order");
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
        let mut r = Request::new(self.raida_id, group, command, self.keys());
        r.coin_id = self.coin_id;
        if let Err(e) = r.randomize() {
            eprintln!("raida: {e}");
            Exit::Transport.now();
        }
        r
    }
}
