//! Who may call the S3 API: AWS Signature V4 against the head's credentials file (one file
//! serves both APIs: an S3 access key id and secret are a principal's `access_key` and
//! `secret`), and each principal's role mapped onto the S3 operations.

use async_trait::async_trait;
use filegrid_proto::auth::Access;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::auth::credentials::LiveCredentials;

/// The secret keys of the credentials file, for s3s's signature check.
pub struct Keys {
    pub credentials: LiveCredentials,
}

#[async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let creds = self.credentials.load();
        match creds.secret_of(access_key) {
            Some((_, secret)) => match std::str::from_utf8(secret) {
                Ok(s) => Ok(SecretKey::from(s)),
                Err(_) => Err(s3_error!(InvalidAccessKeyId)),
            },
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// The role an S3 operation needs (pure; unit-tested). `None` for the operations FileGrid
/// does not serve (`service::FileGridS3` answers them NotImplemented): any principal that
/// may read may learn that. An operation implemented there must be listed here.
pub fn need(op: &str) -> Option<Access> {
    match op {
        "GetObject"
        | "HeadObject"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "HeadBucket"
        | "ListBuckets"
        | "GetBucketLocation"
        | "ListParts"
        | "ListMultipartUploads"
        | "GetBucketVersioning"
        | "GetBucketPolicy"
        | "GetBucketCors"
        | "GetBucketLifecycleConfiguration"
        | "GetBucketEncryption"
        | "GetBucketTagging"
        | "GetBucketWebsite"
        | "GetObjectLockConfiguration"
        | "GetObjectTagging"
        | "GetBucketReplication"
        | "GetBucketLogging"
        | "GetBucketAccelerateConfiguration"
        | "GetBucketRequestPayment"
        | "GetBucketAcl"
        | "GetObjectAcl"
        | "GetObjectAttributes" => Some(Access::Read),
        "PutObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CopyObject"
        | "CreateBucket"
        | "DeleteBucket"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload" => Some(Access::Write),
        _ => None,
    }
}

/// Checks each request's principal against [`need`].
pub struct Roles {
    pub credentials: Option<LiveCredentials>,
    pub anonymous_read: bool,
}

#[async_trait]
impl S3Access for Roles {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let allowed = self.allows(cx);
        if allowed.is_ok()
            && let Some(granted) = cx.extensions_mut().get::<super::range::Granted>().cloned()
        {
            granted.record(cx.s3_op().name());
        }
        allowed
    }
}

impl Roles {
    fn allows(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name();
        // Not served: answered NotImplemented, to any principal that may read.
        let need = need(op).unwrap_or(Access::Read);
        let Some(creds) = &self.credentials else {
            // An insecure head: everything is allowed, as on its native API.
            return Ok(());
        };
        let role = match cx.credentials() {
            Some(c) => {
                let all = creds.load();
                match all.secret_of(&c.access_key) {
                    Some((principal, _)) => principal.role,
                    None => return Err(s3_error!(InvalidAccessKeyId)),
                }
            }
            None if self.anonymous_read && need == Access::Read => Access::Read,
            None => return Err(s3_error!(AccessDenied, "a signed request is required")),
        };
        if role >= need {
            Ok(())
        } else {
            let who = cx
                .credentials()
                .map_or("anonymous", |c| c.access_key.as_str());
            tracing::info!(target: "filegrid::audit", access_key = %who, op, "S3 call refused: role too low");
            Err(s3_error!(AccessDenied, "this credential may not {op}"))
        }
    }
}

/// The region a request's Signature V4 credential scope names
/// (`<key>/<date>/<region>/s3/aws4_request`), from the `Authorization` header or a presigned
/// URL's `X-Amz-Credential`; `None` when it is not signed that way.
pub fn signed_region(authorization: Option<&str>, query: Option<&str>) -> Option<String> {
    let credential = match authorization {
        Some(a) if a.starts_with("AWS4-HMAC-SHA256") => {
            let at = a.find("Credential=")? + "Credential=".len();
            a[at..].split([',', ' ']).next()?.to_string()
        }
        _ => {
            let raw = query?
                .split('&')
                .find_map(|kv| kv.strip_prefix("X-Amz-Credential="))?;
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?
                .into_owned()
        }
    };
    let mut parts = credential.split('/');
    parts.nth(2).map(str::to_string)
}

/// Whether a request carries a signature of any kind: an `Authorization` header (Signature V4
/// or V2), or a presigned URL's (`X-Amz-Signature`, V2's `Signature`).
pub fn is_signed(authorization: Option<&str>, query: Option<&str>) -> bool {
    authorization.is_some_and(|a| !a.trim().is_empty())
        || query.is_some_and(|q| {
            q.split('&').any(|kv| {
                let name = kv.split('=').next().unwrap_or("");
                name.eq_ignore_ascii_case("X-Amz-Signature") || name == "Signature"
            })
        })
}

/// Whether the protocol layer takes `region` as a credential's region: any name of lower-case
/// letters, digits and dashes (FileGrid accepts whatever region the client signs for), or
/// none. s3cmd's default, `US`, is not one.
pub fn region_accepted(region: &str) -> bool {
    region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_region_comes_from_the_header_or_a_presigned_url() {
        let header = "AWS4-HMAC-SHA256 Credential=AK/20261207/US/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab";
        assert_eq!(signed_region(Some(header), None).as_deref(), Some("US"));
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261207%2Feu-west-3%2Fs3%2Faws4_request&X-Amz-Signature=ab";
        assert_eq!(
            signed_region(None, Some(query)).as_deref(),
            Some("eu-west-3")
        );
        assert_eq!(signed_region(Some("AWS AK:sig"), None), None);
        assert_eq!(signed_region(None, Some("list-type=2")), None);
        assert_eq!(
            signed_region(Some("AWS4-HMAC-SHA256 Credential=AK"), None),
            None
        );
        assert!(region_accepted("us-east-1") && region_accepted("garage") && region_accepted(""));
        assert!(!region_accepted("US") && !region_accepted("eu_west"));
    }

    #[test]
    fn signed_requests_of_every_kind_are_told_apart_from_unsigned_ones() {
        let v4 = "AWS4-HMAC-SHA256 Credential=AK/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab";
        assert!(is_signed(Some(v4), None));
        assert!(is_signed(Some("AWS AK:c2ln"), None));
        assert!(is_signed(
            None,
            Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab")
        ));
        assert!(is_signed(
            None,
            Some("AWSAccessKeyId=x&Signature=aD%3D&Expires=1")
        ));
        assert!(!is_signed(None, None));
        assert!(!is_signed(Some(" "), Some("list-type=2&prefix=Signature")));
        assert!(!is_signed(None, Some("uploads")));
    }

    #[test]
    fn reads_writes_and_the_rest() {
        assert_eq!(need("GetObject"), Some(Access::Read));
        assert_eq!(need("ListObjectsV2"), Some(Access::Read));
        assert_eq!(need("PutObject"), Some(Access::Write));
        assert_eq!(need("CompleteMultipartUpload"), Some(Access::Write));
        assert_eq!(need("GetBucketVersioning"), Some(Access::Read));
        assert_eq!(need("GetObjectTagging"), Some(Access::Read));
        assert_eq!(need("GetObjectAttributes"), Some(Access::Read));
        assert_eq!(need("PutBucketPolicy"), None);
        assert_eq!(need("PutBucketVersioning"), None);
        assert_eq!(need("PutObjectTagging"), None);
        assert_eq!(need("SomethingNew"), None);
    }
}
