//! The encryption types of request byte 16 (PROTOCOL.md section 3).

/// The encryption types this server speaks (request byte 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// 0: clear text, CRC-checked challenge.
    None,
    /// 1: AES-128-CTR under a coin's AN.
    CoinAes128,
    /// 2: AES-128-CTR under a locker's AN, found by a 5-byte prefix.
    LockerAes128,
    /// 4: AES-256-CTR + HMAC-SHA256 under SHA-256 of one coin's AN.
    CoinAes256,
    /// 5: AES-256-CTR + HMAC-SHA256 under SHA-256 of two coins' ANs.
    TwoCoinAes256,
}

impl Encryption {
    /// The type byte 16 names, if this server speaks it.
    pub const fn from_byte(b: u8) -> Option<Encryption> {
        match b {
            0 => Some(Encryption::None),
            1 => Some(Encryption::CoinAes128),
            2 => Some(Encryption::LockerAes128),
            4 => Some(Encryption::CoinAes256),
            5 => Some(Encryption::TwoCoinAes256),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            Encryption::None => 0,
            Encryption::CoinAes128 => 1,
            Encryption::LockerAes128 => 2,
            Encryption::CoinAes256 => 4,
            Encryption::TwoCoinAes256 => 5,
        }
    }

    /// Types 4 and 5: 48-byte headers, HMAC-authenticated bodies.
    pub const fn is_aes256(self) -> bool {
        matches!(self, Encryption::CoinAes256 | Encryption::TwoCoinAes256)
    }
}
