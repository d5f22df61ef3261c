//! `raida echo`: is the RAIDA up?

use clap::Args;

use crate::call::Call;
use crate::exit::{Exit, EXIT_HELP};
use crate::target::TargetArgs;

/// Ask a RAIDA whether it is up: command (0, 0), answered SUCCESS with no body.
#[derive(Debug, Args)]
#[command(after_help = EXIT_HELP)]
pub(crate) struct Echo {
    #[command(flatten)]
    target: TargetArgs,
}

impl Echo {
    pub(crate) fn run(&self) -> Exit {
        Call {
            name: "echo",
            group: 0,
            command: 0,
            body_name: None,
        }
        .run(&self.target)
    }
}
