//! The S3 operations on FileGrid's namespace and data path. Each request arrives with the
//! [`Leadership`] the S3 gate admitted it under, so its metadata writes are fenced like the
//! native API's.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use base64::Engine;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::unsupported::{self, CustomerKey, WriteOptions};
use super::{checksum, conditions, error, keys, list, multipart};
use crate::fencing::FencedOp;
use crate::files::dir_index::DirIndex;
use crate::files::listing::ListError;
use crate::files::manifest::{Entry, EntryKind, FileMeta, ObjectAttrs};
use crate::files::namespace::{self, NsError};
use crate::files::path::FilePath;
use crate::files::precondition::{self, Precondition};
use crate::files::read::{self, ByteRange};
use crate::files::write::{self, Digests, Uncommitted};
use crate::files::{DataError, DataPlane};
use crate::leadership::{Leadership, ReadView};
use crate::zk::{self, records};

/// Sets the `checksum_<algorithm>` field of an S3 output: the outputs share the field
/// names, not a type.
macro_rules! set_checksum {
    ($out:expr, $alg:expr, $v:expr) => {
        match $alg {
            "crc32" => $out.checksum_crc32 = Some($v),
            "crc32c" => $out.checksum_crc32c = Some($v),
            "crc64nvme" => $out.checksum_crc64nvme = Some($v),
            "sha1" => $out.checksum_sha1 = Some($v),
            "sha256" => $out.checksum_sha256 = Some($v),
            _ => {}
        }
    };
}

/// FileGrid behind the S3 API.
#[derive(Clone)]
pub struct FileGridS3 {
    pub dp: Arc<DataPlane>,
    pub region: String,
}

/// The leadership the gate admitted `req` under.
pub(super) fn lead<T>(req: &S3Request<T>) -> S3Result<Leadership> {
    req.extensions
        .get::<Leadership>()
        .cloned()
        .ok_or_else(error::no_leader)
}

/// The view of committed state a read was admitted with (any head), or the leader's.
pub(super) fn view<T>(req: &S3Request<T>) -> S3Result<ReadView> {
    if let Some(v) = req.extensions.get::<ReadView>() {
        return Ok(v.clone());
    }
    lead(req).map(|l| ReadView::of(&l))
}

pub(super) fn path(bucket: &str, key: &str) -> S3Result<FilePath> {
    keys::to_path(bucket, key).map_err(error::key)
}

/// The bucket's directory entry and its ZooKeeper stat, or NoSuchBucket.
pub(super) async fn bucket_entry(
    lead: &ReadView,
    bucket: &str,
) -> S3Result<zookeeper_client::Stat> {
    if !keys::valid_bucket(bucket) {
        return Err(s3_error!(NoSuchBucket));
    }
    match zk::read::<Entry>(lead.client(), &lead.layout().file(bucket)).await {
        Ok(Some((e, stat))) if e.kind == EntryKind::Dir => Ok(stat),
        Ok(_) => Err(s3_error!(NoSuchBucket)),
        Err(e) => Err(error::ns(e.into())),
    }
}

/// The object at `bucket`/`key`: NoSuchBucket or NoSuchKey when there is none.
pub(super) async fn object(lead: &ReadView, bucket: &str, key: &str) -> S3Result<FileMeta> {
    let p = path(bucket, key)?;
    match namespace::lookup(lead.client(), lead.layout(), &p).await {
        Ok((meta, _)) => Ok(meta),
        Err(NsError::NotFound(_)) => {
            bucket_entry(lead, bucket).await?;
            Err(s3_error!(NoSuchKey))
        }
        Err(e) => Err(error::ns(e)),
    }
}

/// The object's ETag: its MD5 (or multipart ETag) when written through S3, its file id
/// when written through the native API (which keeps no MD5).
pub(super) fn etag_of(meta: &FileMeta) -> String {
    meta.attrs
        .etag
        .clone()
        .unwrap_or_else(|| meta.file_id.clone())
}

/// What a read's `partNumber` asks for.
#[derive(Debug, PartialEq, Eq)]
enum PartAsk {
    /// No part: the object (or its `Range`).
    No,
    /// Part 1 of an object not uploaded in parts: all of it, answered as a part is.
    Whole,
    /// A part of a multipart object: its bytes, and how many parts there are.
    Span {
        bytes: std::ops::Range<u64>,
        count: u32,
    },
}

/// What a read's `partNumber` asks of `meta`, checked (pure). An object not uploaded in parts
/// is one part, so part 1 is all of it; a multipart object's parts are cut by the sizes kept at
/// completion ([`super::parts`]). A number past the last part is `416 InvalidPartNumber`, as
/// on S3; a multipart object whose part sizes were not kept (completed by an older FileGrid)
/// answers `NotImplemented` rather than a wrong span.
fn part_read(part: Option<i32>, meta: &FileMeta, ranged: bool) -> S3Result<PartAsk> {
    let Some(n) = part else {
        return Ok(PartAsk::No);
    };
    let Some(number) = u32::try_from(n)
        .ok()
        .filter(|n| (1..=super::parts::MAX_PARTS).contains(n))
    else {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    };
    if ranged {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    if multipart_parts(&etag_of(meta)).is_some() {
        return match super::parts::locate(&meta.attrs.part_runs, meta.size, number) {
            Some(super::parts::Part::At { bytes, count }) => Ok(PartAsk::Span { bytes, count }),
            Some(super::parts::Part::Beyond { .. }) => Err(invalid_part_number()),
            None => Err(s3_error!(
                NotImplemented,
                "this object's part sizes were not kept when it was completed; read it by Range"
            )),
        };
    }
    if number != 1 {
        return Err(invalid_part_number());
    }
    Ok(PartAsk::Whole)
}

/// The `Content-Range` of `bytes` of an object of `size` bytes (pure); `None` when `bytes` is
/// empty, which has no first and last byte to name.
fn content_range(bytes: std::ops::Range<u64>, size: u64) -> Option<String> {
    (bytes.end > bytes.start).then(|| format!("bytes {}-{}/{size}", bytes.start, bytes.end - 1))
}

/// `416 InvalidPartNumber`: the object has no such part.
fn invalid_part_number() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    e.set_status_code(axum::http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

/// The part count a multipart ETag (`<hex>-<parts>`) carries (pure).
fn multipart_parts(etag: &str) -> Option<i32> {
    let (hash, parts) = etag.rsplit_once('-')?;
    let parts = parts.parse::<i32>().ok().filter(|n| *n > 0)?;
    (!hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(parts)
}

pub(super) fn modified(meta: &FileMeta) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(meta.mtime))
}

/// An object's modification time in whole seconds, the precision of HTTP dates.
pub(super) fn modified_secs(meta: &FileMeta) -> i64 {
    (meta.mtime / 1000) as i64
}

/// Seconds since the epoch, the precision of HTTP dates.
pub(super) fn secs(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    t.unix_timestamp()
}

/// What the conditional headers of a read say (RFC 9110 §13.2.2, as S3 applies them).
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    NotModified,
    PreconditionFailed,
}

/// The conditions of a GET or HEAD against the object's ETag and modification time (pure).
pub fn judge(
    etag: &str,
    mtime_secs: i64,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<i64>,
    if_unmodified_since: Option<i64>,
) -> Verdict {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    };
    match if_match {
        Some(c) if !matches(c) => return Verdict::PreconditionFailed,
        Some(_) => {}
        None => {
            if if_unmodified_since.is_some_and(|t| mtime_secs > t) {
                return Verdict::PreconditionFailed;
            }
        }
    }
    match if_none_match {
        Some(c) if matches(c) => return Verdict::NotModified,
        Some(_) => {}
        None => {
            if if_modified_since.is_some_and(|t| mtime_secs <= t) {
                return Verdict::NotModified;
            }
        }
    }
    Verdict::Serve
}

fn check_conditions(
    meta: &FileMeta,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    match judge(
        &etag_of(meta),
        modified_secs(meta),
        if_match,
        if_none_match,
        if_modified_since.map(secs),
        if_unmodified_since.map(secs),
    ) {
        Verdict::Serve => Ok(()),
        Verdict::NotModified => Err(S3Error::new(S3ErrorCode::NotModified)),
        Verdict::PreconditionFailed => Err(s3_error!(PreconditionFailed)),
    }
}

/// The user metadata of an object as S3 returns it.
fn metadata(attrs: &ObjectAttrs) -> Option<Metadata> {
    (!attrs.user.is_empty()).then(|| {
        attrs
            .user
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// A streamed S3 body as the body the data path stores.
pub(super) fn body_of(blob: Option<StreamingBlob>) -> Body {
    match blob {
        Some(b) => Body::from_stream(b),
        None => Body::empty(),
    }
}

/// A body the data path reads, as the streamed body s3s sends.
fn blob_of(body: Body) -> StreamingBlob {
    let stream = sync_wrapper::SyncStream::new(body.into_data_stream());
    StreamingBlob::wrap(stream)
}

/// An S3 body's length as the protocol layer reports it, for sizing buffers only: for an
/// `aws-chunked` body it is the decoded length, or 0 when the client sent none.
pub(super) fn about(content_length: Option<i64>) -> write::Announced {
    content_length
        .and_then(|n| u64::try_from(n).ok())
        .map_or(write::Announced::Unknown, write::Announced::About)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The attributes a PUT (or a copy with `REPLACE`) gives an object.
#[allow(clippy::too_many_arguments)]
pub(super) fn attrs_from(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
    user: Option<Metadata>,
) -> ObjectAttrs {
    ObjectAttrs {
        etag: None,
        content_type,
        content_encoding: content_encoding.and_then(|e| stored_encoding(&e)),
        content_disposition,
        content_language,
        cache_control,
        expires: expires.map(|t| {
            httpdate::fmt_http_date(std::time::SystemTime::from(time::OffsetDateTime::from(
                t.clone(),
            )))
        }),
        user: user
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        checksum: None,
        part_runs: Vec::new(),
    }
}

/// The owner of every bucket and object: the grid (access is by role, not by owner).
const OWNER: &str = "filegrid";

fn owner() -> Owner {
    Owner {
        id: Some(OWNER.into()),
        display_name: Some(OWNER.into()),
    }
}

/// S3's default ACL (`private`): the owner, here the grid, with full control.
fn default_acl() -> (Owner, Grants) {
    let owner = owner();
    let grant = Grant {
        grantee: Some(Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            id: Some(OWNER.into()),
            display_name: Some(OWNER.into()),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (owner, vec![grant])
}

/// The one version of every object: buckets are not versioned (S3 calls such a version `null`).
const NULL_VERSION: &str = "null";

/// A request for a version is served only for the one version there is, `null`; any other id
/// is refused as S3 refuses it on a bucket that was never versioned.
pub(super) fn unversioned(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some(NULL_VERSION) => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

/// The `Content-Encoding` an object keeps: the one it was sent with, less `aws-chunked`, which
/// only says how that request's body was framed (S3 drops it too). `None` when nothing is left.
/// Reads apply it as well, to objects stored before it was.
pub(super) fn stored_encoding(sent: &str) -> Option<String> {
    let kept: Vec<&str> = sent
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Commits `meta` at `path` where the object there passes `pre` (see [`conditions`]).
pub(super) async fn commit(
    dp: &Arc<DataPlane>,
    lead: &Leadership,
    p: &FilePath,
    meta: FileMeta,
    pre: &Precondition,
    guard: &mut Uncommitted<'_>,
) -> S3Result<FileMeta> {
    match write::commit(dp, lead, p, meta, pre, guard).await {
        Ok(m) => Ok(m),
        Err(DataError::Exists(_)) => Err(s3_error!(PreconditionFailed)),
        Err(e) => Err(error::data(e)),
    }
}

#[async_trait]
impl S3 for FileGridS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let lead = view(&req)?;
        let client = lead.client();
        let layout = lead.layout();
        let mut names = match client.list_children(&layout.files()).await {
            Ok(n) => n,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(error::ns(e.into())),
        };
        names.retain(|n| keys::valid_bucket(n));
        names.sort();
        let mut buckets = Vec::new();
        for name in names {
            match zk::read::<Entry>(client, &layout.file(&name)).await {
                Ok(Some((e, stat))) if e.kind == EntryKind::Dir => buckets.push(Bucket {
                    name: Some(name),
                    creation_date: Some(Timestamp::from(
                        std::time::UNIX_EPOCH
                            + std::time::Duration::from_millis(stat.ctime.max(0) as u64),
                    )),
                    ..Default::default()
                }),
                Ok(_) => {}
                Err(e) => return Err(error::ns(e.into())),
            }
        }
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let lead = lead(&req)?;
        let bucket = &req.input.bucket;
        if !keys::valid_bucket(bucket) {
            return Err(s3_error!(InvalidBucketName));
        }
        unsupported::check_create_bucket(&req.input)?;
        let node = lead.layout().file(bucket);
        let op = match zk::read::<Entry>(lead.client(), &node).await {
            Ok(None) => FencedOp::Create {
                path: node,
                data: records::encode(&Entry::bucket()),
                options: lead.layout().persistent(),
            },
            Ok(Some((e, _))) if e.bucket => return Err(s3_error!(BucketAlreadyOwnedByYou)),
            // A directory the native API made: it becomes a bucket.
            Ok(Some((e, stat))) if e.kind == EntryKind::Dir => FencedOp::SetData {
                path: node,
                data: records::encode(&Entry::bucket()),
                version: Some(stat.version),
            },
            Ok(Some(_)) => {
                return Err(error::conflict(format!(
                    "{bucket} is a file of the native API"
                )));
            }
            Err(e) => return Err(error::ns(e.into())),
        };
        match lead.write(&[op]).await {
            Ok(_) => {
                tracing::info!(%bucket, "created bucket");
                Ok(S3Response::new(CreateBucketOutput {
                    location: Some(format!("/{bucket}")),
                }))
            }
            Err(crate::fencing::FenceError::Operation {
                source: zookeeper_client::Error::NodeExists | zookeeper_client::Error::BadVersion,
                ..
            }) => Err(s3_error!(BucketAlreadyOwnedByYou)),
            Err(e) => Err(error::ns(e.into())),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let lead = view(&req)?;
        bucket_entry(&lead, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let lead = view(&req)?;
        bucket_entry(&lead, &req.input.bucket).await?;
        // us-east-1 is reported as no constraint, as S3 does.
        let location = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    // A bucket's settings that FileGrid has none of: a tool that asks (rclone's purge asks
    // for versioning, s3cmd and infrastructure tools for the others) is told what S3 tells
    // it for a bucket where that setting was never made. Setting any of them stays
    // NotImplemented.

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(S3ErrorCode::NoSuchBucketPolicy))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(S3ErrorCode::NoSuchCORSConfiguration))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(S3ErrorCode::NoSuchLifecycleConfiguration))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        let mut err = S3Error::new(S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError);
        err.set_status_code(axum::http::StatusCode::NOT_FOUND);
        Err(err)
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(S3ErrorCode::NoSuchTagSet))
    }

    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(S3ErrorCode::NoSuchWebsiteConfiguration))
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(
            S3ErrorCode::ObjectLockConfigurationNotFoundError,
        ))
    }

    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Err(S3Error::new(
            S3ErrorCode::ReplicationConfigurationNotFoundError,
        ))
    }

    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLoggingOutput::default()))
    }

    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Ok(S3Response::new(
            GetBucketAccelerateConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_request_payment(
        &self,
        req: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketRequestPaymentOutput {
            payer: Some(Payer::from_static(Payer::BUCKET_OWNER)),
        }))
    }

    /// Access is by role ([`super::auth`]), not by ACL: a bucket's ACL is S3's default, its
    /// owner (the grid) with full control.
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        bucket_entry(&view(&req)?, &req.input.bucket).await?;
        let (owner, grants) = default_acl();
        Ok(S3Response::new(GetBucketAclOutput {
            owner: Some(owner),
            grants: Some(grants),
        }))
    }

    /// An object's ACL is S3's default, as its bucket's.
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        unversioned(req.input.version_id.as_deref())?;
        object(&view(&req)?, &req.input.bucket, &req.input.key).await?;
        let (owner, grants) = default_acl();
        Ok(S3Response::new(GetObjectAclOutput {
            owner: Some(owner),
            grants: Some(grants),
            ..Default::default()
        }))
    }

    /// An object has no tags (they cannot be set): its tag set is empty, as S3's is for an
    /// object put without tags.
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        unversioned(req.input.version_id.as_deref())?;
        object(&view(&req)?, &req.input.bucket, &req.input.key).await?;
        Ok(S3Response::new(GetObjectTaggingOutput::default()))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let lead = view(&req)?;
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let meta = object(&lead, &input.bucket, &input.key).await?;
        unsupported::check_no_customer_key(input.customer_key())?;
        // One header of comma-separated names, however the protocol layer split it.
        let wants = |name: &str| {
            input
                .object_attributes
                .iter()
                .flat_map(|a| a.as_str().split(','))
                .any(|a| a.trim() == name)
        };
        let etag = etag_of(&meta);
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(modified(&meta)),
            ..Default::default()
        };
        if wants(ObjectAttributes::ETAG) {
            out.e_tag = Some(ETag::Strong(etag.clone()));
        }
        if wants(ObjectAttributes::OBJECT_SIZE) {
            out.object_size = Some(meta.size as i64);
        }
        if wants(ObjectAttributes::STORAGE_CLASS) {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants(ObjectAttributes::CHECKSUM)
            && let Some((alg, v)) = &meta.attrs.checksum
        {
            let mut sum = Checksum::default();
            set_checksum!(sum, alg.as_str(), v.clone());
            out.checksum = Some(sum);
        }
        // A multipart object's part count is in its ETag; no part list is given (S3 gives one
        // only for objects with part checksums, which FileGrid does not keep).
        if wants(ObjectAttributes::OBJECT_PARTS)
            && let Some(parts) = multipart_parts(&etag)
        {
            out.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: Some(parts),
                ..Default::default()
            });
        }
        Ok(S3Response::new(out))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let lead = lead(&req)?;
        let bucket = &req.input.bucket;
        let stat = bucket_entry(&ReadView::of(&lead), bucket).await?;
        if stat.num_children > 0 {
            return Err(s3_error!(BucketNotEmpty));
        }
        let op = FencedOp::Delete {
            path: lead.layout().file(bucket),
            version: Some(stat.version),
        };
        match lead.write(&[op]).await {
            Ok(_) => {
                self.dp.known_dirs.forget(bucket);
                tracing::info!(%bucket, "deleted bucket");
                Ok(S3Response::new(DeleteBucketOutput {}))
            }
            Err(crate::fencing::FenceError::Operation {
                source: zookeeper_client::Error::NotEmpty | zookeeper_client::Error::BadVersion,
                ..
            }) => Err(s3_error!(BucketNotEmpty)),
            Err(crate::fencing::FenceError::Operation {
                source: zookeeper_client::Error::NoNode,
                ..
            }) => Err(s3_error!(NoSuchBucket)),
            Err(e) => Err(error::ns(e.into())),
        }
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let lead = view(&req)?;
        let input = req.input;
        let token = match &input.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        let after = token
            .clone()
            .or_else(|| input.start_after.clone())
            .unwrap_or_default();
        let prefix = input.prefix.clone().unwrap_or_default();
        let (page, max) = list_page(
            &self.dp.index,
            &lead,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &after,
            input.max_keys,
        )
        .await?;
        let url = url_encoded(input.encoding_type.as_ref());
        let (contents, prefixes) = rows(&page, url, input.fetch_owner == Some(true));
        let next = page
            .truncated
            .then(|| page.found.last().map(|f| encode_token(f.name())))
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(&prefix, url)),
            delimiter: input.delimiter.map(|d| enc(&d, url)),
            max_keys: Some(max as i32),
            key_count: Some(page.found.len() as i32),
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: input.start_after.map(|s| enc(&s, url)),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let lead = view(&req)?;
        let input = req.input;
        let after = input.marker.clone().unwrap_or_default();
        let prefix = input.prefix.clone().unwrap_or_default();
        let (page, max) = list_page(
            &self.dp.index,
            &lead,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &after,
            input.max_keys,
        )
        .await?;
        let url = url_encoded(input.encoding_type.as_ref());
        let (contents, prefixes) = rows(&page, url, true);
        // NextMarker is returned with a delimiter; without one clients use the last key.
        let next = (page.truncated && input.delimiter.is_some())
            .then(|| page.found.last().map(|f| enc(f.name(), url)))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(&prefix, url)),
            delimiter: input.delimiter.map(|d| enc(&d, url)),
            marker: input.marker.map(|m| enc(&m, url)),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            next_marker: next,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    /// Buckets are not versioned: every object is its one version, `null`, the latest, as S3
    /// lists the objects of a bucket where versioning was never enabled. Tools that empty a
    /// bucket version by version (Terraform's `force_destroy`, `aws s3api` scripts) use it.
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let lead = view(&req)?;
        let input = req.input;
        let after = input.key_marker.clone().unwrap_or_default();
        let prefix = input.prefix.clone().unwrap_or_default();
        let (page, max) = list_page(
            &self.dp.index,
            &lead,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &after,
            input.max_keys,
        )
        .await?;
        let url = url_encoded(input.encoding_type.as_ref());
        let (contents, prefixes) = rows(&page, url, true);
        let versions = contents
            .into_iter()
            .map(|o| ObjectVersion {
                key: o.key,
                size: o.size,
                e_tag: o.e_tag,
                last_modified: o.last_modified,
                is_latest: Some(true),
                owner: o.owner,
                version_id: Some(NULL_VERSION.into()),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let next = page
            .truncated
            .then(|| page.found.last().map(|f| enc(f.name(), url)));
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(&prefix, url)),
            delimiter: input.delimiter.map(|d| enc(&d, url)),
            key_marker: input.key_marker.map(|m| enc(&m, url)),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            versions: Some(versions),
            common_prefixes: Some(prefixes),
            next_key_marker: next.clone().flatten(),
            next_version_id_marker: next.flatten().map(|_| NULL_VERSION.to_string()),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let lead = lead(&req)?;
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let mut input = req.input;
        unsupported::check_write(&WriteOptions::from(&input))?;
        let p = path(&input.bucket, &input.key)?;
        // A bucket this leader committed under lately needs no look: the directory map knows it
        // (a bucket deleted through this leader is forgotten there).
        if self
            .dp
            .known_dirs
            .versions(lead.epoch(), &[input.bucket.as_str()])
            .is_none()
        {
            bucket_entry(&ReadView::of(&lead), &input.bucket).await?;
        }
        if input.write_offset_bytes.is_some() {
            return Err(s3_error!(NotImplemented, "appends are not supported"));
        }
        let pre = conditions::on_write(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        namespace::judge_now(&lead, &p, &pre)
            .await
            .map_err(error::ns)?;
        let checksum = checksum::announced(
            [
                &input.checksum_crc32,
                &input.checksum_crc32c,
                &input.checksum_crc64nvme,
                &input.checksum_sha1,
                &input.checksum_sha256,
            ],
            headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()),
        );
        let digests = Digests {
            md5: Some(crate::multi_md5::Md5::new()),
            checksum: checksum.as_ref().map(|c| c.hasher()).transpose()?,
        };
        let Ok(_permit) = self.dp.uploads.clone().try_acquire_owned() else {
            return Err(s3_error!(
                SlowDown,
                "too many uploads in progress; retry shortly"
            ));
        };
        let mut guard = Uncommitted::new(&self.dp.repairs);
        let body = body_of(input.body.take());
        let mut stored = write::store(&self.dp, &lead, body, about(input.content_length), digests)
            .await
            .map_err(error::data)?;
        let md5 = checksum::md5_checked(stored.digests.md5.take(), input.content_md5.as_deref())?;
        let kept_checksum = match (checksum, stored.digests.checksum.take()) {
            (Some(c), Some(h)) => c.verify(h, trailers.as_ref())?,
            _ => None,
        };
        let etag = hex(&md5);
        let mut attrs = attrs_from(
            input.content_type.take(),
            input.content_encoding.take(),
            input.content_disposition.take(),
            input.content_language.take(),
            input.cache_control.take(),
            input.expires.as_ref(),
            input.metadata.take(),
        );
        attrs.etag = Some(etag.clone());
        attrs.checksum = kept_checksum.clone();
        let meta = stored.into_meta(self.dp.config.chunk_size, attrs);
        commit(&self.dp, &lead, &p, meta, &pre, &mut guard).await?;
        let mut out = PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        };
        if let Some((alg, v)) = kept_checksum {
            set_checksum!(out, alg.as_str(), v);
        }
        Ok(S3Response::new(out))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let lead = view(&req)?;
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let meta = object(&lead, &input.bucket, &input.key).await?;
        unsupported::check_no_customer_key(input.customer_key())?;
        let ask = part_read(input.part_number, &meta, input.range.is_some())?;
        check_conditions(
            &meta,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let range = match (&input.range, &ask) {
            (Some(r), _) => Some(r.check(meta.size).map_err(|_| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRange,
                    format!(
                        "the range is not satisfiable (the object is {} bytes)",
                        meta.size
                    ),
                )
            })?),
            (None, PartAsk::Span { bytes, .. }) => Some(bytes.clone()),
            (None, _) => None,
        };
        let (start, end) = range.clone().map_or((0, meta.size), |r| (r.start, r.end));
        // A part is answered as a range is (part 1 of an object not uploaded in parts: all
        // of it); an empty one has no bytes to name.
        let content_range = (range.is_some() || ask == PartAsk::Whole)
            .then(|| content_range(start..end, meta.size))
            .flatten();
        let parts_count = match &ask {
            PartAsk::Span { count, .. } => Some(*count as i32),
            _ => None,
        };
        let whole = range.is_none();
        let attrs = meta.attrs.clone();
        let etag = etag_of(&meta);
        let last_modified = modified(&meta);
        let body = read::download(self.dp.clone(), meta, Some(ByteRange { start, end }))
            .await
            .map_err(error::data)?;
        let mut out = GetObjectOutput {
            body: Some(blob_of(body)),
            content_length: Some((end - start) as i64),
            content_range,
            parts_count,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(last_modified),
            metadata: metadata(&attrs),
            content_type: input
                .response_content_type
                .or(attrs.content_type.clone())
                .or(Some("binary/octet-stream".into())),
            content_encoding: input
                .response_content_encoding
                .or(attrs.content_encoding.as_deref().and_then(stored_encoding)),
            content_disposition: input
                .response_content_disposition
                .or(attrs.content_disposition.clone()),
            content_language: input
                .response_content_language
                .or(attrs.content_language.clone()),
            cache_control: input.response_cache_control.or(attrs.cache_control.clone()),
            ..Default::default()
        };
        if let Some(exp) = input.response_expires {
            out.expires = Some(exp);
        } else if let Some(exp) = attrs.expires.as_deref().and_then(parse_http_date) {
            out.expires = Some(exp);
        }
        if whole
            && input.checksum_mode.is_some()
            && let Some((alg, v)) = &attrs.checksum
        {
            set_checksum!(out, alg.as_str(), v.clone());
        }
        Ok(S3Response::new(out))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let lead = view(&req)?;
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let meta = object(&lead, &input.bucket, &input.key).await?;
        unsupported::check_no_customer_key(input.customer_key())?;
        let ask = part_read(input.part_number, &meta, input.range.is_some())?;
        check_conditions(
            &meta,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let attrs = &meta.attrs;
        // A part of a multipart object: its length and where it lies, as S3 answers (206).
        let (content_length, content_range, parts_count) = match &ask {
            PartAsk::Span { bytes, count } => (
                bytes.end - bytes.start,
                content_range(bytes.clone(), meta.size),
                Some(*count as i32),
            ),
            _ => (meta.size, None, None),
        };
        // (The protocol layer answers a HEAD 200 whatever it carries; the gate makes one that
        // names a Content-Range 206, see `super::partial_head`.)
        let mut out = HeadObjectOutput {
            content_length: Some(content_length as i64),
            content_range,
            parts_count,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(etag_of(&meta))),
            last_modified: Some(modified(&meta)),
            metadata: metadata(attrs),
            content_type: input
                .response_content_type
                .or(attrs.content_type.clone())
                .or(Some("binary/octet-stream".into())),
            content_encoding: attrs.content_encoding.as_deref().and_then(stored_encoding),
            content_disposition: attrs.content_disposition.clone(),
            content_language: attrs.content_language.clone(),
            cache_control: attrs.cache_control.clone(),
            expires: attrs.expires.as_deref().and_then(parse_http_date),
            ..Default::default()
        };
        if input.checksum_mode.is_some()
            && let Some((alg, v)) = &attrs.checksum
        {
            set_checksum!(out, alg.as_str(), v.clone());
        }
        Ok(S3Response::new(out))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let lead = lead(&req)?;
        let input = req.input;
        unversioned(input.version_id.as_deref())?;
        let pre = conditions::on_delete(
            input.if_match.as_ref(),
            input.if_match_last_modified_time.as_ref(),
            input.if_match_size,
        )?;
        bucket_entry(&ReadView::of(&lead), &input.bucket).await?;
        delete_key(&self.dp, &lead, &input.bucket, &input.key, &pre).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let lead = lead(&req)?;
        let input = req.input;
        bucket_entry(&ReadView::of(&lead), &input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in input.delete.objects {
            let etag = o.e_tag.clone().map(ETagCondition::ETag);
            let checked = unversioned(o.version_id.as_deref()).and_then(|()| {
                conditions::on_delete(etag.as_ref(), o.last_modified_time.as_ref(), o.size)
            });
            let deleted_one = match checked {
                Ok(pre) => delete_key(&self.dp, &lead, &input.bucket, &o.key, &pre).await,
                Err(e) => Err(e),
            };
            match deleted_one {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(o.key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => errors.push(s3s::dto::Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(o.key),
                    message: e.message().map(str::to_string),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let lead = lead(&req)?;
        let (if_match, if_none_match) = conditions::from_headers(&req.headers)?;
        let pre = conditions::on_write(if_match.as_ref(), if_none_match.as_ref())?;
        let input = req.input;
        unsupported::check_write(&WriteOptions::from(&input))?;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "access point copy sources are not supported"
            ));
        };
        unversioned(version_id.as_deref())?;
        let dest = path(&input.bucket, &input.key)?;
        bucket_entry(&ReadView::of(&lead), &input.bucket).await?;
        let src = object(&ReadView::of(&lead), src_bucket, src_key).await?;
        check_conditions(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            // A copy answers 412 for every failed source condition, 304 included.
            if e.code() == &S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed)
            } else {
                e
            }
        })?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let same = dest.as_str()
            == keys::to_path(src_bucket, src_key)
                .map_err(error::key)?
                .as_str();
        if same && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object to itself needs the REPLACE metadata directive"
            ));
        }
        let etag = etag_of(&src);
        let mut attrs = if replace {
            attrs_from(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires.as_ref(),
                input.metadata,
            )
        } else {
            src.attrs.clone()
        };
        attrs.etag = src.attrs.etag.clone();
        attrs.checksum = src.attrs.checksum.clone();
        // The copy shares the source's chunks, so it has the same parts.
        attrs.part_runs = src.attrs.part_runs.clone();
        // The copy shares the source's chunks: no data moves. The orphan collector keeps a
        // chunk while any manifest names it, so deleting either file leaves the other whole.
        let meta = FileMeta {
            file_id: format!("{:032x}", rand::random::<u128>()),
            mtime: records::now_ms(),
            epoch: lead.epoch(),
            parts: 0,
            attrs,
            ..src
        };
        let mut guard = Uncommitted::new(&self.dp.repairs);
        guard.keep();
        let meta = commit(&self.dp, &lead, &dest, meta, &pre, &mut guard).await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(modified(&meta)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// Deletes one key; a key that is not there (or names a directory) is already deleted.
async fn delete_key(
    dp: &Arc<DataPlane>,
    lead: &Leadership,
    bucket: &str,
    key: &str,
    pre: &Precondition,
) -> S3Result<()> {
    let p = path(bucket, key)?;
    match namespace::remove(lead, &dp.known_dirs, &p, pre).await {
        Ok(_) => {
            dp.repairs.orphaned();
            Ok(())
        }
        // Deleting what is not there (no object, or a directory of other keys) succeeds,
        // unless a condition needed it there.
        Err(NsError::NotFound(_)) | Err(NsError::Conflict(_)) => {
            precondition::judge(pre, None).map_err(conditions::refused)
        }
        // Not deleted: never answered as if it were.
        Err(e @ NsError::Contended(_)) => Err(S3Error::with_message(
            S3ErrorCode::OperationAborted,
            e.to_string(),
        )),
        Err(e) => Err(error::ns(e)),
    }
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    httpdate::parse_http_date(s).ok().map(Timestamp::from)
}

fn max_keys(n: Option<i32>) -> S3Result<usize> {
    match n {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

/// One page of `bucket`'s keys after `after`, for every listing call: the bucket must exist
/// and `asked` (the request's `max-keys`) be valid. Returns the page and its size limit.
async fn list_page(
    index: &DirIndex,
    lead: &ReadView,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: &str,
    asked: Option<i32>,
) -> S3Result<(list::Page, usize)> {
    bucket_entry(lead, bucket).await?;
    let max = max_keys(asked)?;
    if max == 0 {
        return Ok((list::Page::default(), max));
    }
    let page = list::list(
        index,
        lead.client(),
        lead.layout(),
        &list::Query {
            bucket,
            prefix,
            delimiter,
            after,
            max,
        },
    )
    .await
    .map_err(|e| match e {
        ListError::Ns(e) => error::ns(e),
        ListError::Index(e) => error::data(DataError::Unavailable(format!("cannot list now: {e}"))),
    })?;
    Ok((page, max))
}

/// Whether a listing asked for `encoding-type=url`.
fn url_encoded(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == "url")
}

/// Percent-encodes a key for `encoding-type=url`.
fn enc(s: &str, url: bool) -> String {
    if url {
        percent_encoding::utf8_percent_encode(s, URL_KEY).to_string()
    } else {
        s.to_string()
    }
}

/// What `encoding-type=url` encodes: all but unreserved characters and `/`.
const URL_KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A page's objects and common prefixes; each object names its owner when `with_owner`
/// (always in ListObjects, with `fetch-owner=true` in ListObjectsV2).
fn rows(page: &list::Page, url: bool, with_owner: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for f in &page.found {
        match f {
            list::Found::Object { key, meta } => contents.push(Object {
                key: Some(enc(key, url)),
                size: Some(meta.size as i64),
                e_tag: Some(ETag::Strong(etag_of(meta))),
                last_modified: Some(modified(meta)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: with_owner.then(owner),
                ..Default::default()
            }),
            list::Found::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p, url)),
            }),
        }
    }
    (contents, prefixes)
}

/// Continuation tokens are the last key returned, base64 so clients treat them as opaque.
fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(t: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "the continuation token is not one FileGrid made"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_one_of_a_single_part_object_is_all_of_it() {
        let code = |r: S3Result<PartAsk>| r.unwrap_err().code().as_str().to_string();
        let single = object_meta("abc", 10, vec![]);
        assert_eq!(part_read(None, &single, false).unwrap(), PartAsk::No);
        assert_eq!(part_read(Some(1), &single, false).unwrap(), PartAsk::Whole);
        assert_eq!(
            code(part_read(Some(2), &single, false)),
            "InvalidPartNumber"
        );
        assert_eq!(code(part_read(Some(0), &single, false)), "InvalidArgument");
        assert_eq!(
            code(part_read(Some(10_001), &single, false)),
            "InvalidArgument"
        );
        assert_eq!(code(part_read(Some(1), &single, true)), "InvalidRequest");
    }

    #[test]
    fn a_multipart_objects_parts_are_cut_by_the_sizes_kept() {
        let code = |r: S3Result<PartAsk>| r.unwrap_err().code().as_str().to_string();
        let multi = object_meta("abc-3", 25, vec![(10, 2), (5, 1)]);
        assert_eq!(part_read(None, &multi, true).unwrap(), PartAsk::No);
        assert_eq!(
            part_read(Some(2), &multi, false).unwrap(),
            PartAsk::Span {
                bytes: 10..20,
                count: 3
            }
        );
        assert_eq!(
            part_read(Some(3), &multi, false).unwrap(),
            PartAsk::Span {
                bytes: 20..25,
                count: 3
            }
        );
        assert_eq!(code(part_read(Some(4), &multi, false)), "InvalidPartNumber");
        // Completed before the sizes were kept, or sizes that are not this object's.
        let unknown = object_meta("abc-3", 25, vec![]);
        assert_eq!(code(part_read(Some(1), &unknown, false)), "NotImplemented");
        let damaged = object_meta("abc-3", 26, vec![(10, 2), (5, 1)]);
        assert_eq!(code(part_read(Some(1), &damaged, false)), "NotImplemented");
    }

    #[test]
    fn content_ranges_name_the_first_and_last_byte() {
        assert_eq!(content_range(0..10, 10).as_deref(), Some("bytes 0-9/10"));
        assert_eq!(content_range(10..25, 25).as_deref(), Some("bytes 10-24/25"));
        assert_eq!(content_range(5..5, 10), None);
    }

    fn object_meta(etag: &str, size: u64, part_runs: Vec<(u64, u32)>) -> FileMeta {
        FileMeta {
            file_id: "f".into(),
            size,
            checksum: "crc32c:00000000".into(),
            chunk_size: 1 << 20,
            chunk_count: 1,
            mtime: 0,
            epoch: 1,
            chunks: Vec::new(),
            parts: 0,
            attrs: ObjectAttrs {
                etag: Some(etag.into()),
                part_runs,
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_multipart_etag_carries_its_part_count() {
        assert_eq!(multipart_parts("0123abcdef-3"), Some(3));
        assert_eq!(multipart_parts("0123abcdef"), None);
        assert_eq!(multipart_parts("0123abcdef-0"), None);
        assert_eq!(multipart_parts("-3"), None);
        assert_eq!(multipart_parts("xyz-3"), None);
        assert_eq!(multipart_parts("0123-x"), None);
    }

    fn tag(v: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(v.into()))
    }

    #[test]
    fn only_the_null_version_is_served() {
        assert!(unversioned(None).is_ok());
        assert!(unversioned(Some("null")).is_ok());
        assert!(unversioned(Some("3HL4kqtJlcpXroDTDmJ")).is_err());
        assert!(unversioned(Some("")).is_err());
    }

    #[test]
    fn aws_chunked_framing_is_not_kept_as_the_object_s_encoding() {
        assert_eq!(stored_encoding("gzip").as_deref(), Some("gzip"));
        assert_eq!(stored_encoding("gzip,aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(
            stored_encoding("aws-chunked, gzip, br").as_deref(),
            Some("gzip,br")
        );
        assert_eq!(stored_encoding("AWS-Chunked"), None);
        assert_eq!(stored_encoding(" , "), None);
    }

    #[test]
    fn conditions_follow_rfc_9110_as_s3_applies_them() {
        use Verdict::*;
        assert_eq!(judge("e", 100, None, None, None, None), Serve);
        assert_eq!(judge("e", 100, Some(&tag("e")), None, None, None), Serve);
        assert_eq!(
            judge("e", 100, Some(&tag("x")), None, None, None),
            PreconditionFailed
        );
        assert_eq!(
            judge("e", 100, Some(&ETagCondition::Any), None, None, None),
            Serve
        );
        assert_eq!(
            judge("e", 100, None, Some(&tag("e")), None, None),
            NotModified
        );
        assert_eq!(judge("e", 100, None, Some(&tag("x")), None, None), Serve);
        assert_eq!(judge("e", 100, None, None, Some(100), None), NotModified);
        assert_eq!(judge("e", 100, None, None, Some(99), None), Serve);
        assert_eq!(
            judge("e", 100, None, None, None, Some(99)),
            PreconditionFailed
        );
        assert_eq!(judge("e", 100, None, None, None, Some(100)), Serve);
        // If-Match true wins over a failing If-Unmodified-Since; If-None-Match false over
        // a matching If-Modified-Since.
        assert_eq!(
            judge("e", 100, Some(&tag("e")), None, None, Some(50)),
            Serve
        );
        assert_eq!(
            judge("e", 100, None, Some(&tag("x")), Some(200), None),
            Serve
        );
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let t = encode_token("a/ü//b");
        assert_eq!(decode_token(&t).unwrap(), "a/ü//b");
        assert!(decode_token("***").is_err());
    }
}
