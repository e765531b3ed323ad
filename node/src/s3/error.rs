//! FileGrid's failures as the S3 errors clients expect.

use s3s::{S3Error, S3ErrorCode};

use super::keys::KeyError;
use crate::files::DataError;
use crate::files::namespace::NsError;

/// A file operation's failure as an S3 error.
pub fn data(e: DataError) -> S3Error {
    let code = match &e {
        DataError::BadRequest(_) => S3ErrorCode::InvalidRequest,
        DataError::BadRange(_) => S3ErrorCode::InvalidRange,
        DataError::TooLarge(_) => S3ErrorCode::EntityTooLarge,
        DataError::NotFound(_) => S3ErrorCode::NoSuchKey,
        DataError::Conflict(_) => return conflict(e.to_string()),
        DataError::Exists(_) | DataError::Precondition(_) => S3ErrorCode::PreconditionFailed,
        DataError::Unavailable(_) => S3ErrorCode::ServiceUnavailable,
        DataError::StorageFull(_) => S3ErrorCode::Custom("InsufficientStorage".into()),
    };
    let mut err = S3Error::with_message(code, e.to_string());
    if matches!(e, DataError::StorageFull(_)) {
        err.set_status_code(axum::http::StatusCode::INSUFFICIENT_STORAGE);
    }
    err
}

/// A namespace failure as an S3 error.
pub fn ns(e: NsError) -> S3Error {
    data(e.into())
}

/// A key that collides with the native namespace's rule that a name is a file or a
/// directory, never both (`a` and `a/b` cannot both be objects).
pub fn conflict(message: String) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::Custom("KeyConflict".into()), message);
    err.set_status_code(axum::http::StatusCode::CONFLICT);
    err
}

pub fn key(e: KeyError) -> S3Error {
    match e {
        KeyError::Empty => S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()),
        KeyError::TooLong | KeyError::TooDeep => {
            S3Error::with_message(S3ErrorCode::KeyTooLongError, e.to_string())
        }
    }
}

pub fn no_leader() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::ServiceUnavailable,
        "this head is not leading right now; retry shortly",
    )
}
