//! Request options FileGrid cannot honour, refused with the error S3 gives rather than
//! accepted and ignored: an object stored without the encryption, lock, ACL, tags or storage
//! class its writer asked for would be a success that lies. The options that match what
//! FileGrid does anyway (the `private` and `bucket-owner-full-control` ACLs, the `STANDARD`
//! storage class, object ownership `BucketOwnerEnforced`, legal hold `OFF`) pass, since
//! tools send them by default.

use s3s::dto::{
    CopyObjectInput, CreateBucketInput, CreateMultipartUploadInput, GetObjectAttributesInput,
    GetObjectInput, HeadObjectInput, PutObjectInput, UploadPartCopyInput, UploadPartInput,
};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// The options of a request that stores an object (PutObject, CopyObject,
/// CreateMultipartUpload), as far as FileGrid may refuse them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions<'a> {
    /// A canned ACL (`x-amz-acl`).
    pub acl: Option<&'a str>,
    /// Any `x-amz-grant-*` header.
    pub grants: bool,
    /// `x-amz-server-side-encryption`, or any SSE-KMS option.
    pub encryption: bool,
    /// Any `x-amz-server-side-encryption-customer-*` header (SSE-C).
    pub customer_key: bool,
    pub storage_class: Option<&'a str>,
    /// `x-amz-tagging` with at least one tag.
    pub tags: bool,
    pub website_redirect: bool,
    /// A retention mode or date, or a legal hold other than `OFF`.
    pub object_lock: bool,
}

/// The canned ACLs that say what FileGrid does anyway: the owner has full control.
const OWNER_ONLY_ACLS: [&str; 2] = ["private", "bucket-owner-full-control"];

/// Whether a canned ACL or grants would give anyone more than the owner has (pure).
fn grants_more_than_owner(acl: Option<&str>, grants: bool) -> bool {
    grants || acl.is_some_and(|a| !OWNER_ONLY_ACLS.contains(&a))
}

/// Refuses the options of an object write FileGrid would otherwise ignore (pure).
pub fn check_write(o: &WriteOptions<'_>) -> S3Result<()> {
    if o.customer_key || o.encryption {
        return Err(s3_error!(
            NotImplemented,
            "server-side encryption is not supported: FileGrid does not encrypt stored objects"
        ));
    }
    if grants_more_than_owner(o.acl, o.grants) {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessControlListNotSupported,
            "The bucket does not allow ACLs: access is granted by the role of each credential",
        ));
    }
    if let Some(class) = o.storage_class
        && class != "STANDARD"
    {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidStorageClass,
            format!(
                "The storage class you specified is not valid: {class:?} (FileGrid has one, STANDARD)"
            ),
        ));
    }
    if o.object_lock {
        return Err(s3_error!(
            InvalidRequest,
            "Bucket is missing Object Lock Configuration"
        ));
    }
    if o.tags {
        return Err(s3_error!(NotImplemented, "object tags are not supported"));
    }
    if o.website_redirect {
        return Err(s3_error!(
            NotImplemented,
            "website redirects are not supported"
        ));
    }
    Ok(())
}

/// Refuses SSE-C keys on a read or a part: no object is stored encrypted with one (pure).
pub fn check_no_customer_key(customer_key: bool) -> S3Result<()> {
    if customer_key {
        return Err(s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object"
        ));
    }
    Ok(())
}

/// Refuses the options of a CreateBucket FileGrid would otherwise ignore: ACLs (a bucket's
/// objects are owned by the grid, as with S3's `BucketOwnerEnforced`) and object lock.
pub fn check_create_bucket(i: &CreateBucketInput) -> S3Result<()> {
    let grants = i.grant_full_control.is_some()
        || i.grant_read.is_some()
        || i.grant_read_acp.is_some()
        || i.grant_write.is_some()
        || i.grant_write_acp.is_some();
    if grants_more_than_owner(i.acl.as_ref().map(|a| a.as_str()), grants) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ));
    }
    if i.object_ownership
        .as_ref()
        .is_some_and(|o| o.as_str() != "BucketOwnerEnforced")
    {
        return Err(s3_error!(
            NotImplemented,
            "only the BucketOwnerEnforced object ownership is supported"
        ));
    }
    if i.object_lock_enabled_for_bucket == Some(true) {
        return Err(s3_error!(NotImplemented, "object lock is not supported"));
    }
    Ok(())
}

/// Whether a `x-amz-tagging` value names at least one tag.
fn has_tags(tagging: Option<&String>) -> bool {
    tagging.is_some_and(|t| !t.trim().is_empty())
}

macro_rules! write_options {
    ($i:expr) => {
        WriteOptions {
            acl: $i.acl.as_ref().map(|a| a.as_str()),
            grants: $i.grant_full_control.is_some()
                || $i.grant_read.is_some()
                || $i.grant_read_acp.is_some()
                || $i.grant_write_acp.is_some(),
            encryption: $i.server_side_encryption.is_some()
                || $i.ssekms_key_id.is_some()
                || $i.ssekms_encryption_context.is_some()
                || $i.bucket_key_enabled == Some(true),
            customer_key: $i.sse_customer_algorithm.is_some()
                || $i.sse_customer_key.is_some()
                || $i.sse_customer_key_md5.is_some(),
            storage_class: $i.storage_class.as_ref().map(|c| c.as_str()),
            tags: has_tags($i.tagging.as_ref()),
            website_redirect: $i.website_redirect_location.is_some(),
            object_lock: $i.object_lock_mode.is_some()
                || $i.object_lock_retain_until_date.is_some()
                || $i
                    .object_lock_legal_hold_status
                    .as_ref()
                    .is_some_and(|h| h.as_str() != "OFF"),
        }
    };
}

impl<'a> From<&'a PutObjectInput> for WriteOptions<'a> {
    fn from(i: &'a PutObjectInput) -> Self {
        write_options!(i)
    }
}

impl<'a> From<&'a CreateMultipartUploadInput> for WriteOptions<'a> {
    fn from(i: &'a CreateMultipartUploadInput) -> Self {
        write_options!(i)
    }
}

impl<'a> From<&'a CopyObjectInput> for WriteOptions<'a> {
    fn from(i: &'a CopyObjectInput) -> Self {
        let mut o = write_options!(i);
        // A copy's source key is an SSE-C key too.
        o.customer_key |= i.copy_source_sse_customer_algorithm.is_some()
            || i.copy_source_sse_customer_key.is_some()
            || i.copy_source_sse_customer_key_md5.is_some();
        o
    }
}

/// Whether a read or a part carries an SSE-C key.
pub trait CustomerKey {
    fn customer_key(&self) -> bool;
}

macro_rules! customer_key {
    ($t:ty $(, $extra:ident)*) => {
        impl CustomerKey for $t {
            fn customer_key(&self) -> bool {
                self.sse_customer_algorithm.is_some()
                    || self.sse_customer_key.is_some()
                    || self.sse_customer_key_md5.is_some()
                    $(|| self.$extra.is_some())*
            }
        }
    };
}

customer_key!(GetObjectInput);
customer_key!(GetObjectAttributesInput);
customer_key!(HeadObjectInput);
customer_key!(UploadPartInput);
customer_key!(
    UploadPartCopyInput,
    copy_source_sse_customer_algorithm,
    copy_source_sse_customer_key,
    copy_source_sse_customer_key_md5
);

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: S3Result<()>) -> String {
        r.unwrap_err().code().as_str().to_string()
    }

    /// The code `check_write` answers for the default options changed by `f`.
    fn refused(f: fn(&mut WriteOptions<'static>)) -> String {
        let mut o = WriteOptions::default();
        f(&mut o);
        code(check_write(&o))
    }

    #[test]
    fn what_filegrid_does_anyway_passes() {
        assert!(check_write(&WriteOptions::default()).is_ok());
        for acl in ["private", "bucket-owner-full-control"] {
            let o = WriteOptions {
                acl: Some(acl),
                storage_class: Some("STANDARD"),
                ..Default::default()
            };
            assert!(check_write(&o).is_ok(), "{acl}");
        }
    }

    #[test]
    fn encryption_is_not_implemented() {
        assert_eq!(refused(|o| o.encryption = true), "NotImplemented");
        assert_eq!(refused(|o| o.customer_key = true), "NotImplemented");
    }

    #[test]
    fn acls_that_grant_more_are_refused_as_s3_refuses_them() {
        let not_supported = "AccessControlListNotSupported";
        assert_eq!(refused(|o| o.acl = Some("public-read")), not_supported);
        assert_eq!(refused(|o| o.grants = true), not_supported);
    }

    #[test]
    fn other_storage_classes_lock_tags_and_redirects_are_refused() {
        assert_eq!(
            refused(|o| o.storage_class = Some("GLACIER")),
            "InvalidStorageClass"
        );
        assert_eq!(refused(|o| o.object_lock = true), "InvalidRequest");
        assert_eq!(refused(|o| o.tags = true), "NotImplemented");
        assert_eq!(refused(|o| o.website_redirect = true), "NotImplemented");
    }

    #[test]
    fn empty_tagging_is_no_tags() {
        assert!(!has_tags(None));
        assert!(!has_tags(Some(&String::new())));
        assert!(has_tags(Some(&"a=b".to_string())));
    }

    #[test]
    fn customer_keys_on_reads_are_invalid() {
        assert!(check_no_customer_key(false).is_ok());
        assert_eq!(code(check_no_customer_key(true)), "InvalidRequest");
        let mut get = GetObjectInput::builder()
            .bucket("b".into())
            .key("k".into())
            .build()
            .unwrap();
        assert!(!get.customer_key());
        get.sse_customer_algorithm = Some("AES256".into());
        assert!(get.customer_key());
    }

    #[test]
    fn buckets_take_no_acls_and_no_lock() {
        let bucket = || {
            CreateBucketInput::builder()
                .bucket("b".into())
                .build()
                .unwrap()
        };
        assert!(check_create_bucket(&bucket()).is_ok());
        let mut i = bucket();
        i.acl = Some(String::from("private").into());
        i.object_ownership = Some(String::from("BucketOwnerEnforced").into());
        assert!(check_create_bucket(&i).is_ok());
        let mut i = bucket();
        i.acl = Some(String::from("public-read").into());
        assert_eq!(
            code(check_create_bucket(&i)),
            "InvalidBucketAclWithObjectOwnership"
        );
        let mut i = bucket();
        i.object_lock_enabled_for_bucket = Some(true);
        assert_eq!(code(check_create_bucket(&i)), "NotImplemented");
        let mut i = bucket();
        i.object_ownership = Some(String::from("ObjectWriter").into());
        assert_eq!(code(check_create_bucket(&i)), "NotImplemented");
    }
}
