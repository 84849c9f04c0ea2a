//! `mongoferry serve` driven as mongosync's runbooks drive mongosync,
//! through HTTP only: IDLE, refused start requests, a start with a
//! namespace filter, the second start refused, commit, COMMITTED, and a
//! reverse refused; a reversible start turned around by
//! `POST /api/v1/reverse`; and `mongoferry reverse` against a sync that
//! was not started `--reversible`. On real mongod: the tests fail, never
//! skip, when it is missing.

use mongoferry_test_support as support;

use std::time::Duration;

use bson::doc;
use mongoferry::Namespace;
use reqwest::Method;
use serde_json::json;

use support::serve::{api_up, assert_refused, assert_success, commit_over_http, wait_can_commit};
use support::tls::root_auth;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_runs_mongosyncs_runbook_over_http() {
    let (pair, src, dest) = clusters().await;
    seed_all(
        &src,
        &[
            (Namespace::new("shop", "orders"), 3_000, 200),
            (Namespace::new("shop", "customers"), 500, 200),
            (Namespace::new("logs", "events"), 1_000, 100),
        ],
    )
    .await;
    let logs = tempfile::tempdir().expect("temp dir");
    let log_dir = logs.path().to_string_lossy().to_string();
    let port = api_port();
    let mut serve = CliProcess::serve_pair(&pair, port, &["--log-dir", &log_dir]);

    // IDLE, in mongosync's shape, and every control refused until a start.
    api_up(&mut serve, port, Duration::from_secs(30)).await;
    let (code, reply) = api_raw(port, Method::GET, "/api/v1/progress", &[], "").await;
    assert_eq!(code, 200, "{reply:#}");
    assert_eq!(reply["progress"]["state"], "IDLE", "{reply:#}");
    assert_eq!(reply["progress"]["canCommit"], false, "{reply:#}");
    for action in ["pause", "resume", "commit", "reverse", "throttle"] {
        let body = match action {
            "throttle" => json!({ "load": "gentle" }),
            _ => json!({}),
        };
        assert_refused(
            api_post(port, action, body).await,
            400,
            "not_started",
            "POST /api/v1/start",
        );
    }
    let (code, _, metrics) = api_text(port, "/metrics").await.expect("/metrics answers");
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics.contains("mongoferry_state{state=\"IDLE\"} 1"),
        "{metrics}"
    );

    // Bad start requests: one sentence each, naming what is wrong, and
    // the server stays IDLE.
    for (body, naming) in [
        (
            json!({"source": "cluster0", "destination": "cluster1", "verification": {"enabled": true}}),
            "'verification'",
        ),
        (
            json!({"source": "cluster1", "destination": "cluster1"}),
            "both the source and the destination",
        ),
        (
            json!({"source": "cluster0", "destination": "cluster1",
                   "includeNamespaces": [{"collections": ["orders"]}]}),
            "Entry 1 of the start request's includeNamespaces has no \"database\"",
        ),
        (
            json!({"source": "cluster0", "destination": "cluster1", "buildIndexes": "never"}),
            "\"never\"",
        ),
    ] {
        assert_refused(
            api_post(port, "start", body).await,
            400,
            "invalid_request",
            naming,
        );
    }
    let (code, reply) = api_raw(port, Method::POST, "/api/v1/start", &[], "source=cluster0").await;
    assert_refused((code, reply), 400, "invalid_request", "not valid JSON");
    assert_eq!(api_progress(port).await.expect("progress")["state"], "IDLE");

    // A start the preflight check blocks (the other way round, onto the
    // cluster that holds the data) answers the report's sentence, writes
    // nothing, and leaves the server IDLE for the next start.
    let reversed = json!({"source": "cluster1", "destination": "cluster0"});
    assert_refused(
        api_post(port, "start", reversed).await,
        400,
        "preflight_blocked",
        "The destination already holds shop.orders",
    );
    assert_eq!(api_progress(port).await.expect("progress")["state"], "IDLE");
    let dbs = non_system_dbs(&src).await;
    assert!(!dbs.contains(&"__mongoferry".to_string()), "{dbs:?}");
    // The start, as a runbook sends it: only shop, less shop.customers.
    let start = json!({
        "source": "cluster0",
        "destination": "cluster1",
        "enableUserWriteBlocking": "destinationOnly",
        "includeNamespaces": [{"database": "shop"}],
        "excludeNamespaces": [{"database": "shop", "collections": ["customers"]}],
    });
    assert_success(api_post(port, "start", start.clone()).await, &serve);
    let running = api_progress(port).await.expect("progress");
    assert_ne!(running["state"], "IDLE", "{running:#}");
    // A second start is refused, whatever it asks for.
    assert_refused(
        api_post(port, "start", start).await,
        409,
        "already_started",
        "already started",
    );

    // Writes once the copy is done reach the destination through the
    // change stream, in scope only.
    let ready = wait_can_commit(&mut serve, port).await;
    let applied = ready["totalEventsApplied"].as_u64().unwrap_or_default();
    insert_into(
        &src,
        "shop",
        "orders",
        (0..10)
            .map(|i| doc! { "_id": format!("late-{i}"), "n": i })
            .collect(),
    )
    .await;
    insert_into(&src, "logs", "events", vec![doc! { "_id": "late", "n": 1 }]).await;
    wait_api(
        &mut serve,
        port,
        "the late writes",
        Duration::from_secs(60),
        |p| p["canCommit"] == true && p["totalEventsApplied"].as_u64() >= Some(applied + 10),
    )
    .await;
    let full = json!({ "verify": "full" });
    let done = commit_over_http(&mut serve, port, full, Duration::from_secs(90)).await;
    assert_eq!(done["canWrite"], true, "{done:#}");
    assert_eq!(done["verification"]["state"], "passed", "{done:#}");
    assert_eq!(done["verification"]["mode"], "full", "{done:#}");

    // Only what the filter names is on the destination.
    assert_eq!(
        count(&dest, "shop", "orders").await,
        count(&src, "shop", "orders").await
    );
    assert_eq!(count(&dest, "shop", "orders").await, 3_010);
    let dbs = non_system_dbs(&dest).await;
    assert!(!dbs.contains(&"logs".to_string()), "{dbs:?}");
    let shop = dest
        .database("shop")
        .list_collection_names()
        .await
        .expect("listCollections");
    assert_eq!(shop, ["orders"], "only shop.orders is copied");

    // Not started reversible: reverse is refused, and the server goes on
    // serving the committed migration.
    assert_refused(
        api_post(port, "reverse", json!({})).await,
        400,
        "not_reversible",
        "cannot be reversed",
    );
    let id = done["migrationId"].as_str().expect("a migration id");
    let log = logs.path().join(format!("{id}.log"));
    let text = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("no log at {}: {e}", log.display()));
    assert!(text.contains("preflight report"), "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    serve.assert_running("Ctrl-C after COMMITTED");
    assert_eq!(
        api_progress(port).await.expect("progress")["state"],
        "COMMITTED"
    );

    // SIGTERM ends it, committed: exit 0.
    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(Duration::from_secs(30)).await;
    let stderr = serve.stderr();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("COMMITTED:"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reverse_is_refused_for_a_sync_not_started_reversible() {
    let (pair, src, _dest) = clusters().await;
    seed_all(&src, &[(Namespace::new("shop", "orders"), 1_000, 100)]).await;
    let port = api_port();
    let mut sync = CliProcess::sync_pair(&pair, port, &["--commit-when-ready", "--linger", "60"]);
    wait_api(&mut sync, port, "COMMITTED", Duration::from_secs(90), |p| {
        p["state"] == "COMMITTED"
    })
    .await;
    let out = run_cli(
        &["reverse", "--port", &port.to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let line = out.stderr.trim_end();
    assert!(
        line.starts_with("error: This migration cannot be reversed")
            && line.contains("--reversible")
            && line.ends_with('.')
            && !line.contains('\n'),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    // Ctrl-C leaves the linger; the sync had committed: exit 0.
    sync.signal(libc::SIGINT);
    let status = sync.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}; stderr:\n{}", sync.stderr());
}

/// mongosync's reversible runbook through `serve`: a start with
/// `reversible` and dual write blocking, the commit, `POST /api/v1/reverse`
/// while the applications write to the new cluster, a stop and a restart
/// with the same start request, the reverse's commit: the old cluster
/// equals the new. Both clusters have access control, as a way back needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_keeps_a_way_back_for_a_reversible_start() {
    let old_rs = support::tls::replica_set("srvold", None, Some(root_auth("0ld-pw"))).await;
    let new_rs = support::tls::replica_set("srvnew", None, Some(root_auth("n3w-pw"))).await;
    let old = client(&old_rs).await;
    seed_all(&old, &[(Namespace::new("shop", "orders"), 1_000, 200)]).await;
    let port = api_port();
    let mut serve = CliProcess::serve(&old_rs.uri(), &new_rs.uri(), port, &[]);
    api_up(&mut serve, port, Duration::from_secs(30)).await;

    let start = json!({"source": "cluster0", "destination": "cluster1", "reversible": true});
    let mut unblocked = start.clone();
    unblocked["enableUserWriteBlocking"] = json!("none");
    assert_refused(
        api_post(port, "start", unblocked).await,
        400,
        "invalid_request",
        "reversible",
    );
    let mut start = start;
    start["enableUserWriteBlocking"] = json!("sourceAndDestination");
    assert_success(api_post(port, "start", start.clone()).await, &serve);
    wait_can_commit(&mut serve, port).await;
    let forward = commit_over_http(&mut serve, port, json!({}), Duration::from_secs(90)).await;
    let forward_id = forward["migrationId"].as_str().expect("an id").to_string();
    assert_eq!(forward["reversible"], true, "{forward:#}");
    let (cluster0, cluster1) = (
        format!("cluster0: {}", old_rs.host()),
        format!("cluster1: {}", new_rs.host()),
    );
    assert_eq!(
        forward["directionMapping"],
        json!({"Source": cluster0, "Destination": cluster1}),
        "{forward:#}"
    );
    // It waits there, and says how to go back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    serve.assert_running("the reverse");
    let stderr = serve.stderr();
    let hint = format!("'mongoferry reverse --port {port}' (or POST /api/v1/reverse)");
    assert!(stderr.contains(&hint), "{stderr}");

    assert_success(api_post(port, "reverse", json!({})).await, &serve);
    let reversing = wait_api(
        &mut serve,
        port,
        "the reverse to run",
        Duration::from_secs(90),
        |p| p["state"] == "RUNNING" && p["migrationId"] != forward_id.as_str(),
    )
    .await;
    let back_mapping = json!({"Source": cluster1, "Destination": cluster0});
    let said = format!("Reversed: syncing from {cluster1} to {cluster0}.");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !serve.stderr().contains(&said) {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not say which way the reverse runs ({said}):\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reversing["directionMapping"], back_mapping, "{reversing:#}");

    // The applications write to the new cluster meanwhile.
    let new = client(&new_rs).await;
    insert_into(
        &new,
        "shop",
        "orders",
        (0..50)
            .map(|i| doc! { "_id": format!("after-{i}") })
            .collect(),
    )
    .await;

    // SIGTERM stops the reverse at a safe point: 130, and how to resume.
    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(Duration::from_secs(60)).await;
    let stderr = serve.stderr();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr
            .contains("Start 'mongoferry serve' again and send the same start request to resume."),
        "{stderr}"
    );

    // As it says: the same start request resumes the reverse, which the
    // runbook then commits like any sync, and the old cluster is current.
    let mut serve = CliProcess::serve(&old_rs.uri(), &new_rs.uri(), port, &[]);
    api_up(&mut serve, port, Duration::from_secs(30)).await;
    assert_success(api_post(port, "start", start).await, &serve);
    let resumed = wait_can_commit(&mut serve, port).await;
    assert_ne!(resumed["migrationId"], forward_id.as_str(), "{resumed:#}");
    assert_eq!(resumed["directionMapping"], back_mapping, "{resumed:#}");
    assert_eq!(resumed["reversible"], true, "{resumed:#}");
    let back = commit_over_http(&mut serve, port, json!({}), Duration::from_secs(90)).await;
    assert_eq!(back["state"], "COMMITTED", "{back:#}");
    assert_same(&new, &old).await;
    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());
}

/// Each cluster comes from --clusterN, --clusterN-profile or
/// MONGOFERRY_CLUSTERN; a missing one, or a profile that is not saved, is
/// one line naming the flag, before anything connects.
#[tokio::test]
async fn serve_says_which_cluster_it_lacks() {
    let port = api_port().to_string();
    let out = run_cli(
        &[
            "serve",
            "--cluster0",
            "mongodb://127.0.0.1:1",
            "--port",
            &port,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr.trim_end(),
        "error: give cluster1 as --cluster1 URI, --cluster1-profile NAME or MONGOFERRY_CLUSTER1.",
        "{out:?}"
    );

    let config = tempfile::tempdir().expect("config dir");
    let dir = config.path().to_string_lossy().to_string();
    let out = support::tls::run_cli_env(
        &[
            "serve",
            "--cluster0-profile",
            "nowhere",
            "--cluster1",
            "mongodb://127.0.0.1:1",
            "--port",
            &port,
        ],
        &[("MONGOFERRY_CONFIG_DIR", &dir)],
        None,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let line = out.stderr.trim_end();
    assert!(
        line.starts_with("error: --cluster0-profile: No connection profile is named 'nowhere'.")
            && !line.contains('\n'),
        "{out:?}"
    );
}
