//! The ticket table of the healing commands (PROTOCOL.md section 8b), sans-IO: time is
//! an argument, randomness is the caller's (the request's fresh bytes,
//! [`RequestContext::random`](raida_core::RequestContext::random)), and nothing here
//! reads the store: a claim is told which coins still hold their AN.
//!
//! A ticket is a nonzero `u32`, unique among live tickets, drawn from the caller's
//! random bytes. It holds the coins whose AN matched at issue, each once with that AN,
//! and a claim flag per RAIDA index. It lives `lifetime` after issue (claims neither
//! extend nor end it); an expired ticket is gone: it answers "not found" and its room
//! is free at once. The table holds at most `max_tickets` tickets and `max_coins`
//! coins in all; an issue beyond either is refused, never a silent drop.
//!
//! Every operation takes the table's one lock for a few map operations only: no store
//! read and no I/O happens under it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use raida_core::keys::{An, CoinId};
use raida_core::Timestamp;

/// The number of RAIDA indices a ticket can be claimed for (0..25).
pub const CLAIM_INDICES: u8 = 25;

/// Why a ticket was not issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// `max_tickets` live tickets, or their coins and these beyond `max_coins`, or
    /// every candidate value drawn was 0 or live (42 NO_TICKET_SLOT).
    #[error("no room for another ticket")]
    NoRoom,
}

/// Why a claim found nothing (before any store read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// Ticket 0, unknown, expired, or none of its coins still holds its AN (43).
    #[error("no such ticket")]
    NotFound,
    /// The ticket was claimed for this RAIDA index already (44).
    #[error("the ticket was claimed for this RAIDA already")]
    Claimed,
}

/// One live ticket.
#[derive(Clone, Debug)]
struct Ticket {
    expires: Timestamp,
    coins: Vec<(CoinId, An)>,
    /// Bit r set: claimed for RAIDA index r.
    claimed: u32,
}

#[derive(Debug, Default)]
struct Inner {
    tickets: HashMap<u32, Ticket>,
    /// Live tickets by expiry, for freeing expired ones in order.
    by_expiry: BTreeSet<(Timestamp, u32)>,
    /// Coins held by the live tickets.
    coins: usize,
}

impl Inner {
    /// Forgets every ticket expired at `now`.
    fn expire(&mut self, now: Timestamp) {
        #[cfg(raida_mutants)]
        if raida_core::mutants::active(raida_core::mutants::Mutant::TicketsNeverExpire) {
            // The planted bug: nothing is ever freed, so an expired ticket still answers.
            return;
        }
        while let Some(&(expires, ticket)) = self.by_expiry.first() {
            if expires > now {
                break;
            }
            self.by_expiry.remove(&(expires, ticket));
            if let Some(t) = self.tickets.remove(&ticket) {
                self.coins -= t.coins.len();
            }
        }
    }
}

/// The live tickets of one server, shared by every worker.
#[derive(Debug)]
pub struct TicketTable {
    inner: Mutex<Inner>,
    lifetime: Duration,
    max_tickets: usize,
    max_coins: usize,
}

impl TicketTable {
    /// An empty table whose tickets live `lifetime`, holding at most `max_tickets`
    /// tickets and `max_coins` coins in all (`[healing]` `ticket_lifetime_s`,
    /// `max_tickets`, `max_ticket_coins`).
    pub fn new(lifetime: Duration, max_tickets: usize, max_coins: usize) -> TicketTable {
        TicketTable {
            inner: Mutex::new(Inner::default()),
            lifetime,
            max_tickets,
            max_coins,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic mid-update elsewhere; the maps are still
        // consistent between statements, so go on with them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a ticket holding `coins` (each with the AN that matched; the caller
    /// lists each coin once) at `now`. Its value is the first of the eight big-endian
    /// `u32`s of `random` that is nonzero and not live. [`IssueError::NoRoom`] when
    /// the table is full (tickets or coins) or no candidate fits; nothing is made then.
    pub fn issue(
        &self,
        coins: Vec<(CoinId, An)>,
        now: Timestamp,
        random: &[u8; 32],
    ) -> Result<u32, IssueError> {
        let mut inner = self.lock();
        inner.expire(now);
        if inner.tickets.len() >= self.max_tickets
            || inner.coins.saturating_add(coins.len()) > self.max_coins
        {
            return Err(IssueError::NoRoom);
        }
        let ticket = random
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .find(|&t| t != 0 && !inner.tickets.contains_key(&t))
            .ok_or(IssueError::NoRoom)?;
        let expires = now.saturating_add(self.lifetime);
        inner.coins += coins.len();
        inner.by_expiry.insert((expires, ticket));
        inner.tickets.insert(
            ticket,
            Ticket {
                expires,
                coins,
                claimed: 0,
            },
        );
        Ok(ticket)
    }

    /// The coins of live `ticket`, each with the AN that matched at issue, if it may
    /// still be claimed for `raida` (below [`CLAIM_INDICES`]) at `now`. Claims
    /// nothing: the caller checks which coins still hold their AN, then calls
    /// [`TicketTable::claim`]. An expired ticket is forgotten here.
    pub fn coins(
        &self,
        ticket: u32,
        raida: u8,
        now: Timestamp,
    ) -> Result<Vec<(CoinId, An)>, ClaimError> {
        let mut inner = self.lock();
        inner.expire(now);
        let t = inner.tickets.get(&ticket).ok_or(ClaimError::NotFound)?;
        if t.claimed & bit(raida) != 0 {
            return Err(ClaimError::Claimed);
        }
        Ok(t.coins.clone())
    }

    /// Records the claim of live `ticket` for `raida` at `now`: atomic, so of two
    /// claims for one ticket and index exactly one succeeds; the other is
    /// [`ClaimError::Claimed`]. [`ClaimError::NotFound`] when the ticket is 0, unknown
    /// or expired (it may have expired since [`TicketTable::coins`]).
    pub fn claim(&self, ticket: u32, raida: u8, now: Timestamp) -> Result<(), ClaimError> {
        let mut inner = self.lock();
        inner.expire(now);
        let t = inner.tickets.get_mut(&ticket).ok_or(ClaimError::NotFound)?;
        if t.claimed & bit(raida) != 0 {
            return Err(ClaimError::Claimed);
        }
        t.claimed |= bit(raida);
        Ok(())
    }

    /// Live tickets at `now` (expired ones are freed first).
    pub fn live(&self, now: Timestamp) -> usize {
        let mut inner = self.lock();
        inner.expire(now);
        inner.tickets.len()
    }

    /// Coins held by the live tickets at `now`.
    pub fn live_coins(&self, now: Timestamp) -> usize {
        let mut inner = self.lock();
        inner.expire(now);
        inner.coins
    }

    /// When `ticket` expires, if it is live at `now`.
    pub fn expires(&self, ticket: u32, now: Timestamp) -> Option<Timestamp> {
        let mut inner = self.lock();
        inner.expire(now);
        inner.tickets.get(&ticket).map(|t| t.expires)
    }
}

/// The claim flag of RAIDA index `raida` (callers check `raida < 25`; larger values
/// share the top bit, never another index's).
fn bit(raida: u8) -> u32 {
    1 << raida.min(31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_micros(1_000_000);

    fn random(first: u32) -> [u8; 32] {
        let mut r = [0u8; 32];
        for (i, c) in r.chunks_exact_mut(4).enumerate() {
            c.copy_from_slice(&(first + i as u32).to_be_bytes());
        }
        r
    }

    fn coins(n: u32) -> Vec<(CoinId, An)> {
        (0..n).map(|s| (CoinId::new(1, s), [s as u8; 16])).collect()
    }

    #[test]
    fn a_ticket_is_nonzero_and_unique_among_live_ones() {
        let t = TicketTable::new(Duration::from_secs(300), 10, 100);
        // 0 is never a ticket: the next candidate is taken.
        assert_eq!(t.issue(coins(1), T0, &random(0)), Ok(1));
        // A live value is never issued twice.
        assert_eq!(t.issue(coins(1), T0, &random(1)), Ok(2));
        let mut all_live = [0u8; 32];
        all_live[..4].copy_from_slice(&1u32.to_be_bytes());
        all_live[4..].iter_mut().for_each(|b| *b = 0);
        assert_eq!(t.issue(coins(1), T0, &all_live), Err(IssueError::NoRoom));
        assert_eq!(t.live(T0), 2);
    }

    #[test]
    fn an_expired_ticket_is_gone_and_its_room_free_at_once() {
        let life = Duration::from_secs(300);
        let t = TicketTable::new(life, 1, 100);
        let ticket = t.issue(coins(3), T0, &random(7)).expect("room");
        let last = T0.saturating_add(life - Duration::from_micros(1));
        assert_eq!(t.coins(ticket, 2, last).map(|c| c.len()), Ok(3));
        assert_eq!(
            t.issue(coins(1), last, &random(50)),
            Err(IssueError::NoRoom)
        );
        let end = T0.saturating_add(life);
        assert_eq!(t.coins(ticket, 2, end), Err(ClaimError::NotFound));
        assert_eq!(t.claim(ticket, 2, end), Err(ClaimError::NotFound));
        assert_eq!(t.live_coins(end), 0);
        assert_eq!(t.issue(coins(1), end, &random(50)), Ok(50));
    }

    #[test]
    fn room_counts_tickets_and_coins() {
        let t = TicketTable::new(Duration::from_secs(300), 3, 5);
        assert!(t.issue(coins(4), T0, &random(10)).is_ok());
        assert_eq!(t.issue(coins(2), T0, &random(20)), Err(IssueError::NoRoom));
        assert!(t.issue(coins(1), T0, &random(20)).is_ok());
        assert_eq!(t.live_coins(T0), 5);
        assert!(t.issue(Vec::new(), T0, &random(30)).is_ok());
        assert_eq!(
            t.issue(Vec::new(), T0, &random(40)),
            Err(IssueError::NoRoom)
        );
    }

    #[test]
    fn a_claim_is_once_per_index() {
        let t = TicketTable::new(Duration::from_secs(300), 3, 5);
        let ticket = t.issue(coins(2), T0, &random(9)).expect("room");
        assert_eq!(t.claim(ticket, 3, T0), Ok(()));
        assert_eq!(t.claim(ticket, 3, T0), Err(ClaimError::Claimed));
        assert_eq!(t.coins(ticket, 3, T0), Err(ClaimError::Claimed));
        assert_eq!(t.claim(ticket, 4, T0), Ok(()));
        assert_eq!(t.claim(ticket, 0, T0), Ok(()));
        assert_eq!(t.claim(ticket, 24, T0), Ok(()));
        assert_eq!(t.claim(ticket, 24, T0), Err(ClaimError::Claimed));
        assert_eq!(t.claim(0, 1, T0), Err(ClaimError::NotFound));
    }
}
