//! Queries: the four questions of SPEC 4 as typed values, and their
//! execution over the store.
//!
//! Each query type can be built field by field or from the API's string
//! parameters ([`ConversationsQuery::from_params`] and friends), which
//! validate everything before any data is read. The three series queries
//! (conversations, insights, usage) all compile to one internal plan,
//! executed by `series` with mergeable per-bucket states; flow is looked up
//! directly by `flow`.

mod aggregate;
pub(crate) mod flow;
mod params;
pub(crate) mod series;

pub(crate) use aggregate::div_round_half_up;
pub use aggregate::{Aggregate, Stat};
pub use params::Params;

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

impl Query {
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
