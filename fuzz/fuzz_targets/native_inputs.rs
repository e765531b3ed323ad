//! What a client or a peer controls outside S3: a `Range` header, a file path, a listing
//! prefix, an `Authorization` header, a peer signature header, a credentials file, and the
//! part sizes kept in an object's attributes (read back from ZooKeeper). None of them may
//! panic, and what is accepted keeps its promises: a range lies inside the file, a path
//! parses again to itself, a signature made without the cluster secret never verifies, a
//! part lies inside its object.
#![no_main]

use filegrid_node::auth::credentials::{Credentials, split_authorization};
use filegrid_node::auth::peer::{ClusterSecret, PeerVerifier, Signed};
use filegrid_node::files::path::FilePath;
use filegrid_node::http::range;
use filegrid_node::s3::parts::{self, Part};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u64, Vec<(u64, u32)>, u32)| {
    let (text, len, runs, number) = input;

    if let Ok(r) = range::parse(text, len) {
        assert!(r.start < r.end && r.end <= len, "{text:?} of {len} gave {r:?}");
    }

    if let Ok(path) = FilePath::parse(text) {
        let again = FilePath::parse(path.as_str()).expect("a parsed path parses again");
        assert_eq!(again.as_str(), path.as_str());
        for dir in path.ancestors() {
            assert!(FilePath::parse(dir).is_ok(), "ancestor {dir:?} of {text:?}");
            assert_eq!(path.as_str().as_bytes().get(dir.len()), Some(&b'/'));
        }
    }
    let _ = FilePath::check_prefix(text);

    let _ = split_authorization(text);
    let _ = Credentials::parse(text);

    // A header made by whoever lacks the secret: any answer but a verified signer.
    if let Ok(secret) = ClusterSecret::new(b"a cluster secret the input never sees, 32+ bytes") {
        let verifier = PeerVerifier::new(secret, std::time::Duration::from_secs(30));
        let signed = Signed {
            method: "PUT",
            path_and_query: "/v1/chunks/c-0",
            epoch: Some(1),
            ..Signed::default()
        };
        assert!(verifier.verify(Some(text), &signed).is_err());
    }

    // Part runs as stored, against the size they add up to and against any size.
    let total = runs.iter().try_fold(0u64, |sum, &(size, n)| {
        sum.checked_add(size.checked_mul(u64::from(n))?)
    });
    for size in total.into_iter().chain([len]) {
        if let Some(Part::At { bytes, count }) = parts::locate(&runs, size, number) {
            assert!(bytes.start <= bytes.end && bytes.end <= size);
            assert!(number >= 1 && number <= count);
        }
    }
});
