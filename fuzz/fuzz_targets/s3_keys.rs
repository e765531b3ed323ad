//! Any bucket and key: the mapping onto native paths never panics, every path it makes is
//! one the native API accepts, and the path maps back to the same key.
#![no_main]

use filegrid_node::files::path::FilePath;
use filegrid_node::s3::keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (bucket, key) = input;
    if !keys::valid_bucket(bucket) {
        return;
    }
    let Ok(path) = keys::to_path(bucket, key) else {
        return;
    };
    assert!(FilePath::parse(path.as_str()).is_ok());
    let rest = &path.as_str()[bucket.len() + 1..];
    assert_eq!(keys::to_key(rest).as_deref(), Some(key));
    let _ = keys::split_prefix(key);
});
