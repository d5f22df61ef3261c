//! Lockers across a local network of 25 RAIDAs (raida ids 0..24, each its own process
//! and demo store): the `raida` CLI puts coins into the locker of a code on all 25
//! (each RAIDA under its own derived key), peeks at all 25, removes the coins to new
//! ANs it draws; detect then passes with the new ANs on every RAIDA, fails with the
//! old ones, and the locker is gone everywhere.

use std::process::{Command, Output};

use raida_client::auth::{self, AuthCommand};
use raida_client::locker::locker_key;
use raida_client::{exchange, An, Coin, Keys, Request, Timeouts, Transport};
use raida_store::demo_coin_an;
use raida_tests::network::{LocalNetwork, NetworkData, RAIDA_COUNT};
use raida_tests::{cli_binary, GENEROUS};
use serde_json::Value;

const CODE: &str = "k7mq9tz";
const COINS: [(i8, u32); 3] = [(0, 1), (1, 2), (-1, 16)];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> An {
    let mut an = [0u8; 16];
    for (i, b) in an.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    an
}

fn locker(net: &LocalNetwork, args: &[&str]) -> (Output, Value) {
    let network = net.network_file();
    let o = Command::new(cli_binary())
        .arg("locker")
        .args(args)
        .args(["--network", network.to_str().expect("utf-8")])
        .args(["--code", CODE, "--json", "--timeout-ms", "20000"])
        .output()
        .expect("run raida");
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    (o, v)
}

/// detect (1/10) of `coins` on RAIDA `id`: its status.
fn detect(net: &LocalNetwork, id: usize, coins: &[(Coin, An)]) -> u8 {
    let raida = u8::try_from(id).expect("raida id");
    let mut req = Request::new(raida, auth::GROUP, AuthCommand::Detect.code(), Keys::None);
    req.payload = auth::detect_payload(coins);
    req.randomize().expect("random");
    let built = req.build().expect("builds");
    let reply = exchange(
        net.addr(id),
        Transport::Tcp,
        &built,
        &Timeouts::uniform(GENEROUS),
    )
    .unwrap_or_else(|e| panic!("detect on RAIDA {id}: {e}"));
    reply.response.header.status.0
}

#[test]
fn coins_go_through_a_locker_on_all_25_raidas_and_detect_with_their_new_ans() {
    let net = LocalNetwork::start(RAIDA_COUNT, NetworkData::Demo);
    let dir = tempfile::tempdir().expect("tempdir");
    let coins_file = dir.path().join("coins.txt");
    let lines: String = COINS
        .iter()
        .map(|&(d, s)| format!("{d}:{s} {}\n", hex(&demo_coin_an(d, s))))
        .collect();
    std::fs::write(&coins_file, lines).expect("write coins");

    let (o, v) = locker(
        &net,
        &["put", "--coins", coins_file.to_str().expect("utf-8")],
    );
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["raidas_passed"], 25, "{v}");

    // Peek, encrypted (type 2) under each RAIDA's own locker key.
    let (o, v) = locker(&net, &["peek", "--enc", "2"]);
    assert_eq!(o.status.code(), Some(0), "{v}");
    let raidas = v["raidas"].as_array().expect("raidas");
    assert_eq!(raidas.len(), 25);
    for (i, r) in raidas.iter().enumerate() {
        assert_eq!(r["raida"], i);
        let id = u8::try_from(i).expect("id");
        assert_eq!(r["key"], hex(&locker_key(id, CODE)));
        // Ascending by denomination (signed), then serial.
        assert_eq!(
            r["coins"],
            serde_json::json!(["-1:16", "0:1", "1:2"]),
            "RAIDA {i}"
        );
    }

    let (o, v) = locker(&net, &["remove"]);
    assert_eq!(o.status.code(), Some(0), "{v}");
    let raidas = v["raidas"].as_array().expect("raidas");
    assert_eq!(raidas.len(), 25);
    for (i, r) in raidas.iter().enumerate() {
        let moved: Vec<(Coin, An)> = r["coins"]
            .as_array()
            .expect("coins")
            .iter()
            .map(|c| {
                assert_eq!(c["result"], "pass", "RAIDA {i}: {c}");
                let (d, s) = c["coin"]
                    .as_str()
                    .and_then(|t| t.split_once(':'))
                    .expect("DEN:SN");
                let coin = Coin::new(d.parse().expect("den"), s.parse().expect("sn"));
                (coin, unhex(c["new_an"].as_str().expect("new_an")))
            })
            .collect();
        assert_eq!(moved.len(), COINS.len());
        assert_eq!(detect(&net, i, &moved), 241, "RAIDA {i}: new ANs");
        let old: Vec<(Coin, An)> = COINS
            .iter()
            .map(|&(d, s)| (Coin::new(d, s), demo_coin_an(d, s)))
            .collect();
        assert_eq!(detect(&net, i, &old), 242, "RAIDA {i}: old ANs");
    }

    // The locker is gone on every RAIDA.
    let (o, v) = locker(&net, &["peek"]);
    assert_eq!(o.status.code(), Some(1), "{v}");
    for r in v["raidas"].as_array().expect("raidas") {
        assert_eq!(r["status"], 242, "{r}");
    }
}
