//! `GET /api/dashboard[?symbol=X]`: everything the dashboard page draws, in one JSON document
//! — headline totals, per-venue figures, value over time by venue and by venue kind, the
//! newest block prints and per-site totals for the map. Windows are the lake's overlaid by the
//! live pipeline's (open or not yet committed), as in `/api/heatmap_data`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use serde_json::{json, Value};

use super::catalog::{scope, SUMMARY};
use super::heatmap::{rows_as_json, CURRENT_WINDOWS};
use super::sql::{query_pairs, Params};
use super::{ApiError, AppState, Encoded};
use crate::output::OutputFormat;

/// Window starts the time series cover (the newest; 288 = a day of 5-minute windows).
const SERIES_POINTS: usize = 288;
/// Block prints listed.
const BLOCK_ROWS: usize = 50;

const VENUES: &str =
    "SELECT venue, MAX(venue_name) AS name, kind, SUM(total_trade_value) AS total_value, \
     SUM(total_quantity) AS total_quantity, SUM(num_trades) AS num_trades, \
     CAST(SUM(total_quantity) AS DOUBLE) / SUM(num_trades) AS avg_trade_size, \
     SUM(block_trades) AS block_trades, \
     SUM(total_trade_value) / SUM(SUM(total_trade_value)) OVER () AS value_share \
     FROM scope GROUP BY venue, kind ORDER BY total_value DESC, venue";

const BY_KIND: &str = "SELECT to_char(window_start, '%Y-%m-%dT%H:%M:%SZ') AS t, \
     SUM(CASE WHEN kind = 'dark' THEN total_trade_value ELSE 0 END) AS dark, \
     SUM(CASE WHEN kind = 'lit' THEN total_trade_value ELSE 0 END) AS lit, \
     SUM(CASE WHEN kind = 'otc' THEN total_trade_value ELSE 0 END) AS otc, \
     SUM(CASE WHEN kind = 'unknown' THEN total_trade_value ELSE 0 END) AS unknown, \
     SUM(total_trade_value) AS total, SUM(num_trades) AS trades, \
     bool_and(is_final) AS final \
     FROM scope WHERE window_start IN (SELECT DISTINCT window_start FROM scope \
        ORDER BY window_start DESC LIMIT {points}) \
     GROUP BY window_start ORDER BY window_start";

const BY_VENUE: &str = "SELECT to_char(window_start, '%Y-%m-%dT%H:%M:%SZ') AS t, venue, \
     SUM(total_trade_value) AS value FROM scope \
     WHERE window_start IN (SELECT DISTINCT window_start FROM scope \
        ORDER BY window_start DESC LIMIT {points}) \
     GROUP BY window_start, venue ORDER BY window_start, venue";

const SITES: &str = "SELECT latitude, longitude, MAX(site) AS site, \
     array_to_string(array_sort(array_agg(DISTINCT venue)), ' ') AS venues, \
     SUM(total_trade_value) AS total_value, SUM(num_trades) AS num_trades, \
     SUM(CASE WHEN kind = 'dark' THEN total_trade_value ELSE 0 END) / SUM(total_trade_value) AS dark_share \
     FROM (SELECT s.*, v.site AS site FROM scope AS s LEFT JOIN venues AS v ON v.code = s.venue) \
     WHERE latitude IS NOT NULL AND longitude IS NOT NULL \
     GROUP BY latitude, longitude ORDER BY total_value DESC";

const BLOCKS: &str =
    "SELECT to_char(t.\"timestamp\", '%Y-%m-%dT%H:%M:%SZ') AS time, t.symbol, t.venue, \
     COALESCE(v.kind, 'unknown') AS kind, t.price, t.quantity, t.trade_value, t.side \
     FROM trades AS t LEFT JOIN venues AS v ON v.code = t.venue \
     WHERE (t.quantity >= 10000 OR t.trade_value >= 200000) {filter} \
     ORDER BY t.\"timestamp\" DESC, t.symbol, t.venue LIMIT {rows}";

/// Each section's SQL for one symbol (bound as `$1`) or all.
fn sections(symbol: bool) -> Vec<(&'static str, String)> {
    let with = scope(&format!("({CURRENT_WINDOWS})"), symbol);
    let over_scope = |body: &str| {
        format!(
            "{with}{}",
            body.replace("{points}", &SERIES_POINTS.to_string())
        )
    };
    vec![
        ("summary", over_scope(SUMMARY)),
        ("venues", over_scope(VENUES)),
        ("by_kind", over_scope(BY_KIND)),
        ("by_venue", over_scope(BY_VENUE)),
        ("sites", over_scope(SITES)),
        (
            "blocks",
            BLOCKS
                .replace("{filter}", if symbol { "AND t.symbol = $1" } else { "" })
                .replace("{rows}", &BLOCK_ROWS.to_string()),
        ),
    ]
}

/// `GET /api/dashboard[?symbol=X]`.
pub async fn dashboard(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(params)?;
    let symbol = pairs
        .get("symbol")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "ALL");
    let key = format!("dashboard:{}", symbol.as_deref().unwrap_or(""));
    let encoded = state
        .cache
        .get_or_build(&key, || async {
            let mut document = serde_json::Map::new();
            document.insert("symbol".into(), json!(symbol));
            document.insert("live".into(), json!(state.live.is_some()));
            if let Some(live) = &state.live {
                document.insert("pipeline".into(), live.stats.figures());
            }
            if state.followed.is_some() {
                // When a process last committed to the lake this server follows.
                let last = state.engine.lake().commits_changed_at().and_then(|at| {
                    let micros = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros();
                    Some(crate::human::utc_second(i64::try_from(micros).ok()?))
                });
                document.insert("following".into(), json!({ "last_commit": last }));
            }
            for (name, sql) in sections(symbol.is_some()) {
                let params = symbol
                    .as_ref()
                    .map(|s| ParamValues::from(vec![ScalarValue::Utf8(Some(s.clone()))]));
                let rows = rows_as_json(&state.query(&sql, params).await?)?;
                let value = if name == "summary" {
                    rows.into_iter().next().unwrap_or_else(|| json!({}))
                } else {
                    Value::Array(rows)
                };
                document.insert(name.into(), value);
            }
            let body = serde_json::to_vec(&Value::Object(document))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(Encoded::from_body(OutputFormat::Json, 1, false, body))
        })
        .await?;
    Ok(encoded.response_for(&headers))
}
