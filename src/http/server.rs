//! The front door: accepting connections within a cap, HTTP/1.1 with hyper's header timeout
//! and bounded buffers, optional TLS, an idle timeout on the socket, and a shutdown that
//! closes idle and half-sent connections at once while requests in flight get a bounded drain.
//! All of it happens before a request is authenticated, so an anonymous client can hold at
//! most one connection slot for at most the header timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::live::Live;
use super::HttpSettings;
use crate::scim::ScimError;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// The SCIM API, /healthz and /readyz.
    Api,
    /// `/metrics` (`metrics.listen`).
    Metrics,
}

/// Serves the API on `listener` until `shutdown` completes; then stops accepting, closes
/// idle and half-sent connections, and waits up to `server.shutdown_drain_secs` for requests
/// in flight (and writes they started) to finish.
pub async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_routes(listener, live, Routes::Api, shutdown).await
}

/// `serve`, for the routes `routes` names. The metrics listener keeps its own connection
/// tasks, so that an idle scraper's connection never holds up the API's drain.
pub async fn serve_routes(
    listener: TcpListener,
    live: Arc<Live>,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // what lives as long as the process comes from the first generation (see `live`)
    let first = live.current().state.clone();
    let settings = &first.http;
    let tasks = match routes {
        Routes::Api => first.tasks.clone(),
        Routes::Metrics => tokio_util::task::TaskTracker::new(),
    };
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let stop = CancellationToken::new();
    let refused = refusal(settings.max_connections);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors (or a connection reset before accept): pause
                    // instead of spinning, and keep serving the connections we have
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(stream, &refused);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            live: live.clone(),
            routes,
            stop: stop.clone(),
            _permit: permit,
            peer,
        };
        tasks.spawn(conn.run(stream));
    }
    drop(listener);
    info!(
        open_connections = settings.max_connections - slots.available_permits(),
        "shutting down: no new connections; idle ones closed, requests in flight draining"
    );
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(settings.shutdown_drain, tasks.wait())
        .await
        .is_err()
    {
        warn!(
            left = tasks.len(),
            drain_secs = settings.shutdown_drain.as_secs(),
            "requests still running at the end of the drain (server.shutdown_drain_secs) are dropped"
        );
    }
    Ok(())
}

/// The whole answer to a connection over the cap: a SCIM 503 telling the client to back off.
fn refusal(cap: usize) -> Vec<u8> {
    let body = ScimError::unavailable(
        format!("the server has {cap} open connections, its limit (server.max_connections); retry later"),
        1,
    )
    .to_json()
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/scim+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Refuses a connection over the cap right in the accept loop, without waiting on it: the
/// answer fits an empty socket buffer, so one non-blocking write sends it; what the client
/// already sent is read away so that closing sends a FIN, not a reset that could discard the
/// answer. Its file descriptor lives only for these calls, so refusals cannot pile up.
fn refuse(stream: TcpStream, answer: &[u8]) {
    let mut sink = [0u8; 8192];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(answer);
    if let Ok(std_stream) = stream.into_std() {
        let _ = std_stream.shutdown(std::net::Shutdown::Write);
    }
}

struct Connection {
    live: Arc<Live>,
    routes: Routes,
    stop: CancellationToken,
    /// Held for the connection's life: its slot under `server.max_connections`.
    _permit: OwnedSemaphorePermit,
    peer: SocketAddr,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        // a connection keeps the timeouts and certificate current when it was accepted
        let settings = self.live.current().state.http.clone();
        // the metrics listener is plain HTTP (loopback by default)
        let tls = match self.routes {
            Routes::Api => settings.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            Routes::Metrics => None,
        };
        // nothing moving either way for this long closes the socket: a stalled upload, a
        // client that stopped reading its response
        let mut timed = TimeoutStream::new(stream);
        timed.set_read_timeout(Some(settings.idle_timeout));
        timed.set_write_timeout(Some(settings.idle_timeout));
        let stream = Box::pin(timed);
        match tls {
            None => self.serve_http(stream, &settings).await,
            Some(acceptor) => {
                // the handshake is bounded like a request's headers
                let hs =
                    tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream));
                tokio::select! {
                    done = hs => match done {
                        Ok(Ok(tls_stream)) => self.serve_http(tls_stream, &settings).await,
                        Ok(Err(e)) => debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(peer = %self.peer, "TLS handshake timed out"),
                    },
                    () = self.stop.cancelled() => {}
                }
            }
        }
    }

    async fn serve_http<S>(&self, stream: S, settings: &HttpSettings)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let active = Arc::new(AtomicUsize::new(0));
        let service = ConnService {
            live: self.live.clone(),
            routes: self.routes,
            active: active.clone(),
            peer: self.peer,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_buf_size(settings.max_buf_size)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(peer = %self.peer, error = %e, "connection ended with an error");
                }
            }
            () = self.stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                if active.load(Ordering::Acquire) == 0 {
                    // idle, or headers still arriving: nothing to finish, close now
                    return;
                }
                // the request in flight finishes and its response is sent; the drain bounds it
                let _ = conn.await;
            }
        }
    }
}

/// The router as a hyper service for one connection, counting the requests whose responses
/// are not yet fully sent (the count drops when hyper drops the response body).
#[derive(Clone)]
struct ConnService {
    live: Arc<Live>,
    routes: Routes,
    active: Arc<AtomicUsize>,
    /// The client's address, given to handlers as `ConnectInfo` (the audit records it).
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::new(self.active.clone());
        // each request is served by the generation current when it arrives
        let generation = self.live.current();
        let router = match self.routes {
            Routes::Api => generation.router.clone(),
            Routes::Metrics => generation.metrics_router.clone(),
        };
        let mut req = req.map(Body::new);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        Box::pin(async move {
            let resp = router.serve(req).await;
            Ok(resp.map(|body| {
                Body::new(Guarded {
                    body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// One request counted as in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until hyper has sent it.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The rustls server config for `server.tls`: TLS 1.2 and 1.3 only, HTTP/1.1 by ALPN.
pub fn tls_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let read = |path: &std::path::Path, key: &'static str| {
        std::fs::read(path).map_err(|e| (key, format!("cannot read {}: {e}", path.display())))
    };
    let pem = read(cert_file, "server.tls.cert_file")?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            (
                "server.tls.cert_file",
                format!("{}: {e}", cert_file.display()),
            )
        })?;
    if certs.is_empty() {
        return Err((
            "server.tls.cert_file",
            format!("{} holds no PEM certificate", cert_file.display()),
        ));
    }
    let pem = read(key_file, "server.tls.key_file")?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| {
            (
                "server.tls.key_file",
                format!("{}: {e}", key_file.display()),
            )
        })?
        .ok_or_else(|| {
            (
                "server.tls.key_file",
                format!("{} holds no PEM private key", key_file.display()),
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("server.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            (
                "server.tls.key_file",
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The process's soft limit on open files, when it can be read.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}
