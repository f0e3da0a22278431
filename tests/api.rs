//! The HTTP API: the router called directly (no socket), over a lake of simulated trades, and
//! one end-to-end run of `darkpool serve` on port 0.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use darkpool::api::{router, ApiOptions, AppState};
use darkpool::engine::{Engine, EngineOptions};
use darkpool::ingest::{ingest_files, IngestOptions};
use darkpool::source::simulator::{self, Clock, SimConfig, SimFormat, DEFAULT_SYMBOLS};
use darkpool::time::parse_timestamp;
use darkpool::venue::Registry;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;
use common::{interrupt, interrupt_and_wait, start_serve, SmallDisk};

async fn lake(dir: &Path) -> PathBuf {
    let input = dir.join("trades.ndjson");
    let config = SimConfig {
        seed: 5,
        clock: Clock::Market(parse_timestamp("2024-01-02T09:30:00Z").unwrap()),
        symbols: DEFAULT_SYMBOLS.iter().map(|s| s.0.to_string()).collect(),
        market_rate: 10.0,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    simulator::write_trades(
        &config,
        &Registry::embedded(),
        SimFormat::Ndjson,
        Some(5_000),
        0.0,
        &mut out,
    )
    .unwrap();
    drop(out);
    let lake = dir.join("lake");
    let mut options = IngestOptions::new(&lake, vec![input]);
    options.progress = false;
    ingest_files(options).await.unwrap();
    lake
}

async fn app(lake: &Path, configure: impl FnOnce(&mut EngineOptions, &mut ApiOptions)) -> Router {
    let mut engine = EngineOptions::new(lake);
    let mut api = ApiOptions::default();
    configure(&mut engine, &mut api);
    router(AppState::new(Engine::open(engine).await.unwrap(), api))
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    /// Panics, showing the body, unless the body holds `text`.
    fn assert_says(&self, text: &str) {
        assert!(self.text().contains(text), "{}", self.text());
    }
    /// An error reply: JSON with `error` and `message`, and its status.
    fn error(&self) -> (StatusCode, String) {
        let body = self.json();
        assert!(body["message"].is_string(), "{body}");
        (self.status, body["error"].as_str().unwrap().to_string())
    }
}

async fn call(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_accept(app: &Router, uri: &str, accept: &str) -> Reply {
    call(
        app,
        Request::get(uri)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn post(app: &Router, uri: &str, accept: &str, body: &str) -> Reply {
    call(
        app,
        Request::post(uri)
            .header(header::ACCEPT, accept)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

fn arrow_rows(bytes: &[u8]) -> (Vec<String>, usize) {
    let reader = arrow::ipc::reader::StreamReader::try_new(bytes, None).unwrap();
    let names = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let rows = reader.map(|b| b.unwrap().num_rows()).sum();
    (names, rows)
}

async fn count(lake: &Path, sql: &str) -> i64 {
    let engine = Engine::open(EngineOptions::new(lake)).await.unwrap();
    let result = engine.sql(sql).await.unwrap();
    let batch = &result.batches[0];
    let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64).unwrap();
    use arrow::array::AsArray;
    column
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

#[tokio::test]
async fn heatmap_data_keeps_the_original_shape_and_kepler_files_load_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let windows = count(&lake, "SELECT COUNT(*) FROM windows").await;
    let app = app(&lake, |_, api| api.heatmap_rows = 100).await;

    let reply = get(&app, "/api/heatmap_data").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    let rows = reply.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len() as i64, windows.min(100));
    for field in [
        "window_start",
        "window_end",
        "symbol",
        "venue",
        "total_trade_value",
        "total_quantity",
        "num_trades",
        "latitude",
        "longitude",
    ] {
        assert!(rows[0].get(field).is_some(), "{field} missing: {}", rows[0]);
    }
    let starts: Vec<&str> = rows
        .iter()
        .map(|r| r["window_start"].as_str().unwrap())
        .collect();
    assert!(
        starts.iter().all(|s| s.len() == 19 && &s[10..11] == "T"),
        "{starts:?}"
    );
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "newest last");
    let newest = count(
        &lake,
        "SELECT CAST(MAX(window_start) AS BIGINT) FROM windows",
    )
    .await;
    assert_eq!(
        parse_timestamp(starts.last().unwrap()).unwrap(),
        newest,
        "the newest window is included"
    );
    assert!(rows[0]["total_quantity"].is_u64());

    // Kepler.gl files: no query string, readable timestamps, counts as doubles.
    let json = get(&app, "/api/heatmap_data.json").await.json();
    let first = &json.as_array().unwrap()[0];
    assert_eq!(&first["window_start"].as_str().unwrap()[10..11], " ");
    assert!(first["total_quantity"].is_f64(), "{first}");
    let csv = get(&app, "/api/heatmap_data.csv").await;
    assert!(csv.header("content-type").starts_with("text/csv"));
    let text = csv.text();
    assert!(
        text.starts_with("window_start,window_end,symbol,venue,"),
        "{text}"
    );
    assert_eq!(text.lines().count() as i64, windows.min(100) + 1);
    let arrow = get(&app, "/api/heatmap_data.arrow").await;
    assert_eq!(
        arrow.header("content-type"),
        "application/vnd.apache.arrow.stream"
    );
    let (names, n) = arrow_rows(&arrow.body);
    assert_eq!(n as i64, windows.min(100));
    assert!(names.contains(&"latitude".to_string()));

    let map = get(&app, "/api/kepler/map.json").await.json();
    assert_eq!(map["info"]["app"], "kepler.gl");
    let layer = &map["config"]["config"]["visState"]["layers"][0];
    assert_eq!(layer["type"], "point");
    assert_eq!(layer["config"]["columns"]["lat"], "latitude");
    assert_eq!(layer["visualChannels"]["sizeField"]["name"], "total_value");
    assert_eq!(layer["visualChannels"]["colorField"]["name"], "dark_share");
    let filter = &map["config"]["config"]["visState"]["filters"][0];
    assert_eq!(filter["name"][0], "window_start");
    let data = &map["datasets"][0]["data"];
    let fields: Vec<&str> = data["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let value_at = fields.iter().position(|f| *f == "total_value").unwrap();
    let mapped: f64 = data["allData"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[value_at].as_f64().unwrap())
        .sum();
    let heatmap: f64 = rows
        .iter()
        .map(|r| r["total_trade_value"].as_f64().unwrap())
        .sum();
    assert!(
        (mapped - heatmap).abs() < 1e-6 * heatmap,
        "{mapped} vs {heatmap}"
    );
}

#[tokio::test]
async fn sql_answers_in_every_negotiated_format_with_bound_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let trades = count(&lake, "SELECT COUNT(*) FROM trades").await;
    let app = app(&lake, |_, _| {}).await;
    let sql = "SELECT venue, COUNT(*) AS n FROM trades GROUP BY venue ORDER BY venue";
    let venues = count(&lake, "SELECT COUNT(DISTINCT venue) FROM trades").await as usize;

    let json = post(&app, "/api/sql", "application/json", sql).await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.header("x-darkpool-rows"), venues.to_string());
    let rows = json.json();
    let total: i64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .sum();
    assert_eq!(total, trades);

    let ndjson = post(&app, "/api/sql", "application/x-ndjson", sql).await;
    assert_eq!(ndjson.text().lines().count(), venues);
    let csv = post(&app, "/api/sql", "text/csv", sql).await;
    assert_eq!(csv.text().lines().next(), Some("venue,n"));
    let (_, n) = arrow_rows(
        &post(&app, "/api/sql", "application/vnd.apache.arrow.stream", sql)
            .await
            .body,
    );
    assert_eq!(n, venues);
    let parquet = post(&app, "/api/sql?format=parquet", "application/json", sql).await;
    assert_eq!(
        parquet.header("content-type"),
        "application/vnd.apache.parquet"
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        axum::body::Bytes::from(parquet.body.clone()),
    )
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), venues);

    let bound = call(
        &app,
        Request::post("/api/sql")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"sql": "SELECT COUNT(*) AS n FROM trades WHERE symbol = $1 AND quantity >= $2", "params": ["SYNTH_SPY", 100]}"#,
            ))
            .unwrap(),
    )
    .await;
    let expected = count(
        &lake,
        "SELECT COUNT(*) FROM trades WHERE symbol = 'SYNTH_SPY' AND quantity >= 100",
    )
    .await;
    assert_eq!(bound.json()[0]["n"].as_i64(), Some(expected));
    // A parameter is a value, never SQL.
    let injected = call(
        &app,
        Request::post("/api/sql")
            .body(Body::from(
                r#"{"sql": "SELECT COUNT(*) AS n FROM trades WHERE symbol = $1", "params": ["x' OR '1'='1"]}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(injected.json()[0]["n"].as_i64(), Some(0));

    let named = get(&app, "/api/queries/venue_summary?format=csv").await;
    assert_eq!(named.status, StatusCode::OK);
    assert_eq!(named.text().lines().count(), venues + 1);
    // A misspelt parameter is named, with what the query takes (it had been ignored).
    let misspelt = get(&app, "/api/queries/short_ratio_symbol?symbl=SYNTH_SPY").await;
    assert_eq!(
        misspelt.status,
        StatusCode::BAD_REQUEST,
        "{}",
        misspelt.text()
    );
    misspelt.assert_says("unknown parameter(s) symbl: the query takes $symbol");
    let extra = get(&app, "/api/queries/venue_summary?symbol=SYNTH_SPY").await;
    extra.assert_says("unknown parameter(s) symbol: the query takes none");
    let list = get(&app, "/api/queries").await.json();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "dark_lit_share"));

    let summary = get(&app, "/api/summary?symbol=SYNTH_SPY").await.json();
    let spy = count(
        &lake,
        "SELECT COUNT(*) FROM trades WHERE symbol = 'SYNTH_SPY'",
    )
    .await;
    assert_eq!(summary[0]["num_trades"].as_i64(), Some(spy));
    let all = get(&app, "/api/summary").await.json();
    assert_eq!(all[0]["num_trades"].as_i64(), Some(trades));
    let symbols = get_accept(&app, "/api/symbols", "text/csv").await.text();
    assert_eq!(symbols.lines().count(), 9);
    let venues_reply = get(&app, "/api/venues").await.json();
    assert!(venues_reply
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["code"] == "DARK1"));
}

// Two worker threads, as `serve` has on two cores: a query's task can then hold one while
// the timeout answers from the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_a_json_error_with_the_right_status_and_no_500() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let app = app(&lake, |engine, api| {
        engine.timeout = Duration::from_millis(200);
        api.max_body_bytes = 4096;
    })
    .await;
    let target = dir.path().join("stolen.parquet");
    let cases: Vec<(Reply, StatusCode, &str)> = vec![
        (
            post(&app, "/api/sql", "application/json", "DROP TABLE trades").await,
            StatusCode::FORBIDDEN,
            "refused",
        ),
        (
            post(
                &app,
                "/api/sql",
                "application/json",
                &format!("COPY (SELECT 1) TO '{}'", target.display()),
            )
            .await,
            StatusCode::FORBIDDEN,
            "refused",
        ),
        (
            post(
                &app,
                "/api/sql",
                "application/json",
                "SELECT * FROM '/etc/passwd'",
            )
            .await,
            StatusCode::FORBIDDEN,
            "refused",
        ),
        (
            post(&app, "/api/sql", "application/json", "SELEC 1").await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        // About 9 GB a row: refused before it is built (it aborted the server).
        (
            post(
                &app,
                "/api/sql",
                "application/json",
                "SELECT repeat(symbol, 1000000000) FROM trades",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post(
                &app,
                "/api/sql",
                "application/json",
                "SELECT nope FROM trades",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post(&app, "/api/sql", "application/json", "").await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post(&app, "/api/sql", "application/json", "{\"sql\": 5}").await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post(&app, "/api/sql", "application/json", "{not json").await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post(&app, "/api/sql", "image/png", "SELECT 1").await,
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
        ),
        (
            post(&app, "/api/sql?format=xml", "application/json", "SELECT 1").await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post(&app, "/api/sql", "application/json", &"x".repeat(10_000)).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            post(
                &app,
                "/api/sql",
                "application/json",
                "SELECT COUNT(*) FROM generate_series(1, 100000000000) a",
            )
            .await,
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
        ),
        // One expression that keeps a thread busy with nothing to await inside (0.4 GB of
        // text): the timeout answers anyway (it had waited for the expression, then returned
        // its result).
        (
            post(
                &app,
                "/api/sql",
                "application/json",
                "SELECT length(repeat('x', 400000000)) AS n",
            )
            .await,
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
        ),
        (
            get(&app, "/api/queries/no_such_query").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get(&app, "/api/nothing/here").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            get(&app, "/elsewhere").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (i, (reply, status, code)) in cases.iter().enumerate() {
        assert_eq!(
            reply.error(),
            (*status, code.to_string()),
            "case {i}: {}",
            reply.text()
        );
    }
    assert!(!target.exists(), "COPY must not write");
    let bad_utf8 = call(
        &app,
        Request::post("/api/sql")
            .body(Body::from(vec![0xff, 0xfe]))
            .unwrap(),
    )
    .await;
    assert_eq!(bad_utf8.error().0, StatusCode::BAD_REQUEST);
    // A path with the wrong method: a JSON error like the others, naming the request's own
    // path, and the Allow header.
    let wrong_method = get(&app, "/api/sql").await;
    assert_eq!(
        wrong_method.error(),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    assert_eq!(wrong_method.header("allow"), "POST");
    wrong_method.assert_says(r#""message":"GET is not taken by /api/sql"#);
    let missing = get(&app, "/api/nothing/here").await;
    missing.assert_says("no such resource: /api/nothing/here");
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let trades = count(&lake, "SELECT COUNT(*) FROM trades").await;
    let app = app(&lake, |_, _| {}).await;
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/readyz").await.status, StatusCode::OK);
    post(&app, "/api/sql", "application/json", "SELECT 1").await;
    post(&app, "/api/sql", "application/json", "SELEC 1").await;
    let metrics = get(&app, "/metrics").await;
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let text = metrics.text();
    assert!(
        text.contains(&format!("darkpool_trades_ingested {trades}\n")),
        "{text}"
    );
    assert!(text.contains("darkpool_queries_total 2\n"), "{text}");
    assert!(text.contains("darkpool_query_errors_total 1\n"), "{text}");
    let doc = get(&app, "/api/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/heatmap_data",
        "/api/sql",
        "/api/kepler/map.json",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
}

#[tokio::test]
async fn serve_no_ingest_listens_on_port_0_and_answers_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path()).await;
    let (mut child, address) = start_serve(dir.path(), &["--no-ingest"]);
    let health = http_get(&address, "/healthz");
    let heatmap = http_get(&address, "/api/heatmap_data");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(heatmap.starts_with("HTTP/1.1 200"), "{heatmap}");
    assert!(
        heatmap.contains("\"window_start\":\"2024-01-02T09:30:00\""),
        "{heatmap}"
    );
}

/// The lake's windows equal the batch window aggregate over its trades, none is left open,
/// and every trade is in a window. Returns the number of trades.
async fn assert_windows_match_trades(lake: &Path, window: &str) -> i64 {
    let trades = count(lake, "SELECT COUNT(*) FROM trades").await;
    let mut options = EngineOptions::new(lake);
    options.window = darkpool::window::WindowSpec::parse(window, None, "0s").unwrap();
    let engine = Engine::open(options).await.unwrap();
    let batch_sql = engine.named_sql("window_aggregate").unwrap();
    let number = |sql: String| {
        let engine = &engine;
        async move {
            let result = engine.sql(&sql).await.unwrap();
            let column = arrow::compute::cast(
                result.batches[0].column(0),
                &arrow::datatypes::DataType::Int64,
            )
            .unwrap();
            use arrow::array::AsArray;
            column
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0)
        }
    };
    assert_eq!(
        number("SELECT SUM(num_trades) FROM windows".into()).await,
        trades
    );
    assert_eq!(
        number("SELECT COUNT(*) FROM windows WHERE NOT is_final".into()).await,
        0
    );
    let aggregate = format!("({batch_sql})");
    for (a, b) in [
        ("windows", aggregate.as_str()),
        (aggregate.as_str(), "windows"),
    ] {
        let differ = format!(
            "SELECT COUNT(*) FROM (SELECT window_start, symbol, venue, num_trades, total_quantity FROM {a} \
             EXCEPT SELECT window_start, symbol, venue, num_trades, total_quantity FROM {b})"
        );
        assert_eq!(
            number(differ).await,
            0,
            "streaming windows differ from the batch aggregate"
        );
    }
    trades
}

/// Read an HTTP response's bytes until `needle` appears or `deadline` passes.
fn read_until(stream: &mut std::net::TcpStream, needle: &str, deadline: Duration) -> String {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while started.elapsed() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn serve_runs_the_simulated_pipeline_streams_windows_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = start_serve(
        dir.path(),
        &[
            "--rate",
            "400",
            "--commit-every",
            "1s",
            "--window",
            "1s",
            "--allowed-lateness",
            "0s",
        ],
    );
    // Live updates: closed windows arrive on the event stream.
    let mut sse = std::net::TcpStream::connect(&address).unwrap();
    write!(sse, "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let events = read_until(&mut sse, "event: window", Duration::from_secs(20));
    assert!(events.contains("text/event-stream"), "{events}");
    assert!(
        events.contains("event: status\ndata: {\"live\":true,\"pipeline\":\"running\"}"),
        "{events}"
    );
    assert!(
        events.contains("event: window\ndata: [{\"window_start\":"),
        "{events}"
    );
    // The API shows windows (open ones included) before the first minute is over.
    std::thread::sleep(Duration::from_millis(2500));
    let heatmap = http_get(&address, "/api/heatmap_data");
    let body = heatmap.split("\r\n\r\n").nth(1).unwrap_or_default();
    let rows: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    assert!(rows.as_array().is_some_and(|r| !r.is_empty()), "{heatmap}");
    // Its event-time watermark is a metric (Unix seconds); no Kafka, so nothing paused.
    let metrics = http_get(&address, "/metrics");
    let watermark: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("darkpool_live_watermark_seconds "))
        .unwrap_or_else(|| panic!("no watermark in {metrics}"))
        .parse()
        .unwrap();
    assert!(
        watermark > 946_684_800.0,
        "a watermark after 2000: {watermark}"
    );
    assert!(
        metrics.contains("\ndarkpool_live_paused_partitions 0\n"),
        "{metrics}"
    );
    // Ctrl-C: the pipeline commits what it holds and closes its open windows.
    interrupt(&mut child);
    drop(sse);
    let trades = assert_windows_match_trades(&dir.path().join("lake"), "1s").await;
    assert!(trades > 100, "{trades} trades");
    assert!(!dir
        .path()
        .join("lake/_staging")
        .read_dir()
        .unwrap()
        .any(|_| true));
}

#[tokio::test]
async fn a_lake_file_that_is_not_parquet_any_more_is_a_500_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let day = lake.join("trades/date=2024-01-02");
    let file = std::fs::read_dir(&day)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    // Cut short, as an interrupted copy leaves it.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let api = app(&lake, |_, _| {}).await;
    let reply = post(
        &api,
        "/api/sql",
        "application/json",
        "SELECT SUM(quantity) FROM trades",
    )
    .await;
    assert_eq!(
        reply.error(),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal".into())
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    reply.assert_says(name);
    reply.assert_says("not readable Parquet");
    // The tables it is not in still answer.
    let windows = post(
        &api,
        "/api/sql",
        "application/json",
        "SELECT COUNT(*) AS n FROM windows",
    )
    .await;
    assert_eq!(windows.status, StatusCode::OK, "{}", windows.text());
    // Moved out of the lake, the rest of the trades can be queried.
    std::fs::rename(&file, dir.path().join("moved.parquet")).unwrap();
    let api = app(&lake, |_, _| {}).await;
    let reply = post(
        &api,
        "/api/sql",
        "application/json",
        "SELECT COUNT(*) AS n FROM trades",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

/// A plain `GET` over TCP; the whole response, status line first.
fn http_get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[tokio::test]
async fn serve_whose_disk_fills_up_says_its_pipeline_stopped_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // The lake on a filesystem of 1 MiB: a second of the live trades' spool fills it.
    let Some(disk) = SmallDisk::mount(&dir.path().join("lake"), "1m") else {
        return;
    };
    // Told not to wait for room (by default it would: the next test).
    let (mut child, address) = start_serve(
        dir.path(),
        &[
            "--rate",
            "4000",
            "--commit-every",
            "500ms",
            "--retry-for",
            "0s",
        ],
    );
    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"pipeline\":\"running\""), "{health}");
    assert!(http_get(&address, "/metrics").contains("\ndarkpool_live_running 1\n"));
    // The event stream says so when the pipeline stops.
    let mut sse = std::net::TcpStream::connect(&address).unwrap();
    write!(sse, "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let events = read_until(&mut sse, "\"pipeline\":\"failed\"", Duration::from_secs(30));
    assert!(
        events.contains("event: status\ndata: {\"live\":true,\"pipeline\":\"running\"}"),
        "{events}"
    );
    let failed = events
        .lines()
        .find(|l| l.contains("\"pipeline\":\"failed\""))
        .unwrap_or_else(|| panic!("no failed status within 30 s: {events}"));
    assert!(failed.contains("No space left on device"), "{failed}");
    // A liveness check sees it; the lake is still served.
    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    let body: Value = serde_json::from_str(health.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["pipeline"], "failed");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left on device")),
        "{body}"
    );
    assert!(http_get(&address, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&address, "/api/heatmap_data").starts_with("HTTP/1.1 200"));
    assert!(http_get(&address, "/metrics").contains("\ndarkpool_live_running 0\n"));
    // Ctrl-C: the server stops, its exit saying the pipeline failed; no staging file is left
    // to fill the disk.
    let exit = interrupt_and_wait(&mut child);
    drop(sse);
    assert!(!exit.success(), "{exit:?}");
    let lake = dir.path().join("lake");
    assert!(common::unlogged_staging(&lake).is_empty());
    // With room again, a restart rebuilds the windows the failure left open and goes on.
    disk.grow("64m");
    let (mut child, _) = start_serve(dir.path(), &["--rate", "400", "--commit-every", "500ms"]);
    std::thread::sleep(Duration::from_millis(2000));
    interrupt(&mut child);
    let trades = assert_windows_match_trades(&lake, "5m").await;
    assert!(trades > 100, "{trades} trades");
}

#[tokio::test]
async fn serve_waits_out_a_full_disk_and_goes_on_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("lake"), "1m") else {
        return;
    };
    let lake = dir.path().join("lake");
    let (mut child, address) =
        start_serve(dir.path(), &["--rate", "4000", "--commit-every", "500ms"]);
    let mut sse = std::net::TcpStream::connect(&address).unwrap();
    write!(sse, "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let needle = "\"pipeline\":\"restarting\"";
    let events = read_until(&mut sse, needle, Duration::from_secs(30));
    let restarting = events
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no restarting status within 30 s: {events}"));
    assert!(
        restarting.contains("No space left on device"),
        "{restarting}"
    );
    assert!(
        restarting.contains("\"restart_in_seconds\":1"),
        "{restarting}"
    );
    // The server is doing what a restart would: a liveness check leaves it be.
    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(&address, "/metrics");
    let restarts: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("darkpool_live_restarts_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no restarts counter: {metrics}"));
    assert!(restarts >= 1, "{metrics}");
    // Room again: the next try goes on, and the lake grows.
    let before = count(&lake, "SELECT COUNT(*) FROM trades").await;
    disk.grow("64m");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while count(&lake, "SELECT COUNT(*) FROM trades").await < before + 4000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no trades landed after the disk grew"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let health = http_get(&address, "/healthz");
    assert!(health.contains("\"pipeline\":\"running\""), "{health}");
    let metrics = http_get(&address, "/metrics");
    assert!(metrics.contains("\ndarkpool_live_running 1\n"));
    // Its trade counter counts what landed: never more than the lake holds (read after it),
    // though the failed runs read some trades more than once.
    let counted: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("darkpool_live_trades_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no trades counter: {metrics}"));
    let landed = count(&lake, "SELECT COUNT(*) FROM trades").await;
    assert!(
        before < counted && counted <= landed,
        "counted {counted}, landed {landed} (before the disk grew {before})"
    );
    drop(sse);
    // Ctrl-C ends it well; the windows hold every trade the lake holds, the failed runs' ones
    // not among them.
    interrupt(&mut child);
    assert!(!lake.join("_staging").read_dir().unwrap().any(|_| true));
    let trades = assert_windows_match_trades(&lake, "5m").await;
    assert!(trades > before, "{trades} trades");
}

/// `serve` for the crash tests: quick trades, commits and (two-second) windows, no lateness.
const CRASHING_SERVE: [&str; 8] = [
    "--rate",
    "300",
    "--commit-every",
    "500ms",
    "--window",
    "2s",
    "--allowed-lateness",
    "0s",
];

#[tokio::test]
async fn serve_rebuilds_the_windows_a_crash_left_open() {
    let dir = tempfile::tempdir().unwrap();
    let args = CRASHING_SERVE;
    serve_then_kill(dir.path(), &args, 3500);
    let lake = dir.path().join("lake");
    let landed = count(&lake, "SELECT COUNT(*) FROM trades").await;
    let windowed = count(&lake, "SELECT COALESCE(SUM(num_trades), 0) FROM windows").await;
    assert!(
        landed > windowed,
        "the crash should leave trades in open windows ({landed} vs {windowed})"
    );
    serve_then_interrupt(dir.path(), &args, 1500);
    let trades = assert_windows_match_trades(&lake, "2s").await;
    assert!(trades > landed);
}

/// `serve --no-ingest` over a lake whose writer died with windows open shows those windows
/// (not final, version 1) from the trades the lake holds: its windows add up to every trade
/// landed, and with the lake's final windows they are the batch aggregate over its trades.
#[tokio::test]
async fn serve_no_ingest_shows_the_windows_no_process_has_emitted() {
    follower_shows_every_trade(&CRASHING_SERVE, None, 1).await;
}

/// The same for hopping windows: each trade is in the four windows of 2 s every 500 ms.
#[tokio::test]
async fn serve_no_ingest_shows_the_hopping_windows_no_process_has_emitted() {
    let args = [&CRASHING_SERVE[..], &["--slide", "500ms"]].concat();
    follower_shows_every_trade(&args, Some("500ms"), 4).await;
}

async fn follower_shows_every_trade(writer: &[&str], slide: Option<&str>, hops: i64) {
    let dir = tempfile::tempdir().unwrap();
    serve_then_kill(dir.path(), writer, 3500);
    let lake = dir.path().join("lake");
    let landed = count(&lake, "SELECT COUNT(*) FROM trades").await;
    let windowed = count(&lake, "SELECT COALESCE(SUM(num_trades), 0) FROM windows").await;
    assert!(
        landed * hops > windowed,
        "open windows were left ({landed} trades, {windowed} in windows)"
    );
    let (mut follower, address) = start_serve(dir.path(), &["--no-ingest"]);
    let mut sse = std::net::TcpStream::connect(&address).unwrap();
    write!(sse, "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let events = read_until(&mut sse, "event: open", Duration::from_secs(30));
    assert!(events.contains("\"following\":true"), "{events}");
    assert!(events.contains("event: open"), "{events}");
    let reply = http_get(&address, "/api/heatmap_data");
    interrupt(&mut follower);
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"));
    let shown: i64 = rows.iter().map(|r| r["num_trades"].as_i64().unwrap()).sum();
    assert_eq!(
        shown,
        landed * hops,
        "every landed trade is in its windows shown"
    );
    let open: Vec<_> = rows.iter().filter(|r| r["is_final"] == false).collect();
    assert!(!open.is_empty());
    assert!(open.iter().all(|r| r["version"] == 1), "{open:?}");
    // The same rows from the engine, against the batch aggregate over the lake's trades.
    let mut options = EngineOptions::new(&lake);
    options.window = darkpool::window::WindowSpec::parse("2s", slide, "0s").unwrap();
    let engine = Engine::open(options).await.unwrap();
    engine
        .set_followed_windows(engine.unemitted_windows().await.unwrap())
        .await
        .unwrap();
    let aggregate = format!("({})", engine.named_sql("window_aggregate").unwrap());
    let shown = "(SELECT * EXCLUDE (date) FROM windows UNION ALL SELECT * FROM live_windows)";
    let columns =
        "window_start, window_end, symbol, venue, num_trades, total_quantity, block_trades";
    for (a, b) in [(shown, aggregate.as_str()), (aggregate.as_str(), shown)] {
        let differ = format!(
            "SELECT COUNT(*) FROM (SELECT {columns} FROM {a} EXCEPT ALL SELECT {columns} FROM {b})"
        );
        let result = engine.sql(&differ).await.unwrap();
        use arrow::array::AsArray;
        let n = result.batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(n, 0, "shown windows differ from the batch aggregate");
    }
}

/// `serve` with `args` for `ms`, then SIGKILL: no chance to close anything.
fn serve_then_kill(dir: &Path, args: &[&str], ms: u64) {
    let (mut child, _) = start_serve(dir, args);
    std::thread::sleep(Duration::from_millis(ms));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `serve` with `args` for `ms`, then Ctrl-C: it commits and closes its open windows.
fn serve_then_interrupt(dir: &Path, args: &[&str], ms: u64) {
    let (mut child, _) = start_serve(dir, args);
    std::thread::sleep(Duration::from_millis(ms));
    interrupt(&mut child);
}

#[tokio::test]
async fn serve_rebuilds_hopping_windows_a_crash_left_open_with_all_their_trades() {
    let dir = tempfile::tempdir().unwrap();
    // Two-second windows every half second: a window open at the crash began up to 1.5 s
    // before the end of its key's last emitted window.
    let args = [&CRASHING_SERVE[..], &["--slide", "500ms"]].concat();
    serve_then_kill(dir.path(), &args, 3500);
    let lake = dir.path().join("lake");
    assert!(count(&lake, "SELECT COUNT(*) FROM windows").await > 0);
    serve_then_interrupt(dir.path(), &args, 1500);
    let spec = darkpool::window::WindowSpec::parse("2s", Some("500ms"), "0s").unwrap();
    common::oracle::assert_streaming_equals_batch(&lake, spec).await;
}

/// Per symbol: (trades, traded value, block prints), straight from the input file.
fn input_totals(dir: &Path) -> std::collections::BTreeMap<String, (i64, f64, i64)> {
    let mut totals = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("trades.ndjson"))
        .unwrap()
        .lines()
    {
        let t: Value = serde_json::from_str(line).unwrap();
        let quantity = t["quantity"].as_i64().unwrap();
        let value = t["trade_value"].as_f64().unwrap();
        let entry = totals
            .entry(t["symbol"].as_str().unwrap().to_string())
            .or_insert((0, 0.0, 0));
        entry.0 += 1;
        entry.1 += value;
        entry.2 += i64::from(quantity >= 10_000 || value >= 200_000.0);
    }
    totals
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn dashboard_document_agrees_with_the_input_trades() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let app = app(&lake, |_, _| {}).await;
    let expected = input_totals(dir.path());
    let all_trades: i64 = expected.values().map(|t| t.0).sum();
    let all_value: f64 = expected.values().map(|t| t.1).sum();

    let all = get(&app, "/api/dashboard").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    let d = all.json();
    assert_eq!(d["symbol"], Value::Null);
    assert_eq!(d["live"], false);
    assert!(
        d.get("pipeline").is_none(),
        "no pipeline, no pipeline figures"
    );
    let s = &d["summary"];
    assert_eq!(s["num_trades"].as_i64().unwrap(), all_trades);
    assert!(close(s["total_value"].as_f64().unwrap(), all_value));
    assert_eq!(s["symbols"].as_i64().unwrap(), expected.len() as i64);
    // Venue rows add up to the summary; shares add up to one; average size is shares/trades.
    let venues = d["venues"].as_array().unwrap();
    let venue_trades: i64 = venues
        .iter()
        .map(|v| v["num_trades"].as_i64().unwrap())
        .sum();
    assert_eq!(venue_trades, all_trades);
    let share: f64 = venues
        .iter()
        .map(|v| v["value_share"].as_f64().unwrap())
        .sum();
    assert!(close(share, 1.0));
    for v in venues {
        let avg = v["total_quantity"].as_f64().unwrap() / v["num_trades"].as_f64().unwrap();
        assert!(close(v["avg_trade_size"].as_f64().unwrap(), avg), "{v}");
    }
    // Each window's kinds add up to its total; the series covers every trade (under 288 windows).
    let by_kind = d["by_kind"].as_array().unwrap();
    let mut series_trades = 0;
    for w in by_kind {
        let parts: f64 = ["dark", "lit", "otc", "unknown"]
            .iter()
            .map(|k| w[*k].as_f64().unwrap())
            .sum();
        assert!(close(parts, w["total"].as_f64().unwrap()), "{w}");
        series_trades += w["trades"].as_i64().unwrap();
    }
    assert!(by_kind.len() < 288);
    assert_eq!(series_trades, all_trades);
    let ts: Vec<&str> = by_kind.iter().map(|w| w["t"].as_str().unwrap()).collect();
    assert!(
        ts.windows(2).all(|p| p[0] < p[1]),
        "series not in time order"
    );
    let by_venue_value: f64 = d["by_venue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .sum();
    assert!(close(by_venue_value, all_value));
    let site_value: f64 = d["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["total_value"].as_f64().unwrap())
        .sum();
    assert!(
        close(site_value, all_value),
        "every registry venue has a site"
    );
    // Blocks: newest first, all blocks, as many as the input has (up to 50).
    let blocks = d["blocks"].as_array().unwrap();
    let all_blocks: i64 = expected.values().map(|t| t.2).sum();
    assert_eq!(blocks.len() as i64, all_blocks.min(50));
    let times: Vec<&str> = blocks.iter().map(|b| b["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|p| p[0] >= p[1]));

    // One symbol: its own figures, bound as a parameter (a quote in it is just text).
    let (symbol, (trades, value, symbol_blocks)) = expected.iter().next().unwrap();
    let one = get(&app, &format!("/api/dashboard?symbol={symbol}"))
        .await
        .json();
    assert_eq!(one["symbol"], symbol.as_str());
    assert_eq!(one["summary"]["num_trades"].as_i64().unwrap(), *trades);
    assert!(close(
        one["summary"]["total_value"].as_f64().unwrap(),
        *value
    ));
    assert_eq!(
        one["blocks"].as_array().unwrap().len() as i64,
        (*symbol_blocks).min(50)
    );
    assert!(one["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["symbol"] == symbol.as_str()));
    let nobody = get(&app, "/api/dashboard?symbol=X'%20OR%20'1'='1").await;
    assert_eq!(nobody.status, StatusCode::OK);
    assert_eq!(nobody.json()["summary"]["num_trades"], 0);
    assert!(nobody.json()["venues"].as_array().unwrap().is_empty());
}

/// `/api/metrics`' query counter, to see whether a request ran SQL.
async fn queries_run(app: &Router) -> i64 {
    let text = get(app, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("darkpool_queries_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn hot_reads_are_cached_for_the_ttl_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let cached = app(&lake, |_, api| api.cache_ttl = Duration::from_secs(60)).await;
    let before = queries_run(&cached).await;
    let first = get(&cached, "/api/heatmap_data").await;
    let second = get(&cached, "/api/heatmap_data").await;
    assert_eq!(first.body, second.body);
    assert_eq!(
        first.header("x-darkpool-rows"),
        second.header("x-darkpool-rows")
    );
    get(&cached, "/api/dashboard").await;
    get(&cached, "/api/dashboard").await;
    // One query for heatmap_data, six for the dashboard's sections; the repeats ran none.
    assert_eq!(queries_run(&cached).await - before, 1 + 6);
    // Another format or symbol is another entry.
    get(&cached, "/api/heatmap_data.csv").await;
    get(&cached, "/api/dashboard?symbol=SYNTH_SPY").await;
    assert_eq!(queries_run(&cached).await - before, 1 + 6 + 1 + 6);

    // Past the ttl the next request rebuilds the entry.
    let short = app(&lake, |_, api| api.cache_ttl = Duration::from_millis(200)).await;
    let before = queries_run(&short).await;
    get(&short, "/api/heatmap_data").await;
    get(&short, "/api/heatmap_data").await;
    assert_eq!(queries_run(&short).await - before, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    get(&short, "/api/heatmap_data").await;
    assert_eq!(queries_run(&short).await - before, 2);

    let uncached = app(&lake, |_, api| api.cache_ttl = Duration::ZERO).await;
    let before = queries_run(&uncached).await;
    get(&uncached, "/api/heatmap_data").await;
    get(&uncached, "/api/heatmap_data").await;
    assert_eq!(queries_run(&uncached).await - before, 2);
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir.path().join("lake"), |_, _| {}).await;
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .contains("default-src 'self'"));
    let html = page.text();
    for asset in ["app.css", "app.js", "chart.umd.min.js", "favicon.svg"] {
        assert!(html.contains(&format!("/assets/{asset}")), "{asset}");
        let reply = get(&app, &format!("/assets/{asset}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert!(reply.body.len() > 200, "{asset}");
    }
    assert!(!html.contains("cdn"), "no CDN at run time");
    assert!(get(&app, "/assets/app.js")
        .await
        .header("content-type")
        .starts_with("text/javascript"));
    let missing = get(&app, "/assets/../Cargo.toml").await;
    assert_eq!(missing.error().0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/assets/nope.js").await.error().0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn hot_reads_are_gzipped_for_clients_that_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path()).await;
    let app = app(&lake, |_, _| {}).await;
    let with = |encoding: &'static str, uri: &'static str| {
        Request::get(uri)
            .header(header::ACCEPT_ENCODING, encoding)
            .body(Body::empty())
            .unwrap()
    };
    for uri in [
        "/api/heatmap_data",
        "/api/heatmap_data.csv",
        "/api/dashboard",
    ] {
        let plain = get(&app, uri).await;
        assert_eq!(plain.header("content-encoding"), "");
        let zipped = call(&app, with("br, gzip;q=0.8", uri)).await;
        assert_eq!(zipped.status, StatusCode::OK);
        assert_eq!(zipped.header("content-encoding"), "gzip", "{uri}");
        assert_eq!(zipped.header("vary"), "accept-encoding");
        assert!(
            zipped.body.len() * 2 < plain.body.len(),
            "{uri} barely shrank"
        );
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped.body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain.body, "{uri}");
        let refused = call(&app, with("gzip;q=0, identity", uri)).await;
        assert_eq!(refused.header("content-encoding"), "");
        assert_eq!(refused.body, plain.body);
    }
}

/// A long-running pipeline compacts the lake as it goes (`--compact-every`): it commits about
/// once a second, yet its trades end up in fewer files than commits; a reader's counts
/// meanwhile never drop (no files missed at a swap); and the windows still equal a batch
/// recompute over the trades.
#[tokio::test]
async fn serve_compacts_the_lake_while_its_pipeline_commits() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let (mut child, _) = start_serve(
        dir.path(),
        &[
            "--rate",
            "2000",
            "--commit-every",
            "100ms",
            "--compact-every",
            "1s",
            "--window",
            "1s",
            "--allowed-lateness",
            "0s",
        ],
    );
    let (started, mut last, mut reads) = (std::time::Instant::now(), 0, 0);
    while started.elapsed() < Duration::from_secs(8) {
        let n = count(&lake, "SELECT COUNT(*) FROM trades").await;
        assert!(n >= last, "{n} trades after {last}: a reader missed files");
        (last, reads) = (n, reads + 1);
    }
    interrupt(&mut child);
    let swaps: u64 = std::fs::read_to_string(lake.join("_swaps"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(swaps >= 2 && swaps.is_multiple_of(2), "swaps {swaps}");
    // Each commit wrote a trades file (serve's pipeline commits at most once a second); the
    // ones merged are gone.
    let commits = std::fs::read_dir(lake.join("_commits")).unwrap().count();
    let files = common::parquet_files(&lake.join("trades")).len();
    assert!(
        files < commits && commits >= 4,
        "{files} trades files after {commits} commits"
    );
    let trades = assert_windows_match_trades(&lake, "1s").await;
    assert!(trades > 2000 && reads > 5, "{trades} trades, {reads} reads");
}
