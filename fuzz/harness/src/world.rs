//! The fixed world every target runs in: the fuzzed server's raida id, coin id and
//! body limit, the coins and the locker its key store holds, the commands it has
//! (echo, version and the test command [`Mirror`]), and the random bytes it is given.

use std::sync::Arc;

use raida_core::codec::{HeaderRules, RANDOM_LEN};
use raida_core::keys::{An, MemoryKeyStore, SERIAL_LIMIT};
use raida_core::{Command, CommandRegistry, EngineConfig, RequestContext, Status, StatusByte};

/// The raida id the fuzzed server has (request byte 2).
pub const RAIDA_ID: u8 = 7;
/// The coin id the fuzzed server has (request bytes 6..7).
pub const COIN_ID: u16 = 6;
/// The `max_body_size` of the fuzzed server: small, so that the header-time 16 is
/// reachable with short inputs.
pub const MAX_BODY_SIZE: usize = 1024;
/// The random bytes every 48-byte response gets (fixed, so responses are comparable).
pub const RANDOM: [u8; RANDOM_LEN] = [0xA5; RANDOM_LEN];
/// The coins the key store knows: (denomination, serial, AN).
pub const COINS: [(i8, u32, An); 3] = [
    (1, 1, *b"0123456789abcdef"),
    (-1, 0x0012_3456, [0x42; 16]),
    (6, SERIAL_LIMIT - 1, *b"last-serial-coin"),
];
/// The one locker the key store knows (type 2 requests name it by `LOCKER[..5]`).
pub const LOCKER: An = *b"LOCKRlocker-an-!";
/// Where [`Mirror`] is registered: status 250, output = payload.
pub const MIRROR: (u8, u8) = (15, 1);

/// A test command: status 250, output = the payload, run on a worker (not inline), so
/// the fuzzers reach encrypted response bodies of any length.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mirror;

impl Command for Mirror {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        output.extend_from_slice(ctx.payload);
        Status::Success.into()
    }
}

/// The key store of the fuzzed server: [`COINS`] and [`LOCKER`].
pub fn keys() -> MemoryKeyStore {
    let k = MemoryKeyStore::new();
    for (denomination, serial, an) in COINS {
        k.insert_coin(denomination, serial, an);
    }
    k.insert_locker(LOCKER);
    k
}

/// Echo (0, 0), version (0, 1) and [`Mirror`] at [`MIRROR`].
pub fn commands() -> CommandRegistry {
    let mut c = CommandRegistry::with_builtins();
    if c.register(MIRROR.0, MIRROR.1, Arc::new(Mirror)).is_err() {
        unreachable!("group 15 is registrable");
    }
    c
}

/// The header rules of the fuzzed server.
pub fn rules() -> HeaderRules {
    HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: COIN_ID,
        max_body_size: MAX_BODY_SIZE,
    }
}

/// The engine configuration of the fuzzed server (defaults otherwise).
pub fn engine_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.raida_id = RAIDA_ID;
    config.coin_id = COIN_ID;
    config.max_body_size = MAX_BODY_SIZE;
    config
}
