//! The request builder's deliberate faults (`Request::faults`) against core's server
//! codec (`answer_datagram`, so UDP's rules: a body shorter than declared is 16):
//! for each fault and each encryption type it applies to, the status PROTOCOL.md
//! (sections 2 to 4 and 7) says a server answers; and that the answer verifies
//! against what `build()` says a valid response looks like.

mod support;

use raida_client::{BuiltRequest, Request, ResponseHeader, StatusByte};
use raida_core::codec::{header_len, LONG_HEADER_LEN, SHORT_HEADER_LEN};
use raida_core::{Status, VERSION_BYTES};
use support::*;

/// A version request (0, 1) of type `t` with fixed nonce, challenge and echo bytes,
/// so that every run builds the same bytes.
fn version(t: u8) -> Request {
    let mut r = Request::version(RAIDA_ID, keys_of_type(t));
    r.coin_id = COIN_ID;
    r.echo = [0xAB, 0xCD];
    for (i, b) in r.nonce.iter_mut().enumerate() {
        *b = 0x40 + i as u8;
    }
    r.challenge = *b"123456789abc";
    r
}

/// A request of type `t` that the server answers with its payload (`hello`).
fn payload_echo(t: u8) -> Request {
    let mut r = version(t);
    (r.group, r.command) = PAYLOAD_ECHO;
    r.payload = b"hello".to_vec();
    r
}

/// The request's body length field as sent (32-byte header: bytes 22..23; 48-byte:
/// 17..18).
fn declared(bytes: &[u8]) -> usize {
    let at = if header_len(bytes[16]) == SHORT_HEADER_LEN {
        22
    } else {
        17
    };
    usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]))
}

/// The server codec's answer to `built`: its header length is the one the request's
/// byte 16 announces (PROTOCOL.md section 1), and it verifies against `built`'s
/// expectation (echo bytes, signature or type byte, trailer, HMAC).
fn answered(built: &BuiltRequest, what: &str) -> (ResponseHeader, Vec<u8>) {
    let raw = answer(built.bytes());
    assert_eq!(
        built.response_header_len(),
        header_len(built.bytes()[16]),
        "{what}: the expected header length follows byte 16 as sent"
    );
    let response = built
        .parse_response(&raw)
        .unwrap_or_else(|e| panic!("{what}: the answer does not verify: {e}"));
    assert_eq!(response.header.len, built.response_header_len(), "{what}");
    (response.header, response.body)
}

/// Builds `r`, asserts the server's status, and returns the verified body.
fn assert_status(r: &Request, status: Status, what: &str) -> Vec<u8> {
    let built = r.build().expect("build");
    let (header, body) = answered(&built, what);
    assert_eq!(
        header.status,
        StatusByte::from(status),
        "{what}: expected {status}, got {}",
        header.status
    );
    body
}

#[test]
fn a_routing_byte_other_than_1_is_invalid_routing() {
    for t in TYPES {
        for routing in [0, 2, 7, 255] {
            let mut r = version(t);
            r.faults.routing = Some(routing);
            let built = r.build().expect("build");
            assert_eq!(built.bytes()[0], routing);
            let (header, _) = answered(&built, &format!("type {t}, routing {routing}"));
            assert_eq!(header.known_status(), Some(Status::InvalidRouting));
        }
    }
}

#[test]
fn a_split_id_other_than_0_is_invalid_split_id() {
    for t in TYPES {
        for split in [1, 2, 255] {
            let mut r = version(t);
            r.faults.split_id = Some(split);
            assert_eq!(r.build().expect("build").bytes()[1], split);
            assert_status(
                &r,
                Status::InvalidSplitId,
                &format!("type {t}, split id {split}"),
            );
        }
    }
}

#[test]
fn routing_is_checked_before_the_split_id() {
    for t in TYPES {
        let mut r = version(t);
        r.faults.routing = Some(2);
        r.faults.split_id = Some(1);
        assert_status(&r, Status::InvalidRouting, &format!("type {t}"));
    }
}

#[test]
fn an_invalid_encryption_byte_is_invalid_encryption_code_with_a_48_byte_header() {
    for t in TYPES {
        for byte in [3, 6, 7, 255] {
            let mut r = version(t);
            r.faults.encryption_byte = Some(byte);
            let built = r.build().expect("build");
            let b = built.bytes();
            assert_eq!(b[16], byte);
            assert_eq!(b.len(), LONG_HEADER_LEN + r.body_len(), "type {t}: padded");
            assert_eq!(declared(b), r.body_len(), "type {t}: length at 17..18");
            let what = format!("type {t}, byte 16 = {byte}");
            let (header, _) = answered(&built, &what);
            assert_eq!(
                header.known_status(),
                Some(Status::InvalidEncryptionCode),
                "{what}"
            );
            assert_eq!(header.len, LONG_HEADER_LEN, "{what}");
        }
    }
}

#[test]
fn another_valid_encryption_byte_reads_the_header_as_that_type_lays_it_out() {
    // Type 0 keys write nothing at 17..23. Read as type 1, bytes 17..21 name coin
    // 0:0; padded to 48 bytes as type 4, bytes 19..23 do. The server knows neither.
    let mut r = version(0);
    r.faults.encryption_byte = Some(1);
    assert_status(&r, Status::InvalidEncryption, "type 0 sent as type 1");
    r.faults.encryption_byte = Some(4);
    assert_status(&r, Status::EncryptionCoinNotFound, "type 0 sent as type 4");
    // A type 4 request cut to 32 bytes and read as type 0: its body's first 16 bytes
    // (ciphertext and HMAC) are no challenge, and their "CRC" does not match.
    let mut r = version(4);
    r.faults.encryption_byte = Some(0);
    let built = r.build().expect("build");
    assert_eq!(built.bytes().len(), SHORT_HEADER_LEN + r.body_len());
    assert_eq!(declared(built.bytes()), r.body_len(), "length at 22..23");
    let raw = answer(built.bytes());
    assert_eq!(raw.len(), SHORT_HEADER_LEN, "an error has no body");
    assert_eq!(raw[2], Status::InvalidCrc.code());
}

#[test]
fn a_bad_crc_is_invalid_crc_and_the_answer_carries_the_challenge() {
    for t in [0, 1, 2] {
        let mut r = version(t);
        r.faults.bad_crc = true;
        let built = r.build().expect("build");
        let raw = answer(built.bytes());
        assert_ne!(&raw[16..32], &[0; 16], "type {t}: the challenge was read");
        // `answered` checks the signature against the (faulty) challenge sent.
        assert_status(&r, Status::InvalidCrc, &format!("type {t}"));
    }
}

#[test]
fn a_bad_crc_has_no_effect_on_types_without_a_crc() {
    for t in [4, 5] {
        let mut r = version(t);
        r.faults.bad_crc = true;
        assert_eq!(
            r.build().expect("build").bytes(),
            version(t).build().expect("build").bytes(),
            "type {t}"
        );
    }
}

#[test]
fn a_bad_hmac_is_invalid_hmac() {
    for t in [4, 5] {
        let mut r = version(t);
        r.faults.bad_hmac = true;
        assert_status(&r, Status::InvalidHmac, &format!("type {t}"));
    }
}

#[test]
fn a_bad_hmac_has_no_effect_on_types_without_an_hmac() {
    for t in [0, 1, 2] {
        let mut r = version(t);
        r.faults.bad_hmac = true;
        assert_eq!(
            r.build().expect("build").bytes(),
            version(t).build().expect("build").bytes(),
            "type {t}"
        );
    }
}

#[test]
fn a_bad_trailer_is_invalid_eof() {
    for t in TYPES {
        let mut r = version(t);
        r.faults.bad_trailer = true;
        let built = r.build().expect("build");
        assert_eq!(&built.bytes()[built.bytes().len() - 2..], &[0x3E, 0x3F]);
        assert_status(&r, Status::InvalidEof, &format!("type {t}"));
    }
}

#[test]
fn a_body_of_only_the_trailer_is_invalid_packet_length() {
    for t in TYPES {
        let mut r = version(t);
        r.faults.truncate_body = Some(0);
        let built = r.build().expect("build");
        assert_eq!(declared(built.bytes()), 2, "type {t}: the trailer is left");
        assert_status(&r, Status::InvalidPacketLength, &format!("type {t}"));
    }
}

#[test]
fn a_body_one_byte_short_of_its_minimum_is_invalid_packet_length() {
    // Types 0, 1, 2 need the 16-byte challenge; types 4, 5 the 32-byte HMAC.
    for (t, keep) in [(0, 15), (1, 15), (2, 15), (4, 31), (5, 31)] {
        let mut r = payload_echo(t);
        r.faults.truncate_body = Some(keep);
        assert_status(
            &r,
            Status::InvalidPacketLength,
            &format!("type {t}, {keep} bytes"),
        );
    }
}

#[test]
fn a_truncated_payload_reaches_the_command_cut() {
    // Types 0, 1, 2: the challenge and 2 payload bytes (CTR decrypts a prefix).
    for t in [0, 1, 2] {
        let mut r = payload_echo(t);
        r.faults.truncate_body = Some(16 + 2);
        let body = assert_status(&r, Status::Success, &format!("type {t}"));
        assert_eq!(body, b"he", "type {t}");
    }
}

#[test]
fn a_truncated_authenticated_body_fails_its_hmac() {
    // 32 bytes left: the server takes them as the tag of an empty ciphertext.
    for t in [4, 5] {
        let mut r = payload_echo(t);
        r.faults.truncate_body = Some(32);
        assert_status(&r, Status::InvalidHmac, &format!("type {t}"));
    }
}

#[test]
fn truncating_to_the_whole_body_or_more_changes_nothing() {
    for t in TYPES {
        let mut r = payload_echo(t);
        let content = r.body_len() - 2;
        for n in [content, content + 1, usize::MAX] {
            r.faults.truncate_body = Some(n);
            assert_eq!(
                r.build().expect("build").bytes(),
                payload_echo(t).build().expect("build").bytes(),
                "type {t}, truncate to {n}"
            );
        }
    }
}

#[test]
fn no_body_runs_the_command_with_an_empty_payload_on_types_0_1_2() {
    for t in [0, 1, 2] {
        let mut r = version(t);
        r.faults.no_body = true;
        let built = r.build().expect("build");
        assert_eq!(built.bytes().len(), SHORT_HEADER_LEN, "type {t}");
        assert_eq!(declared(built.bytes()), 0);
        let raw = answer(built.bytes());
        assert_eq!(
            &raw[16..32],
            &[0; 16],
            "type {t}: no challenge, zero signature"
        );
        let body = assert_status(&r, Status::Success, &format!("type {t}"));
        assert_eq!(body, VERSION_BYTES, "type {t}");
    }
}

#[test]
fn no_body_is_invalid_packet_length_on_types_4_5() {
    for t in [4, 5] {
        let mut r = version(t);
        r.faults.no_body = true;
        let built = r.build().expect("build");
        assert_eq!(built.bytes().len(), LONG_HEADER_LEN, "type {t}");
        assert_eq!(declared(built.bytes()), 0);
        assert_status(&r, Status::InvalidPacketLength, &format!("type {t}"));
    }
}

#[test]
fn a_declared_length_longer_than_the_datagram_is_invalid_packet_length() {
    for t in TYPES {
        let mut r = version(t);
        let sent = r.body_len();
        r.faults.declared_body_len = Some(sent as u16 + 1);
        let built = r.build().expect("build");
        assert_eq!(declared(built.bytes()), sent + 1);
        assert_eq!(
            built.bytes().len(),
            header_len(t) + sent,
            "the body is as built"
        );
        assert_status(&r, Status::InvalidPacketLength, &format!("type {t}"));
        // The body left out altogether: no body, yet a length.
        let mut r = version(t);
        r.faults.no_body = true;
        r.faults.declared_body_len = Some(18);
        assert_status(
            &r,
            Status::InvalidPacketLength,
            &format!("type {t}, no body"),
        );
    }
}

#[test]
fn a_declared_length_one_short_leaves_the_trailer_outside_the_body() {
    // Bytes after the declared body are ignored, so the body the server reads ends
    // one byte before the trailer does.
    for t in TYPES {
        let mut r = version(t);
        r.faults.declared_body_len = Some(r.body_len() as u16 - 1);
        assert_status(&r, Status::InvalidEof, &format!("type {t}"));
    }
}

#[test]
fn a_declared_length_of_0_is_no_body_to_the_server() {
    // The body sent after the header is ignored: as `no_body`.
    for (t, status) in [
        (0, Status::Success),
        (1, Status::Success),
        (2, Status::Success),
        (4, Status::InvalidPacketLength),
        (5, Status::InvalidPacketLength),
    ] {
        let mut r = version(t);
        r.faults.declared_body_len = Some(0);
        assert_status(&r, status, &format!("type {t}"));
    }
}

#[test]
fn set_echo_keeps_a_faulty_request_as_faulty() {
    // Types 1, 2 carry the echo bytes in their IV, so `set_echo` re-encrypts the
    // body: a truncated or missing body must stay so, answered as before.
    let mut cases: Vec<(u8, Request, Status)> = Vec::new();
    for t in TYPES {
        let mut r = payload_echo(t);
        r.faults.no_body = true;
        let status = if t < 4 {
            Status::Success
        } else {
            Status::InvalidPacketLength
        };
        cases.push((t, r, status));
        let mut r = payload_echo(t);
        r.faults.truncate_body = Some(0);
        cases.push((t, r, Status::InvalidPacketLength));
        let mut r = payload_echo(t);
        r.faults.bad_trailer = true;
        cases.push((t, r, Status::InvalidEof));
        let mut r = payload_echo(t);
        r.faults.encryption_byte = Some(3);
        cases.push((t, r, Status::InvalidEncryptionCode));
    }
    for t in [0, 1, 2] {
        let mut r = payload_echo(t);
        r.faults.truncate_body = Some(16 + 2);
        cases.push((t, r, Status::Success));
    }
    for (t, r, status) in cases {
        let mut built = r.build().expect("build");
        for echo in [[0x12, 0x34], [0xff, 0xfe]] {
            built.set_echo(echo);
            let what = format!("type {t}, {:?}, echo {echo:?}", r.faults);
            let (header, _) = answered(&built, &what);
            assert_eq!(header.known_status(), Some(status), "{what}");
        }
    }
}
