//! Per-request middleware: the authentication gate of the `/v1/` routes
//! and the recording of request metrics.
//!
//! The gate reads `Authorization: Basic`, accepts a secret verified less
//! than [`CACHE_TTL`](super::auth::CACHE_TTL) ago at once, and otherwise
//! runs argon2 on the work pool (so that a burst of logins is bounded like
//! any other CPU work). It hands the handler a [`Caller`]; the role check
//! is the handler's, so that a `read` account on a write route gets 403.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{parse_basic, Role};
use super::metrics::UNMATCHED;
use super::routes::Caller;
use super::status::ApiError;
use super::AppState;

/// Authenticates a `/v1/` request, or answers 401.
pub async fn authenticate(
    State(app): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(credentials) = app.credentials.clone() else {
        request.extensions_mut().insert(Caller {
            user: "-".to_owned(),
            role: Role::Write,
        });
        return next.run(request).await;
    };
    let Some((user, secret)) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| parse_basic(v.as_bytes()))
    else {
        return ApiError::unauthenticated().into_response();
    };
    let role = match credentials.cached(&user, &secret) {
        Some(role) => Some(role),
        None => {
            let name = user.clone();
            match app
                .work
                .run(move || credentials.verify(&name, &secret))
                .await
            {
                Ok(role) => role,
                Err(e) => return e.into_response(),
            }
        }
    };
    match role {
        Some(role) => {
            request.extensions_mut().insert(Caller { user, role });
            next.run(request).await
        }
        None => ApiError::unauthenticated().into_response(),
    }
}

/// Counts the request and its duration under its route template.
pub async fn record(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    app.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
