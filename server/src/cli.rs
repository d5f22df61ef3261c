//! Command line and configuration: the deployed server's `config.toml` (read by
//! [`config_file`], validated by `raida_core::config`), our `[network]` table, and
//! flags that override both.
//!
//! The override flags are not written out here: they are generated from the table of
//! fields ([`FIELDS`], each entry with a [`Flag`](crate::config_file::Flag)), so a
//! field with a flag is one entry there. Only `--config`, `--print-config` and
//! `--check-config` are this crate's own.
//!
//! Every flag value goes through core's validation, exactly like a file value: each
//! flag is first checked alone as a one-key TOML document whose "file" is the flag's
//! name (so a bad value is reported as e.g. `--port: [server] port: expected an integer
//! 0..=65535, found 70000`), then written into the file's table, and the merged table is
//! parsed again.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches, Parser};
use raida_core::config::Config;

use crate::config_file::{self, ConfigWarning, Field, Kind, FIELDS};
use toml::{Table, Value};

/// `raida-server`: the RAIDA network layer over epoll.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "raida-server", version, about)]
pub struct Args {
    /// The deployed server's config.toml (its server table, and optionally a network
    /// table). Without it the server runs the embedded default: raida id 0, port 50000,
    /// a demo key store under ./raida-data.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The flags of core's table of fields that were given.
    #[command(flatten)]
    pub overrides: Overrides,
    /// Print the effective configuration as TOML and exit.
    #[arg(long, conflicts_with = "check_config")]
    pub print_config: bool,
    /// Validate the configuration (file and flags) and the key store's root
    /// (Data/ must be a directory), print a one-line summary and exit: 0 when all is
    /// well, 2 naming what is wrong. Binds no socket.
    #[arg(long)]
    pub check_config: bool,
}

/// The flags generated from [`FIELDS`] that were given, in the table's order.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    given: Vec<Override>,
}

/// One flag that was given: its field, and its value (several for a list field, one
/// per occurrence or comma-separated item).
#[derive(Debug, Clone)]
pub struct Override {
    /// The field the flag sets.
    pub field: &'static Field,
    /// The flag's text, as given.
    pub values: Vec<String>,
}

impl Overrides {
    /// The flags given, in the order of [`FIELDS`].
    pub fn given(&self) -> &[Override] {
        &self.given
    }
}

/// The clap argument of a field's flag: its id is the field's key (clap's debug
/// assertions, run by every test that parses, would catch two tables sharing a key
/// with a flag), its help the field's doc, table, key, range and default.
fn flag_arg(field: &'static Field) -> Option<Arg> {
    let flag = field.flag?;
    let default = match (field.default_value(), field.unset) {
        (Some(v), _) => format!("default {}", v.to_toml()),
        (None, Some(unset)) => format!("unset: {unset}"),
        (None, None) => "no default".to_string(),
    };
    let range = field
        .kind
        .range()
        .map_or_else(String::new, |(min, max)| format!(" {min}..={max}"));
    let mut help = format!(
        "{} ([{}] {}{range}; {default})",
        field.doc, field.section, field.name
    );
    if matches!(field.kind, Kind::Path) {
        help.push_str(". A relative path is taken from the current directory");
    }
    if let Some(note) = flag.note {
        help.push_str(&format!("; {note}"));
    }
    let arg = Arg::new(field.name)
        .long(flag.long)
        .value_name(flag.value_name)
        .value_parser(clap::value_parser!(String))
        .help(help);
    Some(match field.kind {
        Kind::Strings { .. } => arg.action(ArgAction::Append).value_delimiter(','),
        _ => arg.action(ArgAction::Set),
    })
}

impl clap::Args for Overrides {
    fn augment_args(mut cmd: Command) -> Command {
        for field in FIELDS {
            if let Some(arg) = flag_arg(field) {
                cmd = cmd.arg(arg);
            }
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Overrides {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Overrides::default();
        overrides.update_from_arg_matches(matches)?;
        Ok(overrides)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for field in FIELDS.iter().filter(|f| f.flag.is_some()) {
            let given = matches
                .try_get_many::<String>(field.name)
                .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e))?;
            if let Some(values) = given {
                let values: Vec<String> = values.cloned().collect();
                self.given.retain(|o| !std::ptr::eq(o.field, field));
                self.given.push(Override { field, values });
            }
        }
        self.given.sort_by_key(|o| {
            FIELDS
                .iter()
                .position(|f| std::ptr::eq(f, o.field))
                .unwrap_or(usize::MAX)
        });
        Ok(())
    }
}

/// The effective settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The merged configuration (file, then flags).
    pub config: Config,
    /// The configuration file, if one was given.
    pub config_file: Option<PathBuf>,
    /// The directory holding `Data/`.
    pub data_root: PathBuf,
    /// The embedded default: no file and no data root given, so the server serves (and
    /// creates when absent) the demo store under `./raida-data`.
    pub embedded_default: bool,
    /// Keys the file has that nothing reads (logged as warnings once logging is up).
    pub warnings: Vec<ConfigWarning>,
}

/// Where the embedded default keeps its demo store.
pub const EMBEDDED_DATA_ROOT: &str = "raida-data";

fn table_mut<'a>(root: &'a mut Table, name: &str) -> Result<&'a mut Table, String> {
    let entry = root
        .entry(name.to_string())
        .or_insert_with(|| Value::Table(Table::new()));
    match entry {
        Value::Table(t) => Ok(t),
        // Core rejected this already when the file was parsed alone.
        _ => Err(format!("[{name}] is not a table")),
    }
}

/// Loads the effective settings from `args`. The error is the message to print (core's,
/// naming the file or the flag and the key).
pub fn load(args: &Args) -> Result<Settings, String> {
    let (text, file) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "{}: cannot read the configuration file: {e}",
                    path.display()
                )
            })?;
            (text, path.clone())
        }
        None => (String::new(), PathBuf::from("(no configuration file)")),
    };
    // The file alone first, so its own errors name it.
    let (_, mut warnings) =
        config_file::from_toml_str_with_warnings(&text, &file).map_err(|e| e.to_string())?;

    let overrides = args.overrides.given();
    // Each flag alone, so a bad value names the flag.
    for o in overrides {
        let Some(flag) = o.field.flag else { continue };
        let mut inner = Table::new();
        inner.insert(o.field.name.to_string(), o.field.flag_value(&o.values));
        let mut one = Table::new();
        one.insert(o.field.section.name().to_string(), Value::Table(inner));
        config_file::from_toml_str(&one.to_string(), Path::new(&flag.name()))
            .map_err(|e| e.to_string())?;
    }

    // Merge and parse again.
    let mut root: Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for o in overrides {
        let field = o.field;
        let t = table_mut(&mut root, field.section.name())?;
        if let Some(alias) = field.alias {
            // The flag replaces both of the file's names for this setting.
            t.remove(alias);
        }
        let v = match field.kind {
            // A relative path flag is relative to the current directory, not to the
            // configuration file's directory.
            Kind::Path => {
                let name = field.flag.map_or_else(String::new, |f| f.name());
                let value = o.values.last().map_or("", String::as_str);
                let absolute =
                    std::path::absolute(value).map_err(|e| format!("{name}: {value}: {e}"))?;
                Value::String(absolute.to_string_lossy().into_owned())
            }
            _ => field.flag_value(&o.values),
        };
        t.insert(field.name.to_string(), v);
    }
    let config = if overrides.is_empty() {
        config_file::from_toml_str(&text, &file)
    } else {
        // Every value was checked above; what can still fail is a bound between keys
        // (io_threads against max_connections), which the file and the flags may share.
        let flags: Vec<String> = overrides
            .iter()
            .filter_map(|o| o.field.flag.map(|f| f.name()))
            .collect();
        let merged = format!("{} with {}", file.display(), flags.join(" "));
        config_file::from_toml_str(&root.to_string(), Path::new(&merged))
    }
    .map_err(|e| e.to_string())?;
    warnings.dedup();

    let embedded_default = args.config.is_none() && config.network.data_root.is_none();
    let data_root = if embedded_default {
        PathBuf::from(EMBEDDED_DATA_ROOT)
    } else {
        config_file::data_root(&config, args.config.as_deref())
    };
    Ok(Settings {
        config,
        config_file: args.config.clone(),
        data_root,
        embedded_default,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        let mut v = vec!["raida-server"];
        v.extend_from_slice(list);
        Args::parse_from(v)
    }

    #[test]
    fn no_flags_is_the_embedded_default() {
        let s = load(&args(&[])).expect("loads");
        assert!(s.embedded_default);
        assert_eq!(s.config.server.effective_port(), 50_000);
        assert_eq!(s.data_root, PathBuf::from(EMBEDDED_DATA_ROOT));
    }

    #[test]
    fn flags_override_and_are_validated_by_core() {
        let s = load(&args(&["--port", "0", "--raida-id", "3", "--bind", "::1"])).expect("ok");
        assert_eq!(s.config.server.port, Some(0));
        assert_eq!(s.config.server.raida_id, 3);
        assert_eq!(s.config.network.bind.to_string(), "::1");
        let e = load(&args(&["--port", "70000"])).expect_err("rejected");
        assert!(e.starts_with("--port: [server] port:"), "{e}");
        let e = load(&args(&["--socket-timeout-ms", "0"])).expect_err("rejected");
        assert!(e.contains("--socket-timeout-ms"), "{e}");
        let e = load(&args(&["--raida-id", "abc"])).expect_err("rejected");
        assert!(e.contains("--raida-id") && e.contains("\"abc\""), "{e}");
        let e = load(&args(&["--bind", "nowhere"])).expect_err("rejected");
        assert!(e.contains("--bind"), "{e}");
    }

    #[test]
    fn metrics_addr_flag_is_validated_by_core() {
        let s = load(&args(&["--metrics-addr", "127.0.0.1:0"])).expect("ok");
        assert_eq!(
            s.config.network.metrics_addr,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        let e = load(&args(&["--metrics-addr", "9100"])).expect_err("rejected");
        assert!(
            e.starts_with("--metrics-addr: [network] metrics_addr:"),
            "{e}"
        );
    }

    #[test]
    fn every_field_with_a_flag_is_a_flag_and_nothing_else_is() {
        let cmd = <Args as clap::CommandFactory>::command();
        let mut longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        longs.sort();
        let mut expected: Vec<String> = FIELDS
            .iter()
            .filter_map(|f| f.flag.map(|f| f.long.to_string()))
            .chain(["config", "print-config", "check-config"].map(String::from))
            .collect();
        expected.sort();
        assert_eq!(longs, expected);
        // The flags operators know (README.md "Flags").
        for long in [
            "port",
            "bind",
            "raida-id",
            "coin-id",
            "data-root",
            "threads",
            "max-connections",
            "socket-timeout-ms",
            "max-body-size",
            "udp-payload-threshold",
            "mod-queue-size",
            "io-threads",
            "busy-poll-us",
            "turn-budget",
            "metrics-addr",
        ] {
            assert!(longs.iter().any(|l| l == long), "--{long}");
        }
    }

    #[test]
    fn every_flag_is_validated_by_core_naming_the_flag() {
        // A value no field accepts: not a number, not an address, and empty for paths.
        for field in FIELDS {
            let Some(flag) = field.flag else { continue };
            let bad = if matches!(field.kind, Kind::Path) {
                ""
            } else {
                "x-y"
            };
            let name = flag.name();
            let e = load(&args(&[&name, bad])).expect_err("rejected");
            assert!(
                e.starts_with(&format!("{name}: [{}] {}: ", field.section, field.name)),
                "{e}"
            );
        }
        let e = load(&args(&["--port", "70000"])).expect_err("rejected");
        assert_eq!(
            e,
            "--port: [server] port: expected an integer 0..=65535, found 70000"
        );
    }

    #[test]
    fn the_udp_flag_replaces_both_names_in_the_file() {
        let dir = std::env::temp_dir().join(format!("raida-cli-udp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("config.toml");
        std::fs::write(&file, "[server]\nudp_payload_threshold = 1200\n").expect("write");
        let path = file.to_str().expect("utf-8");
        let s = load(&args(&["--config", path])).expect("ok");
        assert_eq!(s.config.server.udp_payload_threshold, 1200);
        let s = load(&args(&[
            "--config",
            path,
            "--udp-payload-threshold",
            "1400",
        ]))
        .expect("ok");
        assert_eq!(s.config.server.udp_payload_threshold, 1400);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn bounds_between_keys_hold_for_flags_too() {
        let e = load(&args(&["--io-threads", "4", "--max-connections", "3"])).expect_err("no");
        assert!(
            e.starts_with(
                "(no configuration file) with --max-connections --io-threads: [network] \
                 io_threads = 4 is more than max_connections = 3"
            ),
            "{e}"
        );
        let s = load(&args(&["--io-threads", "3", "--mod-queue-size", "3"])).expect("ok");
        assert_eq!(s.config.network.io_threads, 3);
        assert_eq!(s.config.network.mod_queue_size, 3);
    }

    #[test]
    fn data_root_flag_is_not_the_embedded_default() {
        let s = load(&args(&["--data-root", "somewhere"])).expect("ok");
        assert!(!s.embedded_default);
        assert!(s.data_root.is_absolute());
        assert!(s.data_root.ends_with("somewhere"));
    }
}
