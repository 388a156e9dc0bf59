//! The per-caller rate limit: a token bucket per caller that holds a quarter of a minute's
//! allowance (bursts) and refills continuously.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Callers remembered at most; beyond, buckets that are full again (idle callers) are dropped.
const MAX_CALLERS: usize = 10_000;

pub struct RateLimit {
    per_second: f64,
    capacity: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `None` when `per_minute` is 0 (no limit).
    pub fn new(per_minute: u32) -> Option<RateLimit> {
        (per_minute > 0).then(|| RateLimit {
            per_second: f64::from(per_minute) / 60.0,
            capacity: (f64::from(per_minute) / 4.0).max(1.0),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request from `caller`'s bucket, or says how long until one is there.
    pub fn admit(&self, caller: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            let (per_second, capacity) = (self.per_second, self.capacity);
            buckets.retain(|_, b| refilled(b, now, per_second, capacity) < capacity);
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, self.per_second, self.capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

fn refilled(bucket: &Bucket, now: Instant, per_second: f64, capacity: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_a_quarter_minute_then_refusals_that_say_when() {
        let limit = RateLimit::new(60).unwrap_or_else(|| panic!("a limit"));
        for _ in 0..15 {
            assert!(limit.admit("a").is_ok());
        }
        let wait = limit
            .admit("a")
            .err()
            .unwrap_or_else(|| panic!("the 16th is refused"));
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(
            limit.admit("b").is_ok(),
            "another caller has its own bucket"
        );
        assert!(RateLimit::new(0).is_none());
    }
}
