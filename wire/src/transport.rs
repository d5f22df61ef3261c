//! The transports a request arrives over and its response leaves on.

/// The transport a request came over and its response went out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// A TCP connection.
    Tcp,
    /// A UDP datagram.
    Udp,
}

impl Transport {
    /// Both transports, in index order.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Udp];

    /// The index of this transport in per-transport arrays (`tcp` 0, `udp` 1).
    pub const fn index(self) -> usize {
        match self {
            Transport::Tcp => 0,
            Transport::Udp => 1,
        }
    }

    /// The label value: `tcp` or `udp`.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}
