//! The CPU's prefetch hint, the store's one use of `unsafe`.
//!
//! A batch of datagrams names its coins before its requests run
//! ([`KeyStore::prefetch`](raida_core::KeyStore::prefetch)); the cache finds where each
//! record lies (under its shard's lock) and then asks the CPU to start loading every
//! line at once, so that the misses overlap. A plain read cannot do that: each would
//! wait for its line before the next shard lock is taken (a locked instruction waits
//! for every earlier load), so the hints are issued after the locks, on addresses
//! alone. A hint reads nothing the program sees and never faults, even if the page
//! was evicted and its frame reused since.

/// Asks the CPU to bring the cache line at `at` into its cache (`PREFETCHT0`); nothing
/// elsewhere than on x86-64.
#[allow(unsafe_code)]
pub(crate) fn line(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, which every x86-64 CPU has (it is in the
    // target's baseline features). It is a hint: it dereferences nothing the program
    // can observe and cannot fault, whatever the address, so any pointer value is
    // sound, including one whose memory was since unmapped.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
