//! Operation sequences against the engine in the in-memory world: accepts, chunked
//! sends, FINs, resets, client reads, completions in any order, time steps and
//! datagrams, with every invariant of the world checked after every operation and the
//! heal-and-drain liveness check at the end. proptest shrinks a failure to a minimal
//! sequence.

use proptest::prelude::*;
use raida_sim::request::{Req, Spoil};
use raida_sim::server::UNKNOWN_COIN;
use raida_sim::{Knobs, World};

/// Requests of every encryption type, valid and not.
fn requests() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for enc in [0u8, 1, 2, 4, 5] {
        v.push(Req::echo(enc).bytes());
        let mut r = Req::echo(enc);
        r.command = 1;
        r.payload = vec![9; 20];
        v.push(r.bytes());
    }
    let mut bad = Req::echo(0);
    bad.split = 1;
    v.push(bad.bytes());
    let mut unknown = Req::echo(1);
    unknown.coin = UNKNOWN_COIN;
    v.push(unknown.bytes());
    let mut unknown4 = Req::echo(4);
    unknown4.coin = UNKNOWN_COIN;
    v.push(unknown4.bytes());
    let mut hmac = Req::echo(5);
    hmac.spoil = Spoil::Hmac;
    v.push(hmac.bytes());
    let mut trailer = Req::echo(2);
    trailer.spoil = Spoil::Trailer;
    v.push(trailer.bytes());
    let mut code = Req::echo(3);
    code.encryption = 3;
    v.push(code.bytes());
    let mut routed = Req::echo(4);
    routed.routing = 9;
    v.push(routed.bytes());
    v
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
fn run(ops: &[Op], knobs: Knobs) -> Result<(), String> {
    let reqs = requests();
    let mut w = World::new(knobs, false);
    let mut tcp: Vec<u32> = Vec::new();
    for op in ops {
        match *op {
            Op::Connect { request, garbage } => {
                let mut stream = reqs[request % reqs.len()].clone();
                if garbage {
                    stream.extend_from_slice(&[0xEE; 30]);
                }
                tcp.push(w.connect_scripted(stream));
            }
            Op::Send { client, bytes } if !tcp.is_empty() => {
                w.send(tcp[client % tcp.len()], bytes);
            }
            Op::Fin { client } if !tcp.is_empty() => w.fin(tcp[client % tcp.len()]),
            Op::Reset { client } if !tcp.is_empty() => w.reset(tcp[client % tcp.len()]),
            Op::Complete { job } => w.complete_nth(job),
            Op::Advance { us } => w.advance(us),
            Op::Datagram { request, cut } => {
                let mut d = reqs[request % reqs.len()].clone();
                if let Some(c) = cut {
                    d.truncate(c);
                }
                let cid = w.add_udp_client(d.clone());
                w.udp_send(cid, d);
            }
            _ => {}
        }
        w.step();
        if let Some(v) = w.violation() {
            return Err(format!("{} (t={})", v.what, v.at));
        }
    }
    w.finish().map_err(|v| format!("{} (t={})", v.what, v.at))
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
            request: 5,
            garbage: false,
        },
        Op::Send {
            client: 0,
            bytes: 200,
        },
        Op::Reset { client: 0 },
        Op::Connect {
            request: 6,
            garbage: false,
        },
        Op::Send {
            client: 1,
            bytes: 200,
        },
        Op::Complete { job: 0 },
        Op::Complete { job: 0 },
    ];
    assert_eq!(run(&ops, Knobs::quiet(2)), Ok(()));
}
