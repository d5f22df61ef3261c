//! A RAIDA server built on raida-net with one command of its own: "who am I".
//!
//! ```sh
//! cargo run --release -p raida-server --example whoami -- \
//!     --port 50100 --raida-id 3 --coin-id 6 --bind 127.0.0.1
//! ```
//!
//! Group 15, command 0 answers 250 with a body of the client's IPv4 address (4 bytes),
//! its source port (2 bytes, big-endian) and the request's shard byte, encrypted as
//! every response body is for the request's encryption type. It serves the built-in
//! echo and version too, keys from the demo store (written under a temporary directory
//! of its own), and stops gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use raida_core::config::Config;
use raida_core::{Command, RequestContext, Status, StatusByte};
use raida_server::ServerBuilder;
use raida_store::{demo_locker_an, write_demo_store, DiskStore, StoreConfig};

/// Group 15, command 0: the client's address as the server saw it, and the shard.
#[derive(Debug)]
struct WhoAmI;

impl Command for WhoAmI {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let SocketAddr::V4(peer) = ctx.peer else {
            // The example answers for IPv4 clients only.
            return Status::Internal.into();
        };
        output.extend_from_slice(&peer.ip().octets());
        output.extend_from_slice(&peer.port().to_be_bytes());
        output.push(ctx.shard);
        Status::Success.into()
    }
}

/// `--port N --raida-id R --coin-id C --bind ADDR`, each optional, validated by core
/// exactly as the same keys of a configuration file are.
fn flags() -> Result<Config, String> {
    let (mut server, mut network) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag}: a value is missing"))?;
        let number = || {
            value
                .parse::<i64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--port" => server.push(format!("port = {}", number()?)),
            "--raida-id" => server.push(format!("raida_id = {}", number()?)),
            "--coin-id" => server.push(format!("coin_id = {}", number()?)),
            "--bind" => network.push(format!("bind = {value:?}")),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let text = format!(
        "[server]\n{}\n[network]\n{}\n",
        server.join("\n"),
        network.join("\n")
    );
    Config::from_toml_str(&text, Path::new("(flags)")).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let config = match flags() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("whoami: {e}");
            return ExitCode::from(2);
        }
    };
    raida_server::init_logging(None);
    let data = std::env::temp_dir().join(format!("raida-whoami-{}", std::process::id()));
    let store = match write_demo_store(&data)
        .and_then(|_| DiskStore::open(&data, StoreConfig::default()).map_err(std::io::Error::other))
    {
        Ok(store) => store,
        Err(e) => {
            eprintln!("whoami: demo store under {}: {e}", data.display());
            return ExitCode::from(2);
        }
    };
    store.insert_locker(demo_locker_an());
    let server = match ServerBuilder::new(config)
        .disk_store(Arc::new(store))
        .command(15, 0, Arc::new(WhoAmI))
        .bind()
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("whoami: {e}");
            return ExitCode::from(2);
        }
    };
    raida_server::print_listening(&server);
    let served = server.serve();
    let _ = std::fs::remove_dir_all(&data);
    match served {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whoami: {e}");
            ExitCode::from(1)
        }
    }
}
