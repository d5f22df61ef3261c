//! `RequestContext::random`: a command's secret random bytes come from its job's fresh
//! bytes, differ with them, and are never what a 48-byte response header publishes:
//! once a command drew, the header carries bytes derived apart; a command that did not
//! draw leaves the header's bytes as the job gave them.

mod support;

use std::sync::Arc;

use raida_core::codec::{answer_datagram, HeaderRules, RANDOM_LEN};
use raida_core::{CommandRegistry, Reply, RequestContext, Timestamp};

use support::{keys, Req, COIN_ID, RAIDA_ID, RANDOM};

/// (15, 1) answers its 32 random bytes; (15, 2) draws none.
fn registry() -> CommandRegistry {
    let mut r = CommandRegistry::with_builtins();
    let draws = |ctx: &RequestContext<'_>| Reply::success(ctx.random().to_vec());
    let plain = |_: &RequestContext<'_>| Reply::success(vec![1]);
    r.register(15, 1, Arc::new(draws)).expect("free");
    r.register(15, 2, Arc::new(plain)).expect("free");
    r
}

fn answer(req: &Req, random: &[u8; RANDOM_LEN]) -> Vec<u8> {
    let rules = HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: COIN_ID,
        max_body_size: 65_536,
    };
    let k = keys();
    answer_datagram(
        &req.bytes(),
        &rules,
        &registry(),
        &k,
        Timestamp::ZERO,
        0,
        random,
    )
    .expect("answered")
}

fn request(command: u8, encryption: u8) -> Req {
    Req {
        group: 15,
        command,
        payload: vec![0; 3],
        ..Req::echo(encryption)
    }
}

#[test]
fn a_command_s_random_bytes_follow_the_job_s_and_are_not_them() {
    let a = answer(&request(1, 0), &RANDOM);
    let b = answer(&request(1, 0), &[0x5A; RANDOM_LEN]);
    assert_eq!(a[2], 250);
    // 32 bytes of output, then the trailer.
    let (ra, rb) = (&a[32..64], &b[32..64]);
    assert_ne!(ra, rb, "other fresh bytes, other random bytes");
    assert_eq!(
        answer(&request(1, 0), &RANDOM)[32..64],
        *ra,
        "one draw per request"
    );
    assert!(
        !ra.windows(RANDOM_LEN).any(|w| w == RANDOM),
        "not the job's bytes"
    );
}

#[test]
fn a_48_byte_header_publishes_the_job_s_bytes_only_when_the_command_drew_none() {
    let plain = answer(&request(2, 4), &RANDOM);
    assert_eq!(plain[2], 250);
    assert_eq!(
        &plain[24..46],
        &RANDOM[..],
        "no draw: the job's bytes as they are"
    );
    let drew = answer(&request(1, 4), &RANDOM);
    assert_eq!(drew[2], 250);
    assert_ne!(&drew[24..46], &RANDOM[..], "a draw: bytes derived apart");
    assert_ne!(&drew[24..46], &[0; RANDOM_LEN][..]);
}
