//! Loading `config.toml` files as operators write them (PROTOCOL.md section 10a) and
//! rejecting broken ones with messages that name the file and the key: the reader of
//! `raida_server::config_file` over core's typed configuration and its validation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use raida_core::config::{Config, NetworkConfig, ServerConfig};
use raida_server::config_file::{
    self, data_root, from_toml_str, to_toml_string, to_toml_table, ConfigFileError, FIELDS,
};

const FILE: &str = "/opt/wraidax/config.toml";

fn load(text: &str) -> Result<Config, ConfigFileError> {
    from_toml_str(text, Path::new(FILE))
}

fn loaded(text: &str) -> Config {
    match load(text) {
        Ok(c) => c,
        Err(e) => panic!("rejected: {e}"),
    }
}

fn rejected(text: &str) -> ConfigFileError {
    match load(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

/// A deployed server's file: every key section 10a lists, with values like the C
/// server's sample (strings, an array, a boolean), plus its `root_path`.
const DEPLOYED: &str = r#"
[server]
raida_id = 14
coin_id = 6
port = 50014
backup_freq = 5
integrity_freq = 3600
udp_effective_payload = 1440
synchronization_enabled = false
root_path = "/opt/wraidax"
threads = 12
admin_key = "6de9439834c9147569741d3c9c9fc010"
proxy_key = "11b524f989a384f58e0d442da6bd6379"
proxy_addr = "swap.cloudcoin.global"
proxy_port = 50555
btc_confirmations = 3
raida_servers = [
  "raida50.cloudcoin.global:50000", "raida51.cloudcoin.global:50001",
  "raida52.cloudcoin.global:50002", "raida53.cloudcoin.global:50003",
  "raida54.cloudcoin.global:50004", "raida55.cloudcoin.global:50005",
  "raida56.cloudcoin.global:50006", "raida57.cloudcoin.global:50007",
  "raida58.cloudcoin.global:50008", "raida59.cloudcoin.global:50009",
  "raida60.cloudcoin.global:50010", "raida61.cloudcoin.global:50011",
  "raida62.cloudcoin.global:50012", "raida63.cloudcoin.global:50013",
  "raida64.cloudcoin.global:50014", "raida65.cloudcoin.global:50015",
  "raida66.cloudcoin.global:50016", "raida67.cloudcoin.global:50017",
  "raida68.cloudcoin.global:50018", "raida69.cloudcoin.global:50019",
  "raida70.cloudcoin.global:50020", "raida71.cloudcoin.global:50021",
  "raida72.cloudcoin.global:50022", "raida73.cloudcoin.global:50023",
  "raida74.cloudcoin.global:50024",
]
"#;

#[test]
fn deployed_file_loads_and_honours_its_keys() {
    let (c, warnings) = config_file::from_toml_str_with_warnings(DEPLOYED, Path::new(FILE))
        .unwrap_or_else(|e| panic!("rejected: {e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut expected = ServerConfig::default();
    expected.raida_id = 14;
    expected.coin_id = 6;
    expected.port = Some(50014);
    expected.threads = 12;
    expected.udp_payload_threshold = 1440;
    // raida_servers is read (the healing commands' peers), in RAIDA order.
    expected.raida_servers = (0..25)
        .map(|i| format!("raida{}.cloudcoin.global:{}", 50 + i, 50_000 + i))
        .collect();
    assert_eq!(c.server, expected);
    assert_eq!(c.server.effective_port(), 50014);
    assert_eq!(c.server.effective_threads(64), 12);
    assert_eq!(c.network, NetworkConfig::default());
    assert_eq!(
        data_root(&c, Some(Path::new(FILE))),
        PathBuf::from("/opt/wraidax")
    );
}

#[test]
fn ignored_keys_are_accepted_whatever_their_type() {
    let c = loaded(
        "[server]\nraida_id = 2\nproxy_key = 5\nadmin_key = [1, 2]\n\
         proxy_addr = { host = \"x\" }\nproxy_port = \"50555\"\nbackup_freq = 1.5\n\
         integrity_freq = true\nsynchronization_enabled = \"yes\"\nbtc_confirmations = -1\n",
    );
    assert_eq!(c.server.raida_id, 2);
}

#[test]
fn raida_servers_is_read_and_its_type_checked() {
    let e = rejected("[server]\nraida_servers = \"none\"\n");
    assert_eq!(
        e.to_string(),
        "/opt/wraidax/config.toml: [server] raida_servers: expected an array of strings, each \
         a \"host:port\" string such as \"raida0.cloudcoin.global:50000\", found \"none\""
    );
}

#[test]
fn udp_payload_threshold_is_another_name() {
    let c = loaded("[server]\nraida_id = 1\ncoin_id = 6\nudp_payload_threshold = 1200\n");
    assert_eq!(c.server.udp_payload_threshold, 1200);
}

#[test]
fn both_udp_names_disagreeing_is_an_error_naming_both() {
    let e = rejected("[server]\nudp_effective_payload = 1440\nudp_payload_threshold = 1024\n");
    let text = e.to_string();
    assert!(text.starts_with(FILE), "{text}");
    assert!(text.contains("udp_effective_payload"), "{text}");
    assert!(text.contains("udp_payload_threshold"), "{text}");
}

#[test]
fn port_defaults_to_50000_plus_raida_id() {
    let c = loaded("[server]\nraida_id = 24\n");
    assert_eq!(c.server.port, None);
    assert_eq!(c.server.effective_port(), 50024);
    assert_eq!(c.server.effective_threads(4), 8);
    assert_eq!(c.server.effective_threads(16), 16);
}

#[test]
fn defaults_are_designs_table() {
    // DESIGN.md "Defaults", transcribed by hand; the rest are this module's choices.
    let c = Config::default();
    assert_eq!(c.network.epoll_timeout_ms, 10_000);
    assert_eq!(c.network.events_per_wait, 10_000);
    assert_eq!(c.network.max_connections, 65_535);
    assert_eq!(c.network.max_body_size, 65_536);
    assert_eq!(c.network.socket_timeout_ms, 2_000);
    assert_eq!(c.network.mod_queue_size, 1024);
    assert_eq!(c.network.keepalive_idle_s, 60);
    assert_eq!(c.network.keepalive_interval_s, 10);
    assert_eq!(c.network.keepalive_probes, 5);
    assert_eq!(c.server.udp_payload_threshold, 1024);
    assert_eq!(c.server.port, None);
    assert_eq!(c.server.effective_port(), 50_000);

    assert_eq!(c.server.raida_id, 0);
    assert_eq!(c.server.coin_id, 0);
    assert_eq!(c.server.threads, 0);
    assert_eq!(c.network.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.network.linger_ms, 500);
    assert_eq!(c.network.drain_timeout_ms, 5_000);
    assert_eq!(c.network.io_threads, 1);
    assert_eq!(c.network.key_page_cache_pages, 16_384);
    assert_eq!(c.network.store_refresh_ms, 1_000);
    assert_eq!(c.network.data_root, None);
    assert_eq!(c.network.metrics_addr, None);
    assert_eq!(c.network.log, None);
    assert_eq!(c.network.socket_timeout().as_millis(), 2_000);
    assert_eq!(c.network.keepalive_idle().as_secs(), 60);
}

const NETWORK_OVERRIDES: &str = r#"
[server]
raida_id = 7
coin_id = 6

[network]
bind = "::1"
max_connections = 100
max_body_size = 4096
socket_timeout_ms = 750
mod_queue_size = 16
epoll_timeout_ms = 250
events_per_wait = 64
keepalive_idle_s = 30
keepalive_interval_s = 3
keepalive_probes = 2
linger_ms = 100
drain_timeout_ms = 1500
io_threads = 2
busy_poll_us = 0
turn_budget = 8
key_page_cache_pages = 32
store_refresh_ms = 250
data_root = "store"
metrics_addr = "127.0.0.1:9100"
log = "info,raida_core=debug"
"#;

#[test]
fn network_table_overrides_every_default() {
    let c = loaded(NETWORK_OVERRIDES);
    let mut expected = NetworkConfig::default();
    expected.bind = IpAddr::V6(Ipv6Addr::LOCALHOST);
    expected.max_connections = 100;
    expected.max_body_size = 4096;
    expected.socket_timeout_ms = 750;
    expected.mod_queue_size = 16;
    expected.epoll_timeout_ms = 250;
    expected.events_per_wait = 64;
    expected.keepalive_idle_s = 30;
    expected.keepalive_interval_s = 3;
    expected.keepalive_probes = 2;
    expected.linger_ms = 100;
    expected.drain_timeout_ms = 1500;
    expected.io_threads = 2;
    expected.busy_poll_us = 0;
    expected.turn_budget = 8;
    expected.key_page_cache_pages = 32;
    expected.store_refresh_ms = 250;
    expected.data_root = Some(PathBuf::from("store"));
    expected.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 9100)));
    expected.log = Some("info,raida_core=debug".into());
    assert_eq!(c.network, expected);
    // That every field of the table is read at all is checked over the table itself
    // (`every_field_is_read_printed_and_serialized`, the reader's unit test), not by a
    // list kept here.
    assert_eq!(
        data_root(&c, Some(Path::new(FILE))),
        PathBuf::from("/opt/wraidax/store")
    );
}

/// Asserts the message names the file and (when given) `[table] key`.
fn assert_names(e: &ConfigFileError, table_key: Option<&str>) {
    let text = e.to_string();
    assert!(text.starts_with(&format!("{FILE}: ")), "{text}");
    assert_eq!(e.file(), Path::new(FILE));
    if let Some(tk) = table_key {
        assert!(text.contains(tk), "{text} does not name {tk}");
    }
}

#[test]
fn wrong_type_for_raida_id() {
    let e = rejected("[server]\nraida_id = \"fourteen\"\n");
    assert_names(&e, Some("[server] raida_id"));
    assert_eq!(e.key(), Some("raida_id"));
    assert_eq!(
        e.to_string(),
        format!("{FILE}: [server] raida_id: expected an integer 0..=24, found \"fourteen\"")
    );
}

#[test]
fn out_of_range_port() {
    let e = rejected("[server]\nport = 70000\n");
    assert_names(&e, Some("[server] port"));
    assert_eq!(
        e.to_string(),
        format!("{FILE}: [server] port: expected an integer 0..=65535, found 70000")
    );
}

#[test]
fn negative_threads() {
    let e = rejected("[server]\nthreads = -4\n");
    assert_names(&e, Some("[server] threads"));
    assert!(e.to_string().ends_with("found -4"), "{e}");
}

#[test]
fn unknown_network_key() {
    let e = rejected("[network]\nmax_conections = 10\n");
    assert_names(&e, Some("[network] max_conections"));
    assert!(e.to_string().contains("unknown key"), "{e}");
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = rejected("[server]\nraida_id = 14\ncoin_id = \n");
    assert_names(&e, None);
    assert_eq!(e.key(), None);
    assert!(
        matches!(e, ConfigFileError::Syntax { line: Some(3), .. }),
        "{e:?}"
    );
    let duplicate = rejected("[server]\nraida_id = 1\nraida_id = 2\n");
    assert_names(&duplicate, None);
}

#[test]
fn each_bound_is_checked_and_named() {
    let cases: &[(&str, &str)] = &[
        ("[server]\ncoin_id = 65536", "[server] coin_id"),
        ("[server]\nraida_id = -1", "[server] raida_id"),
        ("[server]\nthreads = 1.5", "[server] threads"),
        (
            "[server]\nudp_effective_payload = 31",
            "[server] udp_effective_payload",
        ),
        (
            "[server]\nudp_effective_payload = 65508",
            "[server] udp_effective_payload",
        ),
        (
            "[server]\nudp_payload_threshold = 0",
            "[server] udp_payload_threshold",
        ),
        ("[network]\nbind = \"localhost\"", "[network] bind"),
        ("[network]\nbind = 0", "[network] bind"),
        (
            "[network]\nmax_connections = 0",
            "[network] max_connections",
        ),
        ("[network]\nmax_body_size = 1", "[network] max_body_size"),
        (
            "[network]\nmax_body_size = 65537",
            "[network] max_body_size",
        ),
        (
            "[network]\nsocket_timeout_ms = 0",
            "[network] socket_timeout_ms",
        ),
        (
            "[network]\nmax_connections = 1048577",
            "[network] max_connections",
        ),
        ("[network]\nmod_queue_size = 0", "[network] mod_queue_size"),
        (
            "[network]\nmod_queue_size = 65537",
            "[network] mod_queue_size",
        ),
        (
            "[network]\nio_threads = 3\nmod_queue_size = 2",
            "[network] io_threads = 3 is more than mod_queue_size = 2",
        ),
        (
            "[network]\nio_threads = 3\nmax_connections = 2",
            "[network] io_threads = 3 is more than max_connections = 2",
        ),
        (
            "[network]\nepoll_timeout_ms = 0",
            "[network] epoll_timeout_ms",
        ),
        (
            "[network]\nevents_per_wait = 0",
            "[network] events_per_wait",
        ),
        (
            "[network]\nkeepalive_idle_s = 0",
            "[network] keepalive_idle_s",
        ),
        (
            "[network]\nkeepalive_interval_s = 40000",
            "[network] keepalive_interval_s",
        ),
        (
            "[network]\nkeepalive_probes = 128",
            "[network] keepalive_probes",
        ),
        ("[network]\nlinger_ms = -1", "[network] linger_ms"),
        (
            "[network]\ndrain_timeout_ms = \"5s\"",
            "[network] drain_timeout_ms",
        ),
        ("[network]\nio_threads = 0", "[network] io_threads"),
        (
            "[network]\nkey_page_cache_pages = 0",
            "[network] key_page_cache_pages",
        ),
        (
            "[network]\nkey_page_cache_pages = 16385",
            "[network] key_page_cache_pages",
        ),
        (
            "[network]\nstore_refresh_ms = 60001",
            "[network] store_refresh_ms",
        ),
        (
            "[network]\nstore_refresh_ms = 0",
            "[network] store_refresh_ms",
        ),
        ("[network]\ndata_root = \"\"", "[network] data_root"),
        (
            "[network]\nmetrics_addr = \"127.0.0.1\"",
            "[network] metrics_addr",
        ),
        ("[network]\nlog = 3", "[network] log"),
        ("network = [1]", "network"),
    ];
    for (text, names) in cases {
        let e = rejected(text);
        assert_names(&e, Some(names));
    }
}

#[test]
fn printed_config_parses_back_to_the_same_config() {
    let mut odd = loaded(NETWORK_OVERRIDES);
    odd.network.log = Some("x=\"quoted\" \\ back\nslash".into());
    odd.network.data_root = Some(PathBuf::from("C:\\raida \"data\""));
    odd.server.port = Some(0);
    for c in [
        Config::default(),
        loaded(DEPLOYED),
        loaded(NETWORK_OVERRIDES),
        odd,
    ] {
        let printed = to_toml_string(&c);
        let back = from_toml_str(&printed, Path::new("printed.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(back, c, "{printed}");
        // The plain table form reads back too.
        let serialized = to_toml_table(&c).to_string();
        assert_eq!(load(&serialized), Ok(c), "{serialized}");
    }
}

#[test]
fn printed_config_lists_every_key_and_the_effective_port() {
    let printed = to_toml_string(&loaded("[server]\nraida_id = 9\n"));
    assert!(printed.contains("# port = 50009"), "{printed}");
    // Every key of the one table, in its order.
    let mut rest = printed.as_str();
    for field in FIELDS {
        let at = rest
            .find(field.name)
            .unwrap_or_else(|| panic!("{} missing (or out of order) in\n{printed}", field.name));
        rest = &rest[at + field.name.len()..];
    }
}

#[test]
fn the_loops_shares_of_connections_and_jobs_add_up_to_the_totals() {
    let mut c = Config::default();
    c.network.max_connections = 10;
    c.network.mod_queue_size = 7;
    let whole =
        raida_core::EngineConfig::from_config(&c.validate().unwrap_or_else(|e| panic!("{e}")));
    let shares: Vec<_> = (0..3).map(|i| whole.clone().for_loop(3, i)).collect();
    let conns: Vec<usize> = shares.iter().map(|s| s.max_connections).collect();
    let jobs: Vec<usize> = shares.iter().map(|s| s.mod_queue_size).collect();
    assert_eq!(conns, [4, 3, 3]);
    assert_eq!(jobs, [3, 2, 2]);
    // Everything else is the whole server's.
    assert_eq!(shares[2].long_jobs, whole.long_jobs);
    assert_eq!(whole.clone().for_loop(1, 0).max_connections, 10);
}
