//! The one place where failures become HTTP statuses: JSON `{"error": code, "message": ...}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::EngineError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or its SQL does not parse or plan (400).
    #[error("{0}")]
    BadRequest(String),
    /// A statement the read-only guard does not allow (403).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists, not with this method (405; the `Allow` header lists the methods).
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    NotAcceptable(String),
    /// The query ran past its time limit (504).
    #[error("{0}")]
    Timeout(String),
    /// The queries running at once hold the memory this one needs (503, `Retry-After`).
    #[error("{0}")]
    Busy(String),
    /// Something on the server side (the lake cannot be read, an encoder failed).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Refused(_) => (StatusCode::FORBIDDEN, "refused"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "not_acceptable"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let message = e.to_string();
        match e {
            EngineError::Refused { .. } => ApiError::Refused(message),
            EngineError::Sql(_) | EngineError::Window(_) => ApiError::BadRequest(message),
            EngineError::Timeout(_) => ApiError::Timeout(message),
            EngineError::UnknownQuery(_) => ApiError::NotFound(message),
            EngineError::Busy(_) => ApiError::Busy(message),
            EngineError::NamedQueries(_)
            | EngineError::Table { .. }
            | EngineError::Unreadable(_) => ApiError::Internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = serde_json::json!({"error": code, "message": self.to_string()});
        if let ApiError::Busy(_) = self {
            // Not the server failing: the memory frees as the other queries end.
            tracing::warn!("{code}: {self}");
            return (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response();
        }
        if status.is_server_error() {
            tracing::error!("{code}: {self}");
        }
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query crowded out of the memory pool by the others running is the server's state,
    /// not the request's fault: 503, with when to try again.
    #[test]
    fn busy_is_a_503_with_retry_after() {
        let response = ApiError::from(EngineError::Busy("held".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ApiError::from(EngineError::Sql("too big".into())).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
    }
}
