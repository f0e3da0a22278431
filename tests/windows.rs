//! The streaming oracle: windows computed incrementally over micro-batches (with out-of-order
//! and late trades, corrections, and runs that continue earlier runs) equal the same SQL run in
//! batch over the landed trades.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use darkpool::engine::{Engine, EngineOptions};
use darkpool::ingest::{ingest_files, IngestOptions, IngestSummary};
use darkpool::window::WindowSpec;

mod common;

fn simulate(path: &Path, count: u64, seed: u64) {
    common::simulate(path, count, seed, 50.0);
}

async fn ingest(lake: &Path, input: &Path, spec: WindowSpec, batch_rows: usize) -> IngestSummary {
    let mut options = IngestOptions::new(lake, vec![input.to_path_buf()]);
    options.window = spec;
    options.batch_rows = batch_rows;
    ingest_files(options).await.unwrap()
}

async fn engine(lake: &Path, spec: WindowSpec) -> Engine {
    let mut options = EngineOptions::new(lake);
    options.window = spec;
    Engine::open(options).await.unwrap()
}

const COLUMNS: &str = "window_start, window_end, symbol, venue, venue_kind, total_trade_value, total_quantity, \
    num_trades, avg_price, vwap, min_price, max_price, block_trades, block_value, buy_quantity, sell_quantity, \
    spoof_trades, latitude, longitude";

async fn table(engine: &Engine, sql: &str) -> RecordBatch {
    let result = engine.sql(sql).await.unwrap();
    assert!(!result.truncated);
    concat_batches(&result.schema, &result.batches).unwrap()
}

/// Equal row by row; floats within 1e-9 relative (summation order differs between streaming
/// merges and one batch aggregate).
fn assert_same(streamed: &RecordBatch, batch: &RecordBatch) {
    assert_eq!(streamed.num_rows(), batch.num_rows(), "row counts differ");
    assert!(streamed.num_rows() > 0);
    let options = FormatOptions::default();
    for (i, field) in streamed.schema().fields().iter().enumerate() {
        let (a, b) = (streamed.column(i), batch.column(i));
        if field.data_type() == &DataType::Float64 {
            let (a, b) = (
                a.as_primitive::<Float64Type>(),
                b.as_primitive::<Float64Type>(),
            );
            for row in 0..a.len() {
                assert_eq!(a.is_null(row), b.is_null(row), "{} row {row}", field.name());
                let (x, y) = (a.value(row), b.value(row));
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                    "{} row {row}: streamed {x} batch {y}",
                    field.name()
                );
            }
        } else {
            let fa = ArrayFormatter::try_new(a.as_ref(), &options).unwrap();
            let fb = ArrayFormatter::try_new(b.as_ref(), &options).unwrap();
            for row in 0..a.len() {
                assert_eq!(
                    fa.value(row).to_string(),
                    fb.value(row).to_string(),
                    "{} row {row}",
                    field.name()
                );
            }
        }
    }
}

async fn assert_streaming_equals_batch(lake: &Path, spec: WindowSpec) {
    let engine = engine(lake, spec).await;
    let order = "ORDER BY window_start, window_end, symbol, venue";
    let streamed = table(&engine, &format!("SELECT {COLUMNS} FROM windows {order}")).await;
    let batch_sql = engine.named_sql("window_aggregate").unwrap();
    let batch = table(
        &engine,
        &format!("SELECT {COLUMNS} FROM ({batch_sql}) {order}"),
    )
    .await;
    assert_same(&streamed, &batch);
}

#[tokio::test]
async fn streaming_windows_equal_batch_sql_with_late_trades_and_corrections() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.ndjson");
    simulate(&input, 60_000, 21);
    let lake = dir.path().join("lake");
    let spec = WindowSpec::default();
    let summary = ingest(&lake, &input, spec, 2_000).await;
    assert_eq!(summary.totals.accepted, 60_000);
    assert!(summary.windows.late_trades > 10, "{:?}", summary.windows);
    assert!(summary.windows.corrections > 0, "{:?}", summary.windows);
    assert_streaming_equals_batch(&lake, spec).await;

    let engine = engine(&lake, spec).await;
    let late = table(&engine, "SELECT COUNT(*) AS n FROM late").await;
    assert_eq!(
        late.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as u64,
        summary.windows.late_trades
    );
    let versions = table(
        &engine,
        "SELECT MAX(version) AS v, COUNT(*) AS n FROM window_history WHERE NOT is_final",
    )
    .await;
    assert_eq!(
        versions
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        0,
        "the lake holds final windows only"
    );
}

#[tokio::test]
async fn hopping_windows_equal_batch_sql() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.ndjson");
    simulate(&input, 20_000, 4);
    let lake = dir.path().join("lake");
    let spec = WindowSpec::parse("5m", Some("1m"), "2s").unwrap();
    let summary = ingest(&lake, &input, spec, 1_500).await;
    assert!(summary.windows.late_trades > 0);
    assert_streaming_equals_batch(&lake, spec).await;
    // Each trade is in 5 windows.
    let engine = engine(&lake, spec).await;
    let n = table(&engine, "SELECT SUM(num_trades) AS n FROM windows").await;
    assert_eq!(
        n.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        5 * 20_000
    );
}

#[tokio::test]
async fn a_second_run_merges_into_the_windows_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("all.ndjson");
    simulate(&input, 20_000, 8);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    std::fs::write(dir.path().join("first.ndjson"), first.join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("second.ndjson"), second.join("\n") + "\n").unwrap();
    let lake = dir.path().join("lake");
    let spec = WindowSpec::default();
    ingest(&lake, &dir.path().join("first.ndjson"), spec, 4_000).await;
    let summary = ingest(&lake, &dir.path().join("second.ndjson"), spec, 4_000).await;
    assert!(
        summary.windows.corrections > 0,
        "the window cut in half must get a version 2"
    );
    assert_streaming_equals_batch(&lake, spec).await;
}
