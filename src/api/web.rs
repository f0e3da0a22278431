//! The dashboard (`web/`), compiled into the binary: `GET /` and `GET /assets/{file}`. Every
//! asset is bundled (Chart.js, the built Tailwind CSS), so the page works with no network.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::ApiError;

struct Asset {
    name: &'static str,
    media: &'static str,
    bytes: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../../web/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        media: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "app.css",
        media: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/assets/app.css"),
    },
    Asset {
        name: "chart.umd.min.js",
        media: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/assets/chart.umd.min.js"),
    },
    Asset {
        name: "favicon.svg",
        media: "image/svg+xml",
        bytes: include_bytes!("../../web/assets/favicon.svg"),
    },
];

/// The page may load only its own scripts and talk only to this server.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'";

fn send(media: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    let mut response = send("text/html; charset=utf-8", INDEX);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    response
}

/// `GET /assets/{file}`.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| send(a.media, a.bytes))
        .ok_or_else(|| ApiError::NotFound(format!("no such asset: {name}")))
}
