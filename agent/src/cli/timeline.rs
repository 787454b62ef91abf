//! The timeline `vigil history` prints under its table: the last failovers (promotions in the event
//! log), one line each, when, from, to, why and the write downtime, with a bar as long as the downtime
//! (the longest fills [`BAR`] columns) made of its phases. A pure function.

use vigil_api::{Event, EventKind, FailoverPhases};

/// How many failovers the timeline shows.
pub const SHOWN: usize = 10;
/// The columns of the longest bar.
pub const BAR: usize = 40;
/// The character of each phase, in the order of [`FailoverPhases::NAMES`].
const PHASE_CHARS: [char; 4] = ['█', '▓', '▒', '░'];

/// The timeline of the last [`SHOWN`] promotions among `events` (oldest first); empty without any.
pub fn timeline(events: &[Event]) -> String {
    let promotions: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::Promoted).collect();
    let shown = &promotions[promotions.len().saturating_sub(SHOWN)..];
    if shown.is_empty() {
        return String::new();
    }
    let longest = shown.iter().filter_map(|e| e.phases.map(|p| p.downtime_ms())).max().unwrap_or(0);
    let moves: Vec<String> = shown
        .iter()
        .map(|e| format!("{} → {}", e.other_member.as_deref().unwrap_or("?"), e.member))
        .collect();
    let move_width = moves.iter().map(|m| m.chars().count()).max().unwrap_or(0);
    let reason_width = shown.iter().map(|e| e.reason.chars().count()).max().unwrap_or(0);
    let mut out =
        String::from("Last failovers (downtime: old primary's last renewal → first write on the new one)\n");
    for (event, moved) in shown.iter().zip(&moves) {
        let when = event.time.replacen('T', " ", 1);
        let when = when.trim_end_matches('Z');
        let (downtime, bar) = match &event.phases {
            Some(phases) => (format!("{:.3} s", phases.downtime_ms() as f64 / 1000.0), bar(phases, longest)),
            None => ("-".to_owned(), String::new()),
        };
        let line =
            format!("{when}  {moved:<move_width$}  {:<reason_width$}  {downtime:>9}  {bar}", event.reason);
        out += line.trim_end();
        out.push('\n');
    }
    let legend: Vec<String> = PHASE_CHARS
        .iter()
        .zip(FailoverPhases::NAMES)
        .map(|(c, name)| format!("{c} {}", name.replace('_', " ")))
        .collect();
    out + &format!("  {}\n", legend.join("  "))
}

/// The bar of `phases`, `longest` (ms) filling [`BAR`] columns: each phase as many columns as its share,
/// cumulated so that the rounding errors do not add up; a downtime above 0 gets at least one column.
fn bar(phases: &FailoverPhases, longest: u64) -> String {
    if longest == 0 {
        return String::new();
    }
    let columns = |ms: u64| ((ms as f64 / longest as f64) * BAR as f64).round() as usize;
    let mut out = String::new();
    let (mut elapsed, mut drawn) = (0, 0);
    for ((_, took), c) in phases.named().iter().zip(PHASE_CHARS) {
        elapsed += took.as_millis() as u64;
        let end = columns(elapsed);
        out.extend(std::iter::repeat_n(c, end.saturating_sub(drawn)));
        drawn = drawn.max(end);
    }
    if out.is_empty() && phases.downtime_ms() > 0 {
        out.push(PHASE_CHARS[0]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn promotion(at_s: u64, from: &str, to: &str, reason: &str, phases: Option<[u64; 4]>) -> Event {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + at_s);
        let mut event = Event::new(EventKind::Promoted, to, at, reason).other(Some(from));
        event.phases = phases.map(|[d, l, p, w]| FailoverPhases {
            detection_ms: d,
            lease_ms: l,
            promotion_ms: p,
            first_write_ms: w,
        });
        event
    }

    #[test]
    fn one_line_per_failover_with_a_bar_as_long_as_its_downtime() {
        let events = [
            Event::new(EventKind::LeaseGranted, "b", SystemTime::UNIX_EPOCH, "failover"),
            promotion(0, "a", "b", "failover", Some([3000, 20, 960, 20])),
            promotion(600, "b", "a", "switchover", Some([400, 10, 90, 0])),
            promotion(900, "a", "c", "failover", None),
        ];
        let expected = "\
Last failovers (downtime: old primary's last renewal → first write on the new one)
2027-01-15 08:00:00.000  a → b  failover      4.000 s  ██████████████████████████████▒▒▒▒▒▒▒▒▒▒
2027-01-15 08:10:00.000  b → a  switchover    0.500 s  ████▒
2027-01-15 08:15:00.000  a → c  failover            -
  █ detection  ▓ lease  ▒ promotion  ░ first write
";
        assert_eq!(timeline(&events), expected);
    }

    #[test]
    fn only_the_last_failovers_and_nothing_without_any() {
        assert_eq!(timeline(&[]), "");
        let many: Vec<Event> =
            (0..15).map(|i| promotion(i, "a", "b", "failover", Some([0, 0, 1, 0]))).collect();
        let text = timeline(&many);
        assert_eq!(text.lines().count(), SHOWN + 2);
        assert!(text.lines().nth(1).expect("line").starts_with("2027-01-15 08:00:05.000"), "{text}");
        assert!(text.lines().nth(1).expect("line").ends_with('▒'), "{text}");
    }

    #[test]
    fn a_short_downtime_still_shows() {
        let phases = FailoverPhases { detection_ms: 1, lease_ms: 0, promotion_ms: 0, first_write_ms: 0 };
        assert_eq!(bar(&phases, 10_000), "█");
        assert_eq!(bar(&FailoverPhases::default(), 0), "");
    }
}
