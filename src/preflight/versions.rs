//! Versions: both servers' versions and feature compatibility versions
//! (FCV), against what the engine needs and the supported pairs. The
//! source must be MongoDB 4.4 or newer, the destination 6.0 or newer, and
//! the destination's major version must not be older than the source's; a
//! downgrade is a blocker. Which event source an old source's sync reads
//! is [`super::events`]' business.
//!
//! Measured on mongod 6.0.5 with FCV 5.0: `collMod` refuses to make an
//! index unique (which commit does), `setUserWriteBlockMode` is refused,
//! clustered collections and `changeStreamPreAndPostImages` cannot be
//! created. Change streams with `showExpandedEvents` still work.
//!
//! Measured on mongod 4.4.2 and 5.0.4 (FCV 4.4 and 5.0, their own, which
//! is fine for a source): `setUserWriteBlockMode` does not exist (code 59,
//! CommandNotFound), and `collMod` with `prepareUnique` or `unique` is
//! refused; the copy's record-id resumable scans, reads by collection
//! UUID, `$bsonSize` and `$sample` work as on 6.0.

use std::fmt;

use bson::doc;

use super::report::Finding;
use crate::cluster::Cluster;
use crate::driver_error::redacted_message as reason;

/// A release line or a feature level (FCV): `major.minor`, ordered as
/// versions are, shown as "6.0".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Version {
        Version { major, minor }
    }

    /// Parses "6.0", "6.0.5", "7.0.0-rc1" to their `major.minor`: `None`
    /// when it is not a version.
    pub fn parse(v: &str) -> Option<Version> {
        Release::parse(v).map(|r| r.line)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A server binary's version, shown as "6.0.5".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub line: Version,
    pub patch: u32,
}

impl Release {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            line: Version::new(major, minor),
            patch,
        }
    }

    /// Parses "6.0.5", "7.0.0-rc1" (6.0.0), "8.0" (8.0.0): `None` when it
    /// is not a version.
    pub fn parse(v: &str) -> Option<Release> {
        let mut parts = v.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Release::new(major, minor, patch))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.line, self.patch)
    }
}

/// The oldest source the engine supports: 4.4 and 5.0 are synced through
/// their oplog, 6.0 and newer through change streams (or the oplog when
/// asked). Older releases were never measured.
pub const MIN_SOURCE_VERSION: Version = Version::new(4, 4);

/// The oldest destination the engine supports: the commit restores unique
/// indexes with `collMod` `prepareUnique`, new in 6.0.
pub const MIN_DESTINATION_VERSION: Version = Version::new(6, 0);

/// The first release with `setUserWriteBlockMode`, which
/// `--block-source-writes` uses at commit (4.4 and 5.0 answer
/// CommandNotFound).
pub const WRITE_BLOCKING_VERSION: Version = Version::new(6, 0);

/// Whether a source of this version (`buildInfo.version`) can have its
/// writes blocked at commit. An unreadable version is given the benefit
/// of the doubt (`version_unparsed` already says it was not checked).
pub fn can_block_writes(source_version: &str) -> bool {
    Version::parse(source_version).is_none_or(|v| v >= WRITE_BLOCKING_VERSION)
}

/// The feature level the destination accepts: its FCV when known,
/// otherwise its binary version.
pub fn feature_level(version: &str, fcv: Option<&str>) -> Option<Version> {
    fcv.and_then(Version::parse)
        .or_else(|| Version::parse(version))
}

/// The FCV as [`read_fcv`] returned it, when it was read and is settled.
pub fn settled(fcv: &Result<Option<String>, String>) -> Option<&str> {
    fcv.as_ref().ok().and_then(|v| v.as_deref())
}

/// What the version checks look at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub source_version: String,
    pub destination_version: String,
    /// `Ok(Some(fcv))`, `Ok(None)` while it is changing (the text says
    /// so), or why it could not be read.
    pub source_fcv: Result<Option<String>, String>,
    pub destination_fcv: Result<Option<String>, String>,
    pub block_source_writes: bool,
}

/// Reads `featureCompatibilityVersion`. `Ok(Some(v))` when settled; an
/// FCV upgrade or downgrade in progress is `Err("changing …")`.
pub async fn read_fcv(c: &Cluster) -> Result<Option<String>, String> {
    // Through mongos the FCV is the config servers'; getParameter answers.
    let reply = c
        .client
        .database("admin")
        .run_command(doc! { "getParameter": 1, "featureCompatibilityVersion": 1 })
        .await
        .map_err(|e| reason(&e))?;
    let Ok(f) = reply.get_document("featureCompatibilityVersion") else {
        return Ok(None);
    };
    let version = f.get_str("version").ok().map(String::from);
    if let Ok(target) = f.get_str("targetVersion") {
        return Err(format!(
            "changing: from {} to {target}",
            version.unwrap_or_else(|| "?".into())
        ));
    }
    Ok(version)
}

pub fn assess(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(src), Some(dest)) = (
        Release::parse(&f.source_version),
        Release::parse(&f.destination_version),
    ) else {
        out.push(Finding::warning(
            "version_unparsed",
            "A server version could not be read",
            format!(
                "The source reports version '{}' and the destination '{}'; the version checks were skipped.",
                f.source_version, f.destination_version
            ),
            format!("Check that the source is MongoDB {MIN_SOURCE_VERSION} or newer and the destination MongoDB {MIN_DESTINATION_VERSION} or newer."),
        ));
        return out;
    };
    if src.line < MIN_SOURCE_VERSION {
        let min = MIN_SOURCE_VERSION;
        out.push(Finding::blocker(
            "source_version_unsupported",
            format!("The source runs MongoDB {src}, older than {min}"),
            format!("Mongoferry supports sources of MongoDB {min} and newer: {min} and 5.0 are synced through their oplog, 6.0 and newer through change streams. Releases before {min} were never measured, and a sync could miss or misread their changes."),
            format!("Upgrade the source to MongoDB {min} first (its data stays in place), then check again; or migrate it with mongodump and mongorestore during a downtime."),
        ));
    }
    let min = MIN_DESTINATION_VERSION;
    if dest.line < min {
        out.push(Finding::blocker(
            "destination_version_unsupported",
            format!("The destination runs MongoDB {dest}, older than {min}"),
            format!("At commit Mongoferry turns unique indexes, built non-unique during sync, back to unique with collMod prepareUnique, which MongoDB {min} introduced."),
            format!("Upgrade the destination to MongoDB {min} or newer."),
        ));
    }
    if dest.line.major < src.line.major {
        out.push(Finding::blocker(
            "version_downgrade",
            format!("The destination (MongoDB {dest}) is older than the source (MongoDB {src})"),
            "A downgrade is not supported: the source's data, indexes and collection options may use features the older destination lacks, and it would refuse them halfway through.",
            format!("Upgrade the destination to MongoDB {}.x or newer.", src.line.major),
        ));
    } else if dest.line < src.line {
        out.push(Finding::warning(
            "minor_version_downgrade",
            format!("The destination (MongoDB {dest}) is an older release than the source (MongoDB {src})"),
            "Features added by the source's rapid release are missing on the destination; collections or indexes that use them would be refused.",
            format!("Upgrade the destination to MongoDB {} or newer.", src.line),
        ));
    } else if dest.line.major > src.line.major {
        out.push(Finding::info(
            "version_upgrade",
            format!("An upgrade: MongoDB {src} to {dest}"),
            "Data, indexes and collection options move to the newer version; behaviour changes between the versions (query, aggregation, removed commands) concern your application, not the migration.",
            "Test your application against the destination's version before the commit.",
        ));
    }
    fcv_findings(f, src, dest.line < src.line, &mut out);
    out
}

/// `binaries_downgrade`: the destination's binary is an older release
/// than the source's, which [`assess`] already reports. A source's FCV
/// below 6.0 is fine for the copy and the sync (a 4.4 or 5.0 source has
/// its own); it matters only to write blocking.
fn fcv_findings(f: &Facts, source: Release, binaries_downgrade: bool, out: &mut Vec<Finding>) {
    let min = MIN_DESTINATION_VERSION;
    for (side, fcv) in [
        ("source", &f.source_fcv),
        ("destination", &f.destination_fcv),
    ] {
        match fcv {
            Err(e) if e.starts_with("changing") => out.push(Finding::new(
                if side == "destination" { super::Severity::Blocker } else { super::Severity::Warning },
                "fcv_changing",
                format!("The {side}'s feature compatibility version is {e}"),
                "An FCV upgrade or downgrade is in progress; collection and index operations behave differently until it completes, and a sync across it is not supported.",
                format!("Finish the change on the {side} (run setFeatureCompatibilityVersion again with the target version), then check again."),
            )),
            Err(e) => out.push(Finding::info(
                "fcv_unreadable",
                format!("The {side}'s feature compatibility version could not be read"),
                format!("getParameter featureCompatibilityVersion failed: {e}. The checks use the binary version instead."),
                format!("Grant the {side} user the clusterMonitor role to check it."),
            )),
            Ok(_) => {}
        }
    }
    let src = settled(&f.source_fcv).and_then(Version::parse);
    let dest = settled(&f.destination_fcv).and_then(Version::parse);
    if let Some(d) = dest {
        if d < min {
            out.push(Finding::blocker(
                "destination_fcv_too_low",
                format!("The destination's feature compatibility version is {d}"),
                format!("Below FCV {min} the destination refuses collMod prepareUnique and unique, which the commit uses to restore unique indexes, and it cannot create clustered collections or Queryable Encryption collections."),
                format!("Run db.adminCommand({{setFeatureCompatibilityVersion: \"{min}\", confirm: true}}) on the destination (its binary is new enough), then check again."),
            ));
        }
    }
    let blocking = WRITE_BLOCKING_VERSION;
    if f.block_source_writes && source.line < blocking {
        out.push(Finding::blocker(
            "source_fcv_blocks_write_blocking",
            format!("The source (MongoDB {source}) cannot block writes at commit"),
            format!("--block-source-writes blocks the source's writes at commit with setUserWriteBlockMode, which does not exist before MongoDB {blocking}: MongoDB {source} answers CommandNotFound."),
            "Stop the application's writes to the source yourself, then commit without --block-source-writes.",
        ));
    } else if let Some(s) = src.filter(|s| *s < blocking && f.block_source_writes) {
        out.push(Finding::blocker(
            "source_fcv_blocks_write_blocking",
            format!("The source's feature compatibility version is {s}: it cannot block writes"),
            format!("Blocking the source's writes at commit uses setUserWriteBlockMode, which the server refuses below FCV {blocking}."),
            format!("Raise the source's FCV to {blocking}, or commit without --block-source-writes after stopping the application's writes yourself."),
        ));
    }
    if let (Some(s), Some(d)) = (src, dest) {
        if d < s && d >= min && !binaries_downgrade {
            out.push(Finding::warning(
                "fcv_older_than_source",
                format!("The destination's FCV ({d}) is older than the source's ({s})"),
                "Collections and indexes that use features of the source's FCV would be refused by the destination (see any unsupported_on_destination findings).",
                format!("Raise the destination's FCV to {s} with setFeatureCompatibilityVersion."),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Severity::{self, *};
    use super::*;

    fn facts(src: &str, dest: &str) -> Facts {
        Facts {
            source_version: src.into(),
            destination_version: dest.into(),
            source_fcv: Ok(Version::parse(src).map(|v| v.to_string())),
            destination_fcv: Ok(Version::parse(dest).map(|v| v.to_string())),
            block_source_writes: false,
        }
    }

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id.as_str(), f.severity)).collect()
    }

    #[test]
    fn versions_parse_with_suffixes() {
        assert_eq!(Release::parse("6.0.5"), Some(Release::new(6, 0, 5)));
        assert_eq!(Release::parse("7.0.0-rc1"), Some(Release::new(7, 0, 0)));
        assert_eq!(Release::parse("8.0"), Some(Release::new(8, 0, 0)));
        assert_eq!(Release::parse("unknown"), None);
        assert_eq!(
            feature_level("7.0.2", Some("6.0")),
            Some(Version::new(6, 0))
        );
        assert_eq!(feature_level("7.0.2", None), Some(Version::new(7, 0)));
    }

    #[test]
    fn supported_pairs_need_a_destination_not_older_than_the_source() {
        assert!(assess(&facts("6.0.5", "6.0.5")).is_empty());
        assert!(
            assess(&facts("6.0.5", "6.0.2")).is_empty(),
            "a patch release apart is fine"
        );
        assert_eq!(
            ids(&assess(&facts("6.0.5", "7.0.2"))),
            vec![("version_upgrade", Info)]
        );
        assert_eq!(
            ids(&assess(&facts("7.0.2", "6.0.5"))),
            vec![("version_downgrade", Blocker)]
        );
        assert_eq!(
            ids(&assess(&facts("7.3.1", "7.0.2"))),
            vec![("minor_version_downgrade", Warning)]
        );
        let both_old = assess(&facts("4.2.8", "4.2.8"));
        assert!(ids(&both_old).contains(&("source_version_unsupported", Blocker)));
        assert!(ids(&both_old).contains(&("destination_version_unsupported", Blocker)));
        assert_eq!(
            ids(&assess(&facts("x", "6.0.5"))),
            vec![("version_unparsed", Warning)]
        );
    }

    #[test]
    fn sources_from_4_4_are_supported_and_destinations_from_6_0() {
        // 4.4 and 5.0 sources (with their own FCV) into 6.0 and newer.
        assert_eq!(
            ids(&assess(&facts("4.4.2", "6.0.5"))),
            vec![("version_upgrade", Info)]
        );
        assert_eq!(
            ids(&assess(&facts("5.0.4", "7.0.2"))),
            vec![("version_upgrade", Info)]
        );
        // The floor is 4.4.0 exactly; 4.2 is refused, with the way out.
        assert_eq!(
            ids(&assess(&facts("4.4.0", "6.0.5"))),
            vec![("version_upgrade", Info)]
        );
        let old = assess(&facts("4.2.8", "6.0.5"));
        assert_eq!(
            ids(&old),
            vec![
                ("source_version_unsupported", Blocker),
                ("version_upgrade", Info)
            ]
        );
        let f = &old[0];
        assert_eq!(f.title, "The source runs MongoDB 4.2.8, older than 4.4");
        assert!(
            f.detail
                .contains("4.4 and 5.0 are synced through their oplog"),
            "{}",
            f.detail
        );
        assert!(
            f.remedy.contains("Upgrade the source to MongoDB 4.4 first")
                && f.remedy.contains("mongodump and mongorestore"),
            "{}",
            f.remedy
        );
        // A destination older than 6.0 stays refused, whatever the source.
        let f = assess(&facts("4.4.2", "5.0.4"));
        assert_eq!(
            ids(&f),
            vec![
                ("destination_version_unsupported", Blocker),
                ("version_upgrade", Info),
                ("destination_fcv_too_low", Blocker)
            ]
        );
        assert!(f[0].detail.contains("prepareUnique"), "{}", f[0].detail);
        // A downgrade is still a downgrade.
        assert!(ids(&assess(&facts("5.0.4", "4.4.2"))).contains(&("version_downgrade", Blocker)));
        let unparsed = assess(&facts("x", "6.0.5"));
        assert!(
            unparsed[0]
                .remedy
                .contains("source is MongoDB 4.4 or newer")
                && unparsed[0]
                    .remedy
                    .contains("destination MongoDB 6.0 or newer"),
            "{}",
            unparsed[0].remedy
        );
    }

    #[test]
    fn write_blocking_needs_a_6_0_binary_and_fcv_on_the_source() {
        for v in ["4.4.2", "5.0.4"] {
            let mut f = facts(v, "6.0.5");
            assert_eq!(
                ids(&assess(&f)),
                vec![("version_upgrade", Info)],
                "{v}: its own FCV is fine"
            );
            f.block_source_writes = true;
            let out = assess(&f);
            assert_eq!(
                ids(&out),
                vec![
                    ("version_upgrade", Info),
                    ("source_fcv_blocks_write_blocking", Blocker)
                ],
                "{v}"
            );
            let b = &out[1];
            assert_eq!(
                b.title,
                format!("The source (MongoDB {v}) cannot block writes at commit")
            );
            assert!(
                b.detail
                    .contains("setUserWriteBlockMode, which does not exist before MongoDB 6.0"),
                "{}",
                b.detail
            );
            assert!(
                b.remedy.contains("Stop the application's writes")
                    && b.remedy.contains("without --block-source-writes")
                    && !b.remedy.contains("FCV"),
                "{}",
                b.remedy
            );
            // Even when its FCV could not be read.
            f.source_fcv = Err("not authorized on admin".into());
            assert!(ids(&assess(&f)).contains(&("source_fcv_blocks_write_blocking", Blocker)));
        }
        let mut f = facts("6.0.5", "6.0.5");
        f.block_source_writes = true;
        assert!(assess(&f).is_empty(), "6.0 blocks writes");
        assert!(can_block_writes("6.0.5") && can_block_writes("8.0.1"));
        assert!(!can_block_writes("5.0.4") && !can_block_writes("4.4.2"));
        assert!(can_block_writes("unknown"), "version_unparsed says so");
    }

    #[test]
    fn feature_compatibility_versions_are_checked_on_both_sides() {
        let mut f = facts("6.0.5", "6.0.5");
        f.destination_fcv = Ok(Some("5.0".into()));
        assert_eq!(ids(&assess(&f)), vec![("destination_fcv_too_low", Blocker)]);

        let mut f = facts("6.0.5", "6.0.5");
        f.source_fcv = Ok(Some("5.0".into()));
        assert!(
            assess(&f).is_empty(),
            "an older source FCV is fine for the copy and the stream"
        );
        f.block_source_writes = true;
        let out = assess(&f);
        assert_eq!(
            ids(&out),
            vec![("source_fcv_blocks_write_blocking", Blocker)]
        );
        assert!(
            out[0]
                .title
                .contains("feature compatibility version is 5.0")
                && out[0].remedy.contains("Raise the source's FCV to 6.0"),
            "{:?}",
            out[0]
        );

        let mut f = facts("7.0.2", "7.0.2");
        f.destination_fcv = Ok(Some("6.0".into()));
        assert_eq!(ids(&assess(&f)), vec![("fcv_older_than_source", Warning)]);

        let mut f = facts("6.0.5", "6.0.5");
        f.destination_fcv = Err("changing: from 6.0 to 5.0".into());
        f.source_fcv = Err("not authorized on admin".into());
        assert_eq!(
            ids(&assess(&f)),
            vec![("fcv_unreadable", Info), ("fcv_changing", Blocker)]
        );
    }
}
