//! The worker pool: threads that run [`Job`]s (and, apart from them, threads for the jobs
//! of long-running commands) and hand their [`Completion`]s back to the event loop that
//! sent them (a job is tagged with its loop's index) through that
//! loop's bounded channel, waking it with [`Poller::notify`] (which costs no syscall
//! when a wake-up is already pending, so a burst of completions wakes the loop once).

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use raida_core::codec::RANDOM_LEN;
use raida_core::{Completion, Job};

use crate::event_loop::timestamp;
use crate::poll::Poller;

/// A job and the index of the event loop its completion goes back to.
pub(crate) type Routed = (usize, Job);

/// Random bytes fetched from the OS per `getrandom` call (amortised over jobs).
const RANDOM_REFILL: usize = 4096;

/// The pool's channels, as the event loop holds them.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Jobs out, tagged with their loop. Unbounded: each engine never has more than
    /// `mod_queue_size` jobs in flight, so this never holds more than loops times that.
    pub jobs: Sender<Routed>,
    /// Jobs of long-running commands, to threads of their own (each engine has at most
    /// `long_jobs` of them in flight), so they never take a worker short jobs need.
    pub long_jobs: Sender<Routed>,
    /// Completions back, one channel per loop, each bounded by `mod_queue_size` (its
    /// engine guarantees no more).
    pub completions: Vec<Receiver<Completion>>,
}

/// Starts `threads` workers and `long_threads` threads for long-running commands,
/// serving the loops whose pollers are `pollers` (index = loop index). `in_flight` is
/// the most jobs (of both kinds) one loop has out at once: its completion channel's
/// capacity. `epoch` is the loops' common time origin.
pub(crate) fn spawn(
    threads: usize,
    long_threads: usize,
    in_flight: usize,
    pollers: &[Arc<Poller>],
    epoch: Instant,
) -> std::io::Result<Pool> {
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<Routed>();
    let (long_tx, long_rx) = crossbeam_channel::unbounded::<Routed>();
    let mut loops = Vec::with_capacity(pollers.len());
    let mut completions = Vec::with_capacity(pollers.len());
    for poller in pollers {
        let (done_tx, done_rx) = crossbeam_channel::bounded::<Completion>(in_flight);
        loops.push((done_tx, Arc::clone(poller)));
        completions.push(done_rx);
    }
    let loops: Arc<[(Sender<Completion>, Arc<Poller>)]> = loops.into();
    // The threads are never joined: a command that hangs must not hang the exit.
    for n in 0..threads + long_threads {
        let (jobs, name) = if n < threads {
            (job_rx.clone(), format!("raida-worker-{n}"))
        } else {
            (long_rx.clone(), format!("raida-long-{}", n - threads))
        };
        let loops = Arc::clone(&loops);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || worker(n, &jobs, &loops, epoch))?;
    }
    Ok(Pool {
        jobs: job_tx,
        long_jobs: long_tx,
        completions,
    })
}

fn worker(
    n: usize,
    jobs: &Receiver<Routed>,
    loops: &[(Sender<Completion>, Arc<Poller>)],
    epoch: Instant,
) {
    let mut scratch = Vec::new();
    let mut random = Random::new(n);
    // Ends when every event loop has dropped its job sender.
    while let Ok((index, job)) = jobs.recv() {
        let bytes = random.next();
        // `Job::run` answers 252 to a panic inside it; should one escape anyway, the
        // job is still answered (its fallback) and this worker goes on serving: no job
        // is lost and the engine's count of jobs in flight stays right.
        let fallback = job.fallback();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            job.run(timestamp(epoch), &bytes, &mut scratch)
        }));
        let completion = ran.unwrap_or_else(|_| {
            tracing::error!("worker {n}: a job panicked; answered 252");
            scratch = Vec::new();
            fallback.complete(timestamp(epoch), &bytes)
        });
        let Some((done, poller)) = loops.get(index) else {
            tracing::error!("worker {n}: a job from unknown event loop {index}");
            continue;
        };
        if done.send(completion).is_err() {
            // That event loop is gone: the server is exiting.
            continue;
        }
        if let Err(e) = poller.notify() {
            tracing::error!("worker {n}: cannot wake the event loop: {e}");
        }
    }
}

/// Fresh random bytes for each job (the 22 random bytes of a 48-byte response).
#[derive(Debug)]
struct Random {
    worker: usize,
    counter: u64,
    warned: bool,
    /// Bytes from the OS not yet handed out (`pos..`), refilled `RANDOM_REFILL` at a
    /// time: one `getrandom` syscall per ~186 jobs instead of one per job.
    buf: Vec<u8>,
    pos: usize,
}

impl Random {
    fn new(worker: usize) -> Random {
        Random {
            worker,
            counter: 0,
            warned: false,
            buf: vec![0; RANDOM_REFILL],
            pos: RANDOM_REFILL,
        }
    }

    fn next(&mut self) -> [u8; RANDOM_LEN] {
        let mut bytes = [0u8; RANDOM_LEN];
        self.counter += 1;
        if self.pos + RANDOM_LEN > self.buf.len() {
            match getrandom::getrandom(&mut self.buf) {
                Ok(()) => self.pos = 0,
                Err(e) => return self.derived(&e),
            }
        }
        bytes.copy_from_slice(&self.buf[self.pos..self.pos + RANDOM_LEN]);
        // Each byte is handed out once: zero what was taken.
        self.buf[self.pos..self.pos + RANDOM_LEN].fill(0);
        self.pos += RANDOM_LEN;
        bytes
    }

    fn derived(&mut self, e: &getrandom::Error) -> [u8; RANDOM_LEN] {
        let mut bytes = [0u8; RANDOM_LEN];
        {
            // The OS generator failing is next to impossible on Linux after boot; never
            // answer with repeated bytes: derive unique ones instead, and say so.
            if !self.warned {
                tracing::error!("getrandom failed ({e}); using derived bytes");
                self.warned = true;
            }
            let now = crate::clock::wall_nanos();
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(now.to_be_bytes());
            h.update((self.worker as u64).to_be_bytes());
            h.update(self.counter.to_be_bytes());
            h.update(std::process::id().to_be_bytes());
            let digest: [u8; 32] = h.finalize().into();
            bytes.copy_from_slice(&digest[..RANDOM_LEN]);
        }
        bytes
    }
}
