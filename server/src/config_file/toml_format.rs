//! The TOML form of a [`Config`]: reading `config.toml` (every key of
//! [`FIELDS`](super::FIELDS), type-checked here, then the whole configuration through
//! [`Config::validate`]), and writing it back for `--print-config`.

use std::path::Path;

use raida_core::config::{Config, ConfigError};
use toml::{Table, Value};

use super::fields::{Field, FieldValue, Kind, Section, FIELDS};
use super::{ConfigFileError, ConfigWarning, IGNORED_SERVER_KEYS};

impl Kind {
    /// Reads a value of the file as this kind: its type only (an integer that is not
    /// negative, a string, an array of strings); the bounds are [`Config::validate`]'s.
    /// The error is what was found, as error messages show it (the offending item of
    /// an array, with its place).
    pub fn parse(&self, value: &Value) -> Result<FieldValue, String> {
        let bad = || show(value);
        match (self, value) {
            (Kind::Int { .. }, Value::Integer(i)) => {
                u64::try_from(*i).map(FieldValue::Int).map_err(|_| bad())
            }
            (Kind::IpAddr, Value::String(s)) => s.parse().map(FieldValue::Ip).map_err(|_| bad()),
            (Kind::SocketAddr, Value::String(s)) => {
                s.parse().map(FieldValue::Socket).map_err(|_| bad())
            }
            (Kind::Path, Value::String(s)) => Ok(FieldValue::Path(s.into())),
            (Kind::Text { .. }, Value::String(s)) => Ok(FieldValue::Text(s.clone())),
            (Kind::Strings { .. }, Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("{} (item {})", show(other), i + 1)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(FieldValue::Strings),
            _ => Err(bad()),
        }
    }
}

impl FieldValue {
    /// The value as the file writes it (a path that is not UTF-8, lossily).
    pub fn to_toml(&self) -> Value {
        match self {
            // Every bound is far below i64::MAX (a unit test checks), so this never
            // saturates.
            FieldValue::Int(n) => Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX)),
            FieldValue::Ip(a) => Value::String(a.to_string()),
            FieldValue::Socket(a) => Value::String(a.to_string()),
            FieldValue::Path(p) => Value::String(p.to_string_lossy().into_owned()),
            FieldValue::Text(s) => Value::String(s.clone()),
            FieldValue::Strings(v) => Value::Array(v.iter().cloned().map(Value::String).collect()),
        }
    }
}

impl Field {
    /// Its line of `--print-config`.
    fn toml_line(&self, config: &Config) -> String {
        match (self.value(config), self.effective) {
            (Some(v), _) => match self.note {
                Some(note) => format!("{} = {}  # {note}", self.name, v.to_toml()),
                None => format!("{} = {}", self.name, v.to_toml()),
            },
            (None, Some(effective)) => format!(
                "# {} = {}  (unset: {})",
                self.name,
                effective(config).to_toml(),
                self.unset.unwrap_or("no value")
            ),
            (None, None) => format!(
                "# {} unset: {}",
                self.name,
                self.unset.unwrap_or("no value")
            ),
        }
    }
}

/// Reads the text of a configuration file; `file` is its path, used in error messages
/// and nothing else. Absent keys and tables take their defaults; the result has passed
/// [`Config::validate`]. Also returns what was ignored but might be a typo (unknown
/// `[server]` keys, unknown top-level keys), top-level ones first, each group sorted by
/// key.
pub(super) fn read(
    text: &str,
    file: &Path,
) -> Result<(Config, Vec<ConfigWarning>), ConfigFileError> {
    let root: Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_column(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigFileError::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            message: e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        }
    })?;

    let mut warnings = Vec::new();
    let mut config = Config::default();
    let mut aliased = Vec::new();
    for (key, value) in &root {
        match Section::ALL.into_iter().find(|s| s.name() == key) {
            Some(section) => Reader::table(file, section, value)?.read(
                &mut config,
                &mut warnings,
                &mut aliased,
            )?,
            None => warnings.push(ConfigWarning {
                file: file.to_path_buf(),
                table: None,
                key: key.clone(),
            }),
        }
    }
    if let Err(mut error) = config.validate() {
        // Name the key as the file wrote it.
        if let Some(&(_, alias)) = aliased
            .iter()
            .find(|(field, _)| field.section.name() == error.table() && field.name == error.key())
        {
            match &mut error {
                ConfigError::InvalidValue { key, .. } | ConfigError::Exceeds { key, .. } => {
                    *key = alias
                }
                _ => {}
            }
        }
        return Err(ConfigFileError::Invalid {
            file: file.to_path_buf(),
            error,
        });
    }
    warnings.sort();
    Ok((config, warnings))
}

/// The effective configuration as an annotated TOML file, for `--print-config`.
///
/// Every key of [`FIELDS`] is listed, in its order; unset optional keys appear as
/// comments stating what applies instead (an unset `port` as `# port = <effective
/// port>`). The output reads back to an equal `Config` (a `data_root` that is not UTF-8
/// is written lossily).
pub fn to_toml_string(config: &Config) -> String {
    let mut out = String::new();
    for (i, section) in Section::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("[{section}]\n"));
        for field in FIELDS.iter().filter(|f| f.section == section) {
            out.push_str(&field.toml_line(config));
            out.push('\n');
        }
    }
    out
}

/// The keys of [`FIELDS`] that are set, as `[server]`, `[network]` and `[healing]` tables: what
/// [`from_toml_str`](super::from_toml_str) reads back (`toml::to_string` of it is a
/// plain configuration file).
pub fn to_toml_table(config: &Config) -> Table {
    let mut root = Table::new();
    for section in Section::ALL {
        let table: Table = FIELDS
            .iter()
            .filter(|f| f.section == section)
            .filter_map(|f| Some((f.name.to_string(), f.value(config)?.to_toml())))
            .collect();
        root.insert(section.name().to_string(), Value::Table(table));
    }
    root
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A value shown in an error message: TOML syntax, shortened.
pub(super) fn show(value: &Value) -> String {
    const MAX: usize = 60;
    let text = match value {
        Value::Table(_) => return "a table".into(),
        Value::Array(a) if a.is_empty() => return "an empty array".into(),
        Value::Datetime(d) => d.to_string(),
        v => v.to_string(),
    };
    if text.chars().count() > MAX {
        let short: String = text.chars().take(MAX).collect();
        format!("{short}...")
    } else {
        text
    }
}

/// The known key closest to `key` by edit distance, if close enough to be a typo.
fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// One table of the file, with the path for error messages.
struct Reader<'a> {
    file: &'a Path,
    section: Section,
    table: &'a Table,
}

impl<'a> Reader<'a> {
    fn table(file: &'a Path, section: Section, value: &'a Value) -> Result<Self, ConfigFileError> {
        match value {
            Value::Table(table) => Ok(Reader {
                file,
                section,
                table,
            }),
            other => Err(ConfigFileError::NotATable {
                file: file.to_path_buf(),
                key: section.name(),
                found: show(other),
            }),
        }
    }

    fn invalid(&self, key: &'static str, expected: String, found: String) -> ConfigFileError {
        ConfigFileError::Invalid {
            file: self.file.to_path_buf(),
            error: ConfigError::InvalidValue {
                table: self.section.name(),
                key,
                expected,
                found,
            },
        }
    }

    /// The fields of this table.
    fn fields(&self) -> impl Iterator<Item = &'static Field> + '_ {
        FIELDS.iter().filter(move |f| f.section == self.section)
    }

    /// Reads every field of this table into `config`; unknown keys are errors in
    /// `[network]`, warnings in `[server]` (except [`IGNORED_SERVER_KEYS`]). A field
    /// given only by its alias goes into `aliased`, so that a validation error names
    /// the key as written.
    fn read(
        &self,
        config: &mut Config,
        warnings: &mut Vec<ConfigWarning>,
        aliased: &mut Vec<(&'static Field, &'static str)>,
    ) -> Result<(), ConfigFileError> {
        for key in self.table.keys() {
            let known = self
                .fields()
                .any(|f| f.name == key || f.alias == Some(key.as_str()));
            if known {
                continue;
            }
            match self.section {
                Section::Network | Section::Healing => {
                    let names: Vec<&'static str> = self
                        .fields()
                        .flat_map(|f| std::iter::once(f.name).chain(f.alias))
                        .collect();
                    return Err(ConfigFileError::UnknownKey {
                        file: self.file.to_path_buf(),
                        table: self.section.name(),
                        key: key.clone(),
                        suggestion: suggest(key, &names),
                    });
                }
                Section::Server => {
                    if !IGNORED_SERVER_KEYS.contains(&key.as_str()) {
                        warnings.push(ConfigWarning {
                            file: self.file.to_path_buf(),
                            table: Some(self.section.name()),
                            key: key.clone(),
                        });
                    }
                }
            }
        }

        for field in self.fields() {
            let primary = self.value(field, field.name)?;
            let alias = match field.alias {
                Some(alias) => self.value(field, alias)?.map(|v| (alias, v)),
                None => None,
            };
            let (key, value) = match (primary, alias) {
                (Some(a), Some((alias, b))) if a != b => {
                    return Err(ConfigFileError::Conflict {
                        file: self.file.to_path_buf(),
                        table: self.section.name(),
                        key: field.name,
                        value: a.to_toml().to_string(),
                        other_key: alias,
                        other_value: b.to_toml().to_string(),
                    })
                }
                (Some(v), _) => (field.name, v),
                (None, Some((alias, v))) => {
                    aliased.push((field, alias));
                    (alias, v)
                }
                (None, None) => continue,
            };
            let shown = value.to_toml();
            if !field.store(config, value) {
                // A number the field's type cannot hold: beyond its range, whose
                // message [`Config::validate`] would give for one it can.
                return Err(self.invalid(key, field.kind.expected(), show(&shown)));
            }
        }
        Ok(())
    }

    /// The value of `key` (the field's name or its alias), its type checked; `None`
    /// if absent.
    fn value(
        &self,
        field: &Field,
        key: &'static str,
    ) -> Result<Option<FieldValue>, ConfigFileError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(value) => field
                .kind
                .parse(value)
                .map(Some)
                .map_err(|found| self.invalid(key, field.kind.expected(), found)),
        }
    }
}
