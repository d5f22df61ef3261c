//! raida-client: builds requests of every encryption type from named fields, sends
//! them over TCP or UDP, verifies and decrypts the response; the payloads and per-coin
//! results of the authentication commands ([`auth`]); the locker commands' keys,
//! payloads and answers ([`locker`]); the healing commands' payloads and answers
//! ([`healing`]) and a wallet's whole heal across a network ([`heal`]); and a load generator
//! ([`mod@bench`]). The `raida` command-line tool is the `raida-cli` crate.
//!
//! ```no_run
//! use std::time::Duration;
//! use raida_client::{exchange, Coin, Keys, Request, Timeouts, Transport};
//!
//! let an = [0x11; 16]; // the coin's authenticity number
//! let mut req = Request::version(0, Keys::Coin256 { coin: Coin::new(1, 1), an });
//! req.randomize()?;
//! let built = req.build()?;
//! let addr = "127.0.0.1:50000".parse()?;
//! let reply = exchange(addr, Transport::Tcp, &built, &Timeouts::uniform(Duration::from_secs(2)))?;
//! println!("{} in {:?}: {:?}", reply.response.header.status, reply.round_trip, reply.response.body);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The contract for every byte is `shared/PROTOCOL.md`.

pub mod auth;
pub mod bench;
pub mod crypto;
mod error;
pub mod heal;
pub mod healing;
pub mod locker;
mod request;
mod response;
mod transport;

pub use error::{BuildError, ClientError, ErrorKind, RandomError, ResponseError};
pub use request::{
    BuiltRequest, Coin, Faults, Keys, Request, CHALLENGE_RANDOM_LEN, MAX_REQUEST_BODY, NONCE_LEN,
};
pub use response::{declared_body_len, status_name, Expect, Response, ResponseHeader};
pub use transport::{exchange, exchange_tcp, exchange_udp, Reply, Timeouts, Transport};

pub use raida_wire::{An, Encryption, Status, StatusByte};
