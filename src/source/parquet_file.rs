//! Parquet input: darkpool's own trades files (e.g. from another lake or an export), or any
//! Parquet with the required columns. Each row goes through the same validation as text input.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::model::{RejectBuilder, SourcePos, TradeBuilder};
use crate::source::decode::{self, Field, RawTrade, Scalar};
use crate::source::{Compression, DecodeOptions, DecodeStats, Decoded, Sink, SourceError};
use crate::venue::Registry;

fn parquet_error(label: &Path, e: impl std::fmt::Display) -> SourceError {
    SourceError::Parquet {
        path: label.to_path_buf(),
        message: format!("not a readable Parquet file: {e}"),
    }
}

fn open(path: &Path, label: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, SourceError> {
    let io_error = |source| SourceError::Io {
        path: label.to_path_buf(),
        source,
    };
    if let Some(compression) = Compression::of_file(path).map_err(io_error)? {
        return Err(SourceError::Parquet {
            path: label.to_path_buf(),
            message: format!(
                "a {}-compressed Parquet file cannot be read in place (Parquet compresses its \
                 own pages); decompress it first",
                compression.name()
            ),
        });
    }
    let file = File::open(path).map_err(io_error)?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(label, e))
}

/// The file opens and has the required columns.
pub fn check(path: &Path, label: &Path) -> Result<(), SourceError> {
    let builder = open(path, label)?;
    let schema = builder.schema();
    let missing: Vec<&str> = Field::REQUIRED
        .iter()
        .map(|f| f.name())
        .filter(|name| schema.column_with_name(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(SourceError::Parquet {
            path: label.to_path_buf(),
            message: format!("lacks the required column(s) {}", missing.join(", ")),
        });
    }
    // A date is not a trade's time: every trade of a day would land at midnight, in one
    // window (a date-only text is a bad_timestamp reject likewise).
    if let Some((_, field)) = schema.column_with_name(Field::Timestamp.name()) {
        if matches!(field.data_type(), DataType::Date32 | DataType::Date64) {
            return Err(SourceError::Parquet {
                path: label.to_path_buf(),
                message: format!(
                    "column timestamp is a date ({}), not a time of trade; write the trades' \
                     timestamps (a timestamp column, ISO-8601 text or epoch milliseconds)",
                    field.data_type()
                ),
            });
        }
    }
    Ok(())
}

/// A column cast to one of the few types rows are read from.
fn canonical(array: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    let target = match array.data_type() {
        DataType::Timestamp(_, _) => {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Boolean => DataType::Boolean,
        t if t.is_integer() => DataType::Int64,
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) =>
        {
            DataType::Float64
        }
        _ => DataType::Utf8,
    };
    cast(array, &target)
}

fn scalar(array: &ArrayRef, row: usize) -> Scalar<'_> {
    if array.is_null(row) {
        return Scalar::Null;
    }
    match array.data_type() {
        DataType::Timestamp(_, _) => {
            Scalar::Micros(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Boolean => Scalar::Bool(array.as_boolean().value(row)),
        DataType::Int64 => Scalar::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Scalar::Float(array.as_primitive::<Float64Type>().value(row)),
        _ => Scalar::Str(Cow::Borrowed(array.as_string::<i32>().value(row))),
    }
}

fn raw_text(columns: &[(Field, ArrayRef)], row: usize) -> String {
    let mut object = serde_json::Map::new();
    for (field, array) in columns {
        let value = match scalar(array, row) {
            Scalar::Str(s) | Scalar::Text(s) => serde_json::Value::from(s.into_owned()),
            Scalar::Int(v) | Scalar::Micros(v) => serde_json::Value::from(v),
            Scalar::Float(v) => serde_json::Number::from_f64(v)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::from(v.to_string())),
            Scalar::Bool(b) => serde_json::Value::from(b),
            Scalar::Null | Scalar::Composite => serde_json::Value::Null,
        };
        object.insert(field.name().to_string(), value);
    }
    serde_json::Value::Object(object).to_string()
}

/// Decode the rows of a Parquet file into trades and rejects.
pub fn decode(
    path: &Path,
    label: &Path,
    registry: &Arc<Registry>,
    options: DecodeOptions,
    sink: &mut Sink<'_>,
) -> Result<DecodeStats, SourceError> {
    let builder = open(path, label)?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let reader = builder
        .with_batch_size(options.batch_rows.clamp(1024, 1 << 16))
        .build()
        .map_err(|e| parquet_error(label, e))?;
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut trades = TradeBuilder::new(registry.clone());
    let mut rejects = RejectBuilder::default();
    let mut stats = DecodeStats::default();
    let mut pos = SourcePos {
        file: Some(Arc::from(label.display().to_string())),
        ..SourcePos::default()
    };
    let mut row_no = 0i64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| parquet_error(label, e))?;
        let mut columns = Vec::new();
        for field in Field::ALL {
            if let Some(array) = batch.column_by_name(field.name()) {
                columns.push((
                    field,
                    canonical(array).map_err(|e| parquet_error(label, e))?,
                ));
            }
        }
        for row in 0..batch.num_rows() {
            row_no += 1;
            pos.line = Some(row_no);
            stats.records += 1;
            let mut raw = RawTrade::default();
            for (field, array) in &columns {
                raw.set(*field, scalar(array, row));
            }
            match decode::validate(&raw) {
                Ok(trade) => {
                    trades.append(&trade, &pos);
                    stats.accepted += 1;
                }
                Err(reject) => {
                    stats.count(&reject);
                    let text = raw_text(&columns, row);
                    rejects.append(
                        options.rejected_at,
                        &reject,
                        text.as_bytes(),
                        text.len(),
                        &pos,
                    );
                }
            }
        }
        sink(Decoded {
            trades: trades.finish(),
            rejects: rejects.finish(),
            other: None,
            bytes_read: file_bytes * (row_no as u64).min(total_rows) / total_rows,
        })?;
    }
    stats.bytes = file_bytes;
    stats.unknown_venues = std::mem::take(&mut trades.unknown_venues);
    Ok(stats)
}
