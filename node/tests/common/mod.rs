//! What the real-process test files of the node share: the binary under test, a client with
//! the admin credential, random bodies, reading a metric. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use filegrid_testkit::auth;
use rand::RngCore;

pub fn node_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_filegrid-node"))
}

/// A blocking client that sends the admin credential on every request.
pub fn admin_http() -> reqwest::blocking::Client {
    admin_http_builder().build().unwrap()
}

/// [`admin_http`] that does not follow redirects, for tests that must know which head
/// answered (a standby redirects what it does not serve to the leader).
pub fn admin_http_no_redirects() -> reqwest::blocking::Client {
    admin_http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn admin_http_builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(admin_headers())
}

/// The admin credential as a request header.
pub fn admin_headers() -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        auth::ADMIN.bearer().parse().unwrap(),
    );
    h
}

pub fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Puts `data` at `path` through `base` with the admin credential; the file must be stored.
pub fn put_ok(base: &str, path: &str, data: &[u8]) {
    let r = admin_http()
        .put(format!("{base}/v1/files/{path}"))
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{path}");
}

/// [`metric_sum`] of the `/metrics` page at `base`, read with the admin credential.
pub fn scraped_sum(base: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = admin_http()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    metric_sum(&text, name, labels)
}

/// The value of an unlabelled metric in a Prometheus text exposition (a `/metrics` page).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    samples(text)
        .find(|(n, labels, _)| *n == name && labels.is_empty())
        .map(|(_, _, value)| value)
}

/// The sum of every series of metric `name` whose labels include all of `labels`, in a
/// Prometheus text exposition; 0 when there is none.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let has = |label_text: &str, (k, v): &(&str, &str)| {
        let pair = format!("{k}=\"{v}\"");
        label_text.contains(&format!("{{{pair}")) || label_text.contains(&format!(",{pair}"))
    };
    samples(text)
        .filter(|(n, label_text, _)| *n == name && labels.iter().all(|l| has(label_text, l)))
        .map(|(_, _, value)| value)
        .sum()
}

/// The samples of a Prometheus text exposition: metric name, label text (`{...}`, or empty)
/// and value.
fn samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
            Some((name, labels, value.parse().ok()?))
        })
}
