//! From [`PulsingError`] to the Python exception classes of `pulsing.exceptions`.
//!
//! The mapping follows the error's predicates, one class per predicate, so a remote error rebuilt from
//! its wire kind maps exactly like a local one.

use pulsing::{Delivery, ErrorKind, PulsingError};
use pyo3::prelude::*;
use pyo3::PyErr;

use crate::{
    ActorError, ActorNotFoundError, ActorStoppedError, AskTimeoutError, BadMessageError,
    MailboxFullError, NodeUnreachableError, PulsingError as PyPulsingError, UnauthorizedError,
};

/// The Python exception for `err`.
///
/// | predicate | class |
/// |---|---|
/// | `is_not_found` | `ActorNotFoundError` |
/// | `is_actor_error` | `pulsing.exceptions.make_actor_error(type_name, message, detail)`: an `ActorError`, also an instance of the builtin class it names (`ValueError`, ...) |
/// | `is_timeout` | `AskTimeoutError` |
/// | `is_unreachable` | `NodeUnreachableError` |
/// | `is_mailbox_full` | `MailboxFullError` |
/// | `is_bad_message` | `BadMessageError` |
/// | `is_stopped` | `ActorStoppedError` |
/// | kind `unauthorized` | `UnauthorizedError` |
/// | anything else | `PulsingError` |
pub(crate) fn to_py_err(err: PulsingError) -> PyErr {
    let delivery = delivery_name(err.delivery());
    let py_err = py_class_err(err);
    // The typed field, as the exception's `delivery` attribute (its class gives the usual value;
    // this sets the exact one, e.g. for `NodeUnreachableError`).
    Python::attach(|py| {
        let _ = py_err.value(py).setattr("delivery", delivery);
    });
    py_err
}

/// The Python name of a [`Delivery`]: `"not_delivered"`, `"maybe_delivered"` or `"handled"`.
fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::NotDelivered => "not_delivered",
        Delivery::Handled => "handled",
        // `MaybeDelivered`, and any kind added later: the cautious answer.
        _ => "maybe_delivered",
    }
}

fn py_class_err(err: PulsingError) -> PyErr {
    let text = err.to_string();
    if err.is_not_found() {
        ActorNotFoundError::new_err(text)
    } else if err.is_actor_error() {
        let (type_name, message, detail) = match &err {
            PulsingError::Actor(e) => (
                e.type_name().map(str::to_owned),
                e.message().to_owned(),
                e.detail().map(str::to_owned),
            ),
            PulsingError::Panicked { message, .. } => {
                (Some("panic".to_owned()), message.clone(), None)
            }
            other => (None, other.wire_message(), None),
        };
        actor_error(type_name, message, detail)
    } else if err.is_timeout() {
        AskTimeoutError::new_err(text)
    } else if err.is_unreachable() {
        NodeUnreachableError::new_err(text)
    } else if err.is_mailbox_full() {
        MailboxFullError::new_err(text)
    } else if err.is_bad_message() {
        BadMessageError::new_err(text)
    } else if err.is_stopped() {
        ActorStoppedError::new_err(text)
    } else if err.kind() == ErrorKind::Unauthorized {
        // The core has no `is_unauthorized` predicate; the kind says the same.
        UnauthorizedError::new_err(text)
    } else {
        PyPulsingError::new_err(text)
    }
}

/// The `ActorError` of a handler error, built by `pulsing.exceptions.make_actor_error` so that it is
/// also an instance of the builtin exception class it names and carries the remote traceback.
fn actor_error(type_name: Option<String>, message: String, detail: Option<String>) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("pulsing.exceptions")
            .and_then(|m| m.getattr("make_actor_error"))
            .and_then(|f| f.call1((type_name.clone(), message.clone(), detail)));
        match made {
            Ok(exc) => PyErr::from_value(exc),
            // The package is broken (cannot import): still a typed error.
            Err(_) => {
                let text = match &type_name {
                    Some(t) => format!("{t}: {message}"),
                    None => message.clone(),
                };
                ActorError::new_err((text, type_name, message))
            }
        }
    })
}
