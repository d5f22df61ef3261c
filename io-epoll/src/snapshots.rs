//! The event loop's end of the metrics endpoint's snapshot requests: the endpoint
//! sends a one-shot reply channel and wakes the loop, which answers after its turn.

use crossbeam_channel::{Receiver, Sender};
use raida_core::metrics::MetricsSnapshot;

/// A request for a snapshot: the loop sends its answer on the enclosed channel.
pub(crate) type SnapshotReply = Sender<MetricsSnapshot>;

/// The event loop's end of the snapshot channel: answer every waiting request with
/// [`answer`](Self::answer) after each turn.
#[derive(Debug)]
pub(crate) struct SnapshotRequests {
    /// Where the requests arrive.
    pub(crate) requests: Receiver<SnapshotReply>,
}

impl SnapshotRequests {
    /// Answers every waiting request with `snapshot()` (computed once, only when a
    /// request is waiting).
    pub(crate) fn answer(&self, snapshot: impl FnOnce() -> MetricsSnapshot) {
        let Ok(first) = self.requests.try_recv() else {
            return;
        };
        let snapshot = snapshot();
        // The requester may have given up (timed out): nothing to do then.
        let _ = first.send(snapshot.clone());
        while let Ok(reply) = self.requests.try_recv() {
            let _ = reply.send(snapshot.clone());
        }
    }
}
