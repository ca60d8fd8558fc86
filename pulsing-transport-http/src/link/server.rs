//! The serving side of a link: reads frames in order and hands each message to the system before
//! reading the next, so messages from one link reach each mailbox in the order they were sent.
//!
//! A tell is queued (waiting for room with the system's mailbox bound, which holds back the whole
//! link: backpressure reaches the sender as a full link buffer); if it cannot be, it is a dead
//! letter. An ask is queued the same way, then its reply is awaited on a task of its own and
//! written back with its id; a `cancel` aborts that task, which drops the reply the actor would
//! give (a mailbox that has not reached the ask skips it). A streamed reply sends items as the
//! client grants credit. When the link ends, every task it started is aborted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulsing_core::{InboundHandler, Message, MessageStream, PulsingError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::outbox::{Outbox, Send};
use super::{envelope_size, item_cost, too_large, STREAM_WINDOW};
use crate::codec::link::{self as frames, LinkDecoder, LinkFrame, LINK_PREFACE};
use crate::codec::WireError;
use crate::config::HttpConfig;

/// An ask being answered: its task, and the credit of its stream once the reply streams.
struct Answering {
    task: AbortHandle,
    credit: Option<Arc<Semaphore>>,
}

/// What the tasks of one served link share.
struct Served {
    out: Outbox,
    asks: Mutex<HashMap<u64, Answering>>,
    /// The largest message this node accepts.
    max_in: usize,
    /// The largest message the client accepts (its hello; this node's own limit until then).
    max_out: AtomicUsize,
    /// The id of the last ask read (for `bye`).
    last_ask: AtomicU64,
}

impl Served {
    fn asks(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Answering>> {
        self.asks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reply_error(&self, id: u64, err: &PulsingError) {
        let e = WireError::from_error(err);
        let _ = self
            .out
            .push(Send::Now, |b| frames::put_reply_error(b, id, &e));
    }
}

/// Serves a link on `stream`, whose first bytes are [`LINK_PREFACE`] (read here), until it ends or
/// `shutdown` is cancelled.
pub(crate) async fn serve_link(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    config: HttpConfig,
    shutdown: CancellationToken,
) {
    let mut preface = [0u8; LINK_PREFACE.len()];
    if stream.read_exact(&mut preface).await.is_err() || &preface != LINK_PREFACE {
        return;
    }
    let (mut rd, wr) = stream.into_split();
    let served = Arc::new(Served {
        // Replies do not wait for room; the limit only matters to bounded senders, of which a
        // server has none.
        out: Outbox::new(wr, config.link_buffer),
        asks: Mutex::default(),
        max_in: config.max_message_size,
        max_out: AtomicUsize::new(config.max_message_size),
        last_ask: AtomicU64::new(0),
    });
    let max = config.max_message_size + super::FRAME_OVERHEAD;
    let node = handler.node_id();
    let _ = served.out.push(Send::Now, |b| {
        frames::put_hello(b, Some(node), Some(config.max_message_size as u64));
    });
    let mut dec = LinkDecoder::new(max);
    let read = async {
        loop {
            let mut delivered = false;
            loop {
                match dec.next_frame() {
                    Ok(Some(frame)) => {
                        delivered = true;
                        if let Err(why) = serve_frame(&served, &handler, frame).await {
                            handler.bad_link(peer, &why);
                            return why;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let why = format!("bad link frame: {e}");
                        handler.bad_link(peer, &why);
                        return why;
                    }
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
    };
    let why = tokio::select! {
        why = read => why,
        why = served.out.writer() => why,
        _ = shutdown.cancelled() => {
            // The system drained its actors before shutting the transport down: say which asks
            // were read (those after were not delivered), give the replies time to be written,
            // then close.
            let last = served.last_ask.load(Ordering::Relaxed);
            let _ = served.out.push(Send::Now, |b| frames::put_bye(b, last));
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
        a.task.abort();
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

/// Serves one frame from the client; `Err` (why) closes the link.
async fn serve_frame(
    served: &Arc<Served>,
    handler: &Arc<dyn InboundHandler>,
    frame: LinkFrame,
) -> Result<(), String> {
    match frame {
        LinkFrame::Tell { to, msg } => {
            let size = envelope_size(&msg.msg_type, msg.payload.len());
            if size > served.max_in {
                handler.dead_letter(&to, 1, &too_large(size, served.max_in, "this node's"));
                return Ok(());
            }
            let msg = Message::single(msg.msg_type, msg.payload);
            if let Err(e) = handler.tell(&to, msg).await {
                handler.dead_letter(&to, 1, &e);
            }
        }
        LinkFrame::Hello { max_message, .. } => {
            if let Some(max) = max_message {
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                served.max_out.store(max, Ordering::Relaxed);
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
                return Ok(());
            }
            let msg = Message::single(msg.msg_type, msg.payload);
            let timeout = timeout_ms.map(Duration::from_millis);
            match handler.ask_queued(&to, msg, timeout).await {
                Ok(reply) => {
                    let task_served = served.clone();
                    // Spawned under the lock, so the task's own removal comes after this insert.
                    let mut asks = served.asks();
                    let task = tokio::spawn(async move {
                        let result = reply.await;
                        answer(&task_served, id, result, timeout).await;
                        task_served.asks().remove(&id);
                    });
                    asks.insert(
                        id,
                        Answering {
                            task: task.abort_handle(),
                            credit: None,
                        },
                    );
                }
                Err(e) => served.reply_error(id, &e),
            }
        }
        LinkFrame::Cancel { id } => {
            if let Some(a) = served.asks().remove(&id) {
                a.task.abort();
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
            let _ = served.out.push(Send::Now, frames::put_pong);
        }
        other => return Err(format!("a client may not send {other:?}")),
    }
    Ok(())
}

/// Writes the reply of ask `id`: a single reply or error at once; a stream item by item, as the
/// client grants credit, each item waited for at most `timeout`.
async fn answer(
    served: &Arc<Served>,
    id: u64,
    result: Result<Message, PulsingError>,
    timeout: Option<Duration>,
) {
    let items = match result {
        Ok(Message::Single { msg_type, payload }) => {
            let size = envelope_size(&msg_type, payload.len());
            let max = served.max_out.load(Ordering::Relaxed);
            if size > max {
                return served.reply_error(id, &too_large(size, max, "the caller's"));
            }
            // The only ask in flight on the link: written at once; among others, batched with
            // their replies (this ask's own entry is still in the map).
            let how = if served.asks().len() > 1 {
                Send::Batched
            } else {
                Send::Now
            };
            let _ = served
                .out
                .push(how, |b| frames::put_reply(b, id, &msg_type, &payload));
            return;
        }
        Err(e) => return served.reply_error(id, &e),
        Ok(Message::Stream(items)) => items,
    };
    let mut items: MessageStream = match timeout {
        Some(t) => items.with_item_timeout(t),
        None => items,
    };
    let credit = Arc::new(Semaphore::new(STREAM_WINDOW as usize));
    if let Some(a) = served.asks().get_mut(&id) {
        a.credit = Some(credit.clone());
    }
    if served
        .out
        .push(Send::Now, |b| frames::put_stream(b, id))
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
                    let _ = served.out.push(Send::Now, |b| frames::put_fail(b, id, &e));
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
                served.out.push(Send::Batched, |b| {
                    frames::put_item(b, id, &msg_type, &payload)
                })
            }
            Some(Ok(Message::Stream(_))) => {
                let e = WireError::from_error(&PulsingError::BadMessage(
                    "a stream item cannot itself be a stream".into(),
                ));
                let _ = served.out.push(Send::Now, |b| frames::put_fail(b, id, &e));
                return;
            }
            Some(Err(err)) => {
                let e = WireError::from_error(&err);
                let _ = served.out.push(Send::Now, |b| frames::put_fail(b, id, &e));
                return;
            }
            None => {
                let _ = served.out.push(Send::Batched, |b| frames::put_end(b, id));
                return;
            }
        };
        if pushed.is_err() {
            return;
        }
    }
}
