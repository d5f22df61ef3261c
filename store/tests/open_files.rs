//! `FileDisk` keeps page files open between writes, at most as many as its bound, and
//! a file kept open follows its path: a page replaced by rename is written where
//! readers find it, never into the replaced file.

mod support;

use std::fs;

use raida_store::{Disk, FileDisk, RecordWrite, Written};
use support::*;

fn record(fill: u8) -> RecordWrite {
    RecordWrite {
        index: 3,
        bytes: [fill; 17],
    }
}

fn record_3(root: &std::path::Path, den: i8, page: u32) -> Vec<u8> {
    fs::read(page_path(root, den, page)).expect("page")[3 * 17..4 * 17].to_vec()
}

#[test]
fn writes_keep_page_files_open_within_the_bound() {
    let dir = store_root();
    for page in 0..3 {
        write_page(dir.path(), 1, page, 1);
    }
    let disk = FileDisk::open_with(dir.path(), 2).expect("open");
    assert_eq!(disk.open_file_count(), 0);
    let written = disk
        .write_records(page_id(1, 0), &[record(0xA1)])
        .expect("write");
    assert!(matches!(written, Written::Done { .. }), "{written:?}");
    assert_eq!(disk.open_file_count(), 1);
    disk.write_records(page_id(1, 0), &[record(0xA2)])
        .expect("write");
    assert_eq!(disk.open_file_count(), 1, "the same file, still open");
    for page in 1..3u16 {
        disk.write_records(page_id(1, page), &[record(0xB0 + page as u8)])
            .expect("write");
    }
    assert_eq!(disk.open_file_count(), 2, "the bound holds");
    assert_eq!(record_3(dir.path(), 1, 0), vec![0xA2; 17]);
    assert_eq!(record_3(dir.path(), 1, 1), vec![0xB1; 17]);
    assert_eq!(record_3(dir.path(), 1, 2), vec![0xB2; 17]);
}

#[test]
fn a_page_replaced_by_rename_is_written_where_readers_find_it() {
    let dir = store_root();
    write_page(dir.path(), 1, 0, 1);
    let disk = FileDisk::open(dir.path()).expect("open");
    disk.write_records(page_id(1, 0), &[record(0xA1)])
        .expect("write");
    // A backup restore: a new file renamed over the page (the old one stays open).
    let path = page_path(dir.path(), 1, 0);
    let tmp = dir.path().join("Data/restore.tmp");
    fs::write(&tmp, page_bytes(1, 0, 2)).expect("write");
    fs::rename(&tmp, &path).expect("rename");
    assert_ne!(record_3(dir.path(), 1, 0), vec![0xA1; 17]);
    disk.write_records(page_id(1, 0), &[record(0xA3)])
        .expect("write");
    assert_eq!(record_3(dir.path(), 1, 0), vec![0xA3; 17]);
    let bytes = fs::read(&path).expect("page");
    assert_eq!(
        bytes[4 * 17..5 * 17],
        page_bytes(1, 0, 2)[4 * 17..5 * 17],
        "the rest of the restored page is untouched"
    );
}
