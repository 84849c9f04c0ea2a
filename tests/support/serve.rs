//! Helpers for `mongoferry serve` and its start request: the server as a
//! child process, and what every refusal of the control API must be.

use std::time::Duration;

use mongoferry::sandbox::Pair;
use serde_json::Value;

use super::{api_post, api_progress, wait_api, CliProcess};

impl CliProcess {
    /// `mongoferry serve --cluster0 C0 --cluster1 C1 --port P <extra>`.
    pub fn serve(cluster0: &str, cluster1: &str, port: u16, extra: &[&str]) -> CliProcess {
        let port = port.to_string();
        let mut args = vec![
            "serve",
            "--cluster0",
            cluster0,
            "--cluster1",
            cluster1,
            "--port",
            &port,
        ];
        args.extend_from_slice(extra);
        CliProcess::spawn(&args)
    }

    /// `mongoferry serve` with a sandbox pair's source as cluster0 and its
    /// destination as cluster1.
    pub fn serve_pair(pair: &Pair, port: u16, extra: &[&str]) -> CliProcess {
        CliProcess::serve(&pair.source.uri(), &pair.destination.uri(), port, extra)
    }
}

/// Waits for the control API of `process` to answer; its progress.
pub async fn api_up(process: &mut CliProcess, port: u16, timeout: Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        process.assert_running("the control API to answer");
        if let Some(p) = api_progress(port).await {
            return p;
        }
        assert!(
            start.elapsed() < timeout,
            "the control API did not answer within {timeout:?}; stderr:\n{}",
            process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails unless a reply is the API's refusal: this HTTP status, `success`
/// false, this error code, and a description that is one line of whole
/// sentences holding `naming`. Returns the description.
pub fn assert_refused(
    (status, reply): (u16, Value),
    expected_status: u16,
    code: &str,
    naming: &str,
) -> String {
    assert_eq!(status, expected_status, "{reply:#}");
    assert_eq!(reply["success"], false, "{reply:#}");
    assert_eq!(reply["error"], code, "{reply:#}");
    let text = reply["errorDescription"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorDescription: {reply:#}"))
        .to_string();
    assert!(text.contains(naming), "no {naming:?} in: {text}");
    assert!(
        !text.contains('\n') && text.ends_with('.') && text.starts_with(char::is_uppercase),
        "not one line of sentences: {text}"
    );
    text
}

/// Fails unless a reply is the API's plain success, `{"success": true}`,
/// with the process's stderr to say why.
pub fn assert_success((status, reply): (u16, Value), process: &CliProcess) {
    assert!(
        status == 200 && reply == serde_json::json!({ "success": true }),
        "{status} {reply:#}\nstderr:\n{}",
        process.stderr()
    );
}

/// `POST /api/v1/commit` with `body`, then waits for COMMITTED; the
/// progress then.
pub async fn commit_over_http(
    process: &mut CliProcess,
    port: u16,
    body: Value,
    timeout: Duration,
) -> Value {
    assert_success(api_post(port, "commit", body).await, process);
    wait_api(process, port, "COMMITTED", timeout, |p| {
        p["state"] == "COMMITTED"
    })
    .await
}

/// Waits for `canCommit` (90 s at most); the progress then.
pub async fn wait_can_commit(process: &mut CliProcess, port: u16) -> Value {
    let timeout = Duration::from_secs(90);
    wait_api(process, port, "canCommit", timeout, |p| {
        p["canCommit"] == true
    })
    .await
}
