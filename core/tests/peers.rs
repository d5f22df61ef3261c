//! Peer calls driven in memory: a command that calls other RAIDA servers before it
//! answers (PROTOCOL.md 8b, "The peer call"), against scripted peers that answer, send
//! garbage, hang, refuse or reset. Every test ends with the leak check: no connection,
//! outbound connection, fix, job or timer is left.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raida_core::metrics::MetricsSnapshot;
use raida_core::{
    Command, CommandRegistry, EngineConfig, PeerAnswer, PeerCall, PeerFailure, PeerPlan,
    RequestContext, Runs, ShutdownStatus, Status, StatusByte,
};
use raida_testkit::PeerScript;
use support::*;

const GROUP: u8 = 9;
const COMMAND: u8 = 9;
const DEADLINE: Duration = Duration::from_millis(8_000);

/// Calls the peers whose RAIDA indices are the payload's bytes (request: `Q` and the
/// index); its answer lists, per call in order, the index, an outcome byte (0: a
/// response, else 1 + the failure's index) and the response's length (2 bytes).
/// A payload starting with 0xFF answers 39 without calling anyone.
#[derive(Debug)]
struct CallsPeers;

impl Command for CallsPeers {
    fn run(&self, _ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        Status::Internal.into()
    }

    fn peer_calls(&self, ctx: &RequestContext<'_>) -> PeerPlan {
        if ctx.payload.first() == Some(&0xFF) {
            return PeerPlan::Reply(StatusByte(39));
        }
        PeerPlan::Calls(
            ctx.payload
                .iter()
                .map(|&raida| PeerCall {
                    raida,
                    request: vec![b'Q', raida],
                })
                .collect(),
        )
    }

    fn finish(
        &self,
        _ctx: &RequestContext<'_>,
        answers: &[PeerAnswer],
        output: &mut Vec<u8>,
    ) -> StatusByte {
        for a in answers {
            output.push(a.raida);
            match &a.result {
                Ok(bytes) => {
                    output.push(0);
                    output.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                }
                Err(f) => {
                    output.push(1 + f.index() as u8);
                    output.extend_from_slice(&[0, 0]);
                }
            }
        }
        Status::Success.into()
    }
}

/// [`CallsPeers`] declared to run on the engine's thread.
#[derive(Debug)]
struct CallsPeersInline;

impl Command for CallsPeersInline {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        CallsPeers.run(ctx, output)
    }

    fn runs(&self) -> Runs {
        Runs::Inline
    }

    fn peer_calls(&self, ctx: &RequestContext<'_>) -> PeerPlan {
        CallsPeers.peer_calls(ctx)
    }

    fn finish(
        &self,
        ctx: &RequestContext<'_>,
        answers: &[PeerAnswer],
        output: &mut Vec<u8>,
    ) -> StatusByte {
        CallsPeers.finish(ctx, answers, output)
    }
}

fn peer_addr(raida: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50_000 + u16::from(raida)))
}

/// Peers 0..=24 have addresses, except 20 (none).
fn fix_config() -> EngineConfig {
    let peers = (0..25u8).map(|i| (i != 20).then(|| peer_addr(i))).collect();
    config().with_peers(peers, DEADLINE, 64)
}

fn fix_harness(config: EngineConfig) -> Driver {
    let mut commands = CommandRegistry::with_builtins();
    commands
        .register(GROUP, COMMAND, Arc::new(CallsPeers))
        .expect("free");
    harness_with(config, commands)
}

fn fix_request(peers: &[u8]) -> Vec<u8> {
    let mut r = Req::echo(0);
    r.group = GROUP;
    r.command = COMMAND;
    r.payload = peers.to_vec();
    r.bytes()
}

/// A peer's 250 response listing `body_len - 2` bytes and the trailer.
fn peer_response(body_len: usize) -> Vec<u8> {
    let mut r = vec![0u8; 32];
    r[2] = 250;
    r[9..12].copy_from_slice(&(body_len as u32).to_be_bytes()[1..]);
    r.resize(32 + body_len.saturating_sub(2), 0x11);
    r.extend_from_slice(&[0x3E, 0x3E]);
    r
}

/// The (raida, outcome, length) triples of a [`CallsPeers`] answer's body (type 0:
/// the body after the 32-byte header, trailer stripped).
fn outcomes(response: &[u8]) -> Vec<(u8, u8, u16)> {
    assert_eq!(status_of(response), 250, "{response:02x?}");
    if response.len() == 32 {
        return Vec::new();
    }
    let body = &response[32..response.len() - 2];
    body.chunks(4)
        .map(|c| (c[0], c[1], u16::from_be_bytes([c[2], c[3]])))
        .collect()
}

fn failed(f: PeerFailure) -> u8 {
    1 + f.index() as u8
}

/// The response's microseconds field (bytes 12..15): accept to response, in the
/// driver's virtual clock.
fn micros_of(response: &[u8]) -> u32 {
    u32::from_be_bytes([response[12], response[13], response[14], response[15]])
}

#[test]
fn every_peer_answers_and_the_command_sees_each_response_whole() {
    let mut h = fix_harness(fix_config());
    for raida in [0u8, 3, 24] {
        h.peer_scripts
            .insert(peer_addr(raida), PeerScript::Answer(peer_response(7)));
    }
    let id = h.accept();
    h.send(id, &fix_request(&[0, 3, 24]));
    let out = h.out(id).to_vec();
    assert_eq!(outcomes(&out), [(0, 0, 39), (3, 0, 39), (24, 0, 39)]);
    // Each peer got exactly its request, on one connection, and the engine closed it.
    let calls: Vec<(SocketAddr, Vec<u8>, bool)> = h
        .peer_conns()
        .map(|(_, addr, p)| (addr, p.request().to_vec(), p.is_closed()))
        .collect();
    assert_eq!(calls.len(), 3);
    for (addr, request, closed) in calls {
        let raida = (addr.port() - 50_000) as u8;
        assert_eq!(request, [b'Q', raida]);
        assert!(closed);
    }
    let c = h.engine.counters();
    assert_eq!(c.fixes_started, 1);
    assert_eq!(c.peers[&3].calls, 1);
    assert_eq!(c.peers[&3].answered, 1);
    assert_eq!(c.peers[&3].latency.count(), 1);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn a_response_is_read_exactly_as_announced_and_no_further() {
    // The response announces 12 bytes; the peer sends 4 more after them, which the
    // engine never reads (it reads exactly the announced body).
    let mut h = fix_harness(fix_config());
    let mut answer = peer_response(12);
    answer.extend_from_slice(b"more");
    h.peer_scripts
        .insert(peer_addr(1), PeerScript::Answer(answer));
    let id = h.accept();
    h.send(id, &fix_request(&[1]));
    assert_eq!(outcomes(h.out(id)), [(1, 0, 44)]);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn a_hanging_peer_costs_exactly_the_deadline() {
    let mut h = fix_harness(fix_config());
    h.peer_scripts
        .insert(peer_addr(1), PeerScript::Answer(peer_response(7)));
    h.peer_scripts.insert(peer_addr(2), PeerScript::Hang);
    h.peer_scripts.insert(peer_addr(4), PeerScript::ConnectHang);
    let id = h.accept();
    h.send(id, &fix_request(&[1, 2, 4]));
    assert!(h.out(id).is_empty(), "the fix waits for its peers");
    // While it waits, no job is out: the workers serve everything else.
    assert_eq!(h.engine.in_flight(), 0);
    assert_eq!(h.engine.fixes_in_flight(), 1);
    let snapshot = MetricsSnapshot::of(&h.engine);
    assert_eq!(snapshot.fixes_in_flight, 1);
    assert_eq!(
        snapshot.peer_connections, 2,
        "the hanging two; the answered one closed"
    );
    let other = h.accept();
    h.send(other, &Req::echo(0).bytes());
    assert_eq!(
        status_of(h.out(other)),
        250,
        "an echo is answered meanwhile"
    );
    h.hang_up(other);

    h.advance(DEADLINE - Duration::from_millis(1));
    assert!(h.out(id).is_empty(), "not before the deadline");
    h.advance(Duration::from_millis(1));
    let out = h.out(id).to_vec();
    assert_eq!(
        outcomes(&out),
        [
            (1, 0, 39),
            (2, failed(PeerFailure::Timeout), 0),
            (4, failed(PeerFailure::Timeout), 0)
        ]
    );
    assert_eq!(
        u64::from(micros_of(&out)),
        DEADLINE.as_micros() as u64,
        "answered at the deadline, not later"
    );
    assert_eq!(
        h.engine.counters().peers[&2].failures[PeerFailure::Timeout.index()],
        1
    );
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn the_deadline_runs_from_the_request_not_from_the_first_call() {
    // The fix's first half waits 3 s for a worker: its calls get what is left of the
    // one deadline, and the answer comes DEADLINE after the request arrived.
    let mut h = fix_harness(fix_config());
    h.peer_scripts.insert(peer_addr(2), PeerScript::Hang);
    h.hold_jobs(true);
    let id = h.accept();
    h.send(id, &fix_request(&[2]));
    assert_eq!(h.held_jobs(), 1);
    h.advance(Duration::from_secs(3));
    h.hold_jobs(false);
    h.complete_all();
    assert_eq!(h.engine.fixes_in_flight(), 1);
    assert_eq!(h.peer_conns().count(), 1, "the call is made");

    h.advance(DEADLINE - Duration::from_secs(3) - Duration::from_millis(1));
    assert!(h.out(id).is_empty(), "not before the deadline");
    h.advance(Duration::from_millis(1));
    let out = h.out(id).to_vec();
    assert_eq!(outcomes(&out), [(2, failed(PeerFailure::Timeout), 0)]);
    assert_eq!(
        u64::from(micros_of(&out)),
        DEADLINE.as_micros() as u64,
        "answered DEADLINE after the request, not DEADLINE after the call"
    );
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn a_fix_whose_deadline_passed_before_its_calls_could_start_calls_no_one() {
    let mut h = fix_harness(fix_config());
    h.peer_scripts.insert(peer_addr(2), PeerScript::Hang);
    h.hold_jobs(true);
    let id = h.accept();
    h.send(id, &fix_request(&[2, 3]));
    h.advance(DEADLINE);
    h.hold_jobs(false);
    h.complete_all();
    let out = h.out(id).to_vec();
    assert_eq!(
        outcomes(&out),
        [
            (2, failed(PeerFailure::Timeout), 0),
            (3, failed(PeerFailure::Timeout), 0)
        ]
    );
    assert_eq!(h.peer_conns().count(), 0, "no connection was opened");
    let c = h.engine.counters();
    assert_eq!(c.fixes_started, 0);
    assert_eq!(c.peers[&2].calls, 1);
    assert_eq!(c.peers[&2].failures[PeerFailure::Timeout.index()], 1);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn fixes_that_start_out_of_arrival_order_each_end_at_their_own_deadline() {
    // A arrives, B a second later; B's first half completes first, A's a second after
    // that. A's deadline (DEADLINE from its arrival) comes before B's although A's calls
    // started last: A is answered at its deadline, B a second later.
    let mut h = fix_harness(fix_config());
    h.peer_scripts.insert(peer_addr(2), PeerScript::Hang);
    h.hold_jobs(true);
    let a = h.accept();
    h.send(a, &fix_request(&[2]));
    h.advance(Duration::from_secs(1));
    let b = h.accept();
    h.send(b, &fix_request(&[2]));
    assert_eq!(h.held_jobs(), 2);
    h.hold_jobs(false);
    h.complete_newest();
    h.advance(Duration::from_secs(1));
    h.complete_all();
    assert_eq!(h.engine.fixes_in_flight(), 2);

    h.advance(DEADLINE - Duration::from_secs(2));
    assert!(!h.out(a).is_empty(), "A answered at its deadline");
    assert!(h.out(b).is_empty(), "B not yet");
    assert_eq!(u64::from(micros_of(h.out(a))), DEADLINE.as_micros() as u64);
    h.advance(Duration::from_secs(1));
    assert_eq!(u64::from(micros_of(h.out(b))), DEADLINE.as_micros() as u64);
    h.hang_up(a);
    h.hang_up(b);
    h.assert_no_leaks();
}

#[test]
fn garbage_refusals_resets_and_missing_addresses_give_no_response() {
    let mut h = fix_harness(fix_config());
    // Announces a body past max_peer_response (65,536): cut before reading it.
    let mut too_long = vec![0u8; 32];
    too_long[2] = 250;
    too_long[9..12].copy_from_slice(&[0x01, 0x00, 0x01]);
    h.peer_scripts
        .insert(peer_addr(1), PeerScript::Answer(too_long));
    // Closes in the middle of its header, and in the middle of its body.
    h.peer_scripts
        .insert(peer_addr(2), PeerScript::Answer(vec![0x3E; 20]));
    let mut short = peer_response(12);
    short.truncate(40);
    h.peer_scripts
        .insert(peer_addr(3), PeerScript::Answer(short));
    h.peer_scripts.insert(peer_addr(5), PeerScript::Reset);
    // 6: no script, refused. 20: no address.
    let id = h.accept();
    h.send(id, &fix_request(&[1, 2, 3, 5, 6, 20, 6]));
    assert_eq!(
        outcomes(h.out(id)),
        [
            (1, failed(PeerFailure::TooLong), 0),
            (2, failed(PeerFailure::Closed), 0),
            (3, failed(PeerFailure::Closed), 0),
            (5, failed(PeerFailure::Reset), 0),
            (6, failed(PeerFailure::Refused), 0),
            (20, failed(PeerFailure::NoAddress), 0),
            (6, failed(PeerFailure::Duplicate), 0),
        ]
    );
    // One connection per peer: 6 was called once.
    assert_eq!(h.peer_conns().count(), 5);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn past_max_fixes_the_next_fix_is_answered_160_before_calling_anyone() {
    let mut h = fix_harness(fix_config().with_peers(
        (0..25u8).map(|i| Some(peer_addr(i))).collect(),
        DEADLINE,
        2,
    ));
    h.peer_scripts.insert(peer_addr(1), PeerScript::Hang);
    let a = h.accept();
    h.send(a, &fix_request(&[1]));
    let b = h.accept();
    h.send(b, &fix_request(&[1]));
    assert_eq!(h.engine.fixes_in_flight(), 2);
    let calls_before = h.peer_conns().count();
    let c = h.accept();
    h.send(c, &fix_request(&[1]));
    assert_eq!(status_of(h.out(c)), 160);
    assert_eq!(h.out(c).len(), 32, "no body");
    assert_eq!(h.peer_conns().count(), calls_before, "nobody called");
    // A payload check still comes first: 39, not 160.
    let d = h.accept();
    h.send(d, &fix_request(&[0xFF]));
    assert_eq!(status_of(h.out(d)), 39);
    assert_eq!(h.engine.counters().fixes_refused, 1);
    h.advance(DEADLINE);
    assert_eq!(outcomes(h.out(a)), [(1, failed(PeerFailure::Timeout), 0)]);
    assert_eq!(outcomes(h.out(b)), [(1, failed(PeerFailure::Timeout), 0)]);
    // Room again: the next fix calls its peer.
    let e = h.accept();
    h.send(e, &fix_request(&[1]));
    assert_eq!(h.engine.fixes_in_flight(), 1);
    h.advance(DEADLINE);
    for id in [a, b, c, d, e] {
        h.hang_up(id);
    }
    h.assert_no_leaks();
}

#[test]
fn events_after_the_deadline_on_a_dead_peer_connection_are_dropped() {
    let mut h = fix_harness(fix_config());
    h.peer_scripts.insert(peer_addr(1), PeerScript::Hang);
    h.peer_scripts.insert(peer_addr(2), PeerScript::ConnectHang);
    let id = h.accept();
    h.send(id, &fix_request(&[1, 2]));
    let ids: Vec<_> = h.peer_conns().map(|(pid, _, _)| pid).collect();
    h.advance(DEADLINE);
    let out = h.out(id).to_vec();
    assert_eq!(outcomes(&out).len(), 2);
    // The connect completes late, readiness arrives late, errors arrive late: all
    // ignored (the ids are dead), nothing is written, nothing changes.
    let now = h.now();
    for pid in &ids {
        h.engine.handle_connected(*pid, now);
        h.engine.handle_connect_failed(*pid, now);
        h.engine.handle_peer_error(*pid, now);
        h.wake_peer(*pid);
    }
    assert!(h.engine.poll_output().is_none());
    assert_eq!(h.out(id), &out[..], "one response, unchanged");
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn a_client_gone_while_its_fix_waits_leaves_nothing_behind() {
    let mut h = fix_harness(fix_config());
    h.peer_scripts.insert(peer_addr(1), PeerScript::Hang);
    let id = h.accept();
    h.send(id, &fix_request(&[1]));
    h.reset(id);
    assert!(h.conn(id).is_closed());
    assert_eq!(h.engine.fixes_in_flight(), 1, "the calls run to their end");
    h.advance(DEADLINE);
    assert_eq!(h.engine.counters().late_completions_dropped, 1);
    h.assert_no_leaks();
}

#[test]
fn a_fix_over_udp_is_answered_by_datagram() {
    let mut h = fix_harness(fix_config());
    h.peer_scripts
        .insert(peer_addr(9), PeerScript::Answer(peer_response(17)));
    h.datagram(peer(1), &fix_request(&[9]));
    let sent = h.datagrams();
    assert_eq!(sent.len(), 1);
    assert_eq!(outcomes(&sent[0].1), [(9, 0, 49)]);
    h.assert_no_leaks();
}

#[test]
fn an_empty_plan_finishes_at_once_without_a_fix() {
    let mut h = fix_harness(fix_config());
    let id = h.accept();
    h.send(id, &fix_request(&[]));
    assert_eq!(outcomes(h.out(id)), []);
    assert_eq!(h.engine.counters().fixes_started, 0);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn a_command_on_the_engine_thread_calls_its_peers_too() {
    let mut commands = CommandRegistry::with_builtins();
    commands
        .register(GROUP, COMMAND, Arc::new(CallsPeersInline))
        .expect("free");
    let mut h = harness_with(fix_config(), commands);
    h.peer_scripts
        .insert(peer_addr(2), PeerScript::Answer(peer_response(7)));
    let id = h.accept();
    h.send(id, &fix_request(&[2]));
    assert_eq!(outcomes(h.out(id)), [(2, 0, 39)]);
    h.hang_up(id);
    h.assert_no_leaks();
}

#[test]
fn a_drain_waits_for_a_fix_and_its_answer() {
    let mut config = fix_config();
    config.drain_timeout = Duration::from_secs(10);
    let mut h = fix_harness(config);
    h.peer_scripts.insert(peer_addr(1), PeerScript::Hang);
    let id = h.accept();
    h.send(id, &fix_request(&[1]));
    h.shutdown();
    assert_eq!(
        h.engine.shutdown_status(h.now()),
        ShutdownStatus::Draining,
        "a fix waiting for its peers is work in flight"
    );
    h.advance(DEADLINE);
    assert_eq!(outcomes(h.out(id)), [(1, failed(PeerFailure::Timeout), 0)]);
    h.hang_up(id);
    assert_eq!(h.engine.shutdown_status(h.now()), ShutdownStatus::Drained);
    h.assert_no_leaks();
}

#[test]
fn a_shutdown_brings_a_fix_s_deadline_forward_so_it_answers_within_the_drain() {
    // The default drain (5 s) is shorter than the peer deadline (8 s): the fix must
    // answer from the votes it has before the drain ends, not be dropped by it.
    let mut config = fix_config();
    config.drain_timeout = Duration::from_secs(4);
    let mut h = fix_harness(config);
    h.peer_scripts
        .insert(peer_addr(1), PeerScript::Answer(peer_response(7)));
    h.peer_scripts.insert(peer_addr(2), PeerScript::Hang);
    let id = h.accept();
    h.send(id, &fix_request(&[1, 2]));
    h.advance(Duration::from_secs(1));
    h.shutdown();
    // Three quarters of the 4 s drain: 3 s after the shutdown.
    h.advance(Duration::from_secs(3) - Duration::from_millis(1));
    assert!(h.out(id).is_empty(), "not before the capped deadline");
    h.advance(Duration::from_millis(1));
    assert_eq!(
        outcomes(h.out(id)),
        [(1, 0, 39), (2, failed(PeerFailure::Timeout), 0)],
        "answered from the vote it had"
    );
    h.hang_up(id);
    assert_eq!(h.engine.shutdown_status(h.now()), ShutdownStatus::Drained);
    h.assert_no_leaks();
}

#[test]
fn a_response_larger_than_a_chunk_is_read_whole_and_one_cut_short_is_not() {
    let mut h = fix_harness(fix_config());
    h.peer_scripts
        .insert(peer_addr(1), PeerScript::Answer(peer_response(60_000)));
    // Announces 65,536 body bytes and sends 10,000.
    let mut short = peer_response(65_536);
    short.truncate(32 + 10_000);
    h.peer_scripts
        .insert(peer_addr(2), PeerScript::Answer(short));
    let id = h.accept();
    h.send(id, &fix_request(&[1, 2]));
    assert_eq!(
        outcomes(h.out(id)),
        [(1, 0, 32 + 60_000), (2, failed(PeerFailure::Closed), 0)]
    );
    h.hang_up(id);
    h.assert_no_leaks();
}
