//! Drawing for `report`: the canvas (an RGB buffer encoded as PNG), the embedded fonts, the
//! colours every plot shares (dark is always one colour, lit another), number formats with
//! units and thousands separators, and the session-time axis.

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle, RGBColor};

/// Plot size in pixels.
pub const WIDTH: u32 = 1600;
pub const HEIGHT: u32 = 800;

/// The one font family plots use; registered from the embedded DejaVu Sans.
pub const FONT: &str = "sans-serif";

static REGULAR: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../data/fonts/DejaVuSans-Bold.ttf");

/// Why a plot has no PNG.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DrawError {
    /// The rows hold nothing this plot can show (say, no block prints): no PNG, a note instead.
    #[error("{0}")]
    Nothing(String),
    /// Drawing, encoding or writing failed, or the query lacks a column the plot reads.
    #[error("{0}")]
    Failed(String),
}

pub type DrawResult<T> = Result<T, DrawError>;

/// Map any displayable plotters error into a [`DrawError`].
pub fn de<E: std::fmt::Display>(e: E) -> DrawError {
    DrawError::Failed(e.to_string())
}

/// Register the embedded fonts with plotters (once per process).
pub fn fonts() -> DrawResult<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, REGULAR)
            .and_then(|()| register_font(FONT, FontStyle::Bold, BOLD))
            .map_err(|_| "the embedded font data/fonts/DejaVuSans.ttf is not a valid font".into())
    })
    .clone()
    .map_err(DrawError::Failed)
}

/// An RGB pixel buffer to draw on.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![255; width as usize * height as usize * 3],
        }
    }

    /// Draw with `paint` on a white area the size of the canvas.
    pub fn draw(
        &mut self,
        paint: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> DrawResult<()>,
    ) -> DrawResult<()> {
        fonts()?;
        let root = BitMapBackend::with_buffer(&mut self.pixels, (self.width, self.height))
            .into_drawing_area();
        root.fill(&WHITE).map_err(de)?;
        paint(&root)?;
        root.present().map_err(de)
    }

    /// The canvas as PNG bytes.
    pub fn png(&self) -> DrawResult<Vec<u8>> {
        let mut out = Vec::with_capacity(self.pixels.len() / 8);
        {
            let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header().map_err(de)?;
            writer.write_image_data(&self.pixels).map_err(de)?;
            writer.finish().map_err(de)?;
        }
        Ok(out)
    }
}

// Colours. Venue kinds keep one hue each across every plot.
pub const DARK: RGBColor = RGBColor(94, 53, 177); // deep purple
pub const LIT: RGBColor = RGBColor(239, 108, 0); // orange
pub const OTC: RGBColor = RGBColor(0, 137, 123); // teal
pub const UNKNOWN: RGBColor = RGBColor(150, 150, 150); // grey
pub const MIXED: RGBColor = RGBColor(90, 90, 90); // dark grey ("OTHER" venues)
pub const INK: RGBColor = RGBColor(33, 33, 33);
pub const GRID: RGBColor = RGBColor(225, 225, 225);

/// The colour of a venue kind (`dark`, `lit`, `otc`, anything else).
pub fn kind_colour(kind: &str) -> RGBColor {
    match kind {
        "dark" => DARK,
        "lit" => LIT,
        "otc" => OTC,
        "mixed" => MIXED,
        _ => UNKNOWN,
    }
}

/// How a kind is named in legends.
pub fn kind_label(kind: &str) -> &str {
    match kind {
        "dark" => "Dark pool / ATS",
        "lit" => "Lit exchange",
        "otc" => "OTC (TRF / ADF)",
        "mixed" => "other venues",
        _ => "unknown venue",
    }
}

/// The `n`-th shade of a colour: 0 is the colour itself, then alternately darker and lighter.
pub fn shade(colour: RGBColor, n: usize) -> RGBColor {
    if n == 0 {
        return colour;
    }
    let step = n.div_ceil(2) as f64 * 0.22;
    let (target, t) = if n % 2 == 1 {
        (0.0, step.min(0.7))
    } else {
        (255.0, step.min(0.7))
    };
    let mix = |c: u8| (c as f64 + (target - c as f64) * t).round() as u8;
    RGBColor(mix(colour.0), mix(colour.1), mix(colour.2))
}

/// Colours for symbols (no purple or orange, which mean dark and lit).
const SYMBOL_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(60, 60, 60),
    RGBColor(174, 199, 232),
    RGBColor(152, 223, 138),
];

pub fn symbol_colour(i: usize) -> RGBColor {
    SYMBOL_COLOURS[i % SYMBOL_COLOURS.len()]
}

/// A sequential colour scale (viridis stops), `t` in 0..=1.
pub fn scale_colour(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let lerp = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Text styles.
pub fn title_font() -> TextStyle<'static> {
    TextStyle::from((FONT, 30, FontStyle::Bold).into_font()).color(&INK)
}

pub fn label_font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&INK)
}

/// Thousands separators with `decimals` digits after the point: 1234567.8 -> "1,234,567.8".
pub fn thousands(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A unit an axis divides its values by, chosen from the largest value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    pub divisor: f64,
    /// Axis description suffix, e.g. "$M" or "M shares".
    pub name: &'static str,
}

impl Unit {
    /// US dollars: $B, $M, $K or $.
    pub fn dollars(max: f64) -> Unit {
        match max.abs() {
            m if m >= 1e9 => Unit {
                divisor: 1e9,
                name: "$B",
            },
            m if m >= 1e6 => Unit {
                divisor: 1e6,
                name: "$M",
            },
            m if m >= 1e3 => Unit {
                divisor: 1e3,
                name: "$K",
            },
            _ => Unit {
                divisor: 1.0,
                name: "$",
            },
        }
    }

    /// Shares: M shares, K shares or shares.
    pub fn shares(max: f64) -> Unit {
        match max.abs() {
            m if m >= 1e6 => Unit {
                divisor: 1e6,
                name: "M shares",
            },
            m if m >= 1e3 => Unit {
                divisor: 1e3,
                name: "K shares",
            },
            _ => Unit {
                divisor: 1.0,
                name: "shares",
            },
        }
    }

    /// A count with no unit.
    pub fn count() -> Unit {
        Unit {
            divisor: 1.0,
            name: "",
        }
    }

    /// An axis tick label: the value in this unit, grouped, with as few decimals as read well.
    pub fn tick(&self, value: f64) -> String {
        let v = value / self.divisor;
        let decimals = if v == 0.0 || v.abs() >= 100.0 || (v - v.round()).abs() < 1e-9 {
            0
        } else if v.abs() >= 10.0 {
            1
        } else {
            2
        };
        let text = thousands(v, decimals);
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    }

    /// A value with its unit, for annotations: "$12.4M", "1,234 K shares".
    pub fn annotate(&self, value: f64) -> String {
        let v = value / self.divisor;
        let decimals = if v.abs() >= 100.0 { 0 } else { 1 };
        let number = thousands(v, decimals);
        let number = number.strip_suffix(".0").unwrap_or(&number).to_string();
        match self.name {
            "" => number,
            "$" => format!("${number}"),
            name if name.starts_with('$') => format!("${number}{}", &name[1..]),
            name => format!("{number} {name}"),
        }
    }
}

/// An x axis over the distinct window starts of a plot, in order: trading sessions sit side by
/// side instead of leaving nights and weekends as empty space. A gap of more than an hour
/// between windows starts a new session; lines break there.
#[derive(Debug, Clone)]
pub struct SessionAxis {
    starts: Vec<i64>,
}

const SESSION_GAP_MICROS: i64 = 3_600_000_000;

impl SessionAxis {
    pub fn new(times: &[i64]) -> SessionAxis {
        let mut starts = times.to_vec();
        starts.sort_unstable();
        starts.dedup();
        SessionAxis { starts }
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The x position of a window start.
    pub fn x(&self, micros: i64) -> f64 {
        self.starts.binary_search(&micros).unwrap_or_else(|i| i) as f64
    }

    /// The x range to build a chart over (half a slot of room on each side).
    pub fn range(&self) -> std::ops::Range<f64> {
        -0.5..(self.starts.len().max(1) as f64 - 0.5)
    }

    /// Does a line from window `a` to window `b` cross a session gap?
    pub fn breaks_between(&self, a: i64, b: i64) -> bool {
        (b - a).abs() > SESSION_GAP_MICROS
    }

    /// x positions where a new session starts (after the first).
    pub fn session_starts(&self) -> Vec<f64> {
        self.starts
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1] - w[0] > SESSION_GAP_MICROS)
            .map(|(i, _)| i as f64 + 0.5)
            .collect()
    }

    /// Tick label at an x position: `MM-DD HH:MM` UTC.
    pub fn label(&self, x: f64) -> String {
        if self.starts.is_empty() || !x.is_finite() {
            return String::new();
        }
        let i = x.round();
        if i < 0.0 || i as usize >= self.starts.len() || (x - i).abs() > 0.01 {
            return String::new();
        }
        let micros = self.starts[i as usize];
        let mut iso = String::new();
        crate::time::format_iso_micros(micros, &mut iso);
        // YYYY-MM-DDTHH:MM:SS.ffffff -> MM-DD HH:MM
        format!("{} {}", &iso[5..10], &iso[11..16])
    }

    /// Split a series of (window start, value) points into runs that do not cross a session
    /// gap, as chart points.
    pub fn segments(&self, points: &[(i64, f64)]) -> Vec<Vec<(f64, f64)>> {
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut last: Option<i64> = None;
        for &(t, v) in points {
            if !v.is_finite() {
                last = None;
                continue;
            }
            let new_run = match last {
                None => true,
                Some(prev) => self.breaks_between(prev, t),
            };
            if new_run {
                out.push(Vec::new());
            }
            if let Some(run) = out.last_mut() {
                run.push((self.x(t), v));
            }
            last = Some(t);
        }
        out
    }
}

/// Nice upper bound for an axis: the max plus headroom, never zero.
pub fn headroom(max: f64, factor: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * factor
    } else {
        1.0
    }
}

/// A range around positive values for log axes, with room above and below, widened to at
/// least one decade so the axis has labelled ticks.
pub fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(lo.is_finite() && hi > 0.0) {
        return (1.0, 10.0);
    }
    let (mut lo, mut hi) = (lo / 1.4, hi * 1.4);
    if hi / lo < 10.0 {
        let mid = (lo * hi).sqrt();
        lo = mid / 10f64.sqrt();
        hi = mid * 10f64.sqrt();
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits_and_keeps_decimals() {
        assert_eq!(thousands(1234567.0, 0), "1,234,567");
        assert_eq!(thousands(1234.5, 1), "1,234.5");
        assert_eq!(thousands(-9876543.21, 2), "-9,876,543.21");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(0.0, 0), "0");
        assert_eq!(thousands(f64::NAN, 0), "-");
    }

    #[test]
    fn units_follow_the_largest_value() {
        assert_eq!(Unit::dollars(2.5e9).name, "$B");
        assert_eq!(Unit::dollars(2.5e7).annotate(1.25e7), "$12.5M");
        assert_eq!(Unit::shares(3e6).annotate(1_500_000.0), "1.5 M shares");
        assert_eq!(Unit::shares(3e3).tick(1500.0), "1.5");
        assert_eq!(Unit::shares(3e3).tick(1250.0), "1.25");
        assert_eq!(Unit::dollars(5e8).tick(250_000_000.0), "250");
    }

    #[test]
    fn session_axis_closes_overnight_gaps() {
        let five = 300_000_000;
        let day = 86_400_000_000;
        let t0 = 1_704_101_400_000_000; // 2024-01-01 09:30 UTC
        let times = [t0, t0 + five, t0 + day, t0 + day + five];
        let axis = SessionAxis::new(&times);
        assert_eq!(axis.len(), 4);
        assert_eq!(axis.x(t0 + day), 2.0);
        assert_eq!(axis.session_starts(), vec![1.5]);
        assert_eq!(axis.label(2.0), "01-02 09:30");
        assert_eq!(axis.label(2.5), "");
        let runs = axis.segments(&[(t0, 1.0), (t0 + five, 2.0), (t0 + day, 3.0)]);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1], vec![(2.0, 3.0)]);
    }

    #[test]
    fn shades_stay_distinct_and_kind_colours_are_fixed() {
        assert_eq!(shade(DARK, 0), DARK);
        assert_ne!(shade(DARK, 1), shade(DARK, 2));
        assert_eq!(kind_colour("dark"), DARK);
        assert_eq!(kind_colour("lit"), LIT);
        assert_eq!(kind_colour("something"), UNKNOWN);
    }

    #[test]
    fn log_bounds_cover_values_and_at_least_a_decade() {
        let (lo, hi) = log_bounds([120.0, 4500.0].into_iter());
        assert!(
            lo < 120.0 && lo > 50.0 && hi > 4500.0 && hi < 10000.0,
            "{lo} {hi}"
        );
        let (lo, hi) = log_bounds([90.0, 110.0].into_iter());
        assert!((hi / lo - 10.0).abs() < 1e-9 && lo < 90.0 && hi > 110.0);
        assert_eq!(log_bounds(std::iter::empty()), (1.0, 10.0));
    }
}
