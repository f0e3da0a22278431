//! `ingest --brokers`: the aggregator as a Kafka consumer-group member.
//!
//! ```text
//! consume -> decode (bad messages -> rejects, and the dead-letter topic)
//!         -> windows (watermark = min over the assigned partitions; idle ones left out)
//!         -> closed windows to the output topic as they close (acknowledged before the lake
//!            commit of their run)
//!         -> one lake run every --commit-every, recording its offset ranges
//!         -> offsets committed to the group (after the lake commit)
//! ```
//!
//! The lake is the truth. A member that starts, gains partitions, or loses a commit race reads
//! each partition from the lake's end (`Lake::offsets`), not from the group's committed offset,
//! and rebuilds the windows still open from the lake's trades. A run's commit is fenced by its
//! offset ranges, so a kill -9 at any moment, a rebalance, or two members racing can neither
//! lose nor land twice a trade. The output topic is at-least-once: windows go out when they
//! close, so a crash, a rebalance or a lost commit race that drops their run sends them again
//! (same key and version) once the run is read again.
//!
//! Work is spread over threads, the loop keeping everything order-dependent: it takes the
//! partitions' messages a step at a time from a queue of its own (`fetch`; rebalances stay on the
//! consumer's queue), keeps the offsets, and hands the messages to the decode workers (`pool`),
//! which read them in place; a flush collects their rows, writes them through the run's Parquet
//! writer thread, and starts the window push on the runtime, which lands its output before the
//! next flush reads the windows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::{broadcast, watch};

use super::{
    now_micros, open_windows_filter, preload_windows, IngestError, IngestOptions, SpillFolder,
};
use crate::engine::Engine;
use crate::lake::{BackgroundWriter, Lake, LakeError, OffsetRange, Table, Transaction};
use crate::live::{LiveEvent, LiveStats};
use crate::source::kafka::{self, KafkaError, KafkaOptions, Publisher, TopicId};
use crate::source::DecodeStats;
use crate::window::{WindowOperator, WindowStats};

mod fetch;
mod pool;
use fetch::{FetchQueue, Fetched, Polled, Reported};
use pool::{DeadLetter, DecodePool};

/// Where a member starts reading a partition the lake holds nothing of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartFrom {
    /// The oldest message the broker keeps.
    Earliest,
    /// Only messages produced from now on.
    Latest,
    /// The group's committed offset; the oldest message when there is none.
    Committed,
}

/// How the aggregator runs.
#[derive(Debug, Clone)]
pub struct KafkaIngestOptions {
    pub kafka: KafkaOptions,
    pub topic: String,
    pub group: String,
    pub start: StartFrom,
    /// Stop once the end offsets seen when the partitions were assigned are processed.
    pub until_end: bool,
    /// Closed windows go here as JSON (`None`: not published).
    pub output_topic: Option<String>,
    /// Bad messages are copied here, with the reason in headers.
    pub dlq_topic: Option<String>,
    /// A partition with no message for this long no longer holds the watermark back; when every
    /// partition is idle, the open windows are closed.
    pub idle_timeout: Duration,
    /// Watermark alignment: a partition whose newest trade is more than this (µs of event time)
    /// ahead of the slowest partition still reading is paused until the others catch up
    /// (`None`: never). Bounds the open windows of a backfill by this span, not by its length.
    pub max_drift: Option<i64>,
    /// How often a run is committed to the lake (and offsets to the group).
    pub commit_every: Duration,
    /// How often a line says how the aggregator is doing, on stderr ([`Status`]; `None`:
    /// never).
    pub status_every: Option<Duration>,
    /// Lake, registry, windows, batch size and writer settings (its inputs are unused).
    pub ingest: IngestOptions,
}

impl KafkaIngestOptions {
    pub fn new(kafka: KafkaOptions, ingest: IngestOptions) -> KafkaIngestOptions {
        KafkaIngestOptions {
            kafka,
            topic: kafka::TRADES_TOPIC.into(),
            group: "darkpool-aggregator".into(),
            start: StartFrom::Committed,
            until_end: false,
            output_topic: Some(kafka::WINDOWS_TOPIC.into()),
            dlq_topic: None,
            idle_timeout: Duration::from_secs(30),
            max_drift: Some(DEFAULT_MAX_DRIFT),
            commit_every: Duration::from_secs(5),
            status_every: None,
            ingest,
        }
    }
}

/// What a run of the aggregator did (counting only what reached the lake).
#[derive(Debug, Clone, Default)]
pub struct KafkaSummary {
    pub decode: DecodeStats,
    pub windows: WindowStats,
    pub rows: BTreeMap<Table, u64>,
    pub commits: u64,
    pub windows_published: u64,
    pub dead_letters: u64,
    /// Runs dropped because another member had landed their offsets (then re-read).
    pub conflicts: u64,
    pub rebalances: u64,
    /// Messages below the lake's end for their partition, skipped.
    pub skipped: u64,
    /// Offsets the broker deleted (its retention) before they were read: at most this many
    /// messages never reached the lake.
    pub lost_to_retention: u64,
    /// Partitions paused for watermark alignment (each time one was).
    pub alignment_pauses: u64,
    pub elapsed: Duration,
    /// From the start to the first message read (the broker check and the group join, mostly):
    /// the rest of `elapsed` is the reading rate, which a long run converges to.
    pub first_message: Option<Duration>,
    /// Times the aggregator started again after a transient failure, and the waits before.
    pub restarts: u64,
    pub waited: Duration,
}

/// How a running aggregator is doing: one line on stderr every `--status-every`, as Kafka
/// Connect logs its offset commits, so a member that runs for days (or a long backfill) shows
/// that it moves and how far behind it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Landed in the lake since the process started (the counts of the summary).
    pub trades: u64,
    pub rejected: u64,
    pub late: u64,
    /// Trades landed since the last status line, and over how long.
    pub fresh: u64,
    pub over: Duration,
    pub partitions: usize,
    /// Messages the brokers hold past what this member has read, over its partitions, as the
    /// last fetch answers said (`None` until every partition has had one).
    pub behind: Option<u64>,
    /// Of the partitions, those paused for watermark alignment: no fetch answers come for them,
    /// so their part of `behind` is as of their pause, and `behind` a lower bound.
    pub paused: usize,
    /// The event time up to which windows are final.
    pub watermark: Option<i64>,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::human::{grouped, per_second, seconds, utc_second};
        write!(
            f,
            "status: {} trades landed (+{} in {}, {}/s), {} rejected, {} late; {} partition(s), ",
            grouped(self.trades),
            grouped(self.fresh),
            seconds(self.over),
            grouped(per_second(self.fresh, self.over)),
            grouped(self.rejected),
            grouped(self.late),
            self.partitions,
        )?;
        match (self.behind, self.paused) {
            (Some(n), 0) => write!(f, "{} message(s) behind", grouped(n))?,
            (Some(n), paused) => write!(
                f,
                "at least {} message(s) behind ({paused} paused for watermark alignment: their \
                 part as of the pause)",
                grouped(n)
            )?,
            (None, _) => write!(f, "messages behind not known yet")?,
        }
        match self.watermark {
            Some(micros) => write!(f, "; watermark {}", utc_second(micros)),
            None => write!(f, "; no watermark yet"),
        }
    }
}

/// What a run reports to, besides its summary: counters for `/metrics` (`serve --brokers`,
/// `ingest --metrics-bind`), and the live views of `serve --brokers`.
#[derive(Clone, Default)]
pub struct LiveHooks {
    pub stats: Option<Arc<LiveStats>>,
    pub views: Option<LiveViews>,
}

/// For `serve --brokers`: where open windows and events go.
#[derive(Clone)]
pub struct LiveViews {
    pub engine: Arc<Engine>,
    pub events: broadcast::Sender<LiveEvent>,
}

/// Watermark alignment's default span: six hours of event time (the shortest that cost the
/// benchmark nothing at 2M trades; an hour paused often enough to cost 5-10 %).
pub const DEFAULT_MAX_DRIFT: i64 = 6 * 3_600_000_000;

/// The output producer's local queue (KiB): about 25k windows in flight.
const WINDOW_QUEUE_KBYTES: usize = 8 * 1024;

/// What the rebalance callback saw; handled by the loop after each poll.
#[derive(Debug)]
enum Rebalanced {
    /// Eager: the whole new assignment (partition, lake end), already assigned.
    Assigned(Vec<(i32, Option<i64>)>),
    /// Eager: the whole assignment, already given up.
    Revoked,
    /// Cooperative: partitions added to the assignment (already assigned); the rest stay.
    Added(Vec<(i32, Option<i64>)>),
    /// Cooperative: partitions to give up, still assigned: the loop lands what it read of
    /// them first, then unassigns them (librdkafka's rebalance waits for that).
    Revoking(Vec<i32>),
}

/// The consumer's context: positions assigned partitions at the lake's end.
struct Member {
    lake: Lake,
    topic: String,
    start: StartFrom,
    events: Mutex<Vec<Rebalanced>>,
    /// Set with each event, so draining the queue stops at a rebalance.
    rebalanced: AtomicBool,
    /// Partitions the loop paused for watermark alignment: resumed at a rebalance (librdkafka
    /// keeps an application's pause across reassignment).
    paused: Mutex<BTreeSet<i32>>,
    /// The loop's fetch queue: assigned partitions are routed to it (`fetch`).
    fetch: OnceLock<Weak<FetchQueue>>,
    /// With `--start latest`: the topic's partitions when this member started. One created
    /// since holds only messages produced since, so it is read from its beginning.
    present_at_start: OnceLock<BTreeSet<i32>>,
    /// The loop has ended: a cooperative revoke (the consumer's close) gives the partitions up
    /// at once, as nothing would hand them to the loop (and the close waits for it).
    closing: AtomicBool,
}

/// Marks the member `closing` when dropped (declared after the consumer: before it closes),
/// and gives up partitions whose cooperative revoke the loop did not get to.
struct Closing<'a>(&'a StreamConsumer<Member>);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let member = self.0.context();
        member.closing.store(true, Ordering::Release);
        for event in member.take_events() {
            if let Rebalanced::Revoking(revoked) = event {
                let list = partition_list(&member.topic, revoked);
                let _ = self.0.incremental_unassign(&list);
            }
        }
    }
}

impl Member {
    fn take_events(&self) -> Vec<Rebalanced> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        self.rebalanced.store(false, Ordering::Release);
        std::mem::take(&mut *events)
    }
}

impl ClientContext for Member {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        kafka::log(level, fac, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        match error {
            // Reaching the end of a partition is news, not trouble (the loop sees it too).
            RdError::PartitionEOF(_) | RdError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!("librdkafka: {reason}")
            }
            other => tracing::warn!("Kafka: {other}: {reason}"),
        }
    }
}

impl ConsumerContext for Member {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let paused = {
            let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
            if cooperative {
                // Partitions kept stay as they are; those given up or taken are resumed (a
                // pause outlives the assignment in librdkafka, and a partition's new state
                // here starts unpaused).
                let moving: BTreeSet<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let (moved, kept) = paused.iter().partition(|p| moving.contains(p));
                *paused = kept;
                moved
            } else {
                std::mem::take(&mut *paused)
            }
        };
        if !paused.is_empty() {
            let list = partition_list(&self.topic, paused.iter().copied());
            match consumer.resume(&list) {
                // The new assignment starts unpaused; alignment pauses again what is ahead.
                Ok(()) => tracing::info!(
                    "partitions {paused:?}, paused for watermark alignment, resumed at a rebalance"
                ),
                Err(e) => tracing::warn!("resuming paused partitions at a rebalance: {e}"),
            }
        }
        let event = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // A member that died between logging a commit and publishing it left rows the
                // window rebuild needs: finish that commit first. (Its offsets count as landed
                // either way, so a failure here cannot cause a re-read.)
                recover_quietly(&self.lake);
                let ends = self.lake.offsets(&self.topic).unwrap_or_else(|e| {
                    tracing::error!("reading the lake's offsets: {e}; the commit fence still guards against duplicates");
                    BTreeMap::new()
                });
                let mut assigned = Vec::new();
                for elem in tpl.elements() {
                    let partition = elem.partition();
                    let end = ends.get(&partition).copied();
                    assigned.push((partition, end));
                }
                for (partition, end) in &assigned {
                    let offset = match (end, self.start) {
                        (Some(end), _) => Offset::Offset(*end),
                        (None, StartFrom::Earliest) => Offset::Beginning,
                        (None, StartFrom::Latest) => match self.present_at_start.get() {
                            Some(present) if !present.contains(partition) => Offset::Beginning,
                            _ => Offset::End,
                        },
                        (None, StartFrom::Committed) => Offset::Stored,
                    };
                    if let Err(e) = tpl.set_partition_offset(&self.topic, *partition, offset) {
                        tracing::error!("positioning partition {partition}: {e}");
                    }
                }
                // Before the assignment: its first fetch must already go to the loop's queue.
                if let Some(fetch) = self.fetch.get().and_then(Weak::upgrade) {
                    let topic = std::ffi::CString::new(self.topic.as_str()).ok();
                    for (partition, _) in &assigned {
                        let routed = topic.as_deref().is_some_and(|topic| {
                            fetch.route(consumer.client().native_ptr(), topic, *partition)
                        });
                        if !routed {
                            // Its messages come through the consumer's queue instead.
                            tracing::warn!("partition {partition}: not routed to the fetch queue");
                        }
                    }
                }
                if cooperative {
                    if let Err(e) = consumer.incremental_assign(tpl) {
                        tracing::error!("adding partitions to the assignment: {e}");
                    }
                    Rebalanced::Added(assigned)
                } else {
                    if let Err(e) = consumer.assign(tpl) {
                        tracing::error!("assigning partitions: {e}");
                    }
                    Rebalanced::Assigned(assigned)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if cooperative && self.closing.load(Ordering::Acquire) =>
            {
                let _ = consumer.incremental_unassign(tpl);
                Rebalanced::Revoked
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if cooperative => {
                // Not unassigned here: the loop lands what it read of them first (a lost
                // assignment too: the lake's offset fence refuses a run that overlaps the new
                // owner's, and the run is then dropped and read again).
                Rebalanced::Revoking(tpl.elements().iter().map(|e| e.partition()).collect())
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let _ = consumer.unassign();
                Rebalanced::Revoked
            }
            other if cooperative => {
                tracing::error!("rebalance error: {other:?}");
                // All of it, as under the eager protocol: the loop drops what it holds.
                if let Ok(all) = consumer.assignment() {
                    let _ = consumer.incremental_unassign(&all);
                }
                Rebalanced::Revoked
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                let _ = consumer.unassign();
                Rebalanced::Revoked
            }
        };
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        self.rebalanced.store(true, Ordering::Release);
    }
}

/// Per assigned partition.
#[derive(Debug)]
struct Partition {
    /// The next offset to read (the lake's end, or unknown until the first message).
    next: Option<i64>,
    /// Newest event time of its trades.
    max_ts: Option<i64>,
    last_message: Instant,
    /// The end offset when assigned (for --until-end), and whether EOF was reached since the
    /// last message, with the offset reading goes on from that it reported (when known).
    end_at_assign: i64,
    eof: bool,
    eof_next: Option<i64>,
    /// Paused for watermark alignment (it has data; it waits for the others).
    paused: bool,
    /// The offset this process last committed to the group for it.
    committed: Option<i64>,
    /// A message of it was read since it was assigned.
    reading: bool,
    /// Its log went back below what was read (see `check_positions`): nothing more of it is
    /// taken.
    restarted: bool,
}

impl Partition {
    /// Silent for `timeout` (a paused partition is not silent: it is held back).
    fn is_idle(&self, timeout: Duration) -> bool {
        !self.paused && self.last_message.elapsed() >= timeout
    }

    /// Read up to the end offset seen at assignment, and caught up with the partition (an EOF
    /// since the last message): the end offset a broker lists can lag the end of its log
    /// (tansu lists the last batch's first offset), so reaching it alone is not enough. The
    /// end's own offset counts too: a transactional producer's commit markers (and an aborted
    /// transaction's records) take offsets after the last message that are never delivered,
    /// so the next message's offset alone never reaches the end offset.
    fn is_done(&self) -> bool {
        self.eof
            && self
                .next
                .max(self.eof_next)
                .is_none_or(|n| n >= self.end_at_assign)
    }
}

/// One run's work, committed together or dropped together.
struct Interval {
    /// The run's Parquet files, written by a thread of their own.
    writer: BackgroundWriter,
    /// partition -> [start, end)
    ranges: BTreeMap<i32, (i64, i64)>,
    /// Windows closed in the run, kept for the live views (`serve --brokers`) only.
    closed: Vec<RecordBatch>,
    /// Window messages sent to the output topic in the run (acknowledged at its commit).
    published: u64,
    dead_letters: Vec<DeadLetter>,
    /// What decoding the run's messages counted (the summary's, once committed).
    decode: DecodeStats,
    started: Instant,
}

impl Interval {
    fn begin(lake: &Lake, options: &KafkaIngestOptions) -> Result<Interval, IngestError> {
        Ok(Interval {
            writer: BackgroundWriter::start(Transaction::begin(lake, options.ingest.writer)?),
            ranges: BTreeMap::new(),
            closed: Vec::new(),
            published: 0,
            dead_letters: Vec::new(),
            decode: DecodeStats::default(),
            started: Instant::now(),
        })
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.writer.rows_queued() == 0
    }
}

/// Messages drained from the consumer's queue in one step.
const DRAIN: usize = 4096;
/// A window push run off the loop: the operator comes back with what the push produced.
type WindowPush = (
    WindowOperator,
    Result<crate::window::Pushed, crate::window::WindowError>,
);

/// The aggregator's state between polls.
struct Aggregator<'a> {
    options: &'a KafkaIngestOptions,
    lake: Lake,
    /// `None` while a push runs on the runtime's threads (`in_flight`).
    windows: Option<WindowOperator>,
    /// The window push started by the last flush, running while the loop decodes the next
    /// batch; its output lands in the run before anything reads the windows or the run.
    in_flight: Option<InFlight>,
    /// The window operator's spill folder, emptied for each new operator.
    spill_folder: SpillFolder,
    parts: BTreeMap<i32, Partition>,
    decoders: DecodePool,
    interval: Interval,
    publisher: Option<Publisher>,
    summary: &'a mut KafkaSummary,
    /// Open windows were closed because every partition went idle (until data comes again).
    idle_closed: bool,
    /// The counters for `/metrics`, and the live views (`serve --brokers`).
    stats: Option<Arc<LiveStats>>,
    views: Option<LiveViews>,
    /// When the first message was read.
    first_message: Option<Instant>,
    /// Partitions read at another offset than the one expected: the first message since their
    /// assignment not at the lake's end, or a later one not after the one before.
    repositioned: Vec<Repositioned>,
    /// The topic's id, as the brokers give it.
    topic_id: Asked,
    /// When the last status line was printed (or the run began), and the trades landed then.
    last_status: (Instant, u64),
}

/// The window push started by a flush, on the runtime's threads. Dropped before it is awaited
/// (its run failed), it is aborted rather than left to finish for nothing.
struct InFlight(tokio::task::JoinHandle<WindowPush>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long an assignment waits for the brokers to say the topic's id (a real Kafka answers
/// in milliseconds; the first ask runs while the group is joined).
const TOPIC_ID_WAIT: Duration = Duration::from_secs(3);

/// The topic's id, asked of the brokers: at the start, then again at an assignment while
/// they answered without one (the topic may not have existed yet).
enum Asked {
    Pending(tokio::task::JoinHandle<TopicId>),
    Answered(TopicId),
}

/// Ask the brokers for the topic's id, on a blocking thread.
fn ask_topic_id(options: &KafkaIngestOptions) -> tokio::task::JoinHandle<TopicId> {
    let (kafka, topic) = (options.kafka.clone(), options.topic.clone());
    let wait = TOPIC_ID_WAIT.min(kafka.connect_timeout);
    tokio::task::spawn_blocking(move || kafka::topic_id(&kafka, &topic, wait))
}

/// A partition read at another offset than expected: the broker found its position out of
/// range and librdkafka reset it, or offsets were skipped that are never delivered
/// (transaction markers, a compacted topic's gaps).
#[derive(Debug)]
struct Repositioned {
    partition: i32,
    /// The offset expected: the lake's end, or the one after the message before.
    expected: i64,
    first: i64,
    /// After other messages of the partition since its assignment (not its first).
    mid_run: bool,
}

/// Run the aggregator until `stop` turns true, or (with `until_end`) the end is reached. What
/// it lands is counted into `summary`, also when it fails (a run started again after a
/// transient failure counts on from there: see `restart`).
pub async fn ingest_kafka(
    options: KafkaIngestOptions,
    hooks: LiveHooks,
    mut stop: watch::Receiver<bool>,
    summary: &mut KafkaSummary,
) -> Result<(), IngestError> {
    let started = Instant::now();
    // The broker check runs while the lake is opened and the consumer starts joining its group
    // (the join takes its time on the broker's side); nothing is read before it passed. With
    // --until-end it also wants the topic: there is no end to read to in a missing one.
    let check = options.kafka.clone();
    let topic = options.until_end.then(|| options.topic.clone());
    let reachable =
        tokio::task::spawn_blocking(move || kafka::check_reachable(&check, topic.as_deref()));
    // And the topic's id, for the first assignment to check against the lake's.
    let topic_id = ask_topic_id(&options);
    let lake = Lake::new(&options.ingest.lake);
    lake.ensure_tables()?;
    for run in lake.recover()?.rolled_forward {
        tracing::info!("finished the interrupted commit of run {run}");
    }
    lake.settle_window_shape(options.ingest.window.shape())?;
    let publisher = if options.output_topic.is_some() || options.dlq_topic.is_some() {
        // A commit's windows go out while earlier ones are acknowledged rather than all queued
        // at once: the queue's memory is bounded however many windows a commit closes.
        Some(Publisher::with_queue(&options.kafka, WINDOW_QUEUE_KBYTES)?)
    } else {
        None
    };
    let member = Member {
        lake: lake.clone(),
        topic: options.topic.clone(),
        start: options.start,
        events: Mutex::new(Vec::new()),
        rebalanced: AtomicBool::new(false),
        paused: Mutex::new(BTreeSet::new()),
        fetch: OnceLock::new(),
        present_at_start: OnceLock::new(),
        closing: AtomicBool::new(false),
    };
    let consumer: StreamConsumer<Member> = options
        .kafka
        .config(&[
            ("group.id", options.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            // Where a partition begins is set at its assignment (`--start` and the lake's end);
            // this only answers a position the broker no longer has (and `--start committed`
            // with nothing committed). Resuming at the log's start loses only what the broker
            // deleted, where the end would also pass over what it still holds.
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "range,roundrobin"),
            // A killed member's partitions move on after 10 s (librdkafka's default is 45 s).
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            // librdkafka stops fetching a partition for 1 s once its queue passes the prefetch
            // limits, which the loop's commit pauses trigger: half the throughput on the
            // benchmark (10-200 ms measure the same).
            ("fetch.queue.backoff.ms", "50"),
            // A fetch to a broker long-polls this long when none of the partitions it asks for
            // has data. A partition paused for a full queue is not asked for, so while the
            // others sit at their end the paused one waits out the poll: 0.4 s of a 2M backfill
            // at librdkafka's 500 ms default.
            ("fetch.wait.max.ms", "100"),
            // A subscribed topic that does not exist yet (the aggregator started before the
            // producer) is found, and partitions added to it, at librdkafka's next metadata
            // refresh: 5 minutes later by default, while Java consumers ask again at once.
            ("topic.metadata.refresh.interval.ms", "5000"),
        ])
        .create_with_context(member)
        .map_err(KafkaError::Config)?;
    let _closing = Closing(&consumer);
    consumer
        .subscribe(&[options.topic.as_str()])
        .map_err(|source| KafkaError::Client {
            what: "subscribe",
            source,
        })?;
    reachable
        .await
        .map_err(|e| IngestError::Internal(format!("broker check: {e}")))??;
    if options.start == StartFrom::Latest {
        // Before the first poll, where partitions are assigned.
        let check = options.kafka.clone();
        let topic = options.topic.clone();
        let present = tokio::task::spawn_blocking(move || kafka::partitions_now(&check, &topic))
            .await
            .map_err(|e| IngestError::Internal(format!("listing partitions: {e}")))??;
        let _ = consumer.context().present_at_start.set(present);
    }
    let spill_folder = SpillFolder::of(&lake);
    let spill = spill_folder.fresh()?;
    let summary_trades = summary.rows.get(&Table::Trades).copied().unwrap_or(0);
    let mut agg = Aggregator {
        options: &options,
        lake: lake.clone(),
        windows: Some(
            WindowOperator::new(
                options.ingest.window,
                options.ingest.reemit_late,
                Some(spill),
            )
            .await?
            .with_memory_rows(options.ingest.window_memory_rows),
        ),
        in_flight: None,
        spill_folder,
        parts: BTreeMap::new(),
        decoders: DecodePool::new(
            Arc::from(options.topic.as_str()),
            options.ingest.venues.clone(),
            options.ingest.max_line_bytes.max(64),
            options.dlq_topic.is_some(),
        )?,
        interval: Interval::begin(&lake, &options)?,
        publisher,
        summary,
        idle_closed: false,
        stats: hooks.stats,
        views: hooks.views,
        first_message: None,
        repositioned: Vec::new(),
        topic_id: Asked::Pending(topic_id),
        last_status: (Instant::now(), summary_trades),
    };
    let batch_rows = options.ingest.batch_rows.max(1);
    // How many messages the next step may take: up to the next batch boundary (so a batch
    // still ends after --batch-rows rows), at most a step's worth.
    let step_room = |pending: usize| batch_rows.saturating_sub(pending).clamp(1, DRAIN);
    let flush_every = Duration::from_millis(250).min(options.commit_every);
    let mut last_flush = Instant::now();
    let mut broker_errors = 0u64;
    let mut assigned_once = false;
    // The partitions' messages come through a queue of our own, a step at a time (`fetch`);
    // the consumer's queue carries the rebalances (and any message of a partition that could
    // not be routed). Declared after the consumer: dropped before it.
    let fetch = Arc::new(
        FetchQueue::new(consumer.client().native_ptr())
            .ok_or_else(|| IngestError::Internal("creating the fetch queue".into()))?,
    );
    let _ = consumer.context().fetch.set(Arc::downgrade(&fetch));
    let mut fetched: Vec<Fetched> = Vec::with_capacity(DRAIN);
    // The last drain filled its step: more may wait, and no wake-up comes for them.
    let mut more_fetched = false;
    // Messages taken from the consumer's queue in one step, and one polled together with a
    // rebalance (it belongs to the new assignment, so it waits until the events are handled).
    let mut drained: Vec<KafkaResult<BorrowedMessage<'_>>> = Vec::with_capacity(DRAIN);
    let mut carried: Option<KafkaResult<BorrowedMessage<'_>>> = None;
    // One stream for the whole run: `recv()` registers and drops a waker per message.
    let mut stream = consumer.stream();
    loop {
        let first = match carried.take() {
            Some(polled) => Some(polled),
            // Serve the consumer's queue (rebalances) without waiting; still let the runtime
            // run its other tasks now and then (a window push spawned from a worker thread
            // waits in that thread's slot while the queue stays full).
            None if more_fetched => {
                tokio::task::coop::consume_budget().await;
                stream.next().now_or_never().flatten()
            }
            None => tokio::select! {
                message = stream.next() => message,
                _ = fetch.ready() => None,
                _ = tokio::time::sleep(flush_every) => None,
                _ = stop.changed() => None,
            },
        };
        // Rebalances seen during the poll come first: a message polled with them belongs to
        // the new assignment.
        for event in consumer.context().take_events() {
            agg.summary.rebalances += 1;
            // librdkafka paused the partitions kept during an incremental rebalance.
            let kept_paused = matches!(event, Rebalanced::Added(_) | Rebalanced::Revoking(_));
            match event {
                Rebalanced::Revoked => {
                    agg.drop_interval().await?;
                    agg.parts.clear();
                }
                Rebalanced::Assigned(assigned) => {
                    assigned_once = true;
                    agg.drop_interval().await?;
                    agg.parts.clear();
                    agg.add(&consumer, &assigned).await?;
                }
                Rebalanced::Added(added) => {
                    assigned_once = true;
                    if !added.is_empty() {
                        // The lake then holds all that was read: the windows are rebuilt from it.
                        agg.commit(&consumer).await?;
                        agg.add(&consumer, &added).await?;
                    }
                }
                Rebalanced::Revoking(revoked) => agg.give_up(&consumer, &revoked).await?,
            }
            if kept_paused {
                agg.fetch_from_next(&consumer, agg.parts.keys().copied().collect::<Vec<_>>());
            }
            // The rebalance resumed every paused partition.
            agg.publish_paused(&consumer);
        }
        let now = Instant::now();
        // Then whatever else the consumer's queue holds now, up to the step's room or the next
        // rebalance.
        if let Some(first) = first {
            drained.push(first);
            let room = step_room(agg.decoders.len());
            while drained.len() < room {
                let Some(Some(next)) = stream.next().now_or_never() else {
                    break;
                };
                if consumer.context().rebalanced.load(Ordering::Acquire) {
                    carried = Some(next);
                    break;
                }
                drained.push(next);
            }
            for polled in &drained {
                match polled {
                    Ok(borrowed) => {
                        let message = Polled::of(borrowed);
                        if agg.take_message(message, now) {
                            agg.decoders.copy(message, || header_list(borrowed));
                        }
                    }
                    Err(e) => agg.take_report(Reported::from(e), &mut broker_errors)?,
                }
            }
            drained.clear();
        }
        // And the step our queue holds, unless a rebalance is waiting to be handled: the
        // messages after it belong to the new assignment. (The rebalance callback only runs
        // while this loop polls the consumer's queue, so nothing can come between this check
        // and the drain.)
        if consumer.context().rebalanced.load(Ordering::Acquire) {
            more_fetched = true;
        } else {
            let room = step_room(agg.decoders.len());
            more_fetched = fetch.drain(&mut fetched, room) == room;
            for message in fetched.drain(..) {
                match message.into_data() {
                    Ok(data) => {
                        if agg.take_message(data.view(), now) {
                            agg.decoders.hand(data);
                        }
                    }
                    Err(reported) => agg.take_report(reported, &mut broker_errors)?,
                }
            }
        }
        agg.send_step()?;
        if let Err(restarted) = agg.check_positions(&consumer) {
            // What was read before the log started again is landed first.
            agg.flush().await?;
            agg.commit(&consumer).await?;
            return Err(restarted);
        }

        let stopping = *stop.borrow();
        // Not between a revoke and the next assignment: no partitions is not the end.
        let done = options.until_end
            && assigned_once
            && !agg.parts.is_empty()
            && agg.parts.values().all(Partition::is_done);
        if agg.decoders.len() >= batch_rows
            || last_flush.elapsed() >= flush_every
            || done
            || stopping
        {
            agg.flush().await?;
            agg.align(&consumer);
            last_flush = Instant::now();
        }
        if done {
            if let Some(closed) = agg.windows().await?.finish().await? {
                tracing::debug!("end reached: closing {} open windows", closed.num_rows());
                agg.closed(closed).await?;
            }
        }
        if done || stopping || agg.interval.started.elapsed() >= options.commit_every {
            agg.commit(&consumer).await?;
            if let Some(stats) = &agg.stats {
                let behind = agg.behind(&consumer);
                if let Ok(mut known) = stats.behind.lock() {
                    *known = behind;
                }
            }
        }
        if done || stopping {
            tracing::debug!("stopping: end reached {done}, stop asked {stopping}");
            break;
        }
        if let Some(every) = options.status_every {
            if agg.last_status.0.elapsed() >= every {
                crate::say!("{}", agg.status(&consumer));
            }
        }
    }
    let windows = agg.windows().await?.stats();
    agg.publish_live().await?;
    let summary = agg.summary;
    summary.windows.add(&windows);
    // The (empty) run begun by the last commit: its staging folder goes before we return.
    drop(agg.interval.writer.finish().await);
    summary.elapsed = started.elapsed();
    if summary.first_message.is_none() {
        summary.first_message = agg.first_message.map(|at| at.duration_since(started));
    }
    Ok(())
}

impl Aggregator<'_> {
    /// What librdkafka reported in a message's place: a partition's end, or an error (it
    /// retries on its own; counted and logged). A refused authorization ends the run: librdkafka
    /// reports it once and then retries for ever, silently, while nothing can be read.
    fn take_report(
        &mut self,
        reported: Reported,
        broker_errors: &mut u64,
    ) -> Result<(), IngestError> {
        match reported {
            Reported::End { partition, next } => {
                tracing::debug!("partition {partition}: end reached at {next:?}");
                if let Some(state) = self.parts.get_mut(&partition) {
                    state.eof = true;
                    state.eof_next = next;
                }
            }
            Reported::Error(e) => {
                if let Some(refused) = e.rdkafka_error_code().and_then(|c| self.refused(c)) {
                    return Err(refused.into());
                }
                *broker_errors += 1;
                if broker_errors.is_power_of_two() {
                    tracing::warn!("Kafka: {e} (retrying; {broker_errors} errors so far)");
                }
            }
        }
        Ok(())
    }

    /// The refusals no retry gets past: the group's or topic's ACLs, and a session timeout
    /// outside the brokers' bounds (a real Kafka's are 6 s and 30 min by default).
    fn refused(&self, code: RDKafkaErrorCode) -> Option<KafkaError> {
        let (what, remedy) = match code {
            RDKafkaErrorCode::GroupAuthorizationFailed => (
                format!("the group {}", self.options.group),
                "The client's principal needs READ on it (an ACL on the brokers), or the group is not the one meant",
            ),
            RDKafkaErrorCode::TopicAuthorizationFailed => (
                format!("the topic {}", self.options.topic),
                "The client's principal needs READ on it (an ACL on the brokers), or the topic is not the one meant",
            ),
            RDKafkaErrorCode::InvalidSessionTimeout => (
                format!("to let a member into the group {}", self.options.group),
                "session.timeout.ms (-X) must lie within the brokers' group.min.session.timeout.ms and group.max.session.timeout.ms (by default 6 s and 30 min; darkpool's default is 10 s)",
            ),
            _ => return None,
        };
        Some(KafkaError::Refused { what, code, remedy })
    }

    /// A message polled, in order: skip what the lake already holds and extend the run's
    /// offset ranges. True when the message is to go to the decode workers (the caller adds
    /// it to the step, which they get at `send_step`).
    #[must_use]
    fn take_message(&mut self, message: Polled<'_>, now: Instant) -> bool {
        self.first_message.get_or_insert(now);
        let (partition, offset) = (message.partition, message.offset);
        let Some(state) = self.parts.get_mut(&partition) else {
            return false; // fetched before a revoke: the new owner reads it
        };
        if state.restarted {
            return false;
        }
        let mid_run = std::mem::replace(&mut state.reading, true);
        if let Some(expected) = state.next.filter(|next| *next != offset) {
            self.repositioned.push(Repositioned {
                partition,
                expected,
                first: offset,
                mid_run,
            });
            // Back below what was expected: the log started again, and its messages from here
            // on are not the ones the lake holds (`check_positions` stops the run).
            state.restarted = offset < expected;
        }
        if state.next.is_some_and(|next| offset < next) {
            self.summary.skipped += 1;
            return false;
        }
        let start = state.next.unwrap_or(offset);
        state.next = Some(offset + 1);
        state.last_message = now;
        state.eof = false;
        state.eof_next = None;
        self.interval
            .ranges
            .entry(partition)
            .or_insert((start, start))
            .1 = offset + 1;
        self.idle_closed = false;
        true
    }

    /// The partitions read at another offset than expected: at their first message since the
    /// assignment, the lake's end; later, the offset after the message before. The broker
    /// found the position out of range and librdkafka reset it (to the log's start), or
    /// offsets were skipped that are never delivered.
    ///
    /// Below the offset expected, the partition's log starts again: a new log whose messages
    /// the lake would skip as landed, so the run stops. The caller first lands what was read
    /// before; the partition's messages since are not taken.
    ///
    /// Above it, the offsets between were deleted unread when the log now starts past them;
    /// otherwise they are a transaction's commit markers, aborted records or a compacted
    /// topic's gaps, which lose nothing. Where the log starts is asked of the broker at a
    /// partition's first message, and mid-run of librdkafka (each fetch answer says it): gaps
    /// of markers come with every transaction.
    fn check_positions(&mut self, consumer: &StreamConsumer<Member>) -> Result<(), IngestError> {
        let topic = self.options.topic.as_str();
        for moved in std::mem::take(&mut self.repositioned) {
            let Repositioned {
                partition,
                expected,
                first,
                mid_run,
            } = moved;
            if first < expected {
                return Err(KafkaError::LogRestarted {
                    topic: topic.to_string(),
                    partition,
                    last_landed: expected - 1,
                    first,
                }
                .into());
            }
            let cached = mid_run
                .then(|| {
                    fetch::cached_log_bounds(consumer.client().native_ptr(), topic, partition).0
                })
                .flatten();
            let log_start = match cached {
                Some(start) => Ok(start),
                None => consumer
                    .fetch_watermarks(topic, partition, self.options.kafka.connect_timeout)
                    .map(|(start, _)| start),
            };
            match log_start {
                Ok(log_start) if log_start > expected => {
                    let lost = log_start - expected;
                    self.summary.lost_to_retention += lost as u64;
                    if let Some(stats) = &self.stats {
                        stats
                            .lost_offsets
                            .fetch_add(lost as u64, Ordering::Relaxed);
                    }
                    tracing::warn!(
                        "partition {partition} of {topic}: offsets {expected} to {} were deleted by the broker (its retention) before they were read; up to {lost} message(s) never reached the lake",
                        log_start - 1
                    );
                }
                // Offsets that carry no message: a transaction's markers, or compacted away.
                Ok(_) => tracing::debug!(
                    "partition {partition} of {topic}: offsets {expected} to {} carry no message",
                    first - 1
                ),
                Err(e) => tracing::warn!(
                    "partition {partition} of {topic}: reading went on at offset {first}, not at {expected}, and the broker did not say where its log starts ({e}): offsets between may have been deleted unread"
                ),
            }
        }
        Ok(())
    }

    /// The messages taken since the last step, to the decode workers.
    fn send_step(&mut self) -> Result<(), IngestError> {
        self.decoders.send(now_micros())
    }

    /// At an assignment: the topic must be the one whose offsets the lake holds. Kafka gives a
    /// topic deleted and created again a new id; its offsets start again, and once its log
    /// has grown past the lake's end nothing else tells it from the old one. Brokers that give
    /// no id (before Kafka 2.8), and lakes that recorded none, are not checked.
    async fn check_topic_id(&mut self) -> Result<(), IngestError> {
        let joined = |e: tokio::task::JoinError| {
            IngestError::Internal(format!("asking the topic's id: {e}"))
        };
        let answered =
            match std::mem::replace(&mut self.topic_id, Asked::Answered(TopicId::NoAnswer)) {
                Asked::Pending(asked) => asked.await.map_err(joined)?,
                // Answered without an id: the topic may exist now.
                Asked::Answered(TopicId::Unknown) => {
                    ask_topic_id(self.options).await.map_err(joined)?
                }
                Asked::Answered(known) => known,
            };
        tracing::debug!("topic {}: id {answered:?}", self.options.topic);
        self.topic_id = Asked::Answered(answered.clone());
        let TopicId::Id(now) = answered else {
            return Ok(());
        };
        let recorded = self.lake.topic_ids(&self.options.topic)?;
        match recorded.into_iter().find(|landed| *landed != now) {
            Some(landed) => Err(KafkaError::TopicRecreated {
                topic: self.options.topic.clone(),
                landed,
                now,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Watermark alignment (as Flink's): pause partitions more than `max_drift` of event time
    /// ahead of the slowest one still reading, resume them once it is within half of that.
    /// Partitions at their end or idle hold nobody back; with none left, all resume. The
    /// windows are the same either way (the watermark is the slowest partition's); what
    /// changes is that the trades ahead wait in Kafka instead of as open windows in memory,
    /// which in a backfill of skewed partitions grew with its length.
    fn align(&mut self, consumer: &StreamConsumer<Member>) {
        let Some(drift) = self.options.max_drift else {
            return;
        };
        let idle = self.options.idle_timeout;
        let mut slowest: Option<i64> = None;
        for state in self.parts.values() {
            if state.paused || state.eof || state.is_idle(idle) {
                continue;
            }
            match state.max_ts {
                // A partition with no trade yet could be anywhere: change nothing until it has.
                None => return,
                Some(t) => slowest = Some(slowest.map_or(t, |s| s.min(t))),
            }
        }
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        for (&partition, state) in &self.parts {
            let ahead = state.max_ts.zip(slowest).map(|(t, s)| t.saturating_sub(s));
            if !state.paused && ahead.is_some_and(|a| a > drift) {
                pause.push(partition);
            } else if state.paused && ahead.is_none_or(|a| a <= drift / 2) {
                resume.push(partition);
            }
        }
        self.set_paused(consumer, &pause, true);
        self.set_paused(consumer, &resume, false);
    }

    /// Pause or resume `partitions` in librdkafka, keeping `parts` and the member's set (what
    /// a rebalance resumes) in step.
    fn set_paused(&mut self, consumer: &StreamConsumer<Member>, partitions: &[i32], pause: bool) {
        if partitions.is_empty() {
            return;
        }
        let list = partition_list(&self.options.topic, partitions.iter().copied());
        let (done, verb) = if pause {
            (consumer.pause(&list), "paused")
        } else {
            (consumer.resume(&list), "resumed")
        };
        if let Err(e) = done {
            tracing::warn!("partitions {partitions:?} could not be {verb}: {e}");
            return;
        }
        tracing::debug!("partitions {partitions:?} {verb} (watermark alignment)");
        if pause {
            self.fetch_from_next(consumer, partitions.iter().copied());
        }
        let mut paused = consumer
            .context()
            .paused
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for partition in partitions {
            if pause {
                paused.insert(*partition);
            } else {
                paused.remove(partition);
            }
            if let Some(state) = self.parts.get_mut(partition) {
                state.paused = pause;
                state.last_message = Instant::now();
            }
        }
        drop(paused);
        if pause {
            self.summary.alignment_pauses += partitions.len() as u64;
            if let Some(stats) = &self.stats {
                stats
                    .alignment_pauses
                    .fetch_add(partitions.len() as u64, Ordering::Relaxed);
            }
        }
        self.publish_paused(consumer);
    }

    /// Where a pause resumes fetching, set to the offset darkpool reads next. librdkafka
    /// (2.12.1) resumes a paused partition from its application position, and its batch call
    /// (`rd_kafka_consume_batch_queue`, the fetch queue's drain) sets that position one past
    /// the offset of every event it hands over, not only of messages
    /// (`rd_kafka_q_serve_rkmessages`): past an end-of-partition event's offset, which is the
    /// end itself, and past a fetch error's, which is the offset that failed and is fetched
    /// again. A pause, darkpool's or librdkafka's own during a cooperative rebalance, after such
    /// an event would skip the message there, and the offset gap would be taken for one that
    /// carries no message. A seek to the offset expected sets where fetching restarts and
    /// clears that position; after a message it is the same position.
    fn fetch_from_next(
        &self,
        consumer: &StreamConsumer<Member>,
        partitions: impl IntoIterator<Item = i32>,
    ) {
        for partition in partitions {
            // Past the end's offset when it was reported (transaction markers take offsets
            // after the last message), else past the last message (or the lake's end).
            let Some(next) = self
                .parts
                .get(&partition)
                .and_then(|state| state.eof_next.or(state.next))
            else {
                continue;
            };
            match consumer.seek(
                &self.options.topic,
                partition,
                Offset::Offset(next),
                self.options.kafka.connect_timeout,
            ) {
                Ok(()) => tracing::debug!("partition {partition}: fetching resumes at {next}"),
                Err(e) => tracing::warn!(
                    "partition {partition}: setting fetching back to {next}: {e}; the message there may be skipped"
                ),
            }
        }
    }

    /// The number of partitions paused now, for `/metrics`.
    fn publish_paused(&self, consumer: &StreamConsumer<Member>) {
        if let Some(stats) = &self.stats {
            let paused = consumer
                .context()
                .paused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len();
            stats
                .paused_partitions
                .store(paused as u64, Ordering::Relaxed);
        }
    }

    /// Partitions assigned: read them from the lake's end, and rebuild the open windows of all
    /// the partitions held from the lake (which must hold everything read of those kept).
    async fn add(
        &mut self,
        consumer: &StreamConsumer<Member>,
        assigned: &[(i32, Option<i64>)],
    ) -> Result<(), IngestError> {
        self.check_topic_id().await?;
        let ends = if self.options.until_end {
            let partitions: Vec<i32> = assigned.iter().map(|(p, _)| *p).collect();
            self.end_offsets(consumer, &partitions)?
        } else {
            BTreeMap::new()
        };
        for (partition, end) in assigned {
            let end_at_assign = ends.get(partition).copied().unwrap_or(i64::MAX);
            tracing::debug!(
                "partition {partition}: lake end {end:?}, end offset now {end_at_assign}"
            );
            self.parts.insert(
                *partition,
                Partition {
                    next: *end,
                    max_ts: None,
                    last_message: Instant::now(),
                    end_at_assign,
                    eof: false,
                    eof_next: None,
                    paused: false,
                    committed: None,
                    reading: false,
                    restarted: false,
                },
            );
        }
        tracing::info!(
            "assigned partitions {:?} of {}",
            self.parts.keys().collect::<Vec<_>>(),
            self.options.topic
        );
        let started = Instant::now();
        self.rebuild_windows().await?;
        tracing::debug!(
            "open windows rebuilt from the lake in {:?}",
            started.elapsed()
        );
        Ok(())
    }

    /// Cooperative rebalancing: give up `revoked` once the lake holds what was read of them
    /// (its commit lands the other partitions' too), then rebuild the windows of those kept,
    /// without the given-up partitions' trades (their new owner rebuilds those).
    async fn give_up(
        &mut self,
        consumer: &StreamConsumer<Member>,
        revoked: &[i32],
    ) -> Result<(), IngestError> {
        self.commit(consumer).await?;
        let list = partition_list(&self.options.topic, revoked.iter().copied());
        if let Err(e) = consumer.incremental_unassign(&list) {
            tracing::error!("giving up partitions {revoked:?}: {e}");
        }
        for partition in revoked {
            self.parts.remove(partition);
        }
        tracing::info!(
            "gave up partitions {revoked:?} of {}, keeping {:?}",
            self.options.topic,
            self.parts.keys().collect::<Vec<_>>()
        );
        if !revoked.is_empty() {
            self.rebuild_windows().await?;
        }
        Ok(())
    }

    /// The partitions' end offsets now, in one by-time request for the latest offset of each
    /// (a watermark query per partition took 30-40 ms each on a local broker while the fetched
    /// messages waited); a partition that request did not answer gets its own query.
    fn end_offsets(
        &self,
        consumer: &StreamConsumer<Member>,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, IngestError> {
        let topic = self.options.topic.as_str();
        let timeout = self.options.kafka.connect_timeout;
        let mut ends = BTreeMap::new();
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            // In a by-time query, -1 (what `End` stands for) asks for the latest offset.
            let _ = list.add_partition_offset(topic, *partition, Offset::End);
        }
        match consumer.offsets_for_times(list, timeout) {
            Ok(answered) => {
                for elem in answered.elements() {
                    if let (Ok(()), Offset::Offset(end)) = (elem.error(), elem.offset()) {
                        ends.insert(elem.partition(), end);
                    }
                }
            }
            Err(e) => tracing::debug!("end offsets in one request: {e}; asking per partition"),
        }
        for partition in partitions {
            if !ends.contains_key(partition) {
                let (_, end) = consumer
                    .fetch_watermarks(topic, *partition, timeout)
                    .map_err(|source| KafkaError::Client {
                        what: "end offsets",
                        source,
                    })?;
                ends.insert(*partition, end);
            }
        }
        Ok(ends)
    }

    /// A fresh window operator holding the lake's windows, fed (without closing anything) the
    /// lake's trades of the assigned partitions that are in windows not yet emitted. The
    /// operator made at the start is still fresh at the first assignment: it is kept (planning
    /// a new one took 6-7 ms while the fetched messages waited).
    async fn rebuild_windows(&mut self) -> Result<(), IngestError> {
        // The push in flight may still read the old operator's files: it ends first.
        self.discard_in_flight().await?;
        let mut windows = match self.windows.take().filter(WindowOperator::is_pristine) {
            Some(windows) => windows,
            None => WindowOperator::new(
                self.options.ingest.window,
                self.options.ingest.reemit_late,
                Some(self.spill_folder.fresh()?),
            )
            .await?
            .with_memory_rows(self.options.ingest.window_memory_rows),
        };
        let emitted_to = preload_windows(&self.options.ingest, &mut windows).await?;
        let windows = self.windows.insert(windows);
        self.idle_closed = false;
        if self.parts.is_empty() {
            return Ok(());
        }
        let assigned: Vec<i32> = self.parts.keys().copied().collect();
        let partitions: Vec<String> = assigned.iter().map(|p| p.to_string()).collect();
        let also = format!(
            "t.source_topic = '{}' AND t.source_partition IN ({})",
            self.options.topic.replace('\'', "''"),
            partitions.join(", ")
        );
        // Only the trades of windows that can still be open (they start at most one window
        // length before the watermark the partitions' last commits recorded), rather than
        // every trade of the lake.
        let spec = self.options.ingest.window;
        let from = self
            .lake
            .open_windows_after(&self.options.topic, &assigned)?
            .map(|after| after - spec.size);
        let filter = open_windows_filter(spec, &also, from);
        let replay = crate::ingest::lake_trades(
            &self.options.ingest.lake,
            self.options.ingest.window,
            &filter,
        )
        .await?;
        for batch in replay {
            let ts = batch
                .column_by_name("timestamp")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
            let parts = batch
                .column_by_name("source_partition")
                .and_then(|c| c.as_primitive_opt::<Int32Type>());
            if let (Some(ts), Some(parts)) = (ts, parts) {
                for (t, p) in ts.iter().zip(parts.iter()) {
                    if let (Some(t), Some(state)) = (t, p.and_then(|p| self.parts.get_mut(&p))) {
                        state.max_ts = Some(state.max_ts.map_or(t, |m| m.max(t)));
                    }
                }
            }
            windows.push_open(&batch, &emitted_to).await?;
        }
        Ok(())
    }

    /// The watermark: the oldest of the partitions' newest trades, less the allowed lateness.
    /// Idle partitions are left out; an active partition with no trade yet holds it back.
    fn watermark(&self) -> Option<i64> {
        let mut oldest: Option<i64> = None;
        for state in self.parts.values() {
            if state.is_idle(self.options.idle_timeout) {
                continue;
            }
            let max_ts = state.max_ts?;
            oldest = Some(oldest.map_or(max_ts, |o| o.min(max_ts)));
        }
        oldest.map(|t| t.saturating_sub(self.options.ingest.window.lateness))
    }

    /// Decoded messages -> the run's files, and a window push that runs while the loop goes
    /// on (the previous push lands first). Live views and idle closing wait for it.
    async fn flush(&mut self) -> Result<(), IngestError> {
        let mut windows = self.windows_taken().await?;
        let decoded = self.decoders.take(now_micros()).await?;
        for (partition, ts) in decoded.max_ts {
            if let Some(state) = self.parts.get_mut(&partition) {
                state.max_ts = Some(state.max_ts.map_or(ts, |m| m.max(ts)));
            }
        }
        self.interval.dead_letters.extend(decoded.dead_letters);
        self.interval.decode.absorb(&decoded.stats);
        let (trades, rejects) = (decoded.trades, decoded.rejects);
        let watermark = self.watermark();
        for batch in &trades {
            self.write(Table::Trades, batch).await?;
        }
        self.write(Table::Rejects, &rejects).await?;
        if let Some(stats) = &self.stats {
            if let Some(watermark) = watermark {
                // The window operator's watermark never goes back; neither does this.
                stats
                    .watermark_micros
                    .fetch_max(watermark, Ordering::Relaxed);
            }
        }
        self.in_flight = Some(InFlight(tokio::spawn(async move {
            let pushed = windows.push_all_until(&trades, watermark).await;
            (windows, pushed)
        })));
        let all_idle = !self.parts.is_empty()
            && self
                .parts
                .values()
                .all(|p| p.is_idle(self.options.idle_timeout));
        if all_idle && !self.idle_closed {
            if let Some(closed) = self.windows().await?.finish().await? {
                tracing::info!(
                    "every partition idle for {:?}: closed {} open windows",
                    self.options.idle_timeout,
                    closed.num_rows()
                );
                self.closed(closed).await?;
            }
            self.idle_closed = true;
        }
        if self.views.is_some() {
            self.windows().await?;
            self.publish_live().await?;
        }
        Ok(())
    }

    /// The window operator, once the push in flight (if any) has landed its output in the run.
    async fn windows(&mut self) -> Result<&mut WindowOperator, IngestError> {
        let windows = self.windows_taken().await?;
        Ok(self.windows.insert(windows))
    }

    /// The window operator, taken out of `self` after the push in flight (if any) has landed.
    async fn windows_taken(&mut self) -> Result<WindowOperator, IngestError> {
        if let Some(pushed) = self.in_flight_done().await? {
            if let Some(late) = pushed.late {
                self.write(Table::Late, &late).await?;
            }
            if let Some(closed) = pushed.windows {
                self.closed(closed).await?;
            }
        }
        self.windows
            .take()
            .ok_or_else(|| IngestError::Internal("the window operator went missing".into()))
    }

    /// Wait for the push in flight and drop its output (its run is being dropped).
    async fn discard_in_flight(&mut self) -> Result<(), IngestError> {
        self.in_flight_done().await.map(drop)
    }

    /// Wait for the push in flight (if any): the operator back in `self`, and what it produced.
    async fn in_flight_done(&mut self) -> Result<Option<crate::window::Pushed>, IngestError> {
        let Some(mut task) = self.in_flight.take() else {
            return Ok(None);
        };
        let (windows, pushed) = (&mut task.0)
            .await
            .map_err(|e| IngestError::Internal(format!("window push: {e}")))?;
        self.windows = Some(windows);
        Ok(Some(pushed?))
    }

    async fn write(&mut self, table: Table, batch: &RecordBatch) -> Result<(), IngestError> {
        Ok(self.interval.writer.write(table, batch.clone()).await?)
    }

    /// Windows just closed: into the run's files, out to the output topic (the run's commit
    /// waits for their acknowledgement), and to the live views.
    async fn closed(&mut self, closed: RecordBatch) -> Result<(), IngestError> {
        self.write(Table::Windows, &closed).await?;
        if let (Some(publisher), Some(topic)) =
            (self.publisher.as_mut(), &self.options.output_topic)
        {
            let published = &mut self.interval.published;
            each_window_message(&closed, |key, json| {
                *published += 1;
                publisher.send(topic, Some(key), Some(json), None)
            })?;
        }
        if let Some(views) = &self.views {
            let _ = views.events.send(LiveEvent::Closed(closed.clone()));
            self.interval.closed.push(closed);
        }
        Ok(())
    }

    /// Live views: the windows closed in this run (not yet committed) and the open ones.
    async fn publish_live(&mut self) -> Result<(), IngestError> {
        let Some(views) = &self.views else {
            return Ok(());
        };
        let mut rows = self.interval.closed.clone();
        let Some(windows) = self.windows.as_mut() else {
            return Ok(()); // a push is in flight: the next flush publishes
        };
        if let Some(open) = windows.open_windows().await? {
            let _ = views.events.send(LiveEvent::Open(open.clone()));
            rows.push(open);
        }
        // Taken now, in order; shown without holding up the stream.
        views.engine.set_own_windows(rows);
        let engine = views.engine.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.show_live_windows().await {
                tracing::warn!("live windows: {e}");
            }
        });
        Ok(())
    }

    /// Drop the run in progress (a rebalance, or a lost commit race): what it read is read
    /// again from the lake's offsets by whoever owns the partitions next.
    async fn drop_interval(&mut self) -> Result<(), IngestError> {
        self.discard_in_flight().await?;
        if let Some(windows) = self.windows.as_mut() {
            windows.uncommitted_dropped();
        }
        self.decoders.clear()?;
        let fresh = Interval::begin(&self.lake, self.options)?;
        let old = std::mem::replace(&mut self.interval, fresh);
        if !old.is_empty() {
            tracing::info!(
                "dropped an uncommitted run of {} partition(s); they are read again from the lake's offsets",
                old.ranges.len()
            );
        }
        Ok(())
    }

    /// Land the run: its windows (sent as they closed) and dead letters acknowledged by the
    /// brokers, then the lake commit (fenced by the offset ranges), then the group's offsets.
    async fn commit(&mut self, consumer: &StreamConsumer<Member>) -> Result<(), IngestError> {
        self.flush().await?;
        self.windows().await?;
        if self.interval.is_empty() {
            self.interval.started = Instant::now();
            // A partition may have reached its end since the last commit, past offsets that
            // carry no message (a transaction's commit marker).
            self.commit_group(consumer, &BTreeMap::new());
            return Ok(());
        }
        let fresh = Interval::begin(&self.lake, self.options)?;
        let Interval {
            writer,
            ranges,
            published,
            dead_letters,
            decode,
            ..
        } = std::mem::replace(&mut self.interval, fresh);
        let started = Instant::now();
        if let Some(publisher) = self.publisher.as_mut() {
            if let Some(dlq) = &self.options.dlq_topic {
                for letter in &dead_letters {
                    let headers =
                        kafka::dead_letter_headers(&letter.headers, &letter.reject, &letter.pos);
                    publisher.send_dead_letter(
                        dlq,
                        letter.key.as_deref(),
                        letter.value.as_deref(),
                        headers,
                    )?;
                }
            }
            let topic = self.options.output_topic.as_deref().unwrap_or("");
            publisher.flush(topic)?;
            self.summary.windows_published += published;
            self.summary.dead_letters += dead_letters.len() as u64;
            tracing::debug!(
                "commit: {published} window(s), {} dead letter(s) acknowledged in {:?}",
                dead_letters.len(),
                started.elapsed()
            );
        }
        // The writer thread finished the run's files meanwhile (or does so now).
        let mut tx = writer.finish().await?;
        tracing::debug!("commit: files finished after {:?}", started.elapsed());
        // Every window this member holds open ends after it (recorded for restarts' replay).
        let watermark = self.windows.as_ref().and_then(WindowOperator::watermark);
        for (partition, (start, end)) in &ranges {
            tx.add_offsets(OffsetRange {
                topic: self.options.topic.clone(),
                partition: *partition,
                start: *start,
                end: *end,
                topic_id: match &self.topic_id {
                    Asked::Answered(TopicId::Id(id)) => Some(id.clone()),
                    _ => None,
                },
                watermark,
            });
        }
        let rows = tx.rows().clone();
        let run = tx.run_id().to_string();
        crate::lake::crash_point("before-lake-commit");
        match tx.commit() {
            Ok(_) => tracing::debug!("commit: lake committed after {:?}", started.elapsed()),
            Err(e @ LakeError::OffsetConflict { .. }) => {
                tracing::warn!("{e}");
                self.summary.conflicts += 1;
                return self.resync(consumer).await;
            }
            Err(e) => {
                // Logged, then failed while publishing: the run lands all the same (recovery
                // rolls it forward and nothing reads it again), so it counts.
                if self.lake.is_logged(&run) {
                    self.landed(&rows, &decode);
                }
                return Err(e.into());
            }
        }
        self.landed(&rows, &decode);
        // Every window emitted so far is in the lake now (the operator came back above).
        if let Some(windows) = self.windows.as_mut() {
            windows.committed();
        }
        crate::lake::crash_point("before-group-commit");
        self.commit_group(consumer, &ranges);
        Ok(())
    }

    /// How it is doing, since the last status line (which this one becomes).
    fn status(&mut self, consumer: &StreamConsumer<Member>) -> Status {
        let count = |table| self.summary.rows.get(&table).copied().unwrap_or(0);
        let trades = count(Table::Trades);
        let (at, before) = std::mem::replace(&mut self.last_status, (Instant::now(), trades));
        Status {
            trades,
            rejected: count(Table::Rejects),
            late: count(Table::Late),
            fresh: trades.saturating_sub(before),
            over: at.elapsed(),
            partitions: self.parts.len(),
            behind: self.behind(consumer),
            paused: self.parts.values().filter(|p| p.paused).count(),
            watermark: self.watermark(),
        }
    }

    /// Messages the brokers hold past what this member has read, over its partitions, from
    /// librdkafka's last fetch answers (no request); `None` while one of them is not known.
    fn behind(&self, consumer: &StreamConsumer<Member>) -> Option<u64> {
        let rk = consumer.client().native_ptr();
        self.parts.iter().try_fold(0u64, |sum, (partition, state)| {
            let read_to = state.next.max(state.eof_next)?;
            let (_, end) = fetch::cached_log_bounds(rk, &self.options.topic, *partition);
            Some(sum + u64::try_from(end? - read_to).unwrap_or(0))
        })
    }

    /// A run's rows (by table) and decode counts, landed in the lake: into the summary and the
    /// live counters.
    fn landed(&mut self, rows: &BTreeMap<Table, u64>, decode: &DecodeStats) {
        self.summary.commits += 1;
        for (table, n) in rows {
            *self.summary.rows.entry(*table).or_default() += n;
        }
        self.summary.decode.absorb(decode);
        if let Some(stats) = &self.stats {
            stats.landed(rows);
        }
    }

    /// Commit to the group where each partition's reading has got to, now that the lake holds
    /// it: the end of the run's range, or, for a partition at its end since its last message,
    /// the end's offset, past a transaction's commit marker (which takes an offset and is
    /// never delivered; committing only past the last message left lag monitors one behind
    /// on every exactly-once topic). The lake, not the group, says where reading resumes.
    fn commit_group(
        &mut self,
        consumer: &StreamConsumer<Member>,
        ranges: &BTreeMap<i32, (i64, i64)>,
    ) {
        let mut offsets = TopicPartitionList::new();
        let mut moved = Vec::new();
        for (partition, state) in &self.parts {
            let read = ranges.get(partition).map(|(_, end)| *end);
            let at_end = state.eof.then_some(state.eof_next).flatten();
            let Some(offset) = read.max(at_end) else {
                continue;
            };
            if state.committed.is_some_and(|c| c >= offset) {
                continue;
            }
            if let Err(e) = offsets.add_partition_offset(
                &self.options.topic,
                *partition,
                Offset::Offset(offset),
            ) {
                tracing::warn!("offset list: {e}");
                continue;
            }
            moved.push((*partition, offset));
        }
        if moved.is_empty() {
            return;
        }
        // The lake already holds these offsets: a failed group commit only costs a re-read
        // that the lake's offsets skip.
        let started = Instant::now();
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                for (partition, offset) in moved {
                    if let Some(state) = self.parts.get_mut(&partition) {
                        state.committed = Some(offset);
                    }
                }
            }
            Err(e) => tracing::warn!("committing offsets to the group (the lake has them): {e}"),
        }
        tracing::debug!("group offsets committed in {:?}", started.elapsed());
    }

    /// After a lost commit race: position every assigned partition at the lake's end again and
    /// rebuild the windows from the lake.
    async fn resync(&mut self, consumer: &StreamConsumer<Member>) -> Result<(), IngestError> {
        recover_quietly(&self.lake);
        // Seek running partitions only; alignment pauses again after the next flush if need be.
        let paused: Vec<i32> = (self.parts.iter())
            .filter(|(_, state)| state.paused)
            .map(|(partition, _)| *partition)
            .collect();
        self.set_paused(consumer, &paused, false);
        let ends = self.lake.offsets(&self.options.topic)?;
        for (partition, state) in self.parts.iter_mut() {
            let Some(end) = ends.get(partition).copied() else {
                continue;
            };
            state.next = Some(end);
            state.max_ts = None;
            // An end reported past what the lake holds no longer says that nothing but
            // markers lies between (the lost run's messages are read again).
            state.eof_next = state.eof_next.filter(|at| *at <= end);
            if let Err(e) = consumer.seek(
                &self.options.topic,
                *partition,
                Offset::Offset(end),
                Duration::from_secs(10),
            ) {
                tracing::warn!("seeking partition {partition} to {end}: {e}");
            }
        }
        self.rebuild_windows().await
    }
}

/// A polled message's headers, copied.
fn header_list(message: &BorrowedMessage<'_>) -> fetch::HeaderList {
    use rdkafka::message::{Headers, Message};
    message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect()
    })
}

/// A list of `topic`'s `partitions` (no offsets), for pause and resume.
fn partition_list(topic: &str, partitions: impl IntoIterator<Item = i32>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        list.add_partition(topic, partition);
    }
    list
}

/// Roll forward commits other members left half-done, logging (not failing on) trouble.
fn recover_quietly(lake: &Lake) {
    match lake.recover() {
        Ok(done) => {
            for run in done.rolled_forward {
                tracing::info!("finished the interrupted commit of run {run}");
            }
        }
        Err(e) => tracing::warn!("finishing interrupted lake commits: {e}"),
    }
}

/// A fresh folder for the window operator's spilled state, owned by this process (so
/// `Lake::recover` of another member leaves it alone, and removes it once this one is dead).
/// Closed windows as messages for the output topic, one at a time: key `SYMBOL-VENUE`, value
/// one JSON object with the original field names and timestamp form (`2024-01-01T11:50:00`),
/// plus the new fields. The key and value buffers are reused from row to row, so a commit's
/// windows never sit in memory as JSON all at once (the producer copies each message).
pub fn each_window_message<E>(
    batch: &RecordBatch,
    mut send: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let schema = batch.schema();
    // Field names as JSON strings, escaped once.
    let names: Vec<Vec<u8>> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut name = Vec::new();
            put(&mut name, f.name().as_str());
            name
        })
        .collect();
    let key_part = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let (symbols, venues) = (key_part("symbol"), key_part("venue"));
    fn text(column: Option<&arrow::array::StringArray>, row: usize) -> &str {
        column
            .filter(|c| c.is_valid(row))
            .map_or("", |c| c.value(row))
    }
    let mut stamp = String::new();
    let (mut key, mut json) = (Vec::with_capacity(64), Vec::with_capacity(512));
    for row in 0..batch.num_rows() {
        json.clear();
        json.push(b'{');
        for (i, (name, column)) in names.iter().zip(batch.columns()).enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(name);
            json.push(b':');
            match column.data_type() {
                _ if column.is_null(row) => json.extend_from_slice(b"null"),
                DataType::Timestamp(_, _) => {
                    let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
                    stamp.clear();
                    crate::time::format_iso_micros(micros, &mut stamp);
                    stamp.truncate(19);
                    put(&mut json, stamp.as_str());
                }
                DataType::Float64 => {
                    put(&mut json, &column.as_primitive::<Float64Type>().value(row))
                }
                DataType::Int64 => put(&mut json, &column.as_primitive::<Int64Type>().value(row)),
                DataType::Boolean => put(&mut json, &column.as_boolean().value(row)),
                DataType::Utf8 => put(&mut json, column.as_string::<i32>().value(row)),
                _ => json.extend_from_slice(b"null"),
            }
        }
        json.push(b'}');
        key.clear();
        key.extend_from_slice(text(symbols, row).as_bytes());
        key.push(b'-');
        key.extend_from_slice(text(venues, row).as_bytes());
        send(&key, &json)?;
    }
    Ok(())
}

/// Append `value` as JSON (floats that are not finite as `null`, like serde_json's `Value`).
fn put<T: serde::Serialize + ?Sized>(json: &mut Vec<u8>, value: &T) {
    // Writing plain values into a Vec cannot fail.
    let _ = serde_json::to_writer(json, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn a_status_line_says_counts_rate_lag_and_watermark() {
        let mut status = Status {
            trades: 1_234_567,
            rejected: 12,
            late: 3,
            fresh: 60_000,
            over: Duration::from_millis(59_600),
            partitions: 3,
            behind: Some(45_000),
            paused: 0,
            watermark: Some(1_704_101_415_250_000),
        };
        assert_eq!(
            status.to_string(),
            "status: 1,234,567 trades landed (+60,000 in 60s, 1,007/s), 12 rejected, 3 late; \
             3 partition(s), 45,000 message(s) behind; watermark 2024-01-01T09:30:15Z"
        );
        status.paused = 1;
        assert!(status.to_string().contains(
            "3 partition(s), at least 45,000 message(s) behind (1 paused for watermark \
             alignment: their part as of the pause); watermark"
        ));
        (status.behind, status.watermark, status.over) = (None, None, Duration::ZERO);
        assert_eq!(
            status.to_string(),
            "status: 1,234,567 trades landed (+60,000 in 0.0s, 0/s), 12 rejected, 3 late; \
             3 partition(s), messages behind not known yet; no watermark yet"
        );
    }

    #[test]
    fn window_messages_are_json_objects_in_column_order_with_the_original_timestamp_form() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("window_start", crate::model::timestamp_type(), false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("venue", DataType::Utf8, true),
            Field::new("vwap", DataType::Float64, true),
            Field::new("num_trades", DataType::Int64, false),
            Field::new("is_final", DataType::Boolean, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_704_109_800_000_000, 0])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec!["A\"B", "XYZ"])),
                Arc::new(StringArray::from(vec![Some("IEX"), None])),
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(1.0)])),
                Arc::new(Int64Array::from(vec![3, 1])),
                Arc::new(BooleanArray::from(vec![true, false])),
            ],
        )
        .unwrap();
        let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
        each_window_message(&batch, |key, json| {
            messages.push((String::from_utf8(key.to_vec()).unwrap(), json.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].0, "A\"B-IEX");
        assert_eq!(
            String::from_utf8(messages[0].1.clone()).unwrap(),
            r#"{"window_start":"2024-01-01T11:50:00","symbol":"A\"B","venue":"IEX","vwap":null,"num_trades":3,"is_final":true}"#
        );
        assert_eq!(messages[1].0, "XYZ-");
        assert_eq!(
            String::from_utf8(messages[1].1.clone()).unwrap(),
            r#"{"window_start":"1970-01-01T00:00:00","symbol":"XYZ","venue":null,"vwap":1.0,"num_trades":1,"is_final":false}"#
        );
    }
}
