//! Warnings that a peer, or anyone who can reach a port, can cause at will are let through at
//! most once per period per key, with the count of those held back since: the operator still
//! hears of it, and a misbehaving sender cannot fill the log (and the disk under it).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a warning a sender can repeat at will is let through, per key.
pub const WARN_PERIOD: Duration = Duration::from_secs(60);

/// Most keys remembered; past it the oldest periods are forgotten, so a sender that varies its
/// key gets at most one warning per key per period, and memory stays bounded.
const MAX_KEYS: usize = 1024;

/// Rate-limits one kind of warning, per key (a peer's key, or `()` for one limit in all).
#[derive(Debug)]
pub struct WarnLimiter<K> {
    period: Duration,
    /// Per key: when the last warning went out, and how many were held back since.
    last: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K: Hash + Eq + Clone> WarnLimiter<K> {
    /// A limiter letting one warning per `period` through for each key.
    pub fn new(period: Duration) -> WarnLimiter<K> {
        WarnLimiter {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a warning for `key` may be logged now: `Some(held_back)` (the number held back
    /// since the last one) if so, `None` if it is to be held back.
    pub fn check(&self, key: &K) -> Option<u64> {
        self.check_at(key, Instant::now())
    }

    /// [`WarnLimiter::check`] at `now`.
    pub fn check_at(&self, key: &K, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get_mut(key) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.period => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let before = *held;
                *at = now;
                *held = 0;
                Some(before)
            }
            None => {
                if last.len() >= MAX_KEYS {
                    let period = self.period;
                    last.retain(|_, (at, _)| now.saturating_duration_since(*at) < period);
                    if last.len() >= MAX_KEYS {
                        // Every remembered key is within its period: a sender cycling keys.
                        // Forgetting them all lets at most one warning per key through.
                        last.clear();
                    }
                }
                last.insert(key.clone(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_per_key_with_the_count_held_back() {
        let limiter = WarnLimiter::new(Duration::from_secs(60));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(limiter.check_at(&"a", at(0)), Some(0));
        assert_eq!(limiter.check_at(&"a", at(1)), None);
        assert_eq!(limiter.check_at(&"a", at(59)), None);
        // Another key has its own period.
        assert_eq!(limiter.check_at(&"b", at(2)), Some(0));
        // The period over, the next one goes out with the two held back.
        assert_eq!(limiter.check_at(&"a", at(60)), Some(2));
        assert_eq!(limiter.check_at(&"a", at(61)), None);
        assert_eq!(limiter.check_at(&"a", at(200)), Some(1));
    }

    #[test]
    fn keys_are_bounded() {
        let limiter = WarnLimiter::new(Duration::from_secs(60));
        let now = Instant::now();
        for key in 0..(3 * MAX_KEYS) {
            assert_eq!(limiter.check_at(&key, now), Some(0));
            assert!(limiter.last.lock().unwrap().len() <= MAX_KEYS);
        }
        // Expired keys are dropped first.
        let later = now + Duration::from_secs(61);
        assert_eq!(limiter.check_at(&usize::MAX, later), Some(0));
        assert_eq!(limiter.last.lock().unwrap().len(), 1);
    }
}
