//! Compaction: the small files of a partition merged into few large ones, swapped in at once.
//!
//! Every commit adds a file per table and day, so a long-running member (`--commit-every 1s`)
//! leaves tens of thousands of small files a day, and every query lists and opens them all.
//! Compaction reads a partition's small files (those under half the target size) and writes
//! their rows, unchanged and in commit order (by file time), into files of up to the target
//! size in a staging folder of its own. It then builds the partition's new folder there (the merged files, plus
//! hard links to every file it did not merge) and exchanges the two folders in one
//! `renameat2(RENAME_EXCHANGE)` under the lake's publish lock, which every commit takes to move
//! its files in (so no commit's file lands in the folder being swapped out).
//!
//! A reader that lists a partition as it changes places can still get a mix: the names of the
//! old folder, each looked up in the new one, where the merged ones are gone (DataFusion's
//! listing drops a file that vanishes under it, silently). So each swap counts up a number in
//! `_swaps`, once before (odd: under way) and once after, and darkpool's queries read it before
//! they list the lake and after they read it: if it moved, they run again (see `engine`).
//! Other readers of the lake's folders (DuckDB, pyarrow) know nothing of it: while a
//! compaction runs, they may miss a partition's rows for one query.
//!
//! A crash at any step leaves the lake as it was before the swap or after it: the staging
//! folder holds only copies (before) or the old folder (after), and recovery removes it as any
//! dead run's; the next compaction makes an odd count left behind even.
//!
//! Files are merged only with files of the same schema (an older darkpool's files stay apart).
//! A file whose footer cannot be read is left where it is, and one whose data cannot be read
//! leaves its partition as it was; both are reported, and the other partitions compacted.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;

use super::writer::{begin_staging, new_run_id, parquet_error, writer_properties};
use super::{crash_point, io_error, sync_dir, Lake, LakeError, Table, WriterOptions};

/// The claim a compaction holds on the lake while it runs.
const COMPACT_CLAIM: &str = "lock-compact";

/// The file of [`Lake::swaps`], in the lake's root.
const SWAPS: &str = "_swaps";

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Tables to compact (all by default).
    pub tables: Vec<Table>,
    /// The size of the files written; files under half of it (in rows and in bytes) are merged.
    pub target: WriterOptions,
    /// Only say what would be merged.
    pub dry_run: bool,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            tables: Table::ALL.to_vec(),
            target: WriterOptions::default(),
            dry_run: false,
        }
    }
}

/// What compaction did to one table (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCompaction {
    /// Partitions whose files were merged.
    pub partitions: usize,
    /// Files merged away, and the files written in their place.
    pub files_before: usize,
    pub files_after: usize,
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Files left as they are, in all its partitions (large enough, or nothing to merge with).
    pub files_kept: usize,
}

/// What [`compact`] did.
#[derive(Debug, Clone, Default)]
pub struct CompactSummary {
    pub tables: BTreeMap<Table, TableCompaction>,
    /// Files or partitions left alone, and why (an unreadable footer, a folder inside a
    /// partition, a partition changed by someone else while it was merged).
    pub skipped: Vec<(PathBuf, String)>,
}

impl CompactSummary {
    pub fn files_before(&self) -> usize {
        self.tables.values().map(|t| t.files_before).sum()
    }

    pub fn files_after(&self) -> usize {
        self.tables.values().map(|t| t.files_after).sum()
    }
}

/// A data file of a partition, as its footer describes it.
struct DataFile {
    name: OsString,
    bytes: u64,
    rows: u64,
    modified: SystemTime,
    schema: SchemaRef,
}

/// Compact the lake's tables (see the module docs). One compaction runs at a time on a lake.
pub fn compact(lake: &Lake, options: &CompactOptions) -> Result<CompactSummary, LakeError> {
    let _compacting = match lake.claim(COMPACT_CLAIM, "the lake's compaction") {
        Err(LakeError::Claimed { owner, .. }) => return Err(LakeError::Compacting { owner }),
        other => other?,
    };
    lake.settle_swaps()?;
    let mut summary = CompactSummary::default();
    let run = new_run_id();
    let mut staging = None;
    let result = (|| {
        for table in &options.tables {
            let mut done = TableCompaction::default();
            for dir in partitions(lake, *table)? {
                compact_partition(
                    lake,
                    &dir,
                    options,
                    &run,
                    &mut staging,
                    &mut done,
                    &mut summary,
                )?;
            }
            summary.tables.insert(*table, done);
        }
        Ok(())
    })();
    if let Some(staging) = staging {
        // The partitions' old folders (moved here by the swaps), and any partial output.
        let _ = fs::remove_dir_all(staging);
    }
    result.map(|()| summary)
}

/// The folders of `table` that hold its data files: one per date partition, or the table's
/// own folder for a table without partitions.
fn partitions(lake: &Lake, table: Table) -> Result<Vec<PathBuf>, LakeError> {
    let dir = lake.table_dir(table);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    if table.date_column().is_none() {
        return Ok(vec![dir]);
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
        let entry = entry.map_err(io_error(&dir))?;
        let is_partition = entry.file_name().to_string_lossy().starts_with("date=");
        if is_partition && entry.file_type().map_err(io_error(&dir))?.is_dir() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

fn compact_partition(
    lake: &Lake,
    dir: &Path,
    options: &CompactOptions,
    run: &str,
    staging: &mut Option<PathBuf>,
    done: &mut TableCompaction,
    summary: &mut CompactSummary,
) -> Result<(), LakeError> {
    let (mut files, mut schemas) = (Vec::new(), Vec::<SchemaRef>::new());
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io_error(&path))?.is_dir() {
            summary.skipped.push((
                dir.to_path_buf(),
                format!("it holds a folder, {}", path.display()),
            ));
            return Ok(());
        }
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        match describe(&path) {
            Ok(mut file) => {
                // One schema kept per kind of file, not one per file (a day of commits is
                // tens of thousands of files).
                match schemas.iter().find(|s| s.fields() == file.schema.fields()) {
                    Some(known) => file.schema = known.clone(),
                    None => schemas.push(file.schema.clone()),
                }
                files.push(file)
            }
            Err(why) => summary.skipped.push((path, why)),
        }
    }
    let target = &options.target;
    let (small, large): (Vec<DataFile>, Vec<DataFile>) = files.into_iter().partition(|f| {
        f.rows < (target.file_rows as u64 / 2).max(1) && f.bytes < target.file_bytes as u64 / 2
    });
    done.files_kept += large.len();
    // Same schema only: files of an older darkpool (fewer columns) are merged among themselves.
    let mut groups: Vec<Vec<DataFile>> = Vec::new();
    for file in small {
        match groups
            .iter_mut()
            .find(|g| g[0].schema.fields() == file.schema.fields())
        {
            Some(group) => group.push(file),
            None => groups.push(vec![file]),
        }
    }
    let (merge, alone): (Vec<Vec<DataFile>>, Vec<Vec<DataFile>>) =
        groups.into_iter().partition(|g| g.len() >= 2);
    done.files_kept += alone.len();
    if merge.is_empty() {
        return Ok(());
    }
    let rows: u64 = merge.iter().flatten().map(|f| f.rows).sum();
    let bytes: u64 = merge.iter().flatten().map(|f| f.bytes).sum();
    let merged_away: usize = merge.iter().map(Vec::len).sum();
    if options.dry_run {
        done.partitions += 1;
        done.files_before += merged_away;
        done.files_after += merge
            .iter()
            .map(|g| expected_files(g, target))
            .sum::<usize>();
        done.rows += rows;
        done.bytes_before += bytes;
        return Ok(());
    }
    let staging = match staging {
        Some(staging) => staging.clone(),
        None => staging.insert(begin_staging(lake, run)?).clone(),
    };
    let rel = dir.strip_prefix(lake.root()).unwrap_or(dir);
    let new_dir = staging.join(rel);
    fs::create_dir_all(&new_dir).map_err(io_error(&new_dir))?;
    let mut written = Vec::new();
    for group in &merge {
        match merge_files(dir, group, &new_dir, run, target, &mut written) {
            Ok(()) => {}
            // A file whose footer reads but whose data does not: its partition is left as it
            // is, and the others are still compacted.
            Err(e) if in_folder(&e, dir) => {
                summary
                    .skipped
                    .push((dir.to_path_buf(), format!("reading it failed: {e}")));
                let _ = fs::remove_dir_all(&new_dir);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    let replaced: BTreeSet<OsString> = merge.iter().flatten().map(|f| f.name.clone()).collect();
    if let Some(why) = lake.swap_partition(dir, &new_dir, &replaced)? {
        summary.skipped.push((dir.to_path_buf(), why));
        let _ = fs::remove_dir_all(&new_dir);
        return Ok(());
    }
    // The folder now at `new_dir` is the partition's old one (the files merged away, and
    // links to the files kept): removed with the staging folder.
    done.partitions += 1;
    done.files_before += merged_away;
    done.files_after += written.len();
    done.rows += rows;
    done.bytes_before += bytes;
    done.bytes_after += written.iter().sum::<u64>();
    Ok(())
}

/// Is `e` about a file of the folder `dir` (reading an input), rather than the output?
fn in_folder(e: &LakeError, dir: &Path) -> bool {
    match e {
        LakeError::Io { path, .. } | LakeError::Parquet { path, .. } => path.starts_with(dir),
        _ => false,
    }
}

/// A data file's footer: its rows and schema. Why not, if it is not readable Parquet.
fn describe(path: &Path) -> Result<DataFile, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let reader = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| format!("not readable Parquet, left as it is: {e}"))?;
    Ok(DataFile {
        name: path.file_name().unwrap_or_default().to_os_string(),
        bytes: meta.len(),
        rows: reader.metadata().file_metadata().num_rows().max(0) as u64,
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        schema: reader.schema().clone(),
    })
}

/// How many files merging `group` writes (for a dry run): by rows, as written files roll.
fn expected_files(group: &[DataFile], target: &WriterOptions) -> usize {
    let rows: u64 = group.iter().map(|f| f.rows).sum();
    let bytes: u64 = group.iter().map(|f| f.bytes).sum();
    let by_rows = rows.div_ceil(target.file_rows.max(1) as u64);
    let by_bytes = bytes.div_ceil(target.file_bytes.max(1) as u64);
    by_rows.max(by_bytes).max(1) as usize
}

/// Write the rows of `group` (oldest file first) into new files in `out`, rolled at the
/// target; their sizes are pushed to `written`.
fn merge_files(
    dir: &Path,
    group: &[DataFile],
    out: &Path,
    run: &str,
    target: &WriterOptions,
    written: &mut Vec<u64>,
) -> Result<(), LakeError> {
    let mut order: Vec<&DataFile> = group.iter().collect();
    order.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    // The merged files take the time of the newest file merged, so that a later compaction
    // still orders them before the files committed after those.
    let newest = order.last().map_or(SystemTime::UNIX_EPOCH, |f| f.modified);
    let props = writer_properties(run, target.row_group_rows);
    // The columns alone: each file's schema also carries its own run's metadata.
    let schema = Arc::new(Schema::new(group[0].schema.fields().clone()));
    // One thread reads the files (opens, footers, decoding) while this one encodes: the two
    // take about as long.
    let (batches, received) = std::sync::mpsc::sync_channel::<Result<RecordBatch, LakeError>>(8);
    let reading = schema.clone();
    let read = move || {
        for file in order {
            let path = dir.join(&file.name);
            let reader = File::open(&path)
                .map_err(io_error(&path))
                .and_then(|input| {
                    ParquetRecordBatchReaderBuilder::try_new(input)
                        .and_then(|b| b.with_batch_size(64 * 1024).build())
                        .map_err(|e| parquet_error(&path, e))
                });
            let reader = match reader {
                Ok(reader) => reader,
                Err(e) => return drop(batches.send(Err(e))),
            };
            for batch in reader {
                let batch = batch
                    .and_then(|b| RecordBatch::try_new(reading.clone(), b.columns().to_vec()))
                    .map_err(|e| LakeError::Parquet {
                        path: path.clone(),
                        message: e.to_string(),
                    });
                // An error ends the reading; so does the writer's (it stops receiving).
                let failed = batch.is_err();
                if batches.send(batch).is_err() || failed {
                    return;
                }
            }
        }
    };
    let mut current: Option<(PathBuf, ArrowWriter<File>, usize)> = None;
    std::thread::scope(|scope| {
        scope.spawn(read);
        for batch in received {
            let batch = batch?;
            if current.is_none() {
                let name = format!("part-{run}-c{:05}.parquet", written.len() + 1);
                let out_path = out.join(name);
                let output = File::create(&out_path).map_err(io_error(&out_path))?;
                let writer = ArrowWriter::try_new(output, schema.clone(), Some(props.clone()))
                    .map_err(|e| parquet_error(&out_path, e))?;
                current = Some((out_path, writer, 0));
            }
            if let Some((out_path, writer, rows)) = current.as_mut() {
                writer
                    .write(&batch)
                    .map_err(|e| parquet_error(out_path, e))?;
                *rows += batch.num_rows();
                let size = writer.bytes_written() + writer.in_progress_size();
                if *rows >= target.file_rows || size >= target.file_bytes {
                    if let Some(full) = current.take() {
                        written.push(finish(full, newest)?);
                    }
                }
            }
        }
        Ok::<(), LakeError>(())
    })?;
    if let Some(last) = current.take() {
        written.push(finish(last, newest)?);
    }
    Ok(())
}

/// Close a merged file, dated `modified`, and make it durable; its size.
fn finish(
    (path, mut writer, _): (PathBuf, ArrowWriter<File>, usize),
    modified: SystemTime,
) -> Result<u64, LakeError> {
    writer.finish().map_err(|e| parquet_error(&path, e))?;
    writer
        .inner()
        .set_modified(modified)
        .map_err(io_error(&path))?;
    writer.inner().sync_all().map_err(io_error(&path))?;
    fs::metadata(&path)
        .map(|m| m.len())
        .map_err(io_error(&path))
}

impl Lake {
    /// Put `new_dir` (merged files) in place of the partition `dir` in one exchange, under the
    /// publish lock so no commit moves a file in meanwhile. First every file of `dir` that is
    /// not in `replaced` is linked into `new_dir`. `Some(why)` when `dir` no longer holds all
    /// of `replaced` (or holds a folder): nothing is changed then.
    fn swap_partition(
        &self,
        dir: &Path,
        new_dir: &Path,
        replaced: &BTreeSet<OsString>,
    ) -> Result<Option<String>, LakeError> {
        let _publishing = self.lock("publish")?;
        let mut seen = 0;
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name();
            if replaced.contains(&name) {
                seen += 1;
                continue;
            }
            let path = entry.path();
            if entry.file_type().map_err(io_error(&path))?.is_dir() {
                return Ok(Some(format!("it holds a folder, {}", path.display())));
            }
            let link = new_dir.join(&name);
            fs::hard_link(&path, &link).map_err(io_error(&link))?;
        }
        if seen != replaced.len() {
            return Ok(Some(
                "its files changed while they were merged (another process removed some); \
                 left as it is"
                    .into(),
            ));
        }
        sync_dir(new_dir)?;
        // Odd while the folders change places: a reader that began under an odd count, or
        // ends under another count than it began, may have listed a folder as it moved.
        let swaps = self.swaps();
        self.set_swaps(swaps + 1)?;
        crash_point("compact-before-swap");
        exchange(dir, new_dir)?;
        crash_point("compact-swapped");
        sync_dir(dir.parent().unwrap_or(self.root()))?;
        self.set_swaps(swaps + 2)?;
        Ok(None)
    }

    fn swaps_path(&self) -> PathBuf {
        self.root().join(SWAPS)
    }

    /// How many partition swaps compactions have begun and ended on this lake: odd while one
    /// is under way (or a compaction died in one). A reader reads it before it lists the
    /// lake's files and after it read them; if the two differ, or the first was odd while a
    /// compaction runs, a folder may have changed places under it, and it reads again.
    pub fn swaps(&self) -> u64 {
        fs::read_to_string(self.swaps_path())
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Is a swap under way now: an odd count, and a live compaction?
    pub fn swapping(&self, swaps: u64) -> bool {
        swaps % 2 == 1 && self.compaction_running()
    }

    fn compaction_running(&self) -> bool {
        let claim = self.sources_dir().join(format!(".{COMPACT_CLAIM}.claim"));
        claim.exists() && super::owner_alive(&claim)
    }

    fn set_swaps(&self, swaps: u64) -> Result<(), LakeError> {
        super::write_atomic(&self.swaps_path(), format!("{swaps}\n").as_bytes())
    }

    /// An odd count left by a compaction that died in a swap (the lake is whole either way:
    /// the folders changed places or did not) is made even again, by the next compaction.
    fn settle_swaps(&self) -> Result<(), LakeError> {
        let swaps = self.swaps();
        if swaps % 2 == 1 {
            self.set_swaps(swaps + 1)?;
        }
        Ok(())
    }
}

/// Swap two folders' names in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<(), LakeError> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| LakeError::Io {
            path: p.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the path"),
        })
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths; the call reads them and nothing else.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    let source = match source.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => std::io::Error::new(
            source.kind(),
            format!(
                "{source}: this file system cannot swap two folders in one step \
                 (renameat2 RENAME_EXCHANGE), which compaction needs"
            ),
        ),
        _ => source,
    };
    Err(LakeError::Io {
        path: a.to_path_buf(),
        source,
    })
}

#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, _b: &Path) -> Result<(), LakeError> {
    Err(LakeError::Io {
        path: a.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "compaction swaps folders with Linux's renameat2(RENAME_EXCHANGE), which this \
             system has not",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineOptions};
    use crate::lake::writer::tests::trade_batches;
    use crate::lake::Transaction;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// `n` trades on `day` (YYYY-MM-DD), quantities 1..=n.
    fn trades(dir: &Path, day: &str, n: u64) -> Vec<RecordBatch> {
        let text: String = (1..=n)
            .map(|i| {
                format!(
                    r#"{{"timestamp":"{day}T14:{:02}:{:02}","symbol":"S{}","price":1.5,"quantity":{i},"venue":"LIT"}}"#,
                    (i / 60) % 60,
                    i % 60,
                    i % 3
                ) + "\n"
            })
            .collect();
        trade_batches(&dir.join(format!("in-{day}-{n}.ndjson")), &text)
    }

    fn commit(lake: &Lake, batches: &[RecordBatch]) {
        let mut tx = Transaction::begin(lake, WriterOptions::default()).unwrap();
        for b in batches {
            tx.write(Table::Trades, b).unwrap();
        }
        tx.commit().unwrap();
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        found.sort();
        found
    }

    /// (rows, sum of quantity) of a partition, read with the parquet crate's own reader.
    fn totals(dir: &Path) -> (u64, i64) {
        let (mut rows, mut sum) = (0, 0);
        for path in files(dir) {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                rows += batch.num_rows() as u64;
                let quantity = batch.column_by_name("quantity").unwrap();
                sum += quantity
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .sum::<i64>();
            }
        }
        (rows, sum)
    }

    #[test]
    fn small_files_are_merged_per_partition_and_the_rest_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path().join("lake"));
        for n in 1..=5 {
            commit(&lake, &trades(dir.path(), "2024-01-02", n * 10));
        }
        // One file alone in its day: nothing to merge it with.
        commit(&lake, &trades(dir.path(), "2024-01-03", 7));
        let day = lake.table_dir(Table::Trades).join("date=2024-01-02");
        let other = lake.table_dir(Table::Trades).join("date=2024-01-03");
        let junk = day.join("part-junk.parquet");
        fs::write(&junk, b"not parquet").unwrap();
        let before = totals(&other);
        assert_eq!(files(&day).len(), 6);
        fs::remove_file(&junk).unwrap();
        let (rows, sum) = totals(&day);
        fs::write(&junk, b"not parquet").unwrap();
        assert_eq!(
            (rows, sum),
            (150, (1..=5).map(|n| n * 10 * (n * 10 + 1) / 2).sum())
        );

        let dry = compact(
            &lake,
            &CompactOptions {
                dry_run: true,
                ..CompactOptions::default()
            },
        )
        .unwrap();
        assert_eq!(dry.files_before(), 5);
        assert_eq!(files(&day).len(), 6, "a dry run changes nothing");

        let summary = compact(&lake, &CompactOptions::default()).unwrap();
        let done = &summary.tables[&Table::Trades];
        assert_eq!(
            (done.partitions, done.files_before, done.files_after),
            (1, 5, 1)
        );
        assert_eq!(done.rows, 150);
        assert_eq!(done.files_kept, 1, "the lone file of the other day");
        assert_eq!(summary.skipped.len(), 1, "{:?}", summary.skipped);
        assert_eq!(summary.skipped[0].0, junk);
        let after = files(&day);
        assert_eq!(
            after.len(),
            2,
            "the merged file and the unreadable one, kept"
        );
        assert!(after.contains(&junk));
        fs::remove_file(&junk).unwrap();
        assert_eq!(totals(&day), (rows, sum));
        assert_eq!(totals(&other), before);
        assert_eq!(
            fs::read_dir(lake.root().join("_staging")).unwrap().count(),
            0,
            "no staging left"
        );
        assert_eq!(lake.swaps(), 2, "one swap, begun and ended");
        let again = compact(&lake, &CompactOptions::default()).unwrap();
        assert_eq!(again.files_before(), 0, "nothing left to merge");
    }

    /// A file whose footer reads but whose data is damaged leaves its partition as it is; the
    /// other days are still compacted.
    #[test]
    fn a_file_damaged_past_its_footer_leaves_its_partition_alone_and_the_rest_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path().join("lake"));
        for day in ["2024-01-02", "2024-01-03"] {
            for n in [40, 50] {
                commit(&lake, &trades(dir.path(), day, n));
            }
        }
        let damaged_day = lake.table_dir(Table::Trades).join("date=2024-01-02");
        let damaged = files(&damaged_day).remove(0);
        let mut bytes = fs::read(&damaged).unwrap();
        bytes[8..200].fill(0xAB); // the data pages; the footer at the end stays whole
        fs::write(&damaged, &bytes).unwrap();
        let summary = compact(&lake, &CompactOptions::default()).unwrap();
        let done = &summary.tables[&Table::Trades];
        assert_eq!(
            (done.partitions, done.files_before, done.files_after),
            (1, 2, 1)
        );
        assert_eq!(summary.skipped.len(), 1, "{:?}", summary.skipped);
        assert_eq!(summary.skipped[0].0, damaged_day);
        assert!(summary.skipped[0].1.contains("reading it failed"));
        assert_eq!(files(&damaged_day).len(), 2, "left as it was");
        let other = lake.table_dir(Table::Trades).join("date=2024-01-03");
        assert_eq!(totals(&other), (90, 40 * 41 / 2 + 50 * 51 / 2));
    }

    #[test]
    fn files_of_another_schema_are_merged_only_among_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path().join("lake"));
        for n in [3, 4] {
            commit(&lake, &trades(dir.path(), "2024-01-02", n));
        }
        // Two files as an older darkpool wrote them: without the last column.
        let day = lake.table_dir(Table::Trades).join("date=2024-01-02");
        for (i, n) in [5, 6].into_iter().enumerate() {
            let batch = trades(dir.path(), "2024-01-02", n).remove(0);
            let last = batch.num_columns() - 1;
            let older = batch.project(&(0..last).collect::<Vec<_>>()).unwrap();
            let path = day.join(format!("part-old-{i}.parquet"));
            let mut writer =
                ArrowWriter::try_new(File::create(&path).unwrap(), older.schema(), None).unwrap();
            writer.write(&older).unwrap();
            writer.close().unwrap();
        }
        let summary = compact(&lake, &CompactOptions::default()).unwrap();
        let done = &summary.tables[&Table::Trades];
        assert_eq!((done.files_before, done.files_after), (4, 2));
        assert_eq!(totals(&day), (18, 6 + 10 + 15 + 21));
        let widths: BTreeSet<usize> = files(&day)
            .iter()
            .map(|p| describe(p).unwrap().schema.fields().len())
            .collect();
        assert_eq!(widths.len(), 2, "one file per schema");
    }

    /// Readers never see a row twice or miss one while commits land and compactions swap
    /// partitions under them: each count is a whole number of commits, between what was
    /// committed before the query began and after it ended. (Swapping files in one by one
    /// fails it, and so does a swap that does not wait for commits: a commit's file moved into
    /// the old folder is lost.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_see_every_commit_once_while_compaction_runs() {
        const ROWS: u64 = 10;
        const COMMITS: u64 = 400;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path().join("lake"));
        let batches = trades(dir.path(), "2024-01-02", ROWS);
        commit(&lake, &batches);
        let committed = Arc::new(AtomicU64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (lake, committed) = (lake.clone(), committed.clone());
            std::thread::spawn(move || {
                for _ in 1..COMMITS {
                    commit(&lake, &batches);
                    committed.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let compactor = {
            let (lake, stop) = (lake.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut merged = 0;
                while !stop.load(Ordering::SeqCst) {
                    merged += compact(&lake, &CompactOptions::default())
                        .unwrap()
                        .files_before();
                }
                merged
            })
        };
        let engine = Engine::open(EngineOptions::new(lake.root())).await.unwrap();
        let (mut queries, mut busy) = (0, 0);
        loop {
            let low = committed.load(Ordering::SeqCst);
            let result = match engine.sql("SELECT count(*) FROM trades").await {
                // Swapped under it every time it ran (compactions back to back): said, not
                // answered wrong.
                Err(crate::engine::EngineError::Busy(_)) => {
                    busy += 1;
                    continue;
                }
                other => other.unwrap(),
            };
            let high = committed.load(Ordering::SeqCst);
            let count = result.batches[0]
                .column(0)
                .as_primitive::<Int64Type>()
                .value(0) as u64;
            assert_eq!(count % ROWS, 0, "a commit seen in part: {count}");
            // The commit in progress may show before the writer counts it.
            assert!(
                (low * ROWS..=(high + 1) * ROWS).contains(&count),
                "{count} rows, while {low}..={high} commits were in"
            );
            queries += 1;
            if low == COMMITS && queries > 20 {
                break;
            }
        }
        writer.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        let merged = compactor.join().unwrap();
        assert!(
            queries > busy && merged > 10,
            "{queries} queries answered, {busy} refused, {merged} files merged"
        );
        let day = lake.table_dir(Table::Trades).join("date=2024-01-02");
        assert_eq!(totals(&day).0, COMMITS * ROWS);
    }
}
