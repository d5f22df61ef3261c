//! Operation sequences against the engine in the in-memory world: accepts, chunked
//! sends, FINs, resets, client reads, completions in any order, time steps and
//! datagrams, with every invariant of the world checked after every operation and the
//! heal-and-drain liveness check at the end. proptest shrinks a failure to a minimal
//! sequence.

use proptest::prelude::*;
use raida_client::{Coin, Keys};
use raida_sim::request::{self, ClientRequest};
use raida_sim::server::UNKNOWN_COIN;
use raida_sim::{witness, Knobs, Stats, World};

/// Requests of every encryption type, valid and not. The first two run on the
/// workers whatever the knobs (the witness on its worker, types 0 and 1).
fn requests() -> Vec<ClientRequest> {
    let worker = |enc| {
        let mut r = request::for_command(witness::GROUP, witness::ON_WORKER, enc);
        r.payload = vec![7; 5];
        r
    };
    let mut v = vec![worker(0), worker(1)];
    for enc in [0u8, 1, 2, 4, 5] {
        v.push(request::echo(enc));
        let mut version = request::for_command(0, 1, enc);
        version.payload = vec![9; 20];
        v.push(version);
        if enc > 1 {
            v.push(worker(enc));
        }
        v.push(request::for_command(witness::GROUP, witness::INLINE, enc));
    }
    let unknown = Coin::new(UNKNOWN_COIN.0, UNKNOWN_COIN.1);
    let mut bad = request::echo(0);
    bad.faults.split_id = Some(1);
    v.push(bad);
    let mut unknown1 = request::echo(1);
    unknown1.keys = Keys::Coin {
        coin: unknown,
        an: [0x77; 16],
    };
    v.push(unknown1);
    let mut unknown4 = request::echo(4);
    unknown4.keys = Keys::Coin256 {
        coin: unknown,
        an: [0x77; 16],
    };
    v.push(unknown4);
    let mut hmac = request::echo(5);
    hmac.faults.bad_hmac = true;
    v.push(hmac);
    let mut trailer = request::echo(2);
    trailer.faults.bad_trailer = true;
    v.push(trailer);
    let mut code = request::echo(0);
    code.faults.encryption_byte = Some(3);
    v.push(code);
    let mut routed = request::echo(4);
    routed.faults.routing = Some(9);
    v.push(routed);
    let mut empty = worker(2);
    empty.faults.no_body = true;
    v.push(empty);
    v.into_iter().map(ClientRequest::new).collect()
}

/// A request by its index in [`requests`].
fn nth(reqs: &[ClientRequest], i: usize) -> ClientRequest {
    reqs[i % reqs.len()].clone()
}

#[derive(Clone, Debug)]
enum Op {
    Connect { request: usize, garbage: bool },
    Send { client: usize, bytes: usize },
    Fin { client: usize },
    Reset { client: usize },
    Complete { job: usize },
    Advance { us: u64 },
    Datagram { request: usize, cut: Option<usize> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<usize>(), any::<bool>()).prop_map(|(request, garbage)| Op::Connect { request, garbage }),
        6 => (any::<usize>(), 1usize..80).prop_map(|(client, bytes)| Op::Send { client, bytes }),
        1 => any::<usize>().prop_map(|client| Op::Fin { client }),
        1 => any::<usize>().prop_map(|client| Op::Reset { client }),
        3 => any::<usize>().prop_map(|job| Op::Complete { job }),
        2 => prop_oneof![0u64..2_000, 0u64..3_000_000].prop_map(|us| Op::Advance { us }),
        1 => (any::<usize>(), proptest::option::of(0usize..120))
            .prop_map(|(request, cut)| Op::Datagram { request, cut }),
    ]
}

/// Applies `ops` to a quiet world (no faults of its own: the operations are the
/// faults); returns the first violation.
fn run(ops: &[Op], knobs: Knobs) -> Result<Stats, String> {
    let reqs = requests();
    let mut w = World::new(knobs, false);
    let mut tcp: Vec<u32> = Vec::new();
    for op in ops {
        match *op {
            Op::Connect { request, garbage } => {
                let garbage: &[u8] = if garbage { &[0xEE; 30] } else { &[] };
                tcp.push(w.connect_scripted(nth(&reqs, request), garbage));
            }
            Op::Send { client, bytes } if !tcp.is_empty() => {
                w.send(tcp[client % tcp.len()], bytes);
            }
            Op::Fin { client } if !tcp.is_empty() => w.fin(tcp[client % tcp.len()]),
            Op::Reset { client } if !tcp.is_empty() => w.reset(tcp[client % tcp.len()]),
            Op::Complete { job } => w.complete_nth(job),
            Op::Advance { us } => w.advance(us),
            Op::Datagram { request, cut } => {
                let cid = w.add_udp_client(nth(&reqs, request), cut);
                w.udp_send(cid);
            }
            _ => {}
        }
        w.step();
        if let Some(v) = w.violation() {
            return Err(format!("{} (t={})", v.what, v.at));
        }
    }
    w.finish()
        .map(|()| w.stats.clone())
        .map_err(|v| format!("{} (t={})", v.what, v.at))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_operation_sequence_keeps_every_invariant(ops in prop::collection::vec(op(), 1..60)) {
        let result = run(&ops, Knobs::quiet(0));
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }

    #[test]
    fn any_sequence_with_one_slot_of_admission_and_two_connections(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let knobs = Knobs {
            mod_queue_size: 1,
            max_connections: 2,
            socket_timeout_us: 50_000,
            linger_us: 10_000,
            ..Knobs::quiet(1)
        };
        let result = run(&ops, knobs);
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}

#[test]
fn a_late_completion_for_a_reused_slot_is_dropped() {
    // The sequence the reused-slot mutant fails: a job out, its peer resets, a new
    // connection takes the slot and completes its own request, then the old job ends.
    let ops = [
        Op::Connect {
            request: 0,
            garbage: false,
        },
        Op::Send {
            client: 0,
            bytes: 200,
        },
        Op::Reset { client: 0 },
        Op::Connect {
            request: 1,
            garbage: false,
        },
        Op::Send {
            client: 1,
            bytes: 200,
        },
        Op::Complete { job: 0 },
        Op::Complete { job: 0 },
    ];
    let stats = run(&ops, Knobs::quiet(2)).map_err(|e| e.to_string());
    let stats = stats
        .as_ref()
        .map(|s| (s.jobs, s.late_completions, s.tcp_responses));
    assert_eq!(stats, Ok((2, 1, 1)), "(jobs, late completions, responses)");
}
