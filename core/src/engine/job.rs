//! Jobs: the work that leaves the event-loop thread, and what comes back.

use std::net::SocketAddr;
use std::sync::Arc;

use raida_wire::{ReplyContext, Status, StatusByte, Timestamp, RANDOM_LEN};

use super::checks::{Admitted, Rejected};
use super::execute::{self, Arrival, Opened, Served};
use super::ConnId;
use crate::keys::{Access, CommitSeq, KeyStore, PageId};
use crate::peer::PeerAnswer;

/// A request whose command asked for peer calls: everything its second half
/// ([`Work::Finish`]) needs, held by the engine (not by a worker) while the peers are
/// called.
#[derive(Debug)]
pub(crate) struct PeerWait {
    pub(crate) admitted: Admitted,
    /// The body, decrypted in place.
    pub(crate) body: Vec<u8>,
    pub(crate) arrival: Arrival,
    pub(crate) opened: Opened,
}

/// Where a job's response goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A TCP connection, named by slab index and generation.
    Tcp(ConnId),
    /// A UDP peer.
    Udp(SocketAddr),
    /// No response: the job loads a page of the store for the requests that wait
    /// for it.
    Load(PageId),
}

/// Which admission bound a job counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// `mod_queue_size`: every job but long-running commands'.
    Short,
    /// `long_jobs`: commands that declared [`Runs::Long`](crate::Runs::Long).
    Long,
}

// The request travels by value to its worker: boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Work {
    /// Body checks, the command and the response encryption.
    Serve {
        admitted: Admitted,
        body: Vec<u8>,
        arrival: Arrival,
        store: Arc<dyn KeyStore>,
    },
    /// A header-time rejection whose response needs fresh random bytes (48-byte layout).
    Reject(Rejected),
    /// Loading a page of the store (off the event loop: it may block on the disk).
    Load {
        page: PageId,
        store: Arc<dyn KeyStore>,
    },
    /// The second half of a request whose peer calls have ended: the command's
    /// `finish` with the answers (or the `refused` status, no command), and the
    /// response.
    Finish {
        wait: Box<PeerWait>,
        answers: Vec<PeerAnswer>,
        refused: Option<Status>,
        store: Arc<dyn KeyStore>,
    },
}

/// A request ready to run, owned and `Send`: it carries everything the worker needs
/// (the key already looked up, the body, the handler). Run it with [`Job::run`] and
/// hand the [`Completion`] back to the engine that made it.
#[must_use = "a job must be run and its completion handed back, or its slot leaks"]
#[derive(Debug)]
pub struct Job {
    pub(crate) origin: Origin,
    pub(crate) lane: Lane,
    pub(crate) raida_id: u8,
    /// When the connection was accepted or the datagram received.
    pub(crate) started: Timestamp,
    pub(crate) work: Work,
    /// A recycled buffer for the response.
    pub(crate) out: Vec<u8>,
    /// How its command reaches the store: [`Access::Resident`] when the engine runs
    /// it on its own thread, [`Access::Blocking`] on a worker.
    pub(crate) access: Access,
}

/// A request whose command found its records not all in memory on the event-loop
/// thread ([`Access::Resident`]): what the engine needs to hand it to a worker, with
/// the body as it came (the engine kept a copy).
#[derive(Debug)]
pub(crate) struct Retry {
    pub(crate) admitted: Admitted,
    pub(crate) arrival: Arrival,
}

impl Job {
    /// Where the response will go.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether the job runs a long-running command ([`Runs::Long`](crate::Runs::Long)):
    /// the driver runs it on its long-running pool, never on the workers short jobs
    /// need.
    pub fn is_long(&self) -> bool {
        self.lane == Lane::Long
    }

    /// What answers this job if running it fails: taken before it runs (no
    /// allocation), so a driver that catches a panic escaping [`Job::run`] still hands
    /// the engine a completion and its count of jobs in flight stays right.
    pub fn fallback(&self) -> Fallback {
        let reply = match &self.work {
            Work::Serve { admitted, .. } => Some(admitted.reply),
            Work::Reject(rejected) => Some(rejected.reply),
            Work::Finish { wait, .. } => Some(wait.admitted.reply),
            Work::Load { .. } => None,
        };
        Fallback {
            origin: self.origin,
            lane: self.lane,
            raida_id: self.raida_id,
            started: self.started,
            reply,
        }
    }

    /// Runs the job: body checks and decryption, the command, the response. `now` is
    /// when the response is built (for its microseconds field), `random` the fresh
    /// bytes of a 48-byte response, `scratch` a reusable buffer for the command output.
    ///
    /// Never panics: a panic anywhere in it (body decryption, the command, response
    /// encryption, a store's load) is answered 252 INTERNAL.
    pub fn run(
        self,
        now: Timestamp,
        random: &[u8; RANDOM_LEN],
        scratch: &mut Vec<u8>,
    ) -> Completion {
        let fallback = self.fallback();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_inner(now, random, scratch)
        }));
        match ran {
            Ok(completion) => completion,
            Err(_) => {
                scratch.clear();
                fallback.complete(now, random)
            }
        }
    }

    fn run_inner(
        self,
        now: Timestamp,
        random: &[u8; RANDOM_LEN],
        scratch: &mut Vec<u8>,
    ) -> Completion {
        let elapsed = elapsed_micros(self.started, now);
        let Job {
            origin,
            lane,
            raida_id,
            started,
            work,
            mut out,
            access,
        } = self;
        let mut peers = None;
        let mut commit = None;
        let mut reply = None;
        let mut retry = None;
        let (status, body) = match work {
            Work::Serve {
                admitted,
                mut body,
                arrival,
                store,
            } => {
                #[cfg(test)]
                inject::maybe_panic();
                let served = execute::serve_admitted(
                    raida_id,
                    &admitted,
                    &arrival,
                    store.as_ref(),
                    access,
                    &mut body,
                    elapsed,
                    random,
                    scratch,
                    &mut out,
                );
                match served {
                    Served::Answered(status, waits) => {
                        commit = waits;
                        reply = Some(admitted.reply);
                        (status, body)
                    }
                    Served::NotResident => {
                        out.clear();
                        retry = Some(Box::new(Retry { admitted, arrival }));
                        (Status::Success.into(), body)
                    }
                    Served::Peers(opened) => {
                        peers = Some(Box::new(PeerWait {
                            admitted,
                            body,
                            arrival,
                            opened,
                        }));
                        (Status::Success.into(), Vec::new())
                    }
                }
            }
            Work::Finish {
                wait,
                answers,
                refused,
                store,
            } => {
                let PeerWait {
                    admitted,
                    body,
                    arrival,
                    opened,
                } = *wait;
                let (status, waits) = execute::finish_admitted(
                    raida_id,
                    &admitted,
                    &arrival,
                    store.as_ref(),
                    &body,
                    &opened,
                    &answers,
                    refused,
                    elapsed,
                    random,
                    scratch,
                    &mut out,
                );
                commit = waits;
                reply = Some(admitted.reply);
                (status, body)
            }
            Work::Reject(rejected) => {
                execute::write_rejection(&mut out, raida_id, &rejected, elapsed, random);
                (rejected.status.into(), Vec::new())
            }
            Work::Load { page, store } => {
                let status = match store.load(page, now) {
                    Ok(()) => Status::Success,
                    Err(_) => Status::Internal,
                };
                (status.into(), Vec::new())
            }
        };
        Completion {
            origin,
            lane,
            status,
            started,
            response: out,
            spent: body,
            peers,
            commit,
            reply,
            retry,
        }
    }
}

/// What answers a job whose run failed ([`Job::fallback`]): 252 INTERNAL to its
/// request, or a failed page load.
#[derive(Clone, Copy, Debug)]
pub struct Fallback {
    origin: Origin,
    lane: Lane,
    raida_id: u8,
    started: Timestamp,
    reply: Option<ReplyContext>,
}

impl Fallback {
    /// The completion of the failed job, built now.
    pub fn complete(self, now: Timestamp, random: &[u8; RANDOM_LEN]) -> Completion {
        let mut response = Vec::new();
        if let Some(reply) = self.reply {
            let internal = Rejected {
                status: Status::Internal,
                reply,
            };
            let elapsed = elapsed_micros(self.started, now);
            execute::write_rejection(&mut response, self.raida_id, &internal, elapsed, random);
        }
        Completion {
            origin: self.origin,
            lane: self.lane,
            status: Status::Internal.into(),
            started: self.started,
            response,
            spent: Vec::new(),
            peers: None,
            commit: None,
            reply: None,
            retry: None,
        }
    }
}

/// A fault injected into the next job's run, outside the handler (tests only).
#[cfg(test)]
pub(crate) mod inject {
    use std::cell::Cell;

    thread_local! {
        static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
    }

    /// The next job run on this thread panics before its body is opened.
    pub(crate) fn panic_next_job() {
        PANIC_NEXT.with(|p| p.set(true));
    }

    pub(super) fn maybe_panic() {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("injected fault in a job, outside the handler");
        }
    }
}

/// A finished job: the response bytes and where they go. Hand it to
/// [`Engine::handle_completion`](super::Engine::handle_completion).
#[must_use = "a completion must be handed back to the engine"]
#[derive(Debug)]
pub struct Completion {
    pub(crate) origin: Origin,
    pub(crate) lane: Lane,
    pub(crate) status: StatusByte,
    /// When the connection was accepted or the datagram received (for the latency).
    pub(crate) started: Timestamp,
    pub(crate) response: Vec<u8>,
    /// The request body buffer, returned for reuse.
    pub(crate) spent: Vec<u8>,
    /// The command asked for peer calls: no response yet; the engine calls the peers.
    pub(crate) peers: Option<Box<PeerWait>>,
    /// The commit the response waits for: a write its command made or saw that was
    /// not yet durable. The engine holds the response until the store's commit point
    /// passes it.
    pub(crate) commit: Option<CommitSeq>,
    /// What a 252 INTERNAL in place of the response carries, should that commit fail.
    pub(crate) reply: Option<ReplyContext>,
    /// Run on the event-loop thread, the command found its records not all in memory:
    /// no response; the engine hands the request to a worker.
    pub(crate) retry: Option<Box<Retry>>,
}

impl Completion {
    /// Where the response goes.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The status the response carries.
    pub fn status(&self) -> StatusByte {
        self.status
    }

    /// The response bytes (empty while the request waits for its peers).
    pub fn response(&self) -> &[u8] {
        &self.response
    }

    /// Whether the request's command asked for peer calls: the engine calls them and
    /// answers later.
    pub fn calls_peers(&self) -> bool {
        self.peers.is_some()
    }

    /// 252 INTERNAL in place of this response, as its request's [`Fallback`] answers
    /// (its write will never be durable: the sync failed). Returns the new completion
    /// and the old response's buffer, for reuse.
    pub(crate) fn internal_instead(
        self,
        raida_id: u8,
        now: Timestamp,
        random: &[u8; RANDOM_LEN],
    ) -> (Completion, Vec<u8>) {
        let fallback = Fallback {
            origin: self.origin,
            lane: self.lane,
            raida_id,
            started: self.started,
            reply: self.reply,
        };
        (fallback.complete(now, random), self.response)
    }

    /// The commit the response waits for (a write not yet durable that its command
    /// made or saw), if any.
    pub fn commit(&self) -> Option<CommitSeq> {
        self.commit
    }
}

/// Microseconds from `started` to `now`, saturating at the 4-byte field's maximum.
pub(crate) fn elapsed_micros(started: Timestamp, now: Timestamp) -> u32 {
    u32::try_from(now.as_micros().saturating_sub(started.as_micros())).unwrap_or(u32::MAX)
}
