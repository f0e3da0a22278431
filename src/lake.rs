//! The lake: Parquet tables in Hive-style date partitions under one root. This module is the
//! one place lake paths are built.
//!
//! ```text
//! LAKE/trades/date=2024-01-01/part-<run>-00001.parquet   data, visible to readers
//! LAKE/ats_weekly/part-<run>-00002.parquet                 FINRA tables: not partitioned
//! LAKE/_staging/<run>/...                                  a run's files before commit
//! LAKE/_commits/<run>.json                                 commit log: files + sources
//! LAKE/_sources/<blake3 of content>.json                    inputs the lake already holds
//! LAKE/_offsets/<topic>/<partition>.json                    Kafka: the next offset to read
//! LAKE/_swaps                                               compaction's folder swaps (`compact`)
//! ```
//!
//! A run writes its files into `_staging/<run>/` (invisible to readers). Commit writes the
//! commit log atomically, then renames every file into place, then records its sources. A crash
//! before the log leaves only staging (garbage, removed later); a crash after it is rolled
//! forward by [`Lake::recover`]. Readers never see a torn file: a file appears by rename.
//!
//! A Kafka run also records the offset ranges it holds (`[start, end)` per topic partition).
//! Its commit is fenced: under a lake-wide lock, each range must start where the lake's
//! `_offsets` say that partition ends, so two members (or a member and its own restart) can
//! never both land the same offsets, and a gap is refused too.

pub mod compact;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use compact::{compact, CompactOptions, CompactSummary, TableCompaction};
pub use writer::{BackgroundWriter, Transaction, WriterOptions};

/// A table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Trades,
    Windows,
    Late,
    Rejects,
    /// FINRA OTC Transparency ATS weekly volumes (every row loaded).
    AtsWeekly,
    /// FINRA Reg SHO daily short-sale volume (every row loaded).
    ShortVolume,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Trades,
        Table::Windows,
        Table::Late,
        Table::Rejects,
        Table::AtsWeekly,
        Table::ShortVolume,
    ];

    /// The folder name (and, except for windows and the FINRA tables, the SQL table name).
    pub fn dir_name(self) -> &'static str {
        match self {
            Table::Trades => "trades",
            Table::Windows => "windows",
            Table::Late => "late",
            Table::Rejects => "rejects",
            Table::AtsWeekly => "ats_weekly",
            Table::ShortVolume => "short_volume",
        }
    }

    /// The timestamp column whose UTC date is the `date=` partition; `None` for tables kept
    /// in one folder (the FINRA tables: small, and with a `date` column of their own).
    pub fn date_column(self) -> Option<&'static str> {
        match self {
            Table::Trades | Table::Late => Some("timestamp"),
            Table::Windows => Some("window_start"),
            Table::Rejects => Some("rejected_at"),
            Table::AtsWeekly | Table::ShortVolume => None,
        }
    }
}

/// Why the lake could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt record: {message}")]
    Record { path: PathBuf, message: String },
    #[error("writing Parquet {path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("the lake writer thread stopped: {0}")]
    WriterStopped(String),
    #[error("{path} is being ingested right now by {owner}; try again when that run ends")]
    Claimed { path: String, owner: String },
    #[error("the lake is being compacted right now by {owner}; try again when that run ends")]
    Compacting { owner: String },
    #[error("the lake {root} holds {held} windows, and this run would write {asked} ones: one lake keeps one window shape (a SUM over `windows` would count each trade once per shape); give the lake's --window/--slide, or another --lake")]
    WindowShape {
        root: PathBuf,
        held: WindowShape,
        asked: WindowShape,
    },
    #[error("offsets of {topic} partition {partition} from {start}: the lake already holds them up to {end} (another group member or an earlier run landed them); the run is dropped and re-read from the lake's position")]
    OffsetConflict {
        topic: String,
        partition: i32,
        start: i64,
        end: i64,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An input the lake holds, keyed by a hash of its content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceRecord {
    pub id: String,
    pub path: String,
    pub bytes: u64,
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub run: String,
    pub committed_at: String,
}

/// Kafka offsets `[start, end)` of one topic partition that a run holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OffsetRange {
    pub topic: String,
    pub partition: i32,
    /// Where this run began reading: the lake's end for the partition, or (for a partition
    /// new to the lake) the first offset read.
    pub start: i64,
    /// One past the last offset read.
    pub end: i64,
    /// The topic's id when the brokers gave one (Kafka 2.8 on): a topic deleted and created
    /// again under its name has a new one. Lakes from before it was recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// The committing member's watermark (event time, µs) when it committed: every window it
    /// held open then ends after it. Lakes from before it was recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
}

/// The commit log entry of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitRecord {
    pub run: String,
    /// Data files, relative to the lake root.
    pub files: Vec<String>,
    pub sources: Vec<SourceRecord>,
    /// Kafka offsets the run's files hold (none for file runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<OffsetRange>,
}

/// What [`Lake::recover`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovery {
    pub rolled_forward: Vec<String>,
    pub removed_staging: Vec<String>,
}

/// The shape of the windows a lake's `windows` table holds (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowShape {
    pub size: i64,
    pub slide: i64,
}

impl std::fmt::Display for WindowShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = crate::time::format_duration(self.size);
        if self.slide == self.size {
            write!(f, "{size} tumbling")
        } else {
            let slide = crate::time::format_duration(self.slide);
            write!(f, "{size} hopping every {slide}")
        }
    }
}

/// A lake rooted at a folder.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    pub fn new(root: impl Into<PathBuf>) -> Lake {
        Lake { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the table folders, so a long-running reader (`serve`) opened on a new lake sees
    /// the files that later runs commit.
    pub fn ensure_tables(&self) -> Result<(), LakeError> {
        for table in Table::ALL {
            let dir = self.table_dir(table);
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        }
        Ok(())
    }

    pub fn table_dir(&self, table: Table) -> PathBuf {
        self.root.join(table.dir_name())
    }

    /// `table/date=YYYY-MM-DD/part-<run>-<seq>.parquet` (or `table/part-…` for a table
    /// without partitions), relative to the root.
    pub fn data_file(table: Table, date: Option<&str>, run: &str, seq: u32) -> PathBuf {
        let dir = PathBuf::from(table.dir_name());
        let dir = match date {
            Some(date) => dir.join(format!("date={date}")),
            None => dir,
        };
        dir.join(format!("part-{run}-{seq:05}.parquet"))
    }

    /// Record the window shape a run is about to write, or refuse one other than the shape the
    /// lake's windows already have (`_window.json`). A lake from before this record takes the
    /// first shape written to it after.
    pub fn settle_window_shape(&self, asked: WindowShape) -> Result<(), LakeError> {
        match self.window_shape()? {
            Some(held) if held == asked => Ok(()),
            Some(held) => Err(LakeError::WindowShape {
                root: self.root.clone(),
                held,
                asked,
            }),
            None => {
                fs::create_dir_all(&self.root).map_err(io_error(&self.root))?;
                let bytes = serde_json::to_vec(&asked).map_err(|e| LakeError::Record {
                    path: self.window_shape_path(),
                    message: e.to_string(),
                })?;
                write_atomic(&self.window_shape_path(), &bytes)
            }
        }
    }

    /// The window shape the lake's windows have, if it has recorded one.
    pub fn window_shape(&self) -> Result<Option<WindowShape>, LakeError> {
        read_optional_record(&self.window_shape_path())
    }

    fn window_shape_path(&self) -> PathBuf {
        self.root.join("_window.json")
    }

    pub fn staging_dir(&self, run: &str) -> PathBuf {
        self.root.join("_staging").join(run)
    }

    fn commits_dir(&self) -> PathBuf {
        self.root.join("_commits")
    }

    /// When a commit was last logged here (the commit log's folder changed): what a reader
    /// following the lake watches. `None` while there is none.
    pub fn commits_changed_at(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.commits_dir())
            .and_then(|m| m.modified())
            .ok()
    }

    /// Is `run`'s commit logged? From then on the run is the lake's: its staged files are
    /// published by its own commit or, after a failure, by recovery's roll-forward.
    pub(crate) fn is_logged(&self, run: &str) -> bool {
        self.commits_dir().join(format!("{run}.json")).exists()
    }

    fn sources_dir(&self) -> PathBuf {
        self.root.join("_sources")
    }

    fn offsets_dir(&self, topic: &str) -> PathBuf {
        self.root.join("_offsets").join(topic)
    }

    /// The next offset to read of each partition of `topic` the lake holds data of (partition
    /// -> end of the last range landed). A run whose commit is logged but not yet published
    /// (its process died between the two, or is between them now) counts as landed: it is
    /// rolled forward, never re-read. Readers that need its rows call [`Lake::recover`] first.
    pub fn offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, LakeError> {
        // Logged runs first, then the index: a publish that completes between the two reads
        // moves its range into the index, so it is seen either way.
        let pending = self.logged_ranges(topic)?;
        let mut ends = self.indexed_offsets(topic)?;
        for range in pending {
            let end = ends.entry(range.partition).or_insert(range.end);
            *end = (*end).max(range.end);
        }
        Ok(ends)
    }

    /// The topic ids recorded with `topic`'s offsets, in the index and in committed runs not
    /// yet published: none from brokers without ids or from lakes made before ids were
    /// recorded, one otherwise.
    pub fn topic_ids(&self, topic: &str) -> Result<BTreeSet<String>, LakeError> {
        let mut ranges = self.logged_ranges(topic)?;
        ranges.extend(self.indexed_ranges(topic)?);
        Ok(ranges.into_iter().filter_map(|r| r.topic_id).collect())
    }

    /// The oldest watermark recorded with the last range landed of each of `partitions` that
    /// the lake holds data of; `None` if one of those has none recorded (or none holds data).
    /// Windows a member of those partitions left open end after it, so their trades are at
    /// most one window length older.
    pub fn open_windows_after(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Option<i64>, LakeError> {
        let mut ranges = self.logged_ranges(topic)?;
        ranges.extend(self.indexed_ranges(topic)?);
        let mut last: BTreeMap<i32, OffsetRange> = BTreeMap::new();
        for range in ranges {
            if last.get(&range.partition).is_none_or(|l| l.end < range.end) {
                last.insert(range.partition, range);
            }
        }
        let mut oldest: Option<i64> = None;
        for range in partitions.iter().filter_map(|p| last.get(p)) {
            let Some(watermark) = range.watermark else {
                return Ok(None);
            };
            oldest = Some(oldest.map_or(watermark, |o| o.min(watermark)));
        }
        Ok(oldest)
    }

    /// The `_offsets` index alone: partition -> end of the last published range.
    fn indexed_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, LakeError> {
        let ranges = self.indexed_ranges(topic)?;
        Ok(ranges.into_iter().map(|r| (r.partition, r.end)).collect())
    }

    /// The `_offsets` index of `topic`: the last published range of each partition.
    fn indexed_ranges(&self, topic: &str) -> Result<Vec<OffsetRange>, LakeError> {
        let mut ranges = Vec::new();
        for entry in fs::read_dir(self.offsets_dir(topic))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                ranges.push(read_record(&path)?);
            }
        }
        Ok(ranges)
    }

    /// `topic`'s ranges of the runs logged but not yet published.
    fn logged_ranges(&self, topic: &str) -> Result<Vec<OffsetRange>, LakeError> {
        let mut ranges = Vec::new();
        for (_, record) in self.logged_unpublished()? {
            ranges.extend(record.offsets.into_iter().filter(|r| r.topic == topic));
        }
        Ok(ranges)
    }

    /// Runs whose commit log is written and whose staging folder still exists: committed, not
    /// (entirely) visible yet. Staging holds few folders, so this is cheap at any lake size.
    fn logged_unpublished(&self) -> Result<Vec<(PathBuf, CommitRecord)>, LakeError> {
        let commits = self.commits_dir();
        let mut runs = Vec::new();
        for entry in fs::read_dir(self.root.join("_staging"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let run = entry.file_name().to_string_lossy().to_string();
            let log = commits.join(format!("{run}.json"));
            // A commit log is written atomically and never removed.
            if log.exists() {
                runs.push((entry.path(), read_record(&log)?));
            }
        }
        Ok(runs)
    }

    /// Does the table hold any data file?
    pub fn has_data(&self, table: Table) -> bool {
        find_data_file(&self.table_dir(table), &mut |_| true)
    }

    /// The tables' data files whose Parquet footer cannot be read (cut short, overwritten, not
    /// Parquet), with why; the first `limit` of them, in path order. Looked for only after a
    /// query failed reading Parquet, whose error does not say which file it was.
    pub fn unreadable_files(&self, limit: usize) -> Vec<(PathBuf, String)> {
        let mut bad = Vec::new();
        for table in Table::ALL {
            let full = find_data_file(&self.table_dir(table), &mut |path| {
                let why = match fs::File::open(path) {
                    Ok(file) => parquet::file::metadata::ParquetMetaDataReader::new()
                        .parse_and_finish(&file)
                        .err()
                        .map(|e| e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(why) = why {
                    bad.push((path.to_path_buf(), why));
                }
                bad.len() >= limit
            });
            if full {
                break;
            }
        }
        bad
    }

    /// Does no table hold any data?
    pub fn is_empty(&self) -> bool {
        !Table::ALL.iter().any(|t| self.has_data(*t))
    }

    /// The record of an input already in the lake, by content id.
    pub fn source(&self, id: &str) -> Result<Option<SourceRecord>, LakeError> {
        read_optional_record(&self.sources_dir().join(format!("{id}.json")))
    }

    /// Finish commits a crash interrupted, and remove staging left by dead runs of this host.
    /// Safe while other processes commit: a run holding Kafka offsets is rolled forward under
    /// the offsets lock (so the index never moves back), and only if it is still unpublished.
    pub fn recover(&self) -> Result<Recovery, LakeError> {
        let mut report = Recovery::default();
        for (staging, record) in self.logged_unpublished()? {
            if record.offsets.is_empty() {
                self.publish(&record)?;
            } else {
                let _lock = self.lock("offsets")?;
                if !staging.exists() {
                    continue; // its own process (alive after all) published it meanwhile
                }
                self.publish(&record)?;
            }
            report.rolled_forward.push(record.run);
        }
        let commits = self.commits_dir();
        let staging_root = self.root.join("_staging");
        for entry in fs::read_dir(&staging_root).into_iter().flatten().flatten() {
            let dir = entry.path();
            let run = entry.file_name().to_string_lossy().to_string();
            if commits.join(format!("{run}.json")).exists() {
                continue;
            }
            if !owner_alive(&dir) {
                match fs::remove_dir_all(&dir) {
                    Ok(()) => report.removed_staging.push(run),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&dir)(e)),
                }
            }
        }
        Ok(report)
    }

    /// Make a committed run visible: move its files into place, record its sources, drop its
    /// staging. Idempotent, so recovery can repeat it after a crash at any step.
    fn publish(&self, record: &CommitRecord) -> Result<(), LakeError> {
        let _publishing = self.lock("publish")?;
        self.publish_locked(record)
    }

    /// [`Lake::publish`] under the publish lock, held by the caller. A compaction swapping a
    /// partition's folder waits for it, and it for the compaction: a file moved into the
    /// folder being swapped out would vanish from readers.
    fn publish_locked(&self, record: &CommitRecord) -> Result<(), LakeError> {
        let staging = self.staging_dir(&record.run);
        let mut dirs = std::collections::BTreeSet::new();
        for rel in &record.files {
            let from = staging.join(rel);
            let to = self.root.join(rel);
            if from.exists() {
                let parent = to.parent().unwrap_or(&self.root).to_path_buf();
                fs::create_dir_all(&parent).map_err(io_error(&parent))?;
                match fs::rename(&from, &to) {
                    Ok(()) => {}
                    // A file run's recovery in another process moved it first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && to.exists() => {}
                    Err(e) => return Err(io_error(&to)(e)),
                }
                dirs.insert(parent);
            }
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        let sources = self.sources_dir();
        fs::create_dir_all(&sources).map_err(io_error(&sources))?;
        for source in &record.sources {
            let bytes = serde_json::to_vec_pretty(source).unwrap_or_default();
            write_atomic(&sources.join(format!("{}.json", source.id)), &bytes)?;
        }
        for range in &record.offsets {
            let dir = self.offsets_dir(&range.topic);
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
            let path = dir.join(format!("{}.json", range.partition));
            // Roll-forward may repeat an older commit: the index only ever moves forward. (The
            // index alone: `offsets` also counts this very run while its staging exists.)
            let current = self
                .indexed_offsets(&range.topic)?
                .get(&range.partition)
                .copied();
            if current.is_none_or(|end| end < range.end) {
                let bytes = serde_json::to_vec_pretty(range).unwrap_or_default();
                write_atomic(&path, &bytes)?;
            }
        }
        match fs::remove_dir_all(&staging) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&staging)(e)),
        }
    }

    /// Commit a run whose files are closed in its staging folder. A run holding Kafka offsets
    /// commits under the lake's offsets lock, and only if each range continues the lake's.
    pub(crate) fn commit(&self, record: &CommitRecord) -> Result<(), LakeError> {
        if record.offsets.is_empty() {
            return self.commit_unfenced(record);
        }
        let _lock = self.lock("offsets")?;
        let mut topics: BTreeMap<&str, BTreeMap<i32, i64>> = BTreeMap::new();
        for range in &record.offsets {
            if !topics.contains_key(range.topic.as_str()) {
                topics.insert(&range.topic, self.offsets(&range.topic)?);
            }
            let lake_end = topics[range.topic.as_str()].get(&range.partition).copied();
            if let Some(end) = lake_end.filter(|end| *end != range.start) {
                return Err(LakeError::OffsetConflict {
                    topic: range.topic.clone(),
                    partition: range.partition,
                    start: range.start,
                    end,
                });
            }
        }
        self.commit_unfenced(record)
    }

    fn commit_unfenced(&self, record: &CommitRecord) -> Result<(), LakeError> {
        // Taken before the log is written: a lock that cannot be taken (a full disk) then
        // fails the commit cleanly, rather than leave it logged for recovery to publish.
        let _publishing = self.lock("publish")?;
        let commits = self.commits_dir();
        fs::create_dir_all(&commits).map_err(io_error(&commits))?;
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        write_atomic(&commits.join(format!("{}.json", record.run)), &bytes)?;
        crash_point("commit-logged");
        self.publish_locked(record)
    }
}

/// An exclusive claim on ingesting one input (by content id), so two processes never commit
/// the same content. Released when dropped; a claim of a dead process is taken over.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Lake {
    /// Claim the input with content `id` (shown as `label` in errors) for this process.
    pub fn claim(&self, id: &str, label: &str) -> Result<Claim, LakeError> {
        let dir = self.sources_dir();
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(format!(".{id}.claim"));
        let me = owner_line();
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    // A claim is only made once it names its owner: an empty one left by a
                    // failed write (a full disk) would hold the input, or the lake's lock, for
                    // as long as the file stays (its owner cannot be told dead).
                    let claim = Claim { path };
                    file.write_all(me.as_bytes())
                        .map_err(io_error(&claim.path))?;
                    return Ok(claim);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if owner_alive(&path) {
                        let owner = fs::read_to_string(&path)
                            .unwrap_or_default()
                            .trim()
                            .replace(' ', " pid ");
                        return Err(LakeError::Claimed {
                            path: label.to_string(),
                            owner,
                        });
                    }
                    // Left by a process that died: take it over.
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
        Err(LakeError::Claimed {
            path: label.to_string(),
            owner: "another process".into(),
        })
    }
}

impl Lake {
    /// Take the lake-wide lock `name`, waiting (up to a minute) while a live process holds it.
    fn lock(&self, name: &str) -> Result<Claim, LakeError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match self.claim(&format!("lock-{name}"), &format!("the lake's {name} lock")) {
                Err(LakeError::Claimed { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }
}

/// Crash tests: `DARKPOOL_CRASH_AT=<point>` aborts the process there (no destructors, no
/// flushing: what kill -9 does), so a test can stop a run at an exact step of its commit.
pub(crate) fn crash_point(point: &str) {
    if std::env::var("DARKPOOL_CRASH_AT").is_ok_and(|at| at == point) {
        crate::say!("DARKPOOL_CRASH_AT={point}: aborting here");
        std::process::abort();
    }
}

/// What an owner file says: this host and process (what [`owner_alive`] reads back).
fn owner_line() -> String {
    format!("{} {}\n", hostname(), std::process::id())
}

/// Mark the folder `dir` as this process's (its `owner` file), so that recovery tells a live
/// run's folder from a dead one's.
pub(crate) fn write_owner(dir: &Path) -> Result<(), LakeError> {
    let owner = dir.join("owner");
    fs::write(&owner, owner_line()).map_err(io_error(&owner))
}

/// Is the process named in an owner file (a staging folder's `owner`, or a claim) still
/// running on this host?
fn owner_alive(path: &Path) -> bool {
    let file = if path.is_dir() {
        path.join("owner")
    } else {
        path.to_path_buf()
    };
    let Ok(text) = fs::read_to_string(file) else {
        // No owner file: a run that died before writing anything that matters, or one being
        // set up this instant (its folder is made just before its owner file): only a folder
        // older than a minute is taken for dead.
        return path.is_dir() && younger_than_a_minute(path);
    };
    let mut parts = text.split_whitespace();
    let (host, pid) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if pid.is_empty() {
        // An owner file being written this instant, or one whose write failed (a full disk,
        // before claims removed theirs): taken for dead once a minute old.
        return younger_than_a_minute(path);
    }
    if host != hostname() {
        return true; // another machine's run: not ours to judge
    }
    Path::new("/proc").join(pid).exists()
}

/// Changed less than a minute ago (a file or folder being set up now, not one left behind).
fn younger_than_a_minute(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(60))
}

pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn sync_dir(dir: &Path) -> Result<(), LakeError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_error(dir))
}

/// Read one of the lake's JSON records.
fn read_record<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LakeError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    serde_json::from_slice(&bytes).map_err(|e| LakeError::Record {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Write a small file so it appears whole or not at all.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LakeError> {
    write_atomic_with(path, |out| out.write_all(bytes).map_err(io_error(path)))
}

/// One of the lake's JSON records, if the file is there.
fn read_optional_record<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, LakeError> {
    match read_record(path) {
        Ok(record) => Ok(Some(record)),
        Err(LakeError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write a file through `write` so it appears whole or not at all: a temporary name beside it,
/// fsync, rename, fsync of the folder. On any error the temporary file is removed.
pub fn write_atomic_with<E: From<LakeError>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = fs::File::create(&tmp).map_err(io_error(&tmp))?;
        let mut out = io::BufWriter::new(file);
        write(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| io_error(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_error(&tmp))?;
        fs::rename(&tmp, path).map_err(io_error(path))?;
        sync_dir(dir).map_err(E::from)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Visit the Parquet files under `dir` (its `date=` folders too) in path order until `found`
/// says so; whether it did.
fn find_data_file(dir: &Path, found: &mut impl FnMut(&Path) -> bool) -> bool {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries.iter().any(|path| {
        if path.is_dir() {
            find_data_file(path, found)
        } else {
            path.extension().is_some_and(|e| e == "parquet") && found(path)
        }
    })
}

/// Content id of an input (`path`, read through `file`): BLAKE3 of its bytes, as hex (SIMD,
/// several GB/s), and their count.
pub fn content_id(mut file: impl Read, path: &Path) -> Result<(String, u64), LakeError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(path)(e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_leaves_a_staging_folder_being_set_up_alone() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        // Made an instant ago, its owner file not yet written (another process's `begin`).
        let fresh = lake.staging_dir("run-being-set-up");
        fs::create_dir_all(&fresh).unwrap();
        assert_eq!(lake.recover().unwrap(), Recovery::default());
        assert!(fresh.exists());
        // A folder that never got its owner file, long ago: the run died; it goes.
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::open(&fresh)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        assert_eq!(
            lake.recover().unwrap().removed_staging,
            vec!["run-being-set-up"]
        );
        assert!(!fresh.exists());
    }

    #[test]
    fn recovery_rolls_a_logged_commit_forward_and_drops_dead_staging() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        // A run that logged its commit, then crashed before moving its file.
        let rel = Lake::data_file(Table::Trades, Some("2024-01-01"), "run1", 1);
        let staged = lake.staging_dir("run1").join(&rel);
        fs::create_dir_all(staged.parent().unwrap()).unwrap();
        fs::write(&staged, b"PAR1").unwrap();
        let record = CommitRecord {
            run: "run1".into(),
            files: vec![rel.to_string_lossy().into()],
            sources: vec![],
            offsets: vec![],
        };
        fs::create_dir_all(lake.commits_dir()).unwrap();
        write_atomic(
            &lake.commits_dir().join("run1.json"),
            &serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        // A run that died before committing.
        let dead = lake.staging_dir("run2");
        fs::create_dir_all(&dead).unwrap();
        fs::write(dead.join("owner"), format!("{} 999999999", hostname())).unwrap();

        let report = lake.recover().unwrap();
        assert_eq!(report.rolled_forward, vec!["run1"]);
        assert_eq!(report.removed_staging, vec!["run2"]);
        assert!(dir.path().join(&rel).exists());
        assert!(!lake.staging_dir("run1").exists());
        assert!(lake.has_data(Table::Trades));
        assert!(!lake.has_data(Table::Windows));
        // Idempotent.
        assert_eq!(lake.recover().unwrap(), Recovery::default());
    }

    /// The replay bound of a restart: the oldest watermark of the assigned partitions' last
    /// ranges; none when one of them has data without a watermark (a lake from before).
    #[test]
    fn open_windows_end_after_the_oldest_watermark_of_the_last_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        let mut n = 0;
        let mut commit = |partition, start, end, watermark| {
            n += 1;
            lake.commit(&CommitRecord {
                run: format!("run{n}"),
                files: vec![],
                sources: vec![],
                offsets: vec![OffsetRange {
                    topic: "t".into(),
                    partition,
                    start,
                    end,
                    topic_id: None,
                    watermark,
                }],
            })
            .unwrap();
        };
        commit(0, 0, 10, Some(500));
        commit(0, 10, 20, Some(900));
        commit(1, 0, 5, Some(700));
        commit(2, 0, 5, None);
        let after = |partitions: &[i32]| lake.open_windows_after("t", partitions).unwrap();
        assert_eq!(after(&[0]), Some(900), "the last range's");
        assert_eq!(after(&[0, 1]), Some(700), "the oldest");
        assert_eq!(
            after(&[0, 1, 3]),
            Some(700),
            "a partition without data needs none"
        );
        assert_eq!(after(&[0, 2]), None, "data without a watermark: no bound");
        assert_eq!(lake.open_windows_after("other", &[0]).unwrap(), None);
    }

    #[test]
    fn a_logged_unpublished_kafka_run_counts_as_landed_and_fences_a_re_read() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        let range = |start, end| OffsetRange {
            topic: "t".into(),
            partition: 0,
            start,
            end,
            topic_id: None,
            watermark: None,
        };
        let record = |run: &str, start, end| CommitRecord {
            run: run.into(),
            files: vec![],
            sources: vec![],
            offsets: vec![range(start, end)],
        };
        lake.commit(&record("run1", 0, 100)).unwrap();
        assert_eq!(lake.offsets("t").unwrap()[&0], 100);
        // run2 logged [100, 250) and died before publishing.
        fs::create_dir_all(lake.staging_dir("run2")).unwrap();
        write_atomic(
            &lake.commits_dir().join("run2.json"),
            &serde_json::to_vec(&record("run2", 100, 250)).unwrap(),
        )
        .unwrap();
        assert_eq!(lake.indexed_offsets("t").unwrap()[&0], 100);
        assert_eq!(lake.offsets("t").unwrap()[&0], 250, "counted as landed");
        // Another member re-reading from the index's end is refused.
        assert!(matches!(
            lake.commit(&record("run3", 100, 180)),
            Err(LakeError::OffsetConflict { end: 250, .. })
        ));
        // Recovery publishes it and the index moves on; the next range continues from there.
        assert_eq!(lake.recover().unwrap().rolled_forward, vec!["run2"]);
        assert_eq!(lake.indexed_offsets("t").unwrap()[&0], 250);
        lake.commit(&record("run4", 250, 300)).unwrap();
        assert_eq!(lake.offsets("t").unwrap()[&0], 300);
        // A repeated roll-forward of an old run never moves the index back.
        lake.publish(&record("run2", 100, 250)).unwrap();
        assert_eq!(lake.offsets("t").unwrap()[&0], 300);
    }

    /// A topic's ids come from its offsets' index and from runs logged but not published; an
    /// index entry from before ids were recorded has none, and still reads.
    #[test]
    fn topic_ids_are_read_from_the_index_and_logged_runs() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        let record = |run: &str, partition, topic_id: Option<&str>| CommitRecord {
            run: run.into(),
            files: vec![],
            sources: vec![],
            offsets: vec![OffsetRange {
                topic: "t".into(),
                partition,
                start: 0,
                end: 10,
                topic_id: topic_id.map(str::to_string),
                watermark: None,
            }],
        };
        lake.commit(&record("run1", 0, None)).unwrap();
        let old = lake.offsets_dir("t").join("0.json");
        assert!(!fs::read_to_string(&old).unwrap().contains("topic_id"));
        assert!(lake.topic_ids("t").unwrap().is_empty());
        lake.commit(&record("run2", 1, Some("A"))).unwrap();
        fs::create_dir_all(lake.staging_dir("run3")).unwrap();
        write_atomic(
            &lake.commits_dir().join("run3.json"),
            &serde_json::to_vec(&record("run3", 2, Some("B"))).unwrap(),
        )
        .unwrap();
        let ids: Vec<String> = lake.topic_ids("t").unwrap().into_iter().collect();
        assert_eq!(ids, ["A", "B"]);
        assert!(lake.topic_ids("other").unwrap().is_empty());
    }

    #[test]
    fn an_empty_claim_is_respected_while_young_and_taken_over_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        fs::create_dir_all(dir.path().join("_sources")).unwrap();
        let path = dir.path().join("_sources/.abc.claim");
        // Being written this instant: not taken.
        fs::write(&path, "").unwrap();
        assert!(matches!(
            lake.claim("abc", "a.ndjson"),
            Err(LakeError::Claimed { .. })
        ));
        // Left empty by a write that failed two minutes ago: taken over.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let claim = lake.claim("abc", "a.ndjson").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), owner_line());
        drop(claim);
    }

    #[test]
    fn claims_are_exclusive_released_on_drop_and_taken_from_the_dead() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        let claim = lake.claim("abc", "a.ndjson").unwrap();
        let err = lake.claim("abc", "a.ndjson").unwrap_err().to_string();
        assert!(
            err.contains("a.ndjson is being ingested right now"),
            "{err}"
        );
        drop(claim);
        let claim = lake.claim("abc", "a.ndjson").unwrap();
        std::mem::forget(claim); // as if this process had died...
        let path = dir.path().join("_sources/.abc.claim");
        fs::write(&path, format!("{} 999999999", hostname())).unwrap(); // ...with this pid
        assert!(lake.claim("abc", "a.ndjson").is_ok());
    }
}
