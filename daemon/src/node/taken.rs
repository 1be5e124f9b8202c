//! Whether the other validators take our new events.
//!
//! An event of ours that names history the others have dropped (one signed just before a
//! crash, built on events they evicted while we were down) can never be placed by them, nor
//! any event of ours after it: we would go on creating events that no one takes, our app's
//! transactions never ordered, and the network one validator short. Each sync answer says how
//! many of our events that peer holds; when those counts stop growing while ours does, our
//! events are refused, and the node must resume from a fast-sync window (which lacks them, so
//! that they are abandoned as in [`super::fastsync`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hashgraph::PublicKey;

/// How long every validator heard from must have taken none of our new events.
pub const REFUSED_AFTER: Duration = Duration::from_secs(10);

/// How many more of our events we must hold than any validator heard from: an idle network
/// leaves each peer one or two of our latest events short, and a sync a few more.
pub const REFUSED_LEAD: u64 = 10;

/// What one validator last said it holds of our events.
struct Report {
    held: u64,
    /// When it first said `held`.
    since: Instant,
    /// When it last said so.
    seen: Instant,
}

/// The other validators' counts of our events, from their sync answers.
#[derive(Default)]
pub struct TakenWatch {
    reports: HashMap<PublicKey, Report>,
}

impl TakenWatch {
    /// Records that `peer` said, at `now`, that it holds `held` of our events.
    pub fn record(&mut self, peer: PublicKey, held: u64, now: Instant) {
        let report = self.reports.entry(peer).or_insert(Report {
            held,
            since: now,
            seen: now,
        });
        if report.held != held {
            report.held = held;
            report.since = now;
        }
        report.seen = now;
    }

    /// The count of our events the validators stopped at, if they refuse what we created
    /// since: at least `needed` of them spoke within [`REFUSED_AFTER`] (more than a third of
    /// the set, so that one at least is honest), and every one that did has held the same
    /// count for that long, [`REFUSED_LEAD`] or more below the `ours` we hold.
    pub fn refused(&self, ours: u64, needed: usize, now: Instant) -> Option<u64> {
        let mut heard = 0;
        let mut highest = 0;
        for report in self.reports.values() {
            if now.duration_since(report.seen) >= REFUSED_AFTER {
                continue;
            }
            let stuck = report.held.saturating_add(REFUSED_LEAD) <= ours
                && now.duration_since(report.since) >= REFUSED_AFTER;
            if !stuck {
                return None;
            }
            heard += 1;
            highest = highest.max(report.held);
        }
        (needed > 0 && heard >= needed).then_some(highest)
    }

    /// Forgets every report (our events were reset).
    pub fn clear(&mut self) {
        self.reports.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgraph::SecretKey;

    fn peers() -> Vec<PublicKey> {
        (0..3u8)
            .map(|i| SecretKey::from_seed(&[i; 8]).public_key())
            .collect()
    }

    #[test]
    fn counts_that_stop_while_ours_grow_are_a_refusal() {
        let [a, b, c] = peers()[..] else { panic!() };
        let start = Instant::now();
        let mut watch = TakenWatch::default();
        for (peer, held) in [(a, 40), (b, 40), (c, 39)] {
            watch.record(peer, held, start);
        }
        let later = start + REFUSED_AFTER;
        for (peer, held) in [(a, 40), (b, 40), (c, 39)] {
            watch.record(peer, held, later);
        }
        assert_eq!(watch.refused(60, 2, later), Some(40));
        // Not yet long enough.
        assert_eq!(watch.refused(60, 2, later - Duration::from_millis(1)), None);
        // Ours not far enough ahead: an idle network, our last events not sent yet.
        assert_eq!(watch.refused(49, 2, later), None);
        assert_eq!(watch.refused(50, 2, later), Some(40));
        // One validator took a new event of ours lately: not refused.
        watch.record(c, 41, later);
        assert_eq!(watch.refused(60, 2, later), None);
    }

    #[test]
    fn too_few_voices_or_old_ones_are_not_a_refusal() {
        let [a, b, _] = peers()[..] else { panic!() };
        let start = Instant::now();
        let later = start + REFUSED_AFTER;
        let mut watch = TakenWatch::default();
        watch.record(a, 40, start);
        watch.record(a, 40, later);
        // One voice (it could be a Byzantine one) is not enough when two are needed.
        assert_eq!(watch.refused(60, 2, later), None);
        assert_eq!(watch.refused(60, 1, later), Some(40));
        // A validator not heard from within the period does not count.
        watch.record(b, 40, start);
        assert_eq!(watch.refused(60, 2, later), None);
        watch.clear();
        assert_eq!(watch.refused(60, 1, later), None);
        assert_eq!(watch.refused(60, 0, later), None);
    }
}
