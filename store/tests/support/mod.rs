//! Page files written byte by byte here, in the layout of PROTOCOL.md section 10
//! (`<root>/Data/<dd>/<pp>/<pppp>.bin`, 1024 records of a 16-byte AN and a status
//! byte), independently of the store's own path code.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use raida_core::keys::{lookup_blocking, An, CoinId, KeyStore, PageId, Record};
use raida_core::Timestamp;

pub(crate) const T0: Timestamp = Timestamp::from_micros(1_000_000);

/// `T0` plus `ms` milliseconds.
pub(crate) fn at_ms(ms: u64) -> Timestamp {
    Timestamp::from_micros(T0.as_micros() + ms * 1000)
}

/// A test AN that names its coin and a version, so a rewritten page is told apart.
pub(crate) fn an_of(den: i8, serial: u32, version: u8) -> An {
    let mut an = [version; 16];
    an[0] = den.to_ne_bytes()[0];
    an[1..5].copy_from_slice(&serial.to_be_bytes());
    an
}

/// The bytes of page `page` of `den`: every record's AN `an_of(den, serial, version)`,
/// status byte 0xA5.
pub(crate) fn page_bytes(den: i8, page: u32, version: u8) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(17 * 1024);
    for record in 0..1024u32 {
        bytes.extend_from_slice(&an_of(den, page * 1024 + record, version));
        bytes.push(0xA5);
    }
    assert_eq!(bytes.len(), 17408);
    bytes
}

/// `<root>/Data/<dd>/<pp>/<pppp>.bin`, spelled out from section 10.
pub(crate) fn page_path(root: &Path, den: i8, page: u32) -> PathBuf {
    root.join(format!(
        "Data/{:02x}/{:02x}/{:04x}.bin",
        den.to_ne_bytes()[0],
        page >> 8,
        page
    ))
}

/// Writes page `page` of `den`, truncated to `len` bytes.
pub(crate) fn write_page_len(root: &Path, den: i8, page: u32, version: u8, len: usize) {
    let mut bytes = page_bytes(den, page, version);
    bytes.truncate(len);
    let path = page_path(root, den, page);
    fs::create_dir_all(path.parent().expect("page has a parent")).expect("mkdir");
    fs::write(path, bytes).expect("write page");
}

pub(crate) fn write_page(root: &Path, den: i8, page: u32, version: u8) {
    write_page_len(root, den, page, version, 17408);
}

pub(crate) fn store_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("Data")).expect("mkdir Data");
    dir
}

pub(crate) fn page_id(den: i8, number: u16) -> PageId {
    PageId {
        denomination: den,
        number,
    }
}

/// The coin's AN as a request sees it: looked up, loaded off the "loop" when needed.
pub(crate) fn an(store: &dyn KeyStore, den: i8, serial: u32, now: Timestamp) -> Option<An> {
    lookup_blocking(store, CoinId::new(den, serial), now).expect("no I/O error")
}

pub(crate) fn record(an: An, status: u8) -> Record {
    Record { an, status }
}

/// A compare-and-set of one coin: `from` becomes `to`. Whether it passed.
pub(crate) fn cas(store: &dyn KeyStore, coin: CoinId, from: An, to: An, now: Timestamp) -> bool {
    let mut passed = false;
    store
        .modify(&[coin], now, &mut |current, new| {
            if current[0].is_some_and(|r| r.an == from) {
                new[0] = Some(Record { an: to, status: 1 });
                passed = true;
            }
        })
        .expect("modify");
    passed
}
