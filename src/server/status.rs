//! Errors as HTTP answers: a status code and a google.rpc.Status body
//! (SPEC 8), `{"code": C, "message": "...", "details": []}`.
//!
//! [`ApiError`] is the one error type of the handlers; it maps the
//! library's [`Error`] kinds and the server's own refusals
//! (credentials, role, media type, size, overload) to a status and a gRPC
//! code. [`json_errors`] is the last middleware before the client: any
//! error answer that is not already such a body (axum's own 405, the body
//! limit's 413, the timeout's 503, the panic catcher's 500) is rewritten
//! into one, so that clients only ever parse one error shape.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind};

/// google.rpc.Code values used by the server.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// `WWW-Authenticate` value of every 401 answer.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"convostat\"";

/// An HTTP error answer: status, gRPC code and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: i32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400/3: a bad parameter or a bad request body.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, message)
    }

    /// 404/5: a route that does not exist.
    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("not found: no route for {method} {}", shorten(path)),
        )
    }

    /// 401/16: no or wrong credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "unauthenticated: valid HTTP Basic credentials are required",
        )
    }

    /// 403/7: an account whose role does not allow the route.
    pub fn permission_denied(user: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            code::PERMISSION_DENIED,
            format!(
                "permission denied: account `{}` has role read; this route needs write",
                shorten(user)
            ),
        )
    }

    /// 415/3: a body of a media type the route does not take.
    pub fn unsupported_media_type(given: Option<&str>) -> Self {
        let given = match given {
            Some(t) => format!("`{}`", shorten(t)),
            None => "none".to_owned(),
        };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            format!(
                "unsupported media type: Content-Type {given}; expected application/x-ndjson or application/vnd.apache.arrow.stream"
            ),
        )
    }

    /// 413/8: a body over `--max-body`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            format!("request body too large: the limit is {limit} bytes (--max-body)"),
        )
    }

    /// 429/8: too much work in progress; the client should retry later.
    pub fn overloaded(limit: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::RESOURCE_EXHAUSTED,
            format!("overloaded: {limit} requests already in progress; retry later"),
        )
    }

    /// 503/14: the request did not finish in time, or the server is
    /// shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, message)
    }

    /// 500/13: a bug.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "internal error: this is a bug in convostat",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The google.rpc.Status JSON body, with a trailing newline.
    pub fn body(&self) -> String {
        let body = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "details": [],
        });
        body.to_string() + "\n"
    }
}

impl From<&Error> for ApiError {
    fn from(e: &Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidQuery | ErrorKind::Data => Self::invalid(e.to_string()),
            ErrorKind::NotFound => Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, e.to_string()),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        response
    }
}

/// Rewrites every error answer that is not JSON yet into a google.rpc.Status
/// body, keeping its status (axum adds the `Allow` header of a 405 outside
/// this layer). `max_body` is `--max-body`, for the message of a 413.
pub async fn json_errors(State(max_body): State<usize>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::no_route(&method, &path),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            code::UNIMPLEMENTED,
            format!("method not allowed: {method} {}", shorten(&path)),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(max_body),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            ApiError::unavailable("unavailable: the request did not finish in time (--timeout)")
        }
        StatusCode::UNAUTHORIZED => ApiError::unauthenticated(),
        s if s.is_server_error() => ApiError::internal(),
        s => ApiError::new(
            s,
            code::INVALID_ARGUMENT,
            format!(
                "invalid request: {}",
                s.canonical_reason().unwrap_or("client error")
            ),
        ),
    };
    error.into_response()
}

/// Client-supplied text in messages is cut short to keep them one short
/// line.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_keep_their_message() {
        let e = ApiError::from(Error::invalid("bucket", "unknown bucket `2d`"));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.body(),
            "{\"code\":3,\"details\":[],\"message\":\"invalid query: `bucket`: unknown bucket `2d`\"}\n"
        );
        let e = ApiError::from(Error::not_found("conversation `c9`"));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert!(e.body().starts_with("{\"code\":5,"));
    }

    #[test]
    fn unauthenticated_answers_carry_the_challenge() {
        let response = ApiError::unauthenticated().into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            BASIC_CHALLENGE
        );
    }

    /// A panicking handler (a bug) is answered 500/13 in JSON through the
    /// same layers as the server's, and plain-text errors are rewritten.
    #[test]
    fn panics_and_plain_errors_become_status_bodies() {
        use axum::routing::get;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("a bug");
                    }
                    StatusCode::OK
                }),
            )
            .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(axum::middleware::from_fn_with_state(1024usize, json_errors));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let call = |path: &'static str| {
            let request = Request::builder().uri(path).body(axum::body::Body::empty());
            let response = runtime
                .block_on(app.clone().oneshot(request.unwrap()))
                .unwrap();
            let status = response.status();
            let body = runtime
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        let (status, body) = call("/boom");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.starts_with("{\"code\":13,"), "{body}");
        let (status, body) = call("/teapot");
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert!(body.starts_with("{\"code\":3,"), "{body}");
        let (status, body) = call("/nowhere");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no route for GET /nowhere"), "{body}");
    }

    #[test]
    fn messages_stay_short_and_on_one_line() {
        let long = "x\n".repeat(500);
        let short = shorten(&long);
        assert!(short.len() < 210 && !short.contains('\n'));
    }
}
