//! Which namespaces a migration covers: `--include` / `--exclude` patterns
//! and the namespaces that are never migrated.
//!
//! Pure logic: this module talks to no server.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The database where the engine keeps its own state on the destination.
pub const METADATA_DB: &str = "__mongoferry";

/// Databases that belong to the server, never to the user.
pub const SYSTEM_DBS: &[&str] = &["admin", "local", "config", METADATA_DB];

/// A database and collection name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace {
    pub db: String,
    pub coll: String,
}

impl Namespace {
    pub fn new(db: impl Into<String>, coll: impl Into<String>) -> Namespace {
        Namespace {
            db: db.into(),
            coll: coll.into(),
        }
    }

    /// Parses `db.coll`; the collection name may itself contain dots.
    pub fn parse(s: &str) -> Option<Namespace> {
        let (db, coll) = s.split_once('.')?;
        (!db.is_empty() && !coll.is_empty()).then(|| Namespace::new(db, coll))
    }

    /// The buckets collection that holds the measurements of this
    /// time-series collection: `db.system.buckets.<coll>`.
    pub fn buckets(&self) -> Namespace {
        Namespace::new(&self.db, format!("{BUCKETS_PREFIX}{}", self.coll))
    }

    /// The time-series collection whose buckets this is, when it is a
    /// `system.buckets.*` collection.
    pub fn timeseries_of_buckets(&self) -> Option<Namespace> {
        self.coll
            .strip_prefix(BUCKETS_PREFIX)
            .filter(|c| !c.is_empty())
            .map(|c| Namespace::new(&self.db, c))
    }
}

/// The collection-name prefix of a time-series collection's buckets.
pub const BUCKETS_PREFIX: &str = "system.buckets.";

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// One `--include` or `--exclude` pattern: `db`, `db.coll`, with `*`
/// wildcards in either part. A bare `db` means every collection in it.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    db: Regex,
    coll: Regex,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern> {
        let invalid = |reason: &str| Error::InvalidPattern {
            pattern: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(invalid("it is empty"));
        }
        if t.chars()
            .any(|c| c.is_whitespace() || c == '$' || c == '\0')
        {
            return Err(invalid("it contains a space, '$' or a NUL character"));
        }
        let (db, coll) = match t.split_once('.') {
            Some((db, coll)) => (db, coll),
            None => (t, "*"),
        };
        if db.is_empty() || coll.is_empty() {
            return Err(invalid("the database or the collection part is empty"));
        }
        let too_long = || invalid("it is too long");
        Ok(Pattern {
            text: t.to_string(),
            db: glob(db).ok_or_else(too_long)?,
            coll: glob(coll).ok_or_else(too_long)?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, ns: &Namespace) -> bool {
        self.db.is_match(&ns.db) && self.coll.is_match(&ns.coll)
    }

    /// Whether the pattern can match some collection of `db`.
    pub fn may_match_db(&self, db: &str) -> bool {
        self.db.is_match(db)
    }

    /// Whether the pattern covers every collection of `db`.
    pub fn covers_db(&self, db: &str) -> bool {
        self.db.is_match(db) && self.coll.as_str() == "^.*$"
    }
}

/// A `*`-wildcard pattern as an anchored regex; `None` when it cannot be
/// compiled (only an absurdly long pattern hits the regex size limit).
fn glob(part: &str) -> Option<Regex> {
    let body: String = part
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*");
    Regex::new(&format!("^{body}$")).ok()
}

/// The set of namespaces a migration covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Scope {
    /// Every user namespace.
    pub fn all() -> Scope {
        Scope::default()
    }

    pub fn new<S: AsRef<str>>(include: &[S], exclude: &[S]) -> Result<Scope> {
        Ok(Scope {
            include: include
                .iter()
                .map(|p| Pattern::parse(p.as_ref()))
                .collect::<Result<_>>()?,
            exclude: exclude
                .iter()
                .map(|p| Pattern::parse(p.as_ref()))
                .collect::<Result<_>>()?,
        })
    }

    pub fn include_patterns(&self) -> Vec<String> {
        self.include.iter().map(|p| p.text.clone()).collect()
    }

    pub fn exclude_patterns(&self) -> Vec<String> {
        self.exclude.iter().map(|p| p.text.clone()).collect()
    }

    /// Whether a database is never migrated, whatever the patterns say.
    pub fn is_system_db(db: &str) -> bool {
        SYSTEM_DBS.contains(&db)
    }

    /// Whether a collection name belongs to the server (`system.*`).
    pub fn is_system_coll(coll: &str) -> bool {
        coll.starts_with("system.")
    }

    /// Whether a namespace is migrated. A time-series collection's buckets
    /// (`system.buckets.<name>`) are, exactly when the collection is: they
    /// hold its data, which is copied and followed as it is stored.
    pub fn contains(&self, ns: &Namespace) -> bool {
        if let Some(ts) = ns.timeseries_of_buckets() {
            return self.contains(&ts);
        }
        if Scope::is_system_db(&ns.db) || Scope::is_system_coll(&ns.coll) {
            return false;
        }
        let included = self.include.is_empty() || self.include.iter().any(|p| p.matches(ns));
        included && !self.exclude.iter().any(|p| p.matches(ns))
    }

    /// Whether any collection of `db` may be in scope.
    pub fn may_contain_db(&self, db: &str) -> bool {
        if Scope::is_system_db(db) {
            return false;
        }
        let included = self.include.is_empty() || self.include.iter().any(|p| p.may_match_db(db));
        included && !self.exclude.iter().any(|p| p.covers_db(db))
    }

    /// Whether every collection of `db` is in scope, so that the database
    /// as a whole may be dropped on the destination when the source drops it.
    pub fn covers_db(&self, db: &str) -> bool {
        !Scope::is_system_db(db)
            && (self.include.is_empty() || self.include.iter().any(|p| p.covers_db(db)))
            && !self.exclude.iter().any(|p| p.may_match_db(db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Namespace {
        Namespace::parse(s).unwrap()
    }

    #[test]
    fn everything_user_is_in_scope_by_default() {
        let s = Scope::all();
        assert!(s.contains(&ns("shop.orders")));
        assert!(s.contains(&ns("shop.a.b.c")));
        assert!(!s.contains(&ns("admin.users")));
        assert!(!s.contains(&ns("local.oplog.rs")));
        assert!(!s.contains(&ns("config.chunks")));
        assert!(!s.contains(&ns("__mongoferry.state")));
        assert!(!s.contains(&ns("shop.system.views")));
        assert!(!s.contains(&ns("shop.system.js")));
        assert!(!s.contains(&ns("admin.system.buckets.metrics")));
    }

    #[test]
    fn buckets_are_in_scope_with_their_time_series_collection() {
        let metrics = ns("shop.metrics");
        assert_eq!(metrics.buckets(), ns("shop.system.buckets.metrics"));
        assert_eq!(metrics.buckets().timeseries_of_buckets(), Some(metrics));
        assert_eq!(ns("shop.orders").timeseries_of_buckets(), None);
        assert_eq!(ns("shop.system.buckets.").timeseries_of_buckets(), None);
        assert!(Scope::all().contains(&ns("shop.system.buckets.metrics")));
        let s = Scope::new(&["shop"], &["shop.metrics"]).unwrap();
        assert!(!s.contains(&ns("shop.system.buckets.metrics")));
        assert!(s.contains(&ns("shop.system.buckets.other")));
        let s = Scope::new(&["shop.met*"], &[] as &[&str]).unwrap();
        assert!(s.contains(&ns("shop.system.buckets.metrics")));
    }

    #[test]
    fn include_and_exclude_patterns() {
        let s = Scope::new(&["shop", "crm.contacts", "*.audit*"], &["shop.tmp_*"]).unwrap();
        assert!(s.contains(&ns("shop.orders")));
        assert!(!s.contains(&ns("shop.tmp_1")));
        assert!(s.contains(&ns("crm.contacts")));
        assert!(!s.contains(&ns("crm.leads")));
        assert!(s.contains(&ns("hr.audit_log")));
        assert!(!s.contains(&ns("hr.people")));
        assert!(s.may_contain_db("crm"));
        assert!(!s.covers_db("crm"));
        assert!(!s.covers_db("shop"), "shop has an exclusion");
        let s = Scope::new(&["shop"], &[] as &[&str]).unwrap();
        assert!(s.covers_db("shop"));
    }

    #[test]
    fn wildcards_do_not_act_as_regex() {
        let s = Scope::new(&["a.b+c"], &[] as &[&str]).unwrap();
        assert!(s.contains(&ns("a.b+c")));
        assert!(!s.contains(&ns("a.bbc")));
    }

    #[test]
    fn a_pattern_too_big_to_compile_is_refused_not_ignored() {
        let huge = format!("db.{}", "ab*".repeat(400_000));
        let err = Pattern::parse(&huge).unwrap_err();
        assert_eq!(err.code(), "invalid_pattern");
        assert!(err.to_string().contains("too long"), "{err}");
    }

    #[test]
    fn bad_patterns_are_rejected_with_a_reason() {
        for bad in ["", " ", ".coll", "db.", "a b", "db.$x"] {
            let err = Pattern::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_pattern", "{bad:?}");
        }
    }
}
