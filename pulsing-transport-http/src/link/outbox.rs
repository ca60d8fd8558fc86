//! [`Outbox`]: the sending side of a link, shared by every task that sends on it.
//!
//! Frames are appended to one buffer under a lock, in the order their senders took the lock, so the
//! order on the wire is the order of the calls. Who writes the buffer to the socket:
//!
//! - a **latency-sensitive** frame (an ask, a reply) is written by its sender at once, with a
//!   non-blocking `try_write`, when nobody else is writing: no task hop on the common path;
//! - a **tell** only wakes the link's writer task, so tells sent in a burst go out together, many
//!   per write;
//! - while someone writes, everyone else only appends: the writer takes what accumulated in one go.
//!
//! Whatever a non-blocking write could not take (the socket's buffer is full) is handed to the writer
//! task, which waits for the socket. The buffer is bounded ([`Outbox::new`]'s `limit`): a sender of a
//! tell or an ask waits for room up to its deadline. Replies and control frames do not wait (their
//! volume is bounded by the asks that caused them), so a reader answering a PING never blocks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The sending half of a link's byte stream: a TCP socket, a QUIC stream.
///
/// [`Outbox`] writes through it from whichever task holds the buffer, never from two at once.
pub trait LinkWriter: Send + Sync + 'static {
    /// Writes what the stream takes now without waiting; `ErrorKind::WouldBlock` if nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Whether bytes a `try_write` took are still held by the stream's own buffer, waiting for
    /// room in the socket (TLS records): then the writer task calls `write_all` (with nothing
    /// more, if need be) to get them out. A plain socket keeps nothing: the default is `false`.
    fn unflushed(&self) -> bool {
        false
    }

    /// Writes all of `buf` and whatever the stream holds from earlier writes, waiting for the
    /// stream as needed.
    fn write_all<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;
}

impl LinkWriter for OwnedWriteHalf {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        OwnedWriteHalf::try_write(self, buf)
    }

    fn write_all<'a>(
        &'a self,
        mut bytes: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            while !bytes.is_empty() {
                self.writable().await?;
                match OwnedWriteHalf::try_write(self, bytes) {
                    Ok(n) => bytes = &bytes[n..],
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}

/// How a frame is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Written by the sender at once if nobody is writing (asks, replies, pongs).
    Now,
    /// Written by the writer task (tells: batched).
    Batched,
}

/// Why a frame was not queued.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The link is closed, for this reason.
    Closed(String),
    /// The buffer stayed full until the deadline.
    Full,
}

struct State {
    buf: Vec<u8>,
    /// A previous buffer, kept to reuse its allocation.
    spare: Vec<u8>,
    /// Bytes taken out of `buf` and not yet written, from the offset: they go before `buf`.
    front: Option<(Vec<u8>, usize)>,
    /// Someone (a sender or the writer task) is writing; others only append.
    writing: bool,
    /// Tell frames in `buf` (they become dead letters if the link closes before they are written).
    tells: u64,
    closed: Option<String>,
}

/// The sending side of one link.
pub(crate) struct Outbox {
    state: Mutex<State>,
    sock: Box<dyn LinkWriter>,
    /// Wakes the writer task.
    wake: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
    limit: usize,
}

impl Outbox {
    /// An outbox writing to `sock`, holding at most about `limit` unsent bytes from senders that
    /// wait for room. Run [`Outbox::writer`] on a task of its own.
    pub(crate) fn new(sock: Box<dyn LinkWriter>, limit: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                buf: Vec::with_capacity(64 * 1024),
                spare: Vec::new(),
                front: None,
                writing: false,
                tells: 0,
                closed: None,
            }),
            sock,
            wake: Notify::new(),
            room: Notify::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends the frame `put` writes, without waiting for room (replies and control frames).
    pub(crate) fn push(&self, how: Write, put: impl FnOnce(&mut Vec<u8>)) -> Result<(), Refused> {
        let mut st = self.lock();
        if let Some(why) = &st.closed {
            return Err(Refused::Closed(why.clone()));
        }
        put(&mut st.buf);
        self.kick(st, how);
        Ok(())
    }

    /// Appends the frame `put` writes (about `size` bytes) once the buffer has room, waiting at most
    /// until `deadline`. A frame larger than the limit goes once the buffer is empty. `tell`: the
    /// frame counts as a dead letter if the link closes before it is written.
    ///
    /// Waiting is boxed, so that its state (a notification and a timer) is not in the future of
    /// every call: most find room at once (see `Links::link` for why the size matters).
    pub(crate) async fn push_bounded<F: FnOnce(&mut Vec<u8>)>(
        &self,
        how: Write,
        size: usize,
        deadline: Instant,
        tell: bool,
        put: F,
    ) -> Result<(), Refused> {
        let mut put = Some(put);
        if let Some(done) = self.try_push(how, size, tell, &mut put) {
            return done;
        }
        Box::pin(async move {
            loop {
                // Registered before checking, so a drain between the check and the wait is not
                // missed.
                let room = self.room.notified();
                if let Some(done) = self.try_push(how, size, tell, &mut put) {
                    return done;
                }
                if tokio::time::timeout_at(deadline, room).await.is_err() {
                    return Err(Refused::Full);
                }
            }
        })
        .await
    }

    /// Appends the frame if the buffer has room (or is empty); `None`: no room, `put` kept.
    fn try_push<F: FnOnce(&mut Vec<u8>)>(
        &self,
        how: Write,
        size: usize,
        tell: bool,
        put: &mut Option<F>,
    ) -> Option<Result<(), Refused>> {
        let mut st = self.lock();
        if let Some(why) = &st.closed {
            return Some(Err(Refused::Closed(why.clone())));
        }
        if !(st.buf.is_empty() || st.buf.len() + size <= self.limit) {
            return None;
        }
        if let Some(put) = put.take() {
            put(&mut st.buf);
        }
        st.tells += u64::from(tell);
        self.kick(st, how);
        Some(Ok(()))
    }

    /// Gets what was appended written: by this caller now (`Write::Now`) or by the writer task.
    fn kick<'a>(&'a self, mut st: MutexGuard<'a, State>, how: Write) {
        if st.writing {
            return;
        }
        st.writing = true;
        match how {
            Write::Batched => {
                drop(st);
                self.wake.notify_one();
            }
            Write::Now => self.write_now(st),
        }
    }

    /// Takes the buffer for writing (leaving the spare allocation in its place); wakes senders
    /// waiting for room.
    fn take(&self, st: &mut State) -> Vec<u8> {
        let fresh = std::mem::take(&mut st.spare);
        let buf = std::mem::replace(&mut st.buf, fresh);
        st.tells = 0;
        self.room.notify_waiters();
        buf
    }

    /// Writes with non-blocking writes until the buffer is empty; hands what the socket would not
    /// take to the writer task. Called with `writing` set.
    fn write_now<'a>(&'a self, mut st: MutexGuard<'a, State>) {
        loop {
            if st.buf.is_empty() {
                st.writing = false;
                return;
            }
            let mut chunk = self.take(&mut st);
            drop(st);
            let mut off = 0;
            let result = loop {
                match self.sock.try_write(&chunk[off..]) {
                    Ok(n) => {
                        off += n;
                        if off == chunk.len() {
                            break Ok(true);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            st = self.lock();
            match result {
                Ok(true) if self.sock.unflushed() => {
                    // Taken, not all on the wire yet: the writer task flushes it.
                    chunk.clear();
                    st.front = Some((chunk, 0));
                    drop(st);
                    self.wake.notify_one();
                    return;
                }
                Ok(true) => {
                    chunk.clear();
                    st.spare = chunk;
                }
                Ok(false) => {
                    // The socket is full: the writer task waits for it, this sender goes on.
                    st.front = Some((chunk, off));
                    drop(st);
                    self.wake.notify_one();
                    return;
                }
                Err(e) => {
                    let why = format!("writing to the link failed: {e}");
                    st.closed.get_or_insert(why);
                    st.writing = false;
                    drop(st);
                    // The writer task sees `closed` and ends; the reader ends with the socket.
                    self.wake.notify_one();
                    self.room.notify_waiters();
                    return;
                }
            }
        }
    }

    /// The writer task: writes what others hand it until the link closes; returns why it closed.
    pub(crate) async fn writer(&self) -> String {
        loop {
            self.wake.notified().await;
            loop {
                let (chunk, off) = {
                    let mut st = self.lock();
                    if let Some(why) = &st.closed {
                        return why.clone();
                    }
                    if let Some(front) = st.front.take() {
                        front
                    } else if st.buf.is_empty() {
                        st.writing = false;
                        break;
                    } else {
                        (self.take(&mut st), 0)
                    }
                };
                let mut chunk = chunk;
                if let Err(e) = self.write_all(&chunk[off..]).await {
                    let why = format!("writing to the link failed: {e}");
                    self.close(why.clone());
                    return why;
                }
                chunk.clear();
                self.lock().spare = chunk;
            }
        }
    }

    async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes).await
    }

    /// Closes the outbox: later pushes fail with `why`; what was not written is dropped. Returns
    /// how many tells were dropped unwritten (0 if it was already closed).
    pub(crate) fn close(&self, why: String) -> u64 {
        let mut st = self.lock();
        if st.closed.is_some() {
            return 0;
        }
        st.closed = Some(why);
        let lost = st.tells;
        st.tells = 0;
        st.buf = Vec::new();
        st.front = None;
        drop(st);
        self.wake.notify_one();
        self.room.notify_waiters();
        lost
    }

    /// Whether everything queued was written (or the outbox closed).
    pub(crate) fn is_idle(&self) -> bool {
        let st = self.lock();
        st.closed.is_some() || (!st.writing && st.buf.is_empty())
    }

    /// Why the outbox closed, if it did.
    pub(crate) fn closed(&self) -> Option<String> {
        self.lock().closed.clone()
    }
}
