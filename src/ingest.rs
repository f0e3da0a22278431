//! `ingest` from files: decode -> trades/rejects -> windows -> one atomic lake commit.
//!
//! Three threads of work: decoding (a blocking thread), the window operator (async, DataFusion),
//! and Parquet writing (a blocking thread), joined by bounded channels so memory stays flat.

pub mod kafka;
pub mod restart;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::DataType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::engine::{Engine, EngineError, EngineOptions};
use crate::lake::{
    self, BackgroundWriter, Lake, LakeError, SourceRecord, Table, Transaction, WriterOptions,
};
use crate::source::{self, DecodeOptions, DecodeStats, Format, FormatOptions, SourceError};
use crate::venue::Registry;
use crate::window::{HistoryQuery, WindowError, WindowOperator, WindowSpec, WindowStats};

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub lake: PathBuf,
    /// Files; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    /// Overrides the format the file name, first line or extension names.
    pub format: Option<Format>,
    /// Settings of the FINRA and TAQ formats.
    pub formats: FormatOptions,
    pub venues: Arc<Registry>,
    pub window: WindowSpec,
    /// Re-emit a window as a new version when late trades change it.
    pub reemit_late: bool,
    pub batch_rows: usize,
    /// Emitted window rows kept in memory before the oldest spill to disk.
    pub window_memory_rows: usize,
    pub max_line_bytes: usize,
    pub writer: WriterOptions,
    /// Draw a progress bar (only when stderr is a terminal).
    pub progress: bool,
}

impl IngestOptions {
    pub fn new(lake: impl Into<PathBuf>, inputs: Vec<PathBuf>) -> IngestOptions {
        IngestOptions {
            lake: lake.into(),
            inputs,
            format: None,
            formats: FormatOptions::default(),
            venues: Arc::new(Registry::embedded()),
            window: WindowSpec::default(),
            reemit_late: true,
            batch_rows: 32 * 1024,
            window_memory_rows: crate::window::SPILL_AT_ROWS,
            max_line_bytes: 1 << 20,
            writer: WriterOptions::default(),
            progress: false,
        }
    }
}

/// Why an ingest run failed (nothing of it is left in the lake).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("reading standard input: {0}")]
    Stdin(std::io::Error),
    #[error("no input files given")]
    NoInput,
    #[error(transparent)]
    Kafka(#[from] crate::source::kafka::KafkaError),
    #[error("internal: {0}")]
    Internal(String),
}

impl IngestError {
    /// A failure a later run may get past by itself: the lake's disk full (or its quota used
    /// up), or closed windows not delivered while the brokers were away. What the run had not
    /// committed is not in the lake, and the lake says where a new run resumes.
    pub fn is_transient(&self) -> bool {
        match self {
            IngestError::Lake(LakeError::Io { source, .. })
            | IngestError::Window(WindowError::SpillIo { source, .. }) => is_disk_full(source),
            IngestError::Kafka(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The brokers did not answer at the start of a run.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, IngestError::Kafka(e) if e.is_unreachable())
    }
}

fn is_disk_full(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded
    )
}

/// An input and what became of it.
#[derive(Debug, Clone)]
pub struct InputReport {
    pub path: PathBuf,
    pub format: Format,
    /// `Some(run)` when the lake already held this content (skipped).
    pub already_ingested: Option<String>,
    pub stats: DecodeStats,
}

/// The end-of-run summary.
#[derive(Debug, Clone, Default)]
pub struct IngestSummary {
    pub inputs: Vec<InputReport>,
    pub totals: DecodeStats,
    pub windows: WindowStats,
    pub rows: BTreeMap<Table, u64>,
    pub files: usize,
    pub run: Option<String>,
    pub elapsed: Duration,
}

impl IngestSummary {
    pub fn trades_per_second(&self) -> f64 {
        self.totals.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.totals.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

enum Decoded {
    Chunk(source::Decoded),
    InputDone(usize, DecodeStats),
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Copy standard input into the run's staging folder so it is hashed and read like a file.
fn spool_stdin(staging: &Path) -> Result<PathBuf, IngestError> {
    let path = staging.join("stdin.input");
    let mut file = std::fs::File::create(&path).map_err(IngestError::Stdin)?;
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(IngestError::Stdin(e)),
        };
        file.write_all(&buf[..n]).map_err(IngestError::Stdin)?;
    }
    Ok(path)
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} ingest [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// The end of each key's (symbol, venue) last emitted window.
pub(crate) type EmittedTo = HashMap<(String, String), i64>;

/// Make the windows the lake already holds known to `windows`, so new trades merge into them:
/// they stay in the lake and are looked up there when needed ([`history_lookup`]). Returns
/// where each key's emitted windows end (for [`WindowOperator::push_open`]).
pub(crate) async fn preload_windows(
    options: &IngestOptions,
    windows: &mut WindowOperator,
) -> Result<EmittedTo, IngestError> {
    let lake = Lake::new(&options.lake);
    let mut emitted_to = EmittedTo::new();
    let engine = Arc::new(tokio::sync::OnceCell::new());
    if !lake.has_data(Table::Windows) {
        // The run's own windows, once committed, are looked up there too.
        windows.remember_history(None, history_lookup(engine, options));
        return Ok(emitted_to);
    }
    let ends = lake_engine(&engine, &options.lake, options.window)
        .await?
        .internal(
            "SELECT symbol, venue, arrow_cast(MAX(window_end), 'Int64') AS done \
             FROM window_history GROUP BY symbol, venue",
        )
        .await?;
    let mut until: Option<i64> = None;
    for batch in &ends {
        // The engine may read strings as views: as plain strings here.
        let text = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8).ok();
        let (Some(symbols), Some(venues), Some(done)) = (
            text(0),
            text(1),
            batch
                .column(2)
                .as_primitive_opt::<arrow::datatypes::Int64Type>(),
        ) else {
            return Err(IngestError::Internal(
                "window_history's last window ends per key are not strings and integers".into(),
            ));
        };
        let (symbols, venues) = (symbols.as_string::<i32>(), venues.as_string::<i32>());
        for row in 0..batch.num_rows() {
            let end = done.value(row);
            until = Some(until.map_or(end, |u| u.max(end)));
            emitted_to.insert(
                (
                    symbols.value(row).to_string(),
                    venues.value(row).to_string(),
                ),
                end,
            );
        }
    }
    windows.remember_history(until, history_lookup(engine, options));
    Ok(emitted_to)
}

/// Most symbols a history lookup names in its query; past that it reads every symbol's windows
/// in the range.
const LOOKUP_SYMBOLS: usize = 1000;

/// A session over `lake`, opened at its first use.
async fn lake_engine<'a>(
    engine: &'a tokio::sync::OnceCell<Engine>,
    lake: &Path,
    window: WindowSpec,
) -> Result<&'a Engine, EngineError> {
    engine
        .get_or_try_init(|| {
            let mut options = EngineOptions::new(lake);
            options.window = window;
            Engine::open(options)
        })
        .await
}

/// Finds windows of earlier runs (and this run's, once committed) in the lake's
/// `window_history`: the date partitions the windows asked for start in, their window-end
/// range and their symbols.
fn history_lookup(
    engine: Arc<tokio::sync::OnceCell<Engine>>,
    options: &IngestOptions,
) -> crate::window::HistoryLookup {
    let (lake, window) = (Arc::new(options.lake.clone()), options.window);
    Arc::new(move |query: HistoryQuery| {
        let (engine, lake) = (engine.clone(), lake.clone());
        Box::pin(async move {
            // The partition is the date of window_start, which is window_end - size.
            let (first_day, last_day) = (
                crate::time::date_of(query.first_end - window.size),
                crate::time::date_of(query.last_end - window.size),
            );
            let symbols = if !query.symbols.is_empty() && query.symbols.len() <= LOOKUP_SYMBOLS {
                let quoted: Vec<String> = query
                    .symbols
                    .iter()
                    .map(|s| format!("'{}'", s.replace('\'', "''")))
                    .collect();
                format!(" AND symbol IN ({})", quoted.join(", "))
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT * FROM window_history WHERE window_end >= {} AND window_end <= {} \
                 AND date >= '{first_day}' AND date <= '{last_day}'{symbols}",
                crate::time::sql_timestamp(query.first_end),
                crate::time::sql_timestamp(query.last_end)
            );
            let error = |e: EngineError| WindowError::History(e.to_string());
            lake_engine(&engine, &lake, window)
                .await
                .map_err(error)?
                .internal(&sql)
                .await
                .map_err(error)
        })
    })
}

/// The [`lake_trades`] filter for the trades of windows a stop left open, `also` (a condition
/// on `t`) holding: per key, those from `size - slide` before the end of its last emitted
/// window (0 for tumbling windows), all of its trades if it has none. The windows emitted
/// already among theirs are kept out by [`WindowOperator::push_open`]. With `from` (no open
/// window starts before it), only trades from then on are read, and only the windows ending
/// from then on are aggregated: an earlier last end lets every such trade through anyway. So
/// both sides are pruned by date folder and row group instead of read whole.
pub(crate) fn open_windows_filter(spec: WindowSpec, also: &str, from: Option<i64>) -> String {
    let (trades_from, windows_from) = match from {
        Some(from) => {
            let at = crate::time::sql_timestamp(from);
            (
                format!(
                    " AND t.\"timestamp\" >= {at} AND t.date >= '{}'",
                    crate::time::date_of(from)
                ),
                format!(
                    " WHERE window_end >= {at} AND date >= '{}'",
                    crate::time::date_of(from - spec.size)
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    format!(
        "LEFT JOIN (SELECT symbol, venue, MAX(window_end) AS done FROM window_history{windows_from} \
         GROUP BY symbol, venue) AS d ON t.symbol = d.symbol AND t.venue = d.venue \
         WHERE ({also}){trades_from} AND (d.done IS NULL \
         OR CAST(t.\"timestamp\" AS BIGINT) >= CAST(d.done AS BIGINT) - {})",
        (spec.size - spec.slide).max(0)
    )
}

/// A run's folder for the window operator's spilled state, removed when dropped: at the end of
/// a run, and when an error ends one (a folder whose process died is removed by the lake's next
/// recovery). Each run has its own, also within one process: a run started again after a
/// failure may overlap the last one's window push, which ends on the runtime by itself.
pub(crate) struct SpillFolder(std::path::PathBuf);

impl SpillFolder {
    pub(crate) fn of(lake: &Lake) -> SpillFolder {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SpillFolder(lake.staging_dir(&format!(
            "window-state-{}-{}-{run}",
            crate::lake::hostname(),
            std::process::id()
        )))
    }

    /// The folder, emptied for a fresh operator, with its owner file.
    pub(crate) fn fresh(&self) -> Result<std::path::PathBuf, IngestError> {
        let dir = &self.0;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(crate::lake::io_error(dir))?;
        crate::lake::write_owner(dir)?;
        Ok(dir.clone())
    }
}

impl Drop for SpillFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Trades of the lake (`trades AS t`, narrowed by `filter`: joins and a WHERE clause) in
/// event-time order, in the trades schema: what a restart replays into the window operator.
pub(crate) async fn lake_trades(
    lake: &Path,
    window: WindowSpec,
    filter: &str,
) -> Result<Vec<RecordBatch>, IngestError> {
    // Checked before the engine opens: opening it on an empty lake took 6-10 ms (every start
    // of a Kafka ingest, after its partitions are assigned).
    if !Lake::new(lake).has_data(Table::Trades) {
        return Ok(Vec::new());
    }
    let mut engine_options = EngineOptions::new(lake);
    engine_options.window = window;
    let engine = Engine::open(engine_options).await?;
    let schema = crate::model::trades_schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("t.\"{}\"", f.name()))
        .collect();
    let sql = format!(
        "SELECT {} FROM trades AS t {filter} ORDER BY t.\"timestamp\"",
        columns.join(", ")
    );
    engine
        .internal(&sql)
        .await?
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IngestError::Internal(format!("replaying trades: {e}")))
}

/// Ingest files into the lake as one atomic run. Inputs whose content the lake already holds
/// are skipped, so re-ingesting never double counts.
pub async fn ingest_files(options: IngestOptions) -> Result<IngestSummary, IngestError> {
    if options.inputs.is_empty() {
        return Err(IngestError::NoInput);
    }
    let started = Instant::now();
    let lake = Lake::new(&options.lake);
    let recovery = lake.recover()?;
    for run in &recovery.rolled_forward {
        tracing::info!("finished the interrupted commit of run {run}");
    }
    lake.settle_window_shape(options.window.shape())?;
    let tx = Transaction::begin(&lake, options.writer)?;
    let mut summary = IngestSummary::default();

    // Resolve, check and de-duplicate every input before writing anything. The claims are
    // held until the commit (or the error) ends this function.
    let mut claims = std::collections::HashMap::new();
    let mut plan: Vec<(PathBuf, PathBuf, Format, String, u64)> = Vec::new();
    for input in &options.inputs {
        let (path, label) = if input.as_os_str() == "-" {
            (
                spool_stdin(&lake.staging_dir(tx.run_id()))?,
                PathBuf::from("-"),
            )
        } else {
            (input.clone(), input.clone())
        };
        let format = match options.format.or_else(|| Format::detect(&path)) {
            Some(f) => f,
            None if label.as_os_str() == "-" => {
                Format::sniff(&source::read_head(&path).map_err(IngestError::Stdin)?)
            }
            None if path.is_dir() => return Err(SourceError::Folder { path: label }.into()),
            None => return Err(SourceError::UnknownFormat { path: label }.into()),
        };
        source::check(&path, &label, format, &options.formats, &options.venues)?;
        // Of the decompressed bytes: `x.csv.gz` after `x.csv` is the same input, not new trades.
        // The first read of the whole input, so a truncated or corrupt archive fails here.
        let unreadable = |source| SourceError::Io {
            path: label.clone(),
            source,
        };
        let content = source::decompressed(&path).map_err(unreadable)?;
        let (id, bytes) = lake::content_id(content, &label).map_err(|e| match e {
            LakeError::Io { source, .. } => IngestError::Source(unreadable(source)),
            other => other.into(),
        })?;
        let seen_in_run = plan.iter().any(|(_, _, _, other, _)| *other == id);
        if !claims.contains_key(&id) {
            // Claim before checking, so a run committing the same content right now is seen.
            let claim = lake.claim(&id, &label.display().to_string())?;
            claims.insert(id.clone(), claim);
        }
        let previous = lake.source(&id)?;
        if previous.is_some() || seen_in_run {
            summary.inputs.push(InputReport {
                path: label,
                format,
                already_ingested: Some(previous.map_or_else(|| tx.run_id().to_string(), |p| p.run)),
                stats: DecodeStats::default(),
            });
            continue;
        }
        summary.inputs.push(InputReport {
            path: label.clone(),
            format,
            already_ingested: None,
            stats: DecodeStats::default(),
        });
        plan.push((path, label, format, id, bytes));
    }
    if plan.is_empty() {
        summary.elapsed = started.elapsed();
        return Ok(summary);
    }

    let spill = lake.staging_dir(tx.run_id()).join("window-state");
    let mut windows = WindowOperator::new(options.window, options.reemit_late, Some(spill))
        .await?
        .with_memory_rows(options.window_memory_rows);
    preload_windows(&options, &mut windows).await?;

    let total_bytes: u64 = plan.iter().map(|p| p.4).sum();
    let bar = progress_bar(options.progress, total_bytes);

    // Writer thread: owns the transaction until the end of input.
    let mut writer = BackgroundWriter::start(tx);

    // Decoder thread.
    let (decoded_tx, mut decoded_rx) = mpsc::channel::<Decoded>(2);
    let decode_plan: Vec<(PathBuf, PathBuf, Format)> = plan
        .iter()
        .map(|(p, l, f, _, _)| (p.clone(), l.clone(), *f))
        .collect();
    let registry = options.venues.clone();
    let formats = options.formats.clone();
    let decode_options = DecodeOptions {
        batch_rows: options.batch_rows.max(1),
        max_line_bytes: options.max_line_bytes.max(64),
        rejected_at: now_micros(),
    };
    let decoder = tokio::task::spawn_blocking(move || {
        for (index, (path, label, format)) in decode_plan.iter().enumerate() {
            let mut sink = |chunk: source::Decoded| {
                decoded_tx
                    .blocking_send(Decoded::Chunk(chunk))
                    .map_err(|_| SourceError::Sink("the pipeline stopped".into()))
            };
            let stats = source::decode(
                path,
                label,
                *format,
                &registry,
                decode_options,
                &formats,
                &mut sink,
            )?;
            if decoded_tx
                .blocking_send(Decoded::InputDone(index, stats))
                .is_err()
            {
                break;
            }
        }
        Ok::<(), SourceError>(())
    });

    let mut done_bytes = 0u64;
    let mut per_input: Vec<DecodeStats> = vec![DecodeStats::default(); plan.len()];
    let pipeline = async {
        while let Some(message) = decoded_rx.recv().await {
            match message {
                Decoded::Chunk(chunk) => {
                    bar.set_position(done_bytes + chunk.bytes_read);
                    if chunk.trades.num_rows() > 0 {
                        let pushed = windows.push(&chunk.trades).await?;
                        if let Some(late) = pushed.late {
                            writer.write(Table::Late, late).await?;
                        }
                        if let Some(w) = pushed.windows {
                            writer.write(Table::Windows, w).await?;
                        }
                    }
                    writer.write(Table::Trades, chunk.trades).await?;
                    writer.write(Table::Rejects, chunk.rejects).await?;
                    if let Some((table, rows)) = chunk.other {
                        writer.write(table, rows).await?;
                    }
                }
                Decoded::InputDone(index, stats) => {
                    done_bytes += stats.bytes;
                    bar.set_position(done_bytes);
                    per_input[index] = stats;
                }
            }
        }
        if let Some(w) = windows.finish().await? {
            writer.write(Table::Windows, w).await?;
        }
        Ok::<(), IngestError>(())
    };
    let pipeline_result = pipeline.await;
    drop(decoded_rx);
    let decode_result = decoder
        .await
        .map_err(|e| IngestError::Internal(format!("decoder: {e}")))?;
    let writer_result = writer.finish().await;
    // Report the root cause: an input that failed explains a stopped pipeline; a pipeline or
    // writer that failed (a full disk, say) explains a decoder whose sink went away.
    let orphaned = match decode_result {
        Err(SourceError::Sink(message)) => Some(message),
        other => {
            other?;
            None
        }
    };
    pipeline_result?;
    let mut tx = writer_result?;
    if let Some(message) = orphaned {
        return Err(SourceError::Sink(message).into());
    }
    bar.finish_and_clear();

    let committed_at = crate::time::date_of(now_micros());
    let mut stats_iter = per_input.into_iter();
    for (report, (_, _, _, id, bytes)) in summary
        .inputs
        .iter_mut()
        .filter(|r| r.already_ingested.is_none())
        .zip(&plan)
    {
        report.stats = stats_iter.next().unwrap_or_default();
        summary.totals.absorb(&report.stats);
        tx.add_source(SourceRecord {
            id: id.clone(),
            path: report.path.display().to_string(),
            bytes: *bytes,
            records: report.stats.records,
            accepted: report.stats.accepted,
            rejected: report.stats.rejected_total(),
            run: tx.run_id().to_string(),
            committed_at: committed_at.clone(),
        });
    }
    let committed = tx.commit()?;
    summary.windows = windows.stats();
    summary.rows = committed.rows;
    summary.files = committed.files;
    summary.run = Some(committed.run);
    summary.elapsed = started.elapsed();
    Ok(summary)
}
