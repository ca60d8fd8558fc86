//! The two halves of a bidirectional stream ([`SendStream`], [`RecvStream`]) and their error
//! ([`StreamError`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use quinn_proto::{
    ConnectionError, FinishError, ReadError, ReadableError, StreamId, VarInt, WriteError,
};
use tokio::io::{AsyncRead, ReadBuf};

use super::conn::Connection;

/// Why a stream operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// The connection ended.
    ConnectionLost(ConnectionError),
    /// The peer reset the stream it was sending (code).
    Reset(VarInt),
    /// The peer stopped reading the stream (code).
    Stopped(VarInt),
    /// The stream was already finished, reset or stopped here.
    Closed,
    /// More bytes than the reader would take.
    TooLong,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::ConnectionLost(e) => write!(f, "connection lost: {e}"),
            StreamError::Reset(c) => write!(f, "the peer reset the stream (code {c})"),
            StreamError::Stopped(c) => write!(f, "the peer stopped the stream (code {c})"),
            StreamError::Closed => f.write_str("the stream is closed"),
            StreamError::TooLong => f.write_str("the stream is longer than allowed"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> io::Error {
        let kind = match &e {
            StreamError::ConnectionLost(ConnectionError::TimedOut) => io::ErrorKind::TimedOut,
            StreamError::ConnectionLost(_) | StreamError::Reset(_) => {
                io::ErrorKind::ConnectionReset
            }
            StreamError::Stopped(_) | StreamError::Closed => io::ErrorKind::BrokenPipe,
            StreamError::TooLong => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// The sending half of a stream. Dropping it finishes the stream.
pub(crate) struct SendStream {
    conn: Connection,
    id: StreamId,
    done: bool,
}

impl SendStream {
    pub(super) fn new(conn: Connection, id: StreamId) -> SendStream {
        SendStream {
            conn,
            id,
            done: false,
        }
    }

    /// Writes what the stream takes now (its packets go out at once); `Pending` when flow
    /// control takes nothing, after registering `cx`'s waker if there is one.
    pub(crate) fn poll_write(
        &mut self,
        cx: Option<&mut Context<'_>>,
        buf: &[u8],
    ) -> Poll<Result<usize, StreamError>> {
        let id = self.id;
        self.conn.with(|c, _| {
            if let Some(e) = &c.error {
                return Poll::Ready(Err(StreamError::ConnectionLost(e.clone())));
            }
            match c.inner.send_stream(id).write(buf) {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(WriteError::Blocked) => {
                    if let Some(cx) = cx {
                        c.writers.insert(id, cx.waker().clone());
                    }
                    Poll::Pending
                }
                Err(WriteError::Stopped(code)) => Poll::Ready(Err(StreamError::Stopped(code))),
                Err(WriteError::ClosedStream) => Poll::Ready(Err(StreamError::Closed)),
            }
        })
    }

    /// Writes all of `buf`, waiting for flow control as needed.
    pub(crate) async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), StreamError> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| self.poll_write(Some(cx), buf)).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Ends the stream after what was written.
    pub(crate) fn finish(&mut self) -> Result<(), StreamError> {
        self.done = true;
        let id = self.id;
        self.conn
            .with(|c, _| match c.inner.send_stream(id).finish() {
                Ok(()) => Ok(()),
                Err(FinishError::Stopped(code)) => Err(StreamError::Stopped(code)),
                Err(FinishError::ClosedStream) => Err(StreamError::Closed),
            })
    }

    /// Abandons the stream: the peer's reads fail with `code`.
    pub(crate) fn reset(&mut self, code: VarInt) -> Result<(), StreamError> {
        self.done = true;
        let id = self.id;
        self.conn.with(|c, _| {
            c.inner
                .send_stream(id)
                .reset(code)
                .map_err(|_| StreamError::Closed)
        })
    }

    /// Waits until the peer has received everything (after [`SendStream::finish`]: `None`) or
    /// stopped the stream (its code).
    pub(crate) async fn stopped(&mut self) -> Result<Option<VarInt>, StreamError> {
        let id = self.id;
        poll_fn(|cx| {
            self.conn.peek(|c| match c.inner.send_stream(id).stopped() {
                Ok(Some(code)) => Poll::Ready(Ok(Some(code))),
                // Finished and acknowledged: quinn-proto forgets the stream.
                Err(_) => Poll::Ready(Ok(None)),
                Ok(None) => match &c.error {
                    Some(e) => Poll::Ready(Err(StreamError::ConnectionLost(e.clone()))),
                    None => {
                        c.stopped.insert(id, cx.waker().clone());
                        Poll::Pending
                    }
                },
            })
        })
        .await
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        if !self.done {
            let id = self.id;
            self.conn.with(|c, _| {
                if c.error.is_none() {
                    let _ = c.inner.send_stream(id).finish();
                }
                c.writers.remove(&id);
            });
        }
    }
}

/// The receiving half of a stream. Dropping it before the end stops the stream (code 0).
pub(crate) struct RecvStream {
    conn: Connection,
    id: StreamId,
    /// The stream's end (`Ok`) or failure, once read or made: what every later read returns.
    end: Option<Result<(), StreamError>>,
    /// Reads the socket itself when the stream is empty ([`RecvStream::reads_socket`]).
    pump: bool,
}

impl RecvStream {
    pub(super) fn new(conn: Connection, id: StreamId) -> RecvStream {
        RecvStream {
            conn,
            id,
            end: None,
            pump: false,
        }
    }

    /// Makes this a link's reader: finding the stream empty, it reads the endpoint's socket
    /// itself and then waits on the socket, so a datagram wakes it rather than the driver (see
    /// the driver's `SockWake`). Only for a reader whose task reads it in a loop until it drops it:
    /// a reader woken for the socket must read the stream again at its next poll.
    pub(crate) fn reads_socket(&mut self) {
        self.pump = true;
    }

    /// Asks the peer to stop sending (`code`); what it sent is dropped.
    pub(crate) fn stop(&mut self, code: VarInt) -> Result<(), StreamError> {
        self.end = Some(Err(StreamError::Closed));
        if std::mem::take(&mut self.pump) {
            // Not read any more: it must not stay parked on the socket.
            self.conn.unpark();
        }
        let id = self.id;
        self.conn.with(|c, _| {
            c.readers.remove(&id);
            c.inner
                .recv_stream(id)
                .stop(code)
                .map_err(|_| StreamError::Closed)
        })
    }

    /// Reads the stream to its end; [`StreamError::TooLong`] past `max` bytes.
    pub(crate) async fn read_to_end(&mut self, max: usize) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        loop {
            let mut chunk = [0u8; 8192];
            let n = poll_fn(|cx| {
                let mut rb = ReadBuf::new(&mut chunk);
                self.poll_read_buf(cx, &mut rb)
                    .map_ok(|()| rb.filled().len())
            })
            .await?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > max {
                return Err(StreamError::TooLong);
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads what the stream has into `buf`; nothing added at the end of the stream. An end or a
    /// reset found after some bytes is reported by the next read.
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<Result<(), StreamError>> {
        if let Some(end) = self.end.clone() {
            return Poll::Ready(end);
        }
        let id = self.id;
        let before = buf.filled().len();
        let mut credit = false;
        let mut end = None;
        let r = self.conn.poll_read_with(cx, id, self.pump, |c| {
            match c.inner.recv_stream(id).read(true) {
                Ok(mut chunks) => {
                    while buf.remaining() > 0 {
                        match chunks.next(buf.remaining()) {
                            Ok(Some(chunk)) => buf.put_slice(&chunk.bytes),
                            Ok(None) => {
                                end = Some(Ok(()));
                                break;
                            }
                            Err(ReadError::Blocked) => break,
                            Err(ReadError::Reset(code)) => {
                                end = Some(Err(StreamError::Reset(code)));
                                break;
                            }
                        }
                    }
                    credit |= chunks.finalize().should_transmit();
                }
                Err(ReadableError::ClosedStream) => end = Some(Err(StreamError::Closed)),
                Err(ReadableError::IllegalOrderedRead) => unreachable!("reads are ordered"),
            }
            if end.is_some() || buf.filled().len() > before {
                return Poll::Ready(());
            }
            if let Some(e) = &c.error {
                end = Some(Err(StreamError::ConnectionLost(e.clone())));
                return Poll::Ready(());
            }
            Poll::Pending
        });
        if credit {
            // The read gave flow-control credit back: tell the peer now.
            self.conn.with(|_, _| ());
        }
        if let Some(end) = end {
            self.end = Some(end);
        }
        match r {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) if buf.filled().len() > before => Poll::Ready(Ok(())),
            Poll::Ready(()) => Poll::Ready(self.end.clone().unwrap_or(Ok(()))),
        }
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_buf(cx, buf).map_err(io::Error::from)
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if self.pump {
            self.conn.unpark();
        }
        if self.end.is_none() {
            let id = self.id;
            self.conn.with(|c, _| {
                c.readers.remove(&id);
                if c.error.is_none() {
                    let _ = c.inner.recv_stream(id).stop(VarInt::from_u32(0));
                }
            });
        }
    }
}
