//! raida-commands: the RAIDA authentication commands (PROTOCOL.md section 8a), the
//! healing fix (2/80, section 8b, which calls its peers through the engine) and the
//! locker commands (section 8c) over the store seam of raida-core
//! ([`raida_core::KeyStore`], reached through each request's context): detect (1/10),
//! detect_sum (1/11), pown (1/20), pown_sum (1/21); store_sum (8/82), peek (8/83),
//! remove (8/84) and store_multiple_sum (8/88). The locker commands' checks are those
//! of section 8c (no shard check; 198 for a coin listed twice), documented on each.
//! The healing commands of section 8b that answer from this server's records and
//! tickets, get_ticket (2/40), validate_ticket (2/50) and find (2/60), are in
//! [`healing`], with their ticket table and their own checks (no shard check).
//!
//! The network layer knows nothing about coins; these commands do. They are store
//! commands ([`raida_core::Runs::Store`]): the engine runs them on its event-loop
//! thread when their records are in memory, and on a worker otherwise. They read and
//! write records through the request context's store (`ctx.store`), whose writes are
//! applied in memory and appended to the log without waiting; the engine holds each
//! answer until the write it made (or saw) is durable, so a pown is answered only
//! once its new ANs would survive a crash.
//!
//! **Checks, in order** (every command): a request with no body at all is 36
//! EMPTY_REQUEST; a payload shorter than one coin entry is 16; a payload that is not a
//! whole number of entries is 39; shards 1 and 2 (legacy CloudCoin and CloudCoin 2.0,
//! served elsewhere) are 20; then the sum commands answer 40 for an unknown coin. A
//! store that cannot read or write answers 252 INTERNAL, and a failed write changes
//! nothing. Coins of a denomination outside -8..=6 or with a serial at or above 2^26
//! are never known.
//!
//! ```
//! use std::sync::Arc;
//! use raida_core::CommandRegistry;
//!
//! let mut registry = CommandRegistry::with_builtins();
//! for (group, command, handler) in raida_commands::all(
//!     Arc::new(raida_commands::SystemClock),
//!     raida_commands::HealingSetup::default(),
//! ) {
//!     registry.register(group, command, handler).expect("free");
//! }
//! assert!(registry.get(1, 20).is_some());
//! assert!(registry.get(2, 40).is_some());
//! assert!(registry.get(2, 41).is_none());
//! ```

mod clock;
mod detect;
pub mod healing;
mod locker;
mod payload;
mod pown;

use std::sync::Arc;

use raida_core::Command;

pub use clock::{mfs, Clock, FixedClock, SystemClock};
pub use detect::{Detect, DetectSum};
pub use healing::fix::{listed_coins, new_an, peer_request, Fix, RAIDA_COUNT, VOTES_NEEDED_ABOVE};
pub use healing::{HealingSetup, FIX, HEALING_GROUP};
pub use locker::{Peek, Remove, StoreMultipleSum, StoreSum, INVALID_PAN, INVALID_PARAMETER};
pub use pown::{Pown, PownSum};

/// The command group of the authentication commands.
pub const GROUP: u8 = 1;
/// detect: `n x [coin, AN]`.
pub const DETECT: u8 = 10;
/// detect_sum: `n x [coin] + XOR of the ANs`.
pub const DETECT_SUM: u8 = 11;
/// pown: `n x [coin, AN, PAN]`.
pub const POWN: u8 = 20;
/// pown_sum: `n x [coin] + XOR of the ANs + delta`.
pub const POWN_SUM: u8 = 21;

/// The command group of the lockers (PROTOCOL.md section 8c).
pub const LOCKER_GROUP: u8 = 8;
/// store_sum (put): `n x [coin] + sum + key`.
pub const STORE_SUM: u8 = 82;
/// peek: `key`.
pub const PEEK: u8 = 83;
/// remove: `key + n x [coin, new AN]`.
pub const REMOVE: u8 = 84;
/// store_multiple_sum: `NL + NL x [NC + NC x coin + sum + key]`.
pub const STORE_MULTIPLE_SUM: u8 = 88;

/// The authentication, locker and healing commands (get_ticket, validate_ticket,
/// find: [`healing`]) with their (group, command), the writers stamping records with
/// the months since February 2023 that `clock` tells, the healing commands built with
/// `healing`.
pub fn all(clock: Arc<dyn Clock>, healing: HealingSetup) -> Vec<(u8, u8, Arc<dyn Command>)> {
    let mut all = vec![
        (GROUP, DETECT, Arc::new(Detect) as Arc<dyn Command>),
        (GROUP, DETECT_SUM, Arc::new(DetectSum)),
        (GROUP, POWN, Arc::new(Pown::new(Arc::clone(&clock)))),
        (GROUP, POWN_SUM, Arc::new(PownSum::new(Arc::clone(&clock)))),
        (HEALING_GROUP, FIX, Arc::new(Fix::new(Arc::clone(&clock)))),
        (
            LOCKER_GROUP,
            STORE_SUM,
            Arc::new(StoreSum::new(Arc::clone(&clock))),
        ),
        (LOCKER_GROUP, PEEK, Arc::new(Peek)),
        (
            LOCKER_GROUP,
            REMOVE,
            Arc::new(Remove::new(Arc::clone(&clock))),
        ),
        (
            LOCKER_GROUP,
            STORE_MULTIPLE_SUM,
            Arc::new(StoreMultipleSum::new(clock)),
        ),
    ];
    all.extend(healing::commands(healing));
    all
}
