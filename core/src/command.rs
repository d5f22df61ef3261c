//! The command registry: `(group, command)` to a handler (PROTOCOL.md section 8).
//!
//! The network layer knows nothing about coins; it only routes a decrypted payload to
//! whatever handler was registered and carries the handler's status and output back.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use raida_wire::{Encryption, Status, StatusByte, Timestamp, Transport, RANDOM_LEN};

use crate::keys::{CoinId, StoreAccess};
use crate::peer::{PeerAnswer, PeerPlan};

/// The highest command group the header rules accept (PROTOCOL.md section 2).
pub const MAX_COMMAND_GROUP: u8 = 15;

/// The 8 ASCII bytes the version command (0, 1) answers with: this crate's version,
/// right-padded with spaces.
pub const VERSION_BYTES: [u8; 8] = version_bytes(env!("CARGO_PKG_VERSION"));

const fn version_bytes(v: &str) -> [u8; 8] {
    let src = v.as_bytes();
    let mut out = [b' '; 8];
    let mut i = 0;
    while i < 8 && i < src.len() {
        out[i] = src[i];
        i += 1;
    }
    out
}

/// Where a handler runs, which it declares ([`Command::runs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// On the event-loop thread, when the request needs no crypto or only a little
    /// (echo, version): well under a microsecond, no I/O, no lock that can wait.
    Inline,
    /// On a worker thread (the default). It may block briefly (a store read or a
    /// durable write), never for long: workers are shared by every request.
    Worker,
    /// A store command (detect, pown, the sums, lockers, healing): on the event-loop
    /// thread when every record it touches is in memory and its crypto is cheap, as
    /// for [`Runs::Inline`]; its store calls ([`RequestContext::store`]) then run from
    /// memory only, and when one would have to load a page or wait for another writer
    /// the engine runs the command again on a worker. So a 16-byte compare never
    /// crosses threads. The command must reach the store only through `ctx.store`,
    /// and must change nothing outside the store before its first store call.
    Store,
    /// On the long-running pool: it may block for as long as it likes (a long poll
    /// that holds a request for minutes). Such requests have a bound of their own
    /// (`long_jobs`), so they never take the workers short requests need, and their
    /// socket deadline stays suspended while they run.
    Long,
}

pub use raida_wire::KeyId;

/// Everything a handler knows about the request it serves. Every field comes from this
/// one request (the deployed server's UDP path leaked fields of earlier datagrams into
/// later ones: PROTOCOL.md section 11), plus the store the server was built with.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct RequestContext<'a> {
    /// Request byte 4: the command group.
    pub group: u8,
    /// Request byte 5: the command.
    pub command: u8,
    /// Request byte 3: the shard (0..=3).
    pub shard: u8,
    /// Request byte 2: the raida id (this server's).
    pub raida_id: u8,
    /// Request bytes 6..7: the coin id (this server's).
    pub coin_id: u16,
    /// Request byte 16: the encryption type.
    pub encryption: Encryption,
    /// Who the key belongs to: request bytes 17..21 (types 1, 2), 19..23 (types 4,
    /// 5) and 24..28 (type 5's second coin).
    pub key: KeyId,
    /// The request's nonce bytes: request bytes 24..31 of a 32-byte header (30..31 are
    /// also the echo bytes), 24..47 of a 48-byte header.
    pub nonce: &'a [u8],
    /// The client's address and port (TCP: the connection's peer; UDP: the sender).
    pub peer: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// When the request arrived whole: its last byte read (TCP), the datagram received
    /// (UDP); in the driver's clock.
    pub arrived: Timestamp,
    /// The command payload, decrypted (PROTOCOL.md section 4, item 4). A request with
    /// body length 0 has an empty payload and `has_body` false.
    pub payload: &'a [u8],
    /// Whether the request had a body at all (body length > 0).
    pub has_body: bool,
    /// The key store the server was built with, shared by every loop and worker, as
    /// this request sees it: its calls note what the answer must wait for (a write
    /// not yet durable), and the engine holds the response until then.
    pub store: StoreAccess<'a>,
    /// The fresh bytes the driver gave this request's job, which
    /// [`RequestContext::random`] turns into the command's secret bytes.
    pub(crate) seed: &'a [u8; RANDOM_LEN],
    /// Set once [`RequestContext::random`] was called: the response then publishes
    /// bytes derived apart instead of the job's own.
    pub(crate) drew: &'a std::cell::Cell<bool>,
}

/// Domain of the command's random bytes (SHA-256 of it and the job's fresh bytes).
pub(crate) const COMMAND_RANDOM_DOMAIN: &[u8] = b"raida-net command random bytes";
/// Domain of a 48-byte response's random bytes when a command ran.
pub(crate) const RESPONSE_RANDOM_DOMAIN: &[u8] = b"raida-net response random bytes";

impl RequestContext<'_> {
    /// 32 random bytes for this request, secret to its command (a healing ticket, say).
    ///
    /// They come from the fresh bytes the driver hands every job (the `random` of
    /// [`Job::run`](crate::Job::run): io-epoll's workers take them from `getrandom`, the
    /// engine's own reservoir feeds what it runs inline), never from a seeded
    /// generator. A 48-byte response header publishes random bytes too (bytes 24..45);
    /// when a command ran, those are derived from the same fresh bytes under another
    /// domain (SHA-256 of a domain tag and the bytes, for each), so neither reveals the
    /// other. One draw per request: every call returns the same bytes.
    ///
    /// Only a command that runs on a worker or the long pool ([`Runs::Worker`],
    /// [`Runs::Long`]) gets fresh bytes: the engine gives unencrypted requests it runs
    /// inline no random bytes at all.
    pub fn random(&self) -> [u8; 32] {
        self.drew.set(true);
        crate::crypto::sha256(&[COMMAND_RANDOM_DOMAIN, self.seed])
    }
}

/// Never prints the payload or the nonce: they may be secret.
impl fmt::Debug for RequestContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("group", &self.group)
            .field("command", &self.command)
            .field("shard", &self.shard)
            .field("encryption", &self.encryption)
            .field("key", &self.key)
            .field("peer", &self.peer)
            .field("transport", &self.transport)
            .field("arrived", &self.arrived)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// A command handler: (group, command) of PROTOCOL.md section 8 and 8a. It receives
/// the whole request ([`RequestContext`]) and appends its output to `output` (which
/// arrives empty); the network layer encrypts and frames it, as the request's
/// encryption type demands.
///
/// # Contract
///
/// - **Thread.** [`Runs::Worker`] (the default): a worker thread. [`Runs::Inline`]:
///   the event-loop thread (only for work well under a microsecond). [`Runs::Long`]:
///   the long-running pool.
/// - **Blocking.** A worker handler may block briefly (a store read, a durable
///   write); anything that can take long must declare [`Runs::Long`]. An inline
///   handler never blocks.
/// - **State.** A handler is `Send + Sync` and shared: it reaches what it was built
///   with (its own `Arc` state) and the server's store through `ctx.store`.
/// - **Panics.** A handler that panics is answered 252 INTERNAL, its output dropped;
///   the server goes on serving.
///
/// A closure `Fn(&RequestContext<'_>) -> R` where `R: Into<`[`Reply`]`>` (a
/// [`Reply`], a [`Status`] or a [`StatusByte`]) is a command too, run on a worker:
///
/// ```
/// use raida_core::{Command, Reply, RequestContext, Status};
///
/// let shard = |req: &RequestContext<'_>| Reply::success(vec![req.shard]);
/// let refuse = |_: &RequestContext<'_>| Status::InvalidCommand;
/// fn is_command(_: &impl Command) {}
/// is_command(&shard);
/// is_command(&refuse);
/// ```
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use raida_core::{Command, RequestContext, Status, StatusByte};
///
/// /// Counts the requests it served and answers the count (8 bytes, big-endian).
/// #[derive(Debug, Default)]
/// struct Counter {
///     served: Arc<AtomicU64>,
/// }
///
/// impl Command for Counter {
///     fn run(&self, _ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
///         let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
///         output.extend_from_slice(&n.to_be_bytes());
///         Status::Success.into()
///     }
/// }
/// ```
pub trait Command: Send + Sync {
    /// Runs the command for `ctx`, appending its output to `output`.
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte;

    /// Where the command runs (default [`Runs::Worker`]).
    fn runs(&self) -> Runs {
        Runs::Worker
    }

    /// Whether the command calls other RAIDA servers before it answers (PROTOCOL.md
    /// 8b, "The peer call"). Runs where [`run`](Self::run) would, before it, with the
    /// same context. [`PeerPlan::None`] (the default): [`run`](Self::run) answers.
    /// [`PeerPlan::Reply`]: that status answers, no body. [`PeerPlan::Calls`]: the
    /// engine calls the peers (no worker waits meanwhile; at most `max_fixes` such
    /// requests wait at once, one more is answered 160) and then runs
    /// [`finish`](Self::finish).
    fn peer_calls(&self, _ctx: &RequestContext<'_>) -> PeerPlan {
        PeerPlan::None
    }

    /// Answers a request whose peer calls have all ended: `answers` holds one entry
    /// per call of the plan, in its order. Runs on a worker, with the same context as
    /// [`peer_calls`](Self::peer_calls). The default runs [`run`](Self::run).
    fn finish(
        &self,
        ctx: &RequestContext<'_>,
        answers: &[PeerAnswer],
        output: &mut Vec<u8>,
    ) -> StatusByte {
        let _ = answers;
        self.run(ctx, output)
    }

    /// The coins a request with this payload (in clear: a type-0 request's, unchecked)
    /// will look up, pushed onto `coins`: the engine hints them to the key store for a
    /// whole batch of datagrams before it serves the first
    /// ([`Engine::prefetch_datagrams`](crate::Engine::prefetch_datagrams)). Only a hint:
    /// a malformed payload may name anything or nothing, and [`run`](Self::run) still
    /// checks it. Default: none.
    fn prefetch_coins(&self, payload: &[u8], coins: &mut Vec<CoinId>) {
        let _ = (payload, coins);
    }
}

/// What a closure command answers: its status and its output (the response body
/// before the network layer encrypts and frames it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status byte of the response.
    pub status: StatusByte,
    /// The command's output.
    pub body: Vec<u8>,
}

impl Reply {
    /// 250 SUCCESS with `body`.
    pub fn success(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: Status::Success.into(),
            body: body.into(),
        }
    }

    /// `status` with no body.
    pub fn status(status: impl Into<StatusByte>) -> Reply {
        Reply {
            status: status.into(),
            body: Vec::new(),
        }
    }
}

impl From<Status> for Reply {
    fn from(status: Status) -> Reply {
        Reply::status(status)
    }
}

impl From<StatusByte> for Reply {
    fn from(status: StatusByte) -> Reply {
        Reply::status(status)
    }
}

/// A shared command is a command: registering an `Arc` of one (state the caller keeps
/// a handle to) runs it as it is.
impl<T: Command + ?Sized> Command for Arc<T> {
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        (**self).run(ctx, output)
    }

    fn runs(&self) -> Runs {
        (**self).runs()
    }

    fn peer_calls(&self, ctx: &RequestContext<'_>) -> PeerPlan {
        (**self).peer_calls(ctx)
    }

    fn finish(
        &self,
        ctx: &RequestContext<'_>,
        answers: &[PeerAnswer],
        output: &mut Vec<u8>,
    ) -> StatusByte {
        (**self).finish(ctx, answers, output)
    }
}

/// A closure is a command: it runs on a worker ([`Runs::Worker`]) and its [`Reply`]'s
/// body is the output (copied once into the output buffer; a type that implements
/// [`Command::run`] itself writes there directly).
impl<F, R> Command for F
where
    F: Fn(&RequestContext<'_>) -> R + Send + Sync,
    R: Into<Reply>,
{
    fn run(&self, ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let reply = self(ctx).into();
        output.extend_from_slice(&reply.body);
        reply.status
    }
}

/// Echo (0, 0): status 250, no body. Clients use it to see that a RAIDA is up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Command for Echo {
    fn run(&self, _ctx: &RequestContext<'_>, _output: &mut Vec<u8>) -> StatusByte {
        Status::Success.into()
    }
    fn runs(&self) -> Runs {
        Runs::Inline
    }
}

/// Version (0, 1): status 250, body = [`VERSION_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Version;

impl Command for Version {
    fn run(&self, _ctx: &RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        output.extend_from_slice(&VERSION_BYTES);
        Status::Success.into()
    }
    fn runs(&self) -> Runs {
        Runs::Inline
    }
}

/// Why a handler could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A group above [`MAX_COMMAND_GROUP`] can never be reached by a request.
    #[error("command group {0} is above {MAX_COMMAND_GROUP}: no request can reach it")]
    GroupOutOfRange(u8),
    /// (group, command) has a handler already (a built-in, or one registered before):
    /// registering never silently replaces one.
    #[error("command ({group}, {command}) is registered already")]
    Taken {
        /// The group.
        group: u8,
        /// The command.
        command: u8,
    },
}

/// The table from `(group, command)` to handler. Lookups are one index, no hashing.
#[derive(Clone)]
pub struct CommandRegistry {
    handlers: Vec<Option<Arc<dyn Command>>>,
}

impl fmt::Debug for CommandRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registered: Vec<(u8, u8)> = self.registered().collect();
        f.debug_struct("CommandRegistry")
            .field("registered", &registered)
            .finish()
    }
}

impl Default for CommandRegistry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl CommandRegistry {
    /// A registry with no command at all: every request is 6 INVALID_COMMAND.
    pub fn empty() -> Self {
        CommandRegistry {
            handlers: vec![None; (usize::from(MAX_COMMAND_GROUP) + 1) * 256],
        }
    }

    /// The commands the server ships with: echo (0, 0) and version (0, 1).
    pub fn with_builtins() -> Self {
        let mut r = Self::empty();
        r.insert(0, 0, Arc::new(Echo));
        r.insert(0, 1, Arc::new(Version));
        r
    }

    /// Registers the handler of `(group, command)`; an error when the group can never
    /// be reached or the pair has a handler already.
    pub fn register(
        &mut self,
        group: u8,
        command: u8,
        handler: Arc<dyn Command>,
    ) -> Result<(), RegisterError> {
        if group > MAX_COMMAND_GROUP {
            return Err(RegisterError::GroupOutOfRange(group));
        }
        if self.get(group, command).is_some() {
            return Err(RegisterError::Taken { group, command });
        }
        self.insert(group, command, handler);
        Ok(())
    }

    /// Every registered (group, command), in order.
    pub fn registered(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.handlers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_some())
            .map(|(i, _)| ((i >> 8) as u8, (i & 0xff) as u8))
    }

    fn insert(&mut self, group: u8, command: u8, handler: Arc<dyn Command>) {
        let i = Self::index(group, command);
        if let Some(slot) = self.handlers.get_mut(i) {
            *slot = Some(handler);
        }
    }

    fn index(group: u8, command: u8) -> usize {
        (usize::from(group) << 8) | usize::from(command)
    }

    /// The handler of `(group, command)`, if one is registered.
    pub fn get(&self, group: u8, command: u8) -> Option<&Arc<dyn Command>> {
        self.handlers
            .get(Self::index(group, command))
            .and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_echo_and_version_only() {
        let r = CommandRegistry::with_builtins();
        assert!(r.get(0, 0).is_some());
        assert!(r.get(0, 1).is_some());
        assert!(r.get(0, 2).is_none());
        assert!(r.get(1, 0).is_none());
        assert!(r.get(15, 255).is_none());
    }

    /// A request context with `payload`, over `transport`, for the commands under test.
    fn context<'a>(
        store: &'a dyn crate::KeyStore,
        transport: Transport,
        payload: &'a [u8],
    ) -> RequestContext<'a> {
        RequestContext {
            group: 0,
            command: 0,
            shard: 0,
            raida_id: 0,
            coin_id: 0,
            encryption: Encryption::None,
            key: KeyId::None,
            nonce: &[],
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            transport,
            arrived: Timestamp::ZERO,
            payload,
            has_body: !payload.is_empty(),
            store: StoreAccess::new(
                store,
                Box::leak(Box::new(crate::keys::AccessLog::new(
                    crate::keys::Access::Blocking,
                    None,
                ))),
            ),
            seed: &[1; RANDOM_LEN],
            // Leaked: a few bytes per test, for a context that outlives this call.
            drew: Box::leak(Box::new(std::cell::Cell::new(false))),
        }
    }

    #[test]
    fn version_is_eight_ascii_bytes() {
        let mut out = Vec::new();
        let store = crate::keys::MemoryKeyStore::new();
        let ctx = context(&store, Transport::Udp, &[]);
        let status = Version.run(&ctx, &mut out);
        assert_eq!(status, StatusByte(250));
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(u8::is_ascii));
        assert!(out.starts_with(env!("CARGO_PKG_VERSION").as_bytes()));
    }

    #[test]
    fn a_closure_is_a_command_whose_reply_is_the_status_and_the_output() {
        let store = crate::keys::MemoryKeyStore::new();
        let ctx = RequestContext {
            group: 15,
            shard: 2,
            ..context(&store, Transport::Tcp, b"abc")
        };
        assert_ne!(ctx.random(), [0; 32]);
        assert_eq!(ctx.random(), ctx.random(), "one draw per request");
        let shard_and_payload = |req: &RequestContext<'_>| {
            let mut body = vec![req.shard];
            body.extend_from_slice(req.payload);
            Reply::success(body)
        };
        let mut out = Vec::new();
        assert_eq!(shard_and_payload.run(&ctx, &mut out), StatusByte(250));
        assert_eq!(out, b"\x02abc");
        assert_eq!(shard_and_payload.runs(), Runs::Worker);

        let refuse = |_: &RequestContext<'_>| Status::InvalidCommand;
        let mut out = Vec::new();
        assert_eq!(refuse.run(&ctx, &mut out), Status::InvalidCommand.into());
        assert!(out.is_empty());

        // A shared command runs as itself, where it declares.
        let shared: Arc<dyn Command> = Arc::new(Version);
        let mut out = Vec::new();
        assert_eq!(Arc::new(shared).run(&ctx, &mut out), StatusByte(250));
        assert_eq!(out, VERSION_BYTES);
        assert_eq!(Arc::new(Version).runs(), Runs::Inline);
    }

    #[test]
    fn groups_above_15_cannot_be_registered() {
        let mut r = CommandRegistry::empty();
        assert_eq!(
            r.register(16, 0, Arc::new(Echo)),
            Err(RegisterError::GroupOutOfRange(16))
        );
        assert_eq!(r.register(15, 9, Arc::new(Echo)), Ok(()));
        assert!(r.get(15, 9).is_some());
    }

    #[test]
    fn a_taken_pair_is_never_replaced() {
        let mut r = CommandRegistry::with_builtins();
        let taken = Err(RegisterError::Taken {
            group: 0,
            command: 0,
        });
        assert_eq!(r.register(0, 0, Arc::new(Version)), taken);
        assert_eq!(r.register(15, 9, Arc::new(Echo)), Ok(()));
        assert_eq!(
            r.register(15, 9, Arc::new(Version)),
            Err(RegisterError::Taken {
                group: 15,
                command: 9
            })
        );
        assert_eq!(
            r.registered().collect::<Vec<_>>(),
            [(0, 0), (0, 1), (15, 9)]
        );
    }
}
