//! Execution of the flow query (SPEC 4.3): one conversation's transitions.
//!
//! The conversation is found through its key hash in one shard; only its
//! own transitions are read, sorted by `(timestamp, event_id)` to give each
//! its depth over the whole conversation, then filtered by range and
//! message id.

use super::FlowQuery;
use crate::answer::{FlowAnswer, FlowTransition, Step};
use crate::error::{Error, Result};
use crate::schema::Attribute;
use crate::store::{conversation_hash, Store};
use crate::time::format_utc_micros;

/// Runs `query` over `store`.
pub(crate) fn run(store: &Store, query: &FlowQuery) -> Result<FlowAnswer> {
    let hash = conversation_hash(&query.bot_id, &query.conversation_id);
    let shard = store.read_shard(hash);
    let not_found = || {
        Error::not_found(format!(
            "conversation `{}` of bot `{}` with version `{}`",
            query.conversation_id, query.bot_id, query.version
        ))
    };
    let c = shard
        .find(hash, &query.bot_id, &query.conversation_id)
        .ok_or_else(not_found)?;
    if shard.attribute(c, Attribute::BotVersion) != Some(query.version.as_str()) {
        return Err(not_found());
    }
    let mut transitions: Vec<_> = shard.transitions_of(c).collect();
    transitions.sort_by(|a, b| (a.timestamp, a.event_id).cmp(&(b.timestamp, b.event_id)));
    let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
    let transitions = transitions
        .iter()
        .enumerate()
        .filter(|(_, t)| query.range.contains(t.timestamp))
        .filter(|(_, t)| {
            query
                .message_id
                .as_deref()
                .is_none_or(|m| t.message_id == Some(m))
        })
        .map(|(i, t)| FlowTransition {
            id: t.event_id.to_owned(),
            from_step: Step {
                id: text(t.steps[0]),
                step_type: text(t.steps[1]),
            },
            to_step: Step {
                id: text(t.steps[2]),
                step_type: text(t.steps[3]),
            },
            depth: i as u64 + 1,
            timestamp: format_utc_micros(t.timestamp),
        })
        .collect();
    Ok(FlowAnswer {
        bot_id: query.bot_id.clone(),
        conversation_id: query.conversation_id.clone(),
        user_id: text(shard.attribute(c, Attribute::UserId)),
        transitions,
    })
}
