//! The `mongoferry` command line given bad input: each mistake gets one
//! clear sentence on stderr and a non-zero exit, never a panic, a Debug
//! dump or a password, and nothing is written to the destination.

use mongoferry_test_support as support;

use std::time::Duration;

use mongoferry::Namespace;
use reqwest::Method;
use serde_json::json;

use support::*;

const SECRET: &str = "s3cretPW";

/// Marks of a Rust Debug dump or a panic.
const DEBUG_MARKS: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "Error {",
    "Error(",
    "ErrorKind",
    "kind:",
    "Kind:",
    "Some(",
    "None,",
    "{ ",
    "labels:",
    "source:",
];

/// What is wrong with a failure's output, if anything: it must be one
/// clear sentence (a single `error: ...` line on stderr), with no Debug
/// dump, no secret and nothing on stdout.
fn unclear_failure(what: &str, out: &CliOutput) -> Option<String> {
    let mut problems = Vec::new();
    if !matches!(out.code, Some(c) if c != 0) {
        problems.push("the exit code is not a non-zero code".to_string());
    }
    if out.all().contains(SECRET) {
        problems.push("the password leaked".to_string());
    }
    for mark in DEBUG_MARKS {
        if out.all().contains(mark) {
            problems.push(format!(
                "{mark:?} (a Debug dump or a panic) is in the output"
            ));
        }
    }
    if !out.stdout.trim().is_empty() {
        problems.push("stdout is not empty".to_string());
    }
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.len() != 1 {
        problems.push(format!("{} lines on stderr, not one", lines.len()));
    }
    if let Some(line) = lines.first() {
        if !line.starts_with("error: ") {
            problems.push("stderr does not start with 'error: '".to_string());
        }
        if line.len() > 600 {
            problems.push(format!(
                "a {}-character line is a dump, not a sentence",
                line.len()
            ));
        }
        if !line.trim_end().ends_with('.') {
            problems.push("the message does not end with a full stop".to_string());
        }
    }
    (!problems.is_empty()).then(|| format!("{what}: {}\n    {out:?}", problems.join("; ")))
}

fn assert_clear_failure(what: &str, out: &CliOutput) {
    if let Some(problem) = unclear_failure(what, out) {
        panic!("{problem}");
    }
}

async fn assert_destination_untouched(dest: &mongodb::Client, what: &str) {
    let dbs = non_system_dbs(dest).await;
    assert!(dbs.is_empty(), "{what} wrote to the destination: {dbs:?}");
}

fn sync_args(source: &str, destination: &str, port: u16, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "sync",
        "--source",
        source,
        "--destination",
        destination,
        "--port",
        &port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_one_clear_sentence_and_writes_nothing() {
    let (pair, src, dest) = clusters().await;
    seed_all(&src, &[(Namespace::new("shop", "orders"), 100, 200)]).await;
    let good_src = pair.source.uri();
    let good_dest = pair.destination.uri();
    let sp = pair.source.port;
    let dp = pair.destination.port;
    let t = Duration::from_secs(40);

    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "a source URI with a bad scheme",
            sync_args(&format!("mongo://u:{SECRET}@127.0.0.1:{sp}/"), &good_dest, api_port(), &[]),
        ),
        (
            "a source URI with a bad port",
            sync_args(
                &format!("mongodb://u:{SECRET}@127.0.0.1:notaport/"),
                &good_dest,
                api_port(),
                &[],
            ),
        ),
        (
            "a source URI with no host",
            sync_args(&format!("mongodb://u:{SECRET}@/"), &good_dest, api_port(), &[]),
        ),
        (
            "a source URI with a bad option value",
            sync_args(
                &format!("mongodb://u:{SECRET}@127.0.0.1:{sp}/?replicaSet=source&tls=maybe"),
                &good_dest,
                api_port(),
                &[],
            ),
        ),
        (
            "a destination URI with an unescaped '@' in the password",
            sync_args(
                &good_src,
                &format!("mongodb://u:{SECRET}@x@127.0.0.1:{dp}/"),
                api_port(),
                &[],
            ),
        ),
        (
            "an unreachable source",
            sync_args(
                &format!("mongodb://u:{SECRET}@127.0.0.1:1/?serverSelectionTimeoutMS=1000"),
                &good_dest,
                api_port(),
                &[],
            ),
        ),
        (
            "an unreachable destination",
            sync_args(
                &good_src,
                &format!("mongodb://u:{SECRET}@127.0.0.1:1/?serverSelectionTimeoutMS=1000"),
                api_port(),
                &[],
            ),
        ),
        (
            "wrong credentials for the destination",
            sync_args(
                &good_src,
                &format!(
                    "mongodb://u:{SECRET}@127.0.0.1:{dp}/?replicaSet=destination&serverSelectionTimeoutMS=3000"
                ),
                api_port(),
                &[],
            ),
        ),
        (
            "an include pattern with a space",
            sync_args(&good_src, &good_dest, api_port(), &["--include", "shop orders"]),
        ),
        (
            "an include pattern with '$'",
            sync_args(&good_src, &good_dest, api_port(), &["--include", "shop.$x"]),
        ),
        (
            "an empty include pattern",
            sync_args(&good_src, &good_dest, api_port(), &["--include", ""]),
        ),
        (
            "an exclude pattern with an empty collection part",
            sync_args(&good_src, &good_dest, api_port(), &["--exclude", "shop."]),
        ),
        (
            "the same cluster as source and destination",
            sync_args(&good_src, &good_src, api_port(), &[]),
        ),
        (
            "progress with no sync running",
            vec!["progress".into(), "--port".into(), api_port().to_string()],
        ),
        (
            "commit with no sync running",
            vec!["commit".into(), "--port".into(), api_port().to_string()],
        ),
        (
            "pause with no sync running",
            vec!["pause".into(), "--port".into(), api_port().to_string()],
        ),
    ];
    // Every case is run and checked before the test reports.
    let mut problems = Vec::new();
    for (what, args) in &cases {
        let out = run_cli(args, t).await;
        eprintln!("{what}: exit {:?}: {}", out.code, out.stderr.trim());
        problems.extend(unclear_failure(what, &out));
        let dbs = non_system_dbs(&dest).await;
        if !dbs.is_empty() {
            problems.push(format!("{what}: wrote to the destination: {dbs:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} bad inputs were not handled cleanly:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );

    // The API port is taken (as by another sync): fail before touching
    // either cluster.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let out = run_cli(&sync_args(&good_src, &good_dest, taken, &[]), t).await;
    assert_clear_failure("a taken API port", &out);
    assert!(out.stderr.contains(&taken.to_string()), "{out:?}");
    assert_destination_untouched(&dest, "a taken API port").await;
    drop(holder);

    // A destination that already holds an in-scope namespace.
    dest.database("shop")
        .create_collection("orders")
        .await
        .unwrap();
    let out = run_cli(&sync_args(&good_src, &good_dest, api_port(), &[]), t).await;
    assert_clear_failure("a destination that is not empty", &out);
    assert!(out.stderr.contains("shop.orders"), "{out:?}");
    assert_eq!(
        non_system_dbs(&dest).await,
        vec!["shop".to_string()],
        "nothing but the user's own database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commit_before_can_commit_and_a_second_sync_on_the_same_port_are_refused() {
    let (pair, src, dest) = clusters().await;
    seed_all(
        &src,
        &[
            (Namespace::new("big", "a"), 70_000, 300),
            (Namespace::new("big", "b"), 70_000, 300),
        ],
    )
    .await;
    let port = api_port();
    let port_s = port.to_string();
    let (source_uri, dest_uri) = (pair.source.uri(), pair.destination.uri());
    let mut sync = CliProcess::sync_pair(&pair, port, &["--copy-concurrency", "1"]);
    wait_api(
        &mut sync,
        port,
        "the copy to be under way",
        Duration::from_secs(60),
        |p| p["phase"] == "copying",
    )
    .await;

    // The API refuses, with a code and a sentence.
    let (code, reply) = api_post(port, "commit", serde_json::json!({})).await;
    assert_eq!(reply["success"], false, "{reply}");
    assert_eq!(code, 400, "{reply}");
    assert_eq!(reply["error"], "not_ready_to_commit", "{reply}");
    let description = reply["errorDescription"].as_str().unwrap_or_default();
    assert!(description.contains("copy"), "{reply}");
    // mongosync's runbooks send `curl -XPOST --data '{ }'`, which says
    // form data: the body is still read as JSON, and the answer is the
    // same refusal, not a plain-text 415.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (code, reply) = api_raw(port, Method::POST, "/api/v1/commit", &form, "{ }").await;
    assert_eq!(
        (code, &reply["error"]),
        (400, &json!("not_ready_to_commit")),
        "{reply}"
    );
    // Every other mistake is answered in the same JSON shape.
    let (code, reply) = api_raw(
        port,
        Method::POST,
        "/api/v1/commit",
        &[],
        "{blockSourceWrites",
    )
    .await;
    assert_eq!(
        (code, &reply["error"]),
        (400, &json!("invalid_request")),
        "{reply}"
    );
    assert_eq!(reply["success"], false, "{reply}");
    let (code, reply) = api_raw(port, Method::GET, "/api/v1/nothing", &[], "").await;
    assert_eq!(
        (code, &reply["error"]),
        (404, &json!("not_found")),
        "{reply}"
    );
    let (code, reply) = api_raw(port, Method::GET, "/api/v1/commit", &[], "").await;
    assert_eq!(
        (code, &reply["error"]),
        (405, &json!("method_not_allowed")),
        "{reply}"
    );
    // A web page cannot drive it: a foreign Host (DNS rebinding) or Origin
    // is refused before anything runs.
    let rebound = [("Host", "attacker.example:27182")];
    let (code, reply) = api_raw(port, Method::POST, "/api/v1/pause", &rebound, "{}").await;
    assert_eq!(
        (code, &reply["error"]),
        (403, &json!("forbidden")),
        "{reply}"
    );
    let page = [("Origin", "http://attacker.example")];
    let (code, reply) = api_raw(port, Method::POST, "/api/v1/pause", &page, "{}").await;
    assert_eq!(
        (code, &reply["error"]),
        (403, &json!("forbidden")),
        "{reply}"
    );
    let p = api_progress(port).await.expect("progress");
    assert_eq!(p["state"], "RUNNING", "a refused pause paused: {p:#}");

    // So does the CLI client.
    let out = run_cli(&["commit", "--port", &port_s], Duration::from_secs(30)).await;
    assert_clear_failure("commit before canCommit", &out);
    assert!(out.stderr.contains("cannot commit yet"), "{out:?}");
    // Both were refused during the copy (the phase never goes back).
    let p = api_progress(port).await.expect("progress");
    assert_eq!(p["phase"], "copying", "{p:#}");
    assert_eq!(p["state"], "RUNNING", "{p:#}");

    // A second sync of the same migration on the same port.
    let out = run_cli(
        &sync_args(&source_uri, &dest_uri, port, &["--copy-concurrency", "1"]),
        Duration::from_secs(30),
    )
    .await;
    assert_clear_failure("a second sync on the same port", &out);
    assert!(out.stderr.contains(&port_s), "{out:?}");
    sync.assert_running("the first sync to go on");

    // A second sync of the same migration on another port: the lease.
    let other = api_port();
    let out = run_cli(
        &sync_args(&source_uri, &dest_uri, other, &["--copy-concurrency", "1"]),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "a second process drove the same migration: {out:?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    sync.assert_running("the first sync to go on");

    // The first sync still commits.
    wait_api(&mut sync, port, "canCommit", Duration::from_secs(90), |p| {
        p["canCommit"] == true
    })
    .await;
    let out = run_cli(&["commit", "--port", &port_s], Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let status = sync.wait_exit(Duration::from_secs(60)).await;
    assert!(status.success(), "stderr:\n{}", sync.stderr());
    assert_same(&src, &dest).await;
}

/// `mongoferry bench` on a small data set: it starts its own replica
/// sets, measures every phase, and its JSON carries each figure and ratio
/// the README promises. Its targets are for a million documents and are
/// not judged here; that it runs, copies everything and verifies is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_end_to_end_on_a_small_data_set() {
    let out = run_cli(
        &[
            "bench",
            "--docs",
            "3000",
            "--lag-seconds",
            "2",
            "--write-rate",
            "200",
            "--json",
        ],
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bench --json prints JSON ({e}): {}", out.stdout));
    // The copy also carries the few documents of the lag phase's load
    // collections.
    assert!(
        report["copy"]["docs"].as_u64().unwrap_or(0) >= 3000,
        "{report:#}"
    );
    for phase in ["copy", "naive"] {
        assert!(
            report[phase]["docsPerSecond"].as_f64().unwrap_or(0.0) > 0.0,
            "{phase}: {report:#}"
        );
    }
    assert_eq!(report["ceiling"]["figure"]["docs"], 3000, "{report:#}");
    assert!(
        report["ratios"]["copyToNaive"].as_f64().is_some(),
        "{report:#}"
    );
    assert!(
        report["ratios"]["copyToCeiling"].as_f64().is_some(),
        "{report:#}"
    );
    assert_eq!(report["verification"]["identical"], true, "{report:#}");
    assert!(report["rssDuringCopy"].is_object(), "{report:#}");
    assert!(report["lag"].is_object(), "{report:#}");
    assert_eq!(report["lag"]["markersMissing"], 0, "{report:#}");
    let after = &report["verify"];
    assert_eq!(after["sourceDocs"], after["destinationDocs"], "{report:#}");
    assert_eq!(after["hashMatch"], true, "{report:#}");
    let targets = report["targets"].as_array().expect("targets");
    for name in [
        "copy/ceiling",
        "copy/naive",
        "peak RSS during copy",
        "lag p99 (end to end)",
    ] {
        assert!(
            targets.iter().any(|t| t["name"] == name),
            "no {name} target: {report:#}"
        );
    }
}
