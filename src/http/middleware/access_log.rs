//! One log line and one metrics sample per request.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use tracing::{info, info_span, Instrument};

use super::guard::TenantName;
use super::{route_label, ScimOperation};

/// The request's id (from `X-Request-Id` or made here), for the audit record.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// The DN a write changed first, for the access log.
#[derive(Clone, Debug)]
pub struct WrittenDn(pub String);

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);
/// The pid, asked for once: `std::process::id()` is a system call every time.
static PID: std::sync::LazyLock<u32> = std::sync::LazyLock::new(std::process::id);

/// One log line per request: method, path, status, latency, tenant, request id, the SCIM
/// operation (`op`), and for a write the DN it changed. The id comes from `X-Request-Id` when the
/// caller sends a sane one, and is echoed back.
///
/// Not tower-http's `SetRequestId`/`PropagateRequestId` and `TraceLayer`: they keep whatever
/// id a client sends (this refuses ids that are long or carry characters a log reader could be
/// fooled by), and this one pass makes the id, the span, the metrics and the log line that
/// three layers would make separately on every request.
pub async fn access_log<F, Fut>(mut req: Request, op: Option<ScimOperation>, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let start = Instant::now();
    let method = req.method().clone();
    // the URI shares the request's bytes: the path is read from it after the request is gone
    let uri = req.uri().clone();
    let request_id = request_id(&req);
    let span = info_span!("request", request_id = %request_id);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut resp = next(req).instrument(span.clone()).await;
    let tenant_name = resp
        .extensions()
        .get::<TenantName>()
        .map_or("-", |t| t.0.name.as_str());
    let path = uri.path();
    crate::metrics::metrics().request(
        route_label(path),
        method_label(&method),
        resp.status().as_u16(),
        tenant_name,
        start.elapsed(),
    );
    info!(
        parent: &span,
        method = method.as_str(),
        // the path as sent (percent-encoded), bounded; the log formatter quotes what needs it
        path = crate::logging::shorten(path, 256).as_ref(),
        status = resp.status().as_u16(),
        latency_ms = %Millis(start.elapsed()),
        tenant = tenant_name,
        op = op.map(ScimOperation::label),
        dn = resp.extensions().get::<WrittenDn>().map(|d| d.0.as_str()),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The caller's `X-Request-Id` when it is short and plain, else one made here.
fn request_id(req: &Request) -> Arc<str> {
    let sent = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    match sent {
        Some(id) => Arc::from(id),
        None => Arc::from(format!(
            "{:x}-{}",
            *PID,
            REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)
        )),
    }
}

/// The standard methods by name; anything else a client invents is one label value.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Milliseconds with one decimal, rounded, written when the line is (no string made for
/// it) and in whole numbers (no floating-point formatting).
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenths = (self.0.as_micros() + 50) / 100;
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_milliseconds_rounded_to_a_tenth() {
        let ms = |micros| Millis(Duration::from_micros(micros)).to_string();
        assert_eq!(ms(0), "0.0");
        assert_eq!(ms(49), "0.0");
        assert_eq!(ms(50), "0.1");
        assert_eq!(ms(1_040), "1.0");
        assert_eq!(ms(1_950), "2.0");
        assert_eq!(ms(12_345_678), "12345.7");
    }
}
