//! `GET /api/symbols`, `/api/venues`, `/api/summary?symbol=`: what the dashboard's selectors
//! and headline figures need.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;

use super::sql::{pairs_and_format, Params};
use super::{respond, ApiError, AppState};

/// `GET /api/symbols`: every symbol with its value and trades, largest first.
pub async fn symbols(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, format) = pairs_and_format(params, &headers)?;
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
    let (_, format) = pairs_and_format(params, &headers)?;
    respond(
        &state
            .query("SELECT * FROM venues ORDER BY code", None)
            .await?,
        format,
    )
}

/// The windows of `source` (a table or a parenthesised query) with their venue's kind and
/// name, as the CTE `scope`; with `by_symbol`, only the symbol bound as `$1`.
pub(super) fn scope(source: &str, by_symbol: bool) -> String {
    format!(
        "WITH scope AS (SELECT w.*, COALESCE(v.kind, 'unknown') AS kind, v.name AS venue_name \
         FROM {source} AS w LEFT JOIN venues AS v ON v.code = w.venue{}) ",
        if by_symbol {
            " WHERE w.symbol = $1"
        } else {
            ""
        }
    )
}

/// Totals, dark and off-exchange shares, block prints and the time covered, over `scope`:
/// `/api/summary` and the dashboard's headline figures.
pub(super) const SUMMARY: &str = "SELECT COUNT(DISTINCT symbol) AS symbols, \
     COUNT(DISTINCT venue) AS venues, \
     COALESCE(SUM(total_trade_value), 0) AS total_value, \
     COALESCE(SUM(total_quantity), 0) AS total_quantity, \
     COALESCE(SUM(num_trades), 0) AS num_trades, \
     SUM(CASE WHEN kind = 'dark' THEN total_trade_value ELSE 0 END) / SUM(total_trade_value) AS dark_share, \
     SUM(CASE WHEN kind IN ('dark', 'otc') THEN total_trade_value ELSE 0 END) \
        / SUM(total_trade_value) AS off_exchange_share, \
     COALESCE(SUM(block_trades), 0) AS block_trades, \
     COALESCE(SUM(block_value), 0) AS block_value, \
     MIN(window_start) AS first_window, MAX(window_end) AS last_window, \
     COUNT(*) AS windows FROM scope";

/// `GET /api/summary[?symbol=X]`.
pub async fn summary(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (pairs, format) = pairs_and_format(params, &headers)?;
    let symbol = pairs.get("symbol").filter(|s| !s.is_empty());
    let sql = format!("{}{SUMMARY}", scope("windows", symbol.is_some()));
    let params = symbol.map(|s| ParamValues::from(vec![ScalarValue::Utf8(Some(s.clone()))]));
    let result = state.query(&sql, params).await?;
    respond(&result, format)
}
