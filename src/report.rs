//! `darkpool report`: the analysis plots as PNGs plus an `index.html`, computed from the lake.
//!
//! Every plot's numbers come from one SQL file in `analysis/` (compiled in; a folder of
//! same-named files overrides them) run through the engine, so the report's time range and
//! symbols are the engine's [`Scope`](crate::engine::Scope). Drawing ([`chart`], [`plot`]) uses
//! plotters with the fonts embedded in the binary. Files appear atomically; an empty lake or a
//! filter that matches nothing writes nothing and says why.

pub mod chart;
pub mod plot;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};

use crate::engine::named::{load_set, NamedQuery};
use crate::engine::{Engine, EngineError, Scope};
use crate::lake::{self, LakeError};
use plot::{Data, Heading, PLOTS};

include!(concat!(env!("OUT_DIR"), "/analysis_sql.rs"));

/// Up to this many windows the report computes the `windows` view once and keeps it in memory
/// (about 200 bytes a window); above it every plot reads the lake.
const PIN_WINDOWS_UP_TO: u64 = 2_000_000;

/// What to write where.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Output folder for the PNGs and index.html.
    pub out: PathBuf,
    /// A folder of `*.sql` overriding the embedded analysis queries of the same name.
    pub analysis_dir: Option<PathBuf>,
    /// Print a line per plot as it is written.
    pub verbose: bool,
}

/// Why a report was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the lake at {lake} holds no windows yet, so there is nothing to plot; ingest trades first (darkpool ingest --lake {lake} FILE)")]
    EmptyLake { lake: String },
    #[error("no windows match {scope}; the lake at {lake} holds {held}")]
    NoMatch {
        scope: String,
        lake: String,
        held: String,
    },
    #[error("cannot read --analysis-dir: {0}")]
    AnalysisDir(std::io::Error),
    #[error("analysis query {name}: {source}")]
    Query { name: String, source: EngineError },
    #[error("drawing {name}: {message}")]
    Draw { name: String, message: String },
    #[error("{0}")]
    Output(#[from] LakeError),
    #[error("cannot create the output folder {path}: {source}")]
    OutDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The windows the report covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataRange {
    /// First window start and last window end (UTC microseconds).
    pub first: i64,
    pub last: i64,
    pub windows: u64,
    pub symbols: u64,
    pub trades: u64,
}

/// One plot of a finished report.
#[derive(Debug, Clone)]
pub struct PlotOutcome {
    pub name: String,
    pub title: String,
    pub description: String,
    pub sql: String,
    /// The PNG written, or why there is none.
    pub file: Result<PathBuf, String>,
    pub rows: usize,
    /// First and last window the plot's rows cover (when the query has `window_start`).
    pub window_span: Option<(i64, i64)>,
    pub query_time: Duration,
}

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub out: PathBuf,
    pub index: PathBuf,
    pub range: DataRange,
    pub plots: Vec<PlotOutcome>,
    pub elapsed: Duration,
}

/// The analysis queries: embedded, overridden by same-named files of `dir`.
pub fn analysis_queries(dir: Option<&Path>) -> Result<Vec<NamedQuery>, ReportError> {
    load_set(ANALYSIS, dir).map_err(ReportError::AnalysisDir)
}

/// `YYYY-MM-DD HH:MM` UTC.
fn minute(micros: i64) -> String {
    let mut iso = String::new();
    crate::time::format_iso_micros(micros, &mut iso);
    format!("{} {}", &iso[..10], &iso[11..16])
}

/// The scope in words, e.g. "from 2024-01-02 00:00 UTC, symbols SYNTH_SPY, SYNTH_QQQ".
pub fn describe_scope(scope: &Scope) -> String {
    let mut parts = Vec::new();
    if let Some(from) = scope.from {
        parts.push(format!("from {} UTC", minute(from)));
    }
    if let Some(to) = scope.to {
        parts.push(format!("before {} UTC", minute(to)));
    }
    if !scope.symbols.is_empty() {
        parts.push(format!("symbols {}", scope.symbols.join(", ")));
    }
    if parts.is_empty() {
        "the whole lake".into()
    } else {
        parts.join(", ")
    }
}

fn first_i64(batches: &[RecordBatch], column: usize) -> Option<i64> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let array = arrow::compute::cast(batch.column(column), &DataType::Int64).ok()?;
    let ints = array.as_primitive::<Int64Type>();
    (!ints.is_null(0)).then(|| ints.value(0))
}

/// First/last window, counts of windows, symbols and trades the engine's scope sees.
pub async fn data_range(engine: &Engine) -> Result<DataRange, EngineError> {
    let batches = engine
        .internal(
            "SELECT CAST(MIN(window_start) AS BIGINT), CAST(MAX(window_end) AS BIGINT), \
             COUNT(*), COUNT(DISTINCT symbol), CAST(SUM(num_trades) AS BIGINT) FROM windows",
        )
        .await?;
    let count = |i| first_i64(&batches, i).unwrap_or(0).max(0) as u64;
    Ok(DataRange {
        first: first_i64(&batches, 0).unwrap_or(0),
        last: first_i64(&batches, 1).unwrap_or(0),
        windows: count(2),
        symbols: count(3),
        trades: count(4),
    })
}

fn describe_range(range: &DataRange) -> String {
    format!(
        "{} to {} UTC · {} windows · {} symbols · {} trades",
        minute(range.first),
        minute(range.last),
        chart::thousands(range.windows as f64, 0),
        chart::thousands(range.symbols as f64, 0),
        chart::thousands(range.trades as f64, 0)
    )
}

/// The first and last `window_start` of a result, when it has that column.
fn window_span(batch: &RecordBatch) -> Option<(i64, i64)> {
    let column = batch.column_by_name("window_start")?;
    let micros = arrow::compute::cast(
        column,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )
    .ok()?;
    let ints = arrow::compute::cast(&micros, &DataType::Int64).ok()?;
    let ints = ints.as_primitive::<Int64Type>();
    let min = arrow::compute::min(ints)?;
    let max = arrow::compute::max(ints)?;
    Some((min, max))
}

/// Split a query's first comment line "Title: what it shows" into title and description.
fn title_of(query: &NamedQuery) -> (String, String) {
    match query.description.split_once(": ") {
        Some((title, rest)) => (title.trim().to_string(), rest.trim().to_string()),
        None if !query.description.is_empty() => (query.description.clone(), String::new()),
        None => (query.name.clone(), String::new()),
    }
}

/// Run every analysis query and draw its plot into `options.out`, then write `index.html`.
pub async fn write_report(
    engine: &Engine,
    options: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    let started = Instant::now();
    let lake_dir = engine.options().lake.display().to_string();
    let scope = engine.options().scope.clone();
    let range = data_range(engine).await?;
    let finra = [lake::Table::AtsWeekly, lake::Table::ShortVolume]
        .iter()
        .any(|t| engine.lake().has_data(*t));
    if range.windows == 0 && !(finra && scope.is_all()) {
        if scope.is_all() {
            return Err(ReportError::EmptyLake { lake: lake_dir });
        }
        let mut everything = engine.options().clone();
        everything.scope = Scope::default();
        let whole = data_range(&Engine::open(everything).await?).await?;
        return Err(if whole.windows == 0 {
            ReportError::EmptyLake { lake: lake_dir }
        } else {
            ReportError::NoMatch {
                scope: describe_scope(&scope),
                lake: lake_dir,
                held: describe_range(&whole),
            }
        });
    }
    if range.windows <= PIN_WINDOWS_UP_TO {
        // Every plot but one reads `windows`: compute the latest versions once, not per plot.
        engine.pin_windows().await?;
    }
    let queries = analysis_queries(options.analysis_dir.as_deref())?;
    crate::output::create_folder(&options.out).map_err(|source| ReportError::OutDir {
        path: options.out.clone(),
        source,
    })?;
    let mut subtitle = describe_range(&range);
    if !scope.is_all() {
        subtitle = format!("{subtitle} · {}", describe_scope(&scope));
    }
    let mut outcomes = Vec::new();
    let mut drawing = Vec::new();
    for (name, draw) in PLOTS {
        let Some(query) = queries.iter().find(|q| q.name == name) else {
            continue;
        };
        let (title, description) = title_of(query);
        let sql = engine.options().window.render(&query.sql);
        let result = engine
            .sql(&sql)
            .await
            .map_err(|source| ReportError::Query {
                name: name.to_string(),
                source,
            })?;
        let batch =
            arrow::compute::concat_batches(&result.schema, &result.batches).map_err(|e| {
                ReportError::Query {
                    name: name.to_string(),
                    source: EngineError::Sql(e.to_string()),
                }
            })?;
        let path = options.out.join(format!("{name}.png"));
        let mut outcome = PlotOutcome {
            name: name.to_string(),
            title: title.clone(),
            description,
            sql: sql.clone(),
            file: Ok(path.clone()),
            rows: batch.num_rows(),
            window_span: window_span(&batch),
            query_time: result.elapsed,
        };
        if batch.num_rows() == 0 {
            outcome.file = Err("the query returned no rows for this range".into());
            remove_stale(&path)?;
            outcomes.push(outcome);
            continue;
        }
        let data = Data {
            name: name.to_string(),
            batch,
        };
        let heading = Heading {
            title,
            subtitle: subtitle.clone(),
        };
        drawing.push(tokio::task::spawn_blocking(move || {
            let mut canvas = chart::Canvas::new(chart::WIDTH, chart::HEIGHT);
            draw(&data, &heading, &mut canvas)?;
            let png = canvas.png()?;
            lake::write_atomic(&path, &png).map_err(|e| chart::DrawError::Failed(e.to_string()))
        }));
        outcomes.push(outcome);
    }
    let mut handles = drawing.into_iter();
    for outcome in outcomes.iter_mut().filter(|o| o.file.is_ok()) {
        let Some(handle) = handles.next() else { break };
        let drawn = handle
            .await
            .map_err(|e| chart::DrawError::Failed(e.to_string()))
            .and_then(|r| r);
        match drawn {
            Ok(()) => {}
            Err(chart::DrawError::Nothing(why)) => {
                if let Ok(path) = &outcome.file {
                    remove_stale(path)?;
                }
                outcome.file = Err(why);
                continue;
            }
            Err(chart::DrawError::Failed(message)) => {
                return Err(ReportError::Draw {
                    name: outcome.name.clone(),
                    message,
                })
            }
        }
        if options.verbose {
            crate::say!(
                "  {:<34} {:>9} rows",
                format!("{}.png", outcome.name),
                chart::thousands(outcome.rows as f64, 0)
            );
        }
    }
    let index = options.out.join("index.html");
    let html = index_html(&lake_dir, &scope, &range, &outcomes);
    lake::write_atomic(&index, html.as_bytes())?;
    Ok(ReportSummary {
        out: options.out.clone(),
        index,
        range,
        plots: outcomes,
        elapsed: started.elapsed(),
    })
}

/// A plot that has no data this time must not leave last run's PNG behind.
fn remove_stale(path: &Path) -> Result<(), ReportError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LakeError::Io {
            path: path.to_path_buf(),
            source: e,
        }
        .into()),
        _ => Ok(()),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The report's front page: every plot with its title, SQL, data range and row count.
pub fn index_html(lake: &str, scope: &Scope, range: &DataRange, plots: &[PlotOutcome]) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>darkpool report</title>\n<style>\n");
    h.push_str(
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f5f5f7;color:#212121}\n\
         header{background:#1e1b2e;color:#eee;padding:24px 32px}\nheader h1{margin:0 0 8px}\n\
         header p{margin:4px 0;color:#c9c6dd}\nmain{max-width:1680px;margin:0 auto;padding:16px 32px}\n\
         nav ol{columns:2}\nsection{background:#fff;border-radius:8px;padding:16px 24px;margin:24px 0;box-shadow:0 1px 3px rgba(0,0,0,.12)}\n\
         section img{width:100%;height:auto;border:1px solid #ddd}\n\
         dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}\ndt{font-weight:600}\n\
         pre{background:#1e1b2e;color:#e6e1ff;padding:12px;overflow:auto;border-radius:6px}\n\
         .missing{color:#a33}\n.dark{color:#5e35b1}.lit{color:#ef6c00}\n",
    );
    h.push_str("</style>\n</head>\n<body>\n<header>\n<h1>darkpool report</h1>\n");
    let _ = writeln!(
        h,
        "<p>Lake <code>{}</code> · {} · {}</p>",
        escape(lake),
        escape(&describe_scope(scope)),
        escape(&describe_range(range))
    );
    let _ = writeln!(
        h,
        "<p>Data range: first window starts {} UTC, last window ends {} UTC.</p>",
        minute(range.first),
        minute(range.last)
    );
    h.push_str("<p>Colours: <span class=\"dark\">■ dark pool / ATS</span> · <span class=\"lit\">■ lit exchange</span> · venue kinds from the venue registry.</p>\n</header>\n<main>\n<nav><ol>\n");
    for p in plots {
        let _ = writeln!(
            h,
            "<li><a href=\"#{}\">{}</a></li>",
            escape(&p.name),
            escape(&p.title)
        );
    }
    h.push_str("</ol></nav>\n");
    for p in plots {
        let _ = writeln!(
            h,
            "<section id=\"{}\">\n<h2>{}</h2>\n<p>{}</p>",
            escape(&p.name),
            escape(&p.title),
            escape(&p.description)
        );
        match &p.file {
            Ok(path) => {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                let _ = writeln!(
                    h,
                    "<img src=\"{}\" alt=\"{}\" width=\"{}\" height=\"{}\">",
                    escape(&file),
                    escape(&p.title),
                    chart::WIDTH,
                    chart::HEIGHT
                );
            }
            Err(why) => {
                let _ = writeln!(h, "<p class=\"missing\">No plot: {}.</p>", escape(why));
            }
        }
        let span = match p.window_span {
            Some((first, last)) => {
                format!("windows starting {} to {} UTC", minute(first), minute(last))
            }
            None => format!(
                "all windows, {} to {} UTC",
                minute(range.first),
                minute(range.last)
            ),
        };
        let _ = writeln!(
            h,
            "<dl><dt>Rows</dt><dd>{}</dd><dt>Data range</dt><dd>{}</dd><dt>Query</dt><dd><code>analysis/{}.sql</code> ({:.0} ms)</dd></dl>",
            chart::thousands(p.rows as f64, 0),
            escape(&span),
            escape(&p.name),
            p.query_time.as_secs_f64() * 1000.0
        );
        let _ = writeln!(
            h,
            "<details><summary>SQL</summary>\n<pre>{}</pre>\n</details>\n</section>",
            escape(p.sql.trim_end())
        );
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_described_in_words() {
        assert_eq!(describe_scope(&Scope::default()), "the whole lake");
        let scope = Scope {
            from: Some(1_704_101_400_000_000),
            to: None,
            symbols: vec!["SYNTH_SPY".into(), "SYNTH_QQQ".into()],
        };
        assert_eq!(
            describe_scope(&scope),
            "from 2024-01-01 09:30 UTC, symbols SYNTH_SPY, SYNTH_QQQ"
        );
    }

    #[test]
    fn index_escapes_sql_and_names() {
        let plot = PlotOutcome {
            name: "x".into(),
            title: "A <b> title".into(),
            description: String::new(),
            sql: "SELECT 1 < 2".into(),
            file: Err("none".into()),
            rows: 0,
            window_span: None,
            query_time: Duration::ZERO,
        };
        let html = index_html("lake", &Scope::default(), &DataRange::default(), &[plot]);
        assert!(html.contains("SELECT 1 &lt; 2"));
        assert!(html.contains("A &lt;b&gt; title"));
        assert!(!html.contains("<b>"));
    }
}
