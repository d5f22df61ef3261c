//! A server of the builder's serving on a thread of its own, for the server crate's
//! integration tests.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use raida_client::{exchange, Request, Timeouts, Transport};
use raida_server::{ServeError, Served, ServerBuilder, ShutdownHandle};

/// A bound for every exchange and for the drain.
pub(crate) const GENEROUS: Duration = Duration::from_secs(20);

/// A server on 127.0.0.1, port 0, serving on a thread of its own.
pub(crate) struct Running {
    pub(crate) tcp: SocketAddr,
    handle: ShutdownHandle,
    serving: JoinHandle<Result<Served, ServeError>>,
}

impl Running {
    pub(crate) fn start(builder: ServerBuilder) -> Running {
        let server = builder.bind().expect("the server binds");
        let tcp = server.tcp_addr();
        let handle = server.shutdown_handle();
        let serving = std::thread::spawn(move || server.serve());
        Running {
            tcp,
            handle,
            serving,
        }
    }

    /// Status and body of the response to `request` over TCP.
    pub(crate) fn ask(&self, mut request: Request) -> (u8, Vec<u8>) {
        request.randomize().expect("random bytes");
        let built = request.build().expect("a valid request");
        let reply = exchange(
            self.tcp,
            Transport::Tcp,
            &built,
            &Timeouts::uniform(GENEROUS),
        )
        .expect("a response that verifies");
        (reply.response.header.status.0, reply.response.body)
    }

    pub(crate) fn stop(self) {
        self.handle.shutdown();
        let served = self.serving.join().expect("serve does not panic");
        assert_eq!(served.expect("serve ends well"), Served::Drained);
    }
}
