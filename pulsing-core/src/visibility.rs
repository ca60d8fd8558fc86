//! Who can reach an actor: [`Visibility`], and the generated ids of anonymous actors.

use std::fmt::Write as _;

use crate::error::PulsingError;
use crate::name::ActorName;

/// The prefix of every anonymous actor's id; names with it are reserved (see
/// [`ActorSystem::spawn_anonymous`](crate::ActorSystem::spawn_anonymous)).
pub const ANONYMOUS_PREFIX: &str = "anon.";

/// Who can find and call an actor.
///
/// | visibility | `find` by name | served to other nodes |
/// |---|---|---|
/// | `Private` | this node | never (`not_found`) |
/// | `Public` | every node of the cluster | yes |
/// | `Anonymous` | nobody | yes, to whoever holds its ref (or its id) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Visibility {
    /// Spawned by name without `public(true)`: reachable only from this process.
    Private,
    /// Spawned by name with `public(true)`: registered with the membership, found from any node.
    Public,
    /// Spawned by [`ActorSystem::spawn_anonymous`](crate::ActorSystem::spawn_anonymous): no name to
    /// find it by; reachable through its ref, from any node.
    Anonymous,
}

impl Visibility {
    /// Whether the transports serve the actor to other nodes (public and anonymous actors).
    pub fn is_served_remotely(self) -> bool {
        matches!(self, Visibility::Public | Visibility::Anonymous)
    }
}

/// Whether `name` is in the namespace reserved for anonymous ids.
pub(crate) fn is_anonymous_id(name: &str) -> bool {
    name.starts_with(ANONYMOUS_PREFIX)
}

/// A fresh anonymous id: [`ANONYMOUS_PREFIX`] and 128 bits from the OS random source as 32 lowercase
/// hex digits. Unguessable, so holding the ref (or its id) is what lets a caller reach the actor.
///
/// # Errors
///
/// [`PulsingError::Config`] if the OS random source fails (no actor is spawned then).
pub(crate) fn anonymous_id() -> Result<ActorName, PulsingError> {
    let mut bits = [0u8; 16];
    getrandom::fill(&mut bits)
        .map_err(|e| PulsingError::Config(format!("the OS random source failed: {e}")))?;
    let mut id = String::with_capacity(ANONYMOUS_PREFIX.len() + 32);
    id.push_str(ANONYMOUS_PREFIX);
    for b in bits {
        let _ = write!(id, "{b:02x}");
    }
    ActorName::new(&id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_ids_are_the_prefix_and_32_lowercase_hex_digits() {
        let id = anonymous_id().unwrap();
        let hex = id.as_str().strip_prefix(ANONYMOUS_PREFIX).unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert!(is_anonymous_id(id.as_str()));
    }

    #[test]
    fn two_anonymous_ids_differ() {
        assert_ne!(anonymous_id().unwrap(), anonymous_id().unwrap());
    }
}
