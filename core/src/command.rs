//! The command registry: `(group, command)` to a handler (PROTOCOL.md section 8).
//!
//! The network layer knows nothing about coins; it only routes a decrypted payload to
//! whatever handler was registered and carries the handler's status and output back.

use std::fmt;
use std::sync::Arc;

use crate::status::{Status, StatusByte};

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

/// A command handler. It receives the decrypted payload and appends its output to
/// `output` (which arrives empty); the network layer encrypts and frames it.
pub trait Command: Send + Sync + fmt::Debug {
    /// Runs the command.
    fn run(&self, payload: &[u8], output: &mut Vec<u8>) -> StatusByte;

    /// Whether the command is cheap enough (well under a microsecond, no I/O, no lock)
    /// to run on the event-loop thread instead of a worker. The engine may run such a
    /// command inline when the request also needs no crypto.
    fn runs_inline(&self) -> bool {
        false
    }
}

/// Echo (0, 0): status 250, no body. Clients use it to see that a RAIDA is up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Command for Echo {
    fn run(&self, _payload: &[u8], _output: &mut Vec<u8>) -> StatusByte {
        Status::Success.into()
    }
    fn runs_inline(&self) -> bool {
        true
    }
}

/// Version (0, 1): status 250, body = [`VERSION_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Version;

impl Command for Version {
    fn run(&self, _payload: &[u8], output: &mut Vec<u8>) -> StatusByte {
        output.extend_from_slice(&VERSION_BYTES);
        Status::Success.into()
    }
    fn runs_inline(&self) -> bool {
        true
    }
}

/// A group above [`MAX_COMMAND_GROUP`] can never be reached by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("command group {0} is above {MAX_COMMAND_GROUP}: no request can reach it")]
pub struct GroupOutOfRange(pub u8);

/// The table from `(group, command)` to handler. Lookups are one index, no hashing.
#[derive(Clone)]
pub struct CommandRegistry {
    handlers: Vec<Option<Arc<dyn Command>>>,
}

impl fmt::Debug for CommandRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registered: Vec<(u8, u8)> = self
            .handlers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_some())
            .map(|(i, _)| ((i >> 8) as u8, (i & 0xff) as u8))
            .collect();
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

    /// Registers (or replaces) the handler of `(group, command)`.
    pub fn register(
        &mut self,
        group: u8,
        command: u8,
        handler: Arc<dyn Command>,
    ) -> Result<(), GroupOutOfRange> {
        if group > MAX_COMMAND_GROUP {
            return Err(GroupOutOfRange(group));
        }
        self.insert(group, command, handler);
        Ok(())
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

    #[test]
    fn version_is_eight_ascii_bytes() {
        let mut out = Vec::new();
        let status = Version.run(&[], &mut out);
        assert_eq!(status, StatusByte(250));
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(u8::is_ascii));
        assert!(out.starts_with(env!("CARGO_PKG_VERSION").as_bytes()));
    }

    #[test]
    fn groups_above_15_cannot_be_registered() {
        let mut r = CommandRegistry::empty();
        assert_eq!(r.register(16, 0, Arc::new(Echo)), Err(GroupOutOfRange(16)));
        assert_eq!(r.register(15, 9, Arc::new(Echo)), Ok(()));
        assert!(r.get(15, 9).is_some());
    }
}
