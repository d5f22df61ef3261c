//! One bench thread's closed loop over its share of the slots: admission, starting
//! each slot's next request, timeouts, counting. The sockets belong to a [`Link`]
//! (TCP or UDP), which reports what became of a request and nothing else.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use polling::{Events, Poller};

use super::report::BenchReport;
use super::{BenchConfig, Next, Progress, RequestSource};
use crate::error::ErrorKind;
use crate::request::BuiltRequest;

/// How often timeouts are swept and progress is published.
const SWEEP: Duration = Duration::from_millis(5);

/// What the threads of one run share.
#[derive(Clone, Copy)]
pub(super) struct Shared<'a> {
    pub config: &'a BenchConfig,
    pub requests: &'a dyn RequestSource,
    pub tickets: &'a Tickets,
    pub progress: &'a Progress,
    /// The end of a [`super::Limit::Duration`] run.
    pub end: Option<Instant>,
}

/// Request admission shared by the threads: at most `max` requests are started.
#[derive(Debug)]
pub(super) struct Tickets {
    issued: AtomicU64,
    max: u64,
}

impl Tickets {
    /// `max` requests; `u64::MAX` for no limit.
    pub(super) fn new(max: u64) -> Tickets {
        Tickets {
            issued: AtomicU64::new(0),
            max,
        }
    }

    fn claim(&self) -> bool {
        if self.max == u64::MAX {
            return true;
        }
        self.issued.fetch_add(1, Ordering::Relaxed) < self.max
    }

    fn exhausted(&self) -> bool {
        self.issued.load(Ordering::Relaxed) >= self.max
    }
}

/// What driving a slot's socket came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// The socket would block: the request is still under way, or there was nothing
    /// to do.
    Wait,
    /// The request ended, with the response's status byte or an error.
    Done(Result<u8, ErrorKind>),
    /// A reply to an earlier request of this slot (after its timeout) was read and
    /// dropped; the socket may hold more.
    Stale,
}

/// One transport's part of a worker: the poller, every slot's socket and buffers, and
/// how a request travels over them. It owns the poller so that each socket is
/// registered and deleted in the one file that opens and closes it.
pub(super) trait Link: Sized {
    /// Sockets (or room for them) for `slots` slots.
    fn open(config: &BenchConfig, slots: usize) -> io::Result<Self>;

    /// The poller the sockets are registered with, under [`key`]s.
    fn poller(&self) -> &Poller;

    /// Sends `request` from slot `idx` and drives it as far as it goes at once.
    /// `Err`: it could not even be sent; the worker counts the error and retries at
    /// the next sweep.
    fn start(&mut self, idx: usize, request: &BuiltRequest) -> Result<Step, ErrorKind>;

    /// Drives slot `idx` after a readiness event for `generation`: until its socket
    /// would block or one request ends. `in_flight` is the request under way, if
    /// any; a reply with none under way is stale.
    fn ready(&mut self, idx: usize, generation: u32, in_flight: Option<&BuiltRequest>) -> Step;

    /// Slot `idx`'s request has ended (answered, failed or timed out).
    fn end(&mut self, idx: usize);
}

/// The poller key of slot `idx` while its socket is the `generation`th it opened (a
/// TCP slot opens one per request, so an event for an earlier socket is recognised).
pub(super) fn key(idx: usize, generation: u32) -> usize {
    (idx & 0xFFFF_FFFF) | ((generation as usize) << 32)
}

/// The slot and generation of a [`key`].
fn slot_of(key: usize) -> (usize, u32) {
    (key & 0xFFFF_FFFF, (key >> 32) as u32)
}

struct Slot {
    /// The slot's current request: what it sends and what the response must match.
    request: BuiltRequest,
    /// Requests the slot has started.
    seq: u64,
    in_flight: bool,
    /// Needs a new request at the next sweep (a start failed synchronously).
    retry: bool,
    started: Instant,
}

pub(super) struct Worker<'a, L> {
    shared: Shared<'a>,
    link: L,
    slots: Vec<Slot>,
    stats: BenchReport,
    published: (u64, u64),
    /// Slots whose request ended and that start the next one from the main loop (not
    /// from inside `finish`, which would recurse when requests end synchronously).
    pending: Vec<usize>,
    /// The source said [`Next::Stop`] to one of this thread's slots.
    stopped: bool,
}

impl<'a, L: Link> Worker<'a, L> {
    /// A worker for `share` slots.
    pub(super) fn new(shared: Shared<'a>, share: usize) -> io::Result<Worker<'a, L>> {
        let link = L::open(shared.config, share)?;
        let now = Instant::now();
        let slots = (0..share)
            .map(|_| Slot {
                request: shared.config.request.clone(),
                seq: 0,
                in_flight: false,
                retry: false,
                started: now,
            })
            .collect();
        Ok(Worker {
            shared,
            link,
            slots,
            stats: BenchReport::empty(),
            published: (0, 0),
            pending: Vec::with_capacity(share),
            stopped: false,
        })
    }

    /// Runs until the limit, the deadline or a stop, and returns this thread's counts.
    pub(super) fn run(mut self) -> io::Result<BenchReport> {
        for idx in 0..self.slots.len() {
            self.start(idx);
        }
        let mut events = Events::with_capacity(std::num::NonZeroUsize::MIN.saturating_add(1023));
        let mut last_sweep = Instant::now();
        let end = self.shared.end;
        loop {
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) || self.shared.progress.stop.load(Ordering::Relaxed) {
                break;
            }
            // Every slot idle and none about to start: out of tickets, or (a slot that
            // neither has a request under way nor waits for one stopped) the source
            // stopped.
            if self.pending.is_empty()
                && self.slots.iter().all(|s| !s.in_flight && !s.retry)
                && (self.shared.tickets.exhausted() || self.stopped)
            {
                break;
            }
            let mut wait = if self.pending.is_empty() {
                SWEEP
            } else {
                Duration::ZERO
            };
            if let Some(e) = end {
                wait = wait.min(e.saturating_duration_since(now));
            }
            events.clear();
            match self.link.poller().wait(&mut events, Some(wait)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let (idx, generation) = slot_of(ev.key);
                self.ready(idx, generation);
            }
            // Start the next request of every slot that finished; slots finishing during
            // these starts wait for the next turn of the loop.
            let mut ready = std::mem::take(&mut self.pending);
            for idx in ready.drain(..) {
                self.start(idx);
            }
            if self.pending.is_empty() {
                self.pending = ready;
            }
            let now = Instant::now();
            if now.duration_since(last_sweep) >= SWEEP {
                last_sweep = now;
                self.sweep(now);
            }
        }
        self.publish();
        self.stats.source_stopped = self.stopped;
        Ok(self.stats)
    }

    /// Drives a slot after a readiness event until its socket would block. A request
    /// that ends does not end the turn: with edge-triggered readiness, what else
    /// arrived must be read now (late UDP replies).
    fn ready(&mut self, idx: usize, generation: u32) {
        loop {
            let Some(slot) = self.slots.get(idx) else {
                return;
            };
            let in_flight = slot.in_flight.then_some(&slot.request);
            match self.link.ready(idx, generation, in_flight) {
                Step::Wait => return,
                Step::Stale => self.stats.stale += 1,
                Step::Done(result) => self.finish(idx, result),
            }
        }
    }

    /// Times out overdue requests, retries failed starts, publishes progress.
    fn sweep(&mut self, now: Instant) {
        for idx in 0..self.slots.len() {
            let s = &self.slots[idx];
            if s.in_flight && now.duration_since(s.started) >= self.shared.config.timeout {
                self.finish(idx, Err(ErrorKind::Timeout));
            } else if s.retry {
                self.slots[idx].retry = false;
                self.start(idx);
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        let responses = self.stats.responses();
        let errors = self.stats.error_count();
        let p = self.shared.progress;
        p.responses
            .fetch_add(responses - self.published.0, Ordering::Relaxed);
        p.errors
            .fetch_add(errors - self.published.1, Ordering::Relaxed);
        self.published = (responses, errors);
    }

    /// Starts the slot's next request, if a ticket is left.
    fn start(&mut self, idx: usize) {
        if !self.shared.tickets.claim() {
            return;
        }
        let slot = &mut self.slots[idx];
        slot.seq += 1;
        if self.shared.requests.next(&mut slot.request, slot.seq) == Next::Stop {
            // The slot stays idle: the run ends once the others are.
            self.stopped = true;
            return;
        }
        let started = Instant::now();
        slot.started = started;
        match self.link.start(idx, &slot.request) {
            Ok(step) => {
                slot.in_flight = true;
                match step {
                    Step::Wait => {}
                    Step::Done(result) => self.finish(idx, result),
                    Step::Stale => self.stats.stale += 1,
                }
            }
            Err(kind) => {
                // Count it and try again at the next sweep (no busy loop).
                slot.in_flight = false;
                slot.retry = true;
                self.record(Err(kind), started);
            }
        }
    }

    fn record(&mut self, result: Result<u8, ErrorKind>, started: Instant) {
        match result {
            Ok(status) => {
                self.stats.statuses[usize::from(status)] += 1;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.stats.latency.saturating_record(micros.max(1));
            }
            Err(kind) => self.stats.errors[kind.index()] += 1,
        }
    }

    /// Ends the slot's request with `result`, lets the link close what it keeps per
    /// request, and queues the slot for its next request.
    fn finish(&mut self, idx: usize, result: Result<u8, ErrorKind>) {
        let started = self.slots[idx].started;
        self.record(result, started);
        self.slots[idx].in_flight = false;
        self.link.end(idx);
        if result == Err(ErrorKind::Connect) {
            // The server is not there: retry at the next sweep rather than spin.
            self.slots[idx].retry = true;
        } else {
            self.pending.push(idx);
        }
    }
}
