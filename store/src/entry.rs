//! The write-ahead log's entry format.
//!
//! A segment is a sequence of entries, each one [`KeyStore::modify`] call's writes:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `RSW1` |
//! | 4 | body length (u32 LE): 12 + 22 × count |
//! | 8 | sequence number (u64 LE), rising through the log |
//! | 4 | count (u32 LE) of writes |
//! | 22 × count | per write: denomination (i8), page number (u16 LE), record index (u16 LE), the record's 17 bytes |
//! | 4 | CRC-32 (IEEE, u32 LE) of every byte of the entry before it |
//!
//! Reading stops at the first entry that is incomplete, fails its CRC, names a record
//! outside the store, or does not raise the sequence number: a torn tail (an entry
//! whose sync never completed, so never acknowledged) and everything after it.
//!
//! [`KeyStore::modify`]: raida_core::KeyStore::modify

use raida_core::keys::{PageId, DENOMINATIONS, RECORDS_PER_PAGE, RECORD_BYTES};

use crate::disk::RecordWrite;

const MAGIC: [u8; 4] = *b"RSW1";
/// Magic and body length.
const HEAD: usize = 8;
/// Sequence number and count.
const BODY_HEAD: usize = 12;
/// One write.
const WRITE: usize = 1 + 2 + 2 + RECORD_BYTES;
const CRC: usize = 4;

/// One decoded entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub writes: Vec<(PageId, RecordWrite)>,
}

/// The bytes of one entry.
pub(crate) fn encode(seq: u64, writes: &[(PageId, RecordWrite)], out: &mut Vec<u8>) {
    let start = out.len();
    // A modify names at most as many coins as a request body holds (65,535 bytes), far
    // below u32::MAX writes.
    let count = u32::try_from(writes.len()).unwrap_or(u32::MAX);
    let body = BODY_HEAD + WRITE * writes.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&u32::try_from(body).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for (page, write) in writes {
        out.push(page.denomination.to_ne_bytes()[0]);
        out.extend_from_slice(&page.number.to_le_bytes());
        out.extend_from_slice(&write.index.to_le_bytes());
        out.extend_from_slice(&write.bytes);
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Why reading a segment stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The rest is shorter than the entry it starts.
    Incomplete,
    /// No magic at an entry's start.
    BadMagic,
    /// The body length does not match the count.
    BadLength,
    /// The CRC does not match.
    BadCrc,
    /// A write names a denomination or record outside the store.
    BadWrite,
    /// The sequence number does not rise.
    BadSequence,
}

/// What a segment holds: its valid entries, and why (and where) reading stopped if it
/// stopped before the end.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub entries: Vec<Entry>,
    /// Bytes of valid entries.
    pub valid: usize,
    pub stop: Option<Stop>,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes the entries of `bytes`, whose sequence numbers must rise above `after`.
pub(crate) fn decode(bytes: &[u8], mut after: Option<u64>) -> Decoded {
    let mut entries = Vec::new();
    let mut at = 0;
    let stop = loop {
        if at == bytes.len() {
            break None;
        }
        match decode_one(&bytes[at..]) {
            Ok((entry, len)) => {
                if after.is_some_and(|a| entry.seq <= a) {
                    break Some(Stop::BadSequence);
                }
                after = Some(entry.seq);
                entries.push(entry);
                at += len;
            }
            Err(stop) => break Some(stop),
        }
    };
    Decoded {
        entries,
        valid: at,
        stop,
    }
}

fn decode_one(b: &[u8]) -> Result<(Entry, usize), Stop> {
    if b.len() < HEAD {
        return Err(Stop::Incomplete);
    }
    if b[..4] != MAGIC {
        return Err(Stop::BadMagic);
    }
    let body = le_u32(b, 4).ok_or(Stop::Incomplete)? as usize;
    let total = HEAD
        .checked_add(body)
        .and_then(|n| n.checked_add(CRC))
        .ok_or(Stop::BadLength)?;
    if body < BODY_HEAD {
        return Err(Stop::BadLength);
    }
    if b.len() < total {
        return Err(Stop::Incomplete);
    }
    let crc = le_u32(b, HEAD + body).ok_or(Stop::Incomplete)?;
    if crc32fast::hash(&b[..HEAD + body]) != crc {
        return Err(Stop::BadCrc);
    }
    let seq = le_u64(b, HEAD).ok_or(Stop::Incomplete)?;
    let count = le_u32(b, HEAD + 8).ok_or(Stop::Incomplete)? as usize;
    if count
        .checked_mul(WRITE)
        .and_then(|n| n.checked_add(BODY_HEAD))
        != Some(body)
    {
        return Err(Stop::BadLength);
    }
    let mut writes = Vec::with_capacity(count);
    for i in 0..count {
        let w = HEAD + BODY_HEAD + i * WRITE;
        let denomination = i8::from_ne_bytes([b[w]]);
        let number = le_u16(b, w + 1).ok_or(Stop::Incomplete)?;
        let index = le_u16(b, w + 3).ok_or(Stop::Incomplete)?;
        if !DENOMINATIONS.contains(&denomination) || u32::from(index) >= RECORDS_PER_PAGE {
            return Err(Stop::BadWrite);
        }
        let bytes: [u8; RECORD_BYTES] = b
            .get(w + 5..w + WRITE)
            .and_then(|s| s.try_into().ok())
            .ok_or(Stop::Incomplete)?;
        writes.push((
            PageId {
                denomination,
                number,
            },
            RecordWrite { index, bytes },
        ));
    }
    Ok((Entry { seq, writes }, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(den: i8, number: u16, index: u16, fill: u8) -> (PageId, RecordWrite) {
        (
            PageId {
                denomination: den,
                number,
            },
            RecordWrite {
                index,
                bytes: [fill; RECORD_BYTES],
            },
        )
    }

    fn two_entries() -> Vec<u8> {
        let mut log = Vec::new();
        encode(
            7,
            &[write(1, 2, 3, 0xAA), write(-8, 0xffff, 1023, 0xBB)],
            &mut log,
        );
        encode(8, &[write(6, 0, 0, 0xCC)], &mut log);
        log
    }

    #[test]
    fn round_trip() {
        let log = two_entries();
        let d = decode(&log, None);
        assert_eq!(d.stop, None);
        assert_eq!(d.valid, log.len());
        assert_eq!(d.entries.len(), 2);
        assert_eq!(d.entries[0].seq, 7);
        assert_eq!(d.entries[0].writes[1], write(-8, 0xffff, 1023, 0xBB));
        assert_eq!(d.entries[1].writes, vec![write(6, 0, 0, 0xCC)]);
        assert_eq!(log.len(), 2 * (HEAD + BODY_HEAD + CRC) + 3 * WRITE);
    }

    #[test]
    fn every_torn_tail_keeps_exactly_the_complete_entries() {
        let log = two_entries();
        let first = HEAD + BODY_HEAD + 2 * WRITE + CRC;
        for cut in 0..log.len() {
            let d = decode(&log[..cut], None);
            let expected = usize::from(cut >= first);
            assert_eq!(d.entries.len(), expected, "cut at {cut}");
            assert_eq!(d.valid, if expected == 1 { first } else { 0 });
            assert_eq!(d.stop.is_some(), cut != 0 && cut != first, "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_stops_at_that_entry() {
        let log = two_entries();
        let first = HEAD + BODY_HEAD + 2 * WRITE + CRC;
        for byte in 0..log.len() {
            let mut bad = log.clone();
            bad[byte] ^= 0x10;
            let d = decode(&bad, None);
            let expected = usize::from(byte >= first);
            assert_eq!(d.entries.len(), expected, "flip in byte {byte}");
            assert!(d.stop.is_some(), "flip in byte {byte}");
        }
    }

    #[test]
    fn sequence_must_rise() {
        let mut log = Vec::new();
        encode(5, &[write(0, 0, 0, 1)], &mut log);
        encode(5, &[write(0, 0, 0, 2)], &mut log);
        let d = decode(&log, None);
        assert_eq!((d.entries.len(), d.stop), (1, Some(Stop::BadSequence)));
        let d = decode(&log, Some(5));
        assert_eq!((d.entries.len(), d.stop), (0, Some(Stop::BadSequence)));
    }

    #[test]
    fn out_of_range_write_is_refused_even_with_a_good_crc() {
        let mut log = Vec::new();
        encode(1, &[write(7, 0, 0, 1)], &mut log);
        assert_eq!(decode(&log, None).stop, Some(Stop::BadWrite));
        let mut log = Vec::new();
        encode(1, &[write(0, 0, 1024, 1)], &mut log);
        assert_eq!(decode(&log, None).stop, Some(Stop::BadWrite));
    }
}
