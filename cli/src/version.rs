//! `raida version`: which server version the RAIDA runs.

use clap::Args;

use crate::call::Call;
use crate::exit::{Exit, EXIT_HELP};
use crate::target::TargetArgs;

/// Ask a RAIDA for its version: command (0, 1), answered with 8 ASCII bytes.
#[derive(Debug, Args)]
#[command(after_help = EXIT_HELP)]
pub(crate) struct Version {
    #[command(flatten)]
    target: TargetArgs,
}

impl Version {
    pub(crate) fn run(&self) -> Exit {
        Call {
            name: "version",
            group: 0,
            command: 1,
            body_name: Some("version"),
        }
        .run(&self.target)
    }
}
