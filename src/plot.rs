//! Pictures a user can open in any browser, drawn as SVG with `plotters`: line charts (the
//! training curve, assessment densities) and a melody's piano roll.
//!
//! Both keep their legend in a strip right of the plot area, so it never covers the data. Text is
//! written as SVG `<text>` and laid out by the viewer; plotters only estimates its size.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::melody::Span;

const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];
const GRID: RGBColor = RGBColor(0xe0, 0xe0, 0xe0);
const FRAME: RGBColor = RGBColor(0x40, 0x40, 0x40);
/// Seed notes are grey on a pale amber band, so that the generated part stands out.
const SEED_NOTE: RGBColor = RGBColor(0x8c, 0x8c, 0x8c);
const SEED_BAND: RGBColor = RGBColor(0xf5, 0xb0, 0x40);
const SEED_BAND_OPACITY: f64 = 0.2;
const GENERATED_NOTE: RGBColor = COLOURS[0];
const BAR_LINE: RGBColor = RGBColor(0x90, 0x90, 0x90);
/// A fainter line at every quarter note (4 sixteenth steps) to read rhythm by.
const BEAT_LINE: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const STEPS_PER_BEAT: u32 = 4;
/// Rows of black keys are shaded, as on a piano, to find one's way between pitch names.
const BLACK_KEY_ROW: RGBColor = RGBColor(0xf0, 0xf0, 0xf0);
const HEIGHT: u32 = 450;
const CHART_WIDTH: u32 = 900;
/// Pixels per grid step of a piano roll, within its least and greatest width.
const STEP_WIDTH: u32 = 4;
const ROLL_MIN_WIDTH: u32 = 800;
const ROLL_MAX_WIDTH: u32 = 2400;
/// About this many intervals between ticks on an axis.
const TICKS: f64 = 8.0;
const FONT: &str = "sans-serif";
const TITLE_SIZE: f64 = 22.0;
const LABEL_SIZE: f64 = 16.0;
/// Room above, below and left of the plot area for tick labels and axis names.
const MARGIN: u32 = 15;
const X_LABEL_AREA: u32 = 45;
const Y_LABEL_AREA: u32 = 70;

/// One named line of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A line chart: axes widened to round ticks, light grid lines, the legend beside the plot.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH, HEIGHT)).into_drawing_area();
        draw_line_chart(&root, title, x_label, y_label, series).expect(INFALLIBLE);
    }
    svg
}

/// What a piano roll shows: the melody, how many of its first steps are the seed it was
/// continued from, and the grid steps in a bar (16 for 4/4 in sixteenths, 12 for 3/4).
pub struct PianoRoll<'a> {
    pub title: &'a str,
    pub spans: &'a [Span],
    pub seed_steps: u32,
    pub steps_per_bar: u32,
}

/// A piano roll: a rectangle per note (rests are gaps), pitch names up the side, bar numbers
/// along the bottom with a line at every bar, the seed shaded and its notes in grey.
pub fn piano_roll(roll: &PianoRoll<'_>) -> String {
    let steps: u32 = roll.spans.iter().map(|s| s.steps).sum();
    let width = steps
        .saturating_mul(STEP_WIDTH)
        .clamp(ROLL_MIN_WIDTH, ROLL_MAX_WIDTH);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, HEIGHT)).into_drawing_area();
        draw_piano_roll(&root, roll, steps.max(1)).expect(INFALLIBLE);
    }
    svg
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<TickedAxis, TickedAxis>>;
type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;
/// The SVG backend writes into a String, which cannot fail.
const INFALLIBLE: &str = "drawing into a String cannot fail";

fn draw_line_chart(
    root: &Area<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
) -> Drawn {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x = Ticks::new(range(all().map(|p| p.0)), all().all(|p| p.0.fract() == 0.0));
    let y = Ticks::new(range(all().map(|p| p.1)), false);
    let legend: Vec<(&str, RGBColor)> = series
        .iter()
        .zip(COLOURS.iter().cycle())
        .map(|(s, &colour)| (s.name, colour))
        .collect();
    let (plot, key) = layout(root, title, &legend)?;
    let mut chart = ChartBuilder::on(&plot)
        .margin(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x.axis(), y.axis())?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .axis_style(TRANSPARENT)
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&|v| x.label(*v))
        .y_label_formatter(&|v| y.label(*v))
        .draw()?;
    for (s, &(_, colour)) in series.iter().zip(&legend) {
        chart.draw_series(LineSeries::new(
            s.points.iter().copied(),
            colour.stroke_width(2),
        ))?;
    }
    draw_frame(&chart)?;
    draw_legend(&key, &legend, 3)?;
    root.present()
}

fn draw_piano_roll(root: &Area<'_>, roll: &PianoRoll<'_>, steps: u32) -> Drawn {
    let per_bar = roll.steps_per_bar.max(1);
    let seed_steps = roll.seed_steps.min(steps);
    let pitches = || roll.spans.iter().filter_map(|s| s.pitch);
    let (low, high) = match (pitches().min(), pitches().max()) {
        (Some(low), Some(high)) => (low, high),
        _ => (60, 72),
    };
    // A free row above and below, so that the outer notes do not touch the frame.
    let rows = f64::from(low) - 1.5..f64::from(high) + 1.5;
    let bar_starts: Vec<f64> = (0..steps)
        .step_by(per_bar as usize)
        .map(f64::from)
        .collect();
    let mut legend = vec![("generated", GENERATED_NOTE)];
    if seed_steps > 0 {
        legend.insert(0, ("seed", SEED_NOTE));
    }
    let (plot, key) = layout(root, roll.title, &legend)?;
    let mut chart = ChartBuilder::on(&plot)
        .margin(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(
            TickedAxis::new(0.0..f64::from(steps), bar_starts),
            TickedAxis::new(rows.clone(), pitch_labels(low, high)),
        )?;
    chart
        .configure_mesh()
        .disable_mesh()
        .axis_style(TRANSPARENT)
        .x_desc("bar")
        .y_desc("pitch")
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&|step| format!("{}", *step as u32 / per_bar + 1))
        .y_label_formatter(&|pitch| pitch_name(pitch.round() as u8))
        .draw()?;
    chart.draw_series(
        (low..=high)
            .filter(|&pitch| is_black_key(pitch))
            .map(|pitch| row(pitch, 0.0, f64::from(steps), BLACK_KEY_ROW.filled(), 0.0)),
    )?;
    // Over the key rows, see-through, so that those still show in the seed.
    if seed_steps > 0 {
        chart.draw_series([Rectangle::new(
            [(0.0, rows.start), (f64::from(seed_steps), rows.end)],
            SEED_BAND.mix(SEED_BAND_OPACITY).filled(),
        )])?;
    }
    let vertical = |step: u32, colour| {
        let step = f64::from(step);
        PathElement::new([(step, rows.start), (step, rows.end)], colour)
    };
    chart.draw_series(
        (STEPS_PER_BEAT..steps)
            .step_by(STEPS_PER_BEAT as usize)
            .filter(|step| step % per_bar != 0)
            .map(|step| vertical(step, BEAT_LINE)),
    )?;
    chart.draw_series(
        (per_bar..steps)
            .step_by(per_bar as usize)
            .map(|step| vertical(step, BAR_LINE)),
    )?;
    let mut onset = 0;
    let notes = roll.spans.iter().filter_map(|span| {
        let (from, to) = (onset, onset + span.steps);
        onset = to;
        let colour = if from < seed_steps {
            SEED_NOTE
        } else {
            GENERATED_NOTE
        };
        // A little short of the next onset, so that repeated notes stay apart.
        span.pitch
            .map(|pitch| row(pitch, f64::from(from), f64::from(to), colour.filled(), 0.15))
    });
    chart.draw_series(notes)?;
    draw_frame(&chart)?;
    draw_legend(&key, &legend, 12)?;
    root.present()
}

/// A rectangle in `pitch`'s row from step `from` to `to`, `inset` (a share of a step or row)
/// short of its ends.
fn row(pitch: u8, from: f64, to: f64, style: ShapeStyle, inset: f64) -> Rectangle<(f64, f64)> {
    let centre = f64::from(pitch);
    let half = 0.5 - inset / 2.0;
    Rectangle::new([(from, centre - half), (to - inset, centre + half)], style)
}

/// The pitches named on a piano roll's axis: all of them in a narrow range, the white keys in a
/// wider one, the Cs alone beyond four octaves.
fn pitch_labels(low: u8, high: u8) -> Vec<f64> {
    let span = high - low;
    (low..=high)
        .filter(|&p| match span {
            0..=24 => true,
            25..=48 => !is_black_key(p),
            _ => p % 12 == 0,
        })
        .map(f64::from)
        .collect()
}

/// `60` → `C4`, `61` → `C#4` (MIDI 60 is middle C).
fn pitch_name(midi: u8) -> String {
    const NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    format!(
        "{}{}",
        NAMES[usize::from(midi % 12)],
        i32::from(midi / 12) - 1
    )
}

fn is_black_key(midi: u8) -> bool {
    matches!(midi % 12, 1 | 3 | 6 | 8 | 10)
}

/// Splits `root` under its title into the plot area and, right of it, a strip wide enough for
/// the legend's longest name.
fn layout<'a>(
    root: &Area<'a>,
    title: &str,
    legend: &[(&str, RGBColor)],
) -> Result<(Area<'a>, Area<'a>), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let below_title = root.titled(title, (FONT, TITLE_SIZE))?;
    let longest = legend.iter().map(|(name, _)| name.chars().count()).max();
    // An average sans-serif character is about 0.55 em wide, and plotters writes LABEL_SIZE as a
    // font size of LABEL_SIZE / 1.24; the swatch and its gap take 32 px before the name.
    let key_width = (longest.unwrap_or(0) as f64 * LABEL_SIZE * 0.45) as u32 + 45;
    let plot_width = below_title.dim_in_pixel().0.saturating_sub(key_width);
    Ok(below_title.split_horizontally(plot_width))
}

/// A box around the plot area, in place of plotters' axis lines and tick marks: those are
/// `<polyline>`s, as the data's lines are, and a chart's SVG has a polyline per series alone.
fn draw_frame(chart: &Chart<'_, '_>) -> Drawn {
    let (x, y) = (chart.x_range(), chart.y_range());
    chart.plotting_area().draw(&Rectangle::new(
        [(x.start, y.start), (x.end, y.end)],
        FRAME.stroke_width(1),
    ))
}

/// The legend down the strip `key`: a swatch `swatch_height` pixels high, then the name.
fn draw_legend(key: &Area<'_>, entries: &[(&str, RGBColor)], swatch_height: i32) -> Drawn {
    let top = (MARGIN + 10) as i32;
    for (i, &(name, colour)) in entries.iter().enumerate() {
        let y = top + 24 * i as i32;
        let swatch = Rectangle::new(
            [
                (0, y - swatch_height / 2),
                (24, y + swatch_height - swatch_height / 2),
            ],
            colour.filled(),
        );
        let label = Text::new(
            name.to_string(),
            (32, y),
            TextStyle::from((FONT, LABEL_SIZE)).pos(Pos::new(HPos::Left, VPos::Center)),
        );
        key.draw(&swatch)?;
        key.draw(&label)?;
    }
    Ok(())
}

/// The round tick values of one axis, and the axis range widened to the outer ones.
struct Ticks {
    step: f64,
    /// The first and last tick as multiples of `step`.
    first: i64,
    last: i64,
}

impl Ticks {
    /// Steps of 1, 2 or 5 × 10ⁿ, at least 1 for `whole` numbers such as epochs.
    fn new((min, max): (f64, f64), whole: bool) -> Ticks {
        let magnitude = 10f64.powf(((max - min) / TICKS).log10().floor());
        let mut step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|step| (max - min) / step <= TICKS)
            .expect("10 × magnitude is at least (max − min) / TICKS");
        if whole {
            step = step.max(1.0);
        }
        // Tolerant of 0.35 / 0.05 = 6.999…, so that a value on a tick does not add a tick.
        let first = (min / step + 1e-9).floor() as i64;
        let last = (max / step - 1e-9).ceil() as i64;
        Ticks { step, first, last }
    }

    fn axis(&self) -> TickedAxis {
        let values: Vec<f64> = (self.first..=self.last)
            .map(|k| k as f64 * self.step)
            .collect();
        TickedAxis::new(values[0]..values[values.len() - 1], values)
    }

    /// `value` with as many decimals as the step has: 0.35, 0.40, … or 20, 40, ….
    fn label(&self, value: f64) -> String {
        let decimals = (-self.step.log10()).ceil().max(0.0) as usize;
        format!("{value:.decimals$}")
    }
}

/// A linear f64 axis ticked (and grid-lined) exactly at `ticks`. Plotters' own `with_key_points`
/// cannot take a label formatter on an f64 axis.
struct TickedAxis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> TickedAxis {
        TickedAxis {
            linear: range.into(),
            ticks,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    /// The ticks as the bold points (labels and grid lines); no light ones.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of every `<text>` element, in order (plotters writes it on its own line).
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .map(|element| element.lines().nth(1).unwrap_or("").trim())
            .collect()
    }

    /// The value of `name="…"` in `element`, as a number.
    fn attribute(element: &str, name: &str) -> f64 {
        let element = format!(" {element}");
        let start = element.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        let end = start + element[start..].find('"').unwrap();
        element[start..end].parse().unwrap()
    }

    /// Every element of `tag` (its opening tag only) whose attributes contain `having`.
    fn elements<'a>(svg: &'a str, tag: &str, having: &str) -> Vec<&'a str> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .map(|element| &element[..element.find('>').unwrap()])
            .filter(|element| element.contains(having))
            .collect()
    }

    fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
        elements(svg, "polyline", "")
            .iter()
            .map(|line| {
                let points = line.split("points=\"").nth(1).unwrap();
                points[..points.find('"').unwrap()]
                    .split_whitespace()
                    .map(|point| {
                        let (x, y) = point.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    /// The pixel positions of the grid's vertical and horizontal lines.
    fn grid(svg: &str) -> (Vec<f64>, Vec<f64>) {
        let lines = elements(svg, "line", "#E0E0E0");
        let constant = |axis: &str| -> Vec<f64> {
            let (from, to) = (format!("{axis}1"), format!("{axis}2"));
            lines
                .iter()
                .filter(|l| attribute(l, &from) == attribute(l, &to))
                .map(|l| attribute(l, &from))
                .collect()
        };
        (constant("x"), constant("y"))
    }

    fn span(pitch: Option<u8>, steps: u32) -> Span {
        Span { pitch, steps }
    }

    #[test]
    fn chart_scales_points_into_the_plot_area() {
        let series = [Series {
            name: "train <acc>",
            points: vec![(1.0, 0.5), (3.0, 0.9)],
        }];
        let svg = line_chart("curve", "epoch", "accuracy", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // x 1 → the plot area's left edge, 3 → its right edge; y 0.5 → bottom, 0.9 → top: the
        // outer grid lines, as the range ends on ticks.
        let (columns, rows) = grid(&svg);
        let (left, right) = (columns[0], columns[columns.len() - 1]);
        let (bottom, top) = (rows[0], rows[rows.len() - 1]);
        assert_eq!(
            polyline_points(&svg),
            [vec![(left, bottom), (right, top)]],
            "{svg}"
        );
        assert!(left < right && top < bottom);
        assert!(svg.contains("train &lt;acc&gt;"));
        // Whole numbers on x take whole ticks, never 1.5.
        let labels = texts(&svg);
        assert!(
            labels.starts_with(&["curve", "accuracy", "epoch"]),
            "{labels:?}"
        );
        // y's ticks come first: 0.50 … 0.90 in steps of 0.05.
        assert_eq!(labels[3..12].last(), Some(&"0.90"));
        assert_eq!(labels[12..15], ["1", "2", "3"]);
    }

    /// Accuracies as in models/erk.metrics.jsonl: 0.352 … 0.876 over epochs 1 … 113.
    fn erk_like() -> Vec<Series<'static>> {
        let curve = |name, from: f64, to: f64| Series {
            name,
            points: (1..=113)
                .map(|epoch| {
                    (
                        f64::from(epoch),
                        from + (to - from) * f64::from(epoch) / 113.0,
                    )
                })
                .collect(),
        };
        vec![
            curve("train accuracy", 0.7178, 0.876),
            curve("held-out accuracy", 0.756, 0.8386),
            curve("held-out baseline", 0.786, 0.786),
            curve("held-out events", 0.352, 0.3697),
        ]
    }

    #[test]
    fn chart_ticks_are_round_numbers() {
        let svg = line_chart("training curve", "epoch", "accuracy", &erk_like());
        let labels = texts(&svg);
        assert_eq!(
            labels[3..],
            [
                "0.3",
                "0.4",
                "0.5",
                "0.6",
                "0.7",
                "0.8",
                "0.9",
                "0",
                "20",
                "40",
                "60",
                "80",
                "100",
                "120",
                "train accuracy",
                "held-out accuracy",
                "held-out baseline",
                "held-out events"
            ]
        );
        let (columns, rows) = grid(&svg);
        assert_eq!(
            (columns.len(), rows.len()),
            (7, 7),
            "a grid line at every tick"
        );
    }

    #[test]
    fn chart_legend_lies_beside_the_curves() {
        let series = erk_like();
        let svg = line_chart("training curve", "epoch", "accuracy", &series);
        let curves = polyline_points(&svg);
        assert_eq!(curves.len(), 4, "a polyline per series and no other");
        let rightmost = curves.iter().flatten().map(|p| p.0).fold(0.0, f64::max);
        let (columns, _) = grid(&svg);
        let plot_right = columns[columns.len() - 1];
        assert!(rightmost <= plot_right);
        for (s, colour) in series
            .iter()
            .zip(["#1F77B4", "#D62728", "#2CA02C", "#9467BD"])
        {
            let swatches = elements(&svg, "rect", &format!("fill=\"{colour}\""));
            assert_eq!(swatches.len(), 1, "{}", s.name);
            assert!(attribute(swatches[0], "x") > plot_right, "{}", s.name);
            let label = svg.split("<text").find(|t| t.contains(s.name)).unwrap();
            assert!(attribute(label, "x") > plot_right, "{}", s.name);
        }
    }

    #[test]
    fn ticks_take_steps_of_one_two_or_five() {
        let ticks = |min, max, whole| {
            let t = Ticks::new((min, max), whole);
            (t.step, t.first, t.last)
        };
        assert_eq!(ticks(0.352, 0.876, false), (0.1, 3, 9));
        assert_eq!(ticks(0.5, 0.9, false), (0.05, 10, 18));
        assert_eq!(ticks(1.0, 113.0, true), (20.0, 0, 6));
        assert_eq!(ticks(1.0, 3.0, true), (1.0, 1, 3));
        assert_eq!(ticks(0.0, 3.0, false), (0.5, 0, 6));
        let t = Ticks::new((0.5, 0.9), false);
        assert_eq!(
            (t.label(0.35), t.label(0.9)),
            ("0.35".into(), "0.90".into())
        );
    }

    #[test]
    fn piano_roll_draws_one_rectangle_per_note() {
        let spans = [span(Some(60), 4), span(None, 2), span(Some(62), 2)];
        let svg = piano_roll(&PianoRoll {
            title: "melody",
            spans: &spans,
            seed_steps: 0,
            steps_per_bar: 16,
        });
        let notes = elements(&svg, "rect", "fill=\"#1F77B4\"");
        // Two notes, and the legend's swatch.
        assert_eq!(notes.len(), 3, "{svg}");
        // The beat line after 4 steps gives the scale: the second note starts after 6 steps.
        let beats = elements(&svg, "polyline", "#E4E4E4");
        assert_eq!(beats.len(), 1);
        let beat_x = polyline_points(&svg)
            .into_iter()
            .find(|line| line[0].0 == line[1].0)
            .unwrap()[0]
            .0;
        let start = attribute(notes[0], "x");
        let second = attribute(notes[1], "x");
        assert!(
            (second - (start + 1.5 * (beat_x - start))).abs() <= 1.0,
            "{svg}"
        );
        assert!(!texts(&svg).contains(&"seed"));
    }

    #[test]
    fn piano_roll_marks_bars_pitches_and_seed() {
        // 40 steps: 8 of seed (C4, G4), then C#4, a rest, G4 and a long C4.
        let spans = [
            span(Some(60), 4),
            span(Some(67), 4),
            span(Some(61), 8),
            span(None, 4),
            span(Some(67), 4),
            span(Some(60), 16),
        ];
        let roll = |steps_per_bar| {
            piano_roll(&PianoRoll {
                title: "melody",
                spans: &spans,
                seed_steps: 8,
                steps_per_bar,
            })
        };
        let svg = roll(12);
        let bar_lines = elements(&svg, "polyline", "#909090");
        assert_eq!(bar_lines.len(), 3, "at steps 12, 24, 36");
        let labels = texts(&svg);
        // Every pitch from C4 to G4 named, then the bars numbered.
        assert_eq!(
            labels[..14],
            [
                "melody", "pitch", "bar", "C4", "C#4", "D4", "D#4", "E4", "F4", "F#4", "G4", "1",
                "2", "3"
            ]
        );
        assert_eq!(labels[14], "4");
        assert_eq!(labels[labels.len() - 2..], ["seed", "generated"]);
        // Seed notes grey, the rest blue, each with its legend swatch.
        assert_eq!(elements(&svg, "rect", "fill=\"#8C8C8C\"").len(), 2 + 1);
        assert_eq!(elements(&svg, "rect", "fill=\"#1F77B4\"").len(), 3 + 1);
        let band = elements(&svg, "rect", "fill=\"#F5B040\"");
        assert_eq!(band.len(), 1, "the seed's band");
        assert!(band[0].contains("opacity=\"0.2\""));
        // Black-key rows shaded: C#4, D#4, F#4 between C4 and G4.
        assert_eq!(elements(&svg, "rect", "fill=\"#F0F0F0\"").len(), 3);

        let svg = roll(16);
        assert_eq!(elements(&svg, "polyline", "#909090").len(), 2, "at 16, 32");
        assert_eq!(texts(&svg)[11..14], ["1", "2", "3"]);
    }

    #[test]
    fn pitch_names_count_octaves_from_middle_c() {
        let names: Vec<String> = [0, 59, 60, 61, 67, 69, 127].map(pitch_name).into();
        assert_eq!(names, ["C-1", "B3", "C4", "C#4", "G4", "A4", "G9"]);
        assert_eq!(pitch_labels(60, 84).len(), 25);
        assert_eq!(pitch_labels(60, 85).len(), 15, "white keys C4 … C6");
        assert_eq!(pitch_labels(36, 96), [36.0, 48.0, 60.0, 72.0, 84.0, 96.0]);
    }
}
