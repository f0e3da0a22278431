//! SQL semantics as data: every `tests/slt/*.slt` file runs through darkpool's own engine (so
//! the read-only guard and the table registration are exercised) over a lake built from the
//! hand-made `tests/data/fixture.ndjson`.
//!
//! Regenerate expected output after a reviewed change with
//! `DARKPOOL_SLT_COMPLETE=1 cargo test --test sqllogictests`, then read the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use darkpool::engine::{Engine, EngineOptions};
use darkpool::ingest::{ingest_files, IngestOptions};
use sqllogictest::{
    default_column_validator, default_normalizer, default_validator, AsyncDB, DBOutput,
    DefaultColumnType, Runner,
};

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

struct Darkpool {
    engine: Arc<Engine>,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    match array.data_type() {
        // Six decimals: stable across summation orders, precise enough to catch real errors.
        DataType::Float64 => {
            let v = array
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .map_or(f64::NAN, |a| a.value(row));
            format!("{v:.6}")
        }
        _ => {
            let options = FormatOptions::default();
            ArrayFormatter::try_new(array, &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|e| format!("<{e}>"))
        }
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| cell(c.as_ref(), row))
                    .collect(),
            );
        }
    }
    out
}

#[async_trait]
impl AsyncDB for Darkpool {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        // A bare name runs the named query of that name, as `darkpool query NAME` does.
        let result = if darkpool::engine::named::looks_like_name(sql) {
            self.engine.run_named(sql.trim()).await
        } else {
            self.engine.sql(sql).await
        };
        let result = result.map_err(|e| SltError(e.to_string()))?;
        Ok(DBOutput::Rows {
            types: result
                .schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows: rows(&result.batches),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "darkpool"
    }
}

async fn fixture_engine(root: &Path) -> Engine {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lake = root.join("lake");
    let mut options = IngestOptions::new(&lake, vec![manifest.join("tests/data/fixture.ndjson")]);
    // Small micro-batches, so the last trades arrive after their window closed (late).
    options.batch_rows = 4;
    let summary = ingest_files(options).await.expect("ingest the fixture");
    assert_eq!(summary.totals.accepted, 15);
    let mut engine_options = EngineOptions::new(&lake);
    engine_options.sql_dir = Some(manifest.join("sql"));
    Engine::open(engine_options).await.expect("open the engine")
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/slt")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let complete = std::env::var_os("DARKPOOL_SLT_COMPLETE").is_some();
    let (passed, failed) = runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Arc::new(fixture_engine(dir.path()).await);
        let (mut passed, mut failed) = (0, 0);
        for file in slt_files() {
            let engine = engine.clone();
            let mut runner = Runner::new(move || {
                let engine = engine.clone();
                async move { Ok::<_, SltError>(Darkpool { engine }) }
            });
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let outcome = if complete {
                runner
                    .update_test_file(
                        &file,
                        " ",
                        default_validator,
                        default_normalizer,
                        default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                runner
                    .run_file_async(&file)
                    .await
                    .map_err(|e| e.display(true).to_string())
            };
            match outcome {
                Ok(()) => {
                    println!("test slt::{name} ... ok");
                    passed += 1;
                }
                Err(e) => {
                    println!("test slt::{name} ... FAILED\n{e}");
                    failed += 1;
                }
            }
        }
        (passed, failed)
    });
    println!("{passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
