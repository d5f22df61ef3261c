//! The witness commands (invariant 6: every handler sees exactly its own request's
//! context). The simulated server registers two handlers, one on the workers and one
//! inline, whose output is everything of their [`RequestContext`]; the world decodes
//! each response to a witness request with the client library's verifier and compares
//! every field with what the client put in its request and with the client's own
//! address, apart from core's code (the deployed server's UDP path leaked fields of
//! one client's datagram into the next one's: PROTOCOL.md section 11).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use raida_client::{Coin, Keys, Request};
use raida_core::{
    Command, CommandRegistry, KeyId, RequestContext, Runs, Status, StatusByte, Transport,
};

use crate::server::COINS;

/// The witnesses' command group.
pub const GROUP: u8 = 15;
/// The witness that runs on the workers: (15, 2).
pub const ON_WORKER: u8 = 2;
/// The witness that runs inline, on the engine's thread when it can: (15, 3).
pub const INLINE: u8 = 3;

/// Registers both witnesses in `registry`.
pub fn register(registry: &mut CommandRegistry) {
    for (command, runs) in [(ON_WORKER, Runs::Worker), (INLINE, Runs::Inline)] {
        // (15, 2) and (15, 3) are free in a registry of built-ins: a failure here is a
        // programming error in the simulator, found by its first run.
        if let Err(e) = registry.register(GROUP, command, Arc::new(Witness { runs })) {
            panic!("witness (15, {command}): {e}");
        }
    }
}

/// Whether (`group`, `command`) is a witness.
pub fn is_witness(group: u8, command: u8) -> bool {
    group == GROUP && (command == ON_WORKER || command == INLINE)
}

/// A handler that answers with everything it was told about its request.
#[derive(Debug)]
struct Witness {
    runs: Runs,
}

impl Command for Witness {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        Context::of(ctx).encode(output);
        Status::Success.into()
    }

    fn runs(&self) -> Runs {
        self.runs
    }
}

/// Whose key a request was encrypted with, as the client named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Type 0.
    None,
    /// Types 1 and 4: (denomination, serial).
    Coin((i8, u32)),
    /// Type 2: the locker's 5-byte AN prefix.
    Locker([u8; 5]),
    /// Type 5: both coins, in request order.
    TwoCoins((i8, u32), (i8, u32)),
}

/// A request context as a witness writes it down: every field of
/// [`RequestContext`], the store reduced to whether it holds the server's coins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// Request byte 4.
    pub group: u8,
    /// Request byte 5.
    pub command: u8,
    /// Request byte 3.
    pub shard: u8,
    /// Request byte 2.
    pub raida_id: u8,
    /// Request bytes 6..7.
    pub coin_id: u16,
    /// Request byte 16.
    pub encryption: u8,
    /// Whose key.
    pub key: Key,
    /// The nonce bytes (8 of a 32-byte header, 24 of a 48-byte one).
    pub nonce: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// When the request arrived whole, microseconds of the world's clock.
    pub arrived_us: u64,
    /// The decrypted command payload.
    pub payload: Vec<u8>,
    /// Whether the request had a body.
    pub has_body: bool,
    /// Whether the store holds the simulated server's coins with their ANs.
    pub store_is_the_servers: bool,
}

impl Context {
    /// What the handler was told.
    fn of(ctx: &RequestContext<'_>) -> Context {
        let coin = |c: raida_core::CoinId| (c.denomination, c.serial);
        let key = match ctx.key {
            KeyId::None => Key::None,
            KeyId::Coin(c) => Key::Coin(coin(c)),
            KeyId::Locker(prefix) => Key::Locker(prefix),
            KeyId::TwoCoins(a, b) => Key::TwoCoins(coin(a), coin(b)),
        };
        let store_is_the_servers = COINS.iter().all(|&(d, s, an)| {
            ctx.store.lookup(raida_core::CoinId::new(d, s), ctx.arrived)
                == raida_core::keys::Lookup::Found(an)
        });
        Context {
            group: ctx.group,
            command: ctx.command,
            shard: ctx.shard,
            raida_id: ctx.raida_id,
            coin_id: ctx.coin_id,
            encryption: ctx.encryption.byte(),
            key,
            nonce: ctx.nonce.to_vec(),
            peer: ctx.peer,
            transport: ctx.transport,
            arrived_us: ctx.arrived.as_micros(),
            payload: ctx.payload.to_vec(),
            has_body: ctx.has_body,
            store_is_the_servers,
        }
    }

    /// The context the handler of `request` must see when it arrived whole from
    /// `peer` over `transport` at `arrived_us`, from the client's named fields alone
    /// (PROTOCOL.md sections 2 and 3). `None` when no handler of it sees a context
    /// the fields predict: not a witness request, or built with faults (other than no
    /// body at all, which types 0, 1, 2 serve with an empty payload).
    pub fn expected(
        request: &Request,
        peer: SocketAddr,
        transport: Transport,
        arrived_us: u64,
    ) -> Option<Context> {
        if !is_witness(request.group, request.command) {
            return None;
        }
        let mut faults = request.faults;
        let no_body = std::mem::take(&mut faults.no_body);
        if faults != raida_client::Faults::default() {
            return None;
        }
        let pair = |c: Coin| (c.denomination, c.serial);
        let (encryption, key) = match &request.keys {
            Keys::None => (0, Key::None),
            Keys::Coin { coin, .. } => (1, Key::Coin(pair(*coin))),
            Keys::Locker { an } => (2, Key::Locker([an[0], an[1], an[2], an[3], an[4]])),
            Keys::Coin256 { coin, .. } => (4, Key::Coin(pair(*coin))),
            Keys::TwoCoins256 { first, second, .. } => {
                (5, Key::TwoCoins(pair(*first), pair(*second)))
            }
        };
        if no_body && encryption >= 4 {
            // Without a body nothing authenticates the request: answered 16.
            return None;
        }
        // 32-byte header: bytes 24..31 are nonce[0..8], the echo bytes 30..31. 48-byte:
        // 24..47 are the nonce, type 5's second coin 24..28, the echo bytes 46..47.
        let mut nonce;
        if encryption < 4 {
            nonce = request.nonce[..8].to_vec();
            nonce[6..8].copy_from_slice(&request.echo);
        } else {
            nonce = request.nonce.to_vec();
            if let Key::TwoCoins(_, (d, s)) = key {
                nonce[0] = d as u8;
                nonce[1..5].copy_from_slice(&s.to_be_bytes());
            }
            nonce[22..24].copy_from_slice(&request.echo);
        }
        Some(Context {
            group: request.group,
            command: request.command,
            shard: request.shard,
            raida_id: request.raida_id,
            coin_id: request.coin_id,
            encryption,
            key,
            nonce,
            peer,
            transport,
            arrived_us,
            payload: if no_body {
                Vec::new()
            } else {
                request.payload.clone()
            },
            has_body: !no_body,
            store_is_the_servers: true,
        })
    }

    /// The fields in which `self` (what a handler saw) differs from `own` (its own
    /// request's), one line each.
    pub fn differences(&self, own: &Context) -> Vec<String> {
        let mut out = Vec::new();
        if self == own {
            // The common case: nothing to print.
            return out;
        }
        let mut field = |name: &str, saw: &dyn fmt::Debug, sent: &dyn fmt::Debug| {
            let (saw, sent) = (format!("{saw:?}"), format!("{sent:?}"));
            if saw != sent {
                out.push(format!(
                    "{name}: the handler saw {saw}, its request has {sent}"
                ));
            }
        };
        field("group", &self.group, &own.group);
        field("command", &self.command, &own.command);
        field("shard", &self.shard, &own.shard);
        field("raida id", &self.raida_id, &own.raida_id);
        field("coin id", &self.coin_id, &own.coin_id);
        field("encryption", &self.encryption, &own.encryption);
        field("key", &self.key, &own.key);
        field("nonce", &self.nonce, &own.nonce);
        field("peer", &self.peer, &own.peer);
        field("transport", &self.transport, &own.transport);
        field("arrived", &self.arrived_us, &own.arrived_us);
        field("payload", &self.payload, &own.payload);
        field("has_body", &self.has_body, &own.has_body);
        field(
            "store",
            &self.store_is_the_servers,
            &own.store_is_the_servers,
        );
        out
    }

    /// Appends the witness's wire form: the fixed fields, the key (a tag and 10
    /// bytes), the nonce and the payload with their lengths, the peer.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.group, self.command, self.shard, self.raida_id]);
        out.extend_from_slice(&self.coin_id.to_be_bytes());
        out.push(self.encryption);
        let mut key = [0u8; 11];
        let coin = |at: &mut [u8], (d, s): (i8, u32)| {
            at[0] = d as u8;
            at[1..5].copy_from_slice(&s.to_be_bytes());
        };
        match self.key {
            Key::None => {}
            Key::Coin(c) => {
                key[0] = 1;
                coin(&mut key[1..6], c);
            }
            Key::Locker(prefix) => {
                key[0] = 2;
                key[1..6].copy_from_slice(&prefix);
            }
            Key::TwoCoins(a, b) => {
                key[0] = 3;
                coin(&mut key[1..6], a);
                coin(&mut key[6..11], b);
            }
        }
        out.extend_from_slice(&key);
        out.push(self.nonce.len() as u8);
        out.extend_from_slice(&self.nonce);
        match self.peer.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&self.peer.port().to_be_bytes());
        out.push(match self.transport {
            Transport::Tcp => 0,
            Transport::Udp => 1,
        });
        out.extend_from_slice(&self.arrived_us.to_be_bytes());
        out.push(u8::from(self.has_body));
        out.push(u8::from(self.store_is_the_servers));
        out.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Reads a witness's output back; `None` when it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Context> {
        let mut r = Reader(bytes);
        let (group, command, shard, raida_id) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        let coin_id = u16::from_be_bytes(r.array()?);
        let encryption = r.u8()?;
        let key: [u8; 11] = r.array()?;
        let coin = |b: &[u8]| (b[0] as i8, u32::from_be_bytes([b[1], b[2], b[3], b[4]]));
        let key = match key[0] {
            0 => Key::None,
            1 => Key::Coin(coin(&key[1..6])),
            2 => Key::Locker([key[1], key[2], key[3], key[4], key[5]]),
            3 => Key::TwoCoins(coin(&key[1..6]), coin(&key[6..11])),
            _ => return None,
        };
        let n = usize::from(r.u8()?);
        let nonce = r.take(n)?.to_vec();
        let ip = match r.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
            _ => return None,
        };
        let peer = SocketAddr::new(ip, u16::from_be_bytes(r.array()?));
        let transport = match r.u8()? {
            0 => Transport::Tcp,
            1 => Transport::Udp,
            _ => return None,
        };
        let arrived_us = u64::from_be_bytes(r.array()?);
        let has_body = r.u8()? != 0;
        let store_is_the_servers = r.u8()? != 0;
        let n = usize::from(u16::from_be_bytes(r.array()?));
        let payload = r.take(n)?.to_vec();
        if !r.0.is_empty() {
            return None;
        }
        Some(Context {
            group,
            command,
            shard,
            raida_id,
            coin_id,
            encryption,
            key,
            nonce,
            peer,
            transport,
            arrived_us,
            payload,
            has_body,
            store_is_the_servers,
        })
    }
}

/// A cursor over a witness's output.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{self, ClientRequest};

    fn witness_request(encryption: u8) -> Request {
        let mut r = request::for_command(GROUP, ON_WORKER, encryption);
        r.nonce = std::array::from_fn(|i| i as u8 + 1);
        r.echo = [0xE0, 0xE1];
        r.payload = b"payload".to_vec();
        r
    }

    #[test]
    fn a_context_reads_back_as_it_was_written() {
        let peer = SocketAddr::from(([10, 0, 0, 9], 50_000));
        for enc in [0, 1, 2, 4, 5] {
            let own = Context::expected(&witness_request(enc), peer, Transport::Udp, 1_234_567);
            let Some(own) = own else {
                panic!("type {enc}: a witness request has an expected context");
            };
            let mut out = Vec::new();
            own.encode(&mut out);
            assert_eq!(Context::decode(&out), Some(own.clone()), "type {enc}");
            out.push(0);
            assert_eq!(Context::decode(&out), None, "type {enc}: a trailing byte");
        }
    }

    #[test]
    fn the_expected_nonce_and_key_are_the_request_bytes_the_client_sent() {
        let peer = SocketAddr::from(([10, 0, 0, 9], 40_000));
        for enc in [0, 1, 2, 4, 5] {
            let req = witness_request(enc);
            let built = ClientRequest::new(req.clone());
            let bytes = built.bytes();
            let hlen = if enc < 4 { 32 } else { 48 };
            let own = Context::expected(&req, peer, Transport::Tcp, 0);
            let own = own.map(|c| (c.nonce, c.key, c.encryption));
            let coin = |at: usize| {
                let b = &bytes[at..at + 5];
                (b[0] as i8, u32::from_be_bytes([b[1], b[2], b[3], b[4]]))
            };
            let key = match enc {
                0 => Key::None,
                1 => Key::Coin(coin(17)),
                2 => Key::Locker([bytes[17], bytes[18], bytes[19], bytes[20], bytes[21]]),
                4 => Key::Coin(coin(19)),
                _ => Key::TwoCoins(coin(19), coin(24)),
            };
            assert_eq!(
                own,
                Some((bytes[24..hlen].to_vec(), key, enc)),
                "type {enc}"
            );
        }
    }

    #[test]
    fn only_witness_requests_the_fields_predict_have_an_expected_context() {
        let peer = SocketAddr::from(([10, 0, 0, 9], 40_000));
        let at = |r: &Request| Context::expected(r, peer, Transport::Tcp, 0).is_some();
        assert!(!at(&request::echo(0)), "echo is no witness");
        let mut faulty = witness_request(1);
        faulty.faults.bad_crc = true;
        assert!(!at(&faulty), "a faulty body never reaches the handler");
        let mut empty = witness_request(1);
        empty.faults.no_body = true;
        assert!(at(&empty), "types 0, 1, 2 serve a request without a body");
        let mut empty = witness_request(4);
        empty.faults.no_body = true;
        assert!(!at(&empty), "types 4, 5 answer it 16");
    }
}
