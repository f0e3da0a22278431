//! Real market-data formats through the real binary, on hand-made fixtures in
//! `tests/data/finra/` and `tests/data/taq_20240102.csv`: FINRA ATS weekly (API JSON and the
//! pipe download), Reg SHO short-sale volume and TAQ-style prints. Every expected number
//! below was worked out by hand from the fixture lines (the comments show the sums).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_darkpool"))
        .env_remove("DARKPOOL_LAKE")
        .env("DARKPOOL_LOG", "warn")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run darkpool")
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = run(args, dir);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "darkpool {args:?} failed: {err}");
    err
}

fn ingest(dir: &Path, inputs: &[String]) -> String {
    let mut args = vec!["ingest", "--lake", "lake", "--no-progress"];
    args.extend(inputs.iter().map(String::as_str));
    ok(&args, dir)
}

/// Rows of a query (SQL or a named query, with `--param`s) as JSON objects.
fn rows(dir: &Path, query: &str, params: &[&str]) -> Vec<Value> {
    let mut args = vec!["query", "--lake", "lake", "--format", "json", query];
    for p in params {
        args.extend(["--param", p]);
    }
    let out = run(&args, dir);
    assert!(
        out.status.success(),
        "query {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON rows")
}

/// One column of the rows, each value shown as text (numbers rounded to 6 decimals).
fn column(rows: &[Value], name: &str) -> Vec<String> {
    rows.iter()
        .map(|r| match &r[name] {
            Value::Number(n) if n.is_f64() => format!("{:.6}", n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => s.clone(),
            Value::Null => "NULL".into(),
            other => other.to_string(),
        })
        .collect()
}

fn ats_inputs() -> Vec<String> {
    vec![
        fixture("finra/ats_weekly_2024-01-08.txt"),
        fixture("finra/ats_weekly_api.json"),
    ]
}

fn regsho_inputs() -> Vec<String> {
    [
        "CNMSshvol20240102.txt",
        "CNMSshvol20240103.txt",
        "FNSQshvol20240102.txt",
        "FNYXshvol20240102.txt",
    ]
    .iter()
    .map(|f| fixture(&format!("finra/{f}")))
    .collect()
}

#[test]
fn finra_ats_weekly_loads_both_forms_and_keeps_the_latest_publication() {
    let dir = tempfile::tempdir().unwrap();
    let summary = ingest(dir.path(), &ats_inputs());
    assert!(
        summary.contains("ats_weekly_2024-01-08.txt (finra-ats -> ats_weekly): 8 records, 5 accepted, 3 rejected (bad_volume 1, missing_field 1, wrong_field_count 1)"),
        "{summary}"
    );
    assert!(
        summary.contains("ats_weekly_api.json (finra-ats -> ats_weekly): 9 records, 5 accepted, 4 rejected (bad_date 1, bad_volume 1, not_an_object 1, other_summary_type 1)"),
        "{summary}"
    );
    // Week 2024-01-08 came twice: AAPL/UBSA re-published (600,000 -> 700,000, lastUpdateDate
    // 2024-01-22 -> 2024-01-29) and AAPL/SGMA repeated unchanged. One row per key remains.
    let history = rows(
        dir.path(),
        "SELECT COUNT(*) AS n FROM ats_weekly_history",
        &[],
    );
    assert_eq!(column(&history, "n"), ["10"]);
    let share = rows(dir.path(), "ats_share_weekly", &[]);
    assert_eq!(share.len(), 8);
    // AAPL 01-08: 700k + 300k + 100k = 1.1M -> 7/11, 3/11, 1/11.
    assert_eq!(
        column(&share[..3], "mpid"),
        ["UBSA", "SGMA", "JPMX"],
        "{share:?}"
    );
    assert_eq!(
        column(&share[..3], "shares"),
        ["700000", "300000", "100000"]
    );
    assert_eq!(
        column(&share[..3], "ats_share"),
        ["0.636364", "0.272727", "0.090909"]
    );
    assert_eq!(column(&share[..1], "week_start"), ["2024-01-08"]);
    // UBSA: 700k + 200k + 500k = 1.4M of 2.8M; trades 3,500 + 1,000 + 2,500.
    let top = rows(dir.path(), "ats_top", &[]);
    assert_eq!(column(&top, "mpid"), ["UBSA", "SGMA", "INCR", "JPMX"]);
    assert_eq!(
        column(&top, "shares"),
        ["1400000", "800000", "500000", "100000"]
    );
    assert_eq!(column(&top, "trades"), ["7000", "3500", "7000", "800"]);
    assert_eq!(
        column(&top, "ats_share"),
        ["0.500000", "0.285714", "0.178571", "0.035714"]
    );
    // 800,000 / 3,500; 1,400,000 / 7,000; 100,000 / 800; 500,000 / 7,000.
    let size = rows(dir.path(), "ats_avg_trade_size", &[]);
    assert_eq!(column(&size, "mpid"), ["SGMA", "UBSA", "JPMX", "INCR"]);
    assert_eq!(
        column(&size, "avg_trade_size"),
        ["228.571429", "200.000000", "125.000000", "71.428571"]
    );
    // HHI: AAPL 01-08 = 10,000 x (49 + 9 + 1) / 121 = 4,876.03; two equal ATSs = 5,000.
    let hhi = rows(dir.path(), "ats_hhi", &[]);
    assert_eq!(
        column(&hhi, "hhi"),
        ["4876.033058", "5000.000000", "5000.000000", "10000.000000"]
    );
    // AAPL: 1.1M over 3 ATSs, then 1.0M over 2 (-1/11); the tie for first goes to SGMA by name.
    let trend = rows(dir.path(), "ats_symbol_trend", &["symbol=AAPL"]);
    assert_eq!(column(&trend, "shares"), ["1100000", "1000000"]);
    assert_eq!(column(&trend, "trades"), ["5800", "4500"]);
    assert_eq!(column(&trend, "ats_count"), ["3", "2"]);
    assert_eq!(column(&trend, "top_mpid"), ["UBSA", "SGMA"]);
    assert_eq!(column(&trend, "shares_change"), ["NULL", "-0.090909"]);
    // A bound parameter, never spliced: an injection-looking symbol matches nothing.
    assert!(rows(dir.path(), "ats_symbol_share", &["symbol=AAPL' OR '1'='1"]).is_empty());
    // The rejects keep the raw element and say why.
    let rejects = rows(
        dir.path(),
        "SELECT reason, detail, raw_text, source_line FROM rejects WHERE source_file LIKE '%api.json' ORDER BY source_line",
        &[],
    );
    assert_eq!(
        column(&rejects, "reason"),
        [
            "other_summary_type",
            "bad_date",
            "bad_volume",
            "not_an_object"
        ]
    );
    assert_eq!(column(&rejects, "source_line"), ["6", "7", "8", "9"]);
    assert!(column(&rejects, "detail")[1].contains("2024-01-17 is a Wednesday"));
    assert_eq!(column(&rejects, "raw_text")[3], "42");

    // Loading both again: the lake holds this content, nothing is counted twice.
    let again = ingest(dir.path(), &ats_inputs());
    assert!(again.contains("nothing new to ingest"), "{again}");
    assert_eq!(
        column(&rows(dir.path(), "ats_top", &[]), "shares")[0],
        "1400000"
    );
}

#[test]
fn finra_ats_pipe_files_take_the_week_from_the_name_or_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("finra/ats_weekly_2024-01-08.txt")).unwrap();
    std::fs::write(dir.path().join("ats.txt"), &text).unwrap();
    // No date in the name, no --week: refused up front, nothing written.
    let out = run(
        &[
            "ingest",
            "--lake",
            "lake",
            "--format",
            "finra-ats",
            "ats.txt",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("lacks weekStartDate") && err.contains("--week"),
        "{err}"
    );
    assert!(!dir.path().join("lake/ats_weekly").exists());
    // A week that is not a Monday is refused by the flag itself.
    let out = run(
        &[
            "ingest",
            "--lake",
            "lake",
            "--week",
            "2024-01-09",
            "ats.txt",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a Tuesday"));
    ok(
        &[
            "ingest",
            "--lake",
            "lake",
            "--week",
            "2024-01-15",
            "--format",
            "finra-ats",
            "ats.txt",
        ],
        dir.path(),
    );
    let weeks = rows(
        dir.path(),
        "SELECT DISTINCT CAST(week_start AS VARCHAR) AS w FROM ats_weekly",
        &[],
    );
    assert_eq!(column(&weeks, "w"), ["2024-01-15"]);
}

#[test]
fn reg_sho_files_load_check_their_trailer_and_reloads_replace_rows() {
    let dir = tempfile::tempdir().unwrap();
    let summary = ingest(dir.path(), &regsho_inputs());
    assert!(
        summary.contains("CNMSshvol20240102.txt (regsho -> short_volume): 4 records, 2 accepted, 2 rejected (bad_volume 2); trailer count 4 matches"),
        "{summary}"
    );
    assert!(
        summary.contains("FNSQshvol20240102.txt (regsho -> short_volume): 3 records, 2 accepted, 1 rejected (record_count_mismatch 1)"),
        "{summary}"
    );
    let facilities = rows(
        dir.path(),
        "SELECT facility, COUNT(*) AS n FROM short_volume GROUP BY facility ORDER BY facility",
        &[],
    );
    assert_eq!(column(&facilities, "facility"), ["CNMS", "FNSQ", "FNYX"]);
    assert_eq!(column(&facilities, "n"), ["4", "2", "2"]);
    // CNMS: AAPL 400/1,000 and 600/1,000; MSFT 300/1,200 and 500/1,000.
    let daily = rows(dir.path(), "short_ratio_daily", &[]);
    assert_eq!(
        column(&daily, "short_ratio"),
        ["0.400000", "0.250000", "0.600000", "0.500000"]
    );
    assert_eq!(column(&daily, "source"), ["CNMS"; 4]);
    // Rolling: AAPL (400 + 600) / 2,000; MSFT (300 + 500) / 2,200.
    let rolling = rows(dir.path(), "short_ratio_20d", &[]);
    assert_eq!(
        column(&rolling, "short_ratio_20d"),
        ["0.400000", "0.500000", "0.250000", "0.363636"]
    );
    // Facilities on 01-02 (CNMS left out): AAPL FNSQ 600 of 1,000 total, 250/600 short.
    let split = rows(dir.path(), "short_facility_split", &[]);
    assert_eq!(column(&split, "facility"), ["FNSQ", "FNYX", "FNSQ", "FNYX"]);
    assert_eq!(
        column(&split, "volume_share"),
        ["0.600000", "0.400000", "0.583333", "0.416667"]
    );
    assert_eq!(column(&split, "short_ratio")[0], "0.416667");

    // FINRA re-publishes 01-02 (AAPL 400 -> 450): the newest load wins, nothing doubles.
    let republished = ingest(
        dir.path(),
        &[fixture("finra/republished/CNMSshvol20240102.txt")],
    );
    assert!(republished.contains("2 accepted"), "{republished}");
    let daily = rows(dir.path(), "short_ratio_daily", &[]);
    assert_eq!(column(&daily, "short_volume")[0], "450.000000");
    assert_eq!(column(&daily, "total_volume")[0], "1000.000000");
    let history = rows(
        dir.path(),
        "SELECT COUNT(*) AS n FROM short_volume_history",
        &[],
    );
    assert_eq!(column(&history, "n"), ["10"]);
}

#[test]
fn taq_prints_land_in_trades_in_utc_with_corrections_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let summary = ingest(dir.path(), &[fixture("taq_20240102.csv")]);
    assert!(
        summary.contains("(taq -> trades): 14 records, 8 accepted, 4 rejected (bad_price 1, bad_quantity 1, bad_timestamp 1, wrong_field_count 1); excluded correction 2 (kept in rejects); flagged extended_hours 1, odd_lot 1"),
        "{summary}"
    );
    assert!(
        summary.contains("unknown venues (kept, kind 'unknown'): CBSX (1)"),
        "{summary}"
    );
    // 9:30:00 and 09:30:01.123456789 US/Eastern in January = 14:30 UTC; the nanoseconds are cut
    // to microseconds. D is FINRA's ADF/TRF: off-exchange.
    let first = rows(
        dir.path(),
        "SELECT CAST(\"timestamp\" AS VARCHAR) AS ts, venue, venue_kind, sale_condition, extended_hours FROM trades WHERE symbol = 'AAPL' ORDER BY \"timestamp\" LIMIT 2",
        &[],
    );
    assert_eq!(
        column(&first, "ts"),
        ["2024-01-02T14:30:00Z", "2024-01-02T14:30:01.123456Z"]
    );
    assert_eq!(column(&first, "venue"), ["XNAS", "FINR"]);
    assert_eq!(column(&first, "venue_kind"), ["lit", "otc"]);
    assert_eq!(column(&first, "extended_hours"), ["false", "false"]);
    let late_print = rows(
        dir.path(),
        "SELECT sale_condition, extended_hours FROM trades WHERE venue = 'ARCX'",
        &[],
    );
    assert_eq!(column(&late_print, "sale_condition"), ["T"]);
    assert_eq!(column(&late_print, "extended_hours"), ["true"]);
    // AAPL: 1,000 Q + 500 D + 50 N (odd lot) + 2,000 D + 300 P (form T) = 3,850; off-exchange
    // 2,500. The two CORR != 0 prints (700 each) are not in it. MSFT: 400 K + 600 D + 100 W.
    let share = rows(dir.path(), "off_exchange_share_daily", &[]);
    assert_eq!(column(&share, "trade_date"), ["2024-01-02", "2024-01-02"]);
    assert_eq!(column(&share, "symbol"), ["AAPL", "MSFT"]);
    assert_eq!(column(&share, "shares"), ["3850", "1100"]);
    assert_eq!(column(&share, "off_exchange_shares"), ["2500", "600"]);
    assert_eq!(
        column(&share, "off_exchange_share"),
        ["0.649351", "0.545455"]
    );
    assert_eq!(column(&share, "odd_lot_shares"), ["50", "0"]);
    assert_eq!(column(&share, "extended_hours_shares"), ["300", "0"]);
    assert_eq!(column(&share, "unknown_venue_shares"), ["0", "100"]);
    let excluded = rows(
        dir.path(),
        "SELECT source_line FROM rejects WHERE reason = 'correction' ORDER BY source_line",
        &[],
    );
    assert_eq!(column(&excluded, "source_line"), ["7", "8"]);
    // The prints make windows like any other trades.
    let windows = rows(dir.path(), "SELECT SUM(num_trades) AS n FROM windows", &[]);
    assert_eq!(column(&windows, "n"), ["8"]);
}

#[test]
fn dix_weights_short_ratios_by_the_days_dollar_volume() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = regsho_inputs();
    inputs.push(fixture("taq_20240102.csv"));
    ingest(dir.path(), &inputs);
    // VWAPs on 01-02 from the TAQ prints: AAPL 712,355 / 3,850 = 185.027273, MSFT 407,250 /
    // 1,100 = 370.227273. DIX = (400 x 185.03 + 300 x 370.23) / (1,000 x 185.03 + 1,200 x
    // 370.23) = 185,079.09 / 629,300 = 0.294103. 01-03 has no prices: no DIX, said so.
    let dix = rows(dir.path(), "dix", &["symbols=AAPL,MSFT"]);
    assert_eq!(column(&dix, "date"), ["2024-01-02", "2024-01-03"]);
    assert_eq!(column(&dix, "dix"), ["0.294103", "NULL"]);
    assert_eq!(column(&dix, "dollar_volume")[0], "629300.000000");
    assert_eq!(column(&dix, "symbols_priced"), ["2", "0"]);
    // One symbol: its own ratio.
    let aapl = rows(dir.path(), "dix", &["symbols=AAPL"]);
    assert_eq!(column(&aapl, "dix")[0], "0.400000");
}

#[test]
fn formats_are_detected_from_names_and_first_lines() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| -> PathBuf {
        let path = dir.path().join(to);
        std::fs::copy(fixture(from), &path).unwrap();
        path
    };
    // Names and extensions that say nothing: the first line decides.
    copy("finra/FNYXshvol20240102.txt", "short.txt");
    copy("taq_20240102.csv", "prints.txt");
    copy("finra/ats_weekly_api.json", "ats.data");
    let out = run(
        &[
            "ingest",
            "--lake",
            "lake",
            "--no-progress",
            "--facility",
            "fnyx",
            "short.txt",
            "prints.txt",
            "ats.data",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("short.txt (regsho -> short_volume)"), "{err}");
    assert!(err.contains("prints.txt (taq -> trades)"), "{err}");
    assert!(err.contains("ats.data (finra-ats -> ats_weekly)"), "{err}");
    // A Reg SHO file whose facility cannot be known is refused before anything is written.
    copy("finra/FNYXshvol20240102.txt", "other.txt");
    let out = run(&["ingest", "--lake", "lake2", "other.txt"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--facility"));
    assert!(!dir.path().join("lake2/short_volume").exists());
    // TAQ with a vendor's own column names.
    std::fs::write(
        dir.path().join("vendor.csv"),
        "TICKER,TRADE_DATE,TRADE_TIME,PRICE,SIZE,EXCH\nIBM,2024-07-01,09:30:00,160.5,200,D\n",
    )
    .unwrap();
    let out = run(
        &[
            "ingest",
            "--lake",
            "lake3",
            "--format",
            "taq",
            "--taq-columns",
            "symbol=TICKER,date=TRADE_DATE,time=TRADE_TIME,ex=EXCH",
            "vendor.csv",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            "query",
            "--lake",
            "lake3",
            "--format",
            "json",
            "SELECT CAST(\"timestamp\" AS VARCHAR) AS ts, venue_kind FROM trades",
        ],
        dir.path(),
    );
    let ibm: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    // July: US/Eastern is UTC-4.
    assert_eq!(column(&ibm, "ts"), ["2024-07-01T13:30:00Z"]);
    assert_eq!(column(&ibm, "venue_kind"), ["otc"]);
    // WRDS's daily TAQ splits class shares into SYM_ROOT and SYM_SUFFIX: Berkshire's A and B
    // shares stay two symbols (they had landed as one BRK, at prices 1,000x apart).
    let wrds = dir.path().join("wrds");
    std::fs::create_dir(&wrds).unwrap();
    std::fs::write(
        wrds.join("ctm_20240102.csv"),
        "DATE,TIME_M,EX,SYM_ROOT,SYM_SUFFIX,TR_SCOND,SIZE,PRICE,TR_CORR\n\
         2024-01-02,09:30:00.100,N,BRK,A,@,1,545000.00,00\n\
         2024-01-02,09:30:00.200,N,BRK,B,@,100,357.10,00\n\
         2024-01-02,09:30:00.300,Q,SPY,,@,100,472.65,00\n",
    )
    .unwrap();
    ingest(&wrds, &["ctm_20240102.csv".into()]);
    let symbols = rows(&wrds, "SELECT symbol FROM trades ORDER BY symbol", &[]);
    assert_eq!(column(&symbols, "symbol"), ["BRK.A", "BRK.B", "SPY"]);
}

#[test]
fn report_draws_the_finra_plots_from_a_lake_of_only_finra_tables() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = ats_inputs();
    inputs.extend(regsho_inputs());
    ingest(dir.path(), &inputs);
    let err = ok(&["report", "--lake", "lake", "--out", "plots"], dir.path());
    for name in ["12_ats_share", "13_short_ratio"] {
        let png = std::fs::read(dir.path().join(format!("plots/{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}");
        assert!(err.contains(&format!("{name}.png")), "{err}");
    }
    // No trades: the window plots are left out, not drawn empty.
    assert!(!dir.path().join("plots/01_value_by_venue.png").exists());
    let index = std::fs::read_to_string(dir.path().join("plots/index.html")).unwrap();
    assert!(index.contains("ATS market share by week"), "{index}");
}
