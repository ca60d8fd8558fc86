//! The calling side of links: one per peer address, opened on first use, carrying every ask and
//! tell to that peer in order (`docs/protocol.md` §8).
//!
//! Why one ordered link rather than an HTTP/2 request per message: FIFO per sender→receiver pair
//! across tells and asks needs one ordered channel (HTTP/2 streams are independent, so a tell
//! pipelined on one stream could overtake or be overtaken by an ask on another), and a tell that
//! waits for its own response costs a round trip (10k tells/s). On a link a tell is a frame in a
//! buffer, an ask a frame whose reply comes back with its id.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use pulsing_core::{InboundHandler, Message, MessageStream, NodeId, PulsingError, RemoteTarget};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outbox::{LinkWriter, Outbox, Refused, Write};
use super::tcp::TcpDial;
use super::{
    envelope_size, frame_size, item_cost, too_large, GONE_CHECK_TIMEOUT, STREAM_ITEMS,
    STREAM_WINDOW,
};
use crate::client::{maybe_delivered, not_sent};
use crate::codec::link::{self as frames, LinkDecoder, LinkFrame};
use crate::codec::{Envelope, WireError};
use crate::config::HttpConfig;
use crate::protocol;
use crate::security::{handshake_error, is_tls_refusal, TlsSlot};

/// Items of a streamed reply between the link's reader and the task feeding the consumer.
enum StreamEvent {
    Item(Envelope),
    End,
    Fail(WireError),
}

/// Who waits for frames carrying an ask's id.
enum Waiter {
    Reply(oneshot::Sender<Result<Message, PulsingError>>),
    Stream(mpsc::UnboundedSender<StreamEvent>),
}

/// One open link.
pub(crate) struct Link {
    addr: SocketAddr,
    node: NodeId,
    /// The largest message the peer reads ([`envelope_size`]).
    max_message: usize,
    out: Outbox,
    pending: Mutex<FxHashMap<u64, Waiter>>,
    next_id: AtomicU64,
    /// Calls started on it; the keep-alive task closes a link that saw none for the idle timeout.
    calls: AtomicU64,
    pong: Notify,
    /// Set (with the reason to give) to check the link with a PING now: the peer was declared gone.
    check: Notify,
    gone: Mutex<Option<String>>,
    closed: CancellationToken,
    /// Tells dropped unwritten when the peer said `bye` (dead letters, counted when the link ends).
    dropped: AtomicU64,
    /// The peer said `bye`: the link only finishes what it had read; new calls open a new link
    /// (to whatever serves the address next: a restarted node, or nothing).
    said_bye: AtomicBool,
}

impl Link {
    /// Closes the link: every call waiting on it fails with `NodeUnreachable` (may have been
    /// delivered) giving `why`. Returns the tells dropped unwritten.
    fn close(&self, why: &str) -> u64 {
        let lost = self.out.close(why.to_owned());
        self.closed.cancel();
        let waiters: Vec<Waiter> = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.drain().map(|(_, w)| w).collect()
        };
        for w in waiters {
            match w {
                Waiter::Reply(tx) => {
                    let _ = tx.send(Err(maybe_delivered(self.addr, why)));
                }
                Waiter::Stream(tx) => {
                    let _ = tx.send(StreamEvent::Fail(WireError::from_error(
                        &PulsingError::StreamTruncated(format!(
                            "the link to {} closed mid-stream: {why}",
                            self.addr
                        )),
                    )));
                }
            }
        }
        lost
    }

    fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    fn error(&self, refused: Refused, deadline: Instant, what: &str) -> PulsingError {
        match refused {
            Refused::Closed(why) => not_sent(self.addr, why),
            Refused::Full => PulsingError::MailboxFull(format!(
                "the link to {} stayed full for {:?}; the {what} was not sent",
                self.addr,
                deadline.saturating_duration_since(Instant::now())
            )),
        }
    }

    fn unregister(&self, id: u64) -> Option<Waiter> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }
}

/// Removes an ask from the link and tells the peer to skip it, unless disarmed (its reply came).
struct AskGuard<'a> {
    link: &'a Link,
    id: u64,
    armed: bool,
}

impl Drop for AskGuard<'_> {
    fn drop(&mut self) {
        if self.armed && self.link.unregister(self.id).is_some() {
            let id = self.id;
            let _ = self
                .link
                .out
                .push(Write::Batched, |b| frames::put_cancel(b, id));
        }
    }
}

/// The link of one peer address, and the lock held while opening it.
#[derive(Default)]
struct Slot {
    link: Mutex<Option<Arc<Link>>>,
    opening: tokio::sync::Mutex<()>,
}

impl Slot {
    fn live(&self) -> Option<Arc<Link>> {
        self.link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|l| !l.is_closed() && !l.said_bye.load(Ordering::Acquire))
    }
}

/// The reading half of a link's byte stream.
pub type LinkReader = Box<dyn AsyncRead + Send + Unpin>;

/// A future a [`Dial`] returns.
pub type Dialing<'a> = Pin<
    Box<dyn Future<Output = Result<(LinkReader, Box<dyn LinkWriter>), PulsingError>> + Send + 'a>,
>;

/// Opens the byte stream of a new link to a peer: a TCP connection, a QUIC stream.
///
/// Errors are the transport's: [`PulsingError::NodeUnreachable`] with
/// [`Delivery::NotDelivered`](pulsing_core::Delivery::NotDelivered) when nothing could be sent.
/// [`Links`] then sends the preface and reads the peer's hello over it, as for any link.
pub trait Dial: Send + Sync + 'static {
    /// Opens a stream to `addr` by `by`.
    fn dial(&self, addr: SocketAddr, by: Instant) -> Dialing<'_>;
}

/// Removes a slot that got no link from the pool when dropped armed (its opening failed or was
/// abandoned).
struct UnusedSlot<'a> {
    slots: &'a Mutex<FxHashMap<SocketAddr, Arc<Slot>>>,
    addr: SocketAddr,
    slot: &'a Arc<Slot>,
    armed: bool,
}

impl Drop for UnusedSlot<'_> {
    fn drop(&mut self) {
        if !self.armed || self.slot.live().is_some() {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots
            .get(&self.addr)
            .is_some_and(|s| Arc::ptr_eq(s, self.slot))
        {
            slots.remove(&self.addr);
        }
    }
}

/// Every link of one transport: one per peer address, opened on first use through its [`Dial`].
pub struct Links {
    config: HttpConfig,
    dial: Box<dyn Dial>,
    slots: Arc<Mutex<FxHashMap<SocketAddr, Arc<Slot>>>>,
    shutdown: CancellationToken,
    /// The system, for dead letters (set when the transport serves).
    handler: OnceLock<Arc<dyn InboundHandler>>,
}

impl Links {
    /// Links over TCP (the HTTP transport's own), with `config`'s limits and keep-alives, over
    /// TLS once `tls` is set.
    pub(crate) fn tcp(config: HttpConfig, shutdown: CancellationToken, tls: TlsSlot) -> Links {
        let dial = TcpDial {
            connect_timeout: config.connect_timeout,
            tls_handshake_timeout: config.client_handshake_bound(),
            tls,
        };
        Links::new(config, Box::new(dial), shutdown)
    }

    /// Links opened through `dial`, with `config`'s limits, keep-alives and link settings; calls
    /// fail with [`PulsingError::SystemShutdown`] once `shutdown` is cancelled.
    pub fn new(config: HttpConfig, dial: Box<dyn Dial>, shutdown: CancellationToken) -> Links {
        Links {
            config,
            dial,
            slots: Arc::default(),
            shutdown,
            handler: OnceLock::new(),
        }
    }

    /// The system to report dead letters to (the transport's inbound handler).
    pub fn set_handler(&self, handler: Arc<dyn InboundHandler>) {
        let _ = self.handler.set(handler);
    }

    /// Peer addresses with a slot in the pool (live links, or links being opened).
    pub fn pooled(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Closes every link (the transport shuts down).
    pub fn clear(&self) {
        let slots: Vec<Arc<Slot>> = {
            let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            s.drain().map(|(_, slot)| slot).collect()
        };
        for slot in slots {
            if let Some(link) = slot.live() {
                link.close("this node is shutting down");
            }
        }
    }

    /// Checks the link to `addr` with a PING now; if unanswered within [`GONE_CHECK_TIMEOUT`] it
    /// closes, failing its calls with `reason`. A peer that answers keeps its link.
    pub fn peer_gone(&self, addr: SocketAddr, reason: &str) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
            .cloned();
        if let Some(link) = slot.and_then(|s| s.live()) {
            *link.gone.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
            link.check.notify_one();
        }
    }

    fn slot(&self, addr: SocketAddr) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr)
            .or_default()
            .clone()
    }

    /// The live link to `addr`, opened if needed (one opener at a time), by `deadline`.
    ///
    /// Opening is boxed: its state (the dial, the hello, their timers) would otherwise be in the
    /// future of every call, which the transports box in turn. A QUIC tell's future was 1,224
    /// bytes with it, past the 1,032 that glibc serves from its per-thread cache, so each call's
    /// allocation and free took malloc's slow path (~0.7k instructions per tell).
    async fn link(&self, addr: SocketAddr, deadline: Instant) -> Result<Arc<Link>, PulsingError> {
        if self.shutdown.is_cancelled() {
            return Err(PulsingError::SystemShutdown);
        }
        if let Some(link) = self.slot(addr).live() {
            return Ok(link);
        }
        Box::pin(self.open_or_wait(addr, deadline)).await
    }

    /// [`link`](Self::link) when the pool has no live link to `addr`: opens one, or waits for the
    /// caller opening it.
    async fn open_or_wait(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Arc<Link>, PulsingError> {
        loop {
            let slot = self.slot(addr);
            if let Some(link) = slot.live() {
                return Ok(link);
            }
            let _opening = tokio::time::timeout_at(deadline, slot.opening.lock())
                .await
                .map_err(|_| late(addr))?;
            if !self.holds(addr, &slot) {
                // Its link closed and the slot left the pool while we waited: use the pool's.
                continue;
            }
            if let Some(link) = slot.live() {
                return Ok(link);
            }
            // Keeps no slot for a peer we could not reach, or whose opening was abandoned (the
            // caller dropped): the pool holds live peers only.
            let mut unused = UnusedSlot {
                slots: &self.slots,
                addr,
                slot: &slot,
                armed: true,
            };
            let link = self.open(addr, deadline).await?;
            *slot.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link.clone());
            unused.armed = false;
            return Ok(link);
        }
    }

    /// Whether `slot` is still the pool's slot for `addr`.
    fn holds(&self, addr: SocketAddr, slot: &Arc<Slot>) -> bool {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    /// Opens the link's stream ([`Dial`]), sends the preface and this node's hello, reads the
    /// peer's hello, and starts the link's tasks.
    ///
    /// The dial is bounded by `deadline` (and its own bounds, e.g. the connect timeout); the hello,
    /// which the peer's transport sends as it would answer a ping, by the keep-alive timeout (the
    /// connect timeout when keep-alives are off). Nothing of a call is sent before the hello came.
    async fn open(&self, addr: SocketAddr, deadline: Instant) -> Result<Arc<Link>, PulsingError> {
        let config = &self.config;
        let (mut rd, wr) = self.dial.dial(addr, deadline).await?;
        let max = config.max_message_size + super::FRAME_OVERHEAD;
        let mut decoder = LinkDecoder::new(max);
        let mut opening = frames::LINK_PREFACE.to_vec();
        let me = self.handler.get().map(|h| h.node_id());
        frames::put_hello(&mut opening, me, Some(config.max_message_size as u64));
        let hello = async {
            wr.write_all(&opening).await?;
            loop {
                if let Some(frame) = decoder
                    .next_frame()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
                {
                    return Ok::<_, std::io::Error>(frame);
                }
                if rd.read_buf(&mut decoder.buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        };
        let hello_bound = if config.keepalive_interval.is_zero() {
            config.connect_timeout
        } else {
            config.keepalive_timeout
        };
        let by = (Instant::now() + hello_bound).min(deadline);
        let (node, max_message) = match tokio::time::timeout_at(by, hello).await {
            Ok(Ok(LinkFrame::Hello {
                node: Some(node),
                max_message,
            })) => (node, max_message),
            Ok(Ok(other)) => {
                return Err(not_sent(
                    addr,
                    format!("the peer did not open the link with hello: {other:?}"),
                ))
            }
            Ok(Err(e)) if is_tls_refusal(&e) => return Err(handshake_error(addr, &e)),
            Ok(Err(e)) => {
                return Err(not_sent(
                    addr,
                    format!(
                        "the peer did not open a link (is it a Pulsing node? a node with a \
                         cluster secret closes links without TLS): {e}"
                    ),
                ))
            }
            Err(_) if by < deadline => {
                return Err(not_sent(
                    addr,
                    format!(
                        "the peer accepted the connection but did not answer it within \
                         {hello_bound:?} (the keep-alive timeout): it may be stopped or hung"
                    ),
                ))
            }
            Err(_) => return Err(late(addr)),
        };
        let max_message =
            max_message.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let link = Arc::new(Link {
            addr,
            node,
            max_message,
            out: Outbox::new(wr, self.config.link_buffer),
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            calls: AtomicU64::new(0),
            pong: Notify::new(),
            check: Notify::new(),
            gone: Mutex::new(None),
            closed: CancellationToken::new(),
            dropped: AtomicU64::new(0),
            said_bye: AtomicBool::new(false),
        });
        let tasks = LinkTasks {
            link: link.clone(),
            slots: Arc::downgrade(&self.slots),
            handler: self.handler.get().cloned(),
            shutdown: self.shutdown.clone(),
            interval: self.config.keepalive_interval,
            timeout: self.config.keepalive_timeout,
            idle: self.config.link_idle_timeout,
        };
        tokio::spawn(tasks.run(rd, decoder));
        Ok(link)
    }

    /// Checks `target` against the link and the message against the peer's frame limit.
    fn check(
        link: &Link,
        target: &RemoteTarget,
        msg: Message,
    ) -> Result<(String, Bytes), PulsingError> {
        if let Some(wanted) = target.node {
            if wanted != link.node {
                return Err(protocol::node_mismatch(wanted, link.node));
            }
        }
        let (msg_type, payload) = msg.into_single().map_err(|_| {
            PulsingError::BadMessage(
                "a streamed request cannot be sent to another node; send single messages".into(),
            )
        })?;
        let size = envelope_size(&msg_type, payload.len());
        if size > link.max_message {
            return Err(too_large(
                size,
                link.max_message,
                &format!("{}'s", target.addr),
            ));
        }
        Ok((msg_type, payload))
    }

    /// Sends an ask on the link to `target.addr` and waits for its reply, at most `timeout`.
    pub async fn ask(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError> {
        self.ask_or_back(target, msg, timeout)
            .await
            .map_err(Unsent::into_error)
    }

    /// [`ask`](Self::ask), giving the message back if the link could not be opened (so a caller
    /// with another way to the peer can send it there, without a copy kept aside for that).
    pub async fn ask_or_back(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, Unsent<Message>> {
        // The one timer of the call: everything below, connect included, ends by it.
        let deadline = Instant::now() + timeout;
        let call = async {
            let link = match self.link(target.addr, deadline).await {
                Ok(link) => link,
                // Opening the link used up the call's time: that is the call's timeout.
                Err(_) if Instant::now() >= deadline => {
                    return Err(Unsent::Failed(PulsingError::Timeout(timeout)))
                }
                Err(e) => return Err(Unsent::Back(Box::new((e, msg)))),
            };
            link.calls.fetch_add(1, Ordering::Relaxed);
            let (msg_type, payload) = Links::check(&link, target, msg)?;
            let id = link.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            let others = {
                let mut pending = link.pending.lock().unwrap_or_else(|p| p.into_inner());
                pending.insert(id, Waiter::Reply(tx));
                pending.len() > 1
            };
            // Alone on the link, the ask is written at once; among others in flight it goes with
            // the writer task's next batch (one write for many asks, not one each).
            let how = if others { Write::Batched } else { Write::Now };
            let mut guard = AskGuard {
                link: &link,
                id,
                armed: true,
            };
            let size = frame_size(target.name.as_str(), &msg_type, payload.len());
            let timeout_ms = u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let name = target.name.as_str();
            if let Err(r) = link
                .out
                .push_bounded(how, size, deadline, false, |b| {
                    frames::put_ask(b, id, name, Some(timeout_ms), &msg_type, &payload)
                })
                .await
            {
                guard.armed = false;
                link.unregister(id);
                return Err(link.error(r, deadline, "ask").into());
            }
            let result = rx.await;
            guard.armed = false;
            match result {
                Ok(r) => r.map_err(Unsent::Failed),
                Err(_) => Err(maybe_delivered(
                    target.addr,
                    link.out
                        .closed()
                        .unwrap_or_else(|| "the link closed".into()),
                )
                .into()),
            }
        };
        tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or_else(|_| Err(PulsingError::Timeout(timeout).into()))
    }

    /// Queues a tell on the link to `target.addr`, waiting for room (and for the link to open) at
    /// most `wait`.
    pub async fn tell(
        &self,
        target: &RemoteTarget,
        msg: Message,
        wait: Duration,
    ) -> Result<(), PulsingError> {
        self.tell_or_back(target, msg, wait)
            .await
            .map_err(Unsent::into_error)
    }

    /// [`tell`](Self::tell), giving the message back if the link could not be opened.
    pub async fn tell_or_back(
        &self,
        target: &RemoteTarget,
        msg: Message,
        wait: Duration,
    ) -> Result<(), Unsent<Message>> {
        let deadline = Instant::now() + wait;
        let link = match self.link(target.addr, deadline).await {
            Ok(link) => link,
            Err(e) => return Err(Unsent::Back(Box::new((e, msg)))),
        };
        link.calls.fetch_add(1, Ordering::Relaxed);
        let (msg_type, payload) = Links::check(&link, target, msg)?;
        let size = frame_size(target.name.as_str(), &msg_type, payload.len());
        let name = target.name.as_str();
        link.out
            .push_bounded(Write::Batched, size, deadline, true, |b| {
                frames::put_tell(b, name, &msg_type, &payload)
            })
            .await
            .map_err(|r| link.error(r, deadline, "tell").into())
    }
}

/// Why a call on a link did not end with its answer, and, if it was never sent because the link
/// could not be opened, the message back.
#[derive(Debug)]
pub enum Unsent<M> {
    /// The link could not be opened (nothing was sent): the error and the message (boxed: this
    /// path is rare, and the calls' results stay small).
    Back(Box<(PulsingError, M)>),
    /// Any other failure.
    Failed(PulsingError),
}

impl<M> Unsent<M> {
    /// The error, the message (if any) dropped.
    pub fn into_error(self) -> PulsingError {
        match self {
            Unsent::Back(back) => back.0,
            Unsent::Failed(e) => e,
        }
    }
}

impl<M> From<PulsingError> for Unsent<M> {
    fn from(e: PulsingError) -> Self {
        Unsent::Failed(e)
    }
}

/// The link to `addr` could not be opened within the call's time (an ask's own timer usually ends
/// the call first, as [`PulsingError::Timeout`]).
pub(super) fn late(addr: SocketAddr) -> PulsingError {
    not_sent(addr, "the link could not be opened within the call's time")
}

/// The tasks of one link: reading frames, and keep-alives.
struct LinkTasks {
    link: Arc<Link>,
    slots: Weak<Mutex<FxHashMap<SocketAddr, Arc<Slot>>>>,
    handler: Option<Arc<dyn InboundHandler>>,
    shutdown: CancellationToken,
    interval: Duration,
    timeout: Duration,
    idle: Duration,
}

/// How long a link is still read after its peer said `bye`, for the replies of the asks the peer
/// had read (a node shutting down answers them for at most a second, then closes its links).
/// Then, or when the peer closes the link first, the link closes: what is still waiting on it fails
/// as may have been delivered.
const BYE_DRAIN: Duration = Duration::from_secs(2);

impl LinkTasks {
    /// Runs the link until it breaks, the peer stops answering or this node shuts down; then
    /// closes it and leaves the pool.
    ///
    /// After a `bye` the outbox is closed, which ends the writer (and the keep-alives' pings),
    /// but the link is still read until the peer closes it, at most [`BYE_DRAIN`] (and no longer
    /// than until `shutdown`).
    async fn run(self, rd: LinkReader, decoder: LinkDecoder) {
        let link = &self.link;
        let read = read_frames(link, rd, decoder);
        tokio::pin!(read);
        // `read_on`: the reader has not ended, and may be worth reading on after a `bye`.
        let (mut why, read_on) = tokio::select! {
            why = &mut read => (why, false),
            why = link.out.writer() => (why, true),
            why = keep_alive(link, self.interval, self.timeout, self.idle) => (why, true),
            _ = self.shutdown.cancelled() => ("this node is shutting down".to_owned(), false),
        };
        if read_on && link.said_bye.load(Ordering::Acquire) && !link.is_closed() {
            why = tokio::select! {
                read = tokio::time::timeout(BYE_DRAIN, &mut read) => match read {
                    Ok(read) => format!("{why}; {read}"),
                    Err(_) => format!("{why}; it did not close the link within {BYE_DRAIN:?}"),
                },
                _ = self.shutdown.cancelled() => "this node is shutting down".to_owned(),
            };
        }
        tracing::debug!(addr = %link.addr, %why, "link closed");
        let lost = link.close(&why) + link.dropped.load(Ordering::Relaxed);
        if lost > 0 {
            let err = not_sent(link.addr, why.clone());
            match &self.handler {
                Some(h) => h.dead_letter(&link.addr.to_string(), lost, &err),
                None => tracing::debug!(addr = %link.addr, lost, "dead letters"),
            }
        }
        // Leave the pool: the next call opens a fresh link.
        if let Some(slots) = self.slots.upgrade() {
            let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
            let ours = slots.get(&link.addr).cloned().filter(|s| {
                s.link
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, link))
            });
            if let Some(slot) = ours {
                // Someone opening a new link in this slot keeps it (and replaces the link);
                // otherwise it leaves the pool. Either way one slot per peer, so one link.
                match slot.opening.try_lock() {
                    Ok(_idle) => {
                        slots.remove(&link.addr);
                    }
                    Err(_) => *slot.link.lock().unwrap_or_else(|p| p.into_inner()) = None,
                }
            }
        }
    }
}

/// Reads and dispatches frames until the link breaks; returns why.
async fn read_frames(link: &Arc<Link>, mut rd: LinkReader, mut dec: LinkDecoder) -> String {
    loop {
        let mut delivered = false;
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    delivered = true;
                    if let Err(why) = dispatch(link, frame) {
                        return why;
                    }
                }
                Ok(None) => break,
                Err(e) => return format!("the peer sent a bad link frame: {e}"),
            }
        }
        if delivered {
            super::share_woken();
        }
        match rd.read_buf(&mut dec.buf).await {
            Ok(0) => return "the peer closed the link".into(),
            Ok(_) => {}
            Err(e) => return format!("reading the link failed: {e}"),
        }
    }
}

fn dispatch(link: &Arc<Link>, frame: LinkFrame) -> Result<(), String> {
    match frame {
        LinkFrame::Reply { id, result } => {
            if let Some(Waiter::Reply(tx)) = link.unregister(id) {
                let _ = tx.send(match result {
                    Ok(env) => Ok(Message::single(env.msg_type, env.payload)),
                    Err(e) => Err(e.into_error()),
                });
            }
        }
        LinkFrame::Stream { id } => {
            let mut pending = link.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(Waiter::Reply(tx)) = pending.remove(&id) {
                let (events, rx) = mpsc::unbounded_channel();
                pending.insert(id, Waiter::Stream(events));
                drop(pending);
                let (sender, stream) = MessageStream::channel(STREAM_ITEMS);
                tokio::spawn(feed_stream(link.clone(), id, rx, sender));
                let _ = tx.send(Ok(Message::stream(stream)));
            }
        }
        LinkFrame::Item { id, msg } => send_event(link, id, StreamEvent::Item(msg), false),
        LinkFrame::End { id } => send_event(link, id, StreamEvent::End, true),
        LinkFrame::Fail { id, error } => send_event(link, id, StreamEvent::Fail(error), true),
        LinkFrame::Pong => link.pong.notify_waiters(),
        LinkFrame::Bye { id: last } => {
            // No new call on this link; asks the peer never read fail now as not delivered. The
            // outbox closes (ending the writer), but the link is still read for the replies of
            // the asks up to `last` ([`LinkTasks::run`], at most [`BYE_DRAIN`]).
            link.said_bye.store(true, Ordering::Release);
            let lost = link.out.close(format!("{} is shutting down", link.addr));
            let unread: Vec<Waiter> = {
                let mut pending = link.pending.lock().unwrap_or_else(|p| p.into_inner());
                let ids: Vec<u64> = pending.keys().copied().filter(|id| *id > last).collect();
                ids.into_iter()
                    .filter_map(|id| pending.remove(&id))
                    .collect()
            };
            for w in unread {
                if let Waiter::Reply(tx) = w {
                    let _ = tx.send(Err(not_sent(
                        link.addr,
                        "the node is shutting down (it stopped reading before this ask)",
                    )));
                }
            }
            link.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        other => {
            return Err(format!(
                "the peer sent a frame a server may not send: {other:?}"
            ))
        }
    }
    Ok(())
}

fn send_event(link: &Link, id: u64, event: StreamEvent, last: bool) {
    let mut pending = link.pending.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(Waiter::Stream(tx)) = pending.get(&id) {
        let _ = tx.send(event);
        if last {
            pending.remove(&id);
        }
    }
}

/// Feeds a streamed reply's items to its consumer, granting the peer more as they are taken; a
/// consumer that goes away cancels the stream at the peer.
async fn feed_stream(
    link: Arc<Link>,
    id: u64,
    mut events: mpsc::UnboundedReceiver<StreamEvent>,
    sender: pulsing_core::StreamSender,
) {
    // Bytes the consumer took and the peer has not been granted again yet.
    let mut taken = 0u32;
    while let Some(event) = events.recv().await {
        match event {
            StreamEvent::Item(env) => {
                let cost = item_cost(&env.msg_type, env.payload.len());
                if sender
                    .send(Message::single(env.msg_type, env.payload))
                    .await
                    .is_err()
                {
                    if link.unregister(id).is_some() {
                        let _ = link.out.push(Write::Batched, |b| frames::put_cancel(b, id));
                    }
                    return;
                }
                taken = taken.saturating_add(cost);
                if taken >= STREAM_WINDOW / 4 {
                    let n = std::mem::take(&mut taken);
                    let _ = link.out.push(Write::Now, |b| frames::put_credit(b, id, n));
                }
            }
            StreamEvent::End => return sender.end().await,
            StreamEvent::Fail(e) => return sender.fail(e.into_error()).await,
        }
    }
    // The link closed without the stream's end.
    sender
        .fail(PulsingError::StreamTruncated(format!(
            "the link to {} closed mid-stream",
            link.addr
        )))
        .await;
}

/// PINGs the peer `interval` after each answer (and at once when the peer is reported gone);
/// returns why the link should close: a PING unanswered within `timeout` (within
/// [`GONE_CHECK_TIMEOUT`] for a gone peer), or no call for `idle`.
async fn keep_alive(link: &Link, interval: Duration, timeout: Duration, idle: Duration) -> String {
    let tick = if interval.is_zero() {
        Duration::from_secs(1)
    } else {
        interval
    };
    let (mut last_calls, mut quiet) = (u64::MAX, Duration::ZERO);
    loop {
        let checked = tokio::select! {
            _ = tokio::time::sleep(tick) => false,
            _ = link.check.notified() => true,
        };
        let calls = link.calls.load(Ordering::Relaxed);
        let busy = !link
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if calls != last_calls || busy {
            (last_calls, quiet) = (calls, Duration::ZERO);
        } else {
            quiet += tick;
            if !idle.is_zero() && quiet >= idle {
                return format!("closed after {idle:?} without calls");
            }
        }
        if interval.is_zero() && !checked {
            continue;
        }
        let bound = if checked {
            timeout.min(GONE_CHECK_TIMEOUT)
        } else {
            timeout
        };
        let pong = link.pong.notified();
        tokio::pin!(pong);
        pong.as_mut().enable();
        if let Err(Refused::Closed(why)) = link.out.push(Write::Now, frames::put_ping) {
            return why;
        }
        if tokio::time::timeout(bound, pong).await.is_err() {
            if let Some(reason) = link.gone.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return reason;
            }
            return format!("the peer stopped answering keep-alives (no answer within {bound:?})");
        }
    }
}
