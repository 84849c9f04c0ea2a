//! `POST /api/v1/start`'s body, in mongosync's shape, read into a
//! [`StartRequest`]: which of `mongoferry serve`'s two clusters is the
//! source, `reversible`, `enableUserWriteBlocking`, `buildIndexes`, and
//! `includeNamespaces` / `excludeNamespaces` as the engine's namespace
//! patterns.
//!
//! Pure: it reads the body and refuses, in one sentence with the remedy,
//! anything Mongoferry would not honour as mongosync does (an unknown
//! field, a value it does not support), before either cluster is touched.
//! It never connects, and never decides what a migration does with the
//! request; `serve` turns it into a `SyncConfig`.

use serde_json::{Map, Value};

use super::Refusal;

/// One of the two clusters `mongoferry serve` was given, by mongosync's
/// names for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterName {
    Cluster0,
    Cluster1,
}

impl ClusterName {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterName::Cluster0 => "cluster0",
            ClusterName::Cluster1 => "cluster1",
        }
    }
}

impl std::fmt::Display for ClusterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a start request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub source: ClusterName,
    pub destination: ClusterName,
    /// Keep a way back after the commit (`SyncConfig::reversible`).
    pub reversible: bool,
    /// The commit blocks the source's user writes: mongosync's
    /// `enableUserWriteBlocking` `true` or `"sourceAndDestination"`.
    pub block_source_writes: bool,
    /// Namespace patterns as `--include` and `--exclude` take them:
    /// `db.*` for a whole database, `db.coll` for one collection.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// The smallest start request, for the remedies.
const EXAMPLE: &str = r#"{"source": "cluster0", "destination": "cluster1"}"#;

/// A namespace filter as mongosync takes it, for the remedies.
const FILTER_EXAMPLE: &str = r#"[{"database": "shop", "collections": ["orders"]}]"#;

const SOURCE: &str = "source";
const DESTINATION: &str = "destination";
const REVERSIBLE: &str = "reversible";
const BLOCKING: &str = "enableUserWriteBlocking";
const BUILD_INDEXES: &str = "buildIndexes";
const INCLUDE: &str = "includeNamespaces";
const EXCLUDE: &str = "excludeNamespaces";

/// The fields of mongosync's start request that Mongoferry takes.
const FIELDS: [&str; 7] = [
    SOURCE,
    DESTINATION,
    REVERSIBLE,
    BLOCKING,
    BUILD_INDEXES,
    INCLUDE,
    EXCLUDE,
];

/// Reads a start request's body, whatever its `Content-Type`.
pub(super) fn parse(body: &[u8]) -> Result<StartRequest, Refusal> {
    let fields = super::request_fields(body, "start", &FIELDS, EXAMPLE)?;
    let source = cluster(&fields, SOURCE)?;
    let destination = cluster(&fields, DESTINATION)?;
    if source == destination {
        return Err(Refusal::invalid(format!(
            "The start request names {source} as both the source and the destination. Name the other cluster as the destination, for example {EXAMPLE}."
        )));
    }
    let reversible = match fields.get(REVERSIBLE) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Refusal::invalid(format!(
                "The start request's {REVERSIBLE} is {other}, not true or false. Send \"{REVERSIBLE}\": true to keep a way back after the commit, or leave it out."
            )))
        }
    };
    let blocking = fields.get(BLOCKING).map(user_write_blocking).transpose()?;
    if reversible && blocking == Some(false) {
        return Err(Refusal::invalid(format!(
            "The start request asks for a reversible migration but sets {BLOCKING} to {}, and a reversible migration's commit blocks the source's user writes. Send \"{BLOCKING}\": \"sourceAndDestination\" (or true) with \"{REVERSIBLE}\": true, or leave {BLOCKING} out.",
            fields[BLOCKING]
        )));
    }
    if let Some(v) = fields.get(BUILD_INDEXES) {
        build_indexes(v)?;
    }
    Ok(StartRequest {
        source,
        destination,
        reversible,
        block_source_writes: blocking.unwrap_or(false),
        include: namespaces(&fields, INCLUDE)?,
        exclude: namespaces(&fields, EXCLUDE)?,
    })
}

/// `source` or `destination`: `"cluster0"` or `"cluster1"`.
fn cluster(fields: &Map<String, Value>, field: &str) -> Result<ClusterName, Refusal> {
    match fields.get(field) {
        Some(Value::String(s)) if s == "cluster0" => Ok(ClusterName::Cluster0),
        Some(Value::String(s)) if s == "cluster1" => Ok(ClusterName::Cluster1),
        None => Err(Refusal::invalid(format!(
            "The start request has no \"{field}\". Name the source and the destination, each \"cluster0\" or \"cluster1\" as 'mongoferry serve' was given them, for example {EXAMPLE}."
        ))),
        Some(other) => Err(Refusal::invalid(format!(
            "The start request's {field} is {other}, not \"cluster0\" or \"cluster1\". Name the clusters as 'mongoferry serve' was given them, for example {EXAMPLE}."
        ))),
    }
}

/// `enableUserWriteBlocking`: whether the commit blocks the source's user
/// writes. mongosync 1.11 and later also block the destination's writes
/// until `canWrite` (`"destinationOnly"`, its default); Mongoferry never
/// blocks the destination, so that part has nothing to do.
fn user_write_blocking(v: &Value) -> Result<bool, Refusal> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "sourceAndDestination" => Ok(true),
        Value::String(s) if s == "destinationOnly" || s == "none" => Ok(false),
        other => Err(Refusal::invalid(format!(
            "The start request's {BLOCKING} is {other}, not true, false, \"sourceAndDestination\", \"destinationOnly\" or \"none\". Send \"sourceAndDestination\" (or true) to block the source's user writes at the commit, or leave it out."
        ))),
    }
}

/// `buildIndexes`: Mongoferry builds every index of the source on the
/// destination after the copy, so it takes the values that end with the
/// destination's indexes all built and refuses those that leave some out.
fn build_indexes(v: &Value) -> Result<(), Refusal> {
    match v {
        Value::String(s) if s == "afterDataCopy" || s == "beforeDataCopy" => Ok(()),
        other => Err(Refusal::invalid(format!(
            "The start request's {BUILD_INDEXES} is {other}, but Mongoferry always builds every index of the source on the destination, after the copy. Leave {BUILD_INDEXES} out, or send \"afterDataCopy\"."
        ))),
    }
}

/// `includeNamespaces` or `excludeNamespaces`, as the engine's patterns.
fn namespaces(fields: &Map<String, Value>, field: &str) -> Result<Vec<String>, Refusal> {
    let entries = match fields.get(field) {
        None => return Ok(vec![]),
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(Refusal::invalid(format!(
                "The start request's {field} is {other}, not a list. Send a list such as {FILTER_EXAMPLE}."
            )))
        }
    };
    let mut patterns = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_name = format!("Entry {} of the start request's {field}", i + 1);
        patterns.extend(filter(entry, &entry_name)?);
    }
    Ok(patterns)
}

/// One `{database, collections}` entry as patterns: `db.*` without
/// collections, else `db.coll` for each.
fn filter(entry: &Value, entry_name: &str) -> Result<Vec<String>, Refusal> {
    let Value::Object(e) = entry else {
        return Err(Refusal::invalid(format!(
            "{entry_name} is {entry}, not an object. Send entries such as {FILTER_EXAMPLE}."
        )));
    };
    if let Some(key) = e.keys().find(|k| *k != "database" && *k != "collections") {
        let why = if key.ends_with("Regex") {
            "Mongoferry does not take regular expressions"
        } else {
            "an entry takes only \"database\" and \"collections\""
        };
        return Err(Refusal::invalid(format!(
            "{entry_name} has a field '{key}', but {why}. Name the database and its collections exactly, such as {FILTER_EXAMPLE}."
        )));
    }
    let database = match e.get("database") {
        Some(Value::String(db)) => db,
        None => {
            return Err(Refusal::invalid(format!(
                "{entry_name} has no \"database\". Name one, such as {FILTER_EXAMPLE}."
            )))
        }
        Some(other) => {
            return Err(Refusal::invalid(format!(
                "{entry_name} has the database {other}, not a name. Name it as a string, such as {FILTER_EXAMPLE}."
            )))
        }
    };
    name(database, entry_name, true)?;
    let collections = match e.get("collections") {
        None => return Ok(vec![format!("{database}.*")]),
        Some(Value::Array(c)) if !c.is_empty() => c,
        Some(other) => {
            return Err(Refusal::invalid(format!(
                "{entry_name} has the collections {other}, not a list of names. Leave \"collections\" out for the whole database, or list them, such as {FILTER_EXAMPLE}."
            )))
        }
    };
    let mut patterns = Vec::with_capacity(collections.len());
    for c in collections {
        let Value::String(coll) = c else {
            return Err(Refusal::invalid(format!(
                "{entry_name} lists the collection {c}, not a name. List collections as strings, such as {FILTER_EXAMPLE}."
            )));
        };
        name(coll, entry_name, false)?;
        patterns.push(format!("{database}.{coll}"));
    }
    Ok(patterns)
}

/// A database or collection name that the engine's patterns name exactly:
/// not empty, and without what a pattern reads otherwise (`*` is its
/// wildcard) or refuses (white space, `$`, NUL); a database's name never
/// holds a dot.
fn name(name: &str, entry_name: &str, database: bool) -> Result<(), Refusal> {
    let what = if database { "database" } else { "collection" };
    let bad = name.is_empty()
        || (database && name.contains('.'))
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '$' || c == '\0' || c == '*');
    if bad {
        return Err(Refusal::invalid(format!(
            "{entry_name} names the {what} '{name}', which Mongoferry cannot select exactly (a name must not be empty or hold white space, '$', '*' or a NUL character, nor a database's a dot). Select its whole database, or leave the entry out."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runbooks_start_request_reads_as_the_engine_takes_it() {
        let r = parse(
            br#"{"source": "cluster1", "destination": "cluster0", "reversible": true,
                "enableUserWriteBlocking": true, "buildIndexes": "beforeDataCopy",
                "includeNamespaces": [{"database": "shop", "collections": ["orders", "a.b"]},
                                      {"database": "logs"}],
                "excludeNamespaces": [{"database": "shop", "collections": ["tmp"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            StartRequest {
                source: ClusterName::Cluster1,
                destination: ClusterName::Cluster0,
                reversible: true,
                block_source_writes: true,
                include: vec!["shop.orders".into(), "shop.a.b".into(), "logs.*".into()],
                exclude: vec!["shop.tmp".into()],
            }
        );
        for p in r.include.iter().chain(&r.exclude) {
            assert!(mongoferry::scope::Pattern::parse(p).is_ok(), "{p}");
        }
        let r = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            (r.source, r.destination, r.reversible, r.block_source_writes),
            (ClusterName::Cluster0, ClusterName::Cluster1, false, false)
        );
        assert!(r.include.is_empty() && r.exclude.is_empty());
        for (blocking, blocks) in [
            ("true", true),
            ("\"sourceAndDestination\"", true),
            ("false", false),
            ("\"destinationOnly\"", false),
            ("\"none\"", false),
        ] {
            let body = format!(
                r#"{{"source": "cluster0", "destination": "cluster1", "enableUserWriteBlocking": {blocking}}}"#
            );
            assert_eq!(
                parse(body.as_bytes()).unwrap().block_source_writes,
                blocks,
                "{blocking}"
            );
        }
    }

    #[test]
    fn a_bad_start_request_is_refused_in_one_sentence() {
        let start = r#""source": "cluster0", "destination": "cluster1""#;
        for (body, naming) in [
            ("source=cluster0".to_string(), "not valid JSON".to_string()),
            ("[]".into(), "not a JSON object".into()),
            (" ".into(), "no \"source\"".into()),
            (format!("{{{start}, \"verification\": {{}}}}"), "'verification'".into()),
            (r#"{"destination": "cluster1"}"#.into(), "no \"source\"".into()),
            (
                r#"{"source": "cluster2", "destination": "cluster1"}"#.into(),
                "\"cluster2\"".into(),
            ),
            (
                r#"{"source": "cluster0", "destination": "cluster0"}"#.into(),
                "both the source and the destination".into(),
            ),
            (format!("{{{start}, \"reversible\": \"yes\"}}"), "\"yes\"".into()),
            (
                format!("{{{start}, \"enableUserWriteBlocking\": \"always\"}}"),
                "\"always\"".into(),
            ),
            (
                format!("{{{start}, \"reversible\": true, \"enableUserWriteBlocking\": \"none\"}}"),
                "reversible".into(),
            ),
            (format!("{{{start}, \"buildIndexes\": \"never\"}}"), "\"never\"".into()),
            (
                format!("{{{start}, \"includeNamespaces\": {{\"database\": \"shop\"}}}}"),
                "not a list".into(),
            ),
            (
                format!("{{{start}, \"includeNamespaces\": [\"shop\"]}}"),
                "Entry 1 of the start request's includeNamespaces".into(),
            ),
            (
                format!("{{{start}, \"excludeNamespaces\": [{{\"database\": \"a\"}}, {{\"collections\": [\"x\"]}}]}}"),
                "Entry 2 of the start request's excludeNamespaces has no \"database\"".into(),
            ),
            (
                format!("{{{start}, \"includeNamespaces\": [{{\"databaseRegex\": {{\"pattern\": \"^s\"}}}}]}}"),
                "regular expressions".into(),
            ),
            (
                format!("{{{start}, \"includeNamespaces\": [{{\"database\": \"a.b\"}}]}}"),
                "'a.b'".into(),
            ),
            (
                format!("{{{start}, \"includeNamespaces\": [{{\"database\": \"shop\", \"collections\": [\"or*\"]}}]}}"),
                "'or*'".into(),
            ),
            (
                format!("{{{start}, \"includeNamespaces\": [{{\"database\": \"shop\", \"collections\": []}}]}}"),
                "not a list of names".into(),
            ),
            (
                format!("{{{start}, \"includeNamespaces\": [{{\"database\": \"shop\", \"collections\": [7]}}]}}"),
                "the collection 7".into(),
            ),
        ] {
            let r = parse(body.as_bytes()).unwrap_err();
            assert_eq!(r.code, "invalid_request", "{body}: {r:?}");
            assert!(r.text.contains(&naming), "{body}: {r:?}");
            assert!(r.text.ends_with('.') && !r.text.contains('\n'), "{body}: {r:?}");
        }
    }
}
