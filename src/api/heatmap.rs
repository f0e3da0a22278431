//! The original API's `GET /api/heatmap_data` (latest windows, the original field names and
//! timestamp form, newest last), the same windows as files Kepler.gl loads by extension
//! (`.json`, `.csv`, `.arrow`), and a ready Kepler.gl map (`/api/kepler/map.json`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState, Encoded};
use crate::engine::QueryResult;
use crate::output::OutputFormat;

/// The latest windows (at most `limit`), oldest first. `time_format` renders the timestamps;
/// `whole_numbers_as_real` turns counts into doubles so Kepler.gl never reads a large count as
/// an epoch time.
fn latest_windows_sql(limit: usize, time_format: &str, whole_numbers_as_real: bool) -> String {
    let count = |c: &str| {
        if whole_numbers_as_real {
            format!("CAST({c} AS DOUBLE) AS {c}")
        } else {
            c.to_string()
        }
    };
    format!(
        "SELECT to_char(window_start, '{time_format}') AS window_start, \
         to_char(window_end, '{time_format}') AS window_end, symbol, venue, venue_kind, \
         total_trade_value, {}, {}, avg_price, vwap, min_price, max_price, {}, block_value, \
         {}, {}, {}, latitude, longitude, is_final, {} \
         FROM (SELECT * FROM ({CURRENT_WINDOWS}) ORDER BY window_start DESC, symbol, venue LIMIT {limit}) \
         ORDER BY window_start, symbol, venue",
        count("total_quantity"),
        count("num_trades"),
        count("block_trades"),
        count("buy_quantity"),
        count("sell_quantity"),
        count("spoof_trades"),
        count("version"),
    )
}

/// The lake's windows, overlaid by the live pipeline's (open, or closed but not yet committed).
pub const CURRENT_WINDOWS: &str = "SELECT * EXCLUDE (date) FROM windows AS w WHERE NOT EXISTS \
     (SELECT 1 FROM live_windows AS l WHERE l.window_start = w.window_start \
     AND l.window_end = w.window_end AND l.symbol = w.symbol AND l.venue = w.venue) \
     UNION ALL SELECT * FROM live_windows";

const ORIGINAL_TIME: &str = "%Y-%m-%dT%H:%M:%S";
const KEPLER_TIME: &str = "%Y-%m-%d %H:%M:%S";

async fn latest(
    state: &AppState,
    headers: &HeaderMap,
    format: OutputFormat,
    kepler: bool,
) -> Result<Response, ApiError> {
    let key = format!("heatmap:{}:{kepler}", format.media_type());
    let encoded = state
        .cache
        .get_or_build(&key, || async {
            let sql = latest_windows_sql(
                state.options.heatmap_rows,
                if kepler { KEPLER_TIME } else { ORIGINAL_TIME },
                kepler,
            );
            Encoded::new(&state.query(&sql, None).await?, format)
        })
        .await?;
    Ok(encoded.response_for(headers))
}

/// `GET /api/heatmap_data`: what the original Flask API served.
pub async fn heatmap_data(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    latest(&state, &headers, OutputFormat::Json, false).await
}

pub async fn heatmap_json(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    latest(&state, &headers, OutputFormat::Json, true).await
}

pub async fn heatmap_csv(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    latest(&state, &headers, OutputFormat::Csv, true).await
}

pub async fn heatmap_arrow(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    latest(&state, &headers, OutputFormat::Arrow, true).await
}

/// A query result as JSON objects, one per row (what `arrow_json` writes, timestamps as text).
pub fn rows_as_json(result: &QueryResult) -> Result<Vec<Value>, ApiError> {
    let mut rows = Vec::with_capacity(result.num_rows());
    for batch in &result.batches {
        let mut buf = Vec::new();
        {
            let mut writer = arrow::json::ArrayWriter::new(&mut buf);
            writer
                .write(batch)
                .and_then(|()| writer.finish())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        if buf.is_empty() {
            continue;
        }
        let objects: Vec<Value> =
            serde_json::from_slice(&buf).map_err(|e| ApiError::Internal(e.to_string()))?;
        rows.extend(objects);
    }
    Ok(rows)
}

/// Per window and matching-engine site: value, trades and the dark share there.
const SITES_SQL: &str =
    "SELECT to_char(at, '%Y-%m-%d %H:%M:%S') AS window_start, latitude, longitude, \
     venues, total_value, num_trades, dark_share FROM ( \
     SELECT w.window_start AS at, w.latitude AS latitude, w.longitude AS longitude, \
     array_to_string(array_sort(array_agg(DISTINCT w.venue)), ' ') AS venues, \
     SUM(w.total_trade_value) AS total_value, CAST(SUM(w.num_trades) AS DOUBLE) AS num_trades, \
     SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) \
        / SUM(w.total_trade_value) AS dark_share \
     FROM (SELECT * FROM ({current}) ORDER BY window_start DESC LIMIT {limit}) AS w \
     LEFT JOIN venues AS v ON v.code = w.venue \
     WHERE w.latitude IS NOT NULL AND w.longitude IS NOT NULL \
     GROUP BY w.window_start, w.latitude, w.longitude) \
     ORDER BY at, latitude, longitude";

/// `GET /api/kepler/map.json`: a complete Kepler.gl map (dataset + point layer sized by value,
/// coloured by dark share, and a time filter on window_start).
pub async fn kepler_map(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let sql = SITES_SQL
        .replace("{current}", CURRENT_WINDOWS)
        .replace("{limit}", &state.options.heatmap_rows.to_string());
    let result = state.query(&sql, None).await?;
    let rows = rows_as_json(&result)?;
    let fields = [
        ("window_start", "timestamp"),
        ("latitude", "real"),
        ("longitude", "real"),
        ("venues", "string"),
        ("total_value", "real"),
        ("num_trades", "real"),
        ("dark_share", "real"),
    ];
    let all_data: Vec<Value> = rows
        .iter()
        .map(|r| Value::Array(fields.iter().map(|(f, _)| r[*f].clone()).collect()))
        .collect();
    let times: Vec<i64> = rows
        .iter()
        .filter_map(|r| r["window_start"].as_str())
        .filter_map(|t| crate::time::parse_timestamp(t).ok())
        .map(|micros| micros / 1000)
        .collect();
    let range = match (times.iter().min(), times.iter().max()) {
        (Some(lo), Some(hi)) => json!([lo, hi + 300_000]),
        _ => json!([]),
    };
    Ok(Json(json!({
        "datasets": [{
            "version": "v1",
            "data": {
                "id": "darkpool_windows",
                "label": "darkpool windows by site",
                "color": [94, 53, 177],
                "allData": all_data,
                "fields": fields.iter().map(|(name, kind)| {
                    let mut f = json!({"name": name, "type": kind, "format": "", "analyzerType": kind.to_uppercase()});
                    if *kind == "timestamp" {
                        f["format"] = json!("YYYY-M-D H:m:s");
                        f["analyzerType"] = json!("DATETIME");
                    }
                    f
                }).collect::<Vec<Value>>(),
            }
        }],
        "config": {
            "version": "v1",
            "config": {
                "visState": {
                    "filters": [{
                        "dataId": ["darkpool_windows"],
                        "id": "window_start_filter",
                        "name": ["window_start"],
                        "type": "timeRange",
                        "value": range,
                        "enlarged": true,
                        "plotType": "histogram",
                        "animationWindow": "free",
                        "yAxis": null
                    }],
                    "layers": [{
                        "id": "darkpool_sites",
                        "type": "point",
                        "config": {
                            "dataId": "darkpool_windows",
                            "label": "Traded value by site (colour: dark share)",
                            "color": [94, 53, 177],
                            "columns": {"lat": "latitude", "lng": "longitude", "altitude": null},
                            "isVisible": true,
                            "visConfig": {
                                "radius": 12,
                                "fixedRadius": false,
                                "opacity": 0.8,
                                "outline": true,
                                "thickness": 1,
                                "radiusRange": [4, 60],
                                "colorRange": {
                                    "name": "darkpool lit to dark",
                                    "type": "sequential",
                                    "category": "Custom",
                                    "colors": ["#EF6C00", "#C2611F", "#8E4C6E", "#5E35B1"]
                                }
                            }
                        },
                        "visualChannels": {
                            "colorField": {"name": "dark_share", "type": "real"},
                            "colorScale": "quantize",
                            "sizeField": {"name": "total_value", "type": "real"},
                            "sizeScale": "sqrt"
                        }
                    }],
                    "interactionConfig": {
                        "tooltip": {
                            "enabled": true,
                            "fieldsToShow": {"darkpool_windows": [
                                {"name": "window_start", "format": null},
                                {"name": "venues", "format": null},
                                {"name": "total_value", "format": null},
                                {"name": "dark_share", "format": null}
                            ]}
                        }
                    }
                },
                "mapState": {"latitude": 39.5, "longitude": -92.0, "zoom": 3.3, "bearing": 0, "pitch": 0},
                "mapStyle": {"styleType": "dark"}
            }
        },
        "info": {
            "app": "kepler.gl",
            "title": "darkpool: where liquidity trades",
            "description": "Traded value per matching-engine site and 5-minute window; colour = dark pool share",
            "source": "darkpool"
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kepler_files_send_counts_as_doubles() {
        let sql = latest_windows_sql(10, KEPLER_TIME, true);
        assert!(sql.contains("CAST(total_quantity AS DOUBLE) AS total_quantity"));
        assert!(sql.contains("LIMIT 10"));
        let original = latest_windows_sql(10, ORIGINAL_TIME, false);
        assert!(original.contains(", total_quantity, num_trades,"));
    }
}
