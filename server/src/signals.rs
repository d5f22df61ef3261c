//! SIGINT and SIGTERM: the first asks the event loop to stop gracefully (a flag, then
//! `Poller::notify`, since the wait retries `EINTR` itself and a signal alone does not
//! wake its wait); the second exits at once with status 128 + the signal number.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use raida_io_epoll::ShutdownHandle;

/// Starts the signal thread: the first signal shuts the server down through `handle`
/// (the same drain as [`ShutdownHandle::shutdown`]), the second exits at once.
pub(crate) fn spawn(handle: ShutdownHandle) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("raida-signals".into())
        .spawn(move || {
            let mut seen = 0u32;
            for signal in signals.forever() {
                seen += 1;
                if seen == 1 {
                    tracing::info!("signal {signal}: shutting down");
                    handle.shutdown();
                } else {
                    tracing::warn!("second signal {signal}: exiting at once");
                    std::process::exit(128 + signal);
                }
            }
        })?;
    Ok(())
}
