//! The fixed world of the synthetic data set: teams, bots and their
//! popularity, attribute value tables, the distribution of conversation
//! lengths and the seasonal distribution of conversation start times.
//!
//! Everything here is a constant or a pure function of the configuration, so
//! the generator can compute it up front; randomness comes only from the
//! caller's RNG. Only basic IEEE arithmetic is used (no `ln`/`exp`), so the
//! numbers do not depend on the platform's math library.

use rand::Rng;

/// One bot of the catalog: its id, its team and its popularity in percent of
/// all events.
pub(super) struct BotSpec {
    pub id: &'static str,
    pub team: &'static str,
    pub weight: u32,
}

/// The twelve bots, in file order (bots are written one after the other in
/// this order). Popularity is Zipf-like: sorted, the weights are
/// 25, 16, 12, 10, 8, 7, 6, 5, 4, 3, 2, 2 (percent, summing to 100).
pub(super) const BOTS: [BotSpec; 12] = [
    bot("bot-acme-support", "team-acme", 25),
    bot("bot-acme-sales", "team-acme", 7),
    bot("bot-acme-faq", "team-acme", 3),
    bot("bot-globex-support", "team-globex", 12),
    bot("bot-globex-booking", "team-globex", 8),
    bot("bot-globex-onboarding", "team-globex", 2),
    bot("bot-initech-helpdesk", "team-initech", 16),
    bot("bot-initech-hr", "team-initech", 4),
    bot("bot-initech-it", "team-initech", 6),
    bot("bot-umbrella-orders", "team-umbrella", 10),
    bot("bot-umbrella-support", "team-umbrella", 5),
    bot("bot-umbrella-survey", "team-umbrella", 2),
];

const fn bot(id: &'static str, team: &'static str, weight: u32) -> BotSpec {
    BotSpec { id, team, weight }
}

/// `bot_version` values and their weights (percent of conversations).
pub(super) const BOT_VERSIONS: [(&str, u32); 2] = [("LIVE", 90), ("DRAFT", 10)];

/// `channel_type` values and their weights (percent of conversations).
pub(super) const CHANNELS: [(&str, u32); 4] = [
    ("web", 50),
    ("whatsapp", 25),
    ("messenger", 15),
    ("voice", 10),
];

/// `language` values and their weights (percent of conversations).
pub(super) const LANGUAGES: [(&str, u32); 5] =
    [("en", 55), ("nl", 20), ("fr", 12), ("de", 8), ("es", 5)];

/// Campaign ids with the source each one runs on (a campaign has one
/// source, as in real marketing set-ups).
pub(super) const CAMPAIGNS: [(&str, &str); 8] = [
    ("cmp-01", "newsletter"),
    ("cmp-02", "facebook_ads"),
    ("cmp-03", "google_ads"),
    ("cmp-04", "referral"),
    ("cmp-05", "newsletter"),
    ("cmp-06", "facebook_ads"),
    ("cmp-07", "google_ads"),
    ("cmp-08", "referral"),
];

/// Share of conversations that came through a campaign.
pub(super) const CAMPAIGN_SHARE: f64 = 0.20;

/// Average number of events of a conversation (before truncation), used to
/// size the user pool.
pub(super) const MEAN_EVENTS_PER_CONVERSATION: u64 = 10;

/// Picks an index of `table` with probability proportional to its weight.
pub(super) fn pick_weighted<T, R: Rng>(rng: &mut R, table: &[(T, u32)]) -> usize {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total.max(1));
    for (i, (_, w)) in table.iter().enumerate() {
        if r < *w {
            return i;
        }
        r -= w;
    }
    table.len().saturating_sub(1)
}

/// Splits `events` rows over the bots by popularity, exactly: each bot gets
/// the floor of its share and the remainder goes, one row each, to the bots
/// with the largest fractional parts (ties: file order).
pub(super) fn bot_budgets(events: u64) -> [u64; 12] {
    let total_weight: u128 = BOTS.iter().map(|b| u128::from(b.weight)).sum();
    let mut budgets = [0u64; 12];
    let mut remainders = [(0u128, 0usize); 12];
    let mut assigned: u64 = 0;
    for (i, b) in BOTS.iter().enumerate() {
        let exact = u128::from(events) * u128::from(b.weight);
        // The quotient is at most `events`, so it fits in u64.
        budgets[i] = u64::try_from(exact / total_weight).unwrap_or(u64::MAX);
        remainders[i] = (exact % total_weight, i);
        assigned = assigned.saturating_add(budgets[i]);
    }
    // Largest remainder first, then file order.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = events.saturating_sub(assigned);
    for &(_, i) in remainders.iter().take(usize::try_from(left).unwrap_or(12)) {
        budgets[i] += 1;
    }
    budgets
}

/// Number of distinct users: about a third of the expected conversations.
pub(super) fn user_pool(events: u64) -> u64 {
    (events / MEAN_EVENTS_PER_CONVERSATION / 3).max(1)
}

/// Conversation lengths: `2 + k` events with `k` geometric (ratio 8/9, mean
/// 8) and capped at 58, so lengths are 2..=60 with mean about 10.
pub(super) struct LengthDistribution {
    /// `cumulative[k]` = sum of the weights of `0..k`.
    cumulative: Vec<f64>,
}

/// Shortest conversation.
const MIN_LENGTH: usize = 2;
/// Longest conversation.
const MAX_LENGTH: usize = 60;

impl LengthDistribution {
    pub(super) fn new() -> Self {
        let ratio = 8.0 / 9.0;
        let mut cumulative = Vec::with_capacity(MAX_LENGTH - MIN_LENGTH + 2);
        let mut weight = 1.0;
        let mut sum = 0.0;
        cumulative.push(sum);
        for _ in MIN_LENGTH..=MAX_LENGTH {
            sum += weight;
            cumulative.push(sum);
            weight *= ratio;
        }
        LengthDistribution { cumulative }
    }

    /// A conversation length in `2..=60`.
    pub(super) fn sample<R: Rng>(&self, rng: &mut R) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = rng.random::<f64>() * total;
        let k = self
            .cumulative
            .partition_point(|&c| c <= target)
            .saturating_sub(1);
        (MIN_LENGTH + k).min(MAX_LENGTH)
    }
}

/// 2024-01-01T00:00:00Z in ms since the epoch: the first possible start.
pub(super) const SPAN_START_MS: i64 = 1_704_067_200_000;
/// Length of the span of conversation starts: 2024-01-01 to 2024-05-01
/// (2024 is a leap year: 31 + 29 + 31 + 30 days).
pub(super) const SPAN_DAYS: i64 = 121;
const HOUR_MS: i64 = 3_600_000;
/// Hour index (from the span start) at which Europe switches to summer time:
/// 2024-03-31T01:00:00Z, 90 days and one hour in.
const EU_DST_HOUR: i64 = 90 * 24 + 1;

/// Relative activity per hour of the users' local (Central European) day:
/// quiet at night, rising in the morning, peak 14:00-16:00 local, i.e.
/// early afternoon UTC.
const LOCAL_HOUR_WEIGHT: [f64; 24] = [
    12.0, 8.0, 6.0, 5.0, 5.0, 7.0, 12.0, 25.0, 45.0, 65.0, 78.0, 86.0, 90.0, 94.0, 100.0, 100.0,
    95.0, 85.0, 72.0, 62.0, 52.0, 40.0, 28.0, 18.0,
];
/// Activity on Saturdays and Sundays relative to week days.
const WEEKEND_FACTOR: f64 = 0.6;
/// Growth of activity from the first to the last day of the span.
const TREND_GROWTH: f64 = 0.3;

/// Distribution of conversation start instants over the span, one bin per
/// UTC hour. Users are modelled as living in Central Europe: the daily and
/// weekly profile follow their local clock, so after the spring DST change
/// (2024-03-31) the UTC peak moves one hour earlier.
pub(super) struct StartTimeDistribution {
    /// `cumulative[h]` = total weight of the hours before `h`.
    cumulative: Vec<f64>,
}

impl StartTimeDistribution {
    pub(super) fn new() -> Self {
        let hours = SPAN_DAYS * 24;
        let mut cumulative = Vec::with_capacity(hours as usize + 1);
        let mut sum = 0.0;
        cumulative.push(sum);
        for h in 0..hours {
            let offset = if h < EU_DST_HOUR { 1 } else { 2 };
            let local = h + offset;
            let local_hour = (local % 24) as usize;
            // 2024-01-01 is a Monday: weekday 5 and 6 are the weekend.
            let weekday = (local / 24) % 7;
            let mut weight = LOCAL_HOUR_WEIGHT[local_hour];
            if weekday >= 5 {
                weight *= WEEKEND_FACTOR;
            }
            weight *= 1.0 + TREND_GROWTH * (h as f64) / (hours as f64);
            sum += weight;
            cumulative.push(sum);
        }
        StartTimeDistribution { cumulative }
    }

    /// The instant (ms since the epoch, whole milliseconds) at quantile
    /// `fraction` (clamped to `[0, 1)`) of the distribution.
    pub(super) fn quantile_ms(&self, fraction: f64) -> i64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let target = fraction * total;
        let last_bin = self.cumulative.len().saturating_sub(2);
        let bin = self
            .cumulative
            .partition_point(|&c| c <= target)
            .saturating_sub(1)
            .min(last_bin);
        let lo = self.cumulative[bin];
        let hi = self.cumulative[bin + 1];
        let within = if hi > lo {
            ((target - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let offset_ms = ((within * HOUR_MS as f64) as i64).min(HOUR_MS - 1);
        SPAN_START_MS + bin as i64 * HOUR_MS + offset_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn budgets_are_exact_and_skewed() {
        for events in [0u64, 1, 11, 12, 13, 99, 100, 101, 1_000_003] {
            let b = bot_budgets(events);
            assert_eq!(b.iter().sum::<u64>(), events, "events={events}");
        }
        let b = bot_budgets(1_000_000);
        assert_eq!(b[0], 250_000);
        assert_eq!(b[11], 20_000);
        assert_eq!(BOTS.iter().map(|b| b.weight).sum::<u32>(), 100);
    }

    #[test]
    fn lengths_stay_in_range_with_mean_near_ten() {
        let dist = LengthDistribution::new();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 100_000;
        let mut sum = 0;
        for _ in 0..n {
            let l = dist.sample(&mut rng);
            assert!((2..=60).contains(&l));
            sum += l;
        }
        let mean = sum as f64 / n as f64;
        assert!((9.5..10.5).contains(&mean), "mean {mean}");
    }

    #[test]
    fn start_times_cover_the_span_with_seasonality() {
        let dist = StartTimeDistribution::new();
        assert_eq!(dist.quantile_ms(0.0), SPAN_START_MS);
        let end = SPAN_START_MS + SPAN_DAYS * 24 * HOUR_MS;
        assert!(dist.quantile_ms(1.0) < end);
        assert!(dist.quantile_ms(0.999_999_9) < end);
        let mut by_hour = [0u32; 24];
        let mut weekend = 0u32;
        let n = 100_000;
        let mut previous = i64::MIN;
        for i in 0..n {
            let t = dist.quantile_ms((f64::from(i) + 0.5) / f64::from(n));
            assert!(t >= previous);
            previous = t;
            let hour = ((t / HOUR_MS) % 24) as usize;
            by_hour[hour] += 1;
            let day = (t - SPAN_START_MS) / (24 * HOUR_MS);
            if day % 7 >= 5 {
                weekend += 1;
            }
        }
        assert!(by_hour[13] > 5 * by_hour[2], "{by_hour:?}");
        let weekend_share = f64::from(weekend) / f64::from(n);
        assert!((0.15..0.25).contains(&weekend_share), "{weekend_share}");
    }
}
