//! Statistics, aggregates and their mergeable per-bucket states (SPEC 4.2).
//!
//! A [`BucketStates`] holds, for one series, the state of every bucket.
//! Like DataFusion's accumulators it has three operations: `update` (fold
//! one conversation's value in), `merge` (combine two partial states, e.g.
//! of two shards, threads or files) and `evaluate` (the final integer per
//! bucket). Merging is associative and commutative, so results do not
//! depend on how work was split.

use std::str::FromStr;

use crate::error::{Error, Result};

/// A per-conversation statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    /// How many conversations (aggregate must be `count`).
    NumConversations,
    /// `floor((end − start) / 1 s)`.
    DurationSeconds,
    /// Number of `message` events.
    NumMessages,
}

impl Stat {
    /// The stat's name, also the label of an ungrouped series.
    pub fn name(self) -> &'static str {
        match self {
            Stat::NumConversations => "num_conversations",
            Stat::DurationSeconds => "duration_seconds",
            Stat::NumMessages => "num_messages",
        }
    }

    /// `count` for `num_conversations`, `mean` otherwise.
    pub fn default_aggregate(self) -> Aggregate {
        match self {
            Stat::NumConversations => Aggregate::Count,
            _ => Aggregate::Mean,
        }
    }

    /// Whether `aggregate` may be applied to this stat.
    pub fn check(self, aggregate: Aggregate) -> Result<()> {
        if self == Stat::NumConversations && aggregate != Aggregate::Count {
            return Err(Error::invalid(
                "aggregate",
                format!("`{aggregate}` is not defined for num_conversations; only `count` is"),
            ));
        }
        Ok(())
    }
}

impl FromStr for Stat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "num_conversations" => Stat::NumConversations,
            "duration_seconds" => Stat::DurationSeconds,
            "num_messages" => Stat::NumMessages,
            _ => {
                return Err(Error::invalid(
                    "stat",
                    format!(
                        "unknown stat `{}`; expected num_conversations, duration_seconds or num_messages",
                        s.chars().take(64).collect::<String>()
                    ),
                ))
            }
        })
    }
}

impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a stat is aggregated over the conversations of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// How many.
    Count,
    /// Total.
    Sum,
    /// `sum / count`, rounded half up.
    Mean,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Exact nearest-rank percentile: the value at rank `ceil(p/100 × n)`.
    Percentile(Percentile),
}

/// The percentiles SPEC 4.2 defines; no others can be asked for.
///
/// ```
/// use convostat::{Aggregate, Percentile};
/// let p95: Aggregate = "p95".parse()?;
/// assert_eq!(p95, Aggregate::Percentile(Percentile::P95));
/// assert_eq!(Percentile::P95.rank_percent(), 95);
/// assert!("p37".parse::<Aggregate>().is_err());
/// # Ok::<(), convostat::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Percentile {
    /// The median (`p50`).
    P50,
    /// `p90`.
    P90,
    /// `p95`.
    P95,
    /// `p99`.
    P99,
}

impl Percentile {
    /// `NN` of `pNN`.
    pub fn rank_percent(self) -> u8 {
        match self {
            Percentile::P50 => 50,
            Percentile::P90 => 90,
            Percentile::P95 => 95,
            Percentile::P99 => 99,
        }
    }
}

impl Aggregate {
    /// The aggregate's name (`count`, ..., `p95`).
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Percentile(Percentile::P50) => "p50",
            Aggregate::Percentile(Percentile::P90) => "p90",
            Aggregate::Percentile(Percentile::P95) => "p95",
            Aggregate::Percentile(Percentile::P99) => "p99",
        }
    }
}

impl FromStr for Aggregate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "mean" => Aggregate::Mean,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "p50" => Aggregate::Percentile(Percentile::P50),
            "p90" => Aggregate::Percentile(Percentile::P90),
            "p95" => Aggregate::Percentile(Percentile::P95),
            "p99" => Aggregate::Percentile(Percentile::P99),
            _ => {
                return Err(Error::invalid(
                    "aggregate",
                    format!(
                        "unknown aggregate `{}`; expected count, sum, mean, min, max, p50, p90, p95 or p99",
                        s.chars().take(64).collect::<String>()
                    ),
                ))
            }
        })
    }
}

impl std::fmt::Display for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `numerator / denominator` rounded half up; 0 when `denominator` is 0.
pub(crate) fn div_round_half_up(numerator: u128, denominator: u128) -> u64 {
    if denominator == 0 {
        return 0;
    }
    // Half up: floor(n/d + 1/2) = floor((2n + d) / 2d).
    let q = (2 * numerator + denominator) / (2 * denominator);
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// Count, sum, min and max of one bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The per-bucket states of one series.
#[derive(Debug, Clone)]
pub(crate) enum BucketStates {
    /// `count`, `sum`, `mean`, `min`, `max`.
    Moments(Vec<Moments>),
    /// Percentiles keep every value.
    Values(Vec<Vec<u64>>),
}

impl BucketStates {
    /// Empty states for `buckets` buckets.
    pub fn new(aggregate: Aggregate, buckets: usize) -> Self {
        match aggregate {
            Aggregate::Percentile(_) => BucketStates::Values(vec![Vec::new(); buckets]),
            _ => BucketStates::Moments(vec![Moments::default(); buckets]),
        }
    }

    /// Folds one value into bucket `bucket`.
    #[inline]
    pub fn update(&mut self, bucket: usize, value: u64) {
        match self {
            BucketStates::Moments(m) => {
                let m = &mut m[bucket];
                m.count += 1;
                m.sum += value as u128;
                m.min = m.min.min(value);
                m.max = m.max.max(value);
            }
            BucketStates::Values(v) => v[bucket].push(value),
        }
    }

    /// Merges `other` (same aggregate, same buckets) into `self`.
    pub fn merge(&mut self, other: BucketStates) {
        match (self, other) {
            (BucketStates::Moments(a), BucketStates::Moments(b)) => {
                for (a, b) in a.iter_mut().zip(b) {
                    a.count += b.count;
                    a.sum += b.sum;
                    a.min = a.min.min(b.min);
                    a.max = a.max.max(b.max);
                }
            }
            (BucketStates::Values(a), BucketStates::Values(b)) => {
                for (a, mut b) in a.iter_mut().zip(b) {
                    a.append(&mut b);
                }
            }
            _ => debug_assert!(false, "merging states of different aggregates"),
        }
    }

    /// The final value of every bucket; an empty bucket is 0.
    pub fn evaluate(self, aggregate: Aggregate) -> Vec<u64> {
        match self {
            BucketStates::Moments(m) => m
                .into_iter()
                .map(|m| match (m.count, aggregate) {
                    (0, _) => 0,
                    (n, Aggregate::Count) => n,
                    (_, Aggregate::Sum) => u64::try_from(m.sum).unwrap_or(u64::MAX),
                    (n, Aggregate::Mean) => div_round_half_up(m.sum, n as u128),
                    (_, Aggregate::Min) => m.min,
                    (_, Aggregate::Max) => m.max,
                    (_, Aggregate::Percentile(_)) => 0,
                })
                .collect(),
            BucketStates::Values(v) => {
                let p = match aggregate {
                    Aggregate::Percentile(p) => usize::from(p.rank_percent()),
                    _ => 100,
                };
                v.into_iter()
                    .map(|mut values| nearest_rank(&mut values, p))
                    .collect()
            }
        }
    }
}

/// The value at rank `ceil(p/100 × n)` of `values` sorted ascending; 0 when
/// empty.
pub(crate) fn nearest_rank(values: &mut [u64], p: usize) -> u64 {
    let n = values.len();
    if n == 0 {
        return 0;
    }
    let rank = (p * n).div_ceil(100).clamp(1, n);
    *values.select_nth_unstable(rank - 1).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(div_round_half_up(5, 2), 3);
        assert_eq!(div_round_half_up(4, 3), 1);
        assert_eq!(div_round_half_up(5, 3), 2);
        assert_eq!(div_round_half_up(1, 2), 1);
        assert_eq!(div_round_half_up(0, 0), 0);
        assert_eq!(div_round_half_up(7, 7), 1);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(nearest_rank(&mut v, 95), 95);
        assert_eq!(nearest_rank(&mut v, 50), 50);
        let mut v = vec![7];
        assert_eq!(nearest_rank(&mut v, 99), 7);
        let mut v = vec![1, 2, 3, 4];
        assert_eq!(nearest_rank(&mut v, 50), 2);
        assert_eq!(nearest_rank(&mut v, 90), 4);
        assert_eq!(nearest_rank(&mut [], 50), 0);
    }

    #[test]
    fn split_and_merge_equals_whole() {
        for aggregate in [
            "count", "sum", "mean", "min", "max", "p50", "p90", "p95", "p99",
        ] {
            let aggregate: Aggregate = aggregate.parse().unwrap();
            let values: Vec<u64> = (0..257).map(|i| (i * 7919) % 1000).collect();
            let mut whole = BucketStates::new(aggregate, 3);
            let mut left = BucketStates::new(aggregate, 3);
            let mut right = BucketStates::new(aggregate, 3);
            for (i, &v) in values.iter().enumerate() {
                whole.update(i % 2, v);
                if i < 100 {
                    left.update(i % 2, v)
                } else {
                    right.update(i % 2, v)
                }
            }
            left.merge(right);
            let (w, m) = (whole.evaluate(aggregate), left.evaluate(aggregate));
            assert_eq!(w, m, "{aggregate}");
            assert_eq!(w[2], 0, "empty bucket of {aggregate}");
        }
    }
}
