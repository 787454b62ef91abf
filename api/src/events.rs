//! `GET /events`: the cluster's event log ([`Event`]: every lease grant and loss, fence, promotion,
//! demotion, switchover and rejoin, with its time, member, reason, fencing token and timings), newest
//! last. `?limit=N` keeps the last N, `?since=<id or time>` those after an event id or from a time on
//! ([`EventQuery`]); a malformed parameter is a 400 naming it.
//!
//! A promotion carries its failover broken into phases ([`FailoverPhases`]): detection (the old
//! primary's last renewal → the lease free), lease (→ granted with the new token), promotion (→ the
//! server accepts writes) and first write (→ the first write committed on the new primary).

use crate::query::BadParameter;
use axum::extract::Query;
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A member took the lease, with a new fencing token.
    LeaseGranted,
    /// The lease ran out: its holder did not renew it within the ttl (recorded by the Raft leader).
    LeaseExpired,
    /// The holder gave the lease up (switchover, shutdown, a failed start).
    LeaseReleased,
    /// The holder's renewal was refused or did not reach the store before its deadline.
    LeaseLost,
    /// A member stopped its server from taking writes (its lease ran out, or a newer token exists).
    Fenced,
    /// A member refused to act under a fencing token older than one it has seen.
    StaleTokenRefused,
    /// A member's server became the primary.
    Promoted,
    /// A primary stepped down for a switchover, to follow the candidate.
    Demoted,
    /// An operator asked for a switchover or failover.
    SwitchoverRequested,
    /// The switchover or failover asked for was carried out.
    SwitchoverDone,
    /// A switchover or failover asked for was refused, with why.
    SwitchoverRefused,
    /// A member follows (again) the current primary: a replica re-pointed, or a former primary rejoined.
    Rejoined,
    /// A kind this version does not know (written by a newer agent).
    #[serde(other)]
    Other,
}

impl EventKind {
    /// The kind as written in the log (`lease_granted`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::LeaseGranted => "lease_granted",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::LeaseReleased => "lease_released",
            EventKind::LeaseLost => "lease_lost",
            EventKind::Fenced => "fenced",
            EventKind::StaleTokenRefused => "stale_token_refused",
            EventKind::Promoted => "promoted",
            EventKind::Demoted => "demoted",
            EventKind::SwitchoverRequested => "switchover_requested",
            EventKind::SwitchoverDone => "switchover_done",
            EventKind::SwitchoverRefused => "switchover_refused",
            EventKind::Rejoined => "rejoined",
            EventKind::Other => "other",
        }
    }
}

/// A failover broken into phases, in milliseconds; they add up to the write downtime as seen from the
/// old primary's last renewal to the first write committed on the new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverPhases {
    /// The old primary's last renewal (or the moment it stopped, in a switchover) → the lease free.
    pub detection_ms: u64,
    /// The lease free → granted to the new primary with its new token.
    pub lease_ms: u64,
    /// Granted → the new primary's server accepts writes.
    pub promotion_ms: u64,
    /// Accepting writes → the first write committed on it.
    pub first_write_ms: u64,
}

impl FailoverPhases {
    /// The names of the phases, as the `phase` label of `vigil_failover_phase_seconds`.
    pub const NAMES: [&str; 4] = ["detection", "lease", "promotion", "first_write"];

    /// The phases between the instants `last_renewal ≤ free ≤ granted ≤ promoted ≤ first_write` (on
    /// the wall clock, from different members: an instant that comes before the one it follows, by
    /// clock skew, makes that phase 0).
    pub fn between(
        last_renewal: SystemTime,
        free: SystemTime,
        granted: SystemTime,
        promoted: SystemTime,
        first_write: SystemTime,
    ) -> FailoverPhases {
        let ms = |from: SystemTime, to: SystemTime| millis(to.duration_since(from).unwrap_or_default());
        FailoverPhases {
            detection_ms: ms(last_renewal, free),
            lease_ms: ms(free, granted),
            promotion_ms: ms(granted, promoted),
            first_write_ms: ms(promoted, first_write),
        }
    }

    /// Each phase with its name, in order.
    pub fn named(&self) -> [(&'static str, Duration); 4] {
        let d = Duration::from_millis;
        let [detection, lease, promotion, first_write] = Self::NAMES;
        [
            (detection, d(self.detection_ms)),
            (lease, d(self.lease_ms)),
            (promotion, d(self.promotion_ms)),
            (first_write, d(self.first_write_ms)),
        ]
    }

    /// The whole downtime: the sum of the phases.
    pub fn downtime_ms(&self) -> u64 {
        self.detection_ms + self.lease_ms + self.promotion_ms + self.first_write_ms
    }
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its id in the log: the store revision that appended it (0 until it is stored).
    #[serde(default)]
    pub id: u64,
    /// When it happened (RFC 3339, UTC, milliseconds), by the clock of the member that saw it: an event
    /// written late (by a member that was cut off from the store) keeps its original time.
    pub time: String,
    /// What happened.
    pub kind: EventKind,
    /// The member it happened to.
    pub member: String,
    /// Why, in words.
    pub reason: String,
    /// The fencing token concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<u64>,
    /// The member the lease or the primary role came from (grants, promotions), or goes to (demotions,
    /// switchovers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_member: Option<String>,
    /// Durations, in milliseconds, by name (e.g. `duration_ms` of a fence, `since_last_renewal_ms`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timings: BTreeMap<String, u64>,
    /// A promotion's failover phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<FailoverPhases>,
}

impl Event {
    /// An event of `kind` that happened to `member` at `at`, for `reason`.
    pub fn new(
        kind: EventKind,
        member: impl Into<String>,
        at: SystemTime,
        reason: impl Into<String>,
    ) -> Event {
        Event {
            id: 0,
            time: event_time(at),
            kind,
            member: member.into(),
            reason: reason.into(),
            fencing_token: None,
            other_member: None,
            timings: BTreeMap::new(),
            phases: None,
        }
    }

    /// The event with `token`.
    pub fn token(mut self, token: Option<u64>) -> Event {
        self.fencing_token = token;
        self
    }

    /// The event with `other` as its other member.
    pub fn other(mut self, other: Option<impl Into<String>>) -> Event {
        self.other_member = other.map(Into::into);
        self
    }

    /// The event with the timing `name` (in milliseconds).
    pub fn timing(mut self, name: &str, took: Duration) -> Event {
        self.timings.insert(name.to_owned(), millis(took));
        self
    }

    /// When it happened, on the wall clock (`None`: an unreadable time).
    pub fn at(&self) -> Option<SystemTime> {
        crate::Schedule::parse(&self.time).ok().map(|t| t.at())
    }
}

/// `at` as an event's time: RFC 3339 in UTC with milliseconds (`2026-12-07T09:15:02.412Z`).
pub fn event_time(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where `?since=` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// After the event with this id.
    Id(u64),
    /// From this time on.
    Time(SystemTime),
}

/// The parameters of `GET /events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// `?limit=N`: only the last N events (a positive integer).
    pub limit: Option<usize>,
    /// `?since=`: only the events after an id, or from a time (ISO 8601 with a timezone) on.
    pub since: Option<Since>,
}

impl EventQuery {
    /// Parses the query of `uri`; an unknown or malformed parameter is an error naming it.
    pub fn from_uri(uri: &Uri) -> Result<EventQuery, BadParameter> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| BadParameter(format!("unreadable query string: {e}")))?;
        let mut query = EventQuery::default();
        for (key, value) in &pairs {
            match key.as_str() {
                "limit" => {
                    let limit = value.parse().ok().filter(|n| *n > 0);
                    query.limit = Some(limit.ok_or_else(|| bad("limit", value, "a positive integer"))?);
                }
                "since" => query.since = Some(Since::parse(value)?),
                _ => return Err(BadParameter(format!("unknown parameter {key:?}: expected limit or since"))),
            }
        }
        Ok(query)
    }

    /// The query as a query string (`?limit=…&since=…`, empty without parameters), for the client.
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        if let Some(limit) = self.limit {
            parts.push(format!("limit={limit}"));
        }
        match self.since {
            Some(Since::Id(id)) => parts.push(format!("since={id}")),
            Some(Since::Time(at)) => parts.push(format!("since={}", event_time(at))),
            None => {}
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// The events of `log` (oldest first) this query selects, oldest first.
    pub fn select(&self, log: Vec<Event>) -> Vec<Event> {
        let mut selected: Vec<Event> = log
            .into_iter()
            .filter(|e| match self.since {
                None => true,
                Some(Since::Id(id)) => e.id > id,
                Some(Since::Time(from)) => e.at().is_some_and(|at| at >= from),
            })
            .collect();
        if let Some(limit) = self.limit {
            selected.drain(..selected.len().saturating_sub(limit));
        }
        selected
    }
}

impl Since {
    /// An event id, or an ISO 8601 time with a timezone; the error names `since` and the value.
    pub fn parse(value: &str) -> Result<Since, BadParameter> {
        if let Ok(id) = value.parse() {
            return Ok(Since::Id(id));
        }
        // A `+` of an offset that came unescaped in a query string reads as a blank.
        let unescaped = value.rsplit_once(' ').map(|(time, offset)| format!("{time}+{offset}"));
        let parsed = crate::Schedule::parse(value)
            .or_else(|e| unescaped.map_or(Err(e), |v| crate::Schedule::parse(&v)));
        parsed
            .map(|t| Since::Time(t.at()))
            .map_err(|_| bad("since", value, "an event id, or an ISO 8601 time with a timezone"))
    }
}

fn bad(name: &str, value: &str, expected: &str) -> BadParameter {
    BadParameter(format!("{name}={value:?}: expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(query: &str) -> Uri {
        format!("/events{query}").parse().expect("uri")
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn log() -> Vec<Event> {
        (1..=5u64)
            .map(|i| Event { id: i * 10, ..Event::new(EventKind::Promoted, "a", at(1000 + i), "failover") })
            .collect()
    }

    #[test]
    fn parameters_are_parsed_or_named_in_the_error() {
        assert_eq!(EventQuery::from_uri(&uri("")), Ok(EventQuery::default()));
        let query = EventQuery::from_uri(&uri("?limit=3&since=42")).expect("valid");
        assert_eq!(query, EventQuery { limit: Some(3), since: Some(Since::Id(42)) });
        let query = EventQuery::from_uri(&uri("?since=1970-01-01T00:16:43Z")).expect("valid");
        assert_eq!(query.since, Some(Since::Time(at(1003))));
        let query = EventQuery::from_uri(&uri("?since=1970-01-01T01:16:43+01:00")).expect("an unescaped +");
        assert_eq!(query.since, Some(Since::Time(at(1003))));
        let query = EventQuery::from_uri(&uri("?since=1970-01-01%2000:16:43Z")).expect("a blank for the T");
        assert_eq!(query.since, Some(Since::Time(at(1003))));
        for (bad, named) in [
            ("?limit=0", "limit=\"0\""),
            ("?limit=-1", "limit=\"-1\""),
            ("?limit=many", "limit=\"many\""),
            ("?since=yesterday", "since=\"yesterday\""),
            ("?since=2026-01-01T10:00:00", "since="),
            ("?sort=asc", "\"sort\""),
        ] {
            let err = EventQuery::from_uri(&uri(bad)).expect_err(bad);
            assert!(err.0.contains(named), "{bad}: {}", err.0);
        }
    }

    #[test]
    fn a_query_string_reads_back_as_the_same_query() {
        for query in [
            EventQuery::default(),
            EventQuery { limit: Some(7), since: Some(Since::Id(9)) },
            EventQuery {
                limit: None,
                since: Some(Since::Time(at(1_800_000_000) + Duration::from_millis(5))),
            },
        ] {
            assert_eq!(EventQuery::from_uri(&uri(&query.to_query_string())), Ok(query));
        }
    }

    #[test]
    fn selection_keeps_the_newest_last() {
        let ids = |q: EventQuery| q.select(log()).iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(EventQuery::default()), [10, 20, 30, 40, 50]);
        assert_eq!(ids(EventQuery { limit: Some(2), since: None }), [40, 50]);
        assert_eq!(ids(EventQuery { limit: None, since: Some(Since::Id(30)) }), [40, 50], "after the id");
        assert_eq!(ids(EventQuery { limit: None, since: Some(Since::Time(at(1003))) }), [30, 40, 50]);
        assert_eq!(ids(EventQuery { limit: Some(1), since: Some(Since::Id(10)) }), [50]);
        assert_eq!(ids(EventQuery { limit: Some(9), since: Some(Since::Id(50)) }), Vec::<u64>::new());
    }

    #[test]
    fn phases_add_up_and_clock_skew_makes_a_phase_zero_not_negative() {
        let ms = |n| at(100) + Duration::from_millis(n);
        let phases = FailoverPhases::between(ms(0), ms(3000), ms(3020), ms(3400), ms(3410));
        assert_eq!(
            (phases.detection_ms, phases.lease_ms, phases.promotion_ms, phases.first_write_ms),
            (3000, 20, 380, 10)
        );
        assert_eq!(phases.downtime_ms(), 3410);
        let skewed = FailoverPhases::between(ms(50), ms(40), ms(60), ms(70), ms(80));
        assert_eq!(skewed.detection_ms, 0);
        assert_eq!(skewed.named().map(|(name, _)| name), FailoverPhases::NAMES);
    }

    #[test]
    fn events_round_trip_and_unknown_kinds_are_kept_readable() {
        let event = Event::new(EventKind::LeaseGranted, "b", at(1_800_000_000), "failover")
            .token(Some(42))
            .other(Some("a"))
            .timing("waited_ms", Duration::from_millis(12));
        let json = serde_json::to_value(&event).expect("json");
        assert_eq!(json["time"], "2027-01-15T08:00:00.000Z");
        assert_eq!(json["kind"], "lease_granted");
        assert_eq!(serde_json::from_value::<Event>(json).expect("event"), event);
        let newer = serde_json::json!({"time": "2027-01-15T08:00:00.000Z", "kind": "teleported",
            "member": "a", "reason": "?"});
        assert_eq!(serde_json::from_value::<Event>(newer).expect("event").kind, EventKind::Other);
    }
}
