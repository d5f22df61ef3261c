//! What the store world knows the store must hold: per coin, what it shows now and
//! what may be durable, and the judgement of what a recovery left.
//!
//! Between two recoveries the store's view is exact: a coin shows its last
//! acknowledged record (a failed call changes nothing that a lookup sees). What is
//! durable is not exact: a call that failed after its change was decided (a failed
//! append or sync, a power cut) may or may not have reached the disk. So the model
//! keeps, since the last recovery, the base records and every decided write in call
//! order, acknowledged or "maybe"; a recovery must leave exactly what applying the
//! acknowledged writes and some subset of the maybe ones, each whole, in order, to the
//! base gives. That one rule holds the three store invariants the world checks at a
//! recovery: no acknowledged write is lost, no record holds bytes nobody wrote, and no
//! batch is half applied.

use std::collections::BTreeMap;

use raida_core::keys::{CoinId, Record};

use crate::invariants::hex;

/// Most maybe writes between two recoveries: the world recovers when there are this
/// many, so that judging a recovery (every subset of them) stays cheap.
pub(crate) const MAX_MAYBE: usize = 8;

/// One decided write: the records one `modify` call set.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    /// The world's operation that made it, and what it was.
    pub op: u32,
    pub what: &'static str,
    pub records: Vec<(CoinId, Record)>,
    /// Acknowledged (`modify` returned `Ok`); otherwise maybe.
    pub acked: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    /// What the store shows now, per tracked coin.
    visible: BTreeMap<CoinId, Record>,
    /// The records at the last recovery.
    base: BTreeMap<CoinId, Record>,
    /// Decided writes since the last recovery, in call order.
    writes: Vec<Write>,
}

/// A record as the trace shows it: the AN's first four bytes and the status byte.
pub(crate) fn short(r: &Record) -> String {
    format!("{}..:{:02x}", hex(&r.an[..4]), r.status)
}

pub(crate) fn coin_name(c: CoinId) -> String {
    format!("{}:{}", c.denomination, c.serial)
}

impl Model {
    /// A model whose coins hold `initial`.
    pub(crate) fn new(initial: BTreeMap<CoinId, Record>) -> Model {
        Model {
            visible: initial.clone(),
            base: initial,
            writes: Vec::new(),
        }
    }

    /// What the store must show for `coin` now.
    pub(crate) fn visible(&self, coin: CoinId) -> Option<Record> {
        self.visible.get(&coin).copied()
    }

    /// Maybe writes since the last recovery.
    pub(crate) fn maybe_count(&self) -> usize {
        self.writes.iter().filter(|w| !w.acked).count()
    }

    /// A write was decided and its call returned: `Ok` (`acked`) or an error.
    pub(crate) fn record(&mut self, write: Write) {
        if write.acked {
            for (coin, r) in &write.records {
                self.visible.insert(*coin, *r);
            }
        }
        self.writes.push(write);
    }

    /// Judges what a recovery left (`observed`: every tracked coin's record on disk);
    /// on success, it becomes the new base.
    pub(crate) fn recovered(&mut self, observed: &BTreeMap<CoinId, Record>) -> Result<(), String> {
        let verdict = self.explain(observed);
        self.base = observed.clone();
        self.visible = observed.clone();
        self.writes.clear();
        verdict
    }

    fn explain(&self, observed: &BTreeMap<CoinId, Record>) -> Result<(), String> {
        let maybe = self.maybe_count();
        if maybe > MAX_MAYBE + 4 {
            return Err(format!(
                "the world let {maybe} maybe writes pile up (it recovers at {MAX_MAYBE})"
            ));
        }
        for mask in 0..1u32 << maybe {
            let mut state = self.base.clone();
            // Bit k of `mask` includes the k-th maybe write.
            let mut rest = mask;
            for w in &self.writes {
                let included = w.acked || {
                    let bit = rest & 1 != 0;
                    rest >>= 1;
                    bit
                };
                if included {
                    for (coin, r) in &w.records {
                        state.insert(*coin, *r);
                    }
                }
            }
            if state == *observed {
                return Ok(());
            }
        }
        Err(self.diagnose(observed))
    }

    /// Why no subset of the maybe writes explains `observed`, in the invariants' words.
    fn diagnose(&self, observed: &BTreeMap<CoinId, Record>) -> String {
        for (coin, seen) in observed {
            let written = self.base.get(coin) == Some(seen)
                || self
                    .writes
                    .iter()
                    .any(|w| w.records.iter().any(|(c, r)| c == coin && r == seen));
            if !written {
                return format!(
                    "a record holds bytes never written: coin {} holds {} (base {}, {} write(s) \
                     since)",
                    coin_name(*coin),
                    short(seen),
                    self.base.get(coin).map_or("none".into(), short),
                    self.writes.len()
                );
            }
        }
        for (coin, seen) in observed {
            let last_ack = self
                .writes
                .iter()
                .enumerate()
                .rev()
                .find(|(_, w)| w.acked && w.records.iter().any(|(c, _)| c == coin));
            let Some((at, acked)) = last_ack else {
                continue;
            };
            let value = acked
                .records
                .iter()
                .rev()
                .find(|(c, _)| c == coin)
                .map(|(_, r)| *r);
            let later = self.writes[at + 1..]
                .iter()
                .any(|w| w.records.iter().any(|(c, r)| c == coin && r == seen));
            if value != Some(*seen) && !later {
                return format!(
                    "an acknowledged write was lost: coin {} was acknowledged as {} by op {} \
                     ({}), and after recovery holds {}",
                    coin_name(*coin),
                    value.as_ref().map_or("?".into(), short),
                    acked.op,
                    acked.what,
                    short(seen)
                );
            }
        }
        let involved: Vec<String> = self
            .writes
            .iter()
            .filter(|w| !w.acked)
            .map(|w| format!("op {} ({}, {} coin(s))", w.op, w.what, w.records.len()))
            .collect();
        format!(
            "a write was half applied: no whole subset of the unacknowledged writes [{}] \
             explains the records after recovery",
            involved.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(b: u8) -> Record {
        Record {
            an: [b; 16],
            status: b,
        }
    }

    const A: CoinId = CoinId::new(0, 1);
    const B: CoinId = CoinId::new(0, 2);

    fn model() -> Model {
        Model::new([(A, r(1)), (B, r(2))].into_iter().collect())
    }

    fn write(op: u32, records: &[(CoinId, Record)], acked: bool) -> Write {
        Write {
            op,
            what: "test",
            records: records.to_vec(),
            acked,
        }
    }

    fn seen(a: u8, b: u8) -> BTreeMap<CoinId, Record> {
        [(A, r(a)), (B, r(b))].into_iter().collect()
    }

    #[test]
    fn a_lost_acknowledged_write_is_named() {
        let mut m = model();
        m.record(write(1, &[(A, r(9))], true));
        let e = m.recovered(&seen(1, 2)).expect_err("lost");
        assert!(e.contains("acknowledged write was lost"), "{e}");
    }

    #[test]
    fn a_maybe_write_may_or_may_not_be_there() {
        for observed in [seen(9, 2), seen(1, 2)] {
            let mut m = model();
            m.record(write(1, &[(A, r(9))], false));
            m.recovered(&observed).expect("either");
        }
    }

    #[test]
    fn a_half_applied_batch_is_refused() {
        let mut m = model();
        m.record(write(1, &[(A, r(9)), (B, r(8))], false));
        m.recovered(&seen(9, 8)).expect("all of it");
        let mut m = model();
        m.record(write(1, &[(A, r(9)), (B, r(8))], false));
        let e = m.recovered(&seen(9, 2)).expect_err("half");
        assert!(e.contains("half applied"), "{e}");
    }

    #[test]
    fn bytes_nobody_wrote_are_named() {
        let mut m = model();
        let e = m.recovered(&seen(1, 7)).expect_err("garbage");
        assert!(e.contains("never written"), "{e}");
    }

    #[test]
    fn a_later_maybe_write_may_replace_an_acknowledged_one() {
        let mut m = model();
        m.record(write(1, &[(A, r(9))], true));
        m.record(write(2, &[(A, r(8))], false));
        m.recovered(&seen(8, 2)).expect("the maybe one landed");
        let mut m = model();
        m.record(write(1, &[(A, r(9))], true));
        m.record(write(2, &[(A, r(8))], false));
        m.recovered(&seen(9, 2)).expect("it did not");
    }
}
