//! `vigil events`: the cluster's event log (`GET /events`) as a table, oldest first; with `-f`, new
//! events as they come (polling every [`POLL`]) until interrupted. The table's machine formats give the
//! events themselves (JSON as the API answers them); following, one JSON object or YAML list item per
//! event, and TSV rows for the other formats. Printing is made of pure functions.

use super::args::{EventsArgs, Format};
use super::table::Table;
use super::{connect, emit};
use serde_json::{json, Value};
use std::time::Duration;
use vigil_api::{Event, EventQuery, Since};

/// How often `-f` asks for new events.
const POLL: Duration = Duration::from_secs(1);
/// How many past events `-f` prints first when neither `--limit` nor `--since` is given.
const FOLLOW_BACKLOG: usize = 10;

const COLUMNS: [&str; 8] = ["ID", "Time", "Kind", "Member", "Token", "Other", "Reason", "Timings (ms)"];

/// `vigil events`.
pub async fn run(args: EventsArgs) -> Result<(), String> {
    let since = args.since.as_deref().map(Since::parse).transpose().map_err(|bad| bad.0)?;
    let limit = args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let backlog = (args.follow && limit.is_none() && since.is_none()).then_some(FOLLOW_BACKLOG);
    let mut query = EventQuery { limit: limit.or(backlog), since };
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let events = client.events(&query).await?;
    if !args.follow {
        emit(&render(&events, args.format));
        return Ok(());
    }
    let mut first = true;
    let mut batch = events;
    loop {
        if !batch.is_empty() || first {
            if !emit(&follow_text(&batch, args.format, first)) {
                return Ok(()); // stdout closed
            }
            first = false;
        }
        if let Some(last) = batch.last() {
            query = EventQuery { limit: None, since: Some(Since::Id(last.id)) };
        }
        tokio::time::sleep(POLL).await;
        batch = match client.events(&query).await {
            Ok(batch) => batch,
            Err(e) => {
                eprintln!("vigil: {e} (trying again)");
                Vec::new()
            }
        };
    }
}

/// The events printed once, in `format`.
pub fn render(events: &[Event], format: Format) -> String {
    match format {
        Format::Pretty | Format::Tsv => events_table(events).render(format),
        Format::Json => serde_json::to_string_pretty(events).unwrap_or_default() + "\n",
        Format::Yaml if events.is_empty() => "[]\n".to_owned(),
        Format::Yaml => serde_norway::to_string(events).unwrap_or_default(),
    }
}

/// New events while following, in `format`: a JSON object per line, a YAML list item each (the whole
/// output stays one YAML list), else tab-separated rows (with the header line `first`).
pub fn follow_text(events: &[Event], format: Format, first: bool) -> String {
    match format {
        Format::Json => events.iter().map(|e| serde_json::to_string(e).unwrap_or_default() + "\n").collect(),
        Format::Yaml if events.is_empty() => String::new(),
        Format::Yaml => serde_norway::to_string(events).unwrap_or_default(),
        Format::Pretty | Format::Tsv => {
            let text = events_table(events).tsv();
            if first {
                text
            } else {
                text.split_once('\n').map_or(String::new(), |(_, rows)| rows.to_owned())
            }
        }
    }
}

/// The events as a table, oldest first.
pub fn events_table(events: &[Event]) -> Table {
    let mut table = Table::new(&COLUMNS, &["ID", "Token"]);
    for e in events {
        table.rows.push(vec![
            json!(e.id),
            json!(e.time),
            json!(e.kind.as_str()),
            json!(e.member),
            e.fencing_token.map_or(Value::Null, Value::from),
            e.other_member.as_deref().map_or(Value::Null, Value::from),
            json!(e.reason),
            json!(timings_text(e)),
        ]);
    }
    table
}

/// An event's timings on one line: the failover phases first (`detection=3000 … downtime=3410`), then
/// the other timings by name.
pub fn timings_text(event: &Event) -> String {
    let mut parts = Vec::new();
    if let Some(phases) = &event.phases {
        parts.extend(phases.named().iter().map(|(name, took)| format!("{name}={}", took.as_millis())));
        parts.push(format!("downtime={}", phases.downtime_ms()));
    }
    parts.extend(event.timings.iter().map(|(name, ms)| format!("{}={ms}", name.trim_end_matches("_ms"))));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use vigil_api::{EventKind, FailoverPhases};

    fn events() -> Vec<Event> {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
        let expired = Event::new(EventKind::LeaseExpired, "a", at(0), "not renewed within its ttl (3000 ms)")
            .token(Some(7))
            .timing("since_last_renewal_ms", Duration::from_millis(3000));
        let mut promoted =
            Event::new(EventKind::Promoted, "b", at(1), "failover").token(Some(12)).other(Some("a"));
        promoted.phases =
            Some(FailoverPhases { detection_ms: 3000, lease_ms: 20, promotion_ms: 380, first_write_ms: 10 });
        vec![Event { id: 40, ..expired }, Event { id: 45, ..promoted }]
    }

    #[test]
    fn a_pretty_table_with_the_phases_on_one_line() {
        let text = render(&events(), Format::Pretty);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[1]
                .starts_with("| ID | Time                     | Kind          | Member | Token | Other |"),
            "{text}"
        );
        assert!(
            lines[3].contains("| 40 | 2027-01-15T08:00:00.000Z | lease_expired | a      |     7 |       |"),
            "{text}"
        );
        assert!(
            lines[4].contains("detection=3000 lease=20 promotion=380 first_write=10 downtime=3410"),
            "{text}"
        );
        assert!(lines[3].contains("since_last_renewal=3000"), "{text}");
    }

    #[test]
    fn machine_formats_give_the_events_themselves() {
        let json: Vec<Event> = serde_json::from_str(&render(&events(), Format::Json)).expect("json");
        assert_eq!(json, events());
        let yaml: Vec<Event> = serde_norway::from_str(&render(&events(), Format::Yaml)).expect("yaml");
        assert_eq!(yaml, events());
        assert_eq!(render(&[], Format::Json), "[]\n");
        assert_eq!(render(&[], Format::Yaml), "[]\n");
    }

    #[test]
    fn following_prints_one_record_per_event_and_the_header_once() {
        let lines = follow_text(&events(), Format::Json, true);
        let parsed: Vec<Event> =
            lines.lines().map(|l| serde_json::from_str(l).expect("one object a line")).collect();
        assert_eq!(parsed, events());
        let first = follow_text(&events()[..1], Format::Pretty, true);
        let next = follow_text(&events()[1..], Format::Pretty, false);
        assert!(first.starts_with("ID\tTime\tKind"), "{first}");
        assert_eq!((first.lines().count(), next.lines().count()), (2, 1));
        assert!(next.starts_with("45\t"), "{next}");
        let yaml = follow_text(&events()[..1], Format::Yaml, true)
            + &follow_text(&events()[1..], Format::Yaml, false);
        let all: Vec<Event> = serde_norway::from_str(&yaml).expect("one YAML list");
        assert_eq!(all, events());
        assert_eq!(follow_text(&[], Format::Json, false), "");
    }
}
