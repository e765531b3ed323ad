//! Multipart uploads: each part is stored as chunks the moment it arrives and recorded under
//! `uploads/` ([`crate::files::uploads`]); completing the upload commits a manifest made of
//! the parts' chunk lists, so no part data is copied or read again.

use md5::Digest;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::service::{
    FileGridS3, attrs_from, body_of, bucket_entry, commit, hex, lead, path, view,
};
use super::unsupported::{self, CustomerKey, WriteOptions};
use super::{checksum, error};
use crate::files::manifest::FileMeta;
use crate::files::namespace::NsError;
use crate::files::read::{self, ByteRange};
use crate::files::uploads::{self, PartRecord, UploadRecord};
use crate::files::write::{self, Digests, Uncommitted};
use crate::leadership::ReadView;
use crate::zk::records;

/// Smallest part but the last.
pub const MIN_PART: u64 = 5 << 20;
/// Largest part.
pub const MAX_PART: u64 = 5 << 30;
/// Most parts in one upload.
pub const MAX_PARTS: i32 = 10_000;

/// What completing an upload with `chosen` parts out of `stored` makes, or the S3 error
/// code of the first rule broken (pure): parts in ascending order, each stored with the
/// ETag the client names, each but the last at least [`MIN_PART`].
pub fn assemble<'a>(
    chosen: &[(i32, String)],
    stored: &'a [(u32, PartRecord)],
) -> Result<Vec<&'a PartRecord>, (S3ErrorCode, String)> {
    if chosen.is_empty() {
        return Err((S3ErrorCode::MalformedXML, "no parts were named".into()));
    }
    let mut out = Vec::with_capacity(chosen.len());
    let mut last = 0;
    for (i, (number, etag)) in chosen.iter().enumerate() {
        if *number <= last {
            return Err((
                S3ErrorCode::InvalidPartOrder,
                format!("part {number} does not follow part {last}"),
            ));
        }
        last = *number;
        let Some((_, part)) = stored.iter().find(|(n, _)| *n as i32 == *number) else {
            return Err((
                S3ErrorCode::InvalidPart,
                format!("part {number} was not uploaded"),
            ));
        };
        if etag.trim_matches('"') != part.md5 {
            return Err((
                S3ErrorCode::InvalidPart,
                format!("part {number} has another ETag than {etag}"),
            ));
        }
        if i + 1 < chosen.len() && part.size < MIN_PART {
            return Err((
                S3ErrorCode::EntityTooSmall,
                format!(
                    "part {number} is {} bytes; all but the last need 5 MiB",
                    part.size
                ),
            ));
        }
        out.push(part);
    }
    Ok(out)
}

/// The ETag of a multipart object: the MD5 of the parts' MD5s, a dash, the part count.
pub fn multipart_etag(parts: &[&PartRecord]) -> String {
    let mut m = md5::Md5::new();
    for p in parts {
        let bytes: Vec<u8> = (0..p.md5.len() / 2)
            .filter_map(|i| u8::from_str_radix(p.md5.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        m.update(&bytes);
    }
    format!("{}-{}", hex(&m.finalize()), parts.len())
}

/// The upload `id` for `bucket`/`key`, or NoSuchUpload.
async fn upload_of(lead: &ReadView, bucket: &str, key: &str, id: &str) -> S3Result<UploadRecord> {
    match uploads::get(lead.client(), lead.layout(), id).await {
        Ok(Some(r)) if r.bucket == bucket && r.key == key => Ok(r),
        Ok(_) => Err(s3_error!(NoSuchUpload)),
        Err(e) => Err(error::ns(e)),
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PARTS).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(
            InvalidArgument,
            "part numbers run from 1 to 10000"
        ))
    }
}

pub async fn create(
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let lead = lead(&req)?;
    let i = req.input;
    unsupported::check_write(&WriteOptions::from(&i))?;
    path(&i.bucket, &i.key)?;
    bucket_entry(&ReadView::of(&lead), &i.bucket).await?;
    let attrs = attrs_from(
        i.content_type,
        i.content_encoding,
        i.content_disposition,
        i.content_language,
        i.cache_control,
        i.expires.as_ref(),
        i.metadata,
    );
    let record = UploadRecord {
        v: 1,
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        created: records::now_ms(),
        attrs,
    };
    let id = uploads::create(&lead, &record).await.map_err(error::ns)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        ..Default::default()
    }))
}

/// Stores a part's bytes and records it; returns its ETag.
async fn store_part(
    s3: &FileGridS3,
    lead: &crate::leadership::Leadership,
    id: &str,
    number: u32,
    body: axum::body::Body,
    announced: write::Announced,
    claims: checksum::Claims<'_>,
) -> S3Result<String> {
    let Ok(_permit) = s3.dp.uploads.clone().try_acquire_owned() else {
        return Err(s3_error!(
            SlowDown,
            "too many uploads in progress; retry shortly"
        ));
    };
    let mut guard = Uncommitted::new(&s3.dp.repairs);
    let digests = Digests {
        md5: Some(crate::multi_md5::Md5::new()),
        checksum: claims.checksum.as_ref().map(|c| c.hasher()).transpose()?,
    };
    let stored = write::store(&s3.dp, lead, body, announced, digests)
        .await
        .map_err(error::data)?;
    if stored.size > MAX_PART {
        return Err(s3_error!(EntityTooLarge, "a part holds at most 5 GiB"));
    }
    let mut stored = stored;
    let md5 = checksum::md5_checked(stored.digests.md5.take(), claims.content_md5)?;
    if let (Some(c), Some(h)) = (claims.checksum, stored.digests.checksum.take()) {
        c.verify(h, claims.trailers)?;
    }
    let etag = hex(&md5);
    let part = PartRecord {
        v: 1,
        size: stored.size,
        md5: etag.clone(),
        crc32c: stored.crc32c,
        mtime: records::now_ms(),
        chunks: stored.chunks,
    };
    match uploads::put_part(lead, id, number, &part).await {
        Ok(replaced) => {
            guard.keep();
            if replaced {
                s3.dp.repairs.orphaned();
            }
            Ok(etag)
        }
        Err(NsError::NotFound(_)) => Err(s3_error!(NoSuchUpload)),
        Err(e) => Err(error::ns(e)),
    }
}

pub async fn upload_part(
    s3: &FileGridS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let lead = lead(&req)?;
    unsupported::check_no_customer_key(req.input.customer_key())?;
    let trailers = req.trailing_headers.clone();
    let announced = checksum::announced(
        [
            &req.input.checksum_crc32,
            &req.input.checksum_crc32c,
            &req.input.checksum_crc64nvme,
            &req.input.checksum_sha1,
            &req.input.checksum_sha256,
        ],
        req.headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok()),
    );
    let mut i = req.input;
    let number = part_number(i.part_number)?;
    upload_of(&ReadView::of(&lead), &i.bucket, &i.key, &i.upload_id).await?;
    if i.content_length.is_some_and(|n| n as u64 > MAX_PART) {
        return Err(s3_error!(EntityTooLarge, "a part holds at most 5 GiB"));
    }
    let body = body_of(i.body.take());
    let etag = store_part(
        s3,
        &lead,
        &i.upload_id,
        number,
        body,
        super::service::about(i.content_length),
        checksum::Claims {
            content_md5: i.content_md5.as_deref(),
            checksum: announced,
            trailers: trailers.as_ref(),
        },
    )
    .await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

pub async fn upload_part_copy(
    s3: &FileGridS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let lead = lead(&req)?;
    let i = req.input;
    unsupported::check_no_customer_key(i.customer_key())?;
    let number = part_number(i.part_number)?;
    upload_of(&ReadView::of(&lead), &i.bucket, &i.key, &i.upload_id).await?;
    let CopySource::Bucket {
        bucket: sb,
        key: sk,
        version_id,
    } = &i.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources are supported"
        ));
    };
    super::service::unversioned(version_id.as_deref())?;
    let src = super::service::object(&ReadView::of(&lead), sb, sk).await?;
    let range = match &i.copy_source_range {
        None => 0..src.size,
        Some(r) => {
            let parsed = Range::parse(r)
                .map_err(|_| s3_error!(InvalidArgument, "bad x-amz-copy-source-range"))?;
            parsed
                .check(src.size)
                .map_err(|_| s3_error!(InvalidRange))?
        }
    };
    let modified = super::service::modified(&src);
    // The range is read and stored as the part's own chunks.
    let body = read::download(
        s3.dp.clone(),
        src,
        Some(ByteRange {
            start: range.start,
            end: range.end,
        }),
    )
    .await
    .map_err(error::data)?;
    let etag = store_part(
        s3,
        &lead,
        &i.upload_id,
        number,
        body,
        // The range's length sizes the part's first buffer, as a client's length does.
        write::Announced::About(range.end - range.start),
        Default::default(),
    )
    .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(modified),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn complete(
    s3: &FileGridS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let lead = lead(&req)?;
    let i = req.input;
    let dest = path(&i.bucket, &i.key)?;
    let record = upload_of(&ReadView::of(&lead), &i.bucket, &i.key, &i.upload_id).await?;
    let stored = uploads::parts(lead.client(), lead.layout(), &i.upload_id)
        .await
        .map_err(|e| match e {
            NsError::NotFound(_) => s3_error!(NoSuchUpload),
            e => error::ns(e),
        })?;
    let chosen: Vec<(i32, String)> = i
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                p.part_number.unwrap_or(0),
                p.e_tag.map(|e| e.value().to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let parts =
        assemble(&chosen, &stored).map_err(|(code, msg)| S3Error::with_message(code, msg))?;
    let etag = multipart_etag(&parts);
    let mut size = 0u64;
    let mut crc = 0u32;
    let mut chunks = Vec::new();
    for p in &parts {
        crc = crc32c::crc32c_combine(crc, p.crc32c, p.size as usize);
        size += p.size;
        chunks.extend(p.chunks.iter().cloned());
    }
    let mut attrs = record.attrs.clone();
    attrs.etag = Some(etag.clone());
    attrs.part_runs = super::parts::runs_of(parts.iter().map(|p| p.size));
    let meta = FileMeta {
        file_id: format!("{:032x}", rand::random::<u128>()),
        size,
        checksum: crate::chunk::Checksum(crc).to_string(),
        chunk_size: s3.dp.config.chunk_size,
        chunk_count: chunks.len() as u64,
        mtime: records::now_ms(),
        epoch: lead.epoch(),
        chunks,
        parts: 0,
        attrs,
    };
    let pre = super::conditions::on_write(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    let mut guard = Uncommitted::new(&s3.dp.repairs);
    guard.keep();
    commit(&s3.dp, &lead, &dest, meta, &pre, &mut guard).await?;
    // Parts left out of the object are orphans now; the upload's records go.
    match uploads::remove(&lead, &i.upload_id).await {
        Ok(()) | Err(NsError::NotFound(_)) => {}
        Err(e) => {
            tracing::warn!(upload = %i.upload_id, error = %e, "completed upload's records not removed; they are collected later")
        }
    }
    s3.dp.repairs.orphaned();
    tracing::info!(bucket = %i.bucket, key = %i.key, parts = parts.len(), size, "completed multipart upload");
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        e_tag: Some(ETag::Strong(etag)),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        ..Default::default()
    }))
}

pub async fn abort(
    s3: &FileGridS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let lead = lead(&req)?;
    let i = req.input;
    upload_of(&ReadView::of(&lead), &i.bucket, &i.key, &i.upload_id).await?;
    match uploads::remove(&lead, &i.upload_id).await {
        Ok(()) => {
            s3.dp.repairs.orphaned();
            Ok(S3Response::new(AbortMultipartUploadOutput::default()))
        }
        Err(NsError::NotFound(_)) => Err(s3_error!(NoSuchUpload)),
        Err(e) => Err(error::ns(e)),
    }
}

pub async fn list_parts(req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let lead = view(&req)?;
    let i = req.input;
    upload_of(&lead, &i.bucket, &i.key, &i.upload_id).await?;
    let stored = uploads::parts(lead.client(), lead.layout(), &i.upload_id)
        .await
        .map_err(error::ns)?;
    let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
    let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let after: Vec<&(u32, PartRecord)> = stored.iter().filter(|(n, _)| *n > marker).collect();
    let truncated = after.len() > max;
    let page: Vec<&(u32, PartRecord)> = after.into_iter().take(max).collect();
    let next = page.last().map(|(n, _)| *n as i32);
    let parts = page
        .iter()
        .map(|(n, p)| Part {
            part_number: Some(*n as i32),
            size: Some(p.size as i64),
            e_tag: Some(ETag::Strong(p.md5.clone())),
            last_modified: Some(Timestamp::from(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(p.mtime),
            )),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        parts: Some(parts),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: truncated.then_some(next).flatten(),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let lead = view(&req)?;
    let i = req.input;
    bucket_entry(&lead, &i.bucket).await?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let mut all: Vec<(String, UploadRecord)> = uploads::all(lead.client(), lead.layout())
        .await
        .map_err(error::ns)?
        .into_iter()
        .filter(|(_, r)| r.bucket == i.bucket && r.key.starts_with(&prefix))
        .collect();
    all.sort_by(|a, b| (&a.1.key, a.1.created, &a.0).cmp(&(&b.1.key, b.1.created, &b.0)));
    let key_marker = i.key_marker.clone().unwrap_or_default();
    let id_marker = i.upload_id_marker.clone();
    let all: Vec<(String, UploadRecord)> = all
        .into_iter()
        .filter(|(id, r)| match &id_marker {
            Some(m) if r.key == key_marker => id.as_str() > m.as_str(),
            _ => r.key > key_marker || key_marker.is_empty(),
        })
        .collect();
    let max = i.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let truncated = all.len() > max;
    let page: Vec<&(String, UploadRecord)> = all.iter().take(max).collect();
    let (next_key, next_id) = match (truncated, page.last()) {
        (true, Some((id, r))) => (Some(r.key.clone()), Some(id.clone())),
        _ => (None, None),
    };
    let listed = page
        .iter()
        .map(|(id, r)| MultipartUpload {
            key: Some(r.key.clone()),
            upload_id: Some(id.clone()),
            initiated: Some(Timestamp::from(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.created),
            )),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(listed),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(size: u64, md5: &str) -> PartRecord {
        PartRecord {
            v: 1,
            size,
            md5: md5.into(),
            crc32c: 0,
            mtime: 0,
            chunks: Vec::new(),
        }
    }

    #[test]
    fn completion_rules() {
        let stored = vec![
            (1, part(MIN_PART, "aa")),
            (2, part(MIN_PART - 1, "bb")),
            (3, part(1, "cc")),
        ];
        let ok = assemble(&[(1, "\"aa\"".into()), (3, "cc".into())], &stored).unwrap();
        assert_eq!(ok.len(), 2);
        let code = |r: Result<Vec<&PartRecord>, (S3ErrorCode, String)>| r.err().map(|(c, _)| c);
        assert_eq!(
            code(assemble(&[(1, "aa".into()), (1, "aa".into())], &stored)),
            Some(S3ErrorCode::InvalidPartOrder)
        );
        assert_eq!(
            code(assemble(&[(4, "dd".into())], &stored)),
            Some(S3ErrorCode::InvalidPart)
        );
        assert_eq!(
            code(assemble(&[(1, "zz".into())], &stored)),
            Some(S3ErrorCode::InvalidPart)
        );
        assert_eq!(
            code(assemble(&[(2, "bb".into()), (3, "cc".into())], &stored)),
            Some(S3ErrorCode::EntityTooSmall)
        );
        // A small last part is fine.
        assert!(assemble(&[(1, "aa".into()), (2, "bb".into())], &stored).is_ok());
        assert_eq!(
            code(assemble(&[], &stored)),
            Some(S3ErrorCode::MalformedXML)
        );
    }

    #[test]
    fn multipart_etags_are_the_md5_of_the_part_md5s() {
        // Two parts whose MD5s are those of "a" and "b".
        let a = part(1, "0cc175b9c0f1b6a831c399e269772661");
        let b = part(1, "92eb5ffee6ae2fec3ad71c777531578f");
        let mut m = md5::Md5::new();
        m.update(md5::Md5::digest(b"a"));
        m.update(md5::Md5::digest(b"b"));
        assert_eq!(
            multipart_etag(&[&a, &b]),
            format!("{}-2", hex(&m.finalize()))
        );
    }
}
