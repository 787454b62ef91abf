//! The write timeline of one run per manager around the fault, drawn as SVG (`--svg-prefix`): the
//! writes acknowledged per 100 ms on one time axis (seconds after the fault), the fault and each
//! manager's promotion (or restart) marked.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Width of one bin of the plot, in seconds.
const BIN_SECS: f64 = 0.1;

/// One manager's writer in one run.
pub(super) struct Series {
    /// The legend's text (the manager).
    pub label: String,
    /// When each write was acknowledged, in seconds after the fault (negative: before it).
    pub acks: Vec<f64>,
    /// The manager's milestone to mark (`promotion decided`, …) and when, in seconds after the fault.
    pub marker: Option<(String, f64)>,
}

/// The colours of the series, in order (the fault is black).
const COLOURS: [RGBColor; 4] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// Acknowledged writes per [`BIN_SECS`] from `from` to `to` (seconds after the fault): (bin start, count),
/// only the bins from the writer's first write to its last (before and after, it was not writing).
fn binned(acks: &[f64], from: f64, to: f64) -> Vec<(f64, u32)> {
    // Less a hair: 0.6 / 0.1 is 6.000000000000001 in floating point.
    let bins = ((to - from) / BIN_SECS - 1e-9).ceil().max(0.0) as usize;
    let mut counts = vec![0u32; bins];
    for at in acks.iter().filter(|t| **t >= from && **t < to) {
        let bin = ((at - from) / BIN_SECS) as usize;
        if let Some(c) = counts.get_mut(bin) {
            *c += 1;
        }
    }
    let first = counts.iter().position(|c| *c > 0);
    let last = counts.iter().rposition(|c| *c > 0);
    let (Some(first), Some(last)) = (first, last) else { return Vec::new() };
    (first..=last).map(|i| (from + i as f64 * BIN_SECS, counts[i])).collect()
}

/// The SVG text of the timeline of `series` from `from` to `to` seconds after the fault.
pub(super) fn render(title: &str, series: &[Series], from: f64, to: f64) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let all: Vec<Vec<(f64, u32)>> = series.iter().map(|s| binned(&s.acks, from, to)).collect();
        let peak = all.iter().flatten().map(|(_, c)| *c).max().unwrap_or(0).max(1);
        let top = f64::from(peak) * 1.35;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(from..to, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds after the fault")
            .y_desc("writes acknowledged per 100 ms")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        // The fault.
        let fault = LineSeries::new([(0.0, 0.0), (0.0, top)], BLACK.stroke_width(2));
        chart
            .draw_series(fault)
            .map_err(|e| e.to_string())?
            .label("fault")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        for (k, (s, bins)) in series.iter().zip(&all).enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            // A step line: each bin's count held over its 100 ms.
            let steps = bins.iter().flat_map(|(t, c)| [(*t, f64::from(*c)), (*t + BIN_SECS, f64::from(*c))]);
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
            if let Some((what, at)) = &s.marker {
                let line = DashedLineSeries::new([(*at, 0.0), (*at, top)], 6, 4, colour.stroke_width(1));
                chart.draw_series(line).map_err(|e| e.to_string())?;
                // Labels stacked from the top, one line per series.
                let y = top * (0.97 - 0.07 * k as f64);
                let text = format!("{}: {what} {at:+.2} s", s.label);
                // Right of the line, or left of it in the right half of the plot.
                let side = if *at > (from + to) / 2.0 { HPos::Right } else { HPos::Left };
                let style = ("sans-serif", 12).into_font().color(&colour).pos(Pos::new(side, VPos::Top));
                chart.draw_series([Text::new(text, (*at, y), style)]).map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes the timeline of `series` to `path`, the time axis from 2 s before the fault to 1.5 s after the
/// latest first write after it (`last_event`).
pub(super) fn write(path: &Path, title: &str, series: &[Series], last_event: f64) -> Result<(), String> {
    let to = (last_event + 1.5).max(2.0);
    let svg = render(title, series, -2.0, to)?;
    std::fs::write(path, svg).map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_has_every_series_and_its_markers() {
        // 50 writes per second before the fault, none for 1.2 s (Vigil) or 3 s (Patroni), then again.
        let writes = |gap: f64| -> Vec<f64> {
            (0..250).map(|i| -2.0 + f64::from(i) * 0.02).filter(|t| *t < 0.0 || *t >= gap).collect()
        };
        let series = [
            Series {
                label: "vigil".to_owned(),
                acks: writes(1.2),
                marker: Some(("promotion decided".to_owned(), 1.05)),
            },
            Series { label: "patroni".to_owned(), acks: writes(3.0), marker: None },
        ];
        let svg = render("node-crash", &series, -2.0, 3.0).expect("render");
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["node-crash", "vigil", "patroni", "fault", "vigil: promotion decided +1.05 s"] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        assert!(!svg.contains("patroni: "), "a series without a marker has no marker label");
        // The fault line, two step lines, the dashed marker, and the three legend lines.
        assert!(svg.matches("<polyline").count() >= 3, "{svg}");
        assert!(svg.contains("#D62728") || svg.contains("#d62728"), "Vigil's colour: {svg}");
    }

    #[test]
    fn writes_are_counted_per_100_ms() {
        let bins = binned(&[-0.15, -0.05, -0.01, 0.05, 0.35, 9.0], -0.3, 0.5);
        let counts: Vec<u32> = bins.iter().map(|(_, c)| *c).collect();
        assert_eq!(counts, [1, 2, 1, 0, 0, 1], "from the first write to the last");
        assert!((bins[0].0 - -0.2).abs() < 1e-9);
        assert!((bins[3].0 - 0.1).abs() < 1e-9);
        assert!(binned(&[], -1.0, 1.0).is_empty());
    }
}
