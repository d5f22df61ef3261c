//! The worker pool: threads that run [`Job`]s and hand their [`Completion`]s back to
//! the event loop through a bounded channel, waking it with [`Poller::notify`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use polling::Poller;
use raida_core::codec::RANDOM_LEN;
use raida_core::{Completion, Job};

use crate::event_loop::timestamp;

/// The pool's channels, as the event loop holds them.
#[derive(Debug)]
pub struct Pool {
    /// Jobs out. Unbounded: the engine never has more than `mod_queue_size` jobs in
    /// flight, so this never holds more.
    pub jobs: Sender<Job>,
    /// Completions back, bounded by `mod_queue_size` (the engine guarantees no more).
    pub completions: Receiver<Completion>,
    /// The threads (not joined: a command that hangs must not hang the exit).
    pub handles: Vec<JoinHandle<()>>,
}

/// Starts `threads` workers. `epoch` is the event loop's time origin.
pub fn spawn(
    threads: usize,
    mod_queue_size: usize,
    poller: Arc<Poller>,
    epoch: Instant,
) -> std::io::Result<Pool> {
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Completion>(mod_queue_size);
    let mut handles = Vec::with_capacity(threads);
    for n in 0..threads {
        let jobs = job_rx.clone();
        let done = done_tx.clone();
        let poller = Arc::clone(&poller);
        let handle = std::thread::Builder::new()
            .name(format!("raida-worker-{n}"))
            .spawn(move || worker(n, &jobs, &done, &poller, epoch))?;
        handles.push(handle);
    }
    Ok(Pool {
        jobs: job_tx,
        completions: done_rx,
        handles,
    })
}

fn worker(
    n: usize,
    jobs: &Receiver<Job>,
    done: &Sender<Completion>,
    poller: &Poller,
    epoch: Instant,
) {
    let mut scratch = Vec::new();
    let mut random = Random::new(n);
    // Ends when the event loop drops the job sender.
    while let Ok(job) = jobs.recv() {
        let bytes = random.next();
        let completion = job.run(timestamp(epoch), &bytes, &mut scratch);
        if done.send(completion).is_err() {
            // The event loop is gone: the server is exiting.
            return;
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
}

impl Random {
    fn new(worker: usize) -> Random {
        Random {
            worker,
            counter: 0,
            warned: false,
        }
    }

    fn next(&mut self) -> [u8; RANDOM_LEN] {
        let mut bytes = [0u8; RANDOM_LEN];
        self.counter += 1;
        if let Err(e) = getrandom::getrandom(&mut bytes) {
            // The OS generator failing is next to impossible on Linux after boot; never
            // answer with repeated bytes: derive unique ones instead, and say so.
            if !self.warned {
                tracing::error!("getrandom failed ({e}); using derived bytes");
                self.warned = true;
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let digest = raida_core::crypto::sha256(&[
                &now.to_be_bytes(),
                &(self.worker as u64).to_be_bytes(),
                &self.counter.to_be_bytes(),
                &std::process::id().to_be_bytes(),
            ]);
            bytes.copy_from_slice(&digest[..RANDOM_LEN]);
        }
        bytes
    }
}
