//! Queries: the four questions of SPEC 4 as typed values, and their
//! execution over the store.
//!
//! Each query type can be built with its constructor and builder methods
//! ([`ConversationsQuery::new`], [`ConversationsQuery::with_group_by`], ...)
//! or from the API's string parameters ([`ConversationsQuery::from_params`]
//! and friends). Both apply the same rules (which `group_by` fields a
//! query kind allows, only SPEC percentiles, no repeated usage fields,
//! ranges and bucket counts), before any data is read; execution checks
//! them once more, so a query whose public fields were changed after
//! construction cannot run with a broken rule. The three series queries
//! (conversations, insights, usage) all compile to one internal plan,
//! executed by `series` with mergeable per-bucket states; flow is looked up
//! directly by `flow`.

mod aggregate;
pub(crate) mod flow;
mod params;
pub(crate) mod series;

pub(crate) use aggregate::div_round_half_up;
pub use aggregate::{Aggregate, Percentile, Stat};
pub use params::Params;
pub use series::MAX_ANSWER_CELLS;

use crate::error::{Error, Result};
use crate::schema::{col, Attribute};
use crate::time::{Bucket, TimeRange, Tz};

/// A field a series can be split by (SPEC 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupField {
    /// `bot_id`
    BotId,
    /// A conversation attribute (`team_id`, `channel_type`, ...).
    Attribute(Attribute),
}

impl GroupField {
    /// The field's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            GroupField::BotId => col::BOT_ID,
            GroupField::Attribute(a) => a.column(),
        }
    }

    /// Parses a comma-separated usage `group_by` list (SPEC 4.4). An empty
    /// text means no split; an empty item (`bot_id,,language`, `bot_id,`),
    /// an unknown field or a repeated one is an invalid query.
    ///
    /// ```
    /// use convostat::GroupField;
    /// assert_eq!(GroupField::parse_list("bot_id,language")?.len(), 2);
    /// assert!(GroupField::parse_list("").unwrap().is_empty());
    /// assert!(GroupField::parse_list("bot_id,").is_err());
    /// assert!(GroupField::parse_list("bot_id,bot_id").is_err());
    /// # Ok::<(), convostat::Error>(())
    /// ```
    pub fn parse_list(text: &str) -> Result<Vec<GroupField>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let fields = text
            .split(',')
            .map(|name| {
                if name.is_empty() {
                    Err(Error::invalid(
                        "group_by",
                        format!(
                            "`{text}` has an empty item; separate field names by single commas"
                        ),
                    ))
                } else {
                    GroupField::parse(name)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        check_usage_group_by(&fields)?;
        Ok(fields)
    }

    /// Parses a usage `group_by` field (any of SPEC 4.4's seven).
    pub fn parse(value: &str) -> Result<Self> {
        use Attribute::*;
        Ok(match value {
            "bot_id" => GroupField::BotId,
            "bot_version" => GroupField::Attribute(BotVersion),
            "team_id" => GroupField::Attribute(TeamId),
            "channel_type" => GroupField::Attribute(ChannelType),
            "language" => GroupField::Attribute(Language),
            "campaign_id" => GroupField::Attribute(CampaignId),
            "campaign_source" => GroupField::Attribute(CampaignSource),
            other => {
                return Err(Error::invalid(
                    "group_by",
                    format!(
                        "unknown field `{other}`; expected any of bot_id, bot_version, team_id, \
                         channel_type, language, campaign_id, campaign_source"
                    ),
                ))
            }
        })
    }
}

/// Conversations and insights split by `channel_type` or `language` only
/// (SPEC 4.1).
fn check_bot_group_by(group_by: Option<GroupField>) -> Result<()> {
    use Attribute::{ChannelType, Language};
    match group_by {
        None | Some(GroupField::Attribute(ChannelType | Language)) => Ok(()),
        Some(other) => Err(Error::invalid(
            "group_by",
            format!(
                "unknown field `{}`; expected channel_type or language",
                other.name()
            ),
        )),
    }
}

/// Usage fields may not repeat (SPEC 4.4).
fn check_usage_group_by(group_by: &[GroupField]) -> Result<()> {
    for (i, field) in group_by.iter().enumerate() {
        if group_by[..i].contains(field) {
            return Err(Error::invalid(
                "group_by",
                format!("field `{}` is repeated", field.name()),
            ));
        }
    }
    Ok(())
}

/// A list filter (`channel_type`, `language`): a conversation matches when
/// its attribute is one of the values; an empty filter matches all.
///
/// ```
/// use convostat::ListFilter;
/// let f = ListFilter::parse("web,,whatsapp");
/// assert_eq!(f.values(), ["web", "whatsapp"]);
/// assert!(ListFilter::parse(",").matches_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    values: Vec<String>,
}

impl ListFilter {
    /// Splits `text` on `,` as written (no trimming), dropping empty items.
    pub fn parse(text: &str) -> Self {
        Self::from_values(text.split(',').filter(|s| !s.is_empty()))
    }

    /// A filter from values.
    pub fn from_values<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.retain(|v| !v.is_empty());
        values.sort();
        values.dedup();
        Self { values }
    }

    /// The accepted values, sorted; empty = all.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether this filter lets everything through.
    pub fn matches_all(&self) -> bool {
        self.values.is_empty()
    }
}

/// SPEC 4.1: the number of a bot's conversations over time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConversationsQuery {
    /// The bot.
    pub bot_id: String,
    /// Matches the conversation's `bot_version`.
    pub version: String,
    /// `[start_time, end_time)`.
    pub range: TimeRange,
    /// Zone of the buckets.
    pub tz: Tz,
    /// Bucket width (default `1d`).
    pub bucket: Bucket,
    /// Channel filter.
    pub channel_type: ListFilter,
    /// Language filter.
    pub language: ListFilter,
    /// Optional split: `channel_type` or `language` only.
    pub group_by: Option<GroupField>,
}

/// SPEC 4.2: one conversation statistic aggregated per bucket.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InsightsQuery {
    /// The bot.
    pub bot_id: String,
    /// Matches the conversation's `bot_version`.
    pub version: String,
    /// `[start_time, end_time)`.
    pub range: TimeRange,
    /// Zone of the buckets.
    pub tz: Tz,
    /// Bucket width; `None` = the whole range is one bucket.
    pub bucket: Option<Bucket>,
    /// Channel filter.
    pub channel_type: ListFilter,
    /// Language filter.
    pub language: ListFilter,
    /// Optional split: `channel_type` or `language` only.
    pub group_by: Option<GroupField>,
    /// The statistic.
    pub stat: Stat,
    /// How it is aggregated per bucket.
    pub aggregate: Aggregate,
}

/// SPEC 4.3: one conversation's transitions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FlowQuery {
    /// The bot.
    pub bot_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// Must equal the conversation's `bot_version`.
    pub version: String,
    /// Transitions with a timestamp in `[start_time, end_time)` are listed.
    pub range: TimeRange,
    /// When given, only transitions with this `message_id`.
    pub message_id: Option<String>,
}

/// SPEC 4.4: a team's conversations over time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UsageQuery {
    /// The team (matches the conversation's `team_id`).
    pub team_id: String,
    /// `[start_time, end_time)`.
    pub range: TimeRange,
    /// Zone of the buckets.
    pub tz: Tz,
    /// Bucket width.
    pub bucket: Bucket,
    /// Split fields, in order; no repeats.
    pub group_by: Vec<GroupField>,
}

/// Any of the four queries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Query {
    /// SPEC 4.1
    Conversations(ConversationsQuery),
    /// SPEC 4.2
    Insights(InsightsQuery),
    /// SPEC 4.3
    Flow(FlowQuery),
    /// SPEC 4.4
    Usage(UsageQuery),
}

impl ConversationsQuery {
    /// A query of `bot_id`'s conversations with `version` over `range`,
    /// with SPEC 4.1's defaults: UTC, `1d` buckets, no filter, no split.
    ///
    /// ```
    /// use convostat::{Attribute, ConversationsQuery, GroupField};
    /// use convostat::time::{TimeRange, Tz};
    /// let range = TimeRange::parse("2024-03-01", "2024-03-08", Tz::UTC)?;
    /// let query = ConversationsQuery::new("b1", "LIVE", range)
    ///     .with_group_by(Some(GroupField::Attribute(Attribute::Language)))?;
    /// assert!(ConversationsQuery::new("b1", "LIVE", range)
    ///     .with_group_by(Some(GroupField::BotId))
    ///     .is_err());
    /// # let _ = query;
    /// # Ok::<(), convostat::Error>(())
    /// ```
    pub fn new(bot_id: impl Into<String>, version: impl Into<String>, range: TimeRange) -> Self {
        Self {
            bot_id: bot_id.into(),
            version: version.into(),
            range,
            tz: Tz::UTC,
            bucket: Bucket::Day,
            channel_type: ListFilter::default(),
            language: ListFilter::default(),
            group_by: None,
        }
    }

    /// Splits by `channel_type` or `language`; any other field is an
    /// invalid query.
    pub fn with_group_by(mut self, group_by: Option<GroupField>) -> Result<Self> {
        check_bot_group_by(group_by)?;
        self.group_by = group_by;
        Ok(self)
    }

    /// Checks the rules that the fields alone cannot express.
    pub fn validate(&self) -> Result<()> {
        check_bot_group_by(self.group_by)
    }
}

impl InsightsQuery {
    /// A query of `stat` aggregated by `aggregate` over `range`, with
    /// SPEC 4.2's defaults: UTC, the whole range as one bucket, no filter,
    /// no split. `num_conversations` takes only `count`.
    pub fn new(
        bot_id: impl Into<String>,
        version: impl Into<String>,
        range: TimeRange,
        stat: Stat,
        aggregate: Aggregate,
    ) -> Result<Self> {
        stat.check(aggregate)?;
        Ok(Self {
            bot_id: bot_id.into(),
            version: version.into(),
            range,
            tz: Tz::UTC,
            bucket: None,
            channel_type: ListFilter::default(),
            language: ListFilter::default(),
            group_by: None,
            stat,
            aggregate,
        })
    }

    /// Splits by `channel_type` or `language`; any other field is an
    /// invalid query.
    pub fn with_group_by(mut self, group_by: Option<GroupField>) -> Result<Self> {
        check_bot_group_by(group_by)?;
        self.group_by = group_by;
        Ok(self)
    }

    /// Checks the rules that the fields alone cannot express.
    pub fn validate(&self) -> Result<()> {
        check_bot_group_by(self.group_by)?;
        self.stat.check(self.aggregate)
    }
}

impl FlowQuery {
    /// The transitions of `conversation_id` of `bot_id` at `version` over
    /// `range`, without a `message_id` filter.
    pub fn new(
        bot_id: impl Into<String>,
        conversation_id: impl Into<String>,
        version: impl Into<String>,
        range: TimeRange,
    ) -> Self {
        Self {
            bot_id: bot_id.into(),
            conversation_id: conversation_id.into(),
            version: version.into(),
            range,
            message_id: None,
        }
    }
}

impl UsageQuery {
    /// `team_id`'s conversations over `range` in `bucket`s, in UTC, with
    /// no split.
    pub fn new(team_id: impl Into<String>, range: TimeRange, bucket: Bucket) -> Self {
        Self {
            team_id: team_id.into(),
            range,
            tz: Tz::UTC,
            bucket,
            group_by: Vec::new(),
        }
    }

    /// Splits by `group_by`, in order; a repeated field is an invalid query.
    ///
    /// ```
    /// use convostat::{GroupField, UsageQuery};
    /// use convostat::time::{Bucket, TimeRange, Tz};
    /// let range = TimeRange::parse("2024-03-01", "2024-03-08", Tz::UTC)?;
    /// let query = UsageQuery::new("t1", range, Bucket::Day);
    /// assert!(query.with_group_by(vec![GroupField::BotId, GroupField::BotId]).is_err());
    /// # Ok::<(), convostat::Error>(())
    /// ```
    pub fn with_group_by(mut self, group_by: Vec<GroupField>) -> Result<Self> {
        check_usage_group_by(&group_by)?;
        self.group_by = group_by;
        Ok(self)
    }

    /// Checks the rules that the fields alone cannot express.
    pub fn validate(&self) -> Result<()> {
        check_usage_group_by(&self.group_by)
    }
}

impl Query {
    /// The query's `[start_time, end_time)`.
    pub fn range(&self) -> TimeRange {
        match self {
            Query::Conversations(q) => q.range,
            Query::Insights(q) => q.range,
            Query::Flow(q) => q.range,
            Query::Usage(q) => q.range,
        }
    }

    /// The bot every matching conversation belongs to, if the query names one.
    pub fn bot_id(&self) -> Option<&str> {
        match self {
            Query::Conversations(q) => Some(&q.bot_id),
            Query::Insights(q) => Some(&q.bot_id),
            Query::Flow(q) => Some(&q.bot_id),
            Query::Usage(_) => None,
        }
    }
}

impl From<ConversationsQuery> for Query {
    fn from(q: ConversationsQuery) -> Self {
        Query::Conversations(q)
    }
}
impl From<InsightsQuery> for Query {
    fn from(q: InsightsQuery) -> Self {
        Query::Insights(q)
    }
}
impl From<FlowQuery> for Query {
    fn from(q: FlowQuery) -> Self {
        Query::Flow(q)
    }
}
impl From<UsageQuery> for Query {
    fn from(q: UsageQuery) -> Self {
        Query::Usage(q)
    }
}
