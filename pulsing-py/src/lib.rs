//! The native half of the Python package: the PyO3 extension module `pulsing._pulsing`.
//!
//! It holds thin handles over the `pulsing` facade crate (a system, refs, streamed replies), the
//! [`hub::Hub`] that carries results from Tokio to the asyncio loop, the proxy that makes a Python
//! actor reachable from the core system, the client certificates of [`security`], and the
//! exception hierarchy. The pure-Python package `pulsing` (in `python/pulsing/`) builds the public
//! API on top (`pulsing.actor`); nothing here is meant to be called by users directly.
//!
//! It does not run Python handlers on Tokio threads, and no Tokio thread ever waits for the GIL:
//!
//! - a Python actor lives on the asyncio loop that created its system, with one mailbox in Python;
//!   local callers on that loop use it directly (no thread hop);
//! - messages from the core system (other nodes, core refs) reach it through [`proxy::PyProxy`] and
//!   the hub, in batches;
//! - every call that can wait runs on the module's Tokio runtime ([`runtime`]) and completes an asyncio
//!   future through the hub: one wake-up of the loop for many completions; asks and tells also go in
//!   in batches ([`submit`]): one wake-up of Tokio for many calls.
//!
//! Unix only: the hub wakes the loop through a socket pair.
//!
//! # Why the exceptions are defined in Python
//!
//! `pyo3::create_exception!` takes exactly one base class, but `AskTimeoutError` must be both a
//! `PulsingError` and a builtin `TimeoutError` (and `NodeUnreachableError` a `ConnectionError`),
//! so that `except TimeoutError:` keeps working for callers who know nothing of Pulsing. Rather
//! than split the hierarchy between two places (some classes made by the macro, some built by
//! calling `type()` at init), all of it lives in `python/pulsing/exceptions.py`, where multiple
//! inheritance, docstrings, `__module__` and pickling come for free. Rust binds each class with
//! `pyo3::import_exception!`, which imports it on first use and caches the type object in a
//! `PyOnceLock`, so `AskTimeoutError::new_err(..)` costs one import per process. The module
//! re-exports the same class objects, so `pulsing._pulsing.PulsingError is pulsing.PulsingError`.

#![deny(missing_docs)]
// Everything here is private to the extension module; its docs are read with
// `cargo doc --document-private-items`, where these links resolve.
#![allow(rustdoc::private_intra_doc_links)]

use pyo3::prelude::*;

mod batch;
mod errors;
mod hub;
mod log;
mod native;
mod proxy;
mod runtime;
mod security;
mod submit;

pyo3::import_exception!(pulsing.exceptions, PulsingError);
pyo3::import_exception!(pulsing.exceptions, ActorNotFoundError);
pyo3::import_exception!(pulsing.exceptions, ActorError);
pyo3::import_exception!(pulsing.exceptions, AskTimeoutError);
pyo3::import_exception!(pulsing.exceptions, NodeUnreachableError);
pyo3::import_exception!(pulsing.exceptions, MailboxFullError);
pyo3::import_exception!(pulsing.exceptions, BadMessageError);
pyo3::import_exception!(pulsing.exceptions, ActorStoppedError);
pyo3::import_exception!(pulsing.exceptions, UnauthorizedError);

/// Native core of the Pulsing actor runtime; the public API is `pulsing.actor`.
#[pymodule]
mod _pulsing {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::{
        ActorError, ActorNotFoundError, ActorStoppedError, AskTimeoutError, BadMessageError,
        MailboxFullError, NodeUnreachableError, PulsingError, UnauthorizedError,
    };

    #[pymodule_export]
    use crate::hub::Hub;
    #[pymodule_export]
    use crate::native::{build_system, NativeRef, NativeStream, NativeSystem};
    #[pymodule_export]
    use crate::proxy::{Credits, ReplyHandle, StreamWriter};
    #[pymodule_export]
    use crate::security::client_certificate;

    /// Adds the attributes that are values rather than classes or functions.
    ///
    /// `NETWORK_AVAILABLE` says whether `pulsing::system_builder().addr("127.0.0.1:0")` builds, i.e.
    /// whether the facade this module was built against has a transport; it is found once, at import,
    /// by trying it (with the GIL released, bounded at 10 s).
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        // First, so that the events of the network probe below are recorded too.
        crate::log::install(m.py())?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        let network = m.py().detach(crate::native::probe_network);
        m.add("NETWORK_AVAILABLE", network)
    }
}
