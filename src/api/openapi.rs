//! `GET /api/openapi.json`: the API described for clients and tools (OpenAPI 3.1).

use axum::Json;
use serde_json::{json, Value};

fn formats() -> Value {
    json!({
        "application/json": {}, "application/x-ndjson": {}, "text/csv": {},
        "application/vnd.apache.arrow.stream": {}, "application/vnd.apache.parquet": {}
    })
}

fn errors() -> Value {
    let error = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "400": {"description": "bad request or SQL that does not parse or plan", "content": error["content"]},
        "403": {"description": "a statement the read-only guard refuses", "content": error["content"]},
        "404": {"description": "no such resource or named query", "content": error["content"]},
        "406": {"description": "no acceptable result format", "content": error["content"]},
        "413": {"description": "request body too large", "content": error["content"]},
        "503": {"description": "busy: the queries running at once hold the memory this one needs (it fits alone); try again after Retry-After seconds", "content": error["content"]},
        "504": {"description": "the query ran past its time limit", "content": error["content"]}
    })
}

fn format_param() -> Value {
    json!({"name": "format", "in": "query", "required": false,
           "description": "json, ndjson, csv, arrow or parquet (overrides Accept)",
           "schema": {"type": "string", "enum": ["json", "ndjson", "csv", "arrow", "parquet"]}})
}

pub async fn document() -> Json<Value> {
    let rows = |description: &str| {
        let mut r = json!({"200": {"description": description, "content": formats()}});
        if let (Some(map), Some(errs)) = (r.as_object_mut(), errors().as_object()) {
            map.extend(errs.clone());
        }
        r
    };
    let file = |media: &str, what: &str| json!({"get": {"summary": what, "responses": {"200": {"description": what, "content": {media: {}}}}}});
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "darkpool", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Where equity liquidity trades: windows, trades and SQL over the darkpool lake."},
        "paths": {
            "/api/heatmap_data": {"get": {"summary": "Latest windows in the original API's JSON shape, newest last", "responses": rows("windows")}},
            "/api/heatmap_data.json": file("application/json", "Latest windows for Kepler.gl (timestamps YYYY-MM-DD HH:MM:SS)"),
            "/api/heatmap_data.csv": file("text/csv", "Latest windows for Kepler.gl as CSV"),
            "/api/heatmap_data.arrow": file("application/vnd.apache.arrow.stream", "Latest windows for Kepler.gl as Arrow IPC"),
            "/api/kepler/map.json": file("application/json", "A complete Kepler.gl map: dataset, point layer, time filter"),
            "/api/sql": {"post": {
                "summary": "Run one read-only SQL statement over the lake",
                "parameters": [format_param()],
                "requestBody": {"required": true, "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object", "required": ["sql"], "properties": {
                        "sql": {"type": "string"},
                        "params": {"oneOf": [{"type": "array"}, {"type": "object"}],
                                   "description": "values for $1, $2… (array) or $name (object)"}}}}}},
                "responses": rows("query result")}},
            "/api/queries": {"get": {"summary": "Named queries (sql/*.sql)", "responses": {"200": {"description": "names and descriptions"}}}},
            "/api/queries/{name}": {"get": {
                "summary": "Run a named query; other query-string pairs bind its $name placeholders",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}, format_param()],
                "responses": rows("query result")}},
            "/api/symbols": {"get": {"summary": "Symbols by traded value", "parameters": [format_param()], "responses": rows("symbols")}},
            "/api/venues": {"get": {"summary": "The venue registry", "parameters": [format_param()], "responses": rows("venues")}},
            "/api/summary": {"get": {"summary": "Totals, dark share and block prints (optionally for one symbol)",
                "parameters": [{"name": "symbol", "in": "query", "required": false, "schema": {"type": "string"}}, format_param()],
                "responses": rows("one row of totals")}},
            "/api/dashboard": {"get": {"summary": "Everything the dashboard draws: summary, venues, value by kind and by venue per window (newest 288), sites, newest block prints; with a live pipeline its figures (trades landed, watermark, Kafka lag)",
                "parameters": [{"name": "symbol", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "one JSON document", "content": {"application/json": {}}}, "400": errors()["400"]}}},
            "/api/stream": {"get": {"summary": "Server-Sent Events: status, window (closed or corrected windows), open (open windows, at most once a tick; with --no-ingest, the windows not emitted yet, after each commit to the lake)",
                "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {}}}}}},
            "/": {"get": {"summary": "The dashboard", "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
            "/healthz": {"get": {"summary": "The process answers; with an embedded pipeline, `pipeline` is running, finished or failed", "responses": {"200": {"description": "ok"}, "503": {"description": "the embedded pipeline stopped on an error (`error`); the API still serves the lake"}}}},
            "/readyz": {"get": {"summary": "The lake can be queried", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}}
        },
        "components": {"schemas": {"Error": {"type": "object", "required": ["error", "message"], "properties": {
            "error": {"type": "string", "description": "bad_request, refused, not_found, method_not_allowed, too_large, not_acceptable, busy, timeout, internal"},
            "message": {"type": "string"}}}}}
    }))
}
