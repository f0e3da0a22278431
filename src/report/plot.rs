//! The report's plots: one drawing function per analysis query (`analysis/<name>.sql`). Each
//! reads its query's result by column name and draws it; the numbers all come from the SQL.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{
    de, headroom, kind_colour, kind_label, label_font, log_bounds, scale_colour, shade,
    symbol_colour, title_font, Canvas, DrawError, DrawResult, SessionAxis, Unit, GRID, INK,
};

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A line of a time-series plot: legend text, colour, (window start, value) points.
type Series = (String, RGBColor, Vec<(i64, f64)>);

/// A drawing function: the query result, the canvas, the heading.
pub type DrawFn = fn(&Data, &Heading, &mut Canvas) -> DrawResult<()>;

/// The plots, by analysis query name, in report order.
pub const PLOTS: [(&str, DrawFn); 13] = [
    ("01_value_by_venue", value_by_venue),
    ("02_quantity_by_venue", quantity_by_venue),
    ("03_value_by_symbol", value_by_symbol),
    ("04_value_over_time", value_over_time),
    ("05_trade_size_box", trade_size_box),
    ("06_dark_vs_lit", dark_vs_lit),
    ("07_liquidity_map", liquidity_map),
    ("08_dark_share", dark_share),
    ("09_venue_hhi", venue_hhi),
    ("10_trade_size_percentiles", trade_size_percentiles),
    ("11_block_prints", block_prints),
    ("12_ats_share", daily_shares),
    ("13_short_ratio", daily_shares),
];

/// Title and subtitle drawn at the top of a plot.
#[derive(Debug, Clone)]
pub struct Heading {
    pub title: String,
    pub subtitle: String,
}

/// One query's rows, read by column name.
pub struct Data {
    pub name: String,
    pub batch: RecordBatch,
}

impl Data {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn column(&self, name: &str) -> DrawResult<&dyn Array> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| {
                DrawError::Failed(format!(
                    "analysis query {} has no column '{name}'",
                    self.name
                ))
            })
    }

    fn cast(&self, name: &str, to: &DataType) -> DrawResult<arrow::array::ArrayRef> {
        let column = self.column(name)?;
        arrow::compute::cast(column, to).map_err(|e| {
            DrawError::Failed(format!(
                "analysis query {}: column '{name}' ({}) is not {to}: {e}",
                self.name,
                column.data_type()
            ))
        })
    }

    /// Text values (null = empty).
    pub fn strings(&self, name: &str) -> DrawResult<Vec<String>> {
        let array = self.cast(name, &DataType::Utf8)?;
        let strings = array.as_string::<i32>();
        Ok((0..strings.len())
            .map(|i| {
                if strings.is_null(i) {
                    String::new()
                } else {
                    strings.value(i).to_string()
                }
            })
            .collect())
    }

    /// Numbers (null = NaN).
    pub fn floats(&self, name: &str) -> DrawResult<Vec<f64>> {
        let array = self.cast(name, &DataType::Float64)?;
        let floats = array.as_primitive::<Float64Type>();
        Ok((0..floats.len())
            .map(|i| {
                if floats.is_null(i) {
                    f64::NAN
                } else {
                    floats.value(i)
                }
            })
            .collect())
    }

    /// Timestamps as UTC microseconds (null rows dropped by the caller's filter: i64::MIN).
    pub fn times(&self, name: &str) -> DrawResult<Vec<i64>> {
        let micros = self.cast(
            name,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let array = arrow::compute::cast(&micros, &DataType::Int64).map_err(de)?;
        let ints = array.as_primitive::<Int64Type>();
        Ok((0..ints.len())
            .map(|i| {
                if ints.is_null(i) {
                    i64::MIN
                } else {
                    ints.value(i)
                }
            })
            .collect())
    }

    /// Lists of numbers (null = empty list).
    pub fn lists(&self, name: &str) -> DrawResult<Vec<Vec<f64>>> {
        let target = DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
            "item",
            DataType::Float64,
            true,
        )));
        let array = self.cast(name, &target)?;
        let lists = array.as_list::<i32>();
        Ok((0..lists.len())
            .map(|i| {
                if lists.is_null(i) {
                    return Vec::new();
                }
                let values = lists.value(i);
                let floats = values.as_primitive::<Float64Type>();
                floats.iter().flatten().collect()
            })
            .collect())
    }
}

/// Draw the heading; return the area below it.
fn frame<'a>(root: &Area<'a>, heading: &Heading) -> DrawResult<Area<'a>> {
    let (top, body) = root.split_vertically(78);
    top.draw(&Text::new(
        heading.title.clone(),
        (24, 14),
        title_font().pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(de)?;
    top.draw(&Text::new(
        heading.subtitle.clone(),
        (24, 52),
        label_font(16)
            .color(&RGBColor(90, 90, 90))
            .pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(de)?;
    Ok(body)
}

fn max_of(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// A legend entry drawn by hand: a swatch and its text, left to right from `(x, y)`.
fn legend_row(area: &Area<'_>, x: i32, y: i32, entries: &[(String, RGBColor)]) -> DrawResult<i32> {
    let mut at = x;
    for (text, colour) in entries {
        area.draw(&Rectangle::new(
            [(at, y - 7), (at + 22, y + 7)],
            colour.filled(),
        ))
        .map_err(de)?;
        let style = label_font(15).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(text.clone(), (at + 30, y), style.clone()))
            .map_err(de)?;
        let (w, _) = area.estimate_text_size(text, &style).map_err(de)?;
        at += 30 + w as i32 + 28;
    }
    Ok(at)
}

/// A legend entry for a marker drawn by `marker` at `(x, y)`; returns the x after it.
fn legend_marker(area: &Area<'_>, x: i32, y: i32, text: &str, diamond: bool) -> DrawResult<i32> {
    if diamond {
        area.draw(
            &(EmptyElement::at((x + 11, y))
                + Polygon::new(vec![(0, -8), (8, 0), (0, 8), (-8, 0)], INK.filled())),
        )
        .map_err(de)?;
    } else {
        area.draw(&PathElement::new(
            vec![(x, y), (x + 22, y)],
            INK.stroke_width(3),
        ))
        .map_err(de)?;
    }
    let style = label_font(15).pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new(text.to_string(), (x + 30, y), style.clone()))
        .map_err(de)?;
    let (w, _) = area.estimate_text_size(text, &style).map_err(de)?;
    Ok(x + 30 + w as i32 + 28)
}

/// The venue kinds present, in a fixed order, with their colours.
fn kind_entries(kinds: &[String]) -> Vec<(String, RGBColor)> {
    ["dark", "lit", "otc", "unknown", "mixed"]
        .iter()
        .filter(|k| {
            kinds
                .iter()
                .any(|x| x == *k || (**k == "unknown" && !known(x)))
        })
        .map(|k| (kind_label(k).to_string(), kind_colour(k)))
        .collect()
}

fn known(kind: &str) -> bool {
    matches!(kind, "dark" | "lit" | "otc" | "mixed")
}

/// Most categories a bar chart shows; the rest are named in the subtitle.
const MAX_BARS: usize = 40;

fn value_by_venue(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let values = data.floats("total_value")?;
    let unit = Unit::dollars(max_of(&values));
    venue_bars(data, heading, canvas, values, unit, "Trade value")
}

fn quantity_by_venue(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let values = data.floats("total_quantity")?;
    let unit = Unit::shares(max_of(&values));
    venue_bars(data, heading, canvas, values, unit, "Quantity")
}

/// Horizontal bars, one per venue in query order (largest first, at the top), coloured by kind.
fn venue_bars(
    data: &Data,
    heading: &Heading,
    canvas: &mut Canvas,
    values: Vec<f64>,
    unit: Unit,
    what: &str,
) -> DrawResult<()> {
    let venues = data.strings("venue")?;
    let kinds = data.strings("venue_kind")?;
    let n = venues.len().min(MAX_BARS);
    let mut heading = heading.clone();
    if venues.len() > n {
        heading.subtitle += &format!(" · the {n} largest of {} venues", venues.len());
    }
    let max = max_of(&values[..n]);
    canvas.draw(|root| {
        let body = frame(root, &heading)?;
        let mut chart = ChartBuilder::on(&body)
            .margin_left(20)
            .margin_right(40)
            .margin_bottom(10)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..headroom(max, 1.14), (0..n as i32 - 1).into_segmented())
            .map_err(de)?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(y) => venues
                .get(n.saturating_sub(1 + *y as usize))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_label_formatter(&|x| unit.tick(*x))
            .x_desc(format!("{what} ({})", unit.name))
            .label_style(label_font(15))
            .axis_desc_style(label_font(17))
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .draw()
            .map_err(de)?;
        for i in 0..n {
            let y = (n - 1 - i) as i32;
            let colour = kind_colour(&kinds[i]);
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(y)),
                    (values[i].max(0.0), SegmentValue::Exact(y + 1)),
                ],
                colour.filled(),
            );
            bar.set_margin(2, 2, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(de)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("  {}", unit.annotate(values[i])),
                    (values[i].max(0.0), SegmentValue::CenterOf(y)),
                    label_font(13).pos(Pos::new(HPos::Left, VPos::Center)),
                )))
                .map_err(de)?;
        }
        legend_row(
            &body,
            body.dim_in_pixel().0 as i32 - 620,
            body.dim_in_pixel().1 as i32 - 110,
            &kind_entries(&kinds[..n]),
        )?;
        Ok(())
    })
}

fn value_by_symbol(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let symbols = data.strings("symbol")?;
    let totals = data.floats("total_value")?;
    let parts = [
        ("dark", data.floats("dark_value")?),
        ("otc", data.floats("otc_value")?),
        ("lit", data.floats("lit_value")?),
        ("unknown", data.floats("unknown_value")?),
    ];
    let n = symbols.len().min(MAX_BARS);
    let mut heading = heading.clone();
    if symbols.len() > n {
        heading.subtitle += &format!(" · the {n} largest of {} symbols", symbols.len());
    }
    let max = max_of(&totals[..n]);
    let unit = Unit::dollars(max);
    let present: Vec<String> = parts
        .iter()
        .filter(|(_, v)| v[..n].iter().any(|x| *x > 0.0))
        .map(|(k, _)| k.to_string())
        .collect();
    canvas.draw(|root| {
        let body = frame(root, &heading)?;
        let mut chart = ChartBuilder::on(&body)
            .margin_left(20)
            .margin_right(30)
            .margin_top(40)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0.0..headroom(max, 1.12))
            .map_err(de)?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(x) => symbols.get(*x as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| unit.tick(*y))
            .y_desc(format!("Trade value ({})", unit.name))
            .x_desc("Symbol")
            .label_style(label_font(15))
            .axis_desc_style(label_font(17))
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .draw()
            .map_err(de)?;
        for i in 0..n {
            let x = i as i32;
            let mut base = 0.0;
            for (kind, values) in &parts {
                let v = values[i];
                if v.is_nan() || v <= 0.0 {
                    continue;
                }
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(x), base),
                        (SegmentValue::Exact(x + 1), base + v),
                    ],
                    kind_colour(kind).filled(),
                );
                bar.set_margin(0, 0, 12, 12);
                chart.draw_series(std::iter::once(bar)).map_err(de)?;
                base += v;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    unit.annotate(totals[i]),
                    (SegmentValue::CenterOf(x), totals[i]),
                    label_font(14).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .map_err(de)?;
        }
        legend_row(&body, 130, 14, &kind_entries(&present))?;
        Ok(())
    })
}

/// Draw lines for each (label, colour, points) over a session axis on `chart`.
fn session_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    axis: &SessionAxis,
    series: &[Series],
    width: u32,
) -> DrawResult<()> {
    // Thick zig-zag lines grow spikes at sharp corners: dense series are drawn one pixel wide.
    let width = if axis.len() > 300 { 1 } else { width };
    for (_, colour, points) in series {
        for run in axis.segments(points) {
            if run.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(run[0], 3, colour.filled())))
                    .map_err(de)?;
            } else {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        run,
                        colour.stroke_width(width),
                    )))
                    .map_err(de)?;
            }
        }
    }
    Ok(())
}

/// Vertical lines between trading sessions.
fn session_separators<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    axis: &SessionAxis,
    y: (f64, f64),
) -> DrawResult<()> {
    for x in axis.session_starts() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, y.0), (x, y.1)],
                RGBColor(170, 170, 170).stroke_width(1),
            )))
            .map_err(de)?;
    }
    Ok(())
}

/// A time-series chart over a session axis with the given y range and labels.
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    axis: &SessionAxis,
    y_max: f64,
    y_desc: &str,
    y_tick: &dyn Fn(&f64) -> String,
    caption: Option<&str>,
    x_labels: usize,
) -> DrawResult<
    ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(12)
        .margin_right(28)
        .margin_top(8)
        .x_label_area_size(44)
        .y_label_area_size(if caption.is_some() { 70 } else { 100 });
    if let Some(c) = caption {
        builder.caption(c, label_font(17));
    }
    let mut chart = builder
        .build_cartesian_2d(axis.range(), 0.0..y_max)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_labels(x_labels)
        .x_label_formatter(&|x| axis.label(*x))
        .y_labels(8)
        .y_label_formatter(y_tick)
        .y_desc(y_desc)
        .x_desc(if caption.is_some() {
            ""
        } else {
            "Window start (UTC; sessions side by side)"
        })
        .label_style(label_font(14))
        .axis_desc_style(label_font(16))
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .draw()
        .map_err(de)?;
    session_separators(&mut chart, axis, (0.0, y_max))?;
    Ok(chart)
}

fn value_over_time(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let times = data.times("window_start")?;
    let symbols = data.strings("symbol")?;
    let venues = data.strings("venue")?;
    let kinds = data.strings("venue_kind")?;
    let ranks = data.floats("venue_rank")?;
    let values = data.floats("total_value")?;
    let axis = SessionAxis::new(&times);
    // Symbols by total value, the largest eight get a panel each.
    let mut symbol_totals: BTreeMap<&str, f64> = BTreeMap::new();
    for (s, v) in symbols.iter().zip(&values) {
        *symbol_totals.entry(s).or_default() += v.max(0.0);
    }
    let mut order: Vec<(&str, f64)> = symbol_totals.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let panels: Vec<&str> = order.iter().take(8).map(|(s, _)| *s).collect();
    let mut heading = heading.clone();
    if order.len() > panels.len() {
        heading.subtitle += &format!(" · the {} largest of {} symbols", panels.len(), order.len());
    }
    // Venues in rank order, each with a shade of its kind's colour.
    let mut venue_order: Vec<(f64, &str, &str)> = Vec::new();
    for ((v, k), r) in venues.iter().zip(&kinds).zip(&ranks) {
        if !venue_order.iter().any(|(_, name, _)| name == v) {
            venue_order.push((*r, v, k));
        }
    }
    venue_order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    let colours: Vec<(String, String, RGBColor)> = venue_order
        .iter()
        .map(|(_, v, k)| {
            let n = used.entry(k).or_default();
            let c = shade(kind_colour(k), *n);
            *n += 1;
            (v.to_string(), k.to_string(), c)
        })
        .collect();
    let unit = Unit::dollars(max_of(&values));
    canvas.draw(|root| {
        let body = frame(root, &heading)?;
        let (legend, grid) = body.split_vertically(36);
        let entries: Vec<(String, RGBColor)> = colours
            .iter()
            .map(|(v, k, c)| (format!("{v} ({k})"), *c))
            .collect();
        legend_row(&legend, 24, 16, &entries)?;
        let cols = panels.len().clamp(1, 4);
        let rows = panels.len().div_ceil(cols).max(1);
        for (area, symbol) in grid.split_evenly((rows, cols)).iter().zip(&panels) {
            let mut series = Vec::new();
            let mut max = 0.0f64;
            for (venue, _, colour) in &colours {
                let points: Vec<(i64, f64)> = (0..times.len())
                    .filter(|&i| symbols[i] == *symbol && venues[i] == *venue)
                    .map(|i| (times[i], values[i]))
                    .collect();
                max = max.max(points.iter().map(|p| p.1).fold(0.0, f64::max));
                series.push((venue.clone(), *colour, points));
            }
            let tick = |y: &f64| unit.tick(*y);
            let mut chart = time_chart(
                area,
                &axis,
                headroom(max, 1.1),
                &format!("Value ({})", unit.name),
                &tick,
                Some(symbol),
                3,
            )?;
            session_lines(&mut chart, &axis, &series, 2)?;
        }
        Ok(())
    })
}

fn dark_vs_lit(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let times = data.times("window_start")?;
    let axis = SessionAxis::new(&times);
    let mut series = Vec::new();
    let mut max = 0.0f64;
    for (kind, column) in [
        ("dark", "dark_value"),
        ("lit", "lit_value"),
        ("otc", "otc_value"),
        ("unknown", "unknown_value"),
    ] {
        let values = data.floats(column)?;
        if kind == "unknown" && !values.iter().any(|v| *v > 0.0) {
            continue;
        }
        max = max.max(max_of(&values));
        let points = times.iter().copied().zip(values).collect();
        series.push((kind_label(kind).to_string(), kind_colour(kind), points));
    }
    let unit = Unit::dollars(max);
    canvas.draw(|root| {
        let body = frame(root, heading)?;
        let (legend, plot) = body.split_vertically(36);
        let entries: Vec<(String, RGBColor)> =
            series.iter().map(|(l, c, _)| (l.clone(), *c)).collect();
        legend_row(&legend, 110, 16, &entries)?;
        let tick = |y: &f64| unit.tick(*y);
        let mut chart = time_chart(
            &plot,
            &axis,
            headroom(max, 1.1),
            &format!("Trade value per window ({})", unit.name),
            &tick,
            None,
            10,
        )?;
        session_lines(&mut chart, &axis, &series, 3)
    })
}

fn dark_share(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let times = data.times("window_start")?;
    let symbols = data.strings("symbol")?;
    let shares = data.floats("dark_share_pct")?;
    let axis = SessionAxis::new(&times);
    let mut names: Vec<&str> = symbols.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let shown: Vec<&str> = names.iter().take(10).copied().collect();
    let mut heading = heading.clone();
    if names.len() > shown.len() {
        heading.subtitle += &format!(" · the first {} of {} symbols", shown.len(), names.len());
    }
    let series: Vec<Series> = shown
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let points = (0..times.len())
                .filter(|&i| symbols[i] == *s)
                .map(|i| (times[i], shares[i]))
                .collect();
            (s.to_string(), symbol_colour(n), points)
        })
        .collect();
    let max = max_of(&shares).max(1.0);
    canvas.draw(|root| {
        let body = frame(root, &heading)?;
        let (legend, plot) = body.split_vertically(36);
        let entries: Vec<(String, RGBColor)> =
            series.iter().map(|(l, c, _)| (l.clone(), *c)).collect();
        legend_row(&legend, 110, 16, &entries)?;
        let tick = |y: &f64| format!("{y:.0}%");
        let mut chart = time_chart(
            &plot,
            &axis,
            (max * 1.1).min(100.0),
            "Dark pool / ATS share of traded value (%)",
            &tick,
            None,
            10,
        )?;
        session_lines(&mut chart, &axis, &series, 2)
    })
}

fn block_prints(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let times = data.times("window_start")?;
    let kinds = data.strings("venue_kind")?;
    let counts = data.floats("block_trades")?;
    let values = data.floats("block_value")?;
    let axis = SessionAxis::new(&times);
    // Stack per window: dark at the bottom, then OTC, lit, unknown.
    let order = |k: &str| match k {
        "dark" => 0,
        "otc" => 1,
        "lit" => 2,
        _ => 3,
    };
    let mut stacks: BTreeMap<i64, Vec<(usize, String, f64)>> = BTreeMap::new();
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for i in 0..times.len() {
        if counts[i] > 0.0 {
            stacks.entry(times[i]).or_default().push((
                order(&kinds[i]),
                kinds[i].clone(),
                counts[i],
            ));
        }
        let t = totals.entry(kinds[i].clone()).or_default();
        t.0 += counts[i].max(0.0);
        t.1 += values[i].max(0.0);
    }
    let max = stacks
        .values()
        .map(|s| s.iter().map(|p| p.2).sum::<f64>())
        .fold(0.0, f64::max);
    if max <= 0.0 {
        return Err(DrawError::Nothing(
            "no block prints (>= 10,000 shares or >= $200,000) in this range".into(),
        ));
    }
    let all_value: f64 = totals.values().map(|t| t.1).sum();
    let unit = Unit::dollars(all_value);
    let mut heading = heading.clone();
    let summary: Vec<String> = totals
        .iter()
        .filter(|(_, t)| t.0 > 0.0)
        .map(|(k, t)| {
            format!(
                "{}: {} blocks, {}",
                kind_label(k),
                super::chart::thousands(t.0, 0),
                unit.annotate(t.1)
            )
        })
        .collect();
    if !summary.is_empty() {
        heading.subtitle += &format!(" · {}", summary.join("; "));
    }
    let present: Vec<String> = totals
        .iter()
        .filter(|(_, t)| t.0 > 0.0)
        .map(|(k, _)| k.clone())
        .collect();
    canvas.draw(|root| {
        let body = frame(root, &heading)?;
        let (legend, plot) = body.split_vertically(36);
        legend_row(&legend, 110, 16, &kind_entries(&present))?;
        // Whole trades only: no "0, 0, 1, 1" ticks on a small range.
        let tick = |y: &f64| {
            if (y - y.round()).abs() < 1e-9 {
                super::chart::thousands(*y, 0)
            } else {
                String::new()
            }
        };
        let mut chart = time_chart(
            &plot,
            &axis,
            headroom(max, 1.1).max(1.0),
            "Block prints per window (trades)",
            &tick,
            None,
            10,
        )?;
        let half = if axis.len() > 200 { 0.5 } else { 0.4 };
        for (t, mut parts) in stacks {
            parts.sort_by_key(|p| p.0);
            let x = axis.x(t);
            let mut base = 0.0;
            for (_, kind, count) in parts {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - half, base), (x + half, base + count)],
                        kind_colour(&kind).filled(),
                    )))
                    .map_err(de)?;
                base += count;
            }
        }
        Ok(())
    })
}

fn venue_hhi(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let symbols = data.strings("symbol")?;
    let hhi = data.floats("hhi")?;
    let top = data.strings("top_venue")?;
    let top_share = data.floats("top_venue_share")?;
    let n = symbols.len().min(MAX_BARS);
    let max = max_of(&hhi[..n]).max(2000.0);
    let bar = RGBColor(69, 90, 120);
    canvas.draw(|root| {
        let body = frame(root, heading)?;
        let mut chart = ChartBuilder::on(&body)
            .margin_left(20)
            .margin_right(30)
            .margin_top(20)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0.0..max * 1.15)
            .map_err(de)?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(x) => symbols.get(*x as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| super::chart::thousands(*y, 0))
            .y_desc("HHI of traded value across venues (0-10,000)")
            .x_desc("Symbol")
            .label_style(label_font(15))
            .axis_desc_style(label_font(17))
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .draw()
            .map_err(de)?;
        for i in 0..n {
            let x = i as i32;
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(x), 0.0),
                    (SegmentValue::Exact(x + 1), hhi[i].max(0.0)),
                ],
                bar.filled(),
            );
            rect.set_margin(0, 0, 14, 14);
            chart.draw_series(std::iter::once(rect)).map_err(de)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(
                        "{} · top {} {:.0}%",
                        super::chart::thousands(hhi[i], 0),
                        top[i],
                        top_share[i] * 100.0
                    ),
                    (SegmentValue::CenterOf(x), hhi[i]),
                    label_font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .map_err(de)?;
        }
        // 2023 DOJ/FTC Merger Guidelines thresholds.
        for (level, text) in [
            (1000.0, "1,000: moderately concentrated"),
            (
                1800.0,
                "1,800: highly concentrated (2023 US Merger Guidelines)",
            ),
        ] {
            let colour = RGBColor(200, 40, 40);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (SegmentValue::Exact(0), level),
                        (SegmentValue::Exact(n as i32), level),
                    ],
                    colour.stroke_width(1),
                )))
                .map_err(de)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (SegmentValue::Exact(n as i32), level),
                    label_font(13)
                        .color(&colour)
                        .pos(Pos::new(HPos::Right, VPos::Bottom)),
                )))
                .map_err(de)?;
        }
        Ok(())
    })
}

/// Draw one element on a chart.
macro_rules! one {
    ($chart:expr, $element:expr) => {
        $chart.draw_series(std::iter::once($element)).map_err(de)?
    };
}

/// A diamond marker centred at a chart coordinate.
macro_rules! diamond {
    ($at:expr, $size:expr, $colour:expr) => {
        EmptyElement::at($at)
            + Polygon::new(
                vec![(0, -$size), ($size, 0), (0, $size), (-$size, 0)],
                $colour.filled(),
            )
    };
}

/// `n` categories across (labelled by the caller) against a log-scaled y axis of shares: the
/// frame both trade-size plots draw in.
fn log_category_chart<'a>(
    plot: &Area<'a>,
    n: usize,
    y: std::ops::Range<f64>,
    y_desc: &str,
) -> DrawResult<ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>> {
    let mut chart = ChartBuilder::on(plot)
        .margin_left(20)
        .margin_right(30)
        .margin_top(10)
        .x_label_area_size(70)
        .y_label_area_size(100)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), y.log_scale())
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|y| super::chart::thousands(*y, 0))
        .y_desc(y_desc)
        .label_style(label_font(15))
        .axis_desc_style(label_font(17))
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .draw()
        .map_err(de)?;
    Ok(chart)
}

fn trade_size_percentiles(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let kinds = data.strings("venue_kind")?;
    let trades = data.floats("num_trades")?;
    let avg = data.floats("avg_size")?;
    let columns = [
        ("p50", data.floats("p50")?),
        ("p90", data.floats("p90")?),
        ("p99", data.floats("p99")?),
    ];
    let n = kinds.len();
    let (lo, hi) = log_bounds(
        columns
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(avg.iter().copied()),
    );
    // Bars start at a power of ten, so their lengths compare honestly.
    let lo = 10f64.powf(lo.log10().floor());
    canvas.draw(|root| {
        let body = frame(root, heading)?;
        let (legend, plot) = body.split_vertically(36);
        let grey = RGBColor(110, 110, 110);
        let end = legend_row(
            &legend,
            110,
            16,
            &[
                ("p50 (median)".to_string(), shade(grey, 2)),
                ("p90".to_string(), grey),
                ("p99".to_string(), shade(grey, 1)),
            ],
        )?;
        legend_marker(
            &legend,
            end + 20,
            16,
            "average (total shares / trades)",
            true,
        )?;
        let mut chart = log_category_chart(&plot, n, lo..hi, "Shares per trade (log scale)")?;
        for i in 0..n {
            let colour = kind_colour(&kinds[i]);
            for (j, (name, values)) in columns.iter().enumerate() {
                let v = values[i];
                if v.is_nan() || v <= 0.0 {
                    continue;
                }
                let x0 = i as f64 - 0.36 + j as f64 * 0.24;
                let fill = match j {
                    0 => shade(colour, 2),
                    1 => colour,
                    _ => shade(colour, 1),
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0 + 0.02, lo), (x0 + 0.22, v)],
                        fill.filled(),
                    )))
                    .map_err(de)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{name} {}", super::chart::thousands(v, 0)),
                        (x0 + 0.12, v),
                        label_font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )))
                    .map_err(de)?;
            }
            if avg[i] > 0.0 {
                one!(chart, diamond!((i as f64, avg[i]), 8, INK));
            }
            let (px, py) = chart.backend_coord(&(i as f64, lo));
            let under = plot.get_base_pixel();
            plot.draw(&Text::new(
                format!(
                    "{} · {} trades",
                    kind_label(&kinds[i]),
                    super::chart::thousands(trades[i], 0)
                ),
                (px - under.0, py - under.1 + 14),
                label_font(16)
                    .color(&colour)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(de)?;
        }
        Ok(())
    })
}

fn trade_size_box(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let venues = data.strings("venue")?;
    let kinds = data.strings("venue_kind")?;
    let symbols = data.strings("symbol")?;
    let avg = data.floats("overall_avg_size")?;
    let q1 = data.floats("q1")?;
    let median = data.floats("median")?;
    let q3 = data.floats("q3")?;
    let lower = data.floats("lower_whisker")?;
    let upper = data.floats("upper_whisker")?;
    let outliers = data.lists("outliers")?;
    let mut venue_order: Vec<(&str, &str)> = Vec::new();
    for (v, k) in venues.iter().zip(&kinds) {
        if !venue_order.iter().any(|(x, _)| x == v) {
            venue_order.push((v, k));
        }
    }
    let mut symbol_order: Vec<&str> = symbols.iter().map(String::as_str).collect();
    symbol_order.sort_unstable();
    symbol_order.dedup();
    symbol_order.truncate(10);
    let n = venue_order.len();
    let slots = symbol_order.len().max(1) as f64;
    let (lo, hi) = log_bounds(
        lower
            .iter()
            .chain(&upper)
            .chain(&avg)
            .copied()
            .chain(outliers.iter().flatten().copied()),
    );
    canvas.draw(|root| {
        let body = frame(root, heading)?;
        let (legend, plot) = body.split_vertically(36);
        let entries: Vec<(String, RGBColor)> = symbol_order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), symbol_colour(i)))
            .collect();
        let end = legend_row(&legend, 24, 16, &entries)?;
        let end = legend_marker(&legend, end, 16, "median", false)?;
        legend_marker(&legend, end, 16, "average (shares / trades)", true)?;
        let mut chart = log_category_chart(
            &plot,
            n,
            lo..hi,
            "Average trade size per window (shares, log scale)",
        )?;
        let width = 0.84 / slots;
        for i in 0..venues.len() {
            let Some(v) = venue_order.iter().position(|(x, _)| *x == venues[i]) else {
                continue;
            };
            let Some(s) = symbol_order.iter().position(|x| *x == symbols[i]) else {
                continue;
            };
            if !(q1[i] > 0.0 && q3[i] > 0.0) {
                continue;
            }
            let colour = symbol_colour(s);
            let centre = v as f64 - 0.42 + (s as f64 + 0.5) * width;
            let (left, right) = (centre - width * 0.38, centre + width * 0.38);
            let line = INK.stroke_width(1);
            // Whiskers: box edge to whisker end, with a cap (none when the whisker is 0).
            for (edge, end) in [(q1[i], lower[i]), (q3[i], upper[i])] {
                if end > 0.0 {
                    one!(
                        chart,
                        PathElement::new(vec![(centre, end), (centre, edge)], line)
                    );
                    let cap = vec![(centre - width * 0.2, end), (centre + width * 0.2, end)];
                    one!(chart, PathElement::new(cap, line));
                }
            }
            one!(
                chart,
                Rectangle::new([(left, q1[i]), (right, q3[i])], colour.mix(0.55).filled())
            );
            one!(
                chart,
                Rectangle::new([(left, q1[i]), (right, q3[i])], INK.stroke_width(1))
            );
            if median[i] > 0.0 {
                one!(
                    chart,
                    PathElement::new(
                        vec![(left, median[i]), (right, median[i])],
                        INK.stroke_width(2)
                    )
                );
            }
            for o in outliers[i].iter().filter(|o| **o > 0.0) {
                one!(chart, Circle::new((centre, *o), 3, colour.stroke_width(1)));
            }
            if avg[i] > 0.0 {
                one!(chart, diamond!((centre, avg[i]), 5, INK));
            }
        }
        let under = plot.get_base_pixel();
        for (v, (venue, kind)) in venue_order.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(v as f64, lo));
            plot.draw(&Text::new(
                venue.to_string(),
                (px - under.0, py - under.1 + 12),
                label_font(17)
                    .color(&kind_colour(kind))
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(de)?;
            plot.draw(&Text::new(
                kind_label(kind).to_string(),
                (px - under.0, py - under.1 + 36),
                label_font(13)
                    .color(&kind_colour(kind))
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(de)?;
            if v > 0 {
                let (sx, _) = chart.backend_coord(&(v as f64 - 0.5, lo));
                let (_, top) = chart.backend_coord(&(0.0, hi));
                plot.draw(&PathElement::new(
                    vec![(sx - under.0, top - under.1), (sx - under.0, py - under.1)],
                    GRID.stroke_width(1),
                ))
                .map_err(de)?;
            }
        }
        Ok(())
    })
}

/// One point of the liquidity map.
struct Site {
    lat: f64,
    lon: f64,
    label: String,
    value: f64,
}

/// Sites in and around the New York metro area (where most US matching engines are).
fn in_metro(s: &Site) -> bool {
    (40.2..41.4).contains(&s.lat) && (-74.8..-73.5).contains(&s.lon)
}

fn liquidity_map(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let lat = data.floats("latitude")?;
    let lon = data.floats("longitude")?;
    let venues = data.strings("venues")?;
    let site = data.strings("site")?;
    let value = data.floats("total_value")?;
    let sites: Vec<Site> = (0..lat.len())
        .filter(|&i| lat[i].is_finite() && lon[i].is_finite())
        .map(|i| {
            let codes: Vec<&str> = venues[i].split_whitespace().collect();
            let lines: Vec<String> = codes.chunks(6).map(|c| c.join(" ")).collect();
            let name = site[i].split(" (").next().unwrap_or_default().to_string();
            Site {
                lat: lat[i],
                lon: lon[i],
                label: if name.is_empty() {
                    lines.join("\n")
                } else {
                    format!("{name}\n{}", lines.join("\n"))
                },
                value: value[i].max(0.0),
            }
        })
        .collect();
    let max = sites.iter().map(|s| s.value).fold(0.0, f64::max);
    let unit = Unit::dollars(max);
    let metro: Vec<&Site> = sites.iter().filter(|s| in_metro(s)).collect();
    let elsewhere = sites.len() - metro.len();
    canvas.draw(|root| {
        let body = frame(root, heading)?;
        let (maps, scale) = body.split_vertically(body.dim_in_pixel().1 - 70);
        let all: Vec<&Site> = sites.iter().collect();
        if !metro.is_empty() && elsewhere > 0 {
            let (left, right) = maps.split_horizontally(maps.dim_in_pixel().0 / 2);
            map_panel(
                &left,
                &all,
                max,
                "All sites (NY/NJ cluster enlarged on the right)",
                true,
            )?;
            map_panel(
                &right,
                &metro,
                max,
                "New York / New Jersey data centres",
                false,
            )?;
        } else {
            map_panel(&maps, &all, max, "All sites", false)?;
        }
        colour_bar(&scale, max, unit)
    })
}

/// A longitude/latitude scatter of sites, sized and coloured by value.
fn map_panel(
    area: &Area<'_>,
    sites: &[&Site],
    max: f64,
    caption: &str,
    skip_metro_labels: bool,
) -> DrawResult<()> {
    let (mut lon0, mut lon1, mut lat0, mut lat1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for s in sites {
        lon0 = lon0.min(s.lon);
        lon1 = lon1.max(s.lon);
        lat0 = lat0.min(s.lat);
        lat1 = lat1.max(s.lat);
    }
    // Room around the points, at least a little, and degrees of longitude shrunk by latitude.
    let pad_lat = ((lat1 - lat0) * 0.25).max(0.15);
    let pad_lon = ((lon1 - lon0) * 0.2).max(0.25);
    let (lat0, lat1) = (lat0 - pad_lat, lat1 + pad_lat);
    let (lon0, lon1) = (lon0 - pad_lon, lon1 + pad_lon * 1.6);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, label_font(17))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lon0..lon1, lat0..lat1)
        .map_err(de)?;
    let decimals = if lat1 - lat0 < 2.0 { 2 } else { 1 };
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.decimals$}°"))
        .y_label_formatter(&|y| format!("{y:.decimals$}°"))
        .x_desc("Longitude")
        .y_desc("Latitude")
        .label_style(label_font(13))
        .axis_desc_style(label_font(15))
        .light_line_style(RGBColor(245, 245, 245))
        .bold_line_style(GRID)
        .draw()
        .map_err(de)?;
    let mut ordered: Vec<&&Site> = sites.iter().collect();
    ordered.sort_by(|a, b| b.value.total_cmp(&a.value));
    let radius_of = |s: &Site| {
        let t = if max > 0.0 { s.value / max } else { 0.0 };
        (6.0 + 44.0 * t.sqrt()).round() as i32
    };
    for s in &ordered {
        let t = if max > 0.0 { s.value / max } else { 0.0 };
        let radius = radius_of(s);
        one!(
            chart,
            Circle::new((s.lon, s.lat), radius, scale_colour(t).mix(0.75).filled())
        );
        one!(
            chart,
            Circle::new((s.lon, s.lat), radius, INK.stroke_width(1))
        );
    }
    // Labels, largest site first, each at the first free spot around its circle.
    let base = area.get_base_pixel();
    let (area_w, area_h) = area.dim_in_pixel();
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    for s in &ordered {
        if skip_metro_labels && in_metro(s) {
            continue;
        }
        let (cx, cy) = chart.backend_coord(&(s.lon, s.lat));
        let (cx, cy) = (cx - base.0, cy - base.1);
        let r = radius_of(s);
        let lines: Vec<&str> = s.label.lines().collect();
        let mut w = 0;
        for (k, line) in lines.iter().enumerate() {
            let style = if k == 0 {
                label_font(14)
            } else {
                label_font(12)
            };
            w = w.max(area.estimate_text_size(line, &style).map_err(de)?.0 as i32);
        }
        let h = 16 * lines.len() as i32;
        let mut candidates = vec![
            (cx + r + 6, cy - 8),
            (cx - r - 6 - w, cy - 8),
            (cx - w / 2, cy + r + 4),
            (cx - w / 2, cy - r - 4 - h),
        ];
        candidates.extend((1..8).map(|k| (cx + r + 6, cy - 8 + k * (h + 4))));
        candidates.extend((1..8).map(|k| (cx + r + 6, cy - 8 - k * (h + 4))));
        let free = |x: i32, y: i32| {
            x >= 0
                && y >= 0
                && x + w <= area_w as i32
                && y + h <= area_h as i32
                && placed
                    .iter()
                    .all(|&(px, py, pw, ph)| x + w < px || px + pw < x || y + h < py || py + ph < y)
        };
        let Some(&(x, y)) = candidates.iter().find(|(x, y)| free(*x, *y)) else {
            continue;
        };
        placed.push((x, y, w, h));
        if (y - (cy - 8)).abs() > h {
            area.draw(&PathElement::new(
                vec![(cx, cy), (x - 2, y + 8)],
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(de)?;
        }
        for (k, line) in lines.iter().enumerate() {
            let style = if k == 0 {
                label_font(14)
            } else {
                label_font(12).color(&RGBColor(70, 70, 70))
            };
            area.draw(&Text::new(
                line.to_string(),
                (x, y + 16 * k as i32),
                style.pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(de)?;
        }
    }
    Ok(())
}

/// A horizontal colour scale from 0 to `max`.
fn colour_bar(area: &Area<'_>, max: f64, unit: Unit) -> DrawResult<()> {
    let (w, _) = area.dim_in_pixel();
    let (x0, x1, y) = (w as i32 / 2 - 300, w as i32 / 2 + 300, 20);
    for x in x0..x1 {
        let t = (x - x0) as f64 / (x1 - x0) as f64;
        area.draw(&PathElement::new(
            vec![(x, y), (x, y + 16)],
            scale_colour(t).stroke_width(1),
        ))
        .map_err(de)?;
    }
    area.draw(&Text::new(
        "Traded value at the site (circle area and colour):",
        (x0 - 12, y + 8),
        label_font(15).pos(Pos::new(HPos::Right, VPos::Center)),
    ))
    .map_err(de)?;
    for k in 0..=4 {
        let t = k as f64 / 4.0;
        let x = x0 + ((x1 - x0) as f64 * t) as i32;
        area.draw(&Text::new(
            unit.annotate(max * t),
            (x, y + 22),
            label_font(13).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(de)?;
    }
    Ok(())
}

/// Percent lines over calendar days (the FINRA tables: weeks or trading days): one line per
/// `series`, x = `day`, y = `share_pct`.
fn daily_shares(data: &Data, heading: &Heading, canvas: &mut Canvas) -> DrawResult<()> {
    let days: Vec<i64> = data
        .times("day")?
        .into_iter()
        .map(|t| t.div_euclid(crate::time::MICROS_PER_DAY))
        .collect();
    let names = data.strings("series")?;
    let values = data.floats("share_pct")?;
    let mut order: Vec<&str> = names.iter().map(String::as_str).collect();
    order.sort_unstable();
    order.dedup();
    let (first, last) = (
        days.iter().copied().min().unwrap_or(0),
        days.iter().copied().max().unwrap_or(0),
    );
    let span = (last - first).max(1) as f64;
    let top = headroom(max_of(&values).max(1.0), 1.1).min(100.0);
    let day_label = |d: &f64| crate::time::date_of(d.round() as i64 * crate::time::MICROS_PER_DAY);
    canvas.draw(|root| {
        let body = frame(root, heading)?;
        let (legend, plot) = body.split_vertically(36);
        let entries: Vec<(String, RGBColor)> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), symbol_colour(i)))
            .collect();
        legend_row(&legend, 110, 16, &entries)?;
        let pad = span * 0.03;
        let mut chart = ChartBuilder::on(&plot)
            .margin_left(20)
            .margin_right(40)
            .margin_bottom(10)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d((first as f64 - pad)..(last as f64 + pad), 0.0..top)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&day_label)
            .y_label_formatter(&|y| format!("{y:.0}%"))
            .y_desc("percent")
            .label_style(label_font(15))
            .axis_desc_style(label_font(17))
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .draw()
            .map_err(de)?;
        for (i, name) in order.iter().enumerate() {
            let colour = symbol_colour(i);
            let points: Vec<(f64, f64)> = (0..days.len())
                .filter(|&r| names[r] == *name && values[r].is_finite())
                .map(|r| (days[r] as f64, values[r]))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(de)?;
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                .map_err(de)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plot_has_an_analysis_query() {
        let names: Vec<&str> = super::super::ANALYSIS.iter().map(|(n, _)| *n).collect();
        for (name, _) in PLOTS {
            assert!(names.contains(&name), "analysis/{name}.sql is missing");
        }
        assert_eq!(names.len(), PLOTS.len(), "an analysis query without a plot");
    }
}
