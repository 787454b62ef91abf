//! Scheduled operations in requests: the `scheduled_at` of `POST /switchover` and the `schedule` of
//! `POST /restart` (the [`Schedule`] type itself is the policy's). A time without a timezone is refused
//! with 400, an unreadable one or one in the past with 422.

use crate::ApiError;
use std::time::SystemTime;
use vigil_policy::{Schedule, ScheduleError};

const EXAMPLE: &str = "2026-11-22T15:30:00+01:00";

/// Reads `text` for a request that schedules `action` (`switchover`, `restart`), which must lie after
/// `now`: the API's error otherwise (400 without a timezone, 422 unreadable or not in the future).
pub fn schedule_for_request(text: &str, action: &str, now: SystemTime) -> Result<Schedule, ApiError> {
    let schedule = Schedule::parse(text).map_err(|e| match e {
        ScheduleError::NoTimezone => ApiError::new(
            400,
            format!("Timezone information is mandatory for the scheduled {action}: {text:?} has none (e.g. {EXAMPLE})"),
        ),
        ScheduleError::Unreadable => ApiError::new(
            422,
            format!("Unable to parse the scheduled {action} time {text:?}: use ISO 8601 with a timezone, e.g. {EXAMPLE}"),
        ),
    })?;
    if schedule.at() <= now {
        return Err(ApiError::new(422, format!("Cannot schedule {action} in the past ({schedule})")));
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_multi_byte_character_where_the_seconds_go_is_unreadable_not_a_panic() {
        let err = schedule_for_request("2030-01-01T12:3é", "restart", SystemTime::UNIX_EPOCH).expect_err("é");
        assert!(err.message.contains("\"2030-01-01T12:3é\""), "{err:?}");
    }

    #[test]
    fn requests_must_be_in_the_future_and_say_why_not() {
        let now = Schedule::parse("2030-01-01T10:00:00Z").expect("now").at();
        assert!(schedule_for_request("2030-01-01T10:00:01Z", "switchover", now).is_ok());
        let past = schedule_for_request("2030-01-01T09:59:59Z", "switchover", now).expect_err("past");
        assert_eq!((past.status, past.message.contains("in the past")), (422, true), "{past:?}");
        let naive = schedule_for_request("2030-01-01T11:00", "restart", now).expect_err("no tz");
        assert_eq!(naive.status, 400);
        assert!(naive.message.contains("Timezone information is mandatory for the scheduled restart"));
        assert_eq!(schedule_for_request("soon", "restart", now).expect_err("bad").status, 422);
        assert!(schedule_for_request("2030-01-01T10:00:00Z", "restart", now - Duration::from_secs(1)).is_ok());
    }
}
