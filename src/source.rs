//! Where trades come from: files (CSV, NDJSON, Parquet, TAQ-style prints) and the simulator,
//! plus the FINRA tables (ATS weekly volumes, Reg SHO short-sale volume). Each input is decoded
//! line by line into Arrow batches of valid rows and of rejects; nothing is dropped silently.

pub mod csv;
pub mod decode;
pub mod finra;
pub mod kafka;
pub mod parquet_file;
pub mod simulator;
pub mod taq;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::lake::Table;
use crate::model::{Reject, RejectBuilder, RejectReason, SourcePos, TradeBuilder, UnknownVenues};
use crate::venue::Registry;

/// An input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, the Kafka message shape.
    Ndjson,
    /// The original CSV columns, with a header line.
    Csv,
    /// darkpool's trades schema (or any Parquet with the required columns).
    Parquet,
    /// FINRA OTC Transparency ATS weekly volumes: the API's JSON array or the pipe-delimited
    /// download (-> `ats_weekly`).
    FinraAts,
    /// FINRA Reg SHO daily short-sale volume files, `CNMSshvol20240102.txt` and the like
    /// (-> `short_volume`).
    Regsho,
    /// TAQ-style tick prints `SYMBOL,DATE,TIME,PRICE,SIZE,G127,CORR,COND,EX` in US/Eastern time
    /// (-> `trades`).
    Taq,
}

impl Format {
    /// The format a file's extension names (under a compression extension: `a.csv.gz` is CSV).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = Compression::strip(path)
            .extension()?
            .to_str()?
            .to_ascii_lowercase();
        match ext.as_str() {
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" | "tsv" | "tab" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// Guess from the first bytes of a stream: `PAR1` is Parquet, `{` NDJSON, `[` FINRA's ATS
    /// JSON (or, with a `"timestamp"` key and none of FINRA's, a JSON array of trades, read as
    /// NDJSON); a first line of FINRA's or TAQ's columns names those; else CSV.
    pub fn sniff(head: &[u8]) -> Format {
        let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
        let first = head.iter().find(|b| !b.is_ascii_whitespace());
        let line = String::from_utf8_lossy(head);
        let line = line
            .trim_start()
            .lines()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if head.starts_with(b"PAR1") {
            Format::Parquet
        } else if first == Some(&b'{') {
            Format::Ndjson
        } else if first == Some(&b'[') {
            // FINRA's API JSON, or a JSON array of trades (read as NDJSON).
            let text = String::from_utf8_lossy(head).to_ascii_lowercase();
            if !text.contains("issuesymbolidentifier") && text.contains("\"timestamp\"") {
                Format::Ndjson
            } else {
                Format::FinraAts
            }
        } else if line.contains("issuesymbolidentifier") {
            Format::FinraAts
        } else if line.starts_with("date|symbol|") {
            Format::Regsho
        } else if taq::looks_like_header(&line) {
            Format::Taq
        } else {
            Format::Csv
        }
    }

    /// The format of a file: a Reg SHO file name (`CNMSshvol…`), else what its first bytes
    /// say when they name a FINRA or TAQ layout, else the extension.
    pub fn detect(path: &Path) -> Option<Format> {
        if finra::facility_of(path).is_some() {
            return Some(Format::Regsho);
        }
        let head = read_head(path).unwrap_or_default();
        let sniffed = (!head.is_empty()).then(|| Format::sniff(&head));
        match sniffed {
            Some(f @ (Format::FinraAts | Format::Regsho | Format::Taq | Format::Parquet)) => {
                Some(f)
            }
            _ => Format::from_path(path).or(sniffed.filter(|_| path.as_os_str() == "-")),
        }
    }

    /// The lake table the format lands in.
    pub fn table(self) -> Table {
        match self {
            Format::FinraAts => Table::AtsWeekly,
            Format::Regsho => Table::ShortVolume,
            _ => Table::Trades,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::FinraAts => "finra-ats",
            Format::Regsho => "regsho",
            Format::Taq => "taq",
        }
    }
}

/// Up to the first 64 KiB of a file's text (decompressed, past a byte order mark).
pub(crate) fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(64 * 1024);
    open_text(path)?.take(64 * 1024).read_to_end(&mut head)?;
    Ok(head)
}

/// Settings of the FINRA and TAQ formats.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// Week start (days since the epoch, a Monday) of FINRA ATS files without a
    /// `weekStartDate` column; else the date in the file name.
    pub week: Option<i32>,
    /// Reg SHO facility code; else the file name's prefix (CNMS, FNSQ, FNQC, FNYX, FNRA, FORF).
    pub facility: Option<String>,
    /// TAQ columns named differently from the defaults (`field=HEADER`).
    pub taq_columns: taq::ColumnNames,
}

/// Why an input could not be read at all (bad records are rejects, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a darkpool CSV: the header lacks {missing}; expected columns {expected}")]
    CsvHeader {
        path: PathBuf,
        missing: String,
        expected: &'static str,
    },
    #[error("{path}: not NDJSON: expected one JSON object per line, but the first line starts with '{start}'")]
    NotNdjson { path: PathBuf, start: String },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: cannot tell the format from the name or first line; pass --format ndjson|csv|parquet|finra-ats|regsho|taq")]
    UnknownFormat { path: PathBuf },
    #[error(
        "{path}: a folder, not a file; give its files (e.g. {path}/*.csv, which the shell expands)"
    )]
    Folder { path: PathBuf },
    #[error("{path}: not a {format} file: {message}")]
    Header {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("stopped: {0}")]
    Sink(String),
}

/// Limits for decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Rows per Arrow batch handed on.
    pub batch_rows: usize,
    /// A longer line is rejected as `line_too_long` (its first bytes are kept).
    pub max_line_bytes: usize,
    /// Timestamp stamped on rejects.
    pub rejected_at: i64,
}

/// What decoding one input produced.
#[derive(Debug, Default, Clone)]
pub struct DecodeStats {
    pub records: u64,
    pub blank_lines: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub bytes: u64,
    pub unknown_venues: UnknownVenues,
    /// Records left out by rule rather than for being malformed (TAQ corrections), by reason;
    /// they are kept in the rejects table too.
    pub excluded: BTreeMap<&'static str, u64>,
    /// Accepted records carrying a flag worth counting (odd lots, extended hours).
    pub flagged: BTreeMap<&'static str, u64>,
    /// The record count a trailer line stated (Reg SHO), when it matched.
    pub trailer: Option<u64>,
}

impl DecodeStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn absorb(&mut self, other: &DecodeStats) {
        self.records += other.records;
        self.blank_lines += other.blank_lines;
        self.accepted += other.accepted;
        self.bytes += other.bytes;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        for (k, v) in &other.unknown_venues {
            *self.unknown_venues.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.excluded {
            *self.excluded.entry(k).or_default() += v;
        }
        for (k, v) in &other.flagged {
            *self.flagged.entry(k).or_default() += v;
        }
        self.trailer = self.trailer.or(other.trailer);
    }

    /// Count a record's outcome; a reject goes to `rejects` with the record's raw bytes
    /// (`full_len` is its length before any cut at the line limit).
    #[inline]
    fn settle(
        &mut self,
        outcome: Result<(), Reject>,
        rejects: &mut RejectBuilder,
        rejected_at: i64,
        raw: &[u8],
        full_len: usize,
        pos: &SourcePos,
    ) {
        match outcome {
            Ok(()) => self.accepted += 1,
            Err(reject) => {
                self.count(&reject);
                rejects.append(rejected_at, &reject, raw, full_len, pos);
            }
        }
    }

    /// Count a reject under its reason (or as excluded, for rule-based exclusions).
    fn count(&mut self, reject: &Reject) {
        let map = if reject.reason == RejectReason::Correction {
            &mut self.excluded
        } else {
            &mut self.rejected
        };
        *map.entry(reject.reason.as_str()).or_default() += 1;
    }
}

/// One decoded chunk of an input.
pub struct Decoded {
    pub trades: RecordBatch,
    pub rejects: RecordBatch,
    /// Rows of another lake table (the FINRA formats).
    pub other: Option<(Table, RecordBatch)>,
    /// Bytes of input consumed so far (for progress).
    pub bytes_read: u64,
}

/// Receives decoded chunks; an error stops decoding.
pub type Sink<'s> = dyn FnMut(Decoded) -> Result<(), SourceError> + 's;

/// Check that `path` can be read as `format` (readable, recognisable header) before anything
/// is written, so a bad file fails the run up front. Errors name the input as `label` (what the
/// user gave: `-` for stdin, which is read from a spooled copy at `path`).
pub fn check(
    path: &Path,
    label: &Path,
    format: Format,
    formats: &FormatOptions,
    registry: &Arc<Registry>,
) -> Result<(), SourceError> {
    let io_err = |source| SourceError::Io {
        path: label.to_path_buf(),
        source,
    };
    if format == Format::Parquet {
        return parquet_file::check(path, label);
    }
    let mut reader = BufReader::new(open_text(path).map_err(io_err)?);
    let mut first = Vec::new();
    loop {
        first.clear();
        let n = reader
            .by_ref()
            .take(64 * 1024)
            .read_until(b'\n', &mut first)
            .map_err(io_err)?;
        if n == 0 {
            return Err(SourceError::Empty {
                path: label.to_path_buf(),
            });
        }
        if !first.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&first);
    let text = text.trim();
    match format {
        Format::Csv => {
            csv::Header::parse(text)
                .map(|_| ())
                .map_err(|missing| SourceError::CsvHeader {
                    path: label.to_path_buf(),
                    missing: missing.join(", "),
                    expected: csv::ORIGINAL_HEADER,
                })
        }
        Format::Ndjson if text.starts_with('{') || text.starts_with('[') => Ok(()),
        Format::Ndjson => Err(SourceError::NotNdjson {
            path: label.to_path_buf(),
            start: text.chars().take(40).collect(),
        }),
        Format::FinraAts if text.starts_with('[') => Ok(()),
        Format::FinraAts | Format::Regsho | Format::Taq => {
            records_for(path, label, format, formats, registry, 0)?.header(text, label)
        }
        Format::Parquet => unreachable!("handled above"),
    }
}

/// The UTF-8 byte order mark that Windows tools (Excel's "CSV UTF-8", Notepad, PowerShell)
/// put at the start of text files.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How a file's bytes are compressed as a whole (TAQ and many trade archives ship `.gz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// What the first bytes say: gzip's `1f 8b`, zstd's frame magic `28 b5 2f fd`.
    pub fn of_head(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// The compression of a file, by its first bytes (not its name).
    pub fn of_file(path: &Path) -> io::Result<Option<Compression>> {
        let mut head = Vec::with_capacity(4);
        File::open(path)?.take(4).read_to_end(&mut head)?;
        Ok(Compression::of_head(&head))
    }

    /// A name without its compression extension: `trades.ndjson.gz` -> `trades.ndjson`.
    fn strip(path: &Path) -> &Path {
        let compressed = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["gz", "gzip", "zst", "zstd"]
                .iter()
                .any(|c| e.eq_ignore_ascii_case(c))
        });
        match (compressed, path.file_stem()) {
            (true, Some(stem)) => Path::new(stem),
            _ => path,
        }
    }
}

/// A file's bytes, decompressed if it is gzip (any number of members, as `cat a.gz b.gz`
/// makes) or zstd: what the lake's content id covers, so that `x.csv` and `x.csv.gz` are the
/// same input.
pub fn decompressed(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
    Ok(match Compression::of_head(file.fill_buf()?) {
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        None => Box::new(file),
    })
}

/// A text file's bytes ([`decompressed`]) read from past its UTF-8 byte order mark, if it has
/// one (without seeking: the bytes read to look are handed back first).
pub(crate) fn open_text(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut stream = decompressed(path)?;
    let mut head = Vec::with_capacity(UTF8_BOM.len());
    (&mut stream)
        .take(UTF8_BOM.len() as u64)
        .read_to_end(&mut head)?;
    if head == UTF8_BOM {
        head.clear();
    }
    Ok(Box::new(io::Cursor::new(head).chain(stream)))
}

/// An NDJSON input's text, or a JSON array of objects (`json.dump(trades)`, pandas'
/// `to_json(orient="records")`) read as NDJSON: [`ArrayLines`] when the first byte past
/// whitespace is `[`.
pub(crate) fn open_ndjson(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut text = open_text(path)?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while text.read(&mut byte)? == 1 {
        head.push(byte[0]);
        if !byte[0].is_ascii_whitespace() {
            break;
        }
    }
    let is_array = head.last() == Some(&b'[');
    let text = io::Cursor::new(head).chain(text);
    Ok(if is_array {
        Box::new(ArrayLines::new(text))
    } else {
        Box::new(text)
    })
}

/// Where [`ArrayLines`] is in the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayPlace {
    /// Before the opening `[`.
    Before,
    /// Between elements (whitespace and commas).
    Between,
    /// Inside an element.
    Element,
    /// Past the closing `]`: anything but whitespace becomes a line of its own (a reject).
    After,
}

/// A JSON array streamed as one line per element: line breaks between an element's tokens
/// become spaces (a JSON string holds none), so element N is line N, decoded and rejected like
/// an NDJSON line, without holding the file in memory.
struct ArrayLines<R> {
    inner: R,
    chunk: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    place: ArrayPlace,
    depth: u32,
    in_string: bool,
    escaped: bool,
    done: bool,
}

impl<R: Read> ArrayLines<R> {
    fn new(inner: R) -> Self {
        ArrayLines {
            inner,
            chunk: vec![0; 1 << 16],
            out: Vec::with_capacity(1 << 16),
            sent: 0,
            place: ArrayPlace::Before,
            depth: 0,
            in_string: false,
            escaped: false,
            done: false,
        }
    }

    fn end_element(&mut self, next: ArrayPlace) {
        self.out.push(b'\n');
        self.place = next;
    }

    fn take(&mut self, b: u8) {
        match self.place {
            ArrayPlace::Before if b == b'[' => self.place = ArrayPlace::Between,
            ArrayPlace::Before | ArrayPlace::Between | ArrayPlace::After
                if b.is_ascii_whitespace() || (b == b',' && self.place == ArrayPlace::Between) => {}
            ArrayPlace::Between if b == b']' => self.place = ArrayPlace::After,
            ArrayPlace::Before | ArrayPlace::Between | ArrayPlace::After => {
                self.place = ArrayPlace::Element;
                self.depth = 0;
                self.in_string = false;
                self.escaped = false;
                self.element_byte(b);
            }
            ArrayPlace::Element => self.element_byte(b),
        }
    }

    fn element_byte(&mut self, b: u8) {
        if self.in_string {
            self.out.push(b);
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.out.push(b);
            }
            b'{' | b'[' => {
                self.depth += 1;
                self.out.push(b);
            }
            b'}' | b']' if self.depth > 0 => {
                self.depth -= 1;
                self.out.push(b);
                if self.depth == 0 {
                    self.end_element(ArrayPlace::Between);
                }
            }
            // The array's own `]` or `,` after an element that is no object (a reject).
            b']' => self.end_element(ArrayPlace::After),
            b',' if self.depth == 0 => self.end_element(ArrayPlace::Between),
            b'\n' | b'\r' => self.out.push(b' '),
            _ => self.out.push(b),
        }
    }
}

impl<R: Read> Read for ArrayLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.sent == self.out.len() && !self.done {
            self.out.clear();
            self.sent = 0;
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                self.done = true;
                if self.place == ArrayPlace::Element {
                    self.end_element(ArrayPlace::After);
                }
                break;
            }
            for i in 0..n {
                let b = self.chunk[i];
                self.take(b);
            }
        }
        let n = buf.len().min(self.out.len() - self.sent);
        buf[..n].copy_from_slice(&self.out[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

/// Reads `\n`-terminated lines in large blocks and hands out each line in place (no copy per
/// line), never holding more than `max` bytes of one line.
struct LineReader<R> {
    inner: R,
    block: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    max: usize,
    /// The kept start of an over-long line.
    long: Vec<u8>,
    /// Bytes consumed so far.
    bytes: u64,
}

impl<R: Read> LineReader<R> {
    fn new(inner: R, block_size: usize, max: usize) -> Self {
        LineReader {
            inner,
            block: vec![0; block_size.max(16)],
            start: 0,
            end: 0,
            eof: false,
            max: max.max(1),
            long: Vec::new(),
            bytes: 0,
        }
    }

    /// Read more input behind the unconsumed bytes; `false` at the end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.block.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.block.len() {
            let grown = (self.block.len() * 2)
                .min(self.max + 1)
                .max(self.block.len());
            self.block.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.block[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Skip the rest of an over-long line; returns how many bytes were skipped.
    fn skip_line(&mut self) -> io::Result<usize> {
        let mut skipped = 0;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.block[self.start..self.end]) {
                skipped += i;
                self.start += i + 1;
                self.bytes += i as u64 + 1;
                return Ok(skipped);
            }
            let rest = self.end - self.start;
            skipped += rest;
            self.bytes += rest as u64;
            self.start = self.end;
            if !self.fill()? {
                return Ok(skipped);
            }
        }
    }

    /// The line in `block[from..to]`: without a final `\r`, cut at `max` bytes, and its full length.
    fn cut(&self, from: usize, to: usize) -> (&[u8], usize) {
        let full = to - from;
        if full > self.max {
            return (&self.block[from..from + self.max], full);
        }
        let to = if to > from && self.block[to - 1] == b'\r' {
            to - 1
        } else {
            to
        };
        (&self.block[from..to], to - from)
    }

    /// A CSV record with line breaks in a quoted field: `first` (the line just read, which
    /// leaves a quote open) joined by `\n` with the lines after it, up to the one that closes
    /// the quote, if `fits` takes the whole, none of those lines is a record `fits` takes on its
    /// own, and it stays within `limit` bytes (and `max`). Those lines are consumed only then:
    /// the record and how many lines it took after `first`. Otherwise nothing is consumed: a
    /// stray quote costs only its own line, never the good records after it.
    fn join_quoted(
        &mut self,
        first: &[u8],
        limit: usize,
        fits: impl Fn(&[u8]) -> bool,
    ) -> io::Result<Option<(Vec<u8>, usize)>> {
        let limit = limit.min(self.max);
        let mut record = first.to_vec();
        // Bytes after `start` looked at, and lines taken.
        let (mut scan, mut taken) = (0, 0);
        loop {
            let line_end = loop {
                let from = self.start + scan;
                if let Some(i) = memchr::memchr(b'\n', &self.block[from..self.end]) {
                    break Some(scan + i);
                }
                // Past the limit `fill` could not grow the block: the record is too long.
                if self.end - self.start > limit || self.eof || !self.fill()? {
                    break None;
                }
            };
            let to = line_end.unwrap_or(self.end - self.start);
            if line_end.is_none() && (to == scan || self.end - self.start > limit) {
                return Ok(None);
            }
            let mut line = &self.block[self.start + scan..self.start + to];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if record.len() + 1 + line.len() > limit || fits(line) {
                return Ok(None);
            }
            record.push(b'\n');
            record.extend_from_slice(line);
            taken += 1;
            scan = line_end.map_or(to, |end| end + 1);
            if csv::open_quote(line) {
                break;
            }
        }
        if !fits(&record) {
            return Ok(None);
        }
        self.start += scan;
        self.bytes += scan as u64;
        Ok(Some((record, taken)))
    }

    /// `first`, a line that leaves a quote open, as a record of `header`: joined with the lines
    /// that close its quote ([`LineReader::join_quoted`]) or alone; and the lines taken after it.
    fn quoted_record(
        &mut self,
        first: Vec<u8>,
        header: &csv::Header,
        limit: usize,
    ) -> io::Result<(Vec<u8>, usize)> {
        let joined = self.join_quoted(&first, limit, |r| header.fits(r))?;
        Ok(joined.unwrap_or((first, 0)))
    }

    /// The next line (without `\r\n`) and its full length (longer than the line when it was
    /// cut at `max`); `None` at the end.
    fn next_line(&mut self) -> io::Result<Option<(&[u8], usize)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.block[self.start..self.end]) {
                let from = self.start;
                self.start += i + 1;
                self.bytes += i as u64 + 1;
                return Ok(Some(self.cut(from, from + i)));
            }
            if self.end - self.start > self.max {
                // Over-long: keep its first `max` bytes, skip the rest.
                self.long.clear();
                self.long
                    .extend_from_slice(&self.block[self.start..self.start + self.max]);
                let kept = self.end - self.start;
                self.bytes += kept as u64;
                self.start = self.end;
                let full = kept + self.skip_line()?;
                return Ok(Some((&self.long, full)));
            }
            if self.eof || !self.fill()? {
                if self.start == self.end {
                    return Ok(None);
                }
                let (from, to) = (self.start, self.end);
                self.start = self.end;
                self.bytes += (to - from) as u64;
                return Ok(Some(self.cut(from, to)));
            }
        }
    }
}

/// A line's text, or why it is not usable: cut at the line limit, or not UTF-8.
fn line_text(buf: &[u8], full_len: usize, max_line_bytes: usize) -> Result<&str, Reject> {
    if full_len > buf.len() {
        return Err(Reject::new(
            RejectReason::LineTooLong,
            format!("line of {full_len} bytes exceeds the {max_line_bytes} byte limit (--max-line-bytes); first bytes kept"),
        ));
    }
    utf8_text(buf)
}

/// A record's bytes as text, or the reject saying where they stop being UTF-8. The check is
/// `simdutf8`'s (a tenth of a Kafka trade's decode time with the standard library's, a twentieth
/// with this); the standard library's only words the error.
pub(crate) fn utf8_text(bytes: &[u8]) -> Result<&str, Reject> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| {
        std::str::from_utf8(bytes)
            .map_err(|e| Reject::new(RejectReason::InvalidUtf8, format!("not UTF-8: {e}")))
    })
}

/// What became of one data line of a [`Records`] format.
pub(crate) enum Line {
    Row,
    /// A line holding only a number: the record count (a trailer) if it is the last line.
    Count(u64),
}

/// A line-oriented format with a header line: the FINRA pipe files and TAQ prints.
pub(crate) trait Records {
    /// The first non-blank line; an error means the input is not this format.
    fn header(&mut self, text: &str, label: &Path) -> Result<(), SourceError>;
    /// One data line.
    fn record(
        &mut self,
        text: &str,
        pos: &SourcePos,
        stats: &mut DecodeStats,
    ) -> Result<Line, Reject>;
    /// Rows buffered since the last [`Records::take`].
    fn buffered(&self) -> usize;
    /// The buffered rows, as trades or as another table's rows.
    fn take(&mut self) -> (RecordBatch, Option<(Table, RecordBatch)>);
    /// The end of input: add what was counted along the way.
    fn end(&mut self, _stats: &mut DecodeStats) {}
}

/// Hand on what `records` and `rejects` hold as one chunk.
fn emit(
    records: &mut dyn Records,
    rejects: &mut RejectBuilder,
    bytes_read: u64,
    sink: &mut Sink<'_>,
) -> Result<(), SourceError> {
    let (trades, other) = records.take();
    sink(Decoded {
        trades,
        rejects: rejects.finish(),
        other,
        bytes_read,
    })
}

/// Decode a [`Records`] format. A record-count line is held until the next line shows it was
/// not the last (then it is a reject); as the last line it must match the records before it.
pub(crate) fn decode_records(
    path: &Path,
    label: &Path,
    records: &mut dyn Records,
    options: &DecodeOptions,
    sink: &mut Sink<'_>,
) -> Result<DecodeStats, SourceError> {
    let io_err = |source| SourceError::Io {
        path: label.to_path_buf(),
        source,
    };
    let file = open_text(path).map_err(io_err)?;
    let mut lines = LineReader::new(file, 1 << 20, options.max_line_bytes);
    let mut rejects = RejectBuilder::default();
    let mut stats = DecodeStats::default();
    let mut pos = SourcePos {
        file: Some(Arc::from(label.display().to_string())),
        ..SourcePos::default()
    };
    let mut header_seen = false;
    // A count line seen: (its bytes, its line number, the count).
    let mut count_line: Option<(Vec<u8>, i64, u64)> = None;
    let mut line_no = 0i64;
    while let Some((buf, full_len)) = lines.next_line().map_err(io_err)? {
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) && full_len == buf.len() {
            stats.blank_lines += 1;
            continue;
        }
        if !header_seen {
            header_seen = true;
            records.header(String::from_utf8_lossy(buf).trim(), label)?;
            continue;
        }
        if let Some((raw, at, count)) = count_line.take() {
            pos.line = Some(at);
            let reject = Reject::new(
                RejectReason::WrongFieldCount,
                format!("a line holding only the number {count}, with lines after it: neither data nor the record-count trailer"),
            );
            stats.records += 1;
            stats.settle(
                Err(reject),
                &mut rejects,
                options.rejected_at,
                &raw,
                raw.len(),
                &pos,
            );
        }
        pos.line = Some(line_no);
        stats.records += 1;
        let outcome = line_text(buf, full_len, options.max_line_bytes)
            .and_then(|text| records.record(text, &pos, &mut stats));
        match outcome {
            Ok(Line::Count(count)) => {
                stats.records -= 1;
                count_line = Some((buf.to_vec(), line_no, count));
            }
            other => {
                let outcome = other.map(|_| ());
                stats.settle(
                    outcome,
                    &mut rejects,
                    options.rejected_at,
                    buf,
                    full_len,
                    &pos,
                );
            }
        }
        if records.buffered() + rejects.len() >= options.batch_rows {
            emit(records, &mut rejects, lines.bytes, sink)?;
        }
    }
    if let Some((raw, at, count)) = count_line {
        pos.line = Some(at);
        if count == stats.records {
            stats.trailer = Some(count);
        } else {
            let reject = Reject::new(
                RejectReason::RecordCountMismatch,
                format!("the trailer says {count} records but the file holds {}: it may be cut short or edited", stats.records),
            );
            stats.records += 1;
            stats.settle(
                Err(reject),
                &mut rejects,
                options.rejected_at,
                &raw,
                raw.len(),
                &pos,
            );
        }
    }
    emit(records, &mut rejects, lines.bytes, sink)?;
    records.end(&mut stats);
    stats.bytes = lines.bytes;
    Ok(stats)
}

/// Decode a CSV or NDJSON file (or `-` for stdin) into trades and rejects.
pub fn decode_lines(
    path: &Path,
    label: &Path,
    format: Format,
    registry: &Arc<Registry>,
    options: DecodeOptions,
    sink: &mut Sink<'_>,
) -> Result<DecodeStats, SourceError> {
    let io_err = |source| SourceError::Io {
        path: label.to_path_buf(),
        source,
    };
    let file = match format {
        Format::Ndjson => open_ndjson(path),
        _ => open_text(path),
    }
    .map_err(io_err)?;
    let mut lines = LineReader::new(file, 1 << 20, options.max_line_bytes);
    let source_file: Arc<str> = Arc::from(label.display().to_string());
    let mut trades = TradeBuilder::new(registry.clone());
    let mut rejects = RejectBuilder::default();
    let mut stats = DecodeStats::default();
    let mut header: Option<csv::Header> = None;
    let mut key_order = decode::KeyOrder::default();
    let mut line_no = 0i64;
    let mut pos = SourcePos {
        file: Some(source_file),
        ..SourcePos::default()
    };
    while let Some((buf, full_len)) = lines.next_line().map_err(io_err)? {
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) && full_len == buf.len() {
            stats.blank_lines += 1;
            continue;
        }
        pos.line = Some(line_no);
        if format == Format::Csv && header.is_none() {
            let text = String::from_utf8_lossy(buf);
            header = Some(csv::Header::parse(text.trim()).map_err(|missing| {
                SourceError::CsvHeader {
                    path: label.to_path_buf(),
                    missing: missing.join(", "),
                    expected: csv::ORIGINAL_HEADER,
                }
            })?);
            continue;
        }
        stats.records += 1;
        let joined;
        let (buf, full_len) = match &header {
            Some(h) if full_len == buf.len() && csv::open_quote(buf) => {
                let first = buf.to_vec();
                let (record, more) = lines
                    .quoted_record(first, h, options.max_line_bytes)
                    .map_err(io_err)?;
                line_no += more as i64;
                joined = record;
                (&joined[..], joined.len())
            }
            _ => (buf, full_len),
        };
        let outcome = line_text(buf, full_len, options.max_line_bytes).and_then(|text| {
            let mut append = |t: &crate::model::Trade<'_>| trades.append(t, &pos);
            match &header {
                Some(h) => decode::validate(&h.record(text)?).map(|t| append(&t)),
                None => decode::decode_json(text, &mut key_order, append),
            }
        });
        stats.settle(
            outcome,
            &mut rejects,
            options.rejected_at,
            buf,
            full_len,
            &pos,
        );
        if trades.len() + rejects.len() >= options.batch_rows {
            sink(Decoded {
                trades: trades.finish(),
                rejects: rejects.finish(),
                other: None,
                bytes_read: lines.bytes,
            })?;
        }
    }
    stats.bytes = lines.bytes;
    if !trades.is_empty() || !rejects.is_empty() {
        sink(Decoded {
            trades: trades.finish(),
            rejects: rejects.finish(),
            other: None,
            bytes_read: lines.bytes,
        })?;
    }
    stats.unknown_venues = std::mem::take(&mut trades.unknown_venues);
    Ok(stats)
}

/// The line decoder of a FINRA or TAQ input.
fn records_for(
    path: &Path,
    label: &Path,
    format: Format,
    formats: &FormatOptions,
    registry: &Arc<Registry>,
    loaded_at: i64,
) -> Result<Box<dyn Records>, SourceError> {
    Ok(match format {
        Format::FinraAts => Box::new(finra::AtsRows::new(path, label, formats, loaded_at)?),
        Format::Regsho => Box::new(finra::ShortRows::new(path, label, formats, loaded_at)?),
        _ => Box::new(taq::TaqRows::new(registry.clone(), &formats.taq_columns)),
    })
}

/// Decode any supported input.
pub fn decode(
    path: &Path,
    label: &Path,
    format: Format,
    registry: &Arc<Registry>,
    options: DecodeOptions,
    formats: &FormatOptions,
    sink: &mut Sink<'_>,
) -> Result<DecodeStats, SourceError> {
    match format {
        Format::Parquet => parquet_file::decode(path, label, registry, options, sink),
        Format::Csv | Format::Ndjson => decode_lines(path, label, format, registry, options, sink),
        Format::FinraAts if finra::is_json(path) => {
            let mut rows = finra::AtsRows::new(path, label, formats, options.rejected_at)?;
            finra::decode_ats_json(path, label, &mut rows, &options, sink)
        }
        Format::FinraAts | Format::Regsho | Format::Taq => {
            let mut records =
                records_for(path, label, format, formats, registry, options.rejected_at)?;
            decode_records(path, label, records.as_mut(), &options, sink)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_lines(text: &str, chunk: usize) -> String {
        let mut reader = ArrayLines::new(text.as_bytes());
        reader.chunk = vec![0; chunk];
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        out
    }

    /// A JSON array comes out one element a line, whatever its layout, however it is cut into
    /// reads; strings keep their brackets, commas and escaped quotes; what is not an object
    /// becomes a line of its own, for the decoder to reject.
    #[test]
    fn a_json_array_is_read_one_element_a_line() {
        let pretty = "[\n  {\n    \"a\": 1,\n    \"b\": [1, {\"c\": \"]},\\\"x\"}]\n  },\r\n  {\"d\": null}\n]\n";
        for chunk in [1, 2, 3, 7, 1 << 16] {
            assert_eq!(
                array_lines(pretty, chunk),
                "{     \"a\": 1,     \"b\": [1, {\"c\": \"]},\\\"x\"}]   }\n{\"d\": null}\n",
                "chunk {chunk}"
            );
        }
        assert_eq!(array_lines("[]", 4), "");
        assert_eq!(
            array_lines("[1, \"x\", {\"a\":1}]", 4),
            "1\n\"x\"\n{\"a\":1}\n"
        );
        assert_eq!(array_lines("[{\"a\":1}] junk", 4), "{\"a\":1}\njunk\n");
        assert_eq!(array_lines("[{\"a\":1}, {\"b\"", 4), "{\"a\":1}\n{\"b\"\n");
    }

    /// `utf8_text` takes and refuses exactly what the standard library does, wording the
    /// refusal as it does: short and long inputs (the SIMD check works in 64-byte blocks),
    /// ASCII and multibyte text with single bytes changed at random positions (truncated,
    /// overlong and surrogate sequences among them).
    #[test]
    fn utf8_text_agrees_with_the_standard_library() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let texts = [
            "{\"symbol\":\"SPY\",\"venue\":\"XNYS\"}".repeat(5),
            "prix €, Zürich, 東京, 🦀 ".repeat(7),
            "a".repeat(63),
            "ü".repeat(40),
        ];
        let (mut taken, mut refused) = (0, 0);
        for text in &texts {
            for _ in 0..2_000 {
                let mut bytes = text.as_bytes().to_vec();
                bytes.truncate(1 + (next() as usize) % bytes.len());
                let at = (next() as usize) % bytes.len();
                bytes[at] =
                    [0x80, 0xC0, 0xE0, 0xED, 0xF0, 0xF8, 0xFF, next() as u8][next() as usize % 8];
                match (utf8_text(&bytes), std::str::from_utf8(&bytes)) {
                    (Ok(ours), Ok(std)) => {
                        assert_eq!(ours, std);
                        taken += 1;
                    }
                    (Err(ours), Err(std)) => {
                        assert_eq!(ours.reason, RejectReason::InvalidUtf8);
                        assert_eq!(ours.detail, format!("not UTF-8: {std}"));
                        refused += 1;
                    }
                    (ours, std) => panic!("{bytes:?}: ours {:?}, std {std:?}", ours.err()),
                }
            }
        }
        assert!(
            taken > 100 && refused > 100,
            "{taken} taken, {refused} refused"
        );
    }

    /// Records with a quote open across lines, whatever the block size: joined when the closing
    /// line comes within the limit and no line between is a record alone; else nothing is taken.
    #[test]
    fn line_reader_joins_a_quoted_field_across_lines_only_when_it_closes() {
        let data = b"\"a\r\nb\nc\"!\n\"stray\nrec\n\"long\n0123456789\nend\"\n\"open\nx".to_vec();
        // A whole record here: a line that starts with a quote and ends with `!`, or `rec`.
        let fits = |r: &[u8]| r.starts_with(b"\"") && r.ends_with(b"!") || r == b"rec";
        for block in [4, 7, 16, 1024] {
            let mut r = LineReader::new(&data[..], block, 64);
            let mut got = Vec::new();
            while let Some((line, _)) = r.next_line().unwrap() {
                let first = line.to_vec();
                if csv::open_quote(&first) {
                    if let Some((record, more)) = r.join_quoted(&first, 16, fits).unwrap() {
                        got.push((record, more));
                        continue;
                    }
                }
                got.push((first, 0));
            }
            let expected: Vec<(Vec<u8>, usize)> = vec![
                (b"\"a\nb\nc\"!".to_vec(), 2),
                // "rec" is a record alone: the stray quote's line stays alone.
                (b"\"stray".to_vec(), 0),
                (b"rec".to_vec(), 0),
                // Closed past the 16-byte limit: each line alone.
                (b"\"long".to_vec(), 0),
                (b"0123456789".to_vec(), 0),
                (b"end\"".to_vec(), 0),
                // Never closed.
                (b"\"open".to_vec(), 0),
                (b"x".to_vec(), 0),
            ];
            assert_eq!(got, expected, "block {block}");
            assert_eq!(r.bytes, data.len() as u64, "block {block}");
        }
    }

    #[test]
    fn line_reader_caps_long_lines_and_strips_crlf() {
        let data = b"short\r\n0123456789ABCDEF\n\nlast\r".to_vec();
        for block in [4, 7, 16, 1024] {
            let mut r = LineReader::new(&data[..], block, 8);
            let mut lines = Vec::new();
            while let Some((line, full)) = r.next_line().unwrap() {
                lines.push((line.to_vec(), full));
            }
            let expected: Vec<(Vec<u8>, usize)> = vec![
                (b"short".to_vec(), 5),
                (b"01234567".to_vec(), 16),
                (b"".to_vec(), 0),
                (b"last".to_vec(), 4),
            ];
            assert_eq!(lines, expected, "block {block}");
            assert_eq!(r.bytes, data.len() as u64, "block {block}");
        }
    }

    #[test]
    fn formats_from_extension_and_content() {
        assert_eq!(
            Format::from_path(Path::new("a.JSONL")),
            Some(Format::Ndjson)
        );
        assert_eq!(Format::from_path(Path::new("a.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert_eq!(Format::sniff(b"  {\"a\":1}"), Format::Ndjson);
        assert_eq!(Format::sniff(b"PAR1...."), Format::Parquet);
        assert_eq!(Format::sniff(b"timestamp,symbol"), Format::Csv);
        assert_eq!(Format::sniff(b"\xEF\xBB\xBF{\"a\":1}"), Format::Ndjson);
    }
}
