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
    let dt = DateTime::parse_from_rfc3339(value).map_err(|_| invalid())?;
    dt.timestamp()
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(i64::from(dt.timestamp_subsec_nanos() / 1_000)))
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

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
