//! Calendar buckets and the x axis of a series answer (SPEC 3 and 5).
//!
//! A [`BucketAxis`] lists the starts of the buckets that cover a
//! [`TimeRange`] in a time zone, formats them as `x_values`, and maps an
//! instant to its bucket with [`BucketAxis::locate`]. Bucket starts are
//! microseconds since the Unix epoch (UTC), like every instant in the crate.
//!
//! How buckets follow the zone's wall clock, DST included, is described in
//! the [`time`](crate::time) module docs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime};
use chrono_tz::Tz;

use super::parse::{offset_at, resolve_local, shown, Gap, TimeRange, MICROS_PER_SECOND};
use crate::error::{Error, Result};

/// Maximum number of buckets in one answer (SPEC 3).
pub const MAX_BUCKETS: usize = 100_000;

/// A [`BucketAxis`] accepts instants within this many microseconds of the
/// epoch (about 95,000 years either way), far beyond what can be parsed,
/// so that its calendar arithmetic can never leave chrono's range.
const INSTANT_LIMIT: i64 = 3_000_000_000_000_000_000;

const SECONDS_PER_DAY: i64 = 86_400;

/// A bucket size, as the `bucket` parameter spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// `1h`: a wall-clock hour.
    Hour,
    /// `1d`: a local day, midnight to midnight.
    Day,
    /// `1w`: an ISO week, Monday 00:00 to Monday 00:00.
    Week,
    /// `1m`: a calendar month, the 1st 00:00 to the next 1st 00:00.
    Month,
}

impl Bucket {
    /// The parameter's spelling: `1h`, `1d`, `1w` or `1m`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "1h",
            Bucket::Day => "1d",
            Bucket::Week => "1w",
            Bucket::Month => "1m",
        }
    }

    /// An upper bound, in seconds, on how long one bucket can last. An hour
    /// bucket never exceeds an hour (a change of offset starts a new one);
    /// calendar buckets get two extra days, more than the largest jump any
    /// zone ever made (Alaska's 1867 change of date line gave a 48-hour day).
    fn max_seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3_600,
            Bucket::Day => 3 * SECONDS_PER_DAY,
            Bucket::Week => 9 * SECONDS_PER_DAY,
            Bucket::Month => 33 * SECONDS_PER_DAY,
        }
    }

    /// The usual shortest length, in seconds, to size the axis' vector.
    fn usual_seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3_600,
            Bucket::Day => SECONDS_PER_DAY,
            Bucket::Week => 7 * SECONDS_PER_DAY,
            Bucket::Month => 28 * SECONDS_PER_DAY,
        }
    }

    /// The first day of the calendar bucket that holds `date`.
    fn align(self, date: NaiveDate) -> Option<NaiveDate> {
        match self {
            Bucket::Hour | Bucket::Day => Some(date),
            Bucket::Week => {
                let back = u64::from(date.weekday().num_days_from_monday());
                date.checked_sub_days(Days::new(back))
            }
            Bucket::Month => date.with_day(1),
        }
    }

    /// The first day of the calendar bucket after the one that starts on
    /// the (aligned) `date`.
    fn advance(self, date: NaiveDate) -> Option<NaiveDate> {
        match self {
            Bucket::Hour | Bucket::Day => date.succ_opt(),
            Bucket::Week => date.checked_add_days(Days::new(7)),
            Bucket::Month => date.checked_add_months(Months::new(1)),
        }
    }
}

impl FromStr for Bucket {
    type Err = Error;

    fn from_str(s: &str) -> Result<Bucket> {
        match s {
            "1h" => Ok(Bucket::Hour),
            "1d" => Ok(Bucket::Day),
            "1w" => Ok(Bucket::Week),
            "1m" => Ok(Bucket::Month),
            _ => Err(Error::invalid(
                "bucket",
                format!(
                    "unknown bucket `{}`; expected one of 1h, 1d, 1w, 1m",
                    shown(s)
                ),
            )),
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The x axis of a series answer: the starts of the buckets that cover a
/// range in a zone.
///
/// The first bucket is the one that holds `range.start` (it may start
/// before it); then comes every bucket that starts before `range.end`.
///
/// ```
/// use convostat::time::{Bucket, BucketAxis, TimeRange, Tz};
/// let tz = Tz::Europe__Brussels;
/// let range = TimeRange::parse("2024-03-30T12:00:00", "2024-04-01T06:00:00", tz).unwrap();
/// let axis = BucketAxis::new(range, Some(Bucket::Day), tz).unwrap();
/// assert_eq!(
///     axis.x_values(),
///     ["2024-03-30T00:00:00+01:00", "2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"]
/// );
/// assert_eq!(axis.locate(range.start), Some(0));
/// assert_eq!(axis.locate(range.end), None);
/// ```
#[derive(Debug, Clone)]
pub struct BucketAxis {
    range: TimeRange,
    bucket: Option<Bucket>,
    tz: Tz,
    /// Bucket starts, µs, strictly increasing; never empty.
    starts: Vec<i64>,
    /// The zone's UTC offset (seconds east) at each start.
    offsets: Vec<i32>,
    /// The common distance between starts when they are evenly spaced
    /// (two or more buckets), for arithmetic [`BucketAxis::locate`].
    step: Option<i64>,
}

impl BucketAxis {
    /// Builds the axis of `range` in `tz`.
    ///
    /// With `bucket = None` the whole range is one bucket that starts at
    /// `range.start`. Otherwise the first bucket is the aligned bucket that
    /// holds `range.start`, followed by every bucket that starts before
    /// `range.end`.
    ///
    /// Fails when `range` is empty or reversed, or when it would give more
    /// than [`MAX_BUCKETS`] buckets (refused before any work when that is
    /// clear from the range's length alone).
    pub fn new(range: TimeRange, bucket: Option<Bucket>, tz: Tz) -> Result<BucketAxis> {
        check_range(range)?;
        let start_secs = range.start.div_euclid(MICROS_PER_SECOND);
        let Some(kind) = bucket else {
            let offset = offset_at(tz, start_secs).ok_or_else(outside)?;
            check_writable(&[range.start], &[offset])?;
            return Ok(BucketAxis {
                range,
                bucket,
                tz,
                starts: vec![range.start],
                offsets: vec![offset],
                step: None,
            });
        };
        // Both bounds are within ±INSTANT_LIMIT, so this cannot overflow.
        let span_secs = (range.end - range.start) / MICROS_PER_SECOND;
        let at_least = span_secs / kind.max_seconds();
        if at_least > MAX_BUCKETS as i64 {
            return Err(too_many(kind, Some(at_least)));
        }
        let usual = (span_secs / kind.usual_seconds() + 2).min(MAX_BUCKETS as i64 + 1);
        let mut builder = Builder {
            bucket: kind,
            end: range.end,
            starts: Vec::with_capacity(usual as usize),
            offsets: Vec::with_capacity(usual as usize),
        };
        match kind {
            Bucket::Hour => builder.hours(tz, start_secs)?,
            _ => builder.calendar(tz, start_secs)?,
        }
        let Builder {
            starts, offsets, ..
        } = builder;
        check_writable(&starts, &offsets)?;
        let step = even_step(&starts);
        Ok(BucketAxis {
            range,
            bucket,
            tz,
            starts,
            offsets,
            step,
        })
    }

    /// Number of buckets (at least one).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the axis has no bucket; never true, as every axis has one.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The range the axis covers.
    pub fn range(&self) -> TimeRange {
        self.range
    }

    /// The bucket size, `None` for a single whole-range bucket.
    pub fn bucket(&self) -> Option<Bucket> {
        self.bucket
    }

    /// The zone the buckets follow.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Bucket starts in µs since the epoch (UTC), strictly increasing.
    pub fn starts(&self) -> &[i64] {
        &self.starts
    }

    /// The index of the bucket holding `ts`, when the range contains `ts`;
    /// `None` otherwise, including for the part of the first bucket that
    /// lies before `range.start`.
    #[inline]
    pub fn locate(&self, ts: i64) -> Option<usize> {
        if !self.range.contains(ts) {
            return None;
        }
        let first = self.starts[0];
        if let Some(step) = self.step {
            // Every bucket but the last lasts exactly `step`, and the last
            // one holds everything up to the range's end.
            let index = (ts - first) / step;
            return Some((index as usize).min(self.starts.len() - 1));
        }
        Some(self.starts.partition_point(|&s| s <= ts).saturating_sub(1))
    }

    /// The bucket starts as RFC 3339 strings with second precision: `Z` when
    /// the zone is UTC (`UTC`, `Etc/UTC` or another alias of it), the zone's
    /// offset at that instant otherwise (`2024-03-31T00:00:00+01:00`, and
    /// `+00:00` for a zone such as `Europe/London` in winter).
    pub fn x_values(&self) -> Vec<String> {
        let utc = is_utc(self.tz);
        self.starts
            .iter()
            .zip(&self.offsets)
            .map(|(&start, &offset)| format_local(start, offset, utc))
            .collect()
    }
}

/// Formats `ts` (µs since the epoch) as RFC 3339 in UTC with 0, 3 or 6
/// fractional digits, as few as show it exactly.
///
/// ```
/// use convostat::time::format_utc_micros;
/// assert_eq!(format_utc_micros(1_709_287_200_250_000), "2024-03-01T10:00:00.250Z");
/// assert_eq!(format_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
/// ```
pub fn format_utc_micros(ts: i64) -> String {
    let (mut out, micros) = wall_time(ts);
    if micros % 1_000 != 0 {
        out.push_str(&format!(".{micros:06}"));
    } else if micros != 0 {
        out.push_str(&format!(".{:03}", micros / 1_000));
    }
    out.push('Z');
    out
}

/// Collects bucket starts, stopping at the range's end and refusing more
/// than [`MAX_BUCKETS`].
struct Builder {
    bucket: Bucket,
    end: i64,
    starts: Vec<i64>,
    offsets: Vec<i32>,
}

impl Builder {
    /// Adds the bucket starting at `secs` with offset `offset`; `Ok(false)`
    /// once starts reach the range's end. A start equal to the previous one
    /// (a calendar day that a zone skipped) is left out.
    fn push(&mut self, secs: i64, offset: i32) -> Result<bool> {
        let start = secs.checked_mul(MICROS_PER_SECOND).ok_or_else(outside)?;
        if start >= self.end {
            return Ok(false);
        }
        if self.starts.last().is_some_and(|&last| start <= last) {
            return Ok(true);
        }
        if self.starts.len() == MAX_BUCKETS {
            return Err(too_many(self.bucket, None));
        }
        self.starts.push(start);
        self.offsets.push(offset);
        Ok(true)
    }

    /// Hour buckets from the one holding the instant `first` (seconds).
    fn hours(&mut self, tz: Tz, first: i64) -> Result<()> {
        let (mut start, mut offset) = hour_holding(tz, first).ok_or_else(outside)?;
        while self.push(start, offset)? {
            (start, offset) = next_hour(tz, start, offset).ok_or_else(outside)?;
        }
        Ok(())
    }

    /// Day, week or month buckets from the one holding the instant `first`
    /// (seconds).
    fn calendar(&mut self, tz: Tz, first: i64) -> Result<()> {
        let kind = self.bucket;
        let offset = offset_at(tz, first).ok_or_else(outside)?;
        let wall = first
            .checked_add(i64::from(offset))
            .and_then(|local| DateTime::from_timestamp(local, 0))
            .ok_or_else(outside)?;
        let mut date = kind.align(wall.date_naive()).ok_or_else(outside)?;
        let mut start = boundary(tz, date).ok_or_else(outside)?;
        // When the clock went back across midnight, an instant whose wall
        // date is D can come after the start of D + 1: it then belongs there.
        for _ in 0..4 {
            let next_date = kind.advance(date).ok_or_else(outside)?;
            let next = boundary(tz, next_date).ok_or_else(outside)?;
            if next.0 > first {
                break;
            }
            (date, start) = (next_date, next);
        }
        while self.push(start.0, start.1)? {
            date = kind.advance(date).ok_or_else(outside)?;
            start = boundary(tz, date).ok_or_else(outside)?;
        }
        Ok(())
    }
}

/// The start (seconds) and offset of the hour bucket holding the instant
/// `secs`: an hour bucket is a stretch of time with one wall-clock hour and
/// one UTC offset.
fn hour_holding(tz: Tz, secs: i64) -> Option<(i64, i32)> {
    let offset = offset_at(tz, secs)?;
    let local = secs.checked_add(i64::from(offset))?;
    let hour = local - local.rem_euclid(3_600) - i64::from(offset);
    if hour == secs || offset_at(tz, hour)? == offset {
        return Some((hour, offset));
    }
    // The offset changed after the wall-clock hour began: the bucket starts
    // at that change. Invariant: offset(lo) != offset, offset(hi) == offset.
    let (mut lo, mut hi) = (hour, secs);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid)? == offset {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some((hi, offset))
}

/// The start (seconds) and offset of the hour bucket after the one that
/// starts at `secs` with `offset`: the next wall-clock hour, or the next
/// change of offset if that comes first.
fn next_hour(tz: Tz, secs: i64, offset: i32) -> Option<(i64, i32)> {
    let local = secs.checked_add(i64::from(offset))?;
    let hour = local - local.rem_euclid(3_600) + 3_600 - i64::from(offset);
    let then = offset_at(tz, hour)?;
    if then == offset {
        return Some((hour, offset));
    }
    // Invariant: offset(lo) == offset, offset(hi) != offset.
    let (mut lo, mut hi) = (secs, hour);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid)? == offset {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((hi, offset_at(tz, hi)?))
}

/// The first instant (seconds) of the local `date` in `tz`, and the offset
/// there: its midnight, the earlier one if midnight happens twice, or the
/// end of the gap if midnight does not exist.
fn boundary(tz: Tz, date: NaiveDate) -> Option<(i64, i32)> {
    let midnight = date.and_time(NaiveTime::MIN).and_utc().timestamp();
    let secs = resolve_local(tz, midnight, Gap::FirstInstant)?;
    Some((secs, offset_at(tz, secs)?))
}

/// The common difference of `starts` when they are evenly spaced.
fn even_step(starts: &[i64]) -> Option<i64> {
    let step = starts.get(1)? - starts[0];
    starts
        .windows(2)
        .all(|w| w[1] - w[0] == step)
        .then_some(step)
}

/// Refuses empty, reversed or absurdly far ranges.
fn check_range(range: TimeRange) -> Result<()> {
    if range.start >= range.end {
        return Err(Error::invalid(
            "end_time",
            "end_time must be after start_time",
        ));
    }
    for (parameter, ts) in [("start_time", range.start), ("end_time", range.end)] {
        if !(-INSTANT_LIMIT..=INSTANT_LIMIT).contains(&ts) {
            return Err(Error::invalid(
                parameter,
                format!(
                    "{} is outside the supported range of instants",
                    format_utc_micros(ts)
                ),
            ));
        }
    }
    Ok(())
}

/// RFC 3339 writes years 0000 to 9999 only: an axis whose first or last
/// x value (local wall time) falls outside them is an invalid query.
fn check_writable(starts: &[i64], offsets: &[i32]) -> Result<()> {
    let local_year = |i: usize| {
        let local = starts[i].saturating_add(i64::from(offsets[i]) * MICROS_PER_SECOND);
        let days = local
            .div_euclid(MICROS_PER_SECOND)
            .div_euclid(SECONDS_PER_DAY);
        civil_from_days(days).0
    };
    let (first, last) = (local_year(0), local_year(starts.len() - 1));
    if first < 0 {
        return Err(Error::invalid(
            "start_time",
            format!(
                "the first x value would be in year {first}; RFC 3339 writes years 0000 to 9999"
            ),
        ));
    }
    if last > 9999 {
        return Err(Error::invalid(
            "end_time",
            format!(
                "the last x value would be in year {last}, past 9999-12-31; \
                 RFC 3339 writes years 0000 to 9999"
            ),
        ));
    }
    Ok(())
}

/// The error for calendar arithmetic leaving chrono's range; ranges are
/// checked beforehand, so this is not expected to happen.
fn outside() -> Error {
    Error::invalid(
        "end_time",
        "the range reaches outside the supported range of instants",
    )
}

/// The error for too many buckets; `at_least` is a lower bound when known.
fn too_many(bucket: Bucket, at_least: Option<i64>) -> Error {
    let count = match at_least {
        Some(n) => format!("at least {n}"),
        None => format!("more than {MAX_BUCKETS}"),
    };
    Error::invalid(
        "bucket",
        format!(
            "bucket `{bucket}` over this range would give {count} buckets; \
             at most {MAX_BUCKETS} are allowed"
        ),
    )
}

/// Whether `tz` is UTC under one of its names (these write `Z`).
fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC
            | Tz::Etc__UTC
            | Tz::UCT
            | Tz::Etc__UCT
            | Tz::Universal
            | Tz::Etc__Universal
            | Tz::Zulu
            | Tz::Etc__Zulu
    )
}

/// `start` (µs) at second precision as RFC 3339 with `offset` (seconds
/// east), or `Z` when `utc`.
fn format_local(start: i64, offset: i32, utc: bool) -> String {
    let local = start.saturating_add(i64::from(offset) * MICROS_PER_SECOND);
    let (mut out, _) = wall_time(local);
    if utc {
        out.push('Z');
        return out;
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let (hours, minutes, seconds) = (abs / 3_600, abs % 3_600 / 60, abs % 60);
    out.push_str(&format!("{sign}{hours:02}:{minutes:02}"));
    if seconds != 0 {
        // Local mean time before ~1900 had offsets with seconds, which
        // RFC 3339 cannot write; keeping them keeps the instant exact.
        out.push_str(&format!(":{seconds:02}"));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS` of a wall time given as µs counted as if it were
/// UTC, and the µs within that second. Defined for every `i64`; a year
/// outside 0000..=9999 gets a sign and may be longer.
fn wall_time(ts: i64) -> (String, i64) {
    let secs = ts.div_euclid(MICROS_PER_SECOND);
    let micros = ts.rem_euclid(MICROS_PER_SECOND);
    let (year, month, day) = civil_from_days(secs.div_euclid(SECONDS_PER_DAY));
    let of_day = secs.rem_euclid(SECONDS_PER_DAY);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    let text = format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    );
    (text, micros)
}

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01, by 400-year eras counted from a March 1st.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    const DAYS_PER_ERA: i64 = 146_097;
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March, ..., 11 = February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small positive numbers.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::time::parse_instant;

    const S: i64 = MICROS_PER_SECOND;
    const H: i64 = 3_600 * S;
    const D: i64 = 24 * H;

    fn utc(value: &str) -> i64 {
        parse_instant("start_time", value, Tz::UTC).unwrap()
    }

    fn range(start: &str, end: &str, tz: Tz) -> TimeRange {
        TimeRange::parse(start, end, tz).unwrap()
    }

    fn axis(start: &str, end: &str, bucket: Bucket, tz: Tz) -> BucketAxis {
        let axis = BucketAxis::new(range(start, end, tz), Some(bucket), tz).unwrap();
        check_invariants(&axis);
        axis
    }

    fn lengths(axis: &BucketAxis) -> Vec<i64> {
        axis.starts().windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Structure every axis must have, and `locate` agreeing with a plain
    /// scan at every bucket boundary.
    fn check_invariants(axis: &BucketAxis) {
        let starts = axis.starts();
        let r = axis.range();
        assert!(!axis.is_empty());
        assert_eq!(axis.len(), starts.len());
        assert!(starts[0] <= r.start);
        assert!(*starts.last().unwrap() < r.end);
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(axis.offsets.len(), starts.len());
        if let Some(b) = axis.bucket() {
            assert!(lengths(axis).iter().all(|&l| l <= b.max_seconds() * S));
        }
        let expect = |ts: i64| {
            r.contains(ts)
                .then(|| starts.partition_point(|&s| s <= ts) - 1)
        };
        for (i, &s) in starts.iter().enumerate() {
            for ts in [s - 1, s, s + 1] {
                assert_eq!(axis.locate(ts), expect(ts), "ts {ts}");
            }
            if i > 0 {
                assert_eq!(axis.locate(s - 1).unwrap_or(i - 1), i - 1);
            }
        }
        for ts in [
            r.start - 1,
            r.start,
            r.start + 1,
            r.end - 1,
            r.end,
            r.end + 1,
        ] {
            assert_eq!(axis.locate(ts), expect(ts), "ts {ts}");
        }
    }

    #[test]
    fn bucket_names() {
        for (text, bucket) in [
            ("1h", Bucket::Hour),
            ("1d", Bucket::Day),
            ("1w", Bucket::Week),
            ("1m", Bucket::Month),
        ] {
            assert_eq!(text.parse::<Bucket>().unwrap(), bucket);
            assert_eq!(bucket.as_str(), text);
            assert_eq!(bucket.to_string(), text);
        }
        for bad in [
            "", "2d", "1H", "1 h", "h", "1hour", "1y", "1M", " 1h", "1h ",
        ] {
            let err = bad.parse::<Bucket>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidQuery);
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid query: `bucket`: unknown bucket `{bad}`; \
                     expected one of 1h, 1d, 1w, 1m"
                )
            );
        }
    }

    #[test]
    fn utc_hours_write_z() {
        let a = axis(
            "2024-03-01T00:00:00Z",
            "2024-03-01T03:00:00Z",
            Bucket::Hour,
            Tz::UTC,
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-03-01T00:00:00Z",
                "2024-03-01T01:00:00Z",
                "2024-03-01T02:00:00Z"
            ]
        );
        assert_eq!(a.step, Some(H));
        for tz in [Tz::Etc__UTC, Tz::Zulu, Tz::Etc__Universal, Tz::UCT] {
            let a = axis("2024-03-01", "2024-03-02", Bucket::Day, tz);
            assert_eq!(a.x_values(), ["2024-03-01T00:00:00Z"]);
        }
        // Zero offset in a zone that is not UTC writes +00:00.
        for tz in [Tz::Europe__London, Tz::Etc__GMT, Tz::Africa__Abidjan] {
            let a = axis("2024-03-01", "2024-03-02", Bucket::Day, tz);
            assert_eq!(a.x_values(), ["2024-03-01T00:00:00+00:00"]);
        }
    }

    #[test]
    fn days_across_brussels_spring_last_23_hours() {
        let tz = Tz::Europe__Brussels;
        let a = axis("2024-03-30", "2024-04-02", Bucket::Day, tz);
        assert_eq!(
            a.x_values(),
            [
                "2024-03-30T00:00:00+01:00",
                "2024-03-31T00:00:00+01:00",
                "2024-04-01T00:00:00+02:00"
            ]
        );
        assert_eq!(a.starts()[0], utc("2024-03-29T23:00:00Z"));
        assert_eq!(lengths(&a), [24 * H, 23 * H]);
        assert_eq!(a.step, None);
        assert_eq!(a.locate(utc("2024-03-31T21:59:59.999999Z")), Some(1));
        assert_eq!(a.locate(utc("2024-03-31T22:00:00Z")), Some(2));
        assert_eq!(a.locate(utc("2024-04-01T21:59:59.999999Z")), Some(2));
        assert_eq!(a.locate(utc("2024-04-01T22:00:00Z")), None);
    }

    #[test]
    fn days_across_brussels_autumn_last_25_hours() {
        let tz = Tz::Europe__Brussels;
        let a = axis("2024-10-26", "2024-10-29", Bucket::Day, tz);
        assert_eq!(
            a.x_values(),
            [
                "2024-10-26T00:00:00+02:00",
                "2024-10-27T00:00:00+02:00",
                "2024-10-28T00:00:00+01:00"
            ]
        );
        assert_eq!(lengths(&a), [24 * H, 25 * H]);
        assert_eq!(a.locate(utc("2024-10-27T22:59:59.999999Z")), Some(1));
        assert_eq!(a.locate(utc("2024-10-27T23:00:00Z")), Some(2));
    }

    #[test]
    fn hours_across_the_autumn_fold_repeat_02_00() {
        let tz = Tz::Europe__Brussels;
        let a = axis(
            "2024-10-27T01:00:00",
            "2024-10-27T04:00:00",
            Bucket::Hour,
            tz,
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-10-27T01:00:00+02:00",
                "2024-10-27T02:00:00+02:00",
                "2024-10-27T02:00:00+01:00",
                "2024-10-27T03:00:00+01:00"
            ]
        );
        assert_eq!(a.starts()[1], utc("2024-10-27T00:00:00Z"));
        assert_eq!(a.starts()[2], utc("2024-10-27T01:00:00Z"));
        assert_eq!(a.step, Some(H));
        assert_eq!(a.locate(utc("2024-10-27T00:59:59.999999Z")), Some(1));
        assert_eq!(a.locate(utc("2024-10-27T01:00:00Z")), Some(2));
    }

    #[test]
    fn hours_across_the_spring_gap_skip_02_00() {
        let tz = Tz::Europe__Brussels;
        let a = axis(
            "2024-03-31T01:00:00",
            "2024-03-31T05:00:00",
            Bucket::Hour,
            tz,
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-03-31T01:00:00+01:00",
                "2024-03-31T03:00:00+02:00",
                "2024-03-31T04:00:00+02:00"
            ]
        );
        assert_eq!(lengths(&a), [H, H]);
        // Starting inside the gap: 02:30 is read as 03:30+02:00.
        let a = axis(
            "2024-03-31T02:30:00",
            "2024-03-31T05:00:00",
            Bucket::Hour,
            tz,
        );
        assert_eq!(
            a.x_values(),
            ["2024-03-31T03:00:00+02:00", "2024-03-31T04:00:00+02:00"]
        );
    }

    #[test]
    fn kolkata_half_hour_offset() {
        let tz = Tz::Asia__Kolkata;
        let a = axis(
            "2024-03-01T10:10:00Z",
            "2024-03-01T12:00:00Z",
            Bucket::Hour,
            tz,
        );
        assert_eq!(
            a.starts(),
            [
                utc("2024-03-01T09:30:00Z"),
                utc("2024-03-01T10:30:00Z"),
                utc("2024-03-01T11:30:00Z")
            ]
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-03-01T15:00:00+05:30",
                "2024-03-01T16:00:00+05:30",
                "2024-03-01T17:00:00+05:30"
            ]
        );
        assert_eq!(a.locate(utc("2024-03-01T10:10:00Z")), Some(0));
        assert_eq!(a.locate(utc("2024-03-01T10:29:59.999999Z")), Some(0));
        assert_eq!(a.locate(utc("2024-03-01T10:30:00Z")), Some(1));
        let a = axis(
            "2024-03-01T00:00:00Z",
            "2024-03-03T00:00:00Z",
            Bucket::Day,
            tz,
        );
        assert_eq!(
            a.starts(),
            [
                utc("2024-02-29T18:30:00Z"),
                utc("2024-03-01T18:30:00Z"),
                utc("2024-03-02T18:30:00Z")
            ]
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-03-01T00:00:00+05:30",
                "2024-03-02T00:00:00+05:30",
                "2024-03-03T00:00:00+05:30"
            ]
        );
        assert_eq!(a.step, Some(D));
        assert_eq!(a.locate(utc("2024-03-01T18:29:59.999999Z")), Some(0));
        assert_eq!(a.locate(utc("2024-03-01T18:30:00Z")), Some(1));
    }

    #[test]
    fn kathmandu_three_quarter_hour_offset() {
        let a = axis(
            "2024-03-01T10:00:00Z",
            "2024-03-01T12:00:00Z",
            Bucket::Hour,
            Tz::Asia__Kathmandu,
        );
        assert_eq!(
            a.starts(),
            [
                utc("2024-03-01T09:15:00Z"),
                utc("2024-03-01T10:15:00Z"),
                utc("2024-03-01T11:15:00Z")
            ]
        );
        assert_eq!(a.x_values()[0], "2024-03-01T15:00:00+05:45");
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        let tz = Tz::Australia__Lord_Howe;
        // Spring: 02:00+10:30 -> 02:30+11:00; the 02 hour lasts 30 minutes.
        let a = axis(
            "2024-10-06T01:00:00",
            "2024-10-06T04:00:00",
            Bucket::Hour,
            tz,
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-10-06T01:00:00+10:30",
                "2024-10-06T02:30:00+11:00",
                "2024-10-06T03:00:00+11:00"
            ]
        );
        assert_eq!(lengths(&a), [H, H / 2]);
        // Autumn: 02:00+11:00 -> 01:30+10:30; the repeated half hour is a
        // bucket of its own.
        let a = axis(
            "2024-04-07T00:00:00",
            "2024-04-07T04:00:00",
            Bucket::Hour,
            tz,
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-04-07T00:00:00+11:00",
                "2024-04-07T01:00:00+11:00",
                "2024-04-07T01:30:00+10:30",
                "2024-04-07T02:00:00+10:30",
                "2024-04-07T03:00:00+10:30"
            ]
        );
        assert_eq!(lengths(&a), [H, H, H / 2, H]);
        // Starting inside the repeated half hour.
        let start = utc("2024-04-07T01:45:00+10:30");
        let a = BucketAxis::new(
            TimeRange {
                start,
                end: start + H,
            },
            Some(Bucket::Hour),
            tz,
        )
        .unwrap();
        check_invariants(&a);
        assert_eq!(a.x_values()[0], "2024-04-07T01:30:00+10:30");
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn weeks_start_on_monday_across_a_year_boundary() {
        let a = axis("2021-01-01", "2021-01-12", Bucket::Week, Tz::UTC);
        assert_eq!(
            a.x_values(),
            [
                "2020-12-28T00:00:00Z",
                "2021-01-04T00:00:00Z",
                "2021-01-11T00:00:00Z"
            ]
        );
        assert_eq!(a.step, Some(7 * D));
        assert_eq!(a.locate(utc("2021-01-03T23:59:59.999999Z")), Some(0));
        assert_eq!(a.locate(utc("2021-01-04T00:00:00Z")), Some(1));
        assert_eq!(a.locate(utc("2020-12-31T23:59:59.999999Z")), None);
        // A Monday start is its own week; an end on a Monday stops before it.
        let a = axis("2024-12-30", "2025-01-13", Bucket::Week, Tz::UTC);
        assert_eq!(
            a.x_values(),
            ["2024-12-30T00:00:00Z", "2025-01-06T00:00:00Z"]
        );
        // Across DST, in local time.
        let a = axis(
            "2024-03-27",
            "2024-04-02",
            Bucket::Week,
            Tz::Europe__Brussels,
        );
        assert_eq!(
            a.x_values(),
            ["2024-03-25T00:00:00+01:00", "2024-04-01T00:00:00+02:00"]
        );
        assert_eq!(lengths(&a), [7 * D - H]);
    }

    #[test]
    fn months_across_a_leap_february_and_dst() {
        let a = axis("2024-01-15", "2024-04-10", Bucket::Month, Tz::UTC);
        assert_eq!(
            a.x_values(),
            [
                "2024-01-01T00:00:00Z",
                "2024-02-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
                "2024-04-01T00:00:00Z"
            ]
        );
        assert_eq!(lengths(&a), [31 * D, 29 * D, 31 * D]);
        assert_eq!(a.locate(utc("2024-02-29T23:59:59.999999Z")), Some(1));
        assert_eq!(a.locate(utc("2024-03-01T00:00:00Z")), Some(2));
        assert_eq!(a.locate(utc("2024-04-09T23:59:59.999999Z")), Some(3));
        let a = axis("2023-02-01", "2023-03-02", Bucket::Month, Tz::UTC);
        assert_eq!(lengths(&a), [28 * D]);
        let a = axis(
            "2024-02-01",
            "2024-05-01",
            Bucket::Month,
            Tz::Europe__Brussels,
        );
        assert_eq!(
            a.x_values(),
            [
                "2024-02-01T00:00:00+01:00",
                "2024-03-01T00:00:00+01:00",
                "2024-04-01T00:00:00+02:00"
            ]
        );
        assert_eq!(lengths(&a), [29 * D, 31 * D - H]);
        assert_eq!(a.locate(utc("2024-03-31T21:59:59.999999Z")), Some(1));
        assert_eq!(a.locate(utc("2024-03-31T22:00:00Z")), Some(2));
    }

    #[test]
    fn range_shorter_than_one_bucket() {
        let a = axis(
            "2024-03-01T10:20:00Z",
            "2024-03-01T10:40:00Z",
            Bucket::Hour,
            Tz::UTC,
        );
        assert_eq!(a.starts(), [utc("2024-03-01T10:00:00Z")]);
        assert_eq!(a.x_values(), ["2024-03-01T10:00:00Z"]);
        // The part of the first bucket before the range is not located.
        assert_eq!(a.locate(utc("2024-03-01T10:00:00Z")), None);
        assert_eq!(a.locate(utc("2024-03-01T10:19:59.999999Z")), None);
        assert_eq!(a.locate(utc("2024-03-01T10:20:00Z")), Some(0));
        assert_eq!(a.locate(utc("2024-03-01T10:39:59.999999Z")), Some(0));
        assert_eq!(a.locate(utc("2024-03-01T10:40:00Z")), None);
        for bucket in [Bucket::Day, Bucket::Week, Bucket::Month] {
            let a = axis(
                "2024-03-14T10:00:00Z",
                "2024-03-14T10:00:01Z",
                bucket,
                Tz::UTC,
            );
            assert_eq!(a.len(), 1);
            assert!(a.starts()[0] < a.range().start);
        }
        // One microsecond.
        let a = axis(
            "2024-03-01T10:20:00Z",
            "2024-03-01T10:20:00.000001Z",
            Bucket::Hour,
            Tz::UTC,
        );
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn aligned_start_before_range_is_not_located() {
        let a = axis(
            "2024-03-01T10:20:00Z",
            "2024-03-01T13:00:00Z",
            Bucket::Hour,
            Tz::UTC,
        );
        assert_eq!(a.len(), 3);
        let first = a.starts()[0];
        for ts in [first, first + 1, a.range().start - 1] {
            assert_eq!(a.locate(ts), None);
        }
        let a = axis(
            "2024-03-14T12:00:00",
            "2024-03-20",
            Bucket::Day,
            Tz::Asia__Kolkata,
        );
        assert_eq!(a.locate(a.starts()[0]), None);
        assert_eq!(a.locate(a.range().start), Some(0));
    }

    #[test]
    fn the_last_bucket_starts_before_the_end() {
        let a = axis("2024-03-01", "2024-03-03", Bucket::Day, Tz::UTC);
        assert_eq!(a.len(), 2);
        let a = axis(
            "2024-03-01",
            "2024-03-03T00:00:00.000001Z",
            Bucket::Day,
            Tz::UTC,
        );
        assert_eq!(a.len(), 3);
        assert_eq!(a.locate(a.range().end - 1), Some(2));
        let a = axis(
            "2024-03-01",
            "2024-03-02T23:59:59.999999Z",
            Bucket::Day,
            Tz::UTC,
        );
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn at_most_max_buckets() {
        let start = utc("2024-01-01T00:00:00Z");
        let hours = |end| BucketAxis::new(TimeRange { start, end }, Some(Bucket::Hour), Tz::UTC);
        let a = hours(start + MAX_BUCKETS as i64 * H).unwrap();
        assert_eq!(a.len(), MAX_BUCKETS);
        assert_eq!(
            a.locate(start + MAX_BUCKETS as i64 * H - 1),
            Some(MAX_BUCKETS - 1)
        );
        let err = hours(start + MAX_BUCKETS as i64 * H + 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidQuery);
        assert_eq!(
            err.to_string(),
            "invalid query: `bucket`: bucket `1h` over this range would give more than \
             100000 buckets; at most 100000 are allowed"
        );
        // The same in a zone with DST (the slow path).
        let tz = Tz::Europe__Brussels;
        let start = parse_instant("start_time", "2024-01-01", tz).unwrap();
        let a = BucketAxis::new(
            TimeRange {
                start,
                end: start + MAX_BUCKETS as i64 * H,
            },
            Some(Bucket::Hour),
            tz,
        )
        .unwrap();
        assert_eq!(a.len(), MAX_BUCKETS);
        check_invariants(&a);
        // Days: not refused up front, but while counting.
        let start = utc("1800-01-01T00:00:00Z");
        let days = |end| BucketAxis::new(TimeRange { start, end }, Some(Bucket::Day), tz);
        assert_eq!(
            days(start + 100_000 * D - 2 * H).unwrap().len(),
            MAX_BUCKETS
        );
        let text = days(start + 100_001 * D).unwrap_err().to_string();
        assert!(text.contains("more than 100000 buckets"), "{text}");
    }

    #[test]
    fn huge_ranges_are_refused_up_front() {
        let r = range("0001-01-01", "9999-12-31", Tz::UTC);
        for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week, Bucket::Month] {
            let started = std::time::Instant::now();
            let err = BucketAxis::new(r, Some(bucket), Tz::Europe__Brussels).unwrap_err();
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            assert_eq!(err.kind(), ErrorKind::InvalidQuery);
            let text = err.to_string();
            assert!(text.contains("`bucket`"), "{text}");
            assert!(text.contains("would give at least"), "{text}");
            assert!(text.contains("at most 100000 are allowed"), "{text}");
        }
        // Without a bucket any range is one bucket.
        let a = BucketAxis::new(r, None, Tz::UTC).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a.locate(utc("5000-01-01T00:00:00Z")), Some(0));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for (start, end) in [
            (10, 10),
            (10, 9),
            (i64::MIN, 0),
            (0, i64::MAX),
            (i64::MIN, i64::MAX),
        ] {
            for bucket in [None, Some(Bucket::Hour), Some(Bucket::Month)] {
                let err = BucketAxis::new(TimeRange { start, end }, bucket, Tz::UTC).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidQuery);
            }
        }
        let err = BucketAxis::new(TimeRange { start: 1, end: 0 }, None, Tz::UTC).unwrap_err();
        assert!(err.to_string().contains("`end_time`"));
        assert!(err.to_string().contains("must be after start_time"));
        // Near the limit the calendar arithmetic still works, and the axis
        // is refused only because RFC 3339 cannot write its years.
        let start = INSTANT_LIMIT - D;
        for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week, Bucket::Month] {
            let r = TimeRange {
                start,
                end: INSTANT_LIMIT,
            };
            let err = BucketAxis::new(r, Some(bucket), Tz::Pacific__Kiritimati).unwrap_err();
            assert!(err.to_string().contains("past 9999-12-31"), "{err}");
            let r = TimeRange {
                start: -INSTANT_LIMIT,
                end: -INSTANT_LIMIT + D,
            };
            let err = BucketAxis::new(r, Some(bucket), Tz::Etc__GMTPlus12).unwrap_err();
            assert!(err.to_string().contains("years 0000 to 9999"), "{err}");
        }
    }

    #[test]
    fn one_bucket_without_a_bucket_size() {
        let tz = Tz::Europe__Brussels;
        let r = range("2024-03-01T10:00:00.750", "2024-04-01T10:00:00", tz);
        let a = BucketAxis::new(r, None, tz).unwrap();
        check_invariants(&a);
        assert_eq!(a.starts(), [r.start]);
        assert_eq!(a.x_values(), ["2024-03-01T10:00:00+01:00"]);
        assert_eq!(a.locate(r.start), Some(0));
        assert_eq!(a.locate(r.end - 1), Some(0));
        assert_eq!(a.locate(r.start - 1), None);
        assert_eq!(a.bucket(), None);
        assert_eq!(a.time_zone(), tz);
        // Negative start: second precision floors.
        let r = TimeRange { start: -1, end: 1 };
        let a = BucketAxis::new(r, None, Tz::UTC).unwrap();
        assert_eq!(a.x_values(), ["1969-12-31T23:59:59Z"]);
    }

    #[test]
    fn missing_local_midnight_starts_the_day_after_the_gap() {
        // Sao Paulo 2018-11-04: 00:00 -> 01:00.
        let tz = Tz::America__Sao_Paulo;
        let a = axis("2018-11-03", "2018-11-06", Bucket::Day, tz);
        assert_eq!(
            a.x_values(),
            [
                "2018-11-03T00:00:00-03:00",
                "2018-11-04T01:00:00-02:00",
                "2018-11-05T00:00:00-02:00"
            ]
        );
        assert_eq!(lengths(&a), [24 * H, 23 * H]);
        // Havana 2024-03-10: 00:00 -> 01:00.
        let a = axis("2024-03-09", "2024-03-12", Bucket::Day, Tz::America__Havana);
        assert_eq!(
            a.x_values(),
            [
                "2024-03-09T00:00:00-05:00",
                "2024-03-10T01:00:00-04:00",
                "2024-03-11T00:00:00-04:00"
            ]
        );
        // Samoa skipped 2011-12-30 entirely.
        let a = axis("2011-12-29", "2012-01-01", Bucket::Day, Tz::Pacific__Apia);
        assert_eq!(
            a.x_values(),
            ["2011-12-29T00:00:00-10:00", "2011-12-31T00:00:00+14:00"]
        );
        assert_eq!(lengths(&a), [24 * H]);
    }

    #[test]
    fn invariants_hold_in_many_zones() {
        let zones = [
            Tz::UTC,
            Tz::Europe__Brussels,
            Tz::Europe__London,
            Tz::America__New_York,
            Tz::America__Sao_Paulo,
            Tz::America__Havana,
            Tz::America__St_Johns,
            Tz::America__Sitka,
            Tz::Asia__Kolkata,
            Tz::Asia__Kathmandu,
            Tz::Asia__Manila,
            Tz::Australia__Lord_Howe,
            Tz::Pacific__Apia,
            Tz::Pacific__Chatham,
            Tz::Antarctica__Troll,
        ];
        // Each holds an odd change somewhere: Manila skipped a day in 1844,
        // Sitka repeated one in 1867, Brussels left local mean time in 1892,
        // wartime offsets, Apia skipped a day in 2011, and plain DST.
        let spans = [
            ("1844-06-01", "1845-06-01"),
            ("1867-06-01", "1868-06-01"),
            ("1892-01-01", "1893-01-01"),
            ("1940-01-01", "1941-01-01"),
            ("2011-06-01", "2012-06-01"),
            ("2024-01-01", "2025-01-01"),
        ];
        for tz in zones {
            for (start, end) in spans {
                for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week, Bucket::Month] {
                    let a = axis(start, end, bucket, tz);
                    // Buckets start on the hour (midnight for calendar
                    // buckets), local time, unless the offset changes there.
                    for (i, (&s, &offset)) in a.starts().iter().zip(&a.offsets).enumerate() {
                        let secs = s / S;
                        assert_eq!(offset_at(tz, secs), Some(offset));
                        let changed = i > 0 && offset_at(tz, secs - 1) != Some(offset);
                        let local = secs + i64::from(offset);
                        let unit = if bucket == Bucket::Hour {
                            3_600
                        } else {
                            86_400
                        };
                        assert!(changed || local % unit == 0, "{tz} {}", a.x_values()[i]);
                    }
                    // An hour bucket keeps one offset and one wall-clock hour.
                    if bucket == Bucket::Hour {
                        for (w, &offset) in a.starts().windows(2).zip(&a.offsets) {
                            let last = w[1] / S - 1;
                            assert_eq!(offset_at(tz, last), Some(offset));
                            let hour = |secs: i64| (secs + i64::from(offset)).div_euclid(3_600);
                            assert_eq!(hour(w[0] / S), hour(last));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn x_values_past_year_9999_or_before_0000_are_invalid_queries() {
        let axis = |start: &str, end: &str, bucket: Option<Bucket>| {
            let range = TimeRange::parse(start, end, Tz::UTC).unwrap();
            BucketAxis::new(range, bucket, Tz::UTC)
        };
        // The last hour would start at 10000-01-01T03:00:00Z.
        let err = axis(
            "9999-12-31T20:00:00Z",
            "9999-12-31T23:00:00-05:00",
            Some(Bucket::Hour),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidQuery);
        assert!(err.to_string().contains("`end_time`"), "{err}");
        assert!(err.to_string().contains("10000"), "{err}");
        // Up to the last second of 9999 is fine.
        let a = axis("9999-12-01", "9999-12-31T23:59:59Z", Some(Bucket::Month)).unwrap();
        assert_eq!(a.x_values(), ["9999-12-01T00:00:00Z"]);
        // A week bucket aligned before year 0, and a start before it.
        let err = axis("0000-01-01", "0000-02-01", Some(Bucket::Week)).unwrap_err();
        assert!(err.to_string().contains("`start_time`"), "{err}");
        let err = axis("0000-01-01T00:00:00+01:00", "0000-02-01", None).unwrap_err();
        assert!(err.to_string().contains("year -1"), "{err}");
        assert!(axis("0000-01-03", "0000-02-01", Some(Bucket::Week)).is_ok());
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_utc_micros(utc("2024-03-01T10:00:00.25Z")),
            "2024-03-01T10:00:00.250Z"
        );
        assert_eq!(
            format_utc_micros(utc("2024-03-01T10:00:00Z")),
            "2024-03-01T10:00:00Z"
        );
        assert_eq!(
            format_utc_micros(utc("2024-03-01T10:00:00.000001Z")),
            "2024-03-01T10:00:00.000001Z"
        );
        assert_eq!(
            format_utc_micros(utc("2024-02-29T23:59:59.999Z")),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(format_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(format_utc_micros(-1_000), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_utc_micros(-1_000_000), "1969-12-31T23:59:59Z");
        assert_eq!(format_utc_micros(-1_500_000), "1969-12-31T23:59:58.500Z");
        assert_eq!(
            format_utc_micros(utc("1900-03-01T12:34:56.789012Z")),
            "1900-03-01T12:34:56.789012Z"
        );
        assert_eq!(
            format_utc_micros(utc("0000-01-01T00:00:00Z")),
            "0000-01-01T00:00:00Z"
        );
        assert_eq!(
            format_utc_micros(utc("9999-12-31T23:59:59.999999Z")),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            format_utc_micros(utc("0000-01-01T00:00:00Z") - 1),
            "-0001-12-31T23:59:59.999999Z"
        );
        // Defined for every i64.
        assert!(format_utc_micros(i64::MIN).starts_with('-'));
        assert!(format_utc_micros(i64::MAX).starts_with('+'));
    }

    #[test]
    fn civil_dates_match_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut days = -800_000;
        while days < 3_000_000 {
            let date = epoch
                .checked_add_signed(chrono::TimeDelta::days(days))
                .unwrap();
            let expected = (i64::from(date.year()), date.month(), date.day());
            assert_eq!(civil_from_days(days), expected, "{days}");
            days += 7;
        }
    }

    #[test]
    fn offsets_with_seconds_are_kept() {
        // Brussels local mean time was +00:17:30.
        let a = axis(
            "1880-01-01",
            "1880-01-02",
            Bucket::Day,
            Tz::Europe__Brussels,
        );
        assert_eq!(a.x_values(), ["1880-01-01T00:00:00+00:17:30"]);
    }
}
