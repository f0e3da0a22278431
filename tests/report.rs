//! `report`: every analysis query (analysis/*.sql, run through darkpool's engine) checked
//! against an independent computation over the trades the lake holds — read back with the
//! parquet crate and aggregated in plain Rust — and the PNGs and index.html the binary writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use darkpool::engine::{Engine, EngineOptions, Scope};
use darkpool::ingest::{ingest_files, IngestOptions};
use darkpool::report::analysis_queries;
use darkpool::source::simulator::DEFAULT_SYMBOLS;
use darkpool::time::parse_timestamp;
use darkpool::venue::Registry;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const FIVE_MINUTES: i64 = 300_000_000;

/// One trade as the lake holds it.
#[derive(Debug, Clone)]
struct Trade {
    at: i64,
    symbol: String,
    venue: String,
    kind: String,
    quantity: i64,
    value: f64,
    latitude: f64,
    longitude: f64,
}

impl Trade {
    fn window(&self) -> i64 {
        self.at.div_euclid(FIVE_MINUTES) * FIVE_MINUTES
    }
    fn is_block(&self) -> bool {
        self.quantity >= 10_000 || self.value >= 200_000.0
    }
}

/// Every trade in the lake, read with the parquet crate (not DataFusion).
fn lake_trades(lake: &Path) -> Vec<Trade> {
    let registry = Registry::embedded();
    let files = common::parquet_files(&lake.join("trades"));
    let mut trades = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let at = col("timestamp");
            let at = at.as_primitive::<TimestampMicrosecondType>();
            let symbol = col("symbol");
            let symbol = symbol.as_string::<i32>();
            let venue = col("venue");
            let venue = venue.as_string::<i32>();
            let quantity = col("quantity");
            let quantity = quantity.as_primitive::<Int64Type>();
            let value = col("trade_value");
            let value = value.as_primitive::<Float64Type>();
            let lat = col("latitude");
            let lat = lat.as_primitive::<Float64Type>();
            let lon = col("longitude");
            let lon = lon.as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                let code = venue.value(i).to_string();
                trades.push(Trade {
                    at: at.value(i),
                    symbol: symbol.value(i).to_string(),
                    kind: registry
                        .lookup(&code)
                        .map_or("unknown".to_string(), |v| v.kind.as_str().to_string()),
                    venue: code,
                    quantity: quantity.value(i),
                    value: value.value(i),
                    latitude: if lat.is_null(i) {
                        f64::NAN
                    } else {
                        lat.value(i)
                    },
                    longitude: if lon.is_null(i) {
                        f64::NAN
                    } else {
                        lon.value(i)
                    },
                });
            }
        }
    }
    trades
}

/// Linear-interpolation percentile (numpy's default), over sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (sorted.len() - 1) as f64 * p;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn close(a: f64, b: f64, what: &str) {
    let tolerance = 1e-6 * a.abs().max(b.abs()).max(1.0);
    assert!((a - b).abs() <= tolerance, "{what}: {a} != {b}");
}

fn f(row: &Value, column: &str) -> f64 {
    row[column]
        .as_f64()
        .unwrap_or_else(|| panic!("{column} in {row}"))
}

fn s<'a>(row: &'a Value, column: &str) -> &'a str {
    row[column]
        .as_str()
        .unwrap_or_else(|| panic!("{column} in {row}"))
}

fn t(row: &Value, column: &str) -> i64 {
    parse_timestamp(s(row, column)).unwrap()
}

/// An analysis query's rows as JSON objects.
async fn analysis(engine: &Engine, name: &str) -> Vec<Value> {
    let queries = analysis_queries(None).unwrap();
    let query = queries.iter().find(|q| q.name == name).unwrap();
    let result = engine.sql(&query.sql).await.unwrap();
    assert!(!result.truncated);
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut out);
        for batch in &result.batches {
            writer.write(batch).unwrap();
        }
        writer.finish().unwrap();
    }
    if out.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&out).unwrap()
}

mod common;

fn simulate(path: &Path, count: u64, seed: u64) {
    common::simulate(path, count, seed, 8.0);
}

/// A lake of 30,000 simulated trades (about an hour of market time: twelve 5-minute windows).
async fn lake(dir: &Path) -> PathBuf {
    let input = dir.join("trades.ndjson");
    simulate(&input, 30_000, 11);
    let lake = dir.join("lake");
    let mut options = IngestOptions::new(&lake, vec![input]);
    options.progress = false;
    ingest_files(options).await.unwrap();
    lake
}

fn sum_by<K: Ord>(
    trades: &[Trade],
    key: impl Fn(&Trade) -> K,
    value: impl Fn(&Trade) -> f64,
) -> BTreeMap<K, f64> {
    let mut out = BTreeMap::new();
    for trade in trades {
        *out.entry(key(trade)).or_insert(0.0) += value(trade);
    }
    out
}

#[tokio::test]
async fn analysis_queries_match_an_independent_computation_over_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let trades = lake_trades(&lake);
    assert_eq!(trades.len(), 30_000);
    let engine = Engine::open(EngineOptions::new(&lake)).await.unwrap();

    // 01, 02: value and quantity per venue, largest first.
    let value = sum_by(&trades, |t| t.venue.clone(), |t| t.value);
    let quantity = sum_by(&trades, |t| t.venue.clone(), |t| t.quantity as f64);
    let count = sum_by(&trades, |t| t.venue.clone(), |_| 1.0);
    let rows = analysis(&engine, "01_value_by_venue").await;
    assert_eq!(rows.len(), value.len());
    for pair in rows.windows(2) {
        assert!(f(&pair[0], "total_value") >= f(&pair[1], "total_value"));
    }
    for row in &rows {
        let venue = s(row, "venue");
        close(f(row, "total_value"), value[venue], venue);
        close(f(row, "num_trades"), count[venue], venue);
    }
    let rows = analysis(&engine, "02_quantity_by_venue").await;
    for row in &rows {
        close(
            f(row, "total_quantity"),
            quantity[s(row, "venue")],
            "quantity",
        );
    }

    // 03: value per symbol split by kind.
    let by_kind = sum_by(&trades, |t| (t.symbol.clone(), t.kind.clone()), |t| t.value);
    let rows = analysis(&engine, "03_value_by_symbol").await;
    assert_eq!(rows.len(), 8);
    for row in &rows {
        let symbol = s(row, "symbol").to_string();
        for kind in ["dark", "lit", "otc"] {
            let expected = by_kind
                .get(&(symbol.clone(), kind.to_string()))
                .copied()
                .unwrap_or(0.0);
            close(f(row, &format!("{kind}_value")), expected, &symbol);
        }
    }

    // 04: per window and symbol, the venues shown plus OTHER add up to the symbol's value.
    let per_window_symbol = sum_by(&trades, |t| (t.window(), t.symbol.clone()), |t| t.value);
    let rows = analysis(&engine, "04_value_over_time").await;
    let mut summed: BTreeMap<(i64, String), f64> = BTreeMap::new();
    let mut shown = std::collections::BTreeSet::new();
    for row in &rows {
        *summed
            .entry((t(row, "window_start"), s(row, "symbol").to_string()))
            .or_default() += f(row, "total_value");
        shown.insert(s(row, "venue").to_string());
    }
    assert_eq!(summed.len(), per_window_symbol.len());
    for (key, v) in &per_window_symbol {
        close(summed[key], *v, "value over time");
    }
    let mut top: Vec<(&String, &f64)> = value.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    let mut expected: std::collections::BTreeSet<String> =
        top.iter().take(6).map(|(v, _)| v.to_string()).collect();
    expected.insert("OTHER".into());
    assert_eq!(shown, expected);

    // 05: box plot of per-window average size for the eight venues with most trades.
    let mut windows: BTreeMap<(String, String, i64), (f64, f64)> = BTreeMap::new();
    for trade in &trades {
        let w = windows
            .entry((trade.venue.clone(), trade.symbol.clone(), trade.window()))
            .or_default();
        w.0 += trade.quantity as f64;
        w.1 += 1.0;
    }
    let mut by_trades: Vec<(&String, &f64)> = count.iter().collect();
    by_trades.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    let top8: Vec<&String> = by_trades.iter().take(8).map(|(v, _)| *v).collect();
    let rows = analysis(&engine, "05_trade_size_box").await;
    let mut boxes = 0;
    for venue in &top8 {
        for symbol in DEFAULT_SYMBOLS.iter().map(|s| s.0) {
            let cells: Vec<(f64, f64)> = windows
                .iter()
                .filter(|((v, s, _), _)| v == *venue && s == symbol)
                .map(|(_, q)| *q)
                .collect();
            if cells.is_empty() {
                continue;
            }
            boxes += 1;
            let mut sizes: Vec<f64> = cells.iter().map(|(q, n)| q / n).collect();
            sizes.sort_by(f64::total_cmp);
            let (q1, median, q3) = (
                percentile(&sizes, 0.25),
                percentile(&sizes, 0.5),
                percentile(&sizes, 0.75),
            );
            let (lo, hi) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
            let row = rows
                .iter()
                .find(|r| s(r, "venue") == venue.as_str() && s(r, "symbol") == symbol)
                .unwrap_or_else(|| panic!("no box for {venue} {symbol}"));
            let what = format!("{venue} {symbol}");
            close(f(row, "q1"), q1, &what);
            close(f(row, "median"), median, &what);
            close(f(row, "q3"), q3, &what);
            let inside: Vec<f64> = sizes
                .iter()
                .copied()
                .filter(|x| *x >= lo && *x <= hi)
                .collect();
            close(f(row, "lower_whisker"), inside[0], &what);
            close(f(row, "upper_whisker"), *inside.last().unwrap(), &what);
            let outliers: Vec<f64> = sizes
                .iter()
                .copied()
                .filter(|x| *x < lo || *x > hi)
                .collect();
            let got: Vec<f64> = row["outliers"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_f64().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(got.len(), outliers.len(), "{what} outliers");
            for (a, b) in got.iter().zip(&outliers) {
                close(*a, *b, &what);
            }
            let total_q: f64 = cells.iter().map(|c| c.0).sum();
            let total_n: f64 = cells.iter().map(|c| c.1).sum();
            // The overall average is total quantity / trades, not a mean of window averages.
            close(f(row, "overall_avg_size"), total_q / total_n, &what);
        }
    }
    assert_eq!(rows.len(), boxes);

    // 06: value per window by kind; 11: block prints per window by kind.
    let window_kind = sum_by(&trades, |t| (t.window(), t.kind.clone()), |t| t.value);
    let rows = analysis(&engine, "06_dark_vs_lit").await;
    assert_eq!(
        rows.len(),
        trades
            .iter()
            .map(|t| t.window())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    for row in &rows {
        let w = t(row, "window_start");
        for kind in ["dark", "lit", "otc"] {
            let expected = window_kind
                .get(&(w, kind.to_string()))
                .copied()
                .unwrap_or(0.0);
            close(f(row, &format!("{kind}_value")), expected, kind);
        }
    }
    let blocks = sum_by(
        &trades,
        |t| (t.window(), t.kind.clone()),
        |t| t.is_block() as u8 as f64,
    );
    let rows = analysis(&engine, "11_block_prints").await;
    assert_eq!(rows.len(), blocks.len());
    for row in &rows {
        let key = (t(row, "window_start"), s(row, "venue_kind").to_string());
        close(f(row, "block_trades"), blocks[&key], "blocks");
    }
    assert!(
        blocks.values().sum::<f64>() > 0.0,
        "the fixture should hold block prints"
    );

    // 07: value per location adds up to everything.
    let rows = analysis(&engine, "07_liquidity_map").await;
    let mapped: f64 = rows.iter().map(|r| f(r, "total_value")).sum();
    close(mapped, trades.iter().map(|t| t.value).sum(), "map total");
    let per_site = sum_by(
        &trades,
        |t| (format!("{:.4}", t.latitude), format!("{:.4}", t.longitude)),
        |t| t.value,
    );
    assert_eq!(rows.len(), per_site.len());

    // 08: dark share per window and symbol.
    let rows = analysis(&engine, "08_dark_share").await;
    for row in &rows {
        let key = (t(row, "window_start"), s(row, "symbol").to_string());
        let dark: f64 = trades
            .iter()
            .filter(|t| (t.window(), t.symbol.clone()) == key && t.kind == "dark")
            .map(|t| t.value)
            .sum();
        close(
            f(row, "dark_share_pct"),
            100.0 * dark / per_window_symbol[&key],
            "dark share",
        );
    }

    // 09: HHI of value across venues per symbol.
    let per_symbol_venue = sum_by(
        &trades,
        |t| (t.symbol.clone(), t.venue.clone()),
        |t| t.value,
    );
    let rows = analysis(&engine, "09_venue_hhi").await;
    for row in &rows {
        let symbol = s(row, "symbol");
        let shares: Vec<f64> = per_symbol_venue
            .iter()
            .filter(|((s, _), _)| s == symbol)
            .map(|(_, v)| *v)
            .collect();
        let total: f64 = shares.iter().sum();
        let hhi: f64 = shares
            .iter()
            .map(|v| (v / total) * (v / total))
            .sum::<f64>()
            * 10_000.0;
        close(f(row, "hhi"), hhi, symbol);
    }

    // 10: trade-size percentiles per kind, over single trades.
    let rows = analysis(&engine, "10_trade_size_percentiles").await;
    for row in &rows {
        let kind = s(row, "venue_kind");
        let mut sizes: Vec<f64> = trades
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.quantity as f64)
            .collect();
        sizes.sort_by(f64::total_cmp);
        for (column, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            close(f(row, column), percentile(&sizes, p), kind);
        }
        close(
            f(row, "avg_size"),
            sizes.iter().sum::<f64>() / sizes.len() as f64,
            kind,
        );
    }
}

#[tokio::test]
async fn a_scope_limits_every_table_to_the_time_range_and_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let trades = lake_trades(&lake);
    let from = parse_timestamp("2024-01-02T09:40:00Z").unwrap();
    let to = parse_timestamp("2024-01-02T10:00:00Z").unwrap();
    let mut options = EngineOptions::new(&lake);
    options.scope = Scope {
        from: Some(from),
        to: Some(to),
        symbols: vec!["SYNTH_SPY".into(), "SYNTH_QQQ".into()],
    };
    let engine = Engine::open(options).await.unwrap();
    let inside: Vec<&Trade> = trades
        .iter()
        .filter(|t| {
            t.at >= from && t.at < to && (t.symbol == "SYNTH_SPY" || t.symbol == "SYNTH_QQQ")
        })
        .collect();
    let rows = analysis(&engine, "03_value_by_symbol").await;
    assert_eq!(rows.len(), 2);
    let total: f64 = rows.iter().map(|r| f(r, "total_value")).sum();
    close(total, inside.iter().map(|t| t.value).sum(), "scoped value");
    let rows = analysis(&engine, "10_trade_size_percentiles").await;
    let counted: f64 = rows.iter().map(|r| f(r, "num_trades")).sum();
    assert_eq!(counted as usize, inside.len());
    let rows = analysis(&engine, "06_dark_vs_lit").await;
    assert_eq!(rows.len(), 4, "four 5-minute windows from 09:40 to 10:00");
}

fn darkpool(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_darkpool"))
        .args(args)
        .current_dir(dir)
        .env("DARKPOOL_LOG", "warn")
        .output()
        .unwrap()
}

/// Decoded PNG: (width, height, RGB(A) pixels).
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

#[tokio::test]
async fn report_writes_every_plot_as_a_real_png_and_an_index_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path()).await;
    let out = darkpool(dir.path(), &["report", "--lake", "lake", "--out", "plots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 11 plot(s)"), "{stderr}");
    let index = std::fs::read_to_string(dir.path().join("plots/index.html")).unwrap();
    let mut queries = analysis_queries(None).unwrap();
    assert_eq!(queries.len(), 13);
    // The FINRA plots (12, 13) need the FINRA tables, which this lake lacks: left out, no file
    // (tests/real_data.rs draws them).
    let finra: Vec<_> = queries
        .iter()
        .filter(|q| q.sql.contains("ats_weekly") || q.sql.contains("short_volume"))
        .map(|q| q.name.clone())
        .collect();
    assert_eq!(finra, ["12_ats_share", "13_short_ratio"]);
    for name in &finra {
        assert!(!dir.path().join(format!("plots/{name}.png")).exists());
    }
    queries.retain(|q| !finra.contains(&q.name));
    for query in &queries {
        let png = dir.path().join("plots").join(format!("{}.png", query.name));
        let (w, h, pixels) = decode_png(&png);
        assert_eq!((w, h), (1600, 800), "{}", query.name);
        // Not blank: many distinct colours and a fair share of non-white pixels.
        let mut colours = std::collections::HashSet::new();
        let mut inked = 0usize;
        for px in pixels.chunks(3) {
            colours.insert((px[0], px[1], px[2]));
            if px != [255, 255, 255] {
                inked += 1;
            }
        }
        assert!(
            colours.len() > 50,
            "{}: {} colours",
            query.name,
            colours.len()
        );
        assert!(
            inked > (w * h / 50) as usize,
            "{}: {inked} inked pixels",
            query.name
        );
        assert!(
            index.contains(&format!("src=\"{}.png\"", query.name)),
            "{}",
            query.name
        );
        let title = query.description.split(": ").next().unwrap();
        assert!(index.contains(title), "{title}");
        assert!(index.contains(&format!("analysis/{}.sql", query.name)));
    }
    assert!(index.contains("SELECT"));
    assert!(
        index.contains("first window starts 2024-01-02 09:30 UTC"),
        "{index}"
    );
    // Every analysis query is listed, drawn or not (the FINRA ones with 0 rows).
    assert_eq!(index.matches("<dt>Rows</dt>").count(), 13);
}

#[tokio::test]
async fn report_on_an_empty_lake_or_an_empty_filter_writes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = darkpool(
        dir.path(),
        &["report", "--lake", "nothing", "--out", "plots"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("holds no windows yet"), "{stderr}");
    assert!(!dir.path().join("plots").exists());

    lake(dir.path()).await;
    let out = darkpool(
        dir.path(),
        &[
            "report",
            "--lake",
            "lake",
            "--out",
            "plots",
            "--symbols",
            "NOPE",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no windows match symbols NOPE"), "{stderr}");
    assert!(
        stderr.contains("2024-01-02 09:30"),
        "says what the lake holds: {stderr}"
    );
    assert!(!dir.path().join("plots").exists());

    let out = darkpool(
        dir.path(),
        &["report", "--lake", "lake", "--from", "yesterday"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from 'yesterday'"));
}

#[tokio::test]
async fn a_plot_with_nothing_to_show_is_left_out_and_its_old_png_removed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("small.ndjson");
    std::fs::write(
        &input,
        "{\"timestamp\":\"2024-01-02T14:30:01\",\"symbol\":\"AAA\",\"price\":10.0,\"quantity\":100,\"venue\":\"LIT\"}\n\
         {\"timestamp\":\"2024-01-02T14:36:01\",\"symbol\":\"AAA\",\"price\":10.5,\"quantity\":200,\"venue\":\"DARK1\"}\n",
    )
    .unwrap();
    let mut options = IngestOptions::new(dir.path().join("lake"), vec![input]);
    options.progress = false;
    ingest_files(options).await.unwrap();
    let plots = dir.path().join("plots");
    std::fs::create_dir_all(&plots).unwrap();
    std::fs::write(plots.join("11_block_prints.png"), b"last run's plot").unwrap();
    let out = darkpool(dir.path(), &["report", "--lake", "lake", "--out", "plots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 10 plot(s)"), "{stderr}");
    assert!(stderr.contains("11_block_prints.png"), "{stderr}");
    assert!(
        !plots.join("11_block_prints.png").exists(),
        "stale PNG left behind"
    );
    let index = std::fs::read_to_string(plots.join("index.html")).unwrap();
    assert!(index.contains("No plot: no block prints"), "{index}");
    assert!(!index.contains("src=\"11_block_prints.png\""));
    assert_eq!(decode_png(&plots.join("06_dark_vs_lit.png")).0, 1600);
}
