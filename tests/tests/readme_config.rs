//! The configuration tables of docs/OPERATING.md (section "Configuration": the
//! `[server]`, `[network]` and `[healing]` tables of "Configuration file", and "Flags") list exactly
//! the fields of the one table of fields (`raida_server::config_file::FIELDS`), no more and no fewer,
//! with the same defaults, aliases and flags; a range written in a row (`1..=1000000`)
//! is the field's. Operators configure the server from those tables, so a field added
//! to the table without a row, or a row left behind by a removed field, fails here.

use std::collections::BTreeMap;
use std::path::Path;

use raida_server::config_file::{Field, Section, FIELDS};

/// The flags that set no field.
const OWN_FLAGS: [&str; 3] = ["--config", "--print-config", "--check-config"];

fn operating_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATING.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of `## Configuration`, split at its `### ` headings: (heading, lines).
fn operators(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "## Configuration")
        .skip(1);
    let mut parts: Vec<(String, Vec<&str>)> = Vec::new();
    for line in lines.by_ref() {
        if line.starts_with("## ") {
            break;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            parts.push((heading.trim().to_string(), Vec::new()));
        } else if let Some((_, body)) = parts.last_mut() {
            body.push(line);
        }
    }
    assert!(
        !parts.is_empty(),
        "docs/OPERATING.md has no \"## Configuration\" section"
    );
    parts
}

/// The subsection `heading` of "Configuration".
fn subsection<'a>(parts: &'a [(String, Vec<&'a str>)], heading: &str) -> &'a [&'a str] {
    parts
        .iter()
        .find(|(h, _)| h == heading)
        .map(|(_, body)| body.as_slice())
        .unwrap_or_else(|| {
            panic!("docs/OPERATING.md: no \"### {heading}\" under \"## Configuration\"")
        })
}

/// The Markdown tables of `lines`, each as its body rows (header and rule dropped), each
/// row as its cells.
fn tables(lines: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut tables = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in lines.iter().chain(std::iter::once(&"")) {
        if line.trim_start().starts_with('|') {
            current.push(line.trim());
        } else if !current.is_empty() {
            let rows = current
                .drain(..)
                .skip(2)
                .map(|row| {
                    row.trim_matches('|')
                        .split('|')
                        .map(|cell| cell.trim().to_string())
                        .collect()
                })
                .collect();
            tables.push(rows);
        }
    }
    tables
}

/// The `code spans` of a cell.
fn code(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Every `min..=max` written in a cell.
fn ranges(cell: &str) -> Vec<(u64, u64)> {
    let mut found = Vec::new();
    let mut rest = cell;
    while let Some(at) = rest.find("..=") {
        let before = &rest[..at];
        let min: String = before
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let after = &rest[at + 3..];
        let max: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let (Ok(min), Ok(max)) = (min.parse(), max.parse()) {
            found.push((min, max));
        }
        rest = after;
    }
    found
}

/// Checks one configuration table of docs/OPERATING.md against the fields of `section`.
fn check_keys(rows: &[Vec<String>], section: Section) {
    let fields: BTreeMap<&str, &Field> = FIELDS
        .iter()
        .filter(|f| f.section == section)
        .map(|f| (f.name, f))
        .collect();
    let mut listed = Vec::new();
    for row in rows {
        let (Some(keys), Some(meaning), Some(default)) = (row.first(), row.get(1), row.last())
        else {
            panic!("docs/OPERATING.md [{section}] table: a short row {row:?}");
        };
        let names = code(keys);
        let Some((&name, aliases)) = names.split_first() else {
            panic!("docs/OPERATING.md [{section}] table: a row without a `key`: {row:?}");
        };
        let Some(field) = fields.get(name) else {
            panic!(
                "docs/OPERATING.md's [{section}] table lists {name}, which is not a field of [{section}]"
            );
        };
        listed.push(name);
        assert_eq!(
            aliases,
            field.alias.as_slice(),
            "docs/OPERATING.md [{section}] {name}: other names"
        );
        assert_eq!(
            default.replace('`', ""),
            field.default_text(),
            "docs/OPERATING.md [{section}] {name}: the default"
        );
        let range = field.kind.range();
        for written in ranges(meaning) {
            assert_eq!(
                Some(written),
                range,
                "docs/OPERATING.md [{section}] {name}: the range written in its row"
            );
        }
    }
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        listed.len(),
        "docs/OPERATING.md [{section}]: a key listed twice"
    );
    let missing: Vec<&&str> = fields.keys().filter(|k| !listed.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATING.md's [{section}] table misses {missing:?}"
    );
}

#[test]
fn the_configuration_tables_list_every_field_with_its_default() {
    let text = operating_doc();
    let parts = operators(&text);
    let tables = tables(subsection(&parts, "Configuration file"));
    assert_eq!(
        tables.len(),
        3,
        "\"Configuration file\" has the [server] table, the [network] table, then the \
         [healing] table"
    );
    check_keys(&tables[0], Section::Server);
    check_keys(&tables[1], Section::Network);
    check_keys(&tables[2], Section::Healing);
}

#[test]
fn the_flags_table_lists_every_flag() {
    let text = operating_doc();
    let parts = operators(&text);
    let tables = tables(subsection(&parts, "Flags"));
    let [rows] = tables.as_slice() else {
        panic!("\"Flags\" has one table, found {}", tables.len());
    };
    let flags: BTreeMap<String, &Field> = FIELDS
        .iter()
        .filter_map(|f| f.flag.map(|flag| (flag.name(), f)))
        .collect();
    let mut listed = Vec::new();
    for row in rows {
        let (Some(flag_cell), Some(sets)) = (row.first(), row.get(1)) else {
            panic!("docs/OPERATING.md Flags: a short row {row:?}");
        };
        let spans = code(flag_cell);
        let mut words = spans.first().map_or("", |s| *s).split_whitespace();
        let name = words.next().unwrap_or_default().to_string();
        let value_name = words.next();
        listed.push(name.clone());
        if OWN_FLAGS.contains(&name.as_str()) {
            continue;
        }
        let Some(field) = flags.get(&name) else {
            panic!("docs/OPERATING.md's Flags table lists {name}, which no field has");
        };
        let Some(flag) = field.flag else {
            unreachable!("collected from fields with a flag")
        };
        assert_eq!(
            value_name,
            Some(flag.value_name),
            "docs/OPERATING.md Flags: the value of {name}"
        );
        assert_eq!(
            code(sets).first().copied(),
            Some(format!("[{}] {}", field.section, field.name).as_str()),
            "docs/OPERATING.md Flags: what {name} sets"
        );
    }
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        listed.len(),
        "docs/OPERATING.md Flags: a flag twice"
    );
    let missing: Vec<String> = flags
        .keys()
        .cloned()
        .chain(OWN_FLAGS.map(String::from))
        .filter(|f| !listed.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATING.md's Flags table misses {missing:?}"
    );
}
