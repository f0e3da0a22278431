//! `POST /api/sql` (user SQL), `GET /api/queries` and `GET /api/queries/{name}` (named SQL).
//! Everything goes through the engine's read-only guard and limits, like `darkpool query`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use serde_json::Value;

use super::{negotiate, respond, ApiError, AppState};
use crate::output::OutputFormat;

/// Query-string pairs as axum extracts them (a malformed string is a 400, not axum's text).
pub(super) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Query-string pairs, or a 400 for a malformed query string.
pub(super) fn query_pairs(params: Params) -> Result<HashMap<String, String>, ApiError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))
}

/// Query-string pairs without `format`, and the result format the request asks for (`?format=`,
/// then `Accept`).
pub(super) fn pairs_and_format(
    params: Params,
    headers: &HeaderMap,
) -> Result<(HashMap<String, String>, OutputFormat), ApiError> {
    let mut pairs = query_pairs(params)?;
    let format = negotiate(headers, pairs.remove("format").as_deref())?;
    Ok((pairs, format))
}

/// A JSON value as a SQL parameter.
fn scalar(value: &Value) -> Result<ScalarValue, ApiError> {
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => {
            return Err(ApiError::BadRequest(format!(
                "parameter {other} is not a string, number, boolean or null"
            )))
        }
    })
}

/// The SQL and parameters of a `POST /api/sql` body: plain SQL text, or JSON
/// `{"sql": "...", "params": [...] | {...}}`.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<(String, Option<ParamValues>), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        || text.trim_start().starts_with('{');
    if !is_json {
        return Ok((text.to_string(), None));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let sql = value
        .get("sql")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("the JSON body needs a \"sql\" string".into()))?
        .to_string();
    let params = match value.get("params") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(ParamValues::from(
            items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
        )),
        Some(Value::Object(map)) => Some(ParamValues::from(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), scalar(v)?)))
                .collect::<Result<Vec<(String, ScalarValue)>, ApiError>>()?,
        )),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "\"params\" must be an array ($1, $2…) or an object ($name), not {other}"
            )))
        }
    };
    Ok((sql, params))
}

/// `POST /api/sql`: run read-only SQL; the answer's format follows `Accept` or `?format=`.
pub async fn run_sql(
    State(state): State<Arc<AppState>>,
    params: Params,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(params)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge {
                limit: state.options.max_body_bytes,
            }
        } else {
            ApiError::BadRequest(format!("cannot read the body: {e}"))
        }
    })?;
    let format = negotiate(&headers, pairs.get("format").map(String::as_str))?;
    let (sql, params) = parse_body(&headers, &body)?;
    let result = state.query(&sql, params).await?;
    respond(&result, format)
}

/// `GET /api/queries`: the named queries with what they answer.
pub async fn list_queries(State(state): State<Arc<AppState>>) -> Json<Value> {
    let list: Vec<Value> = state
        .engine
        .named_queries()
        .iter()
        .map(|q| serde_json::json!({"name": q.name, "description": q.description, "sql": q.sql}))
        .collect();
    Json(Value::Array(list))
}

/// `GET /api/queries/{name}`: run a named query; query-string pairs other than `format` bind
/// its `$name` placeholders.
pub async fn run_named(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (pairs, format) = pairs_and_format(params, &headers)?;
    let sql = state.engine.named_sql(&name)?;
    let params = crate::engine::text_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let result = state.query(&sql, params).await?;
    respond(&result, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_sql_text_or_json_with_params() {
        let none = HeaderMap::new();
        let (sql, params) = parse_body(&none, b"SELECT 1").unwrap();
        assert_eq!((sql.as_str(), params.is_none()), ("SELECT 1", true));
        let (sql, params) = parse_body(
            &none,
            br#"{"sql": "SELECT $1", "params": ["x", 2, 2.5, true, null]}"#,
        )
        .unwrap();
        assert_eq!(sql, "SELECT $1");
        match params {
            Some(ParamValues::List(list)) => assert_eq!(list.len(), 5),
            other => panic!("{other:?}"),
        }
        assert!(parse_body(&none, br#"{"sql": 1}"#).is_err());
        assert!(parse_body(&none, br#"{"sql": "x", "params": [[1]]}"#).is_err());
        assert!(parse_body(&none, b"\xff").is_err());
    }
}
