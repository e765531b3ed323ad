//! How the chunk store's errors are answered on the chunk API (the error type itself is
//! [`crate::http::ApiError`], shared by every role).

use filegrid_proto::ErrorCode;

use super::fence::EpochError;
use crate::chunk::{InvalidChunkId, StoreError};
pub use crate::http::ApiError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::StorageFull(_) => ErrorCode::StorageFull,
            StoreError::LengthMismatch { .. } => ErrorCode::LengthMismatch,
            StoreError::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            StoreError::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            StoreError::Corrupt { .. } => ErrorCode::ChunkCorrupt,
            StoreError::Io { .. } => ErrorCode::IoError,
        };
        let err = Self::new(code, e.to_string());
        if err.status.is_server_error() {
            tracing::error!(error = %e, "chunk request failed");
        }
        err
    }
}

impl From<EpochError> for ApiError {
    fn from(e: EpochError) -> Self {
        match e {
            EpochError::Stale { .. } => Self::new(ErrorCode::StaleEpoch, e.to_string()),
            EpochError::Unconfirmed { .. } => Self::with_status(
                axum::http::StatusCode::CONFLICT,
                ErrorCode::BadEpoch,
                e.to_string(),
            ),
        }
    }
}

impl From<InvalidChunkId> for ApiError {
    fn from(e: InvalidChunkId) -> Self {
        Self::new(ErrorCode::BadChunkId, e.to_string())
    }
}
