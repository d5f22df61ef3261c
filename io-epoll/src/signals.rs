//! SIGINT and SIGTERM: the first asks the event loop to stop gracefully (a flag, then
//! `Poller::notify`, since the wait retries `EINTR` itself and a signal alone does not
//! wake its wait); the second exits at once with status 128 + the signal number.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::poll::Poller;

/// Starts the signal thread. The returned flag turns true on the first signal, and
/// every event loop's poller in `pollers` is woken.
pub fn spawn(pollers: Vec<Arc<Poller>>) -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("raida-signals".into())
        .spawn(move || {
            let mut seen = 0u32;
            for signal in signals.forever() {
                seen += 1;
                if seen == 1 {
                    flag.store(true, Ordering::SeqCst);
                    for poller in &pollers {
                        if let Err(e) = poller.notify() {
                            tracing::error!("cannot wake an event loop for signal {signal}: {e}");
                        }
                    }
                } else {
                    tracing::warn!("second signal {signal}: exiting at once");
                    std::process::exit(128 + signal);
                }
            }
        })?;
    Ok(stop)
}
