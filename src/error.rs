//! The crate's one error type.
//!
//! SPEC 6 knows three kinds of failure, and [`Error`] has exactly one variant
//! for each: an invalid query (a bad or missing parameter), a not-found answer
//! (the flow of an unknown conversation) and a data error (I/O, schema or
//! corrupt input). Every message is one line and names the offending
//! parameter, column or file, so a CLI can print it as it is.
//!
//! Messages echo text that comes from users and data (parameter values,
//! paths, bad NDJSON values). The constructors make that text safe to
//! print: control characters are escaped (a newline becomes `\n`, ESC
//! `\u{1b}`), and a piece longer than [`MAX_ECHO_CHARS`] keeps its head and
//! tail around a note of how much was left out. So a 5 MB bad value gives
//! a short line, and a newline in a `--group-by` value or a path cannot
//! split it.

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
            parameter: echo(&parameter.into()),
            reason: echo(&reason.to_string()),
        }
    }

    /// A not-found error.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::NotFound(echo(&what.to_string()))
    }

    /// A data error about `context` (a file, column or row).
    pub fn data(context: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Data {
            context: echo(&context.into()),
            reason: echo(&reason.to_string()),
            source: None,
        }
    }

    /// A data error about `context` caused by `source`.
    pub fn data_from<E>(context: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Data {
            context: echo(&context.into()),
            reason: echo(&collapse_whitespace(&source.to_string())),
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
                context: format!("{}: {context}", echo(&outer.to_string())),
                reason,
                source,
            },
            other => other,
        }
    }
}

/// Longest piece of echoed text, in characters, kept whole in a message.
pub const MAX_ECHO_CHARS: usize = 512;

/// `text` made safe to echo in a one-line message: control characters
/// (newlines, tabs, ESC, DEL, C1 controls, line and paragraph separators)
/// are escaped, and text longer than [`MAX_ECHO_CHARS`] characters keeps
/// its first and last characters around a note of how much was left out.
///
/// ```
/// use convostat::error::echo;
/// assert_eq!(echo("a\nb\tc\u{1b}[31m"), "a\\nb\\tc\\u{1b}[31m");
/// let long = "x".repeat(10_000);
/// assert!(echo(&long).len() < 700);
/// assert!(echo(&long).contains("9489 characters left out"));
/// ```
pub fn echo(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= MAX_ECHO_CHARS && !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let (head, tail) = if chars <= MAX_ECHO_CHARS {
        (chars, 0)
    } else {
        (MAX_ECHO_CHARS * 2 / 3, MAX_ECHO_CHARS / 3)
    };
    let mut out = String::with_capacity(MAX_ECHO_CHARS + 64);
    for c in text.chars().take(head) {
        push_escaped(&mut out, c);
    }
    if tail > 0 {
        out.push_str(&format!("…[{} characters left out]…", chars - head - tail));
        for c in text.chars().skip(chars - tail) {
            push_escaped(&mut out, c);
        }
    }
    out
}

/// Whether `c` would break a line or a terminal: control characters and
/// the Unicode line and paragraph separators.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Appends `c`, escaped as Rust writes it when [`needs_escape`] says so
/// (`\n`, `\t`, `\r`, `\u{1b}`).
pub(crate) fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => out.extend(c.escape_unicode()),
        c => out.push(c),
    }
}

/// Underlying errors (arrow, parquet, I/O) sometimes span lines; their
/// line breaks are layout, not content, so they become single spaces.
fn collapse_whitespace(s: &str) -> String {
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
        let e = Error::data("events.parquet", "line one\nline two").within("in\tput");
        assert_eq!(e.kind(), ErrorKind::Data);
        assert_eq!(
            e.to_string(),
            "data error: in\\tput: events.parquet: line one\\nline two"
        );
        let io = std::io::Error::other("first line\n  second line");
        assert_eq!(
            Error::data_from("f", io).to_string(),
            "data error: f: first line second line"
        );
        assert_eq!(Error::not_found("x").kind(), ErrorKind::NotFound);
    }

    #[test]
    fn echoed_text_is_escaped_and_shortened() {
        let e = Error::invalid("group_by", "unknown field `a\nb\u{1b}[2J`");
        let line = e.to_string();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("a\\nb\\u{1b}[2J"), "{line}");
        let huge = format!("start{}end", "é".repeat(5_000_000));
        let line = Error::data(huge.clone(), huge).to_string();
        assert!(line.len() < 4 * MAX_ECHO_CHARS * 2, "{}", line.len());
        assert!(line.contains("start") && line.ends_with("end"));
        assert!(line.contains("4999497 characters left out"), "{line}");
        let exact = "y".repeat(MAX_ECHO_CHARS);
        assert_eq!(echo(&exact), exact);
        assert_eq!(echo("\u{2028}"), "\\u{2028}");
    }
}
