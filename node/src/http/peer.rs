//! The HTTP client of calls between FileGrid servers of one grid.

use std::future::Future;

use reqwest::{Method, Request, RequestBuilder, Response};

/// A reqwest client for a grid's servers that sends `http://` URLs as `https://` when the
/// grid runs TLS, so callers build their URLs one way whatever the grid does.
#[derive(Clone, Debug)]
pub struct PeerClient {
    inner: reqwest::Client,
    https: bool,
}

impl PeerClient {
    pub fn new(inner: reqwest::Client, https: bool) -> Self {
        Self { inner, https }
    }

    /// `url` with the grid's scheme.
    pub fn url(&self, url: impl AsRef<str>) -> String {
        let url = url.as_ref();
        match url.strip_prefix("http://") {
            Some(rest) if self.https => format!("https://{rest}"),
            _ => url.to_string(),
        }
    }

    pub fn request(&self, method: Method, url: impl AsRef<str>) -> RequestBuilder {
        self.inner.request(method, self.url(url))
    }

    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn put(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    pub fn post(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    pub fn delete(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    pub fn head(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Sends a built request, its URL given the grid's scheme.
    pub fn execute(
        &self,
        mut req: Request,
    ) -> impl Future<Output = Result<Response, reqwest::Error>> + use<> {
        if self.https && req.url().scheme() == "http" {
            let _ = req.url_mut().set_scheme("https");
        }
        self.inner.execute(req)
    }

    /// The underlying client.
    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_the_grids_scheme() {
        let tls = PeerClient::new(reqwest::Client::new(), true);
        assert_eq!(tls.url("http://h:1/v1/chunks"), "https://h:1/v1/chunks");
        assert_eq!(tls.url("https://h:1/x"), "https://h:1/x");
        let plain = PeerClient::new(reqwest::Client::new(), false);
        assert_eq!(plain.url("http://h:1/x"), "http://h:1/x");
    }
}
