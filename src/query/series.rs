//! Execution of the three series queries over the conversation table.
//!
//! Conversations, insights and usage compile to one [`SeriesPlan`]: a
//! conversation filter, an x axis, group-by fields and a stat with its
//! aggregate. Execution scans each shard's summary columns (rayon, one shard
//! at a time under its read lock), folds matching conversations into
//! per-group [`BucketStates`] keyed by shard-local symbols, translates the
//! keys to label strings at the end of the shard, and merges the partial
//! results of the shards; merging is associative and commutative and the
//! series are sorted at the end, so the answer never depends on scheduling.
//!
//! # Memory
//!
//! The number of buckets is capped by [`crate::time::MAX_BUCKETS`], and an
//! answer's cells (series × buckets) by [`MAX_ANSWER_CELLS`]: a scan stops
//! with an invalid-query error as soon as one shard, or a merge of shards,
//! has met more groups than that allows, before the answer is built. A
//! partial result holds, per group and bucket, 8 bytes (`count`, `sum`,
//! `min`, `max`) or 24 (`mean`); a percentile's, 12 bytes per value; shard
//! partials are merged as soon as they are built, so at most a few are
//! alive at once, and the merged states become the answer's values in
//! place. Peak memory is therefore proportional to the answer's size (and
//! for a percentile, to the number of values it ranks);
//! `cargo bench --bench answer_memory` measures bytes per cell.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use super::aggregate::BucketStates;
use super::{
    Aggregate, ConversationsQuery, GroupField, InsightsQuery, ListFilter, Stat, UsageQuery,
};
use crate::answer::{Series, SeriesAnswer, SeriesData, NULL_LABEL};
use crate::error::{Error, Result};
use crate::schema::Attribute;
use crate::store::{read, sym_at, ConversationShard, Store, Sym, NULL_SYM};
use crate::time::BucketAxis;

/// Most cells (series × buckets) one answer may have. A dashboard shows a
/// few dozen series; 5M cells is e.g. 50 series of the longest axis
/// (100,000 buckets) or 13,000 series of a year of days, and its JSON is
/// tens of megabytes.
pub const MAX_ANSWER_CELLS: usize = 5_000_000;

/// The invalid-query error of an answer that would have `groups` series or
/// more, of `buckets` buckets each.
fn too_many_cells(groups: usize, buckets: usize) -> Error {
    Error::invalid(
        "group_by",
        format!(
            "the answer would have at least {groups} series × {buckets} buckets = {} cells, \
             over the limit of {MAX_ANSWER_CELLS}; narrow the range, use a larger bucket or \
             split by fewer fields",
            groups.saturating_mul(buckets)
        ),
    )
}

/// Fails when `groups` series of `buckets` buckets pass [`MAX_ANSWER_CELLS`].
fn check_cells(groups: usize, buckets: usize) -> Result<()> {
    if groups.saturating_mul(buckets) > MAX_ANSWER_CELLS {
        return Err(too_many_cells(groups, buckets));
    }
    Ok(())
}

/// What a series query asks of the conversation table.
#[derive(Debug, Clone)]
pub(crate) struct SeriesPlan {
    pub bot_id: Option<String>,
    pub version: Option<String>,
    pub team_id: Option<String>,
    pub channel_type: ListFilter,
    pub language: ListFilter,
    pub axis: BucketAxis,
    pub group_by: Vec<GroupField>,
    pub stat: Stat,
    pub aggregate: Aggregate,
}

impl SeriesPlan {
    pub fn conversations(q: &ConversationsQuery) -> Result<Self> {
        q.validate()?;
        Ok(Self {
            bot_id: Some(q.bot_id.clone()),
            version: Some(q.version.clone()),
            team_id: None,
            channel_type: q.channel_type.clone(),
            language: q.language.clone(),
            axis: BucketAxis::new(q.range, Some(q.bucket), q.tz)?,
            group_by: q.group_by.into_iter().collect(),
            stat: Stat::NumConversations,
            aggregate: Aggregate::Count,
        })
    }

    pub fn insights(q: &InsightsQuery) -> Result<Self> {
        q.validate()?;
        Ok(Self {
            bot_id: Some(q.bot_id.clone()),
            version: Some(q.version.clone()),
            team_id: None,
            channel_type: q.channel_type.clone(),
            language: q.language.clone(),
            axis: BucketAxis::new(q.range, q.bucket, q.tz)?,
            group_by: q.group_by.into_iter().collect(),
            stat: q.stat,
            aggregate: q.aggregate,
        })
    }

    pub fn usage(q: &UsageQuery) -> Result<Self> {
        q.validate()?;
        Ok(Self {
            bot_id: None,
            version: None,
            team_id: Some(q.team_id.clone()),
            channel_type: ListFilter::default(),
            language: ListFilter::default(),
            axis: BucketAxis::new(q.range, Some(q.bucket), q.tz)?,
            group_by: q.group_by.clone(),
            stat: Stat::NumConversations,
            aggregate: Aggregate::Count,
        })
    }
}

/// `floor((end − start) / 1 s)`, in i128: the difference of two i64
/// microsecond instants can exceed i64.
#[inline]
fn duration_seconds(start: i64, end: i64) -> u64 {
    let seconds = (i128::from(end) - i128::from(start)).div_euclid(1_000_000);
    u64::try_from(seconds).unwrap_or(0)
}

/// Dense ids of the groups met in one shard, in order of first meeting.
///
/// While the symbol tuples of the group-by fields fit a table of
/// [`MAX_GROUP_TABLE`] slots (every shard-local interner is small for
/// bots, versions, channels, languages, campaigns), a group's slot is its
/// tuple read as a mixed-radix number: no hashing. Otherwise a hash map
/// over the tuple.
struct GroupIndex {
    /// Per field: the slot stride (`None`: use `by_key`).
    strides: Option<Vec<usize>>,
    /// `by_slot[slot]` is the group id + 1, or 0.
    by_slot: Vec<u32>,
    by_key: hashbrown::HashMap<GroupKey, u32>,
    /// The key of each group id.
    keys: Vec<GroupKey>,
}

/// Largest direct group table, in slots (4 bytes each).
const MAX_GROUP_TABLE: usize = 1 << 16;

impl GroupIndex {
    /// An index for fields whose symbols are below `cardinalities`.
    fn new(cardinalities: &[usize]) -> Self {
        let mut strides = Vec::with_capacity(cardinalities.len());
        let mut size = 1usize;
        for &n in cardinalities {
            strides.push(size);
            // One more slot for null.
            size = size.saturating_mul(n + 1);
        }
        let table = size <= MAX_GROUP_TABLE;
        Self {
            strides: table.then_some(strides),
            by_slot: if table { vec![0; size] } else { Vec::new() },
            by_key: hashbrown::HashMap::new(),
            keys: Vec::new(),
        }
    }

    /// The group of conversation `c`; equal to `self.keys.len() - 1` for a
    /// group met for the first time.
    #[inline]
    fn id_of(&mut self, columns: &[&[Sym]], c: usize) -> usize {
        let mut key = GroupKey::default();
        for (slot, column) in key.iter_mut().zip(columns) {
            *slot = sym_at(column, c);
        }
        match &self.strides {
            Some(strides) => {
                let slot: usize = key
                    .iter()
                    .zip(strides)
                    .map(|(&sym, stride)| {
                        let s = if sym == NULL_SYM { 0 } else { sym as usize + 1 };
                        s * stride
                    })
                    .sum();
                if self.by_slot[slot] == 0 {
                    self.keys.push(key);
                    self.by_slot[slot] = self.keys.len() as u32;
                }
                self.by_slot[slot] as usize - 1
            }
            None => {
                let next = self.keys.len() as u32;
                let id = *self.by_key.entry(key).or_insert(next);
                if id == next {
                    self.keys.push(key);
                }
                id as usize
            }
        }
    }
}

/// Group key: one symbol per group-by field (at most 7 fields; unused
/// slots stay 0).
type GroupKey = [Sym; 8];

/// Label values of a group (`None` = null), in group-by order.
type GroupLabels = Vec<Option<String>>;

/// The partial result of some shards.
type Partial = HashMap<GroupLabels, BucketStates>;

/// A list filter resolved against one shard: `None` = matches all.
enum SymSet {
    All,
    Some(Vec<Sym>),
}

impl SymSet {
    /// `Option::None` when the filter can match nothing in this shard.
    fn resolve(
        filter: &ListFilter,
        shard: &ConversationShard,
        attribute: Attribute,
    ) -> Option<SymSet> {
        if filter.matches_all() {
            return Some(SymSet::All);
        }
        let interner = &shard.interners[attribute.index()];
        let syms: Vec<Sym> = filter
            .values()
            .iter()
            .filter_map(|v| interner.lookup(v))
            .collect();
        (!syms.is_empty()).then_some(SymSet::Some(syms))
    }

    #[inline]
    fn contains(&self, sym: Sym) -> bool {
        match self {
            SymSet::All => true,
            SymSet::Some(syms) => syms.contains(&sym),
        }
    }
}

/// Resolves an equality filter: `Some(None)` = no filter, `Some(Some(s))`
/// = must equal `s`, `None` = cannot match in this shard.
fn resolve_eq(value: &Option<String>, lookup: impl Fn(&str) -> Option<Sym>) -> Option<Option<Sym>> {
    match value {
        None => Some(None),
        Some(v) => lookup(v).map(Some),
    }
}

/// Folds one shard into per-group states keyed by shard symbols, then
/// returns them keyed by labels.
fn scan_shard(shard: &ConversationShard, plan: &SeriesPlan) -> Result<Partial> {
    let mut out = Partial::new();
    // Columns as held: shorter than the shard where its last
    // conversations have no value (read with `sym_at`).
    let attr = |a: Attribute| shard.attribute_values(a);
    let (Some(bot), Some(version), Some(team), Some(channels), Some(languages)) = (
        resolve_eq(&plan.bot_id, |v| shard.bots.lookup(v)),
        resolve_eq(&plan.version, |v| {
            shard.interners[Attribute::BotVersion.index()].lookup(v)
        }),
        resolve_eq(&plan.team_id, |v| {
            shard.interners[Attribute::TeamId.index()].lookup(v)
        }),
        SymSet::resolve(&plan.channel_type, shard, Attribute::ChannelType),
        SymSet::resolve(&plan.language, shard, Attribute::Language),
    ) else {
        return Ok(out);
    };
    let group_columns: Vec<&[Sym]> = plan
        .group_by
        .iter()
        .map(|g| match g {
            GroupField::BotId => shard.bot.as_slice(),
            GroupField::Attribute(a) => attr(*a),
        })
        .collect();
    let (versions, teams) = (attr(Attribute::BotVersion), attr(Attribute::TeamId));
    let (channel, language) = (attr(Attribute::ChannelType), attr(Attribute::Language));
    let buckets = plan.axis.len();
    let cardinalities: Vec<usize> = plan
        .group_by
        .iter()
        .map(|g| match g {
            GroupField::BotId => shard.bots.len(),
            GroupField::Attribute(a) => shard.interners[a.index()].len(),
        })
        .collect();
    let mut groups = GroupIndex::new(&cardinalities);
    let mut states: Vec<BucketStates> = Vec::new();
    for c in 0..shard.len() {
        if bot.is_some_and(|b| shard.bot[c] != b)
            || version.is_some_and(|v| sym_at(versions, c) != v)
            || team.is_some_and(|t| sym_at(teams, c) != t)
        {
            continue;
        }
        let Some(bucket) = plan.axis.locate(shard.start[c]) else {
            continue;
        };
        if !channels.contains(sym_at(channel, c)) || !languages.contains(sym_at(language, c)) {
            continue;
        }
        let value = match plan.stat {
            Stat::NumConversations => 1,
            Stat::DurationSeconds => duration_seconds(shard.start[c], shard.end[c]),
            Stat::NumMessages => u64::from(shard.messages_of(c)),
        };
        let group = groups.id_of(&group_columns, c);
        if group == states.len() {
            check_cells(group + 1, buckets)?;
            states.push(BucketStates::new(plan.aggregate, buckets)?);
        }
        states[group].update(bucket, value);
    }
    for (key, states) in groups.keys.into_iter().zip(states) {
        let labels: GroupLabels = plan
            .group_by
            .iter()
            .zip(key)
            .map(|(g, sym)| {
                let interner = match g {
                    GroupField::BotId => &shard.bots,
                    GroupField::Attribute(a) => &shard.interners[a.index()],
                };
                (sym != NULL_SYM)
                    .then(|| interner.resolve(sym).map(str::to_owned))
                    .flatten()
            })
            .collect();
        merge_into(&mut out, labels, states);
    }
    Ok(out)
}

fn merge_into(out: &mut Partial, labels: GroupLabels, states: BucketStates) {
    match out.get_mut(&labels) {
        Some(existing) => existing.merge(states),
        None => {
            out.insert(labels, states);
        }
    }
}

/// Merges partial results; `b` into `a`. Fails when the merged groups pass
/// the cell limit.
fn merge(mut a: Partial, b: Partial, buckets: usize) -> Result<Partial> {
    for (labels, states) in b {
        merge_into(&mut a, labels, states);
    }
    check_cells(a.len(), buckets)?;
    Ok(a)
}

/// Runs `plan` over `store`; fails only when the answer would pass
/// [`MAX_ANSWER_CELLS`] or its memory cannot be had.
pub(crate) fn run(store: &Store, plan: &SeriesPlan) -> Result<SeriesAnswer> {
    // Partials are merged as they come, so only a few are alive at once.
    // Merging is associative and commutative (and the answer is sorted), so
    // the order rayon merges in does not change the answer.
    let buckets = plan.axis.len();
    let merged = store
        .made_shards()
        .par_iter()
        .map(|shard| scan_shard(&read(shard), plan))
        .try_reduce(Partial::new, |a, b| merge(a, b, buckets))?;
    finish(merged, plan)
}

/// Final answer from merged states: evaluate, label, sort.
fn finish(mut merged: Partial, plan: &SeriesPlan) -> Result<SeriesAnswer> {
    let buckets = plan.axis.len();
    if plan.group_by.is_empty() && merged.is_empty() {
        merged.insert(Vec::new(), BucketStates::new(plan.aggregate, buckets)?);
    }
    let mut series: Vec<(String, GroupLabels, Series)> = merged
        .into_iter()
        .map(|(labels, states)| {
            let values = states.evaluate(plan.aggregate);
            let label = if plan.group_by.is_empty() {
                plan.stat.name().to_owned()
            } else {
                labels
                    .iter()
                    .map(|l| l.as_deref().unwrap_or(NULL_LABEL))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let label_map: BTreeMap<String, String> = plan
                .group_by
                .iter()
                .zip(&labels)
                .map(|(g, l)| {
                    (
                        g.name().to_owned(),
                        l.as_deref().unwrap_or(NULL_LABEL).to_owned(),
                    )
                })
                .collect();
            (label, labels, Series::new(values, label_map))
        })
        .collect();
    // Byte-wise by label (`String`'s order); a null and a literal
    // "(none)" share a label, and then null comes first.
    series.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let (series_labels, series) = series.into_iter().map(|(l, _, s)| (l, s)).unzip();
    Ok(SeriesAnswer {
        data: SeriesData {
            series,
            series_labels,
            x_values: plan.axis.x_values(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_floor_and_never_overflow() {
        assert_eq!(duration_seconds(0, 1_999_999), 1);
        assert_eq!(duration_seconds(-1, 0), 0);
        assert_eq!(duration_seconds(i64::MIN, i64::MAX), 18_446_744_073_709);
    }
}
