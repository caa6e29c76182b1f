//! Scan scopes: which rows a query can need.
//!
//! A [`ScanScope`] restricts a scan to rows whose key columns (`bot_id`,
//! `conversation_id`, `team_id` for the usage pre-pass) take given values.
//! The Parquet reader uses it to skip row groups and to filter rows while
//! decoding; `ScanScope::retain` applies it to rows that were decoded
//! whole (NDJSON, and Parquet row groups that had to be validated whole).
//!
//! A scope may also keep a team's bots' rows, recording the bots of the
//! rows it keeps and leaves out (`team_rows`): a usage job's filter over
//! NDJSON, which the flat decoder and `retain` apply and Parquet's reader
//! does not (its rows come whole, and `retain` filters them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, BooleanArray};
use arrow_schema::{ArrowError, DataType};

use super::team_rows::{TeamRows, WITHOUT_TEAM, WITH_TEAM};
use super::EventColumns;
use crate::error::Result;
use crate::schema::{col, Attribute};

/// A restriction of a scan to rows whose key columns take given values:
/// rows outside it cannot change the answer and need not be decoded.
///
/// ```
/// use convostat::ingest::ScanScope;
/// let scope = ScanScope::all().with("bot_id", ["bot-a", "bot-b"]);
/// assert!(!scope.is_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanScope {
    /// `(column, accepted values)`; a row must match every condition.
    conditions: Vec<(String, Vec<String>)>,
    /// Columns that rows read through the scope may come without, while
    /// the switch is on.
    elided: Vec<String>,
    elision: Elision,
    /// Whether rows selected by condition may come as only those that can
    /// bound their conversation (`super::bounds`).
    bounding: bool,
    /// The rows of this team's bots only, their bots recorded
    /// ([`ScanScope::keeping_team`]).
    team: Option<TeamRows>,
}

/// Whether a scope's elided columns are still left out: a switch its
/// owner turns off mid-scan (shared by the scan's tasks).
#[derive(Debug, Clone, Default)]
pub(crate) struct Elision(Arc<AtomicBool>);

impl Elision {
    /// Columns are left out from now on (`true`) or read again (`false`).
    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Scopes are equal whatever the state of their switches.
impl PartialEq for Elision {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Elision {}

impl ScanScope {
    /// The scope that keeps everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// This scope, further restricted to rows whose `column` is one of
    /// `values` (none = no row).
    pub fn with<S: Into<String>>(
        mut self,
        column: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.sort();
        values.dedup();
        self.conditions.push((column.to_owned(), values));
        self
    }

    /// This scope, whose rows selected by condition (`RowsRead::Filtered`)
    /// may come without `columns` (rows read whole carry every column, to
    /// be validated), for as long as the returned switch is on (it starts
    /// on; each batch read checks it).
    pub(crate) fn eliding(mut self, columns: &[&str]) -> (Self, Elision) {
        self.elided.extend(columns.iter().map(|&c| c.to_owned()));
        self.elision.set(true);
        let switch = self.elision.clone();
        (self, switch)
    }

    /// This scope, whose rows selected by condition (`RowsRead::Filtered`)
    /// may come as only those that can bound their conversation in their
    /// batch (`super::bounds`), the others being counted: for a job whose
    /// answer depends on a conversation's first event and last time only.
    pub(crate) fn bounding(mut self) -> Self {
        self.bounding = true;
        self
    }

    /// This scope, further restricted to the rows of bots with an event
    /// whose `team_id` is `team`, as far as the rows read so far tell, the
    /// bots of the rows kept and left out being recorded (see
    /// [`TeamRows`]): clones of the scope share the record.
    pub(crate) fn keeping_team(mut self, team: &str) -> Self {
        self.team = Some(TeamRows::new(team));
        self
    }

    /// The team this scope keeps, and what its rows showed.
    pub(crate) fn team_rows(&self) -> Option<&TeamRows> {
        self.team.as_ref()
    }

    /// Whether the scope keeps a team and a bot of the team had rows left
    /// out before it was known to be the team's ([`TeamRows::mixed`]).
    pub(crate) fn team_mixed(&self) -> bool {
        self.team.as_ref().is_some_and(TeamRows::mixed)
    }

    /// Whether rows selected by condition may come bounded
    /// ([`ScanScope::bounding`]).
    pub(crate) fn is_bounding(&self) -> bool {
        self.bounding
    }

    /// Columns rows selected by condition may come without.
    pub(crate) fn elided(&self) -> &[String] {
        &self.elided
    }

    /// Whether [`ScanScope::elided`] columns are left out now.
    pub(crate) fn eliding_now(&self) -> bool {
        self.elision.is_on()
    }

    /// Whether the scope keeps everything. (A team kept by a batch job,
    /// `keeping_team`, does not count here: the Parquet reader reads such
    /// a scope's rows whole, and `retain` applies the team.)
    pub fn is_all(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Whether the scope picks conversations out by id (a flow, or the
    /// conversations a job reads again): its rows are a few of each row
    /// group.
    pub(crate) fn picks_conversations(&self) -> bool {
        self.conditions
            .iter()
            .any(|(column, _)| column == col::CONVERSATION_ID)
    }

    pub(crate) fn conditions(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.conditions
            .iter()
            .map(|(c, v)| (c.as_str(), v.as_slice()))
    }
}

impl ScanScope {
    /// The rows of `cols` inside the scope (conditions on columns other
    /// than `bot_id` and `conversation_id` are not applied here). With a
    /// team ([`ScanScope::keeping_team`]), rows inside the other
    /// conditions are kept when their bot is one of the team's (known, or
    /// with a row in `cols` that names the team), and the bots are
    /// recorded.
    pub(crate) fn retain(&self, cols: EventColumns) -> Result<EventColumns> {
        let mut keep: Option<Vec<bool>> = None;
        for (column, values) in self.conditions() {
            let array = match column {
                col::BOT_ID => &cols.bot_id,
                col::CONVERSATION_ID => &cols.conversation_id,
                _ => continue,
            };
            let keep = keep.get_or_insert_with(|| vec![true; cols.len()]);
            for (row, k) in keep.iter_mut().enumerate() {
                *k = *k && contains(values, array.value(row));
            }
        }
        if let Some(team) = &self.team {
            let teams = cols.attributes[Attribute::TeamId.index()].as_ref();
            let names_team =
                |row: usize| teams.is_some_and(|t| t.is_valid(row) && t.value(row) == team.team());
            let keep = keep.get_or_insert_with(|| vec![true; cols.len()]);
            // Each row's bot, by index among the batch's (one look-up a
            // row), and how the batch's rows showed each.
            let mut index: HashMap<&str, usize> = HashMap::new();
            let mut bots: Vec<(&str, u8)> = Vec::new();
            let rows: Vec<usize> = (0..cols.len())
                .map(|row| {
                    let bot = cols.bot_id.value(row);
                    let i = *index.entry(bot).or_insert_with(|| {
                        bots.push((bot, 0));
                        bots.len() - 1
                    });
                    if keep[row] && names_team(row) {
                        bots[i].1 = WITH_TEAM;
                    }
                    i
                })
                .collect();
            // The team's bots: known from rows read before, or with a row
            // in this batch that names the team.
            let known = team.known_bots();
            let team_bots: Vec<bool> = bots
                .iter()
                .map(|(bot, how)| *how == WITH_TEAM || known.iter().any(|k| k == bot))
                .collect();
            for (row, k) in keep.iter_mut().enumerate().filter(|(_, k)| **k) {
                if !team_bots[rows[row]] {
                    *k = false;
                    bots[rows[row]].1 = WITHOUT_TEAM;
                }
            }
            let seen = bots.into_iter().filter(|(_, how)| *how != 0);
            team.record(seen);
        }
        match keep {
            Some(keep) if keep.iter().any(|k| !k) => cols.filter(&BooleanArray::from(keep)),
            _ => Ok(cols),
        }
    }
}

/// Whether sorted `values` holds `v`.
#[inline]
fn contains(values: &[String], v: &str) -> bool {
    match values {
        [one] => v == one,
        _ => values.binary_search_by(|x| x.as_str().cmp(v)).is_ok(),
    }
}

/// `array ∈ values` for any string layout (`values` sorted); nulls are
/// `false`.
pub(crate) fn one_of(
    array: &ArrayRef,
    values: &[String],
) -> std::result::Result<BooleanArray, ArrowError> {
    // A dictionary: one comparison per distinct value, then a lookup per
    // row by key.
    if let Some(dict) = array.as_dictionary_opt::<Int32Type>() {
        let matches = one_of(dict.values(), values)?;
        let matches = matches.values();
        let nulls = dict.keys().nulls();
        return Ok(dict
            .keys()
            .values()
            .iter()
            .enumerate()
            .map(|(row, &key)| {
                let valid = nulls.is_none_or(|n| n.is_valid(row));
                Some(
                    valid
                        && usize::try_from(key)
                            .is_ok_and(|k| k < matches.len() && matches.value(k)),
                )
            })
            .collect());
    }
    let view = match array.data_type() {
        DataType::Utf8View => array.clone(),
        _ => arrow_cast::cast(array, &DataType::Utf8View)?,
    };
    let view = view.as_string_view();
    Ok((0..view.len())
        .map(|i| Some(view.is_valid(i) && contains(values, view.value(i))))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_scope_picks_conversations_when_it_names_them() {
        assert!(!ScanScope::all().picks_conversations());
        let bot = ScanScope::all().with(col::BOT_ID, ["b"]);
        assert!(!bot.picks_conversations());
        assert!(bot.with(col::CONVERSATION_ID, ["c"]).picks_conversations());
    }

    #[test]
    fn membership_over_layouts() {
        let plain: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![
            Some("a"),
            None,
            Some("b"),
        ]));
        assert_eq!(
            one_of(&plain, &["a".into()]).unwrap(),
            BooleanArray::from(vec![true, false, false])
        );
        let dict: ArrayRef = Arc::new(
            vec!["x", "y", "x"]
                .into_iter()
                .collect::<arrow_array::DictionaryArray<arrow_array::types::Int8Type>>(),
        );
        assert_eq!(
            one_of(&dict, &["x".into()]).unwrap(),
            BooleanArray::from(vec![true, false, true])
        );
        assert_eq!(
            one_of(&dict, &["a".into(), "x".into(), "y".into()]).unwrap(),
            BooleanArray::from(vec![true, true, true])
        );
    }
}
