//! Execution: what happens to an admitted request once its whole body is in (the body
//! opened, the command run under `catch_unwind`, the response written), and the
//! one-call answer to a request that runs admission and execution back to back for
//! callers off the event loop (clients' tests, the simulator's oracle, the fuzzers).

use std::net::SocketAddr;
use std::ops::Range;

use raida_wire::{
    RequestHeader, Status, StatusByte, Timestamp, Transport, CHALLENGE_LEN, LONG_HEADER_LEN,
    RANDOM_LEN, TRAILER,
};

use super::checks::{check_header, Admitted, HeaderRules, Rejected};
use crate::command::{CommandRegistry, RequestContext, RESPONSE_RANDOM_DOMAIN};
use crate::crypto;
use crate::frame::{open_body, write_response, RequestKey, ResponseParts};
use crate::keys::{Access, AccessLog, CommitSeq, KeyStore, StoreAccess};
use crate::peer::{PeerAnswer, PeerCall, PeerFailure, PeerPlan};

/// Where and when a request arrived, and over what: the parts of a handler's request
/// context that are not in the request's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The client's address and port.
    pub peer: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// When the request arrived whole.
    pub at: Timestamp,
}

/// What serving an admitted request came to.
#[derive(Debug)]
pub(crate) enum Served {
    /// The response is written; its status, and the commit it must wait for (a write
    /// the command made or saw that was not yet durable).
    Answered(StatusByte, Option<CommitSeq>),
    /// Run with [`Access::Resident`], the command needed a page not in memory (or a
    /// page another writer held): nothing was written, nothing changed; run it again
    /// on a worker, from the body as it came.
    NotResident,
    /// The command asked for peer calls ([`PeerPlan::Calls`]): nothing is written; the
    /// opened body stays with the request until its peers have answered.
    Peers(Opened),
}

/// A body that passed its checks, kept while its request waits for its peers: the key
/// it was opened with, the response signature, and where the payload lies in the
/// (decrypted) body.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) key: RequestKey,
    pub(crate) signature: [u8; 16],
    pub(crate) payload: Range<usize>,
    pub(crate) calls: Vec<PeerCall>,
}

/// The handler's request context for an admitted request.
fn context<'a>(
    admitted: &'a Admitted,
    arrival: &Arrival,
    store: StoreAccess<'a>,
    payload: &'a [u8],
    has_body: bool,
    seed: &'a [u8; RANDOM_LEN],
    drew: &'a std::cell::Cell<bool>,
) -> RequestContext<'a> {
    let h = &admitted.header;
    RequestContext {
        group: h.group(),
        command: h.command(),
        shard: h.shard(),
        raida_id: h.raida_id(),
        coin_id: h.coin_id(),
        encryption: admitted.encryption,
        key: h.key_id(admitted.encryption),
        nonce: h.nonce(),
        peer: arrival.peer,
        transport: arrival.transport,
        arrived: arrival.at,
        payload,
        has_body,
        store,
        seed,
        drew,
    }
}

/// Everything that happens to an admitted request once its whole body is in: the body
/// checks and decryption (in place), the command, and the response, appended to `out`.
/// This is the work of a job; `scratch` is a reusable buffer for the command's output.
///
/// A command that asks for peer calls ([`Command::peer_calls`](crate::Command::peer_calls))
/// writes nothing yet: [`Served::Peers`] carries what its later
/// [`finish_admitted`] needs.
///
/// Returns the status written, for the counters.
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve_admitted(
    raida_id: u8,
    admitted: &Admitted,
    arrival: &Arrival,
    store: &dyn KeyStore,
    access: Access,
    body: &mut [u8],
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Served {
    scratch.clear();
    let has_body = !body.is_empty();
    let drew = std::cell::Cell::new(false);
    let log = AccessLog::new(access, admitted.commit);
    let key = locker_key_for(admitted, body);
    let (status, signature) = match open_body(admitted.encryption, &key, body) {
        Ok(opened) => {
            let payload = body.get(opened.payload.clone()).unwrap_or(&[]);
            let store = StoreAccess::new(store, &log);
            let ctx = context(admitted, arrival, store, payload, has_body, random, &drew);
            // A command that panics is answered 252 INTERNAL and the server keeps
            // serving: the handler is outside the network layer's control.
            let handler = &admitted.handler;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match handler.peer_calls(&ctx) {
                    PeerPlan::None => Ok(handler.run(&ctx, scratch)),
                    PeerPlan::Reply(status) => Ok(status),
                    PeerPlan::Calls(calls) => Err(calls),
                }
            }));
            if log.not_resident() {
                // Void: the command runs again on a worker, from the body as it came.
                return Served::NotResident;
            }
            let status = match run {
                Ok(Ok(status)) => status,
                Ok(Err(calls)) => {
                    return Served::Peers(Opened {
                        key,
                        signature: opened.challenge,
                        payload: opened.payload,
                        calls,
                    })
                }
                Err(_) => {
                    scratch.clear();
                    Status::Internal.into()
                }
            };
            (status, opened.challenge)
        }
        Err(rejected) => (rejected.status.into(), rejected.challenge),
    };
    let parts = ResponseParts {
        status,
        signature,
        output: scratch,
    };
    write_response(
        out,
        raida_id,
        &admitted.reply,
        &key,
        parts,
        elapsed_micros,
        &response_random(drew.get(), admitted.reply.header_len, random),
    );
    Served::Answered(parts.status, log.commit())
}

/// The second half of a request that called its peers: the command's
/// [`finish`](crate::Command::finish) with the peers' answers (or, when `refused`, that
/// status with no body and no command), and the response, appended to `out`. `body`
/// is the body as [`serve_admitted`] left it (decrypted). Returns the status written
/// and the commit the response must wait for.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_admitted(
    raida_id: u8,
    admitted: &Admitted,
    arrival: &Arrival,
    store: &dyn KeyStore,
    body: &[u8],
    opened: &Opened,
    answers: &[PeerAnswer],
    refused: Option<Status>,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> (StatusByte, Option<CommitSeq>) {
    scratch.clear();
    let drew = std::cell::Cell::new(false);
    let log = AccessLog::new(Access::Blocking, admitted.commit);
    let status = match refused {
        Some(status) => status.into(),
        None => {
            let payload = body.get(opened.payload.clone()).unwrap_or(&[]);
            let ctx = context(
                admitted,
                arrival,
                StoreAccess::new(store, &log),
                payload,
                !body.is_empty(),
                random,
                &drew,
            );
            let handler = &admitted.handler;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler.finish(&ctx, answers, scratch)
            }));
            run.unwrap_or_else(|_| {
                scratch.clear();
                Status::Internal.into()
            })
        }
    };
    let parts = ResponseParts {
        status,
        signature: opened.signature,
        output: scratch,
    };
    write_response(
        out,
        raida_id,
        &admitted.reply,
        &opened.key,
        parts,
        elapsed_micros,
        &response_random(drew.get(), admitted.reply.header_len, random),
    );
    (parts.status, log.commit())
}

/// The random bytes a 48-byte response publishes. Once its command drew random bytes
/// they are derived from the job's fresh bytes under a domain of their own, as the
/// command's secret bytes ([`RequestContext::random`]) are under another, so the
/// header never reveals what the command drew; otherwise they are the job's bytes as
/// they are.
fn response_random(drew: bool, header_len: usize, random: &[u8; RANDOM_LEN]) -> [u8; RANDOM_LEN] {
    if !drew || header_len != LONG_HEADER_LEN {
        return *random;
    }
    let digest = crypto::sha256(&[RESPONSE_RANDOM_DOMAIN, random]);
    let mut out = [0u8; RANDOM_LEN];
    out.copy_from_slice(&digest[..RANDOM_LEN]);
    out
}

/// The key of an admitted request: its header-time key, unless it is a type-2 request
/// whose prefix several lockers share. Then each locker key is tried in ascending
/// order on a copy of the body, and the first whose challenge passes the CRC keys the
/// request and its response; if none does, or the body is too short to hold a
/// challenge (under 18 bytes, or empty), the first key is used (PROTOCOL.md 8c).
fn locker_key_for(admitted: &Admitted, body: &[u8]) -> RequestKey {
    if admitted.other_keys.is_empty() || body.len() < CHALLENGE_LEN + TRAILER.len() {
        return admitted.key;
    }
    let mut trial = Vec::with_capacity(body.len());
    let candidates = std::iter::once(admitted.key).chain(admitted.other_keys.iter().copied());
    for candidate in candidates {
        trial.clear();
        trial.extend_from_slice(body);
        if open_body(admitted.encryption, &candidate, &mut trial).is_ok() {
            return candidate;
        }
    }
    admitted.key
}

/// Appends the response to a request rejected at header time (no body, zero signature).
pub(crate) fn write_rejection(
    out: &mut Vec<u8>,
    raida_id: u8,
    rejected: &Rejected,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) {
    let parts = ResponseParts {
        status: rejected.status.into(),
        signature: [0; 16],
        output: &[],
    };
    write_response(
        out,
        raida_id,
        &rejected.reply,
        &RequestKey::None,
        parts,
        elapsed_micros,
        random,
    );
}

/// What the protocol answers to one UDP datagram (PROTOCOL.md section 7, UDP column),
/// computed in one call: `None` when the datagram is shorter than its header (dropped
/// silently), otherwise the response bytes. `datagram` is what the server kept (at most
/// `udp_payload_threshold` bytes); bytes after the declared body are ignored.
///
/// The engine splits this work between the loop thread and a worker; this single-call
/// form serves the client library, tests and models. Handlers see an unspecified peer
/// (`0.0.0.0:0`) over UDP, arrived `now`: [`answer_request`] names them.
pub fn answer_datagram(
    datagram: &[u8],
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) -> Option<Vec<u8>> {
    let arrival = Arrival {
        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
        transport: Transport::Udp,
        at: now,
    };
    answer_request(
        datagram,
        &arrival,
        rules,
        commands,
        keys,
        elapsed_micros,
        random,
    )
}

/// [`answer_datagram`] for a request that arrived as `arrival` says (its handler's
/// context has that peer, transport and time). Over TCP the answer is the same bytes
/// once the request is whole.
///
/// There is no engine here to call peers: a command that asks for peer calls
/// ([`Command::peer_calls`](crate::Command::peer_calls)) finishes at once, every call
/// answered [`PeerFailure::NoAddress`].
pub fn answer_request(
    datagram: &[u8],
    arrival: &Arrival,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    elapsed_micros: u32,
    random: &[u8; RANDOM_LEN],
) -> Option<Vec<u8>> {
    let now = arrival.at;
    let header = RequestHeader::parse(datagram)?;
    let mut out = Vec::new();
    match check_header(&header, rules, commands, keys, now) {
        Err(rejected) => {
            write_rejection(&mut out, rules.raida_id, &rejected, elapsed_micros, random)
        }
        Ok(admitted) => {
            let after_header = &datagram[header.len()..];
            match after_header.get(..admitted.body_len) {
                Some(body) => {
                    let mut body = body.to_vec();
                    let mut scratch = Vec::new();
                    let served = serve_admitted(
                        rules.raida_id,
                        &admitted,
                        arrival,
                        keys,
                        Access::Blocking,
                        &mut body,
                        elapsed_micros,
                        random,
                        &mut scratch,
                        &mut out,
                    );
                    let commit = match served {
                        Served::Answered(_, commit) => commit,
                        // Blocking access never comes back for residence.
                        Served::NotResident => None,
                        Served::Peers(opened) => {
                            // No engine, so no peers: every call fails as if its peer
                            // had no address.
                            let answers: Vec<PeerAnswer> = opened
                                .calls
                                .iter()
                                .map(|c| PeerAnswer {
                                    raida: c.raida,
                                    result: Err(PeerFailure::NoAddress),
                                })
                                .collect();
                            finish_admitted(
                                rules.raida_id,
                                &admitted,
                                arrival,
                                keys,
                                &body,
                                &opened,
                                &answers,
                                None,
                                elapsed_micros,
                                random,
                                &mut scratch,
                                &mut out,
                            )
                            .1
                        }
                    };
                    // Off the event loop: the write is made durable here before the
                    // answer is given; a store that failed answers 252.
                    if commit.is_some_and(|c| !wait_durable(keys, c)) {
                        out.clear();
                        let failed = Rejected {
                            status: Status::Internal,
                            reply: admitted.reply,
                        };
                        write_rejection(&mut out, rules.raida_id, &failed, elapsed_micros, random);
                    }
                }
                None => {
                    let short = Rejected {
                        status: Status::InvalidPacketLength,
                        reply: admitted.reply,
                    };
                    write_rejection(&mut out, rules.raida_id, &short, elapsed_micros, random);
                }
            }
        }
    }
    Some(out)
}

/// Syncs `keys` until `commit` is durable (`true`) or the store failed (`false`), for
/// callers off the event loop. A store's sync makes every write appended so far
/// durable; a few rounds cover a commit appended while another sync ran.
pub(crate) fn wait_durable(keys: &dyn KeyStore, commit: CommitSeq) -> bool {
    for _ in 0..8 {
        let point = keys.commit_point();
        if point.covers(commit) {
            return true;
        }
        if point.failed {
            return false;
        }
        keys.sync();
    }
    keys.commit_point().covers(commit)
}
