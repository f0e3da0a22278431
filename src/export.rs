//! `export`: flat files for Tableau and other BI tools — a lake table or named query, or a JSON
//! dump in the original API's shape, as typed Parquet or CSV (header, UTC timestamps as
//! `YYYY-MM-DD HH:MM:SS[.ffffff]`), optionally split into `date=YYYY-MM-DD/` folders.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parquet::arrow::ArrowWriter;

use crate::engine::{Engine, EngineError};
use crate::time::parse_timestamp;

/// CSV timestamps: what Tableau and spreadsheets parse, with the fraction of a second where
/// there is one (`2024-01-01 09:30:00.010597`; a window's bounds stay `2024-01-01 09:35:00`).
const CSV_TIME: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Output file format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Parquet,
    Csv,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
        }
    }

    /// The format an output path's extension names (`.csv`; `.parquet` or `.pq`), if any.
    fn of_path(out: &Path) -> Option<ExportFormat> {
        let ext = out.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(ExportFormat::Csv),
            "parquet" | "pq" => Some(ExportFormat::Parquet),
            _ => None,
        }
    }

    /// `--format`, else what `--out`'s extension says (as DuckDB's `COPY ... TO` does), else
    /// Parquet. A flag that contradicts the extension is refused: `--out trades.csv` holding
    /// Parquet bytes is a file no spreadsheet opens.
    pub fn resolve(flag: Option<ExportFormat>, out: &Path) -> Result<ExportFormat, ExportError> {
        match (flag, ExportFormat::of_path(out)) {
            (Some(flag), Some(named)) if flag != named => Err(ExportError::Contradicts {
                out: out.to_path_buf(),
                flag: flag.extension(),
                named: named.extension(),
            }),
            (Some(format), _) | (None, Some(format)) => Ok(format),
            (None, None) => Ok(ExportFormat::Parquet),
        }
    }
}

/// Why an export failed (nothing is left at the output path).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path}: not a JSON dump of windows: {message}")]
    Input { path: PathBuf, message: String },
    #[error("--partition-by date needs a `date` column or a timestamp column; {0} has neither")]
    NoDate(String),
    #[error("{0} already exists as a folder; remove it or choose another --out")]
    Exists(PathBuf),
    #[error("--format {flag} contradicts --out {}, whose extension says {named}; change one of them", out.display())]
    Contradicts {
        out: PathBuf,
        flag: &'static str,
        named: &'static str,
    },
}

impl ExportError {
    /// Writing the output failed: named by the path asked for, not its temporary name.
    fn writing(out: &Path, message: String) -> ExportError {
        ExportError::Write {
            path: out.to_path_buf(),
            message,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    pub rows: u64,
    pub files: usize,
}

/// Writes batches to one file in the export format.
enum FileWriter {
    Parquet(Box<ArrowWriter<File>>),
    Csv(Box<arrow::csv::Writer<BufWriter<File>>>),
}

/// CSV cannot hold binary columns (`rejects.raw`; `raw_text` has the same bytes as text).
fn csv_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| {
                !matches!(
                    f.data_type(),
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView
                )
            })
            .map(|f| f.as_ref().clone())
            .collect::<Vec<Field>>(),
    ))
}

fn project(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("no column {}", f.name()))
            })
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

impl FileWriter {
    /// A writer of `path`, a file of the export `out`, which its errors name.
    fn create(
        path: &Path,
        out: &Path,
        format: ExportFormat,
        schema: &SchemaRef,
    ) -> Result<FileWriter, ExportError> {
        let write_err = |e: &dyn std::fmt::Display| ExportError::writing(out, e.to_string());
        if let Some(parent) = path.parent() {
            crate::output::create_folder(parent).map_err(|e| write_err(&e))?;
        }
        let file = File::create(path).map_err(|e| write_err(&e))?;
        Ok(match format {
            ExportFormat::Parquet => FileWriter::Parquet(Box::new(
                ArrowWriter::try_new(
                    file,
                    schema.clone(),
                    Some(crate::output::parquet_properties()),
                )
                .map_err(|e| write_err(&e))?,
            )),
            ExportFormat::Csv => FileWriter::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    // No columns (an empty dump): an empty file, not a header line of `""`.
                    .with_header(!schema.fields().is_empty())
                    .with_timestamp_format(CSV_TIME.into())
                    .with_timestamp_tz_format(CSV_TIME.into())
                    .build(BufWriter::new(file)),
            )),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        match self {
            FileWriter::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            FileWriter::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            FileWriter::Parquet(w) => w.close().map(|_| ()).map_err(|e| e.to_string()),
            FileWriter::Csv(w) => {
                let mut inner = (*w).into_inner();
                inner.flush().map_err(|e| e.to_string())
            }
        }
    }
}

/// The UTC date of each row: the `date` column, else the first timestamp column.
fn dates(batch: &RecordBatch) -> Option<Vec<String>> {
    if let Some(date) = batch.column_by_name("date") {
        let utf8 = arrow::compute::cast(date, &DataType::Utf8).ok()?;
        let utf8 = utf8.as_string::<i32>();
        return Some((0..utf8.len()).map(|i| utf8.value(i).to_string()).collect());
    }
    let column = batch
        .columns()
        .iter()
        .find(|c| matches!(c.data_type(), DataType::Timestamp(_, _)))?;
    let micros = arrow::compute::cast(column, &crate::model::timestamp_type()).ok()?;
    let micros = micros
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()?;
    Some(
        micros
            .iter()
            .map(|t| t.map(crate::time::date_of).unwrap_or_else(|| "null".into()))
            .collect(),
    )
}

/// Streams batches into the output (one file, or one per date), staged beside `out` and
/// renamed into place at the end.
struct Sink {
    format: ExportFormat,
    out: PathBuf,
    staging: PathBuf,
    partition: bool,
    schema: Option<SchemaRef>,
    writers: BTreeMap<String, FileWriter>,
    summary: ExportSummary,
}

impl Sink {
    fn new(out: &Path, format: ExportFormat, partition: bool) -> Result<Sink, ExportError> {
        if partition && out.is_dir() {
            return Err(ExportError::Exists(out.to_path_buf()));
        }
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "export".into());
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        Ok(Sink {
            format,
            out: out.to_path_buf(),
            staging,
            partition,
            schema: None,
            writers: BTreeMap::new(),
            summary: ExportSummary::default(),
        })
    }

    fn write(&mut self, batch: &RecordBatch, what: &str) -> Result<(), ExportError> {
        let mut schema = batch.schema();
        if self.format == ExportFormat::Csv {
            schema = csv_schema(&schema);
        }
        let out = self.out.clone();
        let write_err = |message: String| ExportError::writing(&out, message);
        if !self.partition {
            let batch = project(batch, &schema).map_err(|e| write_err(e.to_string()))?;
            if !self.writers.contains_key("") {
                self.writers.insert(
                    String::new(),
                    FileWriter::create(&self.staging, &self.out, self.format, &schema)?,
                );
                self.schema = Some(schema);
            }
            if let Some(w) = self.writers.get_mut("") {
                w.write(&batch).map_err(write_err)?;
            }
        } else {
            let days = dates(batch).ok_or_else(|| ExportError::NoDate(what.to_string()))?;
            // The partition value lives in the folder name, not in the files (Hive style).
            let file_schema = Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .filter(|f| f.name() != "date")
                    .map(|f| f.as_ref().clone())
                    .collect::<Vec<_>>(),
            ));
            let mut distinct: Vec<&String> = days.iter().collect();
            distinct.sort();
            distinct.dedup();
            for day in distinct {
                let mask = BooleanArray::from_iter(days.iter().map(|d| Some(d == day)));
                let part =
                    filter_record_batch(batch, &mask).map_err(|e| write_err(e.to_string()))?;
                let part = project(&part, &file_schema).map_err(|e| write_err(e.to_string()))?;
                if !self.writers.contains_key(day) {
                    let path = self
                        .staging
                        .join(format!("date={day}"))
                        .join(format!("part-00000.{}", self.format.extension()));
                    self.writers.insert(
                        day.clone(),
                        FileWriter::create(&path, &self.out, self.format, &file_schema)?,
                    );
                }
                if let Some(w) = self.writers.get_mut(day) {
                    w.write(&part).map_err(write_err)?;
                }
            }
        }
        self.summary.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn finish(mut self, empty_schema: &SchemaRef) -> Result<ExportSummary, ExportError> {
        if self.writers.is_empty() && !self.partition {
            // No rows: still a valid file with the columns (a header for CSV).
            let schema = if self.format == ExportFormat::Csv {
                csv_schema(empty_schema)
            } else {
                empty_schema.clone()
            };
            let mut w = FileWriter::create(&self.staging, &self.out, self.format, &schema)?;
            if self.format == ExportFormat::Csv {
                w.write(&RecordBatch::new_empty(schema))
                    .map_err(|message| ExportError::writing(&self.out, message))?;
            }
            self.writers.insert(String::new(), w);
        }
        for (_, w) in std::mem::take(&mut self.writers) {
            w.finish()
                .map_err(|message| ExportError::writing(&self.out, message))?;
            self.summary.files += 1;
        }
        if self.partition && !self.staging.exists() {
            crate::output::create_folder(&self.staging)
                .map_err(|e| ExportError::writing(&self.out, e.to_string()))?;
        }
        std::fs::rename(&self.staging, &self.out).map_err(|source| ExportError::Io {
            path: self.out.clone(),
            source,
        })?;
        Ok(std::mem::take(&mut self.summary))
    }
}

impl Drop for Sink {
    /// A failed export leaves nothing behind.
    fn drop(&mut self) {
        self.writers.clear();
        if self.staging.is_dir() {
            let _ = std::fs::remove_dir_all(&self.staging);
        } else {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

fn spinner(enabled: bool) -> ProgressBar {
    if !enabled || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} export {human_pos} rows {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Export a lake table or a named query.
pub async fn export_table(
    engine: &Engine,
    what: &str,
    format: ExportFormat,
    out: &Path,
    partition_by_date: bool,
    progress: bool,
) -> Result<ExportSummary, ExportError> {
    let sql = if Engine::is_table(what) {
        format!("SELECT * FROM {what}")
    } else {
        engine.named_sql(what)?
    };
    let (schema, mut stream) = engine.sql_stream(&sql).await?;
    let mut sink = Sink::new(out, format, partition_by_date)?;
    let bar = spinner(progress);
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => return Err(engine.failed(e).await.into()),
        };
        sink.write(&batch, what)?;
        bar.inc(batch.num_rows() as u64);
    }
    bar.finish_and_clear();
    sink.finish(&schema)
}

/// Convert a JSON dump of windows in the original API's shape (an array of flat objects, or
/// one object per line) to CSV or Parquet. Text that parses as a timestamp in a column named
/// like `timestamp`, `*_start`, `*_end` or `*_time` becomes a UTC timestamp column.
pub fn export_json(
    input: &Path,
    format: ExportFormat,
    out: &Path,
    partition_by_date: bool,
) -> Result<ExportSummary, ExportError> {
    let bad = |message: String| ExportError::Input {
        path: input.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(input).map_err(|source| ExportError::Io {
        path: input.to_path_buf(),
        source,
    })?;
    let rows: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(rows)) => rows,
        // One object: a one-line NDJSON file.
        Ok(row @ serde_json::Value::Object(_)) => vec![row],
        Ok(_) => return Err(bad("expected a JSON array of objects".into())),
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e}", i + 1))))
            .collect::<Result<_, _>>()?,
    };
    let composite = |v: &serde_json::Value| v.is_object() || v.is_array();
    // An object or array goes in as its JSON text where the format has no form for it (CSV),
    // or where its column also holds plain values (no one Arrow type fits both).
    let as_text: HashSet<String> = {
        let (mut nested, mut plain) = (HashSet::new(), HashSet::new());
        for map in rows.iter().filter_map(serde_json::Value::as_object) {
            for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                let kinds = if composite(value) {
                    &mut nested
                } else {
                    &mut plain
                };
                kinds.insert(snake_case(key));
            }
        }
        match format {
            ExportFormat::Csv => nested,
            ExportFormat::Parquet => nested.intersection(&plain).cloned().collect(),
        }
    };
    let mut ndjson = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let serde_json::Value::Object(map) = row else {
            return Err(bad(format!("element {i} is not an object")));
        };
        let mut flat = serde_json::Map::new();
        for (key, value) in map {
            let column = snake_case(key);
            let value = if composite(value) && as_text.contains(&column) {
                serde_json::Value::String(value.to_string())
            } else {
                value.clone()
            };
            if flat.insert(column.clone(), value).is_some() {
                return Err(bad(format!(
                    "element {i}: two keys become column `{column}` (the export writes keys in \
                     snake_case); rename one"
                )));
            }
        }
        serde_json::to_writer(&mut ndjson, &serde_json::Value::Object(flat))
            .map_err(|e| bad(e.to_string()))?;
        ndjson.push(b'\n');
    }
    let (schema, _) =
        arrow::json::reader::infer_json_schema_from_seekable(std::io::Cursor::new(&ndjson), None)
            .map_err(|e| bad(e.to_string()))?;
    let schema = Arc::new(schema);
    // One batch for the whole dump (already in memory), so that a column becomes a timestamp
    // only if every row's value is one; numbers in a column inferred as text are read as text.
    let reader = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .with_coerce_primitive(true)
        .build(std::io::Cursor::new(&ndjson))
        .map_err(|e| bad(e.to_string()))?;
    let mut sink = Sink::new(out, format, partition_by_date)?;
    let mut out_schema = schema.clone();
    for batch in reader {
        let batch = with_timestamps(&batch.map_err(|e| bad(e.to_string()))?);
        out_schema = batch.schema();
        sink.write(&batch, &input.display().to_string())?;
    }
    sink.finish(&out_schema)
}

/// `totalValue` / `Total Value` -> `total_value`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.trim().chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else if !out.ends_with('_') {
            out.push('_');
            prev_lower = false;
        }
    }
    out.trim_matches('_').to_string()
}

fn is_time_name(name: &str) -> bool {
    name == "timestamp"
        || name.ends_with("_start")
        || name.ends_with("_end")
        || name.ends_with("_time")
        || name == "date"
}

/// Text columns with time-like names whose every value parses as a timestamp become UTC
/// timestamp columns.
fn with_timestamps(batch: &RecordBatch) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let parsed = (is_time_name(field.name()) && column.data_type() == &DataType::Utf8)
            .then(|| {
                let text = column.as_string::<i32>();
                text.iter()
                    .map(|v| v.map(parse_timestamp).transpose().ok())
                    .collect::<Option<Vec<Option<i64>>>>()
            })
            .flatten();
        match parsed {
            Some(values) => {
                fields.push(Field::new(
                    field.name(),
                    crate::model::timestamp_type(),
                    true,
                ));
                columns.push(
                    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
                        as ArrayRef,
                );
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap_or_else(|_| batch.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_names() {
        assert_eq!(snake_case("totalValue"), "total_value");
        assert_eq!(snake_case("Total Value"), "total_value");
        assert_eq!(snake_case("window_start"), "window_start");
        assert_eq!(snake_case("VWAP"), "vwap");
    }
}
