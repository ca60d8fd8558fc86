//! [`WireBody`]: the one body type this crate sends, as a request (client) or a response (server).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
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
            StreamState::Items => match Pin::new(&mut self.items).poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(msg))) => {
                    let frame = match msg.into_single() {
                        Ok((msg_type, payload)) => {
                            StreamFrame::Item(Envelope { msg_type, payload })
                        }
                        Err(e) => {
                            self.state = StreamState::End;
                            error_frame(&e)
                        }
                    };
                    let enc = codec::encode_frame(&frame);
                    self.pending = (!enc.payload.is_empty()).then_some(enc.payload);
                    data(enc.head)
                }
                Poll::Ready(Some(Err(e))) => {
                    self.state = StreamState::End;
                    data(codec::encode_frame(&error_frame(&e)).head)
                }
                Poll::Ready(None) => {
                    self.state = StreamState::Done;
                    data(codec::encode_frame(&StreamFrame::End).head)
                }
            },
        }
    }
}

fn error_frame(e: &PulsingError) -> StreamFrame {
    StreamFrame::Error(WireError {
        kind: crate::protocol::wire_kind(e).to_owned(),
        message: e.wire_message(),
    })
}
