//! The load a migration may put on its source: a level the user picks and
//! may change while the migration runs, and what each level allows.
//!
//! `full` is the engine unbounded (its tuning's concurrency, no rate cap);
//! `normal` reads at most 20 MiB/s, the copy rate the preflight check
//! assumes when it weighs the copy against the oplog window; `gentle`
//! reads one range at a time at 5 MiB/s, a background job; a number is a
//! copy rate in MiB/s. Bytes are the documents' BSON size, not disk bytes.
//!
//! Pure: the limiter that enforces a level is [`crate::throttle`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

const MIB: f64 = 1024.0 * 1024.0;

/// How hard the copy may read the source.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum LoadLevel {
    /// One range at a time, 5 MiB/s.
    Gentle,
    /// Two ranges at a time, 20 MiB/s.
    Normal,
    /// The engine's own concurrency, unbounded.
    #[default]
    Full,
    /// A copy rate in MiB/s.
    MibPerSecond(f64),
}

/// The most and least a numeric level may ask for, in MiB/s.
const MIN_MIB: f64 = 0.5;
const MAX_MIB: f64 = 100_000.0;

impl LoadLevel {
    /// `gentle`, `normal`, `full`, or a rate in MiB/s such as `20` or
    /// `12.5` (`MiB/s` may follow it).
    pub fn parse(text: &str) -> Result<LoadLevel> {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "gentle" => return Ok(LoadLevel::Gentle),
            "normal" => return Ok(LoadLevel::Normal),
            "full" => return Ok(LoadLevel::Full),
            _ => {}
        }
        let number = t
            .trim_end_matches("MiB/s")
            .trim_end_matches("mib/s")
            .trim_end_matches("MiB")
            .trim();
        match number.parse::<f64>() {
            Ok(n) if n.is_finite() && (MIN_MIB..=MAX_MIB).contains(&n) => {
                Ok(LoadLevel::MibPerSecond(n))
            }
            Ok(n) if n.is_finite() => Err(Error::InvalidLoadLevel {
                level: text.to_string(),
                reason: format!("a copy rate must be between {MIN_MIB} and {MAX_MIB} MiB/s (pause the migration to stop it)"),
            }),
            _ => Err(Error::InvalidLoadLevel {
                level: text.to_string(),
                reason: "it is neither gentle, normal, full nor a number".into(),
            }),
        }
    }

    /// What this level allows, given the engine's own range concurrency.
    pub fn limits(self, max_readers: usize) -> Limits {
        match self {
            LoadLevel::Gentle => Limits::at_rate(5.0 * MIB, max_readers),
            LoadLevel::Normal => Limits::at_rate(20.0 * MIB, max_readers),
            LoadLevel::Full => Limits {
                readers: max_readers.max(1),
                bytes_per_second: None,
                reply_docs: None,
            },
            LoadLevel::MibPerSecond(mib) => Limits::at_rate(mib * MIB, max_readers),
        }
    }
}

impl fmt::Display for LoadLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadLevel::Gentle => f.write_str("gentle"),
            LoadLevel::Normal => f.write_str("normal"),
            LoadLevel::Full => f.write_str("full"),
            LoadLevel::MibPerSecond(mib) => write!(f, "{mib} MiB/s"),
        }
    }
}

/// `"gentle"`, `"normal"`, `"full"`, or a number of MiB/s.
impl Serialize for LoadLevel {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            LoadLevel::MibPerSecond(mib) => s.serialize_f64(*mib),
            named => s.serialize_str(&named.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for LoadLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<LoadLevel, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        LoadLevel::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A load level and, for the adaptive mode, the limits on the harm the
/// copy may do to the source: under either limit the copy runs as fast as
/// the level allows while the source stays within it, and slows down when
/// it does not. Changed live, and stored with the migration.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSetting {
    #[cfg_attr(feature = "ts", ts(type = "string | number"))]
    pub level: LoadLevel,
    /// How much slower, in percent of its idle latency, the source's reads
    /// may become.
    #[serde(default)]
    pub max_source_latency_increase_percent: Option<f64>,
    /// How far, in seconds, the source's secondaries may fall behind its
    /// primary.
    #[serde(default)]
    pub max_secondary_lag_seconds: Option<f64>,
}

/// The bounds of the adaptive mode's limits.
const LATENCY_PERCENT: std::ops::RangeInclusive<f64> = 5.0..=1000.0;
const LAG_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=86_400.0;

impl LoadSetting {
    pub fn fixed(level: LoadLevel) -> LoadSetting {
        LoadSetting {
            level,
            ..LoadSetting::default()
        }
    }

    /// Whether the copy adapts its rate to the source's health.
    pub fn adaptive(&self) -> bool {
        self.max_source_latency_increase_percent.is_some()
            || self.max_secondary_lag_seconds.is_some()
    }

    /// Refuses limits outside what can be measured and held.
    pub fn validate(&self) -> Result<()> {
        if let LoadLevel::MibPerSecond(mib) = self.level {
            // Built in code rather than parsed: judge it as if it were.
            LoadLevel::parse(&mib.to_string())?;
        }
        if let Some(p) = self.max_source_latency_increase_percent {
            if !LATENCY_PERCENT.contains(&p) {
                return Err(Error::InvalidLoadLimit {
                    limit: format!("{p}%"),
                    reason: format!(
                        "a latency increase must be between {}% and {}%",
                        LATENCY_PERCENT.start(),
                        LATENCY_PERCENT.end()
                    ),
                });
            }
        }
        if let Some(s) = self.max_secondary_lag_seconds {
            if !LAG_SECONDS.contains(&s) {
                return Err(Error::InvalidLoadLimit {
                    limit: format!("{s} s"),
                    reason: format!(
                        "a secondary lag must be between {} and {} seconds",
                        LAG_SECONDS.start(),
                        LAG_SECONDS.end()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Reads a latency limit such as `20%` or `20`, in percent.
pub fn parse_percent(text: &str) -> Result<f64> {
    parse_limit(text, '%', "a percent", |p| LoadSetting {
        max_source_latency_increase_percent: Some(p),
        ..LoadSetting::default()
    })
}

/// Reads a lag limit in seconds, such as `10` or `10s`.
pub fn parse_seconds(text: &str) -> Result<f64> {
    parse_limit(text, 's', "a number of seconds", |s| LoadSetting {
        max_secondary_lag_seconds: Some(s),
        ..LoadSetting::default()
    })
}

/// A number, `unit` after it optional, judged by [`LoadSetting::validate`]
/// as the limit `setting` puts it in.
fn parse_limit(
    text: &str,
    unit: char,
    what: &str,
    setting: impl Fn(f64) -> LoadSetting,
) -> Result<f64> {
    let refused = || Error::InvalidLoadLimit {
        limit: text.to_string(),
        reason: format!("it is not {what}"),
    };
    let n = text
        .trim()
        .trim_end_matches(unit)
        .trim()
        .parse::<f64>()
        .map_err(|_| refused())?;
    if !n.is_finite() {
        return Err(refused());
    }
    setting(n).validate()?;
    Ok(n)
}

/// The load a running migration is held to, for progress.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadStatus {
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub setting: LoadSetting,
    /// Ranges the copy may read at once now.
    pub readers: u32,
    /// The copy's read rate cap now, in bytes per second; none for no cap.
    pub bytes_per_second: Option<f64>,
    /// The adaptive mode holds the copy below its level.
    pub throttling: bool,
    /// Why the adaptive mode last changed the rate, in a sentence.
    pub reason: Option<String>,
}

impl LoadStatus {
    pub fn new(setting: LoadSetting, limits: Limits) -> LoadStatus {
        LoadStatus {
            setting,
            readers: limits.readers as u32,
            bytes_per_second: limits.bytes_per_second,
            throttling: false,
            reason: None,
        }
    }
}

/// What the copy may do at a level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Ranges read at once.
    pub readers: usize,
    /// Bytes of documents read per second; `None` for no cap.
    pub bytes_per_second: Option<f64>,
    /// The most documents one reply of the copy holds; `None` for the
    /// engine's own batch.
    pub reply_docs: Option<u32>,
}

impl Limits {
    /// What a copy rate allows: a reader per 10 MiB/s (one range reads
    /// about that fast on a small machine), and replies that take the
    /// source a few milliseconds each: a slower copy reads in smaller
    /// bites, so that an application's query waits less behind one.
    pub fn at_rate(bytes_per_second: f64, max_readers: usize) -> Limits {
        let mib = bytes_per_second / MIB;
        Limits {
            readers: ((mib / 10.0).ceil() as usize).clamp(1, max_readers.max(1)),
            bytes_per_second: Some(bytes_per_second),
            reply_docs: Some(match mib {
                m if m < 10.0 => 200,
                m if m < 50.0 => 500,
                _ => 1_000,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_named_or_a_rate() {
        assert_eq!(LoadLevel::parse("gentle").unwrap(), LoadLevel::Gentle);
        assert_eq!(LoadLevel::parse(" Normal ").unwrap(), LoadLevel::Normal);
        assert_eq!(LoadLevel::parse("full").unwrap(), LoadLevel::Full);
        assert_eq!(
            LoadLevel::parse("12.5").unwrap(),
            LoadLevel::MibPerSecond(12.5)
        );
        assert_eq!(
            LoadLevel::parse("20MiB/s").unwrap(),
            LoadLevel::MibPerSecond(20.0)
        );
        for bad in ["", "fast", "0", "-3", "NaN", "inf", "0.1", "1e9"] {
            let e = LoadLevel::parse(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_load_level", "{bad:?}");
            let text = e.to_string();
            assert!(text.contains(&format!("'{bad}'")), "{text}");
        }
        for level in [
            LoadLevel::Gentle,
            LoadLevel::Normal,
            LoadLevel::Full,
            LoadLevel::MibPerSecond(7.5),
        ] {
            assert_eq!(LoadLevel::parse(&level.to_string()).unwrap(), level);
        }
    }

    #[test]
    fn settings_travel_as_json_and_refuse_limits_out_of_range() {
        let s: LoadSetting = serde_json::from_value(serde_json::json!({
            "level": "gentle", "maxSourceLatencyIncreasePercent": 20
        }))
        .unwrap();
        assert_eq!(s.level, LoadLevel::Gentle);
        assert!(s.adaptive());
        let s: LoadSetting = serde_json::from_value(serde_json::json!({"level": 12.5})).unwrap();
        assert_eq!(s.level, LoadLevel::MibPerSecond(12.5));
        assert!(!s.adaptive());
        assert_eq!(serde_json::to_value(s).unwrap()["level"], 12.5);
        assert_eq!(
            serde_json::to_value(LoadSetting::fixed(LoadLevel::Normal)).unwrap()["level"],
            "normal"
        );
        assert!(
            serde_json::from_value::<LoadSetting>(serde_json::json!({"level": "fast"})).is_err()
        );
        assert!(serde_json::from_value::<LoadSetting>(serde_json::json!({"level": 0})).is_err());
        assert_eq!(parse_percent("20%").unwrap(), 20.0);
        assert_eq!(parse_percent(" 50 ").unwrap(), 50.0);
        assert_eq!(parse_seconds("10s").unwrap(), 10.0);
        for bad in ["", "lots", "0%", "-5", "NaN", "5000%"] {
            let e = parse_percent(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_load_limit", "{bad:?}");
        }
        for bad in ["", "soon", "0", "1e9"] {
            assert_eq!(parse_seconds(bad).unwrap_err().code(), "invalid_load_limit");
        }
    }

    #[test]
    fn each_level_bounds_readers_and_rate() {
        let mib = |n: f64| Some(n * MIB);
        assert_eq!(
            LoadLevel::Gentle.limits(4),
            Limits {
                readers: 1,
                bytes_per_second: mib(5.0),
                reply_docs: Some(200),
            }
        );
        assert_eq!(LoadLevel::Normal.limits(4).reply_docs, Some(500));
        assert_eq!(LoadLevel::Normal.limits(4).readers, 2);
        assert_eq!(LoadLevel::Normal.limits(1).readers, 1);
        assert_eq!(
            LoadLevel::Full.limits(4),
            Limits {
                readers: 4,
                bytes_per_second: None,
                reply_docs: None,
            }
        );
        let custom = LoadLevel::MibPerSecond(35.0).limits(8);
        assert_eq!((custom.readers, custom.bytes_per_second), (4, mib(35.0)));
        assert_eq!(LoadLevel::MibPerSecond(500.0).limits(4).readers, 4);
        assert_eq!(LoadLevel::MibPerSecond(0.5).limits(4).readers, 1);
    }
}
