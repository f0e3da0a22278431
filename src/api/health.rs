//! `GET /healthz` (the process answers, and how its pipeline stands), `/readyz` (the lake can be queried) and `/metrics`
//! (Prometheus text: what the lake holds and how queries fare).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::live::{LiveStats, PipelineState};

/// The process answers; with an embedded pipeline, also how that stands. A pipeline stopped on
/// an error makes it 503 (with the error), so a liveness check restarts the server, which
/// resumes from the lake; the API meanwhile keeps serving (`/readyz` stays 200). One waiting to
/// start again after a transient failure (`restarting`) is still 200: the server is doing what
/// a restart would.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let pipeline = state.live.as_ref().map(|live| live.state.borrow().clone());
    health(pipeline.as_ref())
}

/// `{"status": "ok"}`, with how the pipeline stands (if there is one): 503 once it failed.
fn health(pipeline: Option<&PipelineState>) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("status".into(), "ok".into());
    let Some(pipeline) = pipeline else {
        return Json(body).into_response();
    };
    pipeline.describe(&mut body);
    if matches!(pipeline, PipelineState::Failed(_)) {
        body.insert("status".into(), "failed".into());
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(body).into_response()
}

/// What an `ingest --brokers` member serves with `--metrics-bind`: `/metrics` (its
/// `darkpool_live_*` counters, as `serve` has them) and `/healthz` (as `serve`'s: 200 while it
/// runs or waits to start again after a transient failure, 503 once it stopped on an error).
pub fn pipeline_router(
    stats: Arc<LiveStats>,
    state: tokio::sync::watch::Receiver<PipelineState>,
) -> axum::Router {
    let metrics_state = state.clone();
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (stats, state) = (stats.clone(), metrics_state.clone());
                async move {
                    let mut out = String::new();
                    write_pipeline_metrics(&mut out, &stats, &state.borrow());
                    prometheus_text(out)
                }
            }),
        )
        .route(
            "/healthz",
            axum::routing::get(move || {
                let state = state.clone();
                async move { health(Some(&state.borrow().clone())) }
            }),
        )
}

/// A Prometheus text exposition.
fn prometheus_text(out: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Ready when the lake's tables can be queried.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state
        .engine
        .sql("SELECT COUNT(*) AS windows FROM window_history")
        .await
    {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "not_ready", "message": e.to_string()})),
        )
            .into_response(),
    }
}

/// (label, count) rows of a two-column query (or one count with an empty label).
async fn counts(state: &AppState, sql: &str) -> Result<Vec<(String, i64)>, ApiError> {
    let result = state.engine.sql(sql).await?;
    let mut out = Vec::new();
    for batch in &result.batches {
        let last = batch.num_columns() - 1;
        let values = arrow::compute::cast(batch.column(last), &DataType::Int64)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let values = values.as_primitive::<Int64Type>();
        let labels = if last > 0 {
            Some(
                arrow::compute::cast(batch.column(0), &DataType::Utf8)
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            )
        } else {
            None
        };
        for i in 0..batch.num_rows() {
            let label = labels
                .as_ref()
                .map(|l| l.as_string::<i32>().value(i).to_string())
                .unwrap_or_default();
            out.push((
                label,
                if values.is_null(i) {
                    0
                } else {
                    values.value(i)
                },
            ));
        }
    }
    Ok(out)
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let mut out = String::new();
    let single = [
        (
            "darkpool_trades_ingested",
            "Trades in the lake.",
            "SELECT COUNT(*) FROM trades",
        ),
        (
            "darkpool_late_trades",
            "Trades that arrived after their window was final.",
            "SELECT COUNT(*) FROM late",
        ),
        (
            "darkpool_windows_emitted",
            "Window versions written (corrections included).",
            "SELECT COUNT(*) FROM window_history",
        ),
    ];
    for (name, help, sql) in single {
        let value = counts(&state, sql).await?.first().map_or(0, |c| c.1);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP darkpool_rejects Input records rejected, by reason.\n# TYPE darkpool_rejects gauge"
    );
    for (reason, n) in counts(
        &state,
        "SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY reason",
    )
    .await?
    {
        let _ = writeln!(
            out,
            "darkpool_rejects{{reason=\"{}\"}} {n}",
            escape_label(&reason)
        );
    }
    let m = &state.metrics;
    let queries = m.queries.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP darkpool_queries_total SQL queries answered by the API.\n# TYPE darkpool_queries_total counter\ndarkpool_queries_total {queries}\n\
         # HELP darkpool_query_errors_total API queries that failed.\n# TYPE darkpool_query_errors_total counter\ndarkpool_query_errors_total {}\n\
         # HELP darkpool_query_seconds Time spent in API queries.\n# TYPE darkpool_query_seconds summary\ndarkpool_query_seconds_sum {:.6}\ndarkpool_query_seconds_count {queries}",
        m.errors.load(Ordering::Relaxed),
        m.micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    if let Some(live) = &state.live {
        write_pipeline_metrics(&mut out, &live.stats, &live.state.borrow());
    }
    Ok(prometheus_text(out))
}

/// The pipeline's own metrics (`darkpool_live_*`): `serve`'s in-process pipeline's, or an
/// `ingest --brokers --metrics-bind` member's.
pub fn write_pipeline_metrics(out: &mut String, l: &LiveStats, state: &PipelineState) {
    for (name, help, value) in [
        (
            "darkpool_live_trades_total",
            "Trades the pipeline landed in the lake (counted at its commits).",
            &l.trades,
        ),
        (
            "darkpool_live_rejects_total",
            "Records the pipeline rejected and landed in the lake.",
            &l.rejected,
        ),
        (
            "darkpool_live_late_trades_total",
            "Late trades the pipeline landed in the lake.",
            &l.late,
        ),
        (
            "darkpool_live_windows_closed_total",
            "Window rows the pipeline closed and landed in the lake.",
            &l.windows_closed,
        ),
        (
            "darkpool_live_commits_total",
            "Lake commits of the pipeline.",
            &l.commits,
        ),
        (
            "darkpool_live_alignment_pauses_total",
            "Kafka partitions paused for being over --max-drift ahead in event time.",
            &l.alignment_pauses,
        ),
        (
            "darkpool_live_lost_offsets_total",
            "Kafka offsets the broker deleted (its retention) before they were read.",
            &l.lost_offsets,
        ),
        (
            "darkpool_live_restarts_total",
            "Times the pipeline started again after a transient failure (a full disk, the brokers away).",
            &l.restarts,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let running = *state == PipelineState::Running;
    let _ = writeln!(
        out,
        "# HELP darkpool_live_running 1 while the pipeline runs; 0 while it waits to start again or once it stopped (see /healthz for why).\n\
         # TYPE darkpool_live_running gauge\ndarkpool_live_running {}",
        u8::from(running)
    );
    let _ = writeln!(
        out,
        "# HELP darkpool_live_paused_partitions Kafka partitions paused by watermark alignment now.\n\
         # TYPE darkpool_live_paused_partitions gauge\ndarkpool_live_paused_partitions {}",
        l.paused_partitions.load(Ordering::Relaxed)
    );
    let behind = l.behind.lock().ok().and_then(|b| *b);
    if let Some(behind) = behind {
        let _ = writeln!(
            out,
            "# HELP darkpool_live_messages_behind Kafka messages the brokers hold past what the pipeline has read (its consumer lag), at its last commit; a partition paused for watermark alignment (darkpool_live_paused_partitions) counts as of its pause.\n\
             # TYPE darkpool_live_messages_behind gauge\ndarkpool_live_messages_behind {behind}"
        );
    }
    let watermark = l.watermark_micros.load(Ordering::Relaxed);
    if watermark != 0 {
        let _ = writeln!(
            out,
            "# HELP darkpool_live_watermark_seconds Event time up to which windows are final (Unix seconds).\n\
             # TYPE darkpool_live_watermark_seconds gauge\ndarkpool_live_watermark_seconds {:.6}",
            watermark as f64 / 1e6
        );
    }
}
