//! The UDP answer of the codec against independent wire vectors.
//!
//! `vectors/wire_pairs.txt` was written by `scripts/vectors/gen_wire_vectors.py`, a
//! Python model of shared/PROTOCOL.md that never calls this crate:
//!
//! ```text
//! python3 scripts/vectors/gen_wire_vectors.py > core/tests/vectors/wire_pairs.txt
//! ```
//!
//! Every case is one UDP datagram with the elapsed time and the 22 random bytes the
//! server is to use, and the exact response (or `none`: nothing is sent).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use raida_core::codec::{answer_datagram, HeaderRules};
use raida_core::keys::{KeyStore, MemoryKeyStore};
use raida_core::StatusByte;
use raida_core::Timestamp;
use raida_core::{Command, CommandRegistry, RequestContext};

const VECTORS: &str = include_str!("vectors/wire_pairs.txt");

/// The test command the vectors register at (15, 1): status 250, output = payload.
#[derive(Debug)]
struct Mirror;

impl Command for Mirror {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let payload = ctx.payload;
        output.extend_from_slice(payload);
        StatusByte(250)
    }
}

#[derive(Debug)]
struct Case {
    name: String,
    note: String,
    request: Vec<u8>,
    elapsed: u32,
    random: [u8; 22],
    max_body_size: Option<usize>,
    response: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Vectors {
    raida_id: Option<u8>,
    coin_id: Option<u16>,
    max_body_size: Option<usize>,
    coins: Vec<(i8, u32, [u8; 16])>,
    lockers: Vec<[u8; 16]>,
    cases: Vec<Case>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd number of hex digits: {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit pair"))
        .collect()
}

fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    hex(s)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}

/// Parses the line-based vector file (format described at its top).
fn parse(text: &str) -> Vectors {
    let mut v = Vectors::default();
    // Fields of the case being read: name and the other `key value` lines.
    let mut current: Option<(String, Vec<(String, String)>)> = None;

    fn finish(v: &mut Vectors, name: String, fields: Vec<(String, String)>) {
        let get = |key: &str| -> Option<&str> {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, value)| value.as_str())
        };
        let need = |key: &str| -> &str {
            get(key).unwrap_or_else(|| panic!("case {name}: no `{key}` line"))
        };
        let response = match need("response") {
            "none" => None,
            h => Some(hex(h)),
        };
        v.cases.push(Case {
            note: get("note").unwrap_or("").to_string(),
            request: hex(need("request")),
            elapsed: need("elapsed").parse().expect("elapsed is a u32"),
            random: hex_array(need("random")),
            max_body_size: get("max_body_size").map(|s| s.parse().expect("max_body_size")),
            response,
            name,
        });
    }

    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if let Some((name, fields)) = current.take() {
                finish(&mut v, name, fields);
            }
            continue;
        }
        let (key, value) = match line.split_once(' ') {
            Some((k, rest)) => (k, rest.trim()),
            None => (line, ""),
        };
        if key == "case" {
            assert!(
                current.is_none(),
                "line {}: case without blank line",
                number + 1
            );
            current = Some((value.to_string(), Vec::new()));
            continue;
        }
        if let Some((_, fields)) = current.as_mut() {
            fields.push((key.to_string(), value.to_string()));
            continue;
        }
        // File header.
        let mut words = value.split_whitespace();
        match key {
            "raida_id" => v.raida_id = Some(value.parse().expect("raida_id")),
            "coin_id" => v.coin_id = Some(value.parse().expect("coin_id")),
            "max_body_size" => v.max_body_size = Some(value.parse().expect("max_body_size")),
            "coin" => {
                let den = words.next().and_then(|w| w.parse().ok()).expect("coin den");
                let serial = words.next().and_then(|w| w.parse().ok()).expect("serial");
                let an = hex_array(words.next().expect("coin AN"));
                v.coins.push((den, serial, an));
            }
            "locker" => v.lockers.push(hex_array(value)),
            other => panic!("line {}: unknown header key {other:?}", number + 1),
        }
    }
    if let Some((name, fields)) = current.take() {
        finish(&mut v, name, fields);
    }
    v
}

fn key_store(v: &Vectors) -> MemoryKeyStore {
    let keys = MemoryKeyStore::new();
    for &(den, serial, an) in &v.coins {
        keys.insert_coin(den, serial, an);
    }
    for &an in &v.lockers {
        keys.insert_locker(an);
    }
    keys
}

fn registry() -> CommandRegistry {
    let mut commands = CommandRegistry::with_builtins();
    commands
        .register(15, 1, Arc::new(Mirror))
        .expect("group 15 is a valid command group");
    commands
}

/// A readable account of how `got` differs from `want`.
fn diff(want: &Option<Vec<u8>>, got: &Option<Vec<u8>>) -> String {
    let (want, got) = match (want, got) {
        (None, None) => return "no difference".to_string(),
        (None, Some(g)) => return format!("expected no response, got {} bytes", g.len()),
        (Some(w), None) => return format!("expected {} bytes, got no response", w.len()),
        (Some(w), Some(g)) => (w, g),
    };
    let mut out = String::new();
    if want.len() != got.len() {
        let _ = writeln!(out, "length: expected {}, got {}", want.len(), got.len());
    }
    match want.iter().zip(got.iter()).position(|(a, b)| a != b) {
        Some(i) => {
            let _ = writeln!(
                out,
                "first difference at byte {i}: expected {:#04x}, got {:#04x}",
                want[i], got[i]
            );
        }
        None => {
            let _ = writeln!(
                out,
                "common prefix of {} bytes is equal",
                want.len().min(got.len())
            );
        }
    }
    let differing: Vec<usize> = want
        .iter()
        .zip(got.iter())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    if !differing.is_empty() {
        let _ = writeln!(out, "differing offsets: {differing:?}");
    }
    let _ = writeln!(out, "expected: {}", to_hex(want));
    let _ = write!(out, "got:      {}", to_hex(got));
    out
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn every_wire_vector_is_answered_exactly() {
    let v = parse(VECTORS);
    let raida_id = v.raida_id.expect("raida_id in the file header");
    let coin_id = v.coin_id.expect("coin_id in the file header");
    let default_max = v.max_body_size.expect("max_body_size in the file header");
    assert_eq!((raida_id, coin_id, default_max), (7, 6, 65536));
    let commands = registry();

    let mut failures = Vec::new();
    for case in &v.cases {
        let rules = HeaderRules {
            raida_id,
            coin_id,
            max_body_size: case.max_body_size.unwrap_or(default_max),
        };
        let keys = key_store(&v);
        let store: &dyn KeyStore = &keys;
        let got = answer_datagram(
            &case.request,
            &rules,
            &commands,
            store,
            Timestamp::from_micros(1_000_000),
            case.elapsed,
            &case.random,
        );
        if got != case.response {
            failures.push(format!(
                "case {} ({}):\n{}",
                case.name,
                case.note,
                diff(&case.response, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} wire vectors differ:\n\n{}",
        failures.len(),
        v.cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_vector_set_has_not_shrunk() {
    let v = parse(VECTORS);
    assert!(v.cases.len() >= 60, "only {} cases", v.cases.len());

    let names: BTreeSet<&str> = v.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), v.cases.len(), "case names are unique");

    assert_eq!(v.coins.len(), 4);
    assert_eq!(v.lockers.len(), 1);

    // Every status of PROTOCOL.md section 9 the codec can emit for a datagram (all but
    // 160 REQUEST_RATE, 252 INTERNAL and 254 MEMORY_ALLOC) is some case's answer.
    let seen: BTreeSet<u8> = v
        .cases
        .iter()
        .filter_map(|c| c.response.as_ref().map(|r| r[2]))
        .collect();
    let wanted = [2u8, 3, 4, 5, 6, 7, 16, 25, 27, 33, 34, 37, 204, 250, 255];
    for status in wanted {
        assert!(seen.contains(&status), "no case answers status {status}");
    }
    // And some datagrams get no answer at all.
    assert!(v.cases.iter().any(|c| c.response.is_none()));
}

#[test]
fn the_vector_file_parses_as_documented() {
    let v = parse(VECTORS);
    for case in &v.cases {
        if let Some(r) = &case.response {
            let header_len = if case.request[16] <= 2 { 32 } else { 48 };
            assert!(r.len() >= header_len, "case {}: short response", case.name);
            assert_eq!(r[0], 7, "case {}: raida id", case.name);
            let size = usize::from(r[9]) << 16 | usize::from(r[10]) << 8 | usize::from(r[11]);
            assert_eq!(r.len(), header_len + size, "case {}: size field", case.name);
        }
    }
}
