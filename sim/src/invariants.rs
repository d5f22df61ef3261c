//! The invariants (DESIGN.md): the safety checks after every step, the judgement of
//! every close and every response against the codec's independent answer, and the
//! liveness checks after the heal-and-drain. The first violation stops the run.

use std::fmt::Write as _;
use std::net::SocketAddr;

use raida_core::codec::Arrival;
use raida_core::{AcceptStop, ShutdownStatus, Timestamp, Transport};

use crate::kernel::{tcp_peer, udp_cid, Accepted};
use crate::oracle::elapsed;
use crate::server;
use crate::witness::{self, Context};
use crate::world::World;

/// The first broken invariant of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Simulated time, microseconds.
    pub at: u64,
    /// What broke.
    pub what: String,
}

/// Why the engine closed a connection, as the world judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer reset it (the engine was told of the error).
    PeerReset,
    /// The peer closed before its request was complete.
    Abandoned,
    /// The response was out and the peer closed its side.
    AfterEof,
    /// The response was out and the linger deadline passed.
    Linger,
    /// The request did not arrive within the socket timeout.
    ReadTimeout,
    /// The response was not written within the socket timeout.
    WriteTimeout,
}

impl CloseReason {
    /// Its name in the trace and the totals.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::PeerReset => "peer reset",
            CloseReason::Abandoned => "abandoned",
            CloseReason::AfterEof => "after eof",
            CloseReason::Linger => "linger",
            CloseReason::ReadTimeout => "read timeout",
            CloseReason::WriteTimeout => "write timeout",
        }
    }
}

/// Bytes as lowercase hex, for messages.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

impl World {
    /// Records the first violation (later ones are consequences).
    pub(crate) fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.log(None, || format!("VIOLATION {what}"));
            self.violation = Some(Violation { at: self.now, what });
        }
    }

    /// The safety checks after every step: jobs in flight within `mod_queue_size`
    /// and equal to what the workers hold, connections within `max_connections` and
    /// equal to what the kernel has open; after a shutdown, the drain's status.
    pub(crate) fn check(&mut self) {
        if self.stopped.is_some() {
            // The driver has stopped: the engine is frozen, the kernel is not.
            return;
        }
        self.check_counts();
        if self.violation.is_none() {
            self.check_drain();
        }
    }

    fn check_counts(&mut self) {
        let e = &self.engine;
        let (in_flight, conns) = (e.in_flight(), e.connection_count());
        if in_flight > self.knobs.mod_queue_size {
            self.violate(format!(
                "in-flight bound: {in_flight} jobs in flight, mod_queue_size {}",
                self.knobs.mod_queue_size
            ));
        } else if in_flight != self.jobs.len() {
            self.violate(format!(
                "the engine counts {in_flight} jobs in flight, the workers hold {}",
                self.jobs.len()
            ));
        } else if conns > self.knobs.max_connections {
            self.violate(format!(
                "{conns} connections open, max_connections {}",
                self.knobs.max_connections
            ));
        } else if conns != self.kernel.open {
            self.violate(format!(
                "the engine holds {conns} connections, the kernel has {} open",
                self.kernel.open
            ));
        } else if (e.counters().accepted, e.counters().refused)
            != (self.stats.accepted, self.stats.refused)
        {
            let c = e.counters();
            self.violate(format!(
                "the engine counts {} accepted and {} refused, the driver was handed {} and {}",
                c.accepted, c.refused, self.stats.accepted, self.stats.refused
            ));
        }
    }

    /// The accounting of one run of the engine's accept loop over the simulated
    /// listener: every connection the listener gave up reached the driver, at most
    /// `turn_budget` of them; the loop's reason to stop is true (drained: the queue is
    /// empty; paused: the listener said EMFILE, and every EMFILE so far made
    /// one pause; budget: exactly `turn_budget` accepted); not accepting means paused,
    /// with the listener untouched and the pause's end among the engine's deadlines.
    pub(crate) fn check_accept_loop(
        &mut self,
        stop: AcceptStop,
        calls: usize,
        conns: usize,
        last: Option<Accepted>,
        handed: usize,
    ) {
        let budget = self.knobs.turn_budget;
        let pauses = self.engine.counters().accept_pauses;
        let queued = self.kernel.backlog.len();
        let wrong = if self.shutdown.is_some()
            && (calls > 0 || handed > 0 || stop != AcceptStop::NotAccepting)
        {
            Some(format!(
                "after the shutdown: {calls} accepts, {handed} connections, stopped {stop:?}"
            ))
        } else if handed != conns {
            Some(format!(
                "the listener gave up {conns} connections, the driver was handed {handed}"
            ))
        } else if conns > budget {
            Some(format!(
                "{conns} accepted in one loop, turn_budget {budget}"
            ))
        } else if pauses != self.kernel.exhaustions {
            Some(format!(
                "{} EMFILE reports from the listener, {pauses} accept pauses",
                self.kernel.exhaustions
            ))
        } else {
            match stop {
                AcceptStop::Drained if queued > 0 => Some(format!(
                    "stopped as drained with {queued} connections still queued (the listener \
                     last said {last:?})"
                )),
                AcceptStop::Paused { .. } if last != Some(Accepted::Exhausted) => {
                    Some(format!("paused after {last:?}"))
                }
                AcceptStop::Budget if conns != budget => Some(format!(
                    "stopped at the budget after {conns} of {budget} accepts"
                )),
                AcceptStop::NotAccepting if calls > 0 || self.engine.poll_timeout().is_none() => {
                    Some(format!(
                        "not accepting, after {calls} accepts, next deadline {:?}",
                        self.engine.poll_timeout()
                    ))
                }
                _ => None,
            }
        };
        if let Some(what) = wrong {
            self.violate(format!("accept loop: {what}"));
        }
    }

    /// Invariant 8, after every step once the shutdown is asked: the engine reports
    /// `Drained` exactly when it holds nothing (no connection, job, waiting job, load
    /// or parked request) and the world agrees (no connection open in the kernel, no
    /// job at the workers, no datagram read before the shutdown still unanswered);
    /// `TimedOut` only from the drain deadline on, and from then on whenever something
    /// is left; while draining, the deadline is among the engine's deadlines. Before
    /// the shutdown: `Running`. `Drained` and `TimedOut` stop the driver.
    fn check_drain(&mut self) {
        let status = self.engine.shutdown_status(self.ts());
        let Some(shutdown) = self.shutdown else {
            if status != ShutdownStatus::Running {
                self.violate(format!("shutdown status {status:?} with no shutdown asked"));
            }
            return;
        };
        let e = &self.engine;
        let held = [
            ("connections", e.connection_count()),
            ("jobs in flight", e.in_flight()),
            ("waiting jobs", e.waiting()),
            ("long jobs", e.long_in_flight()),
            ("page loads", e.loads_in_flight()),
            ("parked requests", e.parked()),
            ("kernel connections", self.kernel.open),
            ("worker jobs", self.jobs.len()),
            (
                "unanswered datagrams",
                self.udp_pending.values().map(Vec::len).sum(),
            ),
        ];
        let holds: Vec<String> = held
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let timer = e.poll_timeout().map(Timestamp::as_micros);
        let (now, deadline) = (self.now, shutdown.deadline);
        let wrong = match status {
            ShutdownStatus::Running => Some("running after the shutdown".to_string()),
            ShutdownStatus::Drained if !holds.is_empty() => {
                Some(format!("drained, still holding {}", holds.join(", ")))
            }
            ShutdownStatus::TimedOut if now < deadline => {
                Some(format!("timed out before the deadline {deadline}"))
            }
            ShutdownStatus::TimedOut if holds.is_empty() => {
                Some("timed out holding nothing".to_string())
            }
            ShutdownStatus::Draining if holds.is_empty() => {
                Some("still draining, holding nothing".to_string())
            }
            ShutdownStatus::Draining if now >= deadline => {
                Some(format!("still draining at the deadline {deadline}"))
            }
            ShutdownStatus::Draining if timer.map_or(true, |t| t > deadline) => Some(format!(
                "the drain deadline {deadline} is not among the engine's deadlines (next {timer:?})"
            )),
            _ => None,
        };
        if let Some(what) = wrong {
            return self.violate(format!(
                "shutdown at {}: {what} (status {status:?})",
                shutdown.at
            ));
        }
        if matches!(status, ShutdownStatus::Drained | ShutdownStatus::TimedOut) {
            self.stop(status);
        }
    }

    /// A job was handed out: admission must still be within `mod_queue_size`.
    pub(crate) fn check_job_started(&mut self) {
        if self.engine.in_flight() > self.knobs.mod_queue_size {
            let n = self.engine.in_flight();
            self.violate(format!(
                "in-flight bound: a job started with {n} in flight, mod_queue_size {}",
                self.knobs.mod_queue_size
            ));
        }
    }

    /// A refusal (160) must come only at `max_connections`, with the refusal's bytes.
    pub(crate) fn check_refusal(&mut self, bytes: &[u8], open_then: usize) {
        if open_then < self.knobs.max_connections {
            self.violate(format!("refused with only {open_then} connections open"));
        }
        if bytes != server::refusal() {
            self.violate(format!("refusal bytes {}", hex(bytes)));
        }
    }

    /// The response written so far on socket `sid` must be a prefix of the codec's
    /// answer to its request, and may only start once the request is complete.
    pub(crate) fn check_written(&mut self, sid: usize) {
        if self.kernel.pipes[sid].expected.is_none() {
            let p = &self.kernel.pipes[sid];
            let cid = p.cid;
            let (Some(done), Some(len)) = (p.done_at, p.extent.request) else {
                let what = format!(
                    "client {cid}: response written before the request was complete \
                     ({} bytes read)",
                    p.read_total
                );
                return self.violate(what);
            };
            let built = p.job_run_at.unwrap_or(done);
            let elapsed = elapsed(p.accepted_at, built);
            let random = server::job_random(self.knobs.seed, cid);
            let arrival = Arrival {
                peer: tcp_peer(cid),
                transport: Transport::Tcp,
                at: Timestamp::from_micros(done),
            };
            let stream = &self.clients[cid as usize].stream;
            let expected = self
                .oracle
                .answer(&stream[..len], &arrival, elapsed, &random);
            self.kernel.pipes[sid].expected = Some(expected.unwrap_or_default());
        }
        let p = &self.kernel.pipes[sid];
        let expected = p.expected.as_deref().unwrap_or(&[]);
        if !expected.starts_with(&p.written) {
            let hlen = self.clients[p.cid as usize]
                .request
                .built
                .response_header_len();
            if is_whole_response(&p.written, hlen) {
                // A wrong context names the bug better than the bytes do.
                self.check_context_tcp(sid);
                if self.violation.is_some() {
                    return;
                }
            }
            let p = &self.kernel.pipes[sid];
            let expected = p.expected.as_deref().unwrap_or(&[]);
            let what = format!(
                "client {}: response differs from the codec's answer\n  fields   {:?}\n  \
                 request  {}\n  written  {}\n  expected {}",
                p.cid,
                self.clients[p.cid as usize].request.request,
                hex(&self.clients[p.cid as usize].stream[..p.extent.request.unwrap_or(0)]),
                hex(&p.written),
                hex(expected)
            );
            self.violate(what);
        }
    }

    /// The engine shuts down the write side of socket `sid`: once, before the close,
    /// and only after the whole response. False when that broke an invariant.
    pub(crate) fn check_shutdown(&mut self, sid: usize) -> bool {
        let p = &self.kernel.pipes[sid];
        let cid = p.cid;
        if p.server_closed {
            self.violate(format!("client {cid}: shutdown after close"));
            return false;
        }
        if p.shutdown_at.is_some() {
            self.violate(format!("client {cid}: write side shut down twice"));
            return false;
        }
        if p.expected.as_deref() != Some(&p.written[..]) {
            let what = format!(
                "client {cid}: shut down after {} bytes, the response has {}",
                p.written.len(),
                p.expected.as_ref().map_or(0, Vec::len)
            );
            self.violate(what);
            return false;
        }
        true
    }

    /// Why the engine may close socket `sid` now; `None` (after a violation) when it
    /// may not: closed twice, or before the peer, a deadline or the response allow it.
    pub(crate) fn judge_close(&mut self, sid: usize) -> Option<CloseReason> {
        let timeout = self.knobs.socket_timeout_us;
        let p = &self.kernel.pipes[sid];
        let cid = p.cid;
        if p.server_closed {
            self.violate(format!("client {cid}: connection closed twice"));
            return None;
        }
        let now = self.now;
        let reason = if p.error_delivered {
            Ok(CloseReason::PeerReset)
        } else if let Some(shut) = p.shutdown_at {
            if p.eof_delivered {
                Ok(CloseReason::AfterEof)
            } else if now >= shut + self.knobs.linger_us {
                Ok(CloseReason::Linger)
            } else {
                Err("closed while lingering, before the peer's eof or the linger deadline")
            }
        } else if p.done_at.is_none() {
            if p.eof_delivered {
                Ok(CloseReason::Abandoned)
            } else if now >= p.accepted_at + timeout {
                Ok(CloseReason::ReadTimeout)
            } else {
                Err("closed before the socket timeout while reading the request")
            }
        } else if let Some(ready) = p.ready_at {
            if now >= ready + timeout {
                Ok(CloseReason::WriteTimeout)
            } else {
                Err("closed before the whole response was written or the write timeout")
            }
        } else {
            Err("closed a complete request before its response (the job's time is not the peer's)")
        };
        match reason {
            Ok(r) => Some(r),
            Err(what) => {
                let what = format!(
                    "client {cid}: {what} (accepted at {}, read {} of {:?}, done {:?}, \
                     ready {:?}, eof {}, timeout {timeout})",
                    p.accepted_at,
                    p.read_total,
                    p.extent.request,
                    p.done_at,
                    p.ready_at,
                    p.eof_delivered
                );
                self.violate(what);
                None
            }
        }
    }

    /// A completion for a closed connection must be dropped by the engine.
    pub(crate) fn check_late_dropped(&mut self, cid: u32, before: u64) {
        if self.engine.counters().late_completions_dropped == before {
            self.violate(format!(
                "client {cid}: a completion for a closed connection was not dropped"
            ));
        }
    }

    /// Invariant 6 for the whole response written on socket `sid`.
    pub(crate) fn check_context_tcp(&mut self, sid: usize) {
        let p = &self.kernel.pipes[sid];
        let (cid, Some(done)) = (p.cid, p.done_at) else {
            return;
        };
        let written = std::mem::take(&mut self.kernel.pipes[sid].written);
        self.check_context(cid, &written, tcp_peer(cid), Transport::Tcp, &[done]);
        self.kernel.pipes[sid].written = written;
    }

    /// Invariant 6 for a response datagram to `peer`, before it is matched to one of
    /// the datagrams `peer` sent.
    pub(crate) fn check_context_udp(&mut self, peer: SocketAddr, bytes: &[u8]) {
        let Some(cid) = udp_cid(peer) else {
            return;
        };
        let arrivals: Vec<u64> = self
            .udp_pending
            .get(&peer)
            .map_or(Vec::new(), |l| l.iter().map(|(_, at)| *at).collect());
        self.check_context(cid, bytes, peer, Transport::Udp, &arrivals);
    }

    /// Invariant 6: every handler sees exactly its own request's context. For a
    /// client whose request the server got as built (without faults, or with no body
    /// at all), its response must pass the client library's verifier; when it answers
    /// a witness with SUCCESS, the context the handler wrote down must be exactly the
    /// one the client's own fields, its address, the transport and the arrival time
    /// (one of `arrivals`, the times the world delivered the request whole) predict.
    /// Independent of core's code: the expectation comes from the client's side alone.
    fn check_context(
        &mut self,
        cid: u32,
        bytes: &[u8],
        peer: SocketAddr,
        transport: Transport,
        arrivals: &[u64],
    ) {
        let c = &self.clients[cid as usize];
        let req = &c.request;
        let mut faults = req.request.faults;
        // A request without a body is intact too.
        faults.no_body = false;
        if !c.intact || faults != raida_client::Faults::default() {
            return;
        }
        // Only printed when something is wrong.
        let who = || {
            format!(
                "client {cid} ({transport:?}, type {}, {:?})",
                req.request.encryption().byte(),
                (req.request.group, req.request.command)
            )
        };
        // Without a body there is no challenge: a 32-byte SUCCESS carries a zero
        // signature (PROTOCOL.md section 5); the client's verifier expects exactly that
        // for a request built with no body.
        let response = match req.built.parse_response(bytes) {
            Ok(r) => r,
            Err(e) => {
                let what = format!(
                    "context: {}: the client's verifier rejects its response: {e}\n  \
                     response {}",
                    who(),
                    hex(bytes)
                );
                return self.violate(what);
            }
        };
        if !response.header.is_success()
            || !witness::is_witness(req.request.group, req.request.command)
        {
            return;
        }
        let Some(saw) = Context::decode(&response.body) else {
            let what = format!(
                "context: {}: the witness's output does not decode: {}",
                who(),
                hex(&response.body)
            );
            return self.violate(what);
        };
        let Some(&first) = arrivals.first() else {
            // No datagram of this peer awaits an answer: the oracle's match says so.
            return;
        };
        let arrived = if arrivals.contains(&saw.arrived_us) {
            saw.arrived_us
        } else {
            first
        };
        let Some(own) = Context::expected(&req.request, peer, transport, arrived) else {
            let what = format!(
                "context: {}: a witness ran for a request without a body",
                who()
            );
            return self.violate(what);
        };
        let diffs = saw.differences(&own);
        if !diffs.is_empty() {
            let what = format!(
                "context: {}: its handler saw another request's context\n  {}",
                who(),
                diffs.join("\n  ")
            );
            return self.violate(what);
        }
        self.stats.contexts_checked += 1;
    }

    /// A response datagram to `peer` must be the codec's answer to one of the
    /// datagrams `peer` sent that are still unanswered; that one is answered now.
    /// Returns the client.
    pub(crate) fn match_datagram(&mut self, peer: SocketAddr, bytes: &[u8]) -> Option<u32> {
        let Some(cid) = udp_cid(peer) else {
            self.violate(format!("datagram to unknown peer {peer}"));
            return None;
        };
        let random = server::job_random(self.knobs.seed, cid);
        let pending = self.udp_pending.get(&peer).map_or(&[][..], Vec::as_slice);
        let found = pending.iter().position(|(kept, at)| {
            let arrival = Arrival {
                peer,
                transport: Transport::Udp,
                at: Timestamp::from_micros(*at),
            };
            let elapsed = elapsed(*at, self.now);
            self.oracle
                .answer(kept, &arrival, elapsed, &random)
                .as_deref()
                == Some(bytes)
        });
        match found {
            Some(i) => {
                if let Some(list) = self.udp_pending.get_mut(&peer) {
                    list.remove(i);
                }
                Some(cid)
            }
            None => {
                let pending = self.udp_pending.get(&peer).map_or(&[][..], Vec::as_slice);
                let what = format!(
                    "client {cid}: datagram response matches no request of its peer \
                     ({} pending)\n  fields   {:?}\n  response {}\n  first request {}",
                    pending.len(),
                    self.clients[cid as usize].request.request,
                    hex(bytes),
                    pending.first().map_or(String::new(), |(k, _)| hex(k))
                );
                self.violate(what);
                None
            }
        }
    }

    /// The liveness checks after the heal-and-drain: the engine is idle, the
    /// listener's and the UDP socket's queues are empty, every datagram was answered,
    /// every connection closed, and every reading client read its whole response.
    /// After a shutdown the listener's and the UDP socket's queues went with them; a
    /// drain that timed out leaves what the engine still held to the process's exit
    /// (the per-step check saw it only at the deadline), so only what was written is
    /// checked then.
    pub(crate) fn final_checks(&mut self) {
        if self.shutdown.is_some() && self.stopped.is_none() {
            return self.violate("liveness: the shutdown never ended its drain".into());
        }
        let timed_out = self.stopped == Some(ShutdownStatus::TimedOut);
        if !timed_out && !self.engine.is_idle() {
            let e = &self.engine;
            let what = format!(
                "liveness: engine not idle after the drain: {} connections, {} in flight, \
                 {} waiting, next deadline {:?}",
                e.connection_count(),
                e.in_flight(),
                e.waiting(),
                e.poll_timeout()
            );
            return self.violate(what);
        }
        if !timed_out && !self.kernel.backlog.is_empty() {
            let n = self.kernel.backlog.len();
            return self.violate(format!(
                "liveness: {n} connections never accepted from the listener's queue"
            ));
        }
        if !timed_out && !self.kernel.udp_queue.is_empty() {
            let n = self.kernel.udp_queue.len();
            return self.violate(format!("liveness: {n} datagrams never read"));
        }
        let unanswered = self.udp_pending.iter().find(|(_, l)| !l.is_empty());
        if let Some((peer, list)) = unanswered.filter(|_| !timed_out) {
            let what = format!(
                "liveness: {} datagram(s) from {peer} never answered (first: {})",
                list.len(),
                hex(&list[0].0)
            );
            return self.violate(what);
        }
        for (sid, p) in self.kernel.pipes.iter().enumerate() {
            let c = &self.clients[p.cid as usize];
            if p.conn.is_some() && !p.server_closed {
                let what = format!(
                    "liveness: connection of client {} (socket {sid}) never closed",
                    p.cid
                );
                return self.violate(what);
            }
            if c.behaviour.reads
                && !c.reset
                && p.shutdown_at.is_some()
                && !p.rst_destroyed
                && c.received != p.written
            {
                let what = format!(
                    "client {} read {} of the {} response bytes written",
                    p.cid,
                    c.received.len(),
                    p.written.len()
                );
                return self.violate(what);
            }
        }
    }
}

/// Whether `bytes` is one whole response with a header of `header_len` bytes: the
/// header and the body it declares.
fn is_whole_response(bytes: &[u8], header_len: usize) -> bool {
    bytes.len() >= header_len && bytes.len() == header_len + raida_client::declared_body_len(bytes)
}
