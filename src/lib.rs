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
//! | `quic` | no | `pulsing-transport-quic`: the QUIC fast path |
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
