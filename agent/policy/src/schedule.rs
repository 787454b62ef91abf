//! Scheduled operations: the `scheduled_at` of `POST /switchover` and the `schedule` of `POST /restart`.
//!
//! As Patroni takes them: ISO 8601 with a timezone (`2026-11-22T15:30:00+01:00`, `2026-11-22 14:30Z`).
//! The time is kept with the offset it was given in and written back as RFC 3339.

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::SystemTime;

/// A point in time an operation is scheduled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule(DateTime<FixedOffset>);

impl Schedule {
    /// Reads an ISO 8601 time with a timezone; the error says what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let normalized = rfc_3339_shape(text.trim());
        if let Ok(at) = DateTime::parse_from_rfc3339(&normalized) {
            return Ok(Schedule(at));
        }
        let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .any(|format| NaiveDateTime::parse_from_str(&normalized, format).is_ok());
        Err(if naive { ScheduleError::NoTimezone } else { ScheduleError::Unreadable })
    }

    /// The instant, on the wall clock.
    pub fn at(&self) -> SystemTime {
        SystemTime::from(self.0)
    }
}

/// RFC 3339 is ISO 8601 with a `T` and seconds: takes a blank for the `T` and completes `HH:MM` with
/// `:00`. Character-aware: any text, however malformed, comes back as a string to try.
fn rfc_3339_shape(text: &str) -> String {
    let mut normalized = text.replacen(' ', "T", 1);
    let Some(t) = normalized.find('T') else { return normalized };
    let time = &normalized[t + 1..];
    // `get` is `None` unless byte 5 is a character boundary; the five bytes must then be ASCII.
    let hh_mm = time.get(..5).is_some_and(|hm| {
        hm.bytes().enumerate().all(|(i, b)| if i == 2 { b == b':' } else { b.is_ascii_digit() })
    });
    if hh_mm && time[5..].chars().next().is_none_or(|c| !c.is_ascii_digit() && c != ':') {
        normalized.insert_str(t + 6, ":00");
    }
    normalized
}

/// Why a time was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleError {
    /// It is a date and time, but without a timezone.
    NoTimezone,
    /// It is not an ISO 8601 date and time.
    Unreadable,
}

impl From<SystemTime> for Schedule {
    /// The instant in UTC (written back as RFC 3339 with `+00:00`).
    fn from(at: SystemTime) -> Schedule {
        Schedule(DateTime::<chrono::Utc>::from(at).fixed_offset())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339())
    }
}

impl From<Schedule> for String {
    fn from(schedule: Schedule) -> String {
        schedule.to_string()
    }
}

impl TryFrom<String> for Schedule {
    type Error = String;
    fn try_from(text: String) -> Result<Schedule, String> {
        Schedule::parse(&text)
            .map_err(|e| format!("{text:?} is not an ISO 8601 time with a timezone ({e:?})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wall_clock_instant_reads_back_to_itself() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let written = Schedule::from(at).to_string();
        assert_eq!(written, "2027-01-15T08:00:00.250+00:00");
        assert_eq!(Schedule::parse(&written).expect("RFC 3339").at(), at);
    }

    #[test]
    fn iso_8601_with_a_timezone_is_read() {
        let utc = Schedule::parse("2030-01-01T10:00:00Z").expect("Z");
        for same in [
            "2030-01-01T11:00:00+01:00",
            "2030-01-01 10:00Z",
            "2030-01-01T10:00+00:00",
            "2030-01-01T10:00:00.000+00:00",
        ] {
            assert_eq!(Schedule::parse(same).expect(same).at(), utc.at(), "{same}");
        }
        assert_eq!(
            Schedule::parse("2030-01-01T11:00+01:00").expect("hh:mm").to_string(),
            "2030-01-01T11:00:00+01:00"
        );
        assert_eq!(Schedule::parse("2030-01-01T10:00:00"), Err(ScheduleError::NoTimezone));
        assert_eq!(Schedule::parse("2030-01-01 10:00"), Err(ScheduleError::NoTimezone));
        assert_eq!(Schedule::parse("tomorrow"), Err(ScheduleError::Unreadable));
        let json = serde_json::to_value(utc).expect("json");
        assert_eq!(json, "2030-01-01T10:00:00+00:00");
        assert_eq!(serde_json::from_value::<Schedule>(json).expect("back"), utc);
    }

    #[test]
    fn a_multi_byte_character_where_the_seconds_go_is_unreadable_not_a_panic() {
        // Issue 12: the HH:MM completion inserted ":00" at a byte offset inside the 'é'.
        for text in ["2030-01-01T12:3é", "2030-01-01T12:34é", "2030-01-01 1é:30Z", "2030-01-01Té", "é T12:30"]
        {
            assert_eq!(Schedule::parse(text), Err(ScheduleError::Unreadable), "{text}");
        }
    }
}
