//! Pulsing: a distributed actor runtime.
//!
//! Actors with bounded mailboxes, `ask` / `tell` / streamed replies, and location-transparent
//! [`ActorRef`]s: the same call reaches an actor in this process or on another node. Nodes join through
//! seed addresses and find each other's public actors by gossip; no external service is needed.
//!
//! This crate is the facade: it re-exports [`pulsing_core`] and, behind features, the transports and
//! the cluster membership.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `http` | yes | `pulsing-transport-http`: the HTTP/1.1 + h2c transport (`POST /actor/{name}`) |
//! | `cluster` | yes | `pulsing-cluster`: SWIM membership and the cluster-wide actor registry |
//! | `quic` | no | `pulsing-transport-quic`: QUIC on UDP port P beside HTTP on TCP port P (`system_builder().transport(quic::QuicTransport::new(quic::QuicConfig::default())?)`) |
//! | `full` | no | all of the above |
//!
//! With no features it is the single-process runtime of [`pulsing_core`].
//!
//! See [`pulsing_core`] for the delivery promise, supervision and the mailbox contract.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use pulsing_core::*;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use pulsing_transport_http as http;

#[cfg(feature = "quic")]
#[cfg_attr(docsrs, doc(cfg(feature = "quic")))]
pub use pulsing_transport_quic as quic;

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub use pulsing_cluster as cluster;

/// A builder for a system with this crate's default transport and membership, per enabled features.
///
/// With no address and no seeds the system is standalone (no network). With `.addr(..)` it serves on
/// that address with the default transport (`http` feature); with `.seeds(..)` it also joins the
/// cluster through them (`cluster` feature). An explicit `.transport(..)` / `.membership(..)` wins.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pulsing::PulsingError> {
/// let system = pulsing::system_builder().build().await?; // standalone
/// system.shutdown().await;
/// # Ok(()) }
/// ```
pub fn system_builder() -> ActorSystemBuilder {
    let builder = ActorSystem::builder();
    #[cfg(feature = "http")]
    let builder = builder.fallback_transport(|| {
        std::sync::Arc::new(http::HttpTransport::default()) as std::sync::Arc<dyn Transport>
    });
    #[cfg(feature = "cluster")]
    let builder = builder.fallback_membership(|| {
        std::sync::Arc::new(cluster::Cluster::default()) as std::sync::Arc<dyn Membership>
    });
    builder
}
