//! The S3 API driven by the clients people use: aws-cli, boto3, rclone and s3cmd, each
//! against a real grid (ZooKeeper, two heads, three cluster servers) over real sockets,
//! each checking the bytes and the listings. The clients must be installed
//! (`scripts/lib.sh ensure_s3_clients`, which `.ci/run` calls); a missing one fails its test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use filegrid_proto::head::ListPage;
use filegrid_testkit::{Grid, GridOptions, auth};
use rand::RngCore;

fn node_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_filegrid-node"))
}

fn grid() -> Grid {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            cluster_servers: 3,
            chunk_size: "1MiB".into(),
            s3: true,
            ..Default::default()
        },
    );
    grid.leader_url(Duration::from_secs(30));
    grid
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs a client; panics with its output unless it succeeds (or `expect_ok` is false).
fn run(cmd: &mut Command, expect_ok: bool) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): install the S3 clients with `. scripts/lib.sh && ensure_s3_clients`"));
    if expect_ok && !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An aws-cli with its own config (path-style addressing), a principal's keys, and the
/// endpoint of head `head`.
struct Aws {
    endpoint: String,
    home: tempfile::TempDir,
    key: &'static str,
    secret: &'static str,
}

impl Aws {
    fn new(grid: &Grid, head: usize, p: &auth::TestPrincipal) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config"),
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
        )
        .unwrap();
        Self {
            endpoint: grid.s3_url(head),
            home,
            key: p.access_key,
            secret: p.secret,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("aws");
        c.args(["--endpoint-url", &self.endpoint])
            .args(args)
            .env("AWS_CONFIG_FILE", self.home.path().join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.path().join("none"))
            .env("AWS_ACCESS_KEY_ID", self.key)
            .env("AWS_SECRET_ACCESS_KEY", self.secret)
            .env_remove("AWS_PROFILE");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout(&run(&mut self.cmd(args), true))
    }
}

/// curl with its own SigV4 signing, as a writer: (status, body) of one request. curl signs
/// `?x` and `?x=` differently from S3's canonical form, so queries here always carry `=`;
/// and it names no payload hash unless given one.
fn signed_curl(method: &str, url: &str, body: &str, extra: &[&str]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-w", "\n%{http_code}", "-X", method])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args([
            "--user",
            &format!("{}:{}", auth::WRITER.access_key, auth::WRITER.secret),
        ])
        .args(extra);
    if !body.is_empty() {
        c.args(["--data-binary", body]);
    }
    c.arg(url);
    let out = stdout(&run(&mut c, true));
    let (text, code) = out.rsplit_once('\n').unwrap_or((&out, "0"));
    (code.trim().parse().unwrap_or(0), text.to_string())
}

/// python3 (with boto3) pointed at head 0's S3 API as the writer (`FG_S3`, `FG_KEY`,
/// `FG_SECRET`), with no AWS configuration of the machine's.
fn python(grid: &Grid) -> Command {
    let mut c = Command::new("python3");
    c.env("FG_S3", grid.s3_url(0))
        .env("FG_KEY", auth::WRITER.access_key)
        .env("FG_SECRET", auth::WRITER.secret)
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    c
}

fn native(grid: &Grid) -> reqwest::blocking::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        auth::ADMIN.bearer().parse().unwrap(),
    );
    let _ = grid;
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .default_headers(h)
        .build()
        .unwrap()
}

#[test]
fn aws_cli_copies_lists_syncs_and_presigns() {
    let grid = grid();
    let dir = tempfile::tempdir().unwrap();
    let aws = Aws::new(&grid, 0, &auth::WRITER);
    aws.ok(&["s3", "mb", "s3://photos"]);

    let small = random(3000);
    let big = random(20 << 20); // over aws-cli's 8 MiB multipart threshold
    std::fs::write(dir.path().join("small.bin"), &small).unwrap();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let small_path = dir.path().join("small.bin");
    let big_path = dir.path().join("big.bin");
    aws.ok(&[
        "s3",
        "cp",
        small_path.to_str().unwrap(),
        "s3://photos/2026/small.bin",
    ]);
    aws.ok(&[
        "s3",
        "cp",
        big_path.to_str().unwrap(),
        "s3://photos/big.bin",
    ]);

    let ls = aws.ok(&["s3", "ls", "s3://photos/"]);
    assert!(ls.contains("PRE 2026/"), "{ls}");
    assert!(ls.contains(&format!("{} big.bin", big.len())), "{ls}");

    // head-object: the single-part ETag is the MD5; the multipart one has a part count.
    let head = aws.ok(&[
        "s3api",
        "head-object",
        "--bucket",
        "photos",
        "--key",
        "2026/small.bin",
    ]);
    assert!(head.contains(&md5_hex(&small)), "{head}");
    assert!(head.contains("\"ContentLength\": 3000"), "{head}");
    let head = aws.ok(&[
        "s3api",
        "head-object",
        "--bucket",
        "photos",
        "--key",
        "big.bin",
    ]);
    assert!(
        head.contains("-3\\\""),
        "a 20 MiB upload in 8 MiB parts: {head}"
    );

    let listed = aws.ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "photos",
        "--delimiter",
        "/",
    ]);
    assert!(listed.contains("\"Prefix\": \"2026/\""), "{listed}");
    assert!(listed.contains("\"Key\": \"big.bin\""), "{listed}");
    assert!(
        !listed.contains("small.bin"),
        "rolled up under 2026/: {listed}"
    );

    let part = dir.path().join("part.out");
    aws.ok(&[
        "s3api",
        "get-object",
        "--bucket",
        "photos",
        "--key",
        "big.bin",
        "--range",
        "bytes=8388600-8388700",
        part.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&part).unwrap(), &big[8_388_600..=8_388_700]);

    let back = dir.path().join("big.back");
    aws.ok(&["s3", "cp", "s3://photos/big.bin", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == big,
        "big.bin read back differs"
    );

    // A presigned URL fetched with curl.
    let url = aws.ok(&[
        "s3",
        "presign",
        "s3://photos/2026/small.bin",
        "--expires-in",
        "300",
    ]);
    let fetched = run(Command::new("curl").args(["-sf", url.trim()]), true);
    assert_eq!(fetched.stdout, small);

    // The same files through the native API, and a native file through S3.
    let api = native(&grid);
    let base = grid.leader_url(Duration::from_secs(10));
    let got = api
        .get(format!("{base}/v1/files/photos/2026/small.bin"))
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().unwrap().as_ref(), small.as_slice());
    let put = api
        .put(format!("{base}/v1/files/photos/native/file.txt"))
        .body("from the native API")
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    let native_back = dir.path().join("native.txt");
    aws.ok(&[
        "s3",
        "cp",
        "s3://photos/native/file.txt",
        native_back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&native_back).unwrap(),
        "from the native API"
    );

    // sync up, change one file, sync again: only what changed is sent; then a recursive rm.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    for (name, n) in [("a.txt", 10), ("b.txt", 2000), ("sub/c.txt", 70_000)] {
        std::fs::write(tree.join(name), random(n)).unwrap();
    }
    let out = aws.ok(&["s3", "sync", tree.to_str().unwrap(), "s3://photos/tree/"]);
    assert_eq!(out.matches("upload:").count(), 3, "{out}");
    std::fs::write(tree.join("b.txt"), random(2001)).unwrap();
    let out = aws.ok(&["s3", "sync", tree.to_str().unwrap(), "s3://photos/tree/"]);
    assert_eq!(
        out.matches("upload:").count(),
        1,
        "only b.txt changed: {out}"
    );
    let tree_ls = aws.ok(&["s3", "ls", "--recursive", "s3://photos/tree/"]);
    assert_eq!(tree_ls.lines().count(), 3, "{tree_ls}");

    // Through the standby head: forwarded to the leader, signature intact.
    let leader = grid.leader_url(Duration::from_secs(10));
    let standby = (0..2).find(|&i| grid.head_url(i) != leader).unwrap();
    let via_standby = Aws::new(&grid, standby, &auth::WRITER);
    via_standby.ok(&[
        "s3",
        "cp",
        small_path.to_str().unwrap(),
        "s3://photos/via-standby.bin",
    ]);
    let again = dir.path().join("again.bin");
    via_standby.ok(&[
        "s3",
        "cp",
        "s3://photos/via-standby.bin",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&again).unwrap(), small);

    // A bucket with objects cannot be removed; emptied, it can.
    let out = run(&mut aws.cmd(&["s3", "rb", "s3://photos"]), false);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BucketNotEmpty"),
        "{out:?}"
    );
    aws.ok(&["s3", "rm", "--recursive", "s3://photos/"]);
    let page: ListPage = api
        .get(format!("{base}/v1/files?prefix=photos/"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(page.files.is_empty(), "{:?}", page.files);
    aws.ok(&["s3", "rb", "s3://photos"]);
    let buckets = aws.ok(&["s3", "ls"]);
    assert!(!buckets.contains("photos"), "{buckets}");
}

#[test]
fn boto3_suite() {
    let grid = grid();
    let script: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "s3", "boto3_suite.py"]
        .iter()
        .collect();
    let out = run(
        python(&grid)
            .arg(&script)
            .env("FG_READER_KEY", auth::READER.access_key)
            .env("FG_READER_SECRET", auth::READER.secret),
        true,
    );
    let text = stdout(&out);
    assert!(text.contains("checks passed"), "{text}");

    // Keys the native namespace cannot take as they are, as the native API shows them.
    let api = native(&grid);
    let base = grid.leader_url(Duration::from_secs(10));
    let page: ListPage = api
        .get(format!("{base}/v1/files?prefix=boto/odd/"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let paths: Vec<&str> = page.files.iter().map(|f| f.path.as_str()).collect();
    for native_path in [
        "boto/odd/a/%/b",
        "boto/odd/folder/%",
        "boto/odd/x/%%2E%2E/y",
        "boto/odd/%%2541",
    ] {
        assert!(
            paths.contains(&native_path),
            "{native_path} not in {paths:?}"
        );
    }
    let got = api
        .get(format!("{base}/v1/files/boto/odd/a/%25/b"))
        .send()
        .unwrap();
    assert_eq!(got.text().unwrap(), "odd/a//b");
}

#[test]
fn rclone_copies_syncs_and_checks_with_checksums() {
    let grid = grid();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("deep/er")).unwrap();
    let files = [
        ("one.bin", 1000),
        ("deep/two.bin", 300_000),
        ("deep/er/three.bin", 3 << 20),
    ];
    for (name, n) in files {
        std::fs::write(src.join(name), random(n)).unwrap();
    }
    let rclone = |args: &[&str], ok: bool| {
        let mut c = Command::new("rclone");
        c.args(args)
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_FG_TYPE", "s3")
            .env("RCLONE_CONFIG_FG_PROVIDER", "Other")
            .env("RCLONE_CONFIG_FG_ENDPOINT", grid.s3_url(0))
            .env("RCLONE_CONFIG_FG_ACCESS_KEY_ID", auth::WRITER.access_key)
            .env("RCLONE_CONFIG_FG_SECRET_ACCESS_KEY", auth::WRITER.secret)
            .env("RCLONE_CONFIG_FG_FORCE_PATH_STYLE", "true")
            .env("RCLONE_CONFIG_FG_REGION", "us-east-1")
            // rclone 1.60 cannot load a CA bundle named by AWS_CA_BUNDLE (and needs none here).
            .env_remove("AWS_CA_BUNDLE");
        run(&mut c, ok)
    };
    rclone(&["mkdir", "fg:rcl"], true);
    rclone(&["copy", src.to_str().unwrap(), "fg:rcl/copy"], true);
    let lsl = stdout(&rclone(&["lsl", "fg:rcl/copy"], true));
    for (name, n) in files {
        assert!(
            lsl.lines()
                .any(|l| l.trim_start().starts_with(&format!("{n} ")) && l.ends_with(name)),
            "{name}: {lsl}"
        );
    }
    // check compares sizes and MD5 hashes (the ETags) of every file.
    rclone(&["check", src.to_str().unwrap(), "fg:rcl/copy"], true);
    // sync removes what the source no longer has.
    std::fs::remove_file(src.join("one.bin")).unwrap();
    rclone(&["sync", src.to_str().unwrap(), "fg:rcl/copy"], true);
    let lsl = stdout(&rclone(&["lsl", "fg:rcl/copy"], true));
    assert!(!lsl.contains("one.bin"), "{lsl}");
    rclone(&["check", src.to_str().unwrap(), "fg:rcl/copy"], true);
    // A changed file fails the check.
    std::fs::write(src.join("deep/two.bin"), random(300_000)).unwrap();
    let out = rclone(&["check", src.to_str().unwrap(), "fg:rcl/copy"], false);
    assert!(!out.status.success(), "check passed with a changed file");
    let back = dir.path().join("back");
    rclone(&["copy", "fg:rcl/copy", back.to_str().unwrap()], true);
    assert_eq!(
        std::fs::read(back.join("deep/er/three.bin")).unwrap(),
        std::fs::read(src.join("deep/er/three.bin")).unwrap()
    );
}

/// s3cmd with the configuration docs/s3.md gives: no `bucket_location`, so s3cmd signs for its
/// default region, `US`, and signs again for the one the answer names.
#[test]
fn s3cmd_puts_gets_lists_and_deletes() {
    let grid = grid();
    let dir = tempfile::tempdir().unwrap();
    let host = grid.s3_url(0).trim_start_matches("http://").to_string();
    let cfg = dir.path().join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\n",
            auth::WRITER.access_key,
            auth::WRITER.secret
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| {
        let mut c = Command::new("s3cmd");
        c.arg("-c").arg(&cfg).args(args);
        stdout(&run(&mut c, true))
    };
    s3cmd(&["mb", "s3://cmd"]);
    let data = random(2 << 20);
    let file = dir.path().join("f.bin");
    std::fs::write(&file, &data).unwrap();
    s3cmd(&["put", file.to_str().unwrap(), "s3://cmd/dir/f.bin"]);
    let ls = s3cmd(&["ls", "s3://cmd/dir/"]);
    assert!(
        ls.contains("s3://cmd/dir/f.bin") && ls.contains(&data.len().to_string()),
        "{ls}"
    );
    let back = dir.path().join("back.bin");
    s3cmd(&["get", "s3://cmd/dir/f.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "s3cmd get differs");
    s3cmd(&["del", "s3://cmd/dir/f.bin"]);
    let ls = s3cmd(&["ls", "s3://cmd/dir/"]);
    assert!(!ls.contains("f.bin"), "{ls}");
}

/// Requests no SDK would send, made with curl's own SigV4 signing: each gets S3's error code.
#[test]
fn malformed_requests_get_the_standard_errors() {
    let grid = grid();
    let base = grid.s3_url(0);
    let curl = |method: &str, path: &str, body: &str, headers: &[&str]| {
        let extra: Vec<&str> = headers.iter().flat_map(|h| ["-H", h]).collect();
        signed_curl(method, &format!("{base}{path}"), body, &extra)
    };
    let (status, _) = curl("PUT", "/bad", "", &[]);
    assert_eq!(status, 200);
    let (status, text) = curl("POST", "/bad/obj?uploads=", "", &[]);
    assert_eq!(status, 200, "{text}");
    let upload = xml_field(&text, "UploadId");

    let expect = |got: (u16, String), status: u16, code: &str| {
        assert_eq!(got.0, status, "{code}: {}", got.1);
        assert!(
            got.1.contains(&format!("<Code>{code}</Code>")),
            "{code}: {}",
            got.1
        );
        // Every error says what went wrong and names its request.
        assert!(
            got.1.contains("<Message>") && got.1.contains("<RequestId>"),
            "{code}: {}",
            got.1
        );
    };
    // Malformed XML.
    expect(
        curl(
            "POST",
            &format!("/bad/obj?uploadId={upload}"),
            "<CompleteMultipartUpload><Part><PartNumber>1",
            &[],
        ),
        400,
        "MalformedXML",
    );
    // A part that was never uploaded.
    expect(
        curl(
            "POST",
            &format!("/bad/obj?uploadId={upload}"),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"abc\"</ETag></Part></CompleteMultipartUpload>",
            &[],
        ),
        400,
        "InvalidPart",
    );
    // An upload id that does not exist.
    expect(
        curl(
            "POST",
            "/bad/obj?uploadId=00000000000000000000000000000000",
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"abc\"</ETag></Part></CompleteMultipartUpload>",
            &[],
        ),
        404,
        "NoSuchUpload",
    );
    // A part number out of range.
    expect(
        curl(
            "PUT",
            &format!("/bad/obj?partNumber=10001&uploadId={upload}"),
            "x",
            &[],
        ),
        400,
        "InvalidArgument",
    );
    // A body whose Content-MD5 is another body's.
    expect(
        curl(
            "PUT",
            "/bad/md5",
            "hello",
            &["Content-MD5: fXkwN6B2AYZXSwKC8vQ15w=="],
        ),
        400,
        "BadDigest",
    );
    // An unsatisfiable range and a missing key and bucket.
    curl("PUT", "/bad/small", "0123456789", &[]);
    expect(
        curl("GET", "/bad/small", "", &["Range: bytes=20-30"]),
        416,
        "InvalidRange",
    );
    expect(curl("GET", "/bad/nothing-here", "", &[]), 404, "NoSuchKey");
    expect(
        curl("GET", "/no-such-bucket/x", "", &[]),
        404,
        "NoSuchBucket",
    );
    expect(curl("PUT", "/Bad_Name", "", &[]), 400, "InvalidBucketName");
    // Unsupported features are refused, never a wrong success.
    let versioning = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>";
    expect(
        curl("PUT", "/bad?versioning=", versioning, &[]),
        501,
        "NotImplemented",
    );
    expect(
        curl(
            "PUT",
            "/bad/small?tagging=",
            "<Tagging><TagSet></TagSet></Tagging>",
            &[],
        ),
        501,
        "NotImplemented",
    );
    // Asked for, a setting never made is absent, as on S3 for a bucket without it.
    let (status, text) = curl("GET", "/bad?versioning=", "", &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("VersioningConfiguration") && !text.contains("<Status>"),
        "{text}"
    );
    expect(
        curl("GET", "/bad?policy=", "", &[]),
        404,
        "NoSuchBucketPolicy",
    );
    expect(curl("GET", "/bad?tagging=", "", &[]), 404, "NoSuchTagSet");
    expect(
        curl("GET", "/bad?lifecycle=", "", &[]),
        404,
        "NoSuchLifecycleConfiguration",
    );
    expect(
        curl("GET", "/bad?encryption=", "", &[]),
        404,
        "ServerSideEncryptionConfigurationNotFoundError",
    );
    let (status, text) = curl("GET", "/bad/small?tagging=", "", &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("<TagSet") && !text.contains("<Tag>"),
        "{text}"
    );
    expect(
        curl("GET", "/no-such-bucket?versioning=", "", &[]),
        404,
        "NoSuchBucket",
    );
    // The small object is still whole after all that.
    let (status, text) = curl("GET", "/bad/small", "", &[]);
    assert_eq!((status, text.as_str()), (200, "0123456789"));
}

/// Over HTTPS boto3 sends `aws-chunked` bodies with a trailing CRC32 (unsigned payload with a
/// trailer), which plain-HTTP clients do not: the trailer is checked and kept, for a
/// single-part and a multipart upload; the `aws-chunked` framing is not kept as the object's
/// `Content-Encoding`.
#[test]
fn boto3_over_tls_sends_aws_chunked_bodies_with_trailing_checksums() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 1,
            chunk_size: "1MiB".into(),
            s3: true,
            tls: true,
            ..Default::default()
        },
    );
    grid.leader_url(Duration::from_secs(30));
    let ca = grid.tls.as_ref().unwrap().ca.clone();
    let script = r#"
import io, os, sys, boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["FG_S3"], verify=os.environ["FG_CA"],
                  aws_access_key_id=os.environ["FG_KEY"], aws_secret_access_key=os.environ["FG_SECRET"],
                  region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_supported"))
seen = []
s3.meta.events.register("before-send.s3.*", lambda request, **kw: seen.append(
    (request.headers.get("x-amz-content-sha256") or b"").decode() if isinstance(request.headers.get("x-amz-content-sha256"), bytes) else request.headers.get("x-amz-content-sha256")))
s3.create_bucket(Bucket="tls")
body = os.urandom(300_000)
p = s3.put_object(Bucket="tls", Key="one", Body=body)
h = s3.head_object(Bucket="tls", Key="one", ChecksumMode="ENABLED")
assert h.get("ChecksumCRC32") and h.get("ChecksumCRC32") == p.get("ChecksumCRC32"), (p, h)
assert s3.get_object(Bucket="tls", Key="one")["Body"].read() == body
# aws-chunked only framed the request: the object keeps the encoding it was given, or none.
assert "ContentEncoding" not in h, h
s3.put_object(Bucket="tls", Key="zipped", Body=body, ContentEncoding="gzip")
g = s3.get_object(Bucket="tls", Key="zipped")
assert g["ContentEncoding"] == "gzip" and g["Body"].read() == body, g
big = os.urandom(11 << 20)
s3.upload_fileobj(io.BytesIO(big), "tls", "multi", Config=boto3.s3.transfer.TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
assert s3.get_object(Bucket="tls", Key="multi")["Body"].read() == big
assert any(s and s.startswith("STREAMING-") for s in seen), seen
print("trailers:", sorted(set(s for s in seen if s and s.startswith("STREAMING-"))))
"#;
    let out = run(python(&grid).args(["-c", script]).env("FG_CA", &ca), true);
    let text = stdout(&out);
    assert!(
        text.contains("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        "{text}"
    );
}

/// A standby serves S3 reads (GET, HEAD, listings) itself from committed state, so they go
/// on while the leader is stopped; each write the leader acknowledged is read back there.
#[test]
fn a_standby_serves_s3_reads_while_the_leader_is_stopped() {
    let grid = grid();
    let leader = grid.leader_url(Duration::from_secs(10));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let leader_index = (0..2).find(|&i| grid.head_url(i) == leader).unwrap();
    let standby = 1 - leader_index;
    // The standby reads by itself once it knows the cluster servers: a native read it does
    // not redirect shows it (an S3 read before that is forwarded, and would hang below).
    let no_redirects = reqwest::blocking::Client::builder()
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(
                reqwest::header::AUTHORIZATION,
                auth::ADMIN.bearer().parse().unwrap(),
            );
            h
        })
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    filegrid_testkit::wait_until_sync(
        Duration::from_secs(20),
        "the standby reads by itself",
        || {
            let r = no_redirects
                .get(format!("{}/v1/files?prefix=", grid.head_url(standby)))
                .send()
                .ok()?;
            (r.status() == 200).then_some(())
        },
    );
    let script = r#"
import os, sys, time, hashlib, boto3
from botocore.config import Config
def client(url):
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=os.environ["FG_KEY"],
                        aws_secret_access_key=os.environ["FG_SECRET"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      connect_timeout=5, read_timeout=20))
if sys.argv[1] == "write":
    s3 = client(os.environ["FG_LEADER"])
    rd = client(os.environ["FG_STANDBY"])
    s3.create_bucket(Bucket="ha-reads")
    for i in range(4):
        body = os.urandom(700_000 * i + 5)
        s3.put_object(Bucket="ha-reads", Key=f"dir/k{i}", Body=body, Metadata={"n": str(i)})
        # Acknowledged by the leader, read back from the standby at once.
        assert rd.get_object(Bucket="ha-reads", Key=f"dir/k{i}")["Body"].read() == body, i
        open(os.path.join(os.environ["FG_DIR"], f"k{i}"), "wb").write(body)
    print("written")
else:
    s3 = client(os.environ["FG_STANDBY"])
    bodies = {f"dir/k{i}": open(os.path.join(os.environ["FG_DIR"], f"k{i}"), "rb").read() for i in range(4)}
    until, rounds = time.time() + float(sys.argv[2]), 0
    while time.time() < until:
        for key, body in bodies.items():
            assert s3.get_object(Bucket="ha-reads", Key=key)["Body"].read() == body, key
            h = s3.head_object(Bucket="ha-reads", Key=key)
            assert h["ContentLength"] == len(body) and h["Metadata"]["n"] == key[-1], h
        r = s3.get_object(Bucket="ha-reads", Key="dir/k2", Range="bytes=10-19")
        assert r["Body"].read() == bodies["dir/k2"][10:20]
        page = s3.list_objects_v2(Bucket="ha-reads", Prefix="dir/")
        assert [o["Key"] for o in page["Contents"]] == sorted(bodies), page
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["ha-reads"]
        s3.head_bucket(Bucket="ha-reads")
        rounds += 1
    print("rounds", rounds)
"#;
    let dir = tempfile::tempdir().unwrap();
    let with_env = |c: &mut Command| {
        c.env("FG_LEADER", grid.s3_url(leader_index))
            .env("FG_STANDBY", grid.s3_url(standby))
            .env("FG_DIR", dir.path());
    };
    let mut write = python(&grid);
    with_env(&mut write);
    assert!(stdout(&run(write.args(["-c", script, "write"]), true)).contains("written"));

    // The leader stops: reads through the standby go on, through its session's expiry and
    // the election that follows.
    grid.heads[leader_index].proc.pause();
    let mut read = python(&grid);
    with_env(&mut read);
    let out = run(read.args(["-c", script, "read", "8"]), false);
    grid.heads[leader_index].proc.resume();
    assert!(
        out.status.success(),
        "reads on the standby while the leader is stopped: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rounds: u32 = stdout(&out)
        .trim()
        .strip_prefix("rounds ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rounds > 1, "{rounds} rounds of reads");
}

/// MinIO's Go SDK signs every chunk of a body it uploads over plain HTTP
/// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): puts of several sizes (and one of unknown size,
/// sent as a multipart upload of signed streams) read back byte for byte. The program is
/// `node/tests/s3/minio_go`, built with Debian's Go and minio-go (`.ci/run` installs them).
#[test]
fn minio_go_sends_signed_streaming_bodies() {
    let grid = grid();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/minio_go");
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("minio_go");
    std::fs::create_dir_all(&work).unwrap();
    let bin = work.join("minio_go");
    run(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", work.join("gocache")),
        true,
    );
    let trace = work.join(format!("trace-{}", std::process::id()));
    let endpoint = grid.s3_url(0);
    let host = endpoint.trim_start_matches("http://");
    let out = run(
        Command::new(&bin)
            .args([host, auth::WRITER.access_key, auth::WRITER.secret])
            .arg(&trace),
        true,
    );
    assert_eq!(stdout(&out).trim(), "ok");
    let sent = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    assert!(
        sent.contains("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        "the SDK sent no signed streaming body"
    );
}

/// With `s3_domain`, `<bucket>.<domain>` addresses a bucket (virtual-host style), and path
/// style keeps working.
#[test]
fn virtual_host_style_with_an_s3_domain() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 1,
            s3: true,
            extra_head_args: vec!["--s3-domain".into(), "s3.filegrid.test".into()],
            ..Default::default()
        },
    );
    grid.leader_url(Duration::from_secs(30));
    let port = grid.heads[0].s3_port.unwrap();
    // Names under the test domain reach this head on loopback.
    let connect = format!("::127.0.0.1:{port}");
    let curl = |method: &str, url: &str, body: &str| {
        signed_curl(method, url, body, &["--connect-to", &connect])
    };
    let vhost = format!("http://vhost.s3.filegrid.test:{port}");
    assert_eq!(curl("PUT", &format!("{vhost}/"), "").0, 200);
    assert_eq!(curl("PUT", &format!("{vhost}/a/b.txt"), "virtual").0, 200);
    assert_eq!(
        curl("GET", &format!("{vhost}/a/b.txt"), ""),
        (200, "virtual".to_string())
    );
    let (status, listing) = curl("GET", &format!("{vhost}/?list-type=2&prefix=a%2F"), "");
    assert_eq!(status, 200, "{listing}");
    assert!(listing.contains("<Key>a/b.txt</Key>"), "{listing}");
    // Path style on the same listener.
    assert_eq!(
        curl("GET", &format!("http://127.0.0.1:{port}/vhost/a/b.txt"), ""),
        (200, "virtual".to_string())
    );
}

/// The parts of an upload in progress outlive `orphan_grace` (their chunks are pinned), and
/// an upload nobody completes or aborts is collected after `s3_multipart_max_age`, and with
/// it its parts' chunks.
#[test]
fn uploads_in_progress_are_kept_and_abandoned_ones_collected() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 1,
            s3: true,
            orphan_grace: "1s".into(),
            extra_head_args: vec!["--s3-multipart-max-age".into(), "8s".into()],
            ..Default::default()
        },
    );
    let api_base = grid.leader_url(Duration::from_secs(30));
    let api = native(&grid);
    let base = grid.s3_url(0);
    assert_eq!(signed_curl("PUT", &format!("{base}/left"), "", &[]).0, 200);
    let start_upload = || {
        let (status, text) = signed_curl("POST", &format!("{base}/left/obj?uploads="), "", &[]);
        assert_eq!(status, 200, "{text}");
        xml_field(&text, "UploadId")
    };
    let part = "p".repeat(100_000);
    let put_part = |upload: &str, n: u32, body: &str| {
        signed_curl(
            "PUT",
            &format!("{base}/left/obj?partNumber={n}&uploadId={upload}"),
            body,
            &[],
        )
    };

    // An upload whose part outlives a repair pass that collects orphans past their grace.
    let kept = start_upload();
    let (status, etag_page) = put_part(&kept, 1, &part);
    assert_eq!(status, 200, "{etag_page}");
    let put = api
        .put(format!("{api_base}/v1/files/left/gone.bin"))
        .body(vec![7u8; 50_000])
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    assert!(
        api.delete(format!("{api_base}/v1/files/left/gone.bin"))
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    filegrid_testkit::wait_until_sync(
        Duration::from_secs(60),
        "a pass collects the deleted file's chunks",
        || {
            let r: filegrid_proto::head::RepairReport = api
                .get(format!("{api_base}/v1/repair"))
                .send()
                .ok()?
                .json()
                .ok()?;
            (r.orphans_deleted > 0).then_some(())
        },
    );
    let (status, listed) = signed_curl("GET", &format!("{base}/left/obj?uploadId={kept}"), "", &[]);
    assert_eq!(status, 200, "{listed}");
    let etag = xml_field(&listed, "ETag").replace("&quot;", "\"");
    let done = signed_curl(
        "POST",
        &format!("{base}/left/obj?uploadId={kept}"),
        &format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        ),
        &[],
    );
    assert_eq!(done.0, 200, "{}", done.1);
    assert_eq!(
        signed_curl("GET", &format!("{base}/left/obj"), "", &[]),
        (200, part.clone())
    );

    // An abandoned upload: listed, then gone once older than the age, its chunk with it.
    let held = || -> usize {
        grid.cluster
            .iter()
            .map(|c| walk_files(&c.data_dir).len())
            .sum()
    };
    let before = held();
    let abandoned = start_upload();
    assert_eq!(put_part(&abandoned, 1, &part).0, 200);
    assert!(
        held() > before,
        "the part's chunk is on the cluster servers"
    );
    let listed = || signed_curl("GET", &format!("{base}/left?uploads="), "", &[]).1;
    assert!(listed().contains(&abandoned));
    filegrid_testkit::wait_until_sync(
        Duration::from_secs(40),
        "the abandoned upload is collected",
        || (!listed().contains(&abandoned)).then_some(()),
    );
    let (status, text) = put_part(&abandoned, 2, "late");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("NoSuchUpload"), "{text}");
    filegrid_testkit::wait_until_sync(Duration::from_secs(60), "its chunk is collected", || {
        (held() <= before).then_some(())
    });
}

/// The text of the first `<name>` element of an S3 XML answer.
fn xml_field(xml: &str, name: &str) -> String {
    xml.split(&format!("<{name}>"))
        .nth(1)
        .and_then(|s| s.split(&format!("</{name}>")).next())
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        .to_string()
}

/// Every file below `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A grid without security serves S3 unsigned, to anyone, as its native API; a signed
/// request, which it has no keys to check, gets `AccessDenied` saying how to send it.
#[test]
fn an_insecure_grid_serves_unsigned_requests_and_tells_signed_ones_what_to_do() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            s3: true,
            insecure: true,
            ..Default::default()
        },
    );
    grid.leader_url(Duration::from_secs(30));
    let aws = Aws::new(&grid, 0, &auth::WRITER);
    let dir = tempfile::tempdir().unwrap();
    let data = random(300_000);
    let local = dir.path().join("up.bin");
    std::fs::write(&local, &data).unwrap();
    let unsigned = |args: &[&str]| {
        let mut all = vec!["--no-sign-request"];
        all.extend_from_slice(args);
        aws.ok(&all)
    };
    unsigned(&["s3", "mb", "s3://open"]);
    unsigned(&["s3", "cp", local.to_str().unwrap(), "s3://open/up.bin"]);
    assert!(unsigned(&["s3", "ls", "s3://open/"]).contains("up.bin"));
    let back = dir.path().join("back.bin");
    unsigned(&["s3", "cp", "s3://open/up.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data);

    // A Range that is not one byte range: the whole object, as S3 answers; a range past the
    // end: 416.
    let http = reqwest::blocking::Client::new();
    let object = format!("{}/open/up.bin", grid.s3_url(0));
    let ranged = |range: &str| http.get(&object).header("Range", range).send().unwrap();
    let resp = ranged("bytes=5-1");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-range").is_none());
    assert!(resp.bytes().unwrap()[..] == data[..]);
    let resp = ranged("bytes=300000-");
    assert_eq!(resp.status(), 416);
    assert!(resp.text().unwrap().contains("InvalidRange"));

    // The same calls signed: refused, nothing changed, and the message says what to do.
    let out = run(&mut aws.cmd(&["s3", "ls", "s3://open/"]), false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AccessDenied") && err.contains("no-sign-request"),
        "{err}"
    );
    let out = run(&mut aws.cmd(&["s3", "rm", "s3://open/up.bin"]), false);
    assert!(!out.status.success());
    assert!(unsigned(&["s3", "ls", "s3://open/"]).contains("up.bin"));
}
