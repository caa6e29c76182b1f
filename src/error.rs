//! The crate's one error type.
//!
//! SPEC 6 knows three kinds of failure, and [`Error`] has exactly one variant
//! for each: an invalid query (a bad or missing parameter), a not-found answer
//! (the flow of an unknown conversation) and a data error (I/O, schema or
//! corrupt input). Every message is one line and names the offending
//! parameter, column or file, so a CLI can print it as it is.

use std::fmt;

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in convostat.
///
/// ```
/// use convostat::{Error, ErrorKind};
/// let err = Error::invalid("bucket", "unknown bucket `2d`; expected one of 1h, 1d, 1w, 1m");
/// assert_eq!(err.kind(), ErrorKind::InvalidQuery);
/// assert!(err.to_string().contains("bucket"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing, malformed or out of range.
    #[error("invalid query: `{parameter}`: {reason}")]
    InvalidQuery {
        /// The parameter at fault, as the API spells it (`start_time`, `bucket`, ...).
        parameter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The thing asked for does not exist (SPEC 4.3).
    #[error("not found: {0}")]
    NotFound(String),
    /// Input data could not be read: I/O, schema, corrupt or invalid values.
    #[error("data error: {context}: {reason}")]
    Data {
        /// The file, column or row at fault.
        context: String,
        /// What is wrong with it.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// The three kinds of [`Error`] (SPEC 6); the CLI maps each to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad or missing parameter, bad range, unknown bucket / stat / field.
    InvalidQuery,
    /// The flow of an unknown conversation.
    NotFound,
    /// I/O, schema or corrupt input.
    Data,
}

impl Error {
    /// An invalid-query error about `parameter`.
    pub fn invalid(parameter: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::InvalidQuery {
            parameter: parameter.into(),
            reason: reason.to_string(),
        }
    }

    /// A not-found error.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::NotFound(what.to_string())
    }

    /// A data error about `context` (a file, column or row).
    pub fn data(context: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Data {
            context: context.into(),
            reason: single_line(&reason.to_string()),
            source: None,
        }
    }

    /// A data error about `context` caused by `source`.
    pub fn data_from<E>(context: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Data {
            context: context.into(),
            reason: single_line(&source.to_string()),
            source: Some(Box::new(source)),
        }
    }

    /// Which of the three kinds this error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidQuery { .. } => ErrorKind::InvalidQuery,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Data { .. } => ErrorKind::Data,
        }
    }

    /// Prefixes the context of a data error with `outer` (e.g. a file name);
    /// other kinds are returned unchanged.
    pub fn within(self, outer: impl fmt::Display) -> Self {
        match self {
            Error::Data {
                context,
                reason,
                source,
            } => Error::Data {
                context: format!("{outer}: {context}"),
                reason,
                source,
            },
            other => other,
        }
    }
}

/// Messages are one line (SPEC 6): underlying errors sometimes are not.
fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_subject_and_are_one_line() {
        let e = Error::invalid("tz", "unknown time zone `Mars/Base`");
        assert_eq!(
            e.to_string(),
            "invalid query: `tz`: unknown time zone `Mars/Base`"
        );
        let e = Error::data("events.parquet", "line one\nline two").within("input");
        assert_eq!(e.kind(), ErrorKind::Data);
        assert_eq!(
            e.to_string(),
            "data error: input: events.parquet: line one line two"
        );
        assert_eq!(Error::not_found("x").kind(), ErrorKind::NotFound);
    }
}
