//! The native half of the Python package: the PyO3 extension module `pulsing._pulsing`.
//!
//! For now it holds only the package version and the exception hierarchy that Rust code raises.
//! Later it will hold the bindings for `ActorSystem`, `ActorRef` and `Message` over the `pulsing`
//! facade crate; the pure-Python package `pulsing` (in `python/pulsing/`) re-exports this module
//! and adds the thin Pythonic layer on top (`pulsing.actor`).
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

use pyo3::prelude::*;

pyo3::import_exception!(pulsing.exceptions, PulsingError);
pyo3::import_exception!(pulsing.exceptions, ActorNotFoundError);
pyo3::import_exception!(pulsing.exceptions, ActorError);
pyo3::import_exception!(pulsing.exceptions, AskTimeoutError);
pyo3::import_exception!(pulsing.exceptions, NodeUnreachableError);
pyo3::import_exception!(pulsing.exceptions, MailboxFullError);
pyo3::import_exception!(pulsing.exceptions, BadMessageError);
pyo3::import_exception!(pulsing.exceptions, ActorStoppedError);

/// Native core of the Pulsing actor runtime (package version and exception classes).
#[pymodule]
mod _pulsing {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::{
        ActorError, ActorNotFoundError, ActorStoppedError, AskTimeoutError, BadMessageError,
        MailboxFullError, NodeUnreachableError, PulsingError,
    };

    /// Adds the attributes that are values rather than classes or functions.
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
