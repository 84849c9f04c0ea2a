//! Arguments several commands share.

/// The two clusters and the scope a command looks at.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Source connection string (or MONGOFERRY_SOURCE).
    #[arg(long, env = "MONGOFERRY_SOURCE", hide_env_values = true)]
    pub source: String,
    /// Destination connection string (or MONGOFERRY_DESTINATION).
    #[arg(long, env = "MONGOFERRY_DESTINATION", hide_env_values = true)]
    pub destination: String,
    /// Namespaces in scope: 'db', 'db.coll', '*' wildcards. Repeatable.
    #[arg(long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Namespaces to leave out. Repeatable.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
}

/// `--event-source`: where the sync reads the source's changes from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum EventSourceArg {
    /// The oplog for a source older than 6.0, change streams otherwise.
    #[default]
    Auto,
    /// A cluster-wide change stream (the source must be 6.0 or newer).
    ChangeStream,
    /// The source's oplog (a replica set of 4.4 or newer).
    Oplog,
}

impl From<EventSourceArg> for mongoferry::EventSourceChoice {
    fn from(a: EventSourceArg) -> Self {
        match a {
            EventSourceArg::Auto => mongoferry::EventSourceChoice::Auto,
            EventSourceArg::ChangeStream => mongoferry::EventSourceChoice::ChangeStream,
            EventSourceArg::Oplog => mongoferry::EventSourceChoice::Oplog,
        }
    }
}

/// `--load` and `throttle`'s LEVEL, refused in one sentence with the remedy.
pub fn load_level(s: &str) -> Result<mongoferry::LoadLevel, String> {
    mongoferry::LoadLevel::parse(s).map_err(|e| format!("{e} {}", e.remedy()))
}

/// `--max-source-latency-increase` of `sync`: a percent such as `20%`.
pub fn latency_limit(s: &str) -> Result<f64, String> {
    mongoferry::load::parse_percent(s).map_err(|e| format!("{e} {}", e.remedy()))
}

/// `--max-secondary-lag` of `sync`: seconds such as `10` or `10s`.
pub fn lag_limit(s: &str) -> Result<f64, String> {
    mongoferry::load::parse_seconds(s).map_err(|e| format!("{e} {}", e.remedy()))
}

/// A limit of `throttle`: a value, or `off` to clear it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LimitArg {
    Off,
    Set(f64),
}

impl LimitArg {
    /// The limit as the API takes it: a number, or `null` for none.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            LimitArg::Off => serde_json::Value::Null,
            LimitArg::Set(v) => serde_json::json!(v),
        }
    }
}

fn off_or(s: &str, parse: fn(&str) -> Result<f64, String>) -> Result<LimitArg, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(LimitArg::Off)
    } else {
        parse(s).map(LimitArg::Set)
    }
}

/// `throttle --max-source-latency-increase PCT|off`.
pub fn latency_limit_or_off(s: &str) -> Result<LimitArg, String> {
    off_or(s, latency_limit)
}

/// `throttle --max-secondary-lag SECONDS|off`.
pub fn lag_limit_or_off(s: &str) -> Result<LimitArg, String> {
    off_or(s, lag_limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_a_value_or_off() {
        assert_eq!(latency_limit_or_off("30%"), Ok(LimitArg::Set(30.0)));
        assert_eq!(latency_limit_or_off(" OFF "), Ok(LimitArg::Off));
        assert_eq!(lag_limit_or_off("10s"), Ok(LimitArg::Set(10.0)));
        assert_eq!(lag_limit_or_off("off"), Ok(LimitArg::Off));
        for bad in ["lots", "-5", "0%"] {
            let e = latency_limit_or_off(bad).unwrap_err();
            assert!(e.contains(bad) && e.ends_with('.'), "{e}");
        }
        let e = load_level("fast").unwrap_err();
        assert!(e.contains("'fast'") && e.ends_with('.'), "{e}");
        assert_eq!(latency_limit("off").map_err(|_| ()), Err(()));
    }
}
