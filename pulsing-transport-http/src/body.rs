//! [`WireBody`]: the one body type this crate sends, as a request (client) or a response (server).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use pulsing_core::{MessageStream, PulsingError};

use crate::codec::{self, Encoded, Envelope, StreamFrame, WireError};

/// A body: up to two chunks known up front (an encoded message: head, then payload), or the frames of
/// a streamed reply produced as the actor yields items.
pub(crate) enum WireBody {
    /// Chunks sent in order; `None` once sent.
    Chunks([Option<Bytes>; 2]),
    /// A streamed reply.
    Stream(Box<StreamBody>),
}

/// The state of a streamed reply: items, then `{"end": true}` (after an error frame too).
pub(crate) struct StreamBody {
    items: MessageStream,
    /// The payload of the last item, to send after its head.
    pending: Option<Bytes>,
    state: StreamState,
}

#[derive(PartialEq, Eq)]
enum StreamState {
    Items,
    End,
    Done,
}

impl WireBody {
    pub(crate) fn empty() -> WireBody {
        WireBody::Chunks([None, None])
    }

    pub(crate) fn bytes(b: Bytes) -> WireBody {
        WireBody::Chunks([Some(b), None])
    }

    pub(crate) fn encoded(e: Encoded) -> WireBody {
        let payload = (!e.payload.is_empty()).then_some(e.payload);
        WireBody::Chunks([Some(e.head), payload])
    }

    pub(crate) fn stream(items: MessageStream) -> WireBody {
        WireBody::Stream(Box::new(StreamBody {
            items,
            pending: None,
            state: StreamState::Items,
        }))
    }
}

fn data(b: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
    Poll::Ready(Some(Ok(Frame::data(b))))
}

impl Body for WireBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            WireBody::Chunks(chunks) => {
                for c in chunks.iter_mut() {
                    if let Some(b) = c.take() {
                        return data(b);
                    }
                }
                Poll::Ready(None)
            }
            WireBody::Stream(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            WireBody::Chunks(c) => c.iter().all(Option::is_none),
            WireBody::Stream(s) => s.state == StreamState::Done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            WireBody::Chunks(c) => {
                SizeHint::with_exact(c.iter().flatten().map(|b| b.len() as u64).sum())
            }
            WireBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Stream frames that are ready together are sent in one DATA chunk up to this size: a burst of small
/// items then costs one HTTP/2 frame rather than one each (a peer's h2 refuses a flood of tiny DATA
/// frames that its reader has not consumed yet: `ENHANCE_YOUR_CALM`, "too_many_data_frames").
const BATCH: usize = 16 * 1024;

impl StreamBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(p) = self.pending.take() {
            return data(p);
        }
        match self.state {
            StreamState::Done => Poll::Ready(None),
            StreamState::End => {
                self.state = StreamState::Done;
                data(codec::encode_frame(&StreamFrame::End).head)
            }
            StreamState::Items => self.poll_items(cx),
        }
    }

    /// The frames of the items ready now: small ones batched into one chunk, a large payload sent as
    /// its own chunk after its head (no copy).
    fn poll_items(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let mut batch = BytesMut::new();
        while batch.len() < BATCH {
            let enc = match Pin::new(&mut self.items).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(msg))) => match msg.into_single() {
                    Ok((msg_type, payload)) => {
                        codec::encode_frame(&StreamFrame::Item(Envelope { msg_type, payload }))
                    }
                    Err(e) => {
                        self.state = StreamState::End;
                        codec::encode_frame(&error_frame(&e))
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    self.state = StreamState::End;
                    codec::encode_frame(&error_frame(&e))
                }
                Poll::Ready(None) => {
                    self.state = StreamState::Done;
                    codec::encode_frame(&StreamFrame::End)
                }
            };
            if !enc.payload.is_empty() {
                // A large payload: whatever was batched, then its head, then the payload itself.
                if batch.is_empty() {
                    self.pending = Some(enc.payload);
                    return data(enc.head);
                }
                batch.extend_from_slice(&enc.head);
                self.pending = Some(enc.payload);
                return data(batch.freeze());
            }
            batch.extend_from_slice(&enc.head);
            if self.state != StreamState::Items {
                break;
            }
        }
        if batch.is_empty() {
            Poll::Pending
        } else {
            data(batch.freeze())
        }
    }
}

fn error_frame(e: &PulsingError) -> StreamFrame {
    StreamFrame::Error(WireError::from_error(e))
}

/// A body read whole, chunk by chunk, never holding more than a limit. The usual body is one chunk,
/// kept as it came, without a copy; more chunks are copied into one buffer.
#[derive(Default)]
pub(crate) struct Collected {
    first: Bytes,
    more: Option<BytesMut>,
}

/// The body passed the limit it is read under.
#[derive(Debug)]
pub(crate) struct OverLimit;

impl Collected {
    /// Adds `chunk`, or fails if the body would then hold more than `max` bytes (nothing is added).
    pub(crate) fn push(&mut self, chunk: Bytes, max: usize) -> Result<(), OverLimit> {
        let have = self.first.len() + self.more.as_ref().map_or(0, BytesMut::len);
        if have + chunk.len() > max {
            return Err(OverLimit);
        }
        match &mut self.more {
            Some(buf) => buf.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let mut buf = BytesMut::with_capacity(self.first.len() + chunk.len());
                buf.extend_from_slice(&self.first);
                buf.extend_from_slice(&chunk);
                self.more = Some(buf);
            }
        }
        Ok(())
    }

    /// The whole body.
    pub(crate) fn finish(self) -> Bytes {
        self.more.map_or(self.first, BytesMut::freeze)
    }
}
