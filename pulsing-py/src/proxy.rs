//! The Rust face of a Python actor: [`PyProxy`], the core actor registered under the Python actor's
//! name, and the [`ReplyHandle`] / [`StreamWriter`] through which Python answers it.
//!
//! The proxy owns no state. Each message it receives (from another node, or from a Rust or Python
//! caller holding a core ref) goes to the hub with a reply slot; the hub puts it in the Python actor's
//! one mailbox on the asyncio loop, so messages from every source are handled in one order. The proxy
//! waits for the reply (bounded by the system's ask timeout) before taking its next message.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pulsing::{
    Actor, ActorError as CoreActorError, Context, Message, MessageStream, PulsingError,
    StreamSender,
};
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::hub::{Hub, HubShared, Outcome, ReplySender};
use crate::runtime::spawn;

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
    async fn receive(
        &mut self,
        msg: Message,
        ctx: &mut Context,
    ) -> Result<Message, CoreActorError> {
        let (tx, rx) = oneshot::channel();
        self.hub.deliver(self.actor, msg, tx);
        let bound = ctx.system().ask_timeout();
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(CoreActorError::with_type(
                "ActorStoppedError",
                "the Python actor is gone (its system shut down or its loop closed)",
            )),
            Err(_) => Err(CoreActorError::with_type(
                "AskTimeoutError",
                format!("the Python handler did not answer within {bound:?}"),
            )),
        }
    }
}

/// Where a Python actor puts its reply to a message that came through the core system. Answer once:
/// later answers are ignored. Dropping it unanswered tells the sender the actor is gone.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct ReplyHandle {
    slot: Mutex<Option<ReplySender>>,
}

impl ReplyHandle {
    pub(crate) fn new(reply: ReplySender) -> ReplyHandle {
        ReplyHandle {
            slot: Mutex::new(Some(reply)),
        }
    }

    fn answer(&self, reply: Result<Message, CoreActorError>) -> bool {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A send error means the caller gave up; the reply has nowhere to go.
        slot.is_some_and(|tx| tx.send(reply).is_ok())
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
        let hub = hub.get();
        let id = hub.register(fut);
        let shared = hub.shared.clone();
        let tx = self.tx.clone();
        spawn(async move {
            shared.complete(id, Outcome::Unit(op(tx).await));
        });
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
