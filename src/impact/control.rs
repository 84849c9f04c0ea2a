//! The adaptive mode's controller: what the source's health says the copy
//! may read now, below the level the user chose.
//!
//! Additive increase, multiplicative decrease, as TCP does: on a breach of
//! a limit the rate drops to 70% of what the copy really read (not of a
//! cap it was not reaching), at most once per [`DECREASE_EVERY`] seconds
//! so that the source has time to show the effect; after two healthy
//! readings in a row it climbs by a quarter plus 1 MiB/s up to 80% of the
//! rate at which the source last suffered, then by 5% of that rate, until
//! the level's own cap (or, for `full`, 1.5 times what the copy read
//! before it was first slowed), where throttling ends. Between the two (a reading over
//! 60% of a limit but under it) it holds, so that noise does not make it
//! oscillate. It never goes below [`FLOOR`]: to stop the copy, pause it.
//!
//! Pure: readings and a clock in seconds in, limits and a reason out.

use crate::load::{Limits, LoadSetting};

const MIB: f64 = 1024.0 * 1024.0;
/// The least the adaptive mode reads, in bytes per second.
pub const FLOOR: f64 = 0.5 * MIB;
/// Seconds between two decreases: a 10 s window and the feedback delay.
pub const DECREASE_EVERY: f64 = 6.0;
/// The share of a limit under which a reading counts as healthy.
const HEALTHY: f64 = 0.6;
/// Consecutive readings with queued operations that count as a breach.
const QUEUE_STREAK: u32 = 3;
/// WiredTiger starts making application threads evict at 20% dirty.
const DIRTY_PERCENT: f64 = 20.0;

/// The source's health, as the sampler last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Read latency (p99) and its idle value, in ms: the tail, where an
    /// application feels a copy first.
    pub read_p99: Option<f64>,
    pub idle_read_p99: Option<f64>,
    /// Mean write latency and its idle value, in ms.
    pub write_mean: Option<f64>,
    pub idle_write_mean: Option<f64>,
    /// The furthest secondary's lag in seconds, and its name.
    pub secondary_lag: Option<(f64, String)>,
    /// Readings in a row with operations queued, and how many now.
    pub queued_streak: u32,
    pub queued: u64,
    pub cache_dirty_percent: Option<f64>,
    /// What the copy read per second lately, in bytes.
    pub copy_rate: f64,
}

/// A change of the copy's limits, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub limits: Limits,
    pub throttling: bool,
    pub reason: String,
}

/// One breach or health judgement.
enum Verdict {
    Breach(String),
    Healthy,
    Near,
}

#[derive(Debug, Default)]
pub struct Controller {
    /// The rate the adaptive mode holds the copy to; `None` at the level.
    rate: Option<f64>,
    last_decrease: Option<f64>,
    healthy_in_a_row: u32,
    /// What the copy read before it was first slowed, for levels without a
    /// cap of their own: climbing past it again ends the throttling.
    unthrottled: Option<f64>,
    /// The rate at which the source last suffered.
    breached_at: Option<f64>,
}

fn mib(bytes: f64) -> String {
    let m = bytes / MIB;
    if m < 10.0 {
        format!("{m:.1} MiB/s")
    } else {
        format!("{m:.0} MiB/s")
    }
}

fn judge(setting: &LoadSetting, r: &Reading) -> Verdict {
    let mut near = false;
    if let Some(limit) = setting.max_source_latency_increase_percent {
        let pairs = [
            ("reads", r.read_p99, r.idle_read_p99, "p99"),
            ("writes", r.write_mean, r.idle_write_mean, "mean"),
        ];
        for (what, now, idle, stat) in pairs {
            let (Some(now), Some(idle)) = (now, idle) else {
                continue;
            };
            let Some(up) = super::figures::increase_percent(now, idle) else {
                continue;
            };
            if up > limit {
                return Verdict::Breach(format!(
                    "the source's {what} take {now:.2} ms ({stat}), {up:.0}% over their idle {idle:.2} ms, above the {limit:.0}% limit"
                ));
            }
            near |= up > HEALTHY * limit;
        }
    }
    if let (Some(limit), Some((lag, member))) =
        (setting.max_secondary_lag_seconds, &r.secondary_lag)
    {
        if *lag > limit {
            return Verdict::Breach(format!(
                "secondary {member} is {lag:.0} s behind the primary (limit {limit:.0} s)"
            ));
        }
        near |= *lag > HEALTHY * limit;
    }
    if r.queued_streak >= QUEUE_STREAK {
        return Verdict::Breach(format!(
            "the source queues operations ({} waiting)",
            r.queued
        ));
    }
    if let Some(dirty) = r.cache_dirty_percent.filter(|d| *d > DIRTY_PERCENT) {
        return Verdict::Breach(format!(
            "the source's cache is {dirty:.0}% dirty, where its own threads must evict"
        ));
    }
    if near || r.queued_streak > 0 {
        Verdict::Near
    } else {
        Verdict::Healthy
    }
}

/// What a rate allows, as a numeric level does, within the level's readers.
fn limits_at(rate: f64, level: Limits) -> Limits {
    Limits::at_rate(rate, level.readers)
}

impl Controller {
    /// Starts over, at the level: after a new setting.
    pub fn reset(&mut self) {
        *self = Controller::default();
    }

    pub fn throttling(&self) -> bool {
        self.rate.is_some()
    }

    /// Takes a reading at `now` (seconds) and says how the copy's limits
    /// change, if they do. `level` is what the setting's level allows.
    pub fn step(
        &mut self,
        now: f64,
        setting: &LoadSetting,
        level: Limits,
        reading: &Reading,
    ) -> Option<Change> {
        if !setting.adaptive() {
            return None;
        }
        match judge(setting, reading) {
            Verdict::Breach(why) => {
                self.healthy_in_a_row = 0;
                if self
                    .last_decrease
                    .is_some_and(|at| now - at < DECREASE_EVERY)
                {
                    return None;
                }
                // Down from what the copy really reads, not from a cap it
                // does not reach.
                let reading_rate = Some(reading.copy_rate).filter(|r| *r > 0.0);
                let from = [self.rate, reading_rate, level.bytes_per_second]
                    .into_iter()
                    .flatten()
                    .fold(f64::INFINITY, f64::min);
                if !from.is_finite() {
                    return None;
                }
                if self.rate.is_none() {
                    self.unthrottled = reading_rate;
                }
                let rate = (0.7 * from).max(FLOOR);
                if self.rate == Some(rate) {
                    return None;
                }
                self.breached_at = Some(from);
                self.rate = Some(rate);
                self.last_decrease = Some(now);
                Some(Change {
                    limits: limits_at(rate, level),
                    throttling: true,
                    reason: format!("Slowing the copy to {}: {why}.", mib(rate)),
                })
            }
            Verdict::Near => {
                self.healthy_in_a_row = 0;
                None
            }
            Verdict::Healthy => {
                let rate = self.rate?;
                self.healthy_in_a_row += 1;
                if self.healthy_in_a_row < 2 {
                    return None;
                }
                self.healthy_in_a_row = 0;
                // Quickly back to near where the source last suffered,
                // then slowly past it: a sawtooth under the limit rather
                // than bursts over it.
                let near = self.breached_at.map_or(f64::INFINITY, |b| 0.8 * b);
                let next = if rate * 1.25 + MIB <= near {
                    rate * 1.25 + MIB
                } else {
                    let step = self.breached_at.map_or(MIB, |b| (0.05 * b).max(MIB / 4.0));
                    rate + step
                };
                let top = level
                    .bytes_per_second
                    .or(self.unthrottled.map(|u| 1.5 * u))
                    .unwrap_or(f64::INFINITY);
                if next >= top {
                    self.reset();
                    return Some(Change {
                        limits: level,
                        throttling: false,
                        reason: "The source is healthy again: the copy is back at its load level."
                            .into(),
                    });
                }
                self.rate = Some(next);
                Some(Change {
                    limits: limits_at(next, level),
                    throttling: true,
                    reason: format!(
                        "Speeding the copy up to {}: the source is within its limits again.",
                        mib(next)
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadLevel;

    fn adaptive(percent: f64) -> LoadSetting {
        LoadSetting {
            level: LoadLevel::Full,
            max_source_latency_increase_percent: Some(percent),
            max_secondary_lag_seconds: Some(10.0),
        }
    }

    fn reading(p99: f64, copy_mib: f64) -> Reading {
        Reading {
            read_p99: Some(p99),
            idle_read_p99: Some(1.0),
            copy_rate: copy_mib * MIB,
            ..Reading::default()
        }
    }

    #[test]
    fn it_backs_off_on_a_breach_holds_near_the_limit_and_climbs_back() {
        let s = adaptive(50.0);
        let full = LoadLevel::Full.limits(4);
        let mut c = Controller::default();
        assert_eq!(c.step(0.0, &s, full, &reading(1.1, 40.0)), None);
        // Latency 2× idle: down to 70% of what the copy read.
        let change = c.step(2.0, &s, full, &reading(2.0, 40.0)).unwrap();
        assert!(change.throttling);
        assert_eq!(change.limits.bytes_per_second, Some(28.0 * MIB));
        assert_eq!(change.limits.readers, 3);
        assert!(
            change.reason.contains("100% over their idle"),
            "{}",
            change.reason
        );
        // Not again within 6 s.
        assert_eq!(c.step(4.0, &s, full, &reading(2.0, 28.0)), None);
        let again = c.step(8.0, &s, full, &reading(2.0, 28.0)).unwrap();
        assert_eq!(again.limits.bytes_per_second, Some(0.7 * 28.0 * MIB));
        // Near the limit (40% > 60% of 50%): hold.
        assert_eq!(c.step(10.0, &s, full, &reading(1.4, 19.6)), None);
        assert_eq!(c.step(12.0, &s, full, &reading(1.4, 19.6)), None);
        // Healthy twice: climb.
        assert_eq!(c.step(14.0, &s, full, &reading(1.1, 19.6)), None);
        let up = c.step(16.0, &s, full, &reading(1.1, 19.6)).unwrap();
        assert!(up.throttling && up.reason.starts_with("Speeding"));
        // Climbing past 1.5× the unthrottled rate ends it.
        let mut end = None;
        let mut climbs = Vec::new();
        for i in 0..200 {
            if let Some(ch) = c.step(18.0 + i as f64, &s, full, &reading(1.0, 30.0)) {
                climbs.extend(ch.limits.bytes_per_second);
                if !ch.throttling {
                    end = Some(ch);
                    break;
                }
            }
        }
        let end = end.expect("throttling ends once the source is healthy");
        // Slowly past where the source suffered (28 MiB/s): 1.4 MiB/s a step.
        let past: Vec<f64> = climbs
            .iter()
            .filter(|r| **r > 28.0 * MIB)
            .copied()
            .collect();
        assert!(past.len() > 10, "{climbs:?}");
        for w in past.windows(2) {
            assert!((w[1] - w[0] - 1.4 * MIB).abs() < 1.0, "{climbs:?}");
        }
        assert_eq!(end.limits, full);
        assert!(!c.throttling());
    }

    #[test]
    fn lag_queues_and_dirt_are_breaches_too_and_it_never_stops_the_copy() {
        let s = adaptive(50.0);
        let gentle = LoadLevel::Gentle.limits(4);
        let mut c = Controller::default();
        let lagging = Reading {
            secondary_lag: Some((14.0, "h2:27017".into())),
            copy_rate: 5.0 * MIB,
            ..Reading::default()
        };
        let ch = c.step(0.0, &s, gentle, &lagging).unwrap();
        assert!(
            ch.reason.contains("secondary h2:27017 is 14 s behind"),
            "{}",
            ch.reason
        );
        let queued = Reading {
            queued_streak: 3,
            queued: 7,
            copy_rate: 1.0,
            ..Reading::default()
        };
        let mut t = 10.0;
        let mut last = None;
        for _ in 0..30 {
            if let Some(ch) = c.step(t, &s, gentle, &queued) {
                last = Some(ch);
            }
            t += 10.0;
        }
        let last = last.unwrap();
        assert!(last.reason.contains("7 waiting"), "{}", last.reason);
        assert_eq!(last.limits.bytes_per_second, Some(FLOOR));
        assert_eq!(last.limits.readers, 1);
        let dirty = Reading {
            cache_dirty_percent: Some(25.0),
            ..Reading::default()
        };
        let mut c = Controller::default();
        let ch = c.step(0.0, &s, gentle, &dirty).unwrap();
        // Gentle's own cap is the ceiling: 70% of 5 MiB/s.
        assert_eq!(ch.limits.bytes_per_second, Some(3.5 * MIB));
        assert!(ch.reason.contains("25% dirty"));
        // Back at the level's cap, throttling ends.
        let mut c2 = c;
        let healthy = Reading::default();
        let mut ended = false;
        for i in 0..40 {
            if let Some(ch) = c2.step(20.0 + i as f64, &s, gentle, &healthy) {
                ended |= !ch.throttling && ch.limits == gentle;
            }
        }
        assert!(ended);
    }

    #[test]
    fn a_fixed_level_is_left_alone() {
        let mut c = Controller::default();
        let fixed = LoadSetting::fixed(LoadLevel::Normal);
        let r = Reading {
            queued_streak: 9,
            ..reading(9.0, 20.0)
        };
        assert_eq!(c.step(0.0, &fixed, LoadLevel::Normal.limits(4), &r), None);
    }
}
