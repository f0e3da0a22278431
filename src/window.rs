//! Event-time windows (DESIGN §3): tumbling or hopping windows `[start, end)` keyed by
//! (window_start, symbol, venue), a watermark with allowed lateness, late trades, corrections.
//!
//! The aggregate is SQL (`sql/window_aggregate.sql`), run by DataFusion over each Arrow
//! micro-batch; the partial rows are combined with `sql/internal/window_merge.sql`. State is the
//! open windows (bounded by open keys, not trades) plus the latest version of each closed
//! window (for corrections). Streaming output equals the same SQL in batch over all trades.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::model::{late_schema, trades_schema};
use crate::time::{format_duration, parse_duration_micros, DurationError};

/// The aggregate, as shipped (also the named query `window_aggregate`).
pub const AGGREGATE_SQL: &str = include_str!("../sql/window_aggregate.sql");
/// The merge of partial rows.
pub const MERGE_SQL: &str = include_str!("../sql/internal/window_merge.sql");

/// Most windows one trade may fall in (size / slide).
const MAX_HOPS: i64 = 288;

/// Why windows could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("{0}")]
    Spec(String),
    #[error("window SQL ({query}) failed: {source}")]
    Sql {
        query: &'static str,
        source: DataFusionError,
    },
    #[error("window rows do not match the window schema: {0}")]
    Schema(String),
}

/// Window size, slide and allowed lateness, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub size: i64,
    pub slide: i64,
    pub lateness: i64,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec {
            size: 300_000_000,
            slide: 300_000_000,
            lateness: 5_000_000,
        }
    }
}

impl WindowSpec {
    /// From flag texts (`5m`, slide defaults to the size: tumbling).
    pub fn parse(
        size: &str,
        slide: Option<&str>,
        lateness: &str,
    ) -> Result<WindowSpec, WindowError> {
        let size_us = parse_duration_micros(size)?;
        let slide_us = slide
            .map(parse_duration_micros)
            .transpose()?
            .unwrap_or(size_us);
        let spec = WindowSpec {
            size: size_us,
            slide: slide_us,
            lateness: parse_duration_micros(lateness)?,
        };
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), WindowError> {
        let ms = 1000;
        if self.size < ms || self.slide < ms || self.size % ms != 0 || self.slide % ms != 0 {
            return Err(WindowError::Spec(
                "--window and --slide must be whole milliseconds, at least 1ms".into(),
            ));
        }
        if self.slide > self.size {
            return Err(WindowError::Spec(format!(
                "--slide {} is longer than --window {}: trades between windows would be lost",
                format_duration(self.slide),
                format_duration(self.size)
            )));
        }
        if self.hops() > MAX_HOPS {
            return Err(WindowError::Spec(format!(
                "--window / --slide is {}; at most {MAX_HOPS} windows per trade",
                self.hops()
            )));
        }
        Ok(())
    }

    /// Windows each trade falls in.
    pub fn hops(&self) -> i64 {
        (self.size + self.slide - 1) / self.slide
    }

    /// The end of the earliest window containing `ts`.
    pub fn earliest_end(&self, ts: i64) -> i64 {
        let k = (ts - self.size).div_euclid(self.slide) + 1;
        k * self.slide + self.size
    }

    /// The aggregate SQL with this spec's sizes filled in.
    ///
    /// Sizes and lags are Arrow durations: timestamp +/- duration is plain integer arithmetic,
    /// where timestamp +/- interval goes through calendar code for every row.
    pub fn render(&self, sql: &str) -> String {
        let duration = |us: i64| format!("arrow_cast({us}, 'Duration(Microsecond)')");
        let lags: Vec<String> = (0..self.hops())
            .map(|j| format!("({})", duration(j * self.slide)))
            .collect();
        sql.replace("{{size}}", &duration(self.size))
            .replace(
                "{{slide}}",
                &format!("INTERVAL '{} milliseconds'", self.slide / 1000),
            )
            .replace("{{lags}}", &lags.join(", "))
    }
}

/// Key of a window row: start, end, and interned symbol and venue.
type Key = (i64, i64, u32, u32);

/// Where the latest emitted version of a window is kept, and its version number.
#[derive(Debug, Clone, Copy)]
struct Slot {
    chunk: usize,
    row: usize,
    version: i64,
}

/// The latest version of every emitted window, stored compactly: rows live in the batches they
/// were emitted in (`chunks`), the index holds only interned keys and positions.
#[derive(Default)]
struct Emitted {
    chunks: Vec<RecordBatch>,
    index: HashMap<Key, Slot>,
    names: HashMap<String, u32>,
}

impl Emitted {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.insert(name.to_string(), id);
        id
    }

    fn keys(&mut self, batch: &RecordBatch) -> Result<Vec<Key>, WindowError> {
        let starts = timestamps(batch, "window_start")?;
        let ends = timestamps(batch, "window_end")?;
        let symbols = strings(batch, "symbol")?;
        let venues = strings(batch, "venue")?;
        let (symbols, venues) = (symbols.as_string::<i32>(), venues.as_string::<i32>());
        Ok((0..batch.num_rows())
            .map(|i| {
                let symbol = self.intern(symbols.value(i));
                let venue = self.intern(venues.value(i));
                (starts.value(i), ends.value(i), symbol, venue)
            })
            .collect())
    }

    fn version(&self, key: &Key) -> Option<i64> {
        self.index.get(key).map(|s| s.version)
    }

    /// Keep `rows` as the latest versions of their keys.
    fn record(&mut self, rows: &RecordBatch, keys: &[Key], versions: &[i64]) {
        let chunk = self.chunks.len();
        self.chunks.push(rows.clone());
        for (row, (key, &version)) in keys.iter().zip(versions).enumerate() {
            self.index.insert(
                *key,
                Slot {
                    chunk,
                    row,
                    version,
                },
            );
        }
    }

    /// The latest emitted rows of `keys` (all of which must be present).
    fn rows(&self, keys: &[Key]) -> Result<RecordBatch, WindowError> {
        let positions: Vec<(usize, usize)> = keys
            .iter()
            .filter_map(|k| self.index.get(k).map(|s| (s.chunk, s.row)))
            .collect();
        let chunks: Vec<&RecordBatch> = self.chunks.iter().collect();
        arrow::compute::interleave_record_batch(&chunks, &positions)
            .map_err(|e| WindowError::Schema(e.to_string()))
    }
}

fn timestamps<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a TimestampMicrosecondArray, WindowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| WindowError::Schema(format!("no timestamp column {name}")))
}

fn strings(batch: &RecordBatch, name: &str) -> Result<ArrayRef, WindowError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| WindowError::Schema(format!("no column {name}")))?;
    cast(column, &DataType::Utf8).map_err(|e| WindowError::Schema(e.to_string()))
}

/// `batch` with its columns cast to `schema`'s types (matched by name).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, WindowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let column = batch
                .column_by_name(f.name())
                .ok_or_else(|| WindowError::Schema(format!("missing column {}", f.name())))?;
            if column.data_type() == f.data_type() {
                Ok(column.clone())
            } else {
                cast(column, f.data_type()).map_err(|e| WindowError::Schema(e.to_string()))
            }
        })
        .collect::<Result<Vec<ArrayRef>, WindowError>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| WindowError::Schema(e.to_string()))
}

fn split(
    batch: &RecordBatch,
    mask: &BooleanArray,
) -> Result<(RecordBatch, RecordBatch), WindowError> {
    let inverse = arrow::compute::not(mask).map_err(|e| WindowError::Schema(e.to_string()))?;
    let yes = filter_record_batch(batch, mask).map_err(|e| WindowError::Schema(e.to_string()))?;
    let no =
        filter_record_batch(batch, &inverse).map_err(|e| WindowError::Schema(e.to_string()))?;
    Ok((yes, no))
}

/// Counters of the window operator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    /// Trades that arrived after a window they belong to was final.
    pub late_trades: u64,
    /// Window rows emitted (every version).
    pub rows_emitted: u64,
    /// Emitted rows that corrected an earlier version.
    pub corrections: u64,
}

/// What one micro-batch produced.
#[derive(Debug, Default)]
pub struct Pushed {
    /// Final windows (and corrected versions), in the window output schema.
    pub windows: Option<RecordBatch>,
    /// Late trades, in the `late` schema.
    pub late: Option<RecordBatch>,
}

/// Streaming window aggregation over Arrow micro-batches of trades.
pub struct WindowOperator {
    ctx: SessionContext,
    spec: WindowSpec,
    aggregate_sql: String,
    /// Columns of the aggregate (all nullable).
    row_schema: SchemaRef,
    /// `row_schema` + `is_final` + `version`.
    output_schema: SchemaRef,
    open: Option<RecordBatch>,
    emitted: Emitted,
    watermark: Option<i64>,
    reemit_late: bool,
    stats: WindowStats,
}

/// A session for pipeline SQL: one partition (micro-batches are small), no parallel overhead.
fn pipeline_context() -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    SessionContext::new_with_config(config)
}

/// The schema of the window aggregate's output (all nullable), found by planning the SQL.
pub async fn row_schema(spec: &WindowSpec) -> Result<SchemaRef, WindowError> {
    let ctx = pipeline_context();
    let empty = RecordBatch::new_empty(trades_schema());
    let plan = run_on(
        &ctx,
        "trades",
        empty,
        &spec.render(AGGREGATE_SQL),
        "window_aggregate",
    )
    .await?;
    Ok(nullable(plan.schema()))
}

fn nullable(schema: SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<Field>>(),
    ))
}

/// The window table's schema: the aggregate's columns, `is_final` and `version`.
pub fn output_schema(row_schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = row_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("is_final", DataType::Boolean, false));
    fields.push(Field::new("version", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

async fn run_on(
    ctx: &SessionContext,
    table: &str,
    input: RecordBatch,
    sql: &str,
    query: &'static str,
) -> Result<RecordBatch, WindowError> {
    let err = |source| WindowError::Sql { query, source };
    let schema = input.schema();
    let mem = MemTable::try_new(schema, vec![vec![input]]).map_err(err)?;
    ctx.deregister_table(table).map_err(err)?;
    ctx.register_table(table, Arc::new(mem)).map_err(err)?;
    let df = ctx.sql(sql).await.map_err(err)?;
    let out_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(err)?;
    concat_batches(&out_schema, &batches).map_err(|e| err(e.into()))
}

impl WindowOperator {
    pub async fn new(spec: WindowSpec, reemit_late: bool) -> Result<WindowOperator, WindowError> {
        spec.check()?;
        let row_schema = row_schema(&spec).await?;
        Ok(WindowOperator {
            ctx: pipeline_context(),
            spec,
            aggregate_sql: spec.render(AGGREGATE_SQL),
            output_schema: output_schema(&row_schema),
            row_schema,
            open: None,
            emitted: Emitted::default(),
            watermark: None,
            reemit_late,
            stats: WindowStats::default(),
        })
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Remember windows already in the lake (rows of the `windows` table) so that new trades
    /// for them produce a merged next version instead of a second row for the same key.
    pub fn preload(&mut self, windows: &[RecordBatch]) -> Result<(), WindowError> {
        for batch in windows {
            let versions = batch
                .column_by_name("version")
                .and_then(|c| cast(c, &DataType::Int64).ok())
                .ok_or_else(|| WindowError::Schema("windows rows lack version".into()))?;
            let versions = versions
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec();
            let rows = conform(batch, &self.row_schema)?;
            let keys = self.emitted.keys(&rows)?;
            self.emitted.record(&rows, &keys, &versions);
        }
        Ok(())
    }

    async fn aggregate(&self, trades: &RecordBatch) -> Result<RecordBatch, WindowError> {
        let rows = run_on(
            &self.ctx,
            "trades",
            trades.clone(),
            &self.aggregate_sql,
            "window_aggregate",
        )
        .await?;
        conform(&rows, &self.row_schema)
    }

    async fn merge(&self, parts: &[RecordBatch]) -> Result<RecordBatch, WindowError> {
        let all = concat_batches(&self.row_schema, parts)
            .map_err(|e| WindowError::Schema(e.to_string()))?;
        let rows = run_on(&self.ctx, "window_rows", all, MERGE_SQL, "window_merge").await?;
        conform(&rows, &self.row_schema)
    }

    fn ends_mask(rows: &RecordBatch, watermark: Option<i64>) -> Result<BooleanArray, WindowError> {
        let ends = timestamps(rows, "window_end")?;
        Ok(ends
            .iter()
            .map(|e| Some(matches!((e, watermark), (Some(e), Some(w)) if e <= w)))
            .collect())
    }

    /// Feed a batch of trades (in arrival order). Returns windows that became final (and
    /// corrections), and the late trades.
    pub async fn push(&mut self, trades: &RecordBatch) -> Result<Pushed, WindowError> {
        if trades.num_rows() == 0 {
            return Ok(Pushed::default());
        }
        let old_wm = self.watermark;
        let ts = timestamps(trades, "timestamp")?;
        let mut out = Pushed::default();
        if let Some(wm) = old_wm {
            let late_mask: BooleanArray = ts
                .values()
                .iter()
                .map(|&t| Some(self.spec.earliest_end(t) <= wm))
                .collect();
            if late_mask.true_count() > 0 {
                let late = filter_record_batch(trades, &late_mask)
                    .map_err(|e| WindowError::Schema(e.to_string()))?;
                self.stats.late_trades += late.num_rows() as u64;
                let mut columns = late.columns().to_vec();
                columns.push(Arc::new(
                    TimestampMicrosecondArray::from(vec![wm; late.num_rows()]).with_timezone("UTC"),
                ));
                out.late = Some(
                    RecordBatch::try_new(late_schema(), columns)
                        .map_err(|e| WindowError::Schema(e.to_string()))?,
                );
            }
        }
        let partial = self.aggregate(trades).await?;
        let (corrections, fresh) = split(&partial, &Self::ends_mask(&partial, old_wm)?)?;
        let mut parts = Vec::with_capacity(2);
        parts.extend(self.open.take());
        parts.push(fresh);
        let open = self.merge(&parts).await?;
        let max_ts = ts.values().iter().copied().max().unwrap_or(i64::MIN);
        let new_wm = old_wm
            .unwrap_or(i64::MIN)
            .max(max_ts.saturating_sub(self.spec.lateness));
        self.watermark = Some(new_wm);
        let (closed, still_open) = split(&open, &Self::ends_mask(&open, Some(new_wm))?)?;
        self.open = Some(still_open);
        let mut done = vec![closed];
        if self.reemit_late {
            done.push(corrections);
        }
        out.windows = self.finalize(&done).await?;
        Ok(out)
    }

    /// End of input: every open window becomes final.
    pub async fn finish(&mut self) -> Result<Option<RecordBatch>, WindowError> {
        match self.open.take() {
            Some(open) => self.finalize(&[open]).await,
            None => Ok(None),
        }
    }

    /// Emit rows as final windows: a key seen before becomes its next version, merged with
    /// the previous one.
    async fn finalize(
        &mut self,
        parts: &[RecordBatch],
    ) -> Result<Option<RecordBatch>, WindowError> {
        let rows = concat_batches(&self.row_schema, parts)
            .map_err(|e| WindowError::Schema(e.to_string()))?;
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        let row_keys = self.emitted.keys(&rows)?;
        let known: BooleanArray = row_keys
            .iter()
            .map(|k| Some(self.emitted.version(k).is_some()))
            .collect();
        let (again, first) = split(&rows, &known)?;
        let mut versions: Vec<i64> = vec![1; first.num_rows()];
        let mut batches = vec![first];
        if again.num_rows() > 0 {
            let again_keys = self.emitted.keys(&again)?;
            let previous = self.emitted.rows(&again_keys)?;
            let merged = self.merge(&[again, previous]).await?;
            for key in self.emitted.keys(&merged)? {
                versions.push(self.emitted.version(&key).map_or(1, |v| v + 1));
            }
            self.stats.corrections += merged.num_rows() as u64;
            batches.push(merged);
        }
        let result = concat_batches(&self.row_schema, &batches)
            .map_err(|e| WindowError::Schema(e.to_string()))?;
        let result_keys = self.emitted.keys(&result)?;
        self.emitted.record(&result, &result_keys, &versions);
        self.stats.rows_emitted += result.num_rows() as u64;
        let mut columns = result.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(vec![true; result.num_rows()])));
        columns.push(Arc::new(Int64Array::from(versions)));
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map(Some)
            .map_err(|e| WindowError::Schema(e.to_string()))
    }

    /// The open windows as rows with `is_final = false` (for live views).
    pub fn open_windows(&mut self) -> Result<Option<RecordBatch>, WindowError> {
        let Some(open) = self.open.clone() else {
            return Ok(None);
        };
        let versions: Vec<i64> = self
            .emitted
            .keys(&open)?
            .iter()
            .map(|k| self.emitted.version(k).map_or(1, |v| v + 1))
            .collect();
        let mut columns = open.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(vec![false; open.num_rows()])));
        columns.push(Arc::new(Int64Array::from(versions)));
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map(Some)
            .map_err(|e| WindowError::Schema(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_end_for_tumbling_and_hopping() {
        let tumbling = WindowSpec::default();
        assert_eq!(tumbling.earliest_end(0), 300_000_000);
        assert_eq!(tumbling.earliest_end(299_999_999), 300_000_000);
        assert_eq!(tumbling.earliest_end(300_000_000), 600_000_000);
        let hopping = WindowSpec {
            size: 300_000_000,
            slide: 60_000_000,
            lateness: 0,
        };
        assert_eq!(hopping.hops(), 5);
        // ts = 0 is in windows starting -240s..0s; the earliest ends at 60s.
        assert_eq!(hopping.earliest_end(0), 60_000_000);
        assert_eq!(hopping.earliest_end(59_999_999), 60_000_000);
        assert_eq!(hopping.earliest_end(60_000_000), 120_000_000);
    }

    #[test]
    fn spec_validation() {
        assert!(WindowSpec::parse("5m", Some("10m"), "5s").is_err());
        assert!(WindowSpec::parse("5m", Some("1s"), "5s").is_err());
        assert!(WindowSpec::parse("5x", None, "5s").is_err());
        assert_eq!(
            WindowSpec::parse("5m", None, "5s").unwrap(),
            WindowSpec::default()
        );
    }
}
