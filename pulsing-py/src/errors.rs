//! From [`PulsingError`] to the Python exception classes of `pulsing.exceptions`.
//!
//! The mapping follows the error's predicates, one class per predicate, so a remote error rebuilt from
//! its wire kind maps exactly like a local one.

use pulsing::PulsingError;
use pyo3::PyErr;

use crate::{
    ActorError, ActorNotFoundError, ActorStoppedError, AskTimeoutError, BadMessageError,
    MailboxFullError, NodeUnreachableError, PulsingError as PyPulsingError,
};

/// The Python exception for `err`.
///
/// | predicate | class |
/// |---|---|
/// | `is_not_found` | `ActorNotFoundError` |
/// | `is_actor_error` | `ActorError(text, type_name, message)` |
/// | `is_timeout` | `AskTimeoutError` |
/// | `is_unreachable` | `NodeUnreachableError` |
/// | `is_mailbox_full` | `MailboxFullError` |
/// | `is_bad_message` | `BadMessageError` |
/// | `is_stopped` | `ActorStoppedError` |
/// | anything else | `PulsingError` |
pub(crate) fn to_py_err(err: PulsingError) -> PyErr {
    let text = err.to_string();
    if err.is_not_found() {
        ActorNotFoundError::new_err(text)
    } else if err.is_actor_error() {
        let (type_name, message) = match &err {
            PulsingError::Actor(e) => (e.type_name().map(str::to_owned), e.message().to_owned()),
            PulsingError::Panicked { message, .. } => (Some("panic".to_owned()), message.clone()),
            other => (None, other.wire_message()),
        };
        let text = match &type_name {
            Some(t) => format!("{t}: {message}"),
            None => message.clone(),
        };
        ActorError::new_err((text, type_name, message))
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
    } else {
        PyPulsingError::new_err(text)
    }
}
