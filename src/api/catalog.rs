//! `GET /api/symbols`, `/api/venues`, `/api/summary?symbol=`: what the dashboard's selectors
//! and headline figures need.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;

use super::sql::{query_pairs, Params};
use super::{negotiate, respond, ApiError, AppState};

/// `GET /api/symbols`: every symbol with its value and trades, largest first.
pub async fn symbols(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(params)?;
    let format = negotiate(&headers, pairs.get("format").map(String::as_str))?;
    let sql =
        "SELECT symbol, SUM(total_trade_value) AS total_value, SUM(num_trades) AS num_trades \
               FROM windows GROUP BY symbol ORDER BY total_value DESC, symbol";
    respond(&state.query(sql, None).await?, format)
}

/// `GET /api/venues`: the venue registry (code, name, kind, location).
pub async fn venues(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(params)?;
    let format = negotiate(&headers, pairs.get("format").map(String::as_str))?;
    respond(
        &state
            .query("SELECT * FROM venues ORDER BY code", None)
            .await?,
        format,
    )
}

/// Totals, dark and off-exchange shares and block prints, over all windows or one symbol's.
const SUMMARY_SQL: &str = "SELECT COUNT(DISTINCT w.symbol) AS symbols, \
     COALESCE(SUM(w.total_trade_value), 0) AS total_value, \
     COALESCE(SUM(w.total_quantity), 0) AS total_quantity, \
     COALESCE(SUM(w.num_trades), 0) AS num_trades, \
     SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) \
        / SUM(w.total_trade_value) AS dark_share, \
     SUM(CASE WHEN COALESCE(v.kind, 'unknown') IN ('dark', 'otc') THEN w.total_trade_value ELSE 0 END) \
        / SUM(w.total_trade_value) AS off_exchange_share, \
     COALESCE(SUM(w.block_trades), 0) AS block_trades, \
     COALESCE(SUM(w.block_value), 0) AS block_value, \
     MIN(w.window_start) AS first_window, MAX(w.window_end) AS last_window \
     FROM windows AS w LEFT JOIN venues AS v ON v.code = w.venue";

/// `GET /api/summary[?symbol=X]`.
pub async fn summary(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(params)?;
    let format = negotiate(&headers, pairs.get("format").map(String::as_str))?;
    let result = match pairs.get("symbol").filter(|s| !s.is_empty()) {
        Some(symbol) => {
            let sql = format!("{SUMMARY_SQL} WHERE w.symbol = $1");
            let params = ParamValues::from(vec![ScalarValue::Utf8(Some(symbol.clone()))]);
            state.query(&sql, Some(params)).await?
        }
        None => state.query(SUMMARY_SQL, None).await?,
    };
    respond(&result, format)
}
