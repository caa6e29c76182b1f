//! Reading the query's time parameters (SPEC 3): the time zone (`tz`) and the
//! range bounds (`start_time`, `end_time`), plus the small zone helpers that
//! the bucket code shares (offset look-up, local wall time to instant).
//!
//! Every instant is an `i64` count of microseconds since the Unix epoch, UTC.
//! Accepted forms of a time value, all with a four-digit year:
//!
//! | form | example | meaning |
//! |---|---|---|
//! | RFC 3339 | `2024-03-01T10:00:00Z`, `2024-03-01T10:00:00.5+02:00` | that instant; the zone is not used |
//! | local date-time | `2024-03-01T10:00:00`, `2024-03-01 10:00:00.250` | that wall time in the query's zone |
//! | date | `2024-03-01` | local midnight in the query's zone |
//!
//! `T` may also be `t` or a space, `Z` may be `z`; fractional seconds may have
//! any number of digits and are floored to the microsecond. Seconds must be
//! present, and a leap second (`:60`) is refused.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::{GapInfo, Tz};

use crate::error::{Error, Result};

/// Microseconds in one second.
pub(super) const MICROS_PER_SECOND: i64 = 1_000_000;

/// Parses a `tz` parameter: an IANA zone name such as `Europe/Brussels`, or
/// `UTC`. Names compare exactly (case-sensitive), as every string parameter.
///
/// ```
/// use convostat::time::{parse_time_zone, Tz};
/// assert_eq!(parse_time_zone("Europe/Brussels").unwrap(), Tz::Europe__Brussels);
/// assert!(parse_time_zone("Mars/Olympus_Mons").is_err());
/// ```
pub fn parse_time_zone(value: &str) -> Result<Tz> {
    value.parse::<Tz>().map_err(|_| {
        Error::invalid(
            "tz",
            format!(
                "unknown time zone `{}`; expected an IANA name such as Europe/Brussels or UTC",
                shown(value)
            ),
        )
    })
}

/// Parses a `start_time` / `end_time` value into microseconds since the Unix
/// epoch (UTC); `parameter` names the parameter in error messages.
///
/// Accepts RFC 3339 with `Z` or an offset, a naive date-time read in `tz`, or
/// a date meaning local midnight in `tz` (see the [`time`](crate::time)
/// module docs).
/// Fractional seconds finer than a microsecond are floored.
///
/// A local time that falls in a spring-forward gap is moved forward by the
/// length of the gap (`02:30` on a 02:00→03:00 night is `03:30` at the new
/// offset); a local time that occurs twice (autumn fold) is its earlier
/// occurrence.
///
/// ```
/// use convostat::time::{parse_instant, Tz};
/// let t = parse_instant("start_time", "2024-03-31T02:30:00", Tz::Europe__Brussels).unwrap();
/// assert_eq!(t, parse_instant("start_time", "2024-03-31T01:30:00Z", Tz::UTC).unwrap());
/// ```
pub fn parse_instant(parameter: &str, value: &str, tz: Tz) -> Result<i64> {
    let fields = read_fields(value).map_err(|why| {
        Error::invalid(
            parameter,
            format!(
                "cannot read `{}` as a time: {why}; expected RFC 3339 (2024-03-01T10:00:00Z), \
                 a local date-time (2024-03-01T10:00:00) or a date (2024-03-01)",
                shown(value)
            ),
        )
    })?;
    let local_secs = fields.local.and_utc().timestamp();
    let secs = match fields.offset {
        Some(offset) => local_secs.checked_sub(i64::from(offset)),
        None => resolve_local(tz, local_secs, Gap::MoveForward),
    };
    secs.and_then(|s| s.checked_mul(MICROS_PER_SECOND))
        .and_then(|us| us.checked_add(i64::from(fields.micros)))
        .ok_or_else(|| {
            Error::invalid(
                parameter,
                format!(
                    "`{}` is outside the supported range of instants",
                    shown(value)
                ),
            )
        })
}

/// A half-open range of instants `[start, end)`, in microseconds since the
/// Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant in the range.
    pub start: i64,
    /// First instant after the range.
    pub end: i64,
}

impl TimeRange {
    /// Parses `start_time` and `end_time` with [`parse_instant`] and requires
    /// `start < end`.
    ///
    /// ```
    /// use convostat::time::{TimeRange, Tz};
    /// let r = TimeRange::parse("2024-03-01", "2024-03-02", Tz::UTC).unwrap();
    /// assert_eq!(r.end - r.start, 86_400_000_000);
    /// assert!(TimeRange::parse("2024-03-02", "2024-03-01", Tz::UTC).is_err());
    /// ```
    pub fn parse(start: &str, end: &str, tz: Tz) -> Result<TimeRange> {
        let range = TimeRange {
            start: parse_instant("start_time", start, tz)?,
            end: parse_instant("end_time", end, tz)?,
        };
        if range.start >= range.end {
            return Err(Error::invalid(
                "end_time",
                format!(
                    "end_time `{}` must be after start_time `{}`",
                    shown(end),
                    shown(start)
                ),
            ));
        }
        Ok(range)
    }

    /// Whether `start <= ts < end`.
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// What to do with a local wall time that does not exist (a gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gap {
    /// Move it forward by the length of the gap (read it with the offset in
    /// force before the gap): the rule for parsed times (SPEC 3).
    MoveForward,
    /// The first instant after the gap, i.e. the first instant whose wall time
    /// is at or after it: the rule for calendar bucket boundaries.
    FirstInstant,
}

/// The UTC offset (seconds east) of `tz` at the instant `secs` (whole seconds
/// since the epoch), or `None` outside chrono's range.
///
/// UTC, the default zone, has no transitions: it is answered without
/// chrono-tz's tables, whose first look-up in a process faults their pages
/// in (about 1% of a short `flow` process).
pub(super) fn offset_at(tz: Tz, secs: i64) -> Option<i32> {
    let utc = DateTime::from_timestamp(secs, 0)?;
    if tz == Tz::UTC {
        return Some(0);
    }
    Some(
        tz.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// The instant (whole seconds since the epoch) of the local wall time
/// `local_secs` (the wall time's seconds counted as if it were UTC) in `tz`.
///
/// An ambiguous wall time gives its earlier occurrence; one in a gap follows
/// `gap`. `None` when out of chrono's range. (UTC: see [`offset_at`].)
pub(super) fn resolve_local(tz: Tz, local_secs: i64, gap: Gap) -> Option<i64> {
    let naive = DateTime::from_timestamp(local_secs, 0)?.naive_utc();
    if tz == Tz::UTC {
        return Some(local_secs);
    }
    let at = |offset: i32| local_secs.checked_sub(i64::from(offset));
    match tz.offset_from_local_datetime(&naive) {
        LocalResult::Single(o) => at(o.fix().local_minus_utc()),
        LocalResult::Ambiguous(a, b) => {
            let a = at(a.fix().local_minus_utc())?;
            let b = at(b.fix().local_minus_utc())?;
            Some(a.min(b))
        }
        LocalResult::None => {
            // `begin` is the first missing wall time and the offset in force
            // just before the gap; the gap starts at that instant.
            let (gap_start, before) = GapInfo::new(&naive, &tz)?.begin?;
            let before = before.fix().local_minus_utc();
            match gap {
                Gap::MoveForward => at(before),
                Gap::FirstInstant => gap_start
                    .and_utc()
                    .timestamp()
                    .checked_sub(i64::from(before)),
            }
        }
    }
}

/// `value` fit for a one-line message: control characters escaped, and cut
/// after 80 characters.
pub(super) fn shown(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == 80 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The pieces of a time value.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    /// Wall time, whole seconds.
    local: NaiveDateTime,
    /// Microseconds within the second (fraction floored).
    micros: u32,
    /// Explicit UTC offset (seconds east), for RFC 3339 values.
    offset: Option<i32>,
}

/// A byte cursor over a time value.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8, what: &str) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` {what}", c as char))
        }
    }

    /// Exactly `n` ASCII digits.
    fn number(&mut self, n: usize, what: &str) -> std::result::Result<u32, String> {
        let mut value = 0u32;
        for _ in 0..n {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    value = value * 10 + u32::from(d - b'0');
                    self.pos += 1;
                }
                _ => return Err(format!("expected {n} digits for the {what}")),
            }
        }
        Ok(value)
    }
}

/// Splits a time value into its fields, checking the calendar.
fn read_fields(value: &str) -> std::result::Result<Fields, String> {
    let mut cur = Cursor {
        bytes: value.as_bytes(),
        pos: 0,
    };
    let year = cur.number(4, "year")?;
    cur.expect(b'-', "after the year")?;
    let month = cur.number(2, "month")?;
    cur.expect(b'-', "after the month")?;
    let day = cur.number(2, "day")?;
    // `year` has four digits, so the cast is lossless.
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| format!("there is no date {year:04}-{month:02}-{day:02}"))?;
    if cur.at_end() {
        return Ok(Fields {
            local: date.and_time(NaiveTime::MIN),
            micros: 0,
            offset: None,
        });
    }
    if !(cur.eat(b'T') || cur.eat(b't') || cur.eat(b' ')) {
        return Err("expected `T` or a space after the date".into());
    }
    let hour = cur.number(2, "hour")?;
    cur.expect(b':', "after the hour")?;
    let minute = cur.number(2, "minute")?;
    cur.expect(b':', "after the minute")?;
    let second = cur.number(2, "second")?;
    if second == 60 {
        return Err("leap seconds (second 60) are not supported".into());
    }
    let time = NaiveTime::from_hms_opt(hour, minute, second)
        .ok_or_else(|| format!("there is no time of day {hour:02}:{minute:02}:{second:02}"))?;
    let mut micros = 0u32;
    if cur.eat(b'.') {
        let mut digits = 0;
        while let Some(d @ b'0'..=b'9') = cur.peek() {
            if digits < 6 {
                micros = micros * 10 + u32::from(d - b'0');
            }
            digits += 1;
            cur.pos += 1;
        }
        if digits == 0 {
            return Err("expected digits after the decimal point".into());
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset = match cur.peek() {
        None => None,
        Some(b'Z' | b'z') => {
            cur.pos += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            cur.pos += 1;
            let hours = cur.number(2, "offset hours")?;
            cur.expect(b':', "in the offset")?;
            let minutes = cur.number(2, "offset minutes")?;
            if hours > 23 || minutes > 59 {
                return Err(format!("there is no UTC offset {hours:02}:{minutes:02}"));
            }
            // At most 23:59, so the cast is lossless.
            let secs = (hours * 3600 + minutes * 60) as i32;
            Some(if sign == b'-' { -secs } else { secs })
        }
        Some(_) => return Err("expected `Z`, an offset such as +02:00, or the end".into()),
    };
    if !cur.at_end() {
        return Err("unexpected text after the time".into());
    }
    Ok(Fields {
        local: date.and_time(time),
        micros,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const H: i64 = 3_600_000_000;

    /// `value` read as RFC 3339 in UTC.
    fn utc(value: &str) -> i64 {
        parse_instant("start_time", value, Tz::UTC).unwrap()
    }

    fn err_text(result: Result<i64>) -> String {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidQuery);
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    }

    #[test]
    fn rfc3339_with_z_and_offsets() {
        assert_eq!(utc("1970-01-01T00:00:00Z"), 0);
        assert_eq!(utc("2024-03-01T10:00:00Z"), 1_709_287_200_000_000);
        assert_eq!(
            utc("2024-03-01T12:00:00+02:00"),
            utc("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            utc("2024-03-01T04:15:00-05:45"),
            utc("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            utc("2024-03-01T10:00:00-00:00"),
            utc("2024-03-01T10:00:00Z")
        );
        assert_eq!(utc("2024-03-01t10:00:00z"), utc("2024-03-01T10:00:00Z"));
        assert_eq!(utc("2024-03-01 10:00:00Z"), utc("2024-03-01T10:00:00Z"));
        // The zone does not matter when the value carries an offset.
        let brussels = parse_instant("start_time", "2024-03-01T10:00:00Z", Tz::Europe__Brussels);
        assert_eq!(brussels.unwrap(), utc("2024-03-01T10:00:00Z"));
    }

    #[test]
    fn fractional_seconds_floor_to_micros() {
        let base = utc("2024-03-01T10:00:00Z");
        assert_eq!(utc("2024-03-01T10:00:00.25Z"), base + 250_000);
        assert_eq!(utc("2024-03-01T10:00:00.000001Z"), base + 1);
        assert_eq!(utc("2024-03-01T10:00:00.123456789Z"), base + 123_456);
        assert_eq!(utc("2024-03-01T10:00:00.999999999Z"), base + 999_999);
        assert_eq!(utc("2024-03-01T10:00:00.0000009Z"), base);
        assert_eq!(utc("2024-03-01T10:00:00.1234567891234Z"), base + 123_456);
        assert_eq!(utc("2024-03-01T12:00:00.5+02:00"), base + 500_000);
    }

    #[test]
    fn negative_instants_floor_not_truncate() {
        assert_eq!(utc("1969-12-31T23:59:59Z"), -1_000_000);
        assert_eq!(utc("1969-12-31T23:59:59.5Z"), -500_000);
        // -0.0000005 s floors to -1 µs, not 0.
        assert_eq!(utc("1969-12-31T23:59:59.9999995Z"), -1);
        assert_eq!(utc("1969-12-31T23:59:59.999999999Z"), -1);
        assert_eq!(
            utc("1900-01-01T00:00:00.0000001Z"),
            utc("1900-01-01T00:00:00Z")
        );
        assert_eq!(utc("1900-01-01T00:00:00Z"), -2_208_988_800_000_000);
    }

    #[test]
    fn naive_date_time_is_read_in_the_zone() {
        let tz = Tz::Europe__Brussels;
        let t = parse_instant("start_time", "2024-03-01T10:00:00", tz).unwrap();
        assert_eq!(t, utc("2024-03-01T09:00:00Z"));
        let t = parse_instant("start_time", "2024-03-01 10:00:00", tz).unwrap();
        assert_eq!(t, utc("2024-03-01T09:00:00Z"));
        let t = parse_instant("start_time", "2024-07-01T10:00:00.123456789", tz).unwrap();
        assert_eq!(t, utc("2024-07-01T08:00:00.123456Z"));
        let t = parse_instant("start_time", "2024-03-01T10:00:00", Tz::Asia__Kathmandu);
        assert_eq!(t.unwrap(), utc("2024-03-01T04:15:00Z"));
        let t = parse_instant("start_time", "2024-03-01T10:00:00", Tz::UTC);
        assert_eq!(t.unwrap(), utc("2024-03-01T10:00:00Z"));
    }

    #[test]
    fn date_is_local_midnight() {
        let t = parse_instant("start_time", "2024-03-01", Tz::UTC).unwrap();
        assert_eq!(t, utc("2024-03-01T00:00:00Z"));
        let t = parse_instant("start_time", "2024-03-01", Tz::Asia__Kolkata).unwrap();
        assert_eq!(t, utc("2024-02-29T18:30:00Z"));
        let t = parse_instant("start_time", "2024-07-01", Tz::America__New_York).unwrap();
        assert_eq!(t, utc("2024-07-01T04:00:00Z"));
        let t = parse_instant("start_time", "1969-12-31", Tz::UTC).unwrap();
        assert_eq!(t, -24 * H);
    }

    #[test]
    fn spring_gap_moves_forward_by_the_gap() {
        let tz = Tz::Europe__Brussels;
        // 02:00 -> 03:00 on 2024-03-31: 02:30 is 03:30+02:00 = 01:30Z.
        let t = parse_instant("start_time", "2024-03-31T02:30:00", tz).unwrap();
        assert_eq!(t, utc("2024-03-31T01:30:00Z"));
        assert_eq!(t, utc("2024-03-31T03:30:00+02:00"));
        let t = parse_instant("start_time", "2024-03-31T02:00:00", tz).unwrap();
        assert_eq!(t, utc("2024-03-31T01:00:00Z"));
        let t = parse_instant("start_time", "2024-03-31T02:59:59.75", tz).unwrap();
        assert_eq!(t, utc("2024-03-31T01:59:59.75Z"));
        // Just around the gap.
        let t = parse_instant("start_time", "2024-03-31T01:59:59", tz).unwrap();
        assert_eq!(t, utc("2024-03-31T00:59:59Z"));
        let t = parse_instant("start_time", "2024-03-31T03:00:00", tz).unwrap();
        assert_eq!(t, utc("2024-03-31T01:00:00Z"));
        // A 30-minute gap: Lord Howe goes 02:00+10:30 -> 02:30+11:00.
        let t = parse_instant(
            "start_time",
            "2024-10-06T02:15:00",
            Tz::Australia__Lord_Howe,
        );
        assert_eq!(t.unwrap(), utc("2024-10-06T02:45:00+11:00"));
        // A whole day skipped: Samoa went from 2011-12-29 to 2011-12-31.
        let t = parse_instant("start_time", "2011-12-30T12:00:00", Tz::Pacific__Apia);
        assert_eq!(t.unwrap(), utc("2011-12-31T12:00:00+14:00"));
    }

    #[test]
    fn missing_local_midnight_moves_forward() {
        // Sao Paulo 2018-11-04: 00:00 -> 01:00.
        let t = parse_instant("start_time", "2018-11-04", Tz::America__Sao_Paulo).unwrap();
        assert_eq!(t, utc("2018-11-04T01:00:00-02:00"));
    }

    #[test]
    fn autumn_fold_takes_the_earlier_occurrence() {
        let tz = Tz::Europe__Brussels;
        let t = parse_instant("start_time", "2024-10-27T02:30:00", tz).unwrap();
        assert_eq!(t, utc("2024-10-27T00:30:00Z"));
        let t = parse_instant("start_time", "2024-10-27T02:00:00", tz).unwrap();
        assert_eq!(t, utc("2024-10-27T00:00:00Z"));
        let t = parse_instant("start_time", "2024-10-27T03:00:00", tz).unwrap();
        assert_eq!(t, utc("2024-10-27T02:00:00Z"));
        let t = parse_instant("start_time", "2024-11-03T01:30:00", Tz::America__New_York);
        assert_eq!(t.unwrap(), utc("2024-11-03T05:30:00Z"));
    }

    #[test]
    fn malformed_values_are_refused_naming_the_parameter() {
        for bad in [
            "",
            " 2024-03-01",
            "2024-03-01 ",
            "2024-3-01",
            "24-03-01",
            "2024-03-01T",
            "2024-03-01T10:00",
            "2024-03-01T10:00:00.",
            "2024-03-01T10:00:00.5.5",
            "2024-03-01T10:00:00+2:00",
            "2024-03-01T10:00:00+0200",
            "2024-03-01T10:00:00+24:00",
            "2024-03-01T10:00:00+02:60",
            "2024-03-01T10:00:00 Z",
            "2024-03-01T10:00:00ZZ",
            "2024-03-01X10:00:00",
            "2024-13-01",
            "2024-02-30",
            "2023-02-29",
            "2024-00-10",
            "2024-03-01T24:00:00",
            "2024-03-01T10:60:00",
            "2016-12-31T23:59:60Z",
            "now",
            "1709287200",
            "+12024-03-01",
            "２０２４-03-01",
        ] {
            let text = err_text(parse_instant("end_time", bad, Tz::UTC));
            assert!(text.contains("`end_time`"), "{bad:?}: {text}");
            assert!(text.contains("expected RFC 3339"), "{bad:?}: {text}");
        }
        let text = err_text(parse_instant("start_time", "2024-02-30", Tz::UTC));
        assert!(text.contains("no date 2024-02-30"), "{text}");
        let text = err_text(parse_instant("start_time", "a\nb", Tz::UTC));
        assert!(text.contains("a\\nb"), "{text}");
    }

    #[test]
    fn extreme_years_do_not_panic() {
        for tz in [
            Tz::UTC,
            Tz::Pacific__Kiritimati,
            Tz::Etc__GMTPlus12,
            Tz::Asia__Manila,
        ] {
            for value in [
                "0000-01-01",
                "0000-01-01T00:00:00",
                "0000-01-01T00:00:00+23:59",
                "9999-12-31T23:59:59.999999999",
                "9999-12-31T23:59:59.999999999-23:59",
            ] {
                let t = parse_instant("start_time", value, tz).unwrap();
                assert!(t > -63_000_000_000_000_000 && t < 254_000_000_000_000_000);
            }
        }
        assert_eq!(utc("0000-01-01T00:00:00Z"), -62_167_219_200_000_000);
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_time_zone("UTC").unwrap(), Tz::UTC);
        assert_eq!(parse_time_zone("Etc/UTC").unwrap(), Tz::Etc__UTC);
        assert_eq!(
            parse_time_zone("Europe/Brussels").unwrap(),
            Tz::Europe__Brussels
        );
        assert_eq!(parse_time_zone("Asia/Kolkata").unwrap(), Tz::Asia__Kolkata);
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "europe/brussels",
            "utc",
            " UTC",
            "+02:00",
        ] {
            let err = parse_time_zone(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidQuery);
            let text = err.to_string();
            assert!(text.contains("`tz`"), "{text}");
            assert!(text.contains("unknown time zone"), "{text}");
            assert!(text.contains(&format!("`{bad}`")), "{text}");
        }
    }

    #[test]
    fn time_range_parse_and_contains() {
        let r = TimeRange::parse("2024-03-01", "2024-03-01T00:00:00.000001Z", Tz::UTC).unwrap();
        assert_eq!(r.end - r.start, 1);
        assert!(r.contains(r.start));
        assert!(!r.contains(r.end));
        assert!(!r.contains(r.start - 1));
        let r = TimeRange::parse("2024-03-01", "2024-03-02", Tz::Europe__Brussels).unwrap();
        assert_eq!(r.start, utc("2024-02-29T23:00:00Z"));
        assert_eq!(r.end, utc("2024-03-01T23:00:00Z"));
        // A 23-hour local day.
        let r = TimeRange::parse("2024-03-31", "2024-04-01", Tz::Europe__Brussels).unwrap();
        assert_eq!(r.end - r.start, 23 * H);
    }

    #[test]
    fn time_range_requires_start_before_end() {
        for (start, end) in [
            ("2024-03-02", "2024-03-01"),
            ("2024-03-01", "2024-03-01"),
            ("2024-03-01T01:00:00+01:00", "2024-03-01T00:00:00Z"),
        ] {
            let err = TimeRange::parse(start, end, Tz::UTC).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidQuery);
            let text = err.to_string();
            assert!(text.contains("`end_time`"), "{text}");
            assert!(text.contains("must be after start_time"), "{text}");
        }
        // Errors in either bound name that bound.
        let text = TimeRange::parse("x", "2024-03-01", Tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(text.contains("`start_time`"), "{text}");
        let text = TimeRange::parse("2024-03-01", "y", Tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(text.contains("`end_time`"), "{text}");
    }

    /// UTC's shortcut answers as chrono-tz does, range limits included.
    #[test]
    fn utc_answers_as_chrono_tz_does() {
        let zone = |secs: i64| {
            DateTime::from_timestamp(secs, 0).map(|utc| {
                Tz::UTC
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc()
            })
        };
        let local = |secs: i64| {
            let naive = DateTime::from_timestamp(secs, 0)?.naive_utc();
            match Tz::UTC.offset_from_local_datetime(&naive) {
                LocalResult::Single(o) => secs.checked_sub(i64::from(o.fix().local_minus_utc())),
                _ => None,
            }
        };
        let max = DateTime::<chrono::Utc>::MAX_UTC.timestamp();
        let min = DateTime::<chrono::Utc>::MIN_UTC.timestamp();
        for secs in [
            0,
            1_709_251_200,
            -86_400,
            min,
            max,
            min - 1,
            max + 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(offset_at(Tz::UTC, secs), zone(secs), "{secs}");
            for gap in [Gap::MoveForward, Gap::FirstInstant] {
                assert_eq!(resolve_local(Tz::UTC, secs, gap), local(secs), "{secs}");
            }
        }
    }

    #[test]
    fn resolve_local_rules() {
        let tz = Tz::Europe__Brussels;
        let local = |s: &str| utc(s) / MICROS_PER_SECOND;
        let secs = |s: &str| utc(s) / MICROS_PER_SECOND;
        let gap = local("2024-03-31T02:30:00Z");
        assert_eq!(
            resolve_local(tz, gap, Gap::MoveForward),
            Some(secs("2024-03-31T01:30:00Z"))
        );
        assert_eq!(
            resolve_local(tz, gap, Gap::FirstInstant),
            Some(secs("2024-03-31T01:00:00Z"))
        );
        let fold = local("2024-10-27T02:30:00Z");
        for rule in [Gap::MoveForward, Gap::FirstInstant] {
            assert_eq!(
                resolve_local(tz, fold, rule),
                Some(secs("2024-10-27T00:30:00Z"))
            );
        }
        assert_eq!(offset_at(tz, secs("2024-10-27T00:59:59Z")), Some(7200));
        assert_eq!(offset_at(tz, secs("2024-10-27T01:00:00Z")), Some(3600));
        assert_eq!(offset_at(tz, i64::MAX), None);
        assert_eq!(resolve_local(tz, i64::MIN, Gap::MoveForward), None);
    }
}
