//! A connection under the endpoint's lock ([`Conn`]) and the handles callers hold
//! ([`Connection`], [`Connecting`]).

use std::any::Any;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use quinn::AsyncUdpSocket;
use quinn_proto as proto;
use quinn_proto::{ConnectionError, ConnectionHandle, Dir, Event, StreamEvent, StreamId, VarInt};
use rustc_hash::FxHashMap;

use super::stream::{RecvStream, SendStream};
use super::{lock, release, udp_transmit, Shared, State, MAX_TRANSMITS};

/// A connection is kept while a handle on it exists.
const KEPT: &str = "a connection is kept while a handle on it exists";

/// How much shorter than the MTU a datagram is for [`Conn::transmit`] to take it as the last.
const SHORT_OF_MTU: usize = 64;

/// What a [`Conn::transmit`] left.
pub(super) enum Sent {
    /// Nothing more to send now.
    All,
    /// It stopped at [`MAX_TRANSMITS`]: more to send.
    More,
    /// The socket had no room; one datagram waits in [`Conn::pending`].
    Blocked,
}

/// One connection: quinn-proto's state and who waits on it.
pub(super) struct Conn {
    pub(super) inner: proto::Connection,
    pub(super) ch: ConnectionHandle,
    /// Handles held ([`Connection`]s, streams, a [`Connecting`]). At zero the connection is
    /// closed, and forgotten once drained.
    pub(super) refs: usize,
    pub(super) connected: bool,
    /// Why the connection ended, once it has.
    pub(super) error: Option<ConnectionError>,
    pub(super) readers: FxHashMap<StreamId, Waker>,
    pub(super) writers: FxHashMap<StreamId, Waker>,
    pub(super) stopped: FxHashMap<StreamId, Waker>,
    /// Waiting on the connection itself: the handshake, opening or accepting a stream, its end.
    pub(super) waiting: Vec<Waker>,
    /// The timer deadline last put in the endpoint's heap.
    pub(super) timer: Option<Instant>,
    /// In the endpoint's dirty list.
    pub(super) dirty: bool,
    /// A datagram made but not sent (the socket was full).
    pending: Option<(proto::Transmit, Vec<u8>)>,
}

fn wake_stream(map: &mut FxHashMap<StreamId, Waker>, id: StreamId, wakes: &mut Vec<Waker>) {
    if let Some(w) = map.remove(&id) {
        wakes.push(w);
    }
}

pub(super) fn register(slot: &mut Vec<Waker>, w: &Waker) {
    if !slot.iter().any(|x| x.will_wake(w)) {
        slot.push(w.clone());
    }
}

impl Conn {
    pub(super) fn new(ch: ConnectionHandle, inner: proto::Connection) -> Conn {
        Conn {
            inner,
            ch,
            refs: 0,
            connected: false,
            error: None,
            readers: FxHashMap::default(),
            writers: FxHashMap::default(),
            stopped: FxHashMap::default(),
            waiting: Vec::new(),
            timer: None,
            dirty: false,
            pending: None,
        }
    }

    pub(super) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The application events since last time, as wake-ups.
    pub(super) fn events(&mut self, wakes: &mut Vec<Waker>) {
        while let Some(e) = self.inner.poll() {
            match e {
                Event::HandshakeDataReady | Event::DatagramReceived | Event::DatagramsUnblocked => {
                }
                Event::Connected => {
                    self.connected = true;
                    wakes.append(&mut self.waiting);
                }
                Event::ConnectionLost { reason } => self.end(reason, wakes),
                Event::Stream(StreamEvent::Readable { id }) => {
                    wake_stream(&mut self.readers, id, wakes)
                }
                Event::Stream(StreamEvent::Writable { id }) => {
                    wake_stream(&mut self.writers, id, wakes)
                }
                Event::Stream(StreamEvent::Opened { .. } | StreamEvent::Available { .. }) => {
                    wakes.append(&mut self.waiting);
                }
                Event::Stream(StreamEvent::Finished { id }) => {
                    wake_stream(&mut self.stopped, id, wakes)
                }
                Event::Stream(StreamEvent::Stopped { id, .. }) => {
                    wake_stream(&mut self.stopped, id, wakes);
                    wake_stream(&mut self.writers, id, wakes);
                }
            }
        }
    }

    /// The connection ended (`reason`): everyone waiting on it is woken to see that.
    fn end(&mut self, reason: ConnectionError, wakes: &mut Vec<Waker>) {
        if self.error.is_none() {
            self.error = Some(reason);
        }
        wakes.extend(self.readers.drain().map(|(_, w)| w));
        wakes.extend(self.writers.drain().map(|(_, w)| w));
        wakes.extend(self.stopped.drain().map(|(_, w)| w));
        wakes.append(&mut self.waiting);
    }

    pub(super) fn close(&mut self, code: VarInt, reason: Bytes, wakes: &mut Vec<Waker>) {
        if self.error.is_none() {
            self.inner.close(Instant::now(), code, reason);
        }
        self.end(ConnectionError::LocallyClosed, wakes);
    }

    /// Sends what the connection has ready, at most [`MAX_TRANSMITS`] datagrams.
    pub(super) fn transmit(
        &mut self,
        now: Instant,
        socket: &dyn AsyncUdpSocket,
        buf: &mut Vec<u8>,
        segments: usize,
    ) -> Sent {
        let mut sent = 0;
        loop {
            let (t, len) = match self.pending.take() {
                Some((t, data)) => {
                    match socket.try_send(&udp_transmit(&t, &data)) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.pending = Some((t, data));
                            return Sent::Blocked;
                        }
                        _ => {}
                    }
                    sent += 1;
                    continue;
                }
                None => {
                    buf.clear();
                    match self.inner.poll_transmit(now, segments, buf) {
                        Some(t) => {
                            let len = t.size;
                            (t, len)
                        }
                        None => return Sent::All,
                    }
                }
            };
            match socket.try_send(&udp_transmit(&t, &buf[..len])) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.pending = Some((t, buf[..len].to_vec()));
                    return Sent::Blocked;
                }
                // Like a datagram the network lost: QUIC's loss recovery sends it again.
                Err(e) => tracing::debug!(error = %e, "QUIC send failed"),
            }
            sent += t.segment_size.map_or(1, |s| len.div_ceil(s.max(1)));
            if sent >= MAX_TRANSMITS {
                return Sent::More;
            }
            // A lone datagram well short of the MTU: quinn-proto stopped because it had nothing
            // more to put in, so asking again would only find that out (~0.9k instructions, on
            // every reply). Should anything be left, the next event on the connection (the
            // peer's acknowledgement of this very datagram, a timer) sends it.
            if t.segment_size.is_none()
                && len + SHORT_OF_MTU < usize::from(self.inner.current_mtu())
                && !self.inner.is_handshaking()
            {
                return Sent::All;
            }
        }
    }
}

/// A handle on a connection. Clones share it; when every handle (streams included) is gone the
/// connection is closed (code 0).
pub(crate) struct Connection {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
}

impl Connection {
    /// A new handle on `id`, counted under the lock the caller holds.
    pub(super) fn new_ref(shared: &Arc<Shared>, st: &mut State, id: u64) -> Connection {
        if let Some(c) = st.conns.get_mut(&id) {
            c.refs += 1;
        }
        Connection {
            shared: shared.clone(),
            id,
        }
    }

    /// Runs `f` on the connection under the lock, then passes on its events and sends its
    /// packets. (The connection is there: it is forgotten only once no handle is left.)
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Conn, &mut Vec<Waker>) -> R) -> R {
        let mut st = lock(&self.shared);
        let st_ref = &mut *st;
        let c = st_ref.conns.get_mut(&self.id).expect(KEPT);
        let r = f(c, &mut st_ref.wakes);
        st.process(&self.shared, self.id);
        release(st);
        r
    }

    /// Like [`Connection::with`], for a `poll`: without the processing if nothing was done.
    pub(super) fn peek<R>(&self, f: impl FnOnce(&mut Conn) -> R) -> R {
        let mut st = lock(&self.shared);
        let c = st.conns.get_mut(&self.id).expect(KEPT);
        f(c)
    }

    /// A stream's read: `attempt` on the connection (`Ready` once it read something or found the
    /// end). With `pump` (a link's reader, see [`SockWake`](super::SockWake)), a read owed to the
    /// socket comes first, and an attempt that found nothing reads the socket here and tries again;
    /// still nothing, the reader's waker goes in `readers` for stream `id` and, with `pump`, it
    /// parks on the socket.
    pub(super) fn poll_read_with(
        &self,
        cx: &Context<'_>,
        id: StreamId,
        pump: bool,
        mut attempt: impl FnMut(&mut Conn) -> Poll<()>,
    ) -> Poll<()> {
        let shared = &*self.shared;
        let mut st = lock(shared);
        if pump {
            // This reader is polled now: a datagram it reads for its stream must not wake it too.
            st.conns.get_mut(&self.id).expect(KEPT).readers.remove(&id);
        }
        // What the stream has, after what the socket holds if a read of it is owed; then, for a
        // link's reader, the socket once more if readiness came while the first attempt ran.
        for first in [true, false] {
            if pump && shared.sock.owed.load(std::sync::atomic::Ordering::Acquire) {
                st.pump_for_reader(shared);
            } else if !first {
                break;
            }
            if attempt(st.conns.get_mut(&self.id).expect(KEPT)).is_ready() {
                release(st);
                return Poll::Ready(());
            }
            if !pump {
                break;
            }
        }
        if pump {
            shared.sock.park(cx.waker());
        }
        let c = st.conns.get_mut(&self.id).expect(KEPT);
        c.readers.insert(id, cx.waker().clone());
        release(st);
        Poll::Pending
    }

    /// A link's reader that parked on the socket is going away (see [`SockWake`](super::SockWake)).
    pub(super) fn unpark(&self) {
        self.shared.sock.unpark();
    }

    /// Opens a bidirectional stream, waiting while the peer's stream limit is reached.
    pub(crate) async fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = self.stream_when(|c| c.streams().open(Dir::Bi)).await?;
        Ok(self.streams(id))
    }

    /// The next stream the peer opened.
    pub(crate) async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = self.stream_when(|c| c.streams().accept(Dir::Bi)).await?;
        // Accepting may have raised the peer's stream limit: send that.
        self.with(|_, _| ());
        Ok(self.streams(id))
    }

    /// Waits until `take` gives a stream (woken by the connection's stream events), or the
    /// connection ends.
    async fn stream_when(
        &self,
        take: impl Fn(&mut proto::Connection) -> Option<StreamId>,
    ) -> Result<StreamId, ConnectionError> {
        poll_fn(|cx| {
            self.peek(|c| {
                if let Some(e) = &c.error {
                    return Poll::Ready(Err(e.clone()));
                }
                match take(&mut c.inner) {
                    Some(id) => Poll::Ready(Ok(id)),
                    None => {
                        register(&mut c.waiting, cx.waker());
                        Poll::Pending
                    }
                }
            })
        })
        .await
    }

    fn streams(&self, id: StreamId) -> (SendStream, RecvStream) {
        (
            SendStream::new(self.clone(), id),
            RecvStream::new(self.clone(), id),
        )
    }

    /// Closes the connection: streams fail, the peer is told `code` and `reason`.
    pub(crate) fn close(&self, code: VarInt, reason: &[u8]) {
        let reason = Bytes::copy_from_slice(reason);
        self.with(|c, wakes| c.close(code, reason, wakes));
    }

    /// Why the connection ended; `None` while it is up.
    pub(crate) fn close_reason(&self) -> Option<ConnectionError> {
        self.peek(|c| c.error.clone())
    }

    /// Waits until the connection ends; why it did.
    pub(crate) async fn closed(&self) -> ConnectionError {
        poll_fn(|cx| {
            self.peek(|c| match &c.error {
                Some(e) => Poll::Ready(e.clone()),
                None => {
                    register(&mut c.waiting, cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// The peer's identity from the handshake (with rustls: its certificate chain).
    pub(crate) fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.peek(|c| c.inner.crypto_session().peer_identity())
    }

    /// What the handshake agreed (with rustls: the ALPN protocol among others).
    pub(crate) fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.peek(|c| c.inner.crypto_session().handshake_data())
    }
}

impl Clone for Connection {
    fn clone(&self) -> Connection {
        let mut st = lock(&self.shared);
        Connection::new_ref(&self.shared, &mut st, self.id)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut st = lock(&self.shared);
        let st_ref = &mut *st;
        let Some(c) = st_ref.conns.get_mut(&self.id) else {
            return;
        };
        c.refs -= 1;
        if c.refs == 0 {
            if c.error.is_none() {
                c.close(VarInt::from_u32(0), Bytes::new(), &mut st_ref.wakes);
            }
            st.process(&self.shared, self.id);
        }
        release(st);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("id", &self.id).finish()
    }
}

/// A connection whose handshake is under way; resolves once it is done.
pub(crate) struct Connecting {
    conn: Option<Connection>,
}

impl Connecting {
    pub(super) fn new(conn: Connection) -> Connecting {
        Connecting { conn: Some(conn) }
    }
}

impl Future for Connecting {
    type Output = Result<Connection, ConnectionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let conn = self.conn.as_ref().expect("polled after it was done");
        let state = conn.peek(|c| {
            if let Some(e) = &c.error {
                return Poll::Ready(Err(e.clone()));
            }
            if c.connected {
                return Poll::Ready(Ok(()));
            }
            register(&mut c.waiting, cx.waker());
            Poll::Pending
        });
        match state {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(self.conn.take().expect("checked"))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}
