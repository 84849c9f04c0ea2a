//! The local control API, in mongosync's shape so its runbooks carry over:
//! `GET /api/v1/progress`, `POST /api/v1/{pause,resume,commit}`.
//!
//! It listens on 127.0.0.1 only, and refuses peers that are not loopback
//! and requests whose `Host` or `Origin` is not this server (which stops a
//! web page from driving it through DNS rebinding).
//!
//! Every answer is JSON, errors included: a body is read as JSON whatever
//! its `Content-Type` (mongosync's runbooks send `curl --data '{ }'`, which
//! says form data), and unknown paths and methods get the same
//! `{"success": false, "error", "errorDescription"}` as a refused command.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mongoferry::{CommitRequest, MigrationHandle};
use serde_json::{json, Value};
use tokio::net::TcpListener;

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
        "There is no such endpoint. Use GET /api/v1/progress, or POST /api/v1/pause, /api/v1/resume or /api/v1/commit.",
    )
}

async fn method_not_allowed() -> (StatusCode, Json<Value>) {
    failure(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not take that method. Use GET for /api/v1/progress and POST for pause, resume and commit.",
    )
}

async fn progress(State(api): State<Api>) -> Json<Value> {
    Json(json!({ "progress": api.handle.progress() }))
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

/// A client of a running sync's API, for `mongoferry progress|pause|resume|commit`.
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
}
