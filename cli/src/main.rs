//! `raida`: talk to a RAIDA server from the command line.
//!
//! Exit status: 0 SUCCESS (250; detect and pown: 241 ALL_PASS); 1 the server answered
//! another status; 2 bad command line; 3 transport error or timeout (no response); 4 a
//! response that does not verify (wrong signature, HMAC, length, echo bytes).
//!
//! One module per subcommand, each a clap `Args` type whose doc comment is its help
//! and whose `run` does it; `target` (where to send, how to encrypt), `call` (one
//! request, one printed reply), `coin_call` (the same for the authentication commands,
//! with the coins they name), `exit` and `output` are what they share. A new
//! subcommand is a new module and one line in the `subcommands!` list below.

mod bench;
mod call;
mod coin_call;
mod detect;
mod echo;
mod exit;
mod heal;
mod healing;
mod keys;
mod locker;
mod output;
mod pown;
mod target;
mod version;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::{Exit, EXIT_HELP};

/// How detect and pown differ from [`EXIT_HELP`].
const AUTH_EXIT_HELP: &str =
    "detect and pown: 0 = ALL_PASS (241), 1 = any other status (242 and 243 included).";

/// Talk to a RAIDA server: check it is up, ask its version, detect and pown coins,
/// heal fracked coins, put coins into lockers and take them out, load-test it, make demo keys.
///
/// Start here: `raida keys demo --data-root ./raida-data` writes a demo key store and
/// prints its coins' ANs; then, against a server on raida id 0 (port 50000) using that
/// store: `raida version --enc 4 --coin 1:1 --an <AN of 1:1>`.
#[derive(Debug, Parser)]
#[command(name = "raida", version, after_help = format!("{EXIT_HELP}\n{AUTH_EXIT_HELP}"))]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Declares the subcommand enum, one variant per `module::Type` (the variant, and so
/// the subcommand, is named after the type), and dispatches to the type's
/// `fn run(&self) -> Exit`: the list is the only place a subcommand is registered.
macro_rules! subcommands {
    ($($module:ident::$name:ident),* $(,)?) => {
        #[derive(Debug, Subcommand)]
        enum Cmd {
            $($name($module::$name),)*
        }

        impl Cmd {
            fn run(&self) -> Exit {
                match self {
                    $(Cmd::$name(command) => command.run(),)*
                }
            }
        }
    };
}

// In the order `raida --help` lists them.
subcommands! {
    echo::Echo,
    version::Version,
    detect::Detect,
    pown::Pown,
    healing::Ticket,
    healing::Find,
    healing::Fix,
    heal::Heal,
    locker::Locker,
    bench::Bench,
    keys::Keys,
}

fn main() -> ExitCode {
    Cli::parse().command.run().into()
}
