//! The seed corpora: valid requests of each encryption type and every fault, in each
//! target's input layout, and a few transport cases.

use arbitrary::{Arbitrary, Unstructured};
use raida_core::codec::{LONG_HEADER_LEN, RANDOM_LEN};

use crate::request::{Fault, RequestCase};

/// The seed inputs of every target: `(target, file name, bytes)`. Valid requests of
/// each encryption type and every error case, in each target's input layout. The
/// committed corpora under `fuzz/corpus/` are these files
/// (`cargo test -p raida-tests --test fuzz_replay -- --ignored write_seed_corpora`
/// rewrites them).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let types = ["t0", "t1", "t2", "t4", "t5", "tbad"];
    let commands = ["echo", "version", "mirror"];
    for (ti, tname) in types.iter().enumerate() {
        for (fi, fault) in Fault::ALL.iter().enumerate() {
            for (ci, cname) in commands.iter().enumerate() {
                // Every fault with echo; the valid and body-level ones with each command.
                if ci > 0 && !matches!(fault, Fault::None | Fault::Empty | Fault::Integrity) {
                    continue;
                }
                let selectors = [ti as u8, fi as u8, ci as u8, (ti + fi) as u8 % 9];
                let mut input = selectors.to_vec();
                input.extend((0..24).map(|i| (i * 7 + ti) as u8)); // nonce
                input.extend([0xAB, 0xCD]); // echo
                input.extend((0..12).map(|i| (i * 13 + fi) as u8)); // challenge
                input.extend(1234u32.to_be_bytes()); // elapsed
                input.extend([0x5A; RANDOM_LEN]); // random
                if ci == 2 {
                    for b in b"payload bytes" {
                        input.extend([1, *b]);
                    }
                }
                input.push(0); // end of payload; no mutation follows
                let name = format!("{tname}-{fault:?}-{cname}").to_lowercase();
                let case = RequestCase::arbitrary_take_rest(Unstructured::new(&input))
                    .unwrap_or_else(|e| panic!("seed {name} does not decode: {e}"));
                assert!(case.mutations.is_empty(), "seed {name} decodes mutations");
                assert_eq!(case.fault(), *fault);
                let built = case
                    .build()
                    .unwrap_or_else(|e| panic!("seed {name} does not build: {e}"));
                out.push(("request", name.clone(), input));

                let bytes = built.bytes;
                let header_bytes = bytes[..bytes.len().min(LONG_HEADER_LEN)].to_vec();
                if ci == 0 && !header_bytes.is_empty() {
                    out.push(("header", name.clone(), header_bytes));
                }
                let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes();
                let mut udp = vec![0u8];
                udp.extend(len);
                udp.extend(&bytes);
                if fi == 0 || matches!(fault, Fault::Integrity) {
                    // The same with random bytes at hand: answered inline when cheap.
                    let mut inline = udp.clone();
                    inline[0] = 16;
                    out.push(("udp_datagram", format!("{name}-random"), inline));
                }
                out.push(("udp_datagram", name.clone(), udp));
                let mut tcp = len.to_vec();
                tcp.extend(&bytes);
                if fi == 0 || matches!(fault, Fault::Integrity) {
                    let mut inline = tcp.clone();
                    inline.extend([7, 2]);
                    out.push(("tcp_stream", format!("{name}-random"), inline));
                }
                out.push(("tcp_stream", name.clone(), tcp.clone()));
                if fi == 0 {
                    // The same request one byte per read, with the write side slow.
                    for _ in 0..bytes.len() {
                        tcp.extend([0, 0, 5, 3]);
                    }
                    out.push(("tcp_stream", format!("{name}-bytewise"), tcp));
                }
            }
        }
    }
    // Transport cases.
    let valid = RequestCase::arbitrary_take_rest(Unstructured::new(&[1, 0, 1, 0]))
        .ok()
        .and_then(|c| c.build().ok())
        .map(|b| b.bytes)
        .unwrap_or_default();
    let len = u16::try_from(valid.len()).unwrap_or(u16::MAX).to_be_bytes();
    let with = |ops: &[u8]| {
        let mut v = len.to_vec();
        v.extend(&valid);
        v.extend(ops);
        v
    };
    out.push((
        "tcp_stream",
        "half-header-then-timeout".into(),
        with(&[0, 19, 4, 250]),
    ));
    out.push((
        "tcp_stream",
        "half-body-then-eof".into(),
        with(&[0, 40, 7, 0]),
    ));
    out.push(("tcp_stream", "reset-mid-header".into(), with(&[0, 9, 7, 1])));
    out.push((
        "tcp_stream",
        "reset-while-writing".into(),
        with(&[0, 255, 5, 10, 7, 1]),
    ));
    out.push((
        "tcp_stream",
        "write-timeout".into(),
        with(&[0, 255, 5, 10, 4, 250]),
    ));
    out.push((
        "tcp_stream",
        "linger".into(),
        with(&[0, 255, 5, 255, 4, 60]),
    ));
    let mut trailing = with(&[]);
    trailing[..2].copy_from_slice(&u16::try_from(valid.len() + 600).unwrap_or(0).to_be_bytes());
    trailing.extend([0x77; 600]);
    out.push(("tcp_stream", "bytes-after-the-request".into(), trailing));
    let mut many = vec![4 | 1];
    for i in 0..6u8 {
        many.extend(len);
        let mut v = valid.clone();
        v[31] = i;
        many.extend(v);
    }
    out.push(("udp_datagram", "held-jobs-queue-of-2".into(), many));
    let mut big = vec![0u8, 0x05, 0x00];
    let mut v = valid.clone();
    v.resize(0x500, 0);
    big.extend(v);
    out.push(("udp_datagram", "over-threshold".into(), big));
    out.push(("udp_datagram", "short".into(), vec![0, 0, 16, 1, 0, 7]));
    out.push(("header", "short-16".into(), vec![1; 16]));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_seed_passes_its_target_and_names_are_unique() {
        let mut names = BTreeSet::new();
        for (target, name, bytes) in seeds() {
            assert!(
                names.insert((target, name.clone())),
                "{target}/{name} twice"
            );
            match target {
                "header" => crate::header(&bytes),
                "request" => crate::request(&bytes),
                "tcp_stream" => crate::tcp_stream(&bytes),
                "udp_datagram" => crate::udp_datagram(&bytes),
                other => panic!("seed for an unknown target {other}"),
            }
        }
        for target in ["header", "request", "tcp_stream", "udp_datagram"] {
            assert!(
                names.iter().any(|(t, _)| *t == target),
                "no seed for {target}"
            );
        }
    }
}
