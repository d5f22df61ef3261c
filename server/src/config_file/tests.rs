use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use raida_core::config::Config;
use toml::{Table, Value};

use super::fields::{Slot, Stored};
use super::*;

fn parse(text: &str) -> Result<Config, ConfigFileError> {
    from_toml_str(text, Path::new("config.toml"))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(parse(""), Ok(Config::default()));
    assert_eq!(parse("[server]\n[network]\n"), Ok(Config::default()));
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = parse("[server]\nraida_id = 1\nport = = 3\n");
    match e {
        Err(ConfigFileError::Syntax { line, .. }) => assert_eq!(line, Some(3)),
        other => panic!("{other:?}"),
    }
    let text = error("[server]\nraida_id = 1\nport = = 3\n");
    assert!(text.starts_with("config.toml: line 3, column "), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn value_errors_are_exact() {
    assert_eq!(
        error("[server]\nraida_id = \"abc\"\n"),
        "config.toml: [server] raida_id: expected an integer 0..=24, found \"abc\""
    );
    assert_eq!(
        error("[server]\nraida_id = 25\n"),
        "config.toml: [server] raida_id: expected an integer 0..=24, found 25"
    );
    assert_eq!(
        error("[network]\nmax_connections = 0\n"),
        "config.toml: [network] max_connections: expected an integer 1..=1048576, found 0"
    );
    assert_eq!(
        error("[network]\nmax_conections = 10\n"),
        "config.toml: [network] max_conections: unknown key (did you mean max_connections?)"
    );
    assert_eq!(
        error("[network]\nfrobnicate = 10\n"),
        "config.toml: [network] frobnicate: unknown key"
    );
    assert_eq!(
        error("server = 5\n"),
        "config.toml: server: expected a table, found 5"
    );
    assert_eq!(
        error("[server]\ncoin_id = 1979-05-27\n"),
        "config.toml: [server] coin_id: expected an integer 0..=65535, found 1979-05-27"
    );
    assert_eq!(
        error("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1024\n"),
        "config.toml: [server] udp_effective_payload: 1440 disagrees with \
         udp_payload_threshold = 1024 (two names of one setting); keep one"
    );
}

#[test]
fn udp_names_conflict_only_when_they_differ() {
    let c = parse("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1440\n");
    assert_eq!(c.map(|c| c.server.udp_payload_threshold), Ok(1440));
    let e = error("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1024\n");
    assert!(
        e.starts_with("config.toml: [server] udp_effective_payload: "),
        "{e}"
    );
    assert!(e.contains("udp_payload_threshold"), "{e}");
}

#[test]
fn unknown_server_keys_and_tables_are_warnings() {
    let (config, warnings) = from_toml_str_with_warnings(
        "extra = 1\n[server]\nraida_id = 3\nnew_module_key = [1, 2]\nproxy_key = 7\n[other]\nx = 1\n",
        Path::new("/etc/raida/config.toml"),
    )
    .expect("valid");
    assert_eq!(config.server.raida_id, 3);
    let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "/etc/raida/config.toml: extra: unknown key, ignored",
            "/etc/raida/config.toml: other: unknown key, ignored",
            "/etc/raida/config.toml: [server] new_module_key: unknown key, ignored",
        ]
    );
}

#[test]
fn data_root_resolution() {
    let mut c = Config::default();
    assert_eq!(data_root(&c, None), PathBuf::from("."));
    assert_eq!(
        data_root(&c, Some(Path::new("config.toml"))),
        PathBuf::from(".")
    );
    assert_eq!(
        data_root(&c, Some(Path::new("/opt/raida/config.toml"))),
        PathBuf::from("/opt/raida")
    );
    c.network.data_root = Some(PathBuf::from("/srv/data"));
    assert_eq!(
        data_root(&c, Some(Path::new("/opt/raida/config.toml"))),
        PathBuf::from("/srv/data")
    );
    c.network.data_root = Some(PathBuf::from("store"));
    assert_eq!(
        data_root(&c, Some(Path::new("/opt/raida/config.toml"))),
        PathBuf::from("/opt/raida/store")
    );
    assert_eq!(data_root(&c, None), PathBuf::from("store"));
}

#[test]
fn edit_distance_basics() {
    assert_eq!(toml_format::edit_distance("", "abc"), 3);
    assert_eq!(toml_format::edit_distance("kitten", "sitting"), 3);
    assert_eq!(toml_format::edit_distance("bind", "bind"), 0);
}

#[test]
fn every_number_has_an_upper_bound_a_machine_can_honour() {
    for (text, expected) in [
        (
            "[network]\nmax_connections = 1048577\n",
            "config.toml: [network] max_connections: expected an integer 1..=1048576, \
             found 1048577",
        ),
        (
            "[network]\nmod_queue_size = 10000000000\n",
            "config.toml: [network] mod_queue_size: expected an integer 1..=65536, \
             found 10000000000",
        ),
        (
            "[network]\nkey_page_cache_pages = 16385\n",
            "config.toml: [network] key_page_cache_pages: expected an integer 1..=16384, \
             found 16385",
        ),
    ] {
        assert_eq!(error(text), expected);
    }
    let top = parse(
        "[network]\nmax_connections = 1048576\nmod_queue_size = 65536\n\
         key_page_cache_pages = 16384\n",
    )
    .map(|c| c.network);
    assert_eq!(
        top.map(|n| (n.max_connections, n.mod_queue_size, n.key_page_cache_pages)),
        Ok((1 << 20, 65_536, 16_384))
    );
    for f in FIELDS {
        if let Kind::Int { min, max } = f.kind {
            assert!(min <= max, "{}", f.name);
            // TOML integers are i64; and the bound is something a machine can honour.
            assert!(max <= 1 << 40, "{} has no real upper bound", f.name);
        }
    }
}

#[test]
fn io_threads_may_not_exceed_the_totals_they_share() {
    assert_eq!(
        error("[network]\nio_threads = 4\nmax_connections = 3\n"),
        "config.toml: [network] io_threads = 4 is more than max_connections = 3: each \
         event loop gets a share of it, and a loop whose share is 0 could never serve"
    );
    assert_eq!(
        error("[network]\nio_threads = 4\nmod_queue_size = 2\n"),
        "config.toml: [network] io_threads = 4 is more than mod_queue_size = 2: each \
         event loop gets a share of it, and a loop whose share is 0 could never serve"
    );
    let c = parse("[network]\nio_threads = 4\nmax_connections = 4\nmod_queue_size = 4\n");
    assert_eq!(c.map(|c| c.network.io_threads), Ok(4));
    match parse("[network]\nio_threads = 2\nmax_connections = 1\n") {
        Err(e) => assert_eq!(e.key(), Some("io_threads")),
        Ok(c) => panic!("accepted: {c:?}"),
    }
}

#[test]
fn the_table_is_consistent() {
    for section in Section::ALL {
        let mut names: Vec<&str> = FIELDS
            .iter()
            .filter(|f| f.section == section)
            .flat_map(|f| std::iter::once(f.name).chain(f.alias))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a name twice in [{section}]");
        assert!(
            !names.iter().any(|n| IGNORED_SERVER_KEYS.contains(n)),
            "an ignored key is also a field"
        );
    }
    let mut flags: Vec<&str> = FIELDS
        .iter()
        .filter_map(|f| f.flag.map(|f| f.long))
        .collect();
    let count = flags.len();
    flags.sort_unstable();
    flags.dedup();
    assert_eq!(flags.len(), count, "a flag twice");
    for f in FIELDS {
        // The default fits the kind (it parses back), and an optional field says what
        // applies when it is unset.
        match f.default_value() {
            Some(v) => assert_eq!(f.kind.parse(&v.to_toml()), Ok(v), "{}", f.name),
            None => assert!(f.unset.is_some(), "{} is unset by default", f.name),
        }
        assert!(
            !f.doc.is_empty() && !f.doc.contains('\n'),
            "{}: one line",
            f.name
        );
    }
}

/// A valid value of `f` other than its default: the top of an integer's range (its
/// bottom when that is the default, which also proves the type holds the range).
fn other_value(f: &Field) -> FieldValue {
    match f.kind {
        Kind::Int { min, max } => {
            if f.default_value() == Some(FieldValue::Int(max)) {
                FieldValue::Int(min)
            } else {
                FieldValue::Int(max)
            }
        }
        Kind::IpAddr => FieldValue::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        Kind::SocketAddr => FieldValue::Socket(SocketAddr::from(([127, 0, 0, 1], 9100))),
        Kind::Path => FieldValue::Path(PathBuf::from("elsewhere")),
        Kind::Text { .. } => FieldValue::Text("debug".into()),
        Kind::Strings { .. } => match f.default_value() {
            Some(FieldValue::Strings(d)) if d.is_empty() => {
                FieldValue::Strings(vec![match f.name {
                    "raida_servers" => "127.0.0.1:50000".into(),
                    _ => "10.0.0.5".into(),
                }])
            }
            _ => FieldValue::Strings(Vec::new()),
        },
    }
}

#[test]
fn every_field_is_read_printed_and_serialized() {
    // A file setting every field to a value other than its default.
    let mut text = String::new();
    for section in Section::ALL {
        text.push_str(&format!("[{section}]\n"));
        for f in FIELDS.iter().filter(|f| f.section == section) {
            text.push_str(&format!("{} = {}\n", f.name, other_value(f).to_toml()));
        }
    }
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for f in FIELDS {
        assert_eq!(f.value(&c), Some(other_value(f)), "{} was not read", f.name);
        assert_ne!(f.value(&c), f.default_value(), "{}", f.name);
    }
    for config in [c, Config::default()] {
        let printed = to_toml_string(&config);
        assert_eq!(parse(&printed).as_ref(), Ok(&config), "{printed}");
        let serialized = to_toml_table(&config).to_string();
        assert_eq!(parse(&serialized).as_ref(), Ok(&config), "{serialized}");
        for f in FIELDS {
            assert!(
                printed.contains(f.name),
                "{} not printed:\n{printed}",
                f.name
            );
        }
    }
}

#[test]
fn printed_config_keeps_its_shape() {
    let mut c = parse("[server]\nraida_id = 9\n").unwrap_or_else(|e| panic!("{e}"));
    c.network.log = Some("debug".into());
    let printed = to_toml_string(&c);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines.get(..7),
        Some(
            &[
                "[server]",
                "raida_id = 9",
                "coin_id = 0",
                "# port = 50009  (unset: 50000 + raida_id)",
                "threads = 0  # 0 = max(8, cores)",
                "udp_effective_payload = 1024",
                "raida_servers = []",
            ][..]
        )
    );
    assert_eq!(
        lines.get(7..10),
        Some(&["", "[network]", "bind = \"0.0.0.0\""][..])
    );
    assert!(lines.contains(&"# data_root unset: the config file's directory"));
    assert!(lines.contains(&"# metrics_addr unset: no metrics endpoint"));
    assert!(lines.contains(&"log = \"debug\""));
    assert!(lines.contains(&"[healing]"));
    assert_eq!(lines.last(), Some(&"claim_from = []"));
}

#[test]
fn a_list_of_strings_is_parsed_item_by_item_and_its_networks_checked_by_core() {
    let kind = Kind::Strings {
        item: "a CIDR network such as \"10.0.0.0/8\"",
    };
    let value = |text: &str| -> Value {
        let t: Table = format!("v = {text}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        t.get("v").cloned().unwrap_or_else(|| panic!("no v"))
    };
    let ok = kind.parse(&value("[\"10.0.0.0/8\", \"::1/128\"]"));
    assert_eq!(
        ok,
        Ok(FieldValue::Strings(vec![
            "10.0.0.0/8".into(),
            "::1/128".into()
        ]))
    );
    assert_eq!(
        kind.parse(&value("[]")),
        Ok(FieldValue::Strings(Vec::new()))
    );
    // A string that is no network is read (a string is the type), and refused by
    // core's validation, naming the item.
    assert_eq!(
        error("[network]\ntrusted_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"),
        "config.toml: [network] trusted_networks: expected a CIDR network such as \
         \"10.0.0.0/8\", found \"10.0.0.0/33\" (item 2)"
    );
    assert_eq!(
        error("[network]\ntrusted_networks = [\"::1/128\", 7]\n"),
        "config.toml: [network] trusted_networks: expected an array of strings, each a \
         CIDR network such as \"10.0.0.0/8\", found 7 (item 2)"
    );
    assert_eq!(
        kind.parse(&value("[\"::1/128\", 7]")),
        Err("7 (item 2)".into())
    );
    assert_eq!(
        kind.parse(&value("\"10.0.0.0/8\"")),
        Err("\"10.0.0.0/8\"".into())
    );
    assert_eq!(
        kind.expected(),
        "an array of strings, each a CIDR network such as \"10.0.0.0/8\""
    );
    // Back to TOML, and in and out of a `Vec<String>` field.
    let list = FieldValue::Strings(vec!["10.0.0.0/8".into()]);
    assert_eq!(list.to_toml().to_string(), "[\"10.0.0.0/8\"]");
    assert_eq!(kind.parse(&list.to_toml()), Ok(list.clone()));
    let stored: Option<Vec<String>> = Stored::from_value(list.clone());
    assert_eq!(stored.as_ref().and_then(Stored::to_value), Some(list));
    assert_eq!(
        <Vec<String> as Stored>::from_value(FieldValue::Int(1)),
        None
    );
    // A flag given twice is two items.
    let f = Field::new(
        "trusted_networks",
        Section::Network,
        kind,
        Slot {
            get: |_| None,
            set: |_, _| false,
        },
        "test only",
    );
    assert_eq!(
        f.flag_value(&["10.0.0.0/8".into(), "::1/128".into()])
            .to_string(),
        "[\"10.0.0.0/8\", \"::1/128\"]"
    );
}

#[test]
fn flag_values_become_what_a_file_would_hold() {
    let port = field(Section::Server, "port").unwrap_or_else(|| panic!("port"));
    assert_eq!(port.flag_value(&["70000".into()]), Value::Integer(70_000));
    assert_eq!(port.flag_value(&[" 5 ".into()]), Value::Integer(5));
    assert_eq!(
        port.flag_value(&["abc".into()]),
        Value::String("abc".into())
    );
    let bind = field(Section::Network, "bind").unwrap_or_else(|| panic!("bind"));
    assert_eq!(bind.flag_value(&["7".into()]), Value::String("7".into()));
}

#[test]
fn every_integer_is_refused_just_past_its_range_naming_the_range() {
    // Whether the field's type cannot hold the value (the reader refuses it) or can
    // (core's validation does), the message is the same, from core's bounds.
    for f in FIELDS {
        let Kind::Int { min, max } = f.kind else {
            continue;
        };
        let past = [min.checked_sub(1).map(|v| v as i64), Some(max as i64 + 1)];
        for value in past.into_iter().flatten() {
            let text = format!("[{}]\n{} = {value}\n", f.section, f.name);
            assert_eq!(
                error(&text),
                format!(
                    "config.toml: [{}] {}: expected an integer {min}..={max}, found {value}",
                    f.section, f.name
                )
            );
        }
        for value in [min, max] {
            // io_threads at its top needs as many jobs and fixes.
            let mut text = format!("[{}]\n{} = {value}\n", f.section, f.name);
            if f.name == "io_threads" {
                text.push_str("mod_queue_size = 65536\n[healing]\nmax_fixes = 4096\n");
            }
            let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(f.value(&c), Some(FieldValue::Int(value)), "{}", f.name);
        }
    }
}

#[test]
fn a_value_given_by_its_other_name_is_named_so() {
    assert_eq!(
        error("[server]\nudp_payload_threshold = 0\n"),
        "config.toml: [server] udp_payload_threshold: expected an integer 32..=65507, found 0"
    );
    assert_eq!(
        error("[server]\nudp_effective_payload = 0\n"),
        "config.toml: [server] udp_effective_payload: expected an integer 32..=65507, found 0"
    );
}

#[test]
fn raida_servers_and_the_healing_table_are_read() {
    let c = parse(
        "[server]\nraida_servers = [\"127.0.0.1:50000\", \"raida1.example:50001\"]\n\
         [healing]\nticket_lifetime_s = 60\nmax_tickets = 10\nmax_ticket_coins = 100\n\
         peer_timeout_ms = 500\nmax_fixes = 2\nclaim_from = [\"10.0.0.5\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.server.raida_servers,
        ["127.0.0.1:50000", "raida1.example:50001"]
    );
    assert_eq!(c.healing.ticket_lifetime_s, 60);
    assert_eq!(c.healing.max_tickets, 10);
    assert_eq!(c.healing.max_ticket_coins, 100);
    assert_eq!(c.healing.peer_timeout_ms, 500);
    assert_eq!(c.healing.max_fixes, 2);
    assert_eq!(c.healing.claim_from, ["10.0.0.5"]);
    // It reads back from --print-config.
    assert_eq!(parse(&to_toml_string(&c)), Ok(c));
}

#[test]
fn healing_errors_name_the_table_and_the_key() {
    assert_eq!(
        error("[healing]\nmax_tikets = 3\n"),
        "config.toml: [healing] max_tikets: unknown key (did you mean max_tickets?)"
    );
    assert_eq!(
        error("[healing]\nmax_fixes = 0\n"),
        "config.toml: [healing] max_fixes: expected an integer 1..=4096, found 0"
    );
    assert_eq!(
        error("[server]\nraida_servers = [\"nohost\"]\n"),
        "config.toml: [server] raida_servers: expected a \"host:port\" string such as \
         \"raida0.cloudcoin.global:50000\", found \"nohost\" (item 1)"
    );
    // A deployed file's raida_servers is read, no longer ignored: no warning.
    let (_, warnings) = from_toml_str_with_warnings(
        "[server]\nraida_servers = [\"raida0.cloudcoin.global:50000\"]\n",
        Path::new("config.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
}
