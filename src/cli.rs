//! The command line: one Args struct per command (clap derive; every flag also reads a
//! `DARKPOOL_*` environment variable), and the glue from flags to the library.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::engine::{Engine, EngineError, EngineOptions, Scope};
use crate::human::{grouped, per_second, seconds};
use crate::ingest::kafka::{
    ingest_kafka, KafkaIngestOptions, KafkaSummary, LiveHooks, LiveViews, StartFrom,
};
use crate::ingest::restart::supervised;
use crate::ingest::{ingest_files, IngestOptions, IngestSummary};
use crate::lake::{Lake, Table, WriterOptions};
use crate::live::PipelineState;
use crate::output::{self, OutputFormat};
use crate::report::{write_report, ReportError, ReportOptions};
use crate::source::kafka::{self, KafkaOptions, Publisher};
use crate::source::simulator::{self, Clock, SimConfig, SimFormat, DEFAULT_SYMBOLS};
use crate::source::Format;
use crate::time::{parse_duration_micros, parse_timestamp};
use crate::venue::Registry;
use crate::window::WindowSpec;

/// darkpool: where equity liquidity trades — lit exchanges vs dark pools, ATSs and OTC prints.
#[derive(Debug, Parser)]
#[command(name = "darkpool", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate realistic synthetic trades (deterministic per seed) as NDJSON or CSV.
    Simulate(SimulateArgs),
    /// Land trade files (CSV, NDJSON, Parquet; `-` = stdin) in the lake and compute windows.
    Ingest(IngestArgs),
    /// Run read-only SQL (or a named query from sql/) over the lake.
    Query(QueryArgs),
    /// Write a lake table, a named query or a JSON dump of windows as Parquet or CSV for BI tools.
    Export(ExportArgs),
    /// Draw the analysis plots (PNG) and an index.html from the lake.
    Report(ReportArgs),
    /// Serve the HTTP API (heatmap data, Kepler.gl files, SQL, metrics) over a lake.
    Serve(ServeArgs),
    /// Merge the lake's small Parquet files (one per table and day each commit) into large
    /// ones, safely while other processes write and read it.
    Compact(CompactArgs),
}

/// The lake location.
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// Lake root folder (Parquet tables trades/, windows/, late/, rejects/).
    #[arg(long, env = "DARKPOOL_LAKE", default_value = "lake", value_parser = parse_lake)]
    pub lake: PathBuf,
}

/// A lake is a folder, made if missing: a file at the path or above it is refused up front (it
/// had surfaced as "Not a directory" on a file inside the lake).
fn parse_lake(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match crate::output::file_in_the_way(&path) {
        Some(file) if file == path => {
            Err("a file, not a folder (a lake is a folder; it is made if missing)".into())
        }
        Some(file) => Err(format!("{} is a file, not a folder", file.display())),
        None => Ok(path),
    }
}

/// The venue registry.
#[derive(Debug, Clone, Args)]
pub struct VenueArgs {
    /// Venue registry CSV (code,name,kind,latitude,longitude[,site,notes]); default: the built-in data/venues.csv.
    #[arg(long, env = "DARKPOOL_VENUES")]
    pub venues: Option<PathBuf>,
}

impl VenueArgs {
    fn load(&self) -> Result<Arc<Registry>> {
        Ok(Arc::new(Registry::load(self.venues.as_deref())?))
    }
}

/// Window shape.
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// Window length (event time), e.g. 5m, 1m, 30s [default: the lake's windows' (with
    /// --slide), else 5m].
    #[arg(long, env = "DARKPOOL_WINDOW")]
    pub window: Option<String>,
    /// Hop between window starts for hopping windows (default: the window length, i.e. tumbling).
    #[arg(long, env = "DARKPOOL_SLIDE")]
    pub slide: Option<String>,
    /// How far behind the newest event time a trade may arrive before its window is final.
    #[arg(long, env = "DARKPOOL_ALLOWED_LATENESS", default_value = "5s")]
    pub allowed_lateness: String,
}

impl WindowArgs {
    /// The window shape asked for; with neither --window nor --slide, the one the lake's
    /// windows have (one lake keeps one shape), else 5-minute tumbling windows.
    fn spec(&self, lake: &Path) -> Result<WindowSpec> {
        let mut spec = WindowSpec::parse(
            self.window.as_deref().unwrap_or("5m"),
            self.slide.as_deref(),
            &self.allowed_lateness,
        )?;
        if self.window.is_none() && self.slide.is_none() {
            if let Some(shape) = crate::lake::Lake::new(lake).window_shape()? {
                spec.size = shape.size;
                spec.slide = shape.slide;
            }
        }
        Ok(spec)
    }
}

/// Where Kafka is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap brokers (HOST:PORT,...): publish to / consume from Kafka instead of files.
    #[arg(long, env = "DARKPOOL_BROKERS")]
    pub brokers: Option<String>,
    /// The trade topic.
    #[arg(long, env = "DARKPOOL_TOPIC", default_value = kafka::TRADES_TOPIC)]
    pub topic: String,
    /// How long to keep trying to reach the brokers at start before giving up, e.g. 10s.
    #[arg(long, env = "DARKPOOL_CONNECT_TIMEOUT", default_value = "10s")]
    pub connect_timeout: Span,
    /// A librdkafka setting, repeatable: -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN.
    /// Variables DARKPOOL_KAFKA_<NAME> set them too (DARKPOOL_KAFKA_SASL_USERNAME=u -> sasl.username=u).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = kafka::parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Partitions of the topics darkpool creates when they do not exist [default: 3].
    #[arg(long, env = "DARKPOOL_PARTITIONS")]
    pub partitions: Option<i32>,
}

impl KafkaArgs {
    fn options(&self) -> Result<Option<KafkaOptions>> {
        let Some(brokers) = &self.brokers else {
            return Ok(None);
        };
        if brokers.trim().is_empty() {
            bail!("--brokers is empty: give HOST:PORT[,HOST:PORT...]");
        }
        if self.topic.trim().is_empty() {
            bail!("--topic is empty");
        }
        kafka::check_topic("--topic", self.topic.trim()).map_err(anyhow::Error::msg)?;
        if self.partitions.is_some_and(|n| n < 1) {
            bail!("--partitions must be at least 1");
        }
        let mut options = KafkaOptions::new(brokers.trim());
        options.connect_timeout = self.connect_timeout.duration;
        if options.connect_timeout.is_zero() {
            // It also bounds each request to the broker: at 0 every one would time out.
            bail!("--connect-timeout must be more than 0, e.g. 10s");
        }
        options.settings = kafka::env_settings();
        options.settings.extend(self.settings.iter().cloned());
        kafka::check_settings(&options.settings).map_err(anyhow::Error::msg)?;
        Ok(Some(options))
    }
}

/// How the Kafka aggregator runs (ingest --brokers, serve --brokers).
#[derive(Debug, Clone, Args)]
pub struct AggregatorArgs {
    /// Consumer group: processes with the same group split the topic's partitions.
    #[arg(long, env = "DARKPOOL_GROUP", default_value = "darkpool-aggregator")]
    pub group: String,
    /// Where to start on partitions the lake holds nothing of (on the others the lake's own
    /// offsets always win, so nothing is read twice).
    #[arg(
        long,
        env = "DARKPOOL_START_FROM",
        value_enum,
        default_value = "committed"
    )]
    pub start: StartFrom,
    /// Stop once the end offsets seen at assignment are processed, closing every open window
    /// (backfill and tests).
    #[arg(long, env = "DARKPOOL_UNTIL_END")]
    pub until_end: bool,
    /// Topic the closed windows go to as JSON (empty: none).
    #[arg(long, env = "DARKPOOL_OUTPUT_TOPIC", default_value = kafka::WINDOWS_TOPIC)]
    pub output_topic: String,
    /// Dead-letter topic: bad messages are copied there, the reason in darkpool.* headers.
    #[arg(long, env = "DARKPOOL_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
    /// A partition silent this long stops holding windows open; when all are, open windows close.
    #[arg(long, env = "DARKPOOL_IDLE_TIMEOUT", default_value = "30s")]
    pub idle_timeout: Span,
    /// Watermark alignment: a partition this far ahead in event time of the slowest one still
    /// reading is paused until that one catches up (a backfill of skewed partitions then keeps
    /// a bounded number of windows open); `off` never pauses.
    #[arg(long, env = "DARKPOOL_MAX_DRIFT", default_value = "6h")]
    pub max_drift: SpanOrOff,
    /// How often trades and closed windows are committed to the lake (and offsets to Kafka).
    #[arg(long, env = "DARKPOOL_COMMIT_EVERY", default_value = "5s")]
    pub commit_every: Span,
    /// How often a status line (trades landed and their rate, rejects, late trades, messages
    /// behind, the watermark) goes to stderr; `off` for none.
    #[arg(long, env = "DARKPOOL_STATUS_EVERY", default_value = "1m")]
    pub status_every: SpanOrOff,
    /// How often the lake's small files (a commit writes one per table and day) are merged
    /// into large ones while the pipeline runs, as `darkpool compact` does; `off` for never
    /// (one process of a group compacts at a time).
    #[arg(long, env = "DARKPOOL_COMPACT_EVERY", default_value = "10m")]
    pub compact_every: SpanOrOff,
    /// After a transient failure (the lake's disk full, the brokers gone past
    /// message.timeout.ms) start again from the lake, waiting 1s, 2s, 4s... up to 1m between
    /// tries, for at most this long in a row; `forever`, or 0s to stop at the first
    /// [default: forever; 0s with --until-end].
    #[arg(long, env = "DARKPOOL_RETRY_FOR")]
    pub retry_for: Option<RetryFor>,
}

impl AggregatorArgs {
    /// How long a pipeline keeps starting again after transient failures (`None`: no limit).
    pub fn retry_for(&self) -> Option<Duration> {
        match &self.retry_for {
            Some(RetryFor(limit)) => limit.as_ref().map(|span| span.duration),
            None if self.until_end => Some(Duration::ZERO),
            None => None,
        }
    }

    /// Refused below 100 ms (each commit writes its files and a commit record: more often
    /// only makes small files), not raised to it quietly.
    fn commit_every(&self) -> Result<Duration> {
        let every = self.commit_every.duration;
        if every < Duration::from_millis(100) {
            bail!(
                "--commit-every must be at least 100ms, got {}",
                self.commit_every
            );
        }
        Ok(every)
    }

    fn options(
        &self,
        kafka: KafkaOptions,
        topic: &str,
        ingest: IngestOptions,
    ) -> Result<KafkaIngestOptions> {
        let mut options = KafkaIngestOptions::new(kafka, ingest);
        options.topic = topic.trim().to_string();
        options.group = self.group.trim().to_string();
        if options.group.is_empty() {
            bail!("--group is empty: give the consumer group's name");
        }
        options.start = self.start;
        options.until_end = self.until_end;
        options.output_topic = Some(self.output_topic.trim().to_string()).filter(|t| !t.is_empty());
        options.dlq_topic = self
            .dlq_topic
            .as_ref()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        options.idle_timeout = self.idle_timeout.duration;
        if options.idle_timeout.is_zero() {
            // Every partition would count as idle at once: windows would close early and be
            // corrected by the trades still to come (Flink's withIdleness, likewise, takes only
            // more than zero).
            bail!("--idle-timeout must be more than 0, e.g. 30s");
        }
        options.max_drift = self.max_drift.0.as_ref().map(|span| {
            // At most 3.65e13 µs (`parse_duration_micros`' bound).
            i64::try_from(span.duration.as_micros())
                .unwrap_or(i64::MAX)
                .max(1)
        });
        options.commit_every = self.commit_every()?;
        options.status_every = self.status_every.every("--status-every")?;
        for (flag, written) in [
            ("--output-topic", &options.output_topic),
            ("--dlq-topic", &options.dlq_topic),
        ] {
            if let Some(topic) = written {
                kafka::check_topic(flag, topic).map_err(anyhow::Error::msg)?;
            }
            if written.as_deref() == Some(options.topic.as_str()) {
                bail!(
                    "{flag} {} is the topic read (--topic): the aggregator would read back what it writes, for ever",
                    options.topic
                );
            }
        }
        if let (Some(windows), Some(dlq)) = (&options.output_topic, &options.dlq_topic) {
            if windows == dlq {
                bail!(
                    "--dlq-topic {dlq} is the window topic (--output-topic): its readers would get the dead letters' raw bytes among the windows"
                );
            }
        }
        Ok(options)
    }

    /// The topics the aggregator writes (created when missing).
    fn output_topics(&self) -> Vec<&str> {
        [
            Some(self.output_topic.trim()),
            self.dlq_topic.as_deref().map(str::trim),
        ]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect()
    }
}

/// A duration flag's value: `500ms`, `5s`, `5m`, `1h`, `1d` or a bare number of seconds. Read
/// when the arguments are parsed, so a bad one is refused there, naming the flag (or its
/// variable), as a bad number is; the flags' own bounds are checked where they are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub duration: Duration,
    /// As given (trimmed), for messages.
    text: String,
}

impl std::str::FromStr for Span {
    type Err = crate::time::DurationError;

    fn from_str(text: &str) -> Result<Span, Self::Err> {
        let micros = parse_duration_micros(text)?;
        Ok(Span {
            duration: Duration::from_micros(micros.max(0) as u64),
            text: text.trim().to_string(),
        })
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `--max-drift`, `--status-every`: a [`Span`], or `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanOrOff(pub Option<Span>);

impl std::str::FromStr for SpanOrOff {
    type Err = String;

    fn from_str(text: &str) -> Result<SpanOrOff, String> {
        span_or(text, "off").map(SpanOrOff)
    }
}

/// `--retry-for`: a [`Span`], or `forever`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryFor(pub Option<Span>);

impl std::str::FromStr for RetryFor {
    type Err = String;

    fn from_str(text: &str) -> Result<RetryFor, String> {
        span_or(text, "forever").map(RetryFor)
    }
}

impl SpanOrOff {
    /// `--status-every`, `--compact-every`: how often, if at all (more than 0).
    fn every(&self, flag: &str) -> Result<Option<Duration>> {
        match &self.0 {
            Some(span) if span.duration.is_zero() => {
                bail!("{flag} must be more than 0 (or `off`), e.g. 1m")
            }
            span => Ok(span.as_ref().map(|span| span.duration)),
        }
    }
}

/// `simulate --brokers`' status line, every `--status-every`.
struct PublishStatus {
    every: Option<Duration>,
    last: std::time::Instant,
    sent_then: u64,
}

impl PublishStatus {
    fn new(every: Option<Duration>) -> PublishStatus {
        PublishStatus {
            every,
            last: std::time::Instant::now(),
            sent_then: 0,
        }
    }

    /// The line, when one is due.
    fn due(&mut self, sent: u64, acknowledged: u64) -> Option<String> {
        let over = self.last.elapsed();
        if over < self.every? {
            return None;
        }
        let fresh = sent.saturating_sub(self.sent_then);
        (self.last, self.sent_then) = (std::time::Instant::now(), sent);
        Some(format!(
            "status: {} trade(s) published (+{} in {}, {}/s), {} acknowledged",
            grouped(sent),
            grouped(fresh),
            seconds(over),
            grouped(per_second(fresh, over)),
            grouped(acknowledged)
        ))
    }
}

/// A [`Span`], or `word` for none.
fn span_or(text: &str, word: &str) -> Result<Option<Span>, String> {
    if text.trim() == word {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e: crate::time::DurationError| format!("{e} (or `{word}`)"))
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of trades (default: run until stopped; with --input, the whole file).
    #[arg(long, env = "DARKPOOL_COUNT")]
    pub count: Option<u64>,
    /// Random seed: the same seed and flags give byte-identical output.
    #[arg(long, env = "DARKPOOL_SEED", default_value_t = 42)]
    pub seed: u64,
    /// First event time (ISO-8601) or `now` for wall-clock timestamps [default: 2024-01-01T09:30:00Z with --count, else now].
    #[arg(long, env = "DARKPOOL_START")]
    pub start: Option<String>,
    /// Pacing in trades per wall-clock second; 0 = as fast as possible [default: 0 with --count or --input, else 50].
    #[arg(long, env = "DARKPOOL_RATE")]
    pub rate: Option<f64>,
    /// Average trades per second of market time on the synthetic clock.
    #[arg(long, env = "DARKPOOL_MARKET_RATE", default_value_t = 50.0)]
    pub market_rate: f64,
    /// Output shape.
    #[arg(
        long,
        env = "DARKPOOL_SIM_FORMAT",
        value_enum,
        default_value = "ndjson"
    )]
    pub format: SimFormat,
    /// Output file (default: stdout). Written to a temporary name and renamed when complete.
    #[arg(long, short, env = "DARKPOOL_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Comma-separated symbols [default: SYNTH_SPY,SYNTH_AMZN,SYNTH_TSLA,SYNTH_AAPL,SYNTH_NVDA,SYNTH_MSFT,SYNTH_META,SYNTH_QQQ].
    #[arg(long, env = "DARKPOOL_SYMBOLS", value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// With --brokers: publish the trades of this CSV/NDJSON file instead of simulated ones
    /// (the original producer's replay).
    #[arg(long, env = "DARKPOOL_INPUT", requires = "brokers")]
    pub input: Option<PathBuf>,
    /// With --brokers: how often a status line (trades published and acknowledged, the rate)
    /// goes to stderr; `off` for none.
    #[arg(long, env = "DARKPOOL_STATUS_EVERY", default_value = "1m")]
    pub status_every: SpanOrOff,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub venues: VenueArgs,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Input files (.csv, .ndjson/.jsonl/.json, .parquet, FINRA ATS JSON or pipe files, Reg SHO
    /// files, TAQ-style CSV); `-` reads standard input. Not with --brokers.
    #[arg(required_unless_present = "brokers", conflicts_with = "brokers")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub aggregator: AggregatorArgs,
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Input format, overriding what the file name, first line or extension says.
    #[arg(long, env = "DARKPOOL_FORMAT", value_enum)]
    pub format: Option<Format>,
    /// Week start (a Monday, YYYY-MM-DD) of FINRA ATS pipe files without a weekStartDate
    /// column [default: the date in the file name].
    #[arg(long, env = "DARKPOOL_WEEK", value_parser = parse_week)]
    pub week: Option<i32>,
    /// Reg SHO facility code (CNMS, FNSQ, FNQC, FNYX, FNRA, FORF) [default: the file name's
    /// prefix, as in CNMSshvol20240102.txt].
    #[arg(long, env = "DARKPOOL_FACILITY")]
    pub facility: Option<String>,
    /// TAQ column names that differ from SYMBOL,DATE,TIME,PRICE,SIZE,CORR,COND,EX(,TRF), as
    /// field=HEADER pairs: e.g. symbol=TICKER,time=TRADE_TIME.
    #[arg(long, env = "DARKPOOL_TAQ_COLUMNS", value_parser = crate::source::taq::ColumnNames::parse, default_value = "")]
    pub taq_columns: crate::source::taq::ColumnNames,
    #[command(flatten)]
    pub venues: VenueArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Re-emit a final window as a new version when late trades change it.
    #[arg(long, env = "DARKPOOL_REEMIT_LATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub reemit_late: bool,
    /// Rows per Arrow micro-batch.
    #[arg(long, env = "DARKPOOL_BATCH_ROWS", default_value_t = 32 * 1024)]
    pub batch_rows: usize,
    /// Emitted window rows kept in memory (for corrections) before the oldest spill to disk.
    #[arg(long, env = "DARKPOOL_WINDOW_MEMORY_ROWS", default_value_t = crate::window::SPILL_AT_ROWS)]
    pub window_memory_rows: usize,
    /// Longest accepted input line in bytes; longer lines are rejected (their first bytes kept).
    #[arg(long, env = "DARKPOOL_MAX_LINE_BYTES", default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// Roll to a new Parquet file after this many rows.
    #[arg(long, env = "DARKPOOL_FILE_ROWS", default_value_t = 2_000_000)]
    pub file_rows: usize,
    /// Roll to a new Parquet file after about this many bytes (e.g. 256M).
    #[arg(long, env = "DARKPOOL_FILE_BYTES", default_value = "256M", value_parser = parse_bytes)]
    pub file_bytes: usize,
    /// Never draw a progress bar.
    #[arg(long, env = "DARKPOOL_NO_PROGRESS")]
    pub no_progress: bool,
    /// With --brokers: serve the member's /metrics (Prometheus: trades landed, rejects, late
    /// trades, commits, restarts, consumer lag, watermark) and /healthz on this address, e.g.
    /// 0.0.0.0:9464.
    #[arg(long, env = "DARKPOOL_METRICS_BIND")]
    pub metrics_bind: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// SQL text, or the name of a query in sql/ (see --list).
    pub query: Option<String>,
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Read the SQL from this file.
    #[arg(long, short, env = "DARKPOOL_QUERY_FILE", conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// List tables with their columns, and the named queries.
    #[arg(long)]
    pub list: bool,
    /// A value for a `$NAME` placeholder of the query (repeatable): --param symbol=AAPL.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Output format.
    #[arg(
        long,
        env = "DARKPOOL_QUERY_FORMAT",
        value_enum,
        default_value = "table"
    )]
    pub format: OutputFormat,
    /// Write to this file instead of stdout (appears complete or not at all).
    #[arg(long, short, env = "DARKPOOL_QUERY_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Rows to print (0 = all) [default: 40 for table, all for other formats].
    #[arg(long, env = "DARKPOOL_MAXROWS")]
    pub maxrows: Option<usize>,
    /// Most rows a query may return before it is cut off.
    #[arg(long, env = "DARKPOOL_ROW_LIMIT", default_value_t = 1_000_000)]
    pub row_limit: usize,
    /// Query time limit, e.g. 30s, 2m.
    #[arg(long, env = "DARKPOOL_TIMEOUT", default_value = "60s")]
    pub timeout: Span,
    /// Memory a query may use, e.g. 512M, 4G.
    #[arg(long, env = "DARKPOOL_MEMORY_LIMIT", default_value = "4G", value_parser = parse_bytes)]
    pub memory_limit: usize,
    /// Folder of named queries (*.sql) overriding the built-in ones.
    #[arg(long, env = "DARKPOOL_SQL_DIR", default_value = "sql")]
    pub sql_dir: PathBuf,
    #[command(flatten)]
    pub venues: VenueArgs,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// What to export: trades, windows, window_history, late, rejects, venues, or a named query.
    #[arg(
        long,
        env = "DARKPOOL_EXPORT_TABLE",
        required_unless_present = "input",
        conflicts_with = "input"
    )]
    pub table: Option<String>,
    /// Convert this JSON dump (the original API's heatmap_data shape) instead of reading the lake.
    #[arg(long, env = "DARKPOOL_EXPORT_INPUT")]
    pub input: Option<PathBuf>,
    /// Output format [default: from --out's extension (.csv, .parquet), else parquet].
    #[arg(long, env = "DARKPOOL_EXPORT_FORMAT", value_enum)]
    pub format: Option<crate::export::ExportFormat>,
    /// Output file, or folder with --partition-by date. Appears complete or not at all.
    #[arg(long, env = "DARKPOOL_EXPORT_OUT")]
    pub out: PathBuf,
    /// Split into date=YYYY-MM-DD/ folders.
    #[arg(long, env = "DARKPOOL_EXPORT_PARTITION_BY", value_parser = ["date"])]
    pub partition_by: Option<String>,
    /// Never draw a progress indicator.
    #[arg(long, env = "DARKPOOL_NO_PROGRESS")]
    pub no_progress: bool,
    #[command(flatten)]
    pub venues: VenueArgs,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Tables to compact, by folder name: trades, windows, late, rejects, ats_weekly,
    /// short_volume (repeatable or comma-separated) [default: all].
    #[arg(long, env = "DARKPOOL_COMPACT_TABLE", value_delimiter = ',', value_parser = parse_table)]
    pub table: Vec<Table>,
    /// Rows of a merged file; files under half of it (and under half of --file-bytes) are
    /// merged.
    #[arg(long, env = "DARKPOOL_FILE_ROWS", default_value_t = 2_000_000)]
    pub file_rows: usize,
    /// Bytes of a merged file, about (e.g. 256M).
    #[arg(long, env = "DARKPOOL_FILE_BYTES", default_value = "256M", value_parser = parse_bytes)]
    pub file_bytes: usize,
    /// Say what would be merged, and change nothing.
    #[arg(long, env = "DARKPOOL_COMPACT_DRY_RUN")]
    pub dry_run: bool,
}

/// A lake table by its folder name.
fn parse_table(text: &str) -> Result<Table, String> {
    let name = text.trim();
    Table::ALL
        .into_iter()
        .find(|t| t.dir_name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Table::ALL.iter().map(|t| t.dir_name()).collect();
            format!(
                "no table '{name}'; the lake's tables are {}",
                names.join(", ")
            )
        })
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Output folder for the PNGs and index.html (created if missing).
    #[arg(long, env = "DARKPOOL_REPORT_OUT", default_value = "analysis_plots")]
    pub out: PathBuf,
    /// Only windows and trades at or after this time (ISO-8601 or a date; no offset = UTC).
    #[arg(long, env = "DARKPOOL_REPORT_FROM")]
    pub from: Option<String>,
    /// Only windows and trades before this time (ISO-8601 or a date; no offset = UTC).
    #[arg(long, env = "DARKPOOL_REPORT_TO")]
    pub to: Option<String>,
    /// Only these symbols (comma-separated).
    #[arg(long, env = "DARKPOOL_REPORT_SYMBOLS", value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// Folder of analysis queries (*.sql) overriding the built-in ones of the same name.
    #[arg(long, env = "DARKPOOL_ANALYSIS_DIR", default_value = "analysis")]
    pub analysis_dir: PathBuf,
    /// Query time limit per plot, e.g. 30s, 2m.
    #[arg(long, env = "DARKPOOL_TIMEOUT", default_value = "120s")]
    pub timeout: Span,
    /// Memory a query may use, e.g. 512M, 4G.
    #[arg(long, env = "DARKPOOL_MEMORY_LIMIT", default_value = "4G", value_parser = parse_bytes)]
    pub memory_limit: usize,
    #[command(flatten)]
    pub venues: VenueArgs,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Address to listen on (the original API's port is 5001).
    #[arg(long, env = "DARKPOOL_BIND", default_value = "0.0.0.0:5001")]
    pub bind: String,
    /// Most rows one API query returns; more are cut off (header x-darkpool-truncated: true).
    #[arg(long, env = "DARKPOOL_ROW_LIMIT", default_value_t = 100_000)]
    pub row_limit: usize,
    /// Time limit of one API query, e.g. 30s.
    #[arg(long, env = "DARKPOOL_TIMEOUT", default_value = "30s")]
    pub timeout: Span,
    /// Memory one API query may use, e.g. 512M, 2G.
    #[arg(long, env = "DARKPOOL_MEMORY_LIMIT", default_value = "2G", value_parser = parse_bytes)]
    pub memory_limit: usize,
    /// Largest request body (SQL text or JSON), e.g. 1M.
    #[arg(long, env = "DARKPOOL_MAX_BODY", default_value = "1M", value_parser = parse_bytes)]
    pub max_body: usize,
    /// Most windows /api/heatmap_data and the Kepler.gl files return (the newest).
    #[arg(long, env = "DARKPOOL_HEATMAP_ROWS", default_value_t = 5000)]
    pub heatmap_rows: usize,
    /// How long /api/heatmap_data* and /api/dashboard responses are reused, e.g. 1s (0: never).
    #[arg(long, env = "DARKPOOL_CACHE_TTL", default_value = "1s")]
    pub cache_ttl: Span,
    /// Folder of named queries (*.sql) overriding the built-in ones.
    #[arg(long, env = "DARKPOOL_SQL_DIR", default_value = "sql")]
    pub sql_dir: PathBuf,
    /// Only serve the lake (other processes fill it); no in-process simulated pipeline.
    #[arg(long, env = "DARKPOOL_NO_INGEST")]
    pub no_ingest: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub aggregator: AggregatorArgs,
    /// Simulated trades per second for the in-process pipeline.
    #[arg(long, env = "DARKPOOL_RATE", default_value_t = 50.0)]
    pub rate: f64,
    /// Seed of the in-process simulator.
    #[arg(long, env = "DARKPOOL_SEED", default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub venues: VenueArgs,
    #[command(flatten)]
    pub window: WindowArgs,
}

/// An error with the exit code it should produce.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

/// Parse `512M`, `4G`, `1000` into bytes.
/// `--week`: a Monday, as days since the epoch.
fn parse_week(text: &str) -> Result<i32, String> {
    let days = crate::time::parse_date(text)
        .map_err(|e| format!("'{text}' is not a date like 2024-01-08: {e}"))?;
    crate::source::finra::check_week(days)?;
    i32::try_from(days).map_err(|_| format!("'{text}' is out of range"))
}

/// `--param NAME=VALUE`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not NAME=VALUE"))?;
    let name = name.trim().trim_start_matches('$');
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "'{name}' is not a parameter name (letters, digits, _)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let not_a_size = || format!("'{text}' is not a size like 512M or 4G");
    let value: f64 = number.parse().map_err(|_| not_a_size())?;
    let scale = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(not_a_size()),
    };
    Ok((value * scale) as usize)
}

/// `value` as given for `flag`, or an error below `min`: raising it quietly would run with
/// something other than what was asked.
fn at_least(value: usize, min: usize, flag: &str) -> Result<usize> {
    if value < min {
        bail!("{flag} must be at least {min}, got {value}");
    }
    Ok(value)
}

/// `--memory-limit`: the query pool, at least 16 MiB.
fn memory_limit(bytes: usize) -> Result<usize> {
    at_least(bytes, 16 << 20, "--memory-limit (bytes)")
}

pub fn simulate(args: SimulateArgs) -> Result<()> {
    let registry = args.venues.load()?;
    let clock = match args.start.as_deref() {
        Some("now") => Clock::Now,
        Some(text) => {
            Clock::Market(parse_timestamp(text).map_err(|e| anyhow!("--start '{text}': {e}"))?)
        }
        None if args.count.is_some() => {
            Clock::Market(parse_timestamp("2024-01-01T09:30:00Z").unwrap_or(0))
        }
        None => Clock::Now,
    };
    let symbols: Vec<String> = if args.symbols.is_empty() {
        DEFAULT_SYMBOLS.iter().map(|s| s.0.to_string()).collect()
    } else {
        args.symbols.iter().map(|s| s.trim().to_string()).collect()
    };
    if let Some(bad) = symbols
        .iter()
        .find(|s| s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"'))
    {
        bail!("--symbols: '{bad}' is not a symbol (no spaces or quotes)");
    }
    if !(args.market_rate > 0.0 && args.market_rate.is_finite()) {
        bail!("--market-rate must be a positive number of trades per second");
    }
    let rate = args
        .rate
        .unwrap_or(if args.count.is_some() { 0.0 } else { 50.0 });
    if !(rate >= 0.0 && rate.is_finite()) {
        bail!("--rate must be 0 (as fast as possible) or a positive number of trades per second");
    }
    let config = SimConfig {
        seed: args.seed,
        clock,
        symbols,
        market_rate: args.market_rate,
    };
    if let Some(kafka) = args.kafka.options()? {
        return produce(&args, &kafka, &config, &registry, rate);
    }
    let run = |out: &mut dyn Write| -> Result<()> {
        let n = simulator::write_trades(&config, &registry, args.format, args.count, rate, out)?;
        tracing::info!("wrote {n} trades");
        Ok(())
    };
    match &args.output {
        Some(path) if args.count.is_some() => write_output(path, run),
        Some(path) => {
            // Unbounded: written as it goes (there is no "complete" to wait for).
            make_parent(path)?;
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            run(&mut std::io::BufWriter::new(file))
                .with_context(|| format!("cannot write {}", path.display()))
        }
        None => run(&mut std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        ))
        .context("cannot write to standard output"),
    }
}

/// `simulate --brokers`: simulated trades (or a file's) onto the trade topic, key = symbol.
fn produce(
    args: &SimulateArgs,
    kafka: &KafkaOptions,
    config: &SimConfig,
    registry: &Registry,
    rate: f64,
) -> Result<()> {
    let mut status = PublishStatus::new(args.status_every.every("--status-every")?);
    // A file that cannot be read fails before the broker is asked or the topic created.
    if let Some(path) = &args.input {
        std::fs::File::open(path).map_err(|source| crate::source::SourceError::Io {
            path: path.clone(),
            source,
        })?;
    }
    kafka::check_reachable(kafka, None)?;
    let topic = args.kafka.topic.trim();
    let differing = tokio::runtime::Handle::current().block_on(kafka::ensure_topics(
        kafka,
        &[topic],
        args.kafka.partitions,
    ))?;
    note_partitions(&differing);
    // Ctrl-C / SIGTERM: the first stops the publishing (what was queued is still waited for),
    // one during that wait gives up what is not acknowledged.
    let signals = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = signals.clone();
    tokio::runtime::Handle::current().spawn(async move {
        loop {
            shutdown_signal().await;
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let stopping = || signals.load(Ordering::Relaxed) > 0;
    let mut publisher = Publisher::new(kafka)?.interruptible(signals.clone());
    let started = std::time::Instant::now();
    // What a stop asked for ends the publishing with: a normal end, not a failure.
    const STOPPED: &str = "stopped by Ctrl-C or SIGTERM";
    let interrupted = || std::io::Error::new(std::io::ErrorKind::Interrupted, STOPPED);
    let mut failure: Option<anyhow::Error> = None;
    let produced = match &args.input {
        Some(path) => {
            // A file goes as fast as it can unless --rate says otherwise.
            let mut pacer = simulator::Pacer::new(args.rate.unwrap_or(0.0));
            kafka::replay_file(path, args.count, &mut |(key, value)| {
                if stopping() {
                    return Err(kafka::KafkaError::Source(crate::source::SourceError::Sink(
                        STOPPED.into(),
                    )));
                }
                publisher.send(topic, key.as_deref().map(str::as_bytes), Some(&value), None)?;
                if let Some(line) = status.due(publisher.sent(), publisher.delivered()) {
                    crate::say!("{line}");
                }
                if let Some(wait) = pacer.sent_one() {
                    std::thread::sleep(wait);
                }
                Ok(())
            })
        }
        None => simulator::each_trade(
            config,
            registry,
            SimFormat::Ndjson,
            args.count,
            rate,
            &mut |step| {
                if stopping() {
                    return Err(interrupted());
                }
                match step {
                    simulator::Step::Trade { symbol, line } => {
                        publisher
                            .send(
                                topic,
                                Some(symbol.as_bytes()),
                                Some(line.trim_end().as_bytes()),
                                None,
                            )
                            .map_err(|e| match e {
                                kafka::KafkaError::Stopped => interrupted(),
                                e => {
                                    let text = e.to_string();
                                    failure = Some(e.into());
                                    std::io::Error::other(text)
                                }
                            })?;
                        if let Some(line) = status.due(publisher.sent(), publisher.delivered()) {
                            crate::say!("{line}");
                        }
                        Ok(())
                    }
                    simulator::Step::Pause => Ok(()),
                }
            },
        )
        .map_err(|e| kafka::KafkaError::Source(crate::source::SourceError::Sink(e.to_string()))),
    };
    // Whatever happened, wait for the acknowledgements of what was queued.
    let flushed = publisher.flush(topic);
    crate::say!(
        "published {} trade(s) to {topic} at {} ({} acknowledged) in {:.2} s",
        grouped(publisher.sent()),
        kafka.brokers,
        grouped(publisher.delivered()),
        started.elapsed().as_secs_f64()
    );
    if let Some(e) = failure {
        return Err(e);
    }
    match produced {
        Err(kafka::KafkaError::Stopped) => {}
        Err(kafka::KafkaError::Source(crate::source::SourceError::Sink(m)))
            if m.contains(STOPPED) => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    flushed?;
    Ok(())
}

pub async fn ingest(args: IngestArgs) -> Result<()> {
    let kafka = args.kafka.options()?;
    let mut options = IngestOptions::new(&args.lake.lake, args.inputs.clone());
    options.format = args.format;
    options.formats = crate::source::FormatOptions {
        week: args.week,
        facility: args.facility.clone(),
        taq_columns: args.taq_columns.clone(),
    };
    options.venues = args.venues.load()?;
    options.window = args.window.spec(&args.lake.lake)?;
    options.reemit_late = args.reemit_late;
    options.batch_rows = at_least(args.batch_rows, 1, "--batch-rows")?;
    options.window_memory_rows = at_least(args.window_memory_rows, 1, "--window-memory-rows")?;
    // Below 64 bytes not even a minimal trade fits.
    options.max_line_bytes = at_least(args.max_line_bytes, 64, "--max-line-bytes")?;
    options.writer = WriterOptions {
        file_rows: at_least(args.file_rows, 1, "--file-rows")?,
        file_bytes: at_least(args.file_bytes, 1 << 20, "--file-bytes (bytes)")?,
        ..WriterOptions::default()
    };
    options.progress = !args.no_progress;
    if let Some(kafka) = kafka {
        // Checked before any topic is created.
        let options = args
            .aggregator
            .options(kafka.clone(), &args.kafka.topic, options)?;
        // Listening (or refused) before any broker is asked.
        let stats = Arc::new(crate::live::LiveStats::default());
        let state = Arc::new(tokio::sync::watch::Sender::new(PipelineState::Running));
        let hooks = match &args.metrics_bind {
            Some(bind) => {
                serve_member_metrics(bind, stats.clone(), state.subscribe()).await?;
                LiveHooks {
                    stats: Some(stats.clone()),
                    views: None,
                }
            }
            None => LiveHooks::default(),
        };
        let topics = args.aggregator.output_topics();
        if !topics.is_empty() {
            let check = kafka.clone();
            tokio::task::spawn_blocking(move || kafka::check_reachable(&check, None)).await??;
            note_partitions(&kafka::ensure_topics(&kafka, &topics, args.kafka.partitions).await?);
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        if let Some(every) = args.aggregator.compact_every.every("--compact-every")? {
            let lake = Lake::new(&args.lake.lake);
            tokio::spawn(compact_every(lake, every, options.ingest.writer));
        }
        crate::say!(
            "consuming {} at {} as group {} into {} (Ctrl-C stops)",
            options.topic,
            options.kafka.brokers,
            options.group,
            args.lake.lake.display()
        );
        let started = Instant::now();
        // Counts on over the runs started again after a transient failure.
        let counted = Arc::new(tokio::sync::Mutex::new(KafkaSummary::default()));
        let mut waited = Duration::ZERO;
        let restarts = supervised(
            args.aggregator.retry_for(),
            &stop_rx,
            (&stats, &state),
            || {
                let (options, hooks, stop, counted) = (
                    options.clone(),
                    hooks.clone(),
                    stop_rx.clone(),
                    counted.clone(),
                );
                async move { ingest_kafka(options, hooks, stop, &mut *counted.lock().await).await }
            },
            |error, wait| {
                waited += wait;
                tracing::warn!("{}", restarting(error, wait));
            },
        )
        .await?;
        let mut summary = counted.lock().await.clone();
        if restarts > 0 {
            summary.restarts = restarts;
            summary.waited = waited;
            summary.elapsed = started.elapsed();
        }
        crate::say_part!(
            "{}",
            format_kafka_summary(&summary, &options, &args.lake.lake)
        );
        return Ok(());
    }
    let summary = ingest_files(options).await?;
    crate::say_part!("{}", format_summary(&summary, &args.lake.lake));
    Ok(())
}

/// `ingest --metrics-bind`: the member's `/metrics` and `/healthz`, served on the runtime for
/// as long as the process runs.
async fn serve_member_metrics(
    bind: &str,
    stats: Arc<crate::live::LiveStats>,
    state: tokio::sync::watch::Receiver<PipelineState>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(bind.trim())
        .await
        .with_context(|| format!("cannot listen on {bind} (--metrics-bind)"))?;
    let local = listener.local_addr()?;
    crate::say!("metrics on http://{local}/metrics, health on http://{local}/healthz");
    let app = crate::api::health::pipeline_router(stats, state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the metrics server on {local} stopped: {e}");
        }
    });
    Ok(())
}

/// A pipeline's transient failure, and when it starts again.
fn restarting(error: &crate::ingest::IngestError, wait: Duration) -> String {
    format!(
        "{error}; a transient failure: starting again from the lake in {} (--retry-for bounds \
         how long)",
        crate::time::format_duration(wait.as_micros() as i64)
    )
}

/// The end-of-run report of the Kafka aggregator.
pub fn format_kafka_summary(s: &KafkaSummary, options: &KafkaIngestOptions, lake: &Path) -> String {
    let mut out = String::new();
    let t = &s.decode;
    let _ = writeln!(
        out,
        "consumed {} into {} in {:.2} s: {} commit(s), {} rebalance(s)",
        options.topic,
        lake.display(),
        s.elapsed.as_secs_f64(),
        grouped(s.commits),
        grouped(s.rebalances)
    );
    let _ = writeln!(
        out,
        "  messages  {:>12} ({:.1} MB)",
        grouped(t.records),
        t.bytes as f64 / 1e6
    );
    write_outcome(&mut out, t);
    if let Some(dlq) = &options.dlq_topic {
        let _ = writeln!(
            out,
            "  dead letters {:>9} to {dlq}",
            grouped(s.dead_letters)
        );
    }
    write_late(&mut out, &s.windows);
    let _ = writeln!(
        out,
        "  windows   {:>12} rows written, {} published to {}",
        grouped(s.rows.get(&Table::Windows).copied().unwrap_or(0)),
        grouped(s.windows_published),
        options.output_topic.as_deref().unwrap_or("(no topic)")
    );
    if s.alignment_pauses > 0 {
        let _ = writeln!(
            out,
            "  aligned   {:>12} partition pause(s): partitions over --max-drift {} ahead in event time waited for the others",
            grouped(s.alignment_pauses),
            options
                .max_drift
                .map_or_else(|| "off".to_string(), crate::time::format_duration)
        );
    }
    if s.skipped > 0 || s.conflicts > 0 {
        let _ = writeln!(
            out,
            "  already in the lake: {} message(s) skipped, {} run(s) re-read after another member landed them",
            grouped(s.skipped),
            grouped(s.conflicts)
        );
    }
    if s.lost_to_retention > 0 {
        let _ = writeln!(
            out,
            "  lost      {:>12} offset(s) deleted by the broker's retention before they were read",
            grouped(s.lost_to_retention)
        );
    }
    if s.restarts > 0 {
        let _ = writeln!(
            out,
            "  restarts  {:>12} after transient failures, {:.0} s of waiting in all",
            grouped(s.restarts),
            s.waited.as_secs_f64()
        );
    }
    write_unknown_venues(&mut out, t);
    let _ = writeln!(
        out,
        "  speed     {:>12} trades/s",
        grouped((t.accepted as f64 / s.elapsed.as_secs_f64().max(1e-9)) as u64)
    );
    // The start (broker check, group join: about a second, whatever the size) apart from the
    // reading, which is what a long backfill runs at.
    if let Some(first) = s.first_message.filter(|first| *first < s.elapsed) {
        let reading = (s.elapsed - first).as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "  reading   {:>12} trades/s from the first message, {:.2} s after the start",
            grouped((t.accepted as f64 / reading) as u64),
            first.as_secs_f64()
        );
    }
    out
}

/// The end-of-ingest report.
pub fn format_summary(s: &IngestSummary, lake: &Path) -> String {
    let mut out = String::new();
    let skipped: Vec<&crate::ingest::InputReport> = s
        .inputs
        .iter()
        .filter(|i| i.already_ingested.is_some())
        .collect();
    for input in &skipped {
        let _ = writeln!(
            out,
            "skipped {}: the lake already holds this content (run {}); nothing was counted twice",
            input.path.display(),
            input.already_ingested.as_deref().unwrap_or("?")
        );
    }
    let ingested = s.inputs.len() - skipped.len();
    if ingested == 0 {
        let _ = writeln!(out, "nothing new to ingest into {}", lake.display());
        return out;
    }
    if ingested > 1
        || s.inputs.iter().any(|i| {
            i.format.table() != Table::Trades
                || !i.stats.flagged.is_empty()
                || !i.stats.excluded.is_empty()
        })
    {
        for input in s.inputs.iter().filter(|i| i.already_ingested.is_none()) {
            out.push_str(&format_input(input));
        }
    }
    let t = &s.totals;
    let _ = writeln!(
        out,
        "ingested {ingested} input(s) into {} in {:.2} s",
        lake.display(),
        s.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  read      {:>12} records ({:.1} MB)",
        grouped(t.records),
        t.bytes as f64 / 1e6
    );
    write_outcome(&mut out, t);
    write_late(&mut out, &s.windows);
    let _ = writeln!(
        out,
        "  windows   {:>12} rows written",
        grouped(s.rows.get(&Table::Windows).copied().unwrap_or(0))
    );
    write_unknown_venues(&mut out, t);
    if t.blank_lines > 0 {
        let _ = writeln!(out, "  blank lines skipped: {}", grouped(t.blank_lines));
    }
    let _ = writeln!(
        out,
        "  speed     {:>12} trades/s, {:.1} MB/s ({} files, run {})",
        grouped(s.trades_per_second() as u64),
        s.megabytes_per_second(),
        s.files,
        s.run.as_deref().unwrap_or("-")
    );
    out
}

/// The summary's accepted and rejected lines (with the reasons).
fn write_outcome(out: &mut String, t: &crate::source::DecodeStats) {
    let _ = writeln!(out, "  accepted  {:>12}", grouped(t.accepted));
    let _ = write!(out, "  rejected  {:>12}", grouped(t.rejected_total()));
    if t.rejected_total() > 0 {
        let reasons: Vec<String> = t
            .rejected
            .iter()
            .map(|(k, v)| format!("{k} {}", grouped(*v)))
            .collect();
        let _ = write!(out, "  ({}; see the rejects table)", reasons.join(", "));
    }
    out.push('\n');
}

/// The summary's late-trades line.
fn write_late(out: &mut String, w: &crate::window::WindowStats) {
    let _ = writeln!(
        out,
        "  late      {:>12}  (corrected window versions: {})",
        grouped(w.late_trades),
        grouped(w.corrections)
    );
}

/// The summary's unknown-venues line, when there are any.
fn write_unknown_venues(out: &mut String, t: &crate::source::DecodeStats) {
    if t.unknown_venues.is_empty() {
        return;
    }
    let list: Vec<String> = t
        .unknown_venues
        .iter()
        .take(10)
        .map(|(k, v)| format!("{k} ({})", grouped(*v)))
        .collect();
    let _ = writeln!(
        out,
        "  unknown venues (kept, kind 'unknown'): {}",
        list.join(", ")
    );
}

/// One input's line of the ingest summary: format, table, counts and reasons.
fn format_input(input: &crate::ingest::InputReport) -> String {
    let st = &input.stats;
    let counts = |map: &std::collections::BTreeMap<&'static str, u64>| {
        map.iter()
            .map(|(k, v)| format!("{k} {}", grouped(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = format!(
        "  {} ({} -> {}): {} records, {} accepted, {} rejected",
        input.path.display(),
        input.format.name(),
        input.format.table().dir_name(),
        grouped(st.records),
        grouped(st.accepted),
        grouped(st.rejected_total()),
    );
    if !st.rejected.is_empty() {
        let _ = write!(line, " ({})", counts(&st.rejected));
    }
    if !st.excluded.is_empty() {
        let _ = write!(
            line,
            "; excluded {} (kept in rejects)",
            counts(&st.excluded)
        );
    }
    if !st.flagged.is_empty() {
        let _ = write!(line, "; flagged {}", counts(&st.flagged));
    }
    if let Some(n) = st.trailer {
        let _ = write!(line, "; trailer count {} matches", grouped(n));
    }
    line.push('\n');
    line
}

fn engine_error(e: EngineError) -> anyhow::Error {
    let code = match e {
        EngineError::Refused { .. } => 2,
        _ => 1,
    };
    Exit {
        code,
        message: e.to_string(),
    }
    .into()
}

pub async fn query(args: QueryArgs) -> Result<()> {
    let mut options = EngineOptions::new(&args.lake.lake);
    options.venues = args.venues.load()?;
    options.window = args.window.spec(&args.lake.lake)?;
    options.max_rows = at_least(args.row_limit, 1, "--row-limit")?;
    options.timeout = query_timeout(&args.timeout)?;
    options.memory_limit = memory_limit(args.memory_limit)?;
    options.sql_dir = Some(args.sql_dir.clone());
    let lake_dir = args.lake.lake.clone();
    let engine = Engine::open(options).await.map_err(engine_error)?;
    if args.list {
        let text = list(&engine).await.map_err(engine_error)?;
        print!("{text}");
        return Ok(());
    }
    let sql = match (&args.query, &args.file) {
        (_, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --file {}", file.display()))?,
        (Some(text), None) if crate::engine::named::looks_like_name(text) => {
            engine.named_sql(text.trim()).map_err(engine_error)?
        }
        (Some(text), None) => text.clone(),
        (None, None) => {
            bail!("give SQL text, a query name, --file FILE or --list (see darkpool query --help)")
        }
    };
    if args.format.is_binary() && args.output.is_none() && std::io::stdout().is_terminal() {
        bail!(
            "{:?} is binary: give --output FILE or pipe the output",
            args.format
        );
    }
    note_empty_lake(&engine, &lake_dir);
    let params =
        crate::engine::text_params(args.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let result = engine
        .sql_with_params(&sql, params)
        .await
        .map_err(engine_error)?;
    let total = result.num_rows();
    let maxrows = args
        .maxrows
        .unwrap_or(if args.format == OutputFormat::Table {
            40
        } else {
            0
        });
    let shown = output::head(&result.batches, maxrows);
    let shown_rows: usize = shown.iter().map(|b| b.num_rows()).sum();
    let write = |out: &mut dyn Write| -> Result<()> {
        output::write(args.format, &result.schema, &shown, out)?;
        Ok(())
    };
    match &args.output {
        Some(path) => write_output(path, write)?,
        None => write(&mut std::io::BufWriter::new(std::io::stdout().lock()))?,
    }
    if result.truncated {
        crate::say!("warning: the result was cut at --row-limit {} rows; add LIMIT/WHERE or raise --row-limit", grouped(total as u64));
    }
    if args.format == OutputFormat::Table || args.output.is_some() {
        let more = if shown_rows < total {
            format!(
                " (showing {}; --maxrows 0 shows all)",
                grouped(shown_rows as u64)
            )
        } else {
            String::new()
        };
        crate::say!(
            "{} row(s){more}. Query took {:.3} seconds.",
            grouped(total as u64),
            result.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

async fn list(engine: &Engine) -> Result<String, EngineError> {
    let mut out = String::from("Tables:\n");
    for table in engine.tables().await? {
        let _ = writeln!(out, "  {:<15} {}", table.name, table.description);
        let columns: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        let _ = writeln!(out, "      {}", columns.join(", "));
    }
    out.push_str("\nNamed queries (darkpool query NAME):\n");
    for q in engine.named_queries() {
        let _ = writeln!(out, "  {:<22} {}", q.name, q.description);
    }
    Ok(out)
}

/// The folder of an `--output` file, made if missing (as `export` and `report` make theirs).
fn make_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => crate::output::create_folder(dir)
            .with_context(|| format!("cannot write {}", path.display())),
        None => Ok(()),
    }
}

/// An `--output` file, whole or not at all, its folder made if missing; an error names the
/// file asked for, not the temporary one beside it.
fn write_output(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    make_parent(path)?;
    crate::lake::write_atomic_with(path, write).map_err(|e| match e.downcast() {
        Ok(crate::lake::LakeError::Io { source, .. }) => {
            anyhow::Error::new(source).context(context())
        }
        Ok(other) => anyhow::Error::new(other),
        // Writing the content failed (a full disk): name the file too.
        Err(e) => e.context(context()),
    })
}

/// Topics that existed with another number of partitions than `--partitions`: left as they are.
fn note_partitions(differing: &[(String, usize)]) {
    for (topic, have) in differing {
        crate::say!(
            "note: topic {topic} already exists with {have} partition(s); --partitions applies only to topics darkpool creates (kafka-topics.sh --alter adds partitions)"
        );
    }
}

/// A note on stderr when a query or export reads a lake with nothing in it (a mistyped --lake
/// otherwise gives empty results without a word).
fn note_empty_lake(engine: &Engine, lake_dir: &Path) {
    if !engine.lake().is_empty() {
        return;
    }
    let shown = lake_dir.display();
    if lake_dir.is_dir() {
        crate::say!("note: the lake {shown} holds no data yet; ingest some first (darkpool ingest --lake {shown} FILE)");
    } else {
        crate::say!("note: no lake at {shown}; results are empty (create one with darkpool ingest --lake {shown} FILE)");
    }
}

pub async fn export(args: ExportArgs) -> Result<()> {
    let partition = args.partition_by.is_some();
    let format = crate::export::ExportFormat::resolve(args.format, &args.out)?;
    let summary = match (&args.input, &args.table) {
        (Some(input), _) => crate::export::export_json(input, format, &args.out, partition)?,
        (None, Some(table)) => {
            let mut options = EngineOptions::new(&args.lake.lake);
            options.venues = args.venues.load()?;
            options.window = args.window.spec(&args.lake.lake)?;
            let engine = Engine::open(options).await.map_err(engine_error)?;
            note_empty_lake(&engine, &args.lake.lake);
            crate::export::export_table(
                &engine,
                table,
                format,
                &args.out,
                partition,
                !args.no_progress,
            )
            .await
            .map_err(|e| match e {
                crate::export::ExportError::Engine(e) => engine_error(e),
                other => other.into(),
            })?
        }
        (None, None) => bail!("give --table NAME or --input FILE"),
    };
    crate::say!(
        "exported {} rows to {} ({} file(s))",
        grouped(summary.rows),
        args.out.display(),
        summary.files
    );
    Ok(())
}

pub fn compact(args: CompactArgs) -> Result<()> {
    let options = crate::lake::CompactOptions {
        tables: if args.table.is_empty() {
            Table::ALL.to_vec()
        } else {
            args.table.clone()
        },
        target: WriterOptions {
            file_rows: at_least(args.file_rows, 2, "--file-rows")?,
            file_bytes: at_least(args.file_bytes, 1 << 20, "--file-bytes (bytes)")?,
            ..WriterOptions::default()
        },
        dry_run: args.dry_run,
    };
    let root = &args.lake.lake;
    if !root.is_dir() {
        bail!("{}: no lake there (nothing to compact)", root.display());
    }
    let started = Instant::now();
    let lake = Lake::new(root);
    lake.recover()?;
    let summary = crate::lake::compact(&lake, &options)?;
    for (path, why) in &summary.skipped {
        crate::say!("  left {}: {why}", path.display());
    }
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    for (table, done) in &summary.tables {
        if done.files_before == 0 && done.files_kept == 0 {
            continue; // no files at all
        }
        let merged = if done.files_before == 0 {
            "nothing to merge".to_string()
        } else {
            let merge = format!(
                "{} files {} {} in {} partition(s): {} rows, {}",
                grouped(done.files_before as u64),
                if args.dry_run {
                    "would become about"
                } else {
                    "->"
                },
                grouped(done.files_after as u64),
                done.partitions,
                grouped(done.rows),
                mb(done.bytes_before)
            );
            match args.dry_run {
                true => merge,
                false => format!("{merge} -> {}", mb(done.bytes_after)),
            }
        };
        let kept = match done.files_kept {
            0 => String::new(),
            n => format!(
                " ({} file(s) large enough or alone, kept)",
                grouped(n as u64)
            ),
        };
        crate::say!("  {:<13} {merged}{kept}", table.dir_name());
    }
    crate::say!(
        "{} {}: {} files {} {} in {:.2} s",
        if args.dry_run {
            "dry run on"
        } else {
            "compacted"
        },
        root.display(),
        grouped(summary.files_before() as u64),
        if args.dry_run {
            "would become"
        } else {
            "became"
        },
        grouped(summary.files_after() as u64),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--compact-every`: compact the lake every `every` for as long as the process runs (the
/// small files a long-running writer leaves; see `darkpool compact`). While another process
/// compacts the lake, that one's turn is left to it.
async fn compact_every(lake: Lake, every: Duration, target: WriterOptions) {
    let options = crate::lake::CompactOptions {
        target,
        ..crate::lake::CompactOptions::default()
    };
    loop {
        tokio::time::sleep(every).await;
        let (lake, options) = (lake.clone(), options.clone());
        let started = Instant::now();
        let done = tokio::task::spawn_blocking(move || crate::lake::compact(&lake, &options)).await;
        match done {
            Ok(Ok(summary)) => {
                for (path, why) in &summary.skipped {
                    tracing::warn!("compaction left {}: {why}", path.display());
                }
                if summary.files_before() > 0 {
                    crate::say!(
                        "compacted the lake: {} small files became {} in {:.1}s",
                        grouped(summary.files_before() as u64),
                        grouped(summary.files_after() as u64),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(Err(crate::lake::LakeError::Compacting { .. })) => {}
            Ok(Err(e)) => {
                tracing::warn!(
                    "compacting the lake failed: {e}; tried again in {}",
                    seconds(every)
                )
            }
            Err(e) => tracing::warn!(
                "compacting the lake stopped: {e}; tried again in {}",
                seconds(every)
            ),
        }
    }
}

/// A time flag: ISO-8601, or a bare date meaning its midnight UTC.
fn parse_time_flag(flag: &str, text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| {
        let trimmed = t.trim();
        let full = if trimmed.len() == 10 {
            format!("{trimmed}T00:00")
        } else {
            trimmed.to_string()
        };
        parse_timestamp(&full).map_err(|e| anyhow!("{flag} '{t}': {e}"))
    })
    .transpose()
}

/// `--timeout`: at least 1 ms (0 had been raised to that quietly, timing out every query;
/// it is not "no limit" here, as Postgres' statement_timeout 0 is).
fn query_timeout(timeout: &Span) -> Result<Duration> {
    if timeout.duration < Duration::from_millis(1) {
        bail!("--timeout must be at least 1ms, got {timeout} (for long queries give a long one, e.g. 1h)");
    }
    Ok(timeout.duration)
}

pub async fn report(args: ReportArgs) -> Result<()> {
    let scope = Scope {
        from: parse_time_flag("--from", args.from.as_deref())?,
        to: parse_time_flag("--to", args.to.as_deref())?,
        symbols: args
            .symbols
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    if let (Some(from), Some(to)) = (scope.from, scope.to) {
        if from >= to {
            bail!("--from must be before --to");
        }
    }
    let mut options = EngineOptions::new(&args.lake.lake);
    options.venues = args.venues.load()?;
    options.window = args.window.spec(&args.lake.lake)?;
    options.timeout = query_timeout(&args.timeout)?;
    options.memory_limit = memory_limit(args.memory_limit)?;
    options.scope = scope;
    let engine = Engine::open(options).await.map_err(engine_error)?;
    let report_options = ReportOptions {
        out: args.out.clone(),
        analysis_dir: Some(args.analysis_dir.clone()),
        verbose: true,
    };
    let summary = write_report(&engine, &report_options)
        .await
        .map_err(|e| match e {
            ReportError::Engine(e) => engine_error(e),
            other => other.into(),
        })?;
    let drawn = summary.plots.iter().filter(|p| p.file.is_ok()).count();
    for p in summary.plots.iter() {
        if let Err(why) = &p.file {
            crate::say!("  {:<34} skipped: {why}", format!("{}.png", p.name));
        }
    }
    crate::say!(
        "wrote {drawn} plot(s) and {} in {:.2} s",
        summary.index.display(),
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

/// How often `serve --no-ingest` and `serve --brokers` look for new commits in the lake they
/// follow.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

pub async fn serve(args: ServeArgs) -> Result<()> {
    let kafka = args.kafka.options()?;
    if kafka.is_some() && args.no_ingest {
        bail!("--brokers and --no-ingest contradict each other: --brokers makes serve the Kafka aggregator too");
    }
    let max_body_bytes = at_least(args.max_body, 1024, "--max-body (bytes)")?;
    let heatmap_rows = at_least(args.heatmap_rows, 1, "--heatmap-rows")?;
    let venues = args.venues.load()?;
    let window = args.window.spec(&args.lake.lake)?;
    let mut options = EngineOptions::new(&args.lake.lake);
    options.venues = venues.clone();
    options.window = window;
    options.max_rows = at_least(args.row_limit, 1, "--row-limit")?;
    options.timeout = query_timeout(&args.timeout)?;
    options.memory_limit = memory_limit(args.memory_limit)?;
    options.sql_dir = Some(args.sql_dir.clone());
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of trades per second");
    }
    let commit_every = args.aggregator.commit_every()?;
    let aggregator = match kafka {
        Some(kafka) => {
            // Checked before any topic is created.
            let mut ingest = IngestOptions::new(&args.lake.lake, Vec::new());
            ingest.venues = venues.clone();
            ingest.window = window;
            let options = args
                .aggregator
                .options(kafka.clone(), &args.kafka.topic, ingest)?;
            let check = kafka.clone();
            tokio::task::spawn_blocking(move || kafka::check_reachable(&check, None)).await??;
            let topics = args.aggregator.output_topics();
            if !topics.is_empty() {
                note_partitions(
                    &kafka::ensure_topics(&kafka, &topics, args.kafka.partitions).await?,
                );
            }
            Some(options)
        }
        None => None,
    };
    crate::lake::Lake::new(&args.lake.lake).ensure_tables()?;
    let compacting = match args.no_ingest {
        true => None,
        false => args.aggregator.compact_every.every("--compact-every")?,
    };
    let engine = Arc::new(Engine::open(options).await.map_err(engine_error)?);
    let api_options = crate::api::ApiOptions {
        max_body_bytes,
        heatmap_rows,
        cache_ttl: args.cache_ttl.duration,
    };
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {} (--bind)", args.bind))?;
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (live, pipeline, followed) = if args.no_ingest {
        // Following the lake other processes fill: their trades show as soon as they land.
        let (events, _) = tokio::sync::broadcast::channel(16);
        tokio::spawn(crate::live::follow_lake(
            engine.clone(),
            events.clone(),
            FOLLOW_EVERY,
            stop_rx.clone(),
        ));
        let followed = crate::api::Followed {
            events,
            shutdown: stop_tx.subscribe(),
        };
        (None, None, Some(followed))
    } else {
        let (events, _) = tokio::sync::broadcast::channel(256);
        let stats = Arc::new(crate::live::LiveStats::default());
        let mut live_options = crate::live::LiveOptions::new(&args.lake.lake);
        live_options.venues = venues;
        live_options.window = window;
        live_options.rate = args.rate;
        live_options.seed = args.seed;
        live_options.commit_every = commit_every;
        let views = LiveViews {
            engine: engine.clone(),
            events: events.clone(),
        };
        if aggregator.is_some() {
            // Other members of the group land into the same lake: their open windows show
            // beside this member's own.
            tokio::spawn(crate::live::follow_lake(
                engine.clone(),
                events.clone(),
                FOLLOW_EVERY,
                stop_rx.clone(),
            ));
        }
        let state = Arc::new(tokio::sync::watch::Sender::new(PipelineState::Running));
        let ended = state.clone();
        let kafka_options = aggregator.clone();
        let retry_for = args.aggregator.retry_for();
        let pipeline_stats = stats.clone();
        if let Some(every) = compacting {
            let lake = Lake::new(&args.lake.lake);
            tokio::spawn(compact_every(lake, every, WriterOptions::default()));
        }
        let task = tokio::spawn(async move {
            // Each run, the first and any started again after a transient failure. (A closure
            // returning a future that owns what it uses: one borrowing the task's state could
            // not be proven Send for the spawn.)
            let run = || {
                let (options, views, stats, live_options) = (
                    kafka_options.clone(),
                    views.clone(),
                    pipeline_stats.clone(),
                    live_options.clone(),
                );
                let stop = stop_rx.clone();
                async move {
                    match options {
                        Some(options) => {
                            let mut summary = KafkaSummary::default();
                            let hooks = LiveHooks {
                                stats: Some(stats),
                                views: Some(views),
                            };
                            ingest_kafka(options, hooks, stop, &mut summary).await
                        }
                        None => {
                            let LiveViews { engine, events } = views;
                            crate::live::run(live_options, engine, events, stats, stop).await
                        }
                    }
                }
            };
            let outcome = supervised(
                retry_for,
                &stop_rx,
                (&pipeline_stats, &ended),
                run,
                |error, wait| {
                    tracing::warn!("the in-process pipeline: {}", restarting(error, wait));
                },
            )
            .await
            .map(|_| ());
            if let Err(e) = &outcome {
                tracing::error!(
                    "the in-process pipeline stopped: {e}; the API keeps serving the lake \
                     (/healthz answers 503 until a restart)"
                );
            }
            outcome
        });
        let shutdown = stop_tx.subscribe();
        (
            Some(crate::api::Live {
                events,
                stats,
                state,
                shutdown,
            }),
            Some(task),
            None,
        )
    };
    let app = crate::api::router(match followed {
        Some(followed) => crate::api::AppState::following(engine, api_options, followed),
        None => crate::api::AppState::with_live(engine, api_options, live),
    });
    let what = if let Some(options) = &aggregator {
        format!(
            "Kafka {} at {} (group {}) -> windows -> lake {}",
            options.topic,
            options.kafka.brokers,
            options.group,
            args.lake.lake.display()
        )
    } else if pipeline.is_some() {
        format!(
            "simulated trades at {}/s -> windows -> lake {}",
            args.rate,
            args.lake.lake.display()
        )
    } else {
        format!(
            "the lake {}, following what other processes commit to it",
            args.lake.lake.display()
        )
    };
    // Listening on every interface: the URL to open is this machine's own.
    let shown = if local.ip().is_unspecified() {
        format!("localhost:{}", local.port())
    } else {
        local.to_string()
    };
    crate::say!(
        "darkpool dashboard on http://{shown}/ over {what}\n  API http://{shown}/api/heatmap_data, \
         Kepler.gl http://{shown}/api/kepler/map.json, OpenAPI http://{shown}/api/openapi.json; Ctrl-C stops"
    );
    // Ctrl-C (or SIGTERM): event streams end, the pipeline commits what it holds and closes
    // its open windows, and the server finishes the requests in flight.
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("the HTTP server stopped");
    if let Some(task) = pipeline {
        task.await
            .map_err(|e| anyhow!("the pipeline stopped: {e}"))?
            .context("the in-process pipeline failed")?;
    }
    served
}

/// Flags given on the command line that the mode chosen would ignore, refused rather than
/// dropped without a word. Values from the environment are left alone: one environment may
/// serve several modes (compose sets `DARKPOOL_*` for all its services).
pub fn refuse_ignored_flags(matches: &clap::ArgMatches) -> Result<()> {
    let Some((command, args)) = matches.subcommand() else {
        return Ok(());
    };
    let given = |id: &str| args.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let set = |id: &str| {
        args.value_source(id)
            .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
    };
    // (argument, flag) lists: what only a Kafka client, only the Kafka aggregator, only the
    // simulated pipeline and only a file's decoder use.
    const KAFKA: &[(&str, &str)] = &[
        ("topic", "--topic"),
        ("connect_timeout", "--connect-timeout"),
        ("settings", "-X"),
        ("partitions", "--partitions"),
    ];
    const AGGREGATOR: &[(&str, &str)] = &[
        ("group", "--group"),
        ("start", "--start"),
        ("until_end", "--until-end"),
        ("output_topic", "--output-topic"),
        ("dlq_topic", "--dlq-topic"),
        ("idle_timeout", "--idle-timeout"),
        ("max_drift", "--max-drift"),
        ("status_every", "--status-every"),
    ];
    // What any pipeline of serve's uses, the simulated one included.
    const PIPELINE: &[(&str, &str)] = &[
        ("commit_every", "--commit-every"),
        ("compact_every", "--compact-every"),
        ("retry_for", "--retry-for"),
    ];
    const SIMULATED: &[(&str, &str)] = &[("rate", "--rate"), ("seed", "--seed")];
    const FILES: &[(&str, &str)] = &[
        ("format", "--format"),
        ("week", "--week"),
        ("facility", "--facility"),
        ("taq_columns", "--taq-columns"),
    ];
    // (the flags the mode ignores, what follows each flag's name in the refusal)
    let rules: Vec<(&[(&str, &str)], &str)> = match command {
        "simulate" if set("brokers") => {
            let mut rules: Vec<(&[(&str, &str)], &str)> = vec![(
                &[("output", "--output"), ("format", "--format")],
                "does not apply here: with --brokers the trades go to the topic, as JSON",
            )];
            if set("input") {
                rules.push((
                    &[
                        ("seed", "--seed"),
                        ("start", "--start"),
                        ("market_rate", "--market-rate"),
                        ("symbols", "--symbols"),
                    ],
                    "does not apply here: --input replays the file's trades as they are",
                ));
            }
            rules
        }
        "simulate" => vec![
            (KAFKA, "applies to --brokers (trades published to Kafka)"),
            (
                &[("status_every", "--status-every")],
                "applies to --brokers (trades published to Kafka)",
            ),
        ],
        "ingest" if set("brokers") => vec![(
            FILES,
            "does not apply here: with --brokers each message is decoded as a JSON trade",
        )],
        "ingest" => {
            let why = "applies to --brokers (the Kafka aggregator), not to a file ingest";
            vec![
                (KAFKA, why),
                (AGGREGATOR, why),
                (PIPELINE, why),
                (&[("metrics_bind", "--metrics-bind")], why),
            ]
        }
        "serve" if set("no_ingest") => {
            let why = "does not apply here: --no-ingest serves the lake and runs no pipeline";
            vec![
                (KAFKA, why),
                (AGGREGATOR, why),
                (PIPELINE, why),
                (SIMULATED, why),
            ]
        }
        "serve" if set("brokers") => vec![(
            SIMULATED,
            "does not apply here: with --brokers the trades come from the topic",
        )],
        "serve" => {
            let why = "applies to --brokers (serve then aggregates a Kafka topic); without it \
                       serve simulates its trades";
            vec![(KAFKA, why), (AGGREGATOR, why)]
        }
        _ => Vec::new(),
    };
    for (flags, why) in rules {
        if let Some((_, flag)) = flags.iter().find(|(id, _)| given(id)) {
            bail!("{flag} {why}");
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `docker compose stop`, systemd and Kubernetes send): either stops
/// a run the way Ctrl-C always did (what is pending is committed first). A signal that cannot
/// be listened for never fires.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(args) => tokio::task::spawn_blocking(move || simulate(args)).await?,
        Command::Ingest(args) => ingest(args).await,
        Command::Query(args) => query(args).await,
        Command::Export(args) => export(args).await,
        Command::Report(args) => report(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Compact(args) => tokio::task::spawn_blocking(move || compact(args)).await?,
    }
}
