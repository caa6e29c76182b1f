//! `convostat serve`: the four questions over HTTP, from one warm engine
//! (SPEC 8).
//!
//! The server is an axum router over an [`Arc<Engine>`](crate::Engine)
//! that the caller builds and fills (from files, or a durable directory),
//! so that the same router serves any engine. Requests pass, outermost
//! first, through a request id, tracing, metrics ([`metrics`]), the
//! rewriting of every error into a google.rpc.Status body ([`status`]), a
//! per-request timeout (503), a panic catcher (500, the last line of
//! defence) and the body limit (413); the `/v1/` routes then through the
//! authentication gate ([`auth`], `gate`), and reach a handler
//! (`routes`) that makes one library call. Queries, ingest and argon2
//! run on the blocking pool under a bound (`work`): beyond it a request
//! is answered 429 at once. Answers are cached while the engine's data is
//! unchanged ([`cache`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use convostat::server::{Server, ServerConfig};
//! use convostat::Engine;
//!
//! let engine = Arc::new(Engine::new());
//! engine.ingest_ndjson_file("events.ndjson")?;
//! let config = ServerConfig { listen: "127.0.0.1:0".into(), ..ServerConfig::default() };
//! // No credentials: allowed on a loopback address only.
//! Server::bind(config)?.run(engine, |addr| println!("listening on http://{addr}"))?;
//! # Ok::<(), convostat::Error>(())
//! ```

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::engine::Engine;
use crate::error::{Error, Result};

pub mod auth;
pub mod cache;
mod gate;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod status;
mod work;

pub use auth::{hash_secret, Credentials, Role};

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `--max-body`: 64 MiB.
pub const DEFAULT_MAX_BODY: usize = 64 << 20;
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on requests running or waiting for CPU work.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default number of cached answer bodies.
pub const DEFAULT_ANSWER_CACHE: usize = 1024;
/// How long requests in flight may still run after SIGTERM / SIGINT.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Every route: method and path template, as in the OpenAPI document.
pub const ROUTES: [(&str, &str); 8] = [
    ("get", "/v1/bots/{bot_id}/conversations"),
    ("get", "/v1/bots/{bot_id}/conversations/insights"),
    (
        "get",
        "/v1/bots/{bot_id}/conversations/{conversation_id}/flow",
    ),
    ("get", "/v1/teams/{team_id}/conversations"),
    ("post", "/v1/events"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on, `HOST:PORT`; port 0 picks a free port.
    pub listen: String,
    /// Accounts; `None` serves without authentication, which
    /// [`Server::bind`] allows on loopback addresses only.
    pub credentials: Option<Arc<Credentials>>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body: usize,
    /// Longest time a request may take (503 beyond).
    pub timeout: Duration,
    /// Most requests running or waiting for CPU work (429 beyond).
    pub max_in_flight: usize,
    /// CPU work running at once; 0 means the number of cores.
    pub workers: usize,
    /// Answer bodies kept for repeated queries while the data is
    /// unchanged ([`cache`]); 0 disables the cache.
    pub answer_cache: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            credentials: None,
            max_body: DEFAULT_MAX_BODY,
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            workers: 0,
            answer_cache: DEFAULT_ANSWER_CACHE,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
struct AppState {
    engine: Arc<Engine>,
    credentials: Option<Arc<Credentials>>,
    metrics: metrics::Metrics,
    work: work::WorkPool,
    answers: cache::AnswerCache,
    max_body: usize,
}

/// The router of SPEC 8 over `engine`, with all its layers: for a host
/// application that runs its own listener. `config.listen` is not used.
pub fn router(engine: Arc<Engine>, config: &ServerConfig) -> Router {
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let state = Arc::new(AppState {
        engine,
        credentials: config.credentials.clone(),
        metrics: metrics::Metrics::default(),
        work: work::WorkPool::new(workers, config.max_in_flight),
        answers: cache::AnswerCache::new(config.answer_cache),
        max_body: config.max_body,
    });
    let v1 = Router::new()
        .route(ROUTES[0].1, get(routes::conversations))
        .route(ROUTES[1].1, get(routes::insights))
        .route(ROUTES[2].1, get(routes::flow))
        .route(ROUTES[3].1, get(routes::usage))
        .route(ROUTES[4].1, post(routes::post_events))
        .route_layer(from_fn_with_state(Arc::clone(&state), gate::authenticate));
    Router::new()
        .merge(v1)
        .route(ROUTES[5].1, get(routes::healthz))
        .route(ROUTES[6].1, get(routes::metrics))
        .route(ROUTES[7].1, get(routes::openapi))
        .fallback(routes::fallback)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(Counter::default()))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http())
                .layer(from_fn_with_state(Arc::clone(&state), gate::record))
                .layer(from_fn_with_state(config.max_body, status::json_errors))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    config.timeout,
                ))
                .layer(CatchPanicLayer::new())
                .layer(RequestBodyLimitLayer::new(config.max_body))
                .layer(DefaultBodyLimit::disable()),
        )
        .with_state(state)
}

/// Request ids: a process-wide counter.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        HeaderValue::from_str(&id.to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    config: ServerConfig,
}

impl Server {
    /// Binds `config.listen`. Without credentials every address it names
    /// must be loopback, or this is an invalid-argument error.
    pub fn bind(config: ServerConfig) -> Result<Self> {
        let addrs: Vec<SocketAddr> = config
            .listen
            .to_socket_addrs()
            .map_err(|e| Error::invalid("listen", format!("`{}`: {e}", config.listen)))?
            .collect();
        if addrs.is_empty() {
            return Err(Error::invalid(
                "listen",
                format!("`{}` names no address", config.listen),
            ));
        }
        if config.credentials.is_none() && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(Error::invalid(
                "listen",
                format!(
                    "`{}` is not loopback; serving without credentials is only allowed on loopback",
                    config.listen
                ),
            ));
        }
        let listener = std::net::TcpListener::bind(&addrs[..])
            .map_err(|e| Error::data_from(format!("listen {}", config.listen), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::data_from("listen", e))?;
        Ok(Self { listener, config })
    }

    /// The bound address (with the real port when the config said 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::data_from("listen", e))
    }

    /// Serves until SIGTERM or SIGINT, then lets requests in flight finish
    /// (at most [`SHUTDOWN_GRACE`]) and returns. `ready` is called once
    /// the signal handlers are installed and connections are accepted.
    pub fn run(self, engine: Arc<Engine>, ready: impl FnOnce(SocketAddr)) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::data_from("tokio runtime", e))?;
        let result = runtime.block_on(async {
            let stop = termination()?;
            self.serve_until(engine, ready, stop).await
        });
        // Work cut off by the grace period is abandoned, not awaited.
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }

    /// Serves until `stop` completes, then drains like [`Server::run`].
    /// Must be called within a multi-threaded tokio runtime.
    pub async fn serve_until(
        self,
        engine: Arc<Engine>,
        ready: impl FnOnce(SocketAddr),
        stop: impl Future<Output = ()>,
    ) -> Result<()> {
        let addr = self.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|e| Error::data_from("listen", e))?
            .tap_io(|tcp| {
                // Small answers on kept-alive connections must not wait
                // for Nagle's algorithm.
                let _ = tcp.set_nodelay(true);
            });
        let app = router(engine, &self.config);
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        });
        let task = tokio::spawn(async move { server.await });
        ready(addr);
        stop.await;
        let _ = tx.send(true);
        match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
            Ok(Ok(Err(e))) => Err(Error::data_from("serve", e)),
            _ => Ok(()),
        }
    }
}

/// A future that completes on SIGTERM or SIGINT; the handlers are
/// installed when this returns.
fn termination() -> Result<impl Future<Output = ()>> {
    let notify = Arc::new(tokio::sync::Notify::new());
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
            let mut stream = signal(kind).map_err(|e| Error::data_from("signal handler", e))?;
            let notify = Arc::clone(&notify);
            tokio::spawn(async move {
                stream.recv().await;
                notify.notify_one();
            });
        }
    }
    #[cfg(not(unix))]
    {
        let notify = Arc::clone(&notify);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            notify.notify_one();
        });
    }
    Ok(async move { notify.notified().await })
}
