//! Query construction from the API's string parameters.
//!
//! A thin HTTP or CLI layer passes `name=value` pairs through; this module
//! checks them all (unknown or repeated names, required ones, formats,
//! ranges) before any data is read, so that an invalid query is reported as
//! such even when the data is bad too (SPEC 4). Required parameters that are
//! present but empty count as missing.

use std::collections::BTreeMap;

use super::{
    ConversationsQuery, FlowQuery, GroupField, InsightsQuery, ListFilter, Query, Stat, UsageQuery,
};
use crate::error::{Error, Result};
use crate::schema::Attribute;
use crate::time::{parse_time_zone, Bucket, TimeRange, Tz};

/// Longest parameter value accepted. Real ids and lists are far shorter;
/// the limit stops absurd inputs before they cost work.
pub const MAX_PARAMETER_LEN: usize = 64 * 1024;

/// Validated `name → value` parameters.
///
/// ```
/// use convostat::{ConversationsQuery, Params};
/// let params = Params::new([
///     ("bot_id", "b1"), ("version", "LIVE"),
///     ("start_time", "2024-03-01"), ("end_time", "2024-03-08"),
///     ("group_by", "channel_type"),
/// ])?;
/// let query = ConversationsQuery::from_params(&params)?;
/// assert_eq!(query.bot_id, "b1");
/// # Ok::<(), convostat::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Collects pairs; a repeated name or an overlong value is an error.
    pub fn new<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut values = BTreeMap::new();
        for (k, v) in pairs {
            let (k, v): (String, String) = (k.into(), v.into());
            if k.len() > MAX_PARAMETER_LEN || v.len() > MAX_PARAMETER_LEN {
                return Err(Error::invalid(
                    truncate(&k),
                    format!("longer than {MAX_PARAMETER_LEN} bytes"),
                ));
            }
            if values.contains_key(&k) {
                return Err(Error::invalid(k, "given more than once"));
            }
            values.insert(k, v);
        }
        Ok(Self { values })
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Error::invalid(name, "is required")),
        }
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.values.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::invalid(
                truncate(k),
                format!("unknown parameter; expected any of {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn tz(&self) -> Result<Tz> {
        match self.optional("tz") {
            Some(v) => parse_time_zone(v),
            None => Ok(Tz::UTC),
        }
    }

    fn range(&self, tz: Tz) -> Result<TimeRange> {
        let start = self.required("start_time")?;
        let end = self.required("end_time")?;
        TimeRange::parse(start, end, tz)
    }

    fn bucket(&self) -> Result<Option<Bucket>> {
        self.optional("bucket").map(str::parse).transpose()
    }

    fn list(&self, name: &str) -> ListFilter {
        self.get(name).map(ListFilter::parse).unwrap_or_default()
    }

    /// `group_by` of conversations and insights: one of two fields.
    fn bot_group_by(&self) -> Result<Option<GroupField>> {
        match self.optional("group_by") {
            None => Ok(None),
            Some("channel_type") => Ok(Some(GroupField::Attribute(Attribute::ChannelType))),
            Some("language") => Ok(Some(GroupField::Attribute(Attribute::Language))),
            Some(other) => Err(Error::invalid(
                "group_by",
                format!("unknown field `{other}`; expected channel_type or language"),
            )),
        }
    }
}

/// Names in messages are cut short so that a message stays one short line.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

const SERIES_FILTERS: [&str; 9] = [
    "bot_id",
    "version",
    "start_time",
    "end_time",
    "channel_type",
    "language",
    "bucket",
    "group_by",
    "tz",
];

impl ConversationsQuery {
    /// Builds and validates a query from SPEC 4.1's parameters.
    pub fn from_params(params: &Params) -> Result<Self> {
        params.only(&SERIES_FILTERS)?;
        let bot_id = params.required("bot_id")?.to_owned();
        let version = params.required("version")?.to_owned();
        let tz = params.tz()?;
        let range = params.range(tz)?;
        let bucket = params.bucket()?.unwrap_or(Bucket::Day);
        let group_by = params.bot_group_by()?;
        let query = Self {
            bot_id,
            version,
            range,
            tz,
            bucket,
            channel_type: params.list("channel_type"),
            language: params.list("language"),
            group_by,
        };
        crate::time::BucketAxis::new(range, Some(bucket), tz)?;
        Ok(query)
    }
}

impl InsightsQuery {
    /// Builds and validates a query from SPEC 4.2's parameters.
    pub fn from_params(params: &Params) -> Result<Self> {
        let mut allowed = SERIES_FILTERS.to_vec();
        allowed.extend(["stat", "aggregate"]);
        params.only(&allowed)?;
        let bot_id = params.required("bot_id")?.to_owned();
        let version = params.required("version")?.to_owned();
        let tz = params.tz()?;
        let range = params.range(tz)?;
        let bucket = params.bucket()?;
        let group_by = params.bot_group_by()?;
        let stat: Stat = params.required("stat")?.parse()?;
        let aggregate = match params.optional("aggregate") {
            Some(a) => a.parse()?,
            None => stat.default_aggregate(),
        };
        stat.check(aggregate)?;
        crate::time::BucketAxis::new(range, bucket, tz)?;
        Ok(Self {
            bot_id,
            version,
            range,
            tz,
            bucket,
            channel_type: params.list("channel_type"),
            language: params.list("language"),
            group_by,
            stat,
            aggregate,
        })
    }
}

impl FlowQuery {
    /// Builds and validates a query from SPEC 4.3's parameters (naive
    /// times are UTC: flow has no `tz`).
    pub fn from_params(params: &Params) -> Result<Self> {
        params.only(&[
            "bot_id",
            "conversation_id",
            "version",
            "start_time",
            "end_time",
            "message_id",
        ])?;
        Ok(Self {
            bot_id: params.required("bot_id")?.to_owned(),
            conversation_id: params.required("conversation_id")?.to_owned(),
            version: params.required("version")?.to_owned(),
            range: params.range(Tz::UTC)?,
            message_id: params.optional("message_id").map(str::to_owned),
        })
    }
}

impl UsageQuery {
    /// Builds and validates a query from SPEC 4.4's parameters.
    pub fn from_params(params: &Params) -> Result<Self> {
        params.only(&[
            "team_id",
            "start_time",
            "end_time",
            "bucket",
            "group_by",
            "tz",
        ])?;
        let team_id = params.required("team_id")?.to_owned();
        let tz = params.tz()?;
        let range = params.range(tz)?;
        let bucket: Bucket = params.required("bucket")?.parse()?;
        let group_by = GroupField::parse_list(params.get("group_by").unwrap_or(""))?;
        crate::time::BucketAxis::new(range, Some(bucket), tz)?;
        Ok(Self {
            team_id,
            range,
            tz,
            bucket,
            group_by,
        })
    }
}

impl Query {
    /// Builds a query of `kind` (`conversations`, `insights`, `flow` or
    /// `usage`) from its parameters.
    pub fn from_params(kind: &str, params: &Params) -> Result<Self> {
        Ok(match kind {
            "conversations" => ConversationsQuery::from_params(params)?.into(),
            "insights" => InsightsQuery::from_params(params)?.into(),
            "flow" => FlowQuery::from_params(params)?.into(),
            "usage" => UsageQuery::from_params(params)?.into(),
            other => {
                return Err(Error::invalid(
                    "query",
                    format!(
                        "unknown query `{}`; expected conversations, insights, flow or usage",
                        truncate(other)
                    ),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::query::Aggregate;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().copied()).unwrap()
    }

    fn err_of(r: Result<impl std::fmt::Debug>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidQuery, "{e}");
        e.to_string()
    }

    const BASE: [(&str, &str); 4] = [
        ("bot_id", "b1"),
        ("version", "LIVE"),
        ("start_time", "2024-03-01"),
        ("end_time", "2024-03-02"),
    ];

    #[test]
    fn conversations_defaults() {
        let q = ConversationsQuery::from_params(&params(&BASE)).unwrap();
        assert_eq!(q.bucket, Bucket::Day);
        assert_eq!(q.tz, Tz::UTC);
        assert!(q.channel_type.matches_all());
        assert_eq!(q.group_by, None);
    }

    #[test]
    fn missing_unknown_and_repeated_parameters_are_named() {
        assert!(err_of(ConversationsQuery::from_params(&params(&BASE[1..]))).contains("`bot_id`"));
        let mut p = BASE.to_vec();
        p.push(("colour", "red"));
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("`colour`"));
        assert!(err_of(Params::new([("a", "1"), ("a", "2")])).contains("`a`"));
        let mut p = BASE.to_vec();
        p[0] = ("bot_id", "");
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("`bot_id`"));
        let long = "x".repeat(MAX_PARAMETER_LEN + 1);
        assert!(err_of(Params::new([("bot_id", long.as_str())])).contains("longer"));
    }

    #[test]
    fn group_by_rules() {
        let mut p = BASE.to_vec();
        p.push(("group_by", "team_id"));
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("group_by"));
        let usage = |g: &str| {
            UsageQuery::from_params(&params(&[
                ("team_id", "t"),
                ("start_time", "2024-03-01"),
                ("end_time", "2024-03-02"),
                ("bucket", "1h"),
                ("group_by", g),
            ]))
        };
        assert_eq!(
            usage("bot_id,channel_type").unwrap().group_by,
            vec![
                GroupField::BotId,
                GroupField::Attribute(Attribute::ChannelType)
            ]
        );
        assert!(err_of(usage("bot_id,bot_id")).contains("repeated"));
        assert!(err_of(usage("colour")).contains("colour"));
        assert!(usage("").unwrap().group_by.is_empty());
        for empty_item in ["bot_id,,channel_type", "bot_id,", ",bot_id", ","] {
            assert!(
                err_of(usage(empty_item)).contains("empty item"),
                "{empty_item}"
            );
        }
    }

    #[test]
    fn insights_stat_and_aggregate() {
        let mut p = BASE.to_vec();
        p.push(("stat", "duration_seconds"));
        let q = InsightsQuery::from_params(&params(&p)).unwrap();
        assert_eq!(q.aggregate, Aggregate::Mean);
        assert_eq!(q.bucket, None);
        p[4] = ("stat", "num_conversations");
        p.push(("aggregate", "p95"));
        assert!(err_of(InsightsQuery::from_params(&params(&p))).contains("aggregate"));
        p[4] = ("stat", "sessions");
        assert!(err_of(InsightsQuery::from_params(&params(&p))).contains("stat"));
    }

    #[test]
    fn invalid_range_bucket_and_zone() {
        let mut p = BASE.to_vec();
        p[3] = ("end_time", "2024-03-01");
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("end_time"));
        let mut p = BASE.to_vec();
        p.push(("bucket", "2d"));
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("1h, 1d, 1w, 1m"));
        let mut p = BASE.to_vec();
        p.push(("tz", "Mars/Olympus"));
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("tz"));
        let mut p = BASE.to_vec();
        p[2] = ("start_time", "1900-01-01");
        p[3] = ("end_time", "2100-01-01");
        p.push(("bucket", "1h"));
        assert!(err_of(ConversationsQuery::from_params(&params(&p))).contains("100000"));
    }

    #[test]
    fn flow_reads_naive_times_as_utc() {
        let q = FlowQuery::from_params(&params(&[
            ("bot_id", "b"),
            ("conversation_id", "c"),
            ("version", "LIVE"),
            ("start_time", "2024-03-01T10:00:00"),
            ("end_time", "2024-03-01T11:00:00"),
        ]))
        .unwrap();
        assert_eq!(q.range.start, 1_709_287_200_000_000);
        assert_eq!(q.message_id, None);
        assert!(err_of(Query::from_params("flows", &Params::default())).contains("flows"));
    }
}
