//! An answer sent before its request's body was read to the end (a refused credential, a
//! failed condition, a bad path) closes the connection: hyper would otherwise read the rest
//! of that body as the next request on the connection, and a client that reuses it (every
//! SDK does) would see its next request fail in odd ways (wrong signature, wrong status).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::{Body as _, Frame, SizeHint};

/// Set once the body has ended.
#[derive(Clone)]
struct Finished(Arc<AtomicBool>);

impl Finished {
    fn finished(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct Tracked {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware for every listener: `Connection: close` on answers whose request body was not
/// read to its end.
pub async fn close_if_unread(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (req, read) = tracked(req);
    let mut resp = next.run(req).await;
    if !read.finished() {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// `req` with its body tracked; a body that is empty from the start counts as read.
fn tracked(req: Request) -> (Request, Finished) {
    let (parts, inner) = req.into_parts();
    let done = Arc::new(AtomicBool::new(inner.is_end_stream()));
    let body = Body::new(Tracked {
        inner,
        done: done.clone(),
    });
    (Request::from_parts(parts, body), Finished(done))
}
