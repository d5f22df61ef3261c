//! Closed-loop load generation: `connections` requests in flight, each answered (or
//! timed out) before its slot sends the next.
//!
//! A few threads each multiplex many non-blocking sockets through one edge-triggered
//! `polling` poller, waiting once per batch of events (`worker`). What travels over
//! the sockets is the transport's business (`tcp`, `udp`); what each request is, a
//! [`RequestSource`]'s. [`run`] sends one built request throughout, changing only
//! its echo bytes over UDP (so late replies are told apart); no memory is allocated
//! per request once the buffers have grown.
//!
//! TCP: one request per connection, as the protocol says: connect, send, read until
//! the server closes, close. UDP: each slot owns a connected socket and sends one
//! datagram at a time.
//!
//! What counts as a success is the source's ([`RequestSource::success`]): 250 SUCCESS
//! for echo and version, 241 ALL_PASS for the detect and pown loads of [`CoinLoad`],
//! which name the coins of a store directory ([`StoreCoins`]).

mod coins;
mod report;
mod tcp;
mod udp;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use crate::request::BuiltRequest;
use crate::transport::Transport;
use crate::{Status, StatusByte};

pub use coins::{CoinCommand, CoinLoad, CoinLoadError, Skipped, StoreCoins, StoreReadError};
pub use report::BenchReport;

use worker::{Tickets, Worker};

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
    /// The request every slot sends (UDP slots vary its echo bytes); with
    /// [`run_with`], every slot's first request before its [`RequestSource`] turns it
    /// into the one sent.
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

/// What a [`RequestSource`] made of a slot's next request.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The request is ready: send it.
    Send,
    /// The source has nothing more to send (a pown load has used every coin): the slot
    /// sends nothing more, the run ends once no request is under way, and its report
    /// says so ([`BenchReport::source_stopped`]).
    Stop,
}

/// Where each request of a run comes from: a run asks once per request, before
/// sending it, so requests can differ (other coins, other payloads) as well as their
/// echo bytes. Every thread asks the same source, hence `Sync`: a source that hands
/// out coins keeps its own lock or atomic cursor.
pub trait RequestSource: Sync {
    /// Turns `request` into the next request of one slot, or says there is none.
    /// `request` is that slot's previous request (at its first, a copy of
    /// [`BenchConfig::request`]) and what its response is verified against; `seq`
    /// counts the slot's requests from 1. This runs once per request: reuse
    /// `request`'s buffers where possible (as [`BuiltRequest::set_echo`] does).
    fn next(&self, request: &mut BuiltRequest, seq: u64) -> Next;

    /// The status a response must carry to count as a success ([`BenchReport::ok`]):
    /// 250 SUCCESS unless the source says otherwise.
    fn success(&self) -> StatusByte {
        Status::Success.into()
    }
}

/// What [`run`] sends: [`BenchConfig::request`] every time, over UDP with the slot's
/// request count as its echo bytes (a reply to an earlier, timed-out request then
/// fails the echo check and is counted as stale). Over TCP every request has a
/// connection of its own, so the bytes stay as built (types 1 and 2 would otherwise
/// be re-encrypted per request).
#[derive(Debug)]
struct SameRequest {
    vary_echo: bool,
}

impl RequestSource for SameRequest {
    fn next(&self, request: &mut BuiltRequest, seq: u64) -> Next {
        if self.vary_echo {
            // The low 16 bits: the count wraps, as the 2 echo bytes do.
            request.set_echo((seq as u16).to_be_bytes());
        }
        Next::Send
    }
}

/// Runs the load and returns the counts. `progress` is updated every few
/// milliseconds, and setting `progress.stop` ends the run early.
pub fn run(config: &BenchConfig, progress: &Progress) -> io::Result<BenchReport> {
    let same = SameRequest {
        vary_echo: config.transport == Transport::Udp,
    };
    run_with(config, &same, progress)
}

/// [`run`], with every request taken from `requests`.
pub fn run_with(
    config: &BenchConfig,
    requests: &dyn RequestSource,
    progress: &Progress,
) -> io::Result<BenchReport> {
    let connections = config.connections.max(1);
    let threads = config.threads.clamp(1, connections);
    let start = Instant::now();
    let end = match config.limit {
        Limit::Duration(d) => Some(start + d),
        Limit::Requests(_) => None,
    };
    let tickets = Tickets::new(match config.limit {
        Limit::Requests(n) => n,
        Limit::Duration(_) => u64::MAX,
    });
    let results: Vec<io::Result<BenchReport>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let share = connections / threads + usize::from(i < connections % threads);
                let shared = worker::Shared {
                    config,
                    requests,
                    tickets: &tickets,
                    progress,
                    end,
                };
                s.spawn(move || match config.transport {
                    Transport::Tcp => Worker::<tcp::TcpLink>::new(shared, share)?.run(),
                    Transport::Udp => Worker::<udp::UdpLink>::new(shared, share)?.run(),
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
    report.success = requests.success();
    Ok(report)
}
