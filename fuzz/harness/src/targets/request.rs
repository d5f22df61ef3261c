//! The `request` target: structured, deliberately faulty requests through the codec.

use arbitrary::{Arbitrary, Unstructured};
use raida_core::codec::answer_datagram;
use raida_core::Timestamp;

use crate::model;
use crate::request::RequestCase;
use crate::world::{commands, keys, rules};

/// A structured request (see [`RequestCase`], whose fields in order are the input
/// layout) built by the client's builder, mutated, and answered by the whole codec
/// ([`answer_datagram`]). The response is read back as a client reads it: the header
/// length follows the request's type, the status is known and always the model's (and
/// the one the builder intended when no mutation changed the bytes), the size field
/// equals the body, the trailer ends every body, a 48-byte body's HMAC verifies under
/// the request's key, and the output decrypts to what the command returns. An unmutated
/// request the client can read the answer to is also read by the client's own reader
/// (`raida_client::Expect`), which must accept it with the model's output.
pub fn request(data: &[u8]) {
    let Ok(case) = RequestCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let Ok(built) = case.build() else {
        // A payload too long for the 2-byte body length: no request to send.
        return;
    };
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
    model::check(&bytes, response.as_deref(), case.elapsed, &case.random);
    if bytes != built.bytes {
        return;
    }
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
    if let Some(expect) = &built.expect {
        let mut output = Vec::new();
        if let Err(e) = expect.check_into(r, &mut output) {
            panic!("the client's reader rejects the response: {e}");
        }
        let want = model::answer(&bytes).map(|a| a.output).unwrap_or_default();
        assert_eq!(output, want, "the client's reader decrypts another output");
    }
}
