//! The configuration file, `config.toml` (PROTOCOL.md section 10a), and the flags that
//! override it: the driver's side of [`raida_core::config`].
//!
//! The server reads the deployed C server's `config.toml` as it is. Its `[server]`
//! table keeps its meaning: `raida_id`, `coin_id`, `port`, `threads` and
//! `udp_effective_payload` (also accepted as `udp_payload_threshold`) are honoured; the
//! keys that belong to other modules ([`IGNORED_SERVER_KEYS`]) are accepted whatever
//! their type and never required; `raida_servers` (PROTOCOL.md 10a) is read, for the
//! healing commands. Every limit of the network layer is a field of our own
//! `[network]` table, every bound of the healing commands one of `[healing]`.
//!
//! - `fields`: [`FIELDS`], every key once: its table, what it accepts, its flag, a
//!   one-line doc, and where it lives in core's [`Config`]. The reader,
//!   [`to_toml_string`] (`--print-config`), the flags of `raida-server` and the test of
//!   the operators' configuration tables all read that list.
//! - `toml_format`: reading ([`from_toml_str`]) and writing ([`to_toml_string`],
//!   [`to_toml_table`]). The reader checks each value's type; every bound is checked
//!   by [`Config::validate`], which it calls last, so a file, a flag and an embedder's
//!   `Config` pass the same gate.
//! - `flags`: [`Flag`], each field's command-line flag.
//!
//! Every [`ConfigFileError`] names the file (or the flag, for a flag's value) and, when
//! the problem is one key, the table and the key, e.g.
//! `config.toml: [server] raida_id: expected an integer 0..=24, found "abc"`.
//!
//! Strictness: a typo in our own `[network]` or `[healing]` table is an error
//! ([`ConfigFileError::UnknownKey`]); an unknown key in `[server]` or an unknown
//! top-level table is not (other modules of the deployed server add keys there), but it
//! is reported as a [`ConfigWarning`] by [`from_toml_str_with_warnings`] so the driver
//! can log it.

mod fields;
mod flags;
mod toml_format;

use std::fmt;
use std::path::{Path, PathBuf};

use raida_core::config::{Config, ConfigError};

pub use fields::{field, Field, FieldValue, Kind, Section, FIELDS};
pub use flags::Flag;
pub use toml_format::{to_toml_string, to_toml_table};

/// Keys of the `[server]` table that belong to other modules of the deployed server.
///
/// They are accepted whatever their type and never required. `root_path` is in the C
/// server's sample file but read by nothing there (its data root is the binary's
/// directory); here the data root is `[network] data_root`, else the config file's
/// directory ([`data_root`]).
pub const IGNORED_SERVER_KEYS: &[&str] = &[
    "proxy_key",
    "admin_key",
    "proxy_addr",
    "proxy_port",
    "backup_freq",
    "integrity_freq",
    "synchronization_enabled",
    "btc_confirmations",
    "root_path",
];

/// Reads the text of a configuration file; `file` is its path, used in error messages
/// and nothing else. Absent keys and tables take their defaults; the result has passed
/// [`Config::validate`].
pub fn from_toml_str(text: &str, file: &Path) -> Result<Config, ConfigFileError> {
    from_toml_str_with_warnings(text, file).map(|(config, _)| config)
}

/// As [`from_toml_str`], also returning what was ignored but might be a typo (unknown
/// `[server]` keys, unknown top-level keys), top-level ones first, each group sorted by
/// key.
pub fn from_toml_str_with_warnings(
    text: &str,
    file: &Path,
) -> Result<(Config, Vec<ConfigWarning>), ConfigFileError> {
    toml_format::read(text, file)
}

/// The directory holding `Data/`: `[network] data_root` if set (a relative one taken
/// relative to the config file's directory), else the config file's directory, else
/// `.`.
pub fn data_root(config: &Config, config_file: Option<&Path>) -> PathBuf {
    let file_dir = config_file
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty());
    match (&config.network.data_root, file_dir) {
        (Some(root), Some(dir)) if root.is_relative() => dir.join(root),
        (Some(root), _) => root.clone(),
        (None, Some(dir)) => dir.to_path_buf(),
        (None, None) => PathBuf::from("."),
    }
}

/// Why a configuration file was rejected. Its `Display` names the file and, when the
/// problem is one key, the table and the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The text is not TOML.
    #[error("{}: {}TOML syntax error: {message}", .file.display(), location(*.line, *.column))]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column (in characters) of the error, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A top-level key that must be a table (`server`, `network`) is something else.
    #[error("{}: {key}: expected a table, found {found}", .file.display())]
    NotATable {
        /// The configuration file.
        file: PathBuf,
        /// The key (`server` or `network`).
        key: &'static str,
        /// The value found, as TOML (shortened).
        found: String,
    },
    /// A key of the `[network]` table that does not exist.
    #[error("{}: [{table}] {key}: unknown key{}", .file.display(), did_you_mean(*.suggestion))]
    UnknownKey {
        /// The configuration file.
        file: PathBuf,
        /// The table holding the key.
        table: &'static str,
        /// The key, as written.
        key: String,
        /// A known key of that table spelled similarly, if any.
        suggestion: Option<&'static str>,
    },
    /// Two names of one setting are both given, with different values.
    #[error(
        "{}: [{table}] {key}: {value} disagrees with {other_key} = {other_value} \
         (two names of one setting); keep one",
        .file.display()
    )]
    Conflict {
        /// The configuration file.
        file: PathBuf,
        /// The table holding both keys.
        table: &'static str,
        /// The first name.
        key: &'static str,
        /// Its value, as TOML.
        value: String,
        /// The other name.
        other_key: &'static str,
        /// Its value, as TOML.
        other_value: String,
    },
    /// A value of the wrong type (a string for an integer), or one
    /// [`Config::validate`] refused (out of range, a malformed network, more
    /// `io_threads` than connections).
    #[error("{}: {error}", .file.display())]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// What is wrong, naming the table and the key.
        error: ConfigError,
    },
}

impl ConfigFileError {
    /// The configuration file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigFileError::Syntax { file, .. }
            | ConfigFileError::NotATable { file, .. }
            | ConfigFileError::UnknownKey { file, .. }
            | ConfigFileError::Conflict { file, .. }
            | ConfigFileError::Invalid { file, .. } => file,
        }
    }

    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigFileError::Syntax { .. } => None,
            ConfigFileError::NotATable { key, .. } | ConfigFileError::Conflict { key, .. } => {
                Some(key)
            }
            ConfigFileError::UnknownKey { key, .. } => Some(key),
            ConfigFileError::Invalid { error, .. } => Some(error.key()),
        }
    }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
}

/// Something in a configuration file that was ignored but may be a mistake: an unknown
/// key of `[server]` or an unknown top-level key. The driver logs it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigWarning {
    /// The configuration file.
    pub file: PathBuf,
    /// The table holding the key; `None` for a top-level key.
    pub table: Option<&'static str>,
    /// The ignored key.
    pub key: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.table {
            Some(t) => write!(
                f,
                "{}: [{t}] {}: unknown key, ignored",
                self.file.display(),
                self.key
            ),
            None => write!(
                f,
                "{}: {}: unknown key, ignored",
                self.file.display(),
                self.key
            ),
        }
    }
}

#[cfg(test)]
mod tests;
