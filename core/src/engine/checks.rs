//! The header-time checks of PROTOCOL.md section 2, which decide on the
//! event-loop thread, before any body byte is read, whether a request is answered at
//! once (rejected), parked until its key's page is loaded, or admitted to have its
//! body read and its command run. They need the command registry and the key store,
//! which is why they are the engine's and not the wire vocabulary's.

use std::sync::Arc;

use raida_wire::{
    An, CoinId, Encryption, ReplyContext, RequestHeader, Status, Timestamp, MAX_SHARD,
};

use crate::command::{Command, CommandRegistry, MAX_COMMAND_GROUP};
use crate::crypto;
use crate::frame::RequestKey;
use crate::keys::{CommitSeq, KeyStore, Lookup, PageId};

/// What the header rules compare against: this server's identity and body bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRules {
    /// Request byte 2 must equal this.
    pub raida_id: u8,
    /// Request bytes 6..7 must equal this.
    pub coin_id: u16,
    /// A declared body longer than this is answered 16 before any body byte is read.
    pub max_body_size: usize,
}

/// A header that passed every header-time check: the request may have its body read
/// and be run.
#[derive(Clone)]
pub struct Admitted {
    /// The header itself (what the handler's request context is read from).
    pub header: RequestHeader,
    /// How the request is encrypted.
    pub encryption: Encryption,
    /// The key its body (and the response body) is encrypted with. Type 2: the first
    /// (in ascending byte order) of the locker keys starting with the request's prefix.
    pub key: RequestKey,
    /// Type 2 only: the other locker keys with the request's prefix, ascending. When
    /// there are any, the body is decrypted with each key in turn and the first whose
    /// challenge passes the CRC keys the request and its response (PROTOCOL.md
    /// section 8c); if none does, [`key`](Self::key) is used.
    /// (Kept as keys, whose `Debug` never prints key material.)
    pub other_keys: Vec<RequestKey>,
    /// Exactly how many body bytes follow the header.
    pub body_len: usize,
    /// The handler of the request's (group, command).
    pub handler: Arc<dyn Command>,
    /// What the response header carries from this request.
    pub reply: ReplyContext,
    /// The commit the request's key waits for: its coin's (or a locker's) record was
    /// written by a write not yet durable, and any response keyed by it would reveal
    /// that write, so the response waits until it is durable.
    pub commit: Option<CommitSeq>,
}

/// Prints the handler as its kind only: a command need not be `Debug` (a closure is
/// not).
impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("header", &self.header)
            .field("encryption", &self.encryption)
            .field("key", &self.key)
            .field("body_len", &self.body_len)
            .field("handler", &format_args!("dyn Command"))
            .field("reply", &self.reply)
            .finish()
    }
}

/// A header that failed a header-time check: answer `status` and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The first failing rule's status.
    pub status: Status,
    /// What the response header carries from this request.
    pub reply: ReplyContext,
}

/// What the header-time checks decided.
#[derive(Debug)]
pub(crate) enum HeaderCheck {
    /// Every check passed.
    Admitted(Admitted),
    /// A check failed: answer its status.
    Rejected(Rejected),
    /// A key's page is not in memory: park the request until it is loaded, then check
    /// again.
    Park(PageId),
}

/// Runs the header-time checks of PROTOCOL.md section 2 in their order (routing 255,
/// split 2, raida 3, group 5, shard 4, command 6, coin id 7, encryption type 27, key
/// lookup 34/25, declared body length 16) and resolves the key. The first failing
/// rule wins. Runs on the event-loop thread, before any body byte is read; a key
/// whose page is not in memory parks the request (the engine loads it off the loop).
pub(crate) fn check_header_or_park(
    h: &RequestHeader,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> HeaderCheck {
    match check(h, rules, commands, keys, now) {
        Ok(admitted) => HeaderCheck::Admitted(admitted),
        Err(Fail::Rejected(rejected)) => HeaderCheck::Rejected(rejected),
        Err(Fail::Park(page)) => HeaderCheck::Park(page),
    }
}

/// The event loop's header-time checks, for callers off the event loop (clients,
/// tests, models): a key whose page is not in memory is loaded here, blocking on the
/// store; a page that cannot be read is answered 252 INTERNAL.
pub fn check_header(
    h: &RequestHeader,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<Admitted, Rejected> {
    // A page evicted again between its load and the check is loaded again; a bound
    // keeps a pathological store from looping.
    for _ in 0..4 {
        match check(h, rules, commands, keys, now) {
            Ok(admitted) => return Ok(admitted),
            Err(Fail::Rejected(rejected)) => return Err(rejected),
            Err(Fail::Park(page)) => {
                if keys.load(page, now).is_err() {
                    break;
                }
            }
        }
    }
    Err(unreadable_key(h))
}

/// The answer to a request refused for its client's rate: 160 REQUEST_RATE, with what
/// the response carries before any rule is checked (its echo bytes, its layout).
pub(crate) fn busy(h: &RequestHeader) -> Rejected {
    Rejected {
        status: Status::RequestRate,
        reply: ReplyContext::early(h),
    }
}

/// The answer to a request whose key's page cannot be read: 252 INTERNAL, with what
/// the response carries once the rules up to the key lookup have passed.
pub(crate) fn unreadable_key(h: &RequestHeader) -> Rejected {
    let mut reply = ReplyContext::early(h);
    reply.group = h.group();
    reply.coins_parsed(h);
    Rejected {
        status: Status::Internal,
        reply,
    }
}

/// Why the checks did not admit a header.
enum Fail {
    Rejected(Rejected),
    Park(PageId),
}

fn check(
    h: &RequestHeader,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<Admitted, Fail> {
    let mut reply = ReplyContext::early(h);
    let reject = |status, reply| Err(Fail::Rejected(Rejected { status, reply }));
    if h.routing() != 1 {
        return reject(Status::InvalidRouting, reply);
    }
    if h.split_id() != 0 {
        return reject(Status::InvalidSplitId, reply);
    }
    if h.raida_id() != rules.raida_id {
        return reject(Status::InvalidRaidaId, reply);
    }
    if h.group() > MAX_COMMAND_GROUP {
        return reject(Status::InvalidCommandGroup, reply);
    }
    if h.shard() > MAX_SHARD {
        return reject(Status::InvalidShardId, reply);
    }
    let Some(handler) = commands.get(h.group(), h.command()) else {
        return reject(Status::InvalidCommand, reply);
    };
    reply.group = h.group();
    if h.coin_id() != rules.coin_id {
        return reject(Status::InvalidCoinId, reply);
    }
    let Some(encryption) = Encryption::from_byte(h.encryption_byte()) else {
        // Only 48-byte headers get here: bytes 0..=2 are all valid types. A 27 carries
        // none of the request's nonce bytes.
        reply.tail = [0, 0];
        return reject(Status::InvalidEncryptionCode, reply);
    };
    reply.coins_parsed(h);
    let (key, other_keys, commit) = match resolve_key(h, encryption, keys, now) {
        Ok(key) => key,
        Err(KeyFail::Status(status)) => return reject(status, reply),
        Err(KeyFail::Park(page)) => return Err(Fail::Park(page)),
    };
    let body_len = h.declared_body_len();
    if body_len > rules.max_body_size {
        return reject(Status::InvalidPacketLength, reply);
    }
    Ok(Admitted {
        header: *h,
        encryption,
        key,
        other_keys,
        body_len,
        handler: Arc::clone(handler),
        reply,
        commit,
    })
}

/// Why a key could not be resolved.
enum KeyFail {
    /// Answer this status (unknown coin or locker; a page that cannot be read).
    Status(Status),
    /// The coin's page is not in memory.
    Park(PageId),
}

/// The AN of the coin named by the 5 bytes at `at`; `unknown` is the status of an
/// unknown coin (34 for types 1, 2; 25 for types 4, 5).
fn coin_an(
    h: &RequestHeader,
    at: usize,
    unknown: Status,
    keys: &dyn KeyStore,
    now: Timestamp,
    commit: &mut Option<CommitSeq>,
) -> Result<An, KeyFail> {
    let coin = CoinId::from_bytes(h.five_bytes(at));
    match keys.lookup(coin, now) {
        Lookup::Found(an) => {
            // After the lookup: a write the lookup saw was marked pending before it
            // changed the record.
            if let Some(c) = keys.pending_commit(coin) {
                *commit = Some(commit.map_or(c, |old| old.max(c)));
            }
            Ok(an)
        }
        Lookup::Unknown => Err(KeyFail::Status(unknown)),
        Lookup::NotInMemory(page) => Err(KeyFail::Park(page)),
        Lookup::Unreadable(_) => Err(KeyFail::Status(Status::Internal)),
    }
}

fn resolve_key(
    h: &RequestHeader,
    encryption: Encryption,
    keys: &dyn KeyStore,
    now: Timestamp,
) -> Result<(RequestKey, Vec<RequestKey>, Option<CommitSeq>), KeyFail> {
    let mut commit = None;
    let key = match encryption {
        Encryption::None => Ok(RequestKey::None),
        Encryption::CoinAes128 => {
            let an = coin_an(h, 17, Status::InvalidEncryption, keys, now, &mut commit)?;
            Ok(RequestKey::Aes128 {
                an,
                iv: h.short_iv(),
            })
        }
        Encryption::LockerAes128 => {
            // Every locker key with the prefix, ascending; the first keys the request
            // unless the body says otherwise (see `Admitted::other_keys`).
            let mut found = keys.locker_keys(&h.five_bytes(17), now).into_iter();
            // After the read: the index does not say which write put a key there.
            let commit = keys.newest_pending();
            let an = found
                .next()
                .ok_or(KeyFail::Status(Status::InvalidEncryption))?;
            let others = found
                .map(|an| RequestKey::Aes128 {
                    an,
                    iv: h.short_iv(),
                })
                .collect();
            return Ok((
                RequestKey::Aes128 {
                    an,
                    iv: h.short_iv(),
                },
                others,
                commit,
            ));
        }
        Encryption::CoinAes256 => {
            let an = coin_an(
                h,
                19,
                Status::EncryptionCoinNotFound,
                keys,
                now,
                &mut commit,
            )?;
            Ok(RequestKey::Aes256 {
                key: crypto::sha256(&[&an]),
                iv: h.long_iv(),
            })
        }
        Encryption::TwoCoinAes256 => {
            let an1 = coin_an(
                h,
                19,
                Status::EncryptionCoinNotFound,
                keys,
                now,
                &mut commit,
            )?;
            let an2 = coin_an(
                h,
                24,
                Status::EncryptionCoinNotFound,
                keys,
                now,
                &mut commit,
            )?;
            Ok(RequestKey::Aes256 {
                key: crypto::sha256(&[&an1, &an2]),
                iv: h.long_iv(),
            })
        }
    }?;
    Ok((key, Vec::new(), commit))
}
