//! `turn_budget`: an event loop accepts, and reads datagrams, at most this many per
//! turn, then serves everything else and comes back for the rest. With a budget of 1
//! and bursts of connections and datagrams, every request must still be answered
//! exactly once: the loop has to come back for a backlog by itself, since
//! edge-triggered readiness reports a burst once. (Checked by mutation: without the
//! accept continuation the TCP test times out; without the datagram continuation the
//! silent-burst test does. Replies raise write-readiness edges that also report the
//! UDP socket readable, so a burst of answered requests alone could not tell; the
//! silent burst is answered by nothing but its last datagram.)

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use raida_client::Request;
use raida_core::Status;
use raida_tests::{demo_keys, demo_root, read_to_eof, Server, GENEROUS};

const BURST: usize = 40;

#[test]
fn a_burst_larger_than_the_turn_budget_is_served_whole() {
    let root = demo_root();
    let server = Server::start(root.path(), &["--turn-budget", "1"]);
    let mut request = Request::echo(0, demo_keys(0));
    request.randomize().expect("random bytes");
    let built = request.build().expect("request builds");
    let mut body = Vec::new();

    // TCP: every connection is made and its request sent before any is read back.
    let mut streams: Vec<TcpStream> = (0..BURST)
        .map(|i| {
            let mut s =
                TcpStream::connect(server.tcp).unwrap_or_else(|e| panic!("connect {i}: {e}"));
            s.write_all(built.bytes()).expect("send");
            s.set_read_timeout(Some(GENEROUS)).expect("timeout");
            s
        })
        .collect();
    for (i, s) in streams.iter_mut().enumerate() {
        let bytes = read_to_eof(s).unwrap_or_else(|e| panic!("TCP reply {i}: {e}"));
        let header = built
            .expect()
            .check_into(&bytes, &mut body)
            .unwrap_or_else(|e| panic!("TCP reply {i}: {e}"));
        assert_eq!(header.status, Status::Success.into(), "TCP {i}");
    }

    // UDP: the whole burst lands in the socket buffer before the loop reads.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(server.udp).expect("connect");
    sock.set_read_timeout(Some(GENEROUS)).expect("timeout");
    assert_eq!(
        send_all_at_once(&sock, built.bytes(), BURST),
        BURST,
        "sendmmsg"
    );
    let mut buf = [0u8; 2048];
    for i in 0..BURST {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("UDP reply {i} of {BURST}: {e}"));
        let header = built
            .expect()
            .check_into(&buf[..n], &mut body)
            .unwrap_or_else(|e| panic!("UDP reply {i}: {e}"));
        assert_eq!(header.status, Status::Success.into(), "UDP {i}");
    }
    // Nothing more: each datagram was answered once.
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert!(sock.recv(&mut buf).is_err(), "an extra UDP reply");
}

#[test]
fn a_silent_burst_of_datagrams_is_read_to_its_end() {
    // BURST - 1 datagrams shorter than any header (dropped unanswered: no reply, so no
    // write edge wakes the loop), then one request, all in the socket before the loop
    // reads. With a budget of 1 the loop reads one per turn and must come back for the
    // rest by itself, or the request at the end is never answered.
    let root = demo_root();
    let server = Server::start(root.path(), &["--turn-budget", "1"]);
    let mut request = Request::echo(0, demo_keys(0));
    request.randomize().expect("random bytes");
    let built = request.build().expect("request builds");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(server.udp).expect("connect");
    sock.set_read_timeout(Some(GENEROUS)).expect("timeout");
    let short = [1u8; 10];
    let mut burst: Vec<&[u8]> = vec![&short; BURST - 1];
    burst.push(built.bytes());
    assert_eq!(send_burst(&sock, &burst), BURST, "sendmmsg");
    let mut buf = [0u8; 2048];
    let n = sock
        .recv(&mut buf)
        .expect("the request at the end of the burst is answered");
    let mut body = Vec::new();
    let header = built
        .expect()
        .check_into(&buf[..n], &mut body)
        .expect("a reply that verifies");
    assert_eq!(header.status, Status::Success.into());
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert!(
        sock.recv(&mut buf).is_err(),
        "a reply to a dropped datagram"
    );
}

/// Sends `count` copies of `datagram` on the connected `sock` in one `sendmmsg`, so
/// they reach the server's socket together; returns how many were sent.
fn send_all_at_once(sock: &UdpSocket, datagram: &[u8], count: usize) -> usize {
    send_burst(sock, &vec![datagram; count])
}

/// Sends `datagrams` on the connected `sock` in one `sendmmsg`, so they reach the
/// server's socket together; returns how many were sent.
fn send_burst(sock: &UdpSocket, datagrams: &[&[u8]]) -> usize {
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero msghdr is valid (no name, no control data).
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    let n = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    // SAFETY: `msgs` holds `n` headers whose iovecs point into `datagrams`, all alive
    // for the call; the kernel only reads them (and writes `msg_len`).
    let sent = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n, 0) };
    usize::try_from(sent).unwrap_or(0)
}
