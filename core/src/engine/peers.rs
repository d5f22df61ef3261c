//! Outbound peer calls: the engine's own sub-machine for requests whose command calls
//! other RAIDA servers before it answers (PROTOCOL.md 8b, "The peer call").
//!
//! A *fix* is one such request waiting for its peers. It holds no worker: its job
//! ended when the command returned its plan, and a new job runs the command's
//! `finish` once every call has ended. Each call is one outbound TCP connection, named
//! like inbound ones by slab index and generation ([`PeerConnId`]); the engine emits
//! [`Output::Connect`], the driver performs the non-blocking connect and reports it
//! ([`Engine::handle_connected`], [`Engine::handle_connect_failed`]), and
//! [`Engine::service_peer`] moves the bytes over the same [`ConnSocket`] trait as
//! inbound connections: the request written whole, then the response read by the
//! section 5 framing (32 header bytes, then exactly the body size they announce,
//! bounded by `max_peer_response`), never a byte more.
//!
//! Bounds: at most `max_fixes` fixes at once (one more is answered 160 before anyone
//! is called), one connection per peer per fix, one deadline per fix (`peer_timeout`
//! from the moment its request arrived whole, connect included) after which every call
//! still open ends as [`PeerFailure::Timeout`] and its connection is closed. The time
//! a fix spends before its calls can start (its first half queued for a worker, or
//! behind the connects of other fixes started in the same loop turn) counts against
//! that one deadline, so the answer comes `peer_timeout` after the request, not later;
//! a fix whose deadline has passed before its calls could start calls no one. A
//! completion or input for a call that has ended is dropped by its generation.

use std::collections::VecDeque;
use std::sync::Arc;

use slab::Slab;

use raida_wire::{Status, Timestamp, SHORT_HEADER_LEN};

use super::job::{Lane, PeerWait, Work};
use super::service::{ConnSocket, Io, Serviced};
use super::{Engine, Job, Origin, Output};
use crate::peer::{announced_body_len, PeerAnswer, PeerFailure};

/// An outbound peer connection's name: slab index and generation. Inputs for a
/// generation that no longer lives at that index are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerConnId {
    index: u32,
    generation: u64,
}

impl PeerConnId {
    /// The slab index (reused after the call ends).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The generation: unique across the engine's life.
    pub fn generation(self) -> u64 {
        self.generation
    }
}

/// Where one call is.
#[derive(Debug)]
enum CallState {
    /// [`Output::Connect`] emitted; waiting for the driver's report.
    Connecting { request: Vec<u8> },
    /// Writing the request.
    Writing { request: Vec<u8>, written: usize },
    /// Reading the response's 32-byte header.
    ReadHeader {
        buf: [u8; SHORT_HEADER_LEN],
        filled: usize,
    },
    /// Reading exactly the body the header announced: `response` holds the header
    /// and the body so far (`filled` bytes of it read); it grows as bytes arrive,
    /// towards `total` (header and announced body), so a peer that announces much and
    /// sends little holds little memory.
    ReadBody {
        response: Vec<u8>,
        filled: usize,
        total: usize,
    },
}

#[derive(Debug)]
struct Call {
    generation: u64,
    /// The fix it belongs to (slab index, generation) and its position in the plan.
    fix: (usize, u64),
    slot: usize,
    raida: u8,
    state: CallState,
}

#[derive(Debug)]
struct Fix {
    generation: u64,
    origin: Origin,
    wait: Box<PeerWait>,
    started: Timestamp,
    deadline: Timestamp,
    answers: Vec<PeerAnswer>,
    /// The connection of each plan position still open.
    open: Vec<Option<PeerConnId>>,
    pending: usize,
}

/// The fixes in flight and their calls.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    calls: Slab<Call>,
    fixes: Slab<Fix>,
    /// (deadline, fix index, generation), sorted by deadline: every deadline is its
    /// request's arrival plus the one `peer_timeout`, and fixes start in any order of
    /// arrival (their first halves complete on the workers in any order), so each is
    /// inserted at its place (nearly always the back). Entries of fixes that ended
    /// are stale and skipped.
    deadlines: VecDeque<(Timestamp, usize, u64)>,
}

impl Peers {
    /// Fixes waiting for their peers.
    pub(crate) fn fixes(&self) -> usize {
        self.fixes.len()
    }

    /// Outbound connections open (connecting included).
    pub(crate) fn calls(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fixes.is_empty() && self.calls.is_empty()
    }

    /// The earliest fix deadline.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.front().map(|&(when, _, _)| when)
    }

    fn call_mut(&mut self, id: PeerConnId) -> Option<&mut Call> {
        self.calls
            .get_mut(id.index())
            .filter(|c| c.generation == id.generation)
    }

    /// Brings every fix's deadline forward to `cap` at the latest (a shutdown's: the
    /// fixes answer from the votes they have before the drain ends). Moving every
    /// deadline to `min(deadline, cap)` keeps the list sorted.
    pub(crate) fn cap_deadlines(&mut self, cap: Timestamp) {
        for (_, fix) in self.fixes.iter_mut() {
            fix.deadline = fix.deadline.min(cap);
        }
        for entry in self.deadlines.iter_mut() {
            entry.0 = entry.0.min(cap);
        }
    }

    /// Drops deadline entries of fixes that have ended from the front.
    fn prune(&mut self) {
        while let Some(&(_, index, generation)) = self.deadlines.front() {
            if self
                .fixes
                .get(index)
                .is_some_and(|f| f.generation == generation)
            {
                return;
            }
            self.deadlines.pop_front();
        }
    }
}

impl Engine {
    /// A job's command asked for peer calls: start the fix (or answer 160 when
    /// `max_fixes` fixes are in flight; or finish at once when the plan is empty).
    pub(super) fn start_fix(&mut self, origin: Origin, wait: Box<PeerWait>, now: Timestamp) {
        if wait.opened.calls.is_empty() {
            return self.submit_finish(origin, wait, Vec::new(), None, now);
        }
        if self.peers.fixes() >= self.config.max_fixes {
            self.counters.fixes_refused += 1;
            return self.submit_finish(origin, wait, Vec::new(), Some(Status::RequestRate), now);
        }
        // One overall deadline, from the request's arrival (module doc).
        let mut deadline = wait.arrival.at.saturating_add(self.config.peer_timeout);
        if let Some(cap) = self.fix_deadline_cap() {
            // Shutting down: the fix answers before the drain ends.
            deadline = deadline.min(cap);
        }
        let answers: Vec<PeerAnswer> = wait
            .opened
            .calls
            .iter()
            .map(|c| PeerAnswer {
                raida: c.raida,
                result: Err(PeerFailure::Timeout),
            })
            .collect();
        if deadline <= now {
            // Nothing is left of the deadline: every call would end before it began.
            for answer in &answers {
                let counters = self.counters.peer(answer.raida);
                counters.calls += 1;
                counters.failures[PeerFailure::Timeout.index()] += 1;
            }
            return self.submit_finish(origin, wait, answers, None, now);
        }
        self.counters.fixes_started += 1;
        let generation = self.next_generation;
        self.next_generation += 1;
        let n = answers.len();
        let calls: Vec<(u8, Vec<u8>)> = wait
            .opened
            .calls
            .iter()
            .map(|c| (c.raida, c.request.clone()))
            .collect();
        let fix_index = self.peers.fixes.insert(Fix {
            generation,
            origin,
            wait,
            started: now,
            deadline,
            answers,
            open: vec![None; n],
            pending: n,
        });
        let at = self
            .peers
            .deadlines
            .partition_point(|&(when, _, _)| when <= deadline);
        self.peers
            .deadlines
            .insert(at, (deadline, fix_index, generation));
        let mut seen = [false; 256];
        for (slot, (raida, request)) in calls.into_iter().enumerate() {
            let addr = self.config.peers.get(usize::from(raida)).copied().flatten();
            let duplicate = std::mem::replace(&mut seen[usize::from(raida)], true);
            let failure = if duplicate {
                Some(PeerFailure::Duplicate)
            } else if addr.is_none() {
                Some(PeerFailure::NoAddress)
            } else {
                None
            };
            if let Some(failure) = failure {
                self.counters.peer(raida).calls += 1;
                self.counters.peer(raida).failures[failure.index()] += 1;
                self.record_answer((fix_index, generation), slot, Err(failure));
                continue;
            }
            let Some(addr) = addr else { continue };
            self.counters.peer(raida).calls += 1;
            let call_generation = self.next_generation;
            self.next_generation += 1;
            let index = self.peers.calls.insert(Call {
                generation: call_generation,
                fix: (fix_index, generation),
                slot,
                raida,
                state: CallState::Connecting { request },
            });
            let id = PeerConnId {
                index: index as u32,
                generation: call_generation,
            };
            if let Some(fix) = self.peers.fixes.get_mut(fix_index) {
                if let Some(open) = fix.open.get_mut(slot) {
                    *open = Some(id);
                }
            }
            self.outputs.push_back(Output::Connect { id, addr });
        }
        self.finish_fix_if_done((fix_index, generation), now);
    }

    /// The fix's second half goes to the workers (admitted like any job).
    fn submit_finish(
        &mut self,
        origin: Origin,
        wait: Box<PeerWait>,
        answers: Vec<PeerAnswer>,
        refused: Option<Status>,
        now: Timestamp,
    ) {
        let started = self.started(origin, wait.arrival.at);
        let _ = now;
        let job = Job {
            origin,
            lane: Lane::Short,
            raida_id: self.config.raida_id,
            started,
            work: Work::Finish {
                wait,
                answers,
                refused,
                store: Arc::clone(&self.keys),
            },
            out: super::take_buffer(&mut self.pool, 0),
            access: crate::keys::Access::Blocking,
        };
        self.submit(job);
    }

    /// Records the answer of plan position `slot` of fix `fix`.
    fn record_answer(
        &mut self,
        fix: (usize, u64),
        slot: usize,
        result: Result<Vec<u8>, PeerFailure>,
    ) {
        let Some(f) = self
            .peers
            .fixes
            .get_mut(fix.0)
            .filter(|f| f.generation == fix.1)
        else {
            return;
        };
        if let Some(answer) = f.answers.get_mut(slot) {
            answer.result = result;
        }
        if let Some(open) = f.open.get_mut(slot) {
            *open = None;
        }
        f.pending = f.pending.saturating_sub(1);
    }

    /// When every call of `fix` has ended, its second half is submitted.
    fn finish_fix_if_done(&mut self, fix: (usize, u64), now: Timestamp) {
        let done = self
            .peers
            .fixes
            .get(fix.0)
            .is_some_and(|f| f.generation == fix.1 && f.pending == 0);
        if !done {
            return;
        }
        let f = self.peers.fixes.remove(fix.0);
        self.peers.prune();
        self.counters
            .fix_latency
            .observe(now.saturating_since(f.started));
        self.submit_finish(f.origin, f.wait, f.answers, None, now);
    }

    /// Ends call `id` with `result` (counted), closes its connection and finishes its
    /// fix when it was the last.
    fn end_call(&mut self, id: PeerConnId, result: Result<Vec<u8>, PeerFailure>, now: Timestamp) {
        if self.peers.call_mut(id).is_none() {
            return;
        }
        let call = self.peers.calls.remove(id.index());
        let started = self
            .peers
            .fixes
            .get(call.fix.0)
            .filter(|f| f.generation == call.fix.1)
            .map_or(now, |f| f.started);
        let counters = self.counters.peer(call.raida);
        match &result {
            Ok(_) => {
                counters.answered += 1;
                counters.latency.observe(now.saturating_since(started));
            }
            Err(failure) => counters.failures[failure.index()] += 1,
        }
        self.outputs.push_back(Output::ClosePeer(id));
        self.record_answer(call.fix, call.slot, result);
        self.finish_fix_if_done(call.fix, now);
    }

    /// Peer connection `id` is established: its request can be written
    /// ([`Output::WakePeer`] follows; service it with [`service_peer`](Self::service_peer)).
    pub fn handle_connected(&mut self, id: PeerConnId, _now: Timestamp) {
        let Some(call) = self.peers.call_mut(id) else {
            return;
        };
        if let CallState::Connecting { request } = &mut call.state {
            let request = std::mem::take(request);
            call.state = CallState::Writing {
                request,
                written: 0,
            };
            self.outputs.push_back(Output::WakePeer(id));
        }
    }

    /// Peer connection `id` could not be established (refused, unreachable, or the
    /// driver could not even start it): the call gives no answer. An
    /// [`Output::ClosePeer`] follows: the driver closes the socket if it has one.
    pub fn handle_connect_failed(&mut self, id: PeerConnId, now: Timestamp) {
        self.end_call(id, Err(PeerFailure::Refused), now);
    }

    /// A socket error on peer connection `id` reported outside a read or a write.
    pub fn handle_peer_error(&mut self, id: PeerConnId, now: Timestamp) {
        let connecting = matches!(
            self.peers.call_mut(id).map(|c| &c.state),
            Some(CallState::Connecting { .. })
        );
        let failure = if connecting {
            PeerFailure::Refused
        } else {
            PeerFailure::Reset
        };
        self.end_call(id, Err(failure), now);
    }

    /// Fix deadlines at or before `now`: every call still open ends as a timeout (its
    /// connection closed), and the fix finishes with what it has.
    pub(super) fn peer_timeouts(&mut self, now: Timestamp) {
        while let Some(&(when, index, generation)) = self.peers.deadlines.front() {
            if when > now {
                break;
            }
            self.peers.deadlines.pop_front();
            let open: Vec<PeerConnId> = match self
                .peers
                .fixes
                .get(index)
                .filter(|f| f.generation == generation && f.deadline == when)
            {
                Some(f) => f.open.iter().flatten().copied().collect(),
                None => continue,
            };
            for id in open {
                self.end_call(id, Err(PeerFailure::Timeout), now);
            }
        }
        self.peers.prune();
    }

    /// Peer fixes waiting for their peers now.
    pub fn fixes_in_flight(&self) -> usize {
        self.peers.fixes()
    }

    /// Outbound peer connections open now (connecting included).
    pub fn peer_connections(&self) -> usize {
        self.peers.calls()
    }

    /// Services peer connection `id` over `socket`: writes its request while there is
    /// some to write, then reads its response (exactly the header, then exactly the
    /// body it announces), until both would block, the call ends (its connection is
    /// closed: [`Output::ClosePeer`]), or `reads_per_service` reads were made
    /// ([`Serviced::Budget`]: an [`Output::WakePeer`] is queued). Before
    /// [`handle_connected`](Self::handle_connected) it does nothing.
    pub fn service_peer(
        &mut self,
        id: PeerConnId,
        socket: &mut impl ConnSocket,
        now: Timestamp,
    ) -> Serviced {
        let max_response = self.config.max_peer_response;
        // A response body grows as a request body does (`body_chunk`, then doubling).
        let chunk = self.config.body_chunk.max(1);
        let mut reads = 0usize;
        loop {
            let Some(call) = self.peers.call_mut(id) else {
                return Serviced::Closed;
            };
            match &mut call.state {
                CallState::Connecting { .. } => return Serviced::Idle,
                CallState::Writing { request, written } => {
                    let Some(rest) = request.get(*written..).filter(|r| !r.is_empty()) else {
                        call.state = CallState::ReadHeader {
                            buf: [0; SHORT_HEADER_LEN],
                            filled: 0,
                        };
                        continue;
                    };
                    match socket.write(rest) {
                        Io::Done(n) => *written += n,
                        Io::WouldBlock => return Serviced::Idle,
                        Io::Interrupted => {}
                        Io::Eof | Io::Failed => {
                            self.end_call(id, Err(PeerFailure::Reset), now);
                            return Serviced::Closed;
                        }
                    }
                }
                CallState::ReadHeader { buf, filled } => {
                    if reads >= self.config.reads_per_service {
                        self.outputs.push_back(Output::WakePeer(id));
                        return Serviced::Budget;
                    }
                    reads += 1;
                    let Some(into) = buf.get_mut(*filled..) else {
                        return Serviced::Idle;
                    };
                    match socket.read(into) {
                        Io::Done(n) => {
                            *filled = (*filled + n).min(SHORT_HEADER_LEN);
                            if *filled == SHORT_HEADER_LEN {
                                let header = *buf;
                                let len = announced_body_len(&header);
                                if len > max_response {
                                    self.end_call(id, Err(PeerFailure::TooLong), now);
                                    return Serviced::Closed;
                                }
                                let total = SHORT_HEADER_LEN + len;
                                let mut response =
                                    Vec::with_capacity(total.min(SHORT_HEADER_LEN + chunk));
                                response.extend_from_slice(&header);
                                if len == 0 {
                                    self.end_call(id, Ok(response), now);
                                    return Serviced::Closed;
                                }
                                call.state = CallState::ReadBody {
                                    response,
                                    filled: SHORT_HEADER_LEN,
                                    total,
                                };
                            }
                        }
                        Io::WouldBlock => return Serviced::Idle,
                        Io::Interrupted => {}
                        Io::Eof => {
                            self.end_call(id, Err(PeerFailure::Closed), now);
                            return Serviced::Closed;
                        }
                        Io::Failed => {
                            self.end_call(id, Err(PeerFailure::Reset), now);
                            return Serviced::Closed;
                        }
                    }
                }
                CallState::ReadBody {
                    response,
                    filled,
                    total,
                } => {
                    if reads >= self.config.reads_per_service {
                        self.outputs.push_back(Output::WakePeer(id));
                        return Serviced::Budget;
                    }
                    reads += 1;
                    if *filled == response.len() {
                        // Full: grow by at least a chunk, doubling, never past `total`.
                        let grown = (response.len() * 2).max(response.len() + chunk).min(*total);
                        response.resize(grown, 0);
                    }
                    let Some(into) = response.get_mut(*filled..).filter(|b| !b.is_empty()) else {
                        return Serviced::Idle;
                    };
                    match socket.read(into) {
                        Io::Done(n) => {
                            *filled = (*filled + n).min(response.len());
                            if *filled == *total {
                                let response = std::mem::take(response);
                                self.end_call(id, Ok(response), now);
                                return Serviced::Closed;
                            }
                        }
                        Io::WouldBlock => return Serviced::Idle,
                        Io::Interrupted => {}
                        Io::Eof => {
                            self.end_call(id, Err(PeerFailure::Closed), now);
                            return Serviced::Closed;
                        }
                        Io::Failed => {
                            self.end_call(id, Err(PeerFailure::Reset), now);
                            return Serviced::Closed;
                        }
                    }
                }
            }
        }
    }
}
