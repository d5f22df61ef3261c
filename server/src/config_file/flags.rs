//! The command-line flags of configuration fields: what [`FIELDS`](super::FIELDS) says
//! of each field's flag, and how a flag's text becomes the value a file would hold, so
//! a flag goes through exactly the checks of a file (the reader, then
//! [`Config::validate`](raida_core::config::Config::validate)).

use toml::Value;

use super::fields::{Field, Kind};

/// The command-line flag of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag {
    /// The flag without its dashes, e.g. `raida-id` for `--raida-id`.
    pub long: &'static str,
    /// The placeholder of its value in `--help`, e.g. `N`.
    pub value_name: &'static str,
    /// What the flag adds to the field's doc, if anything.
    pub note: Option<&'static str>,
}

impl Flag {
    /// The flag as typed, e.g. `--raida-id`; errors about its value name it so.
    pub fn name(&self) -> String {
        format!("--{}", self.long)
    }
}

impl Field {
    /// A flag's text as the TOML value a file would hold, for the same checks: an
    /// integer when the field is one and the text reads as one (else the text, so the
    /// error shows what was given, e.g. `found "abc"`), an array for
    /// [`Kind::Strings`] (one item per value), else the text.
    pub fn flag_value(&self, values: &[String]) -> Value {
        let last = values.last().map_or("", String::as_str);
        match self.kind {
            Kind::Int { .. } => match last.trim().parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => Value::String(last.to_string()),
            },
            // An empty value is an empty list (e.g. `--trusted-networks ""`).
            Kind::Strings { .. } => Value::Array(
                values
                    .iter()
                    .filter(|v| !v.trim().is_empty())
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
            _ => Value::String(last.to_string()),
        }
    }
}
