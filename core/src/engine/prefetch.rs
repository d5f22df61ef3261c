//! Cache hints for a batch of datagrams: the coins its requests will look up, told to
//! the key store before the first request is served.
//!
//! A resident read is one dependent miss on the record's cache line (the store's pages
//! are hundreds of megabytes, read at random). Served one by one, each request waits
//! for its own miss on the loop; hinted for the whole batch first, the misses overlap
//! and most records are in the cache when their request runs (`bench/RESULTS.md`:
//! detect-1 over UDP 0.78-0.82 of echo without the hint, 0.90-0.92 with it).
//!
//! Nothing is decided here: no request is checked, answered or counted, and a
//! datagram that turns out invalid only costs a wasted hint. Only what can be read
//! without a key or a decryption is hinted: the key coins a header names (types 1, 4
//! and 5) and the coins of a type-0 payload, as its command reads them
//! ([`Command::prefetch_coins`](crate::Command::prefetch_coins)).

use raida_wire::{Encryption, KeyId, RequestHeader, CHALLENGE_LEN, SHORT_HEADER_LEN, TRAILER};

use super::Engine;
use crate::command::CommandRegistry;
use crate::keys::CoinId;

/// Most coins hinted for one batch: past a few hundred lines the first would be
/// evicted from the CPU's cache before their requests run.
pub(crate) const MAX_PREFETCH_COINS: usize = 256;

impl Engine {
    /// A batch of datagrams the driver read at once, before it hands them to
    /// [`handle_datagram`](Self::handle_datagram) one by one: hints the coins their
    /// requests will look up to the key store ([`KeyStore::prefetch`]), at most
    /// 256 (`MAX_PREFETCH_COINS`). Only a hint (see the module documentation): skipping it
    /// changes no answer.
    ///
    /// [`KeyStore::prefetch`]: crate::keys::KeyStore::prefetch
    pub fn prefetch_datagrams<'a>(&mut self, datagrams: impl IntoIterator<Item = &'a [u8]>) {
        let mut coins = std::mem::take(&mut self.prefetch);
        coins.clear();
        for datagram in datagrams {
            if coins.len() >= MAX_PREFETCH_COINS {
                break;
            }
            coins_named(&self.commands, datagram, &mut coins);
        }
        coins.truncate(MAX_PREFETCH_COINS);
        if !coins.is_empty() {
            self.keys.prefetch(&coins);
        }
        self.prefetch = coins;
    }
}

/// Pushes the coins the request in `datagram` names where they can be read without a
/// key: its header's key coins, or its type-0 payload's coins.
fn coins_named(commands: &CommandRegistry, datagram: &[u8], coins: &mut Vec<CoinId>) {
    let Some(header) = RequestHeader::parse(datagram) else {
        return;
    };
    let Some(encryption) = Encryption::from_byte(header.encryption_byte()) else {
        return;
    };
    match header.key_id(encryption) {
        KeyId::Coin(coin) => coins.push(coin),
        KeyId::TwoCoins(first, second) => coins.extend([first, second]),
        KeyId::Locker(_) => {}
        KeyId::None => {
            let Some(command) = commands.get(header.group(), header.command()) else {
                return;
            };
            let body = datagram.get(SHORT_HEADER_LEN..).unwrap_or_default();
            let body = &body[..body.len().min(header.declared_body_len())];
            if let Some(payload) = body.get(CHALLENGE_LEN..body.len().saturating_sub(TRAILER.len()))
            {
                command.prefetch_coins(payload, coins);
            }
        }
    }
}
