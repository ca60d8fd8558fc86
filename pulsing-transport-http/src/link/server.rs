//! The serving side of a link: messages from one link reach each actor's mailbox in the order they
//! were sent, while keep-alives and credit are answered at once.
//!
//! The reader hands each message to the system in order. Usually the mailbox has room and that is
//! done at once, on the reader. When it has not (the mailbox is full: the system waits for room at
//! most its mailbox wait bound), that message and every later one **to the same actor** go to a
//! delivery task of that actor's, which hands them over in order; messages to other actors, and
//! `ping`, `credit` and `cancel`, go on. (FIFO is per sender→receiver pair: a full mailbox holds back
//! its own actor's messages, not the link.) What waits in these backlogs is bounded in bytes
//! ([`HttpConfig::link_buffer`]); when that is full the reader stops reading, and backpressure
//! reaches the sender as a full link buffer.
//!
//! A tell that cannot be queued is a dead letter. An ask is queued with a [`ReplySink`]: whoever
//! answers it (the actor's task) writes the reply with its id at once, so no task waits for each
//! reply. A `cancel` marks the ask given up, which drops the reply the actor would give (a mailbox
//! that has not reached the ask skips it), or skips the ask if it is still in a backlog. A streamed
//! reply sends items from a task of its own as the client grants credit. When the link ends, every
//! ask still answered is marked given up and every task it started is aborted.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use pulsing_core::{InboundHandler, Message, MessageStream, PulsingError, ReplySink};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::client::LinkReader;
use super::outbox::{LinkWriter, Outbox, Write};
use super::{envelope_size, item_cost, too_large, STREAM_WINDOW};
use crate::codec::link::{self as frames, LinkDecoder, LinkFrame, LINK_PREFACE};
use crate::codec::WireError;
use crate::config::HttpConfig;

/// An ask handed to the system and not answered yet.
struct Answering {
    /// Set when the caller gave up or the link ended: a mailbox that has not reached the ask skips
    /// it, and its reply is dropped.
    cancelled: Arc<AtomicBool>,
    /// The task writing its streamed reply, once the reply streams.
    task: Option<AbortHandle>,
    /// The credit of that stream.
    credit: Option<Arc<Semaphore>>,
}

impl Answering {
    /// The caller gave up or the link ended: the ask is skipped if not reached yet, and its reply
    /// (a stream's items too) dropped.
    fn cancel(self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(task) = self.task {
            task.abort();
        }
    }
}

/// What the tasks of one served link share.
struct Served {
    out: Outbox,
    handler: Arc<dyn InboundHandler>,
    asks: Mutex<HashMap<u64, Answering>>,
    /// The largest message this node accepts.
    max_in: usize,
    /// The largest message the client accepts (its hello; this node's own limit until then).
    max_out: AtomicUsize,
    /// The id of the last ask handed to the system (for `bye`).
    last_ask: AtomicU64,
    /// The delivery backlogs, by actor: present while that actor's delivery task has messages.
    backlogs: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
    /// Bytes the backlogs may still take.
    room: Semaphore,
    /// Asks cancelled while some backlog was not empty: skipped if still in one.
    cancelled: Mutex<HashSet<u64>>,
    /// The delivery tasks (aborted when the link ends).
    deliveries: Mutex<Vec<AbortHandle>>,
    /// The runtime serving the link, for the tasks of streamed replies (whose first answer may
    /// come on a thread of no runtime's, e.g. the Python module's).
    rt: tokio::runtime::Handle,
}

impl Served {
    fn asks(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Answering>> {
        self.asks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backlogs(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Queued>>> {
        self.backlogs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cancelled(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.cancelled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reply_error(&self, id: u64, err: &PulsingError) {
        let e = WireError::from_error(err);
        let _ = self
            .out
            .push(Write::Now, |b| frames::put_reply_error(b, id, &e));
    }
}

/// A message waiting in the delivery backlog, and the backlog bytes it holds.
enum Queued {
    /// Handed over already, waiting for room in the mailbox.
    Started(Delivery, u32),
    /// Not handed over yet.
    Frame(LinkFrame, u32),
}

type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves a link on a TCP connection whose first bytes are [`LINK_PREFACE`] (read here).
pub(crate) async fn serve_tcp_link(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    config: HttpConfig,
    shutdown: CancellationToken,
) {
    let (rd, wr) = stream.into_split();
    serve_link(Box::new(rd), Box::new(wr), peer, handler, config, shutdown).await;
}

/// Serves a link on a byte stream (a TCP connection, a QUIC stream) whose first bytes are
/// [`LINK_PREFACE`] (read here, within the header read timeout), until it ends or `shutdown` is
/// cancelled. Messages go to `handler`; `peer` is for logs and [`InboundHandler::bad_link`].
pub async fn serve_link(
    mut rd: LinkReader,
    wr: Box<dyn LinkWriter>,
    peer: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    config: HttpConfig,
    shutdown: CancellationToken,
) {
    let mut preface = [0u8; LINK_PREFACE.len()];
    let got = tokio::time::timeout(config.header_read_timeout, rd.read_exact(&mut preface)).await;
    if !matches!(got, Ok(Ok(_))) || &preface != LINK_PREFACE {
        return;
    }
    let served = Arc::new(Served {
        // Replies do not wait for room; the limit only matters to bounded senders, of which a
        // server has none.
        out: Outbox::new(wr, config.link_buffer),
        handler,
        asks: Mutex::default(),
        max_in: config.max_message_size,
        max_out: AtomicUsize::new(config.max_message_size),
        last_ask: AtomicU64::new(0),
        backlogs: Mutex::default(),
        room: Semaphore::new(config.link_buffer),
        cancelled: Mutex::default(),
        deliveries: Mutex::default(),
        rt: tokio::runtime::Handle::current(),
    });
    let node = served.handler.node_id();
    let _ = served.out.push(Write::Now, |b| {
        frames::put_hello(b, Some(node), Some(config.max_message_size as u64));
    });
    let dec = LinkDecoder::new(config.max_message_size + super::FRAME_OVERHEAD);
    let why = tokio::select! {
        why = read(&served, peer, rd, dec, config.link_buffer) => why,
        why = served.out.writer() => why,
        _ = shutdown.cancelled() => {
            // The system drained its actors before shutting the transport down: say which asks
            // were handed over (those after were not delivered), give the replies time to be
            // written, then close.
            let last = served.last_ask.load(Ordering::Relaxed);
            let _ = served.out.push(Write::Now, |b| frames::put_bye(b, last));
            tokio::select! {
                _ = served.out.writer() => {}
                _ = drain(&served) => {}
            }
            "this node is shutting down".to_owned()
        }
    };
    tracing::debug!(%peer, %why, "served link ended");
    served.out.close(why);
    for (_, a) in served.asks().drain() {
        a.cancel();
    }
    for d in served
        .deliveries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        d.abort();
    }
}

/// Reads frames until the link breaks or breaks the protocol; returns why.
async fn read(
    served: &Arc<Served>,
    peer: SocketAddr,
    mut rd: LinkReader,
    mut dec: LinkDecoder,
    cap: usize,
) -> String {
    let handler = &served.handler;
    loop {
        let mut delivered = false;
        loop {
            let frame = match dec.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let why = format!("bad link frame: {e}");
                    handler.bad_link(peer, &why);
                    return why;
                }
            };
            let frame = match control(served, frame) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(why) => {
                    handler.bad_link(peer, &why);
                    return why;
                }
            };
            delivered = true;
            if let Err(why) = hand_over(served, frame, cap).await {
                return why;
            }
        }
        if delivered {
            super::share_woken();
        }
        match rd.read_buf(&mut dec.buf).await {
            Ok(0) => return "the peer closed the link".to_owned(),
            Ok(_) => {}
            Err(e) => return format!("reading the link failed: {e}"),
        }
    }
}

/// Hands a `tell` or `ask` over: at once if its actor has no backlog and its mailbox has room, else
/// into its actor's backlog (waiting while the backlogs are full).
async fn hand_over(served: &Arc<Served>, frame: LinkFrame, cap: usize) -> Result<(), String> {
    let to = match &frame {
        LinkFrame::Tell { to, .. } | LinkFrame::Ask { to, .. } => to.clone(),
        _ => return Ok(()),
    };
    let cost = backlog_cost(&frame, cap);
    let waiting = served.backlogs().contains_key(&to);
    let queued = if waiting {
        Queued::Frame(frame, cost)
    } else {
        let mut delivery: Delivery = Box::pin(deliver(served.clone(), frame));
        if poll_once(&mut delivery).await {
            return Ok(());
        }
        Queued::Started(delivery, cost)
    };
    match served.room.acquire_many(cost).await {
        Ok(permit) => permit.forget(),
        Err(_) => return Err("the delivery backlog closed".to_owned()),
    }
    // Only this reader adds to the backlogs, and a delivery task leaves the map under its lock
    // only once its queue is empty, so a message sent here is never left behind.
    let mut backlogs = served.backlogs();
    match backlogs.get(&to) {
        Some(tx) => {
            let _ = tx.send(queued);
        }
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(queued);
            backlogs.insert(to.clone(), tx);
            let task = tokio::spawn(deliver_backlog(served.clone(), to, rx));
            let mut deliveries = served.deliveries.lock().unwrap_or_else(|p| p.into_inner());
            deliveries.retain(|d| !d.is_finished());
            deliveries.push(task.abort_handle());
        }
    }
    Ok(())
}

/// What a message holds of the backlogs: its size, and at most all of them.
fn backlog_cost(frame: &LinkFrame, cap: usize) -> u32 {
    let size = match frame {
        LinkFrame::Tell { to, msg } | LinkFrame::Ask { to, msg, .. } => {
            super::frame_size(to, &msg.msg_type, msg.payload.len())
        }
        _ => 64,
    };
    u32::try_from(size.min(cap)).unwrap_or(u32::MAX)
}

/// Polls `f` once; whether it completed.
async fn poll_once(f: &mut Delivery) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_ready())).await
}

/// The delivery task of actor `to`'s backlog: hands its messages over in order, each as soon as the
/// mailbox has room (or its wait bound passed); ends, leaving the map, once the backlog is empty.
async fn deliver_backlog(
    served: Arc<Served>,
    to: String,
    mut backlog: mpsc::UnboundedReceiver<Queued>,
) {
    loop {
        let queued = match backlog.try_recv() {
            Ok(q) => q,
            Err(_) => {
                let mut backlogs = served.backlogs();
                match backlog.try_recv() {
                    Ok(q) => q,
                    Err(_) => {
                        backlogs.remove(&to);
                        if backlogs.is_empty() {
                            // No backlog left: no cancelled ask can still be in one.
                            served.cancelled().clear();
                        }
                        return;
                    }
                }
            }
        };
        let cost = match queued {
            Queued::Started(delivery, cost) => {
                delivery.await;
                cost
            }
            Queued::Frame(frame, cost) => {
                let skip =
                    matches!(&frame, LinkFrame::Ask { id, .. } if served.cancelled().remove(id));
                if !skip {
                    deliver(served.clone(), frame).await;
                }
                cost
            }
        };
        served.room.add_permits(cost as usize);
    }
}

/// How long a link of a node shutting down waits for the replies of asks still being answered,
/// and then for its buffer to be written.
const DRAIN: Duration = Duration::from_secs(1);

/// Waits (at most [`DRAIN`]) until no ask is being answered and everything queued was written.
async fn drain(served: &Served) {
    let until = tokio::time::Instant::now() + DRAIN;
    while tokio::time::Instant::now() < until {
        if served.asks().is_empty() && served.out.is_idle() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Serves a frame that is not a message at once; returns a message (`tell`, `ask`) to deliver.
/// `Err` (why) closes the link.
fn control(served: &Served, frame: LinkFrame) -> Result<Option<LinkFrame>, String> {
    match frame {
        LinkFrame::Tell { .. } | LinkFrame::Ask { .. } => return Ok(Some(frame)),
        LinkFrame::Hello { max_message, .. } => {
            if let Some(max) = max_message {
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                served.max_out.store(max, Ordering::Relaxed);
            }
        }
        LinkFrame::Cancel { id } => {
            if let Some(a) = served.asks().remove(&id) {
                a.cancel();
            } else if !served.backlogs().is_empty() {
                served.cancelled().insert(id);
            }
        }
        LinkFrame::Credit { id, n } => {
            if let Some(credit) = served.asks().get(&id).and_then(|a| a.credit.clone()) {
                // Bounded, so a client granting absurd credit cannot overflow the semaphore.
                let room = (STREAM_WINDOW as usize).saturating_sub(credit.available_permits());
                credit.add_permits((n as usize).min(room));
            }
        }
        LinkFrame::Ping => {
            let _ = served.out.push(Write::Now, frames::put_pong);
        }
        other => return Err(format!("a client may not send {other:?}")),
    }
    Ok(None)
}

/// Hands a `tell` or `ask` to the system: a tell that cannot be queued is a dead letter; an ask once
/// queued gets a task that awaits and writes its reply.
async fn deliver(served: Arc<Served>, frame: LinkFrame) {
    let handler = &served.handler;
    match frame {
        LinkFrame::Tell { to, msg } => {
            let size = envelope_size(&msg.msg_type, msg.payload.len());
            if size > served.max_in {
                handler.dead_letter(&to, 1, &too_large(size, served.max_in, "this node's"));
                return;
            }
            let msg = Message::single(msg.msg_type, msg.payload);
            if let Err(e) = handler.tell(&to, msg).await {
                handler.dead_letter(&to, 1, &e);
            }
        }
        LinkFrame::Ask {
            id,
            to,
            timeout_ms,
            msg,
        } => {
            served.last_ask.store(id, Ordering::Relaxed);
            let size = envelope_size(&msg.msg_type, msg.payload.len());
            if size > served.max_in {
                served.reply_error(id, &too_large(size, served.max_in, "this node's"));
                return;
            }
            let msg = Message::single(msg.msg_type, msg.payload);
            let timeout = timeout_ms.map(Duration::from_millis);
            let cancelled = Arc::new(AtomicBool::new(false));
            // In the map before the ask is queued: its reply may come before `ask_then` returns,
            // and a `cancel` read while it waits for room finds it.
            served.asks().insert(
                id,
                Answering {
                    cancelled: cancelled.clone(),
                    task: None,
                    credit: None,
                },
            );
            // Weak: a reply still to come does not keep the link's writer open once the link ended.
            let link = Arc::downgrade(&served);
            let mut sink = ReplySink::new(cancelled, move |result| {
                if let Some(served) = link.upgrade() {
                    answer(&served, id, result, timeout);
                }
            });
            // The caller's deadline, so a mailbox skips the ask once it passed even if the
            // `cancel` is still on its way (no timer: a clock read now and one when it is reached).
            if let Some(t) = timeout {
                if let Some(at) = std::time::Instant::now().checked_add(t) {
                    sink = sink.until(at);
                }
            }
            if let Err(e) = handler.ask_then(&to, msg, timeout, sink).await {
                served.asks().remove(&id);
                served.reply_error(id, &e);
            }
        }
        _ => {}
    }
}

/// Writes the answer of ask `id`, on the thread that gave it, if the ask is still waited for: a
/// single reply or an error at once; a streamed reply from a task of its own ([`stream_reply`]).
fn answer(
    served: &Arc<Served>,
    id: u64,
    result: Result<Message, PulsingError>,
    timeout: Option<Duration>,
) {
    let (msg_type, payload) = match result {
        Ok(Message::Single { msg_type, payload }) => (msg_type, payload),
        Ok(Message::Stream(items)) => {
            let mut asks = served.asks();
            let Some(a) = asks.get_mut(&id) else {
                return;
            };
            let credit = Arc::new(Semaphore::new(STREAM_WINDOW as usize));
            a.credit = Some(credit.clone());
            let task_served = served.clone();
            // Spawned under the lock, so the task's own removal comes after its handle is kept.
            let task = served.rt.spawn(async move {
                stream_reply(&task_served, id, items, credit, timeout).await;
                task_served.asks().remove(&id);
            });
            a.task = Some(task.abort_handle());
            return;
        }
        Err(e) => {
            if served.asks().remove(&id).is_some() {
                served.reply_error(id, &e);
            }
            return;
        }
    };
    let others = {
        let mut asks = served.asks();
        if asks.remove(&id).is_none() {
            // Cancelled, or the link ended.
            return;
        }
        !asks.is_empty()
    };
    let size = envelope_size(&msg_type, payload.len());
    let max = served.max_out.load(Ordering::Relaxed);
    if size > max {
        return served.reply_error(id, &too_large(size, max, "the caller's"));
    }
    // The only ask in flight on the link: written at once; among others, batched with their
    // replies.
    let how = if others { Write::Batched } else { Write::Now };
    let _ = served
        .out
        .push(how, |b| frames::put_reply(b, id, &msg_type, &payload));
}

/// Writes the streamed reply of ask `id`, item by item as the client grants `credit`, each item
/// waited for at most `timeout`.
async fn stream_reply(
    served: &Arc<Served>,
    id: u64,
    items: MessageStream,
    credit: Arc<Semaphore>,
    timeout: Option<Duration>,
) {
    let mut items: MessageStream = match timeout {
        Some(t) => items.with_item_timeout(t),
        None => items,
    };
    if served
        .out
        .push(Write::Now, |b| frames::put_stream(b, id))
        .is_err()
    {
        return;
    }
    loop {
        let pushed = match items.next().await {
            Some(Ok(Message::Single { msg_type, payload })) => {
                let size = envelope_size(&msg_type, payload.len());
                let max = served.max_out.load(Ordering::Relaxed);
                if size > max {
                    let e = WireError::from_error(&too_large(size, max, "the caller's"));
                    let _ = served.out.push(Write::Now, |b| frames::put_fail(b, id, &e));
                    return;
                }
                // Sent once the client's window has room for it (an item larger than the window
                // waits for the whole window).
                match credit
                    .acquire_many(item_cost(&msg_type, payload.len()))
                    .await
                {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
                // Batched: a stream is bulk traffic; the writer task sends what accumulated.
                served.out.push(Write::Batched, |b| {
                    frames::put_item(b, id, &msg_type, &payload)
                })
            }
            Some(Ok(Message::Stream(_))) => {
                let e = WireError::from_error(&PulsingError::BadMessage(
                    "a stream item cannot itself be a stream".into(),
                ));
                let _ = served.out.push(Write::Now, |b| frames::put_fail(b, id, &e));
                return;
            }
            Some(Err(err)) => {
                let e = WireError::from_error(&err);
                let _ = served.out.push(Write::Now, |b| frames::put_fail(b, id, &e));
                return;
            }
            None => {
                let _ = served.out.push(Write::Batched, |b| frames::put_end(b, id));
                return;
            }
        };
        if pushed.is_err() {
            return;
        }
    }
}
