//! raida-wire: the words of the RAIDA wire protocol, and nothing that acts on them.
//!
//! Header layouts and lengths, the encryption types, the status codes, how requests
//! name coins, the transport a request came over, and time as data: what a server,
//! a client, a simulator's oracle and a fuzzer must agree on byte for byte. Nothing
//! here opens a socket, decrypts a body, looks up a key or runs a command, and the
//! crate depends on no other crate, so depending on it costs nothing. The contract for
//! every byte is `shared/PROTOCOL.md`; section numbers in the doc comments refer to it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod coin;
mod encryption;
mod header;
mod response;
mod status;
mod time;
mod transport;

pub use coin::{An, CoinId, KeyId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};
pub use encryption::Encryption;
pub use header::{
    header_len, RequestHeader, CHALLENGE_LEN, LONG_HEADER_LEN, MAX_SHARD, PREFIX_LEN, RANDOM_LEN,
    SHORT_HEADER_LEN, TRAILER,
};
pub use response::{ReplyContext, MAX_RESPONSE_BODY};
pub use status::{Status, StatusByte};
pub use time::Timestamp;
pub use transport::Transport;
