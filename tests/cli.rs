//! The real binary, as a user runs it: simulate | ingest | query round trips, bad input,
//! re-ingest, refused SQL, and failures that must leave nothing half-written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod common;

fn darkpool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_darkpool"));
    cmd.env_remove("DARKPOOL_LAKE").env("DARKPOOL_LOG", "warn");
    cmd
}

fn run(args: &[&str], dir: &Path) -> Output {
    darkpool()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run darkpool")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(args: &[&str], dir: &Path) -> Output {
    let out = run(args, dir);
    assert!(
        out.status.success(),
        "darkpool {args:?} failed: {}",
        stderr(&out)
    );
    out
}

/// `ingest --lake lake -` with `input` on stdin, which must succeed.
fn ingest_stdin(dir: &Path, input: &[u8]) {
    let mut child = darkpool()
        .args(["ingest", "--lake", "lake", "-"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Run darkpool where it must fail: exit 1, saying `says` on stderr.
fn refused(args: &[&str], dir: &Path, says: &str) -> Output {
    let out = run(args, dir);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    out
}

/// One JSON row of `query --format json`.
fn query_json(dir: &Path, lake: &str, sql: &str) -> Vec<serde_json::Value> {
    let out = ok(&["query", "--lake", lake, "--format", "json", sql], dir);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// The trades in `dir`'s lake, and the trades its windows count.
fn trades_and_windowed(dir: &Path) -> (u64, u64) {
    let rows = query_json(
        dir,
        "lake",
        "SELECT (SELECT COUNT(*) FROM trades) AS t, (SELECT SUM(num_trades) FROM windows) AS w",
    );
    (
        rows[0]["t"].as_u64().unwrap(),
        rows[0]["w"].as_u64().unwrap(),
    )
}

fn simulate(dir: &Path, count: u64, seed: u64, file: &str) -> PathBuf {
    let count = count.to_string();
    let seed = seed.to_string();
    ok(
        &[
            "simulate", "--count", &count, "--seed", &seed, "--output", file,
        ],
        dir,
    );
    dir.join(file)
}

/// Totals of an NDJSON trade file read with plain serde_json (independent of darkpool's decoder).
fn independent_totals(path: &Path) -> (u64, i64, f64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut totals = (0u64, 0i64, 0f64);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        totals.0 += 1;
        totals.1 += v["quantity"].as_i64().unwrap();
        totals.2 += v["trade_value"].as_f64().unwrap();
    }
    totals
}

/// Totals of the lake's trades files read with the parquet crate alone (no DataFusion).
fn parquet_totals(table_dir: &Path) -> (u64, i64, f64) {
    let mut totals = (0u64, 0i64, 0f64);
    for path in common::parquet_files(table_dir) {
        let file = std::fs::File::open(&path).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            totals.0 += batch.num_rows() as u64;
            let q = batch
                .column_by_name("quantity")
                .unwrap()
                .as_primitive::<Int64Type>();
            totals.1 += q.values().iter().sum::<i64>();
            let v = batch
                .column_by_name("trade_value")
                .unwrap()
                .as_primitive::<Float64Type>();
            totals.2 += v.values().iter().sum::<f64>();
        }
    }
    totals
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn simulate_ingest_query_round_trip_matches_an_independent_reader() {
    let dir = tempfile::tempdir().unwrap();
    let input = simulate(dir.path(), 30_000, 11, "trades.ndjson");
    let expected = independent_totals(&input);
    assert_eq!(expected.0, 30_000);
    let out = ok(&["ingest", "--lake", "lake", "trades.ndjson"], dir.path());
    let summary = stderr(&out);
    assert!(
        summary.contains("accepted") && summary.contains("30,000"),
        "{summary}"
    );
    assert!(summary.contains("trades/s"), "{summary}");

    let rows = query_json(
        dir.path(),
        "lake",
        "SELECT COUNT(*) AS n, SUM(quantity) AS q, SUM(trade_value) AS v FROM trades",
    );
    assert_eq!(rows[0]["n"].as_u64(), Some(expected.0));
    assert_eq!(rows[0]["q"].as_i64(), Some(expected.1));
    assert!(close(rows[0]["v"].as_f64().unwrap(), expected.2));

    let files = parquet_totals(&dir.path().join("lake/trades"));
    assert_eq!((files.0, files.1), (expected.0, expected.1));
    assert!(close(files.2, expected.2));

    // Windows hold every trade exactly once.
    let w = query_json(
        dir.path(),
        "lake",
        "SELECT SUM(num_trades) AS n, SUM(total_quantity) AS q FROM windows",
    );
    assert_eq!(w[0]["n"].as_u64(), Some(expected.0));
    assert_eq!(w[0]["q"].as_i64(), Some(expected.1));
}

#[test]
fn simulate_is_byte_identical_per_seed_and_pipes_into_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let a = ok(
        &[
            "simulate", "--count", "3000", "--seed", "5", "--format", "csv",
        ],
        dir.path(),
    )
    .stdout;
    let b = ok(
        &[
            "simulate", "--count", "3000", "--seed", "5", "--format", "csv",
        ],
        dir.path(),
    )
    .stdout;
    assert_eq!(a, b);
    assert_eq!(String::from_utf8_lossy(&a).lines().count(), 3001);
    // stdin, format sniffed from the content
    ingest_stdin(dir.path(), &a);
    let rows = query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM trades");
    assert_eq!(rows[0]["n"].as_u64(), Some(3000));
    // Rows read from stdin say so, not where the input was spooled.
    let files = query_json(
        dir.path(),
        "lake",
        "SELECT DISTINCT source_file FROM trades",
    );
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["source_file"].as_str(), Some("-"));
    // The same rows tab-separated (.tsv) and semicolon-separated: the header shows how.
    let text = String::from_utf8(a).unwrap();
    std::fs::write(dir.path().join("t.tsv"), text.replace(',', "\t")).unwrap();
    std::fs::write(dir.path().join("semi.csv"), text.replace(',', ";")).unwrap();
    for (file, lake) in [("t.tsv", "tsv"), ("semi.csv", "semi")] {
        ok(&["ingest", "--lake", lake, file], dir.path());
        let rows = query_json(
            dir.path(),
            lake,
            "SELECT COUNT(*) AS n, SUM(quantity) AS q FROM trades",
        );
        let all = query_json(
            dir.path(),
            "lake",
            "SELECT COUNT(*) AS n, SUM(quantity) AS q FROM trades",
        );
        assert_eq!(rows, all, "{file}");
    }
}

#[test]
fn gzip_and_zstd_inputs_are_read_as_their_text_and_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let csv = ok(
        &[
            "simulate", "--count", "4000", "--seed", "8", "--format", "csv",
        ],
        dir.path(),
    )
    .stdout;
    let plain = simulate(dir.path(), 4_000, 8, "plain.ndjson");
    let expected = independent_totals(&plain);
    // Two gzip members, as `cat a.gz b.gz` makes: both are read.
    let half = csv.len() / 2
        + csv[csv.len() / 2..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap()
        + 1;
    let mut gz = Vec::new();
    for part in [&csv[..half], &csv[half..]] {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(part).unwrap();
        gz.extend(encoder.finish().unwrap());
    }
    std::fs::write(dir.path().join("t.csv.gz"), &gz).unwrap();
    std::fs::write(dir.path().join("t.csv"), &csv).unwrap();
    let out = ok(&["ingest", "--lake", "lake", "t.csv.gz"], dir.path());
    assert!(stderr(&out).contains("4,000"), "{}", stderr(&out));
    // The same text uncompressed is the same input: skipped, not counted twice.
    let out = ok(&["ingest", "--lake", "lake", "t.csv"], dir.path());
    assert!(
        stderr(&out).contains("the lake already holds this content"),
        "{}",
        stderr(&out)
    );
    let rows = query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM trades");
    assert_eq!(rows[0]["n"].as_u64(), Some(4_000));

    // zstd through stdin: sniffed from the decompressed text.
    let zst = zstd::stream::encode_all(&std::fs::read(&plain).unwrap()[..], 3).unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    ingest_stdin(&other, &zst);
    let files = parquet_totals(&other.join("lake/trades"));
    assert_eq!((files.0, files.1), (expected.0, expected.1));

    // A cut-off download fails as unreadable, and leaves nothing in the lake.
    std::fs::write(dir.path().join("cut.csv.gz"), &gz[..gz.len() / 3]).unwrap();
    ingest_refused(dir.path(), "cut", "cut.csv.gz", "cut.csv.gz: cannot read:");
}

#[test]
fn reingesting_the_same_file_does_not_double_count() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 5_000, 3, "a.ndjson");
    ok(&["ingest", "--lake", "lake", "a.ndjson"], dir.path());
    std::fs::copy(
        dir.path().join("a.ndjson"),
        dir.path().join("same-content.ndjson"),
    )
    .unwrap();
    let again = ok(
        &[
            "ingest",
            "--lake",
            "lake",
            "a.ndjson",
            "same-content.ndjson",
        ],
        dir.path(),
    );
    assert!(
        stderr(&again).contains("skipped a.ndjson"),
        "{}",
        stderr(&again)
    );
    assert!(
        stderr(&again).contains("skipped same-content.ndjson"),
        "{}",
        stderr(&again)
    );
    assert_eq!(trades_and_windowed(dir.path()), (5_000, 5_000));
}

const GOOD: &str = r#"{"timestamp":"2024-01-02T14:30:00","symbol":"SYNTH_SPY","price":470.5,"quantity":100,"venue":"XNAS","side":"BUY"}"#;

#[test]
fn every_kind_of_bad_row_lands_in_rejects_and_good_rows_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut data: Vec<u8> = Vec::new();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{\"timestamp\": oops".to_vec()),
        ("not_an_object", b"[1, 2, 3]".to_vec()),
        ("missing_field", GOOD.replace(r#""symbol":"SYNTH_SPY","#, "").into_bytes()),
        ("wrong_type", GOOD.replace("470.5", "\"470.5 USD\"").into_bytes()),
        ("bad_price", GOOD.replace("470.5", "-470.5").into_bytes()),
        ("bad_price", GOOD.replace("470.5", "0").into_bytes()),
        ("invalid_json", GOOD.replace("470.5", "NaN").into_bytes()),
        ("invalid_json", GOOD.replace("470.5", "1e999").into_bytes()),
        ("bad_quantity", GOOD.replace("100", "-100").into_bytes()),
        ("bad_quantity", GOOD.replace("100", "1.5").into_bytes()),
        ("bad_timestamp", GOOD.replace("2024-01-02T14:30:00", "02/01/2024 14:30").into_bytes()),
        ("bad_timestamp", GOOD.replace("2024-01-02T14:30:00", "2024-02-30T00:00:00").into_bytes()),
        ("invalid_utf8", [&b"{\"timestamp\":\"2024-01-02T14:30:00\",\"symbol\":\"\xff\xfe\""[..], b"}"].concat()),
        ("missing_field", br#"{"timestamp":"2024-01-02T14:30:00","symbol":"X","price":null,"quantity":1,"venue":"LIT"}"#.to_vec()),
        ("line_too_long", {
            let mut big = GOOD.as_bytes()[..GOOD.len() - 1].to_vec();
            big.extend_from_slice(b",\"pad\":\"");
            big.extend(std::iter::repeat_n(b'x', 10 << 20));
            big.extend_from_slice(b"\"}");
            big
        }),
    ];
    for (i, (_, line)) in bad.iter().enumerate() {
        data.extend_from_slice(
            GOOD.replace("14:30:00", &format!("14:30:{:02}", i))
                .as_bytes(),
        );
        data.push(b'\n');
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    std::fs::write(dir.path().join("mixed.ndjson"), &data).unwrap();
    let out = ok(&["ingest", "--lake", "lake", "mixed.ndjson"], dir.path());
    assert!(stderr(&out).contains("rejected"), "{}", stderr(&out));

    let trades = query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM trades");
    assert_eq!(
        trades[0]["n"].as_u64(),
        Some(bad.len() as u64),
        "every good row kept"
    );
    let rejects = query_json(
        dir.path(),
        "lake",
        "SELECT reason, source_line, raw_bytes, length(raw_text) AS kept FROM rejects ORDER BY source_line",
    );
    assert_eq!(rejects.len(), bad.len());
    for (i, ((reason, line), row)) in bad.iter().zip(&rejects).enumerate() {
        assert_eq!(row["reason"].as_str(), Some(*reason), "row {i}: {row}");
        assert_eq!(
            row["source_line"].as_u64(),
            Some(2 * i as u64 + 2),
            "row {i}"
        );
        assert_eq!(
            row["raw_bytes"].as_u64(),
            Some(line.len() as u64),
            "row {i}"
        );
    }
    // The 10 MB line keeps its first MiB (the --max-line-bytes default) and its full length.
    let last = rejects.last().unwrap();
    assert_eq!(last["kept"].as_u64(), Some(1 << 20));
}

#[test]
fn numbers_sent_as_strings_land_as_the_numbers() {
    // Producers that keep decimals exact send them as strings (`"price":"470.5"`).
    let dir = tempfile::tempdir().unwrap();
    let quoted = GOOD
        .replace("470.5", "\"470.5\"")
        .replace(":100,", ":\"100\",");
    assert_ne!(quoted, GOOD);
    std::fs::write(dir.path().join("quoted.ndjson"), format!("{quoted}\n")).unwrap();
    ok(&["ingest", "--lake", "lake", "quoted.ndjson"], dir.path());
    let rows = query_json(
        dir.path(),
        "lake",
        "SELECT price, quantity, trade_value, (SELECT COUNT(*) FROM rejects) AS rejected FROM trades",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["price"].as_f64(), Some(470.5));
    assert_eq!(rows[0]["quantity"].as_i64(), Some(100));
    assert_eq!(rows[0]["trade_value"].as_f64(), Some(47_050.0));
    assert_eq!(rows[0]["rejected"].as_u64(), Some(0));
}

#[test]
fn text_files_that_start_with_a_byte_order_mark_are_read_whole() {
    // Excel's "CSV UTF-8", Notepad and PowerShell start files with one.
    let dir = tempfile::tempdir().unwrap();
    let bom = b"\xEF\xBB\xBF";
    for (format, file) in [("ndjson", "bom.ndjson"), ("csv", "bom.csv")] {
        let text = ok(
            &["simulate", "--count", "500", "--format", format],
            dir.path(),
        )
        .stdout;
        std::fs::write(dir.path().join(file), [&bom[..], &text].concat()).unwrap();
        ok(&["ingest", "--lake", "lake", file], dir.path());
    }
    // From stdin, where the format is told from the content.
    let text = ok(&["simulate", "--count", "500", "--seed", "9"], dir.path()).stdout;
    ingest_stdin(dir.path(), &[&bom[..], &text].concat());
    let rows = query_json(
        dir.path(),
        "lake",
        "SELECT source_file, COUNT(*) AS n, MIN(source_line) AS first FROM trades \
         GROUP BY source_file ORDER BY source_file",
    );
    let got: Vec<(&str, u64, u64)> = rows
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap();
            (
                text("source_file"),
                r["n"].as_u64().unwrap(),
                r["first"].as_u64().unwrap(),
            )
        })
        .collect();
    // The CSV's first trade is on line 2, under its header.
    assert_eq!(
        got,
        [("-", 500, 1), ("bom.csv", 500, 2), ("bom.ndjson", 500, 1)]
    );
    let rejects = query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM rejects");
    assert_eq!(rejects[0]["n"].as_u64(), Some(0));
}

#[test]
fn csv_in_the_original_columns_with_bad_cells() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "timestamp,symbol,price,quantity,venue,is_spoof,algo_fingerprint,order_type,order_id,side\n\
               2024-01-01T11:50:03.120000,SYNTH_AMZN,262.39,3143,DARK2,0,A7,LIMIT,o1,BUY\n\
               2024-01-01T11:50:04,SYNTH_AMZN,NaN,100,DARK2,0,A7,LIMIT,o2,BUY\n\
               2024-01-01T11:50:05,SYNTH_AMZN,inf,100,DARK2,0,A7,LIMIT,o3,BUY\n\
               2024-01-01T11:50:06,SYNTH_AMZN,10,100,LIT,0,A7,LIMIT,o4\n\
               2024-01-01T11:50:07,\"SYNTH_AMZN\",10,100,MYSTERY,1,A7,LIMIT,o5,SELL\n";
    std::fs::write(dir.path().join("orig.csv"), csv).unwrap();
    ok(&["ingest", "--lake", "lake", "orig.csv"], dir.path());
    let trades = query_json(
        dir.path(),
        "lake",
        "SELECT venue, venue_kind, trade_value, latitude FROM trades ORDER BY \"timestamp\"",
    );
    assert_eq!(trades.len(), 2);
    assert_eq!(trades[0]["venue_kind"].as_str(), Some("dark"));
    assert_eq!(
        trades[0]["latitude"].as_f64(),
        Some(40.7128),
        "coordinates from the registry"
    );
    assert!(close(
        trades[0]["trade_value"].as_f64().unwrap(),
        824_691.77
    ));
    assert_eq!(
        trades[1]["venue_kind"].as_str(),
        Some("unknown"),
        "unknown venue kept"
    );
    let rejects = query_json(
        dir.path(),
        "lake",
        "SELECT reason FROM rejects ORDER BY source_line",
    );
    let reasons: Vec<&str> = rejects
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["bad_price", "bad_price", "wrong_field_count"]);
}

fn lake_is_empty(lake: &Path) -> bool {
    ["trades", "windows", "late", "rejects"]
        .iter()
        .all(|t| !lake.join(t).exists())
}

/// `ingest --lake LAKE INPUT` refused, saying `says`, with nothing written to LAKE.
fn ingest_refused(dir: &Path, lake: &str, input: &str, says: &str) {
    refused(&["ingest", "--lake", lake, input], dir, says);
    assert!(lake_is_empty(&dir.join(lake)), "{input} wrote to {lake}");
}

#[test]
fn unreadable_inputs_and_out_of_range_flags_fail_cleanly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 1_000, 1, "good.ndjson");
    std::fs::write(dir.path().join("bad.csv"), "when,what\n1,2\n").unwrap();
    std::fs::write(dir.path().join("notjson.ndjson"), "timestamp,symbol\n").unwrap();
    std::fs::write(dir.path().join("trades.txt"), "{}\n").unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["good.ndjson", "missing.ndjson"], "missing.ndjson: cannot read"),
        // Refused, not raised quietly to the least that works.
        (&["--batch-rows", "0", "good.ndjson"], "--batch-rows must be at least 1, got 0"),
        (&["--file-bytes", "100k", "good.ndjson"], "--file-bytes (bytes) must be at least 1048576, got 102400"),
        (&["--max-line-bytes", "0", "good.ndjson"], "--max-line-bytes must be at least 64, got 0"),
        (&["good.ndjson", "bad.csv"], "bad.csv: not a darkpool CSV: the header lacks timestamp, symbol, price, quantity, venue"),
        (&["notjson.ndjson"], "notjson.ndjson: not NDJSON"),
        (&["trades.txt"], "trades.txt: cannot tell the format"),
        (&["good.ndjson", "folder"], "folder: a folder, not a file; give its files"),
    ];
    for (files, expected) in cases {
        let mut args = vec!["ingest", "--lake", "lake"];
        args.extend_from_slice(files);
        let out = run(&args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{files:?}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{files:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        // The OS's reason once, not repeated by the error's cause chain.
        assert!(err.matches("(os error").count() <= 1, "{err}");
        assert!(
            lake_is_empty(&dir.path().join("lake")),
            "{files:?} left data behind"
        );
    }
}

/// Limits below the least that works are refused with the flag named, not raised quietly.
#[test]
fn query_report_and_serve_refuse_limits_below_their_least() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["query", "--row-limit", "0", "SELECT 1"][..],
            "--row-limit must be at least 1, got 0",
        ),
        (
            &["query", "--memory-limit", "1M", "SELECT 1"],
            "--memory-limit (bytes) must be at least 16777216, got 1048576",
        ),
        (
            &["report", "--memory-limit", "0", "--out", "plots"],
            "--memory-limit (bytes) must be at least 16777216, got 0",
        ),
        (
            &["serve", "--bind", "127.0.0.1:0", "--heatmap-rows", "0"],
            "--heatmap-rows must be at least 1, got 0",
        ),
        (
            &["serve", "--bind", "127.0.0.1:0", "--max-body", "10"],
            "--max-body (bytes) must be at least 1024, got 10",
        ),
        (
            &["query", "--timeout", "0", "SELECT 1"],
            "--timeout must be at least 1ms, got 0",
        ),
        (
            &["serve", "--bind", "127.0.0.1:0", "--timeout", "0s"],
            "--timeout must be at least 1ms, got 0s",
        ),
    ] {
        // A serve that took the flag would serve until stopped: give it 30 s.
        let mut child = darkpool()
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!dir.path().join("plots").exists(), "{args:?}");
        assert!(lake_is_empty(&dir.path().join("lake")), "{args:?}");
    }
}

#[test]
fn refused_sql_exits_2_and_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    let t = target.display();
    let statements = [
        format!("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{t}/x/'"),
        format!("COPY (SELECT 1) TO '{t}/copy.parquet'"),
        "INSERT INTO trades SELECT * FROM trades".to_string(),
        "DROP TABLE trades".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        format!("SELECT * FROM '{t}/../../etc/passwd'"),
    ];
    for sql in &statements {
        let out = run(&["query", "--lake", "lake", sql], dir.path());
        assert_eq!(out.status.code(), Some(2), "{sql}: {}", stderr(&out));
        assert!(stderr(&out).contains("refused"), "{sql}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_dir(&target).unwrap().count(),
            0,
            "{sql} created a file"
        );
        assert!(!dir.path().join("lake").exists(), "{sql} created the lake");
    }
}

#[test]
fn sql_errors_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &["query", "--lake", "lake", "SELECT nope FROM trades"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{err}");
    assert!(error_lines[0].contains("nope"), "{err}");
    refused(
        &["query", "--lake", "lake", "no_such_query"],
        dir.path(),
        "no named query 'no_such_query'",
    );
}

#[test]
fn query_over_a_missing_lake_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        &[
            "query",
            "--lake",
            "nowhere",
            "SELECT COUNT(*) AS n FROM trades",
        ],
        dir.path(),
    );
    assert!(
        stderr(&out).contains("no lake at nowhere"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn query_lists_tables_and_named_queries_and_writes_formats() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 2_000, 2, "t.ndjson");
    ok(&["ingest", "--lake", "lake", "t.ndjson"], dir.path());
    let list = stdout(&ok(&["query", "--lake", "lake", "--list"], dir.path()));
    for name in [
        "trades",
        "windows",
        "window_history",
        "late",
        "rejects",
        "venues",
        "dark_lit_share",
        "venue_hhi",
    ] {
        assert!(list.contains(name), "{name} missing from --list:\n{list}");
    }
    assert!(list.contains("Venue concentration per symbol"), "{list}");
    // EXPLAIN ANALYZE runs the query and gives the plan with its measured rows (the row limit,
    // wrapped round it, had made DataFusion fail with an internal error).
    let analyzed = stdout(&ok(
        &[
            "query",
            "--lake",
            "lake",
            "EXPLAIN ANALYZE SELECT COUNT(*) FROM trades",
        ],
        dir.path(),
    ));
    assert!(analyzed.contains("output_rows=1"), "{analyzed}");
    let csv = stdout(&ok(
        &[
            "query",
            "--lake",
            "lake",
            "--format",
            "csv",
            "venue_summary",
        ],
        dir.path(),
    ));
    assert!(csv.starts_with("venue,venue_kind,total_value"), "{csv}");
    let ndjson = stdout(&ok(
        &[
            "query",
            "--lake",
            "lake",
            "--format",
            "ndjson",
            "--maxrows",
            "3",
            "block_trades",
        ],
        dir.path(),
    ));
    assert_eq!(ndjson.lines().count(), 3);
    ok(
        &[
            "query",
            "--lake",
            "lake",
            "--format",
            "parquet",
            "--output",
            "out/new/trades.parquet",
            "SELECT * FROM trades",
        ],
        dir.path(),
    );
    // The exported Parquet (its folders made, as export and report make theirs) round-trips
    // through ingest into a second lake.
    ok(
        &["ingest", "--lake", "lake2", "out/new/trades.parquet"],
        dir.path(),
    );
    let rows = query_json(dir.path(), "lake2", "SELECT COUNT(*) AS n FROM trades");
    assert_eq!(rows[0]["n"].as_u64(), Some(2_000));
    let table = stdout(&ok(
        &[
            "query",
            "--lake",
            "lake",
            "SELECT symbol FROM trades ORDER BY symbol",
        ],
        dir.path(),
    ));
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| SYNTH_")).count(),
        40,
        "table output defaults to 40 rows"
    );
}

/// A quoted CSV field may hold line breaks (a notes column of an export): the record is one
/// trade. A stray quote costs only its own line, never the good records after it.
#[test]
fn a_quoted_csv_field_may_span_lines_and_a_stray_quote_costs_only_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "timestamp,symbol,price,quantity,venue,order_id,note\r\n\
        2024-01-01T09:30:00,SPY,1.5,10,XNYS,A1,\"first\r\nsecond\"\r\n\
        2024-01-01T09:30:01,SPY,\"1.5,10,XNYS,S,stray\r\n\
        2024-01-01T09:30:02,SPY,1.5,10,XNYS,B2,plain\r\n\
        2024-01-01T09:30:03,SPY,1.5,10,XNYS,C3,\"say \"\"hi\"\",\n\nthen go\"\n\
        2024-01-01T09:30:04,SPY,1.5,10,XNYS,\"D\n4\",x\n\
        2024-01-01T09:30:05,SPY,1.5,10,XNYS,E5,\"last\n\"\n";
    std::fs::write(dir.path().join("t.csv"), csv).unwrap();
    ok(&["ingest", "--lake", "lake", "t.csv"], dir.path());
    let csv_of = |sql: &str| {
        stdout(&ok(
            &["query", "--lake", "lake", "--format", "csv", sql],
            dir.path(),
        ))
    };
    assert_eq!(
        csv_of("SELECT source_line, order_id FROM trades ORDER BY 1"),
        "source_line,order_id\n2,A1\n5,B2\n6,C3\n11,E5\n"
    );
    // The record of line 9 is rejected whole for its order id, not in halves.
    assert_eq!(
        csv_of("SELECT source_line, reason FROM rejects ORDER BY 1"),
        "source_line,reason\n4,wrong_field_count\n9,bad_field\n"
    );
    let detail = csv_of("SELECT detail FROM rejects WHERE source_line = 4");
    assert!(
        detail.contains("a quote is left open on this line"),
        "{detail}"
    );
}

#[test]
fn a_file_where_a_folder_goes_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "a file\n").unwrap();
    simulate(dir.path(), 200, 1, "t.ndjson");
    ok(&["ingest", "--lake", "lake", "t.ndjson"], dir.path());
    let in_the_way = "f is a file, not a folder";
    refused(
        &["query", "--lake", "lake", "--output", "f/q.csv", "SELECT 1"],
        dir.path(),
        &format!("cannot write f/q.csv: {in_the_way}"),
    );
    refused(
        &[
            "export", "--lake", "lake", "--table", "trades", "--out", "f/x.csv",
        ],
        dir.path(),
        &format!("f/x.csv: {in_the_way}"),
    );
    refused(
        &["report", "--lake", "lake", "--out", "f/plots"],
        dir.path(),
        in_the_way,
    );
    for (lake, says) in [
        ("f", "a file, not a folder (a lake is a folder"),
        ("f/sub", in_the_way),
    ] {
        let out = run(&["query", "--lake", lake, "SELECT 1"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"a file\n");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "f, t.ndjson and lake only"
    );
}

#[test]
fn a_killed_ingest_leaves_all_or_nothing_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 200_000, 9, "big.ndjson");
    let mut child = darkpool()
        .args([
            "ingest",
            "--lake",
            "lake",
            "--batch-rows",
            "5000",
            "big.ndjson",
        ])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let _ = child.kill(); // SIGKILL: no cleanup code runs
    let _ = child.wait();
    let visible =
        query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM trades")[0]["n"].as_u64();
    assert!(
        matches!(visible, Some(0) | Some(200_000)),
        "a torn run became visible: {visible:?}"
    );
    ok(&["ingest", "--lake", "lake", "big.ndjson"], dir.path());
    assert_eq!(trades_and_windowed(dir.path()), (200_000, 200_000));
    assert!(
        !dir.path()
            .join("lake/_staging")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "staging cleaned"
    );
}

/// A claim (an input's, or the lake's offsets lock) whose owner line cannot be written on a
/// full disk leaves no file: an empty one was taken for another machine's, so the next commit
/// waited a minute for the lock and then failed, again and again (seen in the disk-full Kafka
/// member test).
#[test]
fn a_claim_that_cannot_be_written_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("lake");
    let Some(_disk) = common::SmallDisk::mount(&at, "16k") else {
        return;
    };
    std::fs::create_dir_all(at.join("_sources")).unwrap();
    // Every page taken (an empty file still gets its inode).
    let mut filler = std::fs::File::create(at.join("filler")).unwrap();
    while filler.write_all(&[0u8; 1024]).is_ok() {}
    let lake = darkpool::lake::Lake::new(&at);
    let err = lake.claim("abc", "a.ndjson").unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    let left: Vec<_> = std::fs::read_dir(at.join("_sources"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(filler);
    std::fs::remove_file(at.join("filler")).unwrap();
    assert!(lake.claim("abc", "a.ndjson").is_ok());
}

#[test]
fn a_full_disk_fails_an_ingest_leaving_the_lake_as_it_was_and_with_room_a_rerun_lands_it() {
    let dir = tempfile::tempdir().unwrap();
    // The lake on a filesystem of 1 MiB: room for the first file's trades, not the second's.
    let Some(disk) = common::SmallDisk::mount(&dir.path().join("lake"), "1m") else {
        return;
    };
    let small = simulate(dir.path(), 20_000, 3, "small.ndjson");
    let big = simulate(dir.path(), 200_000, 4, "big.ndjson");
    ok(&["ingest", "--lake", "lake", "small.ndjson"], dir.path());
    let before = independent_totals(&small);
    refused(
        &["ingest", "--lake", "lake", "big.ndjson"],
        dir.path(),
        "No space left on device",
    );
    let lake = dir.path().join("lake");
    let after = parquet_totals(&lake.join("trades"));
    assert_eq!((after.0, after.1), (before.0, before.1));
    assert!(close(after.2, before.2));
    assert!(!lake.join("_staging").read_dir().unwrap().any(|_| true));
    // With room, the same command lands the second file, once.
    disk.grow("64m");
    for _ in 0..2 {
        ok(&["ingest", "--lake", "lake", "big.ndjson"], dir.path());
    }
    let both = independent_totals(&big);
    let after = parquet_totals(&lake.join("trades"));
    assert_eq!((after.0, after.1), (before.0 + both.0, before.1 + both.1));
    let (trades, windowed) = trades_and_windowed(dir.path());
    assert_eq!(trades, windowed);
    // Files written elsewhere on a full disk: an error naming the file, and no file.
    let out = dir.path().join("out");
    let Some(_full) = common::SmallDisk::mount(&out, "64k") else {
        return;
    };
    for args in [
        &["simulate", "--count", "10000", "--output", "out/t.ndjson"][..],
        &[
            "export",
            "--lake",
            "lake",
            "--table",
            "trades",
            "--out",
            "out/t.csv",
        ],
        &[
            "query",
            "--lake",
            "lake",
            "--format",
            "csv",
            "--output",
            "out/q.csv",
            "SELECT * FROM trades",
        ],
    ] {
        let failed = refused(args, dir.path(), "No space left on device");
        assert!(
            stderr(&failed).contains("out/"),
            "{args:?}: {}",
            stderr(&failed)
        );
    }
    assert!(!out.read_dir().unwrap().any(|_| true));
}

#[test]
fn export_writes_typed_parquet_and_spreadsheet_csv_atomically() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 4_000, 6, "t.ndjson");
    ok(&["ingest", "--lake", "lake", "t.ndjson"], dir.path());
    ok(
        &[
            "export",
            "--lake",
            "lake",
            "--table",
            "trades",
            "--out",
            "trades.parquet",
        ],
        dir.path(),
    );
    // Read back with the parquet crate alone and compare with a query.
    let file = std::fs::File::open(dir.path().join("trades.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let ts = builder
        .schema()
        .field_with_name("timestamp")
        .unwrap()
        .data_type()
        .clone();
    assert_eq!(
        ts,
        arrow::datatypes::DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into())
        )
    );
    let (mut rows, mut quantity) = (0u64, 0i64);
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        rows += batch.num_rows() as u64;
        quantity += batch
            .column_by_name("quantity")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .sum::<i64>();
    }
    let expected = query_json(
        dir.path(),
        "lake",
        "SELECT COUNT(*) AS n, SUM(quantity) AS q FROM trades",
    );
    assert_eq!(
        (Some(rows), Some(quantity)),
        (expected[0]["n"].as_u64(), expected[0]["q"].as_i64())
    );

    ok(
        &[
            "export",
            "--lake",
            "lake",
            "--table",
            "windows",
            "--format",
            "csv",
            "--out",
            "windows.csv",
        ],
        dir.path(),
    );
    let csv = std::fs::read_to_string(dir.path().join("windows.csv")).unwrap();
    let second = csv.lines().nth(1).unwrap();
    assert!(
        second.starts_with("2024-01-01 09:30:00,2024-01-01 09:35:00,"),
        "{second}"
    );

    // The format follows --out's extension, and trade times keep their fraction of a second.
    ok(
        &[
            "export",
            "--lake",
            "lake",
            "--table",
            "trades",
            "--out",
            "trades.csv",
        ],
        dir.path(),
    );
    // Every exported time is one of the file's, to the microsecond (read with serde_json).
    let micros = |t: &str| {
        let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
        format!("{}.{fraction:0<6}", whole.replace('T', " "))
    };
    let sent: std::collections::HashSet<String> =
        std::fs::read_to_string(dir.path().join("t.ndjson"))
            .unwrap()
            .lines()
            .map(|l| {
                micros(
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["timestamp"]
                        .as_str()
                        .unwrap(),
                )
            })
            .collect();
    let csv = std::fs::read_to_string(dir.path().join("trades.csv")).unwrap();
    let times: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(times.len(), 4_000);
    assert!(times.iter().any(|t| t.contains('.')), "{:?}", &times[..3]);
    for t in times {
        assert!(sent.contains(&micros(t)), "{t} is not a sent time");
    }
    // A --format the extension contradicts is refused, and nothing is written.
    refused(
        &[
            "export",
            "--lake",
            "lake",
            "--table",
            "trades",
            "--format",
            "csv",
            "--out",
            "t.parquet",
        ],
        dir.path(),
        "--format csv contradicts --out t.parquet",
    );
    assert!(!dir.path().join("t.parquet").exists());

    ok(
        &[
            "export",
            "--lake",
            "lake",
            "--table",
            "dark_lit_share",
            "--out",
            "by_date",
            "--partition-by",
            "date",
        ],
        dir.path(),
    );
    assert!(dir
        .path()
        .join("by_date/date=2024-01-01/part-00000.parquet")
        .is_file());

    // A failing export leaves no file and no temporary behind.
    let out = run(
        &[
            "export", "--lake", "lake", "--table", "no_such", "--out", "x.csv",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n == "x.csv")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn export_converts_a_json_dump_in_the_original_api_shape() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/heatmap_data.json");
    let sample = sample.to_str().unwrap();
    ok(
        &[
            "export",
            "--input",
            sample,
            "--format",
            "csv",
            "--out",
            "heatmap.csv",
        ],
        dir.path(),
    );
    let csv = std::fs::read_to_string(dir.path().join("heatmap.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].starts_with("window_start,window_end,symbol,venue,total_trade_value"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(
            "2024-01-01 11:50:00,2024-01-01 11:55:00,SYNTH_AMZN,DARK2,824691.77,3143,"
        ),
        "{}",
        lines[1]
    );
    ok(
        &["export", "--input", sample, "--out", "heatmap.parquet"],
        dir.path(),
    );
    let file = std::fs::File::open(dir.path().join("heatmap.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert!(matches!(
        builder
            .schema()
            .field_with_name("window_start")
            .unwrap()
            .data_type(),
        arrow::datatypes::DataType::Timestamp(_, _)
    ));
    // Timestamp columns are decided over the whole dump, not per batch of rows: one text value
    // past the first thousand rows keeps the column text (it had split the file into a
    // timestamp part and a text part, and failed the Parquet export).
    let mut rows: Vec<serde_json::Value> = (0..1_500)
        .map(|n| serde_json::json!({"windowStart": "2024-01-01T09:30:00", "n": n, "tag": "x"}))
        .collect();
    rows[1_400]["windowStart"] = "not a time".into();
    rows[3]["tag"] = 7.into();
    rows[4]["tag"] = serde_json::json!({"nested": [1, 2]});
    std::fs::write(
        dir.path().join("mixed.json"),
        serde_json::to_string(&rows).unwrap(),
    )
    .unwrap();
    ok(
        &["export", "--input", "mixed.json", "--out", "mixed.parquet"],
        dir.path(),
    );
    let file = std::fs::File::open(dir.path().join("mixed.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = reader.schema().clone();
    assert_eq!(
        schema.field_with_name("window_start").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8
    );
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 1_500);
    ok(
        &["export", "--input", "mixed.json", "--out", "mixed.csv"],
        dir.path(),
    );
    let csv = std::fs::read_to_string(dir.path().join("mixed.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1_501);
    assert_eq!(lines[0], "window_start,n,tag");
    assert_eq!(lines[4], "2024-01-01T09:30:00,3,7");
    assert_eq!(lines[5], r#"2024-01-01T09:30:00,4,"{""nested"":[1,2]}""#);
    assert_eq!(lines[1_401], "not a time,1400,x");
    // One object is a one-line NDJSON file.
    std::fs::write(dir.path().join("one.json"), r#"{"symbol": "SPY", "n": 1}"#).unwrap();
    ok(
        &["export", "--input", "one.json", "--out", "one.csv"],
        dir.path(),
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("one.csv")).unwrap(),
        "symbol,n\nSPY,1\n"
    );
    std::fs::write(
        dir.path().join("bad.json"),
        "[{\"a\": 1}, [\"not an object\"]]",
    )
    .unwrap();
    refused(
        &[
            "export", "--input", "bad.json", "--format", "csv", "--out", "bad.csv",
        ],
        dir.path(),
        "not a JSON dump of windows",
    );
    assert!(!dir.path().join("bad.csv").exists());
}

#[test]
fn two_processes_ingesting_the_same_file_commit_it_once() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 150_000, 12, "same.ndjson");
    let first = darkpool()
        .args(["ingest", "--lake", "lake", "same.ndjson"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let second = run(&["ingest", "--lake", "lake", "same.ndjson"], dir.path());
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&second);
    assert!(
        err.contains("is being ingested right now") || err.contains("skipped same.ndjson"),
        "second ingest: {err}"
    );
    let rows = query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM trades");
    assert_eq!(rows[0]["n"].as_u64(), Some(150_000));
}

#[test]
fn serve_with_unreachable_brokers_fails_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "serve",
            "--brokers",
            "127.0.0.1:1",
            "--connect-timeout",
            "1s",
            "--bind",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach Kafka at 127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("lake").exists(), "nothing is written");
}

/// librdkafka settings that would undo darkpool's guarantees or its flags are refused before
/// any broker is asked, from -X and from the environment alike; the same values darkpool sets
/// pass (these runs get as far as the broker).
#[test]
fn kafka_settings_darkpool_makes_itself_are_refused_unless_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = ["--brokers", "127.0.0.1:1", "--connect-timeout", "1s"];
    for (args, env, says) in [
        (
            vec!["ingest", "-X", "enable.auto.commit=true"],
            None,
            "enable.auto.commit=true (from -X or a DARKPOOL_KAFKA_ variable) is refused: darkpool \
             sets enable.auto.commit to false itself, as offsets are committed only once the lake \
             holds what they cover",
        ),
        (
            vec![
                "serve",
                "--bind",
                "127.0.0.1:0",
                "-X",
                "enable.partition.eof=false",
            ],
            None,
            "enable.partition.eof=false (from -X",
        ),
        (
            vec!["simulate", "--count", "5", "-X", "acks=1"],
            None,
            "acks=1 (from -X or a DARKPOOL_KAFKA_ variable) is refused: darkpool sets acks to all \
             itself, as the producers are idempotent",
        ),
        (
            vec![
                "ingest",
                "-X",
                "partition.assignment.strategy=range,cooperative-sticky",
            ],
            None,
            "darkpool sets partition.assignment.strategy to range,roundrobin itself, as a \
             member's assignors must all rebalance the same way",
        ),
        (
            vec!["ingest"],
            Some(("DARKPOOL_KAFKA_GROUP_ID", "other")),
            "group.id=other (from -X or a DARKPOOL_KAFKA_ variable) is refused: darkpool sets \
             group.id itself, as --group says",
        ),
        (
            vec!["ingest", "-X", "enable.auto.commit=false", "-X", "acks=all"],
            None,
            "cannot reach Kafka",
        ),
        (
            vec!["simulate", "--count", "5", "-X", "enable.idempotence=true"],
            Some(("DARKPOOL_KAFKA_ACKS", "-1")),
            "cannot reach Kafka",
        ),
    ] {
        let mut cmd = darkpool();
        cmd.current_dir(dir.path())
            .arg(args[0])
            .args(kafka)
            .args(&args[1..])
            .env_remove("DARKPOOL_KAFKA_GROUP_ID")
            .env_remove("DARKPOOL_KAFKA_ACKS");
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(
            !dir.path().join("lake").exists(),
            "{args:?}: nothing is written"
        );
    }
}

/// A closed stderr (a pipe whose reader went) loses the messages, not the run: `eprintln!`
/// panicked there, so `ingest 2>&1 | head -1` or a log shipper going away ended a member
/// with exit 101, and a file ingest after its commit.
#[test]
fn a_closed_stderr_loses_the_messages_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let trades = run(&["simulate", "--count", "500"], dir.path()).stdout;
    std::fs::write(dir.path().join("t.ndjson"), trades).unwrap();
    let mut child = darkpool()
        .args(["ingest", "t.ndjson"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    let out = run(
        &[
            "query",
            "--format",
            "csv",
            "SELECT COUNT(*) AS n FROM trades",
        ],
        dir.path(),
    );
    assert_eq!(stdout(&out), "n\n500\n");
}

/// `--metrics-bind` (a running member's metrics) and `--status-every` (a producer's status
/// line) are for Kafka: without --brokers they are refused before anything is read or written.
/// A flag the mode chosen would ignore is refused, before anything is written or asked: a
/// Kafka flag without `--brokers` (where the user meant Kafka and would have got simulated
/// trades or a file ingest), a file's format with `--brokers`, serve's simulator flags with
/// `--brokers` or `--no-ingest`. The same values from the environment are left alone.
#[test]
fn flags_the_mode_would_ignore_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.ndjson"), "{}\n").unwrap();
    let serve = ["serve", "--bind", "127.0.0.1:0"];
    let simulate = ["simulate", "--count", "5", "-o", "s.ndjson"];
    // 127.0.0.1:1 answers nothing: a refusal must come before any broker is asked.
    let brokers = ["--brokers", "127.0.0.1:1", "--connect-timeout", "1s"];
    for (args, says) in [
        (
            vec!["ingest", "--metrics-bind", "127.0.0.1:0", "t.ndjson"],
            "--metrics-bind applies to --brokers",
        ),
        (
            vec!["ingest", "--group", "g", "t.ndjson"],
            "--group applies to --brokers (the Kafka aggregator), not to a file ingest",
        ),
        (
            vec!["ingest", "t.ndjson", "-X", "security.protocol=ssl"],
            "-X applies to --brokers",
        ),
        (
            [&["ingest", "--format", "csv"][..], &brokers].concat(),
            "--format does not apply here: with --brokers each message is decoded as a JSON trade",
        ),
        (
            [&simulate[..], &["--status-every", "5s"]].concat(),
            "--status-every applies to --brokers",
        ),
        (
            [&simulate[..], &["--topic", "trades"]].concat(),
            "--topic applies to --brokers (trades published to Kafka)",
        ),
        (
            [&serve[..], &["--topic", "trades"]].concat(),
            "--topic applies to --brokers (serve then aggregates a Kafka topic); without it serve \
             simulates its trades",
        ),
        (
            [&serve[..], &["--start", "latest"]].concat(),
            "--start applies to --brokers",
        ),
        (
            [&serve[..], &["--no-ingest", "--rate", "5"]].concat(),
            "--rate does not apply here: --no-ingest serves the lake and runs no pipeline",
        ),
        (
            [&serve[..], &["--no-ingest", "--commit-every", "1s"]].concat(),
            "--commit-every does not apply here: --no-ingest",
        ),
        (
            [&serve[..], &brokers, &["--seed", "7"]].concat(),
            "--seed does not apply here: with --brokers the trades come from the topic",
        ),
    ] {
        let out = refused(&args, dir.path(), says);
        assert!(!stderr(&out).contains("Kafka at"), "{args:?}: flags first");
    }
    assert!(!dir.path().join("lake").exists());
    assert!(!dir.path().join("s.ndjson").exists());
    // DARKPOOL_CHECK_FLAGS_ONLY (`.ci/compose-check`): the same check, and nothing runs.
    let check = |args: &[&str]| {
        darkpool()
            .args(args)
            .env("DARKPOOL_CHECK_FLAGS_ONLY", "1")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert_eq!(
        check(&["ingest", "--group", "g", "t.ndjson"]).status.code(),
        Some(1)
    );
    assert_eq!(check(&["ingest", "t.ndjson"]).status.code(), Some(0));
    assert!(!dir.path().join("lake").exists());
    // From the environment (one file for several modes, as compose's), the same are let be.
    let out = darkpool()
        .args(["ingest", "t.ndjson"])
        .env("DARKPOOL_GROUP", "g")
        .env("DARKPOOL_STATUS_EVERY", "5s")
        .env("DARKPOOL_METRICS_BIND", "127.0.0.1:0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn kafka_flags_that_would_loop_or_name_nothing_fail_before_any_broker_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    // 127.0.0.1:1 answers nothing: each of these must fail on its flags alone, at once.
    let kafka = ["--brokers", "127.0.0.1:1", "--topic", "trades"];
    for (command, flags, says) in [
        (
            "simulate",
            vec!["--input", "missing.ndjson"],
            "missing.ndjson: cannot read",
        ),
        (
            "simulate",
            vec!["--input", "missing.ndjson", "--seed", "7"],
            "--seed does not apply here: --input replays the file's trades as they are",
        ),
        (
            "simulate",
            vec!["--count", "5", "-o", "t.ndjson"],
            "--output does not apply here: with --brokers the trades go to the topic, as JSON",
        ),
        (
            "ingest",
            vec!["--output-topic", "trades"],
            "--output-topic trades is the topic read (--topic)",
        ),
        (
            "ingest",
            vec!["--dlq-topic", " trades "],
            "--dlq-topic trades is the topic read (--topic)",
        ),
        ("ingest", vec!["--group", " "], "--group is empty"),
        (
            "ingest",
            vec!["--dlq-topic", "dark-pool-heatmap-data"],
            "--dlq-topic dark-pool-heatmap-data is the window topic (--output-topic)",
        ),
        (
            "ingest",
            vec!["--idle-timeout", "0s"],
            "--idle-timeout must be more than 0",
        ),
        (
            "ingest",
            vec!["--metrics-bind", "127.0.0.1:99999"],
            "cannot listen on 127.0.0.1:99999 (--metrics-bind)",
        ),
        (
            "serve",
            vec!["--status-every", "0s", "--bind", "127.0.0.1:0"],
            "--status-every must be more than 0 (or `off`)",
        ),
        // Refused, not raised quietly to 100ms.
        (
            "ingest",
            vec!["--commit-every", "0"],
            "--commit-every must be at least 100ms, got 0",
        ),
        (
            "serve",
            vec!["--commit-every", "50ms", "--bind", "127.0.0.1:0"],
            "--commit-every must be at least 100ms, got 50ms",
        ),
        (
            "simulate",
            vec!["--connect-timeout", "0s"],
            "--connect-timeout must be more than 0",
        ),
        (
            "simulate",
            vec!["--status-every", "0s"],
            "--status-every must be more than 0 (or `off`)",
        ),
        (
            "ingest",
            vec!["--dlq-topic", "../escape"],
            "--dlq-topic \"../escape\" is not a topic name: Kafka topic names are letters, digits",
        ),
        (
            "serve",
            vec!["--dlq-topic", "trades", "--bind", "127.0.0.1:0"],
            "--dlq-topic trades is the topic read (--topic)",
        ),
    ] {
        let started = std::time::Instant::now();
        let mut args = vec![command];
        args.extend(kafka);
        args.extend(flags.iter().copied());
        let out = run(&args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("cannot reach Kafka"),
            "{args:?}: flags first"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{args:?}: no connect timeout waited out"
        );
        assert!(
            !dir.path().join("lake").exists(),
            "{args:?}: nothing is written"
        );
    }
    assert!(!dir.path().join("t.ndjson").exists());
    // A duration or size that is none is refused as the arguments are read, naming its flag,
    // as a bad number is (it had been read, and refused, only where each command used it; a
    // size's refusal did not name its flag).
    for (args, says) in [
        (
            vec!["query", "--memory-limit", "4X", "SELECT 1"],
            "invalid value '4X' for '--memory-limit <MEMORY_LIMIT>': '4X' is not a size like 512M or 4G",
        ),
        (
            vec!["serve", "--max-body", "one page", "--bind", "127.0.0.1:0"],
            "invalid value 'one page' for '--max-body <MAX_BODY>'",
        ),
        (
            vec!["ingest", "--file-bytes", "lots", "t.ndjson"],
            "invalid value 'lots' for '--file-bytes <FILE_BYTES>'",
        ),
        (
            vec!["ingest", "--idle-timeout", "30x", "t.ndjson"],
            "invalid value '30x' for '--idle-timeout <IDLE_TIMEOUT>': '30x' is not a duration",
        ),
        (
            vec!["ingest", "--status-every", "often", "t.ndjson"],
            "'often' is not a duration: use a number with a unit, like 500ms, 5s, 5m, 1h (or `off`)",
        ),
        (
            vec!["ingest", "--max-drift", "soon", "t.ndjson"],
            "'soon' is not a duration: use a number with a unit, like 500ms, 5s, 5m, 1h (or `off`)",
        ),
        (
            vec!["serve", "--cache-ttl", "1 week", "--bind", "127.0.0.1:0"],
            "invalid value '1 week' for '--cache-ttl <CACHE_TTL>'",
        ),
        (
            vec!["query", "--timeout=-1s", "SELECT 1"],
            "'-1s' is not a duration",
        ),
        (
            vec![
                "simulate",
                "--brokers",
                "127.0.0.1:1",
                "--connect-timeout",
                "ten",
            ],
            "invalid value 'ten' for '--connect-timeout <CONNECT_TIMEOUT>'",
        ),
    ] {
        let out = run(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(
            !dir.path().join("lake").exists(),
            "{args:?}: nothing is written"
        );
    }
    let out = run(
        &["simulate", "--brokers", "127.0.0.1:1", "--topic", "a/b"],
        dir.path(),
    );
    assert!(
        stderr(&out).contains("--topic \"a/b\" is not a topic name"),
        "{}",
        stderr(&out)
    );
    // From the environment (one environment may serve several modes) it is not refused: this
    // gets as far as the broker.
    let out = darkpool()
        .current_dir(dir.path())
        .args([
            "simulate",
            "--brokers",
            "127.0.0.1:1",
            "--connect-timeout",
            "1s",
        ])
        .args(["--count", "5"])
        .env("DARKPOOL_OUTPUT", "t.ndjson")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("cannot reach Kafka"),
        "{}",
        stderr(&out)
    );
}

/// Write a Parquet file of trades whose `timestamp` column is `timestamp` (any Arrow type).
fn write_trades_parquet(path: &Path, timestamp: arrow::array::ArrayRef) {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use std::sync::Arc;
    let n = timestamp.len();
    let batch = arrow::array::RecordBatch::try_from_iter([
        ("timestamp", timestamp),
        ("symbol", Arc::new(StringArray::from(vec!["SPY"; n])) as _),
        ("price", Arc::new(Float64Array::from(vec![10.0; n])) as _),
        ("quantity", Arc::new(Int64Array::from(vec![5; n])) as _),
        ("venue", Arc::new(StringArray::from(vec!["XNYS"; n])) as _),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_trades_need_a_time_of_trade_in_any_unit_but_not_a_date() {
    use arrow::array::{Date32Array, Int64Array, TimestampNanosecondArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    // 2024-01-02T14:30:00.123456Z: nanoseconds and epoch milliseconds both land to the unit.
    let nanos = 1_704_205_800_123_456_789i64;
    write_trades_parquet(
        &dir.path().join("ns.parquet"),
        Arc::new(TimestampNanosecondArray::from(vec![nanos]).with_timezone("UTC")),
    );
    write_trades_parquet(
        &dir.path().join("ms.parquet"),
        Arc::new(Int64Array::from(vec![nanos / 1_000_000])),
    );
    ok(
        &["ingest", "--lake", "lake", "ns.parquet", "ms.parquet"],
        dir.path(),
    );
    let rows = query_json(
        dir.path(),
        "lake",
        "SELECT CAST(timestamp AS VARCHAR) AS t FROM trades ORDER BY timestamp",
    );
    let times: Vec<&str> = rows.iter().map(|r| r["t"].as_str().unwrap()).collect();
    assert_eq!(
        times,
        ["2024-01-02T14:30:00.123Z", "2024-01-02T14:30:00.123456Z"]
    );
    // A date column would put every trade of the day at midnight: refused, nothing written.
    write_trades_parquet(
        &dir.path().join("dates.parquet"),
        Arc::new(Date32Array::from(vec![19_724])),
    );
    ingest_refused(
        dir.path(),
        "dated",
        "dates.parquet",
        "column timestamp is a date (Date32), not a time of trade",
    );
}

/// One lake keeps one window shape: without --window a run takes the lake's, and another shape
/// is refused before anything is written (mixed shapes would make SUMs over `windows` count
/// each trade once per shape).
#[test]
fn a_lake_keeps_the_window_shape_it_was_made_with() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 2_000, 4, "a.ndjson");
    simulate(dir.path(), 2_000, 5, "b.ndjson");
    simulate(dir.path(), 2_000, 6, "c.ndjson");
    ok(
        &["ingest", "--lake", "lake", "--window", "1m", "a.ndjson"],
        dir.path(),
    );
    ok(&["ingest", "--lake", "lake", "b.ndjson"], dir.path());
    refused(
        &["ingest", "--lake", "lake", "--window", "5m", "c.ndjson"],
        dir.path(),
        "the lake lake holds 1m tumbling windows, and this run would write 5m tumbling ones",
    );
    let sizes = query_json(
        dir.path(),
        "lake",
        "SELECT DISTINCT CAST(window_end - window_start AS VARCHAR) AS size, \
         SUM(num_trades) OVER () AS n FROM windows",
    );
    assert_eq!(sizes.len(), 1, "{sizes:?}");
    assert_eq!(sizes[0]["n"].as_u64(), Some(4_000), "c.ndjson left nothing");
    // Readers take the lake's shape too: the named batch recompute gives the stored windows.
    let stored = query_json(dir.path(), "lake", "SELECT COUNT(*) AS n FROM windows");
    let out = ok(
        &[
            "query",
            "--lake",
            "lake",
            "--format",
            "json",
            "--maxrows",
            "0",
            "window_aggregate",
        ],
        dir.path(),
    );
    let recomputed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(Some(recomputed.len() as u64), stored[0]["n"].as_u64());
}

/// A JSON array of trades (Python's `json.dump(trades)`, pandas' `to_json(orient="records")`)
/// is read as NDJSON, element N as line N; it had been taken for FINRA's ATS JSON and every
/// trade rejected.
#[test]
fn a_json_array_of_trades_is_read_like_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let plain = simulate(dir.path(), 3_000, 7, "t.ndjson");
    let expected = independent_totals(&plain);
    let mut trades: Vec<serde_json::Value> = std::fs::read_to_string(&plain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    trades.push(serde_json::json!("not a trade"));
    std::fs::write(
        dir.path().join("trades.json"),
        serde_json::to_string_pretty(&trades).unwrap(),
    )
    .unwrap();
    ok(&["ingest", "--lake", "lake", "trades.json"], dir.path());
    let rows = query_json(
        dir.path(),
        "lake",
        "SELECT COUNT(*) AS n, SUM(quantity) AS q, MAX(source_line) AS last FROM trades",
    );
    assert_eq!(rows[0]["n"].as_u64(), Some(expected.0));
    assert_eq!(rows[0]["q"].as_i64(), Some(expected.1));
    assert_eq!(rows[0]["last"].as_u64(), Some(3_000));
    let rejects = query_json(
        dir.path(),
        "lake",
        "SELECT reason, source_line FROM rejects",
    );
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0]["reason"], "not_an_object");
    assert_eq!(rejects[0]["source_line"].as_u64(), Some(3_001));
}

/// The windows view, every column, in one order: what a compaction must leave as it was.
fn windows_text(dir: &Path) -> String {
    stdout(&ok(
        &[
            "query",
            "--lake",
            "lake",
            "--format",
            "csv",
            "SELECT * FROM windows ORDER BY window_start, symbol, venue",
        ],
        dir,
    ))
}

/// `darkpool compact` merges the small files of many commits: the same trades (read back by
/// the parquet crate alone, and as the input says), the same windows, far fewer files; a
/// compaction killed at its swap leaves the lake whole, and the next one completes it.
#[test]
fn compact_merges_many_commits_files_and_a_killed_one_leaves_the_lake_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = (0, 0, 0.0);
    for seed in 1..=6 {
        let file = format!("part{seed}.ndjson");
        let path = simulate(dir.path(), 3_000, seed, &file);
        let totals = independent_totals(&path);
        expected = (
            expected.0 + totals.0,
            expected.1 + totals.1,
            expected.2 + totals.2,
        );
        ok(&["ingest", "--lake", "lake", &file], dir.path());
    }
    let trades = dir.path().join("lake/trades");
    let windows_before = windows_text(dir.path());
    let files_before = common::parquet_files(&trades).len();
    assert!(files_before >= 6, "{files_before}");

    let dry = ok(&["compact", "--lake", "lake", "--dry-run"], dir.path());
    assert!(stderr(&dry).contains("would become"), "{}", stderr(&dry));
    assert_eq!(
        common::parquet_files(&trades).len(),
        files_before,
        "a dry run changes nothing"
    );

    // Killed with the new folder built, before the swap; then just after it.
    for point in ["compact-before-swap", "compact-swapped"] {
        let out = darkpool()
            .args(["compact", "--lake", "lake", "--table", "trades"])
            .env("DARKPOOL_CRASH_AT", point)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: {}", stderr(&out));
        let (n, quantity, value) = parquet_totals(&trades);
        assert_eq!((n, quantity), (expected.0, expected.1), "{point}");
        assert!(close(value, expected.2), "{point}");
        assert_eq!(windows_text(dir.path()), windows_before, "{point}");
    }
    assert!(
        common::parquet_files(&trades).len() < files_before,
        "the swap before the kill stands"
    );
    commit_one_more_while_small(dir.path());
    let out = ok(&["compact", "--lake", "lake"], dir.path());
    let said = stderr(&out);
    assert!(said.contains("compacted lake"), "{said}");
    assert!(said.contains("windows"), "{said}");
    let per_day = common::parquet_files(&trades).len();
    let days = std::fs::read_dir(&trades).unwrap().count();
    assert_eq!(per_day, days, "one trades file a day: {said}");
    let (n, quantity, value) = parquet_totals(&trades);
    assert_eq!((n, quantity), (expected.0 + 1, expected.1 + 7));
    assert!(close(value, expected.2 + 7.0 * 10.0));
    assert!(
        std::fs::read_dir(dir.path().join("lake/_staging"))
            .unwrap()
            .next()
            .is_none(),
        "the killed compaction's staging is gone"
    );
    let again = ok(&["compact", "--lake", "lake"], dir.path());
    assert!(
        stderr(&again).contains("0 files became 0"),
        "{}",
        stderr(&again)
    );
    let bad = run(
        &["compact", "--lake", "lake", "--table", "orders"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("no table 'orders'"),
        "{}",
        stderr(&bad)
    );
}

/// One more trade committed into the lake after a compaction began: it must not be lost.
fn commit_one_more_while_small(dir: &Path) {
    ingest_stdin(
        dir,
        br#"{"timestamp":"2024-01-02T15:00:00","symbol":"ZZZ","price":10.0,"quantity":7,"venue":"LIT"}"#,
    );
}
