//! Closed-loop load generation: `connections` requests in flight, each answered (or
//! timed out) before its slot sends the next.
//!
//! A few threads each multiplex many non-blocking sockets through one edge-triggered
//! `polling` poller, waiting once per batch of events. The request bytes are built once;
//! per request only the echo bytes change (UDP, so late replies are told apart),
//! and no memory is allocated per request once the buffers have grown.
//!
//! TCP: one request per connection, as the protocol says: connect, send, read until
//! the server closes, close. UDP: each slot owns a connected socket and sends one
//! datagram at a time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use polling::{Event, Events, PollMode, Poller};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{ErrorKind, ResponseError};
use crate::request::BuiltRequest;
use crate::transport::Transport;

/// How often timeouts are swept and progress is published.
const SWEEP: Duration = Duration::from_millis(5);
/// The largest response a TCP slot accepts (header + the 3-byte size field's maximum).
const MAX_RESPONSE: usize = 48 + (1 << 24);
/// Latencies above this (in microseconds) are recorded as this.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Start requests until this much time has passed; requests still in flight then
    /// are abandoned and not counted.
    Duration(Duration),
    /// Exactly this many requests, each ending in a response or an error.
    Requests(u64),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The server.
    pub addr: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// The request every slot sends (UDP slots vary its echo bytes).
    pub request: BuiltRequest,
    /// Requests in flight at once.
    pub connections: usize,
    /// Threads, each multiplexing its share of the connections.
    pub threads: usize,
    /// When to stop.
    pub limit: Limit,
    /// A request with no complete response within this time counts as a timeout.
    pub timeout: Duration,
    /// Check every response (signature, echo bytes, HMAC, length). Off: any response
    /// counts, with the status byte it carries (for servers that cannot answer
    /// correctly, such as the null server of `shared/bench`, whose cost is compared).
    pub verify: bool,
}

/// Counters a run publishes while it goes, for a progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Responses received and verified (any status).
    pub responses: AtomicU64,
    /// Requests that ended in an error.
    pub errors: AtomicU64,
    /// Set by the caller to end a run early (e.g. on Ctrl-C).
    pub stop: AtomicBool,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Responses that verified, by status code (index = code).
    pub statuses: Vec<u64>,
    /// Requests that ended in an error, by kind (index = [`ErrorKind::index`]).
    pub errors: [u64; ErrorKind::ALL.len()],
    /// UDP replies to an earlier request of the same slot (after a timeout), ignored.
    pub stale: u64,
    /// Round-trip latency of every verified response, in microseconds.
    pub latency: Histogram<u64>,
}

impl BenchReport {
    fn empty() -> BenchReport {
        BenchReport {
            elapsed: Duration::ZERO,
            statuses: vec![0; 256],
            errors: [0; ErrorKind::ALL.len()],
            stale: 0,
            latency: new_histogram(),
        }
    }

    /// Verified responses of every status.
    pub fn responses(&self) -> u64 {
        self.statuses.iter().sum()
    }

    /// Verified responses with status 250 SUCCESS.
    pub fn ok(&self) -> u64 {
        self.statuses[usize::from(crate::Status::Success.code())]
    }

    /// Requests that ended in an error.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Successful (250) responses per second.
    pub fn ok_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// Errors by kind, only the kinds that occurred.
    pub fn errors_by_kind(&self) -> Vec<(ErrorKind, u64)> {
        ErrorKind::ALL
            .iter()
            .map(|k| (*k, self.errors[k.index()]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Responses by status code, only the codes that occurred.
    pub fn responses_by_status(&self) -> Vec<(u8, u64)> {
        (0..=255u8)
            .map(|c| (c, self.statuses[usize::from(c)]))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn merge(&mut self, other: &BenchReport) {
        for (a, b) in self.statuses.iter_mut().zip(&other.statuses) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(&other.errors) {
            *a += b;
        }
        self.stale += other.stale;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3) {
        Ok(h) => h,
        // Fixed, valid bounds: this arm is unreachable; fall back to an auto-resizing one.
        Err(_) => Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfigs is valid")),
    }
}

/// Runs the load and returns the counts. `progress` is updated every few
/// milliseconds, and setting `progress.stop` ends the run early.
pub fn run(config: &BenchConfig, progress: &Progress) -> io::Result<BenchReport> {
    let connections = config.connections.max(1);
    let threads = config.threads.clamp(1, connections);
    let start = Instant::now();
    let end = match config.limit {
        Limit::Duration(d) => Some(start + d),
        Limit::Requests(_) => None,
    };
    let tickets = Tickets {
        issued: AtomicU64::new(0),
        max: match config.limit {
            Limit::Requests(n) => n,
            Limit::Duration(_) => u64::MAX,
        },
    };
    let results: Vec<io::Result<BenchReport>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let share = connections / threads + usize::from(i < connections % threads);
                let tickets = &tickets;
                s.spawn(move || {
                    let mut w = Worker::new(config, share, tickets, progress, end)?;
                    w.run()?;
                    Ok(std::mem::replace(&mut w.stats, BenchReport::empty()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("bench thread panicked")))
            })
            .collect()
    });
    let mut report = BenchReport::empty();
    for r in results {
        report.merge(&r?);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Request admission shared by the threads.
struct Tickets {
    issued: AtomicU64,
    max: u64,
}

impl Tickets {
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

enum Sock {
    Idle,
    Tcp(TcpStream),
    Udp(UdpSocket),
}

struct Slot {
    sock: Sock,
    /// Changes whenever the slot's TCP socket does, so a stale event is recognised.
    generation: u32,
    in_flight: bool,
    /// Needs a new request at the next sweep (a start failed synchronously).
    retry: bool,
    sent: usize,
    got: usize,
    buf: Vec<u8>,
    started: Instant,
    /// UDP: this slot's own copy, whose echo bytes change per request.
    request: Option<BuiltRequest>,
    echo: u16,
}

struct Worker<'a> {
    config: &'a BenchConfig,
    tickets: &'a Tickets,
    progress: &'a Progress,
    end: Option<Instant>,
    poller: Poller,
    slots: Vec<Slot>,
    stats: BenchReport,
    /// Decrypted bodies land here (reused).
    body: Vec<u8>,
    /// UDP receive buffer, shared by the thread's slots.
    dgram: Vec<u8>,
    published: (u64, u64),
    /// Slots whose request ended and that start the next one from the main loop (not
    /// from inside `finish`, which would recurse when requests end synchronously).
    pending: Vec<usize>,
}

fn key(idx: usize, generation: u32) -> usize {
    (idx & 0xFFFF_FFFF) | ((generation as usize) << 32)
}

impl<'a> Worker<'a> {
    fn new(
        config: &'a BenchConfig,
        share: usize,
        tickets: &'a Tickets,
        progress: &'a Progress,
        end: Option<Instant>,
    ) -> io::Result<Worker<'a>> {
        let poller = Poller::new()?;
        let now = Instant::now();
        let slots = (0..share)
            .map(|_| Slot {
                sock: Sock::Idle,
                generation: 0,
                in_flight: false,
                retry: false,
                sent: 0,
                got: 0,
                buf: Vec::new(),
                started: now,
                request: None,
                echo: 0,
            })
            .collect();
        let mut w = Worker {
            config,
            tickets,
            progress,
            end,
            poller,
            slots,
            stats: BenchReport::empty(),
            body: Vec::with_capacity(256),
            dgram: vec![0; 65_536],
            published: (0, 0),
            pending: Vec::with_capacity(share),
        };
        if config.transport == Transport::Udp {
            w.open_udp()?;
        } else {
            for s in &mut w.slots {
                s.buf = vec![0; 512];
            }
        }
        Ok(w)
    }

    fn open_udp(&mut self) -> io::Result<()> {
        let local: SocketAddr = if self.config.addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        for (idx, slot) in self.slots.iter_mut().enumerate() {
            let sock = UdpSocket::bind(local)?;
            sock.connect(self.config.addr)?;
            sock.set_nonblocking(true)?;
            // SAFETY: the socket stays registered only while this slot owns it: it is
            // deleted from the poller in `Worker::drop` before it is closed.
            unsafe {
                self.poller
                    .add_with_mode(&sock, Event::readable(key(idx, 0)), PollMode::Edge)?;
            }
            slot.sock = Sock::Udp(sock);
            slot.request = Some(self.config.request.clone());
        }
        Ok(())
    }

    fn run(&mut self) -> io::Result<()> {
        for idx in 0..self.slots.len() {
            self.start(idx);
        }
        let mut events = Events::with_capacity(std::num::NonZeroUsize::MIN.saturating_add(1023));
        let mut last_sweep = Instant::now();
        loop {
            let now = Instant::now();
            if self.end.is_some_and(|e| now >= e) || self.progress.stop.load(Ordering::Relaxed) {
                break;
            }
            if self.pending.is_empty()
                && self.slots.iter().all(|s| !s.in_flight && !s.retry)
                && self.tickets.exhausted()
            {
                break;
            }
            let mut wait = if self.pending.is_empty() {
                SWEEP
            } else {
                Duration::ZERO
            };
            if let Some(e) = self.end {
                wait = wait.min(e.saturating_duration_since(now));
            }
            events.clear();
            match self.poller.wait(&mut events, Some(wait)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let idx = ev.key & 0xFFFF_FFFF;
                let generation = (ev.key >> 32) as u32;
                let Some(slot) = self.slots.get(idx) else {
                    continue;
                };
                match self.config.transport {
                    Transport::Tcp => {
                        if slot.generation == generation && slot.in_flight {
                            self.tcp_ready(idx);
                        }
                    }
                    Transport::Udp => self.udp_ready(idx),
                }
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
        Ok(())
    }

    /// Times out overdue requests, retries failed starts, publishes progress.
    fn sweep(&mut self, now: Instant) {
        for idx in 0..self.slots.len() {
            let s = &self.slots[idx];
            if s.in_flight && now.duration_since(s.started) >= self.config.timeout {
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
        let p = &self.progress;
        p.responses
            .fetch_add(responses - self.published.0, Ordering::Relaxed);
        p.errors
            .fetch_add(errors - self.published.1, Ordering::Relaxed);
        self.published = (responses, errors);
    }

    /// Starts the slot's next request, if a ticket is left.
    fn start(&mut self, idx: usize) {
        if !self.tickets.claim() {
            return;
        }
        let started = Instant::now();
        match self.config.transport {
            Transport::Tcp => {
                let result = self.tcp_connect(idx);
                let slot = &mut self.slots[idx];
                slot.started = started;
                slot.sent = 0;
                slot.got = 0;
                match result {
                    Ok(()) => {
                        slot.in_flight = true;
                        // Try at once: on loopback the connect has often completed.
                        self.tcp_ready(idx);
                    }
                    Err(kind) => {
                        // Count it and try again at the next sweep (no busy loop).
                        self.record(Err(kind), started);
                        self.slots[idx].retry = true;
                    }
                }
            }
            Transport::Udp => {
                let slot = &mut self.slots[idx];
                slot.echo = slot.echo.wrapping_add(1);
                slot.started = started;
                slot.in_flight = true;
                let echo = slot.echo.to_be_bytes();
                let (Some(req), Sock::Udp(sock)) = (slot.request.as_mut(), &slot.sock) else {
                    return;
                };
                req.set_echo(echo);
                match sock.send(req.bytes()) {
                    Ok(_) => {}
                    // A full send buffer is like a lost datagram: the timeout handles it.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let kind = if e.kind() == io::ErrorKind::ConnectionRefused {
                            ErrorKind::Connect
                        } else {
                            ErrorKind::Write
                        };
                        slot.in_flight = false;
                        slot.retry = true;
                        self.record(Err(kind), started);
                    }
                }
            }
        }
    }

    fn tcp_connect(&mut self, idx: usize) -> Result<(), ErrorKind> {
        let addr = self.config.addr;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(|_| ErrorKind::Connect)?;
        socket
            .set_nonblocking(true)
            .map_err(|_| ErrorKind::Connect)?;
        socket.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(EINPROGRESS) => {}
            Err(_) => return Err(ErrorKind::Connect),
        }
        let stream = TcpStream::from(socket);
        let slot = &mut self.slots[idx];
        slot.generation = slot.generation.wrapping_add(1);
        // SAFETY: the stream is deleted from the poller in `close` (or `Worker::drop`)
        // before it is dropped, so the poller never refers to a closed descriptor.
        unsafe {
            self.poller
                .add_with_mode(
                    &stream,
                    Event::all(key(idx, slot.generation)),
                    PollMode::Edge,
                )
                .map_err(|_| ErrorKind::Connect)?;
        }
        slot.sock = Sock::Tcp(stream);
        Ok(())
    }

    /// Drives a TCP slot as far as it goes: send the rest, read until would-block or
    /// end of stream.
    fn tcp_ready(&mut self, idx: usize) {
        let config = self.config;
        let req_bytes = config.request.bytes();
        let slot = &mut self.slots[idx];
        let Sock::Tcp(stream) = &mut slot.sock else {
            return;
        };
        while slot.sent < req_bytes.len() {
            match stream.write(&req_bytes[slot.sent..]) {
                Ok(n) => slot.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.rearm(idx),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return self.rearm(idx),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = if slot.sent == 0 && is_connect_error(&e) {
                        ErrorKind::Connect
                    } else {
                        ErrorKind::Write
                    };
                    return self.finish(idx, Err(kind));
                }
            }
        }
        loop {
            if slot.got == slot.buf.len() {
                if slot.buf.len() >= MAX_RESPONSE {
                    return self.finish(idx, Err(ErrorKind::InvalidResponse));
                }
                let n = (slot.buf.len() * 2).min(MAX_RESPONSE);
                slot.buf.resize(n, 0);
            }
            match stream.read(&mut slot.buf[slot.got..]) {
                Ok(0) => return self.finish_tcp_response(idx),
                Ok(n) => slot.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.rearm(idx),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A reset after the whole response still delivered the response.
                    if slot.got > 0 {
                        return self.finish_tcp_response(idx);
                    }
                    let kind = if is_connect_error(&e) {
                        ErrorKind::Connect
                    } else {
                        ErrorKind::Read
                    };
                    return self.finish(idx, Err(kind));
                }
            }
        }
    }

    /// Nothing to do: readiness is edge-triggered, and the slot was driven until the
    /// socket would block.
    fn rearm(&mut self, _idx: usize) {}

    fn finish_tcp_response(&mut self, idx: usize) {
        let slot = &self.slots[idx];
        let bytes = &slot.buf[..slot.got];
        if !self.config.verify {
            // Any response counts, with its status byte.
            let result = match bytes.get(2) {
                Some(&status) if bytes.len() >= 32 => Ok(status),
                _ => Err(ErrorKind::Closed),
            };
            return self.finish(idx, result);
        }
        let result = match self
            .config
            .request
            .expect()
            .check_into(bytes, &mut self.body)
        {
            Ok(h) => Ok(h.status.0),
            // The server closed before the whole response: as `exchange_tcp` names it.
            Err(ResponseError::Short { .. }) => Err(ErrorKind::Closed),
            Err(_) => Err(ErrorKind::InvalidResponse),
        };
        self.finish(idx, result);
    }

    fn udp_ready(&mut self, idx: usize) {
        loop {
            let slot = &mut self.slots[idx];
            let Sock::Udp(sock) = &slot.sock else {
                return;
            };
            let n = match sock.recv(&mut self.dgram) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.rearm(idx),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if slot.in_flight {
                        let kind = if e.kind() == io::ErrorKind::ConnectionRefused {
                            ErrorKind::Connect
                        } else {
                            ErrorKind::Read
                        };
                        self.finish(idx, Err(kind));
                    }
                    return self.rearm(idx);
                }
            };
            if !slot.in_flight {
                self.stats.stale += 1;
                continue;
            }
            if !self.config.verify {
                match self.dgram.get(2) {
                    Some(&status) if n >= 32 => self.finish(idx, Ok(status)),
                    _ => self.finish(idx, Err(ErrorKind::InvalidResponse)),
                }
                continue;
            }
            let Some(req) = slot.request.as_ref() else {
                return;
            };
            match req.expect().check_into(&self.dgram[..n], &mut self.body) {
                Ok(h) => self.finish(idx, Ok(h.status.0)),
                Err(ResponseError::Echo { .. }) => self.stats.stale += 1,
                Err(_) => self.finish(idx, Err(ErrorKind::InvalidResponse)),
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

    /// Ends the slot's request with `result`, closes a TCP socket, and queues the
    /// slot for its next request.
    fn finish(&mut self, idx: usize, result: Result<u8, ErrorKind>) {
        let started = self.slots[idx].started;
        self.record(result, started);
        self.slots[idx].in_flight = false;
        if self.config.transport == Transport::Tcp {
            self.close(idx);
        }
        if result == Err(ErrorKind::Connect) {
            // The server is not there: retry at the next sweep rather than spin.
            self.slots[idx].retry = true;
        } else {
            self.pending.push(idx);
        }
    }

    fn close(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        if let Sock::Tcp(stream) = std::mem::replace(&mut slot.sock, Sock::Idle) {
            let _ = self.poller.delete(&stream);
        }
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            match std::mem::replace(&mut slot.sock, Sock::Idle) {
                Sock::Tcp(s) => {
                    let _ = self.poller.delete(&s);
                }
                Sock::Udp(s) => {
                    let _ = self.poller.delete(&s);
                }
                Sock::Idle => {}
            }
        }
    }
}

/// `EINPROGRESS` on Linux (a non-blocking connect under way).
const EINPROGRESS: i32 = 115;

fn is_connect_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::TimedOut
    )
}
