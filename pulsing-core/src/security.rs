//! [`Security`]: the cluster secrets and API tokens a system's transport enforces
//! (`docs/security.md`).
//!
//! The core only carries them: what a secret turns into (a cluster CA derived from it, a certificate
//! per node, mutual TLS) is the transports' business ([`Transport::secure`](crate::Transport::secure)).

use std::fmt;
use std::sync::Arc;

use crate::error::PulsingError;

/// The environment variable read for the cluster secret when the builder was given none (how
/// Kubernetes passes secrets): `PULSING_SECRET`.
pub const SECRET_ENV: &str = "PULSING_SECRET";

/// A secret string (a cluster secret or an API token). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps `text`.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if `text` is empty or only whitespace (an empty `PULSING_SECRET`
    /// is a mistake, not a choice of no security: then do not set it).
    pub fn new(text: impl Into<String>) -> Result<Secret, PulsingError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(PulsingError::Config(
                "a cluster secret or API token may not be empty".into(),
            ));
        }
        Ok(Secret(text.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a networked system must enforce: with at least one cluster secret, every node-to-node
/// connection is mutually authenticated with certificates from the cluster CA derived from the
/// secret, and HTTP clients need a client certificate from that CA or one of the API tokens.
///
/// With several secrets, the **first** is presented (this node's certificate comes from its CA) and
/// **every one** is accepted: how a cluster rotates its secret without an outage.
/// [`Security::default`] is off: no secret, no tokens (plaintext, unauthenticated, as before).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Security {
    secrets: Vec<Secret>,
    api_tokens: Vec<Secret>,
}

impl Security {
    /// Security with `secrets` (first presented, all accepted) and `api_tokens` for HTTP clients.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] for tokens without a secret (tokens are only sent over TLS, and
    /// TLS needs the cluster secret).
    pub fn new(secrets: Vec<Secret>, api_tokens: Vec<Secret>) -> Result<Security, PulsingError> {
        if secrets.is_empty() && !api_tokens.is_empty() {
            return Err(PulsingError::Config(
                "API tokens need a cluster secret: tokens are only accepted over TLS, and the \
                 node's TLS certificate comes from the secret; set .secret(..) or PULSING_SECRET"
                    .into(),
            ));
        }
        Ok(Security {
            secrets,
            api_tokens,
        })
    }

    /// Whether any secret is set (TLS and authentication on).
    pub fn is_enabled(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The secrets: the first is presented, all are accepted.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// The tokens HTTP clients may send as `Authorization: Bearer <token>`.
    pub fn api_tokens(&self) -> &[Secret] {
        &self.api_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_printed() {
        let s = Secret::new("hunter2").unwrap();
        let sec = Security::new(vec![s.clone()], vec![]).unwrap();
        assert!(!format!("{s:?} {sec:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn empty_secrets_and_tokens_without_a_secret_are_refused() {
        assert!(matches!(Secret::new("  "), Err(PulsingError::Config(_))));
        let t = Secret::new("token").unwrap();
        assert!(matches!(
            Security::new(vec![], vec![t]),
            Err(PulsingError::Config(_))
        ));
        assert!(!Security::default().is_enabled());
    }
}
