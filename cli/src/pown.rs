//! `raida pown`: take coins over by replacing their ANs.

use clap::Args;

use raida_client::auth::AuthCommand;
use raida_client::An;

use crate::coin_call::{os_random_ans, CoinArgs, CoinCall, COIN_EXIT_HELP};
use crate::exit::{usage_error, Exit};
use crate::target::{parse_an, KeyCoinArgs, TargetArgs};

const POWN_HELP: &str = "\
Output: the status by name and number, then one line per coin, `DEN:SN pass` (its AN
is now the PAN) or `DEN:SN fail` (unchanged); with --random-pan or --random-delta, the
new ANs written, as `DEN:SN ANHEX` lines (a --coins file). When the outcome is unknown
(timeout, transport error, a response that does not verify) the new ANs drawn here are
printed too: the server may have written them. --json prints one object (status,
status_name, round_trip_us, passed, failed, coins: [{coin, result, pan | new_an}]).

Examples:
  raida pown --coin 1:1 --an a978ec0c6a723c84269c15887fc3362a --random-pan
  raida pown --coin 1:1 --an <AN> --pan <PAN> --coin 1:2 --an <AN> --pan <PAN>
  raida pown --coins coins.txt --sum --random-delta --json

";

/// Take coins over: pown (1, 20) gives each coin whose AN matches the RAIDA's its PAN
/// as new AN; with --sum, pown_sum (1, 21) XORs a delta into every coin's AN when the
/// XOR of their ANs matches, all or nothing.
///
/// The coins are --coin and --an (repeated, in pairs) with a --pan each, or --coins
/// FILE (`DEN:SN ANHEX PANHEX` per line), or either with --random-pan. The request's
/// own encryption is --enc with --key-coin and --key-an (a key coin is not powned).
/// This changes the RAIDA's records: keep the new ANs.
#[derive(Debug, Args)]
#[command(after_help = format!("{POWN_HELP}{COIN_EXIT_HELP}"))]
pub(crate) struct Pown {
    #[command(flatten)]
    coins: CoinArgs,
    /// The PAN (proposed new AN, 32 hex digits) of each --coin, in the same order.
    #[arg(long, value_name = "HEX", value_parser = parse_an,
          conflicts_with_all = ["coins", "random_pan", "sum"])]
    pan: Vec<An>,
    /// Draw every coin's PAN from the OS random source, and print the PANs written.
    #[arg(long, conflicts_with = "sum")]
    random_pan: bool,
    /// Send pown_sum (1, 21) instead: the coins, the XOR of their ANs (computed here)
    /// and --delta; 241 when the XOR matches (every AN ^= delta), else 242 (nothing
    /// changes), 40 when a coin is unknown.
    #[arg(long)]
    sum: bool,
    /// pown_sum: the delta (32 hex digits) XORed into every coin's AN.
    #[arg(long, value_name = "HEX", value_parser = parse_an, requires = "sum",
          conflicts_with = "random_delta")]
    delta: Option<An>,
    /// pown_sum: draw the delta from the OS random source, and print it and the new ANs.
    #[arg(long, requires = "sum")]
    random_delta: bool,
    /// Request byte 3: 0 and 3 use the RAIDA's store; 1 and 2 (other systems) answer
    /// 20 SHARD_NOT_AVAILABLE.
    #[arg(long, default_value_t = 0, value_name = "N")]
    shard: u8,
    #[command(flatten)]
    target: TargetArgs<KeyCoinArgs>,
}

impl Pown {
    pub(crate) fn run(&self) -> Exit {
        let mut coins = self.coins.lines();
        let from_file = coins.iter().filter(|c| c.pan.is_some()).count();
        if self.sum {
            if from_file > 0 {
                usage_error(
                    "--coins: pown --sum expects DEN:SN ANHEX per line (it takes --delta, not \
                     PANs), got a third column"
                        .into(),
                );
            }
            let delta = match (self.delta, self.random_delta) {
                (Some(d), _) => d,
                (None, true) => os_random_ans(1)[0],
                (None, false) => {
                    usage_error("pown --sum expects --delta HEX or --random-delta".into())
                }
            };
            return CoinCall {
                command: AuthCommand::PownSum,
                coins,
                delta: Some(delta),
                random: self.random_delta,
                shard: self.shard,
            }
            .run(&self.target);
        }
        if self.random_pan {
            if from_file > 0 {
                usage_error(
                    "--random-pan draws the PANs, but --coins gives a PAN (third column) too"
                        .into(),
                );
            }
            let pans = os_random_ans(coins.len());
            for (c, pan) in coins.iter_mut().zip(pans) {
                c.pan = Some(pan);
            }
        } else if !self.pan.is_empty() {
            if self.pan.len() != coins.len() {
                usage_error(format!(
                    "--pan: expected one --pan per --coin, in the same order; got {} --coin \
                     and {} --pan",
                    coins.len(),
                    self.pan.len()
                ));
            }
            for (c, &pan) in coins.iter_mut().zip(&self.pan) {
                c.pan = Some(pan);
            }
        } else if from_file != coins.len() {
            usage_error(
                "pown expects a PAN for every coin: --pan HEX per --coin, a third column in \
                 --coins, or --random-pan"
                    .into(),
            );
        }
        CoinCall {
            command: AuthCommand::Pown,
            coins,
            delta: None,
            random: self.random_pan,
            shard: self.shard,
        }
        .run(&self.target)
    }
}
