//! Virtual-host style addressing (`<bucket>.<s3_domain>`): which bucket a `Host` header
//! names. Any other host (an IP address, `localhost`, a load balancer's name) is path style.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The S3 domain of `s3_domain`.
pub struct Domain(pub String);

/// `host` without its port (`[::1]:9000` → `[::1]`, `b.s3.example:9000` → `b.s3.example`).
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The bucket `host` names under `domain`, if it names one (pure). Case does not matter in
/// host names.
pub fn bucket_of<'h>(host: &'h str, domain: &str) -> Option<&'h str> {
    let name = without_port(host);
    let cut = name.len().checked_sub(domain.len() + 1)?;
    let (bucket, rest) = name.split_at(cut);
    (rest.len() == domain.len() + 1
        && rest.as_bytes()[0] == b'.'
        && rest[1..].eq_ignore_ascii_case(domain)
        && !bucket.is_empty())
    .then_some(bucket)
}

impl S3Host for Domain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match bucket_of(host, &self.0) {
            Some(bucket) => VirtualHost::new(self.0.as_str()).with_bucket(bucket),
            None => VirtualHost::new(without_port(host)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_labels_before_the_domain() {
        let d = "s3.example.com";
        assert_eq!(bucket_of("photos.s3.example.com", d), Some("photos"));
        assert_eq!(bucket_of("photos.s3.example.com:9000", d), Some("photos"));
        assert_eq!(
            bucket_of("my.dotted.bucket.S3.Example.com", d),
            Some("my.dotted.bucket")
        );
        assert_eq!(bucket_of("s3.example.com:9000", d), None);
        assert_eq!(bucket_of(".s3.example.com", d), None);
        assert_eq!(bucket_of("photoss3.example.com", d), None);
        assert_eq!(bucket_of("127.0.0.1:9000", d), None);
        assert_eq!(bucket_of("[::1]:9000", d), None);
        assert_eq!(bucket_of("localhost", d), None);
        assert_eq!(without_port("[::1]:9000"), "[::1]");
        assert_eq!(without_port("host:abc"), "host:abc");
    }
}
