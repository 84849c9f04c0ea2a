//! Privileges: the actions each side's user actually holds
//! (`connectionStatus` with `showPrivileges`) against what the engine
//! needs, with the missing actions named and the built-in role that
//! grants them.
//!
//! Resources are matched as the server matches them: `{db: "",
//! collection: ""}` covers every normal collection of every database but
//! `local` and `config` (and never `system.*` collections), `{db: D,
//! collection: ""}` the normal collections of `D`, `{cluster: true}` the
//! cluster, `{anyResource: true}` everything. The role named for each
//! need is checked against the server's own built-in role definitions by
//! `tests/preflight.rs` (for a change-stream sync).
//!
//! What the source needs depends on the event source: a change stream
//! needs `find` and `changeStream` on every database; the oplog needs
//! `find` on the databases migrated and on `local.oplog.rs`, which no
//! `*AnyDatabase` role covers (they skip `local`): `clusterMonitor` does
//! (`find` and `collStats` on `{db: "local", collection: ""}` on 4.4, 5.0
//! and 6.0), as does `read` on `local`.
//!
//! Either way the engine reads a replica set's collections by UUID
//! (`find: <UUID>`, see `catalog::find_raw`), which the server allows only
//! with `useUUID` on the cluster. `readAnyDatabase` lacks it;
//! `clusterMonitor` grants it on 4.4, 5.0 and 6.0 (so do `backup`,
//! `restore`, `clusterAdmin` and `root`). Through `mongos` collections
//! are read by name, and `useUUID` is not needed. `tests/least_privilege.rs`
//! checks these roles against each server version.

use std::collections::{BTreeMap, BTreeSet};

use bson::{doc, Bson, Document};

use super::report::{Finding, Severity};
use crate::cluster::Cluster;
use crate::driver_error::redacted_message as reason;
use crate::error::Role;
use crate::progress::EventSource;
use crate::scope::METADATA_DB;

/// A privilege resource as `connectionStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Cluster,
    Any,
    /// `db` or `coll` empty means "any".
    Namespace {
        db: String,
        coll: String,
    },
    /// Resource kinds the engine needs nothing from (`system_buckets`).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub resource: Resource,
    pub actions: BTreeSet<String>,
}

/// Who the connection is, as far as access control goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The server does not enforce access control.
    Off,
    /// Access control is on and the connection string names no user.
    NotAuthenticated,
    Users {
        /// `user@db`.
        users: Vec<(String, String)>,
        roles: Vec<String>,
        privileges: Vec<Privilege>,
    },
    Unknown(String),
}

/// What a privilege is needed on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Cluster,
    /// Every normal collection of every user database (what a
    /// cluster-wide change stream requires).
    AllDatabases,
    /// The normal collections of one database.
    Db(String),
    Coll(String, String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Cluster => f.write_str("the cluster"),
            Target::AllDatabases => f.write_str("all databases"),
            Target::Db(d) => write!(f, "{d}"),
            Target::Coll(d, c) => write!(f, "{d}.{c}"),
        }
    }
}

/// One need: actions on a target, the built-in role that grants them,
/// and how bad it is to lack them.
#[derive(Debug, Clone)]
pub struct Need {
    pub target: Target,
    pub actions: &'static [&'static str],
    pub role: &'static str,
    /// The database the role is granted on: `admin` for the cluster-wide
    /// roles, `local` for `read` on the oplog.
    pub role_db: &'static str,
    pub severity: Severity,
    pub why: &'static str,
}

/// What the migration will do, which decides what it needs.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub source_dbs: Vec<String>,
    pub source_sharded: bool,
    /// Collections will be sharded on the destination.
    pub destination_sharded: bool,
    pub block_source_writes: bool,
    /// The migration keeps a way back: its reverse writes to the source,
    /// which stays blocked, and its reverse's commit blocks the destination.
    pub reversible: bool,
    /// A stored migration will be discarded (`--fresh`).
    pub discard_stored: bool,
}

/// Reading whether a cluster blocks user writes (`serverStatus`), which
/// a reversible migration does before it opens one to the applications.
fn write_block_state() -> Need {
    Need {
        target: Target::Cluster,
        actions: &["serverStatus"],
        role: "clusterMonitor",
        role_db: "admin",
        severity: Severity::Blocker,
        why: "to keep a way back: a reversible migration reads whether a cluster blocks user writes before it opens it to the applications",
    }
}

/// What the reverse of a reversible migration needs on its source, the
/// cluster it writes back to while the applications' writes are blocked.
fn reverse_writes(n: &Needs) -> Vec<Need> {
    let why = "to keep a way back: the reverse writes the new cluster's changes back here, past the write block, and holds its unique and TTL indexes until its commit";
    let mut out: Vec<Need> = n
        .source_dbs
        .iter()
        .flat_map(|db| {
            [
                Need {
                    target: Target::Db(db.clone()),
                    actions: DEST_WRITE,
                    role: "readWriteAnyDatabase",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why,
                },
                Need {
                    target: Target::Db(db.clone()),
                    actions: DEST_RESTORE,
                    role: "restore",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why,
                },
            ]
        })
        .collect();
    out.push(Need {
        target: Target::Cluster,
        actions: &["bypassWriteBlockingMode", "setUserWriteBlockMode"],
        role: "restore",
        role_db: "admin",
        severity: Severity::Blocker,
        why,
    });
    out.push(write_block_state());
    out.push(Need {
        target: Target::Db(METADATA_DB.into()),
        actions: STATE_WRITE,
        role: "readWriteAnyDatabase",
        role_db: "admin",
        severity: Severity::Blocker,
        why: "to keep the reverse's checkpoints in the old cluster's __mongoferry database",
    });
    out
}

const SOURCE_READ: &[&str] = &["find", "changeStream"];
const SOURCE_LIST: &[&str] = &["listCollections", "listIndexes", "collStats"];
/// Without a change stream, the copy reads only the migrated databases.
const SOURCE_LIST_READ: &[&str] = &["find", "listCollections", "listIndexes", "collStats"];
const DEST_WRITE: &[&str] = &[
    "find",
    "insert",
    "update",
    "remove",
    "createCollection",
    "createIndex",
    "dropCollection",
    "dropIndex",
    "listCollections",
    "listIndexes",
    "renameCollectionSameDB",
];
const DEST_RESTORE: &[&str] = &["collMod", "bypassDocumentValidation"];
const STATE_WRITE: &[&str] = &[
    "find",
    "insert",
    "update",
    "remove",
    "createCollection",
    "createIndex",
    "dropCollection",
    "listCollections",
];

/// Reading the feature compatibility version (`getParameter`).
fn fcv_need() -> Need {
    Need {
        target: Target::Cluster,
        actions: &["getParameter"],
        role: "clusterMonitor",
        role_db: "admin",
        severity: Severity::Warning,
        why: "to read the feature compatibility version, which decides what the destination accepts; without it the check falls back to the binary version",
    }
}

/// The privileges one side needs for a migration whose sync reads a
/// change stream: [`required_for`] with [`EventSource::ChangeStream`].
pub fn required(role: Role, n: &Needs) -> Vec<Need> {
    required_for(role, n, EventSource::ChangeStream)
}

/// The privileges one side needs for this migration, whose sync reads
/// `events` on the source.
pub fn required_for(role: Role, n: &Needs, events: EventSource) -> Vec<Need> {
    let mut out = Vec::new();
    let oplog = events == EventSource::Oplog;
    match role {
        Role::Source => {
            if !oplog {
                out.push(Need {
                    target: Target::AllDatabases,
                    actions: SOURCE_READ,
                    role: "readAnyDatabase",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to read the collections and to follow the cluster-wide change stream, which the server allows only with find and changeStream on all databases",
                });
            }
            for db in &n.source_dbs {
                out.push(Need {
                    target: Target::Db(db.clone()),
                    actions: if oplog { SOURCE_LIST_READ } else { SOURCE_LIST },
                    role: "readAnyDatabase",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: if oplog {
                        "to list, measure and copy the collections and indexes to migrate"
                    } else {
                        "to list the collections and indexes to migrate and to measure them"
                    },
                });
            }
            if n.source_sharded {
                for coll in ["collections", "chunks"] {
                    out.push(Need {
                        target: Target::Coll("config".into(), coll.into()),
                        actions: &["find"],
                        role: "clusterMonitor",
                        role_db: "admin",
                        severity: Severity::Blocker,
                        why: "to read the shard keys and chunk bounds of sharded collections",
                    });
                }
            } else if oplog {
                out.push(Need {
                    target: Target::Coll("local".into(), "oplog.rs".into()),
                    actions: &["find"],
                    role: "clusterMonitor",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to tail the oplog, which the sync reads instead of a change stream (readAnyDatabase does not cover the local database)",
                });
                out.push(Need {
                    target: Target::Coll("local".into(), "oplog.rs".into()),
                    actions: &["collStats"],
                    role: "clusterMonitor",
                    role_db: "admin",
                    severity: Severity::Warning,
                    why: "to measure the oplog window, and to stop a copy early once its start has left the oplog (without it, such a copy runs to its end before failing)",
                });
            } else {
                out.push(Need {
                    target: Target::Coll("local".into(), "oplog.rs".into()),
                    actions: &["find", "collStats"],
                    role: "clusterMonitor",
                    role_db: "admin",
                    severity: Severity::Warning,
                    why: "to measure the oplog window, and to stop a copy early once its start has left the oplog (without it, such a copy runs to its end before failing)",
                });
            }
            if !n.source_sharded {
                out.push(Need {
                    target: Target::Cluster,
                    actions: &["useUUID"],
                    role: "clusterMonitor",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to read the collections by UUID, so that a rename on the source cannot make the copy or the sync miss a collection or read another one; the server allows find by UUID only with useUUID on the cluster, which readAnyDatabase does not grant",
                });
                out.push(Need {
                    target: Target::Cluster,
                    actions: &["replSetGetConfig"],
                    role: "clusterMonitor",
                    role_db: "admin",
                    severity: Severity::Warning,
                    why: "to recognise the source by its replica set id; without it the source is recognised by its host names, so resuming through other host names is refused",
                });
            }
            out.push(fcv_need());
            if n.block_source_writes {
                out.push(Need {
                    target: Target::Cluster,
                    actions: &["setUserWriteBlockMode"],
                    role: "backup",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to block the source's writes at commit, as --block-source-writes asks",
                });
            }
            if n.reversible {
                out.extend(reverse_writes(n));
            }
        }
        Role::Destination => {
            for db in &n.source_dbs {
                out.push(Need {
                    target: Target::Db(db.clone()),
                    actions: DEST_WRITE,
                    role: "readWriteAnyDatabase",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to create, fill and keep in sync the migrated collections and indexes",
                });
                out.push(Need {
                    target: Target::Db(db.clone()),
                    actions: DEST_RESTORE,
                    role: "restore",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to hold TTLs and unique indexes during sync and restore them at commit (collMod), and to write documents exactly as the source has them whatever the validators (bypassDocumentValidation)",
                });
                out.push(Need {
                    target: Target::Db(db.clone()),
                    actions: &["dropDatabase"],
                    role: "dbAdminAnyDatabase",
                    role_db: "admin",
                    severity: Severity::Warning,
                    why: "to follow a dropDatabase on the source; without it the sync stops if the source drops a migrated database",
                });
                if n.destination_sharded {
                    out.push(Need {
                        target: Target::Db(db.clone()),
                        actions: &["enableSharding", "splitChunk"],
                        role: "clusterManager",
                        role_db: "admin",
                        severity: Severity::Blocker,
                        why: "to shard and pre-split collections like the source's",
                    });
                }
            }
            out.push(fcv_need());
            if n.reversible {
                out.push(Need {
                    target: Target::Cluster,
                    actions: &["setUserWriteBlockMode"],
                    role: "restore",
                    role_db: "admin",
                    severity: Severity::Blocker,
                    why: "to keep a way back: the reverse's commit blocks this cluster's user writes",
                });
                out.push(write_block_state());
            }
            out.push(Need {
                target: Target::Db(METADATA_DB.into()),
                actions: STATE_WRITE,
                role: "readWriteAnyDatabase",
                role_db: "admin",
                severity: Severity::Blocker,
                why: "to keep the migration's checkpoints in the __mongoferry database",
            });
            out.push(Need {
                target: Target::Db(METADATA_DB.into()),
                actions: &["dropDatabase"],
                role: "dbAdminAnyDatabase",
                role_db: "admin",
                severity: if n.discard_stored {
                    Severity::Blocker
                } else {
                    Severity::Warning
                },
                why: "to discard a stored migration's state when starting again with --fresh",
            });
        }
    }
    out
}

/// Whether a held resource covers a needed target, as the server decides.
pub fn covers(held: &Resource, target: &Target) -> bool {
    let special = |d: &str| d == "local" || d == "config";
    match (held, target) {
        (Resource::Any, _) => true,
        (Resource::Cluster, Target::Cluster) => true,
        (Resource::Namespace { db, coll }, Target::AllDatabases) => {
            db.is_empty() && coll.is_empty()
        }
        (Resource::Namespace { db, coll }, Target::Db(d)) => {
            coll.is_empty() && (db == d || (db.is_empty() && !special(d)))
        }
        (Resource::Namespace { db, coll }, Target::Coll(d, c)) => {
            let normal = !c.starts_with("system.");
            // The named collection, in that database or in any; or the
            // database's normal collections.
            (coll == c && (db == d || db.is_empty()))
                || (coll.is_empty() && normal && (db == d || (db.is_empty() && !special(d))))
        }
        _ => false,
    }
}

/// The actions of `need` that no held privilege grants.
pub fn missing(privileges: &[Privilege], need: &Need) -> Vec<&'static str> {
    need.actions
        .iter()
        .copied()
        .filter(|a| {
            !privileges
                .iter()
                .any(|p| p.actions.contains(*a) && covers(&p.resource, &need.target))
        })
        .collect()
}

/// Reads who the connection is and what it may do.
pub async fn gather(c: &Cluster) -> Auth {
    let admin = c.client.database("admin");
    let reply = match admin
        .run_command(doc! { "connectionStatus": 1, "showPrivileges": true })
        .await
    {
        Ok(r) => r,
        Err(e) => return Auth::Unknown(reason(&e)),
    };
    let info = reply.get_document("authInfo").cloned().unwrap_or_default();
    let users = parse_users(&info, "authenticatedUsers", "user");
    if users.is_empty() {
        // No user: either access control is off, or the server will
        // refuse nearly everything. A command that needs authentication
        // tells which.
        return match admin
            .run_command(doc! { "listDatabases": 1, "nameOnly": true })
            .await
        {
            Ok(_) => Auth::Off,
            Err(e) if crate::driver_error::is_unauthorized(&e) => Auth::NotAuthenticated,
            Err(e) => Auth::Unknown(reason(&e)),
        };
    }
    let roles = parse_users(&info, "authenticatedUserRoles", "role")
        .into_iter()
        .map(|(r, db)| format!("{r}@{db}"))
        .collect();
    let privileges = info
        .get_array("authenticatedUserPrivileges")
        .map(|a| a.iter().filter_map(parse_privilege).collect())
        .unwrap_or_default();
    Auth::Users {
        users,
        roles,
        privileges,
    }
}

fn parse_users(info: &Document, field: &str, name: &str) -> Vec<(String, String)> {
    info.get_array(field)
        .map(|a| {
            a.iter()
                .filter_map(|u| {
                    let u = u.as_document()?;
                    Some((
                        u.get_str(name).ok()?.to_string(),
                        u.get_str("db").ok()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn parse_privilege(v: &Bson) -> Option<Privilege> {
    let p = v.as_document()?;
    let r = p.get_document("resource").ok()?;
    let resource = if r.get_bool("cluster").unwrap_or(false) {
        Resource::Cluster
    } else if r.get_bool("anyResource").unwrap_or(false) {
        Resource::Any
    } else if let (Ok(db), Ok(coll)) = (r.get_str("db"), r.get_str("collection")) {
        Resource::Namespace {
            db: db.to_string(),
            coll: coll.to_string(),
        }
    } else {
        Resource::Other
    };
    let actions = p
        .get_array("actions")
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Some(Privilege { resource, actions })
}

/// `events`: what the sync reads on the source, which decides what the
/// source user needs.
pub fn assess(side: Role, auth: &Auth, needs: &Needs, events: EventSource) -> Vec<Finding> {
    match auth {
        // With access control off nobody may write past a write block:
        // the server grants bypassWriteBlockingMode only to users.
        Auth::Off if needs.reversible => vec![Finding::blocker(
            "reversible_needs_access_control",
            format!("The {side} does not enforce access control, so a reversible migration cannot write back to it"),
            "A reversible migration blocks user writes (setUserWriteBlockMode) on the cluster the applications left, and its reverse writes there past the block; the server lets only an authenticated user with bypassWriteBlockingMode (the restore role) do that, and without access control every connection, Mongoferry's included, is refused with UserWritesBlocked.",
            format!("Enable authentication on the {side} (security.authorization: enabled) and connect as a user with the restore and readWriteAnyDatabase roles, or {}.", super::reverse::WITHOUT_A_WAY_BACK),
        )],
        Auth::Off => vec![Finding::info(
            "access_control_off",
            format!("The {side} does not enforce access control: privileges were not checked"),
            format!("The {side} accepts unauthenticated connections, so every operation is allowed and there is nothing to check. Anyone who can reach it can read and change its data."),
            format!("Enable authentication on the {side} (security.authorization: enabled) for production use."),
        )],
        Auth::NotAuthenticated => vec![Finding::blocker(
            "not_authenticated",
            format!("The {side} requires authentication, and the connection string names no user"),
            format!("The {side} refused a command that needs an authenticated user; the migration could not read or write anything."),
            format!("Put a user and password in the {side} connection string (mongodb://USER:PASSWORD@host/?authSource=admin)."),
        )],
        Auth::Unknown(e) => vec![Finding::warning(
            "privileges_unreadable",
            format!("The {side} user's privileges could not be read"),
            format!("connectionStatus failed: {e}. The migration may stop later on a missing privilege."),
            format!("Check the {side} user's roles against the privileges the migration needs (see the README)."),
        )],
        Auth::Users {
            users,
            roles,
            privileges,
        } => {
            // Missing actions, grouped by the role that grants them.
            let mut groups: BTreeMap<(Severity, GrantedBy), Vec<Lack>> = BTreeMap::new();
            for need in required_for(side, needs, events) {
                let lacking = missing(privileges, &need);
                if !lacking.is_empty() {
                    groups
                        .entry((need.severity, (need.role, need.role_db)))
                        .or_default()
                        .push((need.target.clone(), lacking, need.why));
                }
            }
            let (user, user_db) = users.first().cloned().unwrap_or_default();
            groups
                .into_iter()
                .map(|((severity, role), lacks)| {
                    finding(side, severity, role, &lacks, &user, &user_db, roles)
                })
                .collect()
        }
    }
}

/// A need not met: where, the actions missing there, and why they are
/// needed.
type Lack = (Target, Vec<&'static str>, &'static str);

/// A built-in role and the database it is granted on.
type GrantedBy = (&'static str, &'static str);

fn finding(
    side: Role,
    severity: Severity,
    (role, role_db): GrantedBy,
    lacks: &[Lack],
    user: &str,
    user_db: &str,
    roles: &[String],
) -> Finding {
    // "find, changeStream on all databases; collMod on shop, crm"
    let mut by_actions: BTreeMap<Vec<&str>, Vec<String>> = BTreeMap::new();
    let mut whys: Vec<&str> = Vec::new();
    for (target, actions, why) in lacks {
        by_actions
            .entry(actions.clone())
            .or_default()
            .push(target.to_string());
        if !whys.contains(why) {
            whys.push(why);
        }
    }
    let what: Vec<String> = by_actions
        .iter()
        .map(|(actions, targets)| {
            format!(
                "{} on {}",
                actions.join(", "),
                super::report::list(targets, 4)
            )
        })
        .collect();
    let held = if roles.is_empty() {
        "no roles".to_string()
    } else {
        roles.join(", ")
    };
    let (id, consequence) = match severity {
        Severity::Blocker => (
            format!("{side}_privileges_missing"),
            "The migration would fail on them",
        ),
        _ => (
            format!("{side}_privileges_limited"),
            "The migration runs without them, with less safety",
        ),
    };
    let on = if role_db == "admin" {
        String::new()
    } else {
        format!(" on the {role_db} database")
    };
    // Needs on single collections or on the cluster can also be met by a
    // custom role that grants just them.
    let custom: Vec<String> = lacks
        .iter()
        .map(|(target, actions, _)| match target {
            Target::Coll(d, c) => Some(format!(
                "{} on {{db: \"{d}\", collection: \"{c}\"}}",
                actions.join(", ")
            )),
            Target::Cluster => Some(format!("{} on {{cluster: true}}", actions.join(", "))),
            _ => None,
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    let custom = if custom.is_empty() {
        String::new()
    } else {
        format!(
            " Or grant a custom role with {} (db.createRole).",
            custom.join(" and ")
        )
    };
    Finding::new(
        severity,
        &id,
        format!("The {side} user {user} lacks {}", what.join("; ")),
        format!(
            "Mongoferry needs them {}. {consequence}. The user holds: {held}.",
            whys.join("; and ")
        ),
        format!(
            "Grant the built-in role {role}{on}: db.getSiblingDB(\"{user_db}\").grantRolesToUser(\"{user}\", [{{role: \"{role}\", db: \"{role_db}\"}}]).{custom}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: EventSource = EventSource::ChangeStream;

    fn ns(db: &str, coll: &str) -> Resource {
        Resource::Namespace {
            db: db.into(),
            coll: coll.into(),
        }
    }

    fn privilege(resource: Resource, actions: &[&str]) -> Privilege {
        Privilege {
            resource,
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn resources_match_as_the_server_matches_them() {
        let any_db = ns("", "");
        assert!(covers(&any_db, &Target::AllDatabases));
        assert!(covers(&any_db, &Target::Db("shop".into())));
        assert!(covers(&any_db, &Target::Db("admin".into())));
        assert!(
            !covers(&any_db, &Target::Db("local".into())),
            "readAnyDatabase cannot read local"
        );
        assert!(!covers(
            &any_db,
            &Target::Coll("local".into(), "oplog.rs".into())
        ));
        assert!(!covers(
            &any_db,
            &Target::Coll("shop".into(), "system.views".into())
        ));
        assert!(!covers(&any_db, &Target::Cluster));
        let shop = ns("shop", "");
        assert!(covers(&shop, &Target::Db("shop".into())));
        assert!(covers(&shop, &Target::Coll("shop".into(), "orders".into())));
        assert!(!covers(&shop, &Target::Db("crm".into())));
        assert!(!covers(&shop, &Target::AllDatabases));
        let local = ns("local", "");
        assert!(covers(
            &local,
            &Target::Coll("local".into(), "oplog.rs".into())
        ));
        assert!(covers(
            &ns("", "oplog.rs"),
            &Target::Coll("local".into(), "oplog.rs".into())
        ));
        assert!(covers(&Resource::Any, &Target::Cluster));
        assert!(covers(&Resource::Cluster, &Target::Cluster));
        assert!(!covers(&Resource::Other, &Target::AllDatabases));
    }

    fn needs() -> Needs {
        Needs {
            source_dbs: vec!["shop".into(), "crm".into()],
            ..Needs::default()
        }
    }

    fn users(privileges: Vec<Privilege>) -> Auth {
        Auth::Users {
            users: vec![("mig".into(), "admin".into())],
            roles: vec!["read@shop".into()],
            privileges,
        }
    }

    #[test]
    fn a_reader_of_one_database_is_told_what_it_lacks_and_which_role_grants_it() {
        let auth = users(vec![privilege(
            ns("shop", ""),
            &[
                "find",
                "changeStream",
                "listCollections",
                "listIndexes",
                "collStats",
            ],
        )]);
        let f = assess(Role::Source, &auth, &needs(), CS);
        let blocker = f
            .iter()
            .find(|f| f.severity == Severity::Blocker && f.remedy.contains("readAnyDatabase"))
            .expect("a blocker");
        assert_eq!(blocker.id, "source_privileges_missing");
        assert!(
            blocker
                .title
                .contains("find, changeStream on all databases"),
            "{}",
            blocker.title
        );
        assert!(
            blocker
                .title
                .contains("listCollections, listIndexes, collStats on crm"),
            "{}",
            blocker.title
        );
        assert!(!blocker.title.contains("on shop"), "{}", blocker.title);
        assert!(
            blocker.remedy.contains("readAnyDatabase"),
            "{}",
            blocker.remedy
        );
        assert!(
            blocker.remedy.contains("grantRolesToUser(\"mig\""),
            "{}",
            blocker.remedy
        );
        assert!(blocker.detail.contains("read@shop"), "{}", blocker.detail);
        let warning = f
            .iter()
            .find(|f| f.severity == Severity::Warning)
            .expect("a warning");
        assert_eq!(warning.id, "source_privileges_limited");
        assert!(
            warning.remedy.contains("clusterMonitor"),
            "{}",
            warning.remedy
        );
    }

    #[test]
    fn the_roles_mongoferry_documents_are_enough() {
        // The privileges of readAnyDatabase + clusterMonitor + backup (source)
        // and readWriteAnyDatabase + restore + dbAdminAnyDatabase +
        // clusterMonitor (destination), reduced to what the check looks at.
        let source = source_user(&["setUserWriteBlockMode"], vec![]);
        let mut n = needs();
        n.block_source_writes = true;
        assert!(assess(Role::Source, &source, &n, CS).is_empty());
        assert!(assess(Role::Source, &source, &n, EventSource::Oplog).is_empty());
        let dest = users(vec![
            privilege(ns("", ""), DEST_WRITE),
            privilege(
                ns("", ""),
                &["collMod", "bypassDocumentValidation", "dropDatabase"],
            ),
            privilege(Resource::Cluster, &["getParameter"]),
        ]);
        n.discard_stored = true;
        assert!(assess(Role::Destination, &dest, &n, CS).is_empty());
    }

    #[test]
    fn write_blocking_and_fresh_starts_raise_what_is_required() {
        let dest = users(vec![
            privilege(ns("", ""), DEST_WRITE),
            privilege(ns("", ""), DEST_RESTORE),
            privilege(Resource::Cluster, &["getParameter"]),
        ]);
        let f = assess(Role::Destination, &dest, &needs(), CS);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].title
                .contains("dropDatabase on shop, crm, __mongoferry"),
            "{}",
            f[0].title
        );
        let mut n = needs();
        n.discard_stored = true;
        let f = assess(Role::Destination, &dest, &n, CS);
        assert!(
            f.iter().any(|f| f.severity == Severity::Blocker
                && f.title.contains("dropDatabase on __mongoferry")),
            "{f:#?}"
        );

        let src = source_user(&[], vec![]);
        assert!(assess(Role::Source, &src, &needs(), CS).is_empty());
        let mut n = needs();
        n.block_source_writes = true;
        let f = assess(Role::Source, &src, &n, CS);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].title.contains("setUserWriteBlockMode on the cluster"),
            "{}",
            f[0].title
        );
        assert!(f[0].remedy.contains("backup"), "{}", f[0].remedy);
        assert!(
            f[0].remedy
                .contains("custom role with setUserWriteBlockMode on {cluster: true}"),
            "{}",
            f[0].remedy
        );
    }

    /// What a source user reads with (readAnyDatabase, clusterMonitor),
    /// plus `cluster` actions and `more` privileges.
    fn source_user(cluster: &[&'static str], more: Vec<Privilege>) -> Auth {
        let mut all = vec![
            privilege(
                ns("", ""),
                &[
                    "find",
                    "changeStream",
                    "listCollections",
                    "listIndexes",
                    "collStats",
                ],
            ),
            privilege(ns("local", ""), &["find", "collStats"]),
            privilege(
                Resource::Cluster,
                &[&["replSetGetConfig", "getParameter", "useUUID"], cluster].concat(),
            ),
        ];
        all.extend(more);
        users(all)
    }

    #[test]
    fn a_reversible_migration_needs_to_write_back_past_the_block() {
        // backup's setUserWriteBlockMode but no restore: it may block, but
        // not write past the block.
        let src = source_user(&["setUserWriteBlockMode", "serverStatus"], vec![]);
        let mut n = needs();
        n.block_source_writes = true;
        assert!(assess(Role::Source, &src, &n, CS).is_empty());
        n.reversible = true;
        let f = assess(Role::Source, &src, &n, CS);
        assert!(!f.is_empty());
        assert!(f.iter().all(|f| f.severity == Severity::Blocker), "{f:#?}");
        assert!(
            f.iter()
                .any(|f| f.title.contains("bypassWriteBlockingMode on the cluster")),
            "{f:#?}"
        );
        assert!(f.iter().any(|f| f.detail.contains("way back")), "{f:#?}");
        // root (restore and readWriteAnyDatabase on top) has it all.
        let root = source_user(
            &[
                "setUserWriteBlockMode",
                "bypassWriteBlockingMode",
                "serverStatus",
            ],
            vec![
                privilege(ns("", ""), DEST_WRITE),
                privilege(ns("", ""), DEST_RESTORE),
            ],
        );
        assert!(assess(Role::Source, &root, &n, CS).is_empty());
    }

    #[test]
    fn an_oplog_sync_needs_find_on_the_oplog_which_read_any_database_lacks() {
        // readAnyDatabase and the cluster actions, but nothing on local.
        let any_db = vec![
            privilege(
                ns("", ""),
                &["find", "listCollections", "listIndexes", "collStats"],
            ),
            privilege(
                Resource::Cluster,
                &["replSetGetConfig", "getParameter", "useUUID"],
            ),
        ];
        let f = assess(
            Role::Source,
            &users(any_db.clone()),
            &needs(),
            EventSource::Oplog,
        );
        assert_eq!(f.len(), 2, "{f:#?}");
        let blocker = &f[0];
        assert_eq!(
            (blocker.id.as_str(), blocker.severity),
            ("source_privileges_missing", Severity::Blocker)
        );
        assert_eq!(
            blocker.title,
            "The source user mig lacks find on local.oplog.rs"
        );
        assert!(
            blocker.detail.contains("to tail the oplog")
                && blocker
                    .detail
                    .contains("readAnyDatabase does not cover the local database"),
            "{}",
            blocker.detail
        );
        // clusterMonitor, which the source needs anyway, grants find on the
        // local database (so does read on local).
        assert!(
            blocker
                .remedy
                .starts_with("Grant the built-in role clusterMonitor: ")
                && blocker.remedy.contains(
                    "grantRolesToUser(\"mig\", [{role: \"clusterMonitor\", db: \"admin\"}])"
                )
                && blocker
                    .remedy
                    .contains("custom role with find on {db: \"local\", collection: \"oplog.rs\"}"),
            "{}",
            blocker.remedy
        );
        // The window's collStats: a warning, met by the same grant.
        assert_eq!(
            (f[1].id.as_str(), f[1].severity),
            ("source_privileges_limited", Severity::Warning)
        );
        assert!(
            f[1].title.contains("collStats on local.oplog.rs"),
            "{}",
            f[1].title
        );
        assert!(f[1].remedy.contains("clusterMonitor"), "{}", f[1].remedy);

        // A change-stream sync does not read the oplog: no such blocker,
        // but it needs changeStream, which an oplog sync does not.
        let f = assess(Role::Source, &users(any_db.clone()), &needs(), CS);
        assert!(
            !f.iter()
                .any(|f| f.severity == Severity::Blocker && f.title.contains("local.oplog.rs")),
            "{f:#?}"
        );
        let blocker = f
            .iter()
            .find(|f| f.severity == Severity::Blocker)
            .expect("a blocker");
        assert!(
            blocker.title.contains("changeStream on all databases"),
            "{}",
            blocker.title
        );

        // read on local (or a custom role on the oplog alone) meets it,
        // with no changeStream anywhere.
        let mut with_local = any_db.clone();
        with_local.push(privilege(
            ns("local", ""),
            &[
                "find",
                "collStats",
                "listCollections",
                "listIndexes",
                "changeStream",
            ],
        ));
        assert!(assess(
            Role::Source,
            &users(with_local),
            &needs(),
            EventSource::Oplog
        )
        .is_empty());
        let mut custom = any_db;
        custom.push(privilege(ns("local", "oplog.rs"), &["find"]));
        let f = assess(Role::Source, &users(custom), &needs(), EventSource::Oplog);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Warning);

        // An oplog sync reads only the migrated databases.
        let one_db = users(vec![
            privilege(
                ns("shop", ""),
                &["find", "listCollections", "listIndexes", "collStats"],
            ),
            privilege(ns("local", ""), &["find", "collStats"]),
            privilege(
                Resource::Cluster,
                &["replSetGetConfig", "getParameter", "useUUID"],
            ),
        ]);
        let f = assess(Role::Source, &one_db, &needs(), EventSource::Oplog);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(
            f[0].title,
            "The source user mig lacks find, listCollections, listIndexes, collStats on crm"
        );
        assert!(f[0].remedy.contains("readAnyDatabase"), "{}", f[0].remedy);
        assert!(!f[0].remedy.contains("custom role"), "{}", f[0].remedy);

        // A sharded source has no oplog to tail through mongos (blocked by
        // oplog_sharded_source): nothing asked on local.
        let sharded = Needs {
            source_sharded: true,
            ..needs()
        };
        assert!(required_for(Role::Source, &sharded, EventSource::Oplog)
            .iter()
            .all(|n| !matches!(&n.target, Target::Coll(d, _) if d == "local")));
        // The change-stream needs are what `required` gives.
        let plain = |v: Vec<Need>| -> Vec<(Target, Vec<&str>)> {
            v.into_iter()
                .map(|n| (n.target, n.actions.to_vec()))
                .collect()
        };
        assert_eq!(
            plain(required(Role::Source, &needs())),
            plain(required_for(Role::Source, &needs(), CS))
        );
    }

    #[test]
    fn reading_by_uuid_needs_use_uuid_which_read_any_database_lacks() {
        // readAnyDatabase's privileges, and everything clusterMonitor gives
        // the check but useUUID.
        let without = vec![
            privilege(
                ns("", ""),
                &[
                    "find",
                    "changeStream",
                    "listCollections",
                    "listIndexes",
                    "collStats",
                ],
            ),
            privilege(ns("local", ""), &["find", "collStats"]),
            privilege(Resource::Cluster, &["replSetGetConfig", "getParameter"]),
        ];
        for events in [CS, EventSource::Oplog] {
            let f = assess(Role::Source, &users(without.clone()), &needs(), events);
            assert_eq!(f.len(), 1, "{events:?}: {f:#?}");
            assert_eq!(
                (f[0].id.as_str(), f[0].severity),
                ("source_privileges_missing", Severity::Blocker)
            );
            assert_eq!(
                f[0].title,
                "The source user mig lacks useUUID on the cluster"
            );
            assert!(
                f[0].detail.contains("to read the collections by UUID")
                    && f[0].detail.contains("readAnyDatabase does not grant"),
                "{}",
                f[0].detail
            );
            assert!(
                f[0].remedy
                    .starts_with("Grant the built-in role clusterMonitor: ")
                    && f[0].remedy.contains(
                        "grantRolesToUser(\"mig\", [{role: \"clusterMonitor\", db: \"admin\"}])"
                    )
                    && f[0]
                        .remedy
                        .contains("Or grant a custom role with useUUID on {cluster: true}"),
                "{}",
                f[0].remedy
            );
        }

        // With useUUID on the cluster (clusterMonitor, backup, or a custom
        // role), nothing is missing.
        let mut with = without.clone();
        with.push(privilege(Resource::Cluster, &["useUUID"]));
        for events in [CS, EventSource::Oplog] {
            let f = assess(Role::Source, &users(with.clone()), &needs(), events);
            assert!(f.is_empty(), "{events:?}: {f:#?}");
        }
        // useUUID on anything but the cluster does not count.
        let mut elsewhere = without.clone();
        elsewhere.push(privilege(ns("", ""), &["useUUID"]));
        assert_eq!(
            assess(Role::Source, &users(elsewhere), &needs(), CS).len(),
            1
        );

        // Through mongos collections are read by name: no useUUID asked.
        let sharded = Needs {
            source_sharded: true,
            ..needs()
        };
        for events in [CS, EventSource::Oplog] {
            assert!(required_for(Role::Source, &sharded, events)
                .iter()
                .all(|n| !n.actions.contains(&"useUUID")));
        }
        // The destination is read by name only.
        assert!(required(Role::Destination, &needs())
            .iter()
            .all(|n| !n.actions.contains(&"useUUID")));
    }

    #[test]
    fn without_access_control_nothing_is_checked_and_it_says_so() {
        let f = assess(Role::Source, &Auth::Off, &needs(), CS);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].id.as_str(), f[0].severity),
            ("access_control_off", Severity::Info)
        );
        let f = assess(Role::Destination, &Auth::NotAuthenticated, &needs(), CS);
        assert_eq!(
            (f[0].id.as_str(), f[0].severity),
            ("not_authenticated", Severity::Blocker)
        );
        // Nobody writes past a write block without access control.
        let reversible = Needs {
            reversible: true,
            ..needs()
        };
        for side in [Role::Source, Role::Destination] {
            let f = assess(side, &Auth::Off, &reversible, CS);
            assert_eq!(
                (f[0].id.as_str(), f[0].severity),
                ("reversible_needs_access_control", Severity::Blocker)
            );
        }
    }

    #[test]
    fn privileges_parse_from_connection_status() {
        let p = parse_privilege(&Bson::Document(
            doc! { "resource": { "db": "", "collection": "" }, "actions": ["find"] },
        ))
        .unwrap();
        assert_eq!(p.resource, ns("", ""));
        assert!(p.actions.contains("find"));
        let p = parse_privilege(&Bson::Document(
            doc! { "resource": { "cluster": true }, "actions": [] },
        ))
        .unwrap();
        assert_eq!(p.resource, Resource::Cluster);
        let p = parse_privilege(&Bson::Document(
            doc! { "resource": { "system_buckets": "" }, "actions": [] },
        ))
        .unwrap();
        assert_eq!(p.resource, Resource::Other);
    }
}
