//! A RAIDA server built on raida-net with one command of its own, "who am I": group
//! 15, command 0 answers 250 with the client's IPv4 address (4 bytes), its source port
//! (2 bytes, big-endian) and the request's shard byte, encrypted as every response
//! body is for the request's encryption type.
//!
//! ```sh
//! cargo run --release -p raida-server --example whoami -- 50100
//! ```
//!
//! It listens on 127.0.0.1 (the port its argument names, 0 for any free one) as raida
//! 3 of coin 6, serves the demo key store (written under a temporary directory), and
//! stops gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;

use raida_server::{Config, Reply, RequestContext, ServerBuilder, Status};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.server.port = Some(std::env::args().nth(1).unwrap_or("50100".into()).parse()?);
    config.server.raida_id = 3;
    config.server.coin_id = 6;
    config.network.bind = [127, 0, 0, 1].into();
    config.validate()?; // bind() validates too; this names a bad value before any I/O

    let data = std::env::temp_dir().join(format!("raida-whoami-{}", std::process::id()));
    raida_server::store::write_demo_store(&data)?;
    raida_server::init_logging(None);
    let server = ServerBuilder::new(config)
        .data_root(&data)
        .handle_signals(true)
        .command(15, 0, |req: &RequestContext<'_>| {
            let SocketAddr::V4(peer) = req.peer else {
                return Reply::status(Status::Internal); // IPv4 clients only
            };
            let mut body = peer.ip().octets().to_vec();
            body.extend_from_slice(&peer.port().to_be_bytes());
            body.push(req.shard);
            Reply::success(body)
        })
        .bind()?;
    raida_server::print_listening(&server);
    let served = server.serve();
    std::fs::remove_dir_all(&data)?;
    served?;
    Ok(())
}
