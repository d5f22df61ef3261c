//! The library against hand-computed fields and against core's server codec
//! (`answer_datagram`), with no sockets; then the transports against tiny in-process
//! servers on 127.0.0.1.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use raida_client::crypto;
use raida_client::{
    exchange, exchange_tcp, exchange_udp, BuildError, ClientError, Coin, ErrorKind, Keys, Request,
    ResponseError, Timeouts, Transport,
};
use raida_core::VERSION_BYTES;
use raida_core::{Status, StatusByte};
use raida_store::{demo_coin_an, demo_locker_an};
use support::*;

/// A request with fixed, recognisable field values.
fn fixed(t: u8, group: u8, command: u8) -> Request {
    let mut r = Request::new(RAIDA_ID, group, command, keys_of_type(t));
    r.coin_id = COIN_ID;
    r.shard = 2;
    r.echo = [0xAB, 0xCD];
    for (i, b) in r.nonce.iter_mut().enumerate() {
        *b = 0x80 + i as u8;
    }
    r.challenge = *b"123456789abc";
    r
}

// ---- request building, against hand-computed fields ----

#[test]
fn type0_header_and_body_are_where_the_protocol_puts_them() {
    let r = fixed(0, 0, 1);
    let built = r.build().expect("build");
    let b = built.bytes();
    assert_eq!(b.len(), 32 + 18);
    assert_eq!(&b[..8], &[1, 0, RAIDA_ID, 2, 0, 1, 0x00, 0x06]);
    assert_eq!(&b[8..16], &[0; 8]);
    assert_eq!(b[16], 0);
    assert_eq!(&b[22..24], &[0, 18]);
    assert_eq!(&b[24..30], &[0x80, 0x81, 0x82, 0x83, 0x84, 0x85]);
    assert_eq!(&b[30..32], &[0xAB, 0xCD]);
    assert_eq!(&b[32..44], b"123456789abc");
    // CRC-32 (zlib) of "123456789abc", computed with Python's zlib.crc32.
    assert_eq!(&b[44..48], &[0xbd, 0xb0, 0xc0, 0xe4]);
    assert_eq!(&b[48..50], &[0x3E, 0x3E]);
    assert_eq!(built.response_header_len(), 32);
}

#[test]
fn type1_names_the_coin_and_encrypts_under_its_an_with_the_short_iv() {
    let mut r = fixed(1, PAYLOAD_ECHO.0, PAYLOAD_ECHO.1);
    r.payload = b"hello".to_vec();
    let built = r.build().expect("build");
    let b = built.bytes();
    assert_eq!(b[16], 1);
    // Denomination -1 is the byte ff; serial 16 big-endian.
    assert_eq!(&b[17..22], &[0xff, 0, 0, 0, 0x10]);
    assert_eq!(&b[22..24], &[0, 16 + 5 + 2]);
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&b[24..32]);
    assert_eq!(&iv[..8], &[0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xAB, 0xCD]);
    let mut body = b[32..b.len() - 2].to_vec();
    crypto::aes128_ctr(&demo_coin_an(-1, 16), &iv, &mut body);
    assert_eq!(&body[..12], b"123456789abc");
    assert_eq!(&body[12..16], &[0xbd, 0xb0, 0xc0, 0xe4]);
    assert_eq!(&body[16..], b"hello");
    assert_eq!(&b[b.len() - 2..], &[0x3E, 0x3E]);
}

#[test]
fn type2_carries_the_first_five_bytes_of_the_locker_an() {
    let built = fixed(2, 0, 0).build().expect("build");
    let b = built.bytes();
    assert_eq!(b[16], 2);
    assert_eq!(&b[17..22], &demo_locker_an()[..5]);
}

#[test]
fn type4_long_header_layout_and_authenticated_body() {
    let mut r = fixed(4, PAYLOAD_ECHO.0, PAYLOAD_ECHO.1);
    r.payload = b"abc".to_vec();
    let built = r.build().expect("build");
    let b = built.bytes();
    assert_eq!(b.len(), 48 + 3 + 32 + 2);
    assert_eq!(b[16], 4);
    assert_eq!(&b[17..19], &[0, 37]);
    assert_eq!(&b[19..24], &[1, 0, 0, 0, 1]);
    let nonce: Vec<u8> = (0..22).map(|i| 0x80 + i as u8).collect();
    assert_eq!(&b[24..46], &nonce[..]);
    assert_eq!(&b[46..48], &[0xAB, 0xCD]);
    let key = crypto::sha256(&[&demo_coin_an(1, 1)]);
    let (ct, rest) = b[48..].split_at(3);
    assert_eq!(&rest[..32], &crypto::hmac_sha256(&key, ct));
    assert_eq!(&rest[32..], &[0x3E, 0x3E]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&b[24..40]);
    let mut pt = ct.to_vec();
    crypto::aes256_ctr(&key, &iv, &mut pt);
    assert_eq!(pt, b"abc");
}

#[test]
fn type5_second_coin_rides_in_the_first_nonce_bytes() {
    let built = fixed(5, 0, 0).build().expect("build");
    let b = built.bytes();
    assert_eq!(b[16], 5);
    assert_eq!(&b[19..24], &[1, 0, 0, 0, 1]);
    assert_eq!(&b[24..29], &[1, 0, 0, 0, 2]);
    assert_eq!(
        &b[29..46],
        &(5..22).map(|i| 0x80 + i as u8).collect::<Vec<_>>()[..]
    );
    let key = crypto::sha256(&[&demo_coin_an(1, 1), &demo_coin_an(1, 2)]);
    let body = &b[48..];
    assert_eq!(body.len(), 34, "empty payload: HMAC and trailer only");
    assert_eq!(&body[..32], &crypto::hmac_sha256(&key, &[]));
}

#[test]
fn a_body_over_65535_bytes_is_a_build_error() {
    let mut r = fixed(0, 0, 0);
    r.payload = vec![0; 65535 - 18 + 1];
    assert_eq!(
        r.build().err(),
        Some(BuildError::BodyTooLong {
            max: 65535,
            got: 65536
        })
    );
    r.payload.pop();
    assert!(r.build().is_ok());
}

#[test]
fn randomize_changes_nonce_challenge_and_echo() {
    let mut r = fixed(0, 0, 0);
    let before = r.clone();
    r.randomize().expect("OS random");
    assert_ne!(r.nonce, before.nonce);
    assert_ne!(r.challenge, before.challenge);
}

// ---- round trips through core's codec ----

#[test]
fn echo_round_trips_for_every_type() {
    for t in TYPES {
        let built = fixed(t, 0, 0).build().expect("build");
        let raw = answer(built.bytes());
        let resp = built
            .parse_response(&raw)
            .unwrap_or_else(|e| panic!("type {t}: {e}"));
        assert_eq!(
            resp.header.status,
            StatusByte::from(Status::Success),
            "type {t}"
        );
        assert_eq!(resp.header.raida_id, RAIDA_ID);
        assert_eq!(resp.header.server_micros, ELAPSED_MICROS);
        assert!(resp.body.is_empty());
    }
}

#[test]
fn version_round_trips_and_decrypts_for_every_type() {
    for t in TYPES {
        let built = fixed(t, 0, 1).build().expect("build");
        let raw = answer(built.bytes());
        let resp = built
            .parse_response(&raw)
            .unwrap_or_else(|e| panic!("type {t}: {e}"));
        assert!(resp.header.is_success(), "type {t}");
        assert_eq!(resp.body, VERSION_BYTES, "type {t}");
    }
}

#[test]
fn payloads_of_many_lengths_round_trip_for_every_type() {
    for t in TYPES {
        for len in [0usize, 1, 15, 16, 17, 33, 200] {
            let mut r = fixed(t, PAYLOAD_ECHO.0, PAYLOAD_ECHO.1);
            r.payload = (0..len).map(|i| i as u8).collect();
            let built = r.build().expect("build");
            let resp = built
                .parse_response(&answer(built.bytes()))
                .unwrap_or_else(|e| panic!("type {t}, len {len}: {e}"));
            assert!(resp.header.is_success());
            assert_eq!(resp.body, r.payload, "type {t}, len {len}");
        }
    }
}

#[test]
fn set_echo_keeps_the_request_valid_for_every_type() {
    for t in TYPES {
        let mut built = fixed(t, 0, 1).build().expect("build");
        for echo in [[0, 0], [0x12, 0x34], [0xff, 0xfe]] {
            built.set_echo(echo);
            let raw = answer(built.bytes());
            let resp = built
                .parse_response(&raw)
                .unwrap_or_else(|e| panic!("type {t}: {e}"));
            assert!(resp.header.is_success(), "type {t}");
            assert_eq!(resp.body, VERSION_BYTES);
        }
    }
}

#[test]
fn unknown_keys_give_the_protocol_statuses_with_zero_signatures() {
    let unknown = Coin::new(2, 999);
    let an = [7u8; 16];
    let cases = [
        (Keys::Coin { coin: unknown, an }, Status::InvalidEncryption),
        (Keys::Locker { an }, Status::InvalidEncryption),
        (
            Keys::Coin256 { coin: unknown, an },
            Status::EncryptionCoinNotFound,
        ),
    ];
    for (keys, status) in cases {
        let mut r = Request::echo(RAIDA_ID, keys);
        r.coin_id = COIN_ID;
        let built = r.build().expect("build");
        let resp = built
            .parse_response(&answer(built.bytes()))
            .expect("verifies");
        assert_eq!(resp.header.known_status(), Some(status));
    }
}

#[test]
fn header_rule_failure_is_reported_as_its_status() {
    let mut r = fixed(0, 0, 0);
    r.raida_id = RAIDA_ID + 1;
    let built = r.build().expect("build");
    let resp = built
        .parse_response(&answer(built.bytes()))
        .expect("verifies");
    assert_eq!(resp.header.known_status(), Some(Status::InvalidRaidaId));
}

#[test]
fn a_flipped_ciphertext_byte_is_rejected_by_the_hmac() {
    for t in [4, 5] {
        let built = fixed(t, 0, 1).build().expect("build");
        let mut raw = answer(built.bytes());
        raw[48] ^= 0x01;
        match built.parse_response(&raw) {
            Err(ResponseError::Hmac { .. }) => {}
            other => panic!("type {t}: expected an HMAC error, got {other:?}"),
        }
    }
}

#[test]
fn a_flipped_hmac_byte_is_rejected() {
    let built = fixed(4, 0, 1).build().expect("build");
    let mut raw = answer(built.bytes());
    let n = raw.len();
    raw[n - 3] ^= 0x80;
    let err = built.parse_response(&raw).expect_err("tampered");
    assert!(matches!(err, ResponseError::Hmac { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("response HMAC: expected "),
        "{err}"
    );
}

#[test]
fn a_wrong_signature_is_rejected() {
    for t in [0, 1, 2] {
        let built = fixed(t, 0, 0).build().expect("build");
        let mut raw = answer(built.bytes());
        raw[20] ^= 0x01;
        let err = built.parse_response(&raw).expect_err("wrong signature");
        assert!(
            matches!(err, ResponseError::Signature { .. }),
            "type {t}: {err:?}"
        );
    }
}

#[test]
fn a_zero_signature_on_success_is_rejected() {
    let built = fixed(1, 0, 0).build().expect("build");
    let mut raw = answer(built.bytes());
    raw[16..32].fill(0);
    let err = built
        .parse_response(&raw)
        .expect_err("zero signature on 250");
    assert!(matches!(
        err,
        ResponseError::Signature {
            zeros_allowed: false,
            ..
        }
    ));
}

#[test]
fn the_type1_signature_is_challenge_xor_an() {
    let built = fixed(1, 0, 0).build().expect("build");
    let raw = answer(built.bytes());
    let mut challenge = [0u8; 16];
    challenge[..12].copy_from_slice(b"123456789abc");
    challenge[12..].copy_from_slice(&[0xbd, 0xb0, 0xc0, 0xe4]);
    let an = demo_coin_an(-1, 16);
    let expected: Vec<u8> = challenge.iter().zip(an).map(|(c, a)| c ^ a).collect();
    assert_eq!(&raw[16..32], &expected[..]);
    assert!(built.parse_response(&raw).is_ok());
}

#[test]
fn a_reply_to_another_request_is_rejected_by_its_echo_bytes() {
    for t in TYPES {
        let mut built = fixed(t, 0, 0).build().expect("build");
        let raw = answer(built.bytes());
        built.set_echo([0x11, 0x22]);
        let err = built.parse_response(&raw).expect_err("stale reply");
        assert!(
            matches!(
                err,
                ResponseError::Echo {
                    expected: [0x11, 0x22],
                    ..
                }
            ),
            "type {t}: {err:?}"
        );
    }
}

#[test]
fn short_and_long_responses_are_rejected_with_counts() {
    let built = fixed(0, 0, 1).build().expect("build");
    let raw = answer(built.bytes());
    let err = built.parse_response(&raw[..12]).expect_err("short");
    assert_eq!(
        err.to_string(),
        "response header: expected 32 bytes, got 12"
    );
    let err = built.parse_response(&raw[..35]).expect_err("short body");
    assert_eq!(err.to_string(), "response body: expected 10 bytes, got 3");
    let mut long = raw.clone();
    long.push(0);
    let err = built.parse_response(&long).expect_err("long");
    assert!(matches!(
        err,
        ResponseError::Long {
            expected: 42,
            got: 43
        }
    ));
}

#[test]
fn a_missing_trailer_is_rejected() {
    let built = fixed(0, 0, 1).build().expect("build");
    let mut raw = answer(built.bytes());
    let n = raw.len();
    raw[n - 1] = 0;
    let err = built.parse_response(&raw).expect_err("trailer");
    assert_eq!(
        err.to_string(),
        "response body: expected trailer 3e3e, got 3e00"
    );
}

// ---- transports ----

#[test]
fn tcp_exchange_with_an_in_process_server_for_every_type() {
    let server = TcpServer::start(TcpMode::Answer, 5);
    for t in TYPES {
        let built = fixed(t, 0, 1).build().expect("build");
        let reply = exchange_tcp(server.addr, &built, &Timeouts::default())
            .unwrap_or_else(|e| panic!("type {t}: {e}"));
        assert!(reply.response.header.is_success());
        assert_eq!(reply.response.body, VERSION_BYTES);
    }
}

#[test]
fn udp_exchange_with_an_in_process_server_for_every_type() {
    let server = UdpServer::start();
    for t in TYPES {
        let built = fixed(t, 0, 1).build().expect("build");
        let reply = exchange(server.addr, Transport::Udp, &built, &Timeouts::default())
            .unwrap_or_else(|e| panic!("type {t}: {e}"));
        assert_eq!(reply.response.body, VERSION_BYTES);
    }
}

#[test]
fn tcp_server_closing_mid_header_names_the_counts() {
    let server = TcpServer::start(TcpMode::Truncate(12), 1);
    let built = fixed(0, 0, 0).build().expect("build");
    let err = exchange_tcp(server.addr, &built, &Timeouts::default()).expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(
        err.to_string(),
        "response header: expected 32 bytes, got 12 before the server closed"
    );
}

#[test]
fn tcp_server_closing_mid_body_names_the_counts() {
    let server = TcpServer::start(TcpMode::Truncate(48 + 5), 1);
    let built = fixed(4, 0, 1).build().expect("build");
    let err = exchange_tcp(server.addr, &built, &Timeouts::default()).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "response body: expected 42 bytes, got 5 before the server closed"
    );
}

#[test]
fn udp_to_a_silent_socket_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let built = fixed(0, 0, 0).build().expect("build");
    let err = exchange_udp(addr, &built, &Timeouts::uniform(Duration::from_millis(100)))
        .expect_err("nobody answers");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "response datagram: timed out: expected 32 bytes within 100 ms, got 0"
    );
    drop(silent);
}

#[test]
fn tcp_connect_to_a_closed_port_is_a_connection_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let built = fixed(0, 0, 0).build().expect("build");
    let err = exchange_tcp(addr, &built, &Timeouts::default()).expect_err("closed port");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Connect);
}

// ---- the authentication commands' payloads, against the real commands ----

#[test]
fn every_authentication_command_answers_its_payload_for_every_type() {
    use raida_client::auth::{self, AuthCommand};
    let good = |d, s| (Coin::new(d, s), demo_coin_an(d, s));
    let wrong = (Coin::new(1, 2), [0u8; 16]);
    // (command, payload, the status it answers, what that says of each coin)
    type Case = (AuthCommand, Vec<u8>, Status, Option<Vec<bool>>);
    let cases: Vec<Case> = vec![
        (
            AuthCommand::Detect,
            auth::detect_payload(&[good(1, 1), wrong, good(-1, 16)]),
            Status::Mixed,
            Some(vec![true, false, true]),
        ),
        (
            AuthCommand::DetectSum,
            auth::detect_sum_payload(&[good(1, 1), good(1, 2)]),
            Status::AllPass,
            Some(vec![true, true]),
        ),
        (
            AuthCommand::DetectSum,
            auth::detect_sum_payload(&[good(1, 1), wrong]),
            Status::AllFail,
            Some(vec![false, false]),
        ),
        (
            AuthCommand::Pown,
            auth::pown_payload(&[(Coin::new(1, 2), demo_coin_an(1, 2), [7; 16])]),
            Status::AllPass,
            Some(vec![true]),
        ),
        (
            AuthCommand::PownSum,
            auth::pown_sum_payload(&[good(1, 1), good(-1, 16)], &[9; 16]),
            Status::AllPass,
            Some(vec![true, true]),
        ),
        (
            AuthCommand::PownSum,
            auth::pown_sum_payload(&[good(1, 1), (Coin::new(4, 4), [0; 16])], &[9; 16]),
            Status::InvalidSnOrDenomination,
            None,
        ),
    ];
    for t in TYPES {
        for (command, payload, status, results) in &cases {
            let mut r = Request::new(RAIDA_ID, auth::GROUP, command.code(), keys_of_type(t));
            r.coin_id = COIN_ID;
            r.randomize().expect("OS random");
            r.payload = payload.clone();
            let built = r.build().expect("build");
            let response = built
                .parse_response(&answer(built.bytes()))
                .expect("verifies");
            let what = format!("type {t} {}", command.name());
            assert_eq!(response.header.status, StatusByte::from(*status), "{what}");
            let n = results.as_ref().map_or(0, Vec::len);
            let decoded = auth::coin_results(*command, response.header.status, &response.body, n);
            assert_eq!(decoded.as_ref(), Ok(results), "{what}");
        }
    }
}
