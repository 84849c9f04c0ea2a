//! The local control API, in mongosync's shape so its runbooks carry over:
//! `GET /api/v1/progress`, `POST /api/v1/{pause,resume,commit}`; and
//! Mongoferry's own `POST /api/v1/throttle`, which changes the load level
//! and the limits on the source's impact live (body
//! `{"load": "gentle", "maxSourceLatencyIncreasePercent": 20,
//! "maxSecondaryLagSeconds": null}`: a field left out keeps its value,
//! `null` removes a limit).
//!
//! It listens on 127.0.0.1 only, and refuses peers that are not loopback
//! and requests whose `Host` or `Origin` is not this server (which stops a
//! web page from driving it through DNS rebinding).
//!
//! `GET /metrics` serves the same progress in the Prometheus text format
//! (see [`metrics`]), behind the same guard.
//!
//! Every other answer is JSON, errors included (a refused `/metrics`
//! too): a body is read as JSON whatever its `Content-Type` (mongosync's
//! runbooks send `curl --data '{ }'`, which says form data), and unknown
//! paths and methods get the same
//! `{"success": false, "error", "errorDescription"}` as a refused command.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mongoferry::{CommitRequest, LoadLevel, LoadSetting, MigrationHandle};
use serde_json::{json, Value};
use tokio::net::TcpListener;

mod metrics;

#[derive(Clone)]
struct Api {
    handle: MigrationHandle,
    port: u16,
}

/// Binds the API's port; fails at once if another process holds it.
pub async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        anyhow::anyhow!(
            "Port {port} on 127.0.0.1 is not free ({e}), probably because another mongoferry sync is running. Stop that one, or pass --port with another port."
        )
    })
}

/// Serves the API until the process ends.
pub async fn serve(listener: TcpListener, handle: MigrationHandle) -> anyhow::Result<()> {
    let port = listener.local_addr()?.port();
    let state = Api { handle, port };
    let app = Router::new()
        .route("/api/v1/progress", get(progress))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/commit", post(commit))
        .route("/api/v1/throttle", post(throttle))
        .route("/metrics", get(scrape))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn guard(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let allowed = [
        format!("127.0.0.1:{}", api.port),
        format!("localhost:{}", api.port),
    ];
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| allowed.iter().any(|a| a == h));
    let origin_ok = match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        None => true,
        Some(o) => allowed.iter().any(|a| o == format!("http://{a}")),
    };
    if !peer.ip().is_loopback() || !host_ok || !origin_ok {
        return failure(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only local clients may use this API. Send requests to 127.0.0.1 from this machine, without a browser's Origin header.",
        )
        .into_response();
    }
    next.run(req).await
}

/// A refusal in the API's one error shape.
fn failure(status: StatusCode, code: &str, description: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "success": false, "error": code, "errorDescription": description })),
    )
}

async fn not_found() -> (StatusCode, Json<Value>) {
    failure(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such endpoint. Use GET /api/v1/progress or /metrics, or POST /api/v1/pause, /api/v1/resume, /api/v1/commit or /api/v1/throttle.",
    )
}

async fn method_not_allowed() -> (StatusCode, Json<Value>) {
    failure(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not take that method. Use GET for /api/v1/progress and /metrics, and POST for pause, resume, commit and throttle.",
    )
}

async fn progress(State(api): State<Api>) -> Json<Value> {
    Json(json!({ "progress": api.handle.progress() }))
}

/// `GET /metrics`: the progress in the Prometheus text format.
async fn scrape(State(api): State<Api>) -> Response {
    match metrics::render(api.handle.progress()) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!("the metrics could not be encoded: {e}");
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics_unavailable",
                "The metrics could not be encoded. Scrape again; GET /api/v1/progress has the same figures.",
            )
            .into_response()
        }
    }
}

fn reply(result: mongoferry::Result<()>) -> (StatusCode, Json<Value>) {
    match result {
        Ok(()) => (StatusCode::OK, Json(json!({ "success": true }))),
        Err(e) => failure(
            StatusCode::BAD_REQUEST,
            e.code(),
            &format!("{} {}", e, e.remedy()),
        ),
    }
}

async fn pause(State(api): State<Api>) -> (StatusCode, Json<Value>) {
    reply(api.handle.pause())
}

async fn resume(State(api): State<Api>) -> (StatusCode, Json<Value>) {
    reply(api.handle.resume())
}

async fn commit(State(api): State<Api>, body: Bytes) -> (StatusCode, Json<Value>) {
    match commit_request(&body) {
        Ok(request) => reply(api.handle.commit(request)),
        Err(e) => failure(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("The commit request's body is not valid JSON ({e}). Send {{}}, or for example {{\"blockSourceWrites\": true, \"verify\": \"quick\"}}."),
        ),
    }
}

/// The commit's options from its body, whatever its `Content-Type`; an
/// empty body asks for the defaults.
fn commit_request(body: &[u8]) -> serde_json::Result<CommitRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CommitRequest::default());
    }
    serde_json::from_slice(body)
}

async fn throttle(State(api): State<Api>, body: Bytes) -> (StatusCode, Json<Value>) {
    let current = api
        .handle
        .progress()
        .load
        .map(|l| l.setting)
        .unwrap_or_default();
    let setting = match throttle_setting(current, &body) {
        Ok(s) => s,
        Err(refusal) => return failure(StatusCode::BAD_REQUEST, refusal.code, &refusal.text),
    };
    match api.handle.set_load(setting).await {
        Ok(status) => (
            StatusCode::OK,
            Json(json!({ "success": true, "load": status })),
        ),
        Err(e) => {
            // Bad input and a finished migration are the caller's to fix;
            // anything else (the destination, where the setting is stored,
            // is away) is the server's.
            let status = match e {
                mongoferry::Error::InvalidLoadLevel { .. }
                | mongoferry::Error::InvalidLoadLimit { .. }
                | mongoferry::Error::InvalidState { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!(code = e.code(), "throttle refused: {e}");
            failure(status, e.code(), &format!("{} {}", e, e.remedy()))
        }
    }
}

/// Why a throttle request is refused: the API's error code and a sentence
/// with the remedy.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    text: String,
}

impl From<mongoferry::Error> for Refusal {
    fn from(e: mongoferry::Error) -> Refusal {
        Refusal {
            code: e.code(),
            text: format!("{} {}", e, e.remedy()),
        }
    }
}

const THROTTLE_EXAMPLE: &str = r#"{"load": "gentle"} or {"maxSourceLatencyIncreasePercent": 20}"#;

/// The setting a throttle request's body asks for, from the current one:
/// a field left out keeps its value, `null` removes a limit. Validated
/// here; [`MigrationHandle::set_load`] checks it again.
fn throttle_setting(current: LoadSetting, body: &[u8]) -> Result<LoadSetting, Refusal> {
    let invalid = |text: String| Refusal {
        code: "invalid_request",
        text,
    };
    // An empty body (curl -XPOST without --data) names nothing, as `{}`.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "The throttle request's body is not valid JSON ({e}). Send for example {THROTTLE_EXAMPLE}."
        ))
    })?;
    let Value::Object(fields) = value else {
        return Err(invalid(format!(
            "The throttle request's body is not a JSON object. Send for example {THROTTLE_EXAMPLE}."
        )));
    };
    const LOAD: &str = "load";
    const LATENCY: &str = "maxSourceLatencyIncreasePercent";
    const LAG: &str = "maxSecondaryLagSeconds";
    if let Some(unknown) = fields
        .keys()
        .find(|k| ![LOAD, LATENCY, LAG].contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "The throttle request has a field '{unknown}' it does not know. Send only \"{LOAD}\", \"{LATENCY}\" and \"{LAG}\", for example {THROTTLE_EXAMPLE}."
        )));
    }
    if fields.is_empty() {
        return Err(invalid(format!(
            "The throttle request names no load level and no limit. Send for example {THROTTLE_EXAMPLE}."
        )));
    }
    let mut setting = current;
    if let Some(v) = fields.get(LOAD) {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        setting.level = LoadLevel::parse(&text)?;
    }
    if let Some(v) = fields.get(LATENCY) {
        setting.max_source_latency_increase_percent =
            limit(v, mongoferry::load::parse_percent, "%")?;
    }
    if let Some(v) = fields.get(LAG) {
        setting.max_secondary_lag_seconds = limit(v, mongoferry::load::parse_seconds, " s")?;
    }
    setting.validate()?;
    Ok(setting)
}

/// A limit of a throttle request: `null` for none, else a number (or a
/// string such as "20%").
fn limit(
    v: &Value,
    parse: fn(&str) -> mongoferry::Result<f64>,
    unit: &str,
) -> Result<Option<f64>, Refusal> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(parse(s)?)),
        Value::Number(n) => Ok(Some(parse(&format!("{n}{unit}"))?)),
        other => Err(parse(&other.to_string())
            .err()
            .map(Refusal::from)
            .unwrap_or_else(|| Refusal {
                code: "invalid_load_limit",
                text: format!("'{other}' cannot be a limit on the source's load. Give a number, or null to remove the limit."),
            })),
    }
}

/// A client of a running sync's API, for `mongoferry progress|pause|resume|commit|throttle`.
pub async fn call(port: u16, action: &str, body: Option<Value>) -> anyhow::Result<(bool, Value)> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/{action}");
    let req = if action == "progress" {
        client.get(&url)
    } else {
        client.post(&url).json(&body.unwrap_or_else(|| json!({})))
    };
    let resp = req.send().await.map_err(|_| {
        anyhow::anyhow!(
            "No mongoferry sync answers on 127.0.0.1:{port}. Start one with 'mongoferry sync', or pass the --port it uses."
        )
    })?;
    let ok = resp.status().is_success();
    let value: Value = resp.json().await?;
    Ok((ok, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_body_is_json_whatever_its_content_type_says() {
        assert!(commit_request(b"").is_ok());
        assert!(commit_request(b"  \n").is_ok());
        assert!(commit_request(b"{ }").is_ok());
        let r = commit_request(br#"{"blockSourceWrites": true}"#).unwrap();
        assert!(r.block_source_writes);
        assert!(commit_request(b"blockSourceWrites=true").is_err());
    }

    #[test]
    fn a_throttle_request_keeps_what_it_leaves_out() {
        let current = LoadSetting {
            level: LoadLevel::Normal,
            max_source_latency_increase_percent: Some(30.0),
            max_secondary_lag_seconds: Some(10.0),
        };
        let s = throttle_setting(current, br#"{"load": "gentle"}"#).unwrap();
        assert_eq!(
            s,
            LoadSetting {
                level: LoadLevel::Gentle,
                ..current
            }
        );
        let s = throttle_setting(current, br#"{"maxSecondaryLagSeconds": null}"#).unwrap();
        assert_eq!(
            (s.level, s.max_secondary_lag_seconds),
            (LoadLevel::Normal, None)
        );
        assert_eq!(s.max_source_latency_increase_percent, Some(30.0));
        let s = throttle_setting(
            current,
            br#"{"load": 12.5, "maxSourceLatencyIncreasePercent": "50%", "maxSecondaryLagSeconds": 5}"#,
        )
        .unwrap();
        assert_eq!(s.level, LoadLevel::MibPerSecond(12.5));
        assert_eq!(s.max_source_latency_increase_percent, Some(50.0));
        assert_eq!(s.max_secondary_lag_seconds, Some(5.0));
    }

    #[test]
    fn a_bad_throttle_request_is_refused_in_a_sentence() {
        let current = LoadSetting::default();
        for (body, code, naming) in [
            (r#"{"load": "fast"}"#, "invalid_load_level", "'fast'"),
            (r#"{"load": 0}"#, "invalid_load_level", "'0'"),
            (r#"{"load": null}"#, "invalid_load_level", "'null'"),
            (
                r#"{"maxSourceLatencyIncreasePercent": -5}"#,
                "invalid_load_limit",
                "'-5%'",
            ),
            (
                r#"{"maxSourceLatencyIncreasePercent": true}"#,
                "invalid_load_limit",
                "'true'",
            ),
            (
                r#"{"maxSecondaryLagSeconds": 0}"#,
                "invalid_load_limit",
                "'0 s'",
            ),
            (r#"{"level": "gentle"}"#, "invalid_request", "'level'"),
            ("{}", "invalid_request", "no load level"),
            ("", "invalid_request", "no load level"),
            ("[1]", "invalid_request", "not a JSON object"),
            ("load=gentle", "invalid_request", "not valid JSON"),
        ] {
            let r = throttle_setting(current, body.as_bytes()).unwrap_err();
            assert_eq!(r.code, code, "{body}: {r:?}");
            assert!(
                r.text.contains(naming) && r.text.ends_with('.'),
                "{body}: {r:?}"
            );
            assert!(!r.text.contains('\n'), "{body}: {r:?}");
        }
    }
}
