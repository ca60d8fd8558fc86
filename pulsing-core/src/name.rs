//! Actor names and their rules.

use std::fmt;
use std::sync::Arc;

use crate::error::PulsingError;

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A validated actor name, cheap to clone.
///
/// Names appear in URLs (`POST /actor/{name}`) and in the cluster registry, so they are kept to a
/// URL-safe alphabet that needs no escaping:
///
/// - 1 to [`MAX_NAME_LEN`] (128) bytes;
/// - ASCII letters `A-Z a-z`, digits `0-9`, `_`, `-` and `.`;
/// - the first character is a letter, a digit or `_` (so `.` and `..` can never be a name).
///
/// Names are case-sensitive. Anything else is refused with [`PulsingError::InvalidName`].
///
/// # Examples
///
/// ```
/// use pulsing_core::ActorName;
/// assert!(ActorName::new("worker-1.v2").is_ok());
/// assert!(ActorName::new("../etc").unwrap_err().is_bad_message());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorName(Arc<str>);

impl ActorName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`PulsingError::InvalidName`] naming the broken rule.
    pub fn new(name: &str) -> Result<ActorName, PulsingError> {
        validate(name)?;
        Ok(ActorName(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks `name` against the rules documented on [`ActorName`].
///
/// # Errors
///
/// [`PulsingError::InvalidName`] naming the broken rule.
fn validate(name: &str) -> Result<(), PulsingError> {
    let fail = |reason| {
        Err(PulsingError::InvalidName {
            name: name.chars().take(MAX_NAME_LEN + 8).collect(),
            reason,
        })
    };
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return fail("names must not be empty");
    };
    if bytes.len() > MAX_NAME_LEN {
        return fail("names are at most 128 bytes");
    }
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return fail("names start with a letter, a digit or '_'");
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return fail("names use only A-Z a-z 0-9 _ - .");
    }
    Ok(())
}

impl fmt::Display for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for ActorName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ActorName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for ActorName {
    type Error = PulsingError;
    fn try_from(s: &str) -> Result<ActorName, PulsingError> {
        ActorName::new(s)
    }
}

impl TryFrom<String> for ActorName {
    type Error = PulsingError;
    fn try_from(s: String) -> Result<ActorName, PulsingError> {
        ActorName::new(&s)
    }
}

impl TryFrom<&String> for ActorName {
    type Error = PulsingError;
    fn try_from(s: &String) -> Result<ActorName, PulsingError> {
        ActorName::new(s)
    }
}

impl TryFrom<&ActorName> for ActorName {
    type Error = PulsingError;
    fn try_from(s: &ActorName) -> Result<ActorName, PulsingError> {
        Ok(s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in [
            "a",
            "worker",
            "local-worker",
            "_private",
            "v1.2.3",
            "A_b-C.9",
            "0",
        ] {
            assert!(ActorName::new(ok).is_ok(), "{ok}");
        }
        assert!(ActorName::new(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        for bad in [
            "", ".", "..", "-x", "a b", "a/b", "a%2F", "é", "a\n", "a?b", "a#b",
        ] {
            let err = ActorName::new(bad).unwrap_err();
            assert!(err.is_bad_message(), "{bad:?} -> {err}");
        }
        let err = ActorName::new(&"x".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("at most 128"));
    }
}
