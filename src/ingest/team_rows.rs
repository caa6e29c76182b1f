//! A usage job's team filter for inputs read once: NDJSON.
//!
//! A usage answer counts the conversations whose first event names the
//! team (SPEC 3). Over Parquet, a first pass reads the `bot_id` and
//! `team_id` columns alone and finds the bots with any event of the team
//! (`batch::team_bots`); the job then reads those bots' events only. An
//! NDJSON file has no columns to read alone: a first pass would parse every
//! line, and cost about as much as the job.
//!
//! [`TeamRows`] filters in the one pass instead, by bot, as the Parquet
//! job does: a row is kept when its bot has a row that names the team,
//! either among the rows read before (the bots [`TeamRows::known_bots`])
//! or in the same chunk of lines or batch. The bots of the rows kept for
//! the team and of the rows left out are recorded. A bot recorded both
//! ways had rows left out before a row of it named the team, in another
//! chunk: [`TeamRows::mixed`] is then true, and the job runs again
//! without the filter (`batch::run_input_files`). Rows of a team's bots
//! name the team in nearly every chunk, so that is rare: a bot that first
//! appears late in a chunk with events that name no team, say.
//!
//! The NDJSON flat decoder keeps a chunk's bots in a table of its own
//! (`flat_json::BotTally`) and records them here once per chunk; rows
//! read by `arrow-json`, or from Parquet in a job that mixes formats, are
//! filtered and recorded by `ScanScope::retain`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A bot seen in a row whose `team_id` is the team (a row kept).
pub(crate) const WITH_TEAM: u8 = 1;
/// A bot seen in a row whose `team_id` is another team or none (a row
/// left out).
pub(crate) const WITHOUT_TEAM: u8 = 2;

/// The team a scan keeps, and the bots its rows showed (see the module
/// docs). Clones share what they record.
#[derive(Debug, Clone)]
pub(crate) struct TeamRows {
    team: String,
    record: Arc<Mutex<Record>>,
    mixed: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Record {
    /// How each bot was seen ([`WITH_TEAM`], [`WITHOUT_TEAM`]).
    bots: HashMap<String, u8>,
    /// The bots seen [`WITH_TEAM`], shared with readers as they start a
    /// chunk (replaced, not changed, when one is added).
    known: Arc<Vec<String>>,
}

impl TeamRows {
    pub(crate) fn new(team: &str) -> Self {
        Self {
            team: team.to_owned(),
            record: Arc::default(),
            mixed: Arc::default(),
        }
    }

    /// The team whose bots' rows are kept.
    pub(crate) fn team(&self) -> &str {
        &self.team
    }

    /// The bots recorded so far with a row that names the team.
    pub(crate) fn known_bots(&self) -> Arc<Vec<String>> {
        self.lock().known.clone()
    }

    /// Records that `bot` was seen in rows `how` ([`WITH_TEAM`],
    /// [`WITHOUT_TEAM`] or both), for each pair of `seen`.
    pub(crate) fn record<'a>(&self, seen: impl IntoIterator<Item = (&'a str, u8)>) {
        let mut record = self.lock();
        let mut known: Option<Vec<String>> = None;
        for (bot, how) in seen {
            let flags = match record.bots.get_mut(bot) {
                Some(flags) => flags,
                None => record.bots.entry(bot.to_owned()).or_default(),
            };
            let before = *flags;
            *flags |= how;
            if *flags == WITH_TEAM | WITHOUT_TEAM {
                self.mixed.store(true, Ordering::Relaxed);
            }
            if before & WITH_TEAM == 0 && how & WITH_TEAM != 0 {
                known
                    .get_or_insert_with(|| record.known.as_ref().clone())
                    .push(bot.to_owned());
            }
        }
        if let Some(known) = known {
            record.known = Arc::new(known);
        }
    }

    /// Whether some bot was seen both in a row kept for the team and in a
    /// row left out: rows of a bot whose conversations may be the team's
    /// were left out, and the filtered answer cannot be trusted.
    pub(crate) fn mixed(&self) -> bool {
        self.mixed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Scopes are equal when they keep the same team, whatever they recorded.
impl PartialEq for TeamRows {
    fn eq(&self, other: &Self) -> bool {
        self.team == other.team
    }
}

impl Eq for TeamRows {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bot_seen_both_ways_is_mixed_in_any_order_and_across_clones() {
        let rows = TeamRows::new("t1");
        let other = rows.clone();
        rows.record([("b1", WITH_TEAM), ("b2", WITHOUT_TEAM)]);
        other.record([("b1", WITH_TEAM), ("b3", WITHOUT_TEAM)]);
        assert!(!rows.mixed());
        assert_eq!(*rows.known_bots(), ["b1"]);
        other.record([("b2", WITH_TEAM)]);
        assert!(rows.mixed());
        assert_eq!(*rows.known_bots(), ["b1", "b2"]);

        let both = TeamRows::new("t1");
        both.record([("b", WITH_TEAM | WITHOUT_TEAM)]);
        assert!(both.mixed());
        assert_eq!(both.team(), "t1");
        assert_eq!(both, TeamRows::new("t1"));
        assert_ne!(both, TeamRows::new("t2"));
    }

    #[test]
    fn a_snapshot_of_the_known_bots_does_not_change_under_its_holder() {
        let rows = TeamRows::new("t1");
        let before = rows.known_bots();
        rows.record([("b1", WITH_TEAM), ("b1", WITH_TEAM), ("b2", WITHOUT_TEAM)]);
        assert!(before.is_empty());
        assert_eq!(*rows.known_bots(), ["b1"]);
    }
}
