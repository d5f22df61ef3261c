//! The one-byte status codes the network layer emits (PROTOCOL.md section 9), and those
//! of the authentication commands (section 8a), so metrics and clients name them.

use std::fmt;

/// A response status, as carried in byte 2 of every response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Status {
    /// 2: request byte 1 (split id) is not 0.
    InvalidSplitId = 2,
    /// 3: request byte 2 is not this server's raida id.
    InvalidRaidaId = 3,
    /// 4: request byte 3 (shard) is above 3.
    InvalidShardId = 4,
    /// 5: request byte 4 (command group) is above 15.
    InvalidCommandGroup = 5,
    /// 6: no handler is registered for (group, command).
    InvalidCommand = 6,
    /// 7: request bytes 6..7 are not this server's coin id.
    InvalidCoinId = 7,
    /// 16: a length is wrong (body too short, too long, or shorter than declared).
    InvalidPacketLength = 16,
    /// 20 (authentication commands, PROTOCOL.md 8a): shards 1 and 2 live in other
    /// systems.
    ShardNotAvailable = 20,
    /// 25: a coin named by a type 4 or 5 request is not in the key store.
    EncryptionCoinNotFound = 25,
    /// 27: request byte 16 is not an encryption type this server speaks.
    InvalidEncryptionCode = 27,
    /// 33: the body does not end with `3E 3E`.
    InvalidEof = 33,
    /// 34: the key of a type 1 or 2 request is not in the key store.
    InvalidEncryption = 34,
    /// 36 (8a): a command that needs a payload got a request with no body at all.
    EmptyRequest = 36,
    /// 37: the CRC-32 in the body does not match.
    InvalidCrc = 37,
    /// 39 (8a): the payload's length is not a whole number of coin entries.
    CoinsNotDiv = 39,
    /// 40 (8a): a coin of a sum command is not known.
    InvalidSnOrDenomination = 40,
    /// 160: the connection limit was hit; the connection is refused.
    RequestRate = 160,
    /// 204: the HMAC of a type 4 or 5 body does not match.
    InvalidHmac = 204,
    /// 241 (8a): every coin passed.
    AllPass = 241,
    /// 242 (8a): no coin passed.
    AllFail = 242,
    /// 243 (8a): some coins passed: the body is a bitmap of which.
    Mixed = 243,
    /// 250: the command ran.
    Success = 250,
    /// 252: the command failed inside the server.
    Internal = 252,
    /// 254: the server could not allocate what the request needed.
    MemoryAlloc = 254,
    /// 255: request byte 0 (routing) is not 1.
    InvalidRouting = 255,
}

impl Status {
    /// Every status the network layer and the authentication commands emit, in code
    /// order.
    pub const ALL: [Status; 25] = [
        Status::InvalidSplitId,
        Status::InvalidRaidaId,
        Status::InvalidShardId,
        Status::InvalidCommandGroup,
        Status::InvalidCommand,
        Status::InvalidCoinId,
        Status::InvalidPacketLength,
        Status::ShardNotAvailable,
        Status::EncryptionCoinNotFound,
        Status::InvalidEncryptionCode,
        Status::InvalidEof,
        Status::InvalidEncryption,
        Status::EmptyRequest,
        Status::InvalidCrc,
        Status::CoinsNotDiv,
        Status::InvalidSnOrDenomination,
        Status::RequestRate,
        Status::InvalidHmac,
        Status::AllPass,
        Status::AllFail,
        Status::Mixed,
        Status::Success,
        Status::Internal,
        Status::MemoryAlloc,
        Status::InvalidRouting,
    ];

    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The status with this code, if the network layer knows it. Commands may emit
    /// other codes; those travel as raw bytes (see [`StatusByte`]).
    pub fn from_code(code: u8) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| s.code() == code)
    }

    /// The name PROTOCOL.md gives the code, e.g. `INVALID_CRC`.
    pub const fn name(self) -> &'static str {
        match self {
            Status::InvalidSplitId => "INVALID_SPLIT_ID",
            Status::InvalidRaidaId => "INVALID_RAIDA_ID",
            Status::InvalidShardId => "INVALID_SHARD_ID",
            Status::InvalidCommandGroup => "INVALID_COMMAND_GROUP",
            Status::InvalidCommand => "INVALID_COMMAND",
            Status::InvalidCoinId => "INVALID_COIN_ID",
            Status::InvalidPacketLength => "INVALID_PACKET_LENGTH",
            Status::ShardNotAvailable => "SHARD_NOT_AVAILABLE",
            Status::EncryptionCoinNotFound => "ENCRYPTION_COIN_NOT_FOUND",
            Status::InvalidEncryptionCode => "INVALID_ENCRYPTION_CODE",
            Status::InvalidEof => "INVALID_EOF",
            Status::InvalidEncryption => "INVALID_ENCRYPTION",
            Status::EmptyRequest => "EMPTY_REQUEST",
            Status::InvalidCrc => "INVALID_CRC",
            Status::CoinsNotDiv => "COINS_NOT_DIV",
            Status::InvalidSnOrDenomination => "INVALID_SN_OR_DENOMINATION",
            Status::RequestRate => "REQUEST_RATE",
            Status::InvalidHmac => "INVALID_HMAC",
            Status::AllPass => "ALL_PASS",
            Status::AllFail => "ALL_FAIL",
            Status::Mixed => "MIXED",
            Status::Success => "SUCCESS",
            Status::Internal => "INTERNAL",
            Status::MemoryAlloc => "MEMORY_ALLOC",
            Status::InvalidRouting => "INVALID_ROUTING",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// A status byte as a command returned it: one of ours, or a code of a module
/// outside the network layer, passed through untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusByte(pub u8);

impl From<Status> for StatusByte {
    fn from(s: Status) -> Self {
        StatusByte(s.code())
    }
}

impl fmt::Display for StatusByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Status::from_code(self.0) {
            Some(s) => s.fmt(f),
            None => write!(f, "status {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_protocol_section_9() {
        // The table of PROTOCOL.md section 9, transcribed by hand.
        let table: [(u8, &str); 18] = [
            (2, "INVALID_SPLIT_ID"),
            (3, "INVALID_RAIDA_ID"),
            (4, "INVALID_SHARD_ID"),
            (5, "INVALID_COMMAND_GROUP"),
            (6, "INVALID_COMMAND"),
            (7, "INVALID_COIN_ID"),
            (16, "INVALID_PACKET_LENGTH"),
            (25, "ENCRYPTION_COIN_NOT_FOUND"),
            (27, "INVALID_ENCRYPTION_CODE"),
            (33, "INVALID_EOF"),
            (34, "INVALID_ENCRYPTION"),
            (37, "INVALID_CRC"),
            (160, "REQUEST_RATE"),
            (204, "INVALID_HMAC"),
            (250, "SUCCESS"),
            (252, "INTERNAL"),
            (254, "MEMORY_ALLOC"),
            (255, "INVALID_ROUTING"),
        ];
        for (code, name) in table {
            let s = Status::from_code(code).expect("every code of section 9 is known");
            assert_eq!(s.code(), code);
            assert_eq!(s.name(), name);
        }
        assert_eq!(Status::from_code(1), None);
        assert_eq!(Status::from_code(251), None);
    }

    #[test]
    fn codes_match_protocol_section_8a() {
        // The statuses PROTOCOL.md section 8a names, transcribed by hand (the names are
        // the deployed server's, protocol.h).
        let table: [(u8, &str); 7] = [
            (20, "SHARD_NOT_AVAILABLE"),
            (36, "EMPTY_REQUEST"),
            (39, "COINS_NOT_DIV"),
            (40, "INVALID_SN_OR_DENOMINATION"),
            (241, "ALL_PASS"),
            (242, "ALL_FAIL"),
            (243, "MIXED"),
        ];
        for (code, name) in table {
            let s = Status::from_code(code).expect("every code of section 8a is known");
            assert_eq!((s.code(), s.name()), (code, name));
        }
        assert_eq!(Status::ALL.len(), 25);
        assert!(
            Status::ALL.windows(2).all(|w| w[0].code() < w[1].code()),
            "in code order"
        );
    }
}
