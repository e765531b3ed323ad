//! What every S3 answer carries besides the operation's own result: a request id
//! (`x-amz-request-id`, and `<RequestId>` in an error) to find the request in the head's log,
//! and an error `<Message>` for every code.
//!
//! Many errors (those of FileGrid's operations as well as the protocol layer's own, such as
//! `SignatureDoesNotMatch`) are raised with a code alone, and clients then print "Unknown"
//! where S3 would say what went wrong. [`complete_error`] fills in S3's own wording.

/// The header S3 names a request by.
pub const REQUEST_ID_HEADER: &str = "x-amz-request-id";

/// The largest error body completed; a larger one is passed on as it is.
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// A fresh request id: 16 upper-case hex digits, as S3's.
pub fn request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// S3's message for `code` (as AWS words it), or a generic one for codes without one.
pub fn standard_message(code: &str) -> &'static str {
    match code {
        "AccessDenied" => "Access Denied",
        "AuthorizationHeaderMalformed" => {
            "The authorization header that you provided is not valid."
        }
        "AuthorizationQueryParametersError" => {
            "The query parameters that provide authentication information are not valid."
        }
        "BadDigest" => {
            "The Content-MD5 or checksum value that you specified did not match what the server received."
        }
        "BucketAlreadyExists" => "The requested bucket name is not available.",
        "BucketAlreadyOwnedByYou" => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        "BucketNotEmpty" => "The bucket that you tried to delete is not empty.",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed object size.",
        "EntityTooSmall" => "Your proposed upload is smaller than the minimum allowed object size.",
        "ExpiredToken" => "The provided token has expired.",
        "IncompleteBody" => {
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        }
        "InternalError" => "An internal error occurred. Try again.",
        "InvalidAccessKeyId" => {
            "The access key ID that you provided does not exist in our records."
        }
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidDigest" => "The Content-MD5 or checksum value that you specified is not valid.",
        "InvalidPart" => {
            "One or more of the specified parts could not be found, or the specified entity tag might not have matched the part's entity tag."
        }
        "InvalidPartOrder" => "The list of parts was not in ascending order.",
        "InvalidRange" => "The requested range is not satisfiable.",
        "InvalidRequest" => "Invalid Request",
        "InvalidURI" => "The specified URI couldn't be parsed.",
        "KeyTooLongError" => "Your key is too long.",
        "MalformedXML" => {
            "The XML that you provided was not well formed or did not validate against the published schema."
        }
        "MetadataTooLarge" => "Your metadata headers exceed the maximum allowed metadata size.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "MissingSecurityHeader" => "Your request is missing a required header.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "NoSuchBucketPolicy" => "The specified bucket does not have a bucket policy.",
        "NoSuchCORSConfiguration" => "The specified bucket does not have a CORS configuration.",
        "NoSuchLifecycleConfiguration" => "The lifecycle configuration does not exist.",
        "NoSuchTagSet" => "The specified tag set does not exist.",
        "NoSuchWebsiteConfiguration" => {
            "The specified bucket does not have a website configuration."
        }
        "ObjectLockConfigurationNotFoundError" => {
            "Object Lock configuration does not exist for this bucket."
        }
        "ReplicationConfigurationNotFoundError" => "The replication configuration was not found.",
        "ServerSideEncryptionConfigurationNotFoundError" => {
            "The server-side encryption configuration was not found."
        }
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => {
            "The specified multipart upload does not exist. The upload ID might not be valid, or the multipart upload might have been aborted or completed."
        }
        "NotImplemented" => {
            "A header that you provided implies functionality that is not implemented."
        }
        "PreconditionFailed" => {
            "At least one of the preconditions that you specified did not hold."
        }
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the server's time is too large."
        }
        "RequestTimeout" => {
            "Your socket connection to the server was not read from or written to within the timeout period."
        }
        "ServiceUnavailable" | "SlowDown" => "Reduce your request rate.",
        "SignatureDoesNotMatch" => {
            "The request signature that the server calculated does not match the signature that you provided. Check your secret access key and signing method."
        }
        "XAmzContentSHA256Mismatch" => {
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        }
        _ => "The request could not be served.",
    }
}

/// The code of an S3 error body (`<Error><Code>…</Code>…`).
pub fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Error>")?;
    let rest = &body[start..];
    let code = rest.find("<Code>")? + "<Code>".len();
    let end = rest[code..].find("</Code>")? + code;
    Some(&rest[code..end])
}

/// `body`, an S3 error, with S3's `<Message>` for its code where it has none and with
/// `<RequestId>request_id</RequestId>` where it has none; `None` if `body` is not an S3 error
/// or needs nothing.
pub fn complete_error(body: &str, request_id: &str) -> Option<String> {
    let code = error_code(body)?;
    let close = body.rfind("</Error>")?;
    let needs_message = !body.contains("<Message>");
    let needs_id = !body.contains("<RequestId>");
    if !needs_message && !needs_id {
        return None;
    }
    let mut out = String::with_capacity(body.len() + 256);
    let mut head = &body[..close];
    if needs_message {
        // Right after the code, where S3 puts it.
        let after_code = body.find("</Code>")? + "</Code>".len();
        out.push_str(&body[..after_code]);
        out.push_str("<Message>");
        out.push_str(&xml_escape(standard_message(code)));
        out.push_str("</Message>");
        head = &body[after_code..close];
    }
    out.push_str(head);
    if needs_id {
        out.push_str("<RequestId>");
        out.push_str(&xml_escape(request_id));
        out.push_str("</RequestId>");
    }
    out.push_str(&body[close..]);
    Some(out)
}

/// `s` with the characters XML text may not hold escaped.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

    #[test]
    fn a_code_alone_gets_s3_s_message_and_the_request_id() {
        let body = format!("{DECL}<Error><Code>NoSuchKey</Code></Error>");
        assert_eq!(
            complete_error(&body, "ABC").as_deref(),
            Some(
                format!(
                    "{DECL}<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>ABC</RequestId></Error>"
                )
                .as_str()
            )
        );
    }

    #[test]
    fn a_message_of_its_own_is_kept() {
        let body = "<Error><Code>InvalidRequest</Code><Message>copy &amp; paste</Message></Error>";
        assert_eq!(
            complete_error(body, "ID").as_deref(),
            Some(
                "<Error><Code>InvalidRequest</Code><Message>copy &amp; paste</Message><RequestId>ID</RequestId></Error>"
            )
        );
    }

    #[test]
    fn a_complete_error_or_other_xml_is_left_alone() {
        let full =
            "<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>R</RequestId></Error>";
        assert_eq!(complete_error(full, "X"), None);
        assert_eq!(
            complete_error("<ListBucketResult><Code>x</Code></ListBucketResult>", "X"),
            None
        );
        assert_eq!(complete_error("<Error><Code>NoSuchKey</Code>", "X"), None);
        assert_eq!(complete_error("", "X"), None);
    }

    #[test]
    fn every_code_has_words_and_unknown_codes_a_generic_message() {
        for code in [
            "SignatureDoesNotMatch",
            "BucketNotEmpty",
            "InvalidBucketName",
        ] {
            assert_ne!(standard_message(code), standard_message("NoSuchThing"));
        }
        let body = "<Error><Code>KeyConflict&lt;</Code></Error>";
        let done = complete_error(body, "I").unwrap_or_default();
        assert!(done.contains("<Message>The request could not be served.</Message>"));
    }

    #[test]
    fn request_ids_look_like_s3_s_and_differ() {
        let (a, b) = (request_id(), request_id());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_ne!(a, b);
    }
}
