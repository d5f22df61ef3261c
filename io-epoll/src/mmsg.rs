//! Datagrams in batches: `recvmmsg` and `sendmmsg`, one syscall for up to [`BATCH`]
//! datagrams each way instead of one per datagram.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Datagrams per syscall at most.
pub(crate) const BATCH: usize = 32;

/// Receive buffers for one batch: `BATCH` slots of `size` bytes and their senders.
#[derive(Debug)]
pub(crate) struct RecvBatch {
    size: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: [libc::socklen_t; BATCH],
    lens: [usize; BATCH],
    count: usize,
}

impl RecvBatch {
    /// Buffers of `size` bytes each (a datagram longer than that is truncated to it).
    pub(crate) fn new(size: usize) -> RecvBatch {
        let size = size.max(1);
        RecvBatch {
            size,
            bufs: vec![0; size * BATCH],
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            addr_lens: [0; BATCH],
            lens: [0; BATCH],
            count: 0,
        }
    }

    /// Reads up to `max` (at most [`BATCH`]) datagrams without blocking; returns how
    /// many. Errors as `recv_from` has them (`WouldBlock` when none is waiting).
    pub(crate) fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        let max = max.clamp(1, BATCH);
        self.count = 0;
        // SAFETY: zeroed iovec and mmsghdr are valid values; every pointer below points
        // into buffers owned by `self` that outlive the call.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..max {
            iovecs[i] = libc::iovec {
                iov_base: self.bufs[i * self.size..].as_mut_ptr().cast(),
                iov_len: self.size,
            };
            hdrs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovecs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let n = loop {
            // SAFETY: `hdrs` holds `max` initialised headers whose buffers are valid.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    max as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        for (i, hdr) in hdrs.iter().enumerate().take(n) {
            self.lens[i] = (hdr.msg_len as usize).min(self.size);
            self.addr_lens[i] = hdr.msg_hdr.msg_namelen;
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last batch: its sender (when it has an IP address) and its
    /// bytes (truncated to the buffer size).
    pub(crate) fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.count {
            return None;
        }
        // SAFETY: the kernel wrote a socket address of `addr_lens[i]` bytes into a
        // sockaddr_storage, which is what `SockAddr::new` expects.
        let addr = unsafe { SockAddr::new(self.addrs[i], self.addr_lens[i]) };
        let peer = addr.as_socket()?;
        let start = i * self.size;
        Some((peer, &self.bufs[start..start + self.lens[i]]))
    }
}

/// Sends the datagrams at the front of `queue` (in order) with `sendmmsg`, at most
/// [`BATCH`] per call, until all are sent or the socket would block, and removes what
/// went (or failed on its own: a peer unreachable drops that datagram), handing each
/// sent buffer to `spent`. Returns how many left the queue; `Err(WouldBlock)` only when
/// none did.
#[derive(Debug, Default)]
pub(crate) struct SendBatch {
    addrs: Vec<SockAddr>,
}

impl SendBatch {
    /// Sends from `queue` as described above.
    pub(crate) fn send(
        &mut self,
        socket: &UdpSocket,
        queue: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        mut spent: impl FnMut(Vec<u8>),
    ) -> io::Result<usize> {
        let mut total = 0;
        while !queue.is_empty() {
            let count = queue.len().min(BATCH);
            self.addrs.clear();
            self.addrs.extend(
                queue
                    .iter()
                    .take(count)
                    .map(|(peer, _)| SockAddr::from(*peer)),
            );
            // SAFETY: zeroed iovec and mmsghdr are valid values; the pointers point into
            // `self.addrs` and the queue's buffers, which are not touched until the call
            // returns; the kernel only reads through them.
            let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, (_, bytes)) in queue.iter().take(count).enumerate() {
                iovecs[i] = libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                };
                let addr = &self.addrs[i];
                hdrs[i].msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                hdrs[i].msg_hdr.msg_namelen = addr.len();
                hdrs[i].msg_hdr.msg_iov = &mut iovecs[i];
                hdrs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `hdrs` holds `count` initialised headers.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    count as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            let gone = if n > 0 {
                n as usize
            } else {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => 0,
                    io::ErrorKind::WouldBlock => {
                        return if total == 0 { Err(e) } else { Ok(total) };
                    }
                    _ => {
                        // The first datagram of this call failed on its own: drop it.
                        tracing::debug!("udp send to {:?}: {e}", self.addrs[0].as_socket());
                        1
                    }
                }
            };
            for _ in 0..gone {
                if let Some((_, bytes)) = queue.pop_front() {
                    spent(bytes);
                }
            }
            total += gone;
        }
        Ok(total)
    }
}
