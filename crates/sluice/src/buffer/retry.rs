//! Fluentd's retry state machine (`plugin_helper/retry_state.rb`), as a
//! pure type: time and randomness are passed in, so the schedule is
//! tested against a table produced by Fluentd's own code.
//!
//! * The first retry is at `start + retry_wait`.
//! * After step `n` (at time `now`), the next retry is at
//!   `now + randomize(interval(n))`, where `interval(n) = retry_wait * base^n`
//!   capped by `retry_max_interval` (periodic: always `retry_wait`), and
//!   `randomize(x) = x ± 12.5%`.
//! * The next time is clamped to `start + retry_timeout`; the step that
//!   reaches the clamp marks "reached", the one after that "timed out".
//! * With a `<secondary>`, the primary is clamped to the transition time
//!   `start + timeout * retry_secondary_threshold` (the timeout shortened by
//!   `retry_max_times` if that is smaller); after it, the backoff restarts
//!   from step 0 for the secondary.
//! * `limit()`: timed out, or `steps >= retry_max_times`; never with `retry_forever`.

use super::params::{BufferParams, RetryType};

/// What the retry schedule is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub kind: RetryType,
    pub wait: f64,
    pub timeout: f64,
    pub forever: bool,
    pub max_steps: Option<u32>,
    pub base: f64,
    pub max_interval: Option<f64>,
    pub randomize: bool,
    pub randomize_width: f64,
    pub secondary: bool,
    pub secondary_threshold: f64,
}

impl RetryConfig {
    /// From `<buffer>` parameters; `secondary` if the output has a `<secondary>`.
    pub fn from_params(p: &BufferParams, secondary: bool) -> Self {
        RetryConfig {
            kind: p.retry_type,
            wait: p.retry_wait.secs(),
            timeout: p.retry_timeout.secs(),
            forever: p.retry_forever,
            max_steps: p.retry_max_times,
            base: p.retry_exponential_backoff_base,
            max_interval: p.retry_max_interval.map(|t| t.secs()),
            randomize: p.retry_randomize,
            randomize_width: 0.125,
            secondary,
            secondary_threshold: p.retry_secondary_threshold,
        }
    }

    fn raw_interval(&self, n: i64) -> f64 {
        self.wait * self.base.powi(n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// The wait after `n` failures, capped; if it overflows, the last finite value.
    pub fn interval(&self, n: i64) -> f64 {
        match self.kind {
            RetryType::Periodic => self.wait,
            RetryType::ExponentialBackoff => {
                let mut n = n;
                let mut i = self.raw_interval(n);
                if let Some(m) = self.max_interval
                    && i > m
                {
                    return m;
                }
                while !i.is_finite() && n > 0 {
                    n -= 1;
                    i = self.raw_interval(n);
                }
                i
            }
        }
    }

    fn max_retry_timeout(&self, steps: u32) -> f64 {
        match self.kind {
            RetryType::Periodic => self.wait * f64::from(steps),
            RetryType::ExponentialBackoff => (0..i64::from(steps)).map(|i| self.interval(i)).sum(),
        }
    }
}

/// Which output the retries go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Primary,
    Secondary,
}

/// The state of one output's retries.
#[derive(Debug, Clone)]
pub struct RetryState {
    cfg: RetryConfig,
    /// When the first failure happened.
    pub start: f64,
    /// Failures so far.
    pub steps: u32,
    next_time: f64,
    timeout_at: f64,
    reached_timeout: bool,
    timed_out: bool,
    current: Target,
    secondary_at: Option<f64>,
    secondary_steps: u32,
}

impl RetryState {
    /// A new state after the first failure at `now`.
    pub fn new(cfg: RetryConfig, now: f64) -> Self {
        let secondary_at = cfg.secondary.then(|| {
            let mut t = cfg.timeout;
            if let Some(m) = cfg.max_steps {
                t = t.min(cfg.max_retry_timeout(m));
            }
            now + t * cfg.secondary_threshold
        });
        let next_time = now + cfg.wait;
        RetryState {
            timeout_at: now + cfg.timeout,
            cfg,
            start: now,
            steps: 0,
            next_time,
            reached_timeout: false,
            timed_out: false,
            current: Target::Primary,
            secondary_at,
            secondary_steps: 0,
        }
    }

    /// When the next attempt is due.
    pub fn next_time(&self) -> f64 {
        self.next_time
    }

    fn randomize(&self, x: f64, rand: f64) -> f64 {
        if self.cfg.randomize { x + x * self.cfg.randomize_width * (2.0 * rand - 1.0) } else { x }
    }

    fn calc_next(&self, now: f64, rand: f64) -> f64 {
        let naive = |steps: i64| now + self.randomize(self.cfg.interval(steps), rand);
        if self.cfg.forever || !self.cfg.secondary {
            let n = naive(i64::from(self.steps));
            if self.cfg.forever || n < self.timeout_at { n } else { self.timeout_at }
        } else if self.current == Target::Primary {
            let n = naive(i64::from(self.steps));
            let at = self.secondary_at.unwrap_or(self.timeout_at);
            if n >= at { at } else { n }
        } else {
            let n = naive(i64::from(self.steps) - i64::from(self.secondary_steps));
            if n >= self.timeout_at { self.timeout_at } else { n }
        }
    }

    /// True if attempts at `now` go to the secondary.
    pub fn secondary(&self, now: f64) -> bool {
        !self.cfg.forever
            && self.cfg.secondary
            && (self.current == Target::Secondary || self.secondary_at.is_some_and(|at| now >= at))
    }

    /// Record one more failure at `now`; `rand` is uniform in `[0, 1)`.
    pub fn step(&mut self, now: f64, rand: f64) {
        self.steps += 1;
        if !self.cfg.forever
            && self.cfg.secondary
            && self.current != Target::Secondary
            && self.secondary_at.is_some_and(|at| now >= at)
        {
            self.current = Target::Secondary;
            self.secondary_steps = self.steps;
        }
        self.next_time = self.calc_next(now, rand);
        if self.reached_timeout {
            self.timed_out = self.next_time >= self.timeout_at;
        } else {
            self.reached_timeout = self.next_time >= self.timeout_at;
        }
    }

    /// Recompute the next time without counting a step (a failure that came
    /// before the due time, e.g. from another flush thread).
    pub fn recalc(&mut self, now: f64, rand: f64) {
        self.next_time = self.calc_next(now, rand);
    }

    /// True when retries are exhausted (timed out or `retry_max_times`).
    pub fn limit(&self) -> bool {
        !self.cfg.forever && (self.timed_out || self.cfg.max_steps.is_some_and(|m| self.steps >= m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: RetryType, wait: f64, timeout: f64) -> RetryConfig {
        RetryConfig {
            kind,
            wait,
            timeout,
            forever: false,
            max_steps: None,
            base: 2.0,
            max_interval: None,
            randomize: false,
            randomize_width: 0.125,
            secondary: false,
            secondary_threshold: 0.8,
        }
    }

    /// The schedule as Fluentd's `retry_state.rb` prints it when each step
    /// happens exactly at the due time: `now:P|S:next:L|-`.
    fn table(c: RetryConfig) -> String {
        let mut s = RetryState::new(c, 0.0);
        let mut out = Vec::new();
        for _ in 0..14 {
            if s.limit() {
                break;
            }
            let now = s.next_time();
            let sec = if s.secondary(now) { "S" } else { "P" };
            s.step(now, 0.5);
            out.push(format!("{now:.1}:{sec}:{:.1}:{}", s.next_time(), if s.limit() { "L" } else { "-" }));
        }
        out.join(" ")
    }

    /// Expected rows were produced by running Fluentd v1.19's retry_state.rb
    /// with a fake clock and `randomize: false`.
    #[test]
    fn schedule_matches_fluentd_table() {
        use RetryType::*;
        assert_eq!(
            table(cfg(ExponentialBackoff, 1.0, 1000.0)),
            "1.0:P:3.0:- 3.0:P:7.0:- 7.0:P:15.0:- 15.0:P:31.0:- 31.0:P:63.0:- 63.0:P:127.0:- 127.0:P:255.0:- 255.0:P:511.0:- 511.0:P:1000.0:- 1000.0:P:1000.0:L"
        );
        assert_eq!(
            table(RetryConfig { max_interval: Some(30.0), ..cfg(ExponentialBackoff, 1.0, 1000.0) }),
            "1.0:P:3.0:- 3.0:P:7.0:- 7.0:P:15.0:- 15.0:P:31.0:- 31.0:P:61.0:- 61.0:P:91.0:- 91.0:P:121.0:- 121.0:P:151.0:- 151.0:P:181.0:- 181.0:P:211.0:- 211.0:P:241.0:- 241.0:P:271.0:- 271.0:P:301.0:- 301.0:P:331.0:-"
        );
        assert_eq!(
            table(cfg(ExponentialBackoff, 1.0, 60.0)),
            "1.0:P:3.0:- 3.0:P:7.0:- 7.0:P:15.0:- 15.0:P:31.0:- 31.0:P:60.0:- 60.0:P:60.0:L"
        );
        assert_eq!(
            table(RetryConfig { max_steps: Some(5), ..cfg(ExponentialBackoff, 1.0, 1000.0) }),
            "1.0:P:3.0:- 3.0:P:7.0:- 7.0:P:15.0:- 15.0:P:31.0:- 31.0:P:63.0:L"
        );
        assert_eq!(
            table(RetryConfig { secondary: true, ..cfg(ExponentialBackoff, 1.0, 100.0) }),
            "1.0:P:3.0:- 3.0:P:7.0:- 7.0:P:15.0:- 15.0:P:31.0:- 31.0:P:63.0:- 63.0:P:80.0:- 80.0:S:81.0:- 81.0:S:83.0:- 83.0:S:87.0:- 87.0:S:95.0:- 95.0:S:100.0:- 100.0:S:100.0:L"
        );
        assert_eq!(table(cfg(Periodic, 3.0, 10.0)), "3.0:P:6.0:- 6.0:P:9.0:- 9.0:P:10.0:- 10.0:P:10.0:L");
        assert_eq!(
            table(RetryConfig { forever: true, max_interval: Some(4.0), ..cfg(ExponentialBackoff, 1.0, 10.0) }),
            "1.0:P:3.0:- 3.0:P:7.0:- 7.0:P:11.0:- 11.0:P:15.0:- 15.0:P:19.0:- 19.0:P:23.0:- 23.0:P:27.0:- 27.0:P:31.0:- 31.0:P:35.0:- 35.0:P:39.0:- 39.0:P:43.0:- 43.0:P:47.0:- 47.0:P:51.0:- 51.0:P:55.0:-"
        );
    }

    #[test]
    fn jitter_is_within_an_eighth_and_intervals_never_overflow() {
        let c = RetryConfig { randomize: true, ..cfg(RetryType::ExponentialBackoff, 1.0, 1e9) };
        for (n, r) in [(3, 0.0), (3, 0.999_999), (5, 0.25)] {
            let mut s = RetryState::new(c.clone(), 0.0);
            s.steps = n;
            s.step(100.0, r);
            let base = 2f64.powi(n as i32 + 1);
            let d = s.next_time() - 100.0;
            assert!((d - base).abs() <= base * 0.125 + 1e-9, "{d} vs {base}");
        }
        assert!(c.interval(5000).is_finite());
        assert_eq!(c.interval(2), 4.0);
    }
}
