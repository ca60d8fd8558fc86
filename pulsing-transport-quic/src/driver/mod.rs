//! Pulsing's own QUIC driver: quinn-proto's endpoint and connections, driven by one task per
//! endpoint and by the callers themselves.
//!
//! Why not the `quinn` crate's driver: it runs an endpoint task and a task per connection, so a
//! datagram received wakes the endpoint task, which hands it over a channel to the connection's
//! task, which wakes the task reading the stream; a write wakes the connection's task to send it.
//! On a request/response link that is three task hops per round trip on each side, and the bench
//! measured quinn alone at 1.37–1.43 × the TCP floor where one task driving quinn-proto took
//! 1.15–1.25 × (README, QUIC). This driver halves the task polls of a QUIC ask and takes its
//! instructions from 75k to 66k per round trip (callgrind, both nodes).
//!
//! Here:
//! - **One lock per endpoint** holds the quinn-proto endpoint and all its connections
//!   ([`State`]).
//! - **The driver task** ([`drive`]) reads datagrams, hands each to its connection, fires the
//!   connections' timers, and wakes whoever waits on what changed (a stream's reader, an
//!   accept, a handshake).
//! - **Callers transmit themselves**: a stream write, a read that gives flow-control credit back,
//!   a close, all send the packets that follow at once, under the lock, on the caller's task. The
//!   driver is woken only when a connection's next timer moved earlier than the one it sleeps
//!   to, or the socket had no room.
//!
//! - **A link's reader reads the socket itself** when its stream is empty, and then parks on the
//!   socket ([`SockWake`]): the next datagram wakes it, not the driver, which would only wake it
//!   in turn. The driver reads the socket whenever no reader is parked, and at each of its turns.
//!
//! So on a request/response link a datagram costs no hop (it wakes the reader that wants it) and
//! a write none. The socket is quinn's
//! [`AsyncUdpSocket`] (GSO, GRO, ECN by quinn-udp; a test wrapper for loss fits as before).

mod conn;
mod stream;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::{poll_fn, Future};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use quinn::udp::{RecvMeta, BATCH_SIZE};
use quinn::{AsyncUdpSocket, UdpPoller};
use quinn_proto as proto;
use quinn_proto::{ConnectionError, ConnectionHandle, DatagramEvent, VarInt};
use rustc_hash::FxHashMap;

pub(crate) use conn::{Connecting, Connection};
pub(crate) use stream::{RecvStream, SendStream, StreamError};

use conn::Conn;

/// Datagrams sent in one go before the rest is left to the driver (quinn's bound, for fairness).
const MAX_TRANSMITS: usize = 20;
/// Datagrams in one GSO send (quinn's bound).
const MAX_SEGMENTS: usize = 10;
/// Receive batches handled in one turn of the driver before it yields.
const RECV_BATCHES: usize = 16;
/// Datagrams (each up to 64 KiB with GRO) read by one receive call: quinn-udp prepares a header
/// for each, and a LAN peer's traffic arrives coalesced by GRO, so a few are enough.
const RECV_BUFS: usize = if BATCH_SIZE < 8 { BATCH_SIZE } else { 8 };

/// A QUIC endpoint: a UDP socket, quinn-proto's endpoint and the connections on it. Cloned
/// handles share it; it runs until [`Endpoint::close`] and its connections have drained, or every
/// handle is gone.
#[derive(Clone)]
pub(crate) struct Endpoint {
    shared: Arc<Shared>,
}

/// What an endpoint's handles, connections, streams and driver share.
pub(crate) struct Shared {
    state: Mutex<State>,
    socket: Arc<dyn AsyncUdpSocket>,
    /// Where the socket's readiness goes ([`SockWake`]), and the waker every read of the socket
    /// gives it.
    sock: Arc<SockWake>,
    sock_waker: Waker,
}

/// The waker every read of the socket registers, whoever reads it: readiness wakes the link
/// reader parked on the socket if there is one, else the driver.
///
/// A link's reader that finds its stream empty reads the socket itself ([`State::pump`]) and,
/// still finding nothing, parks: the next datagram then wakes it, not the driver, which would only
/// wake it in turn. That saves a task hop per datagram on each side of a request/response link.
/// A parked reader is woken once (it is unparked as it is woken) and reads the socket at its next
/// poll ([`SockWake::owed`]); one that goes away unparks itself and wakes the driver, which reads
/// the socket from then on. A reader reads the socket only if it may hold something: not when
/// the last read of it ended empty and no readiness came since.
pub(crate) struct SockWake {
    parked: Mutex<Option<Waker>>,
    /// A copy of [`State::driver`]: readiness may come while the endpoint's lock is held (a read
    /// of the socket under it), so this cannot take the waker from there.
    driver: Mutex<Option<Waker>>,
    /// The socket may hold datagrams nobody read: readiness came (to a parked reader or the
    /// driver), or the last read of it stopped before it was empty. Cleared as a read begins.
    pub(super) owed: AtomicBool,
}

impl SockWake {
    /// Parks `reader` on the socket (in place of any reader parked before).
    pub(super) fn park(&self, reader: &Waker) {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        if !parked.as_ref().is_some_and(|w| w.will_wake(reader)) {
            *parked = Some(reader.clone());
        }
    }

    /// A parked reader is going away: the driver reads the socket from now on.
    pub(super) fn unpark(&self) {
        self.parked.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.wake_driver();
    }

    fn wake_driver(&self) {
        if let Some(d) = &*self.driver.lock().unwrap_or_else(|p| p.into_inner()) {
            d.wake_by_ref();
        }
    }
}

impl std::task::Wake for SockWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.owed.store(true, Ordering::Release);
        let parked = self.parked.lock().unwrap_or_else(|p| p.into_inner()).take();
        match parked {
            Some(reader) => reader.wake(),
            None => self.wake_driver(),
        }
    }
}

/// The buffers datagrams are received into (taken out of [`State`] while a read uses them).
struct RecvBufs {
    buf: Vec<u8>,
    metas: [RecvMeta; RECV_BUFS],
    stride: usize,
}

/// Everything under the endpoint's lock.
pub(crate) struct State {
    ep: proto::Endpoint,
    conns: FxHashMap<u64, Conn>,
    /// quinn-proto's handles of the connections not yet drained (it reuses them afterwards, so
    /// handles given out are this map's own ids).
    ids: FxHashMap<ConnectionHandle, u64>,
    next_id: u64,
    incoming: VecDeque<proto::Incoming>,
    accepting: Option<Waker>,
    closed: bool,
    /// The driver's waker, and the deadline it sleeps to.
    driver: Option<Waker>,
    sleeps_to: Option<Instant>,
    /// Connections' timer deadlines (stale ones are skipped: each connection keeps its own).
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Connections with events to pass on or packets to send at the driver's next turn.
    dirty: Vec<u64>,
    /// A send found the socket full: the driver waits for room.
    blocked: bool,
    /// Wakers to wake once the lock is let go.
    wakes: Vec<Waker>,
    buf: Vec<u8>,
    segments: usize,
    recv: Option<Box<RecvBufs>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lets the lock go, then wakes what `state` collected: a waker may run anything, and none of it
/// may wait for this lock.
fn release(mut state: MutexGuard<'_, State>) {
    if state.wakes.is_empty() {
        return;
    }
    let wakes = std::mem::take(&mut state.wakes);
    drop(state);
    for w in wakes {
        w.wake();
    }
}

impl Endpoint {
    /// An endpoint on `socket`, serving if `server` is given; its driver runs on the current Tokio
    /// runtime.
    pub(crate) fn new(
        socket: Arc<dyn AsyncUdpSocket>,
        server: Option<proto::ServerConfig>,
    ) -> Endpoint {
        let segments = socket.max_transmit_segments().clamp(1, MAX_SEGMENTS);
        let config = proto::EndpointConfig::default();
        // Room for the largest datagram the endpoint accepts, times what GRO may coalesce.
        let stride = config.get_max_udp_payload_size().min(64 * 1024) as usize
            * socket.max_receive_segments().max(1);
        let ep = proto::Endpoint::new(
            Arc::new(config),
            server.map(Arc::new),
            !socket.may_fragment(),
            None,
        );
        let sock = Arc::new(SockWake {
            parked: Mutex::new(None),
            driver: Mutex::new(None),
            // Nobody read the socket yet.
            owed: AtomicBool::new(true),
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ep,
                conns: FxHashMap::default(),
                ids: FxHashMap::default(),
                next_id: 0,
                incoming: VecDeque::new(),
                accepting: None,
                closed: false,
                driver: None,
                sleeps_to: None,
                timers: BinaryHeap::new(),
                dirty: Vec::new(),
                blocked: false,
                wakes: Vec::new(),
                buf: Vec::with_capacity(2048),
                segments,
                recv: Some(Box::new(RecvBufs {
                    buf: vec![0u8; stride * RECV_BUFS],
                    metas: [RecvMeta::default(); RECV_BUFS],
                    stride,
                })),
            }),
            socket,
            sock: sock.clone(),
            sock_waker: Waker::from(sock),
        });
        tokio::spawn(drive(shared.clone()));
        Endpoint { shared }
    }

    /// Starts a connection to `addr`.
    pub(crate) fn connect(
        &self,
        config: proto::ClientConfig,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Connecting, proto::ConnectError> {
        let mut st = lock(&self.shared);
        if st.closed {
            return Err(proto::ConnectError::EndpointStopping);
        }
        let (ch, inner) = st.ep.connect(Instant::now(), config, addr, server_name)?;
        let id = st.insert(ch, inner);
        let conn = Connection::new_ref(&self.shared, &mut st, id);
        st.process(&self.shared, id);
        release(st);
        Ok(Connecting::new(conn))
    }

    /// The next connection attempt; `None` once the endpoint is closed.
    pub(crate) async fn accept(&self) -> Option<Incoming> {
        poll_fn(|cx| {
            let mut st = lock(&self.shared);
            if let Some(i) = st.incoming.pop_front() {
                return Poll::Ready(Some(Incoming {
                    shared: self.shared.clone(),
                    inner: Some(i),
                }));
            }
            if st.closed {
                return Poll::Ready(None);
            }
            st.accepting = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Closes every connection (`code`, `reason`) and takes no new ones.
    pub(crate) fn close(&self, code: VarInt, reason: &[u8]) {
        let mut st = lock(&self.shared);
        st.close_all(&self.shared, code, reason);
        release(st);
    }
}

/// A connection attempt not yet accepted or refused. Dropping it refuses it.
pub(crate) struct Incoming {
    shared: Arc<Shared>,
    inner: Option<proto::Incoming>,
}

impl Incoming {
    /// The peer's address.
    pub(crate) fn remote_address(&self) -> SocketAddr {
        self.inner
            .as_ref()
            .map(|i| i.remote_address())
            .expect("an Incoming is consumed only by itself")
    }

    /// Accepts it: the server's part of the handshake starts.
    pub(crate) fn accept(mut self) -> Result<Connecting, ConnectionError> {
        let incoming = self.inner.take().expect("not consumed");
        let mut st = lock(&self.shared);
        let mut buf = Vec::new();
        let r = st.ep.accept(incoming, Instant::now(), &mut buf, None);
        let conn = match r {
            Ok((ch, inner)) => {
                let id = st.insert(ch, inner);
                let conn = Connection::new_ref(&self.shared, &mut st, id);
                st.process(&self.shared, id);
                Ok(Connecting::new(conn))
            }
            Err(e) => {
                if let Some(t) = e.response {
                    send_now(&*self.shared.socket, &t, &buf);
                }
                Err(e.cause)
            }
        };
        release(st);
        conn
    }

    /// Refuses it (QUIC `CONNECTION_REFUSED`).
    pub(crate) fn refuse(mut self) {
        self.refuse_inner();
    }

    fn refuse_inner(&mut self) {
        if let Some(i) = self.inner.take() {
            lock(&self.shared).refuse(&*self.shared.socket, i);
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.refuse_inner();
    }
}

/// Puts connection `id` in the driver's dirty list, once.
fn mark_dirty(dirty: &mut Vec<u64>, c: &mut Conn, id: u64) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(id);
    }
}

/// Sends one datagram the endpoint made itself (a refusal, a stateless reset); a full socket
/// loses it, as the network could.
fn send_now(socket: &dyn AsyncUdpSocket, t: &proto::Transmit, buf: &[u8]) {
    let _ = socket.try_send(&udp_transmit(t, &buf[..t.size]));
}

fn udp_transmit<'a>(t: &proto::Transmit, contents: &'a [u8]) -> quinn::udp::Transmit<'a> {
    quinn::udp::Transmit {
        destination: t.destination,
        ecn: t.ecn.map(|e| match e {
            proto::EcnCodepoint::Ect0 => quinn::udp::EcnCodepoint::Ect0,
            proto::EcnCodepoint::Ect1 => quinn::udp::EcnCodepoint::Ect1,
            proto::EcnCodepoint::Ce => quinn::udp::EcnCodepoint::Ce,
        }),
        contents,
        segment_size: t.segment_size,
        src_ip: t.src_ip,
    }
}

impl State {
    fn insert(&mut self, ch: ConnectionHandle, inner: proto::Connection) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(ch, id);
        self.conns.insert(id, Conn::new(ch, inner));
        id
    }

    /// Passes on connection `id`'s events (to the endpoint, to whoever waits), sends its packets,
    /// and re-arms its timer; wakes the driver if that timer is now earlier than the driver's.
    fn process(&mut self, shared: &Shared, id: u64) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        while let Some(e) = c.inner.poll_endpoint_events() {
            let drained = e.is_drained();
            if let Some(back) = self.ep.handle_event(c.ch, e) {
                c.inner.handle_event(back);
            }
            if drained {
                self.ids.remove(&c.ch);
            }
        }
        c.events(&mut self.wakes);
        let more = c.transmit(now, &*shared.socket, &mut self.buf, self.segments);
        match more {
            conn::Sent::All => {}
            conn::Sent::More => self.dirty.push(id),
            conn::Sent::Blocked => self.blocked = true,
        }
        // The heap holds each connection's deadline or an earlier one: a deadline that moved
        // later (most do: each packet pushes the idle and loss timers on) stays as it was, and
        // when it comes the connection's real deadline is put back (`timers_due`).
        let deadline = c.inner.poll_timeout();
        let mut earlier = false;
        if let Some(d) = deadline {
            if c.timer.is_none_or(|t| d < t) {
                c.timer = Some(d);
                self.timers.push(Reverse((d, id)));
                earlier = self.sleeps_to.is_none_or(|s| d < s);
            }
        }
        if c.inner.is_drained() && c.refs == 0 {
            self.conns.remove(&id);
        }
        if earlier || !matches!(more, conn::Sent::All) {
            if let Some(w) = &self.driver {
                self.wakes.push(w.clone());
            }
        }
    }

    /// Refuses a connection attempt (QUIC `CONNECTION_REFUSED`).
    fn refuse(&mut self, socket: &dyn AsyncUdpSocket, i: proto::Incoming) {
        self.buf.clear();
        let t = self.ep.refuse(i, &mut self.buf);
        send_now(socket, &t, &self.buf);
    }

    fn close_all(&mut self, shared: &Shared, code: VarInt, reason: &[u8]) {
        self.closed = true;
        let reason = Bytes::copy_from_slice(reason);
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.close(code, reason.clone(), &mut self.wakes);
            }
            self.process(shared, id);
        }
        for i in std::mem::take(&mut self.incoming) {
            self.refuse(&*shared.socket, i);
        }
        if let Some(w) = self.accepting.take() {
            self.wakes.push(w);
        }
        if let Some(w) = &self.driver {
            self.wakes.push(w.clone());
        }
    }

    /// Handles one datagram received.
    fn datagram(&mut self, shared: &Shared, now: Instant, meta: &RecvMeta, data: BytesMut) {
        self.buf.clear();
        let ecn = meta.ecn.map(|e| match e {
            quinn::udp::EcnCodepoint::Ect0 => proto::EcnCodepoint::Ect0,
            quinn::udp::EcnCodepoint::Ect1 => proto::EcnCodepoint::Ect1,
            quinn::udp::EcnCodepoint::Ce => proto::EcnCodepoint::Ce,
        });
        match self
            .ep
            .handle(now, meta.addr, meta.dst_ip, ecn, data, &mut self.buf)
        {
            Some(DatagramEvent::ConnectionEvent(ch, e)) => {
                if let Some(&id) = self.ids.get(&ch) {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.inner.handle_event(e);
                        mark_dirty(&mut self.dirty, c, id);
                    }
                }
            }
            Some(DatagramEvent::NewConnection(i)) => {
                if self.closed {
                    self.refuse(&*shared.socket, i);
                } else {
                    self.incoming.push_back(i);
                    if let Some(w) = self.accepting.take() {
                        self.wakes.push(w);
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => send_now(&*shared.socket, &t, &self.buf),
            None => {}
        }
    }

    /// Reads what the socket has (at most [`RECV_BATCHES`] receive calls) and hands each datagram
    /// to its connection; the socket's readiness is registered for [`SockWake`]. Whether more may
    /// wait (the bound was reached, or a receive failed and is tried again later).
    fn pump(&mut self, shared: &Shared, now: Instant) -> bool {
        let Some(mut bufs) = self.recv.take() else {
            return false;
        };
        shared.sock.owed.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&shared.sock_waker);
        let RecvBufs { buf, metas, stride } = &mut *bufs;
        let stride = *stride;
        for _ in 0..RECV_BATCHES {
            let mut chunks = buf.chunks_mut(stride);
            let mut iovs: [IoSliceMut<'_>; RECV_BUFS] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            match shared.socket.poll_recv(&mut cx, &mut iovs, metas) {
                Poll::Ready(Ok(n)) => {
                    for (meta, buf) in metas.iter().zip(iovs.iter()).take(n) {
                        let mut data: BytesMut = buf[..meta.len].into();
                        let stride = if meta.stride == 0 {
                            meta.len
                        } else {
                            meta.stride
                        };
                        while data.len() > stride {
                            let one = data.split_to(stride);
                            self.datagram(shared, now, meta, one);
                        }
                        if !data.is_empty() {
                            self.datagram(shared, now, meta, data);
                        }
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Poll::Ready(Err(e)) => {
                    // Tried again at the driver's next turn, after the runtime's other tasks.
                    tracing::warn!(error = %e, "QUIC socket receive failed");
                    break;
                }
                Poll::Pending => {
                    self.recv = Some(bufs);
                    return false;
                }
            }
        }
        self.recv = Some(bufs);
        shared.sock.owed.store(true, Ordering::Release);
        true
    }

    /// Processes the connections marked dirty (their events, packets and timers); what that
    /// marks again is left for the driver's next turn.
    fn process_dirty(&mut self, shared: &Shared) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty {
            if let Some(c) = self.conns.get_mut(&id) {
                c.dirty = false;
            }
            self.process(shared, id);
        }
    }

    /// [`pump`](Self::pump) for a stream's reader, then what the datagrams made of the
    /// connections ([`process_dirty`](Self::process_dirty)); the driver is woken for what is left.
    pub(super) fn pump_for_reader(&mut self, shared: &Shared) {
        let more = self.pump(shared, Instant::now());
        self.process_dirty(shared);
        if more || !self.dirty.is_empty() {
            if let Some(w) = &self.driver {
                self.wakes.push(w.clone());
            }
        }
    }

    /// Fires the timers due by `now`.
    fn timers_due(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.timer != Some(at) {
                continue;
            }
            c.timer = None;
            match c.inner.poll_timeout() {
                Some(real) if real > now => {
                    // It moved later since it was put in: put in where it is now.
                    c.timer = Some(real);
                    self.timers.push(Reverse((real, id)));
                    continue;
                }
                Some(_) => c.inner.handle_timeout(now),
                None => {}
            }
            mark_dirty(&mut self.dirty, c, id);
        }
    }

    /// The earliest live timer.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if self.conns.get(&id).is_some_and(|c| c.timer == Some(at)) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }
}

/// The driver task of an endpoint (see the module docs).
async fn drive(shared: Arc<Shared>) {
    let socket = shared.socket.clone();
    let mut poller: Pin<Box<dyn UdpPoller>> = socket.clone().create_io_poller();
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed: Option<Instant> = None;
    poll_fn(|cx| {
        let mut st = lock(&shared);
        if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.driver = Some(cx.waker().clone());
            *shared.sock.driver.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(cx.waker().clone());
        }
        let now = Instant::now();
        let mut again = st.pump(&shared, now);
        if st.blocked && poller.as_mut().poll_writable(cx).is_ready() {
            st.blocked = false;
            let waiting: Vec<u64> = st
                .conns
                .iter()
                .filter(|(_, c)| c.has_pending())
                .map(|(id, _)| *id)
                .collect();
            st.dirty.extend(waiting);
        }
        st.timers_due(now);
        st.process_dirty(&shared);
        // What `process` asked of the driver is done now (or queued for the next turn).
        if !st.dirty.is_empty() {
            again = true;
        }
        // A send just found the socket full: wait for room (the next turn sends what waits).
        if st.blocked && poller.as_mut().poll_writable(cx).is_ready() {
            again = true;
        }
        st.wakes.retain(|w| !w.will_wake(cx.waker()));
        if Arc::strong_count(&shared) == 1 && !st.closed {
            // No handle, connection or stream is left: nothing will use the endpoint again.
            st.close_all(&shared, VarInt::from_u32(0), b"");
        }
        if st.closed && st.conns.values().all(|c| c.inner.is_drained()) {
            // Handles still held see their connection's error; nothing is left to drive.
            release(st);
            return Poll::Ready(());
        }
        let next = st.next_timer();
        st.sleeps_to = next;
        release(st);
        if let Some(at) = next {
            if armed != Some(at) {
                sleep.as_mut().reset(at.into());
                armed = Some(at);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                armed = None;
                again = true;
            }
        }
        if again {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
