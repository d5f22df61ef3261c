//! What core's engine tests share: the server they run (ids, coins, a store whose pages
//! load lazily), requests built from named fields, and a `raida_testkit::Driver`
//! around the engine (virtual clock, in-memory sockets, the worker, the leak check).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use raida_client::{Coin, Faults, Keys, Request};
use raida_core::codec::RANDOM_LEN;
use raida_core::keys::{
    An, Change, CoinId, KeyStore, Lookup, MemoryKeyStore, PageId, Record, StoreError,
};
use raida_core::{CommandRegistry, Engine, EngineConfig, Timestamp};
pub(crate) use raida_testkit::Driver;

pub(crate) const RAIDA_ID: u8 = 7;
pub(crate) const COIN_ID: u16 = 6;
pub(crate) const AN1: [u8; 16] = *b"0123456789abcdef";

/// The random bytes every job of this harness gets: fixed, so responses are comparable.
pub(crate) const RANDOM: [u8; RANDOM_LEN] = [0xA5; RANDOM_LEN];

pub(crate) fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.raida_id = RAIDA_ID;
    config.coin_id = COIN_ID;
    config
}

pub(crate) fn keys() -> MemoryKeyStore {
    let k = MemoryKeyStore::new();
    k.insert_coin(1, 1, AN1);
    k
}

pub(crate) fn peer(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000 + n))
}

/// A store whose pages are not in memory until loaded: the coins of [`keys`], each
/// page answering `NotInMemory` until [`KeyStore::load`] brings it in (or fails, for
/// the pages in `failing`). Counts the loads, and keeps every cache hint it gets
/// ([`KeyStore::prefetch`]) in `hints`, one entry per call.
#[derive(Debug, Default)]
pub(crate) struct LazyStore {
    pub inner: MemoryKeyStore,
    pub loaded: Mutex<BTreeSet<PageId>>,
    pub failing: Mutex<BTreeSet<PageId>>,
    pub loads: AtomicUsize,
    pub hints: Mutex<Vec<Vec<CoinId>>>,
}

impl LazyStore {
    pub(crate) fn new() -> LazyStore {
        LazyStore {
            inner: keys(),
            ..LazyStore::default()
        }
    }

    fn is_loaded(&self, page: PageId) -> bool {
        self.loaded
            .lock()
            .map(|l| l.contains(&page))
            .unwrap_or(false)
    }
}

impl KeyStore for LazyStore {
    fn lookup(&self, coin: CoinId, now: Timestamp) -> Lookup {
        match PageId::of(coin) {
            Some((page, _)) if !self.is_loaded(page) => Lookup::NotInMemory(page),
            _ => self.inner.lookup(coin, now),
        }
    }

    fn locker_an(&self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.inner.locker_an(prefix, now)
    }

    fn load(&self, page: PageId, _now: Timestamp) -> Result<(), StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self
            .failing
            .lock()
            .map(|f| f.contains(&page))
            .unwrap_or(false)
        {
            return Err(StoreError::Unreadable {
                page,
                source: std::io::Error::other("injected read error"),
            });
        }
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.insert(page);
        }
        Ok(())
    }

    fn record(&self, coin: CoinId, now: Timestamp) -> Result<Option<Record>, StoreError> {
        self.inner.record(coin, now)
    }

    fn modify(
        &self,
        coins: &[CoinId],
        now: Timestamp,
        change: &mut Change<'_>,
    ) -> Result<(), StoreError> {
        self.inner.modify(coins, now, change)
    }

    fn prefetch(&self, coins: &[CoinId]) {
        if let Ok(mut hints) = self.hints.lock() {
            hints.push(coins.to_vec());
        }
    }
}

/// A driver around an engine of [`config`] serving the built-in commands with the
/// keys of [`keys`].
pub(crate) fn harness() -> Driver {
    harness_with(config(), CommandRegistry::with_builtins())
}

/// A driver around an engine of `config` serving `commands` with the keys of [`keys`].
pub(crate) fn harness_with(config: EngineConfig, commands: CommandRegistry) -> Driver {
    harness_with_store(config, commands, Arc::new(keys()))
}

/// A driver around an engine of `config` serving `commands` with keys from `store`,
/// its clock at 1 s, its jobs given [`RANDOM`].
pub(crate) fn harness_with_store(
    config: EngineConfig,
    commands: CommandRegistry,
    store: Arc<dyn KeyStore>,
) -> Driver {
    let engine = Engine::new(config, commands, store);
    Driver::new(engine, Timestamp::from_micros(1_000_000), RANDOM)
}

// ----- requests built from named fields -----------------------------------------------

/// A request's named fields (PROTOCOL.md sections 2 and 3), built into bytes by the
/// one request builder, the client's (`raida_client::Request`, with `Faults` for the
/// fields a well-formed request cannot have).
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub routing: u8,
    pub split: u8,
    pub raida: u8,
    pub shard: u8,
    pub group: u8,
    pub command: u8,
    pub coin_id: u16,
    pub encryption: u8,
    pub echo: [u8; 2],
    pub nonce: [u8; 24],
    /// (denomination, serial) of the key coin for types 1 and 4 (its AN is [`AN1`]).
    pub coin: (i8, u32),
    pub payload: Vec<u8>,
    /// Override of the declared body length.
    pub declared: Option<u16>,
}

impl Req {
    pub(crate) fn echo(encryption: u8) -> Req {
        Req {
            routing: 1,
            split: 0,
            raida: RAIDA_ID,
            shard: 0,
            group: 0,
            command: 0,
            coin_id: COIN_ID,
            encryption,
            echo: [0xAB, 0xCD],
            nonce: [0x11; 24],
            coin: (1, 1),
            payload: Vec::new(),
            declared: None,
        }
    }

    pub(crate) fn version(encryption: u8) -> Req {
        Req {
            command: 1,
            ..Req::echo(encryption)
        }
    }

    /// The request bytes, as a client builds them.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let coin = Coin::new(self.coin.0, self.coin.1);
        let keys = match self.encryption {
            1 => Keys::Coin { coin, an: AN1 },
            4 => Keys::Coin256 { coin, an: AN1 },
            _ => Keys::None,
        };
        let mut req = Request::new(self.raida, self.group, self.command, keys);
        req.shard = self.shard;
        req.coin_id = self.coin_id;
        req.echo = self.echo;
        req.nonce = self.nonce;
        req.challenge = [0x5C; 12];
        req.payload = self.payload.clone();
        let mut faults = Faults::default();
        faults.routing = (self.routing != 1).then_some(self.routing);
        faults.split_id = (self.split != 0).then_some(self.split);
        faults.encryption_byte = (!matches!(self.encryption, 0 | 1 | 4)).then_some(self.encryption);
        faults.declared_body_len = self.declared;
        req.faults = faults;
        match req.build() {
            Ok(built) => built.bytes().to_vec(),
            Err(e) => panic!("a test request does not build: {e}"),
        }
    }
}

/// The status byte of a response.
pub(crate) fn status_of(response: &[u8]) -> u8 {
    response[2]
}
