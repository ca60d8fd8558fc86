//! Messages: a single `(msg_type, payload)` or a bounded stream of them.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::error::PulsingError;

/// How long [`StreamSender::send`] waits for the consumer to make room before it gives up, unless set
/// with [`MessageStream::channel_with_timeout`].
pub const DEFAULT_STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// A message: what `ask` and `tell` send and what a handler returns.
///
/// A message is either one `(msg_type, payload)` pair or a stream of such pairs. The payload is opaque
/// bytes ([`Bytes`], so clones and slices share memory); `msg_type` tells the receiver how to read it.
///
/// # Examples
///
/// ```
/// use pulsing_core::Message;
/// let m = Message::single("ping", &b"hello"[..]);
/// assert_eq!(m.msg_type(), Some("ping"));
/// assert_eq!(m.payload().map(|p| &p[..]), Some(&b"hello"[..]));
/// assert!(!m.is_stream());
/// ```
pub enum Message {
    /// One message.
    Single {
        /// What kind of message this is; the receiver dispatches on it.
        msg_type: String,
        /// The message body, opaque to the runtime.
        payload: Bytes,
    },
    /// A stream of single messages, ended by an end marker or an error item.
    Stream(MessageStream),
}

impl Message {
    /// A single message.
    pub fn single(msg_type: impl Into<String>, payload: impl Into<Bytes>) -> Message {
        Message::Single {
            msg_type: msg_type.into(),
            payload: payload.into(),
        }
    }

    /// A streamed message.
    pub fn stream(stream: MessageStream) -> Message {
        Message::Stream(stream)
    }

    /// `msg_type` of a single message; `None` for a stream.
    pub fn msg_type(&self) -> Option<&str> {
        match self {
            Message::Single { msg_type, .. } => Some(msg_type),
            Message::Stream(_) => None,
        }
    }

    /// Payload of a single message; `None` for a stream.
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Message::Single { payload, .. } => Some(payload),
            Message::Stream(_) => None,
        }
    }

    /// Whether this message is a stream.
    pub fn is_stream(&self) -> bool {
        matches!(self, Message::Stream(_))
    }

    /// Splits a single message into `(msg_type, payload)`.
    ///
    /// # Errors
    ///
    /// [`PulsingError::BadMessage`] if this is a stream.
    pub fn into_single(self) -> Result<(String, Bytes), PulsingError> {
        match self {
            Message::Single { msg_type, payload } => Ok((msg_type, payload)),
            Message::Stream(_) => Err(PulsingError::BadMessage(
                "expected a single message, got a stream; use ask_stream".into(),
            )),
        }
    }

    /// This message as a stream: a stream stays itself, a single message becomes a stream of one item.
    pub fn into_stream(self) -> MessageStream {
        match self {
            Message::Stream(s) => s,
            single => MessageStream::from_items(vec![single]),
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Single { msg_type, payload } => f
                .debug_struct("Single")
                .field("msg_type", msg_type)
                .field("payload_len", &payload.len())
                .finish(),
            Message::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// One frame on a stream channel: an item, a terminal error, or the end marker.
enum Frame {
    Item(Message),
    Error(PulsingError),
    End,
}

type BoxedItems = Pin<Box<dyn Stream<Item = Result<Message, PulsingError>> + Send>>;

enum Source {
    Channel(mpsc::Receiver<Frame>),
    Boxed(BoxedItems),
}

/// A bounded stream of single messages with an explicit end.
///
/// It yields `Ok(item)` for each item, then `None` once the producer sent its end marker. A failure is
/// one `Err(..)` item, after which the stream yields `None`: an error item ends the stream. If the
/// producer goes away without an end marker (it was dropped, its actor stopped, the connection broke),
/// the stream yields [`PulsingError::StreamTruncated`] rather than a clean end, so a consumer can always
/// tell a complete stream from a cut one.
///
/// Streams are bounded: a channel-backed stream holds at most its capacity of items, and its producer
/// waits for the consumer ([`StreamSender::send`]); a stream built from a `Stream` is pulled by the
/// consumer. Streams returned by `ask_stream` also bound the wait for each item by the ask timeout.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pulsing_core::{Message, MessageStream};
/// let (tx, mut rx) = MessageStream::channel(8);
/// tokio::spawn(async move {
///     tx.send(Message::single("tok", "a")).await.unwrap();
///     tx.end().await;
/// });
/// assert_eq!(rx.next().await.unwrap().unwrap().msg_type(), Some("tok"));
/// assert!(rx.next().await.is_none());
/// # }
/// ```
pub struct MessageStream {
    source: Source,
    done: bool,
    item_timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
}

impl MessageStream {
    /// A channel-backed stream holding at most `capacity` items (at least 1), with the producer's wait
    /// bounded by [`DEFAULT_STREAM_SEND_TIMEOUT`].
    pub fn channel(capacity: usize) -> (StreamSender, MessageStream) {
        MessageStream::channel_with_timeout(capacity, DEFAULT_STREAM_SEND_TIMEOUT)
    }

    /// Like [`channel`](Self::channel), with the producer's wait for room bounded by `send_timeout`.
    pub fn channel_with_timeout(
        capacity: usize,
        send_timeout: Duration,
    ) -> (StreamSender, MessageStream) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            StreamSender {
                tx: Some(tx),
                send_timeout,
            },
            MessageStream::from_source(Source::Channel(rx)),
        )
    }

    /// A stream pulled from `stream`; it ends cleanly when `stream` ends. An `Err` item ends it.
    pub fn from_stream<S, E>(stream: S) -> MessageStream
    where
        S: Stream<Item = Result<Message, E>> + Send + 'static,
        E: Into<PulsingError>,
    {
        use futures_util::StreamExt;
        MessageStream::from_source(Source::Boxed(Box::pin(
            stream.map(|r| r.map_err(Into::into)),
        )))
    }

    /// A stream of the given items, then the end marker.
    pub fn from_items(items: Vec<Message>) -> MessageStream {
        MessageStream::from_stream(futures_util::stream::iter(
            items.into_iter().map(Ok::<_, PulsingError>),
        ))
    }

    fn from_source(source: Source) -> MessageStream {
        MessageStream {
            source,
            done: false,
            item_timeout: None,
            timer: None,
            timer_armed: false,
        }
    }

    /// Bounds the wait for each item: if no item, error or end arrives within `timeout` of asking for
    /// it, the stream yields [`PulsingError::Timeout`] and ends. Needs a Tokio runtime with time enabled.
    pub fn with_item_timeout(mut self, timeout: Duration) -> MessageStream {
        self.item_timeout = Some(timeout);
        self
    }

    /// The next item; `None` after the end marker or after an error item.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses no item.
    pub async fn next(&mut self) -> Option<Result<Message, PulsingError>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Reads the whole stream.
    ///
    /// # Errors
    ///
    /// The first error item, including [`PulsingError::StreamTruncated`] for a stream cut short.
    pub async fn collect(mut self) -> Result<Vec<Message>, PulsingError> {
        let mut out = Vec::new();
        while let Some(item) = self.next().await {
            out.push(item?);
        }
        Ok(out)
    }

    fn poll_source(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Message, PulsingError>>> {
        match &mut self.source {
            Source::Channel(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Frame::Item(m))) => Poll::Ready(Some(Ok(m))),
                Poll::Ready(Some(Frame::Error(e))) => {
                    self.done = true;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(Some(Frame::End)) => {
                    self.done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(Some(Err(PulsingError::StreamTruncated(
                        "the producer went away before sending the end marker".into(),
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
            Source::Boxed(s) => match s.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(Message::Stream(_)))) => {
                    self.done = true;
                    Poll::Ready(Some(Err(PulsingError::BadMessage(
                        "a stream item cannot itself be a stream".into(),
                    ))))
                }
                Poll::Ready(Some(Ok(m))) => Poll::Ready(Some(Ok(m))),
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Stream for MessageStream {
    type Item = Result<Message, PulsingError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.poll_source(cx) {
            Poll::Ready(item) => {
                this.timer_armed = false;
                Poll::Ready(item)
            }
            Poll::Pending => {
                let Some(timeout) = this.item_timeout else {
                    return Poll::Pending;
                };
                let deadline = Instant::now() + timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.timer_armed {
                    timer.as_mut().reset(deadline);
                    this.timer_armed = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        Poll::Ready(Some(Err(PulsingError::Timeout(timeout))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future as _;

impl fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("done", &self.done)
            .field("item_timeout", &self.item_timeout)
            .finish_non_exhaustive()
    }
}

/// The producing half of [`MessageStream::channel`].
///
/// Send items with [`send`](Self::send), then finish with [`end`](Self::end) (clean end) or
/// [`fail`](Self::fail) (error item). Dropping the sender without either makes the consumer see
/// [`PulsingError::StreamTruncated`].
#[derive(Debug)]
pub struct StreamSender {
    // `None` once `end` or `fail` consumed it.
    tx: Option<mpsc::Sender<Frame>>,
    send_timeout: Duration,
}

impl StreamSender {
    /// Sends one item, waiting for room while the consumer is behind.
    ///
    /// # Errors
    ///
    /// - [`PulsingError::Stopped`] if the consumer dropped the stream (stop producing);
    /// - [`PulsingError::Timeout`] if the consumer made no room within the send timeout;
    /// - [`PulsingError::BadMessage`] if `msg` is itself a stream.
    ///
    /// In every error case the item was not delivered.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped the item was not sent.
    pub async fn send(&self, msg: Message) -> Result<(), PulsingError> {
        if msg.is_stream() {
            return Err(PulsingError::BadMessage(
                "a stream item cannot itself be a stream".into(),
            ));
        }
        self.send_frame(Frame::Item(msg)).await
    }

    async fn send_frame(&self, frame: Frame) -> Result<(), PulsingError> {
        let Some(tx) = &self.tx else {
            return Err(PulsingError::Stopped("stream".into()));
        };
        match tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(PulsingError::Stopped("stream consumer".into()))
            }
            Err(mpsc::error::TrySendError::Full(frame)) => {
                match tokio::time::timeout(self.send_timeout, tx.send(frame)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(PulsingError::Stopped("stream consumer".into())),
                    Err(_) => Err(PulsingError::Timeout(self.send_timeout)),
                }
            }
        }
    }

    /// Whether the consumer dropped the stream; a producer can stop early when it did.
    pub fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_closed())
    }

    /// Ends the stream cleanly. If the consumer is gone or stays full past the send timeout, the end
    /// marker is dropped (the consumer then sees a truncated stream, if it still reads).
    pub async fn end(mut self) {
        let _ = self.send_frame(Frame::End).await;
        self.tx = None;
    }

    /// Ends the stream with an error item.
    pub async fn fail(mut self, err: impl Into<PulsingError>) {
        let _ = self.send_frame(Frame::Error(err.into())).await;
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActorError;

    #[tokio::test]
    async fn a_channel_stream_ends_with_its_end_marker() {
        let (tx, rx) = MessageStream::channel(2);
        tokio::spawn(async move {
            for i in 0..5u8 {
                tx.send(Message::single("n", vec![i])).await.unwrap();
            }
            tx.end().await;
        });
        let items = rx.collect().await.unwrap();
        let got: Vec<u8> = items.iter().map(|m| m.payload().unwrap()[0]).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_dropped_producer_yields_a_truncation_error_not_a_clean_end() {
        let (tx, mut rx) = MessageStream::channel(2);
        tx.send(Message::single("n", "x")).await.unwrap();
        drop(tx);
        assert!(rx.next().await.unwrap().is_ok());
        let err = rx.next().await.unwrap().unwrap_err();
        assert!(matches!(err, PulsingError::StreamTruncated(_)), "{err}");
        assert!(rx.next().await.is_none());
    }

    #[tokio::test]
    async fn an_error_item_ends_the_stream() {
        let (tx, mut rx) = MessageStream::channel(2);
        tx.send(Message::single("n", "x")).await.unwrap();
        tx.fail(ActorError::new("disk full")).await;
        assert!(rx.next().await.unwrap().is_ok());
        assert!(rx.next().await.unwrap().unwrap_err().is_actor_error());
        assert!(rx.next().await.is_none());
    }

    #[tokio::test]
    async fn the_producer_learns_when_the_consumer_is_gone() {
        let (tx, rx) = MessageStream::channel(1);
        drop(rx);
        assert!(tx.is_closed());
        assert!(tx
            .send(Message::single("n", "x"))
            .await
            .unwrap_err()
            .is_stopped());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_stream_bounds_the_producers_wait() {
        let (tx, _rx) = MessageStream::channel_with_timeout(1, Duration::from_millis(50));
        tx.send(Message::single("n", "x")).await.unwrap();
        let err = tx.send(Message::single("n", "y")).await.unwrap_err();
        assert!(err.is_timeout());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_producer_times_out_per_item() {
        let (_tx, rx) = MessageStream::channel(1);
        let mut rx = rx.with_item_timeout(Duration::from_millis(100));
        assert!(rx.next().await.unwrap().unwrap_err().is_timeout());
        assert!(rx.next().await.is_none());
    }

    #[tokio::test]
    async fn nested_streams_are_refused() {
        let (tx, _rx) = MessageStream::channel(1);
        let inner = Message::stream(MessageStream::from_items(vec![]));
        assert!(tx.send(inner).await.unwrap_err().is_bad_message());
    }

    #[tokio::test]
    async fn a_single_message_reads_as_a_one_item_stream() {
        let items = Message::single("a", "b")
            .into_stream()
            .collect()
            .await
            .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].msg_type(), Some("a"));
    }
}
