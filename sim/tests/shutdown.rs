//! The shutdown phase in scripted worlds: a request accepted before the shutdown is
//! answered while later connects are refused by the kernel, and the run ends with the
//! engine's `Drained`; a connection that outlives the drain timeout ends it with
//! `TimedOut` at the deadline, not before. The swarm's band covers both endings.

use raida_sim::request::{self, ClientRequest};
use raida_sim::{run_seed, seed_from_env, witness, Knobs, World};

/// A request whose job goes to the workers (held until the test completes it).
fn on_worker() -> ClientRequest {
    let mut r = request::for_command(witness::GROUP, witness::ON_WORKER, 1);
    r.payload = vec![3; 8];
    ClientRequest::new(r)
}

#[test]
fn a_request_accepted_before_the_shutdown_is_answered_and_the_drain_ends() {
    let mut w = World::new(Knobs::quiet(10), false);
    let first = w.connect_scripted(on_worker(), &[]);
    w.send(first, 1_000);
    w.step();
    w.shutdown();
    // The listener is closed: the kernel refuses this one.
    let _late = w.connect_scripted(on_worker(), &[]);
    w.complete_nth(0);
    w.advance(1_000_000);
    let result = w.finish();
    assert_eq!(result, Ok(()), "{:?}", w.violation());
    let s = &w.stats;
    assert_eq!(
        (
            s.accepted,
            s.tcp_responses,
            s.shutdowns,
            s.drained,
            s.drain_timeouts,
            s.kernel_resets
        ),
        (1, 1, 1, 1, 0, 1),
        "(accepted, responses, shutdowns, drained, timed out, kernel refusals)"
    );
}

#[test]
fn a_connection_that_outlives_the_drain_timeout_ends_it_at_the_deadline() {
    let knobs = Knobs {
        drain_timeout_us: 100_000,
        ..Knobs::quiet(11)
    };
    let mut w = World::new(knobs, false);
    // Accepted, and silent: only its 2 s socket timeout would close it.
    let _silent = w.connect_scripted(on_worker(), &[]);
    w.shutdown();
    let asked = raida_sim::START_US;
    w.advance(99_000);
    assert_eq!(w.stats.drain_timeouts, 0, "not before the deadline");
    w.advance(2_000);
    assert_eq!(w.stats.drain_timeouts, 1, "at the deadline");
    assert_eq!(w.finish(), Ok(()), "{:?}", w.violation());
    assert!(w.stats.end_us >= asked + 100_000);
}

#[test]
fn the_band_ends_shutdowns_both_ways() {
    let start = seed_from_env();
    let (mut drained, mut timed_out) = (0, 0);
    for seed in start..start + 200 {
        if let Ok(stats) = run_seed(seed) {
            drained += stats.drained;
            timed_out += stats.drain_timeouts;
        }
    }
    assert!(
        drained > 5 && timed_out > 5,
        "{drained} drained, {timed_out} timed out"
    );
}
