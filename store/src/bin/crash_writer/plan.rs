//! What the crash writer and the crash test (`store/tests/crash.rs`, which includes this
//! file) must agree on: the pages written, the status byte every write sets, and the
//! seeded random numbers both draw from.

/// The pages the writers write: (denomination, page number). The test writes them.
pub(crate) const PAGES: [(i8, u32); 3] = [(0, 0), (-1, 0x123), (6, 0xffff)];

/// The status byte every write sets (the test's pages start with another).
pub(crate) const WRITTEN_STATUS: u8 = 7;

/// splitmix64: a few lines, seeded, the same in the writer and the test.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
