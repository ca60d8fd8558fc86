//! Thin handles over the core types: [`NativeSystem`], [`NativeRef`], [`NativeStream`], and
//! [`build_system`].
//!
//! Every call that can wait follows one pattern: Python passes the hub and an asyncio future, the call
//! registers the future, starts the Rust future on the module's runtime and returns at once; the
//! result comes back through [`Hub::drain`](crate::hub::Hub). Asks and tells, the hot path, are queued
//! and started in batches (see [`crate::submit`]); the rest are spawned directly. So no call blocks the
//! loop and none holds the GIL while it waits. The Pythonic API is built on these in `pulsing/_system.py`,
//! `_ref.py` and `_call.py`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::quic::{QuicConfig, QuicTransport};
use pulsing::{
    ActorRef, ActorSystem, ErrorKind, MemberState, Message, MessageStream, PulsingError,
    SpawnOptions, Transport,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::hub::{Hub, Outcome};
use crate::proxy::{Credits, PyProxy};
use crate::submit::Job;

/// Converts a timeout in seconds from Python.
pub(crate) fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("timeout must be >= 0 seconds, got {value}")))
}

/// The transport a networked system serves with, as `SystemConfig.with_transport` names it.
#[derive(Debug, Clone, Copy)]
enum TransportKind {
    /// `"http"`: the HTTP transport.
    Http,
    /// `"quic"`: QUIC on UDP port P and the HTTP transport on TCP port P.
    Quic,
}

impl TransportKind {
    /// The kind named `name`; `ValueError` naming the choices for any other name.
    fn parse(name: &str) -> PyResult<TransportKind> {
        match name {
            "http" => Ok(TransportKind::Http),
            "quic" => Ok(TransportKind::Quic),
            other => Err(PyValueError::new_err(format!(
                "transport must be 'http' or 'quic', got {other:?}"
            ))),
        }
    }

    /// A new transport of this kind, not yet serving, with [`http_config`].
    ///
    /// # Errors
    ///
    /// `PulsingError::Config` if the QUIC transport's TLS setup fails.
    fn make(self) -> Result<Arc<dyn Transport>, PulsingError> {
        Ok(match self {
            TransportKind::Http => Arc::new(HttpTransport::new(http_config())),
            TransportKind::Quic => Arc::new(QuicTransport::new(
                QuicConfig::default().http(http_config()),
            )?),
        })
    }
}

/// The HTTP settings of either transport: the HTTP transport's own, and the QUIC transport's TCP
/// door and links (message limit, keep-alives, link buffer). One function, so that a node behaves
/// the same whichever transport it serves with.
fn http_config() -> HttpConfig {
    HttpConfig::default()
}

/// Builds a system with `pulsing::system_builder()` and completes `fut` with a [`NativeSystem`].
///
/// With `addr` the system serves on it and with `seeds` joins them (the facade's membership), over
/// `transport` ([`TransportKind`]): `"http"`, or `"quic"` (QUIC on UDP port P, HTTP on TCP port P,
/// peers that do not answer QUIC called over TCP). Without `addr` and `seeds` the system is
/// standalone and `transport` is only checked (`ValueError` for another name).
///
/// `mailbox_capacity` and `mailbox_wait` are the core mailbox's settings, so a Python actor's proxy
/// bounds messages from other nodes as the Python mailbox bounds local ones.
///
/// `secrets` are the cluster secrets (`docs/security.md`; the first presented, all accepted) and
/// `api_tokens` the bearer tokens HTTP clients may use; with no secrets the builder reads
/// `PULSING_SECRET`. An empty secret or token, or tokens without a secret, fail the build with
/// `PulsingError::Config`; a seed that refuses this node's identity with `Unauthorized`.
#[pyfunction]
#[pyo3(signature = (hub, fut, addr=None, seeds=Vec::new(), ask_timeout=None, mailbox_capacity=None, mailbox_wait=None, transport="http", secrets=Vec::new(), api_tokens=Vec::new()))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_system(
    hub: &Bound<'_, Hub>,
    fut: Py<PyAny>,
    addr: Option<String>,
    seeds: Vec<String>,
    ask_timeout: Option<f64>,
    mailbox_capacity: Option<usize>,
    mailbox_wait: Option<f64>,
    transport: &str,
    secrets: Vec<String>,
    api_tokens: Vec<String>,
) -> PyResult<()> {
    let kind = TransportKind::parse(transport)?;
    // Only a networked system gets a transport: a builder with one serves, address or not.
    let networked = addr.is_some() || !seeds.is_empty();
    let mut builder = pulsing::system_builder();
    if let Some(addr) = addr {
        builder = builder.addr(addr);
    }
    if !seeds.is_empty() {
        builder = builder.seeds(seeds);
    }
    if let Some(t) = ask_timeout {
        builder = builder.ask_timeout(seconds(t)?);
    }
    if let Some(c) = mailbox_capacity {
        builder = builder.mailbox_capacity(c);
    }
    if let Some(w) = mailbox_wait {
        builder = builder.mailbox_wait(seconds(w)?);
    }
    // None given: the builder keeps its default, `PULSING_SECRET` (read at `build`).
    if !secrets.is_empty() {
        builder = builder.secrets(secrets);
    }
    if !api_tokens.is_empty() {
        builder = builder.api_tokens(api_tokens);
    }
    // The transport is made on the runtime, where its tasks will run.
    hub.get().run(fut, async move {
        let built = async {
            if networked {
                builder = builder.transport_arc(kind.make()?);
            }
            builder.build().await
        };
        Outcome::System(built.await)
    });
    Ok(())
}

/// Whether this build can serve on an address: tries `system_builder().addr("127.0.0.1:0")` once.
pub(crate) fn probe_network() -> bool {
    let probe = async {
        match pulsing::system_builder().addr("127.0.0.1:0").build().await {
            Ok(system) => {
                system.shutdown().await;
                true
            }
            Err(_) => false,
        }
    };
    crate::runtime::block_on_bounded(probe, Duration::from_secs(10)).unwrap_or(false)
}

/// Counts by name: wire error kinds (`ErrorKind::as_str`) or member states.
type Counts = Vec<(&'static str, u64)>;

/// The core `SystemStats` for Python, field by field in this order; `pulsing/_stats.py` turns it
/// into the Python `SystemStats`.
type StatsTuple = (
    u64,    // actors
    u64,    // messages_handled
    u64,    // queued
    u64,    // in_flight_asks
    u64,    // expired_asks
    u64,    // panics
    u64,    // restarts
    Counts, // errors: every kind, zeros included
    Counts, // dead_letters: every kind, zeros included
    u64,    // bad_links
    Counts, // members: every state, zeros included
);

/// The Python API's name of a member state.
fn member_state(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Down => "down",
        MemberState::Left => "left",
        // A state added later reads as the nearest one the Python API names.
        _ => "suspect",
    }
}

/// A running core `ActorSystem`.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct NativeSystem {
    system: ActorSystem,
}

impl NativeSystem {
    pub(crate) fn new(system: ActorSystem) -> NativeSystem {
        NativeSystem { system }
    }
}

#[pymethods]
impl NativeSystem {
    /// The bound address `host:port`, or `None` for a standalone system.
    #[getter]
    fn addr(&self) -> Option<String> {
        self.system.addr().map(|a| a.to_string())
    }

    /// This run's boot id, 16 hex digits.
    #[getter]
    fn node_id(&self) -> String {
        self.system.node_id().to_string()
    }

    /// The members as this node sees them: `(addr, node_id, state)`, state one of `"alive"`,
    /// `"suspect"`, `"down"`, `"left"`.
    fn members(&self) -> Vec<(String, String, &'static str)> {
        self.system
            .members()
            .into_iter()
            .map(|m| (m.addr.to_string(), m.id.to_string(), member_state(m.state)))
            .collect()
    }

    /// A snapshot of the core `ActorSystem::stats()`, as the tuple [`StatsTuple`] describes. Reads
    /// counters only: never waits.
    fn stats(&self) -> StatsTuple {
        let s = self.system.stats();
        let by_kind = |counts: Vec<(ErrorKind, u64)>| {
            counts
                .into_iter()
                .map(|(kind, n)| (kind.as_str(), n))
                .collect::<Vec<_>>()
        };
        // Every state, zeros included, as `/metrics` lists them.
        let mut members: Counts = ["alive", "suspect", "down", "left"]
            .map(|state| (state, 0))
            .to_vec();
        for (state, n) in s.members {
            let state = member_state(state);
            if let Some((_, count)) = members.iter_mut().find(|(s, _)| *s == state) {
                *count += n as u64;
            }
        }
        (
            s.actors as u64,
            s.messages_handled,
            s.queued,
            s.in_flight_asks,
            s.expired_asks,
            s.panics,
            s.restarts,
            by_kind(s.errors),
            by_kind(s.dead_letters),
            s.bad_links,
            members,
        )
    }

    /// The default ask timeout, in seconds.
    #[getter]
    fn ask_timeout(&self) -> f64 {
        self.system.ask_timeout().as_secs_f64()
    }

    /// Registers the Python actor `actor_id` under `name` (with no name: an anonymous actor, whose
    /// id the core generates and which is reachable only through its ref): a proxy actor in the
    /// core system that hands its messages to the hub, at most as many unread as `credits` allows.
    /// Completes `fut` with the proxy's [`NativeRef`].
    fn spawn(
        &self,
        hub: &Bound<'_, Hub>,
        fut: Py<PyAny>,
        name: Option<String>,
        public: bool,
        actor_id: u64,
        credits: &Bound<'_, Credits>,
    ) {
        let hub = hub.get();
        let system = self.system.clone();
        let proxy = PyProxy::new(actor_id, hub.shared.clone(), credits.get().permits.clone());
        let opts = SpawnOptions::new().public(public);
        hub.run(fut, async move {
            Outcome::Spawned(match name {
                Some(name) => system.spawn_with(proxy, &name, opts).await,
                None => system.spawn_anonymous(proxy, opts).await,
            })
        });
    }

    /// Completes `fut` with a list of [`NativeRef`]s: every reachable instance of `name`, this
    /// node's first.
    fn find_all(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>, name: String) {
        let system = self.system.clone();
        hub.get().run(fut, async move {
            Outcome::FoundAll(system.find_all(&name).await)
        });
    }

    /// The ref that msgpack extension data `[addr, node, id]` names (see `docs/protocol.md`).
    fn decode_ref(&self, data: &[u8]) -> PyResult<NativeRef> {
        self.system
            .decode_ref(data)
            .map(NativeRef::new)
            .map_err(crate::errors::to_py_err)
    }

    /// Completes `fut` with a [`NativeRef`] to `name` (local first, then the cluster) or `None`.
    fn find(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>, name: String) {
        let system = self.system.clone();
        hub.get()
            .run(fut, async move { Outcome::Found(system.find(&name).await) });
    }

    /// Stops the local actor `name`; completes `fut` with `None`.
    fn stop(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>, name: String) {
        let system = self.system.clone();
        hub.get()
            .run(fut, async move { Outcome::Unit(system.stop(&name).await) });
    }

    /// Shuts the system down (see `ActorSystem::shutdown`); completes `fut` with `None`.
    fn shutdown(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>) {
        let system = self.system.clone();
        hub.get().run(fut, async move {
            system.shutdown().await;
            Outcome::Unit(Ok(()))
        });
    }

    /// A ref to `name` served at `addr` (`host:port`), without asking the membership.
    fn remote_ref(&self, addr: &str, name: &str) -> PyResult<NativeRef> {
        let addr = addr
            .parse()
            .map_err(|e| PyValueError::new_err(format!("address {addr:?} is not ip:port ({e})")))?;
        self.system
            .remote_ref(addr, name)
            .map(NativeRef::new)
            .map_err(crate::errors::to_py_err)
    }
}

/// A core `ActorRef`: a remote actor, or a local one reached through the core runtime.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct NativeRef {
    inner: ActorRef,
}

impl NativeRef {
    pub(crate) fn new(inner: ActorRef) -> NativeRef {
        NativeRef { inner }
    }

    /// Queues the ask of `ask` and `call`; `decode` picks how the hub hands the reply to Python.
    fn submit_ask(
        &self,
        hub: &Bound<'_, Hub>,
        fut: Py<PyAny>,
        msg_type: String,
        payload: &[u8],
        timeout: f64,
        decode: bool,
    ) -> PyResult<u64> {
        let timeout = seconds(timeout)?;
        let msg = Message::single(msg_type, Bytes::copy_from_slice(payload));
        Ok(hub.get().submit(fut, |id| Job::Ask {
            id,
            target: self.inner.clone(),
            msg,
            timeout,
            decode,
        }))
    }
}

#[pymethods]
impl NativeRef {
    /// The actor's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// Whether the actor runs in this process.
    #[getter]
    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    /// The remote node's address `host:port`, `None` for a local actor.
    #[getter]
    fn remote_addr(&self) -> Option<String> {
        self.inner.remote_addr().map(|a| a.to_string())
    }

    /// The boot id of the node the ref is pinned to (16 hex digits); `None` for a local actor or a
    /// ref that accepts whichever run of its node answers.
    #[getter]
    fn node_id(&self) -> Option<String> {
        self.inner
            .remote_target()
            .and_then(|t| t.node)
            .map(|n| n.to_string())
    }

    /// This ref as msgpack extension data `[addr, node, id]` (see `docs/protocol.md`).
    fn ext_data(&self) -> Vec<u8> {
        self.inner.ext_data()
    }

    /// Sends `(msg_type, payload)` and completes `fut` with the reply: `(msg_type, payload)`, or a
    /// [`NativeStream`] for a streamed reply (each item then waits at most `timeout`). Returns the
    /// call's number, for `Hub.cancel`.
    #[pyo3(signature = (hub, fut, msg_type, payload, timeout))]
    fn ask(
        &self,
        hub: &Bound<'_, Hub>,
        fut: Py<PyAny>,
        msg_type: String,
        payload: &[u8],
        timeout: f64,
    ) -> PyResult<u64> {
        self.submit_ask(hub, fut, msg_type, payload, timeout, false)
    }

    /// Calls the method `method` (the payload being `msgpack([args, kwargs])`) and completes `fut`
    /// with the reply decoded by the hub's `decode`, or, for a streamed reply, with the hub's
    /// `stream(NativeStream)`. Returns the call's number, for `Hub.cancel`.
    #[pyo3(signature = (hub, fut, method, payload, timeout))]
    fn call(
        &self,
        hub: &Bound<'_, Hub>,
        fut: Py<PyAny>,
        method: String,
        payload: &[u8],
        timeout: f64,
    ) -> PyResult<u64> {
        self.submit_ask(hub, fut, method, payload, timeout, true)
    }

    /// Queues `(msg_type, payload)` without waiting for it to be handled; completes `fut` with `None`
    /// once it is queued (or with the error that kept it from being queued).
    fn tell(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>, msg_type: String, payload: &[u8]) {
        let msg = Message::single(msg_type, Bytes::copy_from_slice(payload));
        hub.get().submit(fut, |id| Job::Tell {
            id,
            target: self.inner.clone(),
            msg,
        });
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// A streamed reply being read from Python, one item per `next` call.
#[pyclass(frozen, module = "pulsing._pulsing")]
pub(crate) struct NativeStream {
    inner: Arc<tokio::sync::Mutex<MessageStream>>,
}

impl NativeStream {
    pub(crate) fn new(stream: MessageStream) -> NativeStream {
        NativeStream {
            inner: Arc::new(tokio::sync::Mutex::new(stream)),
        }
    }
}

#[pymethods]
impl NativeStream {
    /// Completes `fut` with the next item `(msg_type, payload)`, `None` at the end, or the error that
    /// ended the stream (a stream cut short raises rather than ending cleanly).
    fn next(&self, hub: &Bound<'_, Hub>, fut: Py<PyAny>) {
        let stream = self.inner.clone();
        hub.get().run(fut, async move {
            Outcome::Item(stream.lock().await.next().await)
        });
    }
}
