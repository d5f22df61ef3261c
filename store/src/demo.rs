//! A small, deterministic key store on disk, so a demo server has coins to answer for
//! and a demo client knows their ANs.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use raida_core::keys::{An, CoinId, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

use crate::file_disk::coin_page_path;

/// Denominations the demo store writes.
const DEMO_DENOMINATIONS: [i8; 3] = [0, 1, -1];

/// Pages the demo store writes for each denomination: page 0 (serials 1..=16) and
/// page 0x100, whose directory `01` is not `00`, so the layout's `pp` level is used.
const DEMO_PAGES: [u32; 2] = [0, 0x100];

/// The serial on page 0x100 in the demo set.
const DEMO_HIGH_SERIAL: u32 = 0x100 * RECORDS_PER_PAGE + 5;

/// One coin of the demo store: what a demo client needs to address it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DemoCoin {
    /// The coin's denomination.
    pub denomination: i8,
    /// The coin's serial number.
    pub serial: u32,
    /// The coin's AN, as the demo store holds it.
    pub an: An,
}

/// `DEN:SN AN-HEX`, e.g. `-1:16 3f0a…` (32 lowercase hex digits): one line a demo
/// client can paste.
impl fmt::Display for DemoCoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ", self.denomination, self.serial)?;
        for b in self.an {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The demo AN of coin (`denomination`, `serial`): the first 16 bytes of
/// SHA-256("raida-net demo coin" || denomination byte || serial, big-endian u32).
///
/// Public knowledge by construction: for demos and tests only, never for real coins.
pub fn demo_coin_an(denomination: i8, serial: u32) -> An {
    let digest = sha256(&[
        b"raida-net demo coin",
        &denomination.to_be_bytes(),
        &serial.to_be_bytes(),
    ]);
    first_16(&digest)
}

/// The AN of the demo locker: the first 16 bytes of SHA-256("raida-net demo locker").
/// A demo server registers it with `insert_locker`; a demo client addresses it by its
/// first 5 bytes.
pub fn demo_locker_an() -> An {
    first_16(&sha256(&[b"raida-net demo locker"]))
}

/// SHA-256 of the concatenation of `parts`.
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn first_16(digest: &[u8; 32]) -> An {
    let mut an = [0u8; 16];
    an.copy_from_slice(&digest[..16]);
    an
}

/// The demo set, in the order [`write_demo_store`] returns it: for denominations 0, 1
/// and -1, serials 1..=16 and serial 0x100 * 1024 + 5.
fn demo_coins() -> Vec<DemoCoin> {
    DEMO_DENOMINATIONS
        .iter()
        .flat_map(|&denomination| {
            (1..=16)
                .chain([DEMO_HIGH_SERIAL])
                .map(move |serial| DemoCoin {
                    denomination,
                    serial,
                    an: demo_coin_an(denomination, serial),
                })
        })
        .collect()
}

/// The bytes of demo page `page` of `denomination`: every record holds its serial's
/// [`demo_coin_an`] and a zero status byte.
fn demo_page(denomination: i8, page: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PAGE_BYTES);
    for record in 0..RECORDS_PER_PAGE {
        bytes.extend_from_slice(&demo_coin_an(
            denomination,
            page * RECORDS_PER_PAGE + record,
        ));
        bytes.push(0);
    }
    debug_assert_eq!(bytes.len(), PAGE_BYTES);
    debug_assert_eq!(RECORD_BYTES, 17);
    bytes
}

/// Writes a demo key store under `root` in the layout of PROTOCOL.md section 10 and
/// returns its demo coins (see [`DemoCoin`]'s `Display` for printing them).
///
/// Writes complete 17408-byte pages 0 and 0x100 for denominations 0, 1 and -1 (files
/// `Data/00/00/0000.bin`, `Data/00/01/0100.bin`, and likewise under `01` and `ff`).
/// Every record of a written page holds its serial's [`demo_coin_an`], never zeros, so
/// no coin has a guessable all-zero AN; this means every serial on those pages is a
/// known coin, not only the returned ones, which are the ones a demo uses.
///
/// **Never overwrites a store:** if `<root>/Data` already exists (a real store, or an
/// earlier demo), nothing is written and the demo list is returned as is; the list
/// then describes the existing store only if it is a demo store. The pages are built
/// in `<root>/Data.demo-partial` and renamed to `<root>/Data` at the end, so a failed
/// run leaves no half-written `Data`.
pub fn write_demo_store(root: &Path) -> io::Result<Vec<DemoCoin>> {
    let coins = demo_coins();
    let data = root.join("Data");
    if data.try_exists()? {
        return Ok(coins);
    }
    fs::create_dir_all(root)?;
    let staging_root = root.join("Data.demo-partial");
    if staging_root.try_exists()? {
        fs::remove_dir_all(&staging_root)?;
    }
    for denomination in DEMO_DENOMINATIONS {
        for page in DEMO_PAGES {
            // `coin_page_path` puts the page under `<staging_root>/Data`.
            let first = CoinId::new(denomination, page * RECORDS_PER_PAGE);
            let path = coin_page_path(&staging_root, first)
                .ok_or_else(|| io::Error::other("demo page out of range"))?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&path, demo_page(denomination, page))?;
        }
    }
    fs::rename(staging_root.join("Data"), &data)?;
    fs::remove_dir(&staging_root)?;
    Ok(coins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_an_matches_its_definition() {
        // Recomputed here from the definition, with the bytes spelled out.
        let mut input = b"raida-net demo coin".to_vec();
        input.extend_from_slice(&[0xff, 0x00, 0x00, 0x00, 0x10]);
        let digest = sha256(&[&input]);
        assert_eq!(demo_coin_an(-1, 16)[..], digest[..16]);
        assert_ne!(demo_coin_an(-1, 16), demo_coin_an(1, 16));
        assert_ne!(demo_coin_an(1, 16), demo_coin_an(1, 17));
    }

    #[test]
    fn demo_locker_an_is_prefix_of_its_digest() {
        let digest = sha256(&[b"raida-net demo locker"]);
        assert_eq!(demo_locker_an()[..], digest[..16]);
    }

    #[test]
    fn demo_set_is_51_coins_with_one_high_serial_per_denomination() {
        let coins = demo_coins();
        assert_eq!(coins.len(), 51);
        for den in DEMO_DENOMINATIONS {
            let of_den: Vec<u32> = coins
                .iter()
                .filter(|c| c.denomination == den)
                .map(|c| c.serial)
                .collect();
            let mut expected: Vec<u32> = (1..=16).collect();
            expected.push(0x4_0005);
            assert_eq!(of_den, expected);
        }
    }

    #[test]
    fn display_is_den_colon_serial_space_hex() {
        let coin = DemoCoin {
            denomination: -1,
            serial: 16,
            an: [
                0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
                0x0e, 0xff,
            ],
        };
        assert_eq!(coin.to_string(), "-1:16 000102030405060708090a0b0c0d0eff");
    }

    #[test]
    fn writes_full_pages_with_no_zero_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_demo_store(dir.path()).expect("write");
        for rel in [
            "00/00/0000.bin",
            "01/01/0100.bin",
            "ff/00/0000.bin",
            "ff/01/0100.bin",
        ] {
            let bytes = fs::read(dir.path().join("Data").join(rel)).expect(rel);
            assert_eq!(bytes.len(), PAGE_BYTES, "{rel}");
            assert!(
                bytes.chunks(RECORD_BYTES).all(|r| r[..16] != [0; 16]),
                "{rel} has an all-zero AN"
            );
        }
        assert!(!dir.path().join("Data.demo-partial").exists());
    }

    #[test]
    fn existing_data_dir_is_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let page = dir.path().join("Data/00/00/0000.bin");
        fs::create_dir_all(page.parent().expect("parent")).expect("mkdir");
        fs::write(&page, b"real store").expect("write");
        let coins = write_demo_store(dir.path()).expect("demo");
        assert_eq!(coins, demo_coins());
        assert_eq!(fs::read(&page).expect("read"), b"real store");
        assert!(!dir.path().join("Data/ff").exists());
    }

    #[test]
    fn second_run_writes_nothing_and_returns_same_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write_demo_store(dir.path()).expect("first");
        let page = dir.path().join("Data/01/00/0000.bin");
        fs::write(&page, b"changed").expect("write");
        let second = write_demo_store(dir.path()).expect("second");
        assert_eq!(first, second);
        assert_eq!(fs::read(&page).expect("read"), b"changed");
    }
}
