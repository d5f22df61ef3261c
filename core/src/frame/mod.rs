//! The byte work on one request's body and its response, once the engine has admitted
//! the header and resolved its key: body checks and decryption (PROTOCOL.md section
//! 4), response headers and encrypted response bodies (sections 5 and 6). Every
//! function here is pure: buffers are the caller's, keys, time and random bytes are
//! arguments. It imports only the wire vocabulary and the crypto; deciding which
//! requests get here (the header rules, the key store, the command registry) is the
//! engine's.

mod body;
mod key;
mod reply;

pub(crate) use body::open_body;
pub use key::RequestKey;
pub(crate) use reply::{write_response, ResponseParts};
