//! The one DataFusion session setup (CLI, API, report) and the read-only guard every user SQL
//! text goes through (DESIGN §5).
//!
//! Tables: `trades`, `late`, `rejects`, `window_history` (every version of every window),
//! `windows` (the latest version per key: sums over it are right), `venues`.

mod bounded;
mod live_windows;
pub mod named;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{visit_relations, SetExpr, Statement as SqlStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::ParserError;
use futures::StreamExt;
use std::ops::ControlFlow;

use crate::lake::{Lake, Table};
use crate::model;
use crate::venue::Registry;
use crate::window::{self, WindowError, WindowSpec};
pub use named::NamedQuery;

/// Limits and inputs of a session.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub lake: PathBuf,
    pub venues: Arc<Registry>,
    pub window: WindowSpec,
    /// Most rows a query returns; more are cut off and reported as truncated.
    pub max_rows: usize,
    pub timeout: Duration,
    /// Bytes of memory the queries running at once may use: DataFusion's operators (joins,
    /// sorts, aggregates), what one call of a function that builds large values builds, and
    /// the results.
    pub memory_limit: usize,
    /// A folder of `*.sql` named queries overriding the embedded ones.
    pub sql_dir: Option<PathBuf>,
    /// What part of the lake the session sees (time range, symbols); default: all of it.
    pub scope: Scope,
}

/// A slice of the lake: every table of the session shows only these rows, so the same SQL
/// answers for a time range or a list of symbols (`report --from/--to/--symbols`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// First instant included (UTC microseconds): trades at or after it, windows starting at or
    /// after it.
    pub from: Option<i64>,
    /// First instant excluded (UTC microseconds).
    pub to: Option<i64>,
    /// Only these symbols (empty = all).
    pub symbols: Vec<String>,
}

impl Scope {
    pub fn is_all(&self) -> bool {
        self == &Scope::default()
    }

    /// The rows of `table` (whose time column is `time_column`) inside the scope, as one
    /// DataFusion predicate; `None` when the scope is everything. The `date` partition bounds
    /// let the listing skip whole folders.
    fn predicate(&self, time_column: &str) -> Option<datafusion::prelude::Expr> {
        use datafusion::prelude::{col, lit, Expr};
        use datafusion::scalar::ScalarValue;
        let at = |micros: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(micros),
                Some("UTC".into()),
            ))
        };
        let mut parts: Vec<Expr> = Vec::new();
        if let Some(from) = self.from {
            parts.push(col(time_column).gt_eq(at(from)));
            parts.push(col("date").gt_eq(lit(crate::time::date_of(from))));
        }
        if let Some(to) = self.to {
            parts.push(col(time_column).lt(at(to)));
            parts.push(col("date").lt_eq(lit(crate::time::date_of(to))));
        }
        if !self.symbols.is_empty() {
            let list = self.symbols.iter().map(|s| lit(s.as_str())).collect();
            parts.push(col("symbol").in_list(list, false));
        }
        parts.into_iter().reduce(Expr::and)
    }
}

impl EngineOptions {
    pub fn new(lake: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            lake: lake.into(),
            venues: Arc::new(Registry::embedded()),
            window: WindowSpec::default(),
            max_rows: 1_000_000,
            timeout: Duration::from_secs(60),
            memory_limit: 4 << 30,
            sql_dir: None,
            scope: Scope::default(),
        }
    }
}

/// Why a query did not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A statement the read-only guard does not allow (CLI exit 2, HTTP 403).
    #[error("refused: {what} is not allowed: darkpool queries are read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE) over the lake tables")]
    Refused { what: String },
    #[error("{0}")]
    Sql(String),
    #[error("query timed out after {0:?}; narrow it (WHERE, LIMIT) or raise --timeout")]
    Timeout(Duration),
    #[error("no named query '{0}'; `darkpool query --list` shows them")]
    UnknownQuery(String),
    #[error("cannot read named queries: {0}")]
    NamedQueries(std::io::Error),
    #[error(transparent)]
    Window(#[from] WindowError),
    /// Reading the lake's Parquet failed: its data, not the query (HTTP 500).
    #[error("{0}")]
    Unreadable(String),
    /// Refused memory it would have had alone: the queries running at once held the rest of
    /// `--memory-limit` (HTTP 503: try again).
    #[error("{0}")]
    Busy(String),
    #[error("cannot open the lake table {table}: {source}")]
    Table {
        table: &'static str,
        source: DataFusionError,
    },
}

impl EngineError {
    pub(crate) fn sql(e: DataFusionError) -> EngineError {
        EngineError::Sql(one_line(&e))
    }
}

/// DataFusion's message on one line, without the backtrace-ish context chain noise.
fn one_line(e: &DataFusionError) -> String {
    e.strip_backtrace().replace('\n', " ")
}

/// Runs of a query that a compaction's swap overlapped (see [`Lake::swaps`] and
/// [`file_vanished`]) before it fails.
const VANISHED_ATTEMPTS: usize = 5;

/// Runs of one of darkpool's own queries (a pipeline's) that compactions' swaps overlapped
/// before it fails: a compaction of many partitions swaps them one after another.
const INTERNAL_ATTEMPTS: usize = 20;

/// Counts the runs of a query that compactions' swaps overlapped.
struct SwapRetry {
    runs: usize,
    limit: usize,
}

impl SwapRetry {
    fn new(limit: usize) -> SwapRetry {
        SwapRetry { runs: 1, limit }
    }

    /// Run again? After a pause that grows with each run (10 ms, 20 ms, ...), so that a
    /// compaction swapping partition after partition gets ahead.
    async fn again(&mut self) -> bool {
        if self.runs >= self.limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10 * self.runs as u64)).await;
        self.runs += 1;
        true
    }
}

/// The longest darkpool's own queries wait for a compaction's swap to end.
const SWAP_WAIT: Duration = Duration::from_secs(60);

/// A stream's end, when a compaction swapped a partition while it was read.
#[derive(Debug, thiserror::Error)]
#[error("a compaction swapped lake files while they were read")]
struct SwappedUnder;

/// A query that compactions overlapped every time it ran (HTTP 503: try again).
fn compacted_meanwhile() -> EngineError {
    EngineError::Busy(format!(
        "a compaction swapped lake files under this query {VANISHED_ATTEMPTS} times in a row; \
         run it again"
    ))
}

/// Did the query fail because a file it had listed was gone when it opened it? A compaction
/// swaps a partition's small files for merged ones between the two.
fn file_vanished(e: &DataFusionError) -> bool {
    use datafusion::object_store::Error as StoreError;
    e.iter().any(|e| {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = next {
            if let Some(DataFusionError::ObjectStore(store)) = err.downcast_ref::<DataFusionError>()
            {
                if matches!(**store, StoreError::NotFound { .. }) {
                    return true;
                }
            }
            if err.is::<SwappedUnder>()
                || err
                    .downcast_ref::<StoreError>()
                    .is_some_and(|s| matches!(s, StoreError::NotFound { .. }))
                || err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            {
                return true;
            }
            next = err.source();
        }
        false
    })
}

/// Did reading a Parquet file fail (rather than the SQL, a limit or a function)?
fn reading_parquet_failed(e: &DataFusionError) -> bool {
    e.iter().any(|e| match e {
        DataFusionError::ParquetError(_) => true,
        DataFusionError::External(inner) => inner.is::<parquet::errors::ParquetError>(),
        _ => false,
    })
}

/// Rows of a query, possibly cut at the row limit.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
    pub elapsed: Duration,
    /// The rows' share of the memory pool, given back when the last clone is dropped.
    _held: Arc<MemoryReservation>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A table of the session and its columns.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub schema: SchemaRef,
    pub description: &'static str,
}

/// The query session over one lake.
pub struct Engine {
    ctx: SessionContext,
    /// `live_windows`: the pipeline's own part ([`Engine::set_live_windows`]) and what following
    /// the lake found ([`Engine::set_followed_windows`]).
    live: live_windows::LiveWindows,
    options: EngineOptions,
    named: Vec<NamedQuery>,
    lake: Lake,
    window_schema: SchemaRef,
    /// The session's memory pool, as user queries' checks and results reserve from it.
    budget: bounded::Budget,
}

/// Table names and what they hold.
const TABLES: [(&str, &str); 12] = [
    (
        "trades",
        "every accepted trade, with venue_kind and source position",
    ),
    (
        "windows",
        "latest version of each window (one row per window_start, symbol, venue)",
    ),
    ("window_history", "every emitted version of every window"),
    ("late", "trades that arrived after their window was final"),
    (
        "rejects",
        "input that was not a valid trade: raw bytes, reason, position",
    ),
    (
        "venues",
        "the venue registry: code, name, kind (dark/lit/otc), location",
    ),
    (
        "live_windows",
        "serve's live windows not yet in the lake: open (is_final = false) and just closed; \
         with --no-ingest or --brokers, also the windows of landed trades no process has \
         emitted yet",
    ),
    (
        "ats_weekly",
        "FINRA ATS weekly volume per week_start, symbol and mpid: the latest publication",
    ),
    (
        "ats_weekly_history",
        "every FINRA ATS weekly row loaded, with last_update and loaded_at",
    ),
    (
        "short_volume",
        "FINRA Reg SHO short-sale volume per date, symbol and facility: the latest load",
    ),
    (
        "short_volume_history",
        "every FINRA Reg SHO row loaded, with loaded_at",
    ),
    (
        "short_volume_daily",
        "Reg SHO volume per date and symbol: CNMS when loaded, else the facility files summed",
    ),
];

/// The view `short_volume_daily`: the one place the CNMS-or-facilities rule is written.
const SHORT_VOLUME_DAILY: &str = include_str!("../sql/internal/short_volume_daily.sql");

/// The FINRA tables: (lake table, history table, view, natural key, newest-first order).
const LATEST_OF: [(Table, &str, &str, &str, &str); 2] = [
    (
        Table::AtsWeekly,
        "ats_weekly_history",
        "ats_weekly",
        "week_start, symbol, mpid",
        "last_update DESC NULLS LAST, loaded_at DESC, source_file DESC, source_line DESC",
    ),
    (
        Table::ShortVolume,
        "short_volume_history",
        "short_volume",
        "\"date\", symbol, facility",
        "loaded_at DESC, source_file DESC, source_line DESC",
    ),
];

fn partitioned(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("date", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

impl Engine {
    /// A session with the lake's tables registered. A missing or empty lake gives empty tables.
    pub async fn open(options: EngineOptions) -> Result<Engine, EngineError> {
        let mut config = SessionConfig::new().with_information_schema(true);
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        // DataFusion keeps a table's file listing for good once listed (its list-files cache,
        // on by default since 52). A lake is written while it is read (serve's own commits,
        // other processes'), so every query lists the folders again: a local listing is cheap.
        let caches = datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
            .with_list_files_cache_limit(0);
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(caches)
            .with_memory_limit(options.memory_limit, 1.0)
            .build_arc()
            .map_err(EngineError::sql)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        bounded::register(&ctx);
        let budget = bounded::Budget::of(&ctx);
        let lake = Lake::new(&options.lake);
        let row_schema = window::row_schema(&options.window).await?;
        let window_schema = window::output_schema(&row_schema);
        for (table, name, schema, scoped) in [
            (Table::Trades, "trades", model::trades_schema(), true),
            (Table::Late, "late", model::late_schema(), true),
            (Table::Rejects, "rejects", model::rejects_schema(), false),
            (
                Table::Windows,
                "window_history",
                window_schema.clone(),
                true,
            ),
        ] {
            let scope = table
                .date_column()
                .filter(|_| scoped)
                .and_then(|column| options.scope.predicate(column));
            register_lake_table(&ctx, &lake, table, name, schema, scope).await?;
        }
        let table_err = |table| move |source| EngineError::Table { table, source };
        for (table, history, view, key, newest_first) in LATEST_OF {
            let schema = match table {
                Table::AtsWeekly => model::ats_weekly_schema(),
                _ => model::short_volume_schema(),
            };
            register_lake_table(&ctx, &lake, table, history, schema, None).await?;
            // Loading the same rows twice (overlapping downloads, re-published weeks) keeps
            // one row per natural key: the newest publication.
            let sql = format!(
                "CREATE VIEW {view} AS SELECT * EXCLUDE (publication_rank) FROM (\
                 SELECT *, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {newest_first}) \
                 AS publication_rank FROM {history}) WHERE publication_rank = 1"
            );
            ctx.sql(&sql).await.map_err(table_err(view))?;
        }
        ctx.sql(&format!(
            "CREATE VIEW short_volume_daily AS {SHORT_VOLUME_DAILY}"
        ))
        .await
        .map_err(table_err("short_volume_daily"))?;
        let latest = "CREATE VIEW windows AS SELECT * EXCLUDE (version_rank) FROM (\
             SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, symbol, venue \
             ORDER BY version DESC) AS version_rank FROM window_history) WHERE version_rank = 1";
        ctx.sql(latest).await.map_err(table_err("windows"))?;
        let venues = options.venues.to_record_batch();
        let mem =
            MemTable::try_new(venues.schema(), vec![vec![venues]]).map_err(table_err("venues"))?;
        ctx.register_table("venues", Arc::new(mem))
            .map_err(table_err("venues"))?;
        let live = Arc::new(
            MemTable::try_new(window_schema.clone(), vec![vec![]])
                .map_err(table_err("live_windows"))?,
        );
        ctx.register_table("live_windows", live.clone())
            .map_err(table_err("live_windows"))?;
        let named = named::load(options.sql_dir.as_deref()).map_err(EngineError::NamedQueries)?;
        Ok(Engine {
            ctx,
            live: live_windows::LiveWindows::new(live),
            options,
            named,
            lake,
            window_schema,
            budget,
        })
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The `window_history` schema (window columns + is_final + version).
    pub fn window_schema(&self) -> SchemaRef {
        self.window_schema.clone()
    }

    pub fn named_queries(&self) -> &[NamedQuery] {
        &self.named
    }

    /// A named query's SQL with the session's window parameters filled in.
    pub fn named_sql(&self, name: &str) -> Result<String, EngineError> {
        self.named
            .iter()
            .find(|q| q.name == name)
            .map(|q| self.options.window.render(&q.sql))
            .ok_or_else(|| EngineError::UnknownQuery(name.to_string()))
    }

    /// Is `name` one of the session's tables (rather than, say, a named query)?
    pub fn is_table(name: &str) -> bool {
        TABLES.iter().any(|(table, _)| *table == name)
    }

    /// Tables with their columns.
    pub async fn tables(&self) -> Result<Vec<TableInfo>, EngineError> {
        let mut out = Vec::new();
        for (name, description) in TABLES {
            let table = self.ctx.table(name).await.map_err(EngineError::sql)?;
            out.push(TableInfo {
                name: name.to_string(),
                schema: Arc::new(table.schema().as_arrow().clone()),
                description,
            });
        }
        Ok(out)
    }

    /// Run a named query.
    pub async fn run_named(&self, name: &str) -> Result<QueryResult, EngineError> {
        let sql = self.named_sql(name)?;
        self.sql(&sql).await
    }

    /// Replace the pipeline's own rows of `live_windows` (rows of the `window_history` schema)
    /// and show them.
    pub async fn set_live_windows(&self, rows: Vec<RecordBatch>) -> Result<(), EngineError> {
        self.set_own_windows(rows);
        self.show_live_windows().await
    }

    /// [`Engine::set_live_windows`] in two steps, for a caller that cannot wait: the rows are
    /// taken in call order, and whenever [`Engine::show_live_windows`] runs it shows the latest.
    pub fn set_own_windows(&self, rows: Vec<RecordBatch>) {
        self.live.set_own(rows);
    }

    pub async fn show_live_windows(&self) -> Result<(), EngineError> {
        Ok(self.live.show().await?)
    }

    /// Following the lake begins to work out the windows no process has emitted
    /// ([`Engine::unemitted_windows`]); [`Engine::set_followed_windows`] then shows them.
    pub fn begin_following(&self) {
        self.live.begin_following();
    }

    /// Show `rows` (from [`Engine::unemitted_windows`]) in `live_windows`, except the keys the
    /// pipeline's own part has, or had since following began: its own rows are newer.
    pub async fn set_followed_windows(&self, rows: Vec<RecordBatch>) -> Result<(), EngineError> {
        self.live.set_followed(rows)?;
        self.show_live_windows().await
    }

    /// The windows of trades the lake holds that no process has emitted yet (they are open in
    /// the memory of the member that read them): the window aggregate over those trades, as
    /// `is_final = false` version 1 rows of `live_windows`. For `serve --no-ingest`, whose
    /// lake other processes fill. Only trades from a window length before the newest emitted
    /// window's end are looked at: a member's open windows all end after its watermark, so
    /// this finds them unless a member runs further behind in event time than that (its
    /// windows then show once final).
    pub async fn unemitted_windows(&self) -> Result<Vec<RecordBatch>, EngineError> {
        let newest = self
            .internal("SELECT arrow_cast(MAX(window_end), 'Int64') AS e FROM window_history")
            .await?
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()
                    .cloned()
            })
            .filter(|e| e.len() == 1 && e.is_valid(0))
            .map(|e| e.value(0));
        let (trades, emitted) = match newest {
            Some(end) => {
                let from = end - self.options.window.size;
                let at = crate::time::sql_timestamp(from);
                // The date too, so the partitions before it are not read at all.
                let day = crate::time::date_of(from);
                (
                    format!(
                        "(SELECT * FROM trades WHERE \"timestamp\" >= {at} AND date >= '{day}')"
                    ),
                    format!("AND w.window_end > {at}"),
                )
            }
            None => ("trades".to_string(), String::new()),
        };
        let aggregate = self.options.window.render(window::AGGREGATE_SQL);
        let from_trades = "FROM trades AS t";
        if !aggregate.contains(from_trades) {
            return Err(EngineError::Sql(format!(
                "the window aggregate does not read `{from_trades}`"
            )));
        }
        let aggregate = aggregate.replace(from_trades, &format!("FROM {trades} AS t"));
        let sql = format!(
            "SELECT o.*, false AS is_final, CAST(1 AS BIGINT) AS version FROM ({aggregate}\n) AS o \
             WHERE NOT EXISTS (SELECT 1 FROM window_history AS w WHERE w.window_start = o.window_start \
             AND w.window_end = o.window_end AND w.symbol = o.symbol AND w.venue = o.venue {emitted})"
        );
        let schema = self.window_schema();
        self.internal(&sql)
            .await?
            .into_iter()
            .map(|batch| {
                RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| EngineError::Sql(format!("unemitted windows: {e}")))
            })
            .collect()
    }

    /// Compute the `windows` view (latest version per key) once and answer it from memory for
    /// the rest of the session: for many queries over one snapshot, such as a report.
    pub async fn pin_windows(&self) -> Result<(), EngineError> {
        let err = |source| EngineError::Table {
            table: "windows",
            source,
        };
        let (schema, batches) = self
            .collect_settled(|| self.ctx.table("windows"))
            .await
            .map_err(err)?;
        let pinned = MemTable::try_new(schema, vec![batches]).map_err(err)?;
        self.ctx.deregister_table("windows").map_err(err)?;
        self.ctx
            .register_table("windows", Arc::new(pinned))
            .map_err(err)?;
        Ok(())
    }

    /// Run user SQL: the one way user text reaches DataFusion. Read-only statements only, with
    /// the row limit, memory limit and timeout applied.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult, EngineError> {
        self.sql_with_params(sql, None).await
    }

    /// [`Engine::sql`] with values for `$1`, `$2`… or `$name` placeholders (bound, never
    /// spliced into the text).
    pub async fn sql_with_params(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<QueryResult, EngineError> {
        guard(sql)?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        let mut retry = SwapRetry::new(VANISHED_ATTEMPTS);
        loop {
            let swaps = self.settled_swaps(deadline).await;
            let share = Arc::new(QueryShare::of(self.ctx.runtime_env().memory_pool.clone()));
            let work = self.attempt(sql, params.clone(), share.clone());
            // A task of its own: one expression can keep a thread busy past the timeout
            // (nothing to await inside it), and the timeout still answers on time from
            // another; the task is dropped at its next await.
            let mut task = tokio::spawn(work);
            let (schema, batches, held) = match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(done) => {
                    match done.map_err(|e| EngineError::Sql(format!("the query stopped: {e}")))? {
                        Ok(done) => done,
                        // A file it listed was swapped out by a compaction before it was
                        // read: the lake holds the same rows in other files now.
                        Err(e) if file_vanished(&e) => match retry.again().await {
                            true => continue,
                            false => return Err(self.failed(e).await),
                        },
                        Err(e) => match share.crowded_out(&e, self.budget.limit()) {
                            Some(busy) => return Err(busy),
                            None => return Err(self.failed(e).await),
                        },
                    }
                }
                Err(_) => {
                    task.abort();
                    return Err(EngineError::Timeout(self.options.timeout));
                }
            };
            if self.lake.swaps() != swaps {
                // A compaction swapped a partition while this query listed or read it.
                match retry.again().await {
                    true => continue,
                    false => return Err(compacted_meanwhile()),
                }
            }
            let (batches, truncated) = cut(batches, self.options.max_rows);
            return Ok(QueryResult {
                schema,
                batches,
                truncated,
                elapsed: started.elapsed(),
                _held: Arc::new(held),
            });
        }
    }

    /// One run of [`Engine::sql_with_params`]' query: planned (the lake's files listed) and
    /// collected within the memory budget, through `share` of the pool.
    fn attempt(
        &self,
        sql: &str,
        params: Option<ParamValues>,
        share: Arc<QueryShare>,
    ) -> impl std::future::Future<
        Output = Result<(SchemaRef, Vec<RecordBatch>, MemoryReservation), DataFusionError>,
    > + Send
           + 'static {
        let (ctx, sql_text, max_rows) = (self.ctx.clone(), sql.to_string(), self.options.max_rows);
        let budget = self.budget.clone();
        // Its operators and its result reserve through a share of the pool that knows what
        // this query held when it was refused.
        let runtime = Arc::new(share.runtime(&ctx.runtime_env()));
        let held_through = budget.through(share);
        async move {
            let mut df = ctx.sql_with_options(&sql_text, read_only()).await?;
            if let Some(params) = params {
                check_param_names(df.logical_plan(), &params)?;
                df = df.with_param_values(params)?;
            }
            let df = checked_plan(df, &budget)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            // EXPLAIN ANALYZE must stay the plan's root (under a limit DataFusion fails with an
            // internal error); a plan's description is a few rows anyway.
            let explains = matches!(
                df.logical_plan(),
                LogicalPlan::Analyze(_) | LogicalPlan::Explain(_)
            );
            let df = if explains {
                df
            } else {
                df.limit(0, Some(max_rows.saturating_add(1)))?
            };
            let (batches, held) = collect_within(df, &held_through, runtime).await?;
            Ok::<_, DataFusionError>((schema, batches, held))
        }
    }

    /// Stream user SQL through the same guard, without the row limit (for exports, which
    /// write batches to disk as they come).
    pub async fn sql_stream(
        &self,
        sql: &str,
    ) -> Result<(SchemaRef, SendableRecordBatchStream), EngineError> {
        guard(sql)?;
        let swaps = self
            .settled_swaps(tokio::time::Instant::now() + self.options.timeout)
            .await;
        let df = self
            .ctx
            .sql_with_options(sql, read_only())
            .await
            .map_err(EngineError::sql)?;
        let df = checked_plan(df, &self.budget).map_err(EngineError::sql)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        match df.execute_stream().await {
            Ok(stream) => {
                // Its rows are out by the time a swap could be seen: the stream ends in an
                // error instead (an export then leaves no file).
                let lake = self.lake.clone();
                let check = futures::stream::once(async move {
                    (lake.swaps() != swaps)
                        .then(|| DataFusionError::External(Box::new(SwappedUnder)))
                })
                .filter_map(|e| async move { e.map(Err) });
                let checked = RecordBatchStreamAdapter::new(schema.clone(), stream.chain(check));
                Ok((schema, Box::pin(checked)))
            }
            Err(e) => Err(self.failed(e).await),
        }
    }

    /// [`EngineError::sql`], and when reading a Parquet file failed, which of the lake's files
    /// cannot be read: DataFusion's error does not name the file ("Corrupt footer").
    /// The footers are read on a blocking thread: a lake of many files takes a while.
    pub(crate) async fn failed(&self, e: DataFusionError) -> EngineError {
        if file_vanished(&e) {
            return EngineError::Busy(format!(
                "{}: a compaction swapped lake files while this query read them (they hold \
                 the same rows in new files now); run it again",
                one_line(&e)
            ));
        }
        if !reading_parquet_failed(&e) {
            return EngineError::sql(e);
        }
        let message = one_line(&e);
        const SHOWN: usize = 5;
        let lake = self.lake.clone();
        let bad = tokio::task::spawn_blocking(move || lake.unreadable_files(SHOWN + 1))
            .await
            .unwrap_or_default();
        if bad.is_empty() {
            return EngineError::Unreadable(message);
        }
        let listed: Vec<String> = bad
            .iter()
            .take(SHOWN)
            .map(|(path, why)| format!("{} ({why})", path.display()))
            .collect();
        let more = if bad.len() > SHOWN { ", and more" } else { "" };
        EngineError::Unreadable(format!(
            "{message}; the lake has files that are not readable Parquet: {}{more}. Restore them \
             from a copy, or move them out of the lake to query the rest",
            listed.join(", ")
        ))
    }

    /// Run trusted SQL of darkpool itself (no row limit), e.g. loading windows for ingest.
    pub(crate) async fn internal(&self, sql: &str) -> Result<Vec<RecordBatch>, EngineError> {
        match self.collect_settled(|| self.ctx.sql(sql)).await {
            Ok((_, batches)) => Ok(batches),
            Err(e) => Err(self.failed(e).await),
        }
    }

    /// Collect what `plan` makes, again while compactions' swaps overlap it (see
    /// [`Lake::swaps`]): for darkpool's own queries, whose failure would stop a pipeline, up to
    /// [`INTERNAL_ATTEMPTS`] times.
    async fn collect_settled<F, Fut>(
        &self,
        plan: F,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), DataFusionError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<DataFrame, DataFusionError>>,
    {
        let mut retry = SwapRetry::new(INTERNAL_ATTEMPTS);
        loop {
            let swaps = self
                .settled_swaps(tokio::time::Instant::now() + SWAP_WAIT)
                .await;
            let df = plan().await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let collected = df.collect().await;
            let overlapped =
                self.lake.swaps() != swaps || collected.as_ref().is_err_and(file_vanished);
            if !overlapped {
                return collected.map(|batches| (schema, batches));
            }
            if !retry.again().await {
                return Err(collected
                    .err()
                    .unwrap_or_else(|| DataFusionError::External(Box::new(SwappedUnder))));
            }
        }
    }

    /// The lake's count of compaction swaps ([`Lake::swaps`]) once none is under way: a query
    /// reads it before it lists the lake's files and compares after. Waits while a live
    /// compaction is in the middle of a swap (milliseconds), up to `deadline`.
    async fn settled_swaps(&self, deadline: tokio::time::Instant) -> u64 {
        loop {
            let swaps = self.lake.swaps();
            if !self.lake.swapping(swaps) || tokio::time::Instant::now() >= deadline {
                return swaps;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// One query's share of the session's memory pool (shared by the queries running at once): it
/// reserves from that pool and keeps what this query holds, and what it held and asked for
/// when the pool refused it. So a refusal can say whose memory it was: this query's own
/// (over the limit alone: make it smaller) or the other queries' (it would have fit: try
/// again).
#[derive(Debug)]
struct QueryShare {
    pool: Arc<dyn MemoryPool>,
    held: AtomicUsize,
    /// The last refusal (an operator that spills goes on after one).
    refused: std::sync::Mutex<Option<Refusal>>,
}

impl QueryShare {
    fn of(pool: Arc<dyn MemoryPool>) -> QueryShare {
        QueryShare {
            pool,
            held: AtomicUsize::new(0),
            refused: std::sync::Mutex::new(None),
        }
    }

    /// The session's runtime with this share as its memory pool.
    fn runtime(self: &Arc<Self>, session: &RuntimeEnv) -> RuntimeEnv {
        RuntimeEnv {
            memory_pool: self.clone(),
            disk_manager: session.disk_manager.clone(),
            cache_manager: session.cache_manager.clone(),
            object_store_registry: session.object_store_registry.clone(),
        }
    }

    /// `Some(busy)` when `e` is a refusal of memory this query would have had alone.
    fn crowded_out(&self, e: &DataFusionError, limit: u64) -> Option<EngineError> {
        let refused = e
            .iter()
            .any(|e| matches!(e, DataFusionError::ResourcesExhausted(_)));
        let Refusal {
            held,
            asked,
            in_use,
        } = (*self.refused.lock().ok()?)?;
        (refused && (held + asked) as u64 <= limit).then(|| {
            EngineError::Busy(format!(
                "the queries running at once held {} of the --memory-limit of {} when this one \
                 asked for {} more (it held {}): it fits alone, so try again shortly",
                bounded::human_bytes(in_use.saturating_sub(held) as u64),
                bounded::human_bytes(limit),
                bounded::human_bytes(asked as u64),
                bounded::human_bytes(held as u64),
            ))
        })
    }
}

/// A refusal of the pool: what the query held, what it asked for, what the pool held in all.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    held: usize,
    asked: usize,
    in_use: usize,
}

impl std::fmt::Display for QueryShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a query's share of {}", self.pool)
    }
}

impl MemoryPool for QueryShare {
    fn name(&self) -> &str {
        "query share"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.pool.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.pool.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.pool.grow(reservation, additional);
        self.held.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.pool.shrink(reservation, shrink);
        self.held.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> Result<(), DataFusionError> {
        match self.pool.try_grow(reservation, additional) {
            Ok(()) => {
                self.held.fetch_add(additional, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut refused) = self.refused.lock() {
                    *refused = Some(Refusal {
                        held: self.held.load(Ordering::Relaxed),
                        asked: additional,
                        in_use: self.pool.reserved(),
                    });
                }
                Err(e)
            }
        }
    }

    fn reserved(&self) -> usize {
        self.pool.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.pool.memory_limit()
    }
}

/// A query's result batches, held in the memory pool as they come (it does not count them
/// otherwise): a million rows of wide text are refused once they are over what the pool has
/// free, rather than all held. The plan runs with `runtime` (the query's share of the pool).
async fn collect_within(
    df: DataFrame,
    budget: &bounded::Budget,
    runtime: Arc<RuntimeEnv>,
) -> Result<(Vec<RecordBatch>, MemoryReservation), DataFusionError> {
    let task = Arc::new(df.task_ctx().with_runtime(runtime));
    let plan = df.create_physical_plan().await?;
    let mut stream = datafusion::physical_plan::execute_stream(plan, task)?;
    let held = budget.reservation("query result");
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let bytes = batch_bytes(&batch);
        if held.try_grow(bytes).is_err() {
            let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() + batch.num_rows();
            let size = (held.size() + bytes) as u64;
            return Err(budget.refused(
                &format!("the result would hold about {}", bounded::human_bytes(size)),
                size,
                rows,
            ));
        }
        batches.push(batch);
    }
    Ok((batches, held))
}

/// The bytes of a batch's rows (of a slice: the slice's, not the buffers' it shares).
fn batch_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|c| array_bytes(c)).sum()
}

fn array_bytes(array: &dyn Array) -> usize {
    // A view's text is in buffers Arrow's slice size does not count: 16 bytes a value, and
    // the text of those over 12 bytes (shorter ones are inside the view).
    let views = |lengths: &mut dyn Iterator<Item = u32>| -> usize {
        lengths
            .map(|n| 16 + if n > 12 { n as usize } else { 0 })
            .sum()
    };
    match array.data_type() {
        DataType::Utf8View => views(&mut array.as_string_view().lengths()),
        DataType::BinaryView => views(&mut array.as_binary_view().lengths()),
        _ => (array.to_data().get_slice_memory_size())
            .unwrap_or_else(|_| array.get_array_memory_size()),
    }
}

/// User SQL's plan with its `||` checked ([`bounded::bound_string_concat`]) and its constants
/// checked ([`check_constants`]); the functions that build large values are checked where they
/// are registered ([`bounded::register`]).
fn checked_plan(df: DataFrame, budget: &bounded::Budget) -> Result<DataFrame, DataFusionError> {
    let (state, plan) = df.into_parts();
    let df = DataFrame::new(state, bounded::bound_string_concat(plan, budget)?);
    check_constants(&df, budget.limit() as usize)?;
    Ok(df)
}

/// A constant is repeated on every row of a batch where a query selects it from a table: one
/// of 100 MB (`SELECT repeat('x', 100000000) FROM trades`, folded at planning) is 800 GB for
/// a batch of 8,192 rows, which the memory pool never sees. Constants over the limit's share
/// of one row are refused where a projection over a table scan selects them, in the plan as
/// it will run (after constant folding). Over no table (`SELECT unnest(range(1, 1000000))`)
/// a constant is one row's.
fn check_constants(df: &DataFrame, budget: usize) -> Result<(), DataFusionError> {
    let rows = df.task_ctx().session_config().batch_size().max(1);
    let most = budget / rows;
    let plan = df.clone().into_optimized_plan()?;
    let mut over = None;
    plan.apply_with_subqueries(|node| {
        let LogicalPlan::Projection(projection) = node else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let over_a_table = projection
            .input
            .exists(|n| Ok(matches!(n, LogicalPlan::TableScan(_))))?;
        if over_a_table {
            for expr in &projection.expr {
                expr.apply(|e| {
                    if let Expr::Literal(value, _) = e {
                        over = over.max(Some(value.size()).filter(|size| *size > most));
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match over {
        None => Ok(()),
        Some(size) => Err(DataFusionError::ResourcesExhausted(format!(
            "a constant of {} would be repeated on each of up to {rows} rows of a batch, over \
             the query memory limit of {} (--memory-limit); constants selected from a table may \
             be at most {}",
            bounded::human_bytes(size as u64),
            bounded::human_bytes(budget as u64),
            bounded::human_bytes(most as u64)
        ))),
    }
}

/// Named values the query has no `$name` for are refused, naming what it takes: a misspelt
/// name would otherwise be ignored (and the query fail on the missing one, or run without it).
fn check_param_names(plan: &LogicalPlan, params: &ParamValues) -> Result<(), DataFusionError> {
    let ParamValues::Map(map) = params else {
        return Ok(());
    };
    let takes = plan.get_parameter_names()?;
    let mut unknown: Vec<&str> = (map.keys())
        .filter(|name| !takes.contains(&format!("${name}")))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    let mut takes: Vec<&str> = takes.iter().map(String::as_str).collect();
    takes.sort_unstable();
    Err(DataFusionError::Plan(format!(
        "unknown parameter(s) {}: the query takes {}",
        unknown.join(", "),
        if takes.is_empty() {
            "none".to_string()
        } else {
            takes.join(", ")
        }
    )))
}

/// Named parameters from `name=value` text pairs (query strings, `query --param`): a whole
/// number, a decimal number, or text. `None` when there are none.
pub fn text_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<ParamValues> {
    use datafusion::scalar::ScalarValue;
    let scalar = |text: &str| {
        if let Ok(i) = text.parse::<i64>() {
            ScalarValue::Int64(Some(i))
        } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
            ScalarValue::Float64(Some(f))
        } else {
            ScalarValue::Utf8(Some(text.to_string()))
        }
    };
    let values: Vec<(String, ScalarValue)> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), scalar(v)))
        .collect();
    (!values.is_empty()).then(|| ParamValues::from(values))
}

/// DataFusion's own second line of defence behind [`guard`].
fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn cut(batches: Vec<RecordBatch>, max_rows: usize) -> (Vec<RecordBatch>, bool) {
    let mut out = Vec::with_capacity(batches.len());
    let mut left = max_rows;
    let mut truncated = false;
    for batch in batches {
        if batch.num_rows() <= left {
            left -= batch.num_rows();
            out.push(batch);
        } else {
            out.push(batch.slice(0, left));
            left = 0;
            truncated = true;
        }
    }
    out.retain(|b| b.num_rows() > 0);
    (out, truncated)
}

async fn register_lake_table(
    ctx: &SessionContext,
    lake: &Lake,
    table: Table,
    name: &'static str,
    schema: SchemaRef,
    scope: Option<datafusion::prelude::Expr>,
) -> Result<(), EngineError> {
    let err = |source| EngineError::Table {
        table: name,
        source,
    };
    let provider = lake_table(lake, table, schema).map_err(err)?;
    let provider = match scope {
        Some(predicate) => ctx
            .read_table(provider)
            .and_then(|df| df.filter(predicate))
            .map(|df| df.into_view())
            .map_err(err)?,
        None => provider,
    };
    ctx.register_table(name, provider).map_err(err)?;
    Ok(())
}

/// A lake table folder as a listing table partitioned by `date` (an empty table when the
/// folder does not exist yet).
fn lake_table(
    lake: &Lake,
    table: Table,
    schema: SchemaRef,
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    let dir = lake.table_dir(table);
    let has_partitions = table.date_column().is_some();
    if !dir.is_dir() {
        let schema = if has_partitions {
            partitioned(&schema)
        } else {
            schema
        };
        return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
    }
    let url = ListingTableUrl::parse(format!("{}/", absolute(&dir).display()))?;
    let mut options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if has_partitions {
        options = options.with_table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
    }
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The statement kind, as a user would name it (`INSERT`, `CREATE TABLE`, `SET`).
fn statement_kind(statement: &SqlStatement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    let take = match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
        Some("CREATE" | "DROP" | "ALTER")
            if words.get(1).is_some_and(|w| w.eq_ignore_ascii_case("OR")) =>
        {
            3
        }
        Some("CREATE" | "DROP" | "ALTER" | "DELETE") => 2,
        _ => 1,
    };
    words
        .iter()
        .take(take)
        .map(|w| w.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Does a relation name point at a file or URL rather than a lake table?
fn is_path(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.contains('/')
        || name.contains('\\')
        || lower.contains("://")
        || [".parquet", ".csv", ".json", ".ndjson", ".arrow", ".avro"]
            .iter()
            .any(|e| lower.ends_with(e))
}

/// The write a query's body is, if it is one (`WITH x AS (...) INSERT ...` parses as a query).
fn written(body: &SetExpr) -> Option<&SqlStatement> {
    match body {
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => Some(s),
        SetExpr::Query(q) => written(&q.body),
        SetExpr::SetOperation { left, right, .. } => written(left).or_else(|| written(right)),
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => None,
    }
}

fn check_statement(statement: &SqlStatement) -> Result<(), EngineError> {
    match statement {
        SqlStatement::Query(query) => {
            if let Some(write) = written(&query.body) {
                return Err(EngineError::Refused {
                    what: statement_kind(write),
                });
            }
        }
        SqlStatement::Explain { statement, .. } => return check_statement(statement),
        SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ExplainTable { .. } => {}
        other => {
            return Err(EngineError::Refused {
                what: statement_kind(other),
            })
        }
    }
    let flow = visit_relations(statement, |relation| {
        let name = relation.to_string();
        if is_path(name.trim_matches(|c| c == '\'' || c == '"')) {
            ControlFlow::Break(name)
        } else {
            ControlFlow::Continue(())
        }
    });
    match flow {
        ControlFlow::Break(name) => Err(EngineError::Refused {
            what: format!("reading {name} (a file or URL outside the lake)"),
        }),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn check_df_statement(statement: &DfStatement) -> Result<(), EngineError> {
    match statement {
        DfStatement::Statement(s) => check_statement(s),
        DfStatement::Explain(e) => check_df_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(EngineError::Refused {
            what: "CREATE EXTERNAL TABLE".into(),
        }),
        DfStatement::CopyTo(_) => Err(EngineError::Refused {
            what: "COPY".into(),
        }),
        DfStatement::Reset(_) => Err(EngineError::Refused {
            what: "RESET".into(),
        }),
    }
}

/// The read-only guard: exactly one statement, and it only reads lake tables.
pub fn guard(sql: &str) -> Result<(), EngineError> {
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| {
        let message = match e {
            DataFusionError::SQL(ref p, _) => match p.as_ref() {
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
                ParserError::RecursionLimitExceeded => "statement nested too deeply".into(),
            },
            other => other.strip_backtrace(),
        };
        EngineError::Sql(format!("SQL error: {message}"))
    })?;
    match statements.len() {
        0 => Err(EngineError::Sql(
            "empty query: give a SELECT statement".into(),
        )),
        1 => check_df_statement(&statements[0]),
        n => Err(EngineError::Refused {
            what: format!("{n} statements in one query (send one at a time)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parameters_become_typed_values() {
        use datafusion::scalar::ScalarValue;
        let value = |v: &str| match text_params([("x", v)]) {
            Some(ParamValues::Map(map)) => map["x"].value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(value("42"), ScalarValue::Int64(Some(42)));
        assert_eq!(value("2.5"), ScalarValue::Float64(Some(2.5)));
        assert_eq!(
            value("SYNTH_SPY"),
            ScalarValue::Utf8(Some("SYNTH_SPY".into()))
        );
        assert_eq!(value("NaN"), ScalarValue::Utf8(Some("NaN".into())));
        assert!(text_params([]).is_none());
    }

    fn refused(sql: &str) -> String {
        match guard(sql) {
            Err(EngineError::Refused { what }) => what,
            other => panic!("{sql}: expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn guard_allows_reads() {
        for sql in [
            "SELECT 1",
            "WITH x AS (SELECT * FROM trades) SELECT count(*) FROM x",
            "EXPLAIN SELECT * FROM windows",
            "SHOW TABLES",
            "SELECT * FROM generate_series(1, 3)",
        ] {
            guard(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn guard_refuses_writes_settings_and_paths() {
        assert_eq!(
            refused("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp/x'"),
            "CREATE EXTERNAL TABLE"
        );
        assert_eq!(refused("COPY (SELECT 1) TO '/tmp/x.parquet'"), "COPY");
        assert_eq!(refused("INSERT INTO trades VALUES (1)"), "INSERT");
        assert_eq!(refused("DROP TABLE trades"), "DROP TABLE");
        assert_eq!(refused("SET datafusion.execution.batch_size = 1"), "SET");
        assert_eq!(refused("CREATE TABLE t AS SELECT 1"), "CREATE TABLE");
        assert_eq!(refused("CREATE VIEW v AS SELECT 1"), "CREATE VIEW");
        assert_eq!(refused("DELETE FROM trades"), "DELETE FROM");
        assert!(refused("SELECT * FROM '/etc/passwd'").contains("outside the lake"));
        assert!(refused("SELECT * FROM 'data/x.parquet'").contains("outside the lake"));
        assert!(refused("EXPLAIN COPY (SELECT 1) TO 'x.csv'").contains("COPY"));
        assert!(refused("SELECT 1; DROP TABLE trades").contains("2 statements"));
        // Writes behind a WITH are writes too.
        assert_eq!(
            refused("WITH x AS (SELECT 1) INSERT INTO trades SELECT * FROM x"),
            "INSERT"
        );
        assert_eq!(
            refused("WITH x AS (SELECT 1) DELETE FROM trades"),
            "DELETE FROM"
        );
    }

    /// A long-lived engine (serve's) sees what is committed to its lake after its first query,
    /// a new file in a partition it listed and a new partition alike: DataFusion's list-files
    /// cache would keep the first listing for good (seen: `serve` answering from the trades of
    /// its start while it committed more).
    #[tokio::test]
    async fn what_is_committed_after_a_query_is_seen_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let land = |name: &str, lines: &[&str]| {
            let path = dir.path().join(name);
            std::fs::write(&path, lines.join("\n")).unwrap();
            crate::ingest::ingest_files(crate::ingest::IngestOptions::new(&lake, vec![path]))
        };
        let trade = |day: &str, price: u32| {
            format!(
                r#"{{"timestamp":"{day}T10:00:00","symbol":"A","price":{price},"quantity":100,"venue":"DARK1"}}"#
            )
        };
        land("a.ndjson", &[&trade("2024-01-02", 10)]).await.unwrap();
        let engine = small_engine(&lake).await;
        let count = "SELECT COUNT(*), COUNT(DISTINCT date) FROM trades";
        assert_eq!(row(&engine, count).await, ["1", "1"]);
        assert_eq!(row(&engine, "SELECT COUNT(*) FROM windows").await, ["1"]);
        land(
            "b.ndjson",
            &[&trade("2024-01-02", 11), &trade("2024-01-03", 12)],
        )
        .await
        .unwrap();
        assert_eq!(row(&engine, count).await, ["3", "2"]);
        assert_eq!(row(&engine, "SELECT COUNT(*) FROM windows").await, ["2"]);
    }

    async fn small_engine(dir: &Path) -> Engine {
        let mut options = EngineOptions::new(dir);
        options.memory_limit = 64 << 20;
        Engine::open(options).await.unwrap()
    }

    /// The one row of a query, as text.
    async fn row(engine: &Engine, sql: &str) -> Vec<String> {
        let result = engine
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let batch = arrow::compute::concat_batches(&result.schema, &result.batches).unwrap();
        assert_eq!(batch.num_rows(), 1, "{sql}");
        (batch.columns().iter())
            .map(|c| arrow::util::display::array_value_to_string(c, 0).unwrap())
            .collect()
    }

    /// What a query was refused with, over the 64 MiB limit.
    async fn over_the_limit(engine: &Engine, sql: &str) -> String {
        match engine.sql(sql).await {
            Err(EngineError::Sql(m)) => {
                assert!(m.contains("--memory-limit"), "{sql}: {m}");
                m
            }
            other => panic!("{sql}: expected the memory limit, got {other:?}"),
        }
    }

    /// Values that one call would make far larger than its input are refused before they are
    /// built: one such call aborted the process (a failed allocation), `serve` with it.
    #[tokio::test]
    async fn what_one_expression_builds_is_held_to_the_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = small_engine(dir.path()).await;
        let numbers = "CAST(value AS VARCHAR)";
        let refusals = [
            (
                "SELECT max(length(repeat('abcdefgh', value))) FROM generate_series(1, 10000)"
                    .to_string(),
                "repeat() would build about",
            ),
            ("SELECT length(repeat('x', 100000000))".into(), "repeat()"),
            (
                format!("SELECT max(length(lpad({numbers}, 100000))) FROM generate_series(1, 5000)"),
                "lpad()",
            ),
            (
                format!("SELECT max(length(replace(repeat({numbers}, 100), '1', repeat('z', 1000)))) FROM generate_series(1, 5000)"),
                "replace()",
            ),
            (
                format!("SELECT max(length(regexp_replace(repeat({numbers}, 100), '', repeat('z', 100), 'g'))) FROM generate_series(1, 5000)"),
                "regexp_replace()",
            ),
            // The same with a value for each row (each row's bound, not the constant's).
            (
                format!("SELECT max(length(replace(repeat({numbers}, 100), '1', repeat({numbers}, 200)))) FROM generate_series(1, 5000)"),
                "replace()",
            ),
            (
                format!("SELECT max(length(regexp_replace(repeat({numbers}, 100), '', repeat({numbers}, 20), 'g'))) FROM generate_series(1, 5000)"),
                "regexp_replace()",
            ),
            ("SELECT cardinality(range(20000000))".into(), "range()"),
            (
                "SELECT cardinality(range(DATE '2023-01-01', DATE '2024-01-01', INTERVAL '1 second'))"
                    .into(),
                "range()",
            ),
            (
                "SELECT max(cardinality(array_repeat(value, value * 1000))) FROM generate_series(1, 8000)"
                    .into(),
                "array_repeat()",
            ),
            // `||` doubling a text at each step: 16, 32, 64, then 128 MB.
            (
                format!("WITH a AS (SELECT repeat({numbers}, 500) AS s FROM generate_series(1, 8000)), \
                 b AS (SELECT s || s AS s FROM a), c AS (SELECT s || s AS s FROM b), \
                 d AS (SELECT s || s AS s FROM c), e AS (SELECT s || s AS s FROM d) \
                 SELECT max(length(s)) FROM e"),
                "|| would build about",
            ),
            // A constant repeated on every row of a batch.
            (
                "SELECT repeat('x', 10000) AS s FROM generate_series(1, 10)".into(),
                "a constant of 9.8 KiB would be repeated",
            ),
            // Each batch fits; all of them do not.
            (
                format!("SELECT repeat({numbers}, 1000) AS s FROM generate_series(1, 100000)"),
                "the result would hold about",
            ),
        ];
        for (sql, says) in refusals {
            let message = over_the_limit(&engine, &sql).await;
            assert!(message.contains(says), "{sql}: {message}");
        }
        // The engine is still there.
        assert_eq!(row(&engine, "SELECT 1 + 1").await, ["2"]);
    }

    /// Results hold their share of the pool for as long as they live: a second one that would
    /// fit alone is refused while the first is held, and runs once it is dropped. (Refused
    /// here by `repeat()`'s own check, which reserves from the pool itself and cannot tell
    /// whose memory it is: a 400, where a result refused is busy, below.)
    #[tokio::test]
    async fn results_share_the_memory_limit_while_they_are_held() {
        let dir = tempfile::tempdir().unwrap();
        let engine = small_engine(dir.path()).await;
        // About 40 MB of text: 80,000 numbers of ~5 digits, 100 times each.
        let sql = "SELECT repeat(CAST(value AS VARCHAR), 100) AS s FROM generate_series(1, 80000)";
        let first = engine.sql(sql).await.unwrap();
        assert_eq!(first.num_rows(), 80_000);
        let message = over_the_limit(&engine, sql).await;
        assert!(
            message.contains("of which") && message.contains("is in use"),
            "{message}"
        );
        drop(first);
        assert_eq!(engine.sql(sql).await.unwrap().num_rows(), 80_000);
    }

    /// A refusal says whose memory it was: a query that would fit alone, refused while other
    /// results hold the pool, is busy (HTTP 503, try again) and runs once they are gone; one
    /// over the limit alone is the query's own (400), busy pool or not.
    #[tokio::test]
    async fn a_query_crowded_out_by_others_is_busy_and_one_too_big_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let engine = small_engine(dir.path()).await;
        // A million rows of three 8-byte numbers: about 23 MiB held each, of 64 MiB.
        let sql = "SELECT value, value + 1 AS b, value + 2 AS c FROM generate_series(1, 1000000)";
        let first = engine.sql(sql).await.unwrap();
        let second = engine.sql(sql).await.unwrap();
        match engine.sql(sql).await {
            Err(EngineError::Busy(m)) => assert!(
                m.starts_with("the queries running at once held 4")
                    && m.contains(" of the --memory-limit of 64.0 MiB when this one asked for ")
                    && m.ends_with("it fits alone, so try again shortly"),
                "{m}"
            ),
            other => panic!("expected busy, got {other:?}"),
        }
        drop((first, second));
        assert_eq!(engine.sql(sql).await.unwrap().num_rows(), 1_000_000);
        // Ten such columns (about 72 MB): over the limit alone.
        let columns: Vec<String> = (0..10).map(|i| format!("value + {i} AS c{i}")).collect();
        let huge = format!(
            "SELECT {} FROM generate_series(1, 900000)",
            columns.join(", ")
        );
        let huge = huge.as_str();
        let message = over_the_limit(&engine, huge).await;
        assert!(message.contains("make the result smaller"), "{message}");
    }

    /// The checked functions and `||` give what DataFusion's give, names of columns included.
    #[tokio::test]
    async fn checked_functions_give_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let engine = small_engine(dir.path()).await;
        let sql = "SELECT repeat('ab', 3), lpad('7', 3, '0'), rpad('a', 3, 'b'), \
                   replace('aXa', 'X', 'YY'), regexp_replace('abcb', '(b)', '[$1]', 'g'), \
                   regexp_replace('abcb', 'b', '-'), concat('a', NULL, 'b'), concat_ws('-', 'a', 'b'), \
                   'a' || 'b', 'a' || NULL, 'n' || 1, cardinality(range(5)), \
                   cardinality(generate_series(1, 5)), cardinality(array_repeat(1, 3)), \
                   cardinality(array_resize(make_array(1), 4)), make_array(1) || make_array(2), \
                   cardinality(range(DATE '2024-01-01', DATE '2024-02-01', INTERVAL '1 day')), \
                   repeat('x', 1000) = repeat('x', 1000)";
        let expected = [
            "ababab", "007", "abb", "aYYa", "a[b]c[b]", "a-cb", "ab", "a-b", "ab", "", "n1", "5",
            "5", "3", "4", "[1, 2]", "31", "true",
        ];
        assert_eq!(row(&engine, sql).await, expected);
        // A large constant over no table is one row's, not repeated.
        assert_eq!(
            row(
                &engine,
                "SELECT count(*) FROM (SELECT unnest(range(1, 200000)))"
            )
            .await,
            ["199999"]
        );
        let result = engine
            .sql("SELECT CAST(value AS VARCHAR) || '-' || CAST(value AS VARCHAR) FROM generate_series(7, 7)")
            .await
            .unwrap();
        let name = result.schema.field(0).name();
        assert!(
            name.contains(" || ") && !name.contains("string_concat"),
            "{name}"
        );
        assert_eq!(
            arrow::util::display::array_value_to_string(result.batches[0].column(0), 0).unwrap(),
            "7-7"
        );
    }

    #[test]
    fn guard_reports_syntax_errors_on_one_line() {
        match guard("SELEC 1") {
            Err(EngineError::Sql(m)) => {
                assert!(m.starts_with("SQL error") && !m.contains('\n'), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
