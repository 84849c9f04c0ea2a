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
        let max_readers = max_readers.max(1);
        let capped = |readers: usize, mib: f64| Limits {
            readers: readers.clamp(1, max_readers),
            bytes_per_second: Some(mib * MIB),
        };
        match self {
            LoadLevel::Gentle => capped(1, 5.0),
            LoadLevel::Normal => capped(2, 20.0),
            LoadLevel::Full => Limits {
                readers: max_readers,
                bytes_per_second: None,
            },
            // A reader per 10 MiB/s: one range reads about that fast on a
            // small machine.
            LoadLevel::MibPerSecond(mib) => capped((mib / 10.0).ceil() as usize, mib),
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

/// What the copy may do at a level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Ranges read at once.
    pub readers: usize,
    /// Bytes of documents read per second; `None` for no cap.
    pub bytes_per_second: Option<f64>,
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
    fn each_level_bounds_readers_and_rate() {
        let mib = |n: f64| Some(n * MIB);
        assert_eq!(
            LoadLevel::Gentle.limits(4),
            Limits {
                readers: 1,
                bytes_per_second: mib(5.0)
            }
        );
        assert_eq!(LoadLevel::Normal.limits(4).readers, 2);
        assert_eq!(LoadLevel::Normal.limits(1).readers, 1);
        assert_eq!(
            LoadLevel::Full.limits(4),
            Limits {
                readers: 4,
                bytes_per_second: None
            }
        );
        let custom = LoadLevel::MibPerSecond(35.0).limits(8);
        assert_eq!((custom.readers, custom.bytes_per_second), (4, mib(35.0)));
        assert_eq!(LoadLevel::MibPerSecond(500.0).limits(4).readers, 4);
        assert_eq!(LoadLevel::MibPerSecond(0.5).limits(4).readers, 1);
    }
}
