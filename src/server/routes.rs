//! The routes of SPEC 8: each handler turns a request into one library
//! call and its answer into a response.
//!
//! Query strings are decoded here rather than by a generic extractor,
//! because the API's rules are specific: a list parameter (`channel_type`,
//! `language`, `group_by`) may be repeated and its values are joined with
//! `,` before the library splits them; any other repeated parameter, an
//! unknown one, or a path parameter given again in the query string
//! (`/v1/bots/b1/conversations?bot_id=b2`) is passed through for
//! [`Params`] to reject as an invalid query. `+` is a space; invalid
//! percent-encoding or UTF-8 is a 400, never a 500.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::auth::Role;
use super::status::ApiError;
use super::AppState;
use crate::ingest::guard::guard;
use crate::{IngestMode, Params, Query};

/// Parameters whose values may be given several times and are then joined.
const LIST_PARAMETERS: [&str; 3] = ["channel_type", "language", "group_by"];

/// Media type of NDJSON bodies.
pub const NDJSON: &str = "application/x-ndjson";
/// Media type of Arrow IPC stream bodies.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

type Shared = State<Arc<AppState>>;

/// `GET /v1/bots/{bot_id}/conversations` (SPEC 4.1).
pub async fn conversations(
    State(app): Shared,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path(bot_id) = path.map_err(path_error)?;
    answer(&app, "conversations", vec![("bot_id", bot_id)], query).await
}

/// `GET /v1/bots/{bot_id}/conversations/insights` (SPEC 4.2).
pub async fn insights(
    State(app): Shared,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path(bot_id) = path.map_err(path_error)?;
    answer(&app, "insights", vec![("bot_id", bot_id)], query).await
}

/// `GET /v1/bots/{bot_id}/conversations/{conversation_id}/flow` (SPEC 4.3).
pub async fn flow(
    State(app): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path((bot_id, conversation_id)) = path.map_err(path_error)?;
    let pairs = vec![("bot_id", bot_id), ("conversation_id", conversation_id)];
    answer(&app, "flow", pairs, query).await
}

/// `GET /v1/teams/{team_id}/conversations` (SPEC 4.4).
pub async fn usage(
    State(app): Shared,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Path(team_id) = path.map_err(path_error)?;
    answer(&app, "usage", vec![("team_id", team_id)], query).await
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::invalid(format!(
        "invalid query: path: {}",
        super::status::shorten(&rejection.body_text())
    ))
}

/// Validates the query on the async worker (cheap), answers from the
/// answer cache when the data has not changed since, or runs it on the
/// work pool; the body is the CLI's bytes: the JSON and a newline.
async fn answer(
    app: &AppState,
    kind: &'static str,
    path: Vec<(&'static str, String)>,
    query: Option<String>,
) -> Result<Response, ApiError> {
    let mut pairs: Vec<(String, String)> =
        path.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    pairs.extend(query_pairs(query.as_deref().unwrap_or(""))?);
    let query = Query::from_params(kind, &Params::new(pairs)?)?;
    let key = format!("{query:?}");
    let generation = app.engine.generation();
    if let Some(body) = app.answers.get(&key, generation) {
        return Ok(json(StatusCode::OK, body.to_string()));
    }
    // One request computes; the others asking the same wait for its answer.
    let _turn = app.answers.turn(&key).await;
    let generation = app.engine.generation();
    if let Some(body) = app.answers.get(&key, generation) {
        return Ok(json(StatusCode::OK, body.to_string()));
    }
    let engine = Arc::clone(&app.engine);
    let body: Arc<str> = app
        .work
        .run(move || engine.query(&query).map(|a| a.to_json() + "\n"))
        .await??
        .into();
    let current = app.engine.generation();
    app.answers.put(key, generation, current, Arc::clone(&body));
    Ok(json(StatusCode::OK, body.to_string()))
}

/// `POST /v1/events`: NDJSON or an Arrow IPC stream, all or nothing.
pub async fn post_events(
    State(app): Shared,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if caller.role != Role::Write {
        return Err(ApiError::permission_denied(&caller.user));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media = content_type.as_deref().map(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let arrow = match media.as_deref() {
        Some(NDJSON) => false,
        Some(ARROW_STREAM) => true,
        _ => return Err(ApiError::unsupported_media_type(content_type.as_deref())),
    };
    let mode = ingest_mode(query.as_deref().unwrap_or(""))?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(app.max_body),
        _ => ApiError::invalid(format!(
            "invalid body: {}",
            super::status::shorten(&rejection.body_text())
        )),
    })?;
    let engine = Arc::clone(&app.engine);
    let report = app
        .work
        .run(move || {
            if arrow {
                let batches = read_arrow_stream(&body)?;
                engine.ingest_batches_with(&batches, mode)
            } else {
                engine.ingest_ndjson_bytes_with(&body, mode)
            }
        })
        .await??;
    let body = serde_json::to_string(&report.summary()).expect("a summary serialises") + "\n";
    Ok(json(StatusCode::OK, body))
}

/// Every batch of an Arrow IPC stream; a malformed stream is a data error.
fn read_arrow_stream(body: &Bytes) -> crate::Result<Vec<arrow_array::RecordBatch>> {
    let context = "arrow stream";
    guard(context, || {
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
            .map_err(|e| crate::Error::data(context, e))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::Error::data(context, e))
    })
}

/// `?mode=lenient|strict` of `POST /v1/events`; nothing else is accepted.
fn ingest_mode(query: &str) -> Result<IngestMode, ApiError> {
    let mut mode = None;
    for (k, v) in query_pairs(query)? {
        if k != "mode" {
            return Err(crate::Error::invalid(
                super::status::shorten(&k),
                "unknown parameter; expected mode",
            )
            .into());
        }
        if mode.is_some() {
            return Err(crate::Error::invalid("mode", "given more than once").into());
        }
        mode = Some(match v.as_str() {
            "lenient" => IngestMode::Lenient,
            "strict" => IngestMode::Strict,
            other => {
                return Err(crate::Error::invalid(
                    "mode",
                    format!(
                        "unknown mode `{}`; expected lenient or strict",
                        super::status::shorten(other)
                    ),
                )
                .into())
            }
        });
    }
    Ok(mode.unwrap_or(IngestMode::Strict))
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    json(StatusCode::OK, "{\"status\":\"serving\"}\n".to_owned())
}

/// `GET /metrics`.
pub async fn metrics(State(app): Shared) -> Response {
    let text = app.metrics.render(&app.engine.stats());
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    json(StatusCode::OK, super::openapi::DOCUMENT.to_owned())
}

/// Any route not listed.
pub async fn fallback(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Who sent a request, as the authentication layer established it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account name (`-` without authentication).
    pub user: String,
    /// What the account may do.
    pub role: Role,
}

/// Decoded `name=value` pairs of a query string, list parameters joined.
fn query_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in raw.split('&').filter(|item| !item.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if LIST_PARAMETERS.contains(&k.as_str()) {
            lists.entry(k).or_default().push(v);
        } else {
            pairs.push((k, v));
        }
    }
    pairs.extend(lists.into_iter().map(|(k, v)| (k, v.join(","))));
    Ok(pairs)
}

/// Form decoding of one query-string component: `+` is a space, `%XX` a
/// byte; the result must be UTF-8.
fn decode(component: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "invalid query: bad percent-encoding or UTF-8 in `{}`",
            super::status::shorten(component)
        ))
    };
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        query_pairs(raw).unwrap()
    }

    #[test]
    fn list_parameters_are_joined_whether_repeated_or_comma_separated() {
        assert_eq!(
            pairs("channel_type=web&language=en&channel_type=voice,whatsapp&version=LIVE"),
            [
                ("version".into(), "LIVE".into()),
                ("channel_type".into(), "web,voice,whatsapp".into()),
                ("language".into(), "en".into()),
            ]
        );
    }

    #[test]
    fn other_parameters_are_kept_apart_for_params_to_reject_repeats() {
        let p = pairs("version=A&version=B");
        assert_eq!(p.len(), 2);
        let e = Params::new(p).unwrap_err();
        assert!(e.to_string().contains("more than once"));
    }

    #[test]
    fn components_are_form_decoded() {
        assert_eq!(
            pairs("tz=Europe%2FBrussels&a+b=c+d&flag"),
            [
                ("tz".into(), "Europe/Brussels".into()),
                ("a b".into(), "c d".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(pairs("x=%C3%A9"), [("x".into(), "é".into())]);
        assert!(query_pairs("x=%").is_err());
        assert!(query_pairs("x=%4").is_err());
        assert!(query_pairs("x=%zz").is_err());
        assert!(query_pairs("x=%ff").is_err());
        assert!(query_pairs("%C3=1").is_err());
        assert!(pairs("&&").is_empty());
    }

    #[test]
    fn ingest_mode_takes_only_mode() {
        assert_eq!(ingest_mode("").unwrap(), IngestMode::Strict);
        assert_eq!(ingest_mode("mode=lenient").unwrap(), IngestMode::Lenient);
        assert!(ingest_mode("mode=loose").is_err());
        assert!(ingest_mode("mode=strict&mode=strict").is_err());
        assert!(ingest_mode("bot_id=x").is_err());
    }
}
