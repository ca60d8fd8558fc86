//! The Rust face of a Python actor: [`PyProxy`], the core actor registered under the Python actor's
//! name, the [`ReplyHandle`] / [`StreamWriter`] through which Python answers it, and the
//! [`Credits`] that bound how many messages it hands over.
//!
//! The proxy owns no state. It sets [`Actor::FORWARDS`]: each message it gets (from another node, or
//! from a Rust or Python caller holding a core ref) goes to the hub together with its [`Responder`],
//! and the proxy takes the next message without waiting for the reply. The hub puts the messages,
//! many per wake-up, in the Python actor's one mailbox on the asyncio loop, which keeps messages from
//! every source in one order and handles them one at a time; the reply goes straight back through the
//! responder.
//!
//! Why forwarding rather than answering from `receive`: `receive` would wait for each Python reply
//! before the proxy takes the next message, one loop wake-up per message; forwarding lets a burst of
//! calls from another node reach Python in one batch. What the core mailbox contract gives every
//! other actor is kept this way:
//!
//! - **Bounded, with the same waiting**: before handing a message over, the proxy takes a credit;
//!   Python returns one for each message it takes out of its mailbox. With no credit left the proxy
//!   waits, its own core mailbox fills, and remote senders wait for room up to `mailbox_wait` as for
//!   any actor.
//! - **Skipped when abandoned**: the core loop skips a message whose asker gave up while it waited in
//!   the core mailbox; Python skips one whose asker gave up while it waited in the Python mailbox
//!   ([`ReplyHandle::closed`], [`ReplyHandle::expire`]).
//!
//! Nothing here bounds how long Python takes: the asker's own ask timeout does, and if the Python
//! side drops the reply slot (its system shut down, its loop closed) the asker gets `Stopped`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pulsing::{
    Actor, ActorError as CoreActorError, Context, Message, MessageStream, PulsingError, Responder,
    StreamSender,
};
use pyo3::prelude::*;
use tokio::sync::Semaphore;

use crate::hub::{Hub, HubShared, Outcome};
use crate::submit::{Job, Submissions};

/// How many messages a proxy may hand to Python before Python has taken them out of its mailbox.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct Credits {
    pub(crate) permits: Arc<Semaphore>,
}

#[pymethods]
impl Credits {
    /// `capacity` credits (at least 1).
    #[new]
    fn py_new(capacity: usize) -> Credits {
        Credits {
            permits: Arc::new(Semaphore::new(capacity.max(1))),
        }
    }

    /// Returns `n` credits: Python took `n` messages out of its mailbox (or dropped them).
    fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }
}

/// The core actor standing for the Python actor `actor` (see the module docs).
pub(crate) struct PyProxy {
    actor: u64,
    hub: Arc<HubShared>,
    credits: Arc<Semaphore>,
}

impl PyProxy {
    pub(crate) fn new(actor: u64, hub: Arc<HubShared>, credits: Arc<Semaphore>) -> PyProxy {
        PyProxy {
            actor,
            hub,
            credits,
        }
    }
}

impl Actor for PyProxy {
    const FORWARDS: bool = true;

    /// Never called: the proxy forwards (see [`Actor::FORWARDS`]).
    async fn receive(
        &mut self,
        _msg: Message,
        _ctx: &mut Context,
    ) -> Result<Message, CoreActorError> {
        Err(CoreActorError::new(
            "the Python proxy forwards its messages",
        ))
    }

    /// Waits for a credit (room in the Python mailbox), then hands the message to the hub. A
    /// streamed request is refused first: a Python actor takes single messages.
    async fn forward(&mut self, msg: Message, reply: Responder, _ctx: &mut Context) {
        if msg.is_stream() {
            reply.fail(PulsingError::BadMessage(
                "a Python actor takes single messages, not streams".into(),
            ));
            return;
        }
        // Python gives the credit back when it takes the message out of its mailbox. The semaphore
        // is never closed; if it were, the message would still be handed over rather than lost.
        if let Ok(permit) = self.credits.acquire().await {
            permit.forget();
        }
        self.hub.deliver(self.actor, msg, reply);
    }
}

/// Where a Python actor puts its reply to a message that came through the core system (an ask or a
/// tell): it speaks the Python mailbox's reply protocol (`pulsing._reply.Reply`). Answer once: later
/// answers are ignored. Dropping it unanswered tells an asker the actor is gone.
///
/// The answer goes to Tokio through the hub's submission queue (see [`crate::submit`]), so the answers
/// of one loop iteration cost one wake-up of Tokio, not one each.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct ReplyHandle {
    slot: Mutex<Option<Responder>>,
    out: Arc<Submissions>,
}

impl ReplyHandle {
    pub(crate) fn new(reply: Responder, out: Arc<Submissions>) -> ReplyHandle {
        ReplyHandle {
            slot: Mutex::new(Some(reply)),
            out,
        }
    }

    /// The responder, once: later answers find none and are ignored.
    fn take(&self) -> Option<Responder> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether the responder is still here and `test` holds for it.
    fn holds(&self, test: fn(&Responder) -> bool) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(test)
    }

    fn answer(&self, reply: Result<Message, CoreActorError>) -> bool {
        self.take().is_some_and(|r| {
            // A closed slot means the caller gave up; the reply has nowhere to go.
            if r.is_closed() {
                r.expire();
                return false;
            }
            self.out.push(Job::Answer(r, reply));
            true
        })
    }
}

#[pymethods]
impl ReplyHandle {
    /// Answers with the single message `(msg_type, payload)`. Returns whether the caller still waits.
    fn ok(&self, msg_type: String, payload: &[u8]) -> bool {
        self.answer(Ok(Message::single(
            msg_type,
            Bytes::copy_from_slice(payload),
        )))
    }

    /// Answers with a handler error: `type_name` is the Python exception's class name, `detail` its
    /// formatted traceback (sent to remote callers as the error's `detail`).
    #[pyo3(signature = (type_name, message, detail=None))]
    fn error(&self, type_name: Option<String>, message: String, detail: Option<String>) -> bool {
        self.answer(Err(handler_error(type_name, message, detail)))
    }

    /// Answers that the actor stopped before (or while) handling the message: the sender gets
    /// `ActorStoppedError` (over HTTP, `503 stopped`).
    fn stopped(&self, message: String) -> bool {
        self.take().is_some_and(|r| {
            let waiting = !r.is_closed();
            r.fail(PulsingError::Stopped(message));
            waiting
        })
    }

    /// Drops the message unanswered because its asker gave up, counting it as expired (what
    /// `pulsing_expired_asks_total` shows).
    fn expire(&self) {
        if let Some(r) = self.take() {
            r.expire();
        }
    }

    /// Whether the asker has given up (timed out, cancelled, its connection reset): the message can
    /// be skipped. Always `False` for a tell.
    #[getter]
    fn closed(&self) -> bool {
        self.holds(Responder::is_closed)
    }

    /// Always `True`: the answer may leave this node, so refs to private actors cannot be in it.
    #[getter]
    fn remote(&self) -> bool {
        true
    }

    /// Answers with a stream holding at most `capacity` unread items, the producer waiting at most
    /// `timeout` seconds for room; returns its writer, or `None` for a tell (nobody reads it).
    #[pyo3(signature = (capacity=32, timeout=30.0))]
    fn stream(&self, capacity: usize, timeout: f64) -> PyResult<Option<StreamWriter>> {
        let timeout = crate::native::seconds(timeout)?;
        if !self.holds(Responder::is_ask) {
            return Ok(None);
        }
        let (tx, rx) = MessageStream::channel_with_timeout(capacity, timeout);
        self.answer(Ok(Message::stream(rx)));
        Ok(Some(StreamWriter {
            tx: Arc::new(tokio::sync::Mutex::new(Some(tx))),
        }))
    }
}

/// The producing end of a streamed reply. Each call completes an asyncio future once the item is
/// queued; await each before the next, which keeps order and the stream's back-pressure.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct StreamWriter {
    tx: Arc<tokio::sync::Mutex<Option<StreamSender>>>,
}

impl StreamWriter {
    fn run<F, Fut>(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>, op: F)
    where
        F: FnOnce(Arc<tokio::sync::Mutex<Option<StreamSender>>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), PulsingError>> + Send + 'static,
    {
        let tx = self.tx.clone();
        hub.get()
            .run(fut, async move { Outcome::Unit(op(tx).await) });
    }
}

#[pymethods]
impl StreamWriter {
    /// Sends one item; completes `fut` when it is queued, or with `ActorStoppedError` once the
    /// consumer is gone (stop producing) or `AskTimeoutError` if it made no room in time.
    fn send(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>, msg_type: String, payload: &[u8]) {
        let msg = Message::single(msg_type, Bytes::copy_from_slice(payload));
        self.run(hub, fut, move |tx| async move {
            match &*tx.lock().await {
                Some(tx) => tx.send(msg).await,
                None => Err(PulsingError::Stopped("stream already ended".into())),
            }
        });
    }

    /// Ends the stream cleanly; completes `fut` with `None`.
    fn end(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>) {
        self.run(hub, fut, |tx| async move {
            if let Some(tx) = tx.lock().await.take() {
                tx.end().await;
            }
            Ok(())
        });
    }

    /// Ends the stream with an error item naming the Python exception's class (and its traceback as
    /// `detail`); completes `fut`.
    #[pyo3(signature = (hub, fut, type_name, message, detail=None))]
    fn fail(
        &self,
        hub: &Bound<'_, Hub>,
        fut: Py<PyAny>,
        type_name: Option<String>,
        message: String,
        detail: Option<String>,
    ) {
        self.run(hub, fut, move |tx| async move {
            if let Some(tx) = tx.lock().await.take() {
                tx.fail(handler_error(type_name, message, detail)).await;
            }
            Ok(())
        });
    }
}

/// The core error for a Python handler's exception.
fn handler_error(
    type_name: Option<String>,
    message: String,
    detail: Option<String>,
) -> CoreActorError {
    let err = match type_name {
        Some(t) => CoreActorError::with_type(t, message),
        None => CoreActorError::new(message),
    };
    match detail {
        Some(d) if !d.is_empty() => err.with_detail(d),
        _ => err,
    }
}
