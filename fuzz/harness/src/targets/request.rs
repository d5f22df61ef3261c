//! The `request` target: structured, deliberately faulty requests through the codec.

use arbitrary::{Arbitrary, Unstructured};
use raida_core::codec::answer_datagram;
use raida_core::Timestamp;

use crate::model;
use crate::request::RequestCase;
use crate::world::{commands, keys, rules};

/// A structured request (see [`RequestCase`]) through the whole codec
/// ([`answer_datagram`]), its response read back as a client reads it: header length
/// follows the request's type, a known status (the one the builder intended when no
/// mutation changed the bytes, and always the model's), the size field equals the body,
/// the trailer ends every body, a 48-byte body's HMAC verifies under the request's
/// key, and the output decrypts to what the command returns.
pub fn request(data: &[u8]) {
    let Ok(case) = RequestCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let built = case.build();
    let mut bytes = built.bytes.clone();
    for m in &case.mutations {
        m.apply(&mut bytes);
    }
    let store = keys();
    let response = answer_datagram(
        &bytes,
        &rules(),
        &commands(),
        &store,
        Timestamp::ZERO,
        case.elapsed,
        &case.random,
    );
    if bytes == built.bytes {
        let Some(r) = response.as_deref() else {
            panic!("no answer to a built request");
        };
        assert_eq!(
            r[2],
            built.status.code(),
            "the builder's intended status for {:?} with type {}",
            case.fault(),
            case.encryption_byte()
        );
    }
    model::check(&bytes, response.as_deref(), case.elapsed, &case.random);
}
