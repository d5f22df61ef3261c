//! The cache hint of a batch of datagrams (`Engine::prefetch_datagrams`): the key store
//! is told the coins the batch's requests will look up, as far as they can be read
//! without a key: a header's key coins (types 1, 4, 5) and a type-0 payload's coins as
//! its command reads them. Nothing else is read, and nothing is hinted for a request
//! that names no coin this way.

mod support;

use std::sync::Arc;

use raida_client::{Coin, Keys, Request};
use raida_core::keys::{An, CoinId, KeyStore};
use raida_core::{Command, CommandRegistry, Engine, RequestContext, Status, StatusByte};
use support::*;

/// The hints the store got, one entry per call.
fn hints(store: &LazyStore) -> Vec<Vec<CoinId>> {
    store.hints.lock().expect("lock").clone()
}

/// A command whose payload is 5-byte coin references followed by a 16-byte sum (the
/// layout of detect_sum, PROTOCOL.md 8a), naming the references as its coins.
struct Refs;

impl Command for Refs {
    fn run(&self, _ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        Status::Success.into()
    }

    fn prefetch_coins(&self, payload: &[u8], coins: &mut Vec<CoinId>) {
        let refs = &payload[..payload.len().saturating_sub(16)];
        coins.extend(
            refs.chunks_exact(5)
                .map(|r| CoinId::from_bytes([r[0], r[1], r[2], r[3], r[4]])),
        );
    }
}

const REFS: (u8, u8) = (14, 7);

fn engine() -> (Engine, Arc<LazyStore>) {
    let store = Arc::new(LazyStore::new());
    let mut commands = CommandRegistry::with_builtins();
    assert!(commands.register(REFS.0, REFS.1, Arc::new(Refs)).is_ok());
    let engine = Engine::new(config(), commands, Arc::clone(&store) as Arc<dyn KeyStore>);
    (engine, store)
}

fn coin(denomination: i8, serial: u32) -> CoinId {
    CoinId {
        denomination,
        serial,
    }
}

fn client_coin(denomination: i8, serial: u32) -> Coin {
    Coin {
        denomination,
        serial,
    }
}

/// The type-0 request for [`REFS`] naming `coins`, then a 16-byte sum.
fn refs_request(coins: &[CoinId]) -> Vec<u8> {
    let mut req = Request::new(RAIDA_ID, REFS.0, REFS.1, Keys::None);
    for c in coins {
        req.payload.push(c.denomination.to_be_bytes()[0]);
        req.payload.extend_from_slice(&c.serial.to_be_bytes());
    }
    req.payload.extend_from_slice(&[0x5A; 16]);
    req.build().expect("request builds").bytes().to_vec()
}

#[test]
fn a_type_0_payload_is_hinted_as_its_command_reads_it_and_the_batch_in_one_call() {
    let (mut engine, store) = engine();
    let first = [coin(1, 7), coin(2, 70_000)];
    let second = [coin(-8, 1)];
    let batch = [refs_request(&first), refs_request(&second)];
    engine.prefetch_datagrams(batch.iter().map(|d| &d[..]));
    // The challenge before the payload and the 16-byte sum after the references are
    // not coins: only the references are hinted, in order, in one call for the batch.
    assert_eq!(hints(&store), vec![vec![first[0], first[1], second[0]]]);
}

#[test]
fn a_header_names_its_key_coins_and_its_encrypted_body_is_not_read() {
    let (mut engine, store) = engine();
    let an: An = [0x11; 16];
    let type1 = Request::echo(
        RAIDA_ID,
        Keys::Coin {
            coin: client_coin(3, 1234),
            an,
        },
    );
    let type5 = Request::echo(
        RAIDA_ID,
        Keys::TwoCoins256 {
            first: client_coin(4, 5),
            first_an: an,
            second: client_coin(5, 6),
            second_an: an,
        },
    );
    let locker = Request::echo(RAIDA_ID, Keys::Locker { an });
    let batch: Vec<Vec<u8>> = [type1, type5, locker]
        .iter()
        .map(|r| r.build().expect("request builds").bytes().to_vec())
        .collect();
    engine.prefetch_datagrams(batch.iter().map(|d| &d[..]));
    // A locker key (type 2) names no coin.
    assert_eq!(
        hints(&store),
        vec![vec![coin(3, 1234), coin(4, 5), coin(5, 6)]]
    );
}

#[test]
fn nothing_is_hinted_for_requests_that_name_no_coin_this_way() {
    let (mut engine, store) = engine();
    // Echo names no coin; (14, 8) is not registered; a header cut short; an invalid
    // encryption byte (3, a 48-byte header answered 27).
    let echo = Request::echo(RAIDA_ID, Keys::None)
        .build()
        .expect("request builds")
        .bytes()
        .to_vec();
    let mut unregistered = refs_request(&[coin(1, 1)]);
    unregistered[5] = REFS.1 + 1;
    let short = refs_request(&[coin(1, 1)])[..20].to_vec();
    let mut invalid = refs_request(&[coin(1, 1)]);
    invalid[16] = 3;
    let batch = [echo, unregistered, short, invalid, Vec::new()];
    engine.prefetch_datagrams(batch.iter().map(|d| &d[..]));
    assert_eq!(hints(&store), Vec::<Vec<CoinId>>::new());
}

#[test]
fn a_body_is_read_only_as_far_as_its_declared_length_and_the_datagram_go() {
    let (mut engine, store) = engine();
    let coins: Vec<CoinId> = (0..4).map(|i| coin(1, i)).collect();
    let full = refs_request(&coins);
    // A datagram cut after three references and two more bytes: the payload ends where
    // the trailer would be (15 bytes), too short for the command's 16-byte sum, so it
    // names nothing; the fourth reference, past the cut, is never read.
    let cut = &full[..32 + 16 + 5 * 3 + 2];
    engine.prefetch_datagrams([cut]);
    assert_eq!(hints(&store), Vec::<Vec<CoinId>>::new());
    // A declared body length shorter than the datagram bounds the payload too.
    let mut declared_short = full.clone();
    let body = u16::try_from(16 + 5 * 2 + 16 + 2).expect("fits");
    declared_short[22..24].copy_from_slice(&body.to_be_bytes());
    engine.prefetch_datagrams([&declared_short[..]]);
    assert_eq!(hints(&store), vec![vec![coins[0], coins[1]]]);
}

#[test]
fn a_batch_hints_at_most_the_bound() {
    let (mut engine, store) = engine();
    // 60 coins a datagram, 10 datagrams: 600 named, 256 hinted (the first ones).
    let batch: Vec<Vec<u8>> = (0..10u32)
        .map(|d| refs_request(&(0..60).map(|i| coin(1, d * 60 + i)).collect::<Vec<_>>()))
        .collect();
    engine.prefetch_datagrams(batch.iter().map(|d| &d[..]));
    let hints = hints(&store);
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].len(), 256);
    assert_eq!(hints[0][255], coin(1, 255));
}
