//! Pairing the documents of two streams by `_id`, without knowing how the
//! server orders `_id`s (collations, numbers across types).
//!
//! Pure: it reads nothing. The range readers of [`super::documents`] push
//! each side's documents in, and settle what it cannot pair by looking
//! both sides up by `_id`.

use std::collections::{HashMap, HashSet, VecDeque};

use bson::RawDocumentBuf;

use super::diff::{id_key, id_key_owned};
use crate::error::Result;

/// Keys of documents settled by lookup whose partner may still come, per
/// range. Past this, a partner that does come is compared a second time
/// (by lookup) rather than remembered.
pub const DEFERRED_CAP: usize = 200_000;

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source = 0,
    Destination = 1,
}

/// What the matcher decided about the documents pushed into it.
#[derive(Debug)]
pub enum Matched {
    /// A source document and the destination document with its `_id`.
    Pair(RawDocumentBuf, RawDocumentBuf),
    /// A document whose partner did not come in step: to be settled by
    /// looking its `_id` up on both sides.
    Unresolved(RawDocumentBuf),
}

#[derive(Default)]
struct Pending {
    order: VecDeque<(u64, Vec<u8>)>,
    docs: HashMap<Vec<u8>, (u64, RawDocumentBuf)>,
    bytes: usize,
}

impl Pending {
    fn insert(&mut self, seq: u64, key: Vec<u8>, doc: RawDocumentBuf) {
        self.bytes += doc.as_bytes().len();
        self.order.push_back((seq, key.clone()));
        self.docs.insert(key, (seq, doc));
    }

    fn take(&mut self, key: &[u8]) -> Option<(u64, RawDocumentBuf)> {
        let found = self.docs.remove(key);
        if let Some((_, d)) = &found {
            self.bytes -= d.as_bytes().len();
        }
        self.trim();
        found
    }

    /// Drops order entries of documents already taken.
    fn trim(&mut self) {
        while let Some((seq, key)) = self.order.front() {
            if self.docs.get(key).is_some_and(|(s, _)| s == seq) {
                break;
            }
            self.order.pop_front();
        }
    }

    fn front_seq(&mut self) -> Option<u64> {
        self.trim();
        self.order.front().map(|(s, _)| *s)
    }

    fn pop_oldest(&mut self) -> Option<(Vec<u8>, RawDocumentBuf)> {
        self.trim();
        let (_, key) = self.order.pop_front()?;
        let (_, doc) = self.docs.remove(&key)?;
        self.bytes -= doc.as_bytes().len();
        Some((key, doc))
    }

    fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// Pairs the documents of two streams by `_id` without knowing how the
/// server orders `_id`s (collations, numbers across types): documents in
/// step pair at once, others wait until their partner comes or can no
/// longer come. Pure: it reads nothing.
pub struct Matcher {
    /// Natural order (capped): the sides may legitimately be out of step,
    /// and the order of the pairs is checked rather than relied on.
    natural: bool,
    budget: usize,
    pending: [Pending; 2],
    seq: [u64; 2],
    /// Keys settled by lookup while their partner might still come, by the
    /// side they were taken from; that partner is then dropped, as the
    /// lookup covered it.
    deferred: [HashSet<Vec<u8>>; 2],
    /// Sides read to their end: nothing more can pair with the other's.
    ended: [bool; 2],
    last_pair: Option<(u64, u64)>,
    /// Natural order: two pairs came in another order on each side.
    pub order_broken: bool,
}

impl Matcher {
    pub fn new(natural: bool, budget: usize) -> Matcher {
        Matcher {
            natural,
            budget,
            pending: Default::default(),
            seq: [0, 0],
            deferred: Default::default(),
            ended: [false, false],
            last_pair: None,
            order_broken: false,
        }
    }

    /// Bytes of the documents waiting for a partner.
    pub fn pending_bytes(&self) -> usize {
        self.pending[0].bytes + self.pending[1].bytes
    }

    fn note_pair(&mut self, s: u64, d: u64) {
        if let Some((ls, ld)) = self.last_pair {
            if s < ls || d < ld {
                self.order_broken = true;
            }
        }
        self.last_pair = Some((s, d));
    }

    /// The common case, without hashing: nothing waits and the two next
    /// documents have the same `_id`. Returns them back when it does not
    /// apply.
    pub fn try_step(
        &mut self,
        s: RawDocumentBuf,
        d: RawDocumentBuf,
    ) -> Result<
        std::result::Result<(RawDocumentBuf, RawDocumentBuf), (RawDocumentBuf, RawDocumentBuf)>,
    > {
        if !(self.pending[0].is_empty() && self.pending[1].is_empty()) || id_key(&s)? != id_key(&d)?
        {
            return Ok(Err((s, d)));
        }
        let (ss, ds) = (self.seq[0], self.seq[1]);
        self.seq = [ss + 1, ds + 1];
        if self.natural {
            self.note_pair(ss, ds);
        }
        Ok(Ok((s, d)))
    }

    pub fn push(&mut self, side: Side, doc: RawDocumentBuf, out: &mut Vec<Matched>) -> Result<()> {
        let key = id_key_owned(&doc)?;
        let i = side as usize;
        let seq = self.seq[i];
        self.seq[i] += 1;
        if self.deferred[1 - i].remove(&key) {
            return Ok(());
        }
        match self.pending[1 - i].take(&key) {
            Some((other_seq, other)) => {
                let (s, d) = match side {
                    Side::Source => (seq, other_seq),
                    Side::Destination => (other_seq, seq),
                };
                if self.natural {
                    self.note_pair(s, d);
                } else {
                    // Both sides are in one order: whatever is older than
                    // this pair on either side can no longer meet its
                    // partner.
                    for (j, bound) in [(0usize, s), (1usize, d)] {
                        while self.pending[j].front_seq().is_some_and(|f| f < bound) {
                            if let Some((_, old)) = self.pending[j].pop_oldest() {
                                out.push(Matched::Unresolved(old));
                            }
                        }
                    }
                }
                out.push(match side {
                    Side::Source => Matched::Pair(doc, other),
                    Side::Destination => Matched::Pair(other, doc),
                });
            }
            // The other side is read to its end: no partner can come.
            None if self.ended[1 - i] => out.push(Matched::Unresolved(doc)),
            None => {
                self.pending[i].insert(seq, key, doc);
                while self.pending_bytes() > self.budget {
                    let j = usize::from(self.pending[1].bytes > self.pending[0].bytes);
                    let Some((k, old)) = self.pending[j].pop_oldest() else {
                        break;
                    };
                    if self.deferred_len() < DEFERRED_CAP {
                        self.deferred[j].insert(k);
                    }
                    out.push(Matched::Unresolved(old));
                }
            }
        }
        Ok(())
    }

    /// One side is read to its end: what the other side holds waiting can
    /// no longer pair, and what was deferred for it will not come.
    /// Ending a side a second time does nothing.
    pub fn end(&mut self, side: Side, out: &mut Vec<Matched>) {
        let i = side as usize;
        if self.ended[i] {
            return;
        }
        self.ended[i] = true;
        self.deferred[1 - i].clear();
        while let Some((_, d)) = self.pending[1 - i].pop_oldest() {
            out.push(Matched::Unresolved(d));
        }
    }

    /// Keys remembered for partners that may still come.
    pub fn deferred_len(&self) -> usize {
        self.deferred[0].len() + self.deferred[1].len()
    }

    /// Both streams ended: whatever still waits has no partner in step.
    pub fn finish(&mut self, out: &mut Vec<Matched>) {
        for j in 0..2 {
            while let Some((_, d)) = self.pending[j].pop_oldest() {
                out.push(Matched::Unresolved(d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn d(id: i32, v: i32) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&doc! { "_id": id, "v": v, "pad": "x".repeat(100) }).unwrap()
    }

    /// Runs two sequences through a matcher the way `compare_range` does.
    fn run(
        natural: bool,
        budget: usize,
        s: &[i32],
        t: &[i32],
    ) -> (Vec<(i32, i32)>, Vec<i32>, Matcher) {
        let mut m = Matcher::new(natural, budget);
        let (mut pairs, mut unresolved, mut out) = (Vec::new(), Vec::new(), Vec::new());
        let id = |doc: &RawDocumentBuf| doc.get_i32("_id").unwrap();
        let mut take = |out: &mut Vec<Matched>| {
            for x in out.drain(..) {
                match x {
                    Matched::Pair(a, b) => pairs.push((id(&a), id(&b))),
                    Matched::Unresolved(a) => unresolved.push(id(&a)),
                }
            }
        };
        for i in 0..s.len().max(t.len()) {
            match (s.get(i), t.get(i)) {
                (Some(&a), Some(&b)) => match m.try_step(d(a, 0), d(b, 0)).unwrap() {
                    Ok((a, b)) => out.push(Matched::Pair(a, b)),
                    Err((a, b)) => {
                        m.push(Side::Source, a, &mut out).unwrap();
                        m.push(Side::Destination, b, &mut out).unwrap();
                    }
                },
                (Some(&a), None) => m.push(Side::Source, d(a, 0), &mut out).unwrap(),
                (None, Some(&b)) => m.push(Side::Destination, d(b, 0), &mut out).unwrap(),
                (None, None) => {}
            }
            take(&mut out);
        }
        m.finish(&mut out);
        take(&mut out);
        (pairs, unresolved, m)
    }

    #[test]
    fn documents_in_step_pair_and_gaps_are_settled_by_lookup() {
        let (pairs, unresolved, _) = run(false, 1 << 20, &[1, 2, 3, 4, 5], &[1, 3, 4, 5, 6]);
        assert_eq!(pairs, vec![(1, 1), (3, 3), (4, 4), (5, 5)]);
        let mut u = unresolved.clone();
        u.sort();
        assert_eq!(u, vec![2, 6]);
    }

    #[test]
    fn a_long_gap_stays_within_the_budget() {
        // The destination lacks 1..=5000: every one of them must be
        // settled by lookup, while the matcher holds at most the budget.
        let src: Vec<i32> = (1..=6000).collect();
        let dst: Vec<i32> = (5001..=6000).collect();
        let budget = 16 * 1024;
        let mut m = Matcher::new(false, budget);
        let mut out = Vec::new();
        let mut peak = 0;
        let mut unresolved = 0;
        let mut pairs = 0;
        for (i, &s) in src.iter().enumerate() {
            m.push(Side::Source, d(s, 0), &mut out).unwrap();
            if let Some(&b) = dst.get(i) {
                m.push(Side::Destination, d(b, 0), &mut out).unwrap();
            }
            peak = peak.max(m.pending_bytes());
            for x in out.drain(..) {
                match x {
                    Matched::Pair(..) => pairs += 1,
                    Matched::Unresolved(_) => unresolved += 1,
                }
            }
        }
        m.finish(&mut out);
        for x in out.drain(..) {
            match x {
                Matched::Pair(..) => pairs += 1,
                Matched::Unresolved(_) => unresolved += 1,
            }
        }
        assert!(peak <= budget, "peak {peak} over budget {budget}");
        // Each destination document either pairs or, when its partner was
        // settled by lookup first, is dropped (the lookup covered both).
        assert_eq!(unresolved + pairs, 6000, "{unresolved} + {pairs}");
        assert!(unresolved >= 5000);
    }

    #[test]
    fn once_one_side_ends_the_other_is_settled_without_remembering_it() {
        // An empty destination: nothing waits, nothing is remembered.
        let mut m = Matcher::new(false, 16 * 1024);
        let mut out = Vec::new();
        m.end(Side::Destination, &mut out);
        for n in 0..10_000 {
            m.push(Side::Source, d(n, 0), &mut out).unwrap();
            assert_eq!(m.pending_bytes(), 0);
        }
        assert_eq!(out.len(), 10_000);
        assert!(out.iter().all(|x| matches!(x, Matched::Unresolved(_))));
        assert_eq!(m.deferred_len(), 0);

        // The destination ends part way: what waited for it is settled,
        // and what was remembered for it forgotten.
        let mut m = Matcher::new(false, 16 * 1024);
        let mut out = Vec::new();
        for n in 0..2_000 {
            m.push(Side::Source, d(n, 0), &mut out).unwrap();
        }
        m.push(Side::Destination, d(5_000, 0), &mut out).unwrap();
        assert!(m.deferred_len() > 0);
        m.end(Side::Destination, &mut out);
        assert_eq!(m.deferred_len(), 0);
        // Only the destination's one document still waits for its partner.
        assert_eq!(m.pending_bytes(), d(5_000, 0).as_bytes().len());
        m.finish(&mut out);
        assert_eq!(out.len(), 2_001);
    }

    #[test]
    fn natural_order_pairs_out_of_step_and_notices_the_order() {
        let (pairs, unresolved, m) = run(true, 1 << 20, &[1, 2, 3, 4], &[1, 3, 2, 4]);
        assert!(unresolved.is_empty(), "{unresolved:?}");
        assert_eq!(pairs.len(), 4);
        assert!(m.order_broken);
        let (_, _, m) = run(true, 1 << 20, &[1, 2, 3, 4], &[1, 2, 4]);
        assert!(!m.order_broken);
    }
}
