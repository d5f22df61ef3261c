//! How requests name coins and keys (PROTOCOL.md sections 2, 3 and 10).

/// An authenticity number: the 16-byte secret of one coin or locker.
pub type An = [u8; 16];

/// A coin as requests and the store name it: denomination (a signed byte, -8..=6 on a
/// deployed RAIDA) and serial number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoinId {
    /// The denomination, sent as one signed byte.
    pub denomination: i8,
    /// The serial number, sent big-endian in 4 bytes.
    pub serial: u32,
}

impl CoinId {
    /// Coin (`denomination`, `serial`).
    pub const fn new(denomination: i8, serial: u32) -> CoinId {
        CoinId {
            denomination,
            serial,
        }
    }

    /// The coin the 5 bytes `[denomination, serial (big-endian)]` name.
    pub const fn from_bytes(b: [u8; 5]) -> CoinId {
        CoinId {
            denomination: b[0] as i8,
            serial: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
        }
    }
}

/// The key a request was encrypted with, by identity (never the key itself), as its
/// header names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyId {
    /// Type 0: no key.
    None,
    /// Types 1 and 4: the coin whose AN is the key.
    Coin(CoinId),
    /// Type 2: the locker, by the 5-byte AN prefix the request carries.
    Locker([u8; 5]),
    /// Type 5: the two coins whose ANs make the key, in request order.
    TwoCoins(CoinId, CoinId),
}

/// Records (coins) in one page of the `Data/` layout (PROTOCOL.md section 10).
pub const RECORDS_PER_PAGE: u32 = 1024;
/// Bytes in one record: the 16-byte AN, then one status byte.
pub const RECORD_BYTES: usize = 17;
/// Bytes in a complete page file (17,408). A shorter file holds no known coin.
pub const PAGE_BYTES: usize = RECORD_BYTES * RECORDS_PER_PAGE as usize;
