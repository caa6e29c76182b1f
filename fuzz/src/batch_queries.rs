//! The queries of the `batch` fuzz target, and the errors it accepts,
//! shared with `tests/fuzz_regressions.rs` (which includes this file by
//! path: the fuzz crate is a workspace of its own, not a dependency of
//! the tests).

use convostat::{Error, ErrorKind, Params, Query};

/// Checks an error of a batch job over an input file whose name holds
/// `file_name`: a data error naming the file, or a flow's conversation
/// not found; any other error is a bug.
pub fn check_batch_error(e: &Error, file_name: &str) {
    assert!(
        matches!(e.kind(), ErrorKind::Data | ErrorKind::NotFound),
        "{e}"
    );
    if e.kind() == ErrorKind::Data {
        assert!(e.to_string().contains(file_name), "{e}");
    }
}

/// Every query kind over the seeds' bot `b1`, team `t1`, and
/// conversations `c1` (early in the seeds) and `c8` (late), both with
/// transitions.
pub fn batch_queries() -> Vec<Query> {
    let bot = [("bot_id", "b1"), ("version", "LIVE")];
    let years = [("start_time", "2000-01-01"), ("end_time", "2050-01-01")];
    let query = |kind: &str, pairs: &[(&str, &str)]| {
        Query::from_params(kind, &Params::new(pairs.iter().copied()).unwrap()).unwrap()
    };
    vec![
        query(
            "conversations",
            &[
                &bot[..],
                &years[..],
                &[("bucket", "1m"), ("group_by", "channel_type")],
            ]
            .concat(),
        ),
        query(
            "insights",
            &[
                &bot[..],
                &years[..],
                &[
                    ("bucket", "1m"),
                    ("stat", "num_messages"),
                    ("aggregate", "p95"),
                ],
            ]
            .concat(),
        ),
        query(
            "usage",
            &[
                &years[..],
                &[
                    ("team_id", "t1"),
                    ("bucket", "1m"),
                    ("group_by", "bot_id,language"),
                ],
            ]
            .concat(),
        ),
        query(
            "flow",
            &[&bot[..], &years[..], &[("conversation_id", "c1")]].concat(),
        ),
        query(
            "flow",
            &[&bot[..], &years[..], &[("conversation_id", "c8")]].concat(),
        ),
    ]
}
