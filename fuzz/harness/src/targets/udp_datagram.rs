//! The `udp_datagram` target: datagrams of any length through the engine's UDP path,
//! driven by `raida_testkit::Driver` (jobs held by its worker and run as the mode says).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use raida_core::codec::answer_datagram;
use raida_core::{Engine, Origin, Timestamp};
use raida_testkit::Driver;

use crate::model;
use crate::targets::feed_random;
use crate::world::{commands, engine_config, keys, rules, RANDOM};

/// The engine's UDP path. Layout: one mode byte (`% 4 + 1` = `mod_queue_size`; bit 2:
/// hold jobs and run them only when admission is full or at the end; bit 3: run held
/// jobs newest first; bit 4: random bytes at hand, so cheap requests are answered
/// inline), then datagrams, each a 2-byte big-endian length and that many
/// bytes (the last one cut short by the end of the input). Every datagram comes from
/// its own peer; its response must equal [`answer_datagram`] on the bytes the engine
/// keeps (`udp_payload_threshold`), exactly once, or nothing when that is `None`.
pub fn udp_datagram(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut config = engine_config();
    config.mod_queue_size = usize::from(mode % 4) + 1;
    let threshold = config.udp_payload_threshold;
    let queue = config.mod_queue_size;
    let hold = mode & 4 != 0;
    let newest_first = mode & 8 != 0;
    let random_at_hand = mode & 16 != 0;
    let engine = Engine::new(config, commands(), Arc::new(keys()));
    let now = Timestamp::from_micros(5_000_000);
    let mut h = Driver::new(engine, now, RANDOM);
    h.hold_jobs(true);
    let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut pacing = Pacing {
        queue,
        hold,
        newest_first,
        paused: false,
        resumes_seen: 0,
    };

    let mut index: u16 = 0;
    while !rest.is_empty() {
        // A 2-byte length and the datagram; a last lone byte is a 1-byte datagram.
        let (datagram, tail) = match rest {
            [a, b, body @ ..] => {
                let len = usize::from(u16::from_be_bytes([*a, *b])).min(body.len());
                body.split_at(len)
            }
            _ => (rest, &[][..]),
        };
        rest = tail;
        let peer = SocketAddr::from(([10, 0, 0, 1], index));
        index = index.wrapping_add(1);
        if index == 0 {
            break;
        }
        assert!(
            h.engine.wants_datagrams(),
            "the driver reads only while wanted"
        );
        if random_at_hand {
            feed_random(&mut h);
        }
        // The driver's hint for the batch it read first (a batch of one here): any
        // bytes must leave it without a panic and without an effect on the answer.
        h.engine.prefetch_datagrams([datagram]);
        h.datagram(peer, datagram);
        assert_eq!(h.udp.unread(), 0, "a wanted datagram was not read");
        pacing.settle(&mut h, false);
        sent.push((peer, datagram.to_vec()));
    }
    pacing.settle(&mut h, true);
    assert_eq!(h.held_jobs(), 0);
    assert!(
        h.engine.is_idle(),
        "engine not idle after every job completed"
    );
    assert!(h.engine.wants_datagrams());

    let mut got: BTreeMap<SocketAddr, Vec<Vec<u8>>> = BTreeMap::new();
    for (peer, bytes) in h.datagrams() {
        got.entry(*peer).or_default().push(bytes.clone());
    }
    let mut dropped = 0;
    let (rules, commands, store) = (rules(), commands(), keys());
    for (peer, datagram) in &sent {
        let kept = &datagram[..datagram.len().min(threshold)];
        let expected = answer_datagram(kept, &rules, &commands, &store, now, 0, &RANDOM);
        let responses = got.remove(peer).unwrap_or_default();
        match expected {
            None => {
                dropped += 1;
                assert!(
                    responses.is_empty(),
                    "answered a datagram that must be dropped"
                );
            }
            Some(expected) => {
                assert_eq!(responses.len(), 1, "one datagram in, one out");
                assert_eq!(responses[0], expected, "engine and codec disagree");
            }
        }
        model::check(kept, got_first(&responses), 0, &RANDOM);
    }
    assert!(
        got.is_empty(),
        "a response went to a peer that sent nothing"
    );
    assert_eq!(h.engine.counters().udp_dropped, dropped);
}

/// When the held jobs run, and the checks made after every input.
struct Pacing {
    queue: usize,
    hold: bool,
    newest_first: bool,
    /// The driver stopped reading because the engine wanted no datagrams.
    paused: bool,
    /// `Output::ResumeDatagrams` seen so far.
    resumes_seen: usize,
}

impl Pacing {
    /// Checks the bounds, then runs held jobs (one at a time, each completion driven
    /// to idle and checked again) while they must run: always unless jobs are held,
    /// when admission is full, or at the end (`run_all`).
    fn settle(&mut self, h: &mut Driver, run_all: bool) {
        loop {
            if h.resumed_datagrams > self.resumes_seen {
                self.resumes_seen = h.resumed_datagrams;
                self.paused = false;
            }
            assert!(
                h.closes.is_empty() && h.stopped_listening == 0 && h.resumed_accepting == 0,
                "a UDP-only engine emitted a connection or listener output"
            );
            // Bounds: jobs out never exceed mod_queue_size; every one is held here.
            assert_eq!(
                h.held_jobs(),
                h.engine.in_flight(),
                "jobs out vs. in flight"
            );
            assert!(
                h.engine.in_flight() <= self.queue,
                "more jobs out than mod_queue_size"
            );
            // A driver stops reading while wants_datagrams is false and starts again
            // only on ResumeDatagrams: room must never free without one.
            if h.engine.wants_datagrams() {
                assert!(
                    !self.paused,
                    "admission has room again but no ResumeDatagrams came"
                );
            } else {
                self.paused = true;
            }
            let must_run = run_all || !self.hold || !h.engine.wants_datagrams();
            if !must_run {
                return;
            }
            let ran = if self.newest_first {
                h.complete_newest()
            } else {
                h.complete_oldest()
            };
            let Some(origin) = ran else { return };
            assert!(matches!(origin, Origin::Udp(_)));
        }
    }
}

fn got_first(responses: &[Vec<u8>]) -> Option<&[u8]> {
    responses.first().map(Vec::as_slice)
}
