//! The response body type: a fixed buffer (the hot path, no boxing), a short list of chunks
//! with a known total length (spliced `large` payloads, SSE events), or an open-ended stream
//! (paced progress, GET streams).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use http_body::{Body, Frame, SizeHint};

/// A response body.
pub enum ResponseBody {
    /// No body.
    Empty,
    /// One buffer (taken on the first poll).
    Full(Option<Bytes>),
    /// Several buffers with a known total length.
    Chunks {
        /// Remaining chunks, in order.
        chunks: VecDeque<Bytes>,
        /// Bytes still to send.
        remaining: u64,
    },
    /// A stream of unknown length, sent as it is produced.
    Stream(BoxStream<'static, Bytes>),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Full(b) => write!(f, "Full({:?} bytes)", b.as_ref().map(Bytes::len)),
            Self::Chunks { remaining, .. } => write!(f, "Chunks({remaining} bytes)"),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl ResponseBody {
    /// A body of one buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }

    /// A body of several buffers sent back to back.
    pub fn chunks(chunks: Vec<Bytes>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self::Chunks { chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(), remaining }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Chunks { chunks, remaining } => Poll::Ready(chunks.pop_front().map(|chunk| {
                *remaining -= chunk.len() as u64;
                Ok(Frame::data(chunk))
            })),
            Self::Stream(stream) => Pin::new(stream).poll_next(cx).map(|next| next.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.is_none(),
            Self::Chunks { chunks, .. } => chunks.is_empty(),
            Self::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Chunks { remaining, .. } => SizeHint::with_exact(*remaining),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_report_exact_length_and_concatenate() {
        let body = ResponseBody::chunks(vec![Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"cde")]);
        assert_eq!(body.size_hint().exact(), Some(5));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcde");
    }

    #[tokio::test]
    async fn full_and_empty() {
        let body = ResponseBody::full("ok");
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"ok");
        assert!(ResponseBody::Empty.is_end_stream());
    }

    #[tokio::test]
    async fn stream_is_passed_through() {
        let s = futures_util::stream::iter([Bytes::from_static(b"x"), Bytes::from_static(b"y")]);
        let body = ResponseBody::Stream(Box::pin(s));
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"xy");
    }
}
