//! Time: reading the query's times and zone, and cutting a range into
//! calendar buckets that follow the zone's wall clock (SPEC 3).
//!
//! Inside the crate an instant is an `i64` count of **microseconds since the
//! Unix epoch, UTC**; a [`TimeRange`] is a half-open `[start, end)` of them.
//! Wall-clock notions (days, hours, offsets) live only here.
//!
//! # Reading times
//!
//! [`parse_time_zone`] reads the `tz` parameter, an IANA name such as
//! `Europe/Brussels` (`UTC` included), compared exactly.
//! [`parse_instant`] and [`TimeRange::parse`] read `start_time` / `end_time`:
//!
//! - RFC 3339 with `Z` or an offset (`2024-03-01T10:00:00Z`,
//!   `2024-03-01T10:00:00.25+02:00`): that instant, whatever the zone;
//! - a local date-time (`2024-03-01T10:00:00`, or with a space instead of
//!   `T`, fractional seconds allowed): that wall time in the query's zone;
//! - a date (`2024-03-01`): midnight in the query's zone.
//!
//! Fractional seconds finer than a microsecond are **floored**, also before
//! 1970 (`1969-12-31T23:59:59.9999995Z` is −1 µs, not 0).
//!
//! # Local times that do not exist or exist twice
//!
//! A zone's wall clock jumps when its offset changes, and a wall time read
//! in that zone can then be missing or doubled. The rules follow
//! "compatible" disambiguation (as in jiff and RFC 5545):
//!
//! - **Gap** (spring forward): Europe/Brussels skipped from 02:00 to 03:00
//!   on 2024-03-31, so `2024-03-31T02:30:00` never appeared on its clocks.
//!   It is moved **forward by the length of the gap**: it reads as
//!   `03:30+02:00`, i.e. `01:30Z` (it is interpreted with the offset in force
//!   before the gap). A gap of 30 minutes (Australia/Lord_Howe) moves it 30
//!   minutes; a skipped day (Pacific/Apia, 2011-12-30) moves it a day.
//! - **Fold** (fall back): on 2024-10-27 Brussels clocks went from 03:00
//!   back to 02:00, so `2024-10-27T02:30:00` happened twice, at `00:30Z`
//!   (+02:00) and at `01:30Z` (+01:00). The **earlier** one is taken,
//!   `00:30Z`. Write an offset (`2024-10-27T02:30:00+01:00`) to mean the
//!   other.
//! - A date whose midnight is missing (America/Sao_Paulo on 2018-11-04,
//!   America/Havana on 2024-03-10, where 00:00 jumped to 01:00) reads as
//!   `01:00` at the new offset, the first instant of that date.
//!
//! # Buckets
//!
//! [`Bucket`] is the `bucket` parameter (`1h`, `1d`, `1w`, `1m`);
//! [`BucketAxis`] lists the bucket starts covering a range in a zone, writes
//! them as `x_values`, and finds an instant's bucket. Buckets follow the
//! zone's wall clock, so they are not all the same length:
//!
//! - `1d` runs from local midnight to the next local midnight: **23 hours**
//!   on the spring-forward day and **25 hours** on the fall-back day in
//!   Brussels. When midnight does not exist, the day starts at the first
//!   instant of that date (the end of the gap, e.g. `01:00-02:00` in
//!   Sao Paulo); a date skipped whole (Apia, 2011-12-30) has no bucket. When
//!   midnight happens twice, the day starts at the first one.
//! - `1w` starts on Monday 00:00 local (ISO weeks), `1m` on the 1st at
//!   00:00 local; both stretch or shrink by the DST changes inside them.
//! - `1h` is a stretch of time with **one wall-clock hour and one UTC
//!   offset**. Bucket starts are the instants where the local time is
//!   `hh:00:00`, plus any instant where the offset changes:
//!   - in the autumn fold the repeated hour gives **two distinct buckets**:
//!     Brussels on 2024-10-27 has `02:00:00+02:00` and then
//!     `02:00:00+01:00`, one hour each;
//!   - in the spring gap the missing hour has **no bucket**: Brussels on
//!     2024-03-31 goes from `01:00:00+01:00` straight to `03:00:00+02:00`;
//!   - zones with half- or quarter-hour offsets get hours that start at
//!     `:30` or `:15` UTC (Asia/Kolkata +05:30, Asia/Kathmandu +05:45);
//!   - a change of offset by 30 minutes splits an hour: Lord Howe's autumn
//!     change (`02:00+11:00` → `01:30+10:30`) gives the buckets
//!     `01:00+11:00`, `01:30+10:30` (half an hour) and `02:00+10:30`, and its
//!     spring change (`02:00+10:30` → `02:30+11:00`) gives a half-hour
//!     bucket `02:30+11:00`.
//!
//! The axis starts at the bucket holding `start_time`, whose aligned start
//! may be before `start_time`, and lists every bucket start before
//! `end_time`. [`BucketAxis::locate`] only places instants inside the range,
//! so the part of the first bucket before `start_time` counts nothing. A
//! range gives at most [`MAX_BUCKETS`] buckets; more is an invalid-query
//! error, detected from the range's length alone when it is clearly too long.
//!
//! # Writing times
//!
//! `x_values` are bucket starts in RFC 3339 with second precision, with `Z`
//! when the zone is UTC (or an alias of it: `Etc/UTC`, `Etc/Universal`,
//! `Zulu`, ...) and the zone's offset at that instant otherwise:
//! `2024-03-31T00:00:00+01:00`, and `+00:00` for `Europe/London` in winter.
//! Local mean time offsets before ~1900 that have seconds
//! (`+00:17:30`) are written with their seconds so the instant stays exact.
//! [`format_utc_micros`] writes an instant in UTC with 0, 3 or 6 fractional
//! digits, as the flow answer does; [`parse_rfc3339_micros`] reads event
//! timestamps back, strictly (RFC 3339 with `Z` or an offset, nothing
//! naive: an event's instant must not depend on a zone).

mod bucket;
mod parse;
mod rfc3339;

pub use bucket::{format_utc_micros, Bucket, BucketAxis, MAX_BUCKETS};
pub use chrono_tz::Tz;
pub use parse::{parse_instant, parse_time_zone, TimeRange};
pub use rfc3339::parse_rfc3339_micros;
pub(crate) use rfc3339::InstantReader;
