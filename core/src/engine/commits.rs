//! Responses held until the write they depend on is durable.
//!
//! A command's write is applied in memory and appended to the store's log, and the
//! command answers at once; so does a read of a record such a write changed. The
//! answer must not reach the client before the write is durable (a crash would take
//! back what the client was told), so the engine holds it here, keyed by the write's
//! commit, and asks the driver for a sync ([`Output::Sync`](super::Output::Sync)).
//! One sync covers every write appended before it, however many: the group is not
//! bounded by the number of workers, and no worker waits for it.
//!
//! When the sync is done the driver calls
//! [`Engine::handle_commit`](super::Engine::handle_commit): responses whose commit the
//! store's commit point has passed go out, in commit order; if the sync failed
//! (the store stopped), every held response is answered 252 INTERNAL instead.

use std::collections::BTreeMap;

use raida_wire::Timestamp;

use super::job::Completion;
use crate::keys::{CommitPoint, CommitSeq};

/// The held responses, by the commit each waits for.
#[derive(Debug, Default)]
pub(crate) struct CommitWaits {
    held: BTreeMap<CommitSeq, Vec<(Completion, Timestamp)>>,
    count: usize,
    /// An [`Output::Sync`](super::Output::Sync) was asked for and its
    /// [`handle_commit`](super::Engine::handle_commit) has not come yet.
    sync_asked: bool,
}

impl CommitWaits {
    /// Holds `completion` (ready at `now`) until `commit` is durable.
    pub(crate) fn hold(&mut self, commit: CommitSeq, completion: Completion, now: Timestamp) {
        self.held.entry(commit).or_default().push((completion, now));
        self.count += 1;
    }

    /// Responses held now.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether a sync must be asked for: something is held and none is outstanding.
    /// Marks one as asked.
    pub(crate) fn ask_sync(&mut self) -> bool {
        if self.count == 0 || self.sync_asked {
            return false;
        }
        self.sync_asked = true;
        true
    }

    /// A sync ended: the held responses `point` lets go, in commit order, each with
    /// when it was ready and whether it must be answered 252 instead (the sync that
    /// was to cover it failed).
    pub(crate) fn release(&mut self, point: CommitPoint) -> Vec<(Completion, Timestamp, bool)> {
        self.sync_asked = false;
        let mut out = Vec::new();
        let above = self.held.split_off(&point.durable_below);
        let covered = std::mem::replace(&mut self.held, above);
        for (_, completions) in covered {
            out.extend(completions.into_iter().map(|(c, t)| (c, t, false)));
        }
        if point.failed {
            // Nothing past the commit point will ever be durable in this process.
            for (_, completions) in std::mem::take(&mut self.held) {
                out.extend(completions.into_iter().map(|(c, t)| (c, t, true)));
            }
        }
        self.count -= out.len();
        out
    }
}
