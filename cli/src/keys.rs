//! `raida keys`: key-store utilities (today: writing the demo store).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::exit::Exit;
use crate::output::{hex, out};

/// Key-store utilities.
#[derive(Debug, Args)]
pub(crate) struct Keys {
    #[command(subcommand)]
    command: KeysCmd,
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Write the demo key store (DIR/Data) and print its coins as `DEN:SN ANHEX`.
    ///
    /// A server started with this data root knows these coins, so encrypted requests
    /// (--enc 1, 4, 5) can name them. Never overwrites an existing DIR/Data. The last
    /// line is the demo locker's AN (for --enc 2, on a server that registered it).
    Demo {
        /// The data root: the directory that gets `Data/` (the server's data root).
        #[arg(long, value_name = "DIR")]
        data_root: PathBuf,
    },
}

impl Keys {
    pub(crate) fn run(&self) -> Exit {
        match &self.command {
            KeysCmd::Demo { data_root } => demo(data_root),
        }
    }
}

/// `raida keys demo`: writes the demo store unless one is there, and lists its coins.
fn demo(data_root: &Path) -> Exit {
    let existed = data_root.join("Data").exists();
    match raida_store::write_demo_store(data_root) {
        Ok(coins) => {
            if existed {
                eprintln!(
                    "raida keys demo: {} already exists; nothing written (the list below \
                     describes it only if it is a demo store)",
                    data_root.join("Data").display()
                );
            } else {
                eprintln!(
                    "raida keys demo: wrote the demo store under {}",
                    data_root.join("Data").display()
                );
            }
            for coin in coins {
                out!("{coin}");
            }
            out!("locker {}", hex(&raida_store::demo_locker_an()));
            Exit::Success
        }
        Err(e) => {
            eprintln!(
                "raida keys demo: expected to write {}, got an error: {e}",
                data_root.join("Data").display()
            );
            Exit::Transport
        }
    }
}
