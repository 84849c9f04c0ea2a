//! A reversible migration (`--reversible`): what its way back needs of
//! both clusters, refused before anything is written. The commit blocks
//! the source's user writes (`setUserWriteBlockMode`) and the reverse
//! makes the old cluster's unique indexes non-unique (`collMod
//! forceNonUnique`) until its own commit: both are MongoDB 6.0 at both
//! ends, binary and feature compatibility version. Sharded clusters are
//! refused: the reverse through mongos is not built.
//!
//! Pure: the versions and topologies were learned before.

use super::report::Finding;
use super::versions::{feature_level, Version, WRITE_BLOCKING_VERSION};
use crate::error::Role;

/// What the checks of a reversible migration look at.
/// The other choice every refusal of a reversible migration offers, in
/// words that read right in the CLI and the wizard alike.
pub(crate) const WITHOUT_A_WAY_BACK: &str =
    "migrate without a way back (leave out --reversible, or clear \"Keep a way back\" in the wizard)";

pub struct Facts<'a> {
    pub source_version: &'a str,
    pub source_fcv: Option<&'a str>,
    pub source_sharded: bool,
    pub destination_version: &'a str,
    pub destination_fcv: Option<&'a str>,
    pub destination_sharded: bool,
}

pub fn assess(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let min = WRITE_BLOCKING_VERSION;
    for (role, version, fcv) in [
        (Role::Source, f.source_version, f.source_fcv),
        (Role::Destination, f.destination_version, f.destination_fcv),
    ] {
        let Some(level) = feature_level(version, fcv) else {
            continue;
        };
        if level < min {
            let what = if fcv.is_some_and(|v| Version::parse(v) == Some(level))
                && Version::parse(version).is_some_and(|v| v >= min)
            {
                format!("feature compatibility version {level}")
            } else {
                format!("MongoDB {version}")
            };
            out.push(Finding::blocker(
                "reversible_needs_6_0",
                format!("The {role} ({what}) cannot take part in a reversible migration"),
                format!("A reversible migration blocks the old cluster's user writes at commit (setUserWriteBlockMode) and makes its unique indexes non-unique while the reverse runs (collMod forceNonUnique); both need MongoDB {min} or newer, binary and feature compatibility version, on both clusters."),
                format!("Upgrade the {role} to MongoDB {min} or newer (and its FCV), or {WITHOUT_A_WAY_BACK} and keep the old cluster's backup instead."),
            ));
        }
    }
    if f.source_sharded || f.destination_sharded {
        out.push(Finding::blocker(
            "reversible_sharded",
            "A migration with a sharded cluster cannot be reversible yet",
            "Mongoferry's reverse runs between replica sets: blocking and unblocking user writes on every shard, and relaxing the old cluster's indexes through mongos, are not built.",
            format!("Keep the old cluster's backup as the way back, and {WITHOUT_A_WAY_BACK}."),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(src: &'a str, src_fcv: Option<&'a str>, dest: &'a str) -> Facts<'a> {
        Facts {
            source_version: src,
            source_fcv: src_fcv,
            source_sharded: false,
            destination_version: dest,
            destination_fcv: None,
            destination_sharded: false,
        }
    }

    #[test]
    fn both_sides_need_6_0_binary_and_fcv() {
        assert!(assess(&facts("6.0.5", Some("6.0"), "7.0.2")).is_empty());
        let old = assess(&facts("5.0.4", Some("5.0"), "6.0.5"));
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].id, "reversible_needs_6_0");
        assert_eq!(
            old[0].title,
            "The source (MongoDB 5.0.4) cannot take part in a reversible migration"
        );
        let fcv = assess(&facts("6.0.5", Some("5.0"), "6.0.5"));
        assert_eq!(
            fcv[0].title,
            "The source (feature compatibility version 5.0) cannot take part in a reversible migration"
        );
    }

    #[test]
    fn sharded_clusters_are_refused() {
        let mut f = facts("6.0.5", None, "6.0.5");
        f.destination_sharded = true;
        let found = assess(&f);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "reversible_sharded");
    }
}
