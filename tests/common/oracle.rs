//! The window oracle: the `windows` table equals the window SQL run in batch over the landed
//! trades.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use darkpool::engine::{Engine, EngineOptions};
use darkpool::window::WindowSpec;

pub async fn engine(lake: &Path, spec: WindowSpec) -> Engine {
    let mut options = EngineOptions::new(lake);
    options.window = spec;
    Engine::open(options).await.unwrap()
}

pub const COLUMNS: &str = "window_start, window_end, symbol, venue, venue_kind, total_trade_value, total_quantity, \
    num_trades, avg_price, vwap, min_price, max_price, block_trades, block_value, buy_quantity, sell_quantity, \
    spoof_trades, latitude, longitude";

pub async fn table(engine: &Engine, sql: &str) -> RecordBatch {
    let result = engine.sql(sql).await.unwrap();
    assert!(!result.truncated);
    concat_batches(&result.schema, &result.batches).unwrap()
}

/// Equal row by row; floats within 1e-9 relative (summation order differs between streaming
/// merges and one batch aggregate).
pub fn assert_same(streamed: &RecordBatch, batch: &RecordBatch) {
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

pub async fn assert_streaming_equals_batch(lake: &Path, spec: WindowSpec) {
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
