//! The healing commands of PROTOCOL.md section 8b that answer from this server's own
//! records and tickets: get_ticket (2/40), validate_ticket (2/50, the claim a fixing
//! peer makes) and find (2/60). Group 2 has no other command here but fix (2/80),
//! which calls the peers; 2/41 is not registered (6).
//!
//! Checks common to all three: a request with no body at all is 36 EMPTY_REQUEST, a
//! payload shorter than one entry 16, one that is not a whole number of entries 39.
//! The shard byte is not consulted (no 20 here). Coins are *known* as in 8a; a store
//! that cannot read answers 252.

mod tickets;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use raida_core::keys::{An, CoinId};
use raida_core::{Command, RequestContext, Runs, Status, StatusByte, Transport};

pub mod fix;

use crate::payload::{self, AN, COIN_REF};

pub use tickets::{ClaimError, IssueError, TicketTable, CLAIM_INDICES};

/// The command group of the healing commands.
pub const HEALING_GROUP: u8 = 2;
/// get_ticket: `n x [coin, AN]`.
pub const GET_TICKET: u8 = 40;
/// validate_ticket: `raida index (1) + ticket (4)`.
pub const VALIDATE_TICKET: u8 = 50;
/// find: `n x [coin, AN, PAN]`.
pub const FIND: u8 = 60;
/// fix: `n x [coin] + PG + 25 x ticket`, claiming the tickets from the peers ([`fix`]).
pub const FIX: u8 = 80;

/// 18 WRONG_RAIDA: a claim's RAIDA index is 25 or more, or the claim does not come
/// over TCP from that RAIDA's address.
pub const WRONG_RAIDA: StatusByte = StatusByte(18);
/// 42 NO_TICKET_SLOT: no room for another ticket.
pub const NO_TICKET_SLOT: StatusByte = StatusByte(42);
/// 43 NO_TICKET_FOUND: ticket 0, unknown, expired, or none of its coins still holds
/// the AN that matched at issue.
pub const NO_TICKET_FOUND: StatusByte = StatusByte(43);
/// 44 TICKET_CLAIMED_ALREADY: the ticket was claimed for this RAIDA index already.
pub const TICKET_CLAIMED_ALREADY: StatusByte = StatusByte(44);
/// 208 FIND_NEITHER: no coin's record equals its AN or its PAN.
pub const FIND_NEITHER: StatusByte = StatusByte(208);
/// 209 FIND_ALL_AN: every coin's record equals its AN.
pub const FIND_ALL_AN: StatusByte = StatusByte(209);
/// 210 FIND_ALL_PAN: every coin's record equals its PAN.
pub const FIND_ALL_PAN: StatusByte = StatusByte(210);
/// 211 FIND_MIXED: anything else; the body is one value per coin.
pub const FIND_MIXED: StatusByte = StatusByte(211);

/// What the healing commands are built with: the `[healing]` bounds of the tickets,
/// and who may claim them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealingSetup {
    /// `[healing] ticket_lifetime_s`.
    pub ticket_lifetime: Duration,
    /// `[healing] max_tickets`.
    pub max_tickets: usize,
    /// `[healing] max_ticket_coins`.
    pub max_ticket_coins: usize,
    /// `[server] raida_servers`, resolved by the driver once at start: index i the
    /// address of RAIDA i, `None` where the entry is absent or did not resolve. A
    /// claim for RAIDA i is taken only from the IP address of entry i.
    pub raida_servers: Vec<Option<SocketAddr>>,
    /// Every IP address each `raida_servers` host resolved to (index i = RAIDA i), when
    /// a host has several: a claim for RAIDA i may come from any of entry i's. May be
    /// empty: `raida_servers` alone then decides.
    pub raida_ips: Vec<Vec<IpAddr>>,
    /// `[healing] claim_from`: addresses any claim may come from besides.
    pub claim_from: Vec<IpAddr>,
}

impl Default for HealingSetup {
    /// The `[healing]` defaults, no `raida_servers` (every claim 18) and no
    /// `claim_from`.
    fn default() -> Self {
        HealingSetup {
            ticket_lifetime: Duration::from_secs(300),
            max_tickets: 65_536,
            max_ticket_coins: 1 << 20,
            raida_servers: Vec::new(),
            raida_ips: Vec::new(),
            claim_from: Vec::new(),
        }
    }
}

impl HealingSetup {
    /// Whether a claim for RAIDA `raida` may come from `peer`: its IP (an
    /// IPv4-mapped IPv6 address counts as the IPv4 address) is entry `raida`'s of
    /// `raida_servers` or `raida_ips`, or one of `claim_from`.
    pub fn may_claim(&self, raida: u8, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        let listed = self
            .raida_servers
            .get(usize::from(raida))
            .copied()
            .flatten()
            .is_some_and(|a| canonical(a.ip()) == peer)
            || self
                .raida_ips
                .get(usize::from(raida))
                .is_some_and(|ips| ips.iter().any(|&ip| canonical(ip) == peer));
        listed || self.claim_from.iter().any(|&a| canonical(a) == peer)
    }
}

/// `ip`, with an IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The healing commands served from this server's records, with their (group,
/// command), sharing one ticket table.
pub fn commands(setup: HealingSetup) -> Vec<(u8, u8, Arc<dyn Command>)> {
    let tickets = Arc::new(TicketTable::new(
        setup.ticket_lifetime,
        setup.max_tickets,
        setup.max_ticket_coins,
    ));
    vec![
        (
            HEALING_GROUP,
            GET_TICKET,
            Arc::new(GetTicket {
                tickets: Arc::clone(&tickets),
            }) as Arc<dyn Command>,
        ),
        (
            HEALING_GROUP,
            VALIDATE_TICKET,
            Arc::new(ValidateTicket {
                tickets,
                setup: Arc::new(setup),
            }),
        ),
        (HEALING_GROUP, FIND, Arc::new(Find)),
    ]
}

/// The checks of section 8b before any coin: 36, 16, 39 (no shard check). `Ok` holds
/// the number of entries.
fn check(ctx: &RequestContext<'_>, entry: usize) -> Result<usize, Status> {
    if !ctx.has_body {
        return Err(Status::EmptyRequest);
    }
    let len = ctx.payload.len();
    if len < entry {
        return Err(Status::InvalidPacketLength);
    }
    if len % entry != 0 {
        return Err(Status::CoinsNotDiv);
    }
    Ok(len / entry)
}

/// The record AN of every entry's coin (the coin at the start of each `entry`-byte
/// chunk); `Err(40)` when one is unknown, `Err(252)` when the store fails.
fn records(ctx: &RequestContext<'_>, entry: usize) -> Result<Vec<(CoinId, An)>, Status> {
    ctx.payload
        .chunks_exact(entry)
        .map(|e| {
            let coin = payload::coin(e);
            match ctx.store.record(coin, ctx.arrived) {
                Ok(Some(r)) => Ok((coin, r.an)),
                Ok(None) => Err(Status::InvalidSnOrDenomination),
                Err(_) => Err(Status::Internal),
            }
        })
        .collect()
}

/// get_ticket (2/40): `n x [coin (5), AN (16)]`. 40 when a coin is unknown (no ticket
/// is made); 242 without a body when no AN matches; else a ticket holding the coins
/// whose AN matched (each once, in first-occurrence order, with that AN): 241 + ticket
/// when every AN matched, 243 + bitmap + ticket otherwise; 42 when there is no room
/// for it. No record changes.
#[derive(Debug)]
pub struct GetTicket {
    tickets: Arc<TicketTable>,
}

const TICKET_ENTRY: usize = COIN_REF + AN;

impl Command for GetTicket {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        if let Err(status) = check(ctx, TICKET_ENTRY) {
            return status.into();
        }
        let stored = match records(ctx, TICKET_ENTRY) {
            Ok(r) => r,
            Err(status) => return status.into(),
        };
        let mut passed = Vec::with_capacity(stored.len());
        let mut held: Vec<(CoinId, An)> = Vec::new();
        for (entry, (coin, an)) in ctx.payload.chunks_exact(TICKET_ENTRY).zip(stored) {
            let matched = payload::an(&entry[COIN_REF..]) == an;
            passed.push(matched);
            if matched && !held.iter().any(|(c, _)| *c == coin) {
                held.push((coin, an));
            }
        }
        if held.is_empty() {
            return Status::AllFail.into();
        }
        let ticket = match self.tickets.issue(held, ctx.arrived, &ctx.random()) {
            Ok(t) => t,
            Err(IssueError::NoRoom) => return NO_TICKET_SLOT,
        };
        let status = payload::per_coin_answer(&passed, output);
        output.extend_from_slice(&ticket.to_be_bytes());
        status.into()
    }
}

/// validate_ticket (2/50): `raida index r (1), ticket (4)`, the claim a fixing RAIDA
/// makes. 16 unless the payload is 5 bytes; 18 when r >= 25, or the request did not
/// come over TCP from RAIDA r's address ([`HealingSetup::may_claim`]), before the
/// ticket is looked up; 43 for ticket 0, unknown or expired; 44 when claimed for r
/// already; 43 (nothing recorded) when none of its coins' records still holds the AN
/// that matched at issue. Else 250 with those coins (5 bytes each, ticket order) and
/// the claim for r recorded, atomically: of two concurrent claims exactly one gets 250.
#[derive(Debug)]
pub struct ValidateTicket {
    tickets: Arc<TicketTable>,
    setup: Arc<HealingSetup>,
}

impl Command for ValidateTicket {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        if !ctx.has_body {
            return Status::EmptyRequest.into();
        }
        let &[raida, a, b, c, d] = ctx.payload else {
            return Status::InvalidPacketLength.into();
        };
        if raida >= CLAIM_INDICES
            || ctx.transport != Transport::Tcp
            || !self.setup.may_claim(raida, ctx.peer.ip())
        {
            return WRONG_RAIDA;
        }
        let ticket = u32::from_be_bytes([a, b, c, d]);
        if ticket == 0 {
            return NO_TICKET_FOUND;
        }
        let coins = match self.tickets.coins(ticket, raida, ctx.arrived) {
            Ok(coins) => coins,
            Err(e) => return claim_status(e),
        };
        // The store is read outside the table's lock; the claim below is the one
        // atomic step.
        let mut vouched = Vec::with_capacity(coins.len());
        for (coin, an) in coins {
            match ctx.store.record(coin, ctx.arrived) {
                Ok(Some(r)) if r.an == an => vouched.push(coin),
                Ok(_) => {}
                Err(_) => return Status::Internal.into(),
            }
        }
        if vouched.is_empty() {
            return NO_TICKET_FOUND;
        }
        if let Err(e) = self.tickets.claim(ticket, raida, ctx.arrived) {
            return claim_status(e);
        }
        for coin in vouched {
            output.push(coin.denomination as u8);
            output.extend_from_slice(&coin.serial.to_be_bytes());
        }
        Status::Success.into()
    }
}

fn claim_status(e: ClaimError) -> StatusByte {
    match e {
        ClaimError::NotFound => NO_TICKET_FOUND,
        ClaimError::Claimed => TICKET_CLAIMED_ALREADY,
    }
}

/// find (2/60): `n x [coin (5), AN (16), PAN (16)]`. 40 when a coin is unknown; per
/// coin 1 when its record equals AN, else 2 when it equals PAN, else 0: 209 when every
/// value is 1, 210 when every one is 2, 208 when every one is 0, else 211 with the
/// values (one byte per coin). No record changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Find;

const FIND_ENTRY: usize = COIN_REF + AN + AN;

impl Command for Find {
    /// On the event loop when its records are in memory, else on a worker.
    fn runs(&self) -> Runs {
        Runs::Store
    }

    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        if let Err(status) = check(ctx, FIND_ENTRY) {
            return status.into();
        }
        let stored = match records(ctx, FIND_ENTRY) {
            Ok(r) => r,
            Err(status) => return status.into(),
        };
        let values: Vec<u8> = ctx
            .payload
            .chunks_exact(FIND_ENTRY)
            .zip(stored)
            .map(|(entry, (_, record))| {
                if payload::an(&entry[COIN_REF..]) == record {
                    1
                } else if payload::an(&entry[COIN_REF + AN..]) == record {
                    2
                } else {
                    0
                }
            })
            .collect();
        let all = |v: u8| values.iter().all(|&x| x == v);
        if all(1) {
            FIND_ALL_AN
        } else if all(2) {
            FIND_ALL_PAN
        } else if all(0) {
            FIND_NEITHER
        } else {
            output.extend_from_slice(&values);
            FIND_MIXED
        }
    }
}
