//! Pictures a user can open in any browser, written as plain SVG: the training curve and a
//! melody's piano roll.

use std::fmt::Write;

use crate::melody::Span;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 400.0;
const MARGIN: f64 = 50.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
/// Room right of a line chart for its legend.
const LEGEND: f64 = 170.0;

/// One named line of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with axes from the data's ranges, a legend and axis labels.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x_min, x_max) = range(all().map(|p| p.0));
    let (y_min, y_max) = range(all().map(|p| p.1));
    let right = WIDTH - MARGIN - LEGEND;
    let x = |v: f64| MARGIN + (v - x_min) / (x_max - x_min) * (right - MARGIN);
    let y = |v: f64| HEIGHT - MARGIN - (v - y_min) / (y_max - y_min) * (HEIGHT - 2.0 * MARGIN);
    let mut svg = header(WIDTH, HEIGHT, title);
    axes(&mut svg, right, x_label, y_label);
    for tick in 0..=4 {
        let value = y_min + (y_max - y_min) * tick as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{value:.3}</text>"#,
            MARGIN - 4.0,
            y(value) + 4.0
        );
        let value = x_min + (x_max - x_min) * tick as f64 / 4.0;
        // Whole numbers for epochs and steps; decimals for a narrow range such as distances.
        let digits = if x_max - x_min >= 8.0 { 0 } else { 3 };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{value:.digits$}</text>"#,
            x(value),
            HEIGHT - MARGIN + 14.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = MARGIN + 16.0 * i as f64;
        let _ = write!(
            svg,
            r#"<line x1="{0}" y1="{ly}" x2="{1}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{2}" y="{3}" font-size="12">{4}</text>"#,
            right + 15.0,
            right + 35.0,
            right + 40.0,
            ly + 4.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A piano roll: one bar per note, time (16th steps) across, pitch up; rests leave gaps.
pub fn piano_roll(title: &str, spans: &[Span]) -> String {
    let steps: u32 = spans.iter().map(|s| s.steps).sum();
    let pitches = spans.iter().filter_map(|s| s.pitch.map(f64::from));
    let (low, high) = range(pitches);
    let rows = (high - low + 1.0).max(1.0);
    let step_width = (WIDTH - 2.0 * MARGIN) / steps.max(1) as f64;
    let row_height = (HEIGHT - 2.0 * MARGIN) / rows;
    let mut svg = header(WIDTH, HEIGHT, title);
    axes(&mut svg, WIDTH - MARGIN, "time (16th notes)", "MIDI pitch");
    for pitch in [low, high] {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{pitch}</text>"#,
            MARGIN - 4.0,
            HEIGHT - MARGIN - (pitch - low + 0.5) * row_height + 4.0
        );
    }
    let mut start = 0;
    for span in spans {
        if let Some(pitch) = span.pitch {
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#1f77b4" stroke="white" stroke-width="0.5"/>"##,
                MARGIN + start as f64 * step_width,
                HEIGHT - MARGIN - (f64::from(pitch) - low + 1.0) * row_height,
                span.steps as f64 * step_width,
                row_height
            );
        }
        start += span.steps;
    }
    svg.push_str("</svg>\n");
    svg
}

/// (min, max) of the values, widened so that the range is never empty.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    match (min.is_finite(), max > min) {
        (false, _) => (0.0, 1.0),
        (true, false) => (min - 0.5, min + 0.5),
        (true, true) => (min, max),
    }
}

fn header(width: f64, height: f64, title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    )
}

/// The two axes, the x axis ending at `right`, with their labels.
fn axes(svg: &mut String, right: f64, x_label: &str, y_label: &str) {
    let (left, bottom) = (MARGIN, HEIGHT - MARGIN);
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{MARGIN}" x2="{left}" y2="{bottom}" stroke="black"/><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/><text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        (left + right) / 2.0,
        HEIGHT - 12.0,
        escape(x_label),
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        escape(y_label)
    );
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_scales_points_into_the_plot_area() {
        let series = [Series {
            name: "train <acc>",
            points: vec![(1.0, 0.5), (3.0, 0.9)],
        }];
        let svg = line_chart("curve", "epoch", "accuracy", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // x 1 → left margin, 3 → the legend's edge; y 0.5 → bottom, 0.9 → top.
        assert!(svg.contains(r#"points="50.0,350.0 580.0,50.0""#), "{svg}");
        assert!(svg.contains("train &lt;acc&gt;"));
    }

    #[test]
    fn piano_roll_draws_one_bar_per_note() {
        let spans = [
            Span {
                pitch: Some(60),
                steps: 4,
            },
            Span {
                pitch: None,
                steps: 2,
            },
            Span {
                pitch: Some(62),
                steps: 2,
            },
        ];
        let svg = piano_roll("melody", &spans);
        assert_eq!(svg.matches("<rect x=").count(), 2);
        // 8 steps over 700 px: the second note starts after 6 steps.
        assert!(svg.contains(r#"<rect x="575.0""#), "{svg}");
    }
}
