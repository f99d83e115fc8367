//! What monitoring reads: `/healthz` (the process answers), `/readyz` (the directory answers,
//! cached briefly) and `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::response::HttpError;
use crate::http::AppState;
use crate::scim::ScimError;

/// `GET /metrics`: the process's metrics, with the current pool's state.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics_response(&state)
}

pub fn metrics_response(state: &AppState) -> Response {
    let m = crate::metrics::metrics();
    let pool = state.directory.pool_status();
    m.pool(pool.in_use, pool.idle, pool.max, pool.waiting);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        m.render(),
    )
        .into_response()
}

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

/// How long a readiness answer is reused.
const READINESS_TTL: Duration = Duration::from_secs(2);

/// `GET /readyz`: the directory answers with the service account bound (200 `ready`), else a
/// SCIM 503 saying why (unreachable, or the account refused). Cached for two seconds.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut last = state.readiness.lock().await;
    let fresh = last
        .as_ref()
        .filter(|(at, _)| at.elapsed() < READINESS_TTL)
        .map(|(_, r)| r.clone());
    let verdict = match fresh {
        Some(r) => r,
        None => {
            let r = state.directory.ping().await.map_err(ScimError::from);
            *last = Some((Instant::now(), r.clone()));
            r
        }
    };
    let estate = state.directory.estate();
    let down: Vec<String> = estate
        .down()
        .map(|s| match &s.why {
            Some(why) => format!("{} ({why})", s.url),
            None => s.url.clone(),
        })
        .collect();
    match verdict {
        Ok(()) => {
            let mut body = String::from("ready\n");
            if let Some(c) = estate.current() {
                body.push_str(&format!("current: {}\n", c.url));
            }
            for d in &down {
                body.push_str(&format!("down: {d}\n"));
            }
            (StatusCode::OK, body).into_response()
        }
        Err(mut e) => {
            if !down.is_empty() {
                e.detail = format!("{}; servers down: {}", e.detail, down.join(", "));
            }
            HttpError(e).into_response()
        }
    }
}
