//! The error body every FileGrid HTTP API answers with: `{"code": ..., "message": ...}`.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes. Each has one HTTP status ([`ErrorCode::status`]), so a
/// client can rely on either. Codes this build does not know parse as [`ErrorCode::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400: the request is malformed.
    BadRequest,
    BadPath,
    BadHeader,
    BadEpoch,
    MissingEpoch,
    BadChecksum,
    BadContentLength,
    BadPipeline,
    BadTarget,
    BadChunkId,
    LengthMismatch,
    TruncatedBody,
    // 401: no credential, or one that does not check out.
    Unauthorized,
    /// A peer request whose signature is missing, wrong, expired or replayed.
    BadSignature,
    // 403: a valid credential that does not allow this.
    Forbidden,
    /// A chunk write, delete or replication from a server that does not lead at that epoch.
    NotLeaderPeer,
    // 404
    NotFound,
    // 405
    MethodNotAllowed,
    // 409
    Conflict,
    StaleEpoch,
    Deposed,
    NeverLeader,
    /// A heartbeat from a server that has no registration in ZooKeeper.
    NotRegistered,
    // 412: an `If-Match` or `If-None-Match` condition does not hold; nothing was changed.
    PreconditionFailed,
    // 307: a standby sends the client to the leader.
    NotLeader,
    // 413
    TooLarge,
    ChunkTooLarge,
    // 416
    BadRange,
    RangeNotSatisfiable,
    // 422: the data does not match its checksum.
    ChecksumMismatch,
    // 500
    ChunkCorrupt,
    IoError,
    // 502
    LeaderUnreachable,
    // 503
    Unavailable,
    NoLeader,
    NotReady,
    ZkUnavailable,
    /// A pipeline hop that was never sent the chunk because a hop before it failed.
    NotReached,
    /// More uploads in progress than the head allows; retry later.
    TooManyUploads,
    // 507
    StorageFull,
    /// A code from a newer FileGrid.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | BadPath | BadHeader | BadEpoch | MissingEpoch | BadChecksum
            | BadContentLength | BadPipeline | BadTarget | BadChunkId | LengthMismatch
            | TruncatedBody => 400,
            Unauthorized | BadSignature => 401,
            Forbidden | NotLeaderPeer => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            Conflict | StaleEpoch | Deposed | NeverLeader | NotRegistered => 409,
            PreconditionFailed => 412,
            NotLeader => 307,
            TooLarge | ChunkTooLarge => 413,
            BadRange | RangeNotSatisfiable => 416,
            ChecksumMismatch => 422,
            ChunkCorrupt | IoError | Unknown => 500,
            LeaderUnreachable => 502,
            Unavailable | NoLeader | NotReady | ZkUnavailable | NotReached | TooManyUploads => 503,
            StorageFull => 507,
        }
    }

    /// The code as it appears on the wire (its serde name).
    pub fn as_str(self) -> &'static str {
        ALL.iter()
            .find(|(c, _)| *c == self)
            .map_or("unknown", |(_, name)| name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// On `not_leader`: the id of the head that leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            leader: None,
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Every code with its wire name, for [`ErrorCode::as_str`] and the tests.
const ALL: &[(ErrorCode, &str)] = &[
    (ErrorCode::BadRequest, "bad_request"),
    (ErrorCode::Unauthorized, "unauthorized"),
    (ErrorCode::BadSignature, "bad_signature"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::NotLeaderPeer, "not_leader_peer"),
    (ErrorCode::TooManyUploads, "too_many_uploads"),
    (ErrorCode::BadPath, "bad_path"),
    (ErrorCode::BadHeader, "bad_header"),
    (ErrorCode::BadEpoch, "bad_epoch"),
    (ErrorCode::MissingEpoch, "missing_epoch"),
    (ErrorCode::BadChecksum, "bad_checksum"),
    (ErrorCode::BadContentLength, "bad_content_length"),
    (ErrorCode::BadPipeline, "bad_pipeline"),
    (ErrorCode::BadTarget, "bad_target"),
    (ErrorCode::BadChunkId, "bad_chunk_id"),
    (ErrorCode::LengthMismatch, "length_mismatch"),
    (ErrorCode::TruncatedBody, "truncated_body"),
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::MethodNotAllowed, "method_not_allowed"),
    (ErrorCode::Conflict, "conflict"),
    (ErrorCode::StaleEpoch, "stale_epoch"),
    (ErrorCode::Deposed, "deposed"),
    (ErrorCode::NeverLeader, "never_leader"),
    (ErrorCode::NotLeader, "not_leader"),
    (ErrorCode::TooLarge, "too_large"),
    (ErrorCode::ChunkTooLarge, "chunk_too_large"),
    (ErrorCode::BadRange, "bad_range"),
    (ErrorCode::RangeNotSatisfiable, "range_not_satisfiable"),
    (ErrorCode::ChecksumMismatch, "checksum_mismatch"),
    (ErrorCode::ChunkCorrupt, "chunk_corrupt"),
    (ErrorCode::IoError, "io_error"),
    (ErrorCode::LeaderUnreachable, "leader_unreachable"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::NoLeader, "no_leader"),
    (ErrorCode::NotReady, "not_ready"),
    (ErrorCode::NotRegistered, "not_registered"),
    (ErrorCode::PreconditionFailed, "precondition_failed"),
    (ErrorCode::ZkUnavailable, "zk_unavailable"),
    (ErrorCode::NotReached, "not_reached"),
    (ErrorCode::StorageFull, "storage_full"),
    (ErrorCode::Unknown, "unknown"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_wire_name_and_round_trips() {
        for (code, name) in ALL {
            assert_eq!(code.as_str(), *name);
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *code);
        }
    }

    #[test]
    fn codes_from_a_newer_build_parse_as_unknown() {
        let b: ErrorBody =
            serde_json::from_str(r#"{"code":"quota_exceeded","message":"m","extra":1}"#).unwrap();
        assert_eq!(b.code, ErrorCode::Unknown);
        assert_eq!(b.code.status(), 500);
    }

    #[test]
    fn the_leader_field_appears_only_when_set() {
        let b = ErrorBody::new(ErrorCode::NotFound, "x");
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"code":"not_found","message":"x"}"#
        );
    }
}
