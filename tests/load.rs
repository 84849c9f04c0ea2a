//! Live load control from the outside: `mongoferry sync --load` and the
//! adaptive mode's limits, `mongoferry throttle` and `POST
//! /api/v1/throttle`, on a real `mongoferry sync` process. The level set
//! live survives kill -9; bad levels and limits are refused in one
//! sentence and change nothing; a limit left out is kept, `off` clears it.

use mongoferry_test_support as support;

use std::time::Duration;

use mongoferry::Namespace;
use serde_json::{json, Value};

use support::*;

const T: Duration = Duration::from_secs(30);

fn copied(p: &Value) -> u64 {
    p["collectionCopy"]["estimatedCopiedBytes"]
        .as_u64()
        .unwrap_or(0)
}

/// The load setting of a progress report: level and both limits.
fn setting(p: &Value) -> Value {
    let l = &p["load"];
    json!([
        l["level"],
        l["maxSourceLatencyIncreasePercent"],
        l["maxSecondaryLagSeconds"]
    ])
}

async fn progress(port: u16) -> Value {
    api_progress(port).await.expect("the control API answers")
}

/// `mongoferry throttle <args> --port <port>`, which must succeed; its
/// stdout.
async fn throttle(port: u16, args: &[&str]) -> String {
    let mut all = vec!["throttle".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["--port".to_string(), port.to_string()]);
    let out = run_cli(&all, T).await;
    assert_eq!(out.code, Some(0), "mongoferry {all:?}: {out:?}");
    assert!(out.stderr.trim().is_empty(), "mongoferry {all:?}: {out:?}");
    out.stdout
}

/// A refusal of bad input on the command line: exit 2, nothing on stdout,
/// and one line on stderr, `error: ...`, that names `naming` and ends a
/// sentence.
fn assert_refused(what: &str, out: &CliOutput, naming: &str) {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let clear = out.code == Some(2)
        && out.stdout.trim().is_empty()
        && lines.len() == 1
        && lines[0].starts_with("error: ")
        && lines[0].contains(naming)
        && lines[0].trim_end().ends_with('.')
        && lines[0].len() < 400
        && !out.all().contains("panicked");
    assert!(
        clear,
        "{what}: expected exit 2 and one sentence naming {naming}: {out:?}"
    );
}

/// A refusal by the API: 400, the error code, and one sentence (with its
/// remedy) that names `naming`.
fn assert_api_refused(what: &str, status: u16, reply: &Value, code: &str, naming: &str) {
    let description = reply["errorDescription"].as_str().unwrap_or("");
    let clear = status == 400
        && reply["success"] == false
        && reply["error"] == code
        && description.contains(naming)
        && !description.contains('\n')
        && description.ends_with('.')
        && description.len() < 400;
    assert!(
        clear,
        "{what}: expected 400 {code} naming {naming}, got {status}: {reply:#}"
    );
}

/// The level given with `mongoferry throttle` mid-copy is the one a
/// resumed sync holds to after kill -9, though its command gives none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_level_set_live_survives_kill_9() {
    let (pair, src, dest) = clusters().await;
    // ~100 MB: at gentle (5 MiB/s) the copy lasts about 20 s.
    seed_all(&src, &[(Namespace::new("shop", "orders"), 100_000, 1000)]).await;

    let port = api_port();
    let port_s = port.to_string();
    let mut first = CliProcess::sync_pair(&pair, port, &["--load", "gentle"]);
    let p = wait_api(
        &mut first,
        port,
        "the copy to be under way",
        Duration::from_secs(60),
        |p| p["phase"] == "copying" && copied(p) > 0,
    )
    .await;
    assert_eq!(p["load"]["level"], "gentle", "{p:#}");
    assert_eq!(p["load"]["readers"], 1, "{p:#}");

    let out = throttle(port, &["normal"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "Load level normal: the copy reads 2 ranges at a time, at most 20 MiB/s.",
            "No limit on the source's impact: the copy holds to the level alone.",
        ],
        "{out}"
    );
    let p = progress(port).await;
    assert_eq!(p["load"]["level"], "normal", "{p:#}");
    assert_eq!(
        p["phase"], "copying",
        "the copy outran the test; seed more: {p:#}"
    );
    first.kill9();

    // The same command without --load: the stored level, not the default.
    let mut second = CliProcess::sync_pair(&pair, port, &[]);
    let p = wait_api(
        &mut second,
        port,
        "the resumed sync to report its load",
        Duration::from_secs(60),
        |p| p["load"].is_object(),
    )
    .await;
    assert_eq!(
        setting(&p),
        json!(["normal", null, null]),
        "the resumed sync holds to the level set before the kill: {p:#}"
    );
    assert_eq!(p["load"]["readers"], 2, "{p:#}");

    let out = throttle(port, &["full"]).await;
    assert!(out.starts_with("Load level full: the copy reads "), "{out}");
    wait_api(
        &mut second,
        port,
        "canCommit",
        Duration::from_secs(120),
        |p| p["canCommit"] == true,
    )
    .await;
    let out = run_cli(&["commit", "--port", &port_s], T).await;
    assert_eq!(out.code, Some(0), "mongoferry commit: {out:?}");
    let status = second.wait_exit(Duration::from_secs(120)).await;
    assert!(status.success(), "stderr:\n{}", second.stderr());
    assert_same(&src, &dest).await;
}

/// Bad levels and limits are refused in one sentence, by the API and the
/// CLI, and change nothing; limits given at the start are reported; a
/// limit left out of a change is kept, and `off` (or `null`) clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_levels_are_refused_and_limits_are_kept_until_cleared() {
    let (pair, src, dest) = clusters().await;
    seed_all(&src, &[(Namespace::new("shop", "orders"), 2000, 300)]).await;

    // Refused before anything starts: a bad --load and a bad limit.
    let out = run_cli(
        &[
            "sync",
            "--source",
            &pair.source.uri(),
            "--destination",
            &pair.destination.uri(),
            "--port",
            &api_port().to_string(),
            "--load",
            "fast",
        ],
        T,
    )
    .await;
    assert_refused("sync --load fast", &out, "'fast'");
    let out = run_cli(
        &[
            "sync",
            "--source",
            &pair.source.uri(),
            "--destination",
            &pair.destination.uri(),
            "--max-source-latency-increase",
            "lots",
        ],
        T,
    )
    .await;
    assert_refused("sync --max-source-latency-increase lots", &out, "'lots'");
    assert!(
        non_system_dbs(&dest).await.is_empty(),
        "a refused sync wrote to the destination"
    );
    // No sync is listening yet.
    let idle = api_port().to_string();
    let out = run_cli(&["throttle", "normal", "--port", &idle], T).await;
    assert_refused("throttle with no sync running", &out, &idle);

    let port = api_port();
    let port_s = port.to_string();
    let mut sync = CliProcess::sync_pair(
        &pair,
        port,
        &["--load", "normal", "--max-secondary-lag", "15s"],
    );
    let p = wait_api(&mut sync, port, "canCommit", Duration::from_secs(60), |p| {
        p["canCommit"] == true
    })
    .await;
    assert_eq!(setting(&p), json!(["normal", null, 15.0]), "{p:#}");

    // The API refuses, and the setting stays as it was.
    let before = setting(&p);
    for (body, code, naming) in [
        (json!({"load": "fast"}), "invalid_load_level", "'fast'"),
        (json!({"load": 0}), "invalid_load_level", "'0'"),
        (
            json!({"maxSourceLatencyIncreasePercent": -5}),
            "invalid_load_limit",
            "-5",
        ),
        (
            json!({"load": "gentle", "maxSecondaryLagSeconds": 0}),
            "invalid_load_limit",
            "'0",
        ),
        (json!({}), "invalid_request", "no load level"),
        (json!({"level": "gentle"}), "invalid_request", "'level'"),
    ] {
        let (status, reply) = api_post(port, "throttle", body.clone()).await;
        assert_api_refused(&body.to_string(), status, &reply, code, naming);
        let p = progress(port).await;
        assert_eq!(setting(&p), before, "{body} changed the load: {p:#}");
    }
    // The CLI refuses before it sends anything.
    for (args, naming) in [
        (vec!["throttle", "fast"], "'fast'"),
        (vec!["throttle"], "throttle needs a load level or a limit"),
        (vec!["throttle", "--max-secondary-lag", "soon"], "'soon'"),
        (
            vec!["throttle", "--max-source-latency-increase", "-5"],
            "'-5%'",
        ),
    ] {
        let mut all: Vec<&str> = args.clone();
        all.extend(["--port", &port_s]);
        let out = run_cli(&all, T).await;
        assert_refused(&format!("mongoferry {args:?}"), &out, naming);
        let p = progress(port).await;
        assert_eq!(setting(&p), before, "{args:?} changed the load: {p:#}");
    }

    // A limit alone keeps the level and the other limit.
    let out = throttle(port, &["--max-source-latency-increase", "30%"]).await;
    assert!(
        out.contains("Limits: the source's reads at most 30% slower than idle; its secondaries at most 15 s behind."),
        "{out}"
    );
    assert_eq!(
        setting(&progress(port).await),
        json!(["normal", 30.0, 15.0])
    );
    // A level alone keeps both limits.
    let out = throttle(port, &["gentle"]).await;
    assert!(out.starts_with("Load level gentle: "), "{out}");
    assert_eq!(
        setting(&progress(port).await),
        json!(["gentle", 30.0, 15.0])
    );
    // `null` clears a limit through the API; a number is a rate in MiB/s.
    let (status, reply) = api_post(
        port,
        "throttle",
        json!({"load": 12.5, "maxSecondaryLagSeconds": null}),
    )
    .await;
    assert_eq!(status, 200, "{reply:#}");
    assert_eq!(reply["success"], true, "{reply:#}");
    assert_eq!(setting(&reply), json!([12.5, 30.0, null]), "{reply:#}");
    assert_eq!(setting(&progress(port).await), json!([12.5, 30.0, null]));
    // `off` clears it through the CLI.
    let out = throttle(port, &["--max-source-latency-increase", "off"]).await;
    assert!(out.contains("No limit on the source's impact"), "{out}");
    assert_eq!(setting(&progress(port).await), json!([12.5, null, null]));

    let out = run_cli(&["commit", "--port", &port_s], T).await;
    assert_eq!(out.code, Some(0), "mongoferry commit: {out:?}");
    let status = sync.wait_exit(Duration::from_secs(120)).await;
    assert!(status.success(), "stderr:\n{}", sync.stderr());
    assert_same(&src, &dest).await;
}
