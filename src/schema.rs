//! The event record: canonical Arrow schema and the row type for hosts.
//!
//! SPEC 1 fixes one row per event with five required columns and eleven
//! optional ones. [`event_schema`] is that schema in its canonical physical
//! form (UTF-8 strings, microsecond UTC timestamps); ingestion accepts other
//! physical forms too and normalises them (see [`crate::ingest`]). [`Event`]
//! is the same record as a serde row, for hosts that ingest rows or NDJSON.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Column names, in canonical order.
pub mod col {
    /// Unique event id (required).
    pub const EVENT_ID: &str = "event_id";
    /// When the event happened (required).
    pub const TIMESTAMP: &str = "timestamp";
    /// The bot (required).
    pub const BOT_ID: &str = "bot_id";
    /// The conversation, unique within a bot (required).
    pub const CONVERSATION_ID: &str = "conversation_id";
    /// `message`, `transition` or another word (required).
    pub const EVENT_TYPE: &str = "event_type";
    /// The team that owns the bot.
    pub const TEAM_ID: &str = "team_id";
    /// `LIVE`, `DRAFT`, ...
    pub const BOT_VERSION: &str = "bot_version";
    /// The end user.
    pub const USER_ID: &str = "user_id";
    /// `web`, `whatsapp`, ...
    pub const CHANNEL_TYPE: &str = "channel_type";
    /// `en`, `nl`, ...
    pub const LANGUAGE: &str = "language";
    /// Campaign that brought the user.
    pub const CAMPAIGN_ID: &str = "campaign_id";
    /// `newsletter`, `facebook_ads`, ...
    pub const CAMPAIGN_SOURCE: &str = "campaign_source";
    /// A message's own id, or the message that triggered a transition.
    pub const MESSAGE_ID: &str = "message_id";
    /// Transition: the step left.
    pub const FROM_STEP_ID: &str = "from_step_id";
    /// Transition: the type of the step left.
    pub const FROM_STEP_TYPE: &str = "from_step_type";
    /// Transition: the step entered.
    pub const TO_STEP_ID: &str = "to_step_id";
    /// Transition: the type of the step entered.
    pub const TO_STEP_TYPE: &str = "to_step_type";
}

/// The `event_type` of a message event.
pub const EVENT_TYPE_MESSAGE: &str = "message";
/// The `event_type` of a transition event.
pub const EVENT_TYPE_TRANSITION: &str = "transition";

/// Every column of SPEC 1 in canonical order, with whether it is required.
pub const COLUMNS: [(&str, bool); 17] = [
    (col::EVENT_ID, true),
    (col::TIMESTAMP, true),
    (col::BOT_ID, true),
    (col::CONVERSATION_ID, true),
    (col::EVENT_TYPE, true),
    (col::TEAM_ID, false),
    (col::BOT_VERSION, false),
    (col::USER_ID, false),
    (col::CHANNEL_TYPE, false),
    (col::LANGUAGE, false),
    (col::CAMPAIGN_ID, false),
    (col::CAMPAIGN_SOURCE, false),
    (col::MESSAGE_ID, false),
    (col::FROM_STEP_ID, false),
    (col::FROM_STEP_TYPE, false),
    (col::TO_STEP_ID, false),
    (col::TO_STEP_TYPE, false),
];

/// The canonical Arrow schema of event records: UTF-8 strings and
/// `Timestamp(Microsecond, "UTC")`; required columns are non-nullable.
///
/// ```
/// let schema = convostat::event_schema();
/// assert_eq!(schema.fields().len(), 17);
/// assert!(!schema.field_with_name("bot_id").unwrap().is_nullable());
/// ```
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields: Vec<Field> = COLUMNS
                .iter()
                .map(|&(name, required)| {
                    let data_type = if name == col::TIMESTAMP {
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                    } else {
                        DataType::Utf8
                    };
                    Field::new(name, data_type, !required)
                })
                .collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// One event as a row, for hosts that ingest rows (`Engine::ingest_events`).
///
/// `timestamp` is microseconds since the Unix epoch, UTC. In JSON it is an
/// RFC 3339 string (see [`Event`]'s serde form); optional fields may be
/// absent or `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // field meanings are those of the columns in `col`.
pub struct Event {
    pub event_id: String,
    #[serde(with = "rfc3339_micros")]
    pub timestamp: i64,
    pub bot_id: String,
    pub conversation_id: String,
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_step_type: Option<String>,
}

/// Serde form of `Event::timestamp`: RFC 3339 text, µs since the epoch inside.
mod rfc3339_micros {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_utc_micros(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::time::parse_rfc3339_micros(&text).map_err(D::Error::custom)
    }
}

/// The conversation attributes of SPEC 2, taken from a conversation's first
/// event. The discriminant is the attribute's position in [`Attribute::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    /// `team_id`
    TeamId,
    /// `bot_version`
    BotVersion,
    /// `user_id`
    UserId,
    /// `channel_type`
    ChannelType,
    /// `language`
    Language,
    /// `campaign_id`
    CampaignId,
    /// `campaign_source`
    CampaignSource,
}

impl Attribute {
    /// Number of attributes.
    pub const COUNT: usize = 7;

    /// All attributes, in column order.
    pub const ALL: [Attribute; Self::COUNT] = [
        Attribute::TeamId,
        Attribute::BotVersion,
        Attribute::UserId,
        Attribute::ChannelType,
        Attribute::Language,
        Attribute::CampaignId,
        Attribute::CampaignSource,
    ];

    /// The attribute's column name.
    pub fn column(self) -> &'static str {
        match self {
            Attribute::TeamId => col::TEAM_ID,
            Attribute::BotVersion => col::BOT_VERSION,
            Attribute::UserId => col::USER_ID,
            Attribute::ChannelType => col::CHANNEL_TYPE,
            Attribute::Language => col::LANGUAGE,
            Attribute::CampaignId => col::CAMPAIGN_ID,
            Attribute::CampaignSource => col::CAMPAIGN_SOURCE,
        }
    }

    /// Position in [`Attribute::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
