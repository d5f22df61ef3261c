//! The planted bugs of the simulator's mutant runner: the one list of them (each bug's
//! name, what it breaks, and which swarm must catch it), in every build, and their
//! switch, only with `--cfg raida_mutants` (which only `raida-sim mutants` sets,
//! through RUSTFLAGS, in a target directory of its own). No Cargo feature of any crate
//! enables that cfg, so no build of a server can contain the bugs: a normal build holds
//! their names, never their code.
//!
//! One mutant build holds every planted bug, each off until `activate` turns one on:
//! the runner builds once and checks that the swarm catches each in turn.

#[cfg(raida_mutants)]
use std::sync::atomic::{AtomicU8, Ordering};

/// Which of the simulator's swarms runs a planted bug: the one whose invariants see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swarm {
    /// The engine's world (`raida-sim swarm`).
    Engine,
    /// The store's world over the faulty simulated disk (`raida-sim store-swarm`).
    Store,
    /// The whole RAIDA: up to 25 servers healing coins through their peers
    /// (`raida-sim raida-swarm`).
    Raida,
    /// The engine, the commands and the store together, with crashes
    /// (`raida-sim data-swarm`).
    Data,
}

impl Swarm {
    /// The runner's subcommand for this swarm.
    pub const fn command(self) -> &'static str {
        match self {
            Swarm::Engine => "swarm",
            Swarm::Store => "store-swarm",
            Swarm::Raida => "raida-swarm",
            Swarm::Data => "data-swarm",
        }
    }
}

/// A planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mutant {
    /// A completion is applied to whoever holds its slot now (no generation check).
    ReusedSlot,
    /// Jobs are started past `mod_queue_size`.
    AdmissionOverflow,
    /// The socket timeout is never enforced.
    NoTimeout,
    /// A header read is lent 48 bytes, past the end of a 32-byte-header request.
    Overread,
    /// One accept per listener readiness edge (the deployed server's bug).
    AcceptOnce,
    /// Connections are still accepted after the shutdown.
    AcceptAfterShutdown,
    /// The store acknowledges a write before the log sync that makes it durable
    /// (raida-store: a writer that finds a sync running returns once its entry is
    /// queued, instead of waiting for the next sync; that sync's leader writes it in
    /// place afterwards).
    AckBeforeSync,
    /// The locker index is not rebuilt when the store opens (raida-store: the scan of
    /// the page files is skipped, so lockers written before a restart are missing
    /// until their pages are written again).
    IndexNotRebuilt,
    /// store_sum accepts a coin listed twice (raida-commands: the duplicate check is
    /// skipped, so `[V, V]` with a sum of zero moves V into a locker without its AN).
    DuplicateXor,
    /// remove moves a coin whatever its AN (raida-commands: the compare with the key is
    /// skipped, so a locker key takes any coin named).
    RemoveNoAnCheck,
    /// A write's response is released before the commit that makes the write durable
    /// (raida-core: the engine does not hold it).
    ReleaseBeforeCommit,
    /// A read is answered before the commit of the write it saw (raida-store: a
    /// record changed by a write not yet durable is reported as durable).
    ReadBeforeCommit,
    /// A fix counts a coin's votes per listed occurrence (raida-commands: a peer that
    /// lists a coin three times gives it three votes, not one per distinct RAIDA).
    VotesPerOccurrence,
    /// Tickets never expire (raida-commands: the ticket table never frees a ticket, so
    /// one past its lifetime still answers a claim and votes).
    TicketsNeverExpire,
    /// A fix answers its coins fixed although the store write failed (raida-commands:
    /// the write's error is ignored, so the answer says fixed for a record that is not
    /// durable).
    FixAckBeforeDurable,
}

impl Mutant {
    /// Every planted bug, in a fixed order (the runner's).
    pub const ALL: [Mutant; 15] = [
        Mutant::ReusedSlot,
        Mutant::AdmissionOverflow,
        Mutant::NoTimeout,
        Mutant::Overread,
        Mutant::AcceptOnce,
        Mutant::AcceptAfterShutdown,
        Mutant::AckBeforeSync,
        Mutant::IndexNotRebuilt,
        Mutant::DuplicateXor,
        Mutant::RemoveNoAnCheck,
        Mutant::ReleaseBeforeCommit,
        Mutant::ReadBeforeCommit,
        Mutant::VotesPerOccurrence,
        Mutant::TicketsNeverExpire,
        Mutant::FixAckBeforeDurable,
    ];

    /// Its name on the runner's command line.
    pub const fn name(self) -> &'static str {
        match self {
            Mutant::ReusedSlot => "reused-slot",
            Mutant::AdmissionOverflow => "admission-overflow",
            Mutant::NoTimeout => "no-timeout",
            Mutant::Overread => "overread",
            Mutant::AcceptOnce => "accept-once",
            Mutant::AcceptAfterShutdown => "accept-after-shutdown",
            Mutant::AckBeforeSync => "ack-before-sync",
            Mutant::IndexNotRebuilt => "index-not-rebuilt",
            Mutant::DuplicateXor => "duplicate-xor",
            Mutant::RemoveNoAnCheck => "remove-no-an-check",
            Mutant::ReleaseBeforeCommit => "release-before-commit",
            Mutant::ReadBeforeCommit => "read-before-commit",
            Mutant::VotesPerOccurrence => "votes-per-occurrence",
            Mutant::TicketsNeverExpire => "tickets-never-expire",
            Mutant::FixAckBeforeDurable => "fix-ack-before-durable",
        }
    }

    /// What it breaks, as the runner prints it.
    pub const fn breaks(self) -> &'static str {
        match self {
            Mutant::ReusedSlot => {
                "a completion applied to a reused slot (generation check skipped)"
            }
            Mutant::AdmissionOverflow => "admission allowed past mod_queue_size",
            Mutant::NoTimeout => "the socket timeout not enforced",
            Mutant::Overread => "a read lent past the end of the request's header",
            Mutant::AcceptOnce => "the accept loop takes one connection per readiness event",
            Mutant::AcceptAfterShutdown => "connections are still accepted after the shutdown",
            Mutant::AckBeforeSync => {
                "the store acknowledges a write before the log sync that makes it durable"
            }
            Mutant::IndexNotRebuilt => {
                "the locker index is not rebuilt from the records when the store opens"
            }
            Mutant::DuplicateXor => {
                "store_sum accepts a coin listed twice ([V, V] moves V without its AN)"
            }
            Mutant::RemoveNoAnCheck => "remove moves a coin whose AN is not the locker key",
            Mutant::ReleaseBeforeCommit => {
                "a write's response is released before the commit that makes it durable"
            }
            Mutant::ReadBeforeCommit => "a read is answered before the commit of the write it saw",
            Mutant::VotesPerOccurrence => {
                "a fix counts votes per listed occurrence, not per distinct RAIDA"
            }
            Mutant::TicketsNeverExpire => "tickets never expire",
            Mutant::FixAckBeforeDurable => "a fix answers fixed before its write is durable",
        }
    }

    /// The swarm that must catch it.
    pub const fn swarm(self) -> Swarm {
        match self {
            Mutant::ReusedSlot
            | Mutant::AdmissionOverflow
            | Mutant::NoTimeout
            | Mutant::Overread
            | Mutant::AcceptOnce
            | Mutant::AcceptAfterShutdown => Swarm::Engine,
            Mutant::AckBeforeSync
            | Mutant::IndexNotRebuilt
            | Mutant::DuplicateXor
            | Mutant::RemoveNoAnCheck => Swarm::Store,
            Mutant::ReleaseBeforeCommit | Mutant::ReadBeforeCommit => Swarm::Data,
            Mutant::VotesPerOccurrence
            | Mutant::TicketsNeverExpire
            | Mutant::FixAckBeforeDurable => Swarm::Raida,
        }
    }

    /// The bug named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }

    #[cfg(raida_mutants)]
    const fn code(self) -> u8 {
        match self {
            Mutant::ReusedSlot => 1,
            Mutant::AdmissionOverflow => 2,
            Mutant::NoTimeout => 3,
            Mutant::Overread => 4,
            Mutant::AcceptOnce => 5,
            Mutant::AcceptAfterShutdown => 6,
            Mutant::AckBeforeSync => 7,
            Mutant::IndexNotRebuilt => 8,
            Mutant::DuplicateXor => 9,
            Mutant::RemoveNoAnCheck => 10,
            Mutant::ReleaseBeforeCommit => 11,
            Mutant::ReadBeforeCommit => 12,
            Mutant::VotesPerOccurrence => 13,
            Mutant::TicketsNeverExpire => 14,
            Mutant::FixAckBeforeDurable => 15,
        }
    }
}

#[cfg(raida_mutants)]
/// A marker the mutant build carries in its binary: a check that a normal build (even
/// with `--all-features`) holds no planted bug looks for it and must not find it.
pub const MARKER: &str = "RAIDA-MUTANT-BUILD-7f3a";

#[cfg(raida_mutants)]
static ACTIVE: AtomicU8 = AtomicU8::new(0);

#[cfg(raida_mutants)]
/// Turns on `mutant` (process-wide; the runner runs one per process), or none.
pub fn activate(mutant: Option<Mutant>) {
    ACTIVE.store(mutant.map_or(0, Mutant::code), Ordering::SeqCst);
    // Keep the marker in the binary.
    std::hint::black_box(MARKER);
}

#[cfg(raida_mutants)]
/// Whether `mutant` is on (public: raida-store plants one too).
pub fn active(mutant: Mutant) -> bool {
    ACTIVE.load(Ordering::Relaxed) == mutant.code()
}
