//! Strict RFC 3339 instants, as event timestamps are written in NDJSON and
//! in [`crate::Event`]'s serde form: a date-time with `Z` or an offset,
//! nothing else (unlike query times, no naive forms: an event's instant must
//! be unambiguous).

use chrono::DateTime;

use crate::error::{Error, Result};

/// Parses an RFC 3339 instant with `Z` or an offset into µs since the epoch
/// (finer digits floored).
///
/// ```
/// use convostat::time::parse_rfc3339_micros;
/// assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:01.5Z")?, 1_500_000);
/// assert!(parse_rfc3339_micros("2024-03-01T10:00:00").is_err());
/// # Ok::<(), convostat::Error>(())
/// ```
pub fn parse_rfc3339_micros(value: &str) -> Result<i64> {
    let invalid = || {
        Error::data(
            "timestamp",
            format!(
                "`{}` is not an RFC 3339 timestamp with `Z` or an offset",
                value.chars().take(64).collect::<String>()
            ),
        )
    };
    if let Some(micros) = utc_micros(value.as_bytes()) {
        return Ok(micros);
    }
    let dt = DateTime::parse_from_rfc3339(value).map_err(|_| invalid())?;
    dt.timestamp()
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(i64::from(dt.timestamp_subsec_nanos() / 1_000)))
        .ok_or_else(invalid)
}

/// Reads many instants as [`parse_rfc3339_micros`] does, remembering the
/// date of the last one read in the common form (see `utc_micros`): the
/// timestamps of a batch of events are in time order or nearly, so most
/// share their date with the one before and only their time of day is
/// read (the date's days since the epoch were a third of the work).
#[derive(Debug, Default)]
pub(crate) struct InstantReader {
    /// The last date read, `YYYY-MM-DD`, and its days since the epoch.
    date: Option<[u8; 10]>,
    days: i64,
}

impl InstantReader {
    /// The instant `value`, as [`parse_rfc3339_micros`] reads it.
    #[inline]
    pub(crate) fn micros(&mut self, value: &str) -> Result<i64> {
        match self.common_micros(value.as_bytes()) {
            Some(micros) => Ok(micros),
            None => parse_rfc3339_micros(value),
        }
    }

    /// Whether the bytes `value` are an instant [`Self::micros`] reads.
    /// The common form is ASCII and read from the bytes; only another one
    /// is checked to be UTF-8 (a value that is not can be no instant).
    #[inline]
    pub(crate) fn is_instant(&mut self, value: &[u8]) -> bool {
        self.common_micros(value).is_some()
            || std::str::from_utf8(value).is_ok_and(|v| parse_rfc3339_micros(v).is_ok())
    }

    /// [`utc_micros`] of `b`, the date read only when it is not the last
    /// one's.
    #[inline]
    fn common_micros(&mut self, b: &[u8]) -> Option<i64> {
        if self.date.is_some() && b.get(..10) == self.date.as_ref().map(|d| &d[..]) {
            return Some(self.days * MICROS_PER_DAY + utc_time_of_day(b)?);
        }
        let (days, time) = (utc_days(b)?, utc_time_of_day(b)?);
        self.date = b[..10].try_into().ok();
        self.days = days;
        Some(days * MICROS_PER_DAY + time)
    }
}

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// The form nearly every event is written in, `YYYY-MM-DDTHH:MM:SSZ` with
/// an optional fraction of any number of digits, read digit by digit: µs
/// since the epoch, finer digits floored, as chrono gives. `None` for any
/// other form, and for anything chrono might read differently (a leap
/// second, lowercase letters, an offset), which [`parse_rfc3339_micros`]
/// then hands to chrono. A timestamp column of NDJSON is read this way for
/// every row, where chrono's general parser cost several hundred
/// instructions a value.
fn utc_micros(b: &[u8]) -> Option<i64> {
    Some(utc_days(b)? * MICROS_PER_DAY + utc_time_of_day(b)?)
}

/// The days since the epoch of the date `YYYY-MM-DD` that opens `b`, an
/// instant of the common form (see [`utc_micros`]).
fn utc_days(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// The µs since midnight of the time `THH:MM:SS[.f…]Z` that follows the
/// date in `b`, an instant of the common form (see [`utc_micros`]).
#[inline]
fn utc_time_of_day(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[b.len() - 1] != b'Z' {
        return None;
    }
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let second = two_digits(b, 17)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let fraction = &b[19..b.len() - 1];
    let micros = match fraction {
        [] => 0,
        [b'.', digits @ ..] if !digits.is_empty() => {
            let mut micros = 0;
            for i in 0..6 {
                micros = micros * 10 + digits.get(i).map_or(Some(0), |&d| digit(d))?;
            }
            if !digits.iter().skip(6).all(u8::is_ascii_digit) {
                return None;
            }
            micros
        }
        _ => return None,
    };
    Some((hour * 3_600 + minute * 60 + second) * 1_000_000 + micros)
}

/// The value of the ASCII digit `d`.
#[inline]
fn digit(d: u8) -> Option<i64> {
    let value = d.wrapping_sub(b'0');
    (value <= 9).then_some(i64::from(value))
}

/// The value of the two ASCII digits at `at` and `at + 1` of `b`.
#[inline]
fn two_digits(b: &[u8], at: usize) -> Option<i64> {
    Some(digit(*b.get(at)?)? * 10 + digit(*b.get(at + 1)?)?)
}

/// Days in `month` (1–12) of the proleptic Gregorian `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative
/// before it), by counting in 400-year eras from March 1st of year 0.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What chrono alone makes of `value`, for comparison.
    fn by_chrono(value: &str) -> Option<i64> {
        let dt = DateTime::parse_from_rfc3339(value).ok()?;
        dt.timestamp()
            .checked_mul(1_000_000)?
            .checked_add(i64::from(dt.timestamp_subsec_nanos() / 1_000))
    }

    #[test]
    fn the_common_form_is_read_as_chrono_reads_it() {
        for value in [
            "1970-01-01T00:00:00Z",
            "2024-01-01T00:00:13.329Z",
            "2024-02-29T23:59:59.999999999Z",
            "2000-02-29T12:00:00.1Z",
            "1969-12-31T23:59:59.9999999Z",
            "0000-01-01T00:00:00Z",
            "0000-02-29T00:00:00Z",
            "9999-12-31T23:59:59.123456789012Z",
            "1600-03-01T00:00:00Z",
            "1900-02-28T00:00:00.000001Z",
        ] {
            assert_eq!(utc_micros(value.as_bytes()), by_chrono(value), "{value}");
            assert!(utc_micros(value.as_bytes()).is_some(), "{value}");
        }
        // Not the common form: left to chrono, which accepts or rejects.
        for value in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00,5Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T00:00:00.5x5Z",
            "+2024-01-01T00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-01-00T00:00:00Z",
        ] {
            assert_eq!(utc_micros(value.as_bytes()), None, "{value}");
            let expected = by_chrono(value);
            assert_eq!(parse_rfc3339_micros(value).ok(), expected, "{value}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Any date-time of the common form, valid or not (day 31 of
        /// every month, leap days, hour 24, leap seconds, long fractions):
        /// the fast path reads what chrono reads, and leaves to it what it
        /// does not.
        #[test]
        fn the_fast_path_agrees_with_chrono(
            year in 0u32..=9999,
            month in 0u32..=13,
            day in 0u32..=32,
            hour in 0u32..=24,
            minute in 0u32..=60,
            second in 0u32..=61,
            fraction in proptest::option::of("[0-9]{1,14}"),
            separator in prop::sample::select(vec!['T', 't', ' ']),
            zone in prop::sample::select(vec!["Z", "z", "+00:00", "-05:30"]),
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let value = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            let fast = utc_micros(value.as_bytes());
            if fast.is_some() {
                prop_assert_eq!(fast, by_chrono(&value), "{}", value);
            }
            prop_assert_eq!(parse_rfc3339_micros(&value).ok(), by_chrono(&value), "{}", value);
        }

        /// A reader given a run of instants of the common form, valid or
        /// not and with dates repeating, reads each as the function does.
        #[test]
        fn a_reader_agrees_with_the_function(
            values in proptest::collection::vec(
                (0u32..3, 0u32..=13, 27u32..=32, 0u32..=24, 0u32..=60, "[0-9]{0,8}", any::<bool>()),
                1..40,
            ),
        ) {
            let mut reader = InstantReader::default();
            for (year, month, day, hour, minute, fraction, zulu) in values {
                let value = format!(
                    "{:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:00{}{}",
                    2023 + year,
                    if fraction.is_empty() { String::new() } else { format!(".{fraction}") },
                    if zulu { "Z" } else { "+01:00" },
                );
                prop_assert_eq!(reader.micros(&value).ok(), parse_rfc3339_micros(&value).ok(), "{}", value);
            }
        }

        /// Arbitrary short strings near the form never disagree either.
        #[test]
        fn near_misses_agree_with_chrono(value in "[0-9T:.Z+-]{18,30}") {
            let fast = utc_micros(value.as_bytes());
            if fast.is_some() {
                prop_assert_eq!(fast, by_chrono(&value), "{}", value);
            }
        }
    }

    /// A reader that remembers the last date reads every value as
    /// `parse_rfc3339_micros` does, whatever came before it: same dates,
    /// other dates, other forms, errors.
    #[test]
    fn a_reader_reads_as_the_function_does_in_any_order() {
        let values = [
            "2024-01-01T00:00:13.329Z",
            "2024-01-01T23:59:59.999999Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T10:00:00+02:00",
            "2024-01-01t10:00:00Z",
            "2024-01-01T10:00",
            "2024-01-01",
            "2024-01-02T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-02-29T12:00:00.5Z",
            "2016-12-31T23:59:60Z",
            "1969-12-31T23:59:59.9999999Z",
            "\0\0\0\0\0\0\0\0\0\0T00:00:00Z",
            "",
        ];
        for first in values {
            for second in values {
                let mut reader = InstantReader::default();
                for value in [first, second, first, second] {
                    assert_eq!(
                        reader.micros(value).ok(),
                        parse_rfc3339_micros(value).ok(),
                        "{value} after {first}, {second}"
                    );
                    assert_eq!(
                        reader.is_instant(value.as_bytes()),
                        parse_rfc3339_micros(value).is_ok(),
                        "{value} after {first}, {second}"
                    );
                }
            }
        }
    }

    /// Bytes that are not UTF-8 are no instant, even where the common
    /// form's digits would be.
    #[test]
    fn bytes_that_are_not_utf8_are_no_instant() {
        let mut reader = InstantReader::default();
        assert!(reader.is_instant(b"2024-01-01T00:00:13.329Z"));
        for bad in [
            &b"2024-01-01T00:00:13.3\xff9Z"[..],
            b"\xc3\xa9024-01-01T00:00:13Z",
            b"2024-01-01T00:00:13+02:\xff",
            b"\xff",
        ] {
            assert!(!reader.is_instant(bad), "{bad:?}");
        }
    }

    #[test]
    fn accepts_z_and_offsets_and_floors_nanoseconds() {
        assert_eq!(
            parse_rfc3339_micros("2024-03-01T12:00:00+02:00").unwrap(),
            1_709_287_200_000_000
        );
        assert_eq!(
            parse_rfc3339_micros("1969-12-31T23:59:59.9999999Z").unwrap(),
            -1
        );
        for bad in [
            "",
            "2024-03-01",
            "2024-03-01T10:00:00",
            "yesterday",
            "2024-13-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339_micros(bad).is_err(), "{bad}");
        }
    }
}
