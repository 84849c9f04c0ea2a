//! Authentication on a real `--auth` replica set (keyFile, SCRAM users):
//! the right password, a wrong one, SCRAM-SHA-1 and SCRAM-SHA-256, a user
//! without privileges, no credentials, and the other classified failures
//! (replica set name, refused, DNS), through the engine's `ping`,
//! `Cluster::connect` and the `mongoferry ping` command, whose output never
//! carries a password.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::doc;
use mongoferry::cluster::Cluster;
use mongoferry::ping::{ping, PingOptions};
use mongoferry::Role;
use support::tls::*;

const ROOT_PW: &str = "R00t-auth-Secret";
const READER_PW: &str = "Reader-Pa55:w/rd";
const WRONG_PW: &str = "Wr0ng-Guess-77";
const NOBODY_PW: &str = "Nobody-Pa55";

fn options() -> PingOptions {
    PingOptions {
        timeout: Duration::from_secs(5),
    }
}

fn user_uri(port: u16, user: &str, password: &str, extra: &str) -> String {
    format!(
        "mongodb://{}:{}@127.0.0.1:{port}/?replicaSet=authrs&authSource=admin&serverSelectionTimeoutMS=3000{extra}",
        mongoferry::uri::encode_userinfo(user),
        mongoferry::uri::encode_userinfo(password)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logins_are_checked_and_failures_classified() {
    let rs = replica_set("authrs", None, Some(root_auth(ROOT_PW))).await;
    let port = rs.port;
    let admin = rs.client().await.expect("root client").database("admin");
    admin
        .run_command(doc! {
            "createUser": "reader",
            "pwd": READER_PW,
            "roles": [
                { "role": "clusterMonitor", "db": "admin" },
                { "role": "readAnyDatabase", "db": "admin" },
            ],
            "mechanisms": ["SCRAM-SHA-1", "SCRAM-SHA-256"],
        })
        .await
        .expect("create reader");
    admin
        .run_command(doc! { "createUser": "nobody", "pwd": NOBODY_PW, "roles": [] })
        .await
        .expect("create nobody");

    // Root, through the sandbox's own URI.
    let r = ping(Role::Source, &rs.uri(), &options()).await;
    assert!(r.ok, "{r:#?}");
    let auth = r.authentication.as_ref().expect("auth");
    assert_eq!(auth.users, ["root@admin"]);
    assert_eq!(auth.roles, ["root@admin"]);
    assert!(!r.uri.contains(ROOT_PW));

    // The right password, with each SCRAM mechanism.
    for mechanism in [
        "",
        "&authMechanism=SCRAM-SHA-256",
        "&authMechanism=SCRAM-SHA-1",
    ] {
        let uri = user_uri(port, "reader", READER_PW, mechanism);
        let r = ping(Role::Destination, &uri, &options()).await;
        assert!(r.ok, "{mechanism}: {r:#?}");
        assert_eq!(r.authentication.as_ref().unwrap().users, ["reader@admin"]);
        assert_eq!(r.feature_compatibility_version.as_deref(), Some("6.0"));
        let t = r.topology.as_ref().unwrap();
        assert_eq!(
            t.members[0].state.as_deref(),
            Some("PRIMARY"),
            "clusterMonitor reads states"
        );
        Cluster::connect(Role::Destination, &uri)
            .await
            .expect("the engine connects");
    }

    // A wrong password: authentication_failed, and the password nowhere.
    let wrong = user_uri(port, "reader", WRONG_PW, "");
    let r = ping(Role::Source, &wrong, &options()).await;
    assert!(!r.ok);
    assert!(r.reachable);
    let e = r.error.as_ref().expect("error");
    assert_eq!(e.code, "authentication_failed", "{e:#?}");
    let shown = serde_json::to_string(&r).expect("JSON");
    assert!(!shown.contains(WRONG_PW), "{shown}");
    match Cluster::connect(Role::Source, &wrong).await {
        Ok(_) => panic!("a wrong password must not connect"),
        Err(e) => {
            assert_eq!(e.code(), "authentication_failed");
            assert!(!e.to_string().contains(WRONG_PW));
        }
    }

    // A user without privileges logs in, but may not read what a
    // migration needs: not_authorized, naming the user and the action.
    let r = ping(
        Role::Source,
        &user_uri(port, "nobody", NOBODY_PW, ""),
        &options(),
    )
    .await;
    assert!(!r.ok && r.reachable, "{r:#?}");
    assert_eq!(r.authentication.as_ref().unwrap().users, ["nobody@admin"]);
    let e = r.error.as_ref().expect("error");
    assert_eq!(e.code, "not_authorized", "{e:#?}");
    assert!(e.message.contains("nobody@admin"), "{}", e.message);
    assert!(
        e.message.contains("feature compatibility version"),
        "{}",
        e.message
    );
    assert!(e.remedy.contains("clusterMonitor"), "{}", e.remedy);
    assert_eq!(
        r.server_version.as_deref(),
        Some("6.0.5"),
        "what it may read is reported"
    );
    // Without replSetGetStatus, members still come from hello.
    let t = r.topology.as_ref().expect("topology");
    assert_eq!(t.members[0].host, format!("127.0.0.1:{port}"));

    // No credentials at all on an --auth set: not authorized either.
    let anonymous = format!("mongodb://127.0.0.1:{port}/?replicaSet=authrs");
    let r = ping(Role::Source, &anonymous, &options()).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.code.as_str()),
        Some("not_authorized"),
        "{r:#?}"
    );
    assert!(r.authentication.as_ref().unwrap().users.is_empty());

    // The replica set's name, a closed port and an unknown host.
    let wrong_set =
        user_uri(port, "reader", READER_PW, "").replace("replicaSet=authrs", "replicaSet=other");
    let r = ping(Role::Source, &wrong_set, &options()).await;
    let e = r.error.as_ref().expect("error");
    assert_eq!(e.code, "replica_set_name_mismatch", "{e:#?}");
    assert!(
        e.message.contains("authrs") && e.message.contains("other"),
        "{}",
        e.message
    );
    match Cluster::connect(Role::Source, &wrong_set).await {
        Ok(_) => panic!("a wrong replica set name must not connect"),
        Err(e) => assert_eq!(e.code(), "replica_set_name_mismatch"),
    }
    let refused = format!("mongodb://u:{WRONG_PW}@127.0.0.1:1/?serverSelectionTimeoutMS=2000");
    let r = ping(Role::Source, &refused, &options()).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.code.as_str()),
        Some("connection_refused")
    );
    assert!(!r.reachable);
    let dns = "mongodb://no-such-host.invalid:27017/?serverSelectionTimeoutMS=2000";
    let r = ping(Role::Source, dns, &options()).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.code.as_str()),
        Some("dns_failure"),
        "{r:#?}"
    );
    assert!(!r.reachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ping_command_reports_for_people_and_as_json_without_passwords() {
    let rs = replica_set("authrs", None, Some(root_auth(ROOT_PW))).await;
    let t = Duration::from_secs(60);

    let out = run_cli_env(&["ping", "--source", &rs.uri(), "--json"], &[], None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.all().contains(ROOT_PW), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    let s = &v["source"];
    assert_eq!(s["ok"], true);
    assert_eq!(s["reachable"], true);
    assert_eq!(s["serverVersion"], "6.0.5");
    assert_eq!(s["featureCompatibilityVersion"], "6.0");
    assert_eq!(s["topology"]["kind"], "replicaSet");
    assert_eq!(s["topology"]["setName"], "authrs");
    assert_eq!(s["authentication"]["users"][0], "root@admin");
    assert_eq!(s["tls"]["enabled"], false);
    assert!(s["roundTripMs"].as_f64().is_some_and(|ms| ms > 0.0), "{s}");
    assert!(s["uri"].as_str().unwrap().contains("root:****@"), "{s}");

    let out = run_cli_env(&["ping", "--destination", &rs.uri()], &[], None, t).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    for expected in [
        "Destination mongodb://root:****@127.0.0.1",
        "replica set 'authrs'",
        "(PRIMARY)",
        "MongoDB 6.0.5, feature compatibility 6.0",
        "root@admin (roles: root@admin)",
        "round trip",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }
    assert!(!out.all().contains(ROOT_PW));

    // A wrong password: exit 1, classified, and the password in neither
    // form of the output (nor in the environment variable's echo).
    let wrong = user_uri(rs.port, "root", WRONG_PW, "");
    let out = run_cli_env(&["ping", "--source", &wrong, "--json"], &[], None, t).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!out.all().contains(WRONG_PW), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["source"]["error"]["code"], "authentication_failed");
    let out = run_cli_env(&["ping"], &[("MONGOFERRY_SOURCE", wrong.as_str())], None, t).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(!out.all().contains(WRONG_PW), "{out:?}");
    assert!(
        out.stdout.contains("refused the credentials"),
        "{}",
        out.stdout
    );

    // Nothing to test is bad input.
    let out = run_cli_env(&["ping"], &[], None, t).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.starts_with("error: nothing to test"), "{out:?}");
}
