//! `raida detect`: are these coins' ANs authentic?

use clap::Args;

use raida_client::auth::AuthCommand;

use crate::coin_call::{CoinArgs, CoinCall, COIN_EXIT_HELP};
use crate::exit::{usage_error, Exit};
use crate::target::{KeyCoinArgs, TargetArgs};

const DETECT_HELP: &str = "\
Output: the status by name and number, then one line per coin, `DEN:SN pass` or
`DEN:SN fail` (all pass for 241, none for 242, the bitmap of 243); --json prints one
object (status, status_name, round_trip_us, passed, failed, coins: [{coin, result}]).

Examples:
  raida detect --coin 1:1 --an a978ec0c6a723c84269c15887fc3362a
  raida detect --coins coins.txt --sum --udp
  raida keys demo --data-root ./raida-data | raida detect --coins - --json

";

/// Check coins' ANs: detect (1, 10) says, for each coin, whether its AN is the one the
/// RAIDA holds; with --sum, detect_sum (1, 11) checks all of them at once.
///
/// The coins checked are --coin and --an (repeated, in pairs) or --coins FILE. The
/// request's own encryption is --enc with --key-coin and --key-an: a key coin only
/// encrypts the request, it is not checked. Nothing changes on the server.
#[derive(Debug, Args)]
#[command(after_help = format!("{DETECT_HELP}{COIN_EXIT_HELP}"))]
pub(crate) struct Detect {
    #[command(flatten)]
    coins: CoinArgs,
    /// Send detect_sum (1, 11) instead: the coins and the XOR of their ANs (computed
    /// here); 241 when the XOR of the RAIDA's ANs matches, else 242 (for every coin),
    /// 40 when a coin is unknown.
    #[arg(long)]
    sum: bool,
    /// Request byte 3: 0 and 3 use the RAIDA's store; 1 and 2 (other systems) answer
    /// 20 SHARD_NOT_AVAILABLE.
    #[arg(long, default_value_t = 0, value_name = "N")]
    shard: u8,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

impl Detect {
    pub(crate) fn run(&self) -> Exit {
        let coins = self.coins.lines();
        if let Some(i) = coins.iter().position(|c| c.pan.is_some()) {
            usage_error(format!(
                "--coins: detect expects DEN:SN ANHEX per line, got a third column (a PAN) \
                 for coin {}",
                coins[i].coin
            ));
        }
        CoinCall {
            command: if self.sum {
                AuthCommand::DetectSum
            } else {
                AuthCommand::Detect
            },
            coins,
            delta: None,
            random: false,
            shard: self.shard,
        }
        .run(&self.target)
    }
}
