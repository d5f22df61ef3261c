//! How `raida` ends: its exit statuses, and command-line errors found after parsing.

use std::process::ExitCode;

use clap::CommandFactory;

use raida_client::{ClientError, ErrorKind};

/// The exit statuses, as `--help` lists them.
pub(crate) const EXIT_HELP: &str = "\
Exit status: 0 = SUCCESS (250); 1 = the server answered another status; 2 = bad command
line; 3 = transport error or timeout (no response); 4 = a response that does not verify.";

/// An exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: the server answered SUCCESS (250) (`bench`: at least once).
    Success = 0,
    /// 1: the server answered, with another status.
    OtherStatus = 1,
    /// 2: a bad command line.
    Usage = 2,
    /// 3: a transport error or timeout, no response (`bench`: not a single one); or
    /// a local failure (random source, key store, sockets).
    Transport = 3,
    /// 4: a response that does not verify (signature, HMAC, length, echo bytes).
    Invalid = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

impl Exit {
    /// The exit status for a failed exchange.
    pub(crate) fn of_error(e: &ClientError) -> Exit {
        match e.kind() {
            ErrorKind::InvalidResponse => Exit::Invalid,
            ErrorKind::Build => Exit::Usage,
            _ => Exit::Transport,
        }
    }

    /// Ends the process now with this status.
    pub(crate) fn now(self) -> ! {
        std::process::exit(self as i32)
    }
}

/// A command-line error found after parsing: clap formats it (with the usage of
/// `raida` itself) and exits with 2.
pub(crate) fn usage_error(msg: String) -> ! {
    crate::Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}
