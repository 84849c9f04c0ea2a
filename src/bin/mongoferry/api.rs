//! The local control API, in mongosync's shape so its runbooks carry over:
//! `GET /api/v1/progress`, `POST /api/v1/{start,pause,resume,commit,reverse}`;
//! and Mongoferry's own `POST /api/v1/throttle`, which changes the load
//! level and the limits on the source's impact live (body
//! `{"load": "gentle", "maxSourceLatencyIncreasePercent": 20,
//! "maxSecondaryLagSeconds": null}`: a field left out keeps its value,
//! `null` removes a limit).
//!
//! It serves one migration. `sync` hands it a running one ([`serve`]);
//! `serve` hands it none and a [`Starter`] ([`serve_idle`]): progress is
//! then IDLE and the controls refuse until `POST /api/v1/start` (its body
//! in mongosync's shape, read by `api::start`) has started one, after
//! which every endpoint serves that migration and another start is
//! refused. The API only reads requests and carries the engine's answers:
//! what a start does is the starter's.
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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mongoferry::{CommitRequest, LoadLevel, LoadSetting, MigrationHandle, Progress};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

mod metrics;
pub mod start;

pub use start::StartRequest;

/// Starts the migration a start request asks for and hands back its
/// control surface once it runs; an error the engine raised (connecting,
/// the preflight check) is the client's to fix and answers with its code,
/// any other is this server's.
pub type Starter = Arc<
    dyn Fn(StartRequest) -> Pin<Box<dyn Future<Output = anyhow::Result<MigrationHandle>> + Send>>
        + Send
        + Sync,
>;

/// Where the API's one migration stands.
enum Slot {
    /// None yet: progress is IDLE and a start may come.
    Idle,
    /// A start request is connecting and checking.
    Starting,
    Started(Started),
}

/// The migration the API serves.
#[derive(Clone)]
struct Started {
    handle: MigrationHandle,
    /// Its start request asked the commit to block the source's user
    /// writes (mongosync's `enableUserWriteBlocking`), so every commit
    /// does, whatever its own body says.
    block_source_writes: bool,
}

#[derive(Clone)]
struct Api {
    slot: Arc<Mutex<Slot>>,
    starter: Option<Starter>,
    port: u16,
}

impl Api {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The migration, once one has started.
    fn started(&self) -> Option<Started> {
        match &*self.slot() {
            Slot::Started(s) => Some(s.clone()),
            Slot::Idle | Slot::Starting => None,
        }
    }

    /// The migration's progress, IDLE before it starts.
    fn progress(&self) -> Progress {
        self.started()
            .map(|s| s.handle.progress())
            .unwrap_or_default()
    }

    /// Takes the slot for a start: refused while a migration is starting or
    /// once one has started, and for a body that asks for what Mongoferry
    /// cannot do; else the slot is starting and the caller must settle it.
    fn claim(&self, body: &[u8]) -> Result<(Starter, StartRequest), (StatusCode, Json<Value>)> {
        let mut slot = self.slot();
        match &*slot {
            Slot::Idle => {}
            Slot::Starting => {
                return Err(failure(
                    StatusCode::CONFLICT,
                    "already_started",
                    "A migration is starting on this server already. Follow it with GET /api/v1/progress; a server runs one migration.",
                ))
            }
            Slot::Started(s) => {
                return Err(failure(
                    StatusCode::CONFLICT,
                    "already_started",
                    &format!(
                        "A migration has already started on this server and is {}. Control it with pause, resume, commit or reverse; for another migration, run another 'mongoferry serve' on another port.",
                        s.handle.progress().state
                    ),
                ))
            }
        }
        let request =
            start::parse(body).map_err(|r| failure(StatusCode::BAD_REQUEST, r.code, &r.text))?;
        // Only `sync` serves without a starter, and its slot is never idle.
        let starter = self.starter.clone().ok_or_else(not_started)?;
        *slot = Slot::Starting;
        Ok((starter, request))
    }

    /// Runs a control on the migration and answers as the API does, or
    /// refuses when none has started.
    fn control(
        &self,
        f: impl FnOnce(&MigrationHandle) -> mongoferry::Result<()>,
    ) -> (StatusCode, Json<Value>) {
        match self.started() {
            Some(s) => reply(f(&s.handle)),
            None => not_started(),
        }
    }
}

/// Binds the API's port; fails at once if another process holds it.
pub async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        anyhow::anyhow!(
            "Port {port} on 127.0.0.1 is not free ({e}), probably because another mongoferry sync is running. Stop that one, or pass --port with another port."
        )
    })
}

/// Serves the API of a running migration until the process ends.
pub async fn serve(listener: TcpListener, handle: MigrationHandle) -> anyhow::Result<()> {
    let started = Started {
        handle,
        block_source_writes: false,
    };
    run(listener, Slot::Started(started), None).await
}

/// Serves the API with no migration yet until the process ends:
/// `POST /api/v1/start` starts one through `starter`.
pub async fn serve_idle(listener: TcpListener, starter: Starter) -> anyhow::Result<()> {
    run(listener, Slot::Idle, Some(starter)).await
}

async fn run(listener: TcpListener, slot: Slot, starter: Option<Starter>) -> anyhow::Result<()> {
    let port = listener.local_addr()?.port();
    let state = Api {
        slot: Arc::new(Mutex::new(slot)),
        starter,
        port,
    };
    let app = Router::new()
        .route("/api/v1/progress", get(progress))
        .route("/api/v1/start", post(start))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/commit", post(commit))
        .route("/api/v1/reverse", post(reverse))
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
        "There is no such endpoint. Use GET /api/v1/progress or /metrics, or POST /api/v1/start, /api/v1/pause, /api/v1/resume, /api/v1/commit, /api/v1/reverse or /api/v1/throttle.",
    )
}

async fn method_not_allowed() -> (StatusCode, Json<Value>) {
    failure(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not take that method. Use GET for /api/v1/progress and /metrics, and POST for start, pause, resume, commit, reverse and throttle.",
    )
}

/// The refusal of a control before a migration has started.
fn not_started() -> (StatusCode, Json<Value>) {
    failure(
        StatusCode::BAD_REQUEST,
        "not_started",
        "No migration has started on this server yet. Start one with POST /api/v1/start, for example with {\"source\": \"cluster0\", \"destination\": \"cluster1\"}.",
    )
}

async fn progress(State(api): State<Api>) -> Json<Value> {
    Json(json!({ "progress": api.progress() }))
}

/// `GET /metrics`: the progress in the Prometheus text format.
async fn scrape(State(api): State<Api>) -> Response {
    match metrics::render(api.progress()) {
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

/// `POST /api/v1/start`: refused once a migration has started (or while
/// one is starting), else starts the one its body asks for and answers
/// once it runs, or with why it could not start.
async fn start(State(api): State<Api>, body: Bytes) -> (StatusCode, Json<Value>) {
    let (starter, request) = match api.claim(&body) {
        Ok(claimed) => claimed,
        Err(refused) => return refused,
    };
    // The start runs as a task of its own: a client that hangs up must not
    // leave the slot starting for ever, nor a migration half begun.
    let block_source_writes = request.block_source_writes;
    let slot = api.slot.clone();
    let task = tokio::spawn(async move {
        let result = starter(request).await;
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = match &result {
            Ok(handle) => Slot::Started(Started {
                handle: handle.clone(),
                block_source_writes,
            }),
            Err(_) => Slot::Idle,
        };
        result
    });
    match task.await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "success": true }))),
        Ok(Err(e)) => match e.downcast::<mongoferry::Error>() {
            Ok(e) => reply(Err(e)),
            Err(e) => failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "start_failed",
                &format!("{e:#}"),
            ),
        },
        Err(e) => {
            *api.slot() = Slot::Idle;
            tracing::warn!("the start task failed: {e}");
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "start_failed",
                "The migration could not be started because of an internal error. Start it again; if it recurs, report it with the log.",
            )
        }
    }
}

async fn pause(State(api): State<Api>) -> (StatusCode, Json<Value>) {
    api.control(MigrationHandle::pause)
}

async fn resume(State(api): State<Api>) -> (StatusCode, Json<Value>) {
    api.control(MigrationHandle::resume)
}

/// `POST /api/v1/reverse`: a committed reversible migration starts
/// syncing the new cluster's changes back to the old one.
async fn reverse(State(api): State<Api>) -> (StatusCode, Json<Value>) {
    api.control(MigrationHandle::reverse)
}

async fn commit(State(api): State<Api>, body: Bytes) -> (StatusCode, Json<Value>) {
    let Some(started) = api.started() else {
        return not_started();
    };
    match commit_request(&body) {
        Ok(mut request) => {
            request.block_source_writes |= started.block_source_writes;
            reply(started.handle.commit(request))
        }
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
    let Some(Started { handle, .. }) = api.started() else {
        return not_started();
    };
    let current = handle
        .progress()
        .load
        .map(|l| l.setting)
        .unwrap_or_default();
    let setting = match throttle_setting(current, &body) {
        Ok(s) => s,
        Err(refusal) => return failure(StatusCode::BAD_REQUEST, refusal.code, &refusal.text),
    };
    match handle.set_load(setting).await {
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

/// Why a throttle or start request is refused: the API's error code and a
/// sentence with the remedy.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    text: String,
}

impl Refusal {
    /// A request the API cannot read, or that asks for what Mongoferry
    /// does not do.
    fn invalid(text: String) -> Refusal {
        Refusal {
            code: "invalid_request",
            text,
        }
    }
}

/// A request's body as the fields of its JSON object, whatever its
/// `Content-Type`; refused unless it is one, or when it has a field not in
/// `known`. An empty body (curl -XPOST without --data) is `{}`.
fn request_fields(
    body: &[u8],
    request: &str,
    known: &[&str],
    example: &str,
) -> Result<Map<String, Value>, Refusal> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Refusal::invalid(format!(
            "The {request} request's body is not valid JSON ({e}). Send for example {example}."
        ))
    })?;
    let Value::Object(fields) = value else {
        return Err(Refusal::invalid(format!(
            "The {request} request's body is not a JSON object. Send for example {example}."
        )));
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        let names: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
        let listed = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => "no field".to_string(),
        };
        return Err(Refusal::invalid(format!(
            "The {request} request has a field '{unknown}' that Mongoferry does not take. Send only {listed}, for example {example}."
        )));
    }
    Ok(fields)
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
    const LOAD: &str = "load";
    const LATENCY: &str = "maxSourceLatencyIncreasePercent";
    const LAG: &str = "maxSecondaryLagSeconds";
    let fields = request_fields(body, "throttle", &[LOAD, LATENCY, LAG], THROTTLE_EXAMPLE)?;
    if fields.is_empty() {
        return Err(Refusal::invalid(format!(
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

/// A client of a running sync's API, for `mongoferry progress|pause|resume|commit|reverse|throttle`.
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
            "No mongoferry sync answers on 127.0.0.1:{port}. Start one with 'mongoferry sync' or 'mongoferry serve', or pass the --port it uses."
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
