//! The Rust face of a Python actor: [`PyProxy`], the core actor registered under the Python actor's
//! name, and the [`ReplyHandle`] / [`StreamWriter`] through which Python answers it.
//!
//! The proxy owns no state and never waits. It sets [`Actor::FORWARDS`]: each message it gets (from
//! another node, or from a Rust or Python caller holding a core ref) goes to the hub together with its
//! [`Responder`], and the proxy takes the next message at once. The hub puts the messages, many per
//! wake-up, in the Python actor's one mailbox on the asyncio loop, which keeps messages from every
//! source in one order and handles them one at a time; the reply goes straight back through the
//! responder. Nothing here bounds how long Python takes: the asker's own ask timeout does, and if the
//! Python side drops the reply slot (its system shut down, its loop closed) the asker gets `Stopped`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pulsing::{
    Actor, ActorError as CoreActorError, Context, Message, MessageStream, PulsingError, Responder,
    StreamSender,
};
use pyo3::prelude::*;

use crate::hub::{Hub, HubShared, Outcome};
use crate::submit::{Job, Submissions};

/// The core actor standing for the Python actor `actor` (see the module docs).
pub(crate) struct PyProxy {
    actor: u64,
    hub: Arc<HubShared>,
}

impl PyProxy {
    pub(crate) fn new(actor: u64, hub: Arc<HubShared>) -> PyProxy {
        PyProxy { actor, hub }
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

    fn forward(&mut self, msg: Message, reply: Responder, _ctx: &mut Context) {
        self.hub.deliver(self.actor, msg, reply);
    }
}

/// Where a Python actor puts its reply to a message that came through the core system. Answer once:
/// later answers are ignored. Dropping it unanswered tells the sender the actor is gone.
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

    fn answer(&self, reply: Result<Message, CoreActorError>) -> bool {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        slot.is_some_and(|r| {
            // A closed slot means the caller gave up; the reply has nowhere to go.
            if r.is_closed() {
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

    /// Answers with a handler error, `type_name` being the Python exception's class name.
    #[pyo3(signature = (type_name, message))]
    fn error(&self, type_name: Option<String>, message: String) -> bool {
        let err = match type_name {
            Some(t) => CoreActorError::with_type(t, message),
            None => CoreActorError::new(message),
        };
        self.answer(Err(err))
    }

    /// Refuses the message because the Python actor's mailbox is full: the sender gets
    /// `MailboxFullError` (the message was not handled).
    fn full(&self, message: String) -> bool {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        slot.is_some_and(|r| {
            let waiting = !r.is_closed();
            r.fail(PulsingError::MailboxFull(message));
            waiting
        })
    }

    /// Answers with a stream holding at most `capacity` unread items, and returns its writer.
    #[pyo3(signature = (capacity=32))]
    fn stream(&self, capacity: usize) -> StreamWriter {
        let (tx, rx) = MessageStream::channel(capacity);
        self.answer(Ok(Message::stream(rx)));
        StreamWriter {
            tx: Arc::new(tokio::sync::Mutex::new(Some(tx))),
        }
    }

    /// Whether an answer was already given.
    #[getter]
    fn answered(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
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

    /// Ends the stream with an error item naming the Python exception's class; completes `fut`.
    #[pyo3(signature = (hub, fut, type_name, message))]
    fn fail(
        &self,
        hub: &Bound<'_, Hub>,
        fut: Py<PyAny>,
        type_name: Option<String>,
        message: String,
    ) {
        self.run(hub, fut, move |tx| async move {
            if let Some(tx) = tx.lock().await.take() {
                let err = match type_name {
                    Some(t) => CoreActorError::with_type(t, message),
                    None => CoreActorError::new(message),
                };
                tx.fail(err).await;
            }
            Ok(())
        });
    }
}
