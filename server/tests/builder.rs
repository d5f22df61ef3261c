//! The builder as an embedder uses it: a closure registered without `Arc` answers, the
//! key store lives under the configured data root (or, with none, is an empty memory
//! store that creates nothing on disk), and the server stops through its handle.

mod support;

use support::Running;

use raida_client::{Coin, Keys, Request};
use raida_server::store::{demo_coin_an, write_demo_store};
use raida_server::{Config, Reply, RequestContext, ServerBuilder, Status};

fn local_config() -> Config {
    let mut config = Config::default();
    config.server.port = Some(0);
    config.network.bind = [127, 0, 0, 1].into();
    config
}

#[test]
fn a_closure_registered_without_arc_answers() {
    let server = Running::start(ServerBuilder::new(local_config()).command(
        15,
        3,
        |req: &RequestContext<'_>| match req.payload {
            [] => Reply::status(Status::InvalidPacketLength),
            payload => Reply::success(payload.iter().rev().copied().collect::<Vec<u8>>()),
        },
    ));
    let mut request = Request::new(0, 15, 3, Keys::None);
    request.payload = b"abc".to_vec();
    assert_eq!(server.ask(request), (250, b"cba".to_vec()));
    let request = Request::new(0, 15, 3, Keys::None);
    assert_eq!(
        server.ask(request).0,
        Status::InvalidPacketLength.code(),
        "the closure's own status"
    );
    server.stop();
}

/// A type 1 request naming demo coin 1:1 (version, 0/1).
fn version_with_demo_coin() -> Request {
    let coin = Coin::new(1, 1);
    Request::version(
        0,
        Keys::Coin {
            coin,
            an: demo_coin_an(1, 1),
        },
    )
}

#[test]
fn the_store_is_the_one_under_the_configured_data_root() {
    let root = tempfile::tempdir().expect("temp dir");
    write_demo_store(root.path()).expect("the demo store");
    let mut config = local_config();
    config.network.data_root = Some(root.path().to_path_buf());
    let server = Running::start(ServerBuilder::new(config));
    assert_eq!(server.ask(version_with_demo_coin()).0, 250);
    server.stop();
}

#[test]
fn the_builders_data_root_overrides_the_configurations() {
    let root = tempfile::tempdir().expect("temp dir");
    write_demo_store(root.path()).expect("the demo store");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let mut config = local_config();
    config.network.data_root = Some(elsewhere.path().to_path_buf());
    let server = Running::start(ServerBuilder::new(config).data_root(root.path()));
    assert_eq!(server.ask(version_with_demo_coin()).0, 250);
    server.stop();
}

#[test]
fn without_a_data_root_the_store_is_empty_and_nothing_is_written() {
    let cwd = std::env::current_dir().expect("current directory");
    let had_data = cwd.join("Data").exists();
    let server = Running::start(ServerBuilder::new(local_config()));
    let (status, _) = server.ask(version_with_demo_coin());
    assert_ne!(status, 250, "no store knows the demo coin");
    assert_eq!(server.ask(Request::version(0, Keys::None)).0, 250);
    server.stop();
    assert_eq!(cwd.join("Data").exists(), had_data, "no Data/ created");
}
