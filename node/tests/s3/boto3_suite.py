"""boto3 against a FileGrid head's S3 API; run by node/tests/s3_clients.rs.

Environment: FG_S3 (endpoint URL), FG_KEY/FG_SECRET (a writer), FG_READER_KEY/FG_READER_SECRET.
Every check raises on failure; the script prints `boto3 suite: N checks passed` at the end.
"""
import hashlib
import os
import sys
import time

import boto3
import botocore
from botocore.config import Config

CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1


def error_code(fn):
    """The S3 error code and HTTP status of `fn`'s failure; every error must name its request
    (x-amz-request-id) and, when it has a body, say in words what went wrong."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        request_id = e.response["ResponseMetadata"].get("RequestId", "")
        check(len(request_id) == 16, f"{code}: request id {request_id!r}")
        if not code.isdigit():
            message = e.response["Error"].get("Message", "")
            check(message and message != "Unknown", f"{code}: message {message!r}")
        return code, status
    return None, 200


def client(key, secret, **cfg):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["FG_S3"],
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, **cfg),
    )


s3 = client(os.environ["FG_KEY"], os.environ["FG_SECRET"])
bucket = "boto"
s3.create_bucket(Bucket=bucket)
code, status = error_code(lambda: s3.create_bucket(Bucket=bucket))
check(code == "BucketAlreadyOwnedByYou", f"second create: {code}")
listed = s3.list_buckets()
check(any(b["Name"] == bucket for b in listed["Buckets"]), "bucket listed")
check(len(listed["ResponseMetadata"]["RequestId"]) == 16, "a request id on success")
code, status = error_code(lambda: s3.head_bucket(Bucket="no-such-bucket"))
check(status == 404, f"head of a missing bucket: {status}")

# Metadata round trip.
body = b"hello, filegrid\n" * 100
put = s3.put_object(
    Bucket=bucket,
    Key="docs/hello.txt",
    Body=body,
    ContentType="text/plain",
    ContentEncoding="identity",
    ContentDisposition='attachment; filename="hello.txt"',
    CacheControl="max-age=60",
    Metadata={"Owner": "ana", "project": "grid"},
)
check(put["ETag"].strip('"') == hashlib.md5(body).hexdigest(), f"single-part ETag {put['ETag']}")
head = s3.head_object(Bucket=bucket, Key="docs/hello.txt")
check(head["ContentLength"] == len(body), "size")
check(head["ContentType"] == "text/plain", f"content type {head['ContentType']}")
check(head["ContentEncoding"] == "identity", "content encoding")
check(head["ContentDisposition"] == 'attachment; filename="hello.txt"', "disposition")
check(head["CacheControl"] == "max-age=60", "cache control")
check(head["Metadata"] == {"owner": "ana", "project": "grid"}, f"metadata {head['Metadata']}")
got = s3.get_object(Bucket=bucket, Key="docs/hello.txt", ResponseContentType="application/x-test")
check(got["Body"].read() == body, "bytes")
check(got["ContentType"] == "application/x-test", "response-content-type override")

# Ranges and conditions.
r = s3.get_object(Bucket=bucket, Key="docs/hello.txt", Range="bytes=16-31")
check(r["Body"].read() == body[16:32], "range bytes")
check(r["ContentRange"] == f"bytes 16-31/{len(body)}", f"content range {r['ContentRange']}")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/hello.txt", Range=f"bytes={len(body)}-"))
check(code == "InvalidRange" and status == 416, f"unsatisfiable range: {code} {status}")
# A Range that is not one byte range is ignored, as S3 does: the whole object, 200.
for bad_range in ["bytes=5-1", "bytes=abc", "bytes=0-1,4-5", "bytes=-", "items=0-1"]:
    r = s3.get_object(Bucket=bucket, Key="docs/hello.txt", Range=bad_range)
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 200 and "ContentRange" not in r
          and r["Body"].read() == body, f"ignored range {bad_range}")
r = s3.head_object(Bucket=bucket, Key="docs/hello.txt", Range="bytes=5-1")
check(r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["ContentLength"] == len(body), "HEAD, ignored range")
# ... and everything else about the read still counts: overrides, conditions, the signature.
r = s3.get_object(Bucket=bucket, Key="docs/hello.txt", Range="bytes=5-1", ResponseContentType="application/x-test")
check(r["ContentType"] == "application/x-test" and r["Body"].read() == body, "override with an ignored range")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/hello.txt", Range="bytes=5-1", IfMatch='"nope"'))
check(code == "PreconditionFailed" and status == 412, f"If-Match with an ignored range: {code}")
code, status = error_code(lambda: client(os.environ["FG_KEY"], "wrong-secret").get_object(
    Bucket=bucket, Key="docs/hello.txt", Range="bytes=5-1"))
check(code == "SignatureDoesNotMatch" and status == 403, f"wrong secret with an ignored range: {code}")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/no-such", Range="bytes=5-1"))
check(code == "NoSuchKey" and status == 404, f"missing key with an ignored range: {code}")
etag = head["ETag"]
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/hello.txt", IfNoneMatch=etag))
check(status == 304, f"If-None-Match with the ETag: {status}")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/hello.txt", IfMatch='"nope"'))
check(code == "PreconditionFailed" and status == 412, f"If-Match another ETag: {code}")
check(s3.get_object(Bucket=bucket, Key="docs/hello.txt", IfMatch=etag)["Body"].read() == body, "If-Match")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/hello.txt",
                                                IfModifiedSince=head["LastModified"]))
check(status == 304, f"If-Modified-Since its own time: {status}")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="missing"))
check(code == "NoSuchKey" and status == 404, f"missing key: {code}")

one = s3.get_object(Bucket=bucket, Key="docs/hello.txt", PartNumber=1)
check(one["Body"].read() == body and one["ContentRange"] == f"bytes 0-{len(body) - 1}/{len(body)}"
      and one["ResponseMetadata"]["HTTPStatusCode"] == 206, f"part 1 of a single-part object {one.get('ContentRange')}")
check(s3.head_object(Bucket=bucket, Key="docs/hello.txt", PartNumber=1)["ContentLength"] == len(body), "HEAD part 1")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="docs/hello.txt", PartNumber=2))
check(code == "InvalidPartNumber" and status == 416, f"part 2 of a single-part object: {code} {status}")

# Conditional create.
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="docs/hello.txt", Body=b"x", IfNoneMatch="*"))
check(code == "PreconditionFailed", f"If-None-Match * over an object: {code}")
s3.put_object(Bucket=bucket, Key="docs/new.txt", Body=b"new", IfNoneMatch="*")
check(s3.get_object(Bucket=bucket, Key="docs/new.txt")["Body"].read() == b"new", "conditional create")

# Conditional writes: If-Match overwrites only the object with that ETag, a missing object
# is NoSuchKey, and the condition is judged where the write commits, so of two writers that
# both saw the same ETag exactly one succeeds.
v1 = s3.put_object(Bucket=bucket, Key="cas/doc", Body=b"v1")["ETag"]
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="cas/doc", Body=b"x", IfMatch='"0123"'))
check(code == "PreconditionFailed" and status == 412, f"If-Match another ETag on a write: {code}")
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="cas/none", Body=b"x", IfMatch=v1))
check(code == "NoSuchKey" and status == 404, f"If-Match on a missing object: {code}")
v2 = s3.put_object(Bucket=bucket, Key="cas/doc", Body=b"v2", IfMatch=v1)["ETag"]
check(s3.get_object(Bucket=bucket, Key="cas/doc")["Body"].read() == b"v2", "If-Match write")
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="cas/doc", Body=b"x", IfMatch=v1))
check(code == "PreconditionFailed", f"If-Match with the replaced ETag: {code}")
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="cas/doc", Body=b"x", IfNoneMatch=v2))
check(code == "NotImplemented", f"If-None-Match other than * on a write: {code}")
from concurrent.futures import ThreadPoolExecutor
racers = [os.urandom(6 * 1024 * 1024) for _ in range(2)]


def race(data):
    try:
        return s3.put_object(Bucket=bucket, Key="cas/doc", Body=data, IfMatch=v2)["ETag"]
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


with ThreadPoolExecutor(max_workers=2) as pool:
    outcomes = list(pool.map(race, racers))
won = [i for i, o in enumerate(outcomes) if o.strip('"') == hashlib.md5(racers[i]).hexdigest()]
check(len(won) == 1 and outcomes[1 - won[0]] == "PreconditionFailed", f"two If-Match writers: {outcomes}")
check(s3.get_object(Bucket=bucket, Key="cas/doc")["Body"].read() == racers[won[0]], "the winner's bytes")
# CopyObject's destination conditions (headers the protocol layer does not model).
code, status = error_code(lambda: s3.copy_object(Bucket=bucket, Key="cas/doc", CopySource=f"{bucket}/docs/hello.txt", IfNoneMatch="*"))
check(code == "PreconditionFailed", f"copy with If-None-Match * over an object: {code}")
# Conditional deletes: by ETag (the object must be there), by size and by time.
current = s3.head_object(Bucket=bucket, Key="cas/doc")
code, status = error_code(lambda: s3.delete_object(Bucket=bucket, Key="cas/doc", IfMatch=v1))
check(code == "PreconditionFailed" and status == 412, f"delete with another ETag: {code}")
code, status = error_code(lambda: s3.delete_object(Bucket=bucket, Key="cas/doc", IfMatchSize=1))
check(code == "PreconditionFailed", f"delete with another size: {code}")
check(s3.head_object(Bucket=bucket, Key="cas/doc")["ETag"] == current["ETag"], "a refused delete deletes nothing")
code, status = error_code(lambda: s3.delete_object(Bucket=bucket, Key="cas/never", IfMatch=v1))
check(code == "NoSuchKey" and status == 404, f"delete If-Match of a missing object: {code}")
s3.delete_object(Bucket=bucket, Key="cas/doc", IfMatch=current["ETag"], IfMatchSize=current["ContentLength"],
                 IfMatchLastModifiedTime=current["LastModified"])
code, status = error_code(lambda: s3.head_object(Bucket=bucket, Key="cas/doc"))
check(status == 404, f"conditional delete: {status}")
for k in ("cas/a", "cas/b"):
    s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
etag_a = s3.head_object(Bucket=bucket, Key="cas/a")["ETag"]
r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "cas/a", "ETag": etag_a}, {"Key": "cas/b", "ETag": etag_a}]})
check([d["Key"] for d in r.get("Deleted", [])] == ["cas/a"]
      and [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("cas/b", "PreconditionFailed")], f"delete_objects with ETags {r}")
check(s3.get_object(Bucket=bucket, Key="cas/b")["Body"].read() == b"cas/b", "a refused entry stays")

# Options FileGrid cannot honour are refused, not ignored; the ones it honours anyway pass.
for kw, want in [({"ServerSideEncryption": "AES256"}, "NotImplemented"),
                 ({"ServerSideEncryption": "aws:kms"}, "NotImplemented"),
                 ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}, "NotImplemented"),
                 ({"ACL": "public-read"}, "AccessControlListNotSupported"),
                 ({"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}, "AccessControlListNotSupported"),
                 ({"StorageClass": "GLACIER"}, "InvalidStorageClass"),
                 ({"Tagging": "team=grid"}, "NotImplemented"),
                 ({"WebsiteRedirectLocation": "/elsewhere"}, "NotImplemented"),
                 ({"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": "2030-01-01T00:00:00Z"}, "InvalidRequest")]:
    code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="opts/x", Body=b"x", **kw))
    check(code == want, f"put with {kw}: {code}")
    code, status = error_code(lambda: s3.create_multipart_upload(Bucket=bucket, Key="opts/x", **kw))
    check(code == want, f"multipart with {kw}: {code}")
code, status = error_code(lambda: s3.head_object(Bucket=bucket, Key="opts/x"))
check(status == 404, "no refused write stored anything")
s3.put_object(Bucket=bucket, Key="opts/x", Body=b"x", ACL="private", StorageClass="STANDARD")
s3.put_object(Bucket=bucket, Key="opts/x", Body=b"x", ACL="bucket-owner-full-control")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="opts/x", SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32))
check(code == "InvalidRequest", f"get with an SSE-C key: {code}")
code, status = error_code(lambda: s3.copy_object(Bucket=bucket, Key="opts/y", CopySource=f"{bucket}/opts/x", ServerSideEncryption="AES256"))
check(code == "NotImplemented", f"copy with encryption: {code}")
code, status = error_code(lambda: s3.create_bucket(Bucket="locked-bucket", ObjectLockEnabledForBucket=True))
check(code == "NotImplemented", f"bucket with object lock: {code}")
code, status = error_code(lambda: s3.create_bucket(Bucket="public-bucket", ACL="public-read"))
check(code == "InvalidBucketAclWithObjectOwnership", f"public bucket: {code}")
check(all(b["Name"] not in ("locked-bucket", "public-bucket") for b in s3.list_buckets()["Buckets"]), "no refused bucket made")
s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "cas/b"}, {"Key": "opts/x"}]})

# A checksum the client asks for is verified, kept and returned.
summed = s3.put_object(Bucket=bucket, Key="sum.bin", Body=b"checksummed" * 1000, ChecksumAlgorithm="SHA256")
h = s3.head_object(Bucket=bucket, Key="sum.bin", ChecksumMode="ENABLED")
check(h.get("ChecksumSHA256") == summed.get("ChecksumSHA256") and h.get("ChecksumSHA256"), f"SHA256 kept: {h}")

# Server-side copy, with metadata copied or replaced.
c = s3.copy_object(Bucket=bucket, Key="docs/copy.txt", CopySource={"Bucket": bucket, "Key": "docs/hello.txt"})
check(c["CopyObjectResult"]["ETag"] == etag, "copy keeps the ETag")
check(s3.get_object(Bucket=bucket, Key="docs/copy.txt")["Body"].read() == body, "copy bytes")
check(s3.head_object(Bucket=bucket, Key="docs/copy.txt")["Metadata"] == {"owner": "ana", "project": "grid"}, "copy metadata")
s3.copy_object(Bucket=bucket, Key="docs/copy2.txt", CopySource=f"{bucket}/docs/hello.txt",
               MetadataDirective="REPLACE", Metadata={"new": "yes"}, ContentType="text/x-new")
h2 = s3.head_object(Bucket=bucket, Key="docs/copy2.txt")
check(h2["Metadata"] == {"new": "yes"} and h2["ContentType"] == "text/x-new", "replaced metadata")
# Deleting the source leaves the copy whole (shared chunks are kept while named).
s3.delete_object(Bucket=bucket, Key="docs/hello.txt")
check(s3.get_object(Bucket=bucket, Key="docs/copy.txt")["Body"].read() == body, "copy outlives its source")

# Multipart: a 12 MiB object in parts of 5 MiB, 5 MiB and 2 MiB.
mib = 1 << 20
data = os.urandom(12 * mib)
up = s3.create_multipart_upload(Bucket=bucket, Key="big/object.bin", ContentType="application/x-big",
                                Metadata={"kind": "multipart"})
uid = up["UploadId"]
parts = []
for n, (a, b) in enumerate([(0, 5 * mib), (5 * mib, 10 * mib), (10 * mib, 12 * mib)], start=1):
    r = s3.upload_part(Bucket=bucket, Key="big/object.bin", UploadId=uid, PartNumber=n, Body=data[a:b])
    check(r["ETag"].strip('"') == hashlib.md5(data[a:b]).hexdigest(), f"part {n} ETag")
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
listed = s3.list_parts(Bucket=bucket, Key="big/object.bin", UploadId=uid)
check([p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3], "ListParts")
uploads = s3.list_multipart_uploads(Bucket=bucket)
check(any(u["UploadId"] == uid for u in uploads.get("Uploads", [])), "ListMultipartUploads")
code, _ = error_code(lambda: s3.complete_multipart_upload(
    Bucket=bucket, Key="big/object.bin", UploadId=uid,
    MultipartUpload={"Parts": [parts[1], parts[0], parts[2]]}))
check(code == "InvalidPartOrder", f"wrong order: {code}")
code, _ = error_code(lambda: s3.complete_multipart_upload(
    Bucket=bucket, Key="big/object.bin", UploadId=uid,
    MultipartUpload={"Parts": [parts[0], {"PartNumber": 2, "ETag": '"0000"'}, parts[2]]}))
check(code == "InvalidPart", f"wrong ETag: {code}")
done = s3.complete_multipart_upload(Bucket=bucket, Key="big/object.bin", UploadId=uid,
                                    MultipartUpload={"Parts": parts})
md5s = b"".join(hashlib.md5(data[a:b]).digest() for a, b in [(0, 5 * mib), (5 * mib, 10 * mib), (10 * mib, 12 * mib)])
check(done["ETag"].strip('"') == hashlib.md5(md5s).hexdigest() + "-3", f"multipart ETag {done['ETag']}")
got = s3.get_object(Bucket=bucket, Key="big/object.bin")
check(got["Body"].read() == data, "multipart bytes")
check(got["ContentType"] == "application/x-big" and got["Metadata"] == {"kind": "multipart"}, "multipart attrs")
# partNumber reads: each part where the parts before it end, with the part count, as S3
# answers (206); past the last part, 416 InvalidPartNumber.
for n, (a, b) in enumerate([(0, 5 * mib), (5 * mib, 10 * mib), (10 * mib, 12 * mib)], start=1):
    r = s3.get_object(Bucket=bucket, Key="big/object.bin", PartNumber=n)
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 206 and r["PartsCount"] == 3
          and r["ContentRange"] == f"bytes {a}-{b - 1}/{len(data)}" and r["ContentLength"] == b - a,
          f"part {n}: {r.get('ContentRange')} {r.get('PartsCount')}")
    check(r["Body"].read() == data[a:b], f"part {n} bytes")
    h = s3.head_object(Bucket=bucket, Key="big/object.bin", PartNumber=n)
    check(h["ResponseMetadata"]["HTTPStatusCode"] == 206 and h["PartsCount"] == 3
          and h["ContentLength"] == b - a, f"HEAD part {n}: {h.get('ContentLength')} {h.get('PartsCount')}")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="big/object.bin", PartNumber=4))
check(code == "InvalidPartNumber" and status == 416, f"part past the last: {code} {status}")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="big/object.bin", PartNumber=2, Range="bytes=0-1"))
check(code == "InvalidRequest" and status == 400, f"part and range: {code} {status}")
# A copy shares the source's chunks, and so its parts, even with its metadata replaced.
s3.copy_object(Bucket=bucket, Key="big/copy.bin", CopySource={"Bucket": bucket, "Key": "big/object.bin"},
               MetadataDirective="REPLACE", ContentType="application/x-copy")
r = s3.get_object(Bucket=bucket, Key="big/copy.bin", PartNumber=3)
check(r["PartsCount"] == 3 and r["Body"].read() == data[10 * mib:12 * mib], "part of a copy")
s3.delete_object(Bucket=bucket, Key="big/copy.bin")
a = s3.get_object_attributes(Bucket=bucket, Key="big/object.bin",
                             ObjectAttributes=["ETag", "ObjectSize", "StorageClass", "ObjectParts"])
check(a["ETag"].strip('"') == done["ETag"].strip('"') and a["ObjectSize"] == len(data)
      and a["StorageClass"] == "STANDARD" and a["ObjectParts"]["TotalPartsCount"] == 3, f"object attributes {a}")
a = s3.get_object_attributes(Bucket=bucket, Key="sum.bin", ObjectAttributes=["Checksum", "ObjectParts"])
check(a["Checksum"]["ChecksumSHA256"] == summed["ChecksumSHA256"] and "ObjectParts" not in a, f"checksum attribute {a}")
r = s3.get_object(Bucket=bucket, Key="big/object.bin", Range=f"bytes={5 * mib - 10}-{5 * mib + 9}")
check(r["Body"].read() == data[5 * mib - 10:5 * mib + 10], "range across a part boundary")
code, _ = error_code(lambda: s3.list_parts(Bucket=bucket, Key="big/object.bin", UploadId=uid))
check(code == "NoSuchUpload", f"completed upload is gone: {code}")

# A part under 5 MiB that is not the last is refused; abort removes the upload.
uid2 = s3.create_multipart_upload(Bucket=bucket, Key="small-parts")["UploadId"]
p1 = s3.upload_part(Bucket=bucket, Key="small-parts", UploadId=uid2, PartNumber=1, Body=b"a" * 1000)
p2 = s3.upload_part(Bucket=bucket, Key="small-parts", UploadId=uid2, PartNumber=2, Body=b"b" * 1000)
code, _ = error_code(lambda: s3.complete_multipart_upload(
    Bucket=bucket, Key="small-parts", UploadId=uid2,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]}))
check(code == "EntityTooSmall", f"small part: {code}")
s3.abort_multipart_upload(Bucket=bucket, Key="small-parts", UploadId=uid2)
code, _ = error_code(lambda: s3.upload_part(Bucket=bucket, Key="small-parts", UploadId=uid2, PartNumber=3, Body=b"c"))
check(code == "NoSuchUpload", f"part after abort: {code}")

# UploadPartCopy from an existing object.
uid3 = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
pc = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=uid3, PartNumber=1,
                         CopySource={"Bucket": bucket, "Key": "big/object.bin"}, CopySourceRange=f"bytes=0-{5 * mib - 1}")
tail = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=uid3, PartNumber=2, Body=b"tail")
s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=uid3, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": pc["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": tail["ETag"]}]})
check(s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == data[:5 * mib] + b"tail", "UploadPartCopy")

# Keys the native namespace cannot take as they are round-trip.
odd = ["odd/a//b", "odd/folder/", "odd/x/../y", "odd/%41", "odd/tab\there", "odd/ünï cødé"]
for k in odd:
    s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
for k in odd:
    check(s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode(), f"odd key {k!r}")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="odd/")["Contents"]]
check(keys == sorted(odd, key=lambda s: s.encode()), f"odd keys listed in byte order: {keys}")

# Key order where native and key order differ: a directory sorts as its key with "/" added
# (after "a-x", "a.c", "a!"), escaped names sort by the key they stand for. Paged one key at
# a time, by token and by start-after, with and without the delimiter.
order = ["order/a-x", "order/a/b", "order/a/c/d", "order/a.c", "order/a!", "order/%41",
         "order/ab", "order//lead", "order/zz/", "order/a0", "order/a\tb"]
for k in order:
    s3.put_object(Bucket=bucket, Key=k, Body=b"o")
expected = sorted(order, key=lambda s: s.encode())
def paged(**kw):
    seen, token = [], None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Prefix="order/", MaxKeys=1, **kw, **extra)
        seen += [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        if not r["IsTruncated"]:
            return seen
        token = r["NextContinuationToken"]
check(paged() == expected, f"one key a page in byte order: {paged()}")
for i, k in enumerate(expected):
    r = s3.list_objects_v2(Bucket=bucket, Prefix="order/", StartAfter=k)
    got = [o["Key"] for o in r.get("Contents", [])]
    check(got == expected[i + 1:], f"start-after {k!r}: {got}")
rolled = sorted({k if "/" not in k[len("order/"):] else k[:k.index("/", len("order/")) + 1] for k in order},
                key=lambda s: s.encode())
check(paged(Delimiter="/") == rolled, f"one row a page with the delimiter: {paged(Delimiter='/')}")
r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in order]})
check(len(r.get("Deleted", [])) == len(order) and not r.get("Errors"), f"order keys deleted {r}")

# A key cannot be an object and a directory of other keys at once (documented limit).
s3.put_object(Bucket=bucket, Key="clash", Body=b"object")
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="clash/below", Body=b"x"))
check(code == "KeyConflict" and status == 409, f"object under an object: {code} {status}")
code, status = error_code(lambda: s3.put_object(Bucket=bucket, Key="odd", Body=b"x"))
check(code == "KeyConflict" and status == 409, f"object over a directory: {code} {status}")
s3.delete_object(Bucket=bucket, Key="clash")

# Listing: delimiter, pagination, start-after, v1 markers, url encoding.
for i in range(7):
    s3.put_object(Bucket=bucket, Key=f"page/{i:02d}", Body=b"p")
s3.put_object(Bucket=bucket, Key="page-sibling", Body=b"s")
top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
check(sorted(p["Prefix"] for p in top["CommonPrefixes"]) == ["big/", "docs/", "odd/", "page/"], f"prefixes {top['CommonPrefixes']}")
check([o["Key"] for o in top["Contents"]] == ["assembled", "page-sibling", "sum.bin"], f"top keys {[o['Key'] for o in top['Contents']]}")
seen, token = [], None
while True:
    kw = {"ContinuationToken": token} if token else {}
    r = s3.list_objects_v2(Bucket=bucket, Prefix="page/", MaxKeys=3, **kw)
    seen += [o["Key"] for o in r.get("Contents", [])]
    if not r["IsTruncated"]:
        break
    token = r["NextContinuationToken"]
check(seen == [f"page/{i:02d}" for i in range(7)], f"paged v2 {seen}")
r = s3.list_objects_v2(Bucket=bucket, Prefix="page/", StartAfter="page/04")
check([o["Key"] for o in r["Contents"]] == ["page/05", "page/06"], "start-after")
r = s3.list_objects(Bucket=bucket, Prefix="page/", MaxKeys=4)
check(r["IsTruncated"] and len(r["Contents"]) == 4, "v1 page")
r = s3.list_objects(Bucket=bucket, Prefix="page/", Marker=r["Contents"][-1]["Key"])
check([o["Key"] for o in r["Contents"]] == ["page/04", "page/05", "page/06"], "v1 marker")
r = s3.list_objects_v2(Bucket=bucket, Prefix="odd/ü", EncodingType="url")
check(r["Contents"][0]["Key"] in ("odd/%C3%BCn%C3%AF%20c%C3%B8d%C3%A9", "odd/ünï cødé"), f"url encoding {r['Contents'][0]['Key']}")

# Owners: always in v1 and version listings, in v2 when asked (fetch-owner).
check("Owner" not in s3.list_objects_v2(Bucket=bucket, Prefix="page/")["Contents"][0], "v2 without fetch-owner")
check(s3.list_objects_v2(Bucket=bucket, Prefix="page/", FetchOwner=True)["Contents"][0]["Owner"]["ID"] == "filegrid", "v2 fetch-owner")
check(s3.list_objects(Bucket=bucket, Prefix="page/")["Contents"][0]["Owner"]["ID"] == "filegrid", "v1 owner")

# DeleteObjects.
r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"page/{i:02d}"} for i in range(7)] + [{"Key": "never-was"}]})
check(len(r.get("Deleted", [])) == 8 and not r.get("Errors"), f"delete_objects {r}")
check("Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="page/"), "page/ emptied")

# Versions: buckets are not versioned, so each object is its one version, "null", as on S3
# for a bucket never versioned; a tool that empties a bucket version by version works.
for i in range(3):
    s3.put_object(Bucket=bucket, Key=f"vers/{i}", Body=b"v%d" % i)
check("Status" not in s3.get_bucket_versioning(Bucket=bucket), "versioning never enabled")
# The other settings tools read (Terraform reads them all), answered as for a bucket without them.
acl = s3.get_bucket_acl(Bucket=bucket)
check([g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
      and acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"], f"bucket ACL {acl}")
check(s3.get_object_acl(Bucket=bucket, Key="vers/0")["Grants"][0]["Permission"] == "FULL_CONTROL", "object ACL")
check(s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner", "request payment")
check("LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket), "logging")
check("Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket), "accelerate")
code, status = error_code(lambda: s3.get_bucket_replication(Bucket=bucket))
check(code == "ReplicationConfigurationNotFoundError" and status == 404, f"replication: {code}")
code, status = error_code(lambda: s3.get_bucket_cors(Bucket=bucket))
check(code == "NoSuchCORSConfiguration" and status == 404, f"cors: {code}")
code, status = error_code(lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read"))
check(code == "NotImplemented", f"setting an ACL: {code}")
v = s3.list_object_versions(Bucket=bucket, Prefix="vers/", MaxKeys=2)
check([(x["Key"], x["VersionId"], x["IsLatest"]) for x in v["Versions"]]
      == [("vers/0", "null", True), ("vers/1", "null", True)], f"versions {v}")
check(v["IsTruncated"] and v["NextKeyMarker"] == "vers/1", f"versions page {v}")
v2 = s3.list_object_versions(Bucket=bucket, Prefix="vers/", KeyMarker=v["NextKeyMarker"])
check([x["Key"] for x in v2["Versions"]] == ["vers/2"] and not v2["IsTruncated"], f"versions {v2}")
check(s3.get_object(Bucket=bucket, Key="vers/2", VersionId="null")["Body"].read() == b"v2", "null version")
s3.copy_object(Bucket=bucket, Key="vers/copy", CopySource={"Bucket": bucket, "Key": "vers/2", "VersionId": "null"})
check(s3.get_object(Bucket=bucket, Key="vers/copy")["Body"].read() == b"v2", "copy of the null version")
code, status = error_code(lambda: s3.copy_object(Bucket=bucket, Key="vers/copy2",
                                                 CopySource={"Bucket": bucket, "Key": "vers/2", "VersionId": "3HL4kqtJlcp"}))
check(code == "InvalidArgument", f"copy of another version: {code}")
s3.delete_object(Bucket=bucket, Key="vers/copy")
code, status = error_code(lambda: s3.get_object(Bucket=bucket, Key="vers/2", VersionId="3HL4kqtJlcp"))
check(code == "InvalidArgument" and status == 400, f"another version: {code}")
code, status = error_code(lambda: s3.delete_object(Bucket=bucket, Key="vers/2", VersionId="3HL4kqtJlcp"))
check(code == "InvalidArgument", f"deleting another version: {code}")
r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
    {"Key": x["Key"], "VersionId": x["VersionId"]} for x in v["Versions"] + v2["Versions"]]})
check(len(r.get("Deleted", [])) == 3 and not r.get("Errors"), f"delete versions {r}")
check("Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="vers/"), "no versions left")

# Bucket deletion refused while not empty.
code, status = error_code(lambda: s3.delete_bucket(Bucket=bucket))
check(code == "BucketNotEmpty" and status == 409, f"non-empty bucket delete: {code}")
s3.create_bucket(Bucket="empty-one")
s3.delete_bucket(Bucket="empty-one")
code, _ = error_code(lambda: s3.head_bucket(Bucket="empty-one"))
check(code in ("404", "NoSuchBucket"), f"deleted bucket: {code}")
# A deleted bucket takes no more objects, even right after objects were put into it.
s3.create_bucket(Bucket="gone-bkt")
s3.put_object(Bucket="gone-bkt", Key="x", Body=b"1")
s3.delete_object(Bucket="gone-bkt", Key="x")
s3.delete_bucket(Bucket="gone-bkt")
code, status = error_code(lambda: s3.put_object(Bucket="gone-bkt", Key="y", Body=b"2"))
check(code == "NoSuchBucket" and status == 404, f"put into a deleted bucket: {code}")
# An emptied bucket stays.
s3.create_bucket(Bucket="keeps")
s3.put_object(Bucket="keeps", Key="only", Body=b"1")
s3.delete_object(Bucket="keeps", Key="only")
s3.head_bucket(Bucket="keeps")
CHECKS += 1

# Authentication and roles.
bad = client(os.environ["FG_KEY"], "wrong-secret")
code, status = error_code(lambda: bad.list_buckets())
check(code == "SignatureDoesNotMatch" and status == 403, f"wrong secret: {code}")
unknown = client("NOSUCHKEY", "whatever")
code, status = error_code(lambda: unknown.list_buckets())
check(code == "InvalidAccessKeyId", f"unknown key: {code}")
reader = client(os.environ["FG_READER_KEY"], os.environ["FG_READER_SECRET"])
check(reader.get_object(Bucket=bucket, Key="sum.bin")["Body"].read() == b"checksummed" * 1000, "reader reads")
code, status = error_code(lambda: reader.put_object(Bucket=bucket, Key="nope", Body=b"x"))
check(code == "AccessDenied" and status == 403, f"reader writes: {code}")

# Concurrent uploads: each ETag is the MD5 of its own bytes (the head hashes concurrent
# bodies together) and each object reads back as sent.

sizes = [64 * 1024 + 1, 700_001, 1024 * 1024, 1024 * 1024 + 63, 2_500_000, 3 * 1024 * 1024 + 7, 300_000, 1_999_999]
bodies = {f"many/{i}.bin": os.urandom(n) for i, n in enumerate(sizes * 2)}


def put_one(item):
    key, data = item
    return key, s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')


with ThreadPoolExecutor(max_workers=8) as pool:
    for key, etag in pool.map(put_one, bodies.items()):
        check(etag == hashlib.md5(bodies[key]).hexdigest(), f"concurrent put {key}: ETag {etag}")
for key, data in bodies.items():
    check(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, f"concurrent put {key}: bytes")

# Presigned URLs: valid, then expired.
import urllib.request
import urllib.error
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "sum.bin"}, ExpiresIn=60)
check(urllib.request.urlopen(url).read() == b"checksummed" * 1000, "presigned GET")
ranged = urllib.request.Request(url, headers={"Range": "bytes=9-3"})
with urllib.request.urlopen(ranged) as got:
    check(got.status == 200 and got.read() == b"checksummed" * 1000, "presigned GET, ignored range")
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "sum.bin"}, ExpiresIn=1)
time.sleep(2.5)
try:
    urllib.request.urlopen(url)
    check(False, "an expired presigned URL was served")
except urllib.error.HTTPError as e:
    check(e.code == 403, f"expired presigned URL: {e.code}")

print(f"boto3 suite: {CHECKS} checks passed")
