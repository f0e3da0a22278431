//! `serve`'s embedded pipeline: simulated trades at a wall-clock pace -> the same decode and
//! windows as `ingest` -> the lake, committed every few seconds, with the open (and just
//! closed, not yet committed) windows published for live views and the event stream.
//!
//! Each commit is an ordinary lake run: the trades of the interval are spooled to a file in
//! the run's staging folder, decoded like any input, and committed atomically with their
//! windows, so a crash loses at most the uncommitted interval and never leaves a torn file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use tokio::sync::{broadcast, watch};

use crate::engine::Engine;
use crate::ingest::{preload_windows, IngestError, IngestOptions, SpillFolder};
use crate::lake::{self, Lake, SourceRecord, Table, Transaction, WriterOptions};
use crate::source::simulator::{self, Clock, SimConfig, SimFormat, DEFAULT_SYMBOLS};
use crate::source::{self, DecodeOptions, Format, SourceError};
use crate::venue::Registry;
use crate::window::{WindowOperator, WindowSpec};

/// How the embedded pipeline runs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub lake: PathBuf,
    pub venues: Arc<Registry>,
    pub window: WindowSpec,
    /// Simulated trades per wall-clock second.
    pub rate: f64,
    pub seed: u64,
    /// How often trades and closed windows are committed to the lake.
    pub commit_every: Duration,
    /// How often open windows are recomputed and published.
    pub tick: Duration,
}

impl LiveOptions {
    pub fn new(lake: impl Into<PathBuf>) -> LiveOptions {
        LiveOptions {
            lake: lake.into(),
            venues: Arc::new(Registry::embedded()),
            window: WindowSpec::default(),
            rate: 50.0,
            seed: 42,
            commit_every: Duration::from_secs(5),
            tick: Duration::from_secs(1),
        }
    }
}

/// What the pipeline publishes.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Windows that became final (or corrected versions).
    Closed(RecordBatch),
    /// The open windows now (at most one per tick).
    Open(RecordBatch),
}

/// Where the embedded pipeline stands: `/healthz`, `/metrics` and the event stream say it, so
/// a pipeline that stopped on an error (a full disk, a broker gone past `message.timeout.ms`)
/// is seen by whatever watches the server, not only in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineState {
    Running,
    /// Ended without an error (`--until-end`, or the server shutting down).
    Finished,
    /// Failed on this transient error (a full disk, say); starts again from the lake after
    /// the wait (`--retry-for`).
    Restarting {
        error: String,
        wait: Duration,
    },
    /// Stopped on this error; the API goes on serving the lake.
    Failed(String),
}

impl PipelineState {
    pub fn name(&self) -> &'static str {
        match self {
            PipelineState::Running => "running",
            PipelineState::Finished => "finished",
            PipelineState::Restarting { .. } => "restarting",
            PipelineState::Failed(_) => "failed",
        }
    }

    /// `{"pipeline": NAME}`, with `"error"` when it failed (and `"restart_in_seconds"` when
    /// it starts again), added to `object`.
    pub fn describe(&self, object: &mut serde_json::Map<String, serde_json::Value>) {
        object.insert("pipeline".into(), self.name().into());
        match self {
            PipelineState::Restarting { error, wait } => {
                object.insert("error".into(), error.as_str().into());
                object.insert("restart_in_seconds".into(), wait.as_secs_f64().into());
            }
            PipelineState::Failed(error) => {
                object.insert("error".into(), error.as_str().into());
            }
            PipelineState::Running | PipelineState::Finished => {}
        }
    }
}

/// Counters and gauges of the running pipeline (for `/metrics`). The row counters count what
/// landed in the lake, at its commits: a run that fails before its commit and starts again
/// (a transient failure) reads the same trades again, and counting them at the read counted
/// them twice.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub trades: AtomicU64,
    pub rejected: AtomicU64,
    pub late: AtomicU64,
    pub windows_closed: AtomicU64,
    pub commits: AtomicU64,
    /// The event-time watermark, µs since the epoch (0 until there is one).
    pub watermark_micros: AtomicI64,
    /// Kafka partitions paused by watermark alignment now, and pauses so far.
    pub paused_partitions: AtomicU64,
    pub alignment_pauses: AtomicU64,
    /// Kafka offsets the broker deleted (its retention) before they were read.
    pub lost_offsets: AtomicU64,
    /// Times the pipeline started again after a transient failure.
    pub restarts: AtomicU64,
    /// Kafka messages the brokers hold past what the pipeline has read, at its last commit
    /// (`None`: not known yet, or not Kafka).
    pub behind: std::sync::Mutex<Option<u64>>,
}

impl LiveStats {
    /// A lake commit of these rows (by table).
    pub fn landed(&self, rows: &BTreeMap<Table, u64>) {
        let count = |table| rows.get(&table).copied().unwrap_or(0);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.trades
            .fetch_add(count(Table::Trades), Ordering::Relaxed);
        self.rejected
            .fetch_add(count(Table::Rejects), Ordering::Relaxed);
        self.late.fetch_add(count(Table::Late), Ordering::Relaxed);
        self.windows_closed
            .fetch_add(count(Table::Windows), Ordering::Relaxed);
    }

    /// How the pipeline is doing, for the dashboard: what landed in the lake since the start,
    /// the watermark (`null` until there is one), the consumer lag (`null` unless Kafka, or
    /// not known yet) and the partitions paused for watermark alignment (whose lag is as of
    /// their pause).
    pub fn figures(&self) -> serde_json::Value {
        let watermark = match self.watermark_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(crate::human::utc_second(micros)),
        };
        let behind = *self.behind.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::json!({
            "trades_landed": self.trades.load(Ordering::Relaxed),
            "rejected": self.rejected.load(Ordering::Relaxed),
            "late": self.late.load(Ordering::Relaxed),
            "watermark": watermark,
            "messages_behind": behind,
            "paused_partitions": self.paused_partitions.load(Ordering::Relaxed),
            "restarts": self.restarts.load(Ordering::Relaxed),
        })
    }
}

/// `serve --no-ingest` and `serve --brokers`: follow a lake other processes fill. Whenever a
/// commit is logged (checked every `every`; and once more when the commit log has been still
/// for a check, as a logged run's files are moved into place after it), the windows of the
/// trades no process has emitted yet join `live_windows` ([`Engine::unemitted_windows`], less
/// the keys of the process's own pipeline) and go out as an `open` event, so the dashboard and
/// the API show trades seconds after they land rather than when their windows close. Until
/// `stop` turns true.
pub async fn follow_lake(
    engine: Arc<Engine>,
    events: broadcast::Sender<LiveEvent>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let lake = engine.lake().clone();
    // What the last check saw, and what the windows are worked out for.
    let (mut seen, mut done) = (lake.commits_changed_at(), None);
    // A failure is logged when it first happens, not at every check it lasts.
    let mut failing: Option<String> = None;
    loop {
        let now = lake.commits_changed_at();
        if now != done {
            let started = Instant::now();
            engine.begin_following();
            match engine.unemitted_windows().await {
                Ok(rows) => {
                    let open = rows.iter().map(RecordBatch::num_rows).sum::<usize>();
                    tracing::debug!(
                        "following the lake: {open} window(s) not emitted yet, worked out in {:?}",
                        started.elapsed()
                    );
                    let batch = arrow::compute::concat_batches(&engine.window_schema(), &rows);
                    if let Err(e) = engine.set_followed_windows(rows).await {
                        tracing::warn!("following the lake: {e}");
                    }
                    if let Ok(batch) = batch {
                        let _ = events.send(LiveEvent::Open(batch));
                    }
                    // Once the log was still for a check: the last run's files are in place.
                    if now == seen {
                        done = now;
                    }
                    if failing.take().is_some() {
                        tracing::info!("following the lake again");
                    }
                }
                // Tried again at the next check.
                Err(e) => {
                    let e = e.to_string();
                    if failing.as_ref() != Some(&e) {
                        tracing::warn!("following the lake: {e} (trying again every {every:?})");
                        failing = Some(e);
                    }
                }
            }
        }
        seen = now;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// A writer that hands whole flushes of the simulator's output to the pipeline.
struct ChannelWriter {
    buffer: Vec<u8>,
    sender: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.sender
            .send(std::mem::take(&mut self.buffer))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipeline stopped"))
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One commit interval's work: spooled input, decoded batches, closed windows.
struct Interval {
    tx: Transaction,
    spool: PathBuf,
    spool_file: std::fs::File,
    lines: u64,
    closed: Vec<RecordBatch>,
}

impl Interval {
    fn begin(lake: &Lake) -> Result<Interval, IngestError> {
        let tx = Transaction::begin(lake, WriterOptions::default())?;
        let dir = lake.staging_dir(tx.run_id());
        std::fs::create_dir_all(&dir).map_err(lake::io_error(&dir))?;
        let spool = dir.join("live.ndjson");
        let spool_file = std::fs::File::create(&spool).map_err(lake::io_error(&spool))?;
        Ok(Interval {
            tx,
            spool,
            spool_file,
            lines: 0,
            closed: Vec::new(),
        })
    }
}

/// Run the pipeline until `stop` turns true; then commit what is pending and close the open
/// windows (end of input), so nothing ingested is left without its windows.
pub async fn run(
    options: LiveOptions,
    engine: Arc<Engine>,
    events: broadcast::Sender<LiveEvent>,
    stats: Arc<LiveStats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let lake = Lake::new(&options.lake);
    lake.recover()?;
    lake.settle_window_shape(options.window.shape())?;
    let mut ingest_options = IngestOptions::new(&options.lake, Vec::new());
    ingest_options.window = options.window;
    ingest_options.venues = options.venues.clone();
    // Emitted windows past what memory keeps go to a folder of this process's own.
    let spill_folder = SpillFolder::of(&lake);
    let spill = spill_folder.fresh()?;
    let mut windows = WindowOperator::new(options.window, true, Some(spill)).await?;
    let emitted_to = preload_windows(&ingest_options, &mut windows).await?;
    let mut interval = Interval::begin(&lake)?;
    // Windows that were open when an earlier run stopped without closing them (a crash): their
    // trades are in the lake, so they go through the operator again before new trades do (which
    // close them).
    let filter = crate::ingest::open_windows_filter(options.window, "TRUE", None);
    for trades in crate::ingest::lake_trades(&options.lake, options.window, &filter).await? {
        windows.push_open(&trades, &emitted_to).await?;
    }

    // The simulator runs on its own thread, paced to wall-clock time.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
    let config = SimConfig {
        seed: options.seed,
        clock: Clock::Now,
        symbols: DEFAULT_SYMBOLS.iter().map(|s| s.0.to_string()).collect(),
        market_rate: options.rate.max(0.1),
    };
    let registry = options.venues.clone();
    let rate = options.rate.max(0.1);
    std::thread::spawn(move || {
        let mut out = ChannelWriter {
            buffer: Vec::new(),
            sender,
        };
        let _ =
            simulator::write_trades(&config, &registry, SimFormat::Ndjson, None, rate, &mut out);
    });

    let mut pending = Vec::<u8>::new();
    let mut last_commit = Instant::now();
    let mut ticker = tokio::time::interval(options.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tick_no = 0u64;
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.changed() => true,
        } || *stop.borrow();
        // Whole lines produced since the last tick.
        while let Ok(chunk) = receiver.try_recv() {
            pending.extend_from_slice(&chunk);
        }
        let cut = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<u8> = pending.drain(..cut).collect();
        if !lines.is_empty() {
            tick_no += 1;
            let tick_file = lake
                .staging_dir(interval.tx.run_id())
                .join(format!("tick-{tick_no}.ndjson"));
            std::fs::write(&tick_file, &lines).map_err(lake::io_error(&tick_file))?;
            interval
                .spool_file
                .write_all(&lines)
                .map_err(lake::io_error(&interval.spool))?;
            interval.lines += lines.iter().filter(|b| **b == b'\n').count() as u64;
            let mut chunks = Vec::new();
            let decode_options = DecodeOptions {
                batch_rows: 1 << 20,
                max_line_bytes: 1 << 20,
                rejected_at: now_micros(),
            };
            let label = PathBuf::from("simulator");
            source::decode(
                &tick_file,
                &label,
                Format::Ndjson,
                &options.venues,
                decode_options,
                &source::FormatOptions::default(),
                &mut |chunk| {
                    chunks.push(chunk);
                    Ok::<(), SourceError>(())
                },
            )?;
            std::fs::remove_file(&tick_file).map_err(lake::io_error(&tick_file))?;
            for chunk in chunks {
                let pushed = windows.push(&chunk.trades).await?;
                if let Some(watermark) = windows.watermark() {
                    stats.watermark_micros.store(watermark, Ordering::Relaxed);
                }
                interval.tx.write(Table::Trades, &chunk.trades)?;
                if chunk.rejects.num_rows() > 0 {
                    interval.tx.write(Table::Rejects, &chunk.rejects)?;
                }
                if let Some(late) = pushed.late {
                    interval.tx.write(Table::Late, &late)?;
                }
                if let Some(closed) = pushed.windows {
                    interval.tx.write(Table::Windows, &closed)?;
                    let _ = events.send(LiveEvent::Closed(closed.clone()));
                    interval.closed.push(closed);
                }
            }
        }
        if stopping {
            if let Some(closed) = windows.finish().await? {
                interval.tx.write(Table::Windows, &closed)?;
                let _ = events.send(LiveEvent::Closed(closed.clone()));
            }
        }
        // Live view: the windows closed in this interval (not yet committed) and the open ones.
        let open = windows.open_windows().await?;
        let mut live = interval.closed.clone();
        if let Some(open) = &open {
            live.push(open.clone());
            let _ = events.send(LiveEvent::Open(open.clone()));
        }
        if stopping || last_commit.elapsed() >= options.commit_every {
            let done = std::mem::replace(&mut interval, Interval::begin(&lake)?);
            commit(done, &lake, &stats)?;
            windows.committed();
            last_commit = Instant::now();
            live = open.into_iter().collect();
        }
        if let Err(e) = engine.set_live_windows(live).await {
            tracing::warn!("live windows: {e}");
        }
        if stopping {
            // The interval begun above holds nothing; dropping it removes its staging (and
            // the spill folder goes with its guard).
            return Ok(());
        }
    }
}

/// Commit an interval (its spooled input recorded as the run's source); an interval with
/// nothing in it is dropped instead. Returns whether a run was committed.
/// The interval's rows into the lake (if it holds any), counted in `stats` once they land.
fn commit(interval: Interval, lake: &Lake, stats: &LiveStats) -> Result<(), IngestError> {
    let Interval {
        mut tx,
        spool,
        spool_file,
        lines,
        ..
    } = interval;
    if tx.rows().values().all(|n| *n == 0) {
        return Ok(());
    }
    spool_file.sync_all().map_err(lake::io_error(&spool))?;
    drop(spool_file);
    let file = std::fs::File::open(&spool).map_err(lake::io_error(&spool))?;
    let (id, bytes) = lake::content_id(file, &spool)?;
    tx.add_source(SourceRecord {
        id,
        path: "simulator".into(),
        bytes,
        records: lines,
        accepted: tx.rows().get(&Table::Trades).copied().unwrap_or(0),
        rejected: tx.rows().get(&Table::Rejects).copied().unwrap_or(0),
        run: tx.run_id().to_string(),
        committed_at: crate::time::date_of(now_micros()),
    });
    let rows = tx.rows().clone();
    let run = tx.run_id().to_string();
    if let Err(e) = tx.commit() {
        // Logged, then failed while publishing: recovery rolls the run forward, so it landed.
        if lake.is_logged(&run) {
            stats.landed(&rows);
        }
        return Err(e.into());
    }
    stats.landed(&rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_figures_say_what_landed_the_watermark_and_the_lag() {
        let stats = LiveStats::default();
        let figures = stats.figures();
        assert_eq!(figures["trades_landed"], 0);
        assert!(figures["watermark"].is_null() && figures["messages_behind"].is_null());
        stats.landed(&BTreeMap::from([(Table::Trades, 1_500), (Table::Late, 2)]));
        // 2024-01-01T09:30:15.25Z: whole seconds are shown.
        stats
            .watermark_micros
            .store(1_704_101_415_250_000, Ordering::Relaxed);
        *stats.behind.lock().unwrap() = Some(45);
        let figures = stats.figures();
        assert_eq!(figures["trades_landed"], 1_500);
        assert_eq!(figures["late"], 2);
        assert_eq!(figures["rejected"], 0);
        assert_eq!(figures["watermark"], "2024-01-01T09:30:15Z");
        assert_eq!(figures["messages_behind"], 45);
    }
}
