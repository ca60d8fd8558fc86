//! [`ActorSystemBuilder`]: configuration of an [`ActorSystem`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::PulsingError;
use crate::mailbox::{DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAILBOX_WAIT};
use crate::membership::{Membership, Standalone};
use crate::security::{Secret, Security, SECRET_ENV};
use crate::system::ActorSystem;
use crate::transport::{NoTransport, Transport};

/// Default time an ask waits for its reply.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound on draining an actor at stop/shutdown, and separately on its `on_stop`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings of a built system.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) ask_timeout: Duration,
    pub(crate) mailbox_capacity: usize,
    pub(crate) mailbox_wait: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) advertise_addr: Option<SocketAddr>,
    pub(crate) security: Security,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ask_timeout: DEFAULT_ASK_TIMEOUT,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            mailbox_wait: DEFAULT_MAILBOX_WAIT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            advertise_addr: None,
            security: Security::default(),
        }
    }
}

/// Builds an [`ActorSystem`].
///
/// With nothing set, the system is standalone: no network, no cluster, every default below.
/// With a transport, it serves on [`addr`](Self::addr) (default `127.0.0.1:0`, a free port);
/// with seeds, a membership implementation joins them.
///
/// | setting | default |
/// |---|---|
/// | [`ask_timeout`](Self::ask_timeout) | [`DEFAULT_ASK_TIMEOUT`] (30 s) |
/// | [`mailbox_capacity`](Self::mailbox_capacity) | [`DEFAULT_MAILBOX_CAPACITY`] (1024) |
/// | [`mailbox_wait`](Self::mailbox_wait) | [`DEFAULT_MAILBOX_WAIT`] (5 s) |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | [`DEFAULT_SHUTDOWN_TIMEOUT`] (5 s) |
/// | [`secret`](Self::secret) | the environment variable `PULSING_SECRET`, else none (no TLS, no authentication) |
/// | [`api_tokens`](Self::api_tokens) | none |
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing_core::PulsingError> {
/// use std::time::Duration;
/// let system = pulsing_core::ActorSystem::builder()
///     .ask_timeout(Duration::from_secs(5))
///     .build()
///     .await?;
/// assert_eq!(system.addr(), None);
/// # system.shutdown().await; Ok(()) }
/// ```
#[derive(Default)]
#[must_use = "call .build().await"]
pub struct ActorSystemBuilder {
    config: Config,
    addr: Option<String>,
    seeds: Vec<String>,
    transport: Option<Arc<dyn Transport>>,
    membership: Option<Arc<dyn Membership>>,
    fallback_transport: Option<Factory<dyn Transport>>,
    fallback_membership: Option<Factory<dyn Membership>>,
    secrets: Vec<String>,
    api_tokens: Vec<String>,
}

type Factory<T> = Box<dyn FnOnce() -> Arc<T> + Send>;

impl ActorSystemBuilder {
    /// The address to serve on, `host:port` with an IP host (port 0 picks a free port). Needs a
    /// transport.
    pub fn addr(mut self, addr: impl Into<String>) -> Self {
        self.addr = Some(addr.into());
        self
    }

    /// The address peers should use to reach this node, when it differs from the bound one (NAT,
    /// containers) or the bound one is a wildcard. Without it, a node bound to `0.0.0.0`/`[::]` picks
    /// one as described in [`ActorSystem::advertise_addr`].
    pub fn advertise_addr(mut self, addr: SocketAddr) -> Self {
        self.config.advertise_addr = Some(addr);
        self
    }

    /// Seed nodes to join (`host:port`; host may be a DNS name). Needs a membership.
    pub fn seeds<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.seeds = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// The transport to serve and send with.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The transport, already shared.
    pub fn transport_arc(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Whether a transport has been set.
    pub fn has_transport(&self) -> bool {
        self.transport.is_some()
    }

    /// The membership to join the cluster with.
    pub fn membership(mut self, membership: impl Membership) -> Self {
        self.membership = Some(Arc::new(membership));
        self
    }

    /// The membership, already shared.
    pub fn membership_arc(mut self, membership: Arc<dyn Membership>) -> Self {
        self.membership = Some(membership);
        self
    }

    /// Whether a membership has been set.
    pub fn has_membership(&self) -> bool {
        self.membership.is_some()
    }

    /// The transport to use if an address or seeds are set but no [`transport`](Self::transport) was
    /// given. The `pulsing` facade sets this to its default transport, so that `.addr(..)` alone makes a
    /// networked node while a builder with no address stays standalone.
    pub fn fallback_transport<F>(mut self, make: F) -> Self
    where
        F: FnOnce() -> Arc<dyn Transport> + Send + 'static,
    {
        self.fallback_transport = Some(Box::new(make));
        self
    }

    /// The membership to use if the system serves an address but no
    /// [`membership`](Self::membership) was given (see [`fallback_transport`](Self::fallback_transport)).
    pub fn fallback_membership<F>(mut self, make: F) -> Self
    where
        F: FnOnce() -> Arc<dyn Membership> + Send + 'static,
    {
        self.fallback_membership = Some(Box::new(make));
        self
    }

    /// Default timeout of `ask` for refs made by this system.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.config.ask_timeout = timeout;
        self
    }

    /// Default mailbox capacity (at least 1).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.config.mailbox_capacity = capacity.max(1);
        self
    }

    /// How long `ask`/`tell` wait for room in a full mailbox.
    pub fn mailbox_wait(mut self, wait: Duration) -> Self {
        self.config.mailbox_wait = wait;
        self
    }

    /// Bound on draining an actor at stop/shutdown, and separately on its `on_stop`.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// The cluster secret (`docs/security.md`): every node with the same secret derives the same
    /// cluster CA from it and gets a certificate from that CA at start; node-to-node connections are
    /// then mutually authenticated TLS, and a node without the secret cannot join, gossip or call.
    /// HTTP clients need a client certificate from the CA or one of the
    /// [`api_tokens`](Self::api_tokens). Without this, the secret is read from the environment
    /// variable `PULSING_SECRET` at [`build`](Self::build); without either, nothing is
    /// authenticated (as before).
    pub fn secret(self, secret: impl Into<String>) -> Self {
        self.secrets([secret])
    }

    /// Several cluster secrets at once, for rotating: the **first** is presented, **every one** is
    /// accepted. Rotating from A to B: restart each node with `[A, B]`, then each with `[B, A]`,
    /// then (optionally) each with `[B]`; calls succeed throughout.
    pub fn secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secrets = secrets.into_iter().map(Into::into).collect();
        self
    }

    /// Bearer tokens HTTP clients may use instead of a client certificate
    /// (`Authorization: Bearer <token>`). Needs a [`secret`](Self::secret).
    pub fn api_tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.api_tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// The security settings from the secrets and tokens given, or `PULSING_SECRET`.
    fn security(&mut self) -> Result<Security, PulsingError> {
        let mut secrets = std::mem::take(&mut self.secrets);
        if secrets.is_empty() {
            if let Ok(from_env) = std::env::var(SECRET_ENV) {
                secrets.push(from_env);
            }
        }
        let secrets = secrets
            .into_iter()
            .map(Secret::new)
            .collect::<Result<Vec<_>, _>>()?;
        let tokens = std::mem::take(&mut self.api_tokens)
            .into_iter()
            .map(Secret::new)
            .collect::<Result<Vec<_>, _>>()?;
        Security::new(secrets, tokens)
    }

    /// Starts the system: binds the transport (if any) and joins the seeds (if any).
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] for an address that does not parse, an address or seeds without a
    /// transport, seeds without a membership, a bind failure, an empty secret or token, tokens
    /// without a secret, or a secret the transport cannot use; the membership's join error
    /// ([`PulsingError::Unauthorized`] when a seed refused this node's identity).
    pub async fn build(mut self) -> Result<ActorSystem, PulsingError> {
        self.config.security = self.security()?;
        let networked = self.addr.is_some() || !self.seeds.is_empty();
        if self.transport.is_none() && networked {
            self.transport = self.fallback_transport.take().map(|make| make());
        }
        let has_transport = self.transport.is_some();
        if !has_transport && networked {
            return Err(PulsingError::Config(
                "an address or seeds need a transport: use the `pulsing` crate with its `http` \
                 feature, or pass .transport(..)"
                    .into(),
            ));
        }
        if self.membership.is_none() && has_transport {
            self.membership = self.fallback_membership.take().map(|make| make());
        }
        let bind = if has_transport {
            let text = self.addr.as_deref().unwrap_or("127.0.0.1:0");
            Some(text.parse::<SocketAddr>().map_err(|e| {
                PulsingError::Config(format!("address {text:?} is not ip:port ({e})"))
            })?)
        } else {
            None
        };
        let transport = self.transport.unwrap_or_else(|| Arc::new(NoTransport));
        if has_transport && self.config.security.is_enabled() {
            transport.secure(&self.config.security)?;
        }
        let membership = self
            .membership
            .unwrap_or_else(|| Arc::new(Standalone::default()));
        ActorSystem::start(self.config, bind, self.seeds, transport, membership).await
    }
}
