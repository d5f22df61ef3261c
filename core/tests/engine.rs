//! The engine driven in memory (no sockets, no threads) through every state and every
//! row of PROTOCOL.md section 7. Every test ends with the leak check: after draining,
//! the engine holds no connection, job or timer.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use raida_core::codec::{answer_datagram, HeaderRules};
use raida_core::keys::{MemoryKeyStore, PageId};
use raida_core::{
    Accept, Command, CommandRegistry, EngineConfig, RequestContext, ShutdownStatus, Status,
    StatusByte, Timestamp,
};
use support::*;

const TIMEOUT: Duration = Duration::from_secs(2);

/// What the codec alone answers to `request` (one datagram, elapsed 0): the reference
/// every TCP split must reproduce.
fn codec_answer(request: &[u8]) -> Vec<u8> {
    let rules = HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: COIN_ID,
        max_body_size: 65_536,
    };
    let keys: MemoryKeyStore = keys();
    answer_datagram(
        request,
        &rules,
        &CommandRegistry::with_builtins(),
        &keys,
        Timestamp::ZERO,
        0,
        &RANDOM,
    )
    .expect("a whole request is answered")
}

/// Serves one request over TCP the way a polite client does: send, shut down its
/// write side once the response is in, and wait for the close.
fn serve_tcp(h: &mut Driver, request: &[u8]) -> Vec<u8> {
    let id = h.accept();
    h.send(id, request);
    let out = h.out(id).to_vec();
    h.hang_up(id);
    assert!(
        h.conn(id).is_closed(),
        "connection closed after the response"
    );
    out
}

#[test]
fn echo_type_0_is_answered_250_with_the_challenge_and_echo_bytes() {
    let mut h = harness();
    let req = Req::echo(0).bytes();
    let out = serve_tcp(&mut h, &req);
    assert_eq!(out.len(), 32);
    assert_eq!(status_of(&out), Status::Success.code());
    assert_eq!(out[0], RAIDA_ID);
    assert_eq!(&out[6..8], &[0xAB, 0xCD], "echo bytes");
    assert_eq!(&out[16..32], &req[32..48], "signature = the challenge");
    assert_eq!(out, codec_answer(&req));
    h.assert_no_leaks();
}

#[test]
fn every_encryption_type_over_tcp_matches_the_codec() {
    for enc in [0u8, 1, 4] {
        for req in [Req::echo(enc), Req::version(enc)] {
            let mut h = harness();
            let bytes = req.bytes();
            let out = serve_tcp(&mut h, &bytes);
            assert_eq!(status_of(&out), 250, "type {enc}");
            assert_eq!(
                out,
                codec_answer(&bytes),
                "type {enc} command {}",
                req.command
            );
            h.assert_no_leaks();
        }
    }
}

#[test]
fn the_response_is_written_through_a_socket_that_takes_one_byte_at_a_time() {
    let mut h = harness();
    let id = h.accept();
    h.set_write_room(id, Some(0));
    let req = Req::version(4).bytes();
    h.send(id, &req);
    assert!(h.out(id).is_empty());
    let expected = codec_answer(&req);
    for _ in 0..expected.len() {
        h.set_write_room(id, Some(1));
    }
    assert_eq!(h.out(id), &expected[..]);
    assert!(h.conn(id).is_shutdown());
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn bytes_after_the_request_are_never_read_as_part_of_it() {
    let mut h = harness();
    let id = h.accept();
    let req = Req::echo(0).bytes();
    let mut stream = req.clone();
    stream.extend_from_slice(&[0xEE; 100]);
    h.send(id, &stream);
    assert_eq!(h.out(id), &codec_answer(&req)[..]);
    let s = h.conn(id);
    assert_eq!(
        s.read_before_shutdown(),
        req.len(),
        "read exactly the request"
    );
    assert!(
        !s.lent_past(req.len()),
        "never lent a buffer past the request"
    );
    // Closing drains and discards the rest, then waits for the peer's end of stream.
    assert!(!s.is_closed());
    h.hang_up(id);
    assert!(h.conn(id).is_closed());
    h.assert_no_leaks();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any split of any valid request into reads of 1..n bytes yields the same
    /// response bytes as one read, and the engine never lends past the request.
    #[test]
    fn any_split_gives_the_same_response(
        enc in prop::sample::select(vec![0u8, 1, 2, 4]),
        command in 0u8..2,
        payload in prop::collection::vec(any::<u8>(), 0..64),
        chunks in prop::collection::vec(1usize..60, 1..40),
        extra in prop::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut req = Req::echo(enc);
        req.command = command;
        req.payload = payload;
        if enc == 2 {
            // No locker in the test store: a 34 at header time, also a valid answer.
            req.payload.clear();
        }
        let bytes = req.bytes();
        let expected = codec_answer(&bytes);

        let mut h = harness();
        let id = h.accept();
        let mut stream = bytes.clone();
        stream.extend_from_slice(&extra);
        let mut at = 0;
        for (i, c) in chunks.iter().cycle().enumerate() {
            if at >= stream.len() || i > 10_000 { break; }
            h.set_read_chunk(id, *c);
            let end = (at + c).min(stream.len());
            h.send(id, &stream[at..end]);
            at = end;
        }
        // Reads are served at most one chunk per service pass: push until done.
        for _ in 0..stream.len() {
            if h.conn(id).is_shutdown() { break; }
            h.send(id, &[]);
        }
        prop_assert_eq!(h.out(id), &expected[..]);
        prop_assert!(!h.conn(id).lent_past(bytes.len()));
        prop_assert!(h.conn(id).read_before_shutdown() <= bytes.len());
        h.hang_up(id);
        prop_assert!(h.conn(id).is_closed());
        h.assert_no_leaks();
    }
}

// ----- end of stream and reset in each state ------------------------------------------

#[test]
fn end_of_stream_before_the_request_is_complete_closes_without_an_answer() {
    let req = Req::echo(4).bytes();
    for cut in [0, 5, 17, 30, 47, 48, 60] {
        let mut h = harness();
        let id = h.accept();
        h.send(id, &req[..cut]);
        h.hang_up(id);
        assert!(h.conn(id).is_closed(), "cut at {cut}");
        assert!(h.out(id).is_empty(), "nothing sent, cut at {cut}");
        assert_eq!(h.engine.counters().abandoned, 1);
        h.assert_no_leaks();
    }
}

#[test]
fn end_of_stream_while_the_job_runs_still_gets_the_response() {
    let mut h = harness();
    h.hold_jobs(true);
    let id = h.accept();
    let req = Req::version(4).bytes();
    h.send(id, &req);
    h.hang_up(id);
    assert!(!h.conn(id).is_closed(), "a half-close is not an abandon");
    assert!(h.complete_oldest().is_some());
    assert_eq!(h.out(id), &codec_answer(&req)[..]);
    assert!(h.conn(id).is_closed());
    h.assert_no_leaks();
}

#[test]
fn reset_in_every_state_closes_once_and_drops_the_late_completion() {
    let req = Req::version(4).bytes();
    // (bytes sent before the reset, hold the job, socket write room)
    let cases: [(usize, bool, Option<usize>); 5] = [
        (10, false, None),           // reading the header
        (60, false, None),           // reading the body
        (req.len(), true, None),     // processing: job out
        (req.len(), false, Some(5)), // writing, stuck
        (req.len(), false, None),    // closing
    ];
    for (i, (sent, hold, room)) in cases.into_iter().enumerate() {
        let mut h = harness();
        h.hold_jobs(hold);
        let id = h.accept();
        h.set_write_room(id, room);
        h.send(id, &req[..sent]);
        h.reset(id);
        assert!(h.conn(id).is_closed(), "case {i}");
        assert_eq!(h.closes.len(), 1, "closed once, case {i}");
        if hold {
            assert!(h.complete_oldest().is_some());
            assert_eq!(h.engine.counters().late_completions_dropped, 1);
        }
        assert_eq!(h.engine.counters().reset, 1);
        h.assert_no_leaks();
    }
}

// ----- timeouts --------------------------------------------------------------------

#[test]
fn a_silent_connection_is_closed_at_the_socket_timeout() {
    let mut h = harness();
    let id = h.accept();
    h.advance(TIMEOUT - Duration::from_millis(1));
    assert!(!h.conn(id).is_closed());
    h.advance(Duration::from_millis(1));
    assert!(h.conn(id).is_closed());
    assert!(h.out(id).is_empty());
    assert_eq!(h.engine.counters().timed_out, 1);
    h.assert_no_leaks();
}

#[test]
fn a_half_sent_header_or_body_is_closed_at_the_timeout_counted_from_accept() {
    let req = Req::echo(0).bytes();
    for cut in [20, 40] {
        let mut h = harness();
        let id = h.accept();
        h.advance(Duration::from_millis(1500));
        // Progress does not extend the deadline: it runs from accept.
        h.send(id, &req[..cut]);
        h.advance(Duration::from_millis(500));
        assert!(h.conn(id).is_closed(), "cut {cut}");
        assert!(h.out(id).is_empty());
        assert_eq!(h.engine.counters().timed_out, 1);
        h.assert_no_leaks();
    }
}

#[test]
fn a_client_that_never_reads_is_closed_at_the_write_timeout() {
    let mut h = harness();
    let id = h.accept();
    h.set_write_room(id, Some(10));
    h.send(id, &Req::version(0).bytes());
    assert_eq!(h.out(id).len(), 10);
    h.advance(TIMEOUT);
    assert!(h.conn(id).is_closed());
    assert_eq!(h.engine.counters().timed_out, 1);
    h.assert_no_leaks();
}

#[test]
fn a_closing_connection_lingers_then_closes_without_counting_a_timeout() {
    let mut h = harness();
    let id = h.accept();
    h.send(id, &Req::echo(0).bytes());
    assert!(h.conn(id).is_shutdown());
    assert!(
        !h.conn(id).is_closed(),
        "waits for the peer's end of stream"
    );
    h.advance(EngineConfig::default().linger);
    assert!(h.conn(id).is_closed());
    assert_eq!(h.engine.counters().timed_out, 0);
    h.assert_no_leaks();
}

#[test]
fn a_job_in_flight_has_no_socket_deadline() {
    let mut h = harness();
    h.hold_jobs(true);
    let id = h.accept();
    h.send(id, &Req::echo(4).bytes());
    h.advance(TIMEOUT * 3);
    assert!(
        !h.conn(id).is_closed(),
        "the request was complete: the worker owns the time"
    );
    h.complete_all();
    assert_eq!(status_of(h.out(id)), 250);
    h.hang_up(id);
    h.assert_no_leaks();
}

// ----- completions by (index, generation) ---------------------------------------------

#[test]
fn a_completion_for_a_reused_slot_is_dropped_not_applied() {
    let mut h = harness();
    h.hold_jobs(true);
    let old = h.accept();
    h.send(old, &Req::version(4).bytes());
    h.reset(old);
    let new = h.accept();
    assert_eq!(new.index(), old.index(), "the slab reuses the slot");
    assert_ne!(new.generation(), old.generation());
    assert!(h.complete_oldest().is_some());
    assert!(
        h.out(new).is_empty(),
        "the old response never reaches the new peer"
    );
    assert_eq!(h.engine.counters().late_completions_dropped, 1);
    // The new connection still works.
    h.hold_jobs(false);
    h.send(new, &Req::echo(0).bytes());
    assert_eq!(status_of(h.out(new)), 250);
    h.hang_up(new);
    h.assert_no_leaks();
}

// ----- admission -------------------------------------------------------------------

#[test]
fn more_requests_than_the_mod_queue_are_all_answered_exactly_once_in_order() {
    let mut config = config();
    config.mod_queue_size = 4;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    h.hold_jobs(true);
    let mut ids = Vec::new();
    for i in 0..10u8 {
        let id = h.accept();
        let mut req = Req::version(4);
        req.nonce[23] = i;
        h.send(id, &req.bytes());
        ids.push((id, req.bytes()));
        assert!(h.engine.in_flight() <= 4, "in-flight bound");
    }
    assert_eq!(h.engine.in_flight(), 4);
    assert_eq!(h.engine.waiting(), 6);
    assert_eq!(h.engine.counters().admission_waits, 6);
    // Jobs start in arrival order as completions free room.
    let mut started = Vec::new();
    while let Some(origin) = h.complete_oldest() {
        started.push(origin);
        assert!(h.engine.in_flight() <= 4);
    }
    let order: Vec<_> = ids
        .iter()
        .map(|(id, _)| raida_core::Origin::Tcp(*id))
        .collect();
    assert_eq!(started, order);
    for (id, req) in &ids {
        assert_eq!(
            h.out(*id),
            &codec_answer(req)[..],
            "exactly one response each"
        );
        h.hang_up(*id);
    }
    h.assert_no_leaks();
}

#[test]
fn udp_reading_pauses_while_admission_is_full_and_resumes_after() {
    let mut config = config();
    config.mod_queue_size = 2;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    h.hold_jobs(true);
    h.datagram(peer(1), &Req::version(4).bytes());
    assert!(h.engine.wants_datagrams());
    h.datagram(peer(2), &Req::version(4).bytes());
    assert!(!h.engine.wants_datagrams());
    let _ = h.complete_oldest();
    assert_eq!(h.resumed_datagrams, 1);
    assert!(h.engine.wants_datagrams());
    h.complete_all();
    assert_eq!(h.datagrams().len(), 2);
    h.assert_no_leaks();
}

// ----- limits ----------------------------------------------------------------------

#[test]
fn over_max_connections_the_refusal_is_a_32_byte_160() {
    let mut config = config();
    config.max_connections = 2;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let a = h.accept();
    let _b = h.accept();
    let Accept::Refused(bytes) = h.accept_from(peer(0)) else {
        panic!("the third connection must be refused");
    };
    let mut expected = [0u8; 32];
    expected[0] = RAIDA_ID;
    expected[2] = 160;
    expected[5] = 1;
    assert_eq!(bytes, expected);
    assert_eq!(h.engine.counters().refused, 1);
    // Room again once one closes.
    h.reset(a);
    assert!(matches!(h.accept_from(peer(0)), Accept::Accepted(_)));
    h.advance(TIMEOUT);
    h.assert_no_leaks();
}

#[test]
fn a_declared_body_over_max_body_size_is_answered_16_before_any_body_byte() {
    let mut config = config();
    config.max_body_size = 100;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let id = h.accept();
    let mut req = Req::echo(0);
    req.declared = Some(101);
    let bytes = req.bytes();
    h.send(id, &bytes[..32]);
    assert_eq!(status_of(h.out(id)), Status::InvalidPacketLength.code());
    assert_eq!(&h.out(id)[6..8], &[0xAB, 0xCD]);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn an_unknown_key_is_answered_as_soon_as_the_header_is_in() {
    for (enc, status) in [
        (1u8, Status::InvalidEncryption),
        (4, Status::EncryptionCoinNotFound),
    ] {
        let mut h = harness();
        let id = h.accept();
        let mut req = Req::echo(enc);
        req.coin = (1, 999);
        let bytes = req.bytes();
        let header = if enc == 1 { 32 } else { 48 };
        h.send(id, &bytes[..header]);
        assert_eq!(status_of(h.out(id)), status.code(), "type {enc}");
        assert_eq!(h.out(id).len(), header, "no body");
        h.hang_up(id);
        h.assert_no_leaks();
    }
}

#[test]
fn a_48_byte_rejection_carries_the_job_runners_random_bytes() {
    let mut h = harness();
    let id = h.accept();
    let mut req = Req::echo(4);
    req.routing = 9;
    h.send(id, &req.bytes());
    let out = h.out(id).to_vec();
    assert_eq!(out.len(), 48);
    assert_eq!(status_of(&out), Status::InvalidRouting.code());
    assert_eq!(&out[24..46], &RANDOM[..]);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[derive(Debug)]
struct Panics;
impl Command for Panics {
    fn run(&self, _: &RequestContext<'_>, _: &mut Vec<u8>) -> StatusByte {
        panic!("a command bug")
    }
}

#[test]
fn a_command_that_panics_is_answered_252_and_the_engine_keeps_serving() {
    let mut commands = CommandRegistry::with_builtins();
    commands
        .register(3, 3, Arc::new(Panics))
        .expect("group 3 is valid");
    let mut h = harness_with(config(), commands);
    let mut req = Req::echo(4);
    req.group = 3;
    req.command = 3;
    let out = serve_tcp(&mut h, &req.bytes());
    assert_eq!(status_of(&out), Status::Internal.code());
    let out = serve_tcp(&mut h, &Req::echo(0).bytes());
    assert_eq!(status_of(&out), 250);
    h.assert_no_leaks();
}

#[test]
fn the_time_field_counts_microseconds_from_accept() {
    let mut h = harness();
    let id = h.accept();
    h.advance(Duration::from_micros(1234));
    h.send(id, &Req::echo(0).bytes());
    let out = h.out(id);
    assert_eq!(
        u32::from_be_bytes([out[12], out[13], out[14], out[15]]),
        1234
    );
    h.hang_up(id);
    h.assert_no_leaks();
}

// ----- UDP: every row of section 7 ------------------------------------------------------

#[test]
fn udp_rows_of_section_7() {
    let mut h = harness();
    let echo = Req::echo(0).bytes();
    // Fewer than 17 bytes, fewer than the header: dropped silently.
    h.datagram(peer(1), &echo[..16]);
    h.datagram(peer(1), &echo[..31]);
    h.datagram(peer(1), &Req::echo(4).bytes()[..40]);
    assert!(h.datagrams().is_empty());
    assert_eq!(h.engine.counters().udp_dropped, 3);
    // Header rule fails: an error response.
    let mut bad = Req::echo(0);
    bad.split = 1;
    h.datagram(peer(2), &bad.bytes());
    // Unknown key wins over a short datagram.
    let mut unknown = Req::echo(1);
    unknown.coin = (1, 999);
    h.datagram(peer(3), &unknown.bytes()[..32]);
    // Body shorter than declared: 16.
    h.datagram(peer(4), &echo[..40]);
    // Declared body over max_body_size: a_small_max_body_size_rejects_over_udp_too.
    // Trailing bytes after the body are ignored.
    let mut trailing = echo.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    h.datagram(peer(5), &trailing);
    let got: Vec<(u16, u8)> = h
        .datagrams()
        .iter()
        .map(|(p, b)| (p.port() - 40000, status_of(b)))
        .collect();
    assert_eq!(got, vec![(2, 2), (3, 34), (4, 16), (5, 250)]);
    assert_eq!(h.datagrams()[3].1, codec_answer(&echo));
    h.assert_no_leaks();
}

#[test]
fn udp_keeps_only_the_first_udp_payload_threshold_bytes() {
    let mut config = config();
    config.udp_payload_threshold = 60;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    // 50-byte request inside the threshold, garbage after: served.
    let mut within = Req::echo(0).bytes();
    within.extend_from_slice(&[0u8; 100]);
    h.datagram(peer(1), &within);
    // A request whose body extends past the threshold: 16.
    let mut long = Req::echo(0);
    long.payload = vec![7; 40];
    h.datagram(peer(2), &long.bytes());
    let statuses: Vec<u8> = h.datagrams().iter().map(|(_, b)| status_of(b)).collect();
    assert_eq!(statuses, vec![250, 16]);
    h.assert_no_leaks();
}

#[test]
fn a_small_max_body_size_rejects_over_udp_too() {
    let mut config = config();
    config.max_body_size = 10;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    h.datagram(peer(1), &Req::echo(0).bytes());
    assert_eq!(status_of(&h.datagrams()[0].1), 16);
    h.assert_no_leaks();
}

// ----- counters for metrics ---------------------------------------------------------------

#[test]
fn responses_and_latency_are_counted_by_transport() {
    use raida_core::metrics::Transport;
    let mut h = harness();
    let id = h.accept();
    h.advance(Duration::from_micros(1234));
    h.send(id, &Req::echo(0).bytes());
    h.hang_up(id);
    h.datagram(peer(1), &Req::echo(4).bytes());
    let mut bad = Req::echo(0);
    bad.split = 1;
    h.datagram(peer(2), &bad.bytes());
    h.assert_no_leaks();

    let c = h.engine.counters();
    let success = StatusByte::from(Status::Success);
    let split = StatusByte::from(Status::InvalidSplitId);
    assert_eq!(c.responses(Transport::Tcp, success), 1);
    assert_eq!(c.responses(Transport::Udp, success), 1);
    assert_eq!(c.responses(Transport::Udp, split), 1);
    assert_eq!(c.responses(Transport::Tcp, split), 0);
    assert_eq!((c.tcp_responses, c.udp_responses), (1, 2));
    let tcp = &c.latency[Transport::Tcp.index()];
    let udp = &c.latency[Transport::Udp.index()];
    assert_eq!((tcp.count(), tcp.sum_micros()), (1, 1234), "from accept");
    assert_eq!((udp.count(), udp.sum_micros()), (2, 0), "from receipt");
    // The type-4 echo looked its coin up once; type 0 and the bad header did not.
    let stats = h.engine.keys().stats().expect("the memory store counts");
    assert_eq!((stats.lookups, stats.hits), (1, 1));
}

#[test]
fn a_refusal_counts_as_a_tcp_160_ready_at_once() {
    use raida_core::metrics::Transport;
    let mut config = config();
    config.max_connections = 1;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let id = h.accept();
    assert!(matches!(h.accept_from(peer(0)), Accept::Refused(_)));
    let c = h.engine.counters();
    assert_eq!(c.responses(Transport::Tcp, Status::RequestRate.into()), 1);
    assert_eq!(c.latency[Transport::Tcp.index()].count(), 1);
    assert_eq!(c.latency[Transport::Tcp.index()].sum_micros(), 0);
    h.send(id, &Req::echo(0).bytes());
    h.hang_up(id);
    h.assert_no_leaks();
}

/// With random bytes fed to it, the engine answers a cheap encrypted request (echo,
/// version; types 4 and 1) itself, with no job, byte for byte what the codec answers
/// with those random bytes; the bytes are used once, in order.
#[test]
fn fed_random_bytes_cheap_encrypted_requests_are_answered_without_a_job() {
    for enc in [4u8, 1] {
        for req in [Req::echo(enc), Req::version(enc)] {
            let mut h = harness();
            h.hold_jobs(true);
            assert!(h.engine.wants_random());
            h.engine.handle_random(&RANDOM);
            let bytes = req.bytes();
            let id = h.accept();
            h.send(id, &bytes);
            assert!(h.held_jobs() == 0, "type {enc}: no job for a cheap command");
            assert_eq!(h.out(id), codec_answer(&bytes).as_slice(), "type {enc}");
            h.hang_up(id);
            h.assert_no_leaks();
        }
    }
    // The 22 bytes were spent on the first type-4 response: the next one goes to a
    // worker, which brings its own.
    let mut h = harness();
    h.hold_jobs(true);
    h.engine.handle_random(&RANDOM);
    let a = h.accept();
    h.send(a, &Req::echo(4).bytes());
    let b = h.accept();
    h.send(b, &Req::echo(4).bytes());
    assert_eq!(h.held_jobs(), 1, "the second type-4 request became a job");
    h.complete_all();
    h.hang_up(a);
    h.hang_up(b);
    h.assert_no_leaks();
}

/// Without random bytes (a driver that feeds none, like the simulator) encrypted
/// requests go to the workers, as before; a disabled inline path never asks for any.
#[test]
fn unfed_or_disabled_encrypted_requests_become_jobs() {
    let mut h = harness();
    h.hold_jobs(true);
    let id = h.accept();
    h.send(id, &Req::version(4).bytes());
    assert_eq!(h.held_jobs(), 1);
    h.complete_all();
    h.hang_up(id);
    h.assert_no_leaks();

    let mut config = config();
    config.inline_crypto_max_body = 0;
    let h = harness_with(config, CommandRegistry::with_builtins());
    assert!(!h.engine.wants_random());
}

// ----- keys whose page is not in memory ------------------------------------------------

fn lazy_harness(config: EngineConfig) -> (Driver, Arc<LazyStore>) {
    let store = Arc::new(LazyStore::new());
    let h = harness_with_store(config, CommandRegistry::with_builtins(), store.clone());
    (h, store)
}

/// The event loop never reads a page: a request whose key's page is not in memory
/// waits for one load on the workers, shared by every request that needs the page,
/// then gets exactly the answer it would have got at once.
#[test]
fn requests_whose_page_is_not_in_memory_share_one_load_then_resume() {
    let (mut h, store) = lazy_harness(config());
    h.hold_jobs(true);
    let type1 = Req::version(1).bytes();
    let type4 = Req::echo(4).bytes();
    let a = h.accept();
    h.send(a, &type1);
    let b = h.accept();
    h.send(b, &type4);
    h.datagram(peer(7), &type1);
    assert_eq!(h.engine.loads_in_flight(), 1, "one load for the page");
    assert_eq!(h.engine.parked(), 3);
    assert_eq!(h.held_jobs(), 1, "the load is the only job");
    assert!(h.out(a).is_empty() && h.out(b).is_empty() && h.datagrams().is_empty());
    h.complete_all();
    assert_eq!(store.loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(h.out(a), codec_answer(&type1));
    assert_eq!(h.out(b), codec_answer(&type4));
    assert_eq!(h.datagrams().len(), 1);
    assert_eq!(h.datagrams()[0].1, codec_answer(&type1));
    assert_eq!(h.engine.counters().page_loads, 1);
    assert_eq!(h.engine.counters().parked, 3);
    h.hang_up(a);
    h.hang_up(b);
    h.assert_no_leaks();
}

/// A page that cannot be read answers 252 INTERNAL, never "unknown coin".
#[test]
fn a_page_that_cannot_be_read_answers_252() {
    let (mut h, store) = lazy_harness(config());
    let page = PageId {
        denomination: 1,
        number: 0,
    };
    store.failing.lock().expect("lock").insert(page);
    let req = Req::version(1).bytes();
    let id = h.accept();
    h.send(id, &req);
    let out = h.out(id).to_vec();
    assert_eq!(status_of(&out), Status::Internal.code());
    assert_eq!(h.engine.counters().page_load_failures, 1);
    h.datagram(peer(3), &Req::version(4).bytes());
    assert_eq!(status_of(&h.datagrams()[0].1), Status::Internal.code());
    h.hang_up(id);
    h.assert_no_leaks();
}

/// A parked request keeps its connection's deadline: a load slower than the socket
/// timeout closes the connection, and the late load harms nothing.
#[test]
fn a_parked_request_keeps_its_deadline() {
    let (mut h, _store) = lazy_harness(config());
    h.hold_jobs(true);
    let id = h.accept();
    h.send(id, &Req::version(1).bytes());
    assert_eq!(h.engine.parked(), 1);
    h.advance(Duration::from_secs(3));
    assert!(
        h.conn(id).is_closed(),
        "closed by the socket timeout while parked"
    );
    assert_eq!(h.engine.counters().timed_out, 1);
    h.complete_all();
    assert!(h.out(id).is_empty());
    h.assert_no_leaks();
}

/// Parked datagrams are bounded: when `max_parked_datagrams` wait, the engine wants no
/// more datagrams until a load completes (the kernel's buffer holds the rest).
#[test]
fn parked_datagrams_are_bounded_and_reading_resumes() {
    let mut config = config();
    config.max_parked_datagrams = 2;
    let (mut h, _store) = lazy_harness(config);
    h.hold_jobs(true);
    let req = Req::version(1).bytes();
    h.datagram(peer(1), &req);
    assert!(h.engine.wants_datagrams());
    h.datagram(peer(2), &req);
    assert!(!h.engine.wants_datagrams(), "two parked: full");
    assert_eq!(h.engine.datagram_room(), 0);
    let resumes = h.resumed_datagrams;
    h.complete_all();
    assert_eq!(
        h.resumed_datagrams,
        resumes + 1,
        "ResumeDatagrams once the load is in"
    );
    assert!(h.engine.wants_datagrams());
    assert_eq!(h.datagrams().len(), 2);
    h.assert_no_leaks();
}

// ----- the budget for buffered request bytes ---------------------------------------------

/// A type-0 echo declaring `declared` body bytes (of which a request sends what it
/// likes): the header alone.
fn header_declaring(declared: u16) -> Vec<u8> {
    let mut req = Req::echo(0);
    req.declared = Some(declared);
    req.bytes()[..32].to_vec()
}

#[test]
fn a_body_grows_as_its_bytes_arrive_instead_of_at_its_declared_size() {
    let mut h = harness();
    let id = h.accept();
    h.send(id, &header_declaring(65_000));
    assert!(
        h.engine.buffered_bytes() <= 4096,
        "one chunk to read into, not the declared 65,000: {}",
        h.engine.buffered_bytes()
    );
    h.send(id, &[7; 100]);
    assert_eq!(h.engine.buffered_bytes(), 4096, "one chunk for 100 bytes");
    h.send(id, &[7; 5000]);
    assert!(
        h.engine.buffered_bytes() <= 16_384,
        "{}",
        h.engine.buffered_bytes()
    );
    h.reset(id);
    assert_eq!(h.engine.buffered_bytes(), 0, "released at the close");
    h.assert_no_leaks();
}

#[test]
fn when_the_budget_is_spent_large_bodies_wait_and_small_requests_still_get_through() {
    let mut config = config();
    config.max_buffered_bytes = 16_384;
    config.small_reserve = 4096;
    config.small_body = 100;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    // Three large bodies (12,000 bytes each: at most 12,288 could fit), each sending
    // 5,000 bytes: 12,288 bytes is all they may hold together.
    let large: Vec<_> = (0..3)
        .map(|_| {
            let id = h.accept();
            h.send(id, &header_declaring(12_000));
            h.send(id, &[1; 5000]);
            id
        })
        .collect();
    assert_eq!(h.engine.buffered_bytes(), 12_288);
    assert!(
        h.engine.budget_waiting() >= 1,
        "a large body waits for room"
    );
    assert!(h.engine.counters().budget_waits >= 1);
    // A small request is served from the reserve.
    let req = Req::echo(0).bytes();
    let small = h.accept();
    h.send(small, &req);
    assert_eq!(h.out(small), codec_answer(&req));
    // A large body gives up: the waiting one is woken and reads on.
    let before = h.conn(large[2]).read_total();
    h.reset(large[0]);
    assert!(h.conn(large[2]).read_total() > before || h.conn(large[1]).read_total() > 4096);
    for id in &large[1..] {
        h.reset(*id);
    }
    h.hang_up(small);
    assert_eq!(h.engine.buffered_bytes(), 0);
    h.assert_no_leaks();
}

#[test]
fn a_declared_body_that_could_never_fit_is_answered_16_before_anything_is_allocated() {
    let mut config = config();
    config.max_buffered_bytes = 16_384;
    config.small_reserve = 4096;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let id = h.accept();
    h.send(id, &header_declaring(12_289));
    assert_eq!(status_of(h.out(id)), Status::InvalidPacketLength.code());
    assert_eq!(h.engine.buffered_bytes(), 0);
    h.hang_up(id);
    // 12,288 fits.
    let ok = h.accept();
    h.send(ok, &header_declaring(12_288));
    assert!(h.out(ok).is_empty(), "reading its body");
    h.reset(ok);
    h.assert_no_leaks();
}

#[test]
fn the_discard_after_a_response_is_bounded_in_bytes() {
    let mut config = config();
    config.discard_limit = 10_000;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let id = h.accept();
    let req = Req::echo(0).bytes();
    h.send(id, &req);
    assert!(
        h.conn(id).is_shutdown(),
        "response written, write side shut"
    );
    assert!(!h.conn(id).is_closed());
    h.send(id, &[9; 6000]);
    assert!(
        !h.conn(id).is_closed(),
        "6,000 discarded bytes are within the limit"
    );
    h.send(id, &[9; 6000]);
    assert!(h.conn(id).is_closed(), "closed past 10,000 discarded bytes");
    assert_eq!(h.engine.counters().discard_limit_closes, 1);
    h.assert_no_leaks();
}

// ----- per-client limits and the shutdown -------------------------------------------------

fn untrusted(config: &mut EngineConfig) {
    config.trusted = Vec::new();
}

fn client(a: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, a], port))
}

#[test]
fn one_client_over_its_connection_limit_is_refused_160_and_others_are_not() {
    let mut config = config();
    untrusted(&mut config);
    config.max_connections_per_client = 2;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let a = h.accept_from(client(1, 1));
    let b = h.accept_from(client(1, 2));
    assert!(matches!((a, b), (Accept::Accepted(_), Accept::Accepted(_))));
    let Accept::Refused(bytes) = h.accept_from(client(1, 3)) else {
        panic!("a third connection from one client is refused");
    };
    assert_eq!(bytes[2], Status::RequestRate.code());
    assert!(matches!(h.accept_from(client(2, 1)), Accept::Accepted(_)));
    let c = h.engine.counters();
    assert_eq!(
        (c.refused, c.refused_per_client, c.refused_global),
        (1, 1, 0)
    );
    // A closed connection frees its place.
    if let Accept::Accepted(id) = a {
        h.reset(id);
    }
    assert!(matches!(h.accept_from(client(1, 4)), Accept::Accepted(_)));
}

#[test]
fn trusted_networks_are_exempt() {
    let mut config = config();
    config.max_connections_per_client = 1;
    config.trusted = vec![raida_core::Cidr::parse("198.51.100.0/24").expect("cidr")];
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    for port in 0..5 {
        assert!(matches!(
            h.accept_from(client(7, port)),
            Accept::Accepted(_)
        ));
    }
    let outside = SocketAddr::from(([203, 0, 113, 9], 1));
    assert!(matches!(h.accept_from(outside), Accept::Accepted(_)));
    assert!(matches!(h.accept_from(outside), Accept::Refused(_)));
}

#[test]
fn over_its_rate_a_client_is_answered_160_over_tcp_and_udp_and_the_udp_160s_are_capped() {
    let mut config = config();
    untrusted(&mut config);
    config.rate = Some(raida_core::Rate {
        per_s: 10,
        burst: 2,
    });
    config.udp_refusals_per_s = 3;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let req = Req::echo(0).bytes();
    // TCP: two connections, then refused.
    assert!(matches!(h.accept_from(client(1, 1)), Accept::Accepted(_)));
    assert!(matches!(h.accept_from(client(1, 2)), Accept::Accepted(_)));
    assert!(matches!(h.accept_from(client(1, 3)), Accept::Refused(_)));
    assert_eq!(h.engine.counters().refused_rate, 1);
    // UDP, another client: two answered, then 160s, at most 3 of them.
    for port in 0..10 {
        h.datagram(client(2, port), &req);
    }
    let statuses: Vec<u8> = h.datagrams().iter().map(|(_, b)| status_of(b)).collect();
    assert_eq!(statuses[..2], [Status::Success.code(); 2]);
    assert_eq!(
        statuses[2..],
        [Status::RequestRate.code(); 3],
        "{statuses:?}"
    );
    let echo = &h.datagrams()[2].1[6..8];
    assert_eq!(echo, &req[30..32], "a 160 carries the request's echo bytes");
    let c = h.engine.counters();
    assert_eq!((c.udp_rate_limited, c.udp_refusals), (8, 3));
    // A tenth of a second later: one more token.
    h.udp.sent.clear();
    h.advance(Duration::from_millis(100));
    h.datagram(client(2, 99), &req);
    assert_eq!(status_of(&h.datagrams()[0].1), Status::Success.code());
}

#[test]
fn after_a_shutdown_nothing_new_is_accepted_and_what_was_accepted_is_answered() {
    let mut h = harness();
    h.hold_jobs(true);
    let req = Req::version(4).bytes();
    let id = h.accept();
    h.send(id, &req);
    assert_eq!(h.held_jobs(), 1);
    h.shutdown();
    assert_eq!(h.stopped_listening, 1);
    assert_eq!(h.engine.shutdown_status(h.now()), ShutdownStatus::Draining);
    // The listener is closed; a datagram read already is dropped.
    assert!(!h.engine.wants_datagrams());
    h.datagram_read(peer(5), &Req::echo(0).bytes());
    assert!(h.datagrams().is_empty());
    h.complete_all();
    assert_eq!(h.out(id), codec_answer(&req));
    h.hang_up(id);
    assert_eq!(h.engine.shutdown_status(h.now()), ShutdownStatus::Drained);
    // Asking again changes nothing.
    h.shutdown();
    assert_eq!(h.stopped_listening, 1);
}

#[test]
fn a_drain_that_outlives_its_timeout_is_cut_short() {
    let mut config = config();
    config.drain_timeout = Duration::from_secs(1);
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    h.hold_jobs(true);
    let id = h.accept();
    h.send(id, &Req::version(4).bytes());
    h.shutdown();
    assert_eq!(
        h.engine.poll_timeout(),
        Some(h.now().saturating_add(Duration::from_secs(1)))
    );
    h.advance(Duration::from_millis(999));
    assert_eq!(h.engine.shutdown_status(h.now()), ShutdownStatus::Draining);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.engine.shutdown_status(h.now()), ShutdownStatus::TimedOut);
    h.complete_all();
    h.hang_up(id);
}

#[test]
fn a_connection_whose_response_is_out_no_longer_counts_against_its_client() {
    let mut config = config();
    untrusted(&mut config);
    config.max_connections_per_client = 1;
    let mut h = harness_with(config, CommandRegistry::with_builtins());
    let Accept::Accepted(a) = h.accept_from(client(1, 1)) else {
        panic!("the first is accepted");
    };
    assert!(matches!(h.accept_from(client(1, 2)), Accept::Refused(_)));
    // Its response written, it only lingers for the peer's end of stream.
    h.send(a, &Req::echo(0).bytes());
    assert!(h.conn(a).is_shutdown() && !h.conn(a).is_closed());
    assert!(matches!(h.accept_from(client(1, 3)), Accept::Accepted(_)));
}
