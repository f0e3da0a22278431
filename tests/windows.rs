//! The streaming oracle: windows computed incrementally over micro-batches (with out-of-order
//! and late trades, corrections, and runs that continue earlier runs) equal the same SQL run in
//! batch over the landed trades.

use std::path::Path;

use arrow::array::AsArray;
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
    // Emitted windows spill past a few rows, so corrections and second runs read them back
    // from disk: the windows must still equal the batch SQL.
    options.window_memory_rows = 64;
    ingest_files(options).await.unwrap()
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
    common::oracle::assert_streaming_equals_batch(&lake, spec).await;

    let engine = common::oracle::engine(&lake, spec).await;
    let late = common::oracle::table(&engine, "SELECT COUNT(*) AS n FROM late").await;
    assert_eq!(
        late.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as u64,
        summary.windows.late_trades
    );
    let versions = common::oracle::table(
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
    common::oracle::assert_streaming_equals_batch(&lake, spec).await;
    // Each trade is in 5 windows.
    let engine = common::oracle::engine(&lake, spec).await;
    let n = common::oracle::table(&engine, "SELECT SUM(num_trades) AS n FROM windows").await;
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
    common::oracle::assert_streaming_equals_batch(&lake, spec).await;
}
