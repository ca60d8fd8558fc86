//! TLS streams as link halves: [`TlsWriter`] is a [`LinkWriter`] over the writing half of a TLS
//! stream, so a link over TLS keeps the outbox's no-hop fast path (a sender writes its frame itself
//! when nobody else is writing).

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, WriteHalf};
use tokio::net::TcpStream;

use crate::link::{LinkReader, LinkWriter};

/// A TLS stream over TCP, either side, read through a 64 KiB buffer ([`buffered`]).
pub type TlsIo = tokio_rustls::TlsStream<BufReader<TcpStream>>;

/// What rustls reads from: rustls takes at most 4 KiB from its transport per read, so without a
/// buffer under it a link carrying a burst of tells makes 16 times the read syscalls of a plaintext
/// link (which reads up to 64 KiB at once). Writes pass through.
pub(crate) fn buffered(tcp: TcpStream) -> BufReader<TcpStream> {
    BufReader::with_capacity(64 * 1024, tcp)
}

/// The writing half of a TLS stream, for a link's outbox.
///
/// `try_write` hands the bytes to rustls (which encrypts them) and writes the records to the
/// socket without waiting; records the socket would not take stay in rustls until the outbox's
/// writer task flushes them ([`LinkWriter::unflushed`]).
pub struct TlsWriter {
    half: Mutex<WriteHalf<TlsIo>>,
    unflushed: AtomicBool,
}

impl TlsWriter {
    /// Splits `io` into the reading half of a link and its writer.
    pub fn split(io: TlsIo) -> (LinkReader, Box<dyn LinkWriter>) {
        let (rd, wr) = tokio::io::split(io);
        let writer = TlsWriter {
            half: Mutex::new(wr),
            unflushed: AtomicBool::new(false),
        };
        (Box::new(rd) as LinkReader, Box::new(writer))
    }

    fn half(&self) -> MutexGuard<'_, WriteHalf<TlsIo>> {
        self.half.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LinkWriter for TlsWriter {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut half = self.half();
        let n = match Pin::new(&mut *half).poll_write(&mut cx, buf) {
            Poll::Ready(r) => r?,
            Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
        };
        match Pin::new(&mut *half).poll_flush(&mut cx) {
            Poll::Ready(r) => r?,
            Poll::Pending => self.unflushed.store(true, Ordering::Release),
        }
        Ok(n)
    }

    fn unflushed(&self) -> bool {
        self.unflushed.load(Ordering::Acquire)
    }

    fn write_all<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let mut off = 0;
            while off < buf.len() {
                let n =
                    poll_fn(|cx| Pin::new(&mut *self.half()).poll_write(cx, &buf[off..])).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                off += n;
            }
            self.unflushed.store(false, Ordering::Release);
            poll_fn(|cx| Pin::new(&mut *self.half()).poll_flush(cx)).await
        })
    }
}

/// Reads are plain `AsyncRead` ([`LinkReader`]); this only names the bound for boxed TLS IO.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}
