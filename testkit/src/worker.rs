//! The worker: runs the engine's jobs (requests and page loads alike) and hands their
//! completions back, at once or when the test says.

use std::collections::VecDeque;

use raida_core::codec::RANDOM_LEN;
use raida_core::{Completion, Job, Timestamp};

/// When the worker runs the jobs it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPolicy {
    /// Each job runs as soon as the engine emits it, and its completion is handed back
    /// in the same drain.
    RunAtOnce,
    /// Jobs are held until the test completes them
    /// ([`Driver::complete_oldest`](crate::Driver::complete_oldest) and friends).
    Hold,
}

/// The jobs handed out and not completed, and what runs them.
#[derive(Debug)]
pub struct Worker {
    /// When jobs run.
    pub policy: JobPolicy,
    /// The random bytes every job gets (fixed, so responses are comparable).
    pub random: [u8; RANDOM_LEN],
    held: VecDeque<Job>,
    scratch: Vec<u8>,
    completed: u64,
}

impl Worker {
    /// A worker that runs jobs at once with `random` as their random bytes.
    pub fn new(random: [u8; RANDOM_LEN]) -> Worker {
        Worker {
            policy: JobPolicy::RunAtOnce,
            random,
            held: VecDeque::new(),
            scratch: Vec::new(),
            completed: 0,
        }
    }

    /// Jobs held, oldest first.
    pub fn held(&self) -> &VecDeque<Job> {
        &self.held
    }

    /// Jobs completed so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Runs `job` at `now`.
    pub fn run(&mut self, job: Job, now: Timestamp) -> Completion {
        self.completed += 1;
        job.run(now, &self.random, &mut self.scratch)
    }

    /// Takes a job from the engine: its completion now, or `None` when held.
    pub(crate) fn take(&mut self, job: Job, now: Timestamp) -> Option<Completion> {
        match self.policy {
            JobPolicy::RunAtOnce => Some(self.run(job, now)),
            JobPolicy::Hold => {
                self.held.push_back(job);
                None
            }
        }
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<Job> {
        self.held.pop_front()
    }

    pub(crate) fn pop_newest(&mut self) -> Option<Job> {
        self.held.pop_back()
    }
}
