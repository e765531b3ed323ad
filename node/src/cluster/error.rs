//! JSON errors of the chunk API: `{"code": "...", "message": "..."}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::fence::StaleEpoch;
use crate::chunk::{InvalidChunkId, StoreError};

/// An error answer of the chunk API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 answer.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match &e {
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            StoreError::StorageFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            StoreError::LengthMismatch { .. } => (StatusCode::BAD_REQUEST, "length_mismatch"),
            StoreError::ChecksumMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch")
            }
            StoreError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            StoreError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "chunk_corrupt"),
            StoreError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "io_error"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "chunk request failed");
        }
        Self::new(status, code, e.to_string())
    }
}

impl From<StaleEpoch> for ApiError {
    fn from(e: StaleEpoch) -> Self {
        Self::new(StatusCode::CONFLICT, "stale_epoch", e.to_string())
    }
}

impl From<InvalidChunkId> for ApiError {
    fn from(e: InvalidChunkId) -> Self {
        Self::bad_request("bad_chunk_id", e.to_string())
    }
}
