//! Scripted peers: the other side of the engine's outbound connections (peer calls),
//! in memory.

use raida_core::{ConnSocket, Io};

/// How a scripted peer behaves when the engine connects to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerScript {
    /// Accepts, reads the request, answers these bytes, then closes (end of stream).
    Answer(Vec<u8>),
    /// Accepts, reads the request, and never answers nor closes.
    Hang,
    /// Refuses the connection.
    Refuse,
    /// Never completes the connect (neither established nor refused).
    ConnectHang,
    /// Accepts, then resets: every read fails.
    Reset,
}

/// The engine's side of one outbound in-memory connection to a scripted peer.
#[derive(Debug)]
pub struct MemPeer {
    script: PeerScript,
    /// What the engine wrote (the request).
    request: Vec<u8>,
    /// What is left of the answer.
    answer: Vec<u8>,
    answered: usize,
    closed: bool,
}

impl MemPeer {
    /// A connection to a peer following `script`.
    pub fn new(script: PeerScript) -> MemPeer {
        let answer = match &script {
            PeerScript::Answer(bytes) => bytes.clone(),
            _ => Vec::new(),
        };
        MemPeer {
            script,
            request: Vec::new(),
            answer,
            answered: 0,
            closed: false,
        }
    }

    /// The script.
    pub fn script(&self) -> &PeerScript {
        &self.script
    }

    /// The bytes the engine sent.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Whether the engine closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn mark_closed(&mut self) {
        assert!(!self.closed, "a peer connection closed twice");
        self.closed = true;
    }
}

impl ConnSocket for MemPeer {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        assert!(!buf.is_empty(), "an empty read buffer");
        assert!(!self.closed, "a read on a closed peer connection");
        match self.script {
            PeerScript::Reset => Io::Failed,
            PeerScript::Hang | PeerScript::Refuse | PeerScript::ConnectHang => Io::WouldBlock,
            PeerScript::Answer(_) => {
                let rest = &self.answer[self.answered..];
                if rest.is_empty() {
                    return Io::Eof;
                }
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.answered += n;
                Io::Done(n)
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        assert!(!bytes.is_empty(), "an empty write");
        assert!(!self.closed, "a write on a closed peer connection");
        if self.script == PeerScript::Reset {
            return Io::Failed;
        }
        self.request.extend_from_slice(bytes);
        Io::Done(bytes.len())
    }

    fn shutdown_write(&mut self) {}
}
