//! Least privilege on real, auth-enabled servers: users holding exactly the
//! built-in roles the README documents migrate live, through a change
//! stream (6.0.5 to 6.0.5) and through the oplog (4.4.2 to 6.0.5), and the
//! preflight's privilege model matches what each server version grants.
//!
//! The engine names source collections by UUID in its reads (`find:
//! <UUID>`, see `catalog::find_raw`), which the server allows only with the
//! `useUUID` action on the cluster. `readAnyDatabase` lacks it;
//! `clusterMonitor` grants it on 4.4, 5.0 and 6.0 (as do `backup`,
//! `restore`, `clusterAdmin` and `root`), together with `find` and
//! `collStats` on the `local` database that the oplog event source tails.
//! A source user with `readAnyDatabase` alone is refused by the preflight,
//! before anything is written, instead of failing in the copy.
//!
//! Every test fails (never skips) when a mongod it needs is missing.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use mongoferry::preflight::privileges::{self, Auth, Needs};
use mongoferry::preflight::{CheckRequest, Severity};
use mongoferry::sandbox::{workload, MongodVersion, ReplicaSet, SandboxAuth, SandboxOptions};
use mongoferry::{EventSource, EventSourceChoice, Migration, Namespace, Role, SyncConfig};
use tokio_util::sync::CancellationToken;

use support::preflight::{assert_none, check};
use support::*;

/// The source's roles, as the README documents them, whichever the event
/// source (`backup` is added only for `--block-source-writes`).
const SOURCE_ROLES: &[&str] = &["readAnyDatabase", "clusterMonitor"];
/// The destination's roles, as the README documents them.
const DESTINATION_ROLES: &[&str] = &[
    "readWriteAnyDatabase",
    "restore",
    "clusterMonitor",
    "dbAdminAnyDatabase",
];

const USER: &str = "ferry";
const USER_PW: &str = "Ferry-Pa55:w/rd";

const PRIVILEGE_FINDINGS: &[&str] = &[
    "source_privileges_missing",
    "source_privileges_limited",
    "destination_privileges_missing",
    "destination_privileges_limited",
    "access_control_off",
    "not_authenticated",
    "privileges_unreadable",
];

/// An auth-enabled single-node replica set of `version` with a root user.
/// Fails (never skips) when that mongod is missing, saying how to install
/// it.
async fn auth_set(name: &str, version: MongodVersion) -> ReplicaSet {
    let options = SandboxOptions {
        version,
        auth: Some(SandboxAuth {
            user: "root".into(),
            password: format!("R00t-{name}-Secret"),
        }),
        ..SandboxOptions::default()
    };
    match ReplicaSet::start_opts(name, options).await {
        Ok(rs) => rs,
        Err(e) => panic!("{} {}", e, e.remedy()),
    }
}

/// Creates `user` in `admin` with these built-in roles (all on `admin`).
async fn create_user(root: &Client, user: &str, roles: &[&str]) {
    let roles: Vec<Bson> = roles
        .iter()
        .map(|r| Bson::Document(doc! { "role": *r, "db": "admin" }))
        .collect();
    root.database("admin")
        .run_command(doc! { "createUser": user, "pwd": USER_PW, "roles": roles })
        .await
        .unwrap_or_else(|e| panic!("create {user}: {e}"));
}

/// A URI that logs in to `rs` as `user`.
fn user_uri(rs: &ReplicaSet, user: &str) -> String {
    format!(
        "mongodb://{}:{}@{}/?replicaSet={}&authSource=admin",
        mongoferry::uri::encode_userinfo(user),
        mongoferry::uri::encode_userinfo(USER_PW),
        rs.host(),
        rs.name
    )
}

async fn user_client(rs: &ReplicaSet, user: &str) -> Client {
    Client::with_uri_str(user_uri(rs, user))
        .await
        .expect("user client")
}

/// The server's error code for a command, or `None` when it succeeds.
async fn refusal(c: &Client, db: &str, command: Document) -> Option<i32> {
    match c.database(db).run_command(command).await {
        Ok(_) => None,
        Err(e) => match *e.kind {
            mongodb::error::ErrorKind::Command(ref ce) => Some(ce.code),
            _ => panic!("not a server refusal: {e}"),
        },
    }
}

/// The privileges of a built-in role of `admin`, as this server defines it.
async fn role_privileges(c: &Client, role: &str) -> Vec<privileges::Privilege> {
    let r = c
        .database("admin")
        .run_command(doc! {
            "rolesInfo": { "role": role, "db": "admin" },
            "showPrivileges": true,
            "showBuiltinRoles": true,
        })
        .await
        .expect("rolesInfo");
    let roles = r.get_array("roles").expect("roles");
    let role = roles
        .first()
        .and_then(Bson::as_document)
        .unwrap_or_else(|| panic!("no built-in role {role}"));
    role.get_array("inheritedPrivileges")
        .expect("inheritedPrivileges")
        .iter()
        .filter_map(privileges::parse_privilege)
        .collect()
}

async fn roles_privileges(c: &Client, roles: &[&str]) -> Vec<privileges::Privilege> {
    let mut all = Vec::new();
    for role in roles {
        all.extend(role_privileges(c, role).await);
    }
    all
}

fn as_user(privileges: Vec<privileges::Privilege>, roles: &[&str]) -> Auth {
    Auth::Users {
        users: vec![(USER.into(), "admin".into())],
        roles: roles.iter().map(|r| format!("{r}@admin")).collect(),
        privileges,
    }
}

async fn uuid_of(c: &Client, db: &str, coll: &str) -> Bson {
    let specs: Vec<Document> = c
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1, "filter": { "name": coll } })
        .await
        .expect("listCollections")
        .try_collect()
        .await
        .expect("listCollections");
    specs[0]
        .get_document("info")
        .and_then(|i| {
            i.get("uuid")
                .cloned()
                .ok_or(bson::document::ValueAccessError::NotPresent)
        })
        .expect("a collection UUID")
}

/// On each server version: what the documented roles let a user do, and
/// whether the preflight's model (the needs, and the role it names for
/// each) agrees with the server's own role definitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_roles_grant_what_the_engine_needs_on_every_version() {
    for version in MongodVersion::ALL {
        let rs = auth_set("roles", version).await;
        let root = client(&rs).await;
        workload::seed(&root, &Namespace::new("shop", "orders"), 20, 200)
            .await
            .expect("seed");
        let uuid = uuid_of(&root, "shop", "orders").await;
        create_user(&root, USER, SOURCE_ROLES).await;
        create_user(&root, "reader", &["readAnyDatabase"]).await;
        let documented = user_client(&rs, USER).await;
        let reader = user_client(&rs, "reader").await;

        // What the servers say, command by command.
        let by_uuid =
            doc! { "find": uuid.clone(), "limit": 1, "readConcern": { "level": "majority" } };
        let oplog = doc! { "find": "oplog.rs", "limit": 1 };
        assert_eq!(
            refusal(&reader, "shop", by_uuid.clone()).await,
            Some(13),
            "{version}: readAnyDatabase alone may not find by UUID (useUUID)"
        );
        assert_eq!(
            refusal(&reader, "local", oplog.clone()).await,
            Some(13),
            "{version}: readAnyDatabase alone may not read local.oplog.rs"
        );
        for (db, command) in [
            ("shop", by_uuid),
            (
                "shop",
                doc! { "find": uuid.clone(), "showRecordId": true, "hint": { "$natural": 1 } },
            ),
            ("local", oplog),
            ("local", doc! { "collStats": "oplog.rs" }),
            (
                "local",
                doc! { "aggregate": "oplog.rs", "pipeline": [{ "$collStats": { "storageStats": {} } }], "cursor": {} },
            ),
            (
                "shop",
                doc! { "aggregate": "orders", "pipeline": [{ "$collStats": { "storageStats": {} } }], "cursor": {} },
            ),
            ("shop", doc! { "listCollections": 1 }),
            ("shop", doc! { "listIndexes": "orders" }),
            ("shop", doc! { "dbStats": 1 }),
            (
                "shop",
                doc! { "aggregate": "orders", "pipeline": [{ "$sample": { "size": 3 } }], "cursor": {} },
            ),
            ("shop", doc! { "count": "orders", "query": {} }),
            (
                "admin",
                doc! { "aggregate": 1, "pipeline": [{ "$changeStream": { "allChangesForCluster": true } }], "cursor": {} },
            ),
            ("admin", doc! { "listDatabases": 1, "nameOnly": true }),
            ("admin", doc! { "hello": 1 }),
            ("admin", doc! { "buildInfo": 1 }),
            ("admin", doc! { "replSetGetStatus": 1 }),
            ("admin", doc! { "replSetGetConfig": 1 }),
            ("admin", doc! { "getCmdLineOpts": 1 }),
            (
                "admin",
                doc! { "getParameter": 1, "featureCompatibilityVersion": 1 },
            ),
            (
                "admin",
                doc! { "connectionStatus": 1, "showPrivileges": true },
            ),
        ] {
            assert_eq!(
                refusal(&documented, db, command.clone()).await,
                None,
                "{version}: {SOURCE_ROLES:?} may run {command} on {db}"
            );
        }

        // The preflight's model against the server's role definitions.
        let needs = Needs {
            source_dbs: vec!["shop".into(), "crm".into()],
            block_source_writes: version == MongodVersion::V6_0,
            discard_stored: true,
            ..Needs::default()
        };
        let sharded = Needs {
            source_sharded: true,
            ..needs.clone()
        };
        let source = roles_privileges(&root, SOURCE_ROLES).await;
        let any_db = role_privileges(&root, "readAnyDatabase").await;
        for events in [EventSource::ChangeStream, EventSource::Oplog] {
            for needs in [&needs, &sharded] {
                for need in privileges::required_for(Role::Source, needs, events) {
                    // The role each finding names grants what it is named for.
                    assert_eq!(need.role_db, "admin", "{version} {events:?}: {need:?}");
                    let granted = role_privileges(&root, need.role).await;
                    let missing = privileges::missing(&granted, &need);
                    assert!(
                        missing.is_empty(),
                        "{version} {events:?}: {} does not grant {missing:?} on {}",
                        need.role,
                        need.target
                    );
                    // The documented roles meet every need, but write
                    // blocking's (backup).
                    if need.role != "backup" {
                        assert!(
                            privileges::missing(&source, &need).is_empty(),
                            "{version} {events:?}: {SOURCE_ROLES:?} lack {:?} on {}",
                            privileges::missing(&source, &need),
                            need.target
                        );
                    }
                }
            }
            let no_block = Needs {
                block_source_writes: false,
                ..needs.clone()
            };
            let f = privileges::assess(
                Role::Source,
                &as_user(source.clone(), SOURCE_ROLES),
                &no_block,
                events,
            );
            assert!(f.is_empty(), "{version} {events:?}: {f:#?}");

            // readAnyDatabase alone: refused up front on useUUID, the
            // role to grant named.
            let f = privileges::assess(
                Role::Source,
                &as_user(any_db.clone(), &["readAnyDatabase"]),
                &no_block,
                events,
            );
            let blocker = f
                .iter()
                .find(|f| f.severity == Severity::Blocker && f.title.contains("useUUID"))
                .unwrap_or_else(|| panic!("{version} {events:?}: no blocker on useUUID in {f:#?}"));
            assert_eq!(blocker.id, "source_privileges_missing");
            assert!(
                blocker.title.contains("useUUID on the cluster")
                    && blocker.remedy.contains("clusterMonitor"),
                "{version} {events:?}: {blocker:#?}"
            );
        }
        if version == MongodVersion::V6_0 {
            let dest = roles_privileges(&root, DESTINATION_ROLES).await;
            let f = privileges::assess(
                Role::Destination,
                &as_user(dest, DESTINATION_ROLES),
                &needs,
                EventSource::ChangeStream,
            );
            assert!(f.is_empty(), "{version} destination: {f:#?}");
        }
    }
}

/// Seeds a few collections (one with secondary indexes) in two databases.
async fn seed(src: &Client) -> Vec<Namespace> {
    let nss = vec![
        Namespace::new("shop", "orders"),
        Namespace::new("shop", "customers"),
        Namespace::new("crm", "notes"),
    ];
    seed_all(
        src,
        &[
            (nss[0].clone(), 3000, 300),
            (nss[1].clone(), 1500, 500),
            (nss[2].clone(), 600, 900),
        ],
    )
    .await;
    src.database("shop")
        .collection::<Document>("customers")
        .create_indexes(vec![
            IndexModel::builder()
                .keys(doc! { "address.city": 1, "score": -1 })
                .build(),
            IndexModel::builder()
                .keys(doc! { "tags": 1 })
                .options(IndexOptions::builder().name("tags_1".to_string()).build())
                .build(),
        ])
        .await
        .expect("create indexes");
    nss
}

/// A live migration between auth-enabled replica sets whose users hold
/// exactly the documented roles: the preflight finds nothing to say about
/// privileges, the copy and the sync run under a write load, and the
/// destination ends identical (compared as root).
async fn migrate_with_documented_roles(
    source_version: MongodVersion,
    choice: EventSourceChoice,
    expected: EventSource,
) {
    let (source, destination) = tokio::join!(
        auth_set("source", source_version),
        auth_set("destination", MongodVersion::V6_0)
    );
    let (src, dest) = (client(&source).await, client(&destination).await);
    create_user(&src, USER, SOURCE_ROLES).await;
    create_user(&dest, USER, DESTINATION_ROLES).await;
    let nss = seed(&src).await;
    let (s, d) = (user_uri(&source, USER), user_uri(&destination, USER));

    let report = check(
        &s,
        &d,
        CheckRequest {
            event_source: choice,
            ..CheckRequest::default()
        },
    )
    .await;
    assert_none(&report, PRIVILEGE_FINDINGS);
    assert!(!report.has_blockers(), "{:#?}", report.findings);

    let (stop, load) = start_load(&src, nss.clone(), 1_000_000, Some(300), 17);
    let mut config = SyncConfig::new(s, d);
    config.event_source = choice;
    // Small ranges, so that a collection is copied by several readers.
    config.tuning.partition_bytes = 256 * 1024;
    let (handle, run) = start_migration(config).await;
    let p = wait_for(&handle, "canCommit", Duration::from_secs(120), |p| {
        p.can_commit
    })
    .await;
    assert_eq!(p.event_source, Some(expected), "{p:#?}");
    assert!(p.collection_copy.copied_docs >= 5100, "{p:#?}");
    // Keep syncing under load for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(handle.progress().total_events_applied > 0);
    stop.cancel();
    let stats = load.await.expect("load task").expect("load");
    assert!(stats.total() > 100, "{stats:?}");
    let done = commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_eq!(done.documents_failed, 0, "{done:#?}");
    assert_same(&src, &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_stream_migration_runs_with_the_documented_roles() {
    migrate_with_documented_roles(
        MongodVersion::V6_0,
        EventSourceChoice::Auto,
        EventSource::ChangeStream,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oplog_migration_from_4_4_runs_with_the_documented_roles() {
    migrate_with_documented_roles(
        MongodVersion::V4_4,
        EventSourceChoice::Auto,
        EventSource::Oplog,
    )
    .await;
}

/// A source user with `readAnyDatabase` alone may follow the change stream
/// but not read collections by UUID: the preflight refuses it before
/// anything is written, naming `useUUID` and the roles that grant it; the
/// custom role its remedy offers is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_user_without_use_uuid_is_refused_before_the_copy() {
    let (source, destination) = tokio::join!(
        auth_set("source", MongodVersion::V6_0),
        auth_set("destination", MongodVersion::V6_0)
    );
    let (src, dest) = (client(&source).await, client(&destination).await);
    create_user(&src, USER, &["readAnyDatabase"]).await;
    create_user(&dest, USER, DESTINATION_ROLES).await;
    seed_all(&src, &[(Namespace::new("shop", "orders"), 800, 300)]).await;
    let config = SyncConfig::new(user_uri(&source, USER), user_uri(&destination, USER));

    let migration = Migration::connect(config.clone(), CancellationToken::new())
        .await
        .expect("connect");
    let err = tokio::time::timeout(Duration::from_secs(120), migration.run())
        .await
        .expect("the migration ends")
        .expect_err("readAnyDatabase alone cannot read collections by UUID");
    assert_eq!(err.code(), "preflight_blocked", "{err}");
    let mongoferry::Error::PreflightBlocked { report } = &err else {
        unreachable!("the code says preflight_blocked")
    };
    let blockers: Vec<_> = report.blockers().collect();
    assert_eq!(blockers.len(), 1, "{blockers:#?}");
    let b = blockers[0];
    assert_eq!(b.id, "source_privileges_missing");
    assert_eq!(
        b.title,
        "The source user ferry lacks useUUID on the cluster"
    );
    assert!(
        b.remedy
            .contains("{role: \"clusterMonitor\", db: \"admin\"}")
            && b.remedy.contains("useUUID on {cluster: true}"),
        "{}",
        b.remedy
    );
    assert!(
        non_system_dbs(&dest).await.is_empty(),
        "nothing may be written"
    );

    // The custom role the remedy offers is enough for a whole migration.
    src.database("admin")
        .run_command(doc! {
            "createRole": "uuidReader",
            "privileges": [{ "resource": { "cluster": true }, "actions": ["useUUID"] }],
            "roles": [],
        })
        .await
        .expect("createRole");
    src.database("admin")
        .run_command(doc! {
            "grantRolesToUser": USER,
            "roles": [{ "role": "uuidReader", "db": "admin" }],
        })
        .await
        .expect("grantRolesToUser");
    let (handle, run) = start_migration(config).await;
    commit_and_wait(&handle, run, Duration::from_secs(120)).await;
    assert_same(&src, &dest).await;
}

/// The roles this file grants are the ones the README lists.
#[test]
fn these_roles_are_the_ones_the_readme_documents() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("The users need these built-in roles")
        .expect("the README's paragraph on roles");
    let end = readme[start..]
        .find("\n\n")
        .map_or(readme.len(), |e| start + e);
    // Lines joined, as the paragraph reads.
    let paragraph = readme[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // "on the source ...; on the destination ... . On the source, ..."
    let (source, destination) = paragraph
        .split_once("on the destination")
        .expect("the destination's roles");
    let destination = destination.split(". ").next().unwrap_or_default();
    for role in SOURCE_ROLES {
        assert!(source.contains(&format!("`{role}`")), "{role}: {paragraph}");
    }
    for role in DESTINATION_ROLES {
        assert!(
            destination.contains(&format!("`{role}`")),
            "{role}: {paragraph}"
        );
    }
}
