//! `serve`'s HTTP API (axum), over the same engine as `query`. [`router`] builds the whole app
//! without binding a socket, so tests call it directly.
//!
//! One file per resource: [`sql`] (user SQL and named queries), [`heatmap`] (the original API's
//! windows and Kepler.gl files), [`catalog`] (symbols, venues, summary), [`health`] (health,
//! readiness, Prometheus metrics), [`openapi`]; [`error`] maps every failure to a status.

pub mod catalog;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod heatmap;
pub mod openapi;
pub mod sql;
pub mod stream;
pub mod web;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use datafusion::common::ParamValues;
use tower_http::cors::{Any, CorsLayer};

use crate::engine::{Engine, QueryResult};
use crate::live::{LiveEvent, LiveStats, PipelineState};
use crate::output::{self, OutputFormat};
pub use error::ApiError;

/// Request limits (the engine carries the query limits: rows, time, memory).
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest request body accepted (SQL text or JSON), in bytes.
    pub max_body_bytes: usize,
    /// Most windows `/api/heatmap_data` returns.
    pub heatmap_rows: usize,
    /// How long the newest-windows and dashboard responses are reused (zero: never).
    pub cache_ttl: Duration,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            max_body_bytes: 1 << 20,
            heatmap_rows: 5000,
            cache_ttl: Duration::from_secs(1),
        }
    }
}

/// Query counters for `/metrics`.
#[derive(Debug, Default)]
pub struct QueryMetrics {
    pub queries: AtomicU64,
    pub errors: AtomicU64,
    pub micros: AtomicU64,
}

/// The embedded pipeline as the API sees it: its events and counters.
pub struct Live {
    pub events: tokio::sync::broadcast::Sender<LiveEvent>,
    pub stats: Arc<LiveStats>,
    /// Set by whoever runs the pipeline when it ends; held here, so it never closes while the
    /// server runs.
    pub state: Arc<tokio::sync::watch::Sender<PipelineState>>,
    /// Turns true when the server shuts down: event streams end so connections can close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// `serve --no-ingest` following the lake other processes fill ([`crate::live::follow_lake`]):
/// an `open` event each time it worked out the windows not emitted yet.
pub struct Followed {
    pub events: tokio::sync::broadcast::Sender<LiveEvent>,
    /// Turns true when the server shuts down: event streams end so connections can close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub options: ApiOptions,
    pub metrics: QueryMetrics,
    /// Present when `serve` runs the pipeline in-process.
    pub live: Option<Live>,
    /// Present when it runs none and follows the lake instead.
    pub followed: Option<Followed>,
    pub cache: ResponseCache,
}

impl AppState {
    pub fn new(engine: Engine, options: ApiOptions) -> Arc<AppState> {
        AppState::with_live(Arc::new(engine), options, None)
    }

    pub fn with_live(
        engine: Arc<Engine>,
        options: ApiOptions,
        live: Option<Live>,
    ) -> Arc<AppState> {
        AppState::build(engine, options, live, None)
    }

    /// With no pipeline of its own, following the lake.
    pub fn following(
        engine: Arc<Engine>,
        options: ApiOptions,
        followed: Followed,
    ) -> Arc<AppState> {
        AppState::build(engine, options, None, Some(followed))
    }

    fn build(
        engine: Arc<Engine>,
        options: ApiOptions,
        live: Option<Live>,
        followed: Option<Followed>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            engine,
            cache: ResponseCache::new(options.cache_ttl),
            options,
            metrics: QueryMetrics::default(),
            live,
            followed,
        })
    }

    /// Run SQL through the engine's guard and limits, counting it for `/metrics`.
    pub async fn query(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<QueryResult, ApiError> {
        let started = Instant::now();
        let result = self.engine.sql_with_params(sql, params).await;
        self.metrics.queries.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if result.is_err() {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(result?)
    }
}

/// The whole API: routes, CORS on `/api`, body limit, JSON 404s.
pub fn router(state: Arc<AppState>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any);
    let api = Router::new()
        .route("/heatmap_data", get(heatmap::heatmap_data))
        .route("/heatmap_data.json", get(heatmap::heatmap_json))
        .route("/heatmap_data.csv", get(heatmap::heatmap_csv))
        .route("/heatmap_data.arrow", get(heatmap::heatmap_arrow))
        .route("/kepler/map.json", get(heatmap::kepler_map))
        .route("/sql", post(sql::run_sql))
        .route("/queries", get(sql::list_queries))
        .route("/queries/{name}", get(sql::run_named))
        .route("/symbols", get(catalog::symbols))
        .route("/venues", get(catalog::venues))
        .route("/summary", get(catalog::summary))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/openapi.json", get(openapi::document))
        .route("/stream", get(stream::events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors);
    Router::new()
        .nest("/api", api)
        .route("/", get(web::index))
        .route("/assets/{file}", get(web::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .with_state(state)
}

/// The request's own path (`/api/...`: a nested router's handlers see theirs without `/api`).
async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!(
        "no such resource: {}; see /api/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} is not taken by {}: the Allow header lists what is; see /api/openapi.json",
        uri.path()
    ))
}

/// The result format a request asks for: `?format=` first, then the `Accept` header, else JSON.
pub fn negotiate(headers: &HeaderMap, format: Option<&str>) -> Result<OutputFormat, ApiError> {
    if let Some(name) = format {
        return match name.to_ascii_lowercase().as_str() {
            "json" => Ok(OutputFormat::Json),
            "ndjson" | "jsonl" => Ok(OutputFormat::Ndjson),
            "csv" => Ok(OutputFormat::Csv),
            "arrow" => Ok(OutputFormat::Arrow),
            "parquet" => Ok(OutputFormat::Parquet),
            other => Err(ApiError::BadRequest(format!(
                "format '{other}' is not one of json, ndjson, csv, arrow, parquet"
            ))),
        };
    }
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(OutputFormat::Json);
    };
    for media in accept.split(',') {
        let media = media
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let format = match media.as_str() {
            "application/json" | "*/*" | "application/*" => OutputFormat::Json,
            "application/x-ndjson" | "application/jsonl" | "application/ndjson" => {
                OutputFormat::Ndjson
            }
            "text/csv" | "text/*" => OutputFormat::Csv,
            "application/vnd.apache.arrow.stream" => OutputFormat::Arrow,
            "application/vnd.apache.parquet" | "application/x-parquet" => OutputFormat::Parquet,
            _ => continue,
        };
        return Ok(format);
    }
    Err(ApiError::NotAcceptable(format!(
        "cannot answer with '{accept}'; ask for application/json, application/x-ndjson, text/csv, \
         application/vnd.apache.arrow.stream or application/vnd.apache.parquet"
    )))
}

/// A query result encoded in one format, ready to send (and to keep in [`ResponseCache`]).
pub struct Encoded {
    pub format: OutputFormat,
    pub rows: usize,
    pub truncated: bool,
    pub body: Bytes,
    /// The body gzipped, made the first time a client that accepts gzip asks for it.
    gzip: OnceLock<Bytes>,
}

/// Bodies smaller than this go out as they are.
const GZIP_FROM_BYTES: usize = 1024;

/// Whether `Accept-Encoding` allows gzip (listed and not `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

impl Encoded {
    pub fn new(result: &QueryResult, format: OutputFormat) -> Result<Encoded, ApiError> {
        let mut body = Vec::new();
        output::write(format, &result.schema, &result.batches, &mut body)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Encoded::from_body(
            format,
            result.num_rows(),
            result.truncated,
            body,
        ))
    }

    pub fn from_body(
        format: OutputFormat,
        rows: usize,
        truncated: bool,
        body: impl Into<Bytes>,
    ) -> Encoded {
        Encoded {
            format,
            rows,
            truncated,
            body: body.into(),
            gzip: OnceLock::new(),
        }
    }

    /// The response for a request with `request` headers: gzipped (once, then kept with the
    /// entry) when the client accepts it and the body is worth it.
    pub fn response_for(&self, request: &HeaderMap) -> Response {
        if self.body.len() < GZIP_FROM_BYTES || !accepts_gzip(request) {
            return self.response();
        }
        let gzip = self.gzip.get_or_init(|| {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.body.len() / 6),
                flate2::Compression::fast(),
            );
            // Writing to a Vec cannot fail.
            let _ = encoder.write_all(&self.body);
            Bytes::from(encoder.finish().unwrap_or_default())
        });
        if gzip.is_empty() {
            return self.response();
        }
        let mut response = self.response();
        *response.body_mut() = axum::body::Body::from(gzip.clone());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    }

    /// The response: the body (shared, not copied), its media type, row count and truncation.
    pub fn response(&self) -> Response {
        let mut response = self.body.clone().into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.format.media_type()),
        );
        headers.insert("x-darkpool-rows", HeaderValue::from(self.rows));
        headers.insert(
            "x-darkpool-truncated",
            HeaderValue::from_static(if self.truncated { "true" } else { "false" }),
        );
        if self.format == OutputFormat::Parquet {
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"result.parquet\""),
            );
        }
        response
    }
}

/// A query result as a response in `format`, with its row count and truncation in headers.
pub fn respond(result: &QueryResult, format: OutputFormat) -> Result<Response, ApiError> {
    Ok(Encoded::new(result, format)?.response())
}

/// Most responses a [`ResponseCache`] holds.
const MAX_ENTRIES: usize = 256;

/// Responses to the hot reads (the newest windows, the dashboard's figures) kept for `ttl`:
/// under load, a second of requests shares one query instead of running one each. When an
/// entry is older than the ttl, one request rebuilds it while the others are still answered
/// with the previous one (stale-while-revalidate); only the very first build makes them wait.
pub struct ResponseCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<Encoded>)>>,
    filling: tokio::sync::Mutex<()>,
}

impl ResponseCache {
    /// `ttl` zero turns the cache off.
    pub fn new(ttl: Duration) -> ResponseCache {
        ResponseCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            filling: tokio::sync::Mutex::new(()),
        }
    }

    /// The entry for `key` and whether it is still fresh.
    fn lookup(&self, key: &str) -> Option<(Arc<Encoded>, bool)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .map(|(at, hit)| (hit.clone(), at.elapsed() < self.ttl))
    }

    /// The cached response for `key` if younger than the ttl, else `build`'s (then cached).
    pub async fn get_or_build<F, Fut>(&self, key: &str, build: F) -> Result<Arc<Encoded>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Encoded, ApiError>>,
    {
        if self.ttl.is_zero() {
            return Ok(Arc::new(build().await?));
        }
        let _filling = match self.lookup(key) {
            Some((hit, true)) => return Ok(hit),
            // Stale: rebuild it here unless another request already is.
            Some((hit, false)) => match self.filling.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(hit),
            },
            // Never built: wait for the build in progress, if any, rather than start another.
            None => {
                let guard = self.filling.lock().await;
                if let Some((hit, _)) = self.lookup(key) {
                    return Ok(hit);
                }
                guard
            }
        };
        let built = Arc::new(build().await?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Forget what nobody asked for lately, and never hold more than MAX_ENTRIES (a
        // dashboard entry per symbol asked for, however many are made up).
        let keep = self.ttl.saturating_mul(10);
        entries.retain(|_, (at, _)| at.elapsed() < keep);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), (Instant::now(), built.clone()));
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn negotiation_follows_format_then_accept_then_json() {
        assert_eq!(
            negotiate(&HeaderMap::new(), None).unwrap(),
            OutputFormat::Json
        );
        assert_eq!(
            negotiate(&accept("text/csv"), None).unwrap(),
            OutputFormat::Csv
        );
        assert_eq!(
            negotiate(
                &accept("text/html, application/vnd.apache.arrow.stream;q=0.9"),
                None
            )
            .unwrap(),
            OutputFormat::Arrow
        );
        assert_eq!(
            negotiate(&accept("text/csv"), Some("parquet")).unwrap(),
            OutputFormat::Parquet
        );
        assert_eq!(
            negotiate(&accept("image/png"), None).unwrap_err().status(),
            axum::http::StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            negotiate(&HeaderMap::new(), Some("xml"))
                .unwrap_err()
                .status(),
            axum::http::StatusCode::BAD_REQUEST
        );
    }
}
