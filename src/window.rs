//! Event-time windows (DESIGN §3): tumbling or hopping windows `[start, end)` keyed by
//! (window_start, symbol, venue), a watermark with allowed lateness, late trades, corrections.
//!
//! The aggregate is SQL (`sql/window_aggregate.sql`), run by DataFusion over each Arrow
//! micro-batch; the partial rows are combined with `sql/internal/window_merge.sql`. State is the
//! open windows (bounded by open keys, not trades) plus the latest version of each closed
//! window (for corrections). Streaming output equals the same SQL in batch over all trades.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::future::BoxFuture;

use crate::model::{late_schema, trades_schema};
use crate::time::{format_duration, parse_duration_micros, DurationError};

mod prepared;

use prepared::Prepared;

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
    #[error("window state spill: {0}")]
    Spill(String),
    #[error("window state spill: {}: {source}", path.display())]
    SpillIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the windows of earlier runs: {0}")]
    History(String),
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
    /// What the lake records of it (lateness does not change the windows' shape).
    pub fn shape(&self) -> crate::lake::WindowShape {
        crate::lake::WindowShape {
            size: self.size,
            slide: self.slide,
        }
    }

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
    /// where timestamp +/- interval goes through calendar code for every row. Tumbling windows
    /// get no join with the lags at all: DataFusion runs even a one-row `CROSS JOIN (VALUES ..)`
    /// as a nested-loop join (a third of the windowing time in one profile, though leaving it
    /// out made no difference to total ingest time that we could measure), nor a filter that
    /// always holds (without it, windowing 2M trades took 215 ms instead of 260).
    pub fn render(&self, sql: &str) -> String {
        let duration = |us: i64| format!("arrow_cast({us}, 'Duration(Microsecond)')");
        let (hops, lag, in_window) = if self.hops() > 1 {
            let lags: Vec<String> = (0..self.hops())
                .map(|j| format!("({})", duration(j * self.slide)))
                .collect();
            let join = format!("CROSS JOIN (VALUES {}) AS h (lag)", lags.join(", "));
            let in_window = "\"timestamp\" < window_start + {{size}}";
            (join, "h.lag".to_string(), in_window)
        } else {
            (String::new(), duration(0), "TRUE")
        };
        sql.replace("{{in_window}}", in_window)
            .replace("{{size}}", &duration(self.size))
            .replace(
                "{{slide}}",
                &format!("INTERVAL '{} milliseconds'", self.slide / 1000),
            )
            .replace("{{hops}}", &hops)
            .replace("{{lag}}", &lag)
    }
}

/// Key of a window row: start, end, and interned symbol and venue.
type Key = (i64, i64, u32, u32);

/// Where the latest emitted version of a window is kept in memory, and its version number.
#[derive(Debug, Clone, Copy)]
struct Slot {
    chunk: u32,
    row: u32,
    version: i64,
}

/// An Arrow IPC file of windows that left memory: their latest versions when they left (the
/// window columns and `version`), and the range of their window ends.
struct SpillFile {
    path: PathBuf,
    first_end: i64,
    last_end: i64,
}

/// What a lookup of the windows of earlier runs asks for: every stored version of the windows
/// ending from `first_end` to `last_end` (both included) of these symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub first_end: i64,
    pub last_end: i64,
    pub symbols: Vec<String>,
}

/// Finds windows of earlier runs (the lake's `window_history`): rows with the window columns
/// and `version`, possibly more than asked for.
pub type HistoryLookup = Arc<
    dyn Fn(HistoryQuery) -> BoxFuture<'static, Result<Vec<RecordBatch>, WindowError>> + Send + Sync,
>;

/// Emitted window rows kept in memory before the oldest are spilled to disk (the default of
/// `--window-memory-rows`).
pub const SPILL_AT_ROWS: usize = 32 * 1024;

/// The latest version of every emitted window, kept for corrections. In memory are the rows
/// of recent emits (in the batches they were emitted in) and an index of interned keys over
/// them. Past [`SPILL_AT_ROWS`] rows, all batches but the newest move to an Arrow IPC file in
/// the spill folder and leave the index, so memory stays bounded however long the run, index
/// included. A key not in memory whose window end falls in a file's range is looked for there,
/// newest file first, and brought back ([`Emitted::fault_in`]). That is rare and cheap to rule
/// out: a window closing for the first time ends after every window that closed before it, so
/// only corrections of old windows read files. Windows of earlier runs stay in the lake and are
/// looked up there last ([`HistoryLookup`]), the highest stored version winning; until the
/// watermark passes the latest of them, new windows look there too (once per key: a key not
/// found is remembered as such).
#[derive(Default)]
struct Emitted {
    /// In-memory batches of emitted rows, by chunk number.
    chunks: HashMap<u32, RecordBatch>,
    next_chunk: u32,
    memory_rows: usize,
    /// In-memory rows that trigger a spill (0 means [`SPILL_AT_ROWS`]).
    spill_at_rows: usize,
    spill_dir: Option<PathBuf>,
    spill_files: Vec<SpillFile>,
    /// The latest window end in any spill file.
    spilled_until: Option<i64>,
    index: HashMap<Key, Slot>,
    names: HashMap<String, u32>,
    /// Windows emitted before this run ([`WindowOperator::remember_history`]): where to find
    /// them, and the latest window end among them.
    history: Option<HistoryLookup>,
    history_until: Option<i64>,
    /// Keys of windows ending by `history_until` that the lookup did not find.
    absent: HashSet<Key>,
    /// In-memory chunks whose rows are committed to the lake ([`WindowOperator::committed`]):
    /// past the memory limit they are dropped, not spilled, and looked up there.
    durable: HashSet<u32>,
    /// An uncommitted run was dropped after this operator emitted some of its windows: what
    /// it holds is no longer known to be in the lake, so nothing is marked durable any more.
    durability_lost: bool,
}

impl Emitted {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.spill_files.is_empty() && self.history_until.is_none()
    }
}

/// Write `batches` (at least one) to a new Arrow IPC file.
fn write_ipc(path: &Path, batches: &[RecordBatch]) -> Result<(), WindowError> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let file = std::fs::File::create(path).map_err(|e| spill_error(path, e))?;
    let mut writer =
        arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &first.schema())
            .map_err(|e| spill_error(path, e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| spill_error(path, e))?;
    }
    writer.finish().map_err(|e| spill_error(path, e))
}

/// The earliest and latest `window_end` of `batches`.
fn end_range(batches: &[RecordBatch]) -> Result<Option<(i64, i64)>, WindowError> {
    let mut range: Option<(i64, i64)> = None;
    for batch in batches {
        for &end in timestamps(batch, "window_end")?.values() {
            range = Some(range.map_or((end, end), |(a, b)| (a.min(end), b.max(end))));
        }
    }
    Ok(range)
}

/// Write `batches` (window columns and `version`) to the new file `dir/name`, noting their
/// window-end range; `None` (and no file) when they hold no rows.
fn spill_file(
    dir: &Path,
    name: String,
    batches: &[RecordBatch],
) -> Result<Option<SpillFile>, WindowError> {
    let Some((first_end, last_end)) = end_range(batches)? else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).map_err(|e| spill_error(dir, e))?;
    let path = dir.join(name);
    write_ipc(&path, batches)?;
    Ok(Some(SpillFile {
        path,
        first_end,
        last_end,
    }))
}

/// A spill file's error; an I/O one keeps its kind (a full disk may get room again).
fn spill_error(path: &Path, e: impl Into<ArrowError>) -> WindowError {
    match e.into() {
        ArrowError::IoError(_, source) => WindowError::SpillIo {
            path: path.to_path_buf(),
            source,
        },
        e => WindowError::Spill(format!("{}: {e}", path.display())),
    }
}

/// The keys of window rows, with `id` naming symbols and venues (`None`: a name no key has).
fn window_keys(
    batch: &RecordBatch,
    mut id: impl FnMut(&str) -> Option<u32>,
) -> Result<Vec<Option<Key>>, WindowError> {
    let columns = KeyColumns::of(batch)?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let (start, end, symbol, venue) = columns.key(i);
            Some((start, end, id(symbol)?, id(venue)?))
        })
        .collect())
}

/// The key columns of window rows: start, end, symbol, venue.
struct KeyColumns<'a> {
    starts: &'a TimestampMicrosecondArray,
    ends: &'a TimestampMicrosecondArray,
    symbols: StringArray,
    venues: StringArray,
}

impl<'a> KeyColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<KeyColumns<'a>, WindowError> {
        Ok(KeyColumns {
            starts: timestamps(batch, "window_start")?,
            ends: timestamps(batch, "window_end")?,
            symbols: strings(batch, "symbol")?.as_string::<i32>().clone(),
            venues: strings(batch, "venue")?.as_string::<i32>().clone(),
        })
    }

    fn key(&self, row: usize) -> (i64, i64, &str, &str) {
        (
            self.starts.value(row),
            self.ends.value(row),
            self.symbols.value(row),
            self.venues.value(row),
        )
    }
}

/// Which rows of `rows` have a key (window, symbol, venue) that a row of `other` has. (A live
/// stream asks this of every open window at every flush: `ahash` over the borrowed names, no
/// copies; SipHash and owned names were a tenth of such a stream's CPU.)
fn shares_key(rows: &RecordBatch, others: &[&RecordBatch]) -> Result<BooleanArray, WindowError> {
    let columns = others
        .iter()
        .map(|other| KeyColumns::of(other))
        .collect::<Result<Vec<_>, _>>()?;
    let theirs: HashSet<_, ahash::RandomState> = columns
        .iter()
        .zip(others)
        .flat_map(|(theirs, other)| (0..other.num_rows()).map(|i| theirs.key(i)))
        .collect();
    let mine = KeyColumns::of(rows)?;
    Ok((0..rows.num_rows())
        .map(|i| Some(theirs.contains(&mine.key(i))))
        .collect())
}

/// The rows of `rows` whose key (window, symbol, venue) no row of `others` has.
pub(crate) fn without_keys_of(
    rows: &RecordBatch,
    others: &[&RecordBatch],
) -> Result<RecordBatch, WindowError> {
    if rows.num_rows() == 0 || others.iter().all(|other| other.num_rows() == 0) {
        return Ok(rows.clone());
    }
    let schema_error = |e: ArrowError| WindowError::Schema(e.to_string());
    let kept = arrow::compute::not(&shares_key(rows, others)?).map_err(schema_error)?;
    filter_record_batch(rows, &kept).map_err(schema_error)
}

/// Window rows in key order: window start, symbol, venue (as the merge query gives them).
fn sorted_by_key(rows: &RecordBatch) -> Result<RecordBatch, WindowError> {
    if rows.num_rows() < 2 {
        return Ok(rows.clone());
    }
    let schema_error = |e: ArrowError| WindowError::Schema(e.to_string());
    let column = |name: &str| {
        rows.column_by_name(name)
            .cloned()
            .ok_or_else(|| WindowError::Schema(format!("no column {name}")))
    };
    let keys = ["window_start", "symbol", "venue"]
        .into_iter()
        .map(|name| {
            Ok(arrow::compute::SortColumn {
                values: column(name)?,
                options: None,
            })
        })
        .collect::<Result<Vec<_>, WindowError>>()?;
    let order = arrow::compute::lexsort_to_indices(&keys, None).map_err(schema_error)?;
    arrow::compute::take_record_batch(rows, &order).map_err(schema_error)
}

/// `rows` with a `version` column added.
fn with_versions(rows: &RecordBatch, versions: Vec<i64>) -> Result<RecordBatch, WindowError> {
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("version", DataType::Int64, false));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(versions)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| WindowError::Schema(e.to_string()))
}

impl Emitted {
    fn keys(&mut self, batch: &RecordBatch) -> Result<Vec<Key>, WindowError> {
        let names = &mut self.names;
        let keys = window_keys(batch, |name| {
            if let Some(&id) = names.get(name) {
                return Some(id);
            }
            let id = names.len() as u32;
            names.insert(name.to_string(), id);
            Some(id)
        })?;
        Ok(keys.into_iter().flatten().collect())
    }

    fn version(&self, key: &Key) -> Option<i64> {
        self.index.get(key).map(|s| s.version)
    }

    /// Keep `rows` as the latest versions of their keys.
    fn record(&mut self, rows: &RecordBatch, keys: &[Key], versions: &[i64]) {
        let chunk = self.next_chunk;
        self.next_chunk = self.next_chunk.wrapping_add(1);
        self.chunks.insert(chunk, rows.clone());
        self.memory_rows += rows.num_rows();
        for (row, (key, &version)) in keys.iter().zip(versions).enumerate() {
            // Emitted now: if it leaves memory, the lookup must look for it again.
            if !self.absent.is_empty() {
                self.absent.remove(key);
            }
            let row = row as u32;
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

    /// Rows kept in memory before spilling.
    fn limit(&self) -> usize {
        if self.spill_at_rows == 0 {
            SPILL_AT_ROWS
        } else {
            self.spill_at_rows
        }
    }

    /// Spill once the rows in memory pass the limit.
    fn spill_if_full(&mut self) -> Result<(), WindowError> {
        if self.memory_rows > self.limit() {
            self.spill()?;
        }
        Ok(())
    }

    /// Move every in-memory batch but the newest to one new IPC file: the rows that are still
    /// their key's latest version, with it. Their keys leave the index.
    fn spill(&mut self) -> Result<(), WindowError> {
        let Some(dir) = self.spill_dir.clone() else {
            return Ok(());
        };
        let newest = self.next_chunk.wrapping_sub(1);
        let mut victims: Vec<u32> = self
            .chunks
            .keys()
            .copied()
            .filter(|&c| c != newest)
            .collect();
        if victims.is_empty() {
            return Ok(());
        }
        victims.sort_unstable();
        // chunk -> (row, version) of its rows that are still their key's latest.
        let mut current: HashMap<u32, Vec<(u32, i64)>> = HashMap::new();
        for slot in self.index.values().filter(|slot| slot.chunk != newest) {
            current
                .entry(slot.chunk)
                .or_default()
                .push((slot.row, slot.version));
        }
        let mut batches = Vec::new();
        for chunk in &victims {
            let (Some(rows), Some(latest)) = (self.chunks.get(chunk), current.get_mut(chunk))
            else {
                continue;
            };
            latest.sort_unstable();
            let taken = arrow::compute::take_record_batch(
                rows,
                &UInt32Array::from_iter_values(latest.iter().map(|(row, _)| *row)),
            )
            .map_err(|e| WindowError::Schema(e.to_string()))?;
            batches.push((
                *chunk,
                with_versions(&taken, latest.iter().map(|(_, version)| *version).collect())?,
            ));
        }
        // Those committed to the lake are looked up there; the others go to a spill file.
        let (in_lake, pending): (Vec<_>, Vec<_>) = batches
            .into_iter()
            .partition(|(chunk, _)| self.history.is_some() && self.durable.contains(chunk));
        let in_lake: Vec<RecordBatch> = in_lake.into_iter().map(|(_, rows)| rows).collect();
        if let Some((_, last)) = end_range(&in_lake)? {
            self.history_until = Some(self.history_until.map_or(last, |u| u.max(last)));
        }
        let pending: Vec<RecordBatch> = pending.into_iter().map(|(_, rows)| rows).collect();
        let name = format!("emitted-{:05}.arrow", self.spill_files.len());
        if let Some(file) = spill_file(&dir, name, &pending)? {
            self.spilled_until = Some(
                self.spilled_until
                    .map_or(file.last_end, |u| u.max(file.last_end)),
            );
            self.spill_files.push(file);
        }
        for chunk in victims {
            self.durable.remove(&chunk);
            if let Some(rows) = self.chunks.remove(&chunk) {
                self.memory_rows -= rows.num_rows();
            }
        }
        self.index.retain(|_, slot| slot.chunk == newest);
        Ok(())
    }

    /// Bring back into memory the latest emitted rows of those `keys` that are not in memory:
    /// the highest version of this run's spill files (newest first: a key's first match is
    /// the latest a file holds) and the lake (earlier runs' windows and this run's committed
    /// ones that left memory; every version stored), as rows of `row_schema`.
    async fn fault_in(&mut self, keys: &[Key], row_schema: &SchemaRef) -> Result<(), WindowError> {
        let before = |end: i64, until: Option<i64>| until.is_some_and(|u| end <= u);
        let mut wanted: HashSet<Key> = keys
            .iter()
            .filter(|k| before(k.1, self.spilled_until) || before(k.1, self.history_until))
            .filter(|k| !self.index.contains_key(k) && !self.absent.contains(k))
            .copied()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        // The lake is asked even about a key found in a spill file: a newer version of it may
        // have left memory for the lake since (committed after that file was written).
        let in_lake: HashSet<Key> = wanted
            .iter()
            .filter(|k| before(k.1, self.history_until))
            .copied()
            .collect();
        let mut found: HashMap<Key, (i64, RecordBatch)> = HashMap::new();
        for file in self.spill_files.iter().rev() {
            if wanted.is_empty() {
                break;
            }
            for (key, version, row) in self.matches(file, &wanted)? {
                wanted.remove(&key);
                found.insert(key, (version, row));
            }
        }
        if let (Some(lookup), false) = (self.history.clone(), in_lake.is_empty()) {
            let rows = lookup(self.history_query(&in_lake)).await?;
            let rows = rows.iter().map(|batch| {
                let versions = batch
                    .column_by_name("version")
                    .and_then(|c| cast(c, &DataType::Int64).ok())
                    .ok_or_else(|| WindowError::Schema("windows rows lack version".into()))?;
                let versions = versions.as_primitive::<arrow::datatypes::Int64Type>();
                with_versions(&conform(batch, row_schema)?, versions.values().to_vec())
            });
            for (key, version, row) in self.matches_in(rows, &in_lake)? {
                if found.get(&key).is_none_or(|(v, _)| *v < version) {
                    found.insert(key, (version, row));
                }
            }
            self.absent
                .extend(in_lake.into_iter().filter(|k| !found.contains_key(k)));
        }
        let (found_keys, parts): (Vec<Key>, Vec<RecordBatch>) =
            found.into_iter().map(|(key, (_, row))| (key, row)).unzip();
        let Some(schema) = parts.first().map(RecordBatch::schema) else {
            return Ok(());
        };
        let all =
            concat_batches(&schema, &parts).map_err(|e| WindowError::Schema(e.to_string()))?;
        let last = all.num_columns() - 1;
        let versions = all
            .column(last)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let versions = versions.values().to_vec();
        let rows = all
            .project(&(0..last).collect::<Vec<_>>())
            .map_err(|e| WindowError::Schema(e.to_string()))?;
        self.record(&rows, &found_keys, &versions);
        Ok(())
    }

    /// The lookup of the windows of earlier runs with these keys.
    fn history_query(&self, keys: &HashSet<Key>) -> HistoryQuery {
        let first_end = keys.iter().map(|k| k.1).min().unwrap_or_default();
        let last_end = keys.iter().map(|k| k.1).max().unwrap_or_default();
        let ids: HashSet<u32> = keys.iter().map(|k| k.2).collect();
        let mut symbols: Vec<String> = self
            .names
            .iter()
            .filter(|(_, id)| ids.contains(id))
            .map(|(name, _)| name.clone())
            .collect();
        symbols.sort_unstable();
        HistoryQuery {
            first_end,
            last_end,
            symbols,
        }
    }

    /// The rows of `file` whose keys are `wanted`: key, version and the row.
    fn matches(
        &self,
        file: &SpillFile,
        wanted: &HashSet<Key>,
    ) -> Result<Vec<(Key, i64, RecordBatch)>, WindowError> {
        if !wanted
            .iter()
            .any(|k| file.first_end <= k.1 && k.1 <= file.last_end)
        {
            return Ok(Vec::new());
        }
        let path = &file.path;
        let reader = std::fs::File::open(path).map_err(|e| spill_error(path, e))?;
        let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(reader), None)
            .map_err(|e| spill_error(path, e))?;
        self.matches_in(reader.map(|b| b.map_err(|e| spill_error(path, e))), wanted)
    }

    /// [`Emitted::matches`] over batches of the window columns and `version`.
    fn matches_in(
        &self,
        batches: impl Iterator<Item = Result<RecordBatch, WindowError>>,
        wanted: &HashSet<Key>,
    ) -> Result<Vec<(Key, i64, RecordBatch)>, WindowError> {
        let mut out = Vec::new();
        for batch in batches {
            let batch = batch?;
            let keys = window_keys(&batch, |name| self.names.get(name).copied())?;
            let versions = batch
                .column(batch.num_columns() - 1)
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
                .ok_or_else(|| WindowError::Spill("emitted rows without versions".into()))?;
            for (row, key) in keys.into_iter().enumerate() {
                if let Some(key) = key.filter(|k| wanted.contains(k)) {
                    out.push((key, versions.value(row), batch.slice(row, 1)));
                }
            }
        }
        Ok(out)
    }

    /// The latest emitted rows of `keys` (all of which must be in memory).
    fn rows(&self, keys: &[Key]) -> Result<RecordBatch, WindowError> {
        let mut loaded: Vec<&RecordBatch> = Vec::new();
        let mut position_of: HashMap<u32, usize> = HashMap::new();
        let mut positions = Vec::with_capacity(keys.len());
        for slot in keys.iter().filter_map(|k| self.index.get(k)) {
            let at = match position_of.get(&slot.chunk) {
                Some(&at) => at,
                None => {
                    let rows = self.chunks.get(&slot.chunk).ok_or_else(|| {
                        WindowError::Spill(format!("emitted rows {} not in memory", slot.chunk))
                    })?;
                    loaded.push(rows);
                    position_of.insert(slot.chunk, loaded.len() - 1);
                    loaded.len() - 1
                }
            };
            positions.push((at, slot.row as usize));
        }
        arrow::compute::interleave_record_batch(&loaded, &positions)
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

impl WindowStats {
    /// Count `other`'s in too (the runs of a pipeline started again).
    pub fn add(&mut self, other: &WindowStats) {
        self.late_trades += other.late_trades;
        self.rows_emitted += other.rows_emitted;
        self.corrections += other.corrections;
    }
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
    spec: WindowSpec,
    /// The aggregate over a micro-batch of trades, and the merge of partial rows: planned once.
    aggregate: Prepared,
    merge: Prepared,
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
    Ok(nullable(
        prepare_aggregate(&pipeline_context(), spec).await?.schema(),
    ))
}

async fn prepare_aggregate(
    ctx: &SessionContext,
    spec: &WindowSpec,
) -> Result<Prepared, WindowError> {
    let sql = spec.render(AGGREGATE_SQL);
    Prepared::new(ctx, "window_aggregate", "trades", trades_schema(), &sql).await
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

impl WindowOperator {
    /// `spill_dir`: where the state of emitted windows goes once it outgrows memory (without
    /// one, it all stays in memory).
    pub async fn new(
        spec: WindowSpec,
        reemit_late: bool,
        spill_dir: Option<PathBuf>,
    ) -> Result<WindowOperator, WindowError> {
        spec.check()?;
        let ctx = pipeline_context();
        let aggregate = prepare_aggregate(&ctx, &spec).await?;
        let row_schema = nullable(aggregate.schema());
        let merge = Prepared::new(
            &ctx,
            "window_merge",
            "window_rows",
            row_schema.clone(),
            MERGE_SQL,
        )
        .await?;
        Ok(WindowOperator {
            spec,
            aggregate,
            merge,
            output_schema: output_schema(&row_schema),
            row_schema,
            open: None,
            emitted: Emitted {
                spill_dir,
                ..Emitted::default()
            },
            watermark: None,
            reemit_late,
            stats: WindowStats::default(),
        })
    }

    /// Keep up to `rows` emitted window rows in memory (with a spill folder) before the oldest
    /// go to disk; [`SPILL_AT_ROWS`] unless set.
    pub fn with_memory_rows(mut self, rows: usize) -> WindowOperator {
        self.emitted.spill_at_rows = rows.max(1);
        self
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Nothing pushed, preloaded or emitted yet: as [`WindowOperator::new`] made it.
    pub fn is_pristine(&self) -> bool {
        self.open.is_none()
            && self.watermark.is_none()
            && self.stats == WindowStats::default()
            && self.emitted.is_empty()
    }

    /// Every window emitted so far is committed to the lake (call right after a commit that
    /// holds them all): once they leave memory they are looked up there, not written to a
    /// spill file, so a long run's state folder does not grow with what it emitted. Needs the
    /// lake's lookup ([`WindowOperator::remember_history`]).
    pub fn committed(&mut self) {
        if !self.emitted.durability_lost {
            let chunks: Vec<u32> = self.emitted.chunks.keys().copied().collect();
            self.emitted.durable.extend(chunks);
        }
    }

    /// An uncommitted run whose windows this operator emitted was dropped: from now on
    /// [`WindowOperator::committed`] marks nothing (the operator is to be rebuilt).
    pub fn uncommitted_dropped(&mut self) {
        if !self.emitted.chunks.is_empty() {
            self.emitted.durability_lost = true;
        }
    }

    /// Windows already in the lake, the latest ending at `until` (`None`: there are none), so
    /// that new trades for them produce a merged next version instead of a second row for the
    /// same key. They stay where they are: `lookup` finds those of a key this run has not
    /// emitted, when one could be among them (a correction of an older window, or a window
    /// closing by `until` just after a start).
    pub fn remember_history(&mut self, until: Option<i64>, lookup: HistoryLookup) {
        self.emitted.history_until = until;
        self.emitted.history = Some(lookup);
        self.emitted.absent.clear();
    }

    /// Trades replayed from the lake after a restart or rebalance into the open windows,
    /// closing nothing. Of the windows a trade falls in, those ending at or before its key's
    /// entry in `emitted_to` (the end of the key's last emitted window) were emitted already
    /// and are left alone; the rest are the windows still open. With hopping windows a replay
    /// must start `size - slide` before that end to give them all their trades.
    pub async fn push_open(
        &mut self,
        trades: &RecordBatch,
        emitted_to: &HashMap<(String, String), i64>,
    ) -> Result<(), WindowError> {
        if trades.num_rows() == 0 {
            return Ok(());
        }
        let partial = self.aggregate(std::slice::from_ref(trades)).await?;
        let ends = timestamps(&partial, "window_end")?;
        let (symbols, venues) = (strings(&partial, "symbol")?, strings(&partial, "venue")?);
        let (symbols, venues) = (symbols.as_string::<i32>(), venues.as_string::<i32>());
        let open: BooleanArray = (0..partial.num_rows())
            .map(|row| {
                let key = (
                    symbols.value(row).to_string(),
                    venues.value(row).to_string(),
                );
                Some(
                    emitted_to
                        .get(&key)
                        .is_none_or(|&done| ends.value(row) > done),
                )
            })
            .collect();
        let fresh =
            filter_record_batch(&partial, &open).map_err(|e| WindowError::Schema(e.to_string()))?;
        self.open = Some(self.merged_into_open(fresh).await?);
        Ok(())
    }

    /// The open windows with `fresh` window rows merged in. Only the open rows whose key
    /// (window, symbol, venue) `fresh` has go through the merge query with it; the others are
    /// kept as they are. Merging every open window at every push made a live stream's CPU grow
    /// with the open windows rather than with its trades: at 2,000 trades/s over 400 symbols,
    /// each 250 ms flush merged some 14,000 open rows for 500 trades.
    async fn merged_into_open(&mut self, fresh: RecordBatch) -> Result<RecordBatch, WindowError> {
        let Some(open) = self.open.take().filter(|open| open.num_rows() > 0) else {
            return self.merge(&[fresh]).await;
        };
        let (touched, untouched) = split(&open, &shares_key(&open, &[&fresh])?)?;
        let merged = self.merge(&[touched, fresh]).await?;
        concat_batches(&self.row_schema, [&untouched, &merged])
            .map_err(|e| WindowError::Schema(e.to_string()))
    }

    async fn aggregate(&self, trades: &[RecordBatch]) -> Result<RecordBatch, WindowError> {
        let rows = self.aggregate.run(trades).await?;
        conform(&rows, &self.row_schema)
    }

    async fn merge(&self, parts: &[RecordBatch]) -> Result<RecordBatch, WindowError> {
        let rows = self.merge.run(parts).await?;
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
    /// corrections), and the late trades. The watermark follows the batch's newest trade.
    pub async fn push(&mut self, trades: &RecordBatch) -> Result<Pushed, WindowError> {
        if trades.num_rows() == 0 {
            return Ok(Pushed::default());
        }
        let ts = timestamps(trades, "timestamp")?;
        let max_ts = ts.values().iter().copied().max().unwrap_or(i64::MIN);
        let watermark = max_ts.saturating_sub(self.spec.lateness);
        self.push_until(trades, Some(watermark)).await
    }

    /// The event time windows are final up to (`None` before any trade).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Feed trades (possibly none) with a watermark the caller decides, `None` to leave it:
    /// the Kafka ingest passes the minimum over its partitions. The watermark never goes back.
    pub async fn push_until(
        &mut self,
        trades: &RecordBatch,
        watermark: Option<i64>,
    ) -> Result<Pushed, WindowError> {
        self.push_all_until(std::slice::from_ref(trades), watermark)
            .await
    }

    /// [`push_until`](Self::push_until) for trades in several batches, taken as one (none is
    /// copied into another: the Kafka ingest's decode threads each give a batch).
    pub async fn push_all_until(
        &mut self,
        trades: &[RecordBatch],
        watermark: Option<i64>,
    ) -> Result<Pushed, WindowError> {
        let old_wm = self.watermark;
        let new_wm = match (old_wm, watermark) {
            (Some(old), Some(new)) => Some(old.max(new)),
            (old, new) => old.or(new),
        };
        let rows: usize = trades.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 && new_wm == old_wm {
            return Ok(Pushed::default());
        }
        let mut out = Pushed::default();
        if let Some(wm) = old_wm.filter(|_| rows > 0) {
            let mut late = Vec::new();
            for batch in trades {
                let late_mask: BooleanArray = timestamps(batch, "timestamp")?
                    .values()
                    .iter()
                    .map(|&t| Some(self.spec.earliest_end(t) <= wm))
                    .collect();
                if late_mask.true_count() > 0 {
                    late.push(
                        filter_record_batch(batch, &late_mask)
                            .map_err(|e| WindowError::Schema(e.to_string()))?,
                    );
                }
            }
            if let Some(first) = late.first() {
                let late = concat_batches(&first.schema(), &late)
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
        let (corrections, open) = if rows > 0 {
            let partial = self.aggregate(trades).await?;
            let (corrections, fresh) = split(&partial, &Self::ends_mask(&partial, old_wm)?)?;
            (corrections, self.merged_into_open(fresh).await?)
        } else {
            let none = RecordBatch::new_empty(self.row_schema.clone());
            (none.clone(), self.open.take().unwrap_or(none))
        };
        self.watermark = new_wm;
        let (closed, still_open) = split(&open, &Self::ends_mask(&open, new_wm)?)?;
        // The open rows are in no order (merged ones follow the rest): windows close in order.
        let closed = sorted_by_key(&closed)?;
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
        self.emitted.fault_in(&row_keys, &self.row_schema).await?;
        let known: BooleanArray = row_keys
            .iter()
            .map(|k| Some(self.emitted.version(k).is_some()))
            .collect();
        let (again, first) = split(&rows, &known)?;
        // Keys follow the rows: `first` keeps the unknown keys in order, then the merged rows.
        let (again_keys, mut result_keys): (Vec<Key>, Vec<Key>) = row_keys
            .into_iter()
            .partition(|k| self.emitted.version(k).is_some());
        let mut versions: Vec<i64> = vec![1; first.num_rows()];
        let mut batches = vec![first];
        if again.num_rows() > 0 {
            let previous = self.emitted.rows(&again_keys)?;
            let merged = self.merge(&[again, previous]).await?;
            for key in self.emitted.keys(&merged)? {
                versions.push(self.emitted.version(&key).map_or(1, |v| v + 1));
                result_keys.push(key);
            }
            self.stats.corrections += merged.num_rows() as u64;
            batches.push(merged);
        }
        let result = concat_batches(&self.row_schema, &batches)
            .map_err(|e| WindowError::Schema(e.to_string()))?;
        self.emitted.record(&result, &result_keys, &versions);
        self.emitted.spill_if_full()?;
        self.stats.rows_emitted += result.num_rows() as u64;
        let mut columns = result.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(vec![true; result.num_rows()])));
        columns.push(Arc::new(Int64Array::from(versions)));
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map(Some)
            .map_err(|e| WindowError::Schema(e.to_string()))
    }

    /// The open windows as rows with `is_final = false` (for live views).
    pub async fn open_windows(&mut self) -> Result<Option<RecordBatch>, WindowError> {
        let Some(open) = self.open.clone() else {
            return Ok(None);
        };
        let keys = self.emitted.keys(&open)?;
        self.emitted.fault_in(&keys, &self.row_schema).await?;
        let versions: Vec<i64> = keys
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

    /// Tumbling windows get no lag join and no filter; hopping ones both, every placeholder
    /// filled.
    #[test]
    fn render_fills_every_placeholder_and_filters_only_hopping_windows() {
        // The query without its comments (which name the placeholders and both renderings).
        let sql: String = AGGREGATE_SQL
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .map(|line| format!("{line}\n"))
            .collect();
        let tumbling = WindowSpec::default().render(&sql);
        assert!(!tumbling.contains("{{"), "{tumbling}");
        assert!(tumbling.contains("WHERE TRUE"), "{tumbling}");
        assert!(!tumbling.contains("CROSS JOIN"), "{tumbling}");
        let hopping = WindowSpec {
            size: 300_000_000,
            slide: 60_000_000,
            lateness: 0,
        }
        .render(&sql);
        assert!(!hopping.contains("{{"), "{hopping}");
        assert!(
            hopping.contains(
                "WHERE \"timestamp\" < window_start + arrow_cast(300000000, 'Duration(Microsecond)')"
            ),
            "{hopping}"
        );
        assert!(hopping.contains("CROSS JOIN (VALUES"), "{hopping}");
    }

    fn trades(rows: &[(&str, &str, f64, i64)]) -> RecordBatch {
        use crate::model::{SourcePos, Trade, TradeBuilder};
        let mut builder = TradeBuilder::new(Arc::new(crate::venue::Registry::embedded()));
        for (ts, venue, price, quantity) in rows {
            let timestamp = crate::time::parse_timestamp(ts).unwrap();
            let trade = Trade::bare(timestamp, "S", *price, *quantity, venue);
            builder.append(&trade, &SourcePos::default());
        }
        builder.finish()
    }

    fn column_i64(batch: &RecordBatch, name: &str) -> Vec<i64> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    }

    #[tokio::test]
    async fn window_closes_on_watermark_and_emits_last_window_on_end_of_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut op =
            WindowOperator::new(WindowSpec::default(), true, Some(dir.path().to_path_buf()))
                .await
                .unwrap();
        let first = op
            .push(&trades(&[
                ("2024-01-02T10:00:01", "LIT", 10.0, 100),
                ("2024-01-02T10:04:00", "LIT", 11.0, 300),
            ]))
            .await
            .unwrap();
        assert!(first.windows.is_none(), "10:00-10:05 is still open");
        let open = op.open_windows().await.unwrap().unwrap();
        assert_eq!(open.num_rows(), 1);
        assert!(!open
            .column_by_name("is_final")
            .unwrap()
            .as_boolean()
            .value(0));
        // 10:05:06 moves the watermark (minus 5 s lateness) past 10:05: the first window is final.
        let second = op
            .push(&trades(&[("2024-01-02T10:05:06", "LIT", 12.0, 50)]))
            .await
            .unwrap();
        let closed = second.windows.unwrap();
        assert_eq!(column_i64(&closed, "num_trades"), vec![2]);
        assert_eq!(column_i64(&closed, "total_quantity"), vec![400]);
        assert_eq!(column_i64(&closed, "version"), vec![1]);
        // A trade for the final window is late: kept, and the window re-emitted as version 2.
        let late = op
            .push(&trades(&[("2024-01-02T10:01:00", "LIT", 10.0, 1)]))
            .await
            .unwrap();
        assert_eq!(late.late.unwrap().num_rows(), 1);
        let corrected = late.windows.unwrap();
        assert_eq!(column_i64(&corrected, "num_trades"), vec![3]);
        assert_eq!(column_i64(&corrected, "version"), vec![2]);
        // End of input flushes the last, still open window.
        let last = op.finish().await.unwrap().unwrap();
        assert_eq!(column_i64(&last, "num_trades"), vec![1]);
        assert_eq!(
            op.stats(),
            WindowStats {
                late_trades: 1,
                rows_emitted: 3,
                corrections: 1
            }
        );
    }

    /// Trades in several batches (the Kafka ingest's, one per decode thread) give what the
    /// same trades in one batch give: windows, late trades (from either batch) and stats.
    #[tokio::test]
    async fn trades_in_several_batches_give_what_one_batch_gives() {
        let start = trades(&[("2024-01-02T10:06:00", "LIT", 9.0, 5)]);
        let parts = [
            trades(&[
                ("2024-01-02T10:01:00", "LIT", 10.0, 100),
                ("2024-01-02T10:07:00", "DARK1", 11.0, 300),
            ]),
            trades(&[]),
            trades(&[
                ("2024-01-02T10:02:00", "DARK1", 12.0, 50),
                ("2024-01-02T10:16:00", "LIT", 13.0, 7),
            ]),
        ];
        let whole = concat_batches(&parts[0].schema(), &parts).unwrap();
        let mut outputs = Vec::new();
        for batches in [std::slice::from_ref(&whole), &parts[..]] {
            let mut op = WindowOperator::new(WindowSpec::default(), true, None)
                .await
                .unwrap();
            op.push(&start).await.unwrap();
            let watermark = Some(crate::time::parse_timestamp("2024-01-02T10:15:00").unwrap());
            let pushed = op.push_all_until(batches, watermark).await.unwrap();
            let last = op.finish().await.unwrap();
            outputs.push((pushed.windows, pushed.late, last, op.stats()));
        }
        let (one, several) = (&outputs[0], &outputs[1]);
        assert_eq!(one, several);
        assert_eq!(
            one.1.as_ref().map(RecordBatch::num_rows),
            Some(2),
            "two late"
        );
        // 10:05-10:10 for LIT and DARK1 closed, and 10:00-10:05 for each from the late trades.
        assert_eq!(one.0.as_ref().map(RecordBatch::num_rows), Some(4));
    }

    /// A push merges only the open windows its trades fall in and keeps the others as they
    /// are: the open and closed windows are those of the same trades in one push, and windows
    /// close in key order (window start, symbol, venue), whatever order the open ones are in.
    #[tokio::test]
    async fn a_push_merges_only_the_open_windows_it_touches() {
        let first = trades(&[
            ("2024-01-02T10:01:00", "LIT", 10.0, 100),
            ("2024-01-02T10:02:00", "DARK1", 11.0, 300),
            ("2024-01-02T10:06:00", "LIT", 9.0, 5),
        ]);
        // 10:00-10:05 LIT again, 10:05-10:10 DARK1 new; 10:00 DARK1 and 10:05 LIT untouched.
        let second = trades(&[
            ("2024-01-02T10:03:00", "LIT", 12.0, 100),
            ("2024-01-02T10:07:00", "DARK1", 13.0, 7),
        ]);
        let both = concat_batches(&first.schema(), [&first, &second]).unwrap();
        let mut outputs = Vec::new();
        for pushes in [vec![both], vec![first, second]] {
            let mut op = WindowOperator::new(WindowSpec::default(), true, None)
                .await
                .unwrap();
            for batch in &pushes {
                let pushed = op.push_until(batch, None).await.unwrap();
                assert_eq!(pushed.windows, None, "no watermark: nothing closes");
            }
            let open = sorted_by_key(&op.open_windows().await.unwrap().unwrap()).unwrap();
            let watermark = Some(crate::time::parse_timestamp("2024-01-02T10:30:00").unwrap());
            let closed = op.push_until(&trades(&[]), watermark).await.unwrap();
            outputs.push((open, closed.windows.unwrap()));
        }
        assert_eq!(outputs[0], outputs[1]);
        let closed = &outputs[1].1;
        let starts = timestamps(closed, "window_start").unwrap();
        let venues = strings(closed, "venue").unwrap();
        let keys: Vec<(i64, &str)> = (0..closed.num_rows())
            .map(|i| (starts.value(i), venues.as_string::<i32>().value(i)))
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(keys.is_sorted(), "closed in key order: {keys:?}");
        assert_eq!(
            column_i64(closed, "total_quantity"),
            [300, 200, 7, 5],
            "10:00 DARK1, LIT; 10:05 DARK1, LIT"
        );
    }

    #[tokio::test]
    async fn hopping_windows_count_a_trade_in_every_window_that_covers_it() {
        let input = trades(&[
            ("2024-01-02T10:03:30", "LIT", 10.0, 100),
            ("2024-01-02T10:05:10", "LIT", 12.0, 50),
        ]);
        // Every window the operator emits for `input`, then at end of input.
        async fn windows_of(spec: WindowSpec, input: &RecordBatch) -> Vec<RecordBatch> {
            let mut op = WindowOperator::new(spec, true, None).await.unwrap();
            let mut rows = Vec::new();
            rows.extend(op.push(input).await.unwrap().windows);
            rows.extend(op.finish().await.unwrap());
            rows
        }
        let spec = WindowSpec::parse("5m", Some("1m"), "0s").unwrap();
        let rows = windows_of(spec, &input).await;
        let all = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        let starts = all
            .column_by_name("window_start")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let mut got: Vec<(String, i64)> = (0..all.num_rows())
            .map(|i| {
                let mut text = String::new();
                crate::time::format_iso_micros(starts.value(i), &mut text);
                (text[11..16].to_string(), column_i64(&all, "num_trades")[i])
            })
            .collect();
        got.sort();
        let expected: Vec<(String, i64)> = [
            ("09:59", 1),
            ("10:00", 1),
            ("10:01", 2),
            ("10:02", 2),
            ("10:03", 2),
            ("10:04", 1),
            ("10:05", 1),
        ]
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
        // 10:03:30 is in the windows starting 09:59..10:03, 10:05:10 in those from 10:01..10:05.
        assert_eq!(got, expected);
        // And one window each when tumbling.
        let counts: Vec<i64> = windows_of(WindowSpec::default(), &input)
            .await
            .iter()
            .flat_map(|b| column_i64(b, "num_trades"))
            .collect();
        assert_eq!(counts, vec![1, 1]);
    }

    #[tokio::test]
    async fn emitted_windows_spill_to_disk_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut emitted = Emitted {
            spill_at_rows: 2,
            spill_dir: Some(dir.path().to_path_buf()),
            ..Emitted::default()
        };
        let mut op = WindowOperator::new(WindowSpec::default(), true, None)
            .await
            .unwrap();
        let mut all_keys = Vec::new();
        for minute in 0..6 {
            let ts = format!("2024-01-02T10:{:02}:00", minute * 5);
            op.push(&trades(&[(&ts, "LIT", 10.0 + minute as f64, 100 + minute)]))
                .await
                .unwrap();
            let rows = op.finish().await.unwrap().unwrap();
            let rows = conform(&rows, &op.row_schema).unwrap();
            let keys = emitted.keys(&rows).unwrap();
            emitted.record(&rows, &keys, &[minute]);
            emitted.spill_if_full().unwrap();
            all_keys.extend(keys);
        }
        assert!(
            !emitted.spill_files.is_empty(),
            "the oldest rows went to disk"
        );
        assert!(emitted.memory_rows <= 2);
        assert!(
            emitted.index.len() <= 2,
            "spilled keys left the index: {}",
            emitted.index.len()
        );
        assert_eq!(emitted.version(&all_keys[3]), None);
        // A key that was never emitted, in a spilled range, stays unknown.
        let (start, end, symbol, _) = all_keys[1];
        let never = (start, end, symbol, 999);
        let schema = op.row_schema.clone();
        emitted
            .fault_in(&[all_keys[3], never], &schema)
            .await
            .unwrap();
        assert_eq!(emitted.version(&all_keys[3]), Some(3));
        assert_eq!(emitted.version(&never), None);
        emitted.fault_in(&all_keys, &schema).await.unwrap();
        let back = emitted.rows(&all_keys).unwrap();
        assert_eq!(
            column_i64(&back, "total_quantity"),
            vec![100, 101, 102, 103, 104, 105]
        );
        let versions: Vec<_> = all_keys.iter().map(|k| emitted.version(k)).collect();
        assert_eq!(versions, (0..6).map(Some).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_late_trade_for_a_window_spilled_to_disk_corrects_its_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut op = WindowOperator::new(WindowSpec::default(), true, Some(dir.path().into()))
            .await
            .unwrap();
        op.emitted.spill_at_rows = 2;
        let mut emitted = Vec::new();
        // One trade per window: each push closes the window before it.
        for n in 0..12 {
            let ts = format!("2024-01-02T10:{:02}:00", n * 5 + 1);
            emitted.extend(
                op.push(&trades(&[(&ts, "LIT", 10.0, 100)]))
                    .await
                    .unwrap()
                    .windows,
            );
        }
        // A late trade for the first window, twice: versions 2 and 3, merged each time.
        for expected in [2, 3] {
            let late = op
                .push(&trades(&[("2024-01-02T10:01:00", "LIT", 10.0, 1)]))
                .await
                .unwrap();
            assert!(late.late.is_some());
            let rows = late.windows.expect("a correction");
            assert_eq!(column_i64(&rows, "version"), vec![expected]);
            assert_eq!(
                column_i64(&rows, "total_quantity"),
                vec![100 + expected - 1]
            );
            assert_eq!(column_i64(&rows, "num_trades"), vec![expected]);
        }
        assert!(!op.emitted.spill_files.is_empty(), "windows were spilled");
        assert!(
            op.emitted.index.len() <= 4,
            "the index holds what is in memory, not every window: {}",
            op.emitted.index.len()
        );
        let first: Vec<i64> = emitted
            .iter()
            .flat_map(|b| column_i64(b, "version"))
            .collect();
        assert_eq!(first, vec![1; 11], "every window closed once, as version 1");
    }

    #[tokio::test]
    async fn an_operator_is_pristine_until_it_is_fed_anything() {
        let fresh = || async {
            WindowOperator::new(WindowSpec::default(), true, None)
                .await
                .unwrap()
        };
        let mut op = fresh().await;
        assert!(op.is_pristine());
        let empty = RecordBatch::new_empty(trades_schema());
        op.push_until(&empty, None).await.unwrap();
        assert!(op.is_pristine(), "nothing to push changes nothing");
        op.push_until(&empty, Some(0)).await.unwrap();
        assert!(!op.is_pristine(), "a watermark");
        let mut op = fresh().await;
        op.push(&trades(&[("2024-01-02T10:00:01", "LIT", 10.0, 100)]))
            .await
            .unwrap();
        assert!(!op.is_pristine(), "an open window");
        let closed = op.finish().await.unwrap().unwrap();
        let mut op = fresh().await;
        let (lookup, _) = lookup_in(vec![closed]);
        op.remember_history(Some(0), lookup.clone());
        assert!(!op.is_pristine(), "windows in the lake");
        let mut op = fresh().await;
        op.remember_history(None, lookup);
        assert!(op.is_pristine(), "a lake without windows");
    }

    /// A lookup of windows of earlier runs over `rows`, as the lake's would answer it (every
    /// row whose window end is in the range asked for), and the queries it was asked.
    fn lookup_in(
        rows: Vec<RecordBatch>,
    ) -> (HistoryLookup, Arc<std::sync::Mutex<Vec<HistoryQuery>>>) {
        lookup_over(Arc::new(std::sync::Mutex::new(rows)))
    }

    /// [`lookup_in`] rows that may grow (a lake being committed to).
    fn lookup_over(
        rows: Arc<std::sync::Mutex<Vec<RecordBatch>>>,
    ) -> (HistoryLookup, Arc<std::sync::Mutex<Vec<HistoryQuery>>>) {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = asked.clone();
        let lookup: HistoryLookup = Arc::new(move |query: HistoryQuery| {
            let answer: Vec<RecordBatch> = rows
                .lock()
                .unwrap()
                .iter()
                .map(|batch| {
                    let ends = timestamps(batch, "window_end").unwrap();
                    let keep: BooleanArray = ends
                        .values()
                        .iter()
                        .map(|e| Some(query.first_end <= *e && *e <= query.last_end))
                        .collect();
                    filter_record_batch(batch, &keep).unwrap()
                })
                .collect();
            log.lock().unwrap().push(query);
            Box::pin(async move { Ok(answer) })
        });
        (lookup, asked)
    }

    #[tokio::test]
    async fn windows_of_earlier_runs_are_looked_up_and_the_highest_version_is_continued() {
        // An earlier run: twelve windows, the first corrected once (version 2).
        let mut earlier = WindowOperator::new(WindowSpec::default(), true, None)
            .await
            .unwrap();
        let mut history = Vec::new();
        for n in 0..12 {
            let ts = format!("2024-01-02T10:{:02}:00", n * 5 + 1);
            let pushed = earlier.push(&trades(&[(&ts, "LIT", 10.0, 100)])).await;
            history.extend(pushed.unwrap().windows);
        }
        let late = trades(&[("2024-01-02T10:02:00", "LIT", 10.0, 7)]);
        history.extend(earlier.push(&late).await.unwrap().windows);
        history.extend(earlier.finish().await.unwrap());
        let versions: Vec<i64> = history
            .iter()
            .flat_map(|b| column_i64(b, "version"))
            .collect();
        assert_eq!(versions.iter().filter(|v| **v == 2).count(), 1);
        // A new run finds them where they are, stored a row at a time in either order.
        let rows: Vec<RecordBatch> = history
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(|row| b.slice(row, 1)))
            .collect();
        let until = history
            .iter()
            .flat_map(|b| timestamps(b, "window_end").unwrap().values().to_vec())
            .max();
        for newest_first in [false, true] {
            let mut op = WindowOperator::new(WindowSpec::default(), true, None)
                .await
                .unwrap();
            let mut stored = rows.clone();
            if newest_first {
                stored.reverse();
            }
            let (lookup, asked) = lookup_in(stored);
            op.remember_history(until, lookup);
            assert!(op.emitted.index.is_empty(), "nothing read into memory");
            // A trade for the corrected window: version 3, merged with version 2 (2 trades).
            op.push(&trades(&[("2024-01-02T10:03:00", "LIT", 10.0, 1)]))
                .await
                .unwrap();
            let out = op.finish().await.unwrap().unwrap();
            assert_eq!(
                column_i64(&out, "version"),
                vec![3],
                "newest first: {newest_first}"
            );
            assert_eq!(column_i64(&out, "num_trades"), vec![3]);
            assert_eq!(column_i64(&out, "total_quantity"), vec![108]);
            let first = asked.lock().unwrap()[0].clone();
            let end = crate::time::parse_timestamp("2024-01-02T10:05:00").unwrap();
            assert_eq!(
                first,
                HistoryQuery {
                    first_end: end,
                    last_end: end,
                    symbols: vec!["S".into()],
                },
                "the window's key only"
            );
            // A window the earlier run never had starts at version 1, the lake asked once
            // about it: its open view and its closing remember that it is not there.
            op.push(&trades(&[("2024-01-02T10:51:00", "DARK1", 10.0, 1)]))
                .await
                .unwrap();
            op.open_windows().await.unwrap();
            op.open_windows().await.unwrap();
            let out = op.finish().await.unwrap().unwrap();
            assert_eq!(column_i64(&out, "version"), vec![1]);
            assert_eq!(
                asked.lock().unwrap().len(),
                2,
                "{:?}",
                asked.lock().unwrap()
            );
            // After the latest of them, the lake is not asked.
            op.push(&trades(&[("2024-01-03T10:03:00", "LIT", 10.0, 1)]))
                .await
                .unwrap();
            let out = op.finish().await.unwrap().unwrap();
            assert_eq!(column_i64(&out, "version"), vec![1]);
            assert_eq!(asked.lock().unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn spilling_emitted_windows_changes_no_output() {
        // The same trades, in the same micro-batches, through an operator that keeps every
        // emitted window in memory, one that spills past 3 rows, and one that also commits its
        // windows to a lake every fifth push (those leave memory for the lake, not a file):
        // the same rows, versions included. About one trade in eight is late, for a window up
        // to two hours back.
        let dir = tempfile::tempdir().unwrap();
        let lake = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (lookup, asked) = lookup_over(lake.clone());
        let mut committing =
            WindowOperator::new(WindowSpec::default(), true, Some(dir.path().join("c")))
                .await
                .unwrap();
        committing.emitted.spill_at_rows = 3;
        committing.remember_history(None, lookup);
        let mut kept = WindowOperator::new(WindowSpec::default(), true, None)
            .await
            .unwrap();
        let mut spilled = WindowOperator::new(WindowSpec::default(), true, Some(dir.path().into()))
            .await
            .unwrap();
        spilled.emitted.spill_at_rows = 3;
        let venues = ["LIT", "DARK1", "XNYS", "DARK2"];
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let (mut out_kept, mut out_spilled, mut out_committing) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut minute, mut uncommitted) = (0u64, Vec::new());
        for push in 0..60 {
            let mut batch = Vec::new();
            for _ in 0..7 {
                minute += next(3);
                let at = if next(8) == 0 {
                    minute.saturating_sub(5 + next(120))
                } else {
                    minute
                };
                let ts = format!("2024-01-02T{:02}:{:02}:00", 9 + at / 60, at % 60);
                let venue = venues[next(4) as usize];
                batch.push((ts, venue, 10.0 + next(100) as f64, 1 + next(500) as i64));
            }
            let rows: Vec<(&str, &str, f64, i64)> = batch
                .iter()
                .map(|(ts, venue, price, quantity)| (ts.as_str(), *venue, *price, *quantity))
                .collect();
            let trades = trades(&rows);
            out_kept.extend(kept.push(&trades).await.unwrap().windows);
            out_spilled.extend(spilled.push(&trades).await.unwrap().windows);
            let emitted = committing.push(&trades).await.unwrap().windows;
            out_committing.extend(emitted.clone());
            uncommitted.extend(emitted);
            if push % 5 == 4 {
                lake.lock().unwrap().append(&mut uncommitted);
                committing.committed();
            }
        }
        out_kept.extend(kept.finish().await.unwrap());
        out_spilled.extend(spilled.finish().await.unwrap());
        out_committing.extend(committing.finish().await.unwrap());
        let schema = kept.output_schema.clone();
        let out_kept = concat_batches(&schema, &out_kept).unwrap();
        let out_spilled = concat_batches(&schema, &out_spilled).unwrap();
        assert!(kept.stats().corrections > 10, "{:?}", kept.stats());
        assert!(
            spilled.emitted.spill_files.len() > 10,
            "windows were spilled"
        );
        assert!(kept.emitted.index.len() > 100);
        assert!(spilled.emitted.index.len() < 30);
        assert_eq!(out_spilled, out_kept);
        let out_committing = concat_batches(&schema, &out_committing).unwrap();
        assert_eq!(out_committing, out_kept);
        let files = |op: &WindowOperator| op.emitted.spill_files.len();
        assert!(
            files(&committing) < files(&spilled),
            "committed windows left memory for the lake: {} spill files, {} without commits",
            files(&committing),
            files(&spilled)
        );
        assert!(
            !asked.lock().unwrap().is_empty(),
            "corrections asked the lake"
        );
    }

    /// A window spilled before its run was committed, then corrected, committed and dropped
    /// from memory: its spill file holds an older version than the lake. The next correction
    /// continues the lake's (version 3, all three trades), not the spill file's.
    #[tokio::test]
    async fn a_correction_continues_the_lakes_version_over_an_older_spilled_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut op = WindowOperator::new(WindowSpec::default(), true, Some(dir.path().into()))
            .await
            .unwrap();
        op.emitted.spill_at_rows = 1;
        let lake = Arc::new(std::sync::Mutex::new(Vec::new()));
        op.remember_history(None, lookup_over(lake.clone()).0);
        let mut out = Vec::new();
        for at in [
            "2024-01-02T10:01:00",
            "2024-01-02T10:07:00", // 10:00 closes: version 1
            "2024-01-02T10:13:00", // 10:05 closes; 10:00's version 1 goes to a spill file
            "2024-01-02T10:02:00", // late: 10:00's version 2
        ] {
            out.extend(
                op.push(&trades(&[(at, "LIT", 10.0, 1)]))
                    .await
                    .unwrap()
                    .windows,
            );
        }
        assert!(!op.emitted.spill_files.is_empty(), "version 1 was spilled");
        // Committed; then 10:10 closes and version 2 leaves memory for the lake.
        lake.lock().unwrap().append(&mut out);
        op.committed();
        op.push(&trades(&[("2024-01-02T10:19:00", "LIT", 10.0, 1)]))
            .await
            .unwrap();
        let late = op
            .push(&trades(&[("2024-01-02T10:03:00", "LIT", 10.0, 1)]))
            .await
            .unwrap()
            .windows
            .unwrap();
        assert_eq!(column_i64(&late, "version"), vec![3]);
        assert_eq!(column_i64(&late, "num_trades"), vec![3]);
    }

    /// After an uncommitted run was dropped, what the operator emitted is not all in the lake:
    /// a later commit marks none of it as there. An operator that had emitted nothing when a
    /// run was dropped (a member's first assignment) still marks what it emits later.
    #[tokio::test]
    async fn windows_of_a_dropped_run_are_never_marked_committed() {
        for emitted_before_the_drop in [true, false] {
            let mut op = WindowOperator::new(WindowSpec::default(), true, None)
                .await
                .unwrap();
            op.remember_history(None, lookup_in(Vec::new()).0);
            if !emitted_before_the_drop {
                op.uncommitted_dropped();
            }
            for at in ["2024-01-02T10:01:00", "2024-01-02T10:07:00"] {
                op.push(&trades(&[(at, "LIT", 10.0, 100)])).await.unwrap();
            }
            assert_eq!(op.emitted.chunks.len(), 1, "the 10:00 window closed");
            if emitted_before_the_drop {
                op.uncommitted_dropped();
            }
            op.committed();
            assert_eq!(
                op.emitted.durable.is_empty(),
                emitted_before_the_drop,
                "emitted before the drop: {emitted_before_the_drop}"
            );
        }
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
