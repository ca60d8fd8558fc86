//! The [`Hub`]: how work finished on Tokio threads reaches the asyncio loop, in batches, without the
//! GIL on the Tokio side.
//!
//! One hub belongs to one `ActorSystem` and so to the asyncio loop that created it. Tokio tasks push
//! [`Event`]s (a finished call, or a message for a Python actor) onto a mutex-protected queue; the first
//! push after a drain writes one byte to a socket pair whose read end the loop watches
//! (`loop.add_reader(hub.fileno(), hub.drain)`). [`Hub::drain`] then runs on the loop thread, with the
//! GIL, and handles every queued event at once: one wake-up for many completions, and no Tokio thread
//! ever waits for the GIL (which the loop thread may hold for milliseconds).
//!
//! Futures are kept on the Python side of the fence: a call registers its asyncio future here under a
//! number, the Tokio task carries only the number, and `drain` resolves the future. So no Python object
//! is touched or dropped off the loop thread.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pulsing::{ActorRef, ActorSystem, Message, PulsingError, Responder};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::batch::Batch;
use crate::errors::to_py_err;
use crate::native::{NativeRef, NativeStream, NativeSystem};
use crate::proxy::ReplyHandle;
use crate::submit::{Job, Submissions};

/// The result of a finished call, converted to Python by [`Hub::drain`].
pub(crate) enum Outcome {
    /// An ask's reply: `(msg_type, payload)` for a single message, a `NativeStream` for a stream.
    Reply(Result<Message, PulsingError>, std::time::Duration),
    /// A method call's reply: the decoded value for a single message (the hub's `decode(payload)`),
    /// the hub's `stream(NativeStream)` for a stream.
    Value(Result<Message, PulsingError>, std::time::Duration),
    /// A call with no value: `None`.
    Unit(Result<(), PulsingError>),
    /// `find`: a `NativeRef` or `None`.
    Found(Option<ActorRef>),
    /// `find_all`: a list of `NativeRef`s.
    FoundAll(Vec<ActorRef>),
    /// `spawn`: the new actor's `NativeRef`.
    Spawned(Result<ActorRef, PulsingError>),
    /// A built system.
    System(Result<ActorSystem, PulsingError>),
    /// The next item of a stream: `(msg_type, payload)`, or `None` at its end.
    Item(Option<Result<Message, PulsingError>>),
}

/// What Tokio tasks hand to the loop.
enum Event {
    /// The call registered under `id` finished.
    Done { id: u64, outcome: Outcome },
    /// A message for the Python actor `actor`, from the core system (another node, or a Rust ref).
    Inbound {
        actor: u64,
        msg: Message,
        reply: Responder,
    },
}

/// The part of a hub that Tokio tasks hold. `Send + Sync`, holds no Python object.
pub(crate) struct HubShared {
    events: Batch<Event>,
    writer: UnixStream,
    closed: AtomicBool,
}

impl HubShared {
    fn push(&self, ev: Event) {
        if self.closed.load(Ordering::Acquire) {
            // Dropping the event drops a responder too, which answers its asker `Stopped`.
            return;
        }
        if self.events.push(ev) {
            // A full socket buffer means a wake-up byte is already waiting: nothing to do.
            let _ = (&self.writer).write(&[1]);
        }
        if self.closed.load(Ordering::Acquire) {
            // Closed while this was pushed: no drain will come, so drop it now (a responder in it
            // answers its asker `Stopped`).
            self.events.clear();
        }
    }

    /// Reports that the call registered under `id` finished.
    pub(crate) fn complete(&self, id: u64, outcome: Outcome) {
        self.push(Event::Done { id, outcome });
    }

    /// Hands a message to the Python actor registered under `actor`.
    pub(crate) fn deliver(&self, actor: u64, msg: Message, reply: Responder) {
        self.push(Event::Inbound { actor, msg, reply });
    }
}

/// The bridge between one asyncio loop and the Tokio runtime (see the module docs).
///
/// Python creates it with the callable that receives messages for Python actors, `deliver(actor_id,
/// msg_type, payload, reply_handle)`, then registers `fileno()` / `drain` with the loop.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct Hub {
    pub(crate) shared: Arc<HubShared>,
    reader: UnixStream,
    deliver: Py<PyAny>,
    /// `decode(payload) -> value` for method calls' replies (raises for a bad payload).
    decode: Py<PyAny>,
    /// `stream(native_stream) -> async iterator of values` for method calls' streamed replies.
    stream: Py<PyAny>,
    // Touched only with the GIL, on the loop thread; the mutex makes the class `Sync`.
    futures: Mutex<HashMap<u64, Py<PyAny>>>,
    next_id: AtomicU64,
    /// Asks and tells on their way to Tokio (see [`crate::submit`]).
    submissions: Arc<Submissions>,
}

impl Hub {
    /// Registers `fut` (an asyncio future) and returns the number a Tokio task completes it with.
    /// After [`close`](Hub::close) nothing could complete it: it fails at once with
    /// `ActorStoppedError` instead.
    fn register(&self, fut: Py<PyAny>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self.shared.closed.load(Ordering::Acquire) {
            Python::attach(|py| fail_stopped(fut.bind(py)));
            return id;
        }
        self.futures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, fut);
        id
    }

    /// Registers `fut`, runs `work` on the module's runtime and completes `fut` with its outcome.
    pub(crate) fn run<F>(&self, fut: Py<PyAny>, work: F)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        let id = self.register(fut);
        let shared = self.shared.clone();
        crate::runtime::spawn(async move { shared.complete(id, work.await) });
    }

    /// Registers `fut` and queues the call `job(id)` that completes it (see [`crate::submit`]);
    /// returns `id`.
    pub(crate) fn submit(&self, fut: Py<PyAny>, job: impl FnOnce(u64) -> Job) -> u64 {
        let id = self.register(fut);
        self.submissions.push(job(id));
        id
    }

    fn resolve(&self, py: Python<'_>, id: u64, outcome: Outcome) -> PyResult<()> {
        let fut = self
            .futures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let Some(fut) = fut else { return Ok(()) };
        let fut = fut.bind(py);
        let value = match outcome {
            Outcome::Value(Ok(Message::Single { payload, .. }), _) => self
                .decode
                .bind(py)
                .call1((PyBytes::new(py, &payload),))
                .map(Bound::unbind),
            Outcome::Value(Ok(Message::Stream(stream)), item_timeout) => Py::new(
                py,
                NativeStream::new(stream.with_item_timeout(item_timeout)),
            )
            .and_then(|s| self.stream.bind(py).call1((s,)))
            .map(Bound::unbind),
            Outcome::Value(Err(e), _) => Err(to_py_err(e)),
            outcome => outcome_to_py(py, outcome),
        };
        let set = match value {
            Ok(value) => fut.call_method1(intern!(py, "set_result"), (value,)),
            Err(err) => fut.call_method1(intern!(py, "set_exception"), (err.into_value(py),)),
        };
        match set {
            Ok(_) => Ok(()),
            // Cancelled by the caller (timeout, task cancelled): the result has nowhere to go. Asking
            // `done()` only then keeps one call per result off the common path.
            Err(_) if fut.call_method0(intern!(py, "done"))?.is_truthy()? => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn inbound(&self, py: Python<'_>, actor: u64, msg: Message, reply: Responder) -> PyResult<()> {
        match msg {
            Message::Single { msg_type, payload } => {
                // Tells get a handle too: the Python mailbox answers every message the same way (a
                // tell's answer goes nowhere; a failure is counted and logged by the core).
                let handle = Py::new(py, ReplyHandle::new(reply, self.submissions.clone()))?;
                let payload = PyBytes::new(py, &payload);
                self.deliver
                    .bind(py)
                    .call1((actor, msg_type, payload, handle))?;
            }
            Message::Stream(_) => reply.fail(PulsingError::BadMessage(
                "a Python actor takes single messages, not streams".into(),
            )),
        }
        Ok(())
    }
}

/// Fails `fut` with `ActorStoppedError` unless it is done already.
fn fail_stopped(fut: &Bound<'_, PyAny>) {
    let py = fut.py();
    if matches!(
        fut.call_method0("done").and_then(|d| d.is_truthy()),
        Ok(false)
    ) {
        let err = crate::ActorStoppedError::new_err("the actor system shut down");
        if let Err(e) = fut.call_method1("set_exception", (err.into_value(py),)) {
            e.write_unraisable(py, None);
        }
    }
}

fn single_to_py(py: Python<'_>, msg: Message) -> PyResult<Py<PyAny>> {
    match msg {
        Message::Single { msg_type, payload } => Ok((msg_type, PyBytes::new(py, &payload))
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        _ => Err(to_py_err(PulsingError::BadMessage(
            "a stream item cannot itself be a stream".into(),
        ))),
    }
}

fn outcome_to_py(py: Python<'_>, outcome: Outcome) -> PyResult<Py<PyAny>> {
    match outcome {
        Outcome::Reply(Ok(Message::Stream(stream)), item_timeout) => Ok(Py::new(
            py,
            NativeStream::new(stream.with_item_timeout(item_timeout)),
        )?
        .into_any()),
        Outcome::Reply(Ok(msg), _) | Outcome::Value(Ok(msg), _) => single_to_py(py, msg),
        Outcome::Reply(Err(e), _)
        | Outcome::Value(Err(e), _)
        | Outcome::Unit(Err(e))
        | Outcome::Spawned(Err(e)) => Err(to_py_err(e)),
        Outcome::System(Err(e)) => Err(to_py_err(e)),
        Outcome::Unit(Ok(())) | Outcome::Found(None) | Outcome::Item(None) => Ok(py.None()),
        Outcome::Found(Some(r)) | Outcome::Spawned(Ok(r)) => {
            Ok(Py::new(py, NativeRef::new(r))?.into_any())
        }
        Outcome::FoundAll(refs) => {
            let refs = refs
                .into_iter()
                .map(|r| Py::new(py, NativeRef::new(r)))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(refs.into_pyobject(py)?.into_any().unbind())
        }
        Outcome::System(Ok(system)) => Ok(Py::new(py, NativeSystem::new(system))?.into_any()),
        Outcome::Item(Some(Ok(msg))) => single_to_py(py, msg),
        Outcome::Item(Some(Err(e))) => Err(to_py_err(e)),
    }
}

#[pymethods]
impl Hub {
    /// A hub whose inbound messages go to `deliver(actor_id, msg_type, payload, reply_handle)`,
    /// and whose method calls' replies are decoded with
    /// `decode(payload)` (a single value) or `stream(native_stream)` (a streamed reply).
    #[new]
    fn py_new(deliver: Py<PyAny>, decode: Py<PyAny>, stream: Py<PyAny>) -> PyResult<Hub> {
        let (reader, writer) = UnixStream::pair()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot create a socket pair: {e}")))?;
        for s in [&reader, &writer] {
            s.set_nonblocking(true).map_err(|e| {
                PyRuntimeError::new_err(format!("cannot make the socket pair non-blocking: {e}"))
            })?;
        }
        let shared = Arc::new(HubShared {
            events: Batch::default(),
            writer,
            closed: AtomicBool::new(false),
        });
        crate::log::register_hub(Arc::downgrade(&shared), |s| drop((&s.writer).write(&[1])));
        let submissions = Arc::new(Submissions::default());
        crate::runtime::spawn(crate::submit::run(submissions.clone(), shared.clone()));
        Ok(Hub {
            shared,
            reader,
            deliver,
            decode,
            stream,
            futures: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            submissions,
        })
    }

    /// The file descriptor the asyncio loop watches; readable when events are waiting.
    fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Handles every waiting event: resolves finished calls' futures and delivers inbound messages.
    /// Called by the loop when `fileno()` is readable; never blocks. An error raised by one event's
    /// callback is reported as unraisable and does not stop the others.
    fn drain(&self, py: Python<'_>) {
        // Order matters: consume the wake-up bytes, then take the events (which clears the pending
        // wake-up first). A push after that writes a fresh byte that this drain does not consume, so
        // the loop wakes again.
        let mut sink = [0u8; 64];
        loop {
            match (&self.reader).read(&mut sink) {
                Ok(n) if n == sink.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        let mut events = Vec::new();
        self.shared.events.take_into(&mut events);
        for ev in events {
            let result = match ev {
                Event::Done { id, outcome } => self.resolve(py, id, outcome),
                Event::Inbound { actor, msg, reply } => self.inbound(py, actor, msg, reply),
            };
            if let Err(e) = result {
                e.write_unraisable(py, None);
            }
        }
        crate::log::flush(py);
    }

    /// Abandons the call `id` (its caller cancelled it): its future is forgotten and the Rust call is
    /// dropped, which cancels a remote call at its node (a `cancel` frame) at once.
    fn cancel(&self, id: u64) {
        let removed = self
            .futures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if removed.is_some() {
            self.submissions.push(Job::Cancel(id));
        }
    }

    /// Stops accepting events: later inbound messages are refused (their senders see the actor gone)
    /// and later completions are dropped. Futures still waiting fail with `ActorStoppedError`, and so
    /// do futures registered later, so no caller waits for a result that can no longer come.
    fn close(&self, py: Python<'_>) {
        self.submissions.close();
        self.shared.closed.store(true, Ordering::Release);
        self.shared.events.clear();
        let waiting = std::mem::take(&mut *self.futures.lock().unwrap_or_else(|p| p.into_inner()));
        for fut in waiting.into_values() {
            fail_stopped(fut.bind(py));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // A hub dropped without `close` still ends its submission task.
        self.submissions.close();
    }
}
