//! The `header` target: request header parsing and the header-time checks.

use raida_core::codec::{
    answer_datagram, check_header, header_len, RequestHeader, RequestKey, LONG_HEADER_LEN,
    PREFIX_LEN, SHORT_HEADER_LEN,
};
use raida_core::Timestamp;

use crate::model::{self, be32};
use crate::world::{commands, keys, rules, RANDOM};

/// `RequestHeader::parse` and `check_header` on arbitrary bytes. Layout: the bytes are
/// the start of a request; anything after its header is ignored. Checks the parse
/// against section 1, the verdict, key and reply context against the model of
/// sections 2 and 3, and a rejected header's response (`answer_datagram` on the
/// header alone, with request bytes 8..11 as the microseconds) against sections 5
/// and 6.
pub fn header(data: &[u8]) {
    let parsed = RequestHeader::parse(data);
    let Some(&enc) = data.get(PREFIX_LEN - 1) else {
        assert!(parsed.is_none(), "parsed a header from fewer than 17 bytes");
        return;
    };
    let hlen = if enc <= 2 {
        SHORT_HEADER_LEN
    } else {
        LONG_HEADER_LEN
    };
    assert_eq!(header_len(enc), hlen);
    let Some(h) = data.get(..hlen) else {
        assert!(parsed.is_none(), "parsed a header from a short buffer");
        return;
    };
    let Some(parsed) = parsed else {
        panic!("a complete header did not parse");
    };
    assert_eq!(parsed.len(), hlen);
    assert_eq!(parsed.as_bytes(), h);
    assert_eq!(parsed.encryption_byte(), enc);
    assert_eq!((parsed.group(), parsed.command()), (h[4], h[5]));
    assert_eq!(parsed.declared_body_len(), model::declared_body_len(h));

    let (reply, verdict) = model::header(h);
    let store = keys();
    let checked = check_header(&parsed, &rules(), &commands(), &store, Timestamp::ZERO);
    match (checked, verdict) {
        (Ok(admitted), Ok(key)) => {
            assert_eq!(admitted.encryption.byte(), enc);
            assert!(admitted.key == key, "resolved key differs from the model's");
            assert_eq!(admitted.body_len, model::declared_body_len(h));
            assert_eq!(admitted.reply, reply);
        }
        (Err(rejected), Err(status)) => {
            assert_eq!(rejected.status, status);
            assert_eq!(rejected.reply, reply);
            let elapsed = be32(h, 8);
            let Some(out) = answer_datagram(
                h,
                &rules(),
                &commands(),
                &store,
                Timestamp::ZERO,
                elapsed,
                &RANDOM,
            ) else {
                panic!("no answer to a whole header");
            };
            let expected = model::Answer {
                reply,
                key: RequestKey::None,
                status: status.code(),
                signature: [0; 16],
                output: Vec::new(),
            };
            assert_eq!(out.len(), hlen, "a rejection has no body");
            let output = model::check_response(&out, &expected, elapsed, &RANDOM);
            assert!(output.is_empty());
        }
        (Ok(_), Err(status)) => panic!("admitted; the model rejects it with {status:?}"),
        (Err(rejected), Ok(_)) => {
            panic!("rejected with {:?}; the model admits it", rejected.status)
        }
    }
}
