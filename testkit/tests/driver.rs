//! The driver itself: stepping and driving, the clock, the sockets' faults, the worker
//! and the leak check, over a real engine serving echo and version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raida_client::{Coin, Keys, Request};
use raida_core::keys::MemoryKeyStore;
use raida_core::{Accept, CommandRegistry, Engine, EngineConfig, Origin, Status, Timestamp};
use raida_testkit::{Driver, MemConn};

const RAIDA_ID: u8 = 7;
const AN: [u8; 16] = *b"0123456789abcdef";
const START: Timestamp = Timestamp::from_micros(1_000_000);

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.raida_id = RAIDA_ID;
    config
}

fn new_driver_with(config: EngineConfig) -> Driver {
    let keys = MemoryKeyStore::new();
    keys.insert_coin(1, 1, AN);
    let engine = Engine::new(config, CommandRegistry::with_builtins(), Arc::new(keys));
    Driver::new(engine, START, [0xA5; 22])
}

fn new_driver() -> Driver {
    new_driver_with(config())
}

/// A type-0 echo (answered on the engine's thread, no job).
fn echo() -> Vec<u8> {
    request(Keys::None)
}

/// A type-4 echo (its response needs a worker: the engine holds no random bytes).
fn echo_type_4() -> Vec<u8> {
    request(Keys::Coin256 {
        coin: Coin::new(1, 1),
        an: AN,
    })
}

fn request(keys: Keys) -> Vec<u8> {
    let req = Request::new(RAIDA_ID, 0, 0, keys);
    match req.build() {
        Ok(built) => built.bytes().to_vec(),
        Err(e) => panic!("the test request does not build: {e}"),
    }
}

fn peer(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50000 + n))
}

#[test]
fn a_request_is_served_and_the_connection_closes_after_the_peers_end_of_stream() {
    let mut h = new_driver();
    assert!(!h.step(), "nothing to do");
    let id = h.accept();
    h.send(id, &echo());
    assert_eq!(h.out(id)[2], Status::Success.code());
    assert!(h.conn(id).is_shutdown() && !h.conn(id).is_closed());
    assert!(
        !h.is_drained(),
        "the connection lingers for the peer's end of stream"
    );
    h.hang_up(id);
    assert!(h.conn(id).is_closed());
    assert_eq!(h.closes, vec![id]);
    assert!(h.is_drained());
    h.assert_no_leaks();
    assert!(h.remove(id).is_some());
}

#[test]
#[should_panic(expected = "engine not idle")]
fn the_leak_check_fails_while_a_connection_is_open() {
    let mut h = new_driver();
    let _open = h.accept();
    h.assert_no_leaks();
}

/// One read per service pass and one byte per read: a 1,000-byte body takes about a
/// thousand steps, more than the bound allows.
#[test]
#[should_panic(expected = "livelock")]
fn driving_past_the_step_bound_panics() {
    let mut config = config();
    config.reads_per_service = 1;
    let mut h = new_driver_with(config);
    let id = h.accept();
    h.set_read_chunk(id, 1);
    let mut req = Request::new(RAIDA_ID, 0, 0, Keys::None);
    req.payload = vec![1; 1000];
    let bytes = match req.build() {
        Ok(built) => built.bytes().to_vec(),
        Err(e) => panic!("{e}"),
    };
    h.step_bound = 100;
    h.send(id, &bytes);
}

#[test]
fn the_clock_moves_only_when_told_and_advance_to_deadline_fires_the_socket_timeout() {
    let mut h = new_driver();
    let id = h.accept();
    h.drive();
    assert_eq!(h.now(), START);
    assert!(!h.conn(id).is_closed());
    assert!(h.advance_to_deadline());
    assert_eq!(h.now(), START.saturating_add(Duration::from_secs(2)));
    assert!(h.conn(id).is_closed());
    assert_eq!(h.engine.counters().timed_out, 1);
    assert!(!h.advance_to_deadline(), "no deadline left");
    h.assert_no_leaks();
}

#[test]
fn a_read_or_write_that_fails_closes_the_connection_as_a_reset() {
    let mut h = new_driver();
    let id = h.accept();
    h.send(id, &echo()[..10]);
    h.fail_io(id);
    assert!(h.conn(id).is_closed());
    assert_eq!(h.engine.counters().reset, 1);
    h.assert_no_leaks();
}

#[test]
fn partial_writes_and_reads_deliver_the_same_response() {
    let mut whole = new_driver();
    let a = whole.accept();
    whole.send(a, &echo());
    let expected = whole.out(a).to_vec();

    let mut h = new_driver();
    let id = h.accept();
    h.set_read_chunk(id, 3);
    h.set_write_room(id, Some(0));
    h.send(id, &echo());
    assert!(h.out(id).is_empty(), "no write room");
    assert!(h.conn(id).lends().iter().all(|l| l.len >= 1));
    while !h.conn(id).is_shutdown() {
        h.set_write_room(id, Some(5));
    }
    assert_eq!(h.out(id), &expected[..]);
    assert_eq!(
        h.conn(id).response().map(|(r, _)| r.to_vec()),
        Some(expected)
    );
    assert!(!h.conn(id).lent_past(echo().len()));
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn held_jobs_wait_for_the_test_and_datagrams_wait_in_the_socket_while_unwanted() {
    let mut config = config();
    config.mod_queue_size = 1;
    let mut h = new_driver_with(config);
    h.hold_jobs(true);
    h.datagram(peer(1), &echo_type_4());
    assert_eq!(h.held_jobs(), 1);
    assert!(!h.engine.wants_datagrams());
    h.datagram(peer(2), &echo_type_4());
    assert_eq!(h.udp.unread(), 1, "not read while admission is full");
    assert_eq!(h.complete_oldest(), Some(Origin::Udp(peer(1))));
    assert_eq!(h.resumed_datagrams, 1);
    assert_eq!(h.udp.unread(), 0, "read again after ResumeDatagrams");
    assert_eq!(h.complete_newest(), Some(Origin::Udp(peer(2))));
    assert_eq!(h.complete_oldest(), None);
    let peers: Vec<_> = h.datagrams().iter().map(|(p, _)| *p).collect();
    assert_eq!(peers, vec![peer(1), peer(2)]);
    h.assert_no_leaks();
}

#[test]
fn an_exhausted_listener_pauses_accepting_until_the_backoff_ends() {
    let mut h = new_driver();
    h.listener.exhaust(1);
    h.listener.push(MemConn::new(), peer(1));
    h.drive();
    assert_eq!(h.listener.pending(), 1, "left in the backlog");
    assert_eq!(h.engine.counters().accept_pauses, 1);
    h.advance(EngineConfig::default().accept_backoff);
    assert_eq!(h.resumed_accepting, 1);
    assert_eq!(h.listener.pending(), 0);
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn a_refused_connection_gets_its_160_and_is_shut() {
    let mut config = config();
    config.max_connections = 1;
    let mut h = new_driver_with(config);
    let _open = h.accept();
    let Accept::Refused(bytes) = h.accept_from(peer(2)) else {
        panic!("the second connection must be refused");
    };
    let refused = &h.refused[0];
    assert_eq!(refused.outbound(), &bytes[..]);
    assert_eq!(refused.outbound()[2], Status::RequestRate.code());
    assert!(refused.is_shutdown());
}
