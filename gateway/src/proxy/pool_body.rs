//! A backend response body: it gives its HTTP/1.1 connection back to the pool when read to
//! the end, or frees its HTTP/2 stream slot.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::{Pool, StreamSlot, h1};

/// Why a response body broke off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// HTTP/1.1 framing or transport.
    #[error(transparent)]
    Http1(#[from] h1::H1Error),
    /// HTTP/2 stream or connection.
    #[error(transparent)]
    Http2(#[from] hyper::Error),
}

pub(super) enum Inner {
    /// `conn` is `None` once the body has ended (the connection went back to the pool or was closed).
    H1 {
        pool: Arc<Pool>,
        conn: Option<h1::Conn>,
        dec: h1::Decoder,
    },
    H2 {
        body: Incoming,
        _slot: StreamSlot,
    },
}

/// A backend response body. Read to the end, it returns its HTTP/1.1 connection to the
/// pool (or frees its HTTP/2 stream slot); dropped early, it closes the connection.
pub struct PooledBody {
    inner: Inner,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::H1 { dec, .. } => f.debug_struct("PooledBody").field("http1", dec).finish(),
            Inner::H2 { body, .. } => f.debug_struct("PooledBody").field("h2", body).finish(),
        }
    }
}

impl PooledBody {
    pub(super) fn h1(pool: Arc<Pool>, conn: h1::Conn, dec: h1::Decoder) -> Self {
        let mut body = Self { inner: Inner::H1 { pool, conn: Some(conn), dec } };
        // A bodiless response (204, Content-Length: 0) is over already.
        body.release_if_done();
        body
    }

    pub(super) fn h2(body: Incoming, slot: StreamSlot) -> Self {
        Self { inner: Inner::H2 { body, _slot: slot } }
    }

    /// An HTTP/1.1 connection whose response is read to the end goes back to the pool if it
    /// may carry another exchange.
    fn release_if_done(&mut self) {
        if let Inner::H1 { pool, conn, dec } = &mut self.inner {
            if dec.is_done() {
                if let Some(c) = conn.take().filter(|c| dec.keep_alive && c.is_clean()) {
                    pool.checkin(c, dec.idle_limit);
                }
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match &mut this.inner {
            Inner::H1 { conn, dec, .. } => {
                let Some(c) = conn.as_mut() else { return Poll::Ready(None) };
                match ready!(c.poll_body(dec, cx)) {
                    Some(Ok(data)) => {
                        // The last frame: the server may not poll again once `is_end_stream` says so.
                        this.release_if_done();
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    None => {
                        this.release_if_done();
                        Poll::Ready(None)
                    }
                    // A broken body leaves the connection in an unknown state: close it.
                    Some(Err(e)) => {
                        *conn = None;
                        Poll::Ready(Some(Err(e.into())))
                    }
                }
            }
            Inner::H2 { body, .. } => Pin::new(body).poll_frame(cx).map_err(BodyError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H1 { conn, dec, .. } => conn.is_none() || dec.is_done(),
            Inner::H2 { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H1 { conn: None, .. } => SizeHint::with_exact(0),
            Inner::H1 { dec, .. } => dec.remaining().map_or_else(SizeHint::default, SizeHint::with_exact),
            Inner::H2 { body, .. } => body.size_hint(),
        }
    }
}
