//! A token bucket: at most `rate_per_sec` sends per second, with a burst of one second's worth
//! (at least one send). Callers that find the bucket empty reserve their token and sleep until
//! it is due, so waiting sends go out in turn, evenly spaced.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimit {
    rate_per_sec: f64,
    capacity: f64,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// Tokens available; negative when sends are already waiting for future tokens.
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    /// `rate_per_sec` must be above 0 (the configuration check makes sure of it).
    pub fn new(rate_per_sec: f64) -> RateLimit {
        let rate_per_sec = if rate_per_sec.is_finite() && rate_per_sec > 0.0 {
            rate_per_sec
        } else {
            1.0
        };
        let capacity = rate_per_sec.max(1.0);
        RateLimit {
            rate_per_sec,
            capacity,
            bucket: Mutex::new(Bucket {
                tokens: capacity,
                refilled: Instant::now(),
            }),
        }
    }

    /// Takes one token, waiting until one is due.
    pub async fn acquire(&self) {
        let wait = {
            let mut b = self.bucket.lock().await;
            let now = Instant::now();
            let earned = now.duration_since(b.refilled).as_secs_f64() * self.rate_per_sec;
            b.tokens = (b.tokens + earned).min(self.capacity);
            b.refilled = now;
            b.tokens -= 1.0;
            if b.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-b.tokens / self.rate_per_sec)
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn after_the_burst_sends_are_spaced_by_the_rate() {
        let limit = RateLimit::new(20.0);
        let start = Instant::now();
        for _ in 0..20 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "a burst of one second's worth goes at once"
        );
        for _ in 0..10 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(450),
            "10 more at 20/s take 0.5 s: {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_slow_rate_allows_one_send_then_waits() {
        let limit = RateLimit::new(4.0);
        limit.acquire().await;
        let start = Instant::now();
        for _ in 0..4 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }
}
